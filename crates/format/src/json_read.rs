//! Reading the JSON model file from a stream.
//!
//! The object structure is scanned byte by byte over a buffered window
//! (`window.rs`); the small values (`format`, `metadata`, `architecture`,
//! `shape`, `dtype`, `sha256`, keys with escapes) are captured as text and
//! handed to serde_json (`grammar.rs`). The `data` arrays, nearly all of a
//! file, never go through serde: a window of a few MB is cut after its last
//! comma, the part before the cut is split at commas into pieces, and the
//! pieces are parsed in parallel, each number rounded once, straight from
//! its decimal text to the tensor's dtype (`pipeline.rs`). Small arrays
//! that end in the window are copied into batches, parsed and hashed on
//! other cores while the reading thread goes on with the next tensors
//! (`batch.rs`, which also holds the loop that hands tensors over in file
//! order). C64 values (`[re, im]` pairs, with a comma inside), arrays
//! holding strings and the ends of large arrays are parsed one element
//! after another from the window (`elements.rs`). The common forms of the
//! small values (keys, dtype, shape, checksum) are read straight from the
//! window, without serde. This file holds the limits, the errors and the
//! entry.
//!
//! Work: each byte is copied a bounded number of times (the window is
//! refilled only when an array runs past its end), whatever the number of
//! tensors. Memory: the window (two buffers of [`WINDOW`] bytes and the
//! pieces' buffers), plus the tensors' bytes. Only a `data` array that comes
//! before its tensor's `dtype` is held as text until the dtype is known.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::mpsc;

use memchr::{memchr, memchr2, memchr3, memrchr};
use serde::de::{DeserializeOwned, DeserializeSeed};

use crate::error::FormatError;
use crate::json::{FORMAT_ID, JsonModel, JsonTensor};
use crate::json_error::{JsonError, JsonErrorKind};
use crate::number::{self, ScanError};
use crate::par;
use crate::safetensors::{StringMap, strip_position};
use crate::values::{self, Token};
use crate::{Checksum, Dtype, TensorMeta};
use sha2::{Digest, Sha256};

/// Bytes of input looked at, at most, per step of a `data` array.
const WINDOW: usize = 4 << 20;
/// Text parsed per parallel work item.
const PIECE: usize = 128 << 10;
/// Below this many bytes of elements, parallel parsing does not pay.
const PARALLEL_MIN: usize = 64 << 10;
/// Tensors smaller than this are hashed on the reading thread.
const HASH_INLINE: usize = 256 << 10;
/// Nesting deeper than this is an error, as in serde_json.
const MAX_DEPTH: usize = 128;
/// The longest single value of a `data` array accepted (a number with a
/// million digits is valid JSON, but not worth unbounded memory).
const MAX_ELEMENT: usize = 64 << 20;

/// The keys of the model object.
const MODEL_KEYS: &[&str] = &["format", "metadata", "architecture", "tensors"];
/// The keys of a tensor object.
const TENSOR_KEYS: &[&str] = &["dtype", "shape", "data", "sha256"];

