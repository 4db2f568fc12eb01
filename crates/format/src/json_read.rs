//! Reading the JSON model file from a stream.
//!
//! The object structure is scanned here, byte by byte over a buffered
//! window; the small values (`format`, `metadata`, `architecture`, `shape`,
//! `dtype`, `sha256`, keys with escapes) are captured as text and handed to
//! serde_json. The `data` arrays, nearly all of a file, never go through
//! serde: a window of a few MB is cut after its last comma, the part before
//! the cut is split at commas into pieces, and the pieces are parsed in
//! parallel (rayon), each number rounded once, straight from its decimal
//! text to the tensor's dtype. C64 values (`[re, im]` pairs, with a comma
//! inside) and short arrays are parsed sequentially from the same window.
//!
//! Memory: the window, plus the tensors' bytes. Only a `data` array that
//! comes before its tensor's `dtype` is held as text until the dtype is known.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::ops::Range;
use std::sync::mpsc;

use memchr::{memchr, memchr2, memrchr};
use serde::de::{DeserializeOwned, DeserializeSeed};

use crate::error::FormatError;
use crate::json::{FORMAT_ID, JsonModel, JsonTensor};
use crate::json_error::{JsonError, JsonErrorKind};
use crate::number::{self, ScanError};
use crate::par;
use crate::safetensors::{StringMap, strip_position};
use crate::values::{self, Token};
use crate::{Dtype, TensorMeta, is_sha256_hex, sha256_hex};

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
    Reader::new(src, 0, len).model()
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

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// A buffered window over the input, with the JSON structure on top.
struct Reader<R> {
    src: R,
    buf: Vec<u8>,
    /// The usual size of `buf` ([`WINDOW`]; smaller in tests).
    window: usize,
    /// The next unread byte of `buf`.
    pos: usize,
    /// The end of the valid bytes of `buf`.
    end: usize,
    /// The input offset of `buf[0]`, for error messages.
    base: u64,
    /// The input offset of the input's end, when known.
    input_end: Option<u64>,
    eof: bool,
    /// The next window, read while the current one is parsed.
    spare: Vec<u8>,
    /// Where the first `]` is in a stretch of input, found while the
    /// previous window was being parsed.
    close: Option<CloseScan>,
    /// Output buffers of the pieces of a window, kept for the next window
    /// (fresh ones would cost a page fault per 4 KB, window after window).
    piece_buffers: Vec<Vec<u8>>,
    /// What the window cost, for the tests that keep it linear.
    stats: WindowStats,
}

/// The copying the window did: the bytes moved to its front or into the
/// next window, and its largest size. Reading a file costs at most a few
/// copies of each byte and a window of a bounded size, whatever the
/// number or the sizes of the tensors.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowStats {
    /// Bytes copied within or between window buffers.
    pub(crate) moved: u64,
    /// The largest window buffer, in bytes.
    pub(crate) largest_window: usize,
}

impl<R: Read> Reader<R> {
    fn new(src: R, base: u64, input_end: Option<u64>) -> Self {
        Reader {
            src,
            buf: Vec::new(),
            // No larger than the input needs (plus one byte, to see its end).
            window: input_end.map_or(WINDOW, |end| {
                usize::try_from(end.saturating_sub(base).saturating_add(1))
                    .map_or(WINDOW, |n| n.min(WINDOW))
            }),
            pos: 0,
            end: 0,
            base,
            input_end,
            eof: false,
            spare: Vec::new(),
            close: None,
            piece_buffers: Vec::new(),
            stats: WindowStats::default(),
        }
    }

