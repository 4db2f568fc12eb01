//! Element values as JSON text: numbers for integers and finite floats,
//! `true`/`false` for BOOL, `[re, im]` for C64, and strings for the
//! non-finite floats (`"NaN"`, `"inf"`, `"-inf"`, `"NaN:0x7fc00001"`).
//!
//! Floats are written in the shortest decimal form that reads back to the
//! same bits: the reader rounds a decimal to the nearest value of the
//! tensor's dtype (ties to even), and the writer picks the shortest decimal
//! for which that rounding gives the original value.

use std::sync::OnceLock;

use half::{bf16, f16};

use crate::Dtype;
use crate::number::Number;

/// The smaller float types described by sign, exponent and mantissa bits.
#[derive(Debug, Clone, Copy)]
struct Mini {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    kind: MiniKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum MiniKind {
    /// IEEE-like: the top exponent holds infinities and NaNs (F8_E5M2).
    Ieee,
    /// Only all-ones exponent and mantissa is NaN; no infinities (F8_E4M3).
    Fn,
    /// The negative-zero code is the only NaN; no infinities (the FNUZ types).
    Fnuz,
    /// Every code is a finite number (F4, F6).
    Finite,
    /// Unsigned power of two, all-ones is NaN (F8_E8M0).
    E8m0,
}

impl Mini {
    fn of(dtype: Dtype) -> Option<Mini> {
        let (exp_bits, man_bits, bias, kind) = match dtype {
            Dtype::F8_E5M2 => (5, 2, 15, MiniKind::Ieee),
            Dtype::F8_E4M3 => (4, 3, 7, MiniKind::Fn),
            Dtype::F8_E4M3FNUZ => (4, 3, 8, MiniKind::Fnuz),
            Dtype::F8_E5M2FNUZ => (5, 2, 16, MiniKind::Fnuz),
            Dtype::F8_E8M0 => (8, 0, 127, MiniKind::E8m0),
            Dtype::F4 => (2, 1, 1, MiniKind::Finite),
            Dtype::F6_E2M3 => (2, 3, 1, MiniKind::Finite),
            Dtype::F6_E3M2 => (3, 2, 3, MiniKind::Finite),
            _ => return None,
        };
        Some(Mini {
            exp_bits,
            man_bits,
            bias,
            kind,
        })
    }

    fn has_sign(self) -> bool {
        self.kind != MiniKind::E8m0
    }

    fn sign_bit(self) -> u32 {
        1 << (self.exp_bits + self.man_bits)
    }

    fn codes(self) -> u32 {
        1 << (self.exp_bits + self.man_bits + u32::from(self.has_sign()))
    }

    fn is_nan(self, code: u32) -> bool {
        let mag = code & (self.sign_bit() - 1);
        let top_exp = (1 << self.exp_bits) - 1;
        match self.kind {
            MiniKind::Ieee => {
                (mag >> self.man_bits) == top_exp && mag & ((1 << self.man_bits) - 1) != 0
            }
            MiniKind::Fn => mag == self.sign_bit() - 1,
            MiniKind::Fnuz => code == self.sign_bit(),
            MiniKind::Finite => false,
            MiniKind::E8m0 => code == 0xff,
        }
    }

    fn canonical_nan(self) -> Option<u32> {
        match self.kind {
            MiniKind::Ieee => {
                Some(((1 << self.exp_bits) - 1) << self.man_bits | 1 << (self.man_bits - 1))
            }
            MiniKind::Fn => Some(self.sign_bit() - 1),
            MiniKind::Fnuz => Some(self.sign_bit()),
            MiniKind::Finite => None,
            MiniKind::E8m0 => Some(0xff),
        }
    }

