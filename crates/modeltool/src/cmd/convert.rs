//! `modeltool convert INPUT OUTPUT`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::bail;
use modeltool_format::Dtype;
use modeltool_format::gguf::GgmlType;
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
    if r.unchecked == 0 {
        writeln!(
            out,
            "{} input checksums verified; every output tensor carries its sha256",
            r.checked
        )?;
    } else {
        // Two lines: each fits 80 columns whatever the counts.
        writeln!(
            out,
            "{} input checksums verified, {} tensors had none stored;",
            r.checked, r.unchecked
        )?;
        writeln!(out, "every output tensor now carries its sha256")?;
    }
    if options.rehash {
        let replaced = r.rehashed.iter().filter(|c| c.old.is_some()).count();
        let added = r.rehashed.len() - replaced;
        writeln!(
            out,
            "rehash: {replaced} stored checksums replaced, {added} added"
        )?;
        for c in &r.rehashed {
            let name = modeltool_format::text::middle(&c.name, 60);
            match &c.old {
                Some(old) => writeln!(out, "  replaced {name}: {old} -> {}", c.new)?,
                None => writeln!(out, "  added    {name}: {}", c.new)?,
            }
        }
    }
    if let Some(d) = options.dtype {
        let overflow = if r.overflow_values > 0 {
            format!(" ({} too large, written as infinities)", r.overflow_values)
        } else {
            String::new()
        };
        writeln!(
            out,
            "cast {} tensors ({} values) to {d}: {} values were not exactly representable{overflow}",
            r.cast_tensors, r.cast_values, r.inexact_values
        )?;
    }
    Ok(())
}
