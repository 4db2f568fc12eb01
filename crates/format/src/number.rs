//! JSON numbers: the strict RFC 8259 grammar, checked by hand (Rust's and
//! most fast float parsers accept `+1`, `.5`, `1.`, `inf`, which JSON does
//! not), and conversion that rounds the decimal once, straight to the
//! target type.
//!
//! For F32, one conversion serves every path ([`decimal_to_f32`]): with at
//! most 19 significant digits as an integer `m <= 2^53` and `|e| <= 22`,
//! `m * fl(10^e)` is within 3 f64 ulps of the exact value, and rounding it
//! to f32 is correct unless an f32 midpoint lies that close; those, and
//! every other case, go to the standard library's parser, which rounds
//! correctly to f32 directly. F64 uses Clinger's fast path (one exact
//! multiplication or division), else the same parser. Text is read by
//! [`fast_f32`] (the common shapes, without a grammar pass) or [`scan`].
//!
//! Measured against `lexical-core` 1.0 (`parse_partial_with_options` with
//! its JSON number format, which is strict and rounds correctly) on 67 MB of
//! f32 values as modeltool writes them (a BERT-shaped file) and on 40 MB of
//! mixed forms (exponents, integers, 17-digit doubles), this module was
//! faster on both (about 1.5-2x and 1-1.3x), so it stays.

use std::cmp::Ordering;

/// Powers of ten that are exact in f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A JSON number whose text has been checked against the grammar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Number<'a> {
    /// The number exactly as written (ASCII, checked by [`scan`]).
    text: &'a [u8],
    negative: bool,
    /// The first (at most) 19 significant digits as an integer.
    mantissa: u64,
    /// The value is `mantissa * 10^exp10` when `exact`.
    exp10: i64,
    /// False when significant digits were dropped from `mantissa`.
    exact: bool,
    /// No fraction and no exponent: a JSON integer.
    pub(crate) integer: bool,
}

/// Why text is not a JSON number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The text ends where the number could go on (only when not final).
    Incomplete,
    /// Not a number: the offset of the offending byte and what is wrong.
    Invalid(usize, &'static str),
}

/// Significant digits kept in a u64 (10^19 < 2^64).
const MAX_DIGITS: u32 = 19;

/// Reads the number at the start of `s` (which starts with `-` or a digit)
/// and returns it with its length. `last` says that `s` ends where the
/// input ends; otherwise a number that runs to the end of `s` is
/// [`ScanError::Incomplete`], as more digits may follow.
#[inline]
pub(crate) fn scan(s: &[u8], last: bool) -> Result<(Number<'_>, usize), ScanError> {
    let end_or = |i: usize, what: &'static str| {
        if i >= s.len() && !last {
            ScanError::Incomplete
        } else {
            ScanError::Invalid(i, what)
        }
    };
    let mut i = 0;
    let negative = s.first() == Some(&b'-');
    if negative {
        i = 1;
    }
    let mut mantissa = 0u64;
    let mut digits = 0u32; // significant digits in `mantissa`
    let mut exp10 = 0i64;
    let mut exact = true;
    match s.get(i) {
        Some(b'0') => {
            i += 1;
            if s.get(i).is_some_and(u8::is_ascii_digit) {
                return Err(ScanError::Invalid(i, "a number with a leading zero"));
            }
        }
        Some(b'1'..=b'9') => {
            while let Some(&c) = s.get(i) {
                if !c.is_ascii_digit() {
                    break;
                }
                if digits < MAX_DIGITS {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    digits += 1;
                } else {
                    exact &= c == b'0';
                    exp10 += 1;
                }
                i += 1;
            }
        }
        _ => return Err(end_or(i, "a number without digits")),
    }
    let mut integer = true;
    if s.get(i) == Some(&b'.') {
        integer = false;
        i += 1;
        let start = i;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            if digits < MAX_DIGITS {
                if mantissa != 0 || c != b'0' {
                    mantissa = mantissa * 10 + u64::from(c - b'0');
                    digits += 1;
                }
                exp10 -= 1;
            } else if c != b'0' {
                exact = false;
            }
            i += 1;
        }
        if i == start {
            return Err(end_or(i, "a number with no digits after `.`"));
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        integer = false;
        i += 1;
        let exp_negative = exponent_sign(s, &mut i);
        let start = i;
        let mut e = 0i64;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            // Saturate: beyond this every finite type is 0 or infinity.
            e = (e * 10 + i64::from(c - b'0')).min(1 << 40);
            i += 1;
        }
        if i == start {
            return Err(end_or(i, "a number with no digits in its exponent"));
        }
        exp10 += if exp_negative { -e } else { e };
    }
    if i >= s.len() && !last {
        return Err(ScanError::Incomplete);
    }
    Ok((
        Number {
            text: &s[..i],
            negative,
            mantissa,
            exp10,
            exact,
            integer,
        },
        i,
    ))
}

