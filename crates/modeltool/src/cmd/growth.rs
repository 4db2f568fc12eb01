//! `modeltool growth`: how file size grows with parameter count, measured
//! on real model files.

use std::io::Write;
use std::path::PathBuf;

use modeltool_inspect::growth::{GrowthReport, default_points, measure, render_table, write_svg};

use crate::Format;

/// Arguments of `modeltool growth`.
#[derive(Debug, clap::Args)]
pub struct GrowthArgs {
    /// Also draw the log-log chart (parameters against bytes) as SVG.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Keep the model files in this folder instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// How to print the table.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: GrowthArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let points = measure(&dir, &default_points())?;
    if let Some(svg) = &args.svg {
        write_svg(&points, svg)?;
    }
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &GrowthReport { points })?;
            writeln!(out)?;
        }
        Format::Human => {
            render_table(&points, out)?;
            if let Some(svg) = &args.svg {
                writeln!(out, "chart written to {}", svg.display())?;
            }
        }
    }
    Ok(())
}
