//! Open any model — a `.safetensors` file, a `.json` model file, a Hugging
//! Face sharded checkpoint (`model.safetensors.index.json` or the folder
//! holding it) — as one view: names, dtypes, shapes, metadata, architecture,
//! and each tensor's bytes. The file formats are specified in `docs/FORMAT.md`.
//!
//! Opening reads and validates headers only; its cost does not grow with the
//! size of the data. What a file is comes from its first bytes
//! ([`modeltool_format::detect`]), never from its name: a GGUF file, a
//! PyTorch checkpoint, a Git LFS pointer or an HTML page saved in place of
//! the weights is named as such ([`LoadError::NotWeights`]). Only regular
//! files are read ([`LoadError::NotRegularFile`]), and a shard must lie
//! inside the folder of its index, symlinks resolved
//! ([`LoadError::OutsideFolder`]).
//!
//! # A model, and where its bytes live
//! A [`Model`] is a list of [`Entry`]s (name, dtype, shape, stored checksum
//! and a [`Location`]: a byte range of one of its [`ModelFile`]s, or a
//! buffer it owns, as for a JSON model file whose numbers were parsed),
//! the metadata and architecture, and the byte sources behind them.
//!
//! The numbers of a JSON model file are parsed once, as the file is read,
//! into little-endian bytes with their sha256. Up to 8 MiB of them stay in
//! memory; past that, all go to an unnamed temporary file (in `TMPDIR`,
//! gone when the model is dropped or the process ends), so that an open
//! JSON model costs memory for its tensor list, not its values: converting
//! 100k small tensors (33.6 MB of values) peaks below 1.5 times those
//! values. Where no temporary file can be made, the values stay in memory.
//!
//! Adding a container (GGUF, a PyTorch zip) takes two steps: a parser in
//! `modeltool-format` that turns bytes into tensor descriptions and byte
//! ranges (with a [`modeltool_format::FileKind`] for it), and one arm in
//! `Model::open`'s match on that kind building the entries, with a new
//! [`Location`] variant if its bytes need decoding on the way. Everything
//! above the loader (inspect, verify, convert, run) works on the `Model`
//! and needs no change.
//!
//! # GGUF
//! A GGUF file (llama.cpp, Ollama, LM Studio; little-endian) opens as
//! [`ModelKind::Gguf`]: the header is read in bounded steps (a first MiB,
//! then what the parser asks for, never more than
//! [`modeltool_format::gguf::MAX_HEADER_LEN`]), never the tensor data.
//! Shapes are row-major (ggml's dimensions reversed). A tensor of a plain
//! ggml type (F32, F16, BF16, F64, I8..I64) is an entry of that dtype whose
//! bytes are a [`Location::File`] range. A quantized tensor is an entry of
//! dtype F32, the values it decodes to, with a [`Location::GgufBlocks`]:
//! [`Model::bytes`] and [`Model::for_each_chunk`] return the f32 bytes
//! `gguf.quants.dequantize` computes; [`Entry::stored_type`] and
//! [`Entry::stored_len`] say what the file holds. A type with no decoder
//! still opens (for inspection); reading its values is
//! [`LoadError::Gguf`]. Metadata values are kept as text in
//! [`ModelMetadata::user`] under `gguf.` ([`GGUF_PREFIX`]); arrays longer
//! than [`MAX_ARRAY_SHOWN`] (a vocabulary) are summarised as their type and
//! length; [`Model::gguf`] keeps the typed values and each tensor's ggml
//! type ([`GgufInfo`]). modeltool's own keys (`modeltool.sha256.<name>`,
//! `modeltool.architecture`) keep their meaning; a tensor's checksum
//! covers the bytes [`Model::bytes`] returns (the decoded f32 values for a
//! quantized tensor; the blocks for a type with no decoder), so it
//! survives a conversion to safetensors. A GGUF has no header checksum.
//! [`save::ConvertOptions::keep_quantized`] writes the blocks instead, and
//! gives them back (the original file, byte for byte, when nothing changed).
//!
//! # Files that change while they are read
//! A [`Model`] reads only through handles it opened, never through the path
//! again: a file replaced (renamed over) or deleted after [`Model::open`] is
//! still read as it was when opened, header and data alike, while its
//! handle is open. At most [`MAX_OPEN_FILES`] files of a model are open at
//! once (a checkpoint of thousands of shards works under a low `ulimit -n`);
//! a file closed for that is reopened when needed and must be the same file
//! (device and inode), with the same length and modification time, or the
//! read is [`LoadError::Changed`]. A file changed in place is detected
//! where it can be: before and after every read, and when a file is mapped,
//! its length and modification time are compared with those recorded at
//! open, and a file that shrank is reported as [`LoadError::Truncated`],
//! one that otherwise changed as [`LoadError::Changed`]. Same-length
//! rewrites that keep the modification time are caught by the stored
//! checksums, when they are checked.
//!
//! # The memory-map assumption
//! Reads are plain reads into owned buffers by default. A program may opt
//! in to memory maps by stating their assumption once ([`allow_mmap`], an
//! `unsafe fn`) and opening with [`OpenOptions::mmap`] set to `true`:
//! aligned tensors are then borrowed straight from the map. A mapped file must not be
//! truncated while bytes borrowed from its map are in use: touching the lost
//! pages raises SIGBUS. The library installs no signal handler and prints
//! nothing; a program that maps may install one and ask [`mapped_file_at`]
//! (async-signal-safe) which file a faulting address belongs to, to say so
//! in its own words (the `modeltool` binary does).
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
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(target_endian = "big")]
compile_error!(
    "modeltool-loader reads little-endian tensors in place and needs a little-endian machine"
);

