//! How file size grows with parameter count, measured on real files: relu
//! MLPs from the 2-parameter line `y = ax + b` up to ten million
//! parameters, each written as safetensors and as a JSON model file.
//!
//! Files are written as every modeltool output is
//! ([`modeltool_loader::write::Outputs`]): to a temporary file beside the
//! target, measured there, and put in place with the command's other
//! outputs; a symbolic link, FIFO or folder at a name is refused, never
//! followed or truncated.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use modeltool_format::{
    Checksum, Dtype, JsonWriter, ModelMetadata, TensorMeta, write_safetensors_with_header_sha256,
};
use modeltool_loader::LoadError;
use modeltool_loader::write::{OutputId, Outputs, write_atomically};
use serde::Serialize;
use serde_json::json;

use crate::error::InspectError;
use crate::units::{bytes, ratio, short, thousands};

/// The most parameters a growth point may have (4 GB of f32).
pub const MAX_PARAMETERS: u64 = 1_000_000_000;

/// One model to write: a relu MLP with the given widths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrowthSpec {
    /// The file stem: letters, digits, `-`, `_` and `.` only.
    pub name: String,
    /// Input width, hidden widths, output width: `[1, 1]` is `y = ax + b`,
    /// `[4, 12, 4]` has one hidden layer of 12.
    pub widths: Vec<usize>,
}

impl GrowthSpec {
    /// A spec from a name and widths.
    pub fn new(name: &str, widths: &[usize]) -> GrowthSpec {
        GrowthSpec {
            name: name.to_owned(),
            widths: widths.to_vec(),
        }
    }

    /// Weights and biases of all layers, or `None` on overflow.
    pub fn parameter_count(&self) -> Option<u64> {
        self.widths.windows(2).try_fold(0u64, |acc, w| {
            let (i, o) = (w[0] as u64, w[1] as u64);
            acc.checked_add(i.checked_mul(o)?.checked_add(o)?)
        })
    }
}

/// The default series: about 2, 10, 10^2 ... 10^7 parameters, growing
/// wider and deeper (1 to 5 linear layers).
pub fn default_points() -> Vec<GrowthSpec> {
    vec![
        GrowthSpec::new("line", &[1, 1]),
        GrowthSpec::new("mlp-1e1", &[2, 3, 1]),
        GrowthSpec::new("mlp-1e2", &[4, 12, 4]),
        GrowthSpec::new("mlp-1e3", &[16, 32, 16]),
        GrowthSpec::new("mlp-1e4", &[48, 64, 64, 48]),
        GrowthSpec::new("mlp-1e5", &[128, 224, 224, 128]),
        GrowthSpec::new("mlp-1e6", &[512, 512, 512, 512, 512]),
        GrowthSpec::new("mlp-1e7", &[1024, 1536, 1536, 1536, 1536, 1024]),
    ]
}

/// One measured model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrowthPoint {
    /// The file stem.
    pub name: String,
    /// Linear layers.
    pub layers: usize,
    /// Input, hidden and output widths.
    pub widths: Vec<usize>,
    /// Weights and biases.
    pub parameter_count: u64,
    /// Size of `<name>.safetensors`.
    pub safetensors_bytes: u64,
    /// Its first 8 bytes plus the JSON header they announce.
    pub safetensors_header_bytes: u64,
    /// Size of `<name>.json`.
    pub json_bytes: u64,
    /// `safetensors_bytes / parameter_count`.
    pub bytes_per_parameter_safetensors: f64,
    /// `json_bytes / parameter_count`.
    pub bytes_per_parameter_json: f64,
}

/// The JSON output of a growth run: `{"points": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GrowthReport {
    /// The measured points, in the order given.
    pub points: Vec<GrowthPoint>,
}

/// Writes every spec into `dir` as `<name>.safetensors` and `<name>.json`
/// (f32 weights from a fixed-seed xorshift, checksums and the architecture
/// stored in both, the safetensors file with its header checksum) and
/// measures the files. Files of those names are replaced when they are
/// regular files (a run again writes the same files); anything else there
/// is refused and left as it is. All files are put in place or none.
pub fn measure(dir: &Path, points: &[GrowthSpec]) -> Result<Vec<GrowthPoint>, InspectError> {
    let mut outputs = Outputs::new();
    let measured = measure_into(&mut outputs, dir, points, true)?;
    outputs.commit().map_err(from_load)?;
    Ok(measured)
}

