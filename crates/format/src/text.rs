//! Strings that came from a file, made safe and bounded for a terminal.
//!
//! A tensor name, a metadata key or value, a layer type or a shard file name
//! is data written by whoever made the file. Printed raw, `ESC[2J` clears the
//! screen, cursor movements rewrite earlier lines (a `FAILED` verdict can be
//! painted over with `OK`), and a U+202E override reverses what follows. And
//! a 65,536-character layer type is not a table cell.
//!
//! [`escape`] shows every control, format and bidi character as a visible
//! `\u{..}` escape; [`cut`] escapes and bounds a string to a number of
//! terminal columns, ending it with `…` and its full length; [`middle`] keeps
//! both ends of a long name (`encoder.layer.0…attention.output.dense.weight`).
//! [`Escaped`] does the same inside `format!` for error messages. JSON output
//! stays exact: [`write_json`] writes the same characters as `\uXXXX`
//! escapes, which every JSON parser reads back as the original string.
//!
//! ```
//! use modeltool_format::text::{cut, escape, middle};
//!
//! assert_eq!(escape("fc\u{1b}[2J.weight"), "fc\\u{1b}[2J.weight");
//! assert_eq!(escape("\u{202e}evil"), "\\u{202e}evil");
//! assert_eq!(escape("plain.name"), "plain.name");
//! let long = "x".repeat(1000);
//! assert_eq!(cut(&long, 20), "xxxxxx… (1000 chars)");
//! assert_eq!(middle("encoder.layer.11.attention.output.dense.weight", 24), "encoder.laye…ense.weight");
//! ```

use std::borrow::Cow;
use std::fmt;

use unicode_width::UnicodeWidthChar;

pub use crate::safe_json::write_json;

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls,
/// DEL, the line and paragraph separators, and the invisible format
/// characters (bidi embeddings, overrides and isolates, marks, zero-width
/// characters, the byte order mark, interlinear annotation, tags).
pub fn is_unsafe_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{ad}'                      // soft hyphen
        | '\u{061c}'                    // Arabic letter mark
        | '\u{180e}'                    // Mongolian vowel separator
        | '\u{200b}'..='\u{200f}'       // zero-width space..right-to-left mark
        | '\u{2028}'..='\u{202e}'       // separators, embeddings and overrides
        | '\u{2060}'..='\u{206f}'       // word joiner.., isolates, deprecated format
        | '\u{feff}'                    // byte order mark
        | '\u{fff9}'..='\u{fffb}'       // interlinear annotation
        | '\u{e0000}'..='\u{e007f}'     // tags
    )
}

/// `s` with every [unsafe character](is_unsafe_char) written as `\u{hex}`;
/// borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    if is_unsafe_char(c) {
        use fmt::Write;
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    } else {
        out.push(c);
    }
}

/// Terminal columns `c` takes once escaped.
fn columns(c: char) -> usize {
    if is_unsafe_char(c) {
        // `\u{` + hex digits + `}`
        let digits = (32 - (c as u32).leading_zeros()).div_ceil(4).max(1) as usize;
        4 + digits
    } else {
        c.width().unwrap_or(0)
    }
}

/// Terminal columns `s` takes once [escaped](escape).
pub fn width(s: &str) -> usize {
    s.chars().map(columns).sum()
}

/// `s` [escaped](escape) and, if wider than `max` columns, cut so that it
/// fits: as many leading characters as leave room for `… (N chars)`, where
/// N is the length of the original. Never wider than `max` (for `max` of at
/// least 16; below that only the `…` is kept after as much as fits).
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return escape(s);
    }
    let tail = format!("… ({} chars)", s.chars().count());
    let tail_cols = width(&tail);
    let (tail, room) = if tail_cols < max {
        (tail, max - tail_cols)
    } else {
        ("…".to_owned(), max.saturating_sub(1))
    };
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = columns(c);
        if used + w > room {
            break;
        }
        push_escaped(&mut out, c);
        used += w;
    }
    out.push_str(&tail);
    Cow::Owned(out)
}

/// `s` [escaped](escape) and, if wider than `max` columns, shortened in the
/// middle: its beginning and its end (where a tensor name says the most)
/// with `…` between them. Never wider than `max` (for `max` >= 1).
pub fn middle(s: &str, max: usize) -> Cow<'_, str> {
    if width(s) <= max {
        return escape(s);
    }
    let room = max.saturating_sub(1);
    let head_room = room.div_ceil(2);
    let tail_room = room - head_room;
    let mut head = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = columns(c);
        if used + w > head_room {
            break;
        }
        push_escaped(&mut head, c);
        used += w;
    }
    let mut tail: Vec<char> = Vec::new();
    let mut tail_text = String::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let w = columns(c);
        if used + w > tail_room {
            break;
        }
        tail.push(c);
        used += w;
    }
    for &c in tail.iter().rev() {
        push_escaped(&mut tail_text, c);
    }
    Cow::Owned(format!("{head}…{tail_text}"))
}

/// How many columns [`Escaped`] keeps of a string in an error message.
pub const ERROR_COLUMNS: usize = 120;

