//! The one error type of the format crate.

use crate::Dtype;
use crate::json_error::JsonError;
use crate::text::{Escaped, cut};

/// Why bytes are not a valid model file.
///
/// Messages name the offending tensor, key or byte position but not the
/// file: the format crate parses bytes and does no I/O, so the caller that
/// opened the file prefixes its path (`model.safetensors: ...`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Fewer than the 8 bytes that hold the header length.
    #[error("file is {len} bytes, too short for the 8-byte header length")]
    TooShort {
        /// The number of bytes available.
        len: u64,
    },
    /// The header length exceeds [`crate::MAX_HEADER_LEN`].
    #[error("header length {len} exceeds the limit of {max} bytes")]
    HeaderTooLarge {
        /// The header length stored in the file.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The header length points past the end of the file.
    #[error(
        "header length {len} runs past the end of the file ({available} bytes follow the length)"
    )]
    HeaderPastEnd {
        /// The header length stored in the file.
        len: u64,
        /// Bytes present after the 8-byte length.
        available: u64,
    },
    /// The header is not UTF-8.
    #[error("header is not valid UTF-8 (byte {offset} of the header)")]
    HeaderNotUtf8 {
        /// Offset of the first invalid byte within the header.
        offset: usize,
    },
    /// The header, or a JSON model file, is not well-formed JSON of the
    /// expected shape; the message says where.
    #[error("{}", describe_json(.0))]
    Json(#[from] serde_json::Error),
    /// A tensor names a dtype the spec does not define.
    #[error("tensor `{}` has unknown dtype `{}`", Escaped(name), Escaped(dtype))]
    UnknownDtype {
        /// The tensor.
        name: String,
        /// The dtype as written.
        dtype: String,
    },
    /// The product of a tensor's dimensions (or its byte size) overflows.
    #[error("tensor `{}` has shape {shape:?} whose size overflows", Escaped(name))]
    ShapeOverflow {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A packed sub-byte tensor whose elements do not fill whole bytes.
    #[error(
        "tensor `{}` has {elements} {dtype} elements, which do not fill whole bytes",
        Escaped(name)
    )]
    PackedNotWhole {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its element count.
        elements: usize,
    },
    /// `data_offsets` whose end is before their start.
    #[error(
        "tensor `{}` has reversed data_offsets [{begin}, {end}]",
        Escaped(name)
    )]
    OffsetsReversed {
        /// The tensor.
        name: String,
        /// Start offset.
        begin: u64,
        /// End offset.
        end: u64,
    },
    /// A tensor's byte range disagrees with its dtype and shape.
    #[error(
        "tensor `{}` is {dtype} {shape:?}, which takes {expected} bytes, but its data_offsets span {actual}",
        Escaped(name)
    )]
    SizeMismatch {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
        /// Its shape.
        shape: Vec<usize>,
        /// Bytes the dtype and shape need.
        expected: u64,
        /// Bytes the offsets span.
        actual: u64,
    },
    /// A tensor's end lies beyond the data section.
    #[error(
        "tensor `{}` ends at byte {end} but the file has {data_len} bytes of data",
        Escaped(name)
    )]
    OutOfRange {
        /// The tensor.
        name: String,
        /// Its end offset.
        end: u64,
        /// The size of the data section.
        data_len: u64,
    },
    /// Unused bytes between tensors (or before the first).
    #[error(
        "bytes {begin}..{end} of the data belong to no tensor (a hole before `{}`)",
        Escaped(name)
    )]
    Hole {
        /// The tensor after the hole.
        name: String,
        /// Start of the hole.
        begin: u64,
        /// End of the hole.
        end: u64,
    },
    /// Two tensors share bytes.
    #[error(
        "tensor `{}` starts at byte {begin}, inside `{}` which ends at byte {previous_end}",
        Escaped(name),
        Escaped(previous)
    )]
    Overlap {
        /// The later tensor.
        name: String,
        /// Its start.
        begin: u64,
        /// The tensor it overlaps.
        previous: String,
        /// That tensor's end.
        previous_end: u64,
    },
    /// Data bytes after the last tensor.
    #[error(
        "{trailing} trailing bytes after the last tensor (data is {data_len} bytes, tensors use {used})"
    )]
    TrailingBytes {
        /// Bytes no tensor uses.
        trailing: u64,
        /// The size of the data section.
        data_len: u64,
        /// Bytes the tensors use.
        used: u64,
    },
    /// A tensor name that appears twice.
    #[error("tensor `{}` appears twice", Escaped(name))]
    DuplicateTensor {
        /// The tensor.
        name: String,
    },
    /// A value that cannot be written in the requested format
    /// (a BOOL byte other than 0 or 1, for instance).
    #[error("tensor `{}`: {}", Escaped(name), cut(reason, REASON_COLUMNS))]
    BadValue {
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A modeltool metadata key whose value is malformed.
    #[error("metadata key `{}` {}", Escaped(key), cut(reason, REASON_COLUMNS))]
    BadMetadata {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A JSON model file that cannot be read: the damage, where, and in
    /// which tensor.
    #[error("{0}")]
    JsonModel(#[from] JsonError),
    /// Writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The format crate's result type.
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

/// Columns kept of a reason that may quote the file (a metadata value,
/// a value serde_json quotes).
const REASON_COLUMNS: usize = 240;

fn describe_json(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let text = e.to_string();
    let text = cut(&text, REASON_COLUMNS);
    match e.classify() {
        Category::Syntax => format!("not valid JSON: {text}"),
        Category::Eof => format!("JSON ends early: {text}"),
        Category::Data | Category::Io => text.into_owned(),
    }
}
