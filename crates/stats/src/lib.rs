//! Look at the numbers of a model: per-tensor statistics ([`StatsReport`]),
//! the check for NaN and infinities behind `verify --values`
//! ([`ValueCheck`]), and the comparison of two models ([`DiffReport`]).
//! What each figure means, and how NaNs compare, is in `docs/STATS.md`.
//!
//! Every value is read as f64 ([`modeltool_format::decode`]), whatever its
//! dtype, and moments accumulate in f64 with a stable merge of pieces, so
//! that means and standard deviations agree with numpy's float64 results.
//! Data is read in pieces of at most [`PIECE_BYTES`] bytes with plain
//! reads, in parallel across tensors and within large ones: memory stays
//! bounded however large the model.
//!
//! ```
//! use modeltool_format::{write_safetensors, Dtype, TensorMeta};
//! use modeltool_loader::{Model, OpenOptions};
//! use modeltool_stats::{StatsOptions, StatsReport};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("w.safetensors");
//! let w = TensorMeta { name: "w".into(), dtype: Dtype::F32, shape: vec![4] };
//! let bytes: Vec<u8> = [1.0f32, 2.0, 3.0, f32::NAN].iter().flat_map(|v| v.to_le_bytes()).collect();
//! write_safetensors(std::fs::File::create(&path)?, &[(w, &bytes[..])], &Default::default())?;
//!
//! let model = Model::open(&path, OpenOptions::default())?;
//! let report = StatsReport::from_model(&model, &StatsOptions::default())?;
//! let w = &report.tensors[0];
//! assert_eq!((w.mean, w.nan), (Some(2.0), Some(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acc;
mod diff;
mod glob;
mod hist;

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use modeltool_format::{Dtype, decode};
use modeltool_loader::{Entry, LoadError, Location, Model};
use rayon::prelude::*;
use serde::Serialize;

use crate::acc::Acc;
pub use crate::diff::{DiffOptions, DiffReport, Equal, ShapeChange, TensorDiff, Tolerance};
pub use crate::glob::glob_match;
pub use crate::hist::{BINS, Histogram};

/// The most bytes of one tensor read at once (a multiple of 24, so every
/// piece of every dtype, packed F6 and C64 included, ends on an element).
pub const PIECE_BYTES: u64 = 3 << 20;

/// Values decoded and summed at a time: both passes over a block run in
/// the CPU cache.
const BLOCK: usize = 4096;

/// What went wrong looking at the numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    /// Reading the model failed (I/O, a file changed meanwhile).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// `--tensors` picked nothing.
    #[error("{path}: no tensor matches `{pattern}`")]
    NoMatch {
        /// The model.
        path: PathBuf,
        /// The pattern, escaped for printing.
        pattern: String,
    },
}

/// A `Result` with [`StatsError`].
pub type Result<T, E = StatsError> = std::result::Result<T, E>;

/// What [`StatsReport::from_model`] looks at.
#[derive(Debug, Clone, Default)]
pub struct StatsOptions {
    /// Only tensors whose name matches one of these (`*` and `?`
    /// wildcards, see [`glob_match`]); all when empty.
    pub tensors: Vec<String>,
    /// Skip the histograms (for checks that need only counts).
    pub no_histogram: bool,
}

/// A number as stored: exact integers for integer dtypes, f64 for floats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Number {
    /// A value of an integer or BOOL tensor.
    Int(i128),
    /// A value of a float tensor.
    Float(f64),
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(v) => write!(f, "{v}"),
            Number::Float(v) => write!(f, "{}", short(*v)),
        }
    }
}

/// A float in at most 5 significant digits, for tables.
pub fn short(v: f64) -> String {
    if v == 0.0 || (1e-3..1e5).contains(&v.abs()) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" { "0".into() } else { s.into() }
    } else {
        format!("{v:.3e}")
    }
}