/// The value of 8 ASCII digits (little-endian in a u64, first digit in the
/// low byte), in three multiplications (the SWAR trick of simdjson).
#[inline(always)]
fn parse_eight(v: u64) -> u64 {
    const MASK: u64 = 0x0000_00ff_0000_00ff;
    const MUL1: u64 = 0x000f_4240_0000_0064; // 100 + (1000000 << 32)
    const MUL2: u64 = 0x0000_2710_0000_0001; // 1 + (10000 << 32)
    let v = v - 0x3030_3030_3030_3030;
    let v = v * 10 + (v >> 8);
    ((v & MASK).wrapping_mul(MUL1) + ((v >> 16) & MASK).wrapping_mul(MUL2)) >> 32
}

/// `10^-e` rounded to f64, for `0 <= e <= 22`.
const NEG_POW10: [f64; 23] = [
    1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
    1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22,
];

/// Powers of ten as integers.
const POW10_U64: [u64; 16] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
];

/// A mask with bit 7 set in every byte of `v` (little-endian) that is not
/// an ASCII digit, exact up to and including the first such byte (carries
/// may mark the bytes after it, which nobody looks at).
#[inline(always)]
fn non_digits(v: u64) -> u64 {
    (v.wrapping_add(0x4646_4646_4646_4646) | v.wrapping_sub(0x3030_3030_3030_3030))
        & 0x8080_8080_8080_8080
}

/// Reads a run of digits at `s[i]` into `m` (`m * 10 + digit` each, with
/// wrap-around: the caller rejects more than 19 digits), eight at a time.
/// Returns the offset after the run.
#[inline(always)]
fn digit_run(s: &[u8], mut i: usize, m: &mut u64) -> usize {
    while let Some(chunk) = s.get(i..i + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let mask = non_digits(v);
        if mask == 0 {
            *m = m.wrapping_mul(100_000_000).wrapping_add(parse_eight(v));
            i += 8;
            continue;
        }
        let n = (mask.trailing_zeros() / 8) as usize; // digits before the first non-digit
        if n > 0 {
            *m = m
                .wrapping_mul(POW10_U64[n])
                .wrapping_add(parse_eight(digits_low(v, n)));
            i += n;
        }
        return i;
    }
    // Fewer than 8 bytes left.
    while let Some(&c) = s.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        *m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        i += 1;
    }
    i
}

/// The common case, fast: the number at `s[i]` as the nearest f32, when it
/// has at most 19 digits and an exponent within 22; with the offset after
/// it. `None` means "ask [`scan`]", which also checks the grammar:
/// everything unusual, invalid text included, lands there. The caller
/// checks what follows the number.
///
/// The value is `m * 10^e`, computed in f64 as `m * fl(10^e)` (one
/// multiplication, no division): within 3 f64 ulps of the exact value, so
/// rounding it to f32 gives the correctly rounded f32 unless an f32
/// midpoint lies within those ulps, which the low 29 bits show.
#[inline(always)]
pub(crate) fn fast_f32(s: &[u8], i: usize) -> Option<(f32, usize)> {
    match short_f32(s, i) {
        Some(parsed) => Some(parsed),
        None => general_f32(s, i),
    }
}