    /// The input offset of the next unread byte.
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `want` bytes available from `pos`, unless the input
    /// ends first.
    fn fill(&mut self, want: usize) -> Result<()> {
        if self.end - self.pos >= want || self.eof {
            return Ok(());
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.stats.moved += (self.end - self.pos) as u64;
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let size = want.max(self.window);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        } else if self.buf.len() > size && self.end <= size {
            // Back to the usual size after an element longer than a window.
            self.buf.truncate(size);
            self.buf.shrink_to_fit();
        }
        self.stats.largest_window = self.stats.largest_window.max(self.buf.len());
        while self.end < want {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::Io(e)),
            }
        }
        Ok(())
    }

    /// Skips whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                let b = self.buf[self.pos];
                if !is_ws(b) {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill(1)?;
        }
    }

    /// Consumes `byte` (after whitespace) or fails, naming `inside`.
    fn expect(&mut self, byte: u8, inside: &'static str) -> Result<()> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(syntax(
                format_args!("expected `{}`", byte as char),
                self.offset(),
            )),
            None => Err(early_end(inside)),
        }
    }

    /// Copies the text of the JSON value that starts here (after
    /// whitespace), checking only its nesting (at most [`MAX_DEPTH`] levels
    /// counting `depth` levels around it): serde_json checks the rest.
    /// Returns the text and its input offset.
    fn capture(&mut self, depth: usize) -> Result<(Vec<u8>, u64)> {
        let first = self.peek()?.ok_or_else(|| early_end("a value"))?;
        let at = self.offset();
        let mut out = Vec::new();
        match first {
            b'"' => {
                out.push(b'"');
                self.pos += 1;
                self.copy_string(&mut out)?;
            }
            b'[' | b'{' => {
                let mut nest = 0usize;
                loop {
                    if self.pos == self.end {
                        self.fill(1)?;
                        if self.pos == self.end {
                            return Ok((out, at)); // serde_json reports the early end
                        }
                    }
                    let chunk = &self.buf[self.pos..self.end];
                    let stop = chunk
                        .iter()
                        .position(|&b| matches!(b, b'"' | b'[' | b']' | b'{' | b'}'));
                    let Some(i) = stop else {
                        out.extend_from_slice(chunk);
                        self.pos = self.end;
                        continue;
                    };
                    let b = chunk[i];
                    out.extend_from_slice(&chunk[..=i]);
                    self.pos += i + 1;
                    match b {
                        b'"' => self.copy_string(&mut out)?,
                        b'[' | b'{' => {
                            nest += 1;
                            if depth + nest > MAX_DEPTH {
                                return Err(err(JsonErrorKind::TooDeep {
                                    offset: self.offset() - 1,
                                    max: MAX_DEPTH,
                                }));
                            }
                        }
                        _ => {
                            nest -= 1;
                            if nest == 0 {
                                return Ok((out, at));
                            }
                        }
                    }
                }
            }
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => loop {
                // A number or literal: up to the first byte that cannot be in one.
                if self.pos == self.end {
                    self.fill(1)?;
                    if self.pos == self.end {
                        break;
                    }
                }
                let chunk = &self.buf[self.pos..self.end];
                let n = chunk
                    .iter()
                    .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
                    .unwrap_or(chunk.len());
                out.extend_from_slice(&chunk[..n]);
                self.pos += n;
                if self.pos < self.end {
                    break;
                }
            },
            _ => return Err(syntax("expected value", at)),
        }
        Ok((out, at))
    }

    /// Copies the rest of a string, up to and including its closing quote.
    fn copy_string(&mut self, out: &mut Vec<u8>) -> Result<()> {
        loop {
            if self.pos == self.end {
                self.fill(1)?;
                if self.pos == self.end {
                    return Ok(()); // serde_json reports the early end
                }
            }
            let chunk = &self.buf[self.pos..self.end];
            let Some(i) = memchr2(b'"', b'\\', chunk) else {
                out.extend_from_slice(chunk);
                self.pos = self.end;
                continue;
            };
            out.extend_from_slice(&chunk[..=i]);
            self.pos += i + 1;
            if chunk[i] == b'"' {
                return Ok(());
            }
            // The escaped byte, whatever it is, does not end the string.
            self.fill(1)?;
            if self.pos < self.end {
                out.push(self.buf[self.pos]);
                self.pos += 1;
            }
        }
    }

    /// Reads a string (the next value must be one).
    fn string(&mut self) -> Result<String> {
        let (raw, at) = self.capture(0)?;
        let inner = raw
            .strip_prefix(b"\"")
            .and_then(|r| r.strip_suffix(b"\""))
            .filter(|r| !r.iter().any(|&b| b == b'\\' || b < 0x20));
        match inner.map(std::str::from_utf8) {
            Some(Ok(s)) => Ok(s.to_owned()),
            _ => from_raw(&raw, at, "a key"),
        }
    }

    /// After an object's `{`: the next key and its `:`, or `None` at the
    /// closing `}`. `first` is true until the first key.
    fn next_key(&mut self, first: &mut bool) -> Result<Option<String>> {
        if !*first {
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(None);
                }
                Some(_) => return Err(syntax("expected `,` or `}`", self.offset())),
                None => return Err(early_end("an object")),
            }
        }
        match self.peek()? {
            Some(b'"') => {}
            Some(b'}') if *first => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b'}') => return Err(syntax("trailing comma", self.offset())),
            Some(_) => return Err(syntax("expected a string key", self.offset())),
            None => return Err(early_end("an object")),
        }
        *first = false;
        let key = self.string()?;
        self.expect(b':', "an object")?;
        Ok(Some(key))
    }

    /// Consumes the `{` of an object, or fails with `expected`.
    fn open_object(&mut self, expected: &'static str) -> Result<()> {
        match self.peek()? {
            Some(b'{') => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(wrong_type(expected, self.offset())),
            None => Err(early_end("a value")),
        }
    }

    fn model(&mut self) -> Result<JsonModel> {
        self.open_object("a modeltool.json/1 object")?;
        let mut format = false;
        let mut metadata = None;
        let mut architecture: Option<serde_json::Value> = None;
        let mut tensors = None;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match key.as_str() {
                "format" if !format => {
                    let (raw, at) = self.capture(1)?;
                    let f: String = from_raw(&raw, at, "format")?;
                    if f != FORMAT_ID {
                        return Err(err(JsonErrorKind::WrongFormat { found: f }));
                    }
                    format = true;
                }
                "metadata" if metadata.is_none() => {
                    let (raw, at) = self.capture(1)?;
                    metadata = Some(seed_from_raw(
                        StringMap("`metadata`"),
                        &raw,
                        at,
                        "metadata",
                    )?);
                }
                "architecture" if architecture.is_none() => {
                    let (raw, at) = self.capture(1)?;
                    architecture = Some(
                        crate::strict_json::from_slice(&raw)
                            .map_err(|e| serde_error(e, at, "architecture"))?,
                    );
                }
                "tensors" if tensors.is_none() => tensors = Some(self.tensors()?),
                _ => return Err(key_error(key, MODEL_KEYS)),
            }
        }
        if self.peek()?.is_some() {
            return Err(syntax("trailing characters", self.offset()));
        }
        if !format {
            return Err(missing("format"));
        }
        let tensors = tensors.ok_or_else(|| missing("tensors"))?;
        Ok(JsonModel {
            metadata: metadata.unwrap_or_default(),
            architecture: architecture.filter(|a| !a.is_null()),
            tensors,
        })
    }

    /// Reads the tensors; each large one is hashed on another core while
    /// the next is parsed, small ones here (a task per tensor would cost
    /// more than its hash).
    fn tensors(&mut self) -> Result<Vec<JsonTensor>> {
        self.open_object("`tensors` to be an object mapping names to tensors")?;
        let (done, hashed) = mpsc::channel();
        let mut tensors = Vec::new();
        let read = par::scope(|scope| {
            let mut first = true;
            while let Some(name) = self.next_key(&mut first)? {
                let mut tensor = self.tensor(&name).map_err(|e| in_tensor(e, &name))?;
                if tensor.data.len() < HASH_INLINE || !par::BACKGROUND {
                    tensor.actual_sha256 = sha256_hex(&tensor.data);
                } else {
                    let (index, done) = (tensors.len(), done.clone());
                    let data = std::mem::take(&mut tensor.data);
                    scope.spawn(move || {
                        let sum = sha256_hex(&data);
                        // The receiver is gone only when reading failed.
                        let _ = done.send((index, data, sum));
                    });
                }
                tensors.push(tensor);
            }
            Ok::<_, FormatError>(())
        });
        drop(done);
        read?;
        // Repeated names, checked once all are read: a set sized once,
        // of names that are not copied.
        let mut seen = HashSet::with_capacity(tensors.len());
        if let Some(t) = tensors.iter().find(|t| !seen.insert(t.meta.name.as_str())) {
            return Err(err(JsonErrorKind::DuplicateTensor {
                name: t.meta.name.clone(),
            }));
        }
        for (index, data, sum) in hashed.try_iter() {
            let tensor = &mut tensors[index];
            tensor.data = data;
            tensor.actual_sha256 = sum;
        }
        Ok(tensors)
    }

    fn tensor(&mut self, name: &str) -> Result<JsonTensor> {
        self.open_object("an object with dtype, shape, data and sha256")?;
        let mut dtype: Option<Dtype> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut data: Option<(Vec<u8>, usize)> = None;
        let mut deferred: Option<(Vec<u8>, u64)> = None;
        let mut sha256: Option<String> = None;
        let mut first = true;
        while let Some(key) = self.next_key(&mut first)? {
            match key.as_str() {
                "dtype" if dtype.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "dtype")?;
                    match s.parse() {
                        Ok(d) => dtype = Some(d),
                        Err(_) => return Err(err(JsonErrorKind::UnknownDtype { dtype: s })),
                    }
                }
                "shape" if shape.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    shape = Some(from_raw(&raw, at, "shape")?);
                }
                // With the dtype known, values stream straight into bytes;
                // otherwise (keys in another order) the raw text waits.
                "data" if data.is_none() && deferred.is_none() => match dtype {
                    Some(d) => data = Some(self.data(d, limit(shape.as_deref()))?),
                    None => deferred = Some(self.capture(3)?),
                },
                "sha256" if sha256.is_none() => {
                    let (raw, at) = self.capture(3)?;
                    let s: String = from_raw(&raw, at, "sha256")?;
                    if !is_sha256_hex(&s) {
                        return Err(err(JsonErrorKind::BadSha256 { found: s }));
                    }
                    sha256 = Some(s);
                }
                _ => return Err(key_error(key, TENSOR_KEYS)),
            }
        }
        let dtype = dtype.ok_or_else(|| missing("dtype"))?;
        let shape = shape.ok_or_else(|| missing("shape"))?;
        let (bytes, count) = match (data, deferred) {
            (Some(d), _) => d,
            (None, Some((raw, at))) => {
                let mut sub = Reader::new(&raw[..], at, Some(at + raw.len() as u64));
                let d = sub.data(dtype, limit(Some(&shape)))?;
                if sub.peek()?.is_some() {
                    return Err(syntax("trailing characters", sub.offset()));
                }
                d
            }
            (None, None) => return Err(missing("data")),
        };
        let meta = TensorMeta {
            name: name.to_owned(),
            dtype,
            shape,
        };
        let expected = meta.element_count()?;
        if count != expected {
            return Err(err(JsonErrorKind::CountMismatch {
                count,
                shape: meta.shape,
                expected,
            }));
        }
        let data = match dtype {
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                meta.byte_len()?;
                values::pack(&bytes, dtype.bits())
            }
            _ => bytes,
        };
        Ok(JsonTensor {
            meta,
            data,
            sha256,
            actual_sha256: String::new(),
        })
    }

    /// Reads a `data` array into little-endian bytes (one code byte per
    /// element for packed types); returns the bytes and the element count.
    fn data(&mut self, dtype: Dtype, limit: Option<usize>) -> Result<(Vec<u8>, usize)> {
        match self.peek()? {
            Some(b'[') => self.pos += 1,
            Some(_) => {
                return Err(wrong_type(
                    "`data` to be a flat array of values",
                    self.offset(),
                ));
            }
            None => return Err(early_end("a value")),
        }
        let per = dtype.bits().div_ceil(8);
        // Never trust a shape for the allocation size: the whole buffer is
        // allocated up front only when the rest of the input could hold
        // that many values (two bytes each, with the commas).
        let rest = self.input_end.map(|end| end.saturating_sub(self.offset()));
        let mut out = match (limit, rest) {
            (Some(l), Some(rest)) if (l as u64).saturating_mul(2) <= rest.saturating_add(1) => {
                TensorBuf::sized(l * per)
            }
            _ => TensorBuf::growing(limit.unwrap_or(0).min(1 << 24) * per),
        };
        let mut tail = Vec::new();
        let mut count = 0usize;
        match self.peek()? {
            Some(b']') => {
                self.pos += 1;
                return Ok((out.into_vec(), 0));
            }
            None => return Err(early_end("a list")),
            Some(_) => {}
        }
        // Bytes to have in the window when it is refilled. The window is
        // refilled only when the array goes on past its end: a small array
        // that ends inside it (a file of many small tensors) costs no copy,
        // so the work per tensor is bounded by its own bytes.
        let mut want = self.window;
        let mut refill = false;
        loop {
            if !self.eof
                && (refill
                    || (self.end - self.pos < PARALLEL_MIN
                        && memchr(b']', &self.buf[self.pos..self.end]).is_none()))
            {
                self.fill(want)?;
            }
            let at = self.offset();
            // The bulk: every complete element before the window's last
            // comma (and before the array's end), in parallel pieces.
            if dtype != Dtype::C64 && self.end - self.pos >= PARALLEL_MIN {
                let stop = self.first_close();
                if stop >= PARALLEL_MIN
                    && let Some(cut) = memrchr(b',', &self.buf[self.pos..self.pos + stop])
                {
                    if stop < self.end - self.pos || self.eof {
                        // The array ends in this window: nothing to read on.
                        count += self.parse_in_place(cut, dtype, &mut out, count)?;
                    } else {
                        count += self.parse_window(cut, dtype, &mut out, count)?;
                    }
                    check_limit(count, limit)?;
                    // The window holds more elements, or was read on while
                    // this one was parsed.
                    refill = false;
                    continue;
                }
            }
            let avail = &self.buf[self.pos..self.end];
            // The rest, one element after another.
            tail.clear();
            let step = stream_elements(avail, dtype, &mut tail, self.eof)
                .map_err(|e| e.into_read_error(count, at))?;
            out.append(&tail);
            count += step.count;
            self.pos += step.consumed;
            check_limit(count, limit)?;
            if step.done {
                return Ok((out.into_vec(), count));
            }
            // Every whole element of the window is parsed: read on.
            refill = true;
            if step.consumed == 0 {
                // One element longer than the window: look further.
                want = (self.end - self.pos).max(want) * 2;
                if want > MAX_ELEMENT {
                    return Err(err(JsonErrorKind::ElementTooLong {
                        index: count,
                        max: MAX_ELEMENT,
                    }));
                }
            } else {
                want = self.window;
            }
        }
    }
}

