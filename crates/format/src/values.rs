//! Element values as JSON text: numbers for integers and finite floats,
//! `true`/`false` for BOOL, `[re, im]` for C64, and strings for the
//! non-finite floats (`"NaN"`, `"inf"`, `"-inf"`, `"NaN:0x7fc00001"`).
//!
//! Floats are written in a decimal form that reads back to the same bits:
//! the reader rounds a decimal to the nearest value of the tensor's dtype
//! (ties to even), and the writer picks the shortest decimal for which that
//! rounding gives the original value (or, for the small float types, the
//! exact decimal when it is short).
//!
//! `minifloat.rs` holds the codecs of the small float types, `write.rs`
//! the writer and its per-code tables, `token.rs` the conversion of a read
//! token to a dtype's bytes; this file, the tests that span them.

use std::sync::OnceLock;

use half::{bf16, f16};

use crate::Dtype;
use crate::number::Number;

mod minifloat;
mod token;
mod write;

use minifloat::*;
pub(crate) use token::{Token, push_token};
#[cfg(test)]
use write::*;
pub(crate) use write::{pack, write_elements};

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
