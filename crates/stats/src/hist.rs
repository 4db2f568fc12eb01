//! A histogram that is built in one pass and merged exactly.
//!
//! Bins have a width of a power of two, `2^k`, and edges at multiples of
//! it: bin `i` holds `[i * 2^k, (i + 1) * 2^k)`. At most [`BINS`]
//! consecutive bins are kept. When a value falls outside, the window moves
//! or, if the values seen no longer fit in [`BINS`] bins, the width
//! doubles, merging bins pairwise: no count is ever estimated, and two
//! histograms (of two pieces of a tensor, read on two threads) merge
//! exactly by bringing both to the wider width. [`Histogram::finish`]
//! settles on the narrowest width that holds min..max, so the result does
//! not depend on how the tensor was split.

use serde::Serialize;

/// How many bins a histogram keeps while it is built.
pub const BINS: usize = 128;

/// The lowest bin-width exponent: keeps `2^-k` a normal f64.
const MIN_K: i32 = -1000;

/// A histogram of finite values under construction.
#[derive(Debug, Clone)]
pub(crate) struct Hist {
    k: i32,
    scale: f64,
    start: i64,
    counts: Vec<u64>,
    total: u64,
}

/// The finished histogram: `counts[j]` values lie in
/// `[start + j * width, start + (j + 1) * width)`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Histogram {
    /// Where the first bin starts.
    pub start: f64,
    /// The width of every bin, a power of two.
    pub width: f64,
    /// Values per bin, from the first to the last non-empty bin.
    pub counts: Vec<u64>,
}

fn pow2(k: i32) -> f64 {
    2f64.powi(k)
}

impl Hist {
    pub(crate) fn new() -> Hist {
        Hist {
            k: 0,
            scale: 1.0,
            start: 0,
            counts: Vec::new(),
            total: 0,
        }
    }

    #[inline]
    fn idx(&self, x: f64) -> i64 {
        // floor() without the libm call: truncate, then step down for
        // negative non-integers (the cast saturates far out of range,
        // which make_room treats as out of the window).
        let t = x * self.scale;
        let i = t as i64;
        i.wrapping_sub(i64::from((i as f64) > t))
    }

    fn set_k(&mut self, k: i32) {
        self.k = k;
        self.scale = pow2(-k);
    }

    /// Adds one finite value.
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        if self.total == 0 && self.counts.is_empty() {
            // Fine enough to tell apart any two values near x.
            let e = ((x.abs().to_bits() >> 52) & 0x7ff) as i32 - 1023;
            self.set_k(if x == 0.0 { MIN_K } else { (e - 60).max(MIN_K) });
            self.start = self.idx(x) - (BINS / 2) as i64;
            self.counts = vec![0; BINS];
        }
        let j = self.idx(x).wrapping_sub(self.start);
        if (j as u64) < BINS as u64 {
            self.counts[j as usize] += 1;
        } else {
            self.make_room(x);
            let j = (self.idx(x) - self.start) as usize;
            self.counts[j] += 1;
        }
        self.total += 1;
    }

    /// Adds finite values: the tight loop of [`Hist::add`], counting into
    /// four interleaved sets of bins (a run of equal bins does not wait on
    /// the previous increment) that are summed at the end.
    pub(crate) fn add_all(&mut self, xs: &[f64]) {
        debug_assert!(xs.len() < u32::MAX as usize, "lanes count in u32");
        let mut at = 0;
        while at < xs.len() {
            if self.counts.is_empty() {
                self.add(xs[at]);
                at += 1;
                continue;
            }
            let (scale, start) = (self.scale, self.start);
            let mut lanes = [[0u32; BINS]; 4];
            let mut stopped = None;
            for (n, &x) in xs[at..].iter().enumerate() {
                let t = x * scale;
                let i = t as i64;
                let i = i.wrapping_sub(i64::from((i as f64) > t));
                let j = i.wrapping_sub(start) as u64;
                if j < BINS as u64 {
                    lanes[n & 3][j as usize] += 1;
                } else {
                    stopped = Some(at + n);
                    break;
                }
            }
            let counted = stopped.unwrap_or(xs.len()) - at;
            for (j, c) in self.counts.iter_mut().enumerate() {
                *c += u64::from(lanes[0][j] + lanes[1][j]) + u64::from(lanes[2][j] + lanes[3][j]);
            }
            self.total += counted as u64;
            match stopped {
                // The window moves or widens for this value.
                Some(s) => {
                    self.add(xs[s]);
                    at = s + 1;
                }
                None => break,
            }
        }
    }

    /// Bins as (absolute index, count), non-empty only.
    fn bins(&self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(j, &c)| (self.start + j as i64, c))
    }

    /// Widens and moves the window so that `x` fits with every bin.
    fn make_room(&mut self, x: f64) {
        let occupied: Vec<(i64, u64)> = self.bins().collect();
        let old_k = self.k;
        let (mut lo, mut hi) = occupied
            .iter()
            .fold((i64::MAX, i64::MIN), |(l, h), &(i, _)| (l.min(i), h.max(i)));
        let mut k = self.k;
        loop {
            let i = (x * pow2(-k)).floor();
            // Within i64 with room to spare, and within the window.
            if i.abs() < 2f64.powi(61) {
                let (l, h) = (lo.min(i as i64), hi.max(i as i64));
                if h - l < BINS as i64 {
                    self.rebuild(&occupied, old_k, k, l, h);
                    return;
                }
            }
            k += 1;
            lo >>= 1;
            hi >>= 1;
        }
    }

    /// Refills the window at width exponent `k` from bins at `old_k`,
    /// centred on the occupied range `lo..=hi` (indices at `k`).
    fn rebuild(&mut self, bins: &[(i64, u64)], old_k: i32, k: i32, lo: i64, hi: i64) {
        let d = (k - old_k).clamp(0, 63) as u32;
        let spare = (BINS as i64 - 1 - (hi - lo)) / 2;
        self.set_k(k);
        self.start = lo - spare;
        self.counts.iter_mut().for_each(|c| *c = 0);
        for &(i, c) in bins {
            self.counts[((i >> d) - self.start) as usize] += c;
        }
    }

    /// Adds another histogram's counts.
    pub(crate) fn merge(&mut self, other: &Hist) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        let mut k = self.k.max(other.k);
        let shifted = |h: &Hist, k: i32| -> Vec<(i64, u64)> {
            let d = (k - h.k).clamp(0, 63) as u32;
            h.bins().map(|(i, c)| (i >> d, c)).collect()
        };
        loop {
            let all: Vec<(i64, u64)> = shifted(self, k)
                .into_iter()
                .chain(shifted(other, k))
                .collect();
            let lo = all.iter().map(|b| b.0).min().unwrap_or(0);
            let hi = all.iter().map(|b| b.0).max().unwrap_or(0);
            if hi - lo < BINS as i64 {
                let total = self.total + other.total;
                self.rebuild(&all, k, k, lo, hi);
                self.total = total;
                return;
            }
            k += 1;
        }
    }

    /// The narrowest power-of-two histogram holding `min..=max`, trimmed to
    /// its non-empty bins; `None` when no value was added.
    pub(crate) fn finish(mut self, min: f64, max: f64) -> Option<Histogram> {
        if self.counts.is_empty() {
            return None;
        }
        let mut k = self.k;
        while (max * pow2(-k)).floor() - (min * pow2(-k)).floor() >= BINS as f64 {
            k += 1;
        }
        if k > self.k {
            let bins: Vec<(i64, u64)> = self.bins().collect();
            let d = (k - self.k).clamp(0, 63) as u32;
            let lo = bins.iter().map(|b| b.0 >> d).min().unwrap_or(0);
            let hi = bins.iter().map(|b| b.0 >> d).max().unwrap_or(0);
            let old = self.k;
            self.rebuild(&bins, old, k, lo, hi);
        }
        let first = self.counts.iter().position(|&c| c > 0)?;
        let last = self.counts.iter().rposition(|&c| c > 0)?;
        let width = pow2(self.k);
        Some(Histogram {
            start: (self.start + first as i64) as f64 * width,
            width,
            counts: self.counts[first..=last].to_vec(),
        })
    }
}

