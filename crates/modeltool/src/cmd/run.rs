//! `modeltool run MODEL [X ...]`: run the network a model file stores.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use modeltool_format::text::Escaped;
use modeltool_loader::Model;
use modeltool_net::{Activation, NetError, PredictionFile, Runner};

use crate::{Format, PickleArgs};

/// Arguments of `modeltool run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The model: .safetensors, .json, or a sharded checkpoint.
    model: PathBuf,
    /// Read tensors with plain reads instead of memory-mapping the files.
    #[arg(long)]
    no_mmap: bool,
    /// How a PyTorch checkpoint's pickle is read.
    #[command(flatten)]
    pickle: PickleArgs,
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

/// A network error as the exit codes want it: a damaged tensor is the
/// loader's check failure (exit 1), everything else bad input (exit 2).
fn net_error(e: NetError) -> anyhow::Error {
    match e {
        NetError::Load(load) => load.into(),
        other => other.into(),
    }
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
            self.pickle.allow_global.extend(more.pickle.allow_global);
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
    let options = args.pickle.open_options(!args.no_mmap);
    let model = Model::open(&args.model, options.clone())?;
    // Where the outputs go is checked before any work.
    let file = args
        .output
        .as_deref()
        .map(|path| PredictionFile::declare(path, args.force, &model, args.input.as_deref()))
        .transpose()
        .map_err(net_error)?;
    let runner = Runner::new(&model, args.activation).map_err(net_error)?;
    let batch = match &args.input {
        Some(path) => runner.read_batch(path, options),
        None if args.samples.is_empty() => {
            bail!("give samples to run (e.g. `modeltool run model.json 175`) or --input FILE")
        }
        None => runner.parse_samples(&args.samples),
    }
    .map_err(net_error)?;
    let predictions = runner.run(&batch).map_err(net_error)?;
    let to_file = file.is_some();
    if let Some(file) = file {
        file.write(&predictions).map_err(net_error)?;
    }
    match args.format {
        Format::Json => {
            super::print_json(out, &predictions)?;
        }
        Format::Human if to_file => predictions.write_summary(out)?,
        Format::Human => predictions.write_human(out)?,
    }
    Ok(())
}
