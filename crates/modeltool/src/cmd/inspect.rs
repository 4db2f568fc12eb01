//! `modeltool inspect MODEL`: what is in a model file, from headers alone.

use std::io::Write;

use modeltool_inspect::{FileFacts, InspectOptions, ModelFacts, TensorFacts, inspect};
use modeltool_loader::{Model, ModelKind};

use crate::{Format, InputArgs};

/// Arguments of `modeltool inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Levels of the module tree to show (default: as many as fit one screen).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    depth: Option<u16>,
    /// List every tensor with dtype, shape, count, bytes and offset.
    #[arg(long)]
    tensors: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The facts the inspect crate needs, taken from an opened model's headers.
pub fn facts(model: &Model, shown_as: &str) -> ModelFacts {
    let kind = match model.kind() {
        ModelKind::Safetensors => "safetensors",
        ModelKind::Json => "json",
        ModelKind::Sharded { .. } => "sharded",
        ModelKind::Pytorch => "pytorch",
    };
    let json = matches!(model.kind(), ModelKind::Json);
    ModelFacts {
        path: shown_as.to_owned(),
        kind: kind.to_owned(),
        files: model
            .files()
            .iter()
            .map(|f| FileFacts {
                path: f.path.display().to_string(),
                file_bytes: f.file_len,
                header_bytes: f.header_bytes,
            })
            .collect(),
        tensors: model
            .entries()
            .iter()
            .map(|e| TensorFacts {
                meta: e.meta.clone(),
                file: e.file,
                offset: if json { 0 } else { e.range.0 },
                bytes: e.byte_len(),
            })
            .collect(),
        metadata: model.metadata().user.clone(),
        architecture: model.metadata().architecture.clone(),
    }
}

/// Runs the command.
pub fn run(args: InspectArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let model = super::open(&args.input)?;
    let facts = facts(&model, &args.input.input.display().to_string());
    let report = inspect(
        &facts,
        &InspectOptions {
            depth: args.depth.map(usize::from),
            tensors: args.tensors,
        },
    );
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Format::Human => report.render_human(out)?,
    }
    Ok(())
}
