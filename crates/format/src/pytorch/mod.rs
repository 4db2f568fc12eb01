//! PyTorch checkpoints read as data: the pickle is interpreted, never run.
//!
//! `docs/PYTORCH.md` in the repository describes the formats and the
//! choices made. Three layers, each usable on its own:
//!
//! - [`parse_pickle`]: a pickle interpreter that builds [`Value`]s and
//!   never imports or calls anything. The globals checkpoints use are
//!   recognised by name; any other is refused with [`PickleError::Forbidden`]
//!   unless the caller allows it as opaque data ([`PickleOptions`]), and the
//!   code-execution entry points ([`never_allowed`]) never are.
//! - [`Checkpoint::from_value`]: every tensor anywhere in the object, named
//!   by its path, as a strided view into a storage
//!   ([`TorchTensor::copy_contiguous`] makes it contiguous), and every
//!   other value as metadata.
//! - Containers: the zip archive ([`zip::Directory`], [`TorchArchive`]),
//!   the legacy stream ([`LegacyFile`]) and the older tar archive
//!   ([`TarFile`]); [`sniff`] tells them (and Git LFS pointers and HTML
//!   pages) apart from the first bytes.
//!
//! [`PytorchFile::parse`] does it all on a whole file's bytes. A reader of
//! ranges (see [`TorchArchive`]) fetches only the zip directory, `data.pkl`
//! and the storages it needs.
//!
//! ```
//! use modeltool_format::pytorch::{Container, PytorchFile, sniff};
//!
//! // A Git LFS pointer is not a checkpoint, and says so.
//! let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 12\n";
//! assert!(sniff(pointer).unwrap_err().to_string().contains("Git LFS"));
//! assert_eq!(sniff(b"PK\x03\x04rest")?, Container::Zip);
//! # Ok::<(), modeltool_format::pytorch::PytorchError>(())
//! ```

mod checkpoint;
mod error;
mod legacy;
mod pickle;
pub mod tar;
mod value;
mod view;
pub mod zip;

use std::collections::BTreeMap;
use std::ops::Range;

pub use checkpoint::{Checkpoint, StorageInfo, TorchTensor, dtype_from_torch};
pub use error::{PickleError, PytorchError};
pub use legacy::{LegacyFile, is_legacy};
pub use pickle::{
    Known, MAX_DEPTH, MAX_VALUES, Pickle, PickleOptions, known, never_allowed, opcode_name,
    parse_pickle,
};
pub use tar::{TarFile, is_tar};
pub use value::{Global, Object, RawTensor, StorageRef, Value};
pub use view::ByteOrder;

use zip::{Directory, ZipEntry};

/// The kind of container a checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// The zip archive of torch >= 1.6 (and TorchScript).
    Zip,
    /// The legacy pickle stream of torch 0.1.10 to 1.5.
    Legacy,
    /// The tar archive of torch before 0.1.10 ([`TarFile`]).
    Tar,
}

/// Tells the container from a file's first bytes (at least 263 for the tar
/// check; fewer are fine for the others).
pub fn sniff(head: &[u8]) -> Result<Container, PytorchError> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Container::Zip);
    }
    if is_legacy(head) {
        return Ok(Container::Legacy);
    }
    if head.starts_with(b"version https://git-lfs") {
        return Err(PytorchError::LfsPointer);
    }
    let text = head.trim_ascii_start();
    let lower: Vec<u8> = text.iter().take(15).map(u8::to_ascii_lowercase).collect();
    if lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html") {
        return Err(PytorchError::Html);
    }
    if is_tar(head) {
        return Ok(Container::Tar);
    }
    Err(PytorchError::UnknownContainer {
        start: head.iter().take(8).copied().collect(),
    })
}

