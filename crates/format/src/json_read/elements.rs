//! Elements of a `data` array: numbers, strings, literals and C64 pairs
//! turned into a dtype's bytes, with the offset and index of the first bad
//! one.

use super::*;

/// An error in a run of `data` elements: where (relative to the text the
/// parser was given) and in which element (counting from its first).
#[derive(Debug)]
pub(super) struct ElementError {
    pub(super) offset: usize,
    pub(super) index: usize,
    pub(super) kind: ElementErrorKind,
}

#[derive(Debug)]
pub(super) enum ElementErrorKind {
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
    pub(super) fn into_read_error(self, first_index: usize, at: u64) -> FormatError {
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
pub(super) type At = (usize, ElementErrorKind);

pub(super) fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while s.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

/// Parses a piece: `value (, value)*` with whitespace around, ending with
/// the text (the array's `]` is not in it). Returns the element count.
pub(super) fn parse_piece(
    s: &[u8],
    dtype: Dtype,
    out: &mut Vec<u8>,
) -> Result<usize, ElementError> {
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
pub(super) struct Step {
    /// Bytes consumed: whole elements with their separators.
    pub(super) consumed: usize,
    /// Elements appended.
    pub(super) count: usize,
    /// The array's `]` was consumed.
    pub(super) done: bool,
}

/// Parses elements from `s`, which starts where an element does (inside a
/// non-empty array), until the array's `]` or until the text runs out in
/// the middle of an element (then only the whole elements before it count,
/// unless `last`: then the input ends there, which is an error).
pub(super) fn stream_elements(
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
        if dtype == Dtype::F32 {
            // The bulk of a float model, as in `parse_piece`: plain numbers,
            // each followed by a bare comma or the array's end. Anything
            // else takes the general path below.
            while let Some((x, end)) = number::fast_f32(s, skip_ws(s, i)) {
                match s.get(end) {
                    Some(b',') => {
                        out.extend_from_slice(&x.to_le_bytes());
                        count += 1;
                        i = end + 1;
                    }
                    Some(b']') => {
                        out.extend_from_slice(&x.to_le_bytes());
                        return Ok(Step {
                            consumed: end + 1,
                            count: count + 1,
                            done: true,
                        });
                    }
                    _ => break,
                }
            }
        }
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
pub(super) fn value(
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
                            Token::Num(n)
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
                        "C64 values are [re, im] pairs, found {}",
                        Token::Str(&text)
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
pub(super) fn pair(s: &[u8], i: usize, out: &mut Vec<u8>, last: bool) -> Result<Option<usize>, At> {
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
pub(super) fn string(s: &[u8], i: usize, last: bool) -> Result<Option<(Cow<'_, str>, usize)>, At> {
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
