//! The one error type of the loader.

use std::path::PathBuf;

use modeltool_format::text::Escaped;
use modeltool_format::{Dtype, FormatError, HeaderDamage, InvalidValue, keys};

/// Why a model could not be opened, read or written. Every message starts
/// with the file it concerns.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The operating system refused a read or write.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file's bytes are not a valid model file.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: FormatError,
    },
    /// A sharded checkpoint whose index and shards disagree.
    #[error("{}: {reason}", path.display())]
    Shards {
        /// The index file (or the shard concerned).
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// The path is neither a model file nor a folder holding one.
    #[error("{}: {reason}", path.display())]
    NotAModel {
        /// The path given.
        path: PathBuf,
        /// Why it is not a model.
        reason: String,
    },
    /// No tensor of that name.
    #[error("{}: no tensor named `{name}`", path.display())]
    NoSuchTensor {
        /// The model.
        path: PathBuf,
        /// The name asked for.
        name: String,
    },
    /// A tensor of a dtype that cannot be read as the type asked for.
    #[error("{}: tensor `{name}` is {dtype}, which cannot be read as {wanted}", path.display())]
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
    #[error("{}: tensor `{name}` is damaged: sha256 is {actual}, the file says {expected}", path.display())]
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
        "{}: header is damaged: {damage} ({} is {}, the header hashes to {})",
        path.display(), keys::HEADER_SHA256, damage.stored, damage.actual
    )]
    HeaderDamaged {
        /// The file.
        path: PathBuf,
        /// What the check found.
        damage: HeaderDamage,
    },
    /// A file that became shorter after it was opened: another process
    /// truncated it (or is rewriting it) while modeltool was reading it.
    #[error("{}: truncated while being read (expected {expected} bytes, file now has {actual})", path.display())]
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
    #[error("{}: changed since it was opened ({detail})", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
    /// A tensor holding values its dtype does not allow (a BOOL byte other
    /// than 0 or 1, [`Dtype::first_invalid`]).
    #[error("{}: tensor `{}` holds {value}", path.display(), Escaped(name))]
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
        path.display(),
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
    /// A write that would replace an input or an existing file.
    #[error("{}: {reason}", path.display())]
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
        )
    }
}

/// The loader's result type.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
