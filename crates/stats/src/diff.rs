//! Comparing two models tensor by tensor.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use modeltool_format::{Dtype, decode};
use modeltool_loader::{Entry, Model};
use rayon::prelude::*;
use serde::Serialize;

use crate::{BLOCK, Result, element_count, glob_match, piece_elements, pieces, read_elements};

/// When two values count as equal: `|a - b| <= abs + rel * |b|` (numpy's
/// `isclose`, with `b` from the second model), or `a == b`, or both NaN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub abs: f64,
    /// Relative tolerance, of the second model's value.
    pub rel: f64,
}

impl std::str::FromStr for Tolerance {
    type Err = String;

    /// `ABS` or `ABS,REL`, each finite and not negative (what `diff
    /// --tolerance` takes).
    ///
    /// ```
    /// use modeltool_stats::Tolerance;
    /// let t: Tolerance = "0,0.01".parse()?;
    /// assert_eq!((t.abs, t.rel), (0.0, 0.01));
    /// assert!("-1".parse::<Tolerance>().is_err());
    /// assert!("1,2,3".parse::<Tolerance>().is_err());
    /// # Ok::<(), String>(())
    /// ```
    fn from_str(s: &str) -> std::result::Result<Tolerance, String> {
        let mut parts = s.split(',');
        let mut next = |what: &str| -> std::result::Result<f64, String> {
            match parts.next() {
                None => Ok(0.0),
                Some(p) => match p.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                    _ => Err(format!(
                        "{what} tolerance `{}` is not a number >= 0",
                        modeltool_format::text::Escaped(p)
                    )),
                },
            }
        };
        let abs = next("the absolute")?;
        let rel = next("the relative")?;
        if parts.next().is_some() {
            return Err("give ABS or ABS,REL".into());
        }
        Ok(Tolerance { abs, rel })
    }
}

impl Tolerance {
    /// Whether `a` and `b` count as equal.
    #[inline]
    pub fn close(&self, a: f64, b: f64) -> bool {
        a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= self.abs + self.rel * b.abs()
    }
}

/// What [`DiffReport::from_models`] compares.
#[derive(Debug, Clone, Default)]
pub struct DiffOptions {
    /// When values count as equal.
    pub tolerance: Tolerance,
    /// Only tensors whose name matches one of these; all when empty.
    pub tensors: Vec<String>,
    /// Compare the values even when both files store the same checksum.
    pub read_all: bool,
}

/// A tensor both models hold with another shape: not compared.
#[derive(Debug, Clone, Serialize)]
pub struct ShapeChange {
    /// The tensor.
    pub name: String,
    /// Its dtype in the first model.
    pub dtype_a: Dtype,
    /// Its shape in the first model.
    pub shape_a: Vec<u64>,
    /// Its dtype in the second model.
    pub dtype_b: Dtype,
    /// Its shape in the second model.
    pub shape_b: Vec<u64>,
}

/// A tensor that is the same in both models.
#[derive(Debug, Clone, Serialize)]
pub struct Equal {
    /// The tensor.
    pub name: String,
    /// How that was decided: `"checksum"` (both files store the same
    /// sha256 for it; its bytes were not read, so damage to them is not
    /// seen: `verify` checks bytes against checksums), or `"values"`
    /// (every value compared, within the tolerance).
    pub by: &'static str,
    /// The dtypes, when they differ (`[A, B]`): the values are equal as
    /// numbers, stored in another type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtypes: Option<(Dtype, Dtype)>,
}

/// A tensor whose values differ.
#[derive(Debug, Clone, Serialize)]
pub struct TensorDiff {
    /// The tensor.
    pub name: String,
    /// Its dtype in the first model.
    pub dtype_a: Dtype,
    /// Its dtype in the second model (values are compared as f64).
    pub dtype_b: Dtype,
    /// The shape of both.
    pub shape: Vec<u64>,
    /// Values compared.
    pub values: u64,
    /// Values not equal within the tolerance, NaN against a number included.
    pub differing: u64,
    /// Of those, a NaN against a number.
    pub nan_mismatch: u64,
    /// Of those, an infinity against a number or the other infinity.
    pub inf_mismatch: u64,
    /// The largest `|a - b|` over the pairs where both are finite.
    pub max_abs_diff: Option<f64>,
    /// Where: the flat element index...
    pub max_abs_index: Option<u64>,
    /// ...and the same as one index per dimension.
    pub max_abs_position: Option<Vec<u64>>,
    /// The values there, in the first and the second model.
    pub max_abs_values: Option<(f64, f64)>,
    /// The mean `|a - b|` over the pairs where both are finite.
    pub mean_abs_diff: Option<f64>,
    /// `||a - b|| / ||a||` over those pairs (`None` when `a` is all zero).
    pub rel_l2: Option<f64>,
    /// `a·b / (||a|| ||b||)` over those pairs (`None` when either is zero).
    pub cosine: Option<f64>,
}

