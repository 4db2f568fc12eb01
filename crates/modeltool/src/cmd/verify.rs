//! `modeltool verify PATH [--sha256 HEX] [--strict]`: renders the
//! library's [`VerifyReport`] for people or as JSON.

use std::io::Write;

use anyhow::bail;
use modeltool_format::text::{Count, Escaped, middle, thousands};
use modeltool_loader::{VerifyOptions, VerifyReport};
use modeltool_stats::Verification;

use crate::exit::CheckFailed;
use crate::{Format, InputArgs};

/// Arguments of `modeltool verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Also compare the whole file's sha256 with HEX, a hash from a place
    /// you trust (the Hugging Face Hub lists one per file). The checksums
    /// inside a file catch accidents (bit rot, truncated downloads, bad
    /// edits, wrong casts), not someone who edits the data and recomputes
    /// them: only this check does.
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Fail when a tensor has no stored checksum.
    #[arg(long)]
    strict: bool,
    /// Also read every value of every float tensor and fail on NaN or
    /// infinities. Off by default: some models store `-inf` masks on
    /// purpose.
    #[arg(long)]
    values: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if let Some(h) = &args.sha256 {
        if !modeltool_format::is_sha256_hex(&h.to_ascii_lowercase()) {
            bail!("--sha256 `{}` is not 64 hex digits", Escaped(h));
        }
    }
    let model = super::open(&args.input)?;
    let total: u64 = model.entries().iter().map(|e| e.byte_len()).sum();
    let bar = super::progress_bar(total, "verifying");
    let verification = Verification::from_model(
        &model,
        &VerifyOptions {
            sha256: args.sha256.clone(),
            strict: args.strict,
        },
        args.values,
        &|n| bar.inc(n),
    )?;
    bar.finish_and_clear();
    super::release(model);
    let mut verification = verification;
    // The path as the user gave it.
    verification.report.path = args.input.input.display().to_string();
    match args.format {
        Format::Json => super::print_json(out, &verification)?,
        Format::Human => print_human(&verification.report, verification.values.as_ref(), out)?,
    }
    let Verification { report, values } = verification;
    if report.ok {
        return Ok(());
    }
    let path = Escaped(&report.path);
    for h in &report.damaged_headers {
        eprintln!(
            "error: {}: header is damaged ({})",
            Escaped(&h.file),
            Escaped(&h.reason)
        );
    }
    for d in &report.damaged {
        eprintln!(
            "error: {path}: tensor `{}` is damaged (sha256 mismatch)",
            Escaped(&d.name)
        );
    }
    for name in &report.missing_checksums {
        eprintln!(
            "error: {path}: tensor `{}` has {}",
            Escaped(name),
            missing_reason(&report)
        );
    }
    for v in &report.invalid_values {
        eprintln!(
            "error: {path}: tensor `{}` holds {} (element {} is 0x{:02x}; BOOL is 0 or 1)",
            Escaped(&v.name),
            Count(v.count, "invalid value"),
            v.index,
            v.byte
        );
    }
    for v in values.iter().flat_map(|v| &v.non_finite) {
        eprintln!(
            "error: {path}: tensor `{}` holds {} NaN, {} +inf, {} -inf",
            Escaped(&v.name),
            v.nan,
            v.pos_inf,
            v.neg_inf
        );
    }
    for w in &report.warnings {
        eprintln!("error: {}", Escaped(w));
    }
    for d in &report.container_damage {
        eprintln!("error: {d}");
    }
    Err(CheckFailed.into())
}

/// The explicit path for a deliberate edit, printed before the verdict
/// when checksums disagree with the data.
const REHASH: &str =
    "if the change was deliberate, `modeltool rehash MODEL` writes fresh checksums";

