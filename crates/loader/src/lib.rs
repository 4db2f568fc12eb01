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
//! # The memory-map assumption
//! A mapped file must not be modified or truncated while the [`Model`] is
//! alive. If another process truncates it, touching the lost pages raises
//! SIGBUS and the process dies; if it rewrites it, tensors change under the
//! reader (checksums would catch that, when checked). Where that cannot be
//! promised, open with [`OpenOptions::mmap`] set to `false`: tensors are then
//! read with plain reads into owned buffers.
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

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use half::{bf16, f16};
use memmap2::Mmap;
use modeltool_format::{Dtype, Header, JsonModel, ModelMetadata, TensorMeta};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub use crate::error::{LoadError, Result};
pub use crate::shards::{INDEX_NAME, parse_size, plan_shards, shard_name};

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
    storage: Storage,
}

#[derive(Debug)]
enum Storage {
    /// A safetensors file: mapped (or opened for reads) on first use.
    Safetensors {
        mmap: bool,
        file: OnceLock<std::result::Result<Backing, String>>,
    },
    /// Tensors parsed out of a JSON model file, by entry index.
    Json(Vec<Vec<u8>>),
}

#[derive(Debug)]
enum Backing {
    Map(Mmap),
    Read(File),
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
        let file_len = file.metadata().map_err(LoadError::io(path))?.len();
        let json = JsonModel::read(file).map_err(LoadError::format(path))?;
        // Checksums and the architecture have their own fields in a JSON
        // model file; the same keys in `metadata` would collide with them
        // when written as safetensors.
        if let Some(key) = json
            .metadata
            .keys()
            .find(|k| k.starts_with(RESERVED_PREFIX))
        {
            return Err(LoadError::NotAModel {
                path: path.to_owned(),
                reason: format!(
                    "metadata key `{key}` is reserved: `{RESERVED_PREFIX}*` keys are modeltool's own (checksums and architecture have their own fields in a JSON model file)"
                ),
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
            buffers.push(t.data);
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.meta.name.clone(), i))
            .collect();
        Ok(Model {
            path: path.to_owned(),
            kind: ModelKind::Json,
            files: vec![ModelFile {
                path: path.to_owned(),
                file_len,
                header_bytes: file_len,
                storage: Storage::Json(buffers),
            }],
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

    /// The total number of tensor elements.
    pub fn parameter_count(&self) -> u128 {
        self.entries
            .iter()
            .map(|e| e.meta.element_count().unwrap_or(0) as u128)
            .sum()
    }

    fn backing(&self, file: usize) -> Result<&Backing> {
        let f = &self.files[file];
        let Storage::Safetensors { mmap, file: cell } = &f.storage else {
            unreachable!("JSON entries are served from memory");
        };
        cell.get_or_init(|| open_backing(&f.path, *mmap).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|reason| LoadError::Io {
                path: f.path.clone(),
                source: std::io::Error::other(reason.clone()),
            })
    }

    /// The tensor's bytes: borrowed from the memory map (or the parsed JSON),
    /// or read into an owned buffer when the model was opened without mmap.
    pub fn bytes(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let f = &self.files[entry.file];
        if let Storage::Json(buffers) = &f.storage {
            let slot = entry.json_slot.expect("JSON entries carry their slot");
            return Ok(Cow::Borrowed(&buffers[slot]));
        }
        let (start, end) = (entry.range.0 as usize, entry.range.1 as usize);
        match self.backing(entry.file)? {
            Backing::Map(map) => {
                map.get(start..end)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| LoadError::Io {
                        path: f.path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "file shrank after it was opened",
                        ),
                    })
            }
            Backing::Read(file) => {
                let mut buf = vec![0u8; end - start];
                file.read_exact_at(&mut buf, entry.range.0)
                    .map_err(LoadError::io(&f.path))?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// Like [`Model::bytes`], and checks the stored checksum first (when
    /// there is one).
    pub fn bytes_checked(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let bytes = self.bytes(entry)?;
        if let Some(expected) = &entry.stored_sha256 {
            let actual = hex::encode(Sha256::digest(&bytes));
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
    /// reads, so that memory stays bounded however large the tensor.
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
        let handle = File::open(&file.path).map_err(LoadError::io(&file.path))?;
        let mut buf = vec![0u8; chunk.min(entry.byte_len() as usize).max(1)];
        let mut at = entry.range.0;
        while at < entry.range.1 {
            let n = buf.len().min((entry.range.1 - at) as usize);
            handle
                .read_exact_at(&mut buf[..n], at)
                .map_err(LoadError::io(&file.path))?;
            f(&buf[..n])?;
            at += n as u64;
        }
        Ok(())
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
        let mut hasher = Sha256::new();
        self.for_each_chunk(entry, CHUNK, |c| {
            hasher.update(c);
            progress(c.len() as u64);
            Ok(())
        })?;
        Ok(hex::encode(hasher.finalize()))
    }
}

/// The prefix of the `__metadata__` keys modeltool itself writes.
const RESERVED_PREFIX: &str = "modeltool.";

/// Chunk size for streaming reads.
pub const CHUNK: usize = 8 << 20;

fn open_backing(path: &Path, mmap: bool) -> std::io::Result<Backing> {
    let file = File::open(path)?;
    if !mmap {
        return Ok(Backing::Read(file));
    }
    #[expect(unsafe_code, reason = "the one memory map of modeltool")]
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes change if the
    // file is modified, and touching pages beyond a truncated end raises
    // SIGBUS. modeltool maps model files read-only and assumes, as the crate
    // docs state, that nobody modifies or truncates them while the `Model` is
    // alive. Bytes are only read through `&[u8]` views whose lifetime is
    // bound to the `Model`. If mapping fails we fall back to plain reads.
    let map = unsafe { Mmap::map(&file) };
    Ok(match map {
        Ok(map) => Backing::Map(map),
        Err(_) => Backing::Read(file),
    })
}

/// Reads a safetensors file's header only: the 8-byte length and the JSON.
pub(crate) fn read_safetensors_header(
    path: &Path,
    options: OpenOptions,
) -> Result<(ModelFile, Header)> {
    let mut file = File::open(path).map_err(LoadError::io(path))?;
    let file_len = file.metadata().map_err(LoadError::io(path))?.len();
    let mut prefix = [0u8; 8];
    let got = read_up_to(&mut file, &mut prefix).map_err(LoadError::io(path))?;
    let header_len = Header::read_len(&prefix[..got], file_len).map_err(LoadError::format(path))?;
    let mut json = vec![0u8; header_len as usize];
    file.read_exact(&mut json).map_err(LoadError::io(path))?;
    let header =
        Header::parse(&json, file_len - 8 - header_len).map_err(LoadError::format(path))?;
    let model_file = ModelFile {
        path: path.to_owned(),
        file_len,
        header_bytes: 8 + header_len,
        storage: Storage::Safetensors {
            mmap: options.mmap,
            file: OnceLock::new(),
        },
    };
    Ok((model_file, header))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
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
