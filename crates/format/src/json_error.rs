//! The errors of the JSON model file reader: one variant per kind of
//! damage, each with its byte offset, key, tensor or element index.

use std::fmt;

use crate::text::Escaped;

/// Why a JSON model file could not be read: what is wrong
/// ([`kind`](Self::kind)) and in which tensor, when in one.
///
/// Strings from the file (names, keys, dtypes and values as written) are
/// kept whole in the fields and shown [escaped and cut](crate::text::Escaped)
/// in the message, so that a 10-million-digit number or a name holding
/// terminal controls makes a short, harmless error line.
///
/// ```
/// use modeltool_format::{FormatError, JsonErrorKind, JsonModel};
///
/// let text = br#"{"format": "modeltool.json/1", "tensors": {"w": {"dtype": "F32", "shape": [1], "data": [1e999]}}}"#;
/// match JsonModel::from_slice(text) {
///     Err(FormatError::JsonModel(e)) => {
///         assert_eq!(e.tensor.as_deref(), Some("w"));
///         assert!(matches!(e.kind, JsonErrorKind::BadElement { index: 0, .. }));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JsonError {
    /// The tensor the damage is in, if it is in one.
    pub tensor: Option<String>,
    /// What is wrong, and where.
    pub kind: JsonErrorKind,
}

impl JsonError {
    /// An error outside any tensor (or in one not yet named).
    pub fn new(kind: JsonErrorKind) -> Self {
        JsonError { tensor: None, kind }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tensor {
            Some(name) => write!(f, "tensor `{}`: {}", Escaped(name), self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for JsonError {}

/// What is wrong with a JSON model file. Offsets count bytes from the
/// start of the input given to the reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON: a byte that cannot be where it is.
    #[error("not valid JSON: {what} at byte {offset}")]
    Syntax {
        /// Where.
        offset: u64,
        /// What was expected, or what is wrong.
        what: String,
    },
    /// The input ends inside a value.
    #[error("JSON ends early: EOF while parsing {inside}")]
    Eof {
        /// What was being read: `an object`, `a list`, `a value`, `a string`.
        inside: &'static str,
    },
    /// Arrays and objects nested deeper than the limit.
    #[error("recursion limit exceeded: more than {max} levels of nesting at byte {offset}")]
    TooDeep {
        /// Where the level past the limit opens.
        offset: u64,
        /// The limit.
        max: usize,
    },
    /// JSON, but not of the type this place needs (the file is not an
    /// object, `tensors` or a tensor not an object, `data` not an array).
    #[error("expected {expected} at byte {offset}")]
    WrongType {
        /// Where the value starts.
        offset: u64,
        /// What was expected there.
        expected: &'static str,
    },
    /// A value of a known key that is JSON but not what the key holds
    /// (`shape` not a list of sizes, `metadata` not strings, a repeated key
    /// in `architecture`).
    #[error("`{key}` is not valid: {} at byte {offset}", Escaped(reason))]
    BadValue {
        /// The key.
        key: &'static str,
        /// Where its value starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// `format` names another format.
    #[error("`format` is `{}`, expected `{}`", Escaped(found), crate::FORMAT_ID)]
    WrongFormat {
        /// The format as written.
        found: String,
    },
    /// A required key is absent.
    #[error("missing `{key}`{}", if *key == "format" { ": not a modeltool.json/1 model file" } else { "" })]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key that appears twice in one object.
    #[error("key `{key}` appears twice")]
    RepeatedKey {
        /// The key.
        key: &'static str,
    },
    /// A key the format does not define.
    #[error("unknown key `{}` (expected {expected})", Escaped(key))]
    UnknownKey {
        /// The key as written.
        key: String,
        /// The keys allowed there.
        expected: &'static str,
    },
    /// Two tensors with one name.
    #[error("tensor `{}` appears twice", Escaped(name))]
    DuplicateTensor {
        /// The name.
        name: String,
    },
    /// A dtype the format does not define.
    #[error("unknown dtype `{}`", Escaped(dtype))]
    UnknownDtype {
        /// The dtype as written.
        dtype: String,
    },
    /// A `sha256` that is not 64 lowercase hex digits.
    #[error("sha256 `{}` is not 64 lowercase hex digits", Escaped(found))]
    BadSha256 {
        /// The value as written.
        found: String,
    },
    /// Fewer or more values than the shape needs.
    #[error("data has {count} values but shape {shape:?} needs {expected}")]
    CountMismatch {
        /// Values in `data`.
        count: usize,
        /// The shape.
        shape: Vec<usize>,
        /// Values the shape needs.
        expected: usize,
    },
    /// More values than the shape (read before `data`) allows: reading
    /// stops there.
    #[error("data has more values than its shape allows ({limit})")]
    TooManyValues {
        /// Values the shape allows.
        limit: usize,
    },
    /// An element of `data` that is JSON but not a value of the dtype.
    #[error("value {index}: {}", Escaped(reason))]
    BadElement {
        /// The element's index in `data`, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// An element of `data` longer than the reader accepts.
    #[error("value {index} is longer than {max} bytes")]
    ElementTooLong {
        /// The element's index in `data`, from 0.
        index: usize,
        /// The limit.
        max: usize,
    },
}
