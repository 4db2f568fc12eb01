//! Casting float tensors between F64, F32, F16 and BF16: round to nearest,
//! ties to even, counted.
//!
//! Every source value is exact in f64. A cast to F32 rounds once. A cast to
//! F16 or BF16 goes through f32: exactly for sources of 32 bits or fewer,
//! and for F64 through [`f32_round_to_odd`], which keeps the second
//! rounding correct (half's own `from_f64` rounds twice or truncates).
//!
//! A finite value too large for the target becomes infinite under these
//! rules. That is not rounding but a different number, so it is counted
//! apart ([`CastStats::overflowed`]) for the caller to refuse; NaN and
//! infinite inputs stay NaN and infinite and are not overflow.
//!
//! ```
//! use modeltool_format::Dtype;
//! use modeltool_format::cast::CastStats;
//!
//! let input: Vec<u8> = [1.0f32, 1.0 + f32::EPSILON, 1e6, f32::NAN]
//!     .iter()
//!     .flat_map(|v| v.to_le_bytes())
//!     .collect();
//! let mut stats = CastStats::default();
//! let mut out = Vec::new();
//! stats.cast(Dtype::F32, Dtype::F16, &input, &mut out);
//! assert_eq!(out.len(), 8);
//! assert_eq!((stats.values, stats.inexact, stats.overflowed), (4, 2, 1));
//! assert_eq!(stats.largest_overflow, 1e6);
//! # Ok::<(), modeltool_format::FormatError>(())
//! ```

use half::{bf16, f16};
use rayon::prelude::*;

use crate::Dtype;

/// Whether tensors of `dtype` can be cast (F16, BF16, F32 and F64).
pub fn is_castable(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

/// Whether `dtype` is a target a cast can produce (F32, F16 or BF16).
pub fn is_cast_target(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32)
}

/// Counts of a cast in progress.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct CastStats {
    /// Values cast.
    pub values: u64,
    /// Values that changed (NaN to NaN counts as exact). Overflowed values
    /// are counted here too.
    pub inexact: u64,
    /// Finite values that became infinite: too large for the target.
    pub overflowed: u64,
    /// The largest magnitude among the overflowed values (0 when none).
    pub largest_overflow: f64,
}

impl CastStats {
    /// Adds another count to this one.
    pub fn add(&mut self, other: &CastStats) {
        self.values += other.values;
        self.inexact += other.inexact;
        self.overflowed += other.overflowed;
        self.largest_overflow = self.largest_overflow.max(other.largest_overflow);
    }

    /// Casts little-endian `input` of dtype `from` to `to`, appending to
    /// `out`, rounding to nearest with ties to even. `from` must be
    /// castable ([`is_castable`]), `to` a target ([`is_cast_target`]), and
    /// `input` whole elements; large inputs are cast in parallel.
    ///
    /// # Panics
    /// When a dtype is not castable: callers check with [`is_castable`].
    pub fn cast(&mut self, from: Dtype, to: Dtype, input: &[u8], out: &mut Vec<u8>) {
        const PIECE: usize = 1 << 20; // a multiple of every element size
        if input.len() <= PIECE {
            return self.cast_serial(from, to, input, out);
        }
        let pieces: Vec<(Vec<u8>, CastStats)> = input
            .par_chunks(PIECE)
            .map(|piece| {
                let (mut bytes, mut stats) = (Vec::new(), CastStats::default());
                stats.cast_serial(from, to, piece, &mut bytes);
                (bytes, stats)
            })
            .collect();
        for (bytes, stats) in pieces {
            out.extend_from_slice(&bytes);
            self.add(&stats);
        }
    }

    fn cast_serial(&mut self, from: Dtype, to: Dtype, input: &[u8], out: &mut Vec<u8>) {
        assert!(
            is_castable(from) && is_cast_target(to),
            "cast from {from} to {to}"
        );
        let size = from.bits() / 8;
        out.reserve(input.len() / size * (to.bits() / 8));
        for c in input.chunks_exact(size) {
            let v: f64 = match from {
                Dtype::F16 => f16::from_le_bytes([c[0], c[1]]).to_f64(),
                Dtype::BF16 => bf16::from_le_bytes([c[0], c[1]]).to_f64(),
                Dtype::F32 => f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                _ => f64::from_le_bytes(c.try_into().expect("8 bytes for an F64")),
            };
            let back: f64 = match to {
                Dtype::F32 => {
                    let x = v as f32;
                    out.extend_from_slice(&x.to_le_bytes());
                    f64::from(x)
                }
                Dtype::F16 => {
                    let x = f16_from_f64(v);
                    out.extend_from_slice(&x.to_le_bytes());
                    x.to_f64()
                }
                _ => {
                    let x = bf16_from_f64(v);
                    out.extend_from_slice(&x.to_le_bytes());
                    x.to_f64()
                }
            };
            self.values += 1;
            if back != v && !(back.is_nan() && v.is_nan()) {
                self.inexact += 1;
                if v.is_finite() && back.is_infinite() {
                    self.overflowed += 1;
                    self.largest_overflow = self.largest_overflow.max(v.abs());
                }
            }
        }
    }
}