impl Histogram {
    /// The histogram as `cells` characters of a sparkline (`▁`..`█`, a
    /// space for an empty cell), the cells spread evenly over `min..=max`.
    ///
    /// ```
    /// use modeltool_stats::Histogram;
    ///
    /// let h = Histogram { start: 0.0, width: 1.0, counts: vec![1, 0, 8] };
    /// assert_eq!(h.sparkline(0.0, 2.0, 3), "▁ █");
    /// ```
    pub fn sparkline(&self, min: f64, max: f64, cells: usize) -> String {
        const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
        let cells = cells.max(1);
        let mut sums = vec![0u64; cells];
        let span = max - min;
        for (j, &c) in self.counts.iter().enumerate() {
            let centre = self.start + (j as f64 + 0.5) * self.width;
            let at = if span > 0.0 {
                ((centre - min) / span * cells as f64).floor()
            } else {
                0.0
            };
            sums[(at.max(0.0) as usize).min(cells - 1)] += c;
        }
        let top = sums.iter().copied().max().unwrap_or(0).max(1);
        sums.iter()
            .map(|&s| {
                if s == 0 {
                    ' '
                } else {
                    BARS[((s * 8 - 1) / top).min(7) as usize]
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: &[f64]) -> Hist {
        let mut h = Hist::new();
        values.iter().for_each(|&v| h.add(v));
        h
    }

    #[test]
    fn counts_survive_widening_and_merging() {
        let values: Vec<f64> = (0..10_000)
            .map(|i| ((i * 7919) % 10_007) as f64 * 0.37 - 900.0)
            .collect();
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let whole = of(&values).finish(min, max).expect("values");
        assert_eq!(whole.counts.iter().sum::<u64>(), 10_000);
        // Any split, merged, gives the same histogram.
        for split in [1, 17, 5000, 9999] {
            let mut a = of(&values[..split]);
            a.merge(&of(&values[split..]));
            assert_eq!(
                a.finish(min, max).expect("values"),
                whole,
                "split at {split}"
            );
        }
        // Each value is in its bin.
        for &v in &values {
            let j = ((v - whole.start) / whole.width).floor();
            assert!(j >= 0.0 && (j as usize) < whole.counts.len());
        }
    }

    #[test]
    fn the_tight_loop_counts_as_one_value_at_a_time_does() {
        let values: Vec<f64> = (0..5000).map(|i| ((i * 31) % 997) as f64 - 400.5).collect();
        let mut fast = Hist::new();
        fast.add_all(&values);
        let (min, max) = (-400.5, 596.5);
        assert_eq!(fast.finish(min, max), of(&values).finish(min, max));
    }

    #[test]
    fn extreme_ranges_fit() {
        let values = [0.0, 1e-300, -1e300, 5e-324, 1.0];
        let h = of(&values).finish(-1e300, 1.0).expect("values");
        assert_eq!(h.counts.iter().sum::<u64>(), 5);
        assert!(h.counts.len() <= BINS);
        let same = of(&[3.5; 10]).finish(3.5, 3.5).expect("values");
        assert_eq!(same.counts, [10]);
    }
}
