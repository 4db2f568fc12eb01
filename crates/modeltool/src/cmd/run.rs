//! `modeltool run MODEL [X ...]`: run the network a model file stores.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use modeltool_format::text::{Escaped, cut};
use modeltool_format::{Dtype, ModelMetadata, TensorMeta};
use modeltool_loader::save::{check_output, write_atomically, write_model};
use modeltool_loader::{LoadError, Model, OpenOptions};
use modeltool_net::train::Provenance;
use modeltool_net::{Activation, Dataset, NetError, Network, PredictionError, write_csv};
use serde::Serialize;

use crate::Format;

/// Arguments of `modeltool run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The model: .safetensors, .json, or a sharded checkpoint.
    model: PathBuf,
    /// Read tensors with plain reads instead of memory-mapping the files.
    #[arg(long)]
    no_mmap: bool,
    /// Samples: a number each, or comma-separated numbers for wider inputs;
    /// negative values work anywhere (`-1,0.5,2`).
    #[arg(value_name = "X", allow_hyphen_values = true)]
    samples: Vec<String>,
    /// Read samples from a CSV file or a .safetensors file (a tensor `input`
    /// of shape [batch, in]). CSV columns are picked by the input names the
    /// model records (`training.inputs`); when its target columns are there
    /// too, predictions are shown beside them with the error. A CSV without
    /// those names (or without a header row) must hold exactly the inputs.
    #[arg(long, value_name = "FILE", conflicts_with = "samples")]
    input: Option<PathBuf>,
    /// Write outputs to a CSV file (with a header row) or a .safetensors
    /// file (tensor `output`) instead of printing them.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// For files without an architecture whose tensors are named like a
    /// PyTorch nn.Sequential (0.weight, 0.bias, 2.weight, ...): the
    /// activation between linear layers.
    #[arg(long, value_name = "NAME")]
    activation: Option<Activation>,
    /// Replace --output if it exists.
    #[arg(long)]
    force: bool,
    /// How to print the results.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// What a run gives: the outputs, and beside them the targets and the error
/// when the input file held them.
#[derive(Debug, Serialize)]
struct RunReport {
    model: String,
    /// Names of the input columns read (empty for samples given as arguments).
    inputs: Vec<String>,
    /// Names of the outputs: the model's recorded targets, or `output`, `output0`, ...
    outputs: Vec<String>,
    rows: usize,
    /// One list of outputs per sample.
    predictions: Vec<Vec<f32>>,
    /// The targets of each sample, when the input file held them.
    #[serde(skip_serializing_if = "Option::is_none")]
    targets: Option<Vec<Vec<f64>>>,
    /// Mean squared and mean absolute error against the targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<PredictionError>,
}

/// A network error as the exit codes want it: a damaged tensor is the
/// loader's check failure (exit 1), everything else bad input (exit 2).
fn net_error(e: NetError) -> anyhow::Error {
    match e {
        NetError::Load(load) => load.into(),
        other => other.into(),
    }
}

/// Samples to run: values row-major, and the CSV they came from when they did.
struct Samples {
    values: Vec<f32>,
    rows: usize,
    data: Option<Dataset>,
}

impl RunArgs {
    /// Options written after samples.
    ///
    /// Samples take values that start with `-` (`-1,0.5,2`, `-inf`), so clap
    /// hands everything after the first sample over as samples, options
    /// too. Each sample that starts with `--` begins options again: the rest
    /// is parsed once more and merged.
    fn with_trailing_options(mut self) -> anyhow::Result<RunArgs> {
        use clap::parser::ValueSource;
        use clap::{Args, FromArgMatches};
        while let Some(at) = self
            .samples
            .iter()
            .position(|s| s.len() > 2 && s.starts_with("--"))
        {
            let tail = self.samples.split_off(at);
            let command = RunArgs::augment_args(clap::Command::new("run").no_binary_name(true));
            let matches = command
                .try_get_matches_from(
                    std::iter::once(self.model.clone().into_os_string())
                        .chain(tail.into_iter().map(Into::into)),
                )
                .map_err(|e| {
                    let text = e.render().to_string();
                    let line = text.lines().next().unwrap_or_default().to_owned();
                    anyhow!("{}", line.trim_start_matches("error: "))
                })?;
            let more = RunArgs::from_arg_matches(&matches)?;
            // A known option is taken by clap; one that comes back as a
            // sample is unknown (and would come back forever).
            if let Some(unknown) = more.samples.first().filter(|s| s.starts_with("--")) {
                bail!("unexpected argument `{}` (see --help)", Escaped(unknown));
            }
            let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
            let twice = |set: bool, name: &str| -> anyhow::Result<()> {
                if set && given(name) {
                    bail!("--{name} is given twice");
                }
                Ok(())
            };
            twice(self.input.is_some(), "input")?;
            twice(self.output.is_some(), "output")?;
            twice(self.activation.is_some(), "activation")?;
            self.samples.extend(more.samples);
            self.no_mmap |= more.no_mmap;
            self.force |= more.force;
            self.input = self.input.or(more.input);
            self.output = self.output.or(more.output);
            self.activation = self.activation.or(more.activation);
            if given("format") {
                self.format = more.format;
            }
        }
        if self.input.is_some() && !self.samples.is_empty() {
            bail!("give samples or --input FILE, not both");
        }
        Ok(self)
    }
}

