//! `modeltool rehash MODEL`: fresh checksums after a deliberate edit.

use std::io::Write;

use modeltool_format::text::{Count, Escaped, middle};
use modeltool_loader::save::{RehashReport, Rehashed, rehash};

use crate::{Format, InputArgs};

/// Arguments of `modeltool rehash`.
#[derive(Debug, clap::Args)]
pub struct RehashArgs {
    #[command(flatten)]
    input: InputArgs,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: RehashArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let model = super::open(&args.input)?;
    let total: u64 = model.entries().iter().map(|e| e.byte_len()).sum();
    let bar = super::progress_bar(total, "rehashing");
    let report = rehash(&model, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    match args.format {
        Format::Json => {
            super::print_json(out, &report)?;
        }
        Format::Human => print_human(&report, out)?,
    }
    Ok(())
}

fn print_human(r: &RehashReport, out: &mut impl Write) -> anyhow::Result<()> {
    let replaced = r.changed.iter().filter(|c| c.old.is_some()).count();
    let added = r.changed.len() - replaced;
    let cols = modeltool_inspect::screen_columns();
    writeln!(
        out,
        "rehashed {}: {} replaced, {added} added, {} unchanged",
        middle(&r.path.display().to_string(), cols - 50),
        Count(replaced as u64, "tensor checksum"),
        r.unchanged
    )?;
    print_changes(&r.changed, out)?;
    for name in &r.dropped {
        writeln!(
            out,
            "  dropped  {}: a checksum for a tensor that does not exist",
            middle(name, cols - 55)
        )?;
    }
    for h in &r.headers {
        writeln!(
            out,
            "header checksum of {} ({}):",
            middle(&h.file.display().to_string(), cols - 45),
            match h.before {
                "absent" => "there was none",
                "matched" => "the old one matched",
                _ => "the old one was damaged",
            }
        )?;
        writeln!(out, "      now {}", h.after)?;
    }
    Ok(())
}

/// The checksums `rehash` and `convert --rehash` wrote: a line naming each
/// tensor, then the old and the new digest on lines of their own (two
/// digests do not fit one line of 80 columns).
pub(super) fn print_changes(changed: &[Rehashed], out: &mut impl Write) -> std::io::Result<()> {
    let cols = modeltool_inspect::screen_columns();
    for c in changed {
        let name = middle(&c.name, cols - 12);
        match &c.old {
            Some(old) => {
                writeln!(out, "  replaced {name}:")?;
                writeln!(out, "      was {}", Escaped(old))?;
            }
            None => writeln!(out, "  added    {name}:")?,
        }
        writeln!(out, "      now {}", c.new)?;
    }
    Ok(())
}