/// The error for a key that was not taken: one of `keys` again, or
/// another.
fn key_error(key: String, keys: &[&'static str]) -> FormatError {
    match keys.iter().find(|&&k| k == key) {
        Some(&key) => err(JsonErrorKind::RepeatedKey { key }),
        None => err(JsonErrorKind::UnknownKey {
            key,
            expected: if keys == MODEL_KEYS {
                "format, metadata, architecture, tensors"
            } else {
                "dtype, shape, data, sha256"
            },
        }),
    }
}

fn missing(key: &'static str) -> FormatError {
    err(JsonErrorKind::MissingKey { key })
}

/// Reads a JSON model file from a stream of `len` bytes, when known.
pub(crate) fn read(src: impl Read, len: Option<u64>) -> crate::Result<JsonModel> {
    let mut tensors = Vec::new();
    let mut model = read_each(src, len, &mut |t| {
        tensors.push(t);
        Ok(())
    })?;
    // Repeated names, checked once all are read: a set sized once, of
    // names that are not copied.
    let mut seen = HashSet::with_capacity(tensors.len());
    if let Some(t) = tensors.iter().find(|t| !seen.insert(t.meta.name.as_str())) {
        return Err(err(JsonErrorKind::DuplicateTensor {
            name: t.meta.name.clone(),
        }));
    }
    drop(seen);
    model.tensors = tensors;
    Ok(model)
}

/// Reads a JSON model file from a stream of `len` bytes, when known,
/// handing each tensor to `take` in file order; the model returned holds
/// no tensors, and repeated names are the caller's to find.
pub(crate) fn read_each(
    src: impl Read,
    len: Option<u64>,
    take: &mut dyn FnMut(JsonTensor) -> crate::Result<()>,
) -> crate::Result<JsonModel> {
    Reader::new(src, 0, len).model(take)
}

type Result<T, E = FormatError> = std::result::Result<T, E>;

fn err(kind: JsonErrorKind) -> FormatError {
    FormatError::JsonModel(JsonError::new(kind))
}

/// Names the tensor the error occurred in, unless it names one already.
fn in_tensor(e: FormatError, name: &str) -> FormatError {
    match e {
        FormatError::JsonModel(mut j) => {
            j.tensor.get_or_insert_with(|| name.to_owned());
            FormatError::JsonModel(j)
        }
        other => other,
    }
}

fn syntax(what: impl fmt::Display, offset: u64) -> FormatError {
    err(JsonErrorKind::Syntax {
        offset,
        what: what.to_string(),
    })
}

fn early_end(inside: &'static str) -> FormatError {
    err(JsonErrorKind::Eof { inside })
}

fn wrong_type(expected: &'static str, offset: u64) -> FormatError {
    err(JsonErrorKind::WrongType { offset, expected })
}

/// A serde_json error in the text of `key`'s value, captured at byte
/// `at`: its position counts from the start of that text, so it is
/// replaced by `at`.
fn serde_error(e: serde_json::Error, at: u64, key: &'static str) -> FormatError {
    use serde_json::error::Category;
    let text = e.to_string();
    let text = crate::text::cut(strip_position(&text), 120).into_owned();
    match e.classify() {
        Category::Syntax => syntax(text, at),
        Category::Eof => early_end("a value"),
        Category::Data | Category::Io => err(JsonErrorKind::BadValue {
            key,
            offset: at,
            reason: text,
        }),
    }
}

fn from_raw<T: DeserializeOwned>(raw: &[u8], at: u64, key: &'static str) -> Result<T> {
    serde_json::from_slice(raw).map_err(|e| serde_error(e, at, key))
}

fn seed_from_raw<'de, S: DeserializeSeed<'de>>(
    seed: S,
    raw: &'de [u8],
    at: u64,
    key: &'static str,
) -> Result<S::Value> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = seed
        .deserialize(&mut de)
        .map_err(|e| serde_error(e, at, key))?;
    de.end().map_err(|e| serde_error(e, at, key))?;
    Ok(value)
}

mod batch;
mod elements;
mod grammar;
mod pipeline;
mod window;