/// The layout of torch's zip archive: which entry is `data.pkl`, the byte
/// order, whether it is TorchScript, and where each storage is.
///
/// A reader with a byte source reads the directory ([`zip::EndRecord::find`]
/// over the last [`zip::TAIL_LEN`] bytes, [`Directory::parse`]), then
/// `data.pkl` and `byteorder` ([`ZipEntry::data_range`] from each local
/// header's first [`ZipEntry::local_prefix_len`] bytes), calls
/// [`TorchArchive::read_checkpoint`] and [`TorchArchive::check_storages`],
/// and fetches a tensor's [`TorchTensor::storage_range`] inside its
/// [`TorchArchive::storage_entry`] only when asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchArchive {
    /// The top folder, with its slash (`archive/`); any name is accepted.
    pub prefix: String,
    /// The `data.pkl` entry.
    pub data_pkl: ZipEntry,
    /// The `byteorder` entry (torch >= 2.1); absent means little-endian.
    pub byteorder: Option<ZipEntry>,
    /// Whether it is a TorchScript archive (`constants.pkl` or `code/`).
    pub torchscript: bool,
}

impl TorchArchive {
    /// Finds torch's records in a zip directory.
    pub fn from_directory(dir: &Directory) -> Result<TorchArchive, PytorchError> {
        let mut found: Option<&ZipEntry> = None;
        for e in &dir.entries {
            if let Some(folder) = e.name.strip_suffix("data.pkl")
                && folder.ends_with('/')
                && folder.matches('/').count() == 1
            {
                if let Some(first) = found {
                    return Err(PytorchError::SeveralArchives {
                        first: first.name.clone(),
                        second: e.name.clone(),
                    });
                }
                found = Some(e);
            }
        }
        let data_pkl = found.ok_or(PytorchError::NoDataPkl)?.clone();
        let prefix = data_pkl.name[..data_pkl.name.len() - "data.pkl".len()].to_owned();
        let torchscript = dir.entries.iter().any(|e| {
            e.name
                .strip_prefix(&prefix)
                .is_some_and(|rest| rest == "constants.pkl" || rest.starts_with("code/"))
        });
        Ok(TorchArchive {
            byteorder: dir.entry(&format!("{prefix}byteorder")).cloned(),
            prefix,
            data_pkl,
            torchscript,
        })
    }

    /// The entry holding storage `key` (`PREFIX/data/KEY`).
    pub fn storage_entry<'d>(&self, dir: &'d Directory, key: &str) -> Option<&'d ZipEntry> {
        dir.entry(&format!("{}data/{key}", self.prefix))
    }

    /// Reads `data.pkl`'s bytes into the checkpoint. A TorchScript
    /// archive's module objects are read as objects whose attributes hold
    /// the tensors; one whose pickle needs more than that, or holds no
    /// tensor, is a [`PytorchError::TorchScriptProgram`].
    pub fn read_checkpoint(
        &self,
        data_pkl: &[u8],
        allow_globals: &[String],
    ) -> Result<Checkpoint, PytorchError> {
        let opts = PickleOptions {
            allow_globals,
            torchscript: self.torchscript,
            tar_objects: None,
        };
        let part = &self.data_pkl.name;
        let pickle = match parse_pickle(data_pkl, &opts) {
            Ok(p) => p,
            Err(e) if self.torchscript => {
                return Err(PytorchError::TorchScriptProgram {
                    reason: format!("{}: {e}", crate::text::escape(part)),
                });
            }
            Err(e) => return Err(PytorchError::pickle(part, e)),
        };
        let c = Checkpoint::from_value(&pickle.value)?;
        if self.torchscript && c.tensors.is_empty() {
            return Err(PytorchError::TorchScriptProgram {
                reason: "data.pkl holds no tensor".into(),
            });
        }
        Ok(c)
    }

    /// Checks that every storage the checkpoint uses has its entry, of
    /// exactly the size the pickle declares.
    pub fn check_storages(&self, dir: &Directory, c: &Checkpoint) -> Result<(), PytorchError> {
        for t in &c.tensors {
            let s = &c.storages[&t.storage];
            let e =
                self.storage_entry(dir, &s.key)
                    .ok_or_else(|| PytorchError::StorageMissing {
                        tensor: t.name.clone(),
                        key: s.key.clone(),
                    })?;
            if e.len != s.nbytes {
                return Err(PytorchError::StorageSize {
                    key: s.key.clone(),
                    declared: s.nbytes,
                    found: e.len,
                });
            }
        }
        Ok(())
    }
}

