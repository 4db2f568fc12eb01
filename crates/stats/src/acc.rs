//! Accumulating one tensor's figures over pieces of it.

use modeltool_format::Dtype;

use crate::hist::Hist;

/// Figures of the values seen so far. Moments are over the finite values,
/// in f64: each block's mean and sum of squared deviations computed in
/// two passes, blocks combined with Chan et al.'s pairwise update, which
/// is how pieces read on different threads merge too.
#[derive(Debug, Clone)]
pub(crate) struct Acc {
    pub values: u64,
    pub finite: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub zeros: u64,
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    pub subnormal: u64,
    /// Exact extremes of integer dtypes (f64 rounds beyond 2^53).
    pub int_min: i128,
    pub int_max: i128,
    pub hist: Option<Hist>,
}

impl Acc {
    pub(crate) fn new(histogram: bool) -> Acc {
        Acc {
            values: 0,
            finite: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zeros: 0,
            nan: 0,
            pos_inf: 0,
            neg_inf: 0,
            subnormal: 0,
            int_min: i128::MAX,
            int_max: i128::MIN,
            hist: histogram.then(Hist::new),
        }
    }

    /// Adds a block of values (a few thousand: both passes run in cache).
    pub(crate) fn add_block(&mut self, xs: &[f64], min_normal: f64) {
        if !self.add_plain_block(xs, min_normal) {
            self.add_any_block(xs, min_normal);
        }
    }

    /// The common case, in four lanes: every value finite, normal and
    /// nonzero. Returns `false`, having changed nothing, when one is not.
    fn add_plain_block(&mut self, xs: &[f64], min_normal: f64) -> bool {
        // Zero is never "normal" here, also for integers (min_normal 0).
        let normal = if min_normal > 0.0 {
            min_normal
        } else {
            f64::MIN_POSITIVE
        };
        let (mut sum, mut lo, mut hi) = ([0.0f64; 4], [f64::INFINITY; 4], [f64::NEG_INFINITY; 4]);
        let mut plain = true;
        let chunks = xs.chunks_exact(4);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..4 {
                let x = c[l];
                sum[l] += x;
                lo[l] = if x < lo[l] { x } else { lo[l] };
                hi[l] = if x > hi[l] { x } else { hi[l] };
                let a = x.abs();
                plain &= a >= normal && a <= f64::MAX;
            }
        }
        for &x in rest {
            sum[0] += x;
            lo[0] = lo[0].min(x);
            hi[0] = hi[0].max(x);
            plain &= x.abs() >= normal && x.abs() <= f64::MAX;
        }
        let total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
        if !plain || xs.is_empty() || !total.is_finite() {
            return false;
        }
        let mut b = Acc::new(false);
        b.values = xs.len() as u64;
        b.finite = b.values;
        b.mean = total / b.finite as f64;
        b.min = lo.iter().copied().fold(f64::INFINITY, f64::min);
        b.max = hi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = b.mean;
        let mut m2 = [0.0f64; 4];
        let chunks = xs.chunks_exact(4);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..4 {
                let d = c[l] - mean;
                m2[l] += d * d;
            }
        }
        for &x in rest {
            m2[0] += (x - mean) * (x - mean);
        }
        b.m2 = (m2[0] + m2[1]) + (m2[2] + m2[3]);
        if let Some(h) = &mut self.hist {
            h.add_all(xs);
        }
        self.merge(&b);
        true
    }

    /// Any block: NaN, infinities, zeros and subnormals counted.
    fn add_any_block(&mut self, xs: &[f64], min_normal: f64) {
        let mut b = Acc::new(false);
        b.values = xs.len() as u64;
        let mut sum = 0.0;
        for &x in xs {
            if x.is_finite() {
                sum += x;
                b.finite += 1;
                b.min = b.min.min(x);
                b.max = b.max.max(x);
                let a = x.abs();
                if a == 0.0 {
                    b.zeros += 1;
                } else if a < min_normal {
                    b.subnormal += 1;
                }
            } else if x.is_nan() {
                b.nan += 1;
            } else if x > 0.0 {
                b.pos_inf += 1;
            } else {
                b.neg_inf += 1;
            }
        }
        if b.finite > 0 {
            if !sum.is_finite() {
                // Values near f64::MAX overflowed the sum: add them scaled.
                let scaled: f64 = xs
                    .iter()
                    .filter(|x| x.is_finite())
                    .map(|x| x * 0.5f64.powi(600))
                    .sum();
                b.mean = scaled / b.finite as f64 * 2f64.powi(600);
            } else {
                b.mean = sum / b.finite as f64;
            }
            let mean = b.mean;
            b.m2 = xs
                .iter()
                .filter(|x| x.is_finite())
                .map(|&x| (x - mean) * (x - mean))
                .sum();
            if let Some(h) = &mut self.hist {
                xs.iter().filter(|x| x.is_finite()).for_each(|&x| h.add(x));
            }
        }
        self.merge(&b);
    }

    /// Takes in the exact extremes of integer values.
    pub(crate) fn add_ints(&mut self, dtype: Dtype, bytes: &[u8]) {
        let (lo, hi) = int_range(dtype, bytes);
        self.int_min = self.int_min.min(lo);
        self.int_max = self.int_max.max(hi);
    }

    /// Chan et al.: combines the figures of two disjoint sets of values.
    pub(crate) fn merge(&mut self, o: &Acc) {
        let n = self.finite + o.finite;
        if self.finite == 0 {
            (self.mean, self.m2) = (o.mean, o.m2);
        } else if o.finite > 0 {
            let (na, nb) = (self.finite as f64, o.finite as f64);
            let delta = o.mean - self.mean;
            if delta.is_finite() {
                self.mean += delta * (nb / n as f64);
            } else {
                // Means of opposite signs near f64::MAX.
                self.mean = self.mean * (na / n as f64) + o.mean * (nb / n as f64);
            }
            self.m2 += o.m2 + delta * delta * (na * nb / n as f64);
        }
        self.finite = n;
        self.values += o.values;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.zeros += o.zeros;
        self.nan += o.nan;
        self.pos_inf += o.pos_inf;
        self.neg_inf += o.neg_inf;
        self.subnormal += o.subnormal;
        self.int_min = self.int_min.min(o.int_min);
        self.int_max = self.int_max.max(o.int_max);
        if let (Some(h), Some(oh)) = (&mut self.hist, &o.hist) {
            h.merge(oh);
        }
    }
}

/// The smallest and largest integer in `bytes` of an integer dtype.
fn int_range(dtype: Dtype, bytes: &[u8]) -> (i128, i128) {
    fn fold<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> i128) -> (i128, i128) {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("N bytes")))
            .fold((i128::MAX, i128::MIN), |(l, h), v| (l.min(v), h.max(v)))
    }
    match dtype {
        Dtype::BOOL | Dtype::U8 => fold(bytes, |c: [u8; 1]| c[0].into()),
        Dtype::I8 => fold(bytes, |c: [u8; 1]| (c[0] as i8).into()),
        Dtype::I16 => fold(bytes, |c| i16::from_le_bytes(c).into()),
        Dtype::U16 => fold(bytes, |c| u16::from_le_bytes(c).into()),
        Dtype::I32 => fold(bytes, |c| i32::from_le_bytes(c).into()),
        Dtype::U32 => fold(bytes, |c| u32::from_le_bytes(c).into()),
        Dtype::I64 => fold(bytes, |c| i64::from_le_bytes(c).into()),
        Dtype::U64 => fold(bytes, |c| u64::from_le_bytes(c).into()),
        _ => (i128::MAX, i128::MIN),
    }
}