/// The figures of one tensor. Float figures are over its finite values;
/// NaN and infinity counts are `None` for integer and BOOL tensors.
#[derive(Debug, Clone, Serialize)]
pub struct TensorStats {
    /// The tensor's name, as in the file.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<u64>,
    /// How many values were read (two per C64 element: real, imaginary).
    pub values: u64,
    /// The smallest finite value.
    pub min: Option<Number>,
    /// The largest finite value.
    pub max: Option<Number>,
    /// The largest magnitude of a finite value.
    pub max_abs: Option<Number>,
    /// The mean of the finite values.
    pub mean: Option<f64>,
    /// Their population standard deviation (numpy's `std`, `ddof=0`).
    pub std: Option<f64>,
    /// Values equal to zero (either sign).
    pub zeros: u64,
    /// NaN values.
    pub nan: Option<u64>,
    /// `+inf` values.
    pub pos_inf: Option<u64>,
    /// `-inf` values.
    pub neg_inf: Option<u64>,
    /// Nonzero values below the dtype's smallest normal magnitude.
    pub subnormal: Option<u64>,
    /// The finite values' histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
}

/// The figures of all tensors of one dtype together.
#[derive(Debug, Clone, Serialize)]
pub struct DtypeSummary {
    /// The dtype.
    pub dtype: Dtype,
    /// How many tensors have it.
    pub tensors: usize,
    /// How many values they hold.
    pub values: u64,
    /// The smallest finite value of all.
    pub min: Option<Number>,
    /// The largest finite value of all.
    pub max: Option<Number>,
    /// The mean of all finite values.
    pub mean: Option<f64>,
    /// Their population standard deviation.
    pub std: Option<f64>,
    /// Zeros.
    pub zeros: u64,
    /// NaN values (`None` for integer dtypes).
    pub nan: Option<u64>,
    /// Infinities of either sign.
    pub inf: Option<u64>,
    /// Subnormal values.
    pub subnormal: Option<u64>,
}

/// Per-tensor statistics of a model, and a summary per dtype.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// The model's path.
    pub path: String,
    /// The tensors looked at, in the model's order.
    pub tensors: Vec<TensorStats>,
    /// One line per dtype, in dtype order.
    pub dtypes: Vec<DtypeSummary>,
    /// Bytes of tensor data read.
    pub bytes_read: u64,
}

impl StatsReport {
    /// Reads every value of the tensors `options` picks and computes their
    /// figures.
    pub fn from_model(model: &Model, options: &StatsOptions) -> Result<StatsReport> {
        let entries = select(model, &options.tensors)?;
        let counter = AtomicU64::new(0);
        let accs = tensor_accs(model, &entries, !options.no_histogram, &counter)?;
        let mut tensors = Vec::with_capacity(entries.len());
        let mut by_dtype: std::collections::BTreeMap<Dtype, (usize, Acc)> = Default::default();
        for (e, acc) in entries.iter().zip(accs) {
            let slot = by_dtype
                .entry(e.meta.dtype)
                .or_insert_with(|| (0, Acc::new(false)));
            slot.0 += 1;
            slot.1.merge(&Acc {
                hist: None,
                ..acc.clone()
            });
            tensors.push(tensor_stats(e, acc));
        }
        let dtypes = by_dtype
            .into_iter()
            .map(|(dtype, (n, acc))| {
                let float = is_float(dtype);
                let (min, max, _) = extremes(dtype, &acc);
                DtypeSummary {
                    dtype,
                    tensors: n,
                    values: acc.values,
                    min,
                    max,
                    mean: (acc.finite > 0).then_some(acc.mean),
                    std: (acc.finite > 0).then(|| (acc.m2 / acc.finite as f64).sqrt()),
                    zeros: acc.zeros,
                    nan: float.then_some(acc.nan),
                    inf: float.then_some(acc.pos_inf + acc.neg_inf),
                    subnormal: decode::min_normal(dtype).map(|_| acc.subnormal),
                }
            })
            .collect();
        Ok(StatsReport {
            path: model.path().display().to_string(),
            tensors,
            dtypes,
            bytes_read: counter.into_inner(),
        })
    }
}

/// `verify` and, when asked, `verify --values`: the loader's
/// [`VerifyReport`](modeltool_loader::VerifyReport) with every value of
/// every float tensor read for NaN and infinities, one verdict for both.
/// Serializes as the report's fields plus `values` (`null` when values were
/// not read).
#[derive(Debug, Serialize)]
pub struct Verification {
    /// Structure, checksums, invalid values; its `ok` covers `values` too.
    #[serde(flatten)]
    pub report: modeltool_loader::VerifyReport,
    /// NaN and infinities, when values were read.
    pub values: Option<ValueCheck>,
}

