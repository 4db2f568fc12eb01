//! `modeltool diff A B [--tolerance ABS[,REL]]`: renders the library's
//! [`DiffReport`]. Exit 0 when the models are the same (within the
//! tolerance), 1 when they differ, 2 on bad input, as diff(1) does.

use std::io::Write;
use std::path::PathBuf;

use modeltool_format::text::{Count, middle, thousands};
use modeltool_loader::Model;
use modeltool_stats::{DiffOptions, DiffReport, Tolerance, short};

use crate::exit::CheckFailed;
use crate::{Format, PickleArgs};

/// Arguments of `modeltool diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The first model (any format `inspect` reads).
    a: PathBuf,
    /// The second model.
    b: PathBuf,
    /// Count values as equal when |a - b| <= ABS + REL * |b| (numpy's
    /// `isclose`; REL defaults to 0). NaN equals NaN at the same place.
    #[arg(long, value_name = "ABS[,REL]", value_parser = clap::value_parser!(Tolerance))]
    tolerance: Option<Tolerance>,
    /// Only tensors whose name matches GLOB (`*`, `?`); may be repeated.
    #[arg(long, value_name = "GLOB")]
    tensors: Vec<String>,
    /// Compare the values of every tensor, also those whose stored
    /// checksums are equal in both files (which are otherwise equal without
    /// being read).
    #[arg(long)]
    read_all: bool,
    /// How a PyTorch checkpoint's pickle is read (both models).
    #[command(flatten)]
    pickle: PickleArgs,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: DiffArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // Plain reads in bounded pieces, as for `stats`.
    let open = |p: &PathBuf| Model::open(p, args.pickle.open_options(false));
    let (a, b) = (open(&args.a)?, open(&args.b)?);
    let mut report = DiffReport::from_models(
        &a,
        &b,
        &DiffOptions {
            tolerance: args.tolerance.unwrap_or_default(),
            tensors: args.tensors,
            read_all: args.read_all,
        },
    )?;
    report.a = args.a.display().to_string();
    report.b = args.b.display().to_string();
    match args.format {
        Format::Json => {
            super::print_json(out, &report)?;
        }
        Format::Human => print_human(&report, out)?,
    }
    if report.same {
        Ok(())
    } else {
        out.flush()?;
        Err(CheckFailed.into())
    }
}

/// A shape in at most 24 columns, whatever the file declares.
fn shape(s: &[u64]) -> String {
    modeltool_format::text::shape(s, 24)
}

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), short)
}

/// Prints the report for people.
pub fn print_human(r: &DiffReport, out: &mut impl Write) -> std::io::Result<()> {
    // A name takes what the screen leaves beside the rest of its line.
    let cols = modeltool_inspect::screen_columns();
    let name =
        |name: &str, rest: usize| middle(name, cols.saturating_sub(rest).max(16)).into_owned();
    for n in &r.only_a {
        writeln!(out, "only in A   {}", name(n, 12))?;
    }
    for n in &r.only_b {
        writeln!(out, "only in B   {}", name(n, 12))?;
    }
    for s in &r.shape_changed {
        let what = format!(
            "{} {} vs {} {}",
            s.dtype_a,
            shape(&s.shape_a),
            s.dtype_b,
            shape(&s.shape_b)
        );
        writeln!(
            out,
            "shape       {}: {what}",
            name(&s.name, 14 + what.len())
        )?;
    }
    for c in &r.changed {
        let dtypes = if c.dtype_a == c.dtype_b {
            c.dtype_a.to_string()
        } else {
            format!("{} vs {}", c.dtype_a, c.dtype_b)
        };
        let what = format!("{dtypes} {}", shape(&c.shape));
        writeln!(out, "changed     {} {what}", name(&c.name, 13 + what.len()))?;
        let mut line = format!(
            "    {} of {} {}",
            thousands(c.differing),
            Count(c.values, "value"),
            if c.differing == 1 {
                "differs"
            } else {
                "differ"
            }
        );
        if c.nan_mismatch > 0 {
            line.push_str(&format!(" ({} NaN against a number)", c.nan_mismatch));
        }
        if c.inf_mismatch > 0 {
            let what = if c.inf_mismatch == 1 {
                "infinity"
            } else {
                "infinities"
            };
            line.push_str(&format!(" ({} {what})", thousands(c.inf_mismatch)));
        }
        writeln!(out, "{line}")?;
        if let (Some(d), Some(pos), Some((x, y))) =
            (c.max_abs_diff, &c.max_abs_position, c.max_abs_values)
        {
            writeln!(
                out,
                "    max |A-B| {} at {} (flat {}: {} vs {})",
                short(d),
                shape(pos),
                c.max_abs_index.unwrap_or(0),
                short(x),
                short(y)
            )?;
            writeln!(
                out,
                "    mean |A-B| {}, rel L2 {}, cosine {}",
                opt(c.mean_abs_diff),
                opt(c.rel_l2),
                // Close to 1 is where the interest is: 8 decimals.
                c.cosine.map_or("-".into(), |v| format!("{v:.8}"))
            )?;
        }
    }
    for e in &r.equal {
        if let Some((a, b)) = e.dtypes {
            let what = format!("{a} vs {b}, values equal");
            writeln!(
                out,
                "dtype       {}: {what}",
                name(&e.name, 14 + what.len())
            )?;
        }
    }
    let by_sum = r.equal.iter().filter(|e| e.by == "checksum").count();
    writeln!(
        out,
        "{}: {} equal, {} changed, {} only in A, {} only in B, {} reshaped\n{} read",
        if r.same { "same" } else { "different" },
        r.equal.len(),
        r.changed.len(),
        r.only_a.len(),
        r.only_b.len(),
        r.shape_changed.len(),
        Count(r.bytes_read, "byte")
    )?;
    if by_sum > 0 {
        writeln!(
            out,
            "note: {} equal by their stored checksums {} not read;\n      \
             `modeltool verify` checks their bytes, `--read-all` compares them",
            Count(by_sum as u64, "tensor"),
            if by_sum == 1 { "was" } else { "were" }
        )?;
    }
    let tol = r.tolerance;
    if tol != Tolerance::default() {
        writeln!(
            out,
            "tolerance: |A-B| <= {} + {} * |B|",
            short(tol.abs),
            short(tol.rel)
        )?;
    }
    Ok(())
}
