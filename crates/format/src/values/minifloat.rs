//! The float codecs: the 8-bit and smaller float types (F8, F6, F4,
//! E8M0) described by sign, exponent and mantissa bits, decoded to and
//! encoded from f64; and F16 and BF16 rounded once from an f64.

use super::*;

/// The smaller float types described by sign, exponent and mantissa bits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mini {
    pub(super) exp_bits: u32,
    pub(super) man_bits: u32,
    pub(super) bias: i32,
    pub(super) kind: MiniKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum MiniKind {
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
    pub(super) fn of(dtype: Dtype) -> Option<Mini> {
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

    pub(super) fn has_sign(self) -> bool {
        self.kind != MiniKind::E8m0
    }

    pub(super) fn sign_bit(self) -> u32 {
        1 << (self.exp_bits + self.man_bits)
    }

    pub(super) fn codes(self) -> u32 {
        1 << (self.exp_bits + self.man_bits + u32::from(self.has_sign()))
    }

    pub(super) fn is_nan(self, code: u32) -> bool {
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

    pub(super) fn canonical_nan(self) -> Option<u32> {
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
    pub(super) fn decode(self, code: u32) -> f64 {
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
    pub(super) fn max_code(self) -> u32 {
        match self.kind {
            MiniKind::Ieee => (((1 << self.exp_bits) - 1) << self.man_bits) - 1,
            MiniKind::Fn => self.sign_bit() - 2,
            MiniKind::Fnuz | MiniKind::Finite => self.sign_bit() - 1,
            MiniKind::E8m0 => 0xfe,
        }
    }

    /// The code nearest to `v` (ties to the even code), or `None` when `v`
    /// has no code: out of range without infinities, or negative for E8M0.
    pub(super) fn encode(self, v: f64) -> Option<u32> {
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

/// The F16 bits nearest to `v` (ties to even), rounded once through
/// [`crate::cast::f32_round_to_odd`]; not half's `f16::from_f64`, which drops
/// the low bits of the f64 before rounding.
pub(super) fn f16_from_f64(v: f64) -> u16 {
    crate::cast::f16_from_f64(v).to_bits()
}

/// The BF16 bits nearest to `v` (ties to even); see [`f16_from_f64`].
pub(super) fn bf16_from_f64(v: f64) -> u16 {
    crate::cast::bf16_from_f64(v).to_bits()
}
