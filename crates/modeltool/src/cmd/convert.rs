//! `modeltool convert INPUT OUTPUT`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use modeltool_format::Dtype;
use modeltool_format::gguf::GgmlType;
use modeltool_format::text::{Count, middle, thousands};
use modeltool_loader::save::{ConvertOptions, ConvertReport, OutputKind, convert};

use crate::{Format, InputArgs};

/// Arguments of `modeltool convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Where to write: a `.safetensors`, `.json` or `.gguf` file, or a folder of
    /// shards (with --max-shard-size, a name ending in `/`, or an existing
    /// checkpoint folder).
    #[arg(value_name = "OUTPUT")]
    output_arg: Option<PathBuf>,
    /// Where to write (the same as OUTPUT).
    #[arg(short, long, value_name = "OUTPUT", conflicts_with = "output_arg")]
    output: Option<PathBuf>,
    /// Cast float tensors (F16, BF16, F32, F64) to this dtype, rounding to
    /// nearest-even; other dtypes pass through untouched. Values too large
    /// for it are refused unless --allow-overflow.
    #[arg(long, value_enum, ignore_case = true)]
    dtype: Option<CastTo>,
    /// With --dtype: write values too large for the dtype as infinities
    /// instead of refusing the conversion.
    #[arg(long)]
    allow_overflow: bool,
    /// Write fresh checksums instead of refusing an input whose stored
    /// checksums or header checksum do not match or are partly missing
    /// (after a deliberate edit).
    #[arg(long)]
    rehash: bool,
    /// Replace OUTPUT if it exists and is what convert writes (a file, or
    /// a folder holding only a checkpoint); the input is never replaced.
    #[arg(long)]
    force: bool,
    /// Largest shard when writing a folder, e.g. `5GB`, `1.5GB`, `500MB`
    /// (decimal units, as Hugging Face uses; KiB/MiB/GiB are binary).
    #[arg(long, value_name = "SIZE")]
    max_shard_size: Option<String>,
    /// With a `.gguf` output: quantize float tensors of two or more
    /// dimensions whose rows are whole 32-value blocks, bit for bit as
    /// llama.cpp's `gguf` package does; the others keep their dtype.
    #[arg(long, value_enum, ignore_case = true, value_name = "TYPE")]
    quantize: Option<QuantizeTo>,
    /// From a GGUF: keep quantized tensors as their raw blocks (U8
    /// tensors, their ggml type and shape in the metadata) instead of
    /// decoding them to f32; converting the result to `.gguf` gives them
    /// back, byte for byte the original file when nothing else changed.
    /// Every type llama.cpp's `gguf` package decodes is decoded; without
    /// this flag a tensor of another type (Q1_0, or the intermediates Q8_1
    /// and Q8_K) is refused.
    #[arg(long)]
    keep_quantized: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum QuantizeTo {
    #[value(name = "q8_0")]
    Q8_0,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CastTo {
    F32,
    F16,
    Bf16,
}

/// Runs the command.
pub fn run(args: ConvertArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let Some(output) = args.output.as_ref().or(args.output_arg.as_ref()) else {
        bail!("convert needs an OUTPUT (or -o OUTPUT)");
    };
    let kind = match (
        OutputKind::for_path(output, args.max_shard_size.as_deref())?,
        args.quantize,
    ) {
        (OutputKind::Gguf { .. }, Some(QuantizeTo::Q8_0)) => OutputKind::Gguf {
            quantize: Some(GgmlType::Q8_0),
        },
        (_, Some(_)) => bail!(
            "{}: --quantize writes GGUF blocks: name a .gguf output",
            output.display()
        ),
        (kind, None) => kind,
    };
    // `out/` and `out` are one folder; the rest of the name stays as given.
    let output: PathBuf = if output.as_os_str().to_string_lossy().ends_with('/') {
        output.components().collect()
    } else {
        output.clone()
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
        rehash: args.rehash,
        allow_overflow: args.allow_overflow,
        keep_quantized: args.keep_quantized,
    };
    let report = convert(&model, &output, &options, &|n| bar.inc(n))?;
    super::release(model);
    bar.finish_and_clear();
    match args.format {
        Format::Json => {
            super::print_json(out, &report)?;
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
    let files = if r.files.len() > 1 {
        format!(" (+{})", Count(r.files.len() as u64 - 1, "more file"))
    } else {
        String::new()
    };
    let target = r
        .files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    // The path takes what the screen leaves beside the counts.
    let what = format!(
        "{files}: {}, {} of tensor data",
        Count(r.tensors as u64, "tensor"),
        Count(r.data_bytes, "byte")
    );
    let room = modeltool_inspect::screen_columns().saturating_sub(6 + what.len());
    writeln!(out, "wrote {}{what}", middle(&target, room.max(20)))?;
    if r.unchecked == 0 {
        writeln!(
            out,
            "{} verified; every output tensor carries its sha256",
            Count(r.checked as u64, "input checksum")
        )?;
    } else {
        // Two lines: each fits 80 columns whatever the counts.
        writeln!(
            out,
            "{} verified, {} had none stored;",
            Count(r.checked as u64, "input checksum"),
            Count(r.unchecked as u64, "tensor")
        )?;
        writeln!(out, "every output tensor now carries its sha256")?;
    }
    if options.rehash {
        let replaced = r.rehashed.iter().filter(|c| c.old.is_some()).count();
        let added = r.rehashed.len() - replaced;
        writeln!(
            out,
            "rehash: {} replaced, {added} added",
            Count(replaced as u64, "stored checksum")
        )?;
        super::rehash::print_changes(&r.rehashed, out)?;
    }
    if let Some(d) = options.dtype {
        let overflow = if r.overflow_values > 0 {
            format!(
                " ({} too large, written as infinities)",
                thousands(r.overflow_values)
            )
        } else {
            String::new()
        };
        // The inexact count on a line of its own: with large counts the
        // sentence does not fit 80 columns.
        writeln!(
            out,
            "cast {} ({}) to {d}:",
            Count(r.cast_tensors as u64, "tensor"),
            Count(r.cast_values, "value")
        )?;
        writeln!(
            out,
            "    {} {} not exactly representable{overflow}",
            Count(r.inexact_values, "value"),
            if r.inexact_values == 1 { "was" } else { "were" }
        )?;
    }
    Ok(())
}
