//! Reading elements: a JSON token (number, string, literal) converted to a
//! dtype's bytes, each decimal rounded once to the target type.

use super::*;

/// Columns of an element's text that an error message quotes.
pub(super) const TOKEN_COLUMNS: usize = 40;

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
pub(super) enum FloatValue<'a> {
    Number(Number<'a>),
    Inf(bool),
    Nan(Option<u64>),
}

pub(super) fn float_value(t: Token<'_>) -> Option<FloatValue<'_>> {
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

/// Rounds the decimal `n` to a type of at most 16 bits once, given `v`, the
/// f64 nearest to it, and `conv`, the type's rounding from f64 (ties to
/// even). Rounding `v` again is wrong only when `v` lies exactly on a
/// midpoint of the type but the decimal does not: then the decimal itself
/// decides which neighbour is nearer.
pub(super) fn round_once<T: PartialEq>(n: &Number<'_>, v: f64, conv: impl Fn(f64) -> T) -> T {
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
