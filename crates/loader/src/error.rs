//! The one error type of the loader.

use std::path::PathBuf;

use modeltool_format::{Dtype, FormatError, HeaderDamage, keys};

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
            LoadError::ChecksumMismatch { .. } | LoadError::HeaderDamaged { .. }
        )
    }
}

/// The loader's result type.
pub type Result<T, E = LoadError> = std::result::Result<T, E>;