mod error;
mod file;
mod gguf;
mod pytorch;
mod remote;
pub mod save;
mod shards;
mod sigbus;
pub mod size;
mod store;
mod verify;
pub mod write;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};
use modeltool_format::gguf::GgmlType;
use modeltool_format::text::Escaped;
use modeltool_format::{
    Checksum, DETECT_LEN, Dtype, FileKind, Header, HeaderSha256, JsonModel, ModelMetadata,
    TensorMeta, detect, keys,
};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::shown;
use crate::file::{Handles, open_regular};
use crate::store::{Store, StoreWriter};

pub use crate::error::{LoadError, Result};
pub use crate::file::{MAX_OPEN_FILES, ModelFile};
pub use crate::gguf::{GGUF_PREFIX, GgufInfo, MAX_ARRAY_SHOWN, value_json};
pub use crate::pytorch::{
    DROPPED_KEY, MAX_METADATA_BYTES, MAX_METADATA_VALUES, TIED_PREFIX, TorchView,
};
pub use crate::shards::{INDEX_NAME, PYTORCH_INDEX_NAME, plan_shards, shard_name};
pub use crate::sigbus::mapped_file_at;
pub use crate::verify::{
    DamagedHeader, DamagedTensor, FileHash, InvalidValues, VerifyOptions, VerifyReport,
};

/// How to open a model.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Memory-map safetensors files, once the program has opted in to maps
    /// with [`allow_mmap`] (see the crate docs, "The memory-map
    /// assumption"); until then, and when false (the default), tensors are
    /// read with plain reads into owned buffers.
    pub mmap: bool,
    /// Classes (`MODULE.NAME`) a PyTorch checkpoint's pickle may name,
    /// accepted as opaque data: never imported, made or called. Every other
    /// global a checkpoint does not need is refused, and the code-execution
    /// entry points ([`modeltool_format::pytorch::never_allowed`]) even when
    /// listed here.
    pub allow_globals: Vec<String>,
}

static MMAP_ALLOWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Lets models opened with [`OpenOptions::mmap`] be memory-mapped, for the
/// whole process. Without it the loader only reads with plain reads: a
/// library cannot promise what mapping assumes, so the program does.
///
/// ```
/// use modeltool_loader::allow_mmap;
///
/// // SAFETY: this program's model files are not truncated or rewritten
/// // while it runs (it reads files nobody else writes).
/// unsafe { allow_mmap() };
/// ```
///
/// # Safety
/// The caller promises that no file opened with `mmap: true` is truncated
/// while bytes borrowed from its map are in use: touching pages past a new
/// end raises SIGBUS, which kills the process unless the program handles it
/// (see [`mapped_file_at`]). A file rewritten in place changes bytes already
/// handed out as `&[u8]`; the stored checksums catch that only when checked.
#[expect(unsafe_code, reason = "the caller states the memory-map assumption")]
pub unsafe fn allow_mmap() {
    MMAP_ALLOWED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`allow_mmap`] was called.
pub(crate) fn mmap_allowed() -> bool {
    MMAP_ALLOWED.load(std::sync::atomic::Ordering::Relaxed)
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
    /// One GGUF file (llama.cpp, Ollama, LM Studio).
    Gguf,
    /// A PyTorch checkpoint (zip archive or legacy stream).
    Pytorch,
}

impl ModelKind {
    /// A short name for reports (`safetensors`, `json`, `sharded`, `gguf`,
    /// `pytorch`), so that nothing above the loader matches on the kinds
    /// and a new container needs no change there.
    ///
    /// ```
    /// assert_eq!(modeltool_loader::ModelKind::Gguf.name(), "gguf");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Safetensors => "safetensors",
            ModelKind::Json => "json",
            ModelKind::Sharded { .. } => "sharded",
            ModelKind::Gguf => "gguf",
            ModelKind::Pytorch => "pytorch",
        }
    }
}

