//! The one error type of the loader.

use std::path::{Path, PathBuf};

use modeltool_format::gguf::GgufError;
use modeltool_format::text::Escaped;
use modeltool_format::{Dtype, FileKind, FormatError, HeaderDamage, InvalidValue, keys};

/// What a user runs to write fresh checksums after a deliberate edit.
pub(crate) const REHASH_HINT: &str =
    "if the change was deliberate, `modeltool rehash MODEL` writes fresh checksums";

/// A path as shown in a message: escaped, since a shard's name comes from
/// the index file and may hold terminal control characters.
pub(crate) fn shown(path: &Path) -> String {
    modeltool_format::text::escape(&path.to_string_lossy()).into_owned()
}

/// The formats modeltool reads, for messages about those it does not.
pub(crate) const READS: &str = "modeltool reads safetensors, GGUF (little-endian), modeltool JSON model files and Hugging Face \
     sharded checkpoints";

fn not_weights(path: &Path, kind: &FileKind) -> String {
    let p = shown(path);
    match kind {
        FileKind::GitLfsPointer => {
            format!("{p} is a Git LFS pointer, not the weights: run `git lfs pull`")
        }
        FileKind::HfConfig => format!(
            "{p} is a Hugging Face model config, not weights: the weights are model.safetensors \
             (or model.safetensors.index.json and its shards) in the same folder"
        ),
        FileKind::Html => format!(
            "{p} is an HTML page saved instead of the weights: download the file itself \
             (on the Hub, the `resolve/` link, not the `blob/` page)"
        ),
        FileKind::Empty => format!("{p} is empty (0 bytes), not a model file"),
        FileKind::ShardIndex => format!(
            "{p} is a Hugging Face shard index; open it as `model.safetensors.index.json` \
             or open the folder holding it"
        ),
        other => format!("{p} is {other}; {READS}"),
    }
}