impl<R: Read> Reader<R> {
    /// Parses the `cut` bytes from `pos` (whole elements; a comma follows)
    /// in parallel, and moves past them and the comma. Returns the number
    /// of elements.
    fn parse_in_place(
        &mut self,
        cut: usize,
        dtype: Dtype,
        out: &mut TensorBuf,
        first_index: usize,
    ) -> Result<usize> {
        let at = self.offset();
        let buffers = std::mem::take(&mut self.piece_buffers);
        let pieces = parse_parallel(&self.buf[self.pos..self.pos + cut], dtype, buffers);
        self.pos += cut + 1;
        append_pieces(pieces, out, first_index, at, &mut self.piece_buffers)
    }

    /// Parses the `cut` bytes from `pos` (whole elements; a comma follows)
    /// in parallel, while this thread reads the next window into the spare
    /// buffer behind what follows the cut. Then the spare buffer becomes
    /// the window. Returns the number of elements.
    fn parse_window(
        &mut self,
        cut: usize,
        dtype: Dtype,
        out: &mut TensorBuf,
        first_index: usize,
    ) -> Result<usize> {
        let at = self.offset();
        let rest = self.pos + cut + 1;
        let next_base = self.base + rest as u64;
        let tail = self.end - rest;
        let mut next = std::mem::take(&mut self.spare);
        // What follows the cut fits: it came from a window no larger than
        // this one. The window does not grow with each array that ends
        // inside it (the rest of the window is the start of the next one).
        let size = self.window.max(tail);
        next.resize(size, 0);
        next.truncate(size);
        next.shrink_to(size);
        next[..tail].copy_from_slice(&self.buf[rest..self.end]);
        self.stats.moved += tail as u64;
        self.stats.largest_window = self.stats.largest_window.max(size);
        let region = &self.buf[self.pos..self.pos + cut];
        let src = &mut self.src;
        let eof = self.eof;
        let buffers = std::mem::take(&mut self.piece_buffers);
        let mut parsed = None;
        let read = par::scope(|scope| {
            scope.spawn(|| parsed = Some(parse_parallel(region, dtype, buffers)));
            let end = if eof {
                Ok(tail)
            } else {
                read_into(src, &mut next, tail)
            };
            // Meanwhile, too: where the array ends in the next window.
            end.map(|end| (end, memchr(b']', &next[..end])))
        });
        let pieces = parsed.expect("the scope ran the parse");
        // The spare buffer now holds what follows the cut.
        self.spare = std::mem::replace(&mut self.buf, next);
        self.base += rest as u64;
        self.pos = 0;
        match read {
            Ok((end, close)) => {
                self.end = end;
                self.eof |= end < self.buf.len();
                self.close = Some(CloseScan {
                    from: next_base,
                    to: next_base + end as u64,
                    at: close.map(|i| next_base + i as u64),
                });
            }
            Err(e) => {
                self.end = tail;
                return Err(e);
            }
        }
        append_pieces(pieces, out, first_index, at, &mut self.piece_buffers)
    }
}

