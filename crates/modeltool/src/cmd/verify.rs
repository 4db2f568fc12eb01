//! `modeltool verify PATH [--sha256 HEX] [--strict]`.

use std::io::Write;

use anyhow::bail;
use modeltool_format::HeaderSha256;
use modeltool_loader::ModelKind;
use serde::Serialize;

use crate::exit::CheckFailed;
use crate::{Format, InputArgs};

/// Arguments of `modeltool verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Also compare the whole file's sha256 (as the Hugging Face Hub lists it).
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Fail when a tensor has no stored checksum.
    #[arg(long)]
    strict: bool,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// What `verify` found.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    path: String,
    files: usize,
    tensors: usize,
    /// Tensors whose stored checksum matched.
    verified: usize,
    /// Files whose header matched its `modeltool.header_sha256`.
    headers_matched: usize,
    /// Files whose header does not match its `modeltool.header_sha256`.
    damaged_headers: Vec<DamagedHeader>,
    /// Tensors without a stored checksum.
    no_checksum: Vec<String>,
    /// Those of `no_checksum` that should have one: another tensor has one,
    /// or their file has a header checksum (a damaged checksum key).
    missing_checksums: Vec<String>,
    /// Tensors whose bytes do not match their checksum.
    damaged: Vec<Damaged>,
    /// Checksums stored for tensors the model does not hold.
    orphan_checksums: Vec<String>,
    file_sha256: Option<FileHash>,
    strict: bool,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct Damaged {
    name: String,
    expected: String,
    actual: String,
}

#[derive(Debug, Serialize)]
struct DamagedHeader {
    file: String,
    reason: String,
    expected: String,
    actual: String,
}

#[derive(Debug, Serialize)]
struct FileHash {
    expected: String,
    actual: String,
    ok: bool,
}

/// Runs the command.
pub fn run(args: VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let expected_file_hash = match &args.sha256 {
        Some(h) => {
            let h = h.to_ascii_lowercase();
            if !modeltool_format::is_sha256_hex(&h) {
                bail!("--sha256 `{h}` is not 64 hex digits");
            }
            Some(h)
        }
        None => None,
    };
    let model = super::open(&args.input)?;
    if expected_file_hash.is_some() && matches!(model.kind(), ModelKind::Sharded { .. }) {
        bail!(
            "{}: --sha256 compares one file; verify each shard file on its own",
            args.input.input.display()
        );
    }
    let total: u64 = model.entries().iter().map(|e| e.byte_len()).sum();
    let bar = super::progress_bar(total, "verifying");
    // The whole-file hash (when asked for) is one sequential stream; it runs
    // on its own thread beside the per-tensor hashes instead of after them.
    // It reads the file the model opened, not whatever the path names now.
    let (sums, file_hash) = rayon::join(
        || model.sha256_all(&|n| bar.inc(n)),
        || {
            expected_file_hash
                .as_ref()
                .and_then(|_| model.files().first())
                .map(|f| f.sha256())
        },
    );
    let sums = sums?;
    let file_hash = file_hash.transpose()?;
    bar.finish_and_clear();

    let mut report = VerifyReport {
        path: args.input.input.display().to_string(),
        files: model.files().len(),
        tensors: model.entries().len(),
        verified: 0,
        headers_matched: 0,
        damaged_headers: Vec::new(),
        no_checksum: Vec::new(),
        missing_checksums: model
            .missing_checksums()
            .iter()
            .map(|e| e.meta.name.clone())
            .collect(),
        damaged: Vec::new(),
        orphan_checksums: model.orphan_checksums().to_vec(),
        file_sha256: None,
        strict: args.strict,
        ok: false,
    };
    for file in model.files() {
        match &file.header_sha256 {
            HeaderSha256::Absent => {}
            HeaderSha256::Matches => report.headers_matched += 1,
            HeaderSha256::Damaged(damage) => report.damaged_headers.push(DamagedHeader {
                file: file.path.display().to_string(),
                reason: damage.to_string(),
                expected: damage.stored.clone(),
                actual: damage.actual.clone(),
            }),
        }
    }
    for (entry, actual) in model.entries().iter().zip(sums) {
        match &entry.stored_sha256 {
            Some(expected) if *expected == actual => report.verified += 1,
            Some(expected) => report.damaged.push(Damaged {
                name: entry.meta.name.clone(),
                expected: expected.clone(),
                actual,
            }),
            None => report.no_checksum.push(entry.meta.name.clone()),
        }
    }
    if let (Some(expected), Some(actual)) = (expected_file_hash, file_hash) {
        report.file_sha256 = Some(FileHash {
            ok: actual == expected,
            expected,
            actual,
        });
    }
    report.ok = report.damaged.is_empty()
        && report.damaged_headers.is_empty()
        && report.missing_checksums.is_empty()
        && report.orphan_checksums.is_empty()
        && report.file_sha256.as_ref().is_none_or(|f| f.ok)
        && (!args.strict || report.no_checksum.is_empty());

    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
        }
        Format::Human => print_human(&report, out)?,
    }
    if report.ok {
        Ok(())
    } else {
        for h in &report.damaged_headers {
            eprintln!("error: {}: header is damaged ({})", h.file, h.reason);
        }
        for d in &report.damaged {
            eprintln!(
                "error: {}: tensor `{}` is damaged (sha256 mismatch)",
                report.path, d.name
            );
        }
        for name in &report.missing_checksums {
            eprintln!(
                "error: {}: tensor `{name}` has {}",
                report.path,
                missing_reason(&report)
            );
        }
        Err(CheckFailed.into())
    }
}