/// The comparison of two models.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The first model's path.
    pub a: String,
    /// The second model's path.
    pub b: String,
    /// The tolerance used.
    pub tolerance: Tolerance,
    /// Tensors only the first model holds.
    pub only_a: Vec<String>,
    /// Tensors only the second model holds.
    pub only_b: Vec<String>,
    /// Tensors of another shape in each model.
    pub shape_changed: Vec<ShapeChange>,
    /// Tensors with a different dtype or different values.
    pub changed: Vec<TensorDiff>,
    /// Tensors that are the same.
    pub equal: Vec<Equal>,
    /// Bytes of tensor data read from both models together.
    pub bytes_read: u64,
    /// Whether the models hold the same tensors with the same shapes and
    /// values (within the tolerance); a dtype may differ (see
    /// [`Equal::dtypes`]).
    pub same: bool,
}

/// Figures of a compared range.
#[derive(Debug, Clone, Default)]
struct Cmp {
    values: u64,
    differing: u64,
    nan_mismatch: u64,
    inf_mismatch: u64,
    finite: u64,
    max_abs: Option<(f64, u64, f64, f64)>,
    sum_abs: f64,
    sum_d2: f64,
    sum_a2: f64,
    sum_b2: f64,
    sum_ab: f64,
}

impl Cmp {
    fn block(&mut self, a: &[f64], b: &[f64], first: u64, tol: &Tolerance) {
        self.values += a.len() as u64;
        for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
            if !tol.close(x, y) {
                self.differing += 1;
                if x.is_nan() || y.is_nan() {
                    self.nan_mismatch += 1;
                } else if x.is_infinite() || y.is_infinite() {
                    self.inf_mismatch += 1;
                }
            }
            if x.is_finite() && y.is_finite() {
                let d = (x - y).abs();
                self.finite += 1;
                self.sum_abs += d;
                self.sum_d2 += d * d;
                self.sum_a2 += x * x;
                self.sum_b2 += y * y;
                self.sum_ab += x * y;
                if self.max_abs.is_none_or(|m| d > m.0) {
                    self.max_abs = Some((d, first + i as u64, x, y));
                }
            }
        }
    }

    /// Adds the figures of the range after this one.
    fn merge(&mut self, o: &Cmp) {
        self.values += o.values;
        self.differing += o.differing;
        self.nan_mismatch += o.nan_mismatch;
        self.inf_mismatch += o.inf_mismatch;
        self.finite += o.finite;
        self.sum_abs += o.sum_abs;
        self.sum_d2 += o.sum_d2;
        self.sum_a2 += o.sum_a2;
        self.sum_b2 += o.sum_b2;
        self.sum_ab += o.sum_ab;
        if let Some(m) = o.max_abs {
            if self.max_abs.is_none_or(|s| m.0 > s.0) {
                self.max_abs = Some(m);
            }
        }
    }
}

/// The index of each dimension of flat element `i` of `shape` (row-major).
fn unravel(mut i: u64, shape: &[u64]) -> Vec<u64> {
    let mut pos = vec![0; shape.len()];
    for (p, &d) in pos.iter_mut().zip(shape).rev() {
        if d > 0 {
            *p = i % d;
            i /= d;
        }
    }
    pos
}

fn shape(e: &Entry) -> Vec<u64> {
    e.meta.shape.iter().map(|&d| d as u64).collect()
}