impl Verification {
    /// Verifies `model` ([`Model::verify_with_progress`]) and, with
    /// `values`, reads every float value ([`ValueCheck::from_model`]); the
    /// verdict fails when either does.
    pub fn from_model(
        model: &Model,
        options: &modeltool_loader::VerifyOptions,
        values: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Verification> {
        let mut report = model.verify_with_progress(options, progress)?;
        let values = if values {
            Some(ValueCheck::from_model(model)?)
        } else {
            None
        };
        report.ok &= values.as_ref().is_none_or(ValueCheck::ok);
        Ok(Verification { report, values })
    }
}

/// Tensors of a float dtype that hold NaN or infinities: what
/// `verify --values` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ValueCheck {
    /// Tensors whose values were read.
    pub checked: usize,
    /// Those holding NaN or infinities, in the model's order.
    pub non_finite: Vec<NonFinite>,
}

/// A tensor holding NaN or infinities.
#[derive(Debug, Clone, Serialize)]
pub struct NonFinite {
    /// The tensor, as named in the file.
    pub name: String,
    /// NaN values.
    pub nan: u64,
    /// `+inf` values.
    pub pos_inf: u64,
    /// `-inf` values.
    pub neg_inf: u64,
}

impl ValueCheck {
    /// Reads every value of every float tensor and counts NaN and
    /// infinities.
    ///
    /// ```
    /// use modeltool_format::{write_safetensors, Dtype, TensorMeta};
    /// use modeltool_loader::{Model, OpenOptions};
    /// use modeltool_stats::ValueCheck;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("mask.safetensors");
    /// let m = TensorMeta { name: "mask".into(), dtype: Dtype::F32, shape: vec![2] };
    /// let bytes: Vec<u8> = [0.0f32, f32::NEG_INFINITY].iter().flat_map(|v| v.to_le_bytes()).collect();
    /// write_safetensors(std::fs::File::create(&path)?, &[(m, &bytes[..])], &Default::default())?;
    ///
    /// let check = ValueCheck::from_model(&Model::open(&path, OpenOptions::default())?)?;
    /// assert_eq!(check.non_finite[0].neg_inf, 1);
    /// assert!(!check.ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_model(model: &Model) -> Result<ValueCheck> {
        let entries: Vec<&Entry> = model
            .entries()
            .iter()
            .filter(|e| is_float(e.meta.dtype))
            .collect();
        let accs = tensor_accs(model, &entries, false, &AtomicU64::new(0))?;
        let non_finite = entries
            .iter()
            .zip(accs)
            .filter(|(_, a)| a.nan + a.pos_inf + a.neg_inf > 0)
            .map(|(e, a)| NonFinite {
                name: e.meta.name.clone(),
                nan: a.nan,
                pos_inf: a.pos_inf,
                neg_inf: a.neg_inf,
            })
            .collect();
        Ok(ValueCheck {
            checked: entries.len(),
            non_finite,
        })
    }

    /// Whether every value read is finite.
    pub fn ok(&self) -> bool {
        self.non_finite.is_empty()
    }
}

fn is_float(dtype: Dtype) -> bool {
    dtype.is_float()
}

/// The entries `patterns` pick, in the model's order.
fn select<'m>(model: &'m Model, patterns: &[String]) -> Result<Vec<&'m Entry>> {
    let picked: Vec<&Entry> = model
        .entries()
        .iter()
        .filter(|e| patterns.is_empty() || patterns.iter().any(|p| glob_match(p, &e.meta.name)))
        .collect();
    if picked.is_empty() && !patterns.is_empty() {
        return Err(StatsError::NoMatch {
            path: model.path().to_owned(),
            pattern: modeltool_format::text::escape(&patterns.join(" ")).into_owned(),
        });
    }
    Ok(picked)
}

/// Elements per piece for a dtype: whole elements, a multiple of 8 (so a
/// packed piece starts on a byte), at most [`PIECE_BYTES`] bytes.
pub(crate) fn piece_elements(dtype: Dtype) -> u64 {
    (PIECE_BYTES * 8 / dtype.bits() as u64) / 8 * 8
}