/// Like [`measure`], but declares the files as outputs of `outputs` (an
/// existing file replaced only with `force`) and leaves them staged: they
/// are put in place by the caller's [`Outputs::commit`], together with the
/// command's other outputs.
pub fn measure_into(
    outputs: &mut Outputs,
    dir: &Path,
    points: &[GrowthSpec],
    force: bool,
) -> Result<Vec<GrowthPoint>, InspectError> {
    points
        .iter()
        .map(|spec| measure_one(outputs, dir, spec, force))
        .collect()
}

/// A loader error as this crate's: the path it names and what went wrong.
fn from_load(e: LoadError) -> InspectError {
    match e {
        LoadError::Io { path, source } => InspectError::Io { path, source },
        LoadError::Refused { path, reason } => InspectError::Io {
            path,
            source: io::Error::other(reason),
        },
        LoadError::Format { path, source } => InspectError::Format { path, source },
        other => InspectError::Io {
            path: PathBuf::new(),
            source: io::Error::other(other.to_string()),
        },
    }
}

fn spec_error(spec: &GrowthSpec, reason: String) -> InspectError {
    InspectError::Spec {
        name: spec.name.clone(),
        reason,
    }
}

fn measure_one(
    outputs: &mut Outputs,
    dir: &Path,
    spec: &GrowthSpec,
    force: bool,
) -> Result<GrowthPoint, InspectError> {
    let name_ok = !spec.name.is_empty()
        && !spec.name.starts_with('.')
        && spec
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(spec_error(
            spec,
            "a name may hold only letters, digits, `-`, `_` and `.`, and not start with `.`".into(),
        ));
    }
    if spec.widths.len() < 2 || spec.widths.contains(&0) {
        return Err(spec_error(
            spec,
            format!(
                "widths {:?} need an input and an output width, none of them 0",
                spec.widths
            ),
        ));
    }
    let parameter_count = spec
        .parameter_count()
        .filter(|&n| n <= MAX_PARAMETERS)
        .ok_or_else(|| {
            spec_error(
                spec,
                format!("more than {} parameters", thousands(MAX_PARAMETERS)),
            )
        })?;

    // Tensors named as torch's nn.Sequential names them: a relu sits
    // between linear layers, so the linears are 0, 2, 4, ...
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut tensors: Vec<(TensorMeta, Vec<u8>)> = Vec::new();
    let mut layers = Vec::new();
    let count = spec.widths.len() - 1;
    for (k, w) in spec.widths.windows(2).enumerate() {
        let (input, output) = (w[0], w[1]);
        let scale = 1.0 / (input as f32).sqrt();
        let weight = format!("{}.weight", 2 * k);
        let bias = format!("{}.bias", 2 * k);
        tensors.push((
            TensorMeta {
                name: weight.clone(),
                dtype: Dtype::F32,
                shape: vec![output, input],
            },
            rng.f32_bytes(output * input, scale),
        ));
        tensors.push((
            TensorMeta {
                name: bias.clone(),
                dtype: Dtype::F32,
                shape: vec![output],
            },
            rng.f32_bytes(output, scale),
        ));
        layers.push(json!({"type": "linear", "weight": weight, "bias": bias}));
        if k + 1 < count {
            layers.push(json!({"type": "relu"}));
        }
    }
    let architecture = json!({ "layers": layers });
    let slices: Vec<&[u8]> = tensors.iter().map(|(_, d)| d.as_slice()).collect();
    let sums = Checksum::of_all(&slices);
    let metadata = ModelMetadata {
        user: BTreeMap::new(),
        checksums: tensors
            .iter()
            .zip(&sums)
            .map(|((m, _), s)| (m.name.clone(), *s))
            .collect(),
        architecture: Some(architecture.clone()),
    };

    let st_path = dir.join(format!("{}.safetensors", spec.name));
    let json_path = dir.join(format!("{}.json", spec.name));
    let st_id = outputs.file(&st_path, force).map_err(from_load)?;
    let json_id = outputs.file(&json_path, force).map_err(from_load)?;
    let pairs: Vec<(TensorMeta, &[u8])> = tensors
        .iter()
        .map(|(m, d)| (m.clone(), d.as_slice()))
        .collect();
    outputs
        .write(st_id, |w| {
            write_safetensors_with_header_sha256(w, &pairs, &metadata.to_safetensors()).map_err(
                |source| LoadError::Format {
                    path: st_path.clone(),
                    source,
                },
            )
        })
        .map_err(from_load)?;
    outputs
        .write(json_id, |w| {
            let format_err = |source| LoadError::Format {
                path: json_path.clone(),
                source,
            };
            let mut writer =
                JsonWriter::new(w, &BTreeMap::new(), Some(&architecture)).map_err(format_err)?;
            for ((meta, data), sum) in tensors.iter().zip(&sums) {
                writer
                    .write_tensor(meta, data, &sum.to_string())
                    .map_err(format_err)?;
            }
            writer.finish().map_err(format_err)?;
            Ok(())
        })
        .map_err(from_load)?;

    let safetensors_bytes = staged_len(outputs, st_id, &st_path)?;
    let json_bytes = staged_len(outputs, json_id, &json_path)?;
    let mut prefix = [0u8; 8];
    outputs
        .staged_file(st_id)
        .expect("written above")
        .read_exact_at(&mut prefix, 0)
        .map_err(|source| InspectError::Io {
            path: st_path.clone(),
            source,
        })?;
    let safetensors_header_bytes = u64::from_le_bytes(prefix).saturating_add(8);
    // parameter_count is at least 2: every width is at least 1.
    let per = |b: u64| b as f64 / parameter_count as f64;
    Ok(GrowthPoint {
        name: spec.name.clone(),
        layers: count,
        widths: spec.widths.clone(),
        parameter_count,
        safetensors_bytes,
        safetensors_header_bytes,
        json_bytes,
        bytes_per_parameter_safetensors: per(safetensors_bytes),
        bytes_per_parameter_json: per(json_bytes),
    })
}

