//! Element values as `f64`, for every dtype: the one place that turns
//! stored bytes into numbers for statistics and comparisons.
//!
//! Every value of every float dtype is exactly representable in `f64`
//! (F64 is itself, the smaller floats widen exactly); integers beyond
//! 2^53 in magnitude (I64, U64) round to the nearest `f64`. BOOL is 0 or 1
//! (any other byte reads as its value, see [`Dtype::first_invalid`]). C64
//! yields two values per element, the real part then the imaginary part.
//!
//! ```
//! use modeltool_format::{Dtype, decode};
//!
//! let bytes = [0x3c, 0x7c]; // F8_E5M2: 1.0 then +inf
//! let mut out = Vec::new();
//! decode::to_f64(Dtype::F8_E5M2, &bytes, &mut out);
//! assert_eq!(out, [1.0, f64::INFINITY]);
//! assert_eq!(decode::values_per_element(Dtype::C64), 2);
//! ```

use std::sync::OnceLock;

use half::{bf16, f16};

use crate::Dtype;

/// How many `f64` values [`to_f64`] yields per element: 2 for C64, else 1.
pub fn values_per_element(dtype: Dtype) -> usize {
    if dtype == Dtype::C64 { 2 } else { 1 }
}

/// The smallest positive normal value of a float dtype (values of smaller
/// nonzero magnitude are subnormal), `None` for integer dtypes and for
/// F8_E8M0, which has no subnormals.
pub fn min_normal(dtype: Dtype) -> Option<f64> {
    let exp = match dtype {
        Dtype::F16 => -14,
        Dtype::BF16 | Dtype::F32 | Dtype::C64 => -126,
        Dtype::F64 => -1022,
        Dtype::F8_E5M2 => -14,
        Dtype::F8_E4M3 => -6,
        Dtype::F8_E4M3FNUZ => -7,
        Dtype::F8_E5M2FNUZ => -15,
        Dtype::F4 | Dtype::F6_E2M3 => 0,
        Dtype::F6_E3M2 => -2,
        _ => return None,
    };
    Some(2f64.powi(exp))
}

/// Appends the values of the little-endian `bytes` of `dtype` to `out`,
/// as `f64`. Trailing bytes that do not make a whole element are ignored;
/// packed dtypes (F4, F6) must start on an element that starts a byte.
pub fn to_f64(dtype: Dtype, bytes: &[u8], out: &mut Vec<f64>) {
    fn each<const N: usize>(bytes: &[u8], out: &mut Vec<f64>, f: impl Fn([u8; N]) -> f64) {
        out.extend(
            bytes
                .chunks_exact(N)
                .map(|c| f(c.try_into().expect("chunks_exact gives N bytes"))),
        );
    }
    match dtype {
        Dtype::BOOL | Dtype::U8 => out.extend(bytes.iter().map(|&b| f64::from(b))),
        Dtype::I8 => out.extend(bytes.iter().map(|&b| f64::from(b as i8))),
        Dtype::I16 => each(bytes, out, |c| f64::from(i16::from_le_bytes(c))),
        Dtype::U16 => each(bytes, out, |c| f64::from(u16::from_le_bytes(c))),
        Dtype::I32 => each(bytes, out, |c| f64::from(i32::from_le_bytes(c))),
        Dtype::U32 => each(bytes, out, |c| f64::from(u32::from_le_bytes(c))),
        Dtype::I64 => each(bytes, out, |c| i64::from_le_bytes(c) as f64),
        Dtype::U64 => each(bytes, out, |c| u64::from_le_bytes(c) as f64),
        Dtype::F16 => each(bytes, out, |c| f16::from_le_bytes(c).to_f64()),
        Dtype::BF16 => each(bytes, out, |c| bf16::from_le_bytes(c).to_f64()),
        Dtype::F32 | Dtype::C64 => each(bytes, out, |c| f64::from(f32::from_le_bytes(c))),
        Dtype::F64 => each(bytes, out, f64::from_le_bytes),
        Dtype::F8_E5M2
        | Dtype::F8_E4M3
        | Dtype::F8_E8M0
        | Dtype::F8_E4M3FNUZ
        | Dtype::F8_E5M2FNUZ => {
            let t = table(dtype);
            out.extend(bytes.iter().map(|&b| t[usize::from(b)]));
        }
        Dtype::F4 => {
            let t = table(dtype);
            for &b in bytes {
                out.push(t[usize::from(b & 0xf)]);
                out.push(t[usize::from(b >> 4)]);
            }
        }
        Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
            let t = table(dtype);
            for c in bytes.chunks_exact(3) {
                let w = u32::from(c[0]) | u32::from(c[1]) << 8 | u32::from(c[2]) << 16;
                for k in 0..4 {
                    out.push(t[((w >> (6 * k)) & 0x3f) as usize]);
                }
            }
        }
    }
}