/// Runs the command.
pub fn run(args: RunArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let args = args.with_trailing_options()?;
    let model = Model::open(
        &args.model,
        OpenOptions {
            mmap: !args.no_mmap,
        },
    )?;
    if let Some(output) = &args.output {
        let mut inputs: Vec<&Path> = model.files().iter().map(|f| f.path.as_path()).collect();
        inputs.push(&args.model);
        inputs.extend(args.input.as_deref());
        check_output(output, &inputs, args.force)?;
    }
    let net = Network::from_model(&model, args.activation).map_err(net_error)?;
    let (recorded_inputs, recorded_targets) = Provenance::columns(&model.metadata().user);
    // Names recorded for another shape of network are not these columns.
    let recorded_inputs = if recorded_inputs.len() == net.input_width() {
        recorded_inputs
    } else {
        Vec::new()
    };
    let outputs = if recorded_targets.len() == net.output_width() {
        recorded_targets
    } else if net.output_width() == 1 {
        vec!["output".to_owned()]
    } else {
        (0..net.output_width())
            .map(|i| format!("output{i}"))
            .collect()
    };
    let samples = match &args.input {
        Some(path) => read_input(path, &net, &recorded_inputs, &outputs, args.no_mmap)?,
        None if args.samples.is_empty() => {
            bail!("give samples to run (e.g. `modeltool run model.json 175`) or --input FILE")
        }
        None => parse_samples(&args.samples, net.input_width())?,
    };
    let predicted = net
        .forward(&samples.values, samples.rows)
        .map_err(|e| anyhow!("{}: {e}", model.path().display()))?;
    let out_width = net.output_width();
    let data = samples.data.as_ref();
    let error = data.and_then(|d| d.prediction_error(&predicted));
    let targets = data.filter(|_| error.is_some()).map(|d| {
        d.targets()
            .chunks(d.target_width().max(1))
            .map(<[f64]>::to_vec)
            .collect()
    });
    if let Some(path) = &args.output {
        write_output(
            path,
            &outputs,
            &predicted,
            samples.rows,
            out_width,
            args.force,
        )?;
    }
    let report = RunReport {
        model: model.path().display().to_string(),
        inputs: data.map(|d| d.input_names().to_vec()).unwrap_or_default(),
        outputs,
        rows: samples.rows,
        predictions: predicted
            .chunks(out_width.max(1))
            .map(<[f32]>::to_vec)
            .collect(),
        targets,
        error,
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Format::Human => print_human(out, &report, args.output.is_none())?,
    }
    Ok(())
}