/// [`fast_f32`] for the shape most weights are written in, `[-]d.ddd…`:
/// one integer digit and 1 to 15 fraction digits, no exponent, with 16
/// bytes of text after the point to look at. Two 8-byte loads find where
/// the digits stop, without a loop.
#[inline(always)]
fn short_f32(s: &[u8], i: usize) -> Option<(f32, usize)> {
    let negative = *s.get(i)? == b'-';
    let i = i + usize::from(negative);
    let head: &[u8; 18] = s.get(i..i + 18)?.try_into().ok()?;
    let int = head[0].wrapping_sub(b'0');
    if int > 9 || head[1] != b'.' {
        return None;
    }
    let [a, b] = [&head[2..10], &head[10..18]].map(|h| {
        let h: [u8; 8] = h.try_into().expect("8 bytes");
        u64::from_le_bytes(h)
    });
    let first = non_digits(a);
    let (n, frac) = if first != 0 {
        // 1 to 7 fraction digits.
        let n = (first.trailing_zeros() / 8) as usize;
        if n == 0 {
            return None;
        }
        (n, parse_eight(digits_low(a, n)))
    } else {
        // 8 to 15.
        let k = (non_digits(b).trailing_zeros() / 8) as usize;
        if k == 8 {
            return None;
        }
        let low = if k == 0 {
            0
        } else {
            parse_eight(digits_low(b, k))
        };
        (8 + k, parse_eight(a) * POW10_U64[k] + low)
    };
    let end = i + 2 + n;
    if let Some(b'e' | b'E') = s.get(end) {
        return None;
    }
    let m = u64::from(int) * POW10_U64[n] + frac;
    Some((decimal_to_f32(negative, m, -(n as i64))?, end))
}

/// The first `n` (1 to 7) ASCII digits of `v` as the 8 digits of the same
/// value: moved to the top, with `'0'`s below.
#[inline(always)]
fn digits_low(v: u64, n: usize) -> u64 {
    let shift = 8 * (8 - n) as u32;
    (v << shift) | (0x3030_3030_3030_3030 >> (64 - shift))
}

/// `v` (within 3 f64 ulps of a decimal's exact magnitude) rounded to f32,
/// with the sign; `None` near an f32 midpoint, where those ulps could
/// decide the rounding, and among the subnormals (whose midpoints lie
/// elsewhere): then the exact parser decides. No overflow is possible:
/// callers keep `v` below 2^53 * 10^22, under f32::MAX.
#[inline(always)]
fn nearest_f32(negative: bool, v: f64) -> Option<f32> {
    let low = v.to_bits() & 0x1fff_ffff;
    if low.abs_diff(0x1000_0000) <= 8 || (v != 0.0 && v < f64::from(f32::MIN_POSITIVE)) {
        return None;
    }
    Some(f32::from_bits(
        (v as f32).to_bits() | u32::from(negative) << 31,
    ))
}

/// [`fast_f32`] for any number with a small exponent.
#[inline(always)]
fn general_f32(s: &[u8], mut i: usize) -> Option<(f32, usize)> {
    let negative = s.get(i) == Some(&b'-');
    i += usize::from(negative);
    let mut m = 0u64;
    let start = i;
    match *s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digit_run(s, i, &mut m),
        _ => return None,
    }
    let mut digits = i - start;
    let mut exp10: i64 = 0;
    match s.get(i) {
        Some(b'.') => {
            let frac = i + 1;
            i = digit_run(s, frac, &mut m);
            if i == frac {
                return None;
            }
            digits += i - frac;
            exp10 = -((i - frac) as i64);
        }
        Some(b'0'..=b'9') => return None, // a leading zero
        _ => {}
    }
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        let exp_negative = exponent_sign(s, &mut i);
        let start = i;
        let mut e = 0i64;
        while let Some(&c) = s.get(i) {
            if !c.is_ascii_digit() || i - start == 4 {
                break;
            }
            e = e * 10 + i64::from(c - b'0');
            i += 1;
        }
        if i == start || s.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        exp10 += if exp_negative { -e } else { e };
    }
    if digits > MAX_DIGITS as usize {
        return None;
    }
    Some((decimal_to_f32(negative, m, exp10)?, i))
}

/// The one decimal-to-f32 conversion of the fast paths: `m * 10^exp10`
/// with its sign, as the nearest f32, when `m <= 2^53` and
/// `|exp10| <= 22` and no f32 midpoint is near (see [`nearest_f32`]);
/// `None` sends the number to the standard library's exact parser.
#[inline(always)]
fn decimal_to_f32(negative: bool, m: u64, exp10: i64) -> Option<f32> {
    if m > 1 << 53 || !(-22..=22).contains(&exp10) {
        return None;
    }
    let v = if exp10 >= 0 {
        m as f64 * POW10[exp10 as usize]
    } else {
        m as f64 * NEG_POW10[(-exp10) as usize]
    };
    nearest_f32(negative, v)
}

