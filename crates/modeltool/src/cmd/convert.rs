//! `modeltool convert INPUT OUTPUT`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use modeltool_format::Dtype;
use modeltool_loader::parse_size;
use modeltool_loader::save::{ConvertOptions, ConvertReport, OutputKind, convert};

use crate::{Format, InputArgs};

/// Arguments of `modeltool convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write: `.json`, `.safetensors`, or a folder for shards.
    output: PathBuf,
    /// Cast float tensors (F16, BF16, F32, F64) to this dtype, rounding to
    /// nearest-even; other dtypes pass through untouched.
    #[arg(long, value_enum)]
    dtype: Option<CastTo>,
    /// Replace OUTPUT if it exists (the input is never replaced).
    #[arg(long)]
    force: bool,
    /// Largest shard when writing a folder, e.g. `5GB`, `500MB` (decimal
    /// units, as Hugging Face uses; KiB/MiB/GiB are binary).
    #[arg(long, value_name = "SIZE")]
    max_shard_size: Option<String>,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CastTo {
    F32,
    F16,
    Bf16,
}

/// Runs the command.
pub fn run(args: ConvertArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let ext = args
        .output
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let kind = match (ext.as_deref(), &args.max_shard_size) {
        (Some("json"), None) => OutputKind::Json,
        (Some("safetensors"), None) => OutputKind::Safetensors,
        (Some("json" | "safetensors"), Some(_)) => {
            bail!(
                "{}: --max-shard-size needs a folder as output, not a single file",
                args.output.display()
            )
        }
        (_, size) => {
            let text = size.as_deref().unwrap_or("5GB");
            let Some(max_shard_size) = parse_size(text) else {
                bail!("--max-shard-size `{text}` is not a size such as 5GB, 500MB or 2GiB");
            };
            OutputKind::Sharded { max_shard_size }
        }
    };
    let model = super::open(&args.input)?;
    let total: u64 = model.entries().iter().map(|e| e.byte_len()).sum();
    let bar = super::progress_bar(total, "converting");
    let options = ConvertOptions {
        kind,
        dtype: args.dtype.map(|d| match d {
            CastTo::F32 => Dtype::F32,
            CastTo::F16 => Dtype::F16,
            CastTo::Bf16 => Dtype::BF16,
        }),
        force: args.force,
    };
    let report = convert(&model, &args.output, &options, &|n| bar.inc(n))?;
    bar.finish_and_clear();
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Format::Human => print_human(&report, &options, out)?,
    }
    Ok(())
}

fn print_human(
    r: &ConvertReport,
    options: &ConvertOptions,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let target = r
        .files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let files = if r.files.len() > 1 {
        format!(" (+{} more files)", r.files.len() - 1)
    } else {
        String::new()
    };
    writeln!(
        out,
        "wrote {target}{files}: {} tensors, {} bytes of tensor data",
        r.tensors, r.data_bytes
    )?;
    let stored = if r.unchecked == 0 {
        format!("{} input checksums verified", r.checked)
    } else {
        format!(
            "{} input checksums verified, {} tensors had none stored",
            r.checked, r.unchecked
        )
    };
    writeln!(out, "{stored}; every output tensor carries its sha256")?;
    if let Some(d) = options.dtype {
        writeln!(
            out,
            "cast {} tensors ({} values) to {d}: {} values were not exactly representable",
            r.cast_tensors, r.cast_values, r.inexact_values
        )?;
    }
    Ok(())
}
