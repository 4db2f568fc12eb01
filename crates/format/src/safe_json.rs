//! JSON output that is exact and still safe on a terminal.
//!
//! serde_json escapes the C0 controls in strings but writes DEL, the C1
//! controls and the bidi and zero-width characters (U+202E, U+2066,
//! U+200B, ...) as themselves: `modeltool inspect --format json` on a
//! hostile file would reorder what the terminal shows. [`write_json`]
//! writes those as `\uXXXX` escapes instead, which every JSON parser reads
//! back as the same string.

use std::io::{self, Write};

use crate::text::is_unsafe_char;
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Writes `value` as pretty JSON, every [unsafe
/// character](is_unsafe_char) in a string written
/// as a `\uXXXX` escape.
///
/// ```
/// let mut out = Vec::new();
/// modeltool_format::text::write_json(&mut out, &["\u{202e}txt.exe", "\u{1b}[2J"])?;
/// let text = String::from_utf8(out)?;
/// assert_eq!(text, "[\n  \"\\u202etxt.exe\",\n  \"\\u001b[2J\"\n]");
/// let back: Vec<String> = serde_json::from_str(&text)?;
/// assert_eq!(back, ["\u{202e}txt.exe", "\u{1b}[2J"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_json<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> serde_json::Result<()> {
    let mut ser =
        serde_json::Serializer::with_formatter(out, SafeFormatter(PrettyFormatter::new()));
    value.serialize(&mut ser)
}

/// serde_json's pretty formatter, with unsafe characters escaped.
struct SafeFormatter(PrettyFormatter<'static>);

impl Formatter for SafeFormatter {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe_char(c) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}
