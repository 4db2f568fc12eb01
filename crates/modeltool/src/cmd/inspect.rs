//! `modeltool inspect MODEL`: what is in a model file, from headers alone.
//! The report is built by `modeltool_inspect::Report::from_model`; this
//! module parses the arguments and picks the view.

use std::io::Write;

use modeltool_inspect::{InspectOptions, MetadataValue, Report, TENSOR_ROW_LIMIT, screen_columns};

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
    /// How many tensors --tensors lists, or array elements --metadata
    /// prints; 0 lists every one.
    #[arg(long, value_name = "N", default_value_t = TENSOR_ROW_LIMIT)]
    limit: usize,
    /// Print only the metadata value KEY, whole (the report lists arrays
    /// such as a GGUF vocabulary by type and length only). KEY as the file
    /// spells it, e.g. tokenizer.ggml.tokens. A scalar prints as one line;
    /// an array one element a line as `[index] value`, the first --limit
    /// (200) then `... N more` (--limit 0: every one). Strings are escaped
    /// (a line break shows as \n); --format json gives the exact value,
    /// every element.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["tensors", "stats", "depth"])]
    metadata: Option<String>,
    /// Also read every value and show per-tensor statistics (as `modeltool
    /// stats` does): reads the whole model.
    #[arg(long)]
    stats: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: InspectArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // Buffered: the JSON report of a million tensors is tens of millions
    // of lines, each a write of its own to a line-buffered stdout.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    report(args, &mut out)?;
    out.flush()?;
    Ok(())
}

fn report(args: InspectArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let model = super::open(&args.input)?;
    if let Some(key) = &args.metadata {
        let Some(value) = MetadataValue::find(&model, key) else {
            anyhow::bail!(
                "{}: no metadata key `{}` (inspect lists the keys)",
                modeltool_format::text::escape(&args.input.input.display().to_string()),
                modeltool_format::text::escape(key)
            );
        };
        return match args.format {
            Format::Json => super::print_json(out, &value),
            Format::Human => Ok(value.render_human(out, (args.limit > 0).then_some(args.limit))?),
        };
    }
    let options = InspectOptions {
        depth: args.depth.map(usize::from),
        tensors: args.tensors,
        tensor_limit: (args.limit > 0).then_some(args.limit),
        columns: screen_columns(),
    };
    let stats = if args.stats {
        let mut s = modeltool_stats::StatsReport::from_model(&model, &Default::default())?;
        s.path = args.input.input.display().to_string();
        Some(s)
    } else {
        None
    };
    let report =
        Report::from_model(&model, &options).with_path(args.input.input.display().to_string());
    match (args.format, &stats) {
        (Format::Json, None) => super::print_json(out, &report)?,
        (Format::Json, Some(stats)) => {
            #[derive(serde::Serialize)]
            struct WithStats<'a, R: serde::Serialize> {
                #[serde(flatten)]
                report: &'a R,
                stats: &'a modeltool_stats::StatsReport,
            }
            super::print_json(
                out,
                &WithStats {
                    report: &report,
                    stats,
                },
            )?;
        }
        (Format::Human, _) => {
            report.render_human(out)?;
            if let Some(stats) = &stats {
                writeln!(out)?;
                writeln!(out, "Values")?;
                super::stats::print_human(stats, out)?;
            }
        }
    }
    drop(report);
    super::release(model);
    Ok(())
}