/// The value of every code of an 8-bit or smaller float dtype.
fn table(dtype: Dtype) -> &'static [f64] {
    static TABLES: [OnceLock<Vec<f64>>; 8] = [const { OnceLock::new() }; 8];
    // (slot, exponent bits, mantissa bits, bias, kind)
    let (slot, e_bits, m_bits, bias, kind) = match dtype {
        Dtype::F8_E5M2 => (0, 5, 2, 15, Kind::Ieee),
        Dtype::F8_E4M3 => (1, 4, 3, 7, Kind::Fn),
        Dtype::F8_E8M0 => (2, 8, 0, 127, Kind::E8m0),
        Dtype::F8_E4M3FNUZ => (3, 4, 3, 8, Kind::Fnuz),
        Dtype::F8_E5M2FNUZ => (4, 5, 2, 16, Kind::Fnuz),
        Dtype::F4 => (5, 2, 1, 1, Kind::Finite),
        Dtype::F6_E2M3 => (6, 2, 3, 1, Kind::Finite),
        Dtype::F6_E3M2 => (7, 3, 2, 3, Kind::Finite),
        _ => unreachable!("tables exist only for 8-bit and smaller floats"),
    };
    TABLES[slot].get_or_init(|| {
        let sign_bit: u32 = if kind == Kind::E8m0 {
            1 << 8
        } else {
            1 << (e_bits + m_bits)
        };
        let codes = if kind == Kind::E8m0 {
            256
        } else {
            sign_bit * 2
        };
        (0..codes)
            .map(|code| {
                let mag = code & (sign_bit - 1);
                let top = (1u32 << e_bits) - 1;
                let man_mask = (1u32 << m_bits) - 1;
                let nan = match kind {
                    Kind::Ieee => mag >> m_bits == top && mag & man_mask != 0,
                    Kind::Fn => mag == sign_bit - 1,
                    Kind::Fnuz => code == sign_bit,
                    Kind::Finite => false,
                    Kind::E8m0 => code == 0xff,
                };
                if nan {
                    return f64::NAN;
                }
                if kind == Kind::E8m0 {
                    return 2f64.powi(code as i32 - 127);
                }
                let e = (mag >> m_bits) as i32;
                let m = f64::from(mag & man_mask) / f64::from(1u32 << m_bits);
                let v = if kind == Kind::Ieee && e == top as i32 {
                    f64::INFINITY
                } else if e == 0 {
                    m * 2f64.powi(1 - bias)
                } else {
                    (1.0 + m) * 2f64.powi(e - bias)
                };
                if code & sign_bit != 0 { -v } else { v }
            })
            .collect()
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ieee,
    Fn,
    Fnuz,
    Finite,
    E8m0,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(dtype: Dtype, bytes: &[u8]) -> Vec<f64> {
        let mut out = Vec::new();
        to_f64(dtype, bytes, &mut out);
        out
    }

    #[test]
    fn small_floats_decode_to_their_spec_values() {
        assert_eq!(
            one(Dtype::F8_E4M3, &[0x7e, 0x01, 0xb8]),
            [448.0, 2f64.powi(-9), -1.0]
        );
        assert!(one(Dtype::F8_E4M3, &[0x7f])[0].is_nan());
        assert_eq!(
            one(Dtype::F8_E5M2, &[0x7b, 0xfc]),
            [57344.0, f64::NEG_INFINITY]
        );
        assert_eq!(one(Dtype::F8_E8M0, &[0x7f, 0x00]), [1.0, 2f64.powi(-127)]);
        assert!(one(Dtype::F8_E4M3FNUZ, &[0x80])[0].is_nan());
        assert_eq!(one(Dtype::F8_E4M3FNUZ, &[0x40]), [1.0]);
        assert_eq!(one(Dtype::F8_E5M2FNUZ, &[0x40]), [1.0]);
        assert_eq!(one(Dtype::F4, &[0x21, 0xf7]), [0.5, 1.0, 6.0, -6.0]);
        // F6_E2M3: 1.0 is 0b001000; E3M2: 1.0 is 0b001100 (bias 3).
        let w: u32 = 0b001000 | 0b011111 << 6 | 0b100000 << 18;
        assert_eq!(
            one(Dtype::F6_E2M3, &w.to_le_bytes()[..3]),
            [1.0, 7.5, 0.0, -0.0]
        );
        assert_eq!(one(Dtype::F6_E3M2, &[0b001100, 0, 0]), [1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn wide_types_decode_little_endian() {
        assert_eq!(one(Dtype::I64, &(-5i64).to_le_bytes()), [-5.0]);
        assert_eq!(one(Dtype::BF16, &[0x80, 0x3f]), [1.0]);
        assert_eq!(
            one(Dtype::C64, &[0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0]),
            [1.0, -2.0]
        );
        assert_eq!(min_normal(Dtype::F32), Some(f64::from(f32::MIN_POSITIVE)));
    }
}
