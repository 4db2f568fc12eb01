//! `modeltool train DATA.csv -o MODEL`: fit a network to samples.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use modeltool_loader::save::{model_format, stage_model};
use modeltool_loader::write::Outputs;
use modeltool_net::train::{Dataset, Provenance, TrainConfig, TrainReport, train};
use modeltool_net::{Activation, loss_svg};

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

    // How the model was made, recorded in it (`training.*`): built by the
    // net crate, which owns what those keys mean.
    let provenance = Provenance::for_file(&args.data, &data, &trained)?;
    let (tensors, meta) = trained.to_model_parts(&provenance);
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
    let report = TrainReport::new(&args.out, &data, &trained);
    match args.format {
        Format::Json => {
            super::print_json(out, &report)?;
        }
        Format::Human => report.write_human(out)?,
    }
    Ok(())
}