/// The bytes of elements `first..first + count` of a tensor, read on their
/// own (or borrowed from a buffer the model holds).
pub(crate) fn read_elements<'m>(
    model: &'m Model,
    entry: &Entry,
    first: u64,
    count: u64,
    counter: &AtomicU64,
) -> Result<Cow<'m, [u8]>> {
    let bits = entry.meta.dtype.bits() as u64;
    let (b0, b1) = (first * bits / 8, (first + count) * bits / 8);
    counter.fetch_add(b1 - b0, Ordering::Relaxed);
    Ok(match entry.location {
        Location::File { file, start, .. } => {
            let piece = Entry {
                location: Location::File {
                    file,
                    start: start + b0,
                    end: start + b1,
                },
                ..entry.clone()
            };
            model.bytes(&piece)?
        }
        _ => match model.bytes(entry)? {
            Cow::Borrowed(b) => Cow::Borrowed(&b[b0 as usize..b1 as usize]),
            Cow::Owned(b) => Cow::Owned(b[b0 as usize..b1 as usize].to_vec()),
        },
    })
}

/// Splits tensors of `count_of(i)` elements into pieces `(tensor, first, count)`.
pub(crate) fn pieces(counts: &[(u64, u64)]) -> Vec<(usize, u64, u64)> {
    let mut out = Vec::new();
    for (i, &(n, per)) in counts.iter().enumerate() {
        let mut at = 0;
        loop {
            let c = per.min(n - at);
            out.push((i, at, c));
            at += c;
            if at >= n {
                break;
            }
        }
    }
    out
}

pub(crate) fn element_count(e: &Entry) -> u64 {
    e.meta.shape.iter().map(|&d| d as u64).product()
}

/// Every tensor's accumulated figures, read piece by piece in parallel and
/// merged in order (so the result does not depend on the thread count).
fn tensor_accs(
    model: &Model,
    entries: &[&Entry],
    histogram: bool,
    counter: &AtomicU64,
) -> Result<Vec<Acc>> {
    let counts: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| (element_count(e), piece_elements(e.meta.dtype)))
        .collect();
    let work = pieces(&counts);
    let partial: Vec<Acc> = work
        .par_iter()
        .map(|&(i, first, count)| {
            let e = entries[i];
            let dtype = e.meta.dtype;
            let bytes = read_elements(model, e, first, count, counter)?;
            let mut acc = Acc::new(histogram);
            let min_normal = decode::min_normal(dtype).unwrap_or(0.0);
            let block_bytes = BLOCK * dtype.bits() / 8;
            let mut buf = Vec::with_capacity(BLOCK * 2);
            for block in bytes.chunks(block_bytes.max(1)) {
                buf.clear();
                decode::to_f64(dtype, block, &mut buf);
                acc.add_block(&buf, min_normal);
                if !is_float(dtype) {
                    acc.add_ints(dtype, block);
                }
            }
            Ok(acc)
        })
        .collect::<Result<_>>()?;
    let mut out: Vec<Acc> = entries.iter().map(|_| Acc::new(histogram)).collect();
    for (&(i, _, _), acc) in work.iter().zip(&partial) {
        out[i].merge(acc);
    }
    Ok(out)
}

fn extremes(dtype: Dtype, acc: &Acc) -> (Option<Number>, Option<Number>, Option<Number>) {
    if acc.finite == 0 {
        return (None, None, None);
    }
    if is_float(dtype) {
        let abs = acc.max.abs().max(acc.min.abs());
        (
            Some(Number::Float(acc.min)),
            Some(Number::Float(acc.max)),
            Some(Number::Float(abs)),
        )
    } else {
        let abs = acc.int_min.abs().max(acc.int_max.abs());
        (
            Some(Number::Int(acc.int_min)),
            Some(Number::Int(acc.int_max)),
            Some(Number::Int(abs)),
        )
    }
}

fn tensor_stats(e: &Entry, acc: Acc) -> TensorStats {
    let dtype = e.meta.dtype;
    let float = is_float(dtype);
    let (min, max, max_abs) = extremes(dtype, &acc);
    let histogram = acc.hist.clone().and_then(|h| h.finish(acc.min, acc.max));
    TensorStats {
        name: e.meta.name.clone(),
        dtype,
        shape: e.meta.shape.iter().map(|&d| d as u64).collect(),
        values: acc.values,
        min,
        max,
        max_abs,
        mean: (acc.finite > 0).then_some(acc.mean),
        std: (acc.finite > 0).then(|| (acc.m2 / acc.finite as f64).sqrt()),
        zeros: acc.zeros,
        nan: float.then_some(acc.nan),
        pos_inf: float.then_some(acc.pos_inf),
        neg_inf: float.then_some(acc.neg_inf),
        subnormal: decode::min_normal(dtype).map(|_| acc.subnormal),
        histogram,
    }
}
