//! Open any model — a `.safetensors` file, a `.json` model file, a Hugging
//! Face sharded checkpoint (`model.safetensors.index.json` or the folder
//! holding it) — as one view: names, dtypes, shapes, metadata, architecture,
//! and each tensor's bytes. The file formats are specified in `docs/FORMAT.md`.
//!
//! Opening reads and validates headers only; its cost does not grow with the
//! size of the data. safetensors files are memory-mapped the first time one
//! of their tensors is asked for, and bytes are handed out straight from the
//! map.
//!
//! # Files that change while they are read
//! A [`Model`] keeps every file it opened open, and reads only through those
//! handles: a file replaced (renamed over) or deleted after [`Model::open`]
//! is still read as it was when opened, header and data alike. A file
//! changed in place is detected where it can be: before and after every
//! read, and when a file is mapped, its length and modification time are
//! compared with those recorded at open, and a file that shrank is reported
//! as [`LoadError::Truncated`], one that otherwise changed as
//! [`LoadError::Changed`]. Same-length rewrites that keep the modification
//! time are caught by the stored checksums, when they are checked.
//!
//! # The memory-map assumption
//! A mapped file must not be truncated while bytes borrowed from its map are
//! in use: touching the lost pages raises SIGBUS, which kills the process
//! unless [`report_truncation_on_sigbus`] was called (it turns that SIGBUS
//! into one error line and exit status 2). Where that cannot be promised,
//! open with [`OpenOptions::mmap`] set to `false`: tensors are then read
//! with plain reads into owned buffers, and a truncation is an error.
//!
//! ```
//! use modeltool_format::{write_safetensors, Dtype, TensorMeta};
//! use modeltool_loader::{Model, OpenOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("line.safetensors");
//! let a = TensorMeta { name: "a".into(), dtype: Dtype::F32, shape: vec![1] };
//! let bytes = 1.5f32.to_le_bytes();
//! write_safetensors(std::fs::File::create(&path)?, &[(a, &bytes[..])], &Default::default())?;
//!
//! let model = Model::open(&path, OpenOptions::default())?;
//! let a = model.tensor_f32("a")?;
//! assert_eq!(&a[..], &[1.5]);
//! assert!(matches!(a, std::borrow::Cow::Borrowed(_)), "aligned f32 is read in place");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_endian = "big")]
compile_error!(
    "modeltool-loader reads little-endian tensors in place and needs a little-endian machine"
);

mod error;
pub mod save;
mod shards;
mod sigbus;
pub mod size;
pub mod write;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::SystemTime;

use half::{bf16, f16};
use memmap2::Mmap;
use modeltool_format::{Dtype, Header, HeaderSha256, JsonModel, ModelMetadata, TensorMeta, keys};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use crate::error::{LoadError, Result};
pub use crate::shards::{INDEX_NAME, parse_size, plan_shards, shard_name};
pub use crate::sigbus::report_truncation_on_sigbus;

/// How to open a model.
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Memory-map safetensors files (the default). When false, tensors are
    /// read with plain reads: for files that cannot be mapped, or may change.
    pub mmap: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { mmap: true }
    }
}

/// What kind of thing was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelKind {
    /// One safetensors file.
    Safetensors,
    /// A modeltool JSON model file.
    Json,
    /// A sharded checkpoint; the path is its index file.
    Sharded {
        /// The `model.safetensors.index.json`.
        index: PathBuf,
    },
}

/// One file a model is made of.
#[derive(Debug)]
pub struct ModelFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_len: u64,
    /// Bytes before the tensor data: for safetensors the 8-byte length plus
    /// the JSON header; for a JSON model file, the whole file.
    pub header_bytes: u64,
    /// What the header's `modeltool.header_sha256` says about it (always
    /// [`HeaderSha256::Absent`] for a JSON model file, which has no header).
    pub header_sha256: HeaderSha256,
    /// The file as opened: every read goes through this handle, never
    /// through the path again, so a file renamed over `path` later is not
    /// mixed in.
    handle: File,
    /// Its modification time when opened (when the system has one).
    modified: Option<SystemTime>,
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    /// A safetensors file: mapped on first use (when `mmap`), else read
    /// with plain reads. `None` in the cell: mapping failed, plain reads.
    Safetensors {
        mmap: bool,
        map: OnceLock<Option<Mapped>>,
    },
    /// Tensors parsed out of a JSON model file, by entry index.
    Json(Vec<JsonTensorData>),
}