/// The first `]` in the input offsets `from..to`, if any.
#[derive(Debug, Clone, Copy)]
struct CloseScan {
    from: u64,
    to: u64,
    at: Option<u64>,
}

impl<R: Read> Reader<R> {
    /// The offset from `pos` of the first `]` in the window, or the
    /// window's length: from the scan made while the previous window was
    /// parsed when it covers the window, else found now.
    fn first_close(&self) -> usize {
        let (from, to) = (self.offset(), self.base + self.end as u64);
        match self.close {
            Some(c) if c.from <= from && c.to == to && c.at.is_none_or(|at| at >= from) => {
                c.at.map_or(self.end - self.pos, |at| (at - from) as usize)
            }
            _ => memchr(b']', &self.buf[self.pos..self.end]).unwrap_or(self.end - self.pos),
        }
    }
}

/// Reads into `buf[from..]` until it is full or the input ends; returns
/// the end of the valid bytes.
fn read_into(src: &mut impl Read, buf: &mut [u8], mut from: usize) -> Result<usize> {
    while from < buf.len() {
        match src.read(&mut buf[from..]) {
            Ok(0) => break,
            Ok(n) => from += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::Io(e)),
        }
    }
    Ok(from)
}

fn check_limit(count: usize, limit: Option<usize>) -> Result<()> {
    match limit {
        Some(l) if count > l => Err(err(JsonErrorKind::TooManyValues { limit: l })),
        _ => Ok(()),
    }
}