/// Where a tensor's bytes live.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// The byte range `start..end` of [`Model::files`]`[file]`, read (or
    /// mapped) when asked for.
    File {
        /// Index into [`Model::files`].
        file: usize,
        /// First byte, from the start of the file.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Bytes the model made when the file was read (the numbers of a JSON
    /// model file, parsed into little-endian bytes), held in memory or in
    /// the model's temporary file (see "A model, and where its bytes live").
    Owned {
        /// Index into the model's list of them.
        buffer: usize,
        /// Its length in bytes.
        len: u64,
    },
    /// Quantized ggml blocks at `start..end` of [`Model::files`]`[file]`,
    /// dequantized to f32 when read: the entry's dtype is F32 and
    /// [`Model::bytes`] returns f32 bytes (see the crate docs, "GGUF").
    GgufBlocks {
        /// Index into [`Model::files`].
        file: usize,
        /// First byte of the blocks, from the start of the file.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// The type the blocks are stored as.
        ggml_type: GgmlType,
    },
    /// A strided view into a PyTorch storage, copied out contiguously (in
    /// `tensor.contiguous()` order, byte-swapped from a big-endian
    /// checkpoint) when read: the storage bytes the view touches are
    /// `start..end` of [`Model::files`]`[file]`, and [`Model::torch_view`]`(view)`
    /// gives its shape, strides and byte order.
    Torch {
        /// Index into [`Model::files`].
        file: usize,
        /// First storage byte the view touches, from the start of the file.
        start: u64,
        /// One past the last storage byte it touches.
        end: u64,
        /// Index for [`Model::torch_view`].
        view: usize,
        /// Bytes of the contiguous copy.
        len: u64,
    },
}

/// One tensor: its description and where its bytes are.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// Index into [`Model::files`] of the file it came from.
    pub file: usize,
    /// Where the bytes live.
    pub location: Location,
    /// The checksum the file stores for it, if any.
    pub stored_sha256: Option<Checksum>,
}

impl Entry {
    /// Bytes the tensor takes.
    /// For GGUF blocks, the bytes of the f32 values they decode to
    /// ([`Entry::stored_len`] is what the file holds).
    pub fn byte_len(&self) -> u64 {
        match self.location {
            Location::File { start, end, .. } => end - start,
            Location::Owned { len, .. } | Location::Torch { len, .. } => len,
            Location::GgufBlocks { .. } => {
                (self.meta.element_count().unwrap_or(0) as u64).saturating_mul(4)
            }
        }
    }

    /// Bytes the tensor takes in its file or buffer, as stored (quantized
    /// blocks included).
    pub fn stored_len(&self) -> u64 {
        match self.location {
            Location::GgufBlocks { start, end, .. } => end - start,
            _ => self.byte_len(),
        }
    }

    /// The ggml type of a GGUF tensor stored quantized (its dtype is the
    /// F32 it decodes to); `None` for every other tensor.
    ///
    /// ```
    /// use modeltool_format::Dtype;
    /// use modeltool_format::gguf::{GgmlType, GgufWriter, quantize};
    /// use modeltool_loader::{Model, OpenOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("q.gguf");
    /// let values: Vec<f32> = (0..64).map(|i| i as f32 / 8.0).collect();
    /// let mut w = GgufWriter::new();
    /// w.add_tensor("w", &[2, 32], GgmlType::Q8_0, quantize(GgmlType::Q8_0, &values)?)?;
    /// std::fs::write(&path, w.to_bytes()?)?;
    ///
    /// let model = Model::open(&path, OpenOptions::default())?;
    /// let w = model.entry("w")?;
    /// assert_eq!((w.meta.dtype, w.stored_type()), (Dtype::F32, Some(GgmlType::Q8_0)));
    /// assert_eq!((w.byte_len(), w.stored_len()), (64 * 4, 2 * 34));
    /// let decoded = model.tensor_f32("w")?;
    /// assert!((decoded[9] - 9.0 / 8.0).abs() < 0.01);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stored_type(&self) -> Option<GgmlType> {
        match self.location {
            Location::GgufBlocks { ggml_type, .. } => Some(ggml_type),
            _ => None,
        }
    }

    /// Where the bytes start in their file, when they are a range of one.
    pub fn offset(&self) -> Option<u64> {
        match self.location {
            Location::File { start, .. } | Location::GgufBlocks { start, .. } => Some(start),
            Location::Owned { .. } | Location::Torch { .. } => None,
        }
    }
}

/// Where a tensor's bytes are in the model's store, with their sha256
/// computed while the file was read.
#[derive(Debug)]
struct OwnedTensor {
    start: u64,
    /// The digest's bytes, not its 64 hex digits: 80 bytes less a tensor.
    sha256: [u8; 32],
}

/// Something about an opened model that is not fatal but is not right
/// either; `verify` fails on any.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelWarning {
    /// The index's `metadata.total_size` disagrees with the shards.
    TotalSizeMismatch {
        /// The index file.
        index: PathBuf,
        /// What the index says.
        stated: u64,
        /// The bytes of tensor data the shards hold.
        actual: u64,
    },
    /// The index's `metadata.total_size` is not a byte count.
    TotalSizeNotACount {
        /// The index file.
        index: PathBuf,
        /// Its value, as JSON.
        value: String,
    },
}

impl std::fmt::Display for ModelWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelWarning::TotalSizeMismatch {
                index,
                stated,
                actual,
            } => write!(
                f,
                "{}: metadata.total_size is {stated} but the shards hold {actual} bytes of tensor data",
                shown(index)
            ),
            ModelWarning::TotalSizeNotACount { index, value } => write!(
                f,
                "{}: metadata.total_size is {}, not a byte count",
                shown(index),
                Escaped(value)
            ),
        }
    }
}