/// Outputs one line per sample (values comma-separated), as before; with
/// targets, a table of each prediction beside its target and the error.
fn print_human(out: &mut impl Write, report: &RunReport, rows: bool) -> std::io::Result<()> {
    match (&report.targets, &report.error) {
        (Some(targets), Some(error)) => {
            if rows {
                let mut header = Vec::new();
                for name in &report.outputs {
                    let name = cut(name, 30);
                    header.push(format!("predicted {name}"));
                    header.push(name.into_owned());
                }
                let mut lines = vec![header];
                for (p, t) in report.predictions.iter().zip(targets) {
                    let mut line = Vec::new();
                    for (p, t) in p.iter().zip(t) {
                        line.push(p.to_string());
                        line.push(t.to_string());
                    }
                    lines.push(line);
                }
                write_table(out, &lines)?;
            }
            writeln!(
                out,
                "{} rows: mean squared error {}, mean absolute error {}",
                report.rows, error.mse, error.mae
            )
        }
        _ if rows => {
            let mut line = String::new();
            for row in &report.predictions {
                line.clear();
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&v.to_string());
                }
                line.push('\n');
                out.write_all(line.as_bytes())?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Columns left-aligned, two spaces apart.
fn write_table(out: &mut impl Write, lines: &[Vec<String>]) -> std::io::Result<()> {
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| modeltool_format::text::width(&l[c]))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if c + 1 < line.len() {
                let pad = widths[c] - modeltool_format::text::width(cell) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{text}")?;
    }
    Ok(())
}

fn parse_samples(samples: &[String], width: usize) -> anyhow::Result<Samples> {
    let mut values = Vec::with_capacity(samples.len() * width);
    for (i, s) in samples.iter().enumerate() {
        let shown = Escaped(s);
        let row = parse_row(s).map_err(|bad| {
            let what = if bad.parse::<f32>().is_ok() {
                "a finite number"
            } else {
                "a number"
            };
            anyhow!(
                "sample {} (`{shown}`): `{}` is not {what}",
                i + 1,
                Escaped(&bad)
            )
        })?;
        if row.len() != width {
            bail!(
                "sample {} (`{shown}`) has {} values; the model takes {width} inputs",
                i + 1,
                row.len()
            );
        }
        values.extend(row);
    }
    Ok(Samples {
        values,
        rows: samples.len(),
        data: None,
    })
}

/// Comma-separated numbers; the first field that is not a finite number is the error.
fn parse_row(s: &str) -> Result<Vec<f32>, String> {
    s.split(',')
        .map(|p| {
            let p = p.trim();
            p.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| p.to_owned())
        })
        .collect()
}

fn read_input(
    path: &Path,
    net: &Network<'_>,
    inputs: &[String],
    targets: &[String],
    no_mmap: bool,
) -> anyhow::Result<Samples> {
    let shown = path.display();
    let width = net.input_width();
    if path.extension().is_some_and(|e| e == "safetensors") {
        let model = Model::open(path, OpenOptions { mmap: !no_mmap })?;
        let entry = model.entry("input")?;
        let shape = &entry.meta.shape;
        if shape.len() != 2 || shape[1] != width {
            bail!("{shown}: tensor `input` has shape {shape:?}; the model takes [batch, {width}]");
        }
        let values = model.tensor_f32("input")?.into_owned();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!(
                "{shown}: tensor `input` value {i} is {}, not a finite number",
                values[i]
            );
        }
        if shape[0] == 0 {
            bail!("{shown}: no samples");
        }
        return Ok(Samples {
            values,
            rows: shape[0],
            data: None,
        });
    }
    let source_name = shown.to_string();
    let file = std::fs::File::open(path).map_err(|e| anyhow!("{source_name}: {e}"))?;
    let data = Dataset::for_network(
        std::io::BufReader::new(file),
        &source_name,
        width,
        inputs,
        targets,
    )?;
    // Values were read as f64; the network runs in f32.
    let values: Vec<f32> = data.inputs().iter().map(|&v| v as f32).collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!(
            "{source_name}: value {} of row {} does not fit in a 32-bit float",
            data.inputs()[i],
            i / width + 1
        );
    }
    Ok(Samples {
        values,
        rows: data.rows(),
        data: Some(data),
    })
}

fn write_output(
    path: &Path,
    names: &[String],
    outputs: &[f32],
    batch: usize,
    width: usize,
    force: bool,
) -> anyhow::Result<()> {
    if path.extension().is_some_and(|e| e == "safetensors") {
        let meta = TensorMeta {
            name: "output".into(),
            dtype: Dtype::F32,
            shape: vec![batch, width],
        };
        let bytes: Vec<u8> = outputs.iter().flat_map(|v| v.to_le_bytes()).collect();
        write_model(path, &[(meta, bytes)], &ModelMetadata::default(), force)?;
        return Ok(());
    }
    write_atomically(path, force, |out| {
        write_csv(out, names, outputs, width).map_err(|e| LoadError::Io {
            path: path.to_owned(),
            source: e,
        })
    })?;
    Ok(())
}
