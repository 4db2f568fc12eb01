//! `modeltool growth`: how file size grows with parameter count, measured
//! on real model files.

use std::io::Write;
use std::path::PathBuf;

use modeltool_format::text::Escaped;
use modeltool_inspect::growth::{GrowthReport, default_points, measure_into, render_table, svg};
use modeltool_loader::write::Outputs;

use crate::Format;

/// Arguments of `modeltool growth`.
#[derive(Debug, clap::Args)]
pub struct GrowthArgs {
    /// Also draw the log-log chart (parameters against bytes) as SVG
    /// (`-o`/`--output` is the same).
    #[arg(
        short = 'o',
        long = "svg",
        visible_alias = "output",
        value_name = "FILE"
    )]
    svg: Option<PathBuf>,
    /// Keep the model files in this folder instead of a temporary one
    /// (made if missing).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Replace the chart and kept model files if they exist (regular files
    /// only: a symbolic link, FIFO or folder in their place is refused).
    #[arg(long)]
    force: bool,
    /// How to print the table.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: GrowthArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut outputs = Outputs::new();
    // The chart is declared first: a name it cannot have fails before the
    // minutes of writing models.
    let svg_id = match &args.svg {
        Some(path) => Some(outputs.file(path, args.force)?),
        None => None,
    };
    let tmp;
    let mut made = None;
    let dir = match &args.keep {
        Some(d) => {
            if std::fs::symlink_metadata(d).is_err() {
                std::fs::create_dir(d)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", Escaped(&d.to_string_lossy())))?;
                made = Some(d.clone());
            }
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let result = (|| -> anyhow::Result<_> {
        let points = measure_into(&mut outputs, &dir, &default_points(), args.force)?;
        if let (Some(path), Some(id)) = (&args.svg, svg_id) {
            outputs.write_bytes(id, svg(&points, path)?.as_bytes())?;
        }
        outputs.commit()?;
        Ok(points)
    })();
    let points = match result {
        Ok(points) => points,
        Err(e) => {
            // A folder made for this run and left empty goes too.
            if let Some(d) = made {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
    };
    match args.format {
        Format::Json => {
            super::print_json(out, &GrowthReport { points })?;
        }
        Format::Human => {
            render_table(&points, out)?;
            if let Some(svg) = &args.svg {
                writeln!(out, "chart written to {}", Escaped(&svg.to_string_lossy()))?;
            }
        }
    }
    Ok(())
}