/// An open model: every tensor's description, its metadata, and access to
/// the bytes.
#[derive(Debug)]
pub struct Model {
    path: PathBuf,
    kind: ModelKind,
    files: Vec<ModelFile>,
    /// The tensors of [`Location::Owned`], indexed by its `buffer`, and
    /// the store their bytes are in.
    owned: Vec<OwnedTensor>,
    store: Store,
    entries: Vec<Entry>,
    /// Entry indices sorted by name: 4 bytes a tensor instead of a second
    /// copy of every name.
    by_name: Vec<u32>,
    metadata: ModelMetadata,
    orphan_checksums: Vec<String>,
    warnings: Vec<ModelWarning>,
    /// Why the checksum set is incomplete, when it is.
    incomplete: Option<String>,
    /// PyTorch views, shared storages and zip directories.
    torch: pytorch::TorchState,
    /// A GGUF file's header as it is (metadata values, ggml types).
    gguf: Option<Box<GgufInfo>>,
}

impl Model {
    fn empty(path: &Path, kind: ModelKind) -> Model {
        Model {
            path: path.to_owned(),
            kind,
            files: Vec::new(),
            owned: Vec::new(),
            store: Store::default(),
            entries: Vec::new(),
            by_name: Vec::new(),
            metadata: ModelMetadata::default(),
            orphan_checksums: Vec::new(),
            warnings: Vec::new(),
            incomplete: None,
            torch: Default::default(),
            gguf: None,
        }
    }

    /// Opens a safetensors file, a GGUF file, a modeltool JSON model file,
    /// a `model.safetensors.index.json`, or a folder holding one of these
    /// (the index first, else a single `.safetensors` file, else a single
    /// `.gguf` file that is its only model file). What a file is comes from
    /// its first bytes, not its name.
    ///
    /// A path that is a remote address opens the model over HTTP with
    /// range requests: an `https://` or `http://` URL of a file or of an
    /// index, or `hf://ORG/REPO[@REVISION][/PATH]` on the Hugging Face Hub
    /// (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_OFFLINE` honoured;
    /// see `docs/REMOTE.md`).
    pub fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Model> {
        let path = path.as_ref();
        if let Some(address) = path.to_str().and_then(remote::Address::parse) {
            let address = address.map_err(|reason| LoadError::Remote {
                path: path.to_owned(),
                reason,
            })?;
            return remote::open(path, address, options);
        }
        let meta = std::fs::metadata(path).map_err(LoadError::io(path))?;
        if meta.is_dir() {
            return Model::open_dir(path, options);
        }
        Model::open_file(path, options)
    }

    /// Opens a path that must be a regular file, by what its first bytes say.
    fn open_file(path: &Path, options: OpenOptions) -> Result<Model> {
        let (file, meta) = open_regular(path)?;
        let head = read_head(&file, path)?;
        let kind = detect(&head);
        if kind
            == (FileKind::Gguf {
                byte_swapped: false,
            })
        {
            let file = ModelFile::new(path, path, file, &meta, &Handles::new(), false);
            return gguf::open(path, file);
        }
        let named_as = |ext: &str| path.to_string_lossy().ends_with(ext);
        let handles = Handles::new();
        match kind {
            FileKind::Safetensors => {
                let file = ModelFile::new(path, path, file, &meta, &handles, options.mmap);
                Model::open_safetensors(path, file)
            }
            FileKind::JsonModel => Model::open_json(path, file, &meta, &handles),
            FileKind::Zip | FileKind::PytorchLegacy | FileKind::Tar => {
                let container = modeltool_format::pytorch::sniff(&head).map_err(|source| {
                    LoadError::Pytorch {
                        path: path.to_owned(),
                        source,
                    }
                })?;
                let file = ModelFile::new(path, path, file, &meta, &handles, options.mmap);
                pytorch::open(path, file, container, &options)
            }
            FileKind::ShardIndex => shards::open_index_within(path, &file, options, None),
            // JSON of another kind: the reader its name asks for says
            // precisely what is wrong with it.
            FileKind::Json if named_as(".index.json") => {
                shards::open_index_within(path, &file, options, None)
            }
            FileKind::Json if named_as(".json") => Model::open_json(path, file, &meta, &handles),
            // Protobuf has no magic number: the name is the better hint.
            FileKind::Binary if named_as(".onnx") => Err(LoadError::NotWeights {
                path: path.to_owned(),
                kind: FileKind::Onnx,
            }),
            // Damaged safetensors (a length past the cap or the end, a
            // file cut short): its parser names the damage.
            FileKind::Binary if named_as(".safetensors") || head.len() < 9 => {
                let file = ModelFile::new(path, path, file, &meta, &handles, options.mmap);
                Model::open_safetensors(path, file)
            }
            kind => Err(LoadError::NotWeights {
                path: path.to_owned(),
                kind,
            }),
        }
    }