/// The size of a file written but not yet put in place.
fn staged_len(outputs: &Outputs, id: OutputId, path: &Path) -> Result<u64, InspectError> {
    outputs
        .staged_file(id)
        .expect("written before it is measured")
        .metadata()
        .map(|m| m.len())
        .map_err(|source| InspectError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Marsaglia's xorshift64: fast, deterministic, good enough for weights.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `n` values uniform in `[-scale, scale)`, as little-endian bytes.
    fn f32_bytes(&mut self, n: usize, scale: f32) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * 4);
        for _ in 0..n {
            // The top 24 bits give an exact f32 in [0, 1).
            let unit = (self.next() >> 40) as f32 / (1u32 << 24) as f32;
            out.extend_from_slice(&((2.0 * unit - 1.0) * scale).to_le_bytes());
        }
        out
    }
}

/// Columns per factor of ten in the terminal chart.
const PER_DECADE: usize = 5;

/// `[1024, 1536, 1536, 1536, 1536, 1024]` as `1024-1536x4-1024`.
fn fold_widths(widths: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < widths.len() {
        let run = widths[i..].iter().take_while(|&&w| w == widths[i]).count();
        parts.push(if run > 1 {
            format!("{}x{run}", widths[i])
        } else {
            widths[i].to_string()
        });
        i += run;
    }
    parts.join("-")
}