/// A tensor parsed out of a JSON model file.
#[derive(Debug)]
struct JsonTensorData {
    bytes: Vec<u8>,
    /// The sha256 of `bytes`, computed while the file was read.
    sha256: String,
}

/// A memory map of a whole file, known to the SIGBUS handler while it lives.
#[derive(Debug)]
struct Mapped {
    // Declared (so dropped) before the map: the address range leaves the
    // SIGBUS handler's table before it is unmapped and can be reused.
    _watch: sigbus::Watch,
    map: Mmap,
}

impl ModelFile {
    fn new(path: &Path, handle: File, header_bytes: u64, storage: Storage) -> Result<ModelFile> {
        let meta = handle.metadata().map_err(LoadError::io(path))?;
        Ok(ModelFile {
            path: path.to_owned(),
            file_len: meta.len(),
            header_bytes,
            header_sha256: HeaderSha256::Absent,
            handle,
            modified: meta.modified().ok(),
            storage,
        })
    }

    /// Checks that the file still has the length and modification time it
    /// had when it was opened: [`LoadError::Truncated`] if it is shorter,
    /// [`LoadError::Changed`] if it is longer or was written to. One
    /// `fstat`; the loader calls it before and after every read.
    pub fn check_unchanged(&self) -> Result<()> {
        let meta = self.handle.metadata().map_err(LoadError::io(&self.path))?;
        let now = meta.len();
        if now < self.file_len {
            return Err(self.truncated(now));
        }
        if now != self.file_len {
            return Err(LoadError::Changed {
                path: self.path.clone(),
                detail: format!("it was {} bytes long, now {now}", self.file_len),
            });
        }
        if meta.modified().ok() != self.modified {
            return Err(LoadError::Changed {
                path: self.path.clone(),
                detail: "it was written to while being read".into(),
            });
        }
        Ok(())
    }

    fn truncated(&self, actual: u64) -> LoadError {
        LoadError::Truncated {
            path: self.path.clone(),
            expected: self.file_len,
            actual,
        }
    }

