//! Why bytes are not a readable GGUF file, or a tensor cannot be converted.

use crate::text::middle;

use super::{GgmlType, ValueType};

/// Longest stretch of a name from a file shown in an error line.
const NAME_COLS: usize = 120;

/// Why bytes are not a valid GGUF file, or why a tensor cannot be
/// dequantized, quantized or written.
///
/// One variant per kind of damage, each with the byte offset (from the start
/// of the file) or the index of what is wrong. Like [`crate::FormatError`],
/// messages do not name the file: the caller that opened it prefixes its
/// path. Names and keys from the file are escaped and shortened.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GgufError {
    /// The first four bytes are not `GGUF`.
    #[error("not a GGUF file: it starts with {found:02x?}, not the magic `GGUF`")]
    BadMagic {
        /// The first bytes of the file (fewer than four if it is that short).
        found: Vec<u8>,
    },
    /// A GGUF version this reader does not read (v1 used 32-bit counts;
    /// only v2 and v3 are read).
    #[error("GGUF version {version} is not supported (this reader reads versions 2 and 3)")]
    UnsupportedVersion {
        /// The version as stored.
        version: u32,
    },
    /// The header runs past the end of the file.
    #[error(
        "the header is cut off: {what} at byte {offset} needs {needed} bytes but the file has {file_len}"
    )]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// The file length needed to read it.
        needed: u64,
        /// The file's length.
        file_len: u64,
    },
    /// The header (everything before the tensor data) exceeds
    /// [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN).
    #[error(
        "the header needs more than {max} bytes ({needed} so far); a GGUF header is a few MB even for large vocabularies"
    )]
    HeaderTooLarge {
        /// Bytes needed so far.
        needed: u64,
        /// The limit.
        max: u64,
    },
    /// A count (of tensors, metadata entries or array elements) larger than
    /// the rest of the file could hold.
    #[error(
        "{what} count {count} at byte {offset} cannot fit: {available} bytes follow, and each entry takes at least {min_size}"
    )]
    CountTooLarge {
        /// Which count.
        what: &'static str,
        /// The count as stored.
        count: u64,
        /// Where it is stored.
        offset: u64,
        /// Bytes in the file after the count.
        available: u64,
        /// The fewest bytes one entry takes.
        min_size: u64,
    },
    /// A string length larger than the rest of the file.
    #[error(
        "string length {len} at byte {offset} runs past the end of the file ({available} bytes follow)"
    )]
    StringTooLong {
        /// The length as stored.
        len: u64,
        /// Where the length is stored.
        offset: u64,
        /// Bytes in the file after the length.
        available: u64,
    },
    /// A string that is not UTF-8.
    #[error("the string at byte {offset} is not valid UTF-8")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: u64,
    },
    /// A value type id GGUF does not define.
    #[error("unknown metadata value type {type_id} at byte {offset}")]
    UnknownValueType {
        /// The id as stored.
        type_id: u32,
        /// Where it is stored.
        offset: u64,
    },
    /// Arrays nested deeper than [`MAX_ARRAY_DEPTH`](super::MAX_ARRAY_DEPTH).
    #[error("arrays nested more than {max} deep at byte {offset}")]
    NestingTooDeep {
        /// Where the innermost array starts.
        offset: u64,
        /// The limit.
        max: usize,
    },
    /// A bool byte other than 0 or 1.
    #[error("bool at byte {offset} is {byte}, not 0 or 1")]
    InvalidBool {
        /// Where it is stored.
        offset: u64,
        /// The byte.
        byte: u8,
    },
    /// The same metadata key twice.
    #[error("metadata key `{}` appears twice (entries {first} and {second})", middle(.key, NAME_COLS))]
    DuplicateKey {
        /// The key.
        key: String,
        /// Index of the first entry.
        first: usize,
        /// Index of the repeat.
        second: usize,
    },
    /// A key this reader interprets holds another type (an array where a
    /// scalar belongs, a u64 for the u32 `general.alignment`).
    #[error("metadata key `{}` holds a {found}, not a {expected}", middle(.key, NAME_COLS))]
    WrongValueType {
        /// The key.
        key: String,
        /// The type it must have.
        expected: ValueType,
        /// The type it has.
        found: ValueType,
    },
    /// `general.alignment` is 0 or not a multiple of 8.
    #[error("general.alignment is {alignment}; it must be a non-zero multiple of 8")]
    BadAlignment {
        /// The alignment as stored.
        alignment: u32,
    },
    /// The same tensor name twice.
    #[error("tensor `{}` appears twice (tensors {first} and {second})", middle(.name, NAME_COLS))]
    DuplicateTensor {
        /// The name.
        name: String,
        /// Index of the first.
        first: usize,
        /// Index of the repeat.
        second: usize,
    },
    /// A tensor with no dimensions or more than ggml's four.
    #[error("tensor `{}` (tensor {index}) has {n_dims} dimensions; ggml allows 1 to {max}", middle(.name, NAME_COLS))]
    BadDimCount {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// The count as stored.
        n_dims: u32,
        /// The limit.
        max: u32,
    },
    /// A tensor's element count overflows (ggml counts in `i64`).
    #[error("tensor `{}` (tensor {index}) has dimensions {dims:?} whose element count overflows", middle(.name, NAME_COLS))]
    DimsOverflow {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// Its dimensions, fastest first as stored.
        dims: Vec<u64>,
    },
    /// A tensor type id ggml does not define.
    #[error("tensor `{}` (tensor {index}) has unknown ggml type id {type_id}", middle(.name, NAME_COLS))]
    UnknownTensorType {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// The id as stored.
        type_id: u32,
    },
    /// A tensor whose rows are not whole blocks of its type.
    #[error("tensor `{}` (tensor {index}) has rows of {row} {ggml_type} elements, not a multiple of the block size {block_size}", middle(.name, NAME_COLS))]
    PartialBlock {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// Its type.
        ggml_type: GgmlType,
        /// Its first (fastest) dimension.
        row: u64,
        /// The type's block size.
        block_size: u32,
    },
    /// A tensor offset that is not a multiple of the alignment.
    #[error("tensor `{}` (tensor {index}) starts at data offset {offset}, not a multiple of the alignment {alignment}", middle(.name, NAME_COLS))]
    MisalignedOffset {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// Its offset within the data section.
        offset: u64,
        /// The file's alignment.
        alignment: u32,
    },
    /// A tensor's end (data start + offset + size) overflows a `u64`.
    #[error("tensor `{}` (tensor {index}) at data offset {offset} with {size} bytes ends past 2^64", middle(.name, NAME_COLS))]
    OffsetOverflow {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// Its offset within the data section.
        offset: u64,
        /// Its size in bytes.
        size: u64,
    },
    /// A tensor's data runs past the end of the file.
    #[error("tensor `{}` (tensor {index}) occupies bytes {start}..{end} but the file has {file_len}", middle(.name, NAME_COLS))]
    DataPastEnd {
        /// The tensor.
        name: String,
        /// Its index.
        index: usize,
        /// Where its data starts in the file.
        start: u64,
        /// Where it ends in the file.
        end: u64,
        /// The file's length.
        file_len: u64,
    },
    /// Two tensors share bytes.
    #[error("tensors `{}` and `{}` overlap: {first_index} ends at data offset {first_end}, {second_index} starts at {second_start}", middle(.first, NAME_COLS), middle(.second, NAME_COLS))]
    Overlap {
        /// The tensor that starts first.
        first: String,
        /// Its index.
        first_index: usize,
        /// Where it ends in the data section.
        first_end: u64,
        /// The tensor that starts inside it.
        second: String,
        /// Its index.
        second_index: usize,
        /// Where it starts in the data section.
        second_start: u64,
    },
    /// A type [`dequantize`](super::dequantize) does not turn into f32.
    #[error("cannot dequantize {ggml_type} to f32: {why}")]
    CannotDequantize {
        /// The type.
        ggml_type: GgmlType,
        /// Why (an integer or f64 type is copied as it is, not dequantized;
        /// an intermediate or unsupported quant type has no decoder here).
        why: &'static str,
    },
    /// A type [`quantize`](super::quantize) does not produce.
    #[error("cannot quantize to {ggml_type}: only F32, F16, BF16 and Q8_0 are produced")]
    CannotQuantize {
        /// The type.
        ggml_type: GgmlType,
    },
    /// A byte or element count that is not whole blocks, or does not
    /// match the tensor it is for.
    #[error("{ggml_type}: expected {expected} {unit}, got {found}")]
    LengthMismatch {
        /// The type.
        ggml_type: GgmlType,
        /// What was expected.
        expected: u64,
        /// What was given.
        found: u64,
        /// `"bytes"` or `"elements"`.
        unit: &'static str,
    },
    /// Tensor data of a big-endian file, which this crate does not decode.
    #[error("the file is big-endian; its tensor data is not decoded (the header is read)")]
    BigEndianData,
    /// A tensor index past the end of the tensor list.
    #[error("there is no tensor {index}: the file has {count}")]
    NoSuchTensor {
        /// The index asked for.
        index: usize,
        /// The number of tensors.
        count: usize,
    },
    /// A shape the writer cannot store: no dimension, more than four, or a
    /// row that is not whole blocks.
    #[error("tensor `{}`: shape {shape:?} cannot be stored as {ggml_type} ({why})", middle(.name, NAME_COLS))]
    BadShape {
        /// The tensor.
        name: String,
        /// Its shape, row-major.
        shape: Vec<u64>,
        /// Its type.
        ggml_type: GgmlType,
        /// What is wrong.
        why: &'static str,
    },
    /// The writer was given tensor data out of order or of the wrong size,
    /// or finished before every tensor was written.
    #[error("writer: {0}")]
    WriterMisuse(String),
}

/// Shorthand for results with [`GgufError`].
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
