//! The plain facts about an opened model that the caller hands in: file
//! sizes, tensor names, shapes and offsets. Nothing here reads a file.

use std::collections::BTreeMap;

use modeltool_format::TensorMeta;
use serde::Serialize;

/// One file of a model, as opened by the caller.
#[derive(Debug, Clone, Serialize)]
pub struct FileFacts {
    /// The path as the user named it.
    pub path: String,
    /// The file's size in bytes.
    pub file_bytes: u64,
    /// Bytes before the tensor data: the 8-byte length plus the JSON header
    /// for safetensors; the whole file for a JSON model file.
    pub header_bytes: u64,
}

/// One tensor of a model.
#[derive(Debug, Clone, Serialize)]
pub struct TensorFacts {
    /// Name, dtype and shape.
    #[serde(flatten, serialize_with = "serialize_meta")]
    pub meta: TensorMeta,
    /// Index into [`ModelFacts::files`].
    pub file: usize,
    /// Absolute byte offset of the data in its file; 0 for a JSON model file.
    pub offset: u64,
    /// The number of bytes the data takes (as stored in binary form).
    pub bytes: u64,
}

/// Everything [`crate::inspect`] needs to know about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFacts {
    /// The path as the user named it (a file or a directory of shards).
    pub path: String,
    /// `"safetensors"`, `"json"` or `"sharded"`.
    pub kind: String,
    /// The files, one for a single-file model.
    pub files: Vec<FileFacts>,
    /// Every tensor.
    pub tensors: Vec<TensorFacts>,
    /// The user's string metadata.
    pub metadata: BTreeMap<String, String>,
    /// The architecture, if the file stores one (see docs/FORMAT.md).
    pub architecture: Option<serde_json::Value>,
}

/// Serializes a [`TensorMeta`] (which has no serde impl of its own) as
/// `name`, `dtype` and `shape` keys.
fn serialize_meta<S: serde::Serializer>(meta: &TensorMeta, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(3))?;
    map.serialize_entry("name", &meta.name)?;
    map.serialize_entry("dtype", &meta.dtype)?;
    map.serialize_entry("shape", &meta.shape)?;
    map.end()
}

/// The number of elements of a tensor, saturating instead of overflowing:
/// the facts come from a validated file, but nothing here may panic.
pub(crate) fn element_count(meta: &TensorMeta) -> u64 {
    meta.shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .unwrap_or(u64::MAX)
}