/// Writes the points as a table, then a bar chart of both file sizes on a
/// log scale.
pub fn render_table(points: &[GrowthPoint], out: &mut impl Write) -> io::Result<()> {
    // Fits 80 columns: widths with repeats folded (`1024-1536x4-1024`),
    // counts and sizes in short units; `--format json` has every exact number.
    let widths: Vec<String> = points.iter().map(|p| fold_widths(&p.widths)).collect();
    let name_w = points
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let widths_w = widths.iter().map(String::len).max().unwrap_or(0).max(6);
    writeln!(
        out,
        "{:<name_w$}  {:>6}  {:<widths_w$}  {:>7}  {:>11}  {:>5}  {:>9}  {:>5}",
        "name", "layers", "widths", "params", "safetensors", "B/p", "json", "B/p"
    )?;
    for (p, w) in points.iter().zip(&widths) {
        writeln!(
            out,
            "{:<name_w$}  {:>6}  {w:<widths_w$}  {:>7}  {:>11}  {:>5}  {:>9}  {:>5}",
            p.name,
            p.layers,
            short(p.parameter_count),
            bytes(p.safetensors_bytes),
            ratio(p.bytes_per_parameter_safetensors),
            bytes(p.json_bytes),
            ratio(p.bytes_per_parameter_json),
        )?;
    }

    let largest = points
        .iter()
        .map(|p| p.safetensors_bytes.max(p.json_bytes))
        .max()
        .unwrap_or(1)
        .max(1);
    let decades = largest.ilog10() as usize + 1;
    let bar = |b: u64| {
        let cols = if b == 0 {
            0
        } else {
            ((b as f64).log10() * PER_DECADE as f64).round() as usize
        };
        "#".repeat(cols.max(1))
    };
    let lead = name_w + 2 + "safetensors".len() + 1;
    writeln!(out)?;
    writeln!(
        out,
        "File size, log scale ({PER_DECADE} columns per factor of 10)"
    )?;
    let mut labels = String::new();
    let mut ticks = String::new();
    for d in 0..=decades {
        let col = d * PER_DECADE;
        if d % 2 == 0 && labels.len() <= col {
            labels.push_str(&" ".repeat(col - labels.len()));
            labels.push_str(&bytes(10u64.pow(d as u32)));
        }
        ticks.push_str(&" ".repeat(col.saturating_sub(ticks.len())));
        ticks.push('|');
    }
    writeln!(out, "{:lead$}{labels}", "")?;
    writeln!(out, "{:lead$}{ticks}", "")?;
    for p in points {
        writeln!(
            out,
            "{:<name_w$}  {:<11} {}",
            p.name,
            "safetensors",
            bar(p.safetensors_bytes)
        )?;
        writeln!(out, "{:<name_w$}  {:<11} {}", "", "json", bar(p.json_bytes))?;
    }
    Ok(())
}

/// Draws parameters against file bytes, both axes logarithmic, one series
/// for safetensors and one for JSON, as a new SVG file, written atomically;
/// an existing file is not replaced (declare it in an [`Outputs`] set with
/// [`svg`] for that).
pub fn write_svg(points: &[GrowthPoint], path: &Path) -> Result<(), InspectError> {
    let text = svg(points, path)?;
    write_atomically(path, false, |w| {
        w.write_all(text.as_bytes())
            .map_err(|source| LoadError::Io {
                path: path.to_owned(),
                source,
            })
    })
    .map_err(from_load)
}

/// The chart [`write_svg`] draws, as SVG text; `path` is the file it is
/// for, which errors name.
pub fn svg(points: &[GrowthPoint], path: &Path) -> Result<String, InspectError> {
    use plotters::prelude::*;

    let plot_err = |reason: String| InspectError::Plot {
        path: PathBuf::from(path),
        reason,
    };
    if points.is_empty() {
        return Err(plot_err("there are no points to draw".to_owned()));
    }
    let params = points.iter().map(|p| p.parameter_count.max(1) as f64);
    let sizes = points
        .iter()
        .flat_map(|p| [p.safetensors_bytes, p.json_bytes])
        .map(|b| b.max(1) as f64);
    let (x_lo, x_hi) = params.fold((f64::MAX, 1f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    let (y_lo, y_hi) = sizes.fold((f64::MAX, 1f64), |(lo, hi), y| (lo.min(y), hi.max(y)));

    let mut text = String::new();
    let root = SVGBackend::with_string(&mut text, (900, 600)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Model file size against parameter count",
                ("sans-serif", 24),
            )
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(
                ((x_lo / 2.0)..(x_hi * 2.0)).log_scale(),
                ((y_lo / 2.0)..(y_hi * 2.0)).log_scale(),
            )?;
        chart
            .configure_mesh()
            .x_desc("parameters")
            .y_desc("file size")
            .x_label_formatter(&|x| short(x.round() as u64))
            .y_label_formatter(&|y| bytes(y.round() as u64))
            .draw()?;
        let series = [
            (
                "safetensors",
                BLUE,
                points
                    .iter()
                    .map(|p| p.safetensors_bytes)
                    .collect::<Vec<_>>(),
            ),
            ("JSON", RED, points.iter().map(|p| p.json_bytes).collect()),
        ];
        for (label, color, ys) in series {
            let xy: Vec<(f64, f64)> = points
                .iter()
                .zip(ys)
                .map(|(p, y)| (p.parameter_count.max(1) as f64, y.max(1) as f64))
                .collect();
            chart
                .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(xy.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| plot_err(e.to_string()))?;
    drop(root);
    Ok(text)
}