impl<'a> Number<'a> {
    /// The number exactly as written.
    pub(crate) fn text(&self) -> &'a str {
        std::str::from_utf8(self.text).expect("`scan` admits only ASCII")
    }

    /// The value when Clinger's fast path applies: correctly rounded f64.
    #[inline]
    fn fast_f64(&self) -> Option<f64> {
        if !self.exact || self.mantissa > 1 << 53 || !(-22..=22).contains(&self.exp10) {
            return None;
        }
        let m = self.mantissa as f64;
        let v = if self.exp10 >= 0 {
            m * POW10[self.exp10 as usize]
        } else {
            m / POW10[(-self.exp10) as usize]
        };
        Some(if self.negative { -v } else { v })
    }

    /// The nearest f64 (ties to even); infinite when beyond f64's range.
    pub(crate) fn to_f64(self) -> f64 {
        match self.fast_f64() {
            Some(v) => v,
            None => self.text().parse().expect("JSON numbers are Rust floats"),
        }
    }

    /// The nearest f32 (ties to even), rounded once from the decimal;
    /// infinite when beyond f32's range.
    #[inline]
    pub(crate) fn to_f32(self) -> f32 {
        if self.exact
            && let Some(x) = decimal_to_f32(self.negative, self.mantissa, self.exp10)
        {
            return x;
        }
        self.text().parse().expect("JSON numbers are Rust floats")
    }

    /// The exact value of an integer (`None` when it is not a JSON integer
    /// or beyond 128 bits).
    pub(crate) fn to_i128(self) -> Option<i128> {
        if !self.integer {
            return None;
        }
        if self.exact && self.exp10 == 0 {
            let m = i128::from(self.mantissa);
            return Some(if self.negative { -m } else { m });
        }
        self.text().parse().ok()
    }

    /// Compares the magnitude of the decimal with the magnitude of `v`
    /// (finite, non-zero), exactly.
    pub(crate) fn cmp_magnitude(&self, v: f64) -> Ordering {
        let (digits, point) = decimal_digits(self.text());
        // Every f64 has a finite decimal expansion; 800 digits hold any of them.
        let exact = format!("{:.800e}", v.abs());
        let (mantissa, exp) = exact.split_once('e').expect("`{:e}` writes an exponent");
        let v_digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        let v_point = exp
            .parse::<i64>()
            .expect("`{:e}` writes an integer exponent")
            + 1;
        compare_decimals(&digits, point, trim_zeros(&v_digits).0, v_point)
    }
}

/// The significant digits of a (valid) JSON number without leading or
/// trailing zeros, and `p` such that its magnitude is `0.<digits> * 10^p`.
fn decimal_digits(text: &str) -> (Vec<u8>, i64) {
    let (mantissa, exp) = match text.find(['e', 'E']) {
        Some(i) => {
            let exp = &text[i + 1..];
            // Saturated like `scan` does; such a value is 0 or infinite anyway.
            let huge = if exp.starts_with('-') {
                -(1 << 40)
            } else {
                1 << 40
            };
            (
                &text[..i],
                exp.parse::<i64>()
                    .unwrap_or(huge)
                    .clamp(-(1 << 40), 1 << 40),
            )
        }
        None => (text, 0),
    };
    let mantissa = mantissa.trim_start_matches('-');
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let (digits, leading) = trim_zeros(&all);
    // all = leading zeros, digits, trailing zeros; value = all * 10^(exp - frac.len()).
    let point = exp.saturating_sub(frac.len() as i64) + (all.len() - leading) as i64;
    (digits.to_vec(), point)
}

/// Strips leading and trailing `0` digits; also returns how many led.
fn trim_zeros(d: &[u8]) -> (&[u8], usize) {
    let leading = d.iter().take_while(|&&c| c == b'0').count();
    let d = &d[leading..];
    let trailing = d.iter().rev().take_while(|&&c| c == b'0').count();
    (&d[..d.len() - trailing], leading)
}

/// Compares `0.a * 10^pa` with `0.b * 10^pb` (digit strings without
/// leading or trailing zeros; an empty string is zero).
fn compare_decimals(a: &[u8], pa: i64, b: &[u8], pb: i64) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        (false, false) => {}
    }
    pa.cmp(&pb).then_with(|| a.cmp(b))
}