fn print_human(r: &VerifyReport, out: &mut impl Write) -> anyhow::Result<()> {
    let files = if r.files > 1 {
        format!(" in {} files", r.files)
    } else {
        String::new()
    };
    writeln!(
        out,
        "{}: structure ok, {} tensors{files}",
        r.path, r.tensors
    )?;
    for h in &r.damaged_headers {
        let of = if r.files > 1 {
            format!(" of {}", h.file)
        } else {
            String::new()
        };
        writeln!(out, "header{of}: DAMAGED ({})", h.reason)?;
    }
    if r.headers_matched > 0 {
        let of = if r.files > 1 {
            format!(" in {} of {} files", r.headers_matched, r.files)
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
            "{} of {} tensor checksums match",
            r.verified, r.tensors
        )?;
    }
    for d in &r.damaged {
        writeln!(
            out,
            "DAMAGED {}: sha256 {} but the file says {}",
            d.name, d.actual, d.expected
        )?;
    }
    for name in &r.missing_checksums {
        writeln!(out, "MISSING checksum of {name}: {}", missing_reason(r))?;
    }
    for name in &r.orphan_checksums {
        writeln!(
            out,
            "ORPHAN checksum for `{name}`, which the model does not hold"
        )?;
    }
    if let Some(f) = &r.file_sha256 {
        if f.ok {
            writeln!(out, "file sha256 matches {}", f.expected)?;
        } else {
            writeln!(
                out,
                "FILE SHA256 MISMATCH: {} but expected {}",
                f.actual, f.expected
            )?;
        }
    }
    if r.strict && !r.no_checksum.is_empty() {
        writeln!(out, "strict: tensors without checksums count as a failure")?;
    }
    writeln!(out, "{}", if r.ok { "OK" } else { "FAILED" })?;
    Ok(())
}

/// Why a tensor without a checksum is suspect: others have one, or (none
/// has) its file carries a header checksum, and modeltool writes both.
fn missing_reason(r: &VerifyReport) -> String {
    match r.verified + r.damaged.len() {
        0 => "no checksum, while its file has a header checksum (modeltool writes both): damaged metadata?".to_owned(),
        1 => "no checksum, while 1 other tensor has one: damaged metadata?".to_owned(),
        n => format!("no checksum, while {n} other tensors have one: damaged metadata?"),
    }
}
