//! `modeltool stats MODEL [--tensors GLOB]`: renders the library's
//! [`StatsReport`] for people (one line per tensor, with a sparkline of its
//! histogram, within 80 columns) or as JSON (every figure, exact).

use std::io::Write;
use std::path::PathBuf;

use modeltool_format::text::{Count, middle, thousands};
use modeltool_loader::Model;
use modeltool_stats::{Number, StatsOptions, StatsReport, TensorStats};

use crate::{Format, PickleArgs};

/// Arguments of `modeltool stats`.
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// A .safetensors file, a .json model file, a model.safetensors.index.json,
    /// or a folder holding a sharded checkpoint.
    input: PathBuf,
    /// Only tensors whose name matches GLOB (`*` any run of characters,
    /// `?` one character); may be given more than once.
    #[arg(long, value_name = "GLOB")]
    tensors: Vec<String>,
    /// How a PyTorch checkpoint's pickle is read.
    #[command(flatten)]
    pickle: PickleArgs,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// Runs the command.
pub fn run(args: StatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    // Plain reads in bounded pieces: a memory map would count every page
    // read in the process's resident memory.
    let model = Model::open(&args.input, args.pickle.open_options(false))?;
    let mut report = StatsReport::from_model(
        &model,
        &StatsOptions {
            tensors: args.tensors,
            no_histogram: false,
        },
    )?;
    report.path = args.input.display().to_string();
    match args.format {
        Format::Json => {
            super::print_json(out, &report)?;
        }
        Format::Human => print_human(&report, out)?,
    }
    Ok(())
}

/// A number in at most 9 columns, 4 significant digits.
fn num(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.decimals$}")
    } else {
        format!("{v:.2e}")
    }
}

fn number(n: Option<Number>) -> String {
    match n {
        None => "-".into(),
        Some(Number::Int(i)) if i.abs() < 100_000_000 => i.to_string(),
        Some(Number::Int(i)) => num(i as f64),
        Some(Number::Float(f)) => num(f),
    }
}

/// Dtype names in 8 columns (`F8_E4M3FNUZ` as `E4M3FNUZ`).
fn dtype(t: &TensorStats) -> &str {
    let name = t.dtype.name();
    name.strip_prefix("F8_").unwrap_or(name)
}

const NAME: usize = 18;
const SPARK: usize = 11;

/// Prints the report for people: a line per tensor within 80 columns, a
/// second line when it holds zeros, NaN, infinities or subnormals, and a
/// summary per dtype. Also what `inspect --stats` prints below its report.
pub fn print_human(report: &StatsReport, out: &mut impl Write) -> std::io::Result<()> {
    // Names get the columns a wider screen adds.
    let name_w = NAME + (modeltool_inspect::screen_columns() - 80);
    writeln!(
        out,
        "{:<name_w$} {:<8} {:>9} {:>9} {:>9} {:>9} {:<SPARK$}",
        "tensor", "dtype", "min", "max", "mean", "std", "histogram"
    )?;
    for t in &report.tensors {
        let spark = match (&t.histogram, t.min, t.max) {
            (Some(h), Some(lo), Some(hi)) => {
                let f = |n: Number| match n {
                    Number::Int(i) => i as f64,
                    Number::Float(f) => f,
                };
                h.sparkline(f(lo), f(hi), SPARK)
            }
            _ => String::new(),
        };
        let name = middle(&t.name, name_w);
        let pad = name_w.saturating_sub(modeltool_format::text::width(&name));
        writeln!(
            out,
            "{name}{:pad$} {:<8} {:>9} {:>9} {:>9} {:>9} {spark}",
            "",
            dtype(t),
            number(t.min),
            number(t.max),
            t.mean.map_or("-".into(), num),
            t.std.map_or("-".into(), num),
        )?;
        let mut notes = Vec::new();
        for (label, n) in [
            ("zeros", Some(t.zeros)),
            ("NaN", t.nan),
            ("+inf", t.pos_inf),
            ("-inf", t.neg_inf),
            ("subnormal", t.subnormal),
        ] {
            if let Some(n) = n.filter(|&n| n > 0) {
                notes.push(format!("{label} {}", thousands(n)));
            }
        }
        if !notes.is_empty() {
            writeln!(out, "    {} of {}", notes.join(", "), thousands(t.values))?;
        }
    }
    writeln!(out)?;
    for d in &report.dtypes {
        writeln!(
            out,
            "{}: {}, {}",
            d.dtype,
            Count(d.tensors as u64, "tensor"),
            Count(d.values, "value")
        )?;
        writeln!(
            out,
            "    min {}, max {}, mean {}, std {}",
            number(d.min),
            number(d.max),
            d.mean.map_or("-".into(), num),
            d.std.map_or("-".into(), num),
        )?;
        let counts: Vec<String> = [
            ("zeros", Some(d.zeros)),
            ("NaN", d.nan),
            ("inf", d.inf),
            ("subnormal", d.subnormal),
        ]
        .iter()
        .filter_map(|(label, n)| n.map(|n| format!("{label} {}", thousands(n))))
        .collect();
        writeln!(out, "    {}", counts.join(", "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::num;

    #[test]
    fn numbers_fit_nine_columns() {
        for v in [
            -0.001234, 99999.9, -12345.67, 1e-300, -1.5e300, 0.5, 3.0, -7e-4,
        ] {
            assert!(num(v).len() <= 9, "{v} -> {}", num(v));
        }
        assert_eq!(num(0.5), "0.5000");
        assert_eq!(num(-1.5e-5), "-1.50e-5");
    }
}
