//! `modeltool inspect MODEL`: what is in a model file, from headers alone.
//! The report is built by `modeltool_inspect::Report::from_model`; this
//! module parses the arguments and picks the view.

use std::io::Write;

use modeltool_inspect::{InspectOptions, Report, TENSOR_ROW_LIMIT, screen_columns};

use crate::{Format, InputArgs};

/// Arguments of `modeltool inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Levels of the module tree to show (default: as many as fit one screen).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    depth: Option<u16>,
    /// List the tensors with dtype, shape, bytes and offset (the first
    /// 200; see --limit).
    #[arg(long)]
    tensors: bool,
    /// How many tensors --tensors lists; 0 lists every one.
    #[arg(long, value_name = "N", default_value_t = TENSOR_ROW_LIMIT)]
    limit: usize,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: InspectArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let model = super::open(&args.input)?;
    let options = InspectOptions {
        depth: args.depth.map(usize::from),
        tensors: args.tensors,
        tensor_limit: (args.limit > 0).then_some(args.limit),
        columns: screen_columns(),
    };
    let report =
        Report::from_model(&model, &options).with_path(args.input.input.display().to_string());
    match args.format {
        Format::Json => super::print_json(out, &report)?,
        Format::Human => report.render_human(out)?,
    }
    Ok(())
}