/// A whole checkpoint file read from its bytes: what it holds and where
/// each storage's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct PytorchFile {
    /// Zip or legacy.
    pub container: Container,
    /// Whether it is a TorchScript archive.
    pub torchscript: bool,
    /// Its tensors, storages and other values.
    pub checkpoint: Checkpoint,
    /// The storages' byte order.
    pub byte_order: ByteOrder,
    /// Each storage's bytes in the file, by key.
    pub storages: BTreeMap<String, Range<u64>>,
    /// Zip only: the directory, for CRC checks ([`PytorchFile::check_crc`]).
    pub directory: Option<Directory>,
}

impl PytorchFile {
    /// Reads a zip, legacy or tar checkpoint from the whole file's bytes (a
    /// memory map or a buffer). `allow_globals` lists classes
    /// (`"MODULE.NAME"`) accepted as opaque data.
    pub fn parse(file: &[u8], allow_globals: &[String]) -> Result<PytorchFile, PytorchError> {
        match sniff(&file[..file.len().min(512)])? {
            Container::Tar => {
                let t = TarFile::parse(file, allow_globals)?;
                Ok(PytorchFile {
                    container: Container::Tar,
                    torchscript: false,
                    checkpoint: t.checkpoint,
                    byte_order: ByteOrder::Little,
                    storages: t.storages,
                    directory: None,
                })
            }
            Container::Legacy => {
                let l = LegacyFile::parse(file, allow_globals)?;
                Ok(PytorchFile {
                    container: Container::Legacy,
                    torchscript: false,
                    checkpoint: l.checkpoint,
                    byte_order: ByteOrder::Little,
                    storages: l.storages,
                    directory: None,
                })
            }
            Container::Zip => {
                let dir = Directory::from_file_bytes(file)?;
                let archive = TorchArchive::from_directory(&dir)?;
                let byte_order = match &archive.byteorder {
                    Some(e) => ByteOrder::parse(dir.entry_bytes(file, e)?)?,
                    None => ByteOrder::Little,
                };
                let pkl = dir.entry_bytes(file, &archive.data_pkl)?;
                let checkpoint = archive.read_checkpoint(pkl, allow_globals)?;
                archive.check_storages(&dir, &checkpoint)?;
                let mut storages = BTreeMap::new();
                for key in checkpoint.storages.keys() {
                    let e = archive
                        .storage_entry(&dir, key)
                        .expect("check_storages found every storage");
                    let start = e.header_offset as usize;
                    let prefix = file
                        .get(start..start.saturating_add(e.local_prefix_len()))
                        .ok_or_else(|| PytorchError::ZipLocalHeader {
                            name: e.name.clone(),
                            offset: e.header_offset,
                            reason: "past the end of the file".into(),
                        })?;
                    storages.insert(key.clone(), e.data_range(prefix)?);
                }
                Ok(PytorchFile {
                    container: Container::Zip,
                    torchscript: archive.torchscript,
                    checkpoint,
                    byte_order,
                    storages,
                    directory: Some(dir),
                })
            }
        }
    }

    /// The tensor's contiguous row-major little-endian bytes, from the
    /// same file bytes given to [`PytorchFile::parse`].
    pub fn tensor_bytes(&self, file: &[u8], t: &TorchTensor) -> Result<Vec<u8>, PytorchError> {
        let s = self
            .storages
            .get(&t.storage)
            .ok_or_else(|| PytorchError::StorageMissing {
                tensor: t.name.clone(),
                key: t.storage.clone(),
            })?;
        let r = t.storage_range();
        let (start, end) = (s.start + r.start, s.start + r.end);
        let bytes = file
            .get(start as usize..end as usize)
            .filter(|_| end <= s.end)
            .ok_or_else(|| PytorchError::ShortStorage {
                tensor: t.name.clone(),
                given: (s.end - s.start).saturating_sub(r.start),
                need: r.end - r.start,
            })?;
        t.contiguous_bytes(bytes, self.byte_order)
    }

    /// Checks every zip entry's CRC-32 (for `verify`); a legacy stream has none.
    pub fn check_crc(&self, file: &[u8]) -> Result<(), PytorchError> {
        if let Some(dir) = &self.directory {
            // Compressed entries (TorchScript's code/) are never inflated,
            // so their CRC (of the inflated bytes) is not checked.
            for e in dir.entries.iter().filter(|e| e.method == 0) {
                zip::check_crc(e, dir.entry_bytes(file, e)?)?;
            }
        }
        Ok(())
    }
}
