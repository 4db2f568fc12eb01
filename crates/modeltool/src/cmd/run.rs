//! `modeltool run MODEL [X ...]`: run the network a model file stores.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use modeltool_format::{Dtype, ModelMetadata, TensorMeta};
use modeltool_loader::save::{check_output, write_atomically, write_model};
use modeltool_loader::{LoadError, Model, OpenOptions};
use modeltool_net::{Activation, Architecture, Network};

/// Arguments of `modeltool run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The model: .safetensors, .json, or a sharded checkpoint.
    model: PathBuf,
    /// Read tensors with plain reads instead of memory-mapping the files.
    #[arg(long)]
    no_mmap: bool,
    /// Accept a class a PyTorch checkpoint's pickle names (MODULE.NAME,
    /// repeatable) as opaque data: never imported or called. Code-execution
    /// entry points (os.system, builtins.eval, ...) can never be allowed.
    #[arg(long = "allow-global", value_name = "MODULE.NAME")]
    allow_global: Vec<String>,
    /// Samples: a number each, or comma-separated numbers for wider inputs.
    #[arg(value_name = "X", allow_negative_numbers = true)]
    samples: Vec<String>,
    /// Read samples from a CSV file (one a row; a header row is allowed) or a
    /// .safetensors file (a tensor `input` of shape [batch, in]).
    #[arg(long, value_name = "FILE", conflicts_with = "samples")]
    input: Option<PathBuf>,
    /// Write outputs to a CSV file or a .safetensors file (tensor `output`)
    /// instead of printing them.
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
}

/// The network a model runs: its stored architecture, or the layers its
/// nn.Sequential-style names describe.
pub fn network(model: &Model, activation: Option<Activation>) -> anyhow::Result<Network> {
    let path = model.path().display().to_string();
    let arch = match &model.metadata().architecture {
        Some(value) => {
            if activation.is_some() {
                bail!(
                    "{path}: the file stores its architecture; --activation applies only to files without one"
                );
            }
            Architecture::from_value(value.clone()).map_err(|e| anyhow!("{path}: {e}"))?
        }
        None => {
            let names: Vec<String> = model
                .entries()
                .iter()
                .map(|e| e.meta.name.clone())
                .collect();
            let linear_layers = names.iter().filter(|n| n.ends_with(".weight")).count();
            let act = match activation {
                Some(a) => a,
                None if linear_layers <= 1 => Activation::Identity,
                None => bail!(
                    "{path}: no architecture stored; its {linear_layers} nn.Sequential-style linear layers need --activation NAME between them"
                ),
            };
            Architecture::from_sequential(&names, act).map_err(|e| anyhow!("{path}: {e}"))?
        }
    };
    let mut params = std::collections::HashMap::new();
    for name in arch.tensor_names() {
        let Ok(entry) = model.entry(&name) else {
            continue;
        };
        // A damaged parameter is refused (exit 1), not run.
        let bytes = model.bytes_checked(entry)?;
        let Some(values) = modeltool_loader::to_f32(bytes, entry.meta.dtype) else {
            bail!(
                "{path}: tensor `{name}` is {}, not a float dtype a network can run",
                entry.meta.dtype
            );
        };
        let values = values.into_owned();
        params.insert(name, (entry.meta.shape.clone(), values));
    }
    Network::build(&arch, |name| params.remove(name)).map_err(|e| anyhow!("{path}: {e}"))
}

/// Runs the command.
pub fn run(args: RunArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let model = Model::open(
        &args.model,
        OpenOptions {
            mmap: !args.no_mmap,
            allow_globals: args.allow_global.clone(),
        },
    )?;
    if let Some(output) = &args.output {
        let mut inputs: Vec<&Path> = model.files().iter().map(|f| f.path.as_path()).collect();
        inputs.push(&args.model);
        inputs.extend(args.input.as_deref());
        check_output(output, &inputs, args.force)?;
    }
    let net = network(&model, args.activation)?;
    let width = net.input_width();
    let (inputs, batch) = match &args.input {
        Some(path) => read_input(path, width, args.no_mmap)?,
        None if args.samples.is_empty() => {
            bail!("give samples to run (e.g. `modeltool run model.json 175`) or --input FILE")
        }
        None => parse_samples(&args.samples, width)?,
    };
    let outputs = net
        .forward(&inputs, batch)
        .map_err(|e| anyhow!("{}: {e}", model.path().display()))?;
    let out_width = net.output_width();
    match &args.output {
        Some(path) => write_output(path, &outputs, batch, out_width, args.force),
        None => Ok(write_rows(out, &outputs, out_width)?),
    }
}

fn parse_samples(samples: &[String], width: usize) -> anyhow::Result<(Vec<f32>, usize)> {
    let mut inputs = Vec::with_capacity(samples.len() * width);
    for (i, s) in samples.iter().enumerate() {
        let row = parse_row(s)
            .map_err(|bad| anyhow!("sample {} (`{s}`): `{bad}` is not a number", i + 1))?;
        if row.len() != width {
            bail!(
                "sample {} (`{s}`) has {} values; the model takes {width} inputs",
                i + 1,
                row.len()
            );
        }
        inputs.extend(row);
    }
    Ok((inputs, samples.len()))
}

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

fn read_input(path: &Path, width: usize, no_mmap: bool) -> anyhow::Result<(Vec<f32>, usize)> {
    let shown = path.display();
    if path.extension().is_some_and(|e| e == "safetensors") {
        let model = Model::open(
            path,
            OpenOptions {
                mmap: !no_mmap,
                ..OpenOptions::default()
            },
        )?;
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
        return Ok((values, shape[0]));
    }
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{shown}: {e}"))?;
    let mut inputs = Vec::new();
    let mut batch = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_row(line) {
            Ok(row) if row.len() == width => {
                inputs.extend(row);
                batch += 1;
            }
            Ok(row) => bail!(
                "{shown}: line {} has {} values; the model takes {width} inputs",
                n + 1,
                row.len()
            ),
            Err(_) if n == 0 => {} // a header row
            Err(bad) => bail!("{shown}: line {}: `{bad}` is not a number", n + 1),
        }
    }
    if batch == 0 {
        bail!("{shown}: no samples");
    }
    Ok((inputs, batch))
}

fn write_output(
    path: &Path,
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
        write_rows(out, outputs, width).map_err(|e| LoadError::Io {
            path: path.to_owned(),
            source: e,
        })
    })?;
    Ok(())
}

/// Writes one line per sample, values comma-separated, each in the
/// shortest form that reads back to the same f32.
fn write_rows(out: &mut impl Write, outputs: &[f32], width: usize) -> std::io::Result<()> {
    let mut line = String::new();
    for row in outputs.chunks(width.max(1)) {
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
