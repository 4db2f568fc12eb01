//! `modeltool rehash MODEL`: fresh checksums after a deliberate edit.

use std::io::Write;

use modeltool_format::text::middle;
use modeltool_loader::save::{RehashReport, rehash};

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
    writeln!(
        out,
        "rehashed {}: {replaced} tensor checksums replaced, {added} added, {} unchanged",
        r.path.display(),
        r.unchanged
    )?;
    for c in &r.changed {
        let name = middle(&c.name, 60);
        match &c.old {
            Some(old) => writeln!(out, "  replaced {name}: {old} -> {}", c.new)?,
            None => writeln!(out, "  added    {name}: {}", c.new)?,
        }
    }
    for name in &r.dropped {
        writeln!(
            out,
            "  dropped  {}: a checksum for a tensor that does not exist",
            middle(name, 60)
        )?;
    }
    for h in &r.headers {
        writeln!(
            out,
            "header checksum of {} (was {}): {}",
            h.file.display(),
            h.before,
            h.after
        )?;
    }
    Ok(())
}