/// Reads an optional `+` or `-` after an exponent's `e` at `*i`; true for `-`.
fn exponent_sign(s: &[u8], i: &mut usize) -> bool {
    match s.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Number<'_> {
        let (n, len) = scan(s.as_bytes(), true).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(len, s.len(), "{s}");
        n
    }

    #[test]
    fn the_json_grammar_is_strict() {
        for bad in ["-", "01", "-01", "1.", "1.e5", "1e", "1e+", "-a", "00"] {
            assert!(
                matches!(scan(bad.as_bytes(), true), Err(ScanError::Invalid(..))),
                "{bad}"
            );
        }
        // A number stops at the first byte that cannot continue it.
        assert_eq!(scan(b"1.5,", true).map(|(_, l)| l), Ok(3));
        assert_eq!(scan(b"-0]", true).map(|(_, l)| l), Ok(2));
        // Where the text may go on, a number at its end is incomplete.
        for part in ["1", "1.", "1.5", "1e", "1e5", "-"] {
            assert_eq!(
                scan(part.as_bytes(), false).map(|(_, l)| l),
                Err(ScanError::Incomplete),
                "{part}"
            );
        }
    }

    #[test]
    fn conversions_are_correctly_rounded() {
        for s in [
            "0",
            "-0.0",
            "1",
            "0.1",
            "-3.4028235e38",
            "1.0000000596046448",
            "9223372586610589697",
            "1e-45",
            "7e-46",
            "1.17549435e-38",
            "123456789012345678901234567890",
            "0.000000000000000000000000000001",
            "4.9e-324",
            "1.7976931348623157e308",
            "2.2250738585072014e-308",
            "16777217",
            "1e23",
            "8.589973e9",
        ] {
            let n = num(s);
            assert_eq!(
                n.to_f32().to_bits(),
                s.parse::<f32>().unwrap().to_bits(),
                "{s}"
            );
            assert_eq!(
                n.to_f64().to_bits(),
                s.parse::<f64>().unwrap().to_bits(),
                "{s}"
            );
        }
        assert!(num("1e39").to_f32().is_infinite());
        assert!(num("1e400").to_f64().is_infinite());
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_parser() {
        for s in [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "12",
            "0.012345678",
            "-0.012345678",
            "1.2345678e-5",
            "1.5E+3",
            "123456789.12345678",
            "0.1234567890123456789",
            "1.0000000596046448",
            "3.4028235e38",
            "1e-38",
            "1e-45",
            "9007199254740993",
            "16777217",
            "0.000000000000000000001",
            "1234567890123456789012",
            "1e22",
            "1e23",
            "1.5e0010",
            "1e-22",
        ] {
            let full = num(s).to_f32();
            if let Some((x, len)) = fast_f32(s.as_bytes(), 0) {
                assert_eq!(len, s.len(), "{s}");
                assert_eq!(x.to_bits(), full.to_bits(), "{s}");
            }
        }
        // Invalid text is left to `scan`, which rejects it.
        for bad in ["01", "-01", "1.", "1.e5", "1e", "-", ".5", "+1", "1e+"] {
            let fast = fast_f32(bad.as_bytes(), 0);
            assert!(
                fast.is_none() || fast.is_some_and(|(_, len)| len < bad.len()),
                "{bad}: {fast:?}"
            );
        }
        // Eight digits at a time, and where a run of them stops.
        assert_eq!(
            fast_f32(b"0.1234567812345678,", 0),
            Some(("0.1234567812345678".parse::<f32>().unwrap(), 18))
        );
        assert_eq!(fast_f32(b"0.12345678x", 0), Some((0.12345678f32, 10)));
        assert_eq!(
            fast_f32(b"0.123456781,", 0),
            Some(("0.123456781".parse::<f32>().unwrap(), 11))
        );
        assert_eq!(fast_f32(b"-1234.5e-3]", 0), Some((-1.2345f32, 10)));
        assert_eq!(
            fast_f32(b"-0.0", 0).map(|(x, _)| x.to_bits()),
            Some(0x8000_0000)
        );
        // Many values near f32 midpoints, against the exact parser.
        for k in 0..20_000u32 {
            let x = f32::from_bits(0x3c00_0000 + k * 7919);
            let mid = (f64::from(x) + f64::from(f32::from_bits(x.to_bits() + 1))) / 2.0;
            for text in [
                format!("{mid:.12}"),
                format!("{:.11e}", mid),
                format!("{x}"),
            ] {
                if let Some((y, _)) = fast_f32(text.as_bytes(), 0) {
                    assert_eq!(
                        y.to_bits(),
                        text.parse::<f32>().unwrap().to_bits(),
                        "{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_short_path_agrees_with_the_exact_parser() {
        // Every fraction length the short path takes (1 to 15 digits),
        // each followed by what may end a number, and the lengths it must
        // leave to the general path.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut short = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let frac_len = 1 + (state % 17) as usize;
            let digits: String = (0..frac_len)
                .map(|k| char::from(b'0' + ((state >> (4 + k * 3)) % 10) as u8))
                .collect();
            let sign = if state & 1 == 0 { "" } else { "-" };
            let int = (state >> 60) % 10;
            let tail = [",", "]", " ", "e-3,", "5,"][(state >> 56) as usize % 5];
            let text = format!("{sign}{int}.{digits}{tail}                  ");
            let number = text.split(&[',', ']', ' ']).next().unwrap();
            if let Some((x, end)) = short_f32(text.as_bytes(), 0) {
                assert!(frac_len <= 15 && !tail.starts_with('e'), "{text}");
                assert_eq!(end, number.len(), "{text}");
                short += 1;
                assert_eq!(
                    x.to_bits(),
                    number.parse::<f32>().unwrap().to_bits(),
                    "{text}"
                );
            }
            let (x, end) = fast_f32(text.as_bytes(), 0).unwrap_or_else(|| {
                let (n, len) = scan(text.as_bytes(), true).unwrap();
                (n.to_f32(), len)
            });
            assert_eq!(end, number.len(), "{text}");
            assert_eq!(
                x.to_bits(),
                number.parse::<f32>().unwrap().to_bits(),
                "{text}"
            );
        }
        assert!(short > 100_000, "the short path took only {short} numbers");
        // Midpoints between neighbouring f32s, written out to 15 digits.
        for k in 0..50_000u32 {
            let x = f32::from_bits(0x3c00_0000 + k * 1597);
            let mid = (f64::from(x) + f64::from(f32::from_bits(x.to_bits() + 1))) / 2.0;
            let text = format!("{mid:.15},                  ");
            if let Some((y, _)) = short_f32(text.as_bytes(), 0) {
                let exact = text.trim_end_matches([',', ' ']).parse::<f32>().unwrap();
                assert_eq!(y.to_bits(), exact.to_bits(), "{text}");
            }
        }
        // Not for the short path: two integer digits, no fraction digit,
        // fewer than 16 bytes after the point.
        for text in ["12.5,              ", "1.,                ", "0.5"] {
            assert!(short_f32(text.as_bytes(), 0).is_none(), "{text}");
        }
    }

    #[test]
    fn integers_are_exact() {
        assert_eq!(num("18446744073709551615").to_i128(), Some(u64::MAX.into()));
        assert_eq!(num("-9223372036854775808").to_i128(), Some(i64::MIN.into()));
        assert_eq!(
            num("10000000000000000000000").to_i128(),
            Some(10i128.pow(22))
        );
        assert_eq!(num("1.0").to_i128(), None);
        assert_eq!(num("1e3").to_i128(), None);
    }

    #[test]
    fn decimals_compare_exactly_with_floats() {
        assert_eq!(num("1.00390625").cmp_magnitude(1.00390625), Ordering::Equal);
        assert_eq!(
            num("1.00390625000000000001").cmp_magnitude(1.00390625),
            Ordering::Greater
        );
        assert_eq!(
            num("-1.0039062499").cmp_magnitude(-1.00390625),
            Ordering::Less
        );
        assert_eq!(num("100.0e-2").cmp_magnitude(1.0), Ordering::Equal);
        assert_eq!(num("0.5").cmp_magnitude(0.25), Ordering::Greater);
        assert_eq!(num("65520").cmp_magnitude(65520.0), Ordering::Equal);
        assert_eq!(num("6.5521e4").cmp_magnitude(65520.0), Ordering::Greater);
    }
}