fn print_human(
    r: &VerifyReport,
    values: Option<&modeltool_stats::ValueCheck>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    // Paths and tensor names take what the screen leaves beside the words
    // around them, cut in the middle with `…` when longer.
    let cols = modeltool_inspect::screen_columns();
    let (path_cols, name_cols) = (cols - 36, cols - 50);
    let files = if r.files > 1 {
        format!(" in {}", Count(r.files as u64, "file"))
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}: structure ok, {}{files}",
        middle(&r.path, path_cols),
        Count(r.tensors as u64, "tensor")
    )?;
    for h in &r.damaged_headers {
        let of = if r.files > 1 {
            format!(" of {}", Escaped(&h.file))
        } else {
            String::new()
        };
        writeln!(out, "header{of}: DAMAGED ({})", Escaped(&h.reason))?;
    }
    if r.headers_matched > 0 {
        let of = if r.files > 1 {
            format!(
                " in {} of {}",
                r.headers_matched,
                Count(r.files as u64, "file")
            )
        } else {
            String::new()
        };
        writeln!(out, "header: checksum matches{of}")?;
    }
    if r.verified + r.damaged.len() == 0 {
        writeln!(out, "no checksums stored: only the structure was checked")?;
    } else {
        writeln!(
            out,
            "{} of {} {}",
            thousands(r.verified as u64),
            Count(r.tensors as u64, "tensor checksum"),
            if r.verified == 1 { "matches" } else { "match" }
        )?;
    }
    for d in &r.damaged {
        // Two hex digests do not fit one line of 80 columns: one each.
        writeln!(
            out,
            "DAMAGED {}: its data does not match its checksum",
            middle(&d.name, name_cols)
        )?;
        writeln!(out, "    stored {}", Escaped(&d.expected))?;
        writeln!(out, "    actual {}", Escaped(&d.actual))?;
    }
    for name in &r.missing_checksums {
        writeln!(
            out,
            "MISSING checksum of {}: {}",
            middle(name, name_cols),
            missing_reason(r)
        )?;
    }
    for name in &r.orphan_checksums {
        writeln!(
            out,
            "ORPHAN checksum for `{}`, which the model does not hold",
            middle(name, name_cols)
        )?;
    }
    for v in &r.invalid_values {
        writeln!(
            out,
            "INVALID values in {}: {} not 0 or 1 (first: element {}, byte 0x{:02x})",
            middle(&v.name, name_cols),
            Count(v.count, "element"),
            v.index,
            v.byte
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "WARNING {}", Escaped(w))?;
    }
    // Already escaped: each names the file and the entry in the loader's words.
    for d in &r.container_damage {
        writeln!(out, "DAMAGED {d}")?;
    }
    for n in &r.notes {
        writeln!(out, "note: {n}")?;
    }
    if let Some(f) = &r.file_sha256 {
        if f.ok {
            writeln!(out, "file sha256 matches")?;
            writeln!(out, "    {}", Escaped(&f.expected))?;
        } else {
            writeln!(out, "FILE SHA256 MISMATCH")?;
            writeln!(out, "    expected {}", Escaped(&f.expected))?;
            writeln!(out, "    actual   {}", Escaped(&f.actual))?;
        }
    }
    match values {
        None => writeln!(out, "values: not checked (--values reads them)")?,
        Some(v) if v.ok() => writeln!(
            out,
            "values: {} read, no NaN or infinity",
            Count(v.checked as u64, "float tensor")
        )?,
        Some(v) => {
            for t in &v.non_finite {
                writeln!(
                    out,
                    "NON-FINITE values in {}: {} NaN, {} +inf, {} -inf",
                    middle(&t.name, name_cols),
                    t.nan,
                    t.pos_inf,
                    t.neg_inf
                )?;
            }
        }
    }
    if r.strict && !r.no_checksum.is_empty() {
        writeln!(out, "strict: tensors without checksums count as a failure")?;
    }
    let disagree = !(r.damaged.is_empty()
        && r.damaged_headers.is_empty()
        && r.missing_checksums.is_empty()
        && r.orphan_checksums.is_empty());
    if disagree {
        writeln!(out, "{REHASH}")?;
    }
    writeln!(out, "{}", if r.ok { "OK" } else { "FAILED" })?;
    Ok(())
}

/// Why a tensor without a checksum is suspect: others have one, or (none
/// has) a file of the model carries a header checksum, and modeltool writes
/// both.
fn missing_reason(r: &VerifyReport) -> String {
    match r.verified + r.damaged.len() {
        0 => "no checksum, while its file has a header checksum (modeltool writes both): damaged metadata?".to_owned(),
        1 => "no checksum, while 1 other tensor has one: damaged metadata?".to_owned(),
        n => format!("no checksum, while {n} other tensors have one: damaged metadata?"),
    }
}