/// How many values the shape allows, when the shape is already known; more
/// values than that stop the read.
fn limit(shape: Option<&[usize]>) -> Option<usize> {
    shape.and_then(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)))
}

/// An error in a run of `data` elements: where (relative to the text the
/// parser was given) and in which element (counting from its first).
#[derive(Debug)]
struct ElementError {
    offset: usize,
    index: usize,
    kind: ElementErrorKind,
}

#[derive(Debug)]
enum ElementErrorKind {
    /// Not JSON.
    Syntax(&'static str),
    /// The input ends inside the array.
    Eof,
    /// JSON, but not a value of the dtype.
    Value(String),
}

impl ElementError {
    /// The message, given the index of the text's first element and the
    /// input offset of the text.
    fn into_read_error(self, first_index: usize, at: u64) -> FormatError {
        match self.kind {
            ElementErrorKind::Syntax(what) => syntax(what, at + self.offset as u64),
            ElementErrorKind::Eof => early_end("a list"),
            ElementErrorKind::Value(m) => err(JsonErrorKind::BadElement {
                index: first_index + self.index,
                reason: m,
            }),
        }
    }
}

/// An error at a byte offset, its element index still unknown.
type At = (usize, ElementErrorKind);

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// What one piece of a window gave: its range in the window, and its
/// bytes and element count or the first error in it.
type Pieces = Vec<(Range<usize>, Result<(Vec<u8>, usize), ElementError>)>;

/// Splits `text` (complete elements separated by commas, no trailing
/// comma) at commas into pieces of about [`PIECE`] bytes and parses them
/// in parallel.
fn parse_parallel(text: &[u8], dtype: Dtype, mut buffers: Vec<Vec<u8>>) -> Pieces {
    let mut pieces: Vec<Range<usize>> = Vec::with_capacity(text.len() / PIECE + 1);
    let mut start = 0;
    while text.len() - start > PIECE {
        match memchr(b',', &text[start + PIECE..]) {
            Some(i) => {
                let comma = start + PIECE + i;
                pieces.push(start..comma);
                start = comma + 1;
            }
            None => break,
        }
    }
    pieces.push(start..text.len());
    let per = dtype.bits().div_ceil(8);
    buffers.resize_with(buffers.len().max(pieces.len()), Vec::new);
    let work: Vec<_> = pieces.into_iter().zip(buffers).collect();
    par::map(work, |(r, mut bytes)| {
        let piece = &text[r.clone()];
        // Every element takes at least two bytes with its comma.
        bytes.clear();
        bytes.reserve((piece.len() / 2 + 1) * per);
        let result = parse_piece(piece, dtype, &mut bytes).map(|n| (bytes, n));
        (r, result)
    })
}

/// Appends the pieces' bytes to `out` in order (copied in parallel) and
/// returns the number of elements; an error names the first bad element
/// (`first_index` is the index of the first element, `at` the input
/// offset of the text). The pieces' buffers are kept in `buffers`.
fn append_pieces(
    pieces: Pieces,
    out: &mut TensorBuf,
    first_index: usize,
    at: u64,
    buffers: &mut Vec<Vec<u8>>,
) -> Result<usize> {
    let mut count = 0;
    let mut parsed = Vec::with_capacity(pieces.len());
    for (r, result) in pieces {
        match result {
            Ok((bytes, n)) => {
                count += n;
                parsed.push(bytes);
            }
            Err(e) => return Err(e.into_read_error(first_index + count, at + r.start as u64)),
        }
    }
    let mut region = out.extend(parsed.iter().map(Vec::len).sum());
    let mut copies = Vec::with_capacity(parsed.len());
    for bytes in &parsed {
        let (head, rest) = region.split_at_mut(bytes.len());
        copies.push((head, bytes));
        region = rest;
    }
    par::map(copies, |(to, from)| to.copy_from_slice(from));
    buffers.extend(parsed);
    Ok(count)
}

/// A tensor's bytes as they are parsed. When its size is known it is
/// allocated zeroed in one piece (fresh pages from the system, not
/// written yet), so that the pages are first touched by the parallel
/// copies of [`append_pieces`] rather than one by one on the reading
/// thread.
struct TensorBuf {
    bytes: Vec<u8>,
    /// How much of `bytes` holds parsed values.
    filled: usize,
}

impl TensorBuf {
    fn sized(len: usize) -> Self {
        TensorBuf {
            bytes: vec![0; len],
            filled: 0,
        }
    }

