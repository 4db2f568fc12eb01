//! Where a report's tensors come from: the caller's [`ModelFacts`] or an
//! opened [`Model`]. The report borrows them instead of copying each name
//! and shape, so that inspecting a header of a million tensors costs a few
//! bytes per tensor on top of what the loader holds.

use modeltool_format::TensorMeta;
use modeltool_loader::Model;

use crate::facts::ModelFacts;

/// The tensors a report is built from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'m> {
    /// Facts gathered by the caller.
    Facts(&'m ModelFacts),
    /// An opened model.
    Model(&'m Model),
}

impl<'m> Source<'m> {
    /// How many tensors.
    pub(crate) fn len(self) -> usize {
        match self {
            Source::Facts(f) => f.tensors.len(),
            Source::Model(m) => m.entries().len(),
        }
    }

    /// Name, dtype and shape of tensor `i` (< [`Source::len`]).
    pub(crate) fn meta(self, i: usize) -> &'m TensorMeta {
        match self {
            Source::Facts(f) => &f.tensors[i].meta,
            Source::Model(m) => &m.entries()[i].meta,
        }
    }

    /// Index of the file tensor `i` is in.
    pub(crate) fn file(self, i: usize) -> usize {
        match self {
            Source::Facts(f) => f.tensors[i].file,
            Source::Model(m) => m.entries()[i].file,
        }
    }

    /// Absolute offset of tensor `i`'s bytes in its file (0 for a JSON
    /// model file, which has no data section).
    pub(crate) fn offset(self, i: usize) -> u64 {
        match self {
            Source::Facts(f) => f.tensors[i].offset,
            Source::Model(m) => m.entries()[i].offset().unwrap_or(0),
        }
    }

    /// Bytes tensor `i` takes in binary form: as stored in the file (a
    /// quantized GGUF tensor's blocks, not the f32 it decodes to).
    pub(crate) fn bytes(self, i: usize) -> u64 {
        match self {
            Source::Facts(f) => f.tensors[i].bytes,
            Source::Model(m) => m.entries()[i].stored_len(),
        }
    }

    /// The name of tensor `i`.
    pub(crate) fn name(self, i: usize) -> &'m str {
        &self.meta(i).name
    }
}