    fn open_dir(dir: &Path, options: OpenOptions) -> Result<Model> {
        for name in [INDEX_NAME, PYTORCH_INDEX_NAME] {
            let index = dir.join(name);
            if std::fs::symlink_metadata(&index).is_ok() {
                return Model::open_file(&index, options);
            }
        }
        let mut single = Vec::new();
        let mut others = Vec::new();
        for e in std::fs::read_dir(dir).map_err(LoadError::io(dir))? {
            let Ok(e) = e else { continue };
            let p = e.path();
            let ext = p
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if ext == "safetensors" {
                single.push(p);
            } else if MODEL_EXTENSIONS.contains(&ext.as_str()) {
                others.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        // A folder holding one GGUF file and no other model file is that file.
        if single.is_empty()
            && others.len() == 1
            && others[0].to_ascii_lowercase().ends_with(".gguf")
        {
            return Model::open_file(&dir.join(&others[0]), options);
        }
        match single.len() {
            1 => Model::open_file(&single.remove(0), options),
            0 if !others.is_empty() => {
                others.sort();
                let n = others.len();
                let mut list: Vec<String> = others
                    .iter()
                    .take(5)
                    .map(|o| format!("{}", Escaped(o)))
                    .collect();
                if n > 5 {
                    list.push(format!("and {} more", n - 5));
                }
                Err(LoadError::NotAModel {
                    path: dir.to_owned(),
                    reason: format!(
                        "folder holds no {INDEX_NAME} and no .safetensors file, only model files \
                         of other formats ({}); {}",
                        list.join(", "),
                        error::READS
                    ),
                })
            }
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

    fn open_safetensors(path: &Path, file: ModelFile) -> Result<Model> {
        let (file, mut header) = read_safetensors_header(file)?;
        let mut model = Model::empty(path, ModelKind::Safetensors);
        let metadata = ModelMetadata::from_safetensors(std::mem::take(&mut header.metadata))
            .map_err(LoadError::format(path))?;
        let ModelMetadata {
            user,
            checksums,
            architecture,
        } = metadata;
        model.files.push(file);
        model.add_entries(0, header, &checksums);
        model.metadata = ModelMetadata {
            user,
            checksums: Default::default(),
            architecture,
        };
        model.finish(&checksums)?;
        Ok(model)
    }

    fn open_json(
        path: &Path,
        handle: std::fs::File,
        meta: &std::fs::Metadata,
        handles: &Arc<Handles>,
    ) -> Result<Model> {
        // Each tensor goes to the store as it is read: the values are never
        // all in memory at once, whatever the file holds.
        let mut model = Model::empty(path, ModelKind::Json);
        let mut store = StoreWriter::default();
        let json = JsonModel::read_file_each(&handle, |t| model.take_json_tensor(&mut store, t))
            .map_err(LoadError::format(path))?;
        let model_file = ModelFile::new(path, path, handle, meta, handles, false);
        model.finish_json(json, store, model_file)
    }

    /// A JSON model file, parsed, whose bytes `model_file` holds.
    fn from_json(path: &Path, mut json: JsonModel, model_file: ModelFile) -> Result<Model> {
        let mut model = Model::empty(path, ModelKind::Json);
        let mut store = StoreWriter::default();
        for t in std::mem::take(&mut json.tensors) {
            model
                .take_json_tensor(&mut store, t)
                .map_err(LoadError::format(path))?;
        }
        model.finish_json(json, store, model_file)
    }

    /// Adds a tensor read from a JSON model file; its bytes go to `store`.
    fn take_json_tensor(
        &mut self,
        store: &mut StoreWriter,
        t: modeltool_format::JsonTensor,
    ) -> modeltool_format::Result<()> {
        let start = store.push(&t.data)?;
        self.entries.push(Entry {
            meta: t.meta,
            file: 0,
            location: Location::Owned {
                buffer: self.owned.len(),
                len: t.data.len() as u64,
            },
            stored_sha256: t.sha256,
        });
        self.owned.push(OwnedTensor {
            start,
            sha256: t.actual_sha256,
        });
        Ok(())
    }

    /// The model of a JSON model file whose tensors were taken.
    fn finish_json(
        mut self,
        json: JsonModel,
        store: StoreWriter,
        mut model_file: ModelFile,
    ) -> Result<Model> {
        let path = self.path.clone();
        model_file.header_bytes = model_file.file_len;
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
                path,
                reason: format!("metadata key `{}` is modeltool's own: {why}", Escaped(key)),
            });
        }
        self.store = store.finish().map_err(LoadError::io(&path))?;
        self.files.push(model_file);
        self.metadata = ModelMetadata {
            user: json.metadata,
            checksums: Default::default(),
            architecture: json.architecture,
        };
        self.finish(&BTreeMap::new())?;
        Ok(self)
    }

    /// Moves a header's tensors into entries of file `file` (moved, not
    /// copied: a header may describe a million tensors).
    pub(crate) fn add_entries(
        &mut self,
        file: usize,
        header: Header,
        checksums: &BTreeMap<String, Checksum>,
    ) {
        let data = header.data_start();
        let mut tensors = header.tensors;
        self.entries.reserve(tensors.len());
        // Taken from the back a slice at a time, the header's list giving
        // back its memory as the entries take theirs: the two lists are
        // never both whole (for a header of a million tensors, a third of
        // the peak). The reversal keeps the entries in file order.
        tensors.reverse();
        let slice = tensors.len().div_ceil(16).max(1 << 12);
        while !tensors.is_empty() {
            let rest = tensors.len().saturating_sub(slice);
            for t in tensors.drain(rest..).rev() {
                let (start, end) = (data + t.data_offsets.0, data + t.data_offsets.1);
                let stored_sha256 = checksums.get(&t.meta.name).copied();
                self.entries.push(Entry {
                    meta: t.meta,
                    file,
                    location: Location::File { file, start, end },
                    stored_sha256,
                });
            }
            tensors.shrink_to_fit();
        }
    }

    /// Builds the name index (refusing a name held twice), and records the
    /// checksums that name no tensor and whether the set is complete.
    pub(crate) fn finish(&mut self, checksums: &BTreeMap<String, Checksum>) -> Result<()> {
        let n = u32::try_from(self.entries.len()).map_err(|_| LoadError::NotAModel {
            path: self.path.clone(),
            reason: "more than 4294967295 tensors".into(),
        })?;
        let mut order: Vec<u32> = (0..n).collect();
        let entries = &self.entries;
        order.par_sort_unstable_by(|&a, &b| {
            entries[a as usize]
                .meta
                .name
                .cmp(&entries[b as usize].meta.name)
        });
        if let Some(w) = order
            .windows(2)
            .find(|w| entries[w[0] as usize].meta.name == entries[w[1] as usize].meta.name)
        {
            let (a, b) = (&entries[w[0] as usize], &entries[w[1] as usize]);
            if self.kind == ModelKind::Json {
                return Err(LoadError::format(&self.path)(
                    modeltool_format::FormatError::DuplicateTensor {
                        name: a.meta.name.clone(),
                    },
                ));
            }
            let name = |e: &Entry| {
                let p = &self.files[e.file].path;
                shown(Path::new(p.file_name().unwrap_or(p.as_os_str())))
            };
            return Err(LoadError::Shards {
                path: self.path.clone(),
                reason: format!(
                    "tensor `{}` is in two shards: `{}` and `{}`",
                    Escaped(&a.meta.name),
                    name(a.min_by_file(b)),
                    name(a.max_by_file(b)),
                ),
            });
        }
        self.by_name = order;
        for name in checksums.keys() {
            if self.find(name).is_none() {
                self.orphan_checksums.push(name.clone());
            }
        }
        let missing = self.missing_checksums();
        self.incomplete = if let Some(first) = missing.first() {
            let with = self.entries.len() - missing.len();
            let why = if with == 0 {
                "while its file has a header checksum (modeltool writes both)".to_owned()
            } else {
                format!(
                    "while {with} other tensor{} ha{} one",
                    if with == 1 { "" } else { "s" },
                    if with == 1 { "s" } else { "ve" }
                )
            };
            let more = match missing.len() {
                1 => String::new(),
                n => format!(" (and {} more without)", n - 1),
            };
            Some(format!(
                "tensor `{}` has no checksum {why}{more}",
                Escaped(&first.meta.name)
            ))
        } else {
            self.orphan_checksums.first().map(|o| {
                format!(
                    "a checksum names `{}`, which the model does not hold",
                    Escaped(o)
                )
            })
        };
        Ok(())
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.by_name
            .binary_search_by(|&i| self.entries[i as usize].meta.name.as_str().cmp(name))
            .ok()
            .map(|k| self.by_name[k] as usize)
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
        self.find(name)
            .map(|i| &self.entries[i])
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

    /// A GGUF file's header as the file has it: typed metadata values
    /// (arrays whole) and each tensor's ggml type. `None` for other kinds.
    pub fn gguf(&self) -> Option<&GgufInfo> {
        self.gguf.as_deref()
    }

    /// What is not right about the model but did not stop it from opening
    /// (an index whose `total_size` disagrees with its shards). `verify`
    /// fails on any; `inspect` shows them.
    pub fn warnings(&self) -> &[ModelWarning] {
        &self.warnings
    }

    /// Names that have a stored checksum but no tensor: a sign of damage.
    pub fn orphan_checksums(&self) -> &[String] {
        &self.orphan_checksums
    }

    /// Tensors without a stored checksum where one was to be expected,
    /// another sign of damage (a checksum key removed or changed, so that
    /// its tensor seems to have none): some other tensor of the model has a
    /// checksum, or some file of the model carries `modeltool.header_sha256`
    /// (modeltool writes both or neither, for every tensor of every file).
    /// Empty when no tensor has a checksum and no file a header checksum:
    /// such a model is only unchecked.
    pub fn missing_checksums(&self) -> Vec<&Entry> {
        let any = self.entries.iter().any(|e| e.stored_sha256.is_some())
            || self
                .files
                .iter()
                .any(|f| f.header_sha256 != HeaderSha256::Absent);
        if !any {
            return Vec::new();
        }
        self.entries
            .iter()
            .filter(|e| e.stored_sha256.is_none())
            .collect()
    }

    /// [`LoadError::ChecksumsIncomplete`] when the model carries modeltool
    /// checksums but not for every tensor, or carries one for a tensor it
    /// does not hold ([`Model::missing_checksums`],
    /// [`Model::orphan_checksums`]). [`Model::bytes_checked`] applies it to
    /// every tensor; a writer that keeps checksums calls it first.
    pub fn check_checksum_set(&self) -> Result<()> {
        match &self.incomplete {
            Some(detail) => Err(LoadError::ChecksumsIncomplete {
                path: self.path.clone(),
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
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

    /// The tensor's bytes, unchecked: borrowed from the memory map (when
    /// the model was opened with mmap) or the model's own buffer, or read
    /// into an owned buffer. For a deliberate edit's new checksums; to use
    /// the values, prefer [`Model::bytes_checked`].
    ///
    /// The file is checked against its length and modification time at
    /// open first ([`ModelFile::check_unchanged`]); bytes borrowed from the
    /// map must not be used after another process truncates the file (see
    /// the crate docs).
    pub fn bytes(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        let (file, start, end) = match entry.location {
            Location::Owned { buffer, len } => {
                return self
                    .store
                    .get(self.owned[buffer].start, len)
                    .map_err(LoadError::io(&self.path));
            }
            Location::File { file, start, end } => (&self.files[file], start, end),
            Location::GgufBlocks {
                file, ggml_type, ..
            } => {
                let buf = self.stored_bytes(entry)?;
                let values = modeltool_format::gguf::dequantize_to_vec(ggml_type, &buf)
                    .map_err(LoadError::gguf(&self.files[file].path))?;
                return Ok(Cow::Owned(bytemuck::cast_slice(&values).to_vec()));
            }
            Location::Torch {
                file,
                start,
                end,
                view,
                len,
            } => {
                let mut out = Vec::with_capacity(len as usize);
                self.torch_copy(file, start, end, view, &mut |b| {
                    out.extend_from_slice(b);
                    Ok(())
                })?;
                return Ok(Cow::Owned(out));
            }
        };
        match file.map() {
            Some(map) => {
                // After mapping, not before: a file truncated before the map
                // was made is caught here, before any page is touched.
                file.check_unchanged()?;
                map.get(start as usize..end as usize)
                    .map(Cow::Borrowed)
                    .ok_or_else(|| file.truncated(map.len() as u64))
            }
            None => {
                file.check_unchanged()?;
                let mut buf = vec![0u8; (end - start) as usize];
                file.read_exact_at(&mut buf, start)?;
                file.check_unchanged()?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// The tensor's bytes as its file stores them: the raw blocks of a
    /// quantized GGUF tensor ([`Location::GgufBlocks`]), otherwise the same
    /// as [`Model::bytes`].
    pub fn stored_bytes(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        match entry.location {
            Location::GgufBlocks {
                file, start, end, ..
            } => {
                let file = &self.files[file];
                file.check_unchanged()?;
                let mut buf = vec![0u8; (end - start) as usize];
                file.read_exact_at(&mut buf, start)?;
                file.check_unchanged()?;
                Ok(Cow::Owned(buf))
            }
            _ => self.bytes(entry),
        }
    }

    /// The bytes before the tensor data of file `index` (a GGUF file's
    /// header and padding), read through the handle opened.
    pub(crate) fn header_of(&self, index: usize) -> Result<Vec<u8>> {
        let file = &self.files[index];
        let mut buf = vec![0u8; file.header_bytes as usize];
        file.read_exact_at(&mut buf, 0)?;
        file.check_unchanged()?;
        Ok(buf)
    }

    /// Like [`Model::bytes`], with every check a reader of the values
    /// needs: the header of the tensor's file matches its checksum (a
    /// changed dtype or shape leaves the bytes intact), the model's
    /// checksum set is complete ([`Model::check_checksum_set`]), and the bytes match the tensor's stored checksum, when
    /// there is one. Failures are check failures
    /// ([`LoadError::is_check_failure`]).
    pub fn bytes_checked(&self, entry: &Entry) -> Result<Cow<'_, [u8]>> {
        self.files[entry.file].check_header()?;
        self.check_checksum_set()?;
        let bytes = self.bytes(entry)?;
        if let Some(expected) = &entry.stored_sha256 {
            let actual = match entry.location {
                Location::Owned { buffer, .. } => Checksum(self.owned[buffer].sha256),
                Location::File { .. } | Location::GgufBlocks { .. } | Location::Torch { .. } => {
                    Checksum::of(&bytes)
                }
            };
            if actual != *expected {
                return Err(LoadError::ChecksumMismatch {
                    path: self.files[entry.file].path.clone(),
                    name: entry.meta.name.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok(bytes)
    }

    /// The named tensor as f32 values, unchecked ([`Model::bytes`]).
    /// Borrowed (`Cow::Borrowed`) when the tensor is F32 and its bytes are
    /// aligned in a map or buffer; otherwise copied, or converted from F16,
    /// BF16 or F64.
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
        match entry.location {
            Location::Owned { buffer, len } => {
                let at = (self.owned[buffer].start, len);
                self.store.chunks(at, chunk, f, LoadError::io(&self.path))
            }
            Location::File { file, start, end } => {
                self.files[file].read_chunks((start, end), chunk, f)
            }
            Location::GgufBlocks {
                file,
                start,
                end,
                ggml_type,
            } => {
                // Whole blocks per read, so each decodes on its own.
                let tsize = ggml_type.type_size() as usize;
                let chunk = (chunk / 4 / ggml_type.block_size() as usize).max(1) * tsize;
                let path = &self.files[file].path;
                let mut values = Vec::new();
                self.files[file].read_chunks((start, end), chunk, |c| {
                    values.clear();
                    values.resize(c.len() / tsize * ggml_type.block_size() as usize, 0f32);
                    modeltool_format::gguf::dequantize(ggml_type, c, &mut values)
                        .map_err(LoadError::gguf(path))?;
                    f(bytemuck::cast_slice(&values))
                })
            }
            Location::Torch {
                file,
                start,
                end,
                view,
                ..
            } => self.torch_copy(file, start, end, view, &mut f),
        }
    }

    /// [`Model::for_each_chunk`] over the bytes as stored: the raw blocks
    /// of a quantized GGUF tensor ([`Model::stored_bytes`]).
    pub fn for_each_stored_chunk(
        &self,
        entry: &Entry,
        chunk: usize,
        f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        match entry.location {
            Location::GgufBlocks {
                file, start, end, ..
            } => self.files[file].read_chunks((start, end), chunk, f),
            _ => self.for_each_chunk(entry, chunk, f),
        }
    }

    /// The sha256 of a tensor's bytes, read in bounded chunks.
    pub fn sha256(&self, entry: &Entry) -> Result<String> {
        if let Some(sum) = self.known_sha256(entry) {
            return Ok(hex::encode(sum));
        }
        self.hash_entry(entry, &|_| {}, &mut |_| {})
    }

    /// The sha256 of a tensor the model parsed itself (a JSON model
    /// file's), computed as the file was read; `None` for bytes in a file,
    /// which only reading them can tell.
    pub(crate) fn known_sha256(&self, entry: &Entry) -> Option<[u8; 32]> {
        match entry.location {
            Location::Owned { buffer, .. } => Some(self.owned[buffer].sha256),
            _ => None,
        }
    }

    /// Hashes every tensor, in parallel across cores, with bounded memory;
    /// `progress` is called with byte counts as they are done.
    pub fn sha256_all(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<Vec<String>> {
        self.entries
            .par_iter()
            .map(|e| self.hash_entry(e, progress, &mut |_| {}))
            .collect()
    }

    /// Hashes a tensor, handing each chunk also to `look` (to find invalid
    /// values on the same pass).
    pub(crate) fn hash_entry(
        &self,
        entry: &Entry,
        progress: &(dyn Fn(u64) + Sync),
        look: &mut dyn FnMut(&[u8]),
    ) -> Result<String> {
        if let Location::Owned { buffer, len } = entry.location {
            // Hashed as the file was read.
            look(&self.bytes(entry)?);
            progress(len);
            return Ok(hex::encode(self.owned[buffer].sha256));
        }
        let mut hasher = Sha256::new();
        if let Location::GgufBlocks { ggml_type, .. } = entry.location {
            if !modeltool_format::gguf::can_dequantize(ggml_type) {
                // No values to hash: the checksum covers the blocks.
                self.for_each_stored_chunk(entry, CHUNK, |c| {
                    hasher.update(c);
                    progress(c.len() as u64);
                    Ok(())
                })?;
                return Ok(hex::encode(hasher.finalize()));
            }
        }
        self.for_each_chunk(entry, CHUNK, |c| {
            hasher.update(c);
            look(c);
            progress(c.len() as u64);
            Ok(())
        })?;
        Ok(hex::encode(hasher.finalize()))
    }
}

impl Entry {
    fn min_by_file<'a>(&'a self, other: &'a Entry) -> &'a Entry {
        if self.file <= other.file { self } else { other }
    }
    fn max_by_file<'a>(&'a self, other: &'a Entry) -> &'a Entry {
        if self.file <= other.file { other } else { self }
    }
}

/// Extensions of model files modeltool does not read, named when a folder
/// holds only those.
const MODEL_EXTENSIONS: &[&str] = &[
    "bin", "pt", "pth", "ckpt", "gguf", "ggml", "onnx", "h5", "msgpack", "pkl", "npz", "tflite",
];

/// Chunk size for streaming reads.
pub const CHUNK: usize = 8 << 20;

/// The first [`DETECT_LEN`] bytes of a file (fewer if it is shorter).
fn read_head(file: &std::fs::File, path: &Path) -> Result<Vec<u8>> {
    let mut head = vec![0u8; DETECT_LEN];
    let mut got = 0;
    while got < head.len() {
        match file.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LoadError::io(path)(e)),
        }
    }
    head.truncate(got);
    Ok(head)
}

/// Reads a safetensors file's header only: the 8-byte length and the JSON.
pub(crate) fn read_safetensors_header(mut file: ModelFile) -> Result<(ModelFile, Header)> {
    let path = file.path.clone();
    let file_len = file.file_len;
    let mut prefix = [0u8; 8];
    let got = (file_len.min(8)) as usize;
    file.read_exact_at(&mut prefix[..got], 0)?;
    let header_len =
        Header::read_len(&prefix[..got], file_len).map_err(LoadError::format(&path))?;
    let mut json = vec![0u8; header_len as usize];
    file.read_exact_at(&mut json, 8)?;
    let header =
        Header::parse(&json, file_len - 8 - header_len).map_err(LoadError::format(&path))?;
    file.header_bytes = 8 + header_len;
    file.header_sha256 = header
        .check_header_sha256(&json)
        .map_err(LoadError::format(&path))?;
    Ok((file, header))
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