    /// Fills `buf` from `offset` of the file as opened. A read that ends
    /// early because the file shrank is [`LoadError::Truncated`], not a bare
    /// "failed to fill whole buffer".
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.handle.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                if let Ok(meta) = self.handle.metadata() {
                    if meta.len() < self.file_len {
                        return self.truncated(meta.len());
                    }
                }
            }
            LoadError::Io {
                path: self.path.clone(),
                source: e,
            }
        })
    }

    /// The sha256 of the whole file as it was opened (the hash the Hugging
    /// Face Hub lists), read in bounded chunks through the handle opened by
    /// [`Model::open`]. A file that changes meanwhile is an error.
    pub fn sha256(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        self.read_chunks((0, self.file_len), CHUNK, |c| {
            hasher.update(c);
            Ok(())
        })?;
        Ok(hex::encode(hasher.finalize()))
    }

    /// Reads the byte range `start..end` of the file as opened in chunks of
    /// at most `chunk` bytes, handing each to `f`, with the file checked
    /// before and after ([`ModelFile::check_unchanged`]): one that shrank
    /// or was written to meanwhile is an error, even if `f` has seen some
    /// of its bytes.
    fn read_chunks(
        &self,
        (start, end): (u64, u64),
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.check_unchanged()?;
        let mut buf = vec![0u8; chunk.min((end - start) as usize).max(1)];
        let mut at = start;
        while at < end {
            let n = buf.len().min((end - at) as usize);
            self.read_exact_at(&mut buf[..n], at)?;
            f(&buf[..n])?;
            at += n as u64;
        }
        self.check_unchanged()
    }

    /// [`LoadError::HeaderDamaged`] if the file's header does not match
    /// its `modeltool.header_sha256`; `Ok` when it matches or has none.
    pub fn check_header(&self) -> Result<()> {
        match &self.header_sha256 {
            HeaderSha256::Damaged(damage) => Err(LoadError::HeaderDamaged {
                path: self.path.clone(),
                damage: damage.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The file's memory map, made on first use; `None` when the model was
    /// opened without mmap or the file cannot be mapped (plain reads then).
    fn map(&self) -> Option<&Mmap> {
        let Storage::Safetensors { mmap, map } = &self.storage else {
            return None;
        };
        if !*mmap {
            return None;
        }
        map.get_or_init(|| map_file(&self.handle, self.file_len, &self.path))
            .as_ref()
            .map(|m| &m.map)
    }
}

/// Where a tensor's bytes are.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// Index into [`Model::files`].
    pub file: usize,
    /// Absolute byte range in that file (for JSON files, the range in the
    /// parsed buffer: start 0).
    pub range: (u64, u64),
    /// The checksum the file stores for it, if any.
    pub stored_sha256: Option<String>,
    json_slot: Option<usize>,
}

impl Entry {
    /// Bytes the tensor takes.
    pub fn byte_len(&self) -> u64 {
        self.range.1 - self.range.0
    }
}

/// An open model: every tensor's description, its metadata, and access to
/// the bytes.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    kind: ModelKind,
    files: Vec<ModelFile>,
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    metadata: ModelMetadata,
    orphan_checksums: Vec<String>,
}

impl Model {
    /// Opens a `.safetensors` file, a `.json` model file, a
    /// `model.safetensors.index.json`, or a folder holding one of these
    /// (the index first, else a single `.safetensors` file).
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Model> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(LoadError::io(path))?;
        if meta.is_dir() {
            return Model::open_dir(path, options);
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".index.json") {
            shards::open_index(path, options)
        } else if name.ends_with(".json") {
            Model::open_json(path)
        } else {
            Model::open_safetensors(path, options)
        }
    }

    fn open_dir(dir: &Path, options: OpenOptions) -> Result<Model> {
        let index = dir.join(INDEX_NAME);
        if index.is_file() {
            return shards::open_index(&index, options);
        }
        let mut single: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(LoadError::io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        match single.len() {
            1 => Model::open_safetensors(&single.remove(0), options),
            0 => Err(LoadError::NotAModel {
                path: dir.to_owned(),
                reason: format!("folder holds neither {INDEX_NAME} nor a .safetensors file"),
            }),
            n => Err(LoadError::NotAModel {
                path: dir.to_owned(),
                reason: format!(
                    "folder holds {n} .safetensors files but no {INDEX_NAME} to say how they fit"
                ),
            }),
        }
    }

    fn open_safetensors(path: &Path, options: OpenOptions) -> Result<Model> {
        let (file, header) = read_safetensors_header(path, options)?;
        let metadata = ModelMetadata::from_safetensors(header.metadata.clone())
            .map_err(LoadError::format(path))?;
        let mut model = Model {
            path: path.to_owned(),
            kind: ModelKind::Safetensors,
            files: vec![file],
            entries: Vec::new(),
            by_name: HashMap::new(),
            metadata: ModelMetadata {
                checksums: Default::default(),
                ..metadata.clone()
            },
            orphan_checksums: Vec::new(),
        };
        model.add_entries(0, &header, &metadata.checksums);
        model.finish_checksums(&metadata.checksums);
        Ok(model)
    }

    fn open_json(path: &Path) -> Result<Model> {
        let file = File::open(path).map_err(LoadError::io(path))?;
        let mut model_file = ModelFile::new(path, file, 0, Storage::Json(Vec::new()))?;
        model_file.header_bytes = model_file.file_len;
        let json = JsonModel::read_file(&model_file.handle).map_err(LoadError::format(path))?;
        // Checksums and the architecture have their own fields in a JSON
        // model file; the same keys in `metadata` would collide with them
        // when written as safetensors. The header checksum describes a
        // safetensors header, which a JSON model file does not have.
        for key in json.metadata.keys() {
            let why = if key.starts_with(keys::SHA256_PREFIX) || key == keys::ARCHITECTURE {
                "checksums and the architecture have their own fields in a JSON model file"
            } else if key == keys::HEADER_SHA256 {
                "it checksums a safetensors header, which a JSON model file does not have"
            } else {
                continue;
            };
            return Err(LoadError::NotAModel {
                path: path.to_owned(),
                reason: format!("metadata key `{key}` is modeltool's own: {why}"),
            });
        }
        let mut entries = Vec::with_capacity(json.tensors.len());
        let mut buffers = Vec::with_capacity(json.tensors.len());
        let mut checksums = std::collections::BTreeMap::new();
        for (slot, t) in json.tensors.into_iter().enumerate() {
            if let Some(sum) = &t.sha256 {
                checksums.insert(t.meta.name.clone(), sum.clone());
            }
            entries.push(Entry {
                range: (0, t.data.len() as u64),
                meta: t.meta,
                file: 0,
                stored_sha256: t.sha256,
                json_slot: Some(slot),
            });
            buffers.push(JsonTensorData {
                bytes: t.data,
                sha256: t.actual_sha256,
            });
        }
        model_file.storage = Storage::Json(buffers);
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.meta.name.clone(), i))
            .collect();
        Ok(Model {
            path: path.to_owned(),
            kind: ModelKind::Json,
            files: vec![model_file],
            entries,
            by_name,
            metadata: ModelMetadata {
                user: json.metadata,
                checksums: Default::default(),
                architecture: json.architecture,
            },
            orphan_checksums: Vec::new(),
        })
    }

    pub(crate) fn add_entries(
        &mut self,
        file: usize,
        header: &Header,
        checksums: &std::collections::BTreeMap<String, String>,
    ) {
        let start = header.data_start();
        for t in &header.tensors {
            self.by_name.insert(t.meta.name.clone(), self.entries.len());
            self.entries.push(Entry {
                meta: t.meta.clone(),
                file,
                range: (start + t.data_offsets.0, start + t.data_offsets.1),
                stored_sha256: checksums.get(&t.meta.name).cloned(),
                json_slot: None,
            });
        }
    }

    pub(crate) fn finish_checksums(
        &mut self,
        checksums: &std::collections::BTreeMap<String, String>,
    ) {
        for name in checksums.keys() {
            if !self.by_name.contains_key(name) {
                self.orphan_checksums.push(name.clone());
            }
        }
    }

    /// The path the model was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What kind of model this is.
    pub fn kind(&self) -> &ModelKind {
        &self.kind
    }

    /// The files the model is made of (one, or one per shard).
    pub fn files(&self) -> &[ModelFile] {
        &self.files
    }

    /// Every tensor, in file order (shard by shard).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The tensor of that name.
    pub fn entry(&self, name: &str) -> Result<&Entry> {
        self.by_name
            .get(name)
            .map(|&i| &self.entries[i])
            .ok_or_else(|| LoadError::NoSuchTensor {
                path: self.path.clone(),
                name: name.to_owned(),
            })
    }

    /// User metadata and architecture. Stored checksums are on each
    /// [`Entry`] instead; `checksums` here is empty.
    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    /// Names that have a stored checksum but no tensor: a sign of damage.
    pub fn orphan_checksums(&self) -> &[String] {
        &self.orphan_checksums
    }

    /// Tensors without a stored checksum where one was to be expected,
    /// another sign of damage (a checksum key changed, so that its tensor
    /// seems to have none): some other tensor of the model has a checksum,
    /// or the tensor's file carries `modeltool.header_sha256` (modeltool
    /// writes both or neither). Empty when no tensor has a checksum in a
    /// file without a header checksum: such a model is only unchecked.
    pub fn missing_checksums(&self) -> Vec<&Entry> {
        let any = self.entries.iter().any(|e| e.stored_sha256.is_some());
        self.entries
            .iter()
            .filter(|e| {
                e.stored_sha256.is_none()
                    && (any || self.files[e.file].header_sha256 != HeaderSha256::Absent)
            })
            .collect()
    }

    /// [`LoadError::HeaderDamaged`] for the first file whose header does
    /// not match its `modeltool.header_sha256` ([`ModelFile::check_header`]).
    pub fn check_headers(&self) -> Result<()> {
        self.files.iter().try_for_each(ModelFile::check_header)
    }

    /// The total number of tensor elements.
    pub fn parameter_count(&self) -> u128 {
        self.entries
            .iter()
            .map(|e| e.meta.element_count().unwrap_or(0) as u128)
            .sum()
    }

    /// The tensor's bytes: borrowed from the memory map (or the parsed JSON),
    /// or read into an owned buffer when the model was opened without mmap.
    ///
    /// The file is checked against its length and modification time at
    /// open first ([`ModelFile::check_unchanged`]); bytes borrowed from the
    /// map must not be used after another process truncates the file (see
    /// the crate docs and [`report_truncation_on_sigbus`]).
    pub fn bytes(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let f = &self.files[entry.file];
        if let Storage::Json(buffers) = &f.storage {
            let slot = entry.json_slot.expect("JSON entries carry their slot");
            return Ok(Cow::Borrowed(&buffers[slot].bytes));
        }
        let (start, end) = (entry.range.0 as usize, entry.range.1 as usize);
        match f.map() {
            Some(map) => {
                // After mapping, not before: a file truncated before the map
                // was made is caught here, before any page is touched.
                f.check_unchanged()?;
                map.get(start..end)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| f.truncated(map.len() as u64))
            }
            None => {
                f.check_unchanged()?;
                let mut buf = vec![0u8; end - start];
                f.read_exact_at(&mut buf, entry.range.0)?;
                f.check_unchanged()?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// Like [`Model::bytes`], and checks the stored checksum first (when
    /// there is one), and the header checksum of the tensor's file (when
    /// there is one: a changed dtype or shape leaves the bytes intact).
    pub fn bytes_checked(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        self.files[entry.file].check_header()?;
        let bytes = self.bytes(entry)?;
        if let Some(expected) = &entry.stored_sha256 {
            let actual = modeltool_format::sha256_hex(&bytes);
            if &actual != expected {
                return Err(LoadError::ChecksumMismatch {
                    path: self.files[entry.file].path.clone(),
                    name: entry.meta.name.clone(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        Ok(bytes)
    }

    /// The named tensor as f32 values. Borrowed (`Cow::Borrowed`) when the
    /// tensor is F32 and its bytes are aligned in the map; otherwise copied,
    /// or converted from F16, BF16 or F64.
    pub fn tensor_f32(&self, name: &str) -> Result<Cow<'_, [f32]>> {
        let entry = self.entry(name)?;
        let bytes = self.bytes(entry)?;
        to_f32(bytes, entry.meta.dtype).ok_or_else(|| LoadError::WrongDtype {
            path: self.path.clone(),
            name: name.to_owned(),
            dtype: entry.meta.dtype,
            wanted: "f32",
        })
    }

    /// Streams a tensor's bytes in chunks of at most `chunk` bytes with plain
    /// reads, so that memory stays bounded however large the tensor. The
    /// file is checked before and after ([`ModelFile::check_unchanged`]): a
    /// file that shrank or was written to meanwhile is an error, even if `f`
    /// has seen some of its bytes.
    pub fn for_each_chunk(
        &self,
        entry: &Entry,
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let file = &self.files[entry.file];
        if let Storage::Json(_) = file.storage {
            let bytes = self.bytes(entry)?;
            for c in bytes.chunks(chunk.max(1)) {
                f(c)?;
            }
            return Ok(());
        }
        file.read_chunks(entry.range, chunk, f)
    }

    /// The sha256 of a tensor's bytes, read in bounded chunks.
    pub fn sha256(&self, entry: &Entry) -> Result<String> {
        self.hash_entry(entry, &|_| {})
    }

    /// Hashes every tensor, in parallel across cores, with bounded memory;
    /// `progress` is called with byte counts as they are done.
    pub fn sha256_all(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<Vec<String>> {
        self.entries
            .par_iter()
            .map(|e| self.hash_entry(e, progress))
            .collect()
    }

    fn hash_entry(&self, entry: &Entry, progress: &(dyn Fn(u64) + Sync)) -> Result<String> {
        if let (Storage::Json(buffers), Some(slot)) =
            (&self.files[entry.file].storage, entry.json_slot)
        {
            // Hashed as the file was read.
            progress(entry.byte_len());
            return Ok(buffers[slot].sha256.clone());
        }
        let mut hasher = Sha256::new();
        self.for_each_chunk(entry, CHUNK, |c| {
            hasher.update(c);
            progress(c.len() as u64);
            Ok(())
        })?;
        Ok(hex::encode(hasher.finalize()))
    }
}

/// Chunk size for streaming reads.
pub const CHUNK: usize = 8 << 20;

/// Maps the first `len` bytes of `file` (its length when opened, so that
/// the map never covers bytes the header did not account for), and tells the
/// SIGBUS handler about it. `None` if the file cannot be mapped.
fn map_file(file: &File, len: u64, path: &Path) -> Option<Mapped> {
    let len = usize::try_from(len).ok()?;
    #[expect(unsafe_code, reason = "the one memory map of modeltool")]
    // SAFETY: mapping is unsafe because the mapped bytes change if the file
    // is modified, and touching pages beyond a truncated end raises SIGBUS.
    // modeltool maps model files read-only and assumes, as the crate docs
    // state, that nobody truncates them while bytes borrowed from the map are
    // in use; the file's length and modification time are checked against
    // those at open after mapping and before every hand-out, a truncation
    // after that is reported by the SIGBUS handler when installed, and a
    // rewrite in place is caught by the checksums. Bytes are only read
    // through `&[u8]` views whose lifetime is bound to the `Model`. If
    // mapping fails we fall back to plain reads.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }.ok()?;
    let watch = sigbus::Watch::new(map.as_ptr(), map.len(), path);
    Some(Mapped { _watch: watch, map })
}

/// Reads a safetensors file's header only: the 8-byte length and the JSON.
pub(crate) fn read_safetensors_header(
    path: &Path,
    options: OpenOptions,
) -> Result<(ModelFile, Header)> {
    let file = File::open(path).map_err(LoadError::io(path))?;
    let storage = Storage::Safetensors {
        mmap: options.mmap,
        map: OnceLock::new(),
    };
    let mut model_file = ModelFile::new(path, file, 0, storage)?;
    let file_len = model_file.file_len;
    let mut prefix = [0u8; 8];
    let got = read_up_to(&mut &model_file.handle, &mut prefix).map_err(LoadError::io(path))?;
    let header_len = Header::read_len(&prefix[..got], file_len).map_err(LoadError::format(path))?;
    let mut json = vec![0u8; header_len as usize];
    model_file.read_exact_at(&mut json, 8)?;
    let header =
        Header::parse(&json, file_len - 8 - header_len).map_err(LoadError::format(path))?;
    model_file.header_bytes = 8 + header_len;
    model_file.header_sha256 = header
        .check_header_sha256(&json)
        .map_err(LoadError::format(path))?;
    Ok((model_file, header))
}

fn read_up_to(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// Converts little-endian bytes of a float dtype to f32, borrowing when the
/// bytes are F32 and aligned. `None` for dtypes that are not F16/BF16/F32/F64.
pub fn to_f32(bytes: Cow<'_, [u8]>, dtype: Dtype) -> Option<Cow<'_, [f32]>> {
    Some(match dtype {
        // Tensors are little-endian and so is the machine (checked at
        // compile time), so a cast is a reinterpretation: in place when
        // aligned, one memcpy otherwise.
        Dtype::F32 => match bytes {
            Cow::Borrowed(b) => match bytemuck::try_cast_slice(b) {
                Ok(v) => Cow::Borrowed(v),
                Err(_) => Cow::Owned(bytemuck::pod_collect_to_vec(b)),
            },
            Cow::Owned(b) => Cow::Owned(bytemuck::pod_collect_to_vec(&b)),
        },
        Dtype::F16 => Cow::Owned(
            bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::BF16 => Cow::Owned(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        Dtype::F64 => Cow::Owned(
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
        ),
        _ => return None,
    })
}