    /// The value of a code (NaN for NaN codes).
    fn decode(self, code: u32) -> f64 {
        if self.is_nan(code) {
            return f64::NAN;
        }
        if self.kind == MiniKind::E8m0 {
            return 2f64.powi(code as i32 - 127);
        }
        let negative = code & self.sign_bit() != 0;
        let mag = code & (self.sign_bit() - 1);
        let e = (mag >> self.man_bits) as i32;
        let m = f64::from(mag & ((1 << self.man_bits) - 1));
        let scale = f64::from(1u32 << self.man_bits);
        let v = if self.kind == MiniKind::Ieee && e == (1 << self.exp_bits) - 1 {
            f64::INFINITY
        } else if e == 0 {
            m / scale * 2f64.powi(1 - self.bias)
        } else {
            (1.0 + m / scale) * 2f64.powi(e - self.bias)
        };
        if negative { -v } else { v }
    }

    /// The largest finite positive code.
    fn max_code(self) -> u32 {
        match self.kind {
            MiniKind::Ieee => (((1 << self.exp_bits) - 1) << self.man_bits) - 1,
            MiniKind::Fn => self.sign_bit() - 2,
            MiniKind::Fnuz | MiniKind::Finite => self.sign_bit() - 1,
            MiniKind::E8m0 => 0xfe,
        }
    }

    /// The code nearest to `v` (ties to the even code), or `None` when `v`
    /// has no code: out of range without infinities, or negative for E8M0.
    fn encode(self, v: f64) -> Option<u32> {
        if v.is_nan() {
            return self.canonical_nan();
        }
        let negative = v.is_sign_negative();
        if negative && !self.has_sign() {
            return None;
        }
        let a = v.abs();
        let hi = self.max_code();
        let mut code = if a >= self.decode(hi) {
            let max = self.decode(hi);
            let half_ulp = (max - self.decode(hi - 1)) / 2.0;
            // A finite decimal beyond the range is an error, never an
            // infinity, for every float dtype alike ("inf" writes infinity).
            if a < max + half_ulp || (a == max + half_ulp && hi % 2 == 0) {
                hi
            } else {
                return None;
            }
        } else {
            // Smallest code whose value is >= a; codes are monotonic in value.
            let (mut lo, mut up) = (0u32, hi);
            while lo < up {
                let mid = (lo + up) / 2;
                if self.decode(mid) >= a {
                    up = mid
                } else {
                    lo = mid + 1
                }
            }
            if lo == 0 {
                0
            } else {
                let (below, above) = (self.decode(lo - 1), self.decode(lo));
                if a - below < above - a || (a - below == above - a && (lo - 1) % 2 == 0) {
                    lo - 1
                } else {
                    lo
                }
            }
        };
        if negative {
            if self.kind == MiniKind::Fnuz && code == 0 {
                return Some(0); // no negative zero: 0x80 is NaN
            }
            code |= self.sign_bit();
        }
        Some(code)
    }
}

/// Shortest decimal for `v` such that `round_trips(decimal)` holds.
fn shortest(v: f64, round_trips: impl Fn(f64) -> bool) -> String {
    let mut buf = ryu::Buffer::new();
    for digits in 1..=17 {
        let candidate: f64 = format!("{:.*e}", digits - 1, v)
            .parse()
            .expect("Rust formats parseable floats");
        if round_trips(candidate) {
            return buf.format(candidate).to_owned();
        }
    }
    buf.format(v).to_owned()
}

/// Every code of a 16-bit or smaller float type rendered once, so writing
/// is a table look-up.
fn table(dtype: Dtype) -> &'static [Box<str>] {
    static TABLES: [OnceLock<Vec<Box<str>>>; 22] = [const { OnceLock::new() }; 22];
    let slot = Dtype::ALL
        .iter()
        .position(|&d| d == dtype)
        .expect("every dtype is in ALL");
    TABLES[slot].get_or_init(|| match dtype {
        Dtype::F16 => (0..=u16::MAX)
            .map(|c| {
                let x = f16::from_bits(c);
                float_text(x.to_f64(), c.into(), 0x7e00, 11, |w| f16_from_f64(w) == c)
            })
            .collect(),
        Dtype::BF16 => (0..=u16::MAX)
            .map(|c| {
                let x = bf16::from_bits(c);
                float_text(x.to_f64(), c.into(), 0x7fc0, 8, |w| bf16_from_f64(w) == c)
            })
            .collect(),
        _ => {
            let mini = Mini::of(dtype).expect("tables exist for 16-bit and smaller floats");
            (0..mini.codes())
                .map(|c| {
                    let canonical = mini.canonical_nan().map_or(u64::MAX, u64::from);
                    let precision = mini.man_bits + u32::from(mini.kind != MiniKind::E8m0);
                    float_text(mini.decode(c), c.into(), canonical, precision, |w| {
                        mini.encode(w) == Some(c)
                    })
                })
                .collect()
        }
    })
}