/// Why a model could not be opened, read or written. Every message starts
/// with the file it concerns.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The operating system refused a read or write.
    #[error("{}: {source}", shown(path))]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file's bytes are not a valid model file.
    #[error("{}: {}", shown(path), Escaped(&source.to_string()))]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
    /// A sharded checkpoint whose index and shards disagree.
    #[error("{}: {reason}", shown(path))]
    Shards {
        /// The index file (or the shard concerned).
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// The path is neither a model file nor a folder holding one.
    #[error("{}: {reason}", shown(path))]
    NotAModel {
        /// The path given.
        path: PathBuf,
        /// Why it is not a model.
        reason: String,
    },
    /// No tensor of that name.
    #[error("{}: no tensor named `{}`", shown(path), Escaped(name))]
    NoSuchTensor {
        /// The model.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// A tensor of a dtype that cannot be read as the type asked for.
    #[error(
        "{}: tensor `{}` is {dtype}, which cannot be read as {wanted}",
        shown(path),
        Escaped(name)
    )]
    WrongDtype {
        /// The model.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// The type asked for.
        wanted: &'static str,
    },
    /// A tensor whose bytes do not match the checksum stored for it.
    #[error(
        "{}: tensor `{}` is damaged: sha256 is {actual}, the file says {expected} ({REHASH_HINT})",
        shown(path),
        Escaped(name)
    )]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The stored checksum.
        expected: String,
        /// The checksum of the bytes.
        actual: String,
    },
    /// A safetensors header that does not match its
    /// `modeltool.header_sha256`: a dtype, shape, offset, checksum or other
    /// metadata changed since the file was written.
    #[error(
        "{}: header is damaged: {} ({} is {}, the header hashes to {}; {REHASH_HINT})",
        shown(path), Escaped(&damage.to_string()), keys::HEADER_SHA256,
        Escaped(&damage.stored), Escaped(&damage.actual)
    )]
    HeaderDamaged {
        /// The file.
        path: PathBuf,
        /// What the check found.
        damage: HeaderDamage,
    },
    /// A file that became shorter after it was opened: another process
    /// truncated it (or is rewriting it) while modeltool was reading it.
    #[error(
        "{}: truncated while being read (expected {expected} bytes, file now has {actual})",
        shown(path)
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length when it was opened.
        expected: u64,
        /// Its length now.
        actual: u64,
    },
    /// A file whose length or modification time differs from when it was
    /// opened: something wrote to it while modeltool was reading it.
    #[error("{}: changed since it was opened ({detail})", shown(path))]
    Changed {
        /// The file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A remote model (an `https://`, `http://` or `hf://` address) that
    /// could not be fetched: refused, not found, or a server that failed
    /// after the retries (see `docs/REMOTE.md`).
    #[error("{}: {reason}", shown(path))]
    Remote {
        /// The address of the file.
        path: PathBuf,
        /// What went wrong (text from the server already escaped).
        reason: String,
    },
    /// A tensor holding values its dtype does not allow (a BOOL byte other
    /// than 0 or 1, [`Dtype::first_invalid`]).
    #[error("{}: tensor `{}` holds {value}", shown(path), Escaped(name))]
    InvalidValue {
        /// The file holding it.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The first invalid value and how many there are.
        value: InvalidValue,
    },
    /// A cast that would turn finite values into infinities: too large for
    /// the target dtype.
    #[error(
        "{}: {values} value{} in {} tensor{} (first {}) {} too large for {dtype} (largest magnitude {largest:.3e}) and would become infinite; nothing was written (--allow-overflow writes them as infinities)",
        shown(path),
        if *values == 1 { "" } else { "s" },
        tensors.len(),
        if tensors.len() == 1 { "" } else { "s" },
        tensors.iter().take(3).map(|t| format!("`{}`", Escaped(t))).collect::<Vec<_>>().join(", "),
        if *values == 1 { "is" } else { "are" },
    )]
    CastOverflow {
        /// The output.
        path: PathBuf,
        /// The target dtype.
        dtype: Dtype,
        /// The tensors with values that overflow, in file order.
        tensors: Vec<String>,
        /// How many values overflow.
        values: u64,
        /// The largest magnitude among them.
        largest: f64,
    },
    /// A path that names something other than a regular file (a FIFO, a
    /// device, a socket): model files and shards are only read from
    /// regular files, so that nothing blocks forever or reads endless bytes.
    #[error("{}: {what}, not a regular file", shown(path))]
    NotRegularFile {
        /// The path.
        path: PathBuf,
        /// What it is instead ("a FIFO", "a character device"...).
        what: &'static str,
    },
    /// A file whose first bytes say it is something modeltool does not read
    /// as weights (a GGUF file, a PyTorch checkpoint, a Git LFS pointer, an
    /// HTML page, a model config...). The message says what it is.
    #[error("{}", not_weights(path, kind))]
    NotWeights {
        /// The file.
        path: PathBuf,
        /// What its first bytes say it is.
        kind: FileKind,
    },
    /// A PyTorch checkpoint that is damaged, or whose pickle would have
    /// called something it does not need (the message names it; nothing
    /// was imported or called).
    #[error("{}: {source}", shown(path))]
    Pytorch {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (strings from the file are escaped).
        source: modeltool_format::pytorch::PytorchError,
    },
    /// A shard whose real path (symlinks resolved) lies outside the folder
    /// of its index: the checkpoint folder is the boundary of what is read.
    #[error(
        "{}: shard `{}` resolves to {}, outside the checkpoint folder {}",
        shown(index),
        Escaped(shard),
        shown(resolved),
        shown(folder)
    )]
    OutsideFolder {
        /// The index file.
        index: PathBuf,
        /// The shard's name as the index lists it.
        shard: String,
        /// Where it really is.
        resolved: PathBuf,
        /// The checkpoint folder (resolved).
        folder: PathBuf,
    },
    /// A model that carries modeltool checksums, but not for every tensor
    /// (or whose checksums name tensors it does not hold): modeltool writes
    /// them for every tensor and header, so a partial set is damage (a
    /// removed or renamed checksum key hides an edited tensor).
    #[error(
        "{}: checksums are incomplete: {detail}; modeltool writes a checksum for every tensor, \
         so a missing one is damage ({REHASH_HINT})",
        shown(path)
    )]
    ChecksumsIncomplete {
        /// The model.
        path: PathBuf,
        /// Which tensor lacks one (or which checksum has no tensor), escaped.
        detail: String,
    },
    /// A GGUF file whose header is damaged or hostile, or whose tensor
    /// data cannot be decoded (a type with no decoder).
    #[error("{}: {}", shown(path), Escaped(&source.to_string()))]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its offset or tensor index.
        source: GgufError,
    },
    /// A setting that cannot be honoured (a shard size that is not a size,
    /// a shard size for a single-file output).
    #[error("{message}")]
    Usage {
        /// What is wrong, naming the setting.
        message: String,
    },
    /// An output name that says no kind modeltool writes (`out.pt`, `-`,
    /// a folder of other files): see [`crate::save::OutputKind::for_path`].
    #[error("{}: {reason}; {}", shown(path), crate::save::OutputKind::ACCEPTED)]
    OutputKind {
        /// The output path.
        path: PathBuf,
        /// Why it names no kind.
        reason: String,
    },
    /// A write that would replace an input or an existing file.
    #[error("{}: {reason}", shown(path))]
    Refused {
        /// The output path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LoadError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> LoadError {
        let path = path.into();
        move |source| LoadError::Io { path, source }
    }

    pub(crate) fn gguf(path: impl Into<PathBuf>) -> impl FnOnce(GgufError) -> LoadError {
        let path = path.into();
        move |source| LoadError::Gguf { path, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>) -> impl FnOnce(FormatError) -> LoadError {
        let path = path.into();
        move |source| LoadError::Format { path, source }
    }

    /// Whether this is a failed check (damaged data) rather than unreadable
    /// or malformed input; command-line tools exit 1 for these.
    pub fn is_check_failure(&self) -> bool {
        matches!(
            self,
            LoadError::ChecksumMismatch { .. }
                | LoadError::HeaderDamaged { .. }
                | LoadError::InvalidValue { .. }
                | LoadError::ChecksumsIncomplete { .. }
        )
    }
}

/// The loader's result type.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