impl DiffReport {
    /// Compares model `a` with model `b`. A tensor with the same dtype and
    /// shape whose stored checksums are equal in both is equal without
    /// reading (unless [`DiffOptions::read_all`]); every other tensor both
    /// hold with the same shape is read, value by value, as f64.
    ///
    /// ```
    /// use modeltool_format::{write_safetensors, Dtype, TensorMeta};
    /// use modeltool_loader::{Model, OpenOptions};
    /// use modeltool_stats::{DiffOptions, DiffReport};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let write = |name: &str, v: [f32; 3]| -> Result<Model, Box<dyn std::error::Error>> {
    ///     let path = dir.path().join(name);
    ///     let t = TensorMeta { name: "w".into(), dtype: Dtype::F32, shape: vec![3] };
    ///     let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    ///     write_safetensors(std::fs::File::create(&path)?, &[(t, &bytes[..])], &Default::default())?;
    ///     Ok(Model::open(&path, OpenOptions::default())?)
    /// };
    /// let (a, b) = (write("a.safetensors", [1.0, 2.0, 3.0])?, write("b.safetensors", [1.0, 2.5, 3.0])?);
    /// let report = DiffReport::from_models(&a, &b, &DiffOptions::default())?;
    /// assert!(!report.same);
    /// assert_eq!(report.changed[0].max_abs_index, Some(1));
    /// assert_eq!(report.changed[0].max_abs_diff, Some(0.5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_models(a: &Model, b: &Model, options: &DiffOptions) -> Result<DiffReport> {
        let picked = |e: &&Entry| {
            options.tensors.is_empty()
                || options.tensors.iter().any(|p| glob_match(p, &e.meta.name))
        };
        let in_b: HashMap<&str, &Entry> = b
            .entries()
            .iter()
            .filter(picked)
            .map(|e| (e.meta.name.as_str(), e))
            .collect();
        let in_a: HashMap<&str, &Entry> = a
            .entries()
            .iter()
            .filter(picked)
            .map(|e| (e.meta.name.as_str(), e))
            .collect();
        let mut report = DiffReport {
            a: a.path().display().to_string(),
            b: b.path().display().to_string(),
            tolerance: options.tolerance,
            only_a: Vec::new(),
            only_b: Vec::new(),
            shape_changed: Vec::new(),
            changed: Vec::new(),
            equal: Vec::new(),
            bytes_read: 0,
            same: false,
        };
        let mut to_read: Vec<(&Entry, &Entry)> = Vec::new();
        for ea in a.entries().iter().filter(picked) {
            let Some(&eb) = in_b.get(ea.meta.name.as_str()) else {
                report.only_a.push(ea.meta.name.clone());
                continue;
            };
            let same_count = element_count(ea) * decode::values_per_element(ea.meta.dtype) as u64
                == element_count(eb) * decode::values_per_element(eb.meta.dtype) as u64;
            if ea.meta.shape != eb.meta.shape || !same_count {
                report.shape_changed.push(ShapeChange {
                    name: ea.meta.name.clone(),
                    dtype_a: ea.meta.dtype,
                    shape_a: shape(ea),
                    dtype_b: eb.meta.dtype,
                    shape_b: shape(eb),
                });
                continue;
            }
            let same_sum =
                matches!((&ea.stored_sha256, &eb.stored_sha256), (Some(x), Some(y)) if x == y);
            if same_sum && ea.meta.dtype == eb.meta.dtype && !options.read_all {
                report.equal.push(Equal {
                    name: ea.meta.name.clone(),
                    by: "checksum",
                    dtypes: None,
                });
            } else {
                to_read.push((ea, eb));
            }
        }
        report.only_b = b
            .entries()
            .iter()
            .filter(picked)
            .filter(|e| !in_a.contains_key(e.meta.name.as_str()))
            .map(|e| e.meta.name.clone())
            .collect();

