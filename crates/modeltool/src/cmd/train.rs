//! `modeltool train DATA.csv -o MODEL`: fit a network to samples.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use modeltool_format::text::cut;
use modeltool_format::{Dtype, ModelMetadata, TensorMeta, sha256_hex};
use modeltool_loader::save::{model_format, stage_model};
use modeltool_loader::write::Outputs;
use modeltool_net::train::{Dataset, Provenance, TrainConfig, train};
use modeltool_net::{Activation, loss_svg};
use serde::Serialize;

use crate::Format;

/// Arguments of `modeltool train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// CSV with a header row; the last column is the target unless --target
    /// names others.
    data: PathBuf,
    /// The model file to write: `.json` or `.safetensors` (`--out` is the
    /// same).
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "out",
        value_name = "MODEL"
    )]
    out: PathBuf,
    /// Hidden layer widths, e.g. `16,16`. Without it the model is a straight
    /// line (one linear layer), solved exactly by least squares.
    #[arg(long, value_name = "W,W,...", value_delimiter = ',')]
    hidden: Vec<usize>,
    /// Activation between layers.
    #[arg(long, value_name = "NAME", default_value = "tanh")]
    activation: Activation,
    /// Passes over the data (hidden layers only).
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Adam's learning rate.
    #[arg(long, value_name = "F")]
    lr: Option<f32>,
    /// Samples per mini-batch.
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Seed for the initial weights and the shuffling: same seed, same model.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// Target columns (default: the last column).
    #[arg(long, value_name = "COLUMN", num_args = 1..)]
    target: Vec<String>,
    /// Draw the loss per epoch as an SVG chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Replace MODEL and the plot if they exist (regular files only; the
    /// data is never replaced).
    #[arg(long)]
    force: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// What training did.
#[derive(Debug, Serialize)]
struct TrainReport {
    model: String,
    rows: usize,
    inputs: Vec<String>,
    targets: Vec<String>,
    parameters: usize,
    epochs: usize,
    final_loss: f64,
    /// Settings given that this method does not use.
    warnings: Vec<String>,
}

/// Runs the command.
pub fn run(args: TrainArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if model_format(&args.out).is_err() {
        bail!(
            "{}: --output must end in .json or .safetensors",
            args.out.display()
        );
    }
    // Every output is checked against the data and the other output before
    // training starts, and written all together or not at all.
    let mut outputs = Outputs::new();
    outputs.input(&args.data)?;
    let model_id = outputs.file(&args.out, args.force)?;
    let plot_id = match &args.plot {
        Some(plot) => Some(outputs.file(plot, args.force)?),
        None => None,
    };
    let data = Dataset::from_path(&args.data, &args.target)?;
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        hidden: args.hidden.clone(),
        activation: args.activation,
        epochs: args.epochs.unwrap_or(defaults.epochs),
        lr: args.lr.unwrap_or(defaults.lr),
        batch: args.batch.unwrap_or(defaults.batch),
        seed: args.seed,
    };

    let bar = if config.hidden.is_empty() || !std::io::stderr().is_terminal() {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(config.epochs as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "training [{bar:40}] epoch {pos}/{len} loss {msg} eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    };
    let trained = train(&data, &config, &mut |epoch, loss| {
        bar.set_position(epoch as u64 + 1);
        bar.set_message(format!("{loss:.6}"));
    })?;
    bar.finish_and_clear();

    let data_bytes =
        std::fs::read(&args.data).map_err(|e| anyhow!("{}: {e}", args.data.display()))?;
    let epochs = trained.method.epochs();
    let data_name = args
        .data
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // How the model was made, recorded in it (`training.*`): built by the
    // net crate, which owns what those keys mean.
    let provenance = Provenance::new(&data_name, &sha256_hex(&data_bytes), &data, &trained);
    let meta = ModelMetadata {
        architecture: Some(trained.architecture.to_value()),
        user: provenance.to_metadata(),
        ..Default::default()
    };
    let tensors: Vec<(TensorMeta, Vec<u8>)> = trained
        .tensors
        .iter()
        .map(|t| {
            let meta = TensorMeta {
                name: t.name.clone(),
                dtype: Dtype::F32,
                shape: t.shape.clone(),
            };
            (
                meta,
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    stage_model(&mut outputs, model_id, &tensors, &meta)?;
    if let (Some(plot), Some(id)) = (&args.plot, plot_id) {
        let svg =
            loss_svg(&trained.loss_history).map_err(|e| anyhow!("{}: {e}", plot.display()))?;
        outputs.write_bytes(id, svg.as_bytes())?;
    }
    outputs.commit()?;

    for warning in &trained.warnings {
        eprintln!("warning: {warning}");
    }
    let report = TrainReport {
        model: args.out.display().to_string(),
        rows: data.rows(),
        inputs: data.input_names().to_vec(),
        targets: data.target_names().to_vec(),
        parameters: trained.parameter_count(),
        epochs,
        final_loss: trained.final_loss,
        warnings: trained.warnings.iter().map(ToString::to_string).collect(),
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Format::Human => {
            let how = if epochs == 0 {
                "least squares".to_owned()
            } else {
                format!("{epochs} epochs")
            };
            writeln!(
                out,
                "trained {} parameters on {} rows ({} -> {}) by {how}",
                report.parameters,
                report.rows,
                cut(&report.inputs.join(","), 60),
                cut(&report.targets.join(","), 60)
            )?;
            writeln!(
                out,
                "final loss (mean squared error): {}",
                report.final_loss
            )?;
            writeln!(out, "wrote {}", report.model)?;
        }
    }
    Ok(())
}