/// The text of one value of a float type whose significands have
/// `precision` bits (the implicit one included): its exact decimal when
/// that has no more significant digits than the type holds (f16 65504 is
/// `65504.0`, not `65500.0`), else the shortest that round-trips.
fn float_text(
    v: f64,
    bits: u64,
    canonical_nan: u64,
    precision: u32,
    round_trips: impl Fn(f64) -> bool,
) -> Box<str> {
    if v.is_nan() {
        return nan_text(bits, canonical_nan, 0).into();
    }
    if v.is_infinite() {
        return (if v > 0.0 { "\"inf\"" } else { "\"-inf\"" }).into();
    }
    // `v` is exact in f64, and a decimal this short that rounds to it in
    // f64 (ryu's shortest) is equal to it: f64 steps are far finer.
    let exact = ryu::Buffer::new().format(v).to_owned();
    if significant_digits(&exact) <= max_digits(precision) {
        return exact.into();
    }
    shortest(v, round_trips).into()
}

/// The significant digits a type with `precision`-bit significands needs
/// to tell all its values apart: ceil(1 + precision * log10(2)).
fn max_digits(precision: u32) -> usize {
    // log10(2) < 0.30103: with integers, 1 + floor(p * 30103 / 100000) + 1
    // is the ceiling (p * log10(2) is never a whole number for p >= 1).
    2 + (precision as usize * 30103) / 100_000
}

/// Significant digits of a decimal as ryu writes it (`-6.5504e4`, `448.0`).
fn significant_digits(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1)
}

fn nan_text(bits: u64, canonical: u64, hex_digits: usize) -> String {
    if bits == canonical {
        "\"NaN\"".to_owned()
    } else {
        format!("\"NaN:0x{bits:0hex_digits$x}\"")
    }
}

fn push_f32(out: &mut Vec<u8>, x: f32) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x.is_nan() {
        out.extend_from_slice(nan_text(x.to_bits().into(), 0x7fc0_0000, 8).as_bytes());
    } else {
        out.extend_from_slice(if x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
    }
}

fn push_f64(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(x).as_bytes());
    } else if x.is_nan() {
        out.extend_from_slice(nan_text(x.to_bits(), 0x7ff8_0000_0000_0000, 16).as_bytes());
    } else {
        out.extend_from_slice(if x > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
    }
}

/// Reads element `i` of a packed sub-byte tensor (LSB-first bit stream).
pub(crate) fn packed_get(data: &[u8], bits: usize, i: usize) -> u32 {
    let start = i * bits;
    let byte = start / 8;
    let word = u32::from(data[byte]) | data.get(byte + 1).map_or(0, |&b| u32::from(b) << 8);
    (word >> (start % 8)) & ((1 << bits) - 1)
}

/// Packs codes of `bits` bits each into an LSB-first bit stream.
pub(crate) fn pack(codes: &[u8], bits: usize) -> Vec<u8> {
    let mut out = vec![0u8; (codes.len() * bits).div_ceil(8)];
    for (i, &c) in codes.iter().enumerate() {
        let start = i * bits;
        let v = u32::from(c) << (start % 8);
        out[start / 8] |= v as u8;
        if v > 0xff {
            out[start / 8 + 1] |= (v >> 8) as u8;
        }
    }
    out
}