use batch::*;
use elements::*;
use grammar::{check_count, check_limit};
use pipeline::*;
use window::*;

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `n` tensors of `values` F32 values each.
    fn file(n: usize, values: usize) -> Vec<u8> {
        let mut s = String::from(r#"{"format": "modeltool.json/1", "tensors": {"#);
        for i in 0..n {
            let data: Vec<String> = (0..values)
                .map(|v| format!("{}.25", (i + v) % 1000))
                .collect();
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "\n \"t{i}\": {{\"dtype\": \"F32\", \"shape\": [{values}], \"data\": [{}]}}",
                data.join(", ")
            ));
        }
        s.push_str("}}\n");
        s.into_bytes()
    }

    /// Reads `text` through a window of `window` bytes; returns the
    /// tensor count and what the window cost.
    fn read_with_window(text: &[u8], window: usize) -> (usize, WindowStats) {
        let mut reader = Reader::new(text, 0, Some(text.len() as u64));
        reader.window = window;
        let mut tensors = Vec::new();
        let mut model = reader
            .model(&mut |t| {
                tensors.push(t);
                Ok(())
            })
            .expect("the file is valid");
        model.tensors = tensors;
        // The same values as through the default window, and the values
        // written: `file` writes `(i + v) % 1000 + 0.25`.
        assert_eq!(model, JsonModel::from_slice(text).expect("valid"));
        for (i, t) in model.tensors.iter().enumerate() {
            for (v, x) in t.data.chunks(4).enumerate() {
                let x = f32::from_le_bytes(x.try_into().expect("4 bytes"));
                assert_eq!(x, ((i + v) % 1000) as f32 + 0.25, "tensor {i} value {v}");
            }
        }
        (model.tensors.len(), reader.stats)
    }

    #[test]
    fn arrays_cut_at_any_window_boundary_read_the_same() {
        // Windows of odd sizes put the cuts inside numbers, after commas
        // and before the `]`, on both the element-by-element and the
        // parallel path.
        let text = file(40, 3_000);
        for window in [1_000, 4_099, 70_001, 150_000] {
            read_with_window(&text, window);
        }
    }

    /// `file(n, 3)` with tensor `k`'s object replaced by `object`.
    fn file_with(n: usize, k: usize, object: &str) -> Vec<u8> {
        let text = String::from_utf8(file(n, 3)).expect("UTF-8");
        let start =
            text.find(&format!("\"t{k}\": {{")).expect("tensor k") + format!("\"t{k}\": ").len();
        let end = start + text[start..].find('}').expect("its end") + 1;
        format!("{}{object}{}", &text[..start], &text[end..]).into_bytes()
    }

    /// The tensor named in the error of reading `text`, and its kind.
    fn first_error(text: &[u8]) -> (Option<String>, JsonErrorKind) {
        match JsonModel::from_slice(text) {
            Err(FormatError::JsonModel(e)) => (e.tensor, e.kind),
            other => panic!("expected a JSON model error, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_value_in_a_small_array_is_the_error_even_with_later_damage() {
        // Small arrays are parsed in batches on other cores while the
        // reading thread goes on: the damage it finds later in the file
        // must not hide the earlier bad value.
        let bad_value = r#"{"dtype": "F32", "shape": [3], "data": [1, 2, x]}"#;
        let mut text = String::from_utf8(file_with(3_000, 10, bad_value)).expect("UTF-8");
        text.truncate(text.len() - 3); // the file ends inside `tensors`
        let (tensor, kind) = first_error(text.as_bytes());
        assert_eq!(tensor.as_deref(), Some("t10"));
        assert!(matches!(kind, JsonErrorKind::Syntax { .. }), "{kind:?}");

        // Damage later in the same tensor's object: an unknown key.
        let (tensor, kind) = first_error(&file_with(
            3_000,
            10,
            r#"{"dtype": "F32", "shape": [3], "data": [1, 2, true], "colour": 1}"#,
        ));
        assert_eq!(tensor.as_deref(), Some("t10"));
        assert!(
            matches!(kind, JsonErrorKind::BadElement { index: 2, .. }),
            "{kind:?}"
        );

        // Values counted against a shape that comes after them.
        let (tensor, kind) = first_error(&file_with(
            3_000,
            2_500,
            r#"{"dtype": "F32", "data": [1, 2], "shape": [3]}"#,
        ));
        assert_eq!(tensor.as_deref(), Some("t2500"));
        assert!(
            matches!(
                kind,
                JsonErrorKind::CountMismatch {
                    count: 2,
                    expected: 3,
                    ..
                }
            ),
            "{kind:?}"
        );

        // Only the later damage: that is the error.
        let (tensor, kind) = first_error(&file_with(
            3_000,
            2_500,
            r#"{"dtype": "F32", "shape": [3], "data": [1, 2, 3], "colour": 1}"#,
        ));
        assert_eq!(tensor.as_deref(), Some("t2500"));
        assert!(matches!(kind, JsonErrorKind::UnknownKey { .. }), "{kind:?}");
    }

    #[test]
    fn a_large_tensor_after_a_small_one_is_handed_over_while_the_file_is_read() {
        // The small first tensor's values go to a batch; the large ones
        // after it must not all wait in memory for that batch to fill.
        struct Counting<'a>(&'a [u8], &'a std::cell::Cell<usize>);
        impl Read for Counting<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.read(buf)?;
                self.1.set(self.1.get() + n);
                Ok(n)
            }
        }
        let mut text = String::from(r#"{"format": "modeltool.json/1", "tensors": {"#);
        text.push_str(r#""small": {"dtype": "F32", "shape": [3], "data": [1, 2, 3]}"#);
        for i in 0..40 {
            let data: Vec<String> = (0..20_000).map(|v| format!("{v}.5")).collect();
            text.push_str(&format!(
                r#", "large{i}": {{"dtype": "F32", "shape": [20000], "data": [{}]}}"#,
                data.join(",")
            ));
        }
        text.push_str("}}");
        let read = std::cell::Cell::new(0);
        let mut reader = Reader::new(Counting(text.as_bytes(), &read), 0, Some(text.len() as u64));
        reader.window = 64 << 10;
        let mut handed = Vec::new();
        reader
            .model(&mut |t| {
                handed.push((t.meta.name, read.get()));
                Ok(())
            })
            .expect("valid");
        assert_eq!(handed.len(), 41);
        let (name, at) = &handed[1];
        assert_eq!(name, "large0");
        assert!(
            *at < text.len() / 4,
            "large0 was handed over after {at} of {} bytes were read",
            text.len()
        );
    }

    #[test]
    fn many_small_tensors_move_each_byte_a_bounded_number_of_times() {
        // 20k one-element tensors, 50 times the window: each used to move
        // the whole window, work proportional to tensors x window.
        let text = file(20_000, 1);
        let window = 32 << 10;
        assert!(text.len() > 20 * window);
        let (n, stats) = read_with_window(&text, window);
        assert_eq!(n, 20_000);
        assert!(
            stats.moved <= text.len() as u64,
            "{} bytes moved for {} bytes of input",
            stats.moved,
            text.len()
        );
        assert!(stats.largest_window <= window, "{stats:?}");
    }

    #[test]
    fn the_window_keeps_its_size_when_arrays_end_inside_it() {
        // Arrays of a third of a window each, ending inside it (so that
        // the parallel path cuts them before their end): the next window
        // used to be twice what followed the cut, growing without bound.
        let window = 256 << 10;
        let text = file(100, 10_000);
        assert!(text.len() > 20 * window);
        let (n, stats) = read_with_window(&text, window);
        assert_eq!(n, 100);
        assert!(stats.largest_window <= window, "{stats:?}");
        assert!(stats.moved <= text.len() as u64, "{stats:?}");
    }
}