        let counter = AtomicU64::new(0);
        let counts: Vec<(u64, u64)> = to_read
            .iter()
            .map(|(ea, eb)| {
                let per = piece_elements(ea.meta.dtype).min(piece_elements(eb.meta.dtype));
                (element_count(ea), per)
            })
            .collect();
        let work = pieces(&counts);
        let tol = options.tolerance;
        let partial: Vec<Cmp> = work
            .par_iter()
            .map(|&(i, first, count)| {
                let (ea, eb) = to_read[i];
                let xa = read_elements(a, ea, first, count, &counter)?;
                let xb = read_elements(b, eb, first, count, &counter)?;
                let vpe = decode::values_per_element(ea.meta.dtype) as u64;
                let mut cmp = Cmp::default();
                let (mut va, mut vb) = (Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK));
                let step = (BLOCK / 8 * 8) as u64;
                let mut at = 0;
                while at < count {
                    let n = step.min(count - at);
                    let slice = |e: &Entry, bytes: &[u8], out: &mut Vec<f64>| {
                        let bits = e.meta.dtype.bits() as u64;
                        out.clear();
                        decode::to_f64(
                            e.meta.dtype,
                            &bytes[(at * bits / 8) as usize..((at + n) * bits / 8) as usize],
                            out,
                        );
                    };
                    slice(ea, &xa, &mut va);
                    slice(eb, &xb, &mut vb);
                    cmp.block(&va, &vb, (first + at) * vpe, &tol);
                    at += n;
                }
                Ok(cmp)
            })
            .collect::<Result<_>>()?;
        let mut totals: Vec<Cmp> = vec![Cmp::default(); to_read.len()];
        for (&(i, _, _), c) in work.iter().zip(&partial) {
            totals[i].merge(c);
        }
        for ((ea, eb), c) in to_read.iter().zip(totals) {
            if c.differing == 0 {
                report.equal.push(Equal {
                    name: ea.meta.name.clone(),
                    by: "values",
                    dtypes: (ea.meta.dtype != eb.meta.dtype)
                        .then_some((ea.meta.dtype, eb.meta.dtype)),
                });
                continue;
            }
            let shape = shape(ea);
            let vpe = decode::values_per_element(ea.meta.dtype) as u64;
            let finite = c.finite > 0;
            report.changed.push(TensorDiff {
                name: ea.meta.name.clone(),
                dtype_a: ea.meta.dtype,
                dtype_b: eb.meta.dtype,
                values: c.values,
                differing: c.differing,
                nan_mismatch: c.nan_mismatch,
                inf_mismatch: c.inf_mismatch,
                max_abs_diff: c.max_abs.map(|m| m.0),
                max_abs_index: c.max_abs.map(|m| m.1 / vpe),
                max_abs_position: c.max_abs.map(|m| unravel(m.1 / vpe, &shape)),
                max_abs_values: c.max_abs.map(|m| (m.2, m.3)),
                mean_abs_diff: finite.then(|| c.sum_abs / c.finite as f64),
                rel_l2: (c.sum_a2 > 0.0).then(|| (c.sum_d2 / c.sum_a2).sqrt()),
                cosine: (c.sum_a2 > 0.0 && c.sum_b2 > 0.0)
                    .then(|| c.sum_ab / (c.sum_a2.sqrt() * c.sum_b2.sqrt())),
                shape,
            });
        }
        report.equal.sort_by(|x, y| x.name.cmp(&y.name));
        report.bytes_read = counter.into_inner();
        report.same = report.only_a.is_empty()
            && report.only_b.is_empty()
            && report.shape_changed.is_empty()
            && report.changed.is_empty();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_at_the_same_place_is_equal_and_against_a_number_differs() {
        let tol = Tolerance::default();
        let mut c = Cmp::default();
        c.block(
            &[f64::NAN, f64::NAN, 1.0, f64::INFINITY],
            &[f64::NAN, 2.0, 1.0, f64::INFINITY],
            0,
            &tol,
        );
        assert_eq!((c.differing, c.nan_mismatch, c.inf_mismatch), (1, 1, 0));
        let mut c = Cmp::default();
        c.block(
            &[f64::INFINITY, 1.0],
            &[f64::NEG_INFINITY, f64::INFINITY],
            0,
            &tol,
        );
        assert_eq!((c.differing, c.inf_mismatch, c.finite), (2, 2, 0));
    }

    #[test]
    fn tolerance_is_numpy_isclose() {
        let t = Tolerance { abs: 0.1, rel: 0.5 };
        assert!(t.close(1.0, 2.0)); // 1 <= 0.1 + 0.5 * 2
        assert!(!t.close(2.0, 1.0)); // 1 > 0.1 + 0.5 * 1: not symmetric, like numpy
        assert!(!t.close(f64::INFINITY, 1e308));
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(7, &[2, 3, 4]), [0, 1, 3]);
        assert_eq!(unravel(23, &[2, 3, 4]), [1, 2, 3]);
        assert_eq!(unravel(0, &[]), Vec::<u64>::new());
    }
}