    fn growing(capacity: usize) -> Self {
        TensorBuf {
            bytes: Vec::with_capacity(capacity),
            filled: 0,
        }
    }

    /// The next `n` bytes, to be written.
    fn extend(&mut self, n: usize) -> &mut [u8] {
        let start = self.filled;
        self.filled += n;
        if self.bytes.len() < self.filled {
            self.bytes.resize(self.filled, 0);
        }
        &mut self.bytes[start..self.filled]
    }

    fn append(&mut self, data: &[u8]) {
        self.extend(data.len()).copy_from_slice(data);
    }

    fn into_vec(mut self) -> Vec<u8> {
        self.bytes.truncate(self.filled);
        self.bytes
    }
}

/// Parses a piece: `value (, value)*` with whitespace around, ending with
/// the text (the array's `]` is not in it). Returns the element count.
fn parse_piece(s: &[u8], dtype: Dtype, out: &mut Vec<u8>) -> Result<usize, ElementError> {
    let mut i = 0;
    let mut count = 0;
    loop {
        if dtype == Dtype::F32 {
            // The bulk of a float model, in a tight loop: plain numbers
            // each followed by a bare comma. Anything else, and the last
            // element, takes the general path below.
            while let Some((x, end)) = number::fast_f32(s, i) {
                if s.get(end) != Some(&b',') {
                    break;
                }
                out.extend_from_slice(&x.to_le_bytes());
                count += 1;
                i = end + 1;
            }
        }
        let start = skip_ws(s, i);
        if start == s.len() {
            return Err(ElementError {
                offset: start,
                index: count,
                kind: ElementErrorKind::Syntax("expected value"),
            });
        }
        let end = match value(s, start, dtype, out, true) {
            Ok(Some(end)) => end,
            // Only the end of the text stops a value early, and that is
            // final here; an empty element is not a value.
            Ok(None) => {
                return Err(ElementError {
                    offset: start,
                    index: count,
                    kind: ElementErrorKind::Syntax("expected value"),
                });
            }
            Err((offset, kind)) => {
                return Err(ElementError {
                    offset,
                    index: count,
                    kind,
                });
            }
        };
        count += 1;
        if s.get(end) == Some(&b',') {
            i = end + 1;
            continue;
        }
        let k = skip_ws(s, end);
        match s.get(k) {
            None => return Ok(count),
            Some(b',') => i = k + 1,
            Some(_) => {
                return Err(ElementError {
                    offset: k,
                    index: count,
                    kind: ElementErrorKind::Syntax("expected `,` or `]`"),
                });
            }
        }
    }
}

/// What [`stream_elements`] got through.
struct Step {
    /// Bytes consumed: whole elements with their separators.
    consumed: usize,
    /// Elements appended.
    count: usize,
    /// The array's `]` was consumed.
    done: bool,
}

/// Parses elements from `s`, which starts where an element does (inside a
/// non-empty array), until the array's `]` or until the text runs out in
/// the middle of an element (then only the whole elements before it count,
/// unless `last`: then the input ends there, which is an error).
fn stream_elements(
    s: &[u8],
    dtype: Dtype,
    out: &mut Vec<u8>,
    last: bool,
) -> Result<Step, ElementError> {
    let mut i = 0;
    let mut count = 0;
    let err = |offset, index, kind| ElementError {
        offset,
        index,
        kind,
    };
    loop {
        let start = skip_ws(s, i);
        let partial = |out: &mut Vec<u8>, len| {
            out.truncate(len);
            if last {
                Err(err(s.len(), count, ElementErrorKind::Eof))
            } else {
                Ok(Step {
                    consumed: start,
                    count,
                    done: false,
                })
            }
        };
        if s.get(start) == Some(&b']') {
            return Err(err(
                start,
                count,
                ElementErrorKind::Syntax("trailing comma"),
            ));
        }
        let len = out.len();
        let end = match value(s, start, dtype, out, last) {
            Ok(Some(end)) => end,
            Ok(None) => return partial(out, len),
            Err((offset, kind)) => return Err(err(offset, count, kind)),
        };
        let k = skip_ws(s, end);
        match s.get(k) {
            None => return partial(out, len),
            Some(b',') => {
                count += 1;
                i = k + 1;
            }
            Some(b']') => {
                return Ok(Step {
                    consumed: k + 1,
                    count: count + 1,
                    done: true,
                });
            }
            Some(_) => {
                return Err(err(
                    k,
                    count,
                    ElementErrorKind::Syntax("expected `,` or `]`"),
                ));
            }
        }
    }
}

/// Parses the value at `s[i]` as an element of `dtype`, appending its
/// bytes. Returns the offset after it, or `None` when `s` ends inside it
/// and is not `last`.
#[inline]
fn value(
    s: &[u8],
    i: usize,
    dtype: Dtype,
    out: &mut Vec<u8>,
    last: bool,
) -> Result<Option<usize>, At> {
    let Some(&b) = s.get(i) else {
        return if last {
            Err((i, ElementErrorKind::Eof))
        } else {
            Ok(None)
        };
    };
    let push = |out: &mut Vec<u8>, dtype, t| {
        values::push_token(out, dtype, t).map_err(|m| (i, ElementErrorKind::Value(m)))
    };
    match b {
        b'-' | b'0'..=b'9' => {
            if dtype == Dtype::F32 {
                if let Some((x, end)) = number::fast_f32(s, i) {
                    // Where `s` may go on, a number at its end may too.
                    if end < s.len() || last {
                        out.extend_from_slice(&x.to_le_bytes());
                        return Ok(Some(end));
                    }
                }
            }
            let (n, len) = match number::scan(&s[i..], last) {
                Ok(x) => x,
                Err(ScanError::Incomplete) => return Ok(None),
                Err(ScanError::Invalid(at, what)) => {
                    return Err((i + at, ElementErrorKind::Syntax(what)));
                }
            };
            match dtype {
                // The bulk of every float model: no detour through push_token.
                Dtype::F32 => {
                    let x = n.to_f32();
                    if x.is_finite() {
                        out.extend_from_slice(&x.to_le_bytes());
                    } else {
                        push(out, dtype, Token::Num(n))?; // says why it does not fit
                    }
                }
                Dtype::C64 => {
                    return Err((
                        i,
                        ElementErrorKind::Value(format!(
                            "C64 values are [re, im] pairs, found {}",
                            n.text()
                        )),
                    ));
                }
                _ => push(out, dtype, Token::Num(n))?,
            }
            Ok(Some(i + len))
        }
        b'"' => {
            let Some((text, end)) = string(s, i, last)? else {
                return Ok(None);
            };
            if dtype == Dtype::C64 {
                return Err((
                    i,
                    ElementErrorKind::Value(format!(
                        "C64 values are [re, im] pairs, found \"{text}\""
                    )),
                ));
            }
            push(out, dtype, Token::Str(&text))?;
            Ok(Some(end))
        }
        b't' | b'f' | b'n' => {
            let (word, token): (&[u8], _) = match b {
                b't' => (b"true", Token::Bool(true)),
                b'f' => (b"false", Token::Bool(false)),
                _ => (b"null", Token::Null),
            };
            let rest = &s[i..];
            if rest.len() < word.len() && !last && word.starts_with(rest) {
                return Ok(None);
            }
            if !rest.starts_with(word) {
                return Err((i, ElementErrorKind::Syntax("expected value")));
            }
            if dtype == Dtype::C64 {
                return Err((
                    i,
                    ElementErrorKind::Value(format!(
                        "C64 values are [re, im] pairs, found {token}"
                    )),
                ));
            }
            push(out, dtype, token)?;
            Ok(Some(i + word.len()))
        }
        b'[' if dtype == Dtype::C64 => pair(s, i, out, last),
        b'[' => Err((
            i,
            ElementErrorKind::Value(format!(
                "a nested array in a {dtype} tensor (data is a flat array)"
            )),
        )),
        b'{' => Err((
            i,
            ElementErrorKind::Value(format!("an object is not a valid {dtype} value")),
        )),
        _ => Err((i, ElementErrorKind::Syntax("expected value"))),
    }
}

/// A C64 value `[re, im]` at `s[i]`, each part read as F32.
fn pair(s: &[u8], i: usize, out: &mut Vec<u8>, last: bool) -> Result<Option<usize>, At> {
    let value_err = |at, m: &str| Err((at, ElementErrorKind::Value(m.to_owned())));
    let mut j = i + 1;
    for part in 0..2 {
        j = skip_ws(s, j);
        if part == 1 {
            match s.get(j) {
                Some(b',') => j = skip_ws(s, j + 1),
                Some(b']') => return value_err(j, "C64 pair has fewer than 2 parts"),
                Some(_) => return Err((j, ElementErrorKind::Syntax("expected `,` or `]`"))),
                None if last => return Err((j, ElementErrorKind::Eof)),
                None => return Ok(None),
            }
        }
        match s.get(j) {
            Some(b'-' | b'0'..=b'9' | b'"') => match value(s, j, Dtype::F32, out, last)? {
                Some(end) => j = end,
                None => return Ok(None),
            },
            Some(b']') => return value_err(j, "C64 pair has fewer than 2 parts"),
            Some(b'[' | b'{' | b't' | b'f' | b'n') => {
                return value_err(j, "C64 pair parts are numbers or strings");
            }
            Some(_) => return Err((j, ElementErrorKind::Syntax("expected value"))),
            None if last => return Err((j, ElementErrorKind::Eof)),
            None => return Ok(None),
        }
    }
    j = skip_ws(s, j);
    match s.get(j) {
        Some(b']') => Ok(Some(j + 1)),
        Some(b',') => value_err(j, "C64 pair has more than 2 parts"),
        Some(_) => Err((j, ElementErrorKind::Syntax("expected `,` or `]`"))),
        None if last => Err((j, ElementErrorKind::Eof)),
        None => Ok(None),
    }
}

/// The string at `s[i]` (a `"`), escapes decoded, and the offset after it;
/// `None` when `s` ends inside it and is not `last`.
fn string(s: &[u8], i: usize, last: bool) -> Result<Option<(Cow<'_, str>, usize)>, At> {
    let rest = &s[i + 1..];
    let incomplete = || {
        if last {
            Err((s.len(), ElementErrorKind::Eof))
        } else {
            Ok(None)
        }
    };
    match memchr2(b'"', b'\\', rest) {
        Some(k) if rest[k] == b'"' => {
            let inner = &rest[..k];
            if inner.iter().any(|&b| b < 0x20) {
                return Err((
                    i,
                    ElementErrorKind::Syntax("a control character in a string"),
                ));
            }
            match std::str::from_utf8(inner) {
                Ok(t) => Ok(Some((Cow::Borrowed(t), i + k + 2))),
                Err(_) => Err((i, ElementErrorKind::Syntax("invalid UTF-8 in a string"))),
            }
        }
        Some(_) => {
            // Escapes: find the closing quote, then let serde_json decode.
            let mut k = 0;
            let close = loop {
                match rest.get(k) {
                    None => return incomplete(),
                    Some(b'\\') => k += 2,
                    Some(b'"') => break k,
                    Some(_) => k += 1,
                }
            };
            let raw = &s[i..i + close + 2];
            match serde_json::from_slice::<String>(raw) {
                Ok(t) => Ok(Some((Cow::Owned(t), i + close + 2))),
                Err(_) => Err((i, ElementErrorKind::Syntax("an invalid string"))),
            }
        }
        None => incomplete(),
    }
}

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
        let model = reader.model().expect("the file is valid");
        (model.tensors.len(), reader.stats)
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