/// Appends the JSON text of `count` elements starting at element `first`
/// of `data` (a whole tensor's bytes), each followed by a comma except the
/// last element of the tensor. `Err` names the element and the problem.
pub(crate) fn write_elements(
    out: &mut Vec<u8>,
    dtype: Dtype,
    data: &[u8],
    first: usize,
    count: usize,
    total: usize,
) -> Result<(), String> {
    let mut itoa = itoa::Buffer::new();
    for i in first..first + count {
        match dtype {
            Dtype::BOOL => match data[i] {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                b => {
                    return Err(format!(
                        "BOOL element {i} is the byte {b}; only 0 and 1 are booleans"
                    ));
                }
            },
            Dtype::U8 => out.extend_from_slice(itoa.format(data[i]).as_bytes()),
            Dtype::I8 => out.extend_from_slice(itoa.format(data[i] as i8).as_bytes()),
            Dtype::U16 => {
                out.extend_from_slice(itoa.format(u16::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I16 => {
                out.extend_from_slice(itoa.format(i16::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::U32 => {
                out.extend_from_slice(itoa.format(u32::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I32 => {
                out.extend_from_slice(itoa.format(i32::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::U64 => {
                out.extend_from_slice(itoa.format(u64::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::I64 => {
                out.extend_from_slice(itoa.format(i64::from_le_bytes(le(data, i))).as_bytes())
            }
            Dtype::F32 => push_f32(out, f32::from_le_bytes(le(data, i))),
            Dtype::F64 => push_f64(out, f64::from_le_bytes(le(data, i))),
            Dtype::C64 => {
                out.push(b'[');
                push_f32(out, f32::from_le_bytes(le(data, 2 * i)));
                out.push(b',');
                push_f32(out, f32::from_le_bytes(le(data, 2 * i + 1)));
                out.push(b']');
            }
            Dtype::F16 | Dtype::BF16 => {
                let code = u16::from_le_bytes(le(data, i));
                out.extend_from_slice(table(dtype)[usize::from(code)].as_bytes());
            }
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                let code = packed_get(data, dtype.bits(), i);
                out.extend_from_slice(table(dtype)[code as usize].as_bytes());
            }
            Dtype::F8_E5M2
            | Dtype::F8_E4M3
            | Dtype::F8_E8M0
            | Dtype::F8_E4M3FNUZ
            | Dtype::F8_E5M2FNUZ => {
                out.extend_from_slice(table(dtype)[usize::from(data[i])].as_bytes());
            }
        }
        if i + 1 < total {
            out.push(b',');
        }
    }
    Ok(())
}

fn le<const N: usize>(data: &[u8], i: usize) -> [u8; N] {
    data[i * N..(i + 1) * N]
        .try_into()
        .expect("slice of N bytes")
}

/// Columns of an element's text that an error message quotes.
const TOKEN_COLUMNS: usize = 40;

/// One JSON element as the reader sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token<'a> {
    Bool(bool),
    Null,
    /// A number, checked against the JSON grammar, not yet converted.
    Num(Number<'a>),
    /// A string's contents, escapes decoded.
    Str(&'a str),
}

impl std::fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Bool(b) => write!(f, "{b}"),
            Token::Null => f.write_str("null"),
            // Cut: a number may have millions of digits.
            Token::Num(n) => f.write_str(&crate::text::cut(n.text(), TOKEN_COLUMNS)),
            Token::Str(s) => write!(f, "\"{}\"", crate::text::cut(s, TOKEN_COLUMNS)),
        }
    }
}

/// A float read from JSON: a number, or one of the strings for non-finite values.
enum FloatValue<'a> {
    Number(Number<'a>),
    Inf(bool),
    Nan(Option<u64>),
}

fn float_value(t: Token<'_>) -> Option<FloatValue<'_>> {
    Some(match t {
        Token::Num(n) => FloatValue::Number(n),
        Token::Str("NaN") => FloatValue::Nan(None),
        Token::Str("inf") => FloatValue::Inf(false),
        Token::Str("-inf") => FloatValue::Inf(true),
        Token::Str(s) => {
            let hex = s.strip_prefix("NaN:0x")?;
            FloatValue::Nan(Some(u64::from_str_radix(hex, 16).ok()?))
        }
        Token::Bool(_) | Token::Null => return None,
    })
}

/// `v` rounded to f32 toward zero, with the lowest bit set when that is
/// inexact ("round to odd"). Rounding the result to nearest again, into a
/// type with at least two bits less precision (F16, BF16), gives the same
/// as rounding `v` to nearest directly: no double rounding.
fn f32_round_to_odd(v: f64) -> f32 {
    let mut x = v as f32;
    if !v.is_finite() {
        return x;
    }
    if f64::from(x).abs() > v.abs() {
        x = f32::from_bits(x.to_bits() - 1); // one step toward zero
    }
    if f64::from(x) != v {
        x = f32::from_bits(x.to_bits() | 1);
    }
    x
}

/// The F16 nearest to `v` (ties to even). Not half's `f16::from_f64`,
/// which drops the low 32 bits of the f64 before rounding (or goes through
/// f32 with two roundings): rounding to odd keeps them as a sticky bit.
fn f16_from_f64(v: f64) -> u16 {
    f16::from_f32(f32_round_to_odd(v)).to_bits()
}

/// The BF16 nearest to `v` (ties to even); see [`f16_from_f64`].
fn bf16_from_f64(v: f64) -> u16 {
    bf16::from_f32(f32_round_to_odd(v)).to_bits()
}

/// Rounds the decimal `n` to a type of at most 16 bits once, given `v`, the
/// f64 nearest to it, and `conv`, the type's rounding from f64 (ties to
/// even). Rounding `v` again is wrong only when `v` lies exactly on a
/// midpoint of the type but the decimal does not: then the decimal itself
/// decides which neighbour is nearer.
fn round_once<T: PartialEq>(n: &Number<'_>, v: f64, conv: impl Fn(f64) -> T) -> T {
    let rounded = conv(v);
    // A midpoint of a type of at most 16 bits has at most 12 significant
    // bits, so the 40 low bits of its f64 mantissa are zero.
    let bits = v.to_bits();
    if !v.is_finite() || v == 0.0 || bits & ((1 << 40) - 1) != 0 {
        return rounded;
    }
    // One f64 step toward zero and away from it: on the same side of the
    // midpoint as the decimal, and too close to reach another one.
    let (below, above) = (
        conv(f64::from_bits(bits - 1)),
        conv(f64::from_bits(bits + 1)),
    );
    if below == above {
        return rounded; // not a midpoint
    }
    match n.cmp_magnitude(v) {
        std::cmp::Ordering::Less => below,
        std::cmp::Ordering::Greater => above,
        std::cmp::Ordering::Equal => rounded,
    }
}

/// Converts one JSON element to the little-endian bytes (or, for packed
/// types, the code) of `dtype`, appending to `out`. C64 elements arrive as
/// two tokens, each converted as F32. Every float is rounded once, from the
/// decimal to the nearest value of `dtype` (ties to even). `Err` says why
/// the value does not fit.
pub(crate) fn push_token(out: &mut Vec<u8>, dtype: Dtype, t: Token<'_>) -> Result<(), String> {
    let bad = || format!("{t} is not a valid {dtype} value");
    let out_of_range = || format!("{t} is out of range for {dtype}");
    macro_rules! int {
        ($ty:ty) => {{
            let v: $ty = match t {
                Token::Num(n) if n.integer => n
                    .to_i128()
                    .and_then(|v| <$ty>::try_from(v).ok())
                    .ok_or_else(out_of_range)?,
                _ => return Err(bad()),
            };
            out.extend_from_slice(&v.to_le_bytes());
        }};
    }
    match dtype {
        Dtype::BOOL => match t {
            Token::Bool(b) => out.push(u8::from(b)),
            _ => return Err(bad()),
        },
        Dtype::U8 => int!(u8),
        Dtype::I8 => int!(i8),
        Dtype::U16 => int!(u16),
        Dtype::I16 => int!(i16),
        Dtype::U32 => int!(u32),
        Dtype::I32 => int!(i32),
        Dtype::U64 => int!(u64),
        Dtype::I64 => int!(i64),
        Dtype::F64 => {
            let bits = match float_value(t).ok_or_else(bad)? {
                FloatValue::Number(n) => {
                    let v = n.to_f64();
                    if v.is_infinite() {
                        return Err(out_of_range());
                    }
                    v.to_bits()
                }
                FloatValue::Inf(neg) => if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
                .to_bits(),
                FloatValue::Nan(None) => 0x7ff8_0000_0000_0000,
                FloatValue::Nan(Some(b)) if f64::from_bits(b).is_nan() => b,
                FloatValue::Nan(Some(_)) => {
                    return Err(format!("{t} is not a NaN bit pattern of F64"));
                }
            };
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Dtype::F32 | Dtype::C64 => {
            let bits = match float_value(t).ok_or_else(bad)? {
                FloatValue::Number(n) => {
                    let x = n.to_f32();
                    if x.is_infinite() {
                        return Err(format!("{t} is out of range for F32"));
                    }
                    x.to_bits()
                }
                FloatValue::Inf(neg) => if neg {
                    f32::NEG_INFINITY
                } else {
                    f32::INFINITY
                }
                .to_bits(),
                FloatValue::Nan(None) => 0x7fc0_0000,
                FloatValue::Nan(Some(b)) => match u32::try_from(b) {
                    Ok(b) if f32::from_bits(b).is_nan() => b,
                    _ => return Err(format!("{t} is not a NaN bit pattern of F32")),
                },
            };
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Dtype::F16 | Dtype::BF16 => {
            let from_f64 = |v: f64| {
                if dtype == Dtype::F16 {
                    f16_from_f64(v)
                } else {
                    bf16_from_f64(v)
                }
            };
            let is_nan = |b: u16| {
                if dtype == Dtype::F16 {
                    f16::from_bits(b).is_nan()
                } else {
                    bf16::from_bits(b).is_nan()
                }
            };
            let bits = match float_value(t).ok_or_else(bad)? {
                FloatValue::Number(n) => {
                    let b = round_once(&n, n.to_f64(), from_f64);
                    if from_f64(f64::INFINITY) == b & 0x7fff {
                        return Err(out_of_range());
                    }
                    b
                }
                FloatValue::Inf(neg) => from_f64(if neg {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }),
                FloatValue::Nan(None) => from_f64(f64::NAN),
                FloatValue::Nan(Some(b)) => match u16::try_from(b) {
                    Ok(b) if is_nan(b) => b,
                    _ => return Err(format!("{t} is not a NaN bit pattern of {dtype}")),
                },
            };
            out.extend_from_slice(&bits.to_le_bytes());
        }
        _ => {
            let mini = Mini::of(dtype).expect("remaining dtypes are the small floats");
            let code = match float_value(t).ok_or_else(bad)? {
                FloatValue::Number(n) => {
                    round_once(&n, n.to_f64(), |v| mini.encode(v)).ok_or_else(out_of_range)?
                }
                FloatValue::Inf(neg) if mini.kind == MiniKind::Ieee => {
                    (mini.max_code() + 1) | if neg { mini.sign_bit() } else { 0 }
                }
                FloatValue::Inf(_) => return Err(format!("{dtype} has no infinities")),
                FloatValue::Nan(None) => mini
                    .canonical_nan()
                    .ok_or_else(|| format!("{dtype} has no NaN"))?,
                FloatValue::Nan(Some(b)) => match u32::try_from(b) {
                    Ok(b) if b < mini.codes() && mini.is_nan(b) => b,
                    _ => return Err(format!("{t} is not a NaN bit pattern of {dtype}")),
                },
            };
            out.push(code as u8);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(dtype: Dtype, data: &[u8], n: usize) -> String {
        let mut out = Vec::new();
        write_elements(&mut out, dtype, data, 0, n, n).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn known_small_float_values() {
        let e4m3 = Mini::of(Dtype::F8_E4M3).unwrap();
        assert_eq!(e4m3.decode(0x7e), 448.0);
        assert!(e4m3.decode(0x7f).is_nan());
        assert_eq!(e4m3.decode(0x01), 2f64.powi(-9));
        let e5m2 = Mini::of(Dtype::F8_E5M2).unwrap();
        assert_eq!(e5m2.decode(0x7b), 57344.0);
        assert_eq!(e5m2.decode(0x7c), f64::INFINITY);
        let f4 = Mini::of(Dtype::F4).unwrap();
        let values: Vec<f64> = (0..8).map(|c| f4.decode(c)).collect();
        assert_eq!(values, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]);
        assert_eq!(Mini::of(Dtype::F6_E2M3).unwrap().decode(0x1f), 7.5);
        assert_eq!(Mini::of(Dtype::F6_E3M2).unwrap().decode(0x1f), 28.0);
        assert_eq!(Mini::of(Dtype::F8_E8M0).unwrap().decode(127), 1.0);
        assert!(Mini::of(Dtype::F8_E4M3FNUZ).unwrap().decode(0x80).is_nan());
    }

    #[test]
    fn every_small_code_round_trips_through_text() {
        for dtype in [
            Dtype::F8_E5M2,
            Dtype::F8_E4M3,
            Dtype::F8_E8M0,
            Dtype::F8_E4M3FNUZ,
            Dtype::F8_E5M2FNUZ,
            Dtype::F4,
            Dtype::F6_E2M3,
            Dtype::F6_E3M2,
            Dtype::F16,
            Dtype::BF16,
        ] {
            let codes = if dtype.bits() == 16 {
                1 << 16
            } else {
                1u32 << dtype.bits()
            };
            for c in 0..codes {
                let s = &table(dtype)[c as usize];
                let token = if let Some(inner) = s.strip_prefix('"') {
                    Token::Str(inner.trim_end_matches('"'))
                } else {
                    Token::Num(crate::number::scan(s.as_bytes(), true).unwrap().0)
                };
                let mut out = Vec::new();
                push_token(&mut out, dtype, token)
                    .unwrap_or_else(|e| panic!("{dtype} {c:#x} {s}: {e}"));
                let back = match dtype.bits() {
                    16 => u32::from(u16::from_le_bytes([out[0], out[1]])),
                    _ => u32::from(out[0]),
                };
                assert_eq!(back, c, "{dtype} code {c:#x} written as {s}");
            }
        }
    }

    #[test]
    fn shortest_forms() {
        assert_eq!(
            text(Dtype::F16, &f16::from_f32(0.1).to_le_bytes(), 1),
            "0.1"
        );
        assert_eq!(
            text(Dtype::BF16, &bf16::from_f32(-0.0).to_le_bytes(), 1),
            "-0.0"
        );
        assert_eq!(text(Dtype::F32, &f32::NAN.to_le_bytes(), 1), "\"NaN\"");
        assert_eq!(
            text(Dtype::F32, &0xffc0_0000u32.to_le_bytes(), 1),
            "\"NaN:0xffc00000\""
        );
        assert_eq!(
            text(Dtype::F32, &f32::NEG_INFINITY.to_le_bytes(), 1),
            "\"-inf\""
        );
        assert_eq!(text(Dtype::F4, &[0x21], 2), "0.5,1.0");
    }

    #[test]
    fn short_exact_decimals_are_written_exactly() {
        // The largest finite values: their exact decimals fit the digits
        // the types hold, where the shortest round trip would round them.
        assert_eq!(text(Dtype::F16, &f16::MAX.to_le_bytes(), 1), "65504.0");
        assert_eq!(text(Dtype::F8_E4M3, &[0x7e], 1), "448.0");
        // F8_E5M2 holds 2 digits: 57344 has 5, its shortest is 6e4.
        assert_eq!(text(Dtype::F8_E5M2, &[0x7b], 1), "60000.0");
        // BF16 1032 (between 1024 and 1040) used to be written 1030.
        assert_eq!(
            text(Dtype::BF16, &bf16::from_f32(1032.0).to_le_bytes(), 1),
            "1032.0"
        );
        // A long exact decimal is still written shortest.
        assert_eq!(
            text(Dtype::F16, &f16::from_f32(0.1).to_le_bytes(), 1),
            "0.1"
        );
        assert_eq!(max_digits(11), 5);
        assert_eq!(max_digits(8), 4);
        assert_eq!(max_digits(4), 3);
        assert_eq!(max_digits(24), 9);
        assert_eq!(max_digits(53), 17);
    }

    /// Every F16 and BF16 midpoint, and the f64 values one step either
    /// side of it, round to the nearest value (ties to even).
    #[test]
    fn f64_to_16_bit_floats_round_to_nearest() {
        let f16_of = |s: &str| {
            let mut out = Vec::new();
            push_token(
                &mut out,
                Dtype::F16,
                Token::Num(crate::number::scan(s.as_bytes(), true).unwrap().0),
            )
            .unwrap();
            u16::from_le_bytes([out[0], out[1]])
        };
        let bf16_of = |s: &str| {
            let mut out = Vec::new();
            push_token(
                &mut out,
                Dtype::BF16,
                Token::Num(crate::number::scan(s.as_bytes(), true).unwrap().0),
            )
            .unwrap();
            u16::from_le_bytes([out[0], out[1]])
        };
        for c in (0u16..0x7bff).step_by(3) {
            let (lo, hi) = (f16::from_bits(c).to_f64(), f16::from_bits(c + 1).to_f64());
            let mid = (lo + hi) / 2.0;
            let even = if c % 2 == 0 { c } else { c + 1 };
            let below = f64::from_bits(mid.to_bits() - 1);
            let above = f64::from_bits(mid.to_bits() + 1);
            assert_eq!(
                f16_of(&format!("{mid:.800e}")),
                even,
                "f16 midpoint {mid:e}"
            );
            assert_eq!(f16_of(&format!("{below:.800e}")), c, "f16 below {below:e}");
            assert_eq!(
                f16_of(&format!("{above:.800e}")),
                c + 1,
                "f16 above {above:e}"
            );
        }
        for c in (0u16..0x7f7f).step_by(7) {
            let (lo, hi) = (bf16::from_bits(c).to_f64(), bf16::from_bits(c + 1).to_f64());
            let mid = (lo + hi) / 2.0;
            let even = if c % 2 == 0 { c } else { c + 1 };
            let below = f64::from_bits(mid.to_bits() - 1);
            let above = f64::from_bits(mid.to_bits() + 1);
            assert_eq!(
                bf16_of(&format!("{mid:.800e}")),
                even,
                "bf16 midpoint {mid:e}"
            );
            assert_eq!(
                bf16_of(&format!("{below:.800e}")),
                c,
                "bf16 below {below:e}"
            );
            assert_eq!(
                bf16_of(&format!("{above:.800e}")),
                c + 1,
                "bf16 above {above:e}"
            );
        }
    }

    #[test]
    fn packing_is_lsb_first() {
        let codes = [1u8, 2, 3, 63];
        let packed = pack(&codes, 6);
        assert_eq!(packed.len(), 3);
        for (i, &c) in codes.iter().enumerate() {
            assert_eq!(packed_get(&packed, 6, i), u32::from(c));
        }
    }
}