/// `v` rounded to f32 toward zero, with the lowest bit set when that is
/// inexact ("round to odd"). Rounding the result to nearest again, into a
/// type with at least two bits less precision (F16, BF16), gives the same
/// as rounding `v` to nearest directly: no double rounding. Exact for every
/// value an f32 holds; NaN and infinities pass through.
///
/// ```
/// use modeltool_format::cast::f32_round_to_odd;
/// assert_eq!(f32_round_to_odd(1.5), 1.5);
/// // Just above 1: truncated to 1, marked inexact in the lowest bit.
/// assert_eq!(f32_round_to_odd(1.0 + 2f64.powi(-40)).to_bits(), 1f32.to_bits() | 1);
/// ```
pub fn f32_round_to_odd(v: f64) -> f32 {
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

/// The F16 nearest to `v` (ties to even), rounded once.
///
/// ```
/// use modeltool_format::cast::f16_from_f64;
/// // 1 + 2^-11 is a tie (to even, 1); a little more is not.
/// assert_eq!(f16_from_f64(1.0 + 2f64.powi(-11)).to_f64(), 1.0);
/// assert!(f16_from_f64(1.0 + 2f64.powi(-11) + 2f64.powi(-40)).to_f64() > 1.0);
/// ```
pub fn f16_from_f64(v: f64) -> f16 {
    f16::from_f32(f32_round_to_odd(v))
}

/// The BF16 nearest to `v` (ties to even), rounded once; see [`f16_from_f64`].
///
/// ```
/// use modeltool_format::cast::bf16_from_f64;
/// assert_eq!(bf16_from_f64(1.0 + 2f64.powi(-8)).to_f64(), 1.0);
/// assert!(bf16_from_f64(1.0 + 2f64.powi(-8) + 2f64.powi(-50)).to_f64() > 1.0);
/// ```
pub fn bf16_from_f64(v: f64) -> bf16 {
    bf16::from_f32(f32_round_to_odd(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cast(from: Dtype, to: Dtype, values: &[f64]) -> CastStats {
        let input: Vec<u8> = values
            .iter()
            .flat_map(|&v| match from {
                Dtype::F64 => v.to_le_bytes().to_vec(),
                _ => (v as f32).to_le_bytes().to_vec(),
            })
            .collect();
        let mut stats = CastStats::default();
        stats.cast(from, to, &input, &mut Vec::new());
        stats
    }

    #[test]
    fn overflow_to_infinity_is_counted_apart_from_rounding() {
        let s = cast(
            Dtype::F32,
            Dtype::F16,
            &[1e6, -70000.0, 65520.0, 3e38, 65504.0, 1.1],
        );
        assert_eq!(s.overflowed, 4);
        assert_eq!(s.inexact, 5);
        assert_eq!(s.largest_overflow, f64::from(3e38f32));
        let s = cast(Dtype::F64, Dtype::F32, &[1e300, 1.0]);
        assert_eq!((s.overflowed, s.largest_overflow), (1, 1e300));
        let s = cast(Dtype::F32, Dtype::BF16, &[f64::from(f32::MAX)]);
        assert_eq!(s.overflowed, 1);
    }

    #[test]
    fn nan_and_infinity_are_not_overflow() {
        let s = cast(
            Dtype::F64,
            Dtype::F16,
            &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY],
        );
        assert_eq!((s.overflowed, s.inexact, s.largest_overflow), (0, 0, 0.0));
    }

    #[test]
    fn large_inputs_count_the_same_in_parallel() {
        let values: Vec<f64> = (0..600_000).map(|i| f64::from(i) * 0.37).collect();
        let s = cast(Dtype::F64, Dtype::F16, &values);
        assert_eq!(s.values, 600_000);
        assert!(s.overflowed > 0 && s.largest_overflow == 599_999.0 * 0.37);
    }
}