/// A string from a file, for `format!` in a message: [escaped](escape) and
/// [cut] to [`ERROR_COLUMNS`].
///
/// ```
/// use modeltool_format::text::Escaped;
/// let name = "w\u{1b}[1A";
/// assert_eq!(format!("tensor `{}` is damaged", Escaped(name)), "tensor `w\\u{1b}[1A` is damaged");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&cut(self.0, ERROR_COLUMNS))
    }
}

/// A shape in at most `max` columns (at least 16): `[30522, 384]`, or its
/// first dimensions and how many there are, `[1, 1, 1, … 22000 dims]`.
/// A file may declare any number of dimensions; the text stays bounded.
///
/// ```
/// use modeltool_format::text::shape;
/// assert_eq!(shape(&[30522u64, 384], 40), "[30522, 384]");
/// assert_eq!(shape(&[7u64; 22_000], 24), "[7, 7, … 22000 dims]");
/// ```
pub fn shape<T: fmt::Display>(dims: &[T], max: usize) -> String {
    use fmt::Write as _;
    let mut full = String::from("[");
    for (i, d) in dims.iter().enumerate() {
        if i > 0 {
            full.push_str(", ");
        }
        let _ = write!(full, "{d}");
        if full.len() > max {
            break;
        }
    }
    full.push(']');
    if full.len() <= max {
        return full;
    }
    let tail = format!(", … {} dims]", dims.len());
    let mut s = String::from("[");
    for (i, d) in dims.iter().enumerate() {
        let piece = if i == 0 {
            d.to_string()
        } else {
            format!(", {d}")
        };
        // The first dimension always shows, even a 20-digit one.
        if i > 0 && s.len() + piece.len() + tail.len() > max.max(16) {
            break;
        }
        s.push_str(&piece);
    }
    s.push_str(&tail);
    s
}

/// Writes `n` with a comma every three digits: `22,713,728`.
///
/// ```
/// assert_eq!(modeltool_format::text::thousands(22_713_728), "22,713,728");
/// ```
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A count of things in a sentence, the number with separators and the
/// noun in the singular for one: `1 tensor`, `0 tensors`, `1,024 rows`.
/// The noun is given in the singular and takes an `s` otherwise.
///
/// ```
/// use modeltool_format::text::Count;
/// assert_eq!(Count(1, "input").to_string(), "1 input");
/// assert_eq!(Count(12_000, "row").to_string(), "12,000 rows");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Count<'a>(pub u64, pub &'a str);

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.0 == 1 { "" } else { "s" };
        write!(f, "{} {}{s}", thousands(self.0), self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unsafe_character_is_escaped() {
        for c in [
            '\u{0}',
            '\u{7}',
            '\u{8}',
            '\t',
            '\n',
            '\r',
            '\u{1b}',
            '\u{7f}',
            '\u{85}',
            '\u{9b}',
            '\u{200b}',
            '\u{200e}',
            '\u{202a}',
            '\u{202e}',
            '\u{2066}',
            '\u{2069}',
            '\u{feff}',
            '\u{2028}',
            '\u{e0041}',
        ] {
            let s = format!("a{c}b");
            let e = escape(&s);
            assert!(!e.chars().any(is_unsafe_char), "{c:?} survived in {e:?}");
            assert_eq!(e, format!("a\\u{{{:x}}}b", c as u32));
        }
    }

    #[test]
    fn ordinary_text_is_borrowed_and_unchanged() {
        for s in [
            "encoder.layer.0.weight",
            "Gewichte.ä",
            "权重",
            "emoji 🙂",
            "",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(_)));
            assert_eq!(cut(s, 80), s);
            assert_eq!(middle(s, 80), s);
        }
    }

    #[test]
    fn cut_and_middle_never_exceed_the_width() {
        let samples = [
            "x".repeat(65_536),
            "\u{1b}".repeat(500),
            "权".repeat(300),
            format!("{}\u{202e}{}", "a".repeat(50), "b".repeat(50)),
        ];
        for s in &samples {
            for max in [16usize, 17, 20, 40, 80, 200] {
                if width(s) <= max {
                    assert_eq!(cut(s, max), escape(s));
                    continue;
                }
                let c = cut(s, max);
                assert!(width(&c) <= max, "cut {} > {max}: {c}", width(&c));
                assert!(
                    c.ends_with(&format!("({} chars)", s.chars().count())),
                    "{max}: {c}"
                );
                assert!(!c.chars().any(is_unsafe_char));
                let m = middle(s, max);
                assert!(width(&m) <= max, "middle {} > {max}: {m}", width(&m));
                assert!(m.contains('…'));
                assert!(!m.chars().any(is_unsafe_char));
            }
        }
    }

    #[test]
    fn an_escape_sequence_is_never_split() {
        // A cut that lands inside `\u{1b}` keeps the whole escape or none.
        let s = format!("{}\u{1b}{}", "a".repeat(5), "b".repeat(100));
        for max in 16..40 {
            let c = cut(&s, max);
            let escapes = c.matches("\\u{1b}").count();
            let backslashes = c.matches('\\').count();
            assert_eq!(escapes, backslashes, "{c}");
        }
    }
}
