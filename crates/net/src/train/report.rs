//! What training did, as a report for people or programs.

use std::io::Write;
use std::path::Path;

use modeltool_format::text::{Count, cut};
use serde::Serialize;

use super::{Dataset, Trained};

/// What training did: serialised as is for `--format json`, [`TrainReport::write_human`] for
/// people.
///
/// ```
/// use std::path::Path;
/// use modeltool_net::train::{train, Dataset, TrainConfig, TrainReport};
/// let data = Dataset::from_csv_reader("x,y\n1,3\n2,5\n".as_bytes(), "d.csv", &[])?;
/// let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {})?;
/// let report = TrainReport::new(Path::new("line.json"), &data, &trained);
/// let mut text = Vec::new();
/// report.write_human(&mut text)?;
/// assert_eq!(String::from_utf8(text).unwrap(), "trained 2 parameters on 2 rows by least squares\n\
///     columns: x -> y\nfinal loss (mean squared error): 0\nwrote line.json\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TrainReport {
    /// The model file written.
    pub model: String,
    /// Rows trained on.
    pub rows: usize,
    /// Input column names.
    pub inputs: Vec<String>,
    /// Target column names.
    pub targets: Vec<String>,
    /// Number of parameters.
    pub parameters: usize,
    /// Epochs trained (0 for least squares).
    pub epochs: usize,
    /// Mean squared error of the saved network on the data.
    pub final_loss: f64,
    /// Settings given that the method does not use.
    pub warnings: Vec<String>,
}

impl TrainReport {
    /// The report of `trained`, fitted to `data` and written to `model`.
    pub fn new(model: &Path, data: &Dataset, trained: &Trained) -> TrainReport {
        TrainReport {
            model: model.display().to_string(),
            rows: data.rows(),
            inputs: data.input_names().to_vec(),
            targets: data.target_names().to_vec(),
            parameters: trained.parameter_count(),
            epochs: trained.method.epochs(),
            final_loss: trained.final_loss,
            warnings: trained.warnings.iter().map(ToString::to_string).collect(),
        }
    }

    /// Four lines within 80 columns: what was trained and how, the columns (each list cut to
    /// 33 columns), the final loss, the file written. Warnings are not among them: the caller
    /// shows those where it shows warnings.
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        let how = if self.epochs == 0 {
            "least squares".to_owned()
        } else {
            Count(self.epochs as u64, "epoch").to_string()
        };
        writeln!(
            out,
            "trained {} on {} by {how}",
            Count(self.parameters as u64, "parameter"),
            Count(self.rows as u64, "row"),
        )?;
        writeln!(
            out,
            "columns: {} -> {}",
            cut(&self.inputs.join(","), 33),
            cut(&self.targets.join(","), 33)
        )?;
        writeln!(
            out,
            "final loss (mean squared error): {}",
            significant(self.final_loss)
        )?;
        writeln!(out, "wrote {}", self.model)
    }
}

/// `x` to six significant digits, trailing zeros dropped: a loss of
/// `0.000000000014551915228366852` reads `1.45519e-11`, `7.681800000000011`
/// reads `7.6818`. `--format json` keeps every digit.
pub(crate) fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let exponent = x.abs().log10().floor() as i32;
    if !(-4..15).contains(&exponent) {
        let text = format!("{x:.5e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = mantissa.trim_end_matches('0').trim_end_matches('.');
        return format!("{mantissa}e{exp}");
    }
    let decimals = (5 - exponent).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::significant;

    #[test]
    fn losses_print_with_six_significant_digits() {
        assert_eq!(significant(0.0), "0");
        assert_eq!(significant(7.681800000000011), "7.6818");
        assert_eq!(significant(7.681801635485704), "7.6818");
        assert_eq!(significant(0.0009687428738109573), "0.000968743");
        assert_eq!(significant(0.000000000014551915228366852), "1.45519e-11");
        assert_eq!(significant(123456.789), "123457");
        assert_eq!(significant(2.5), "2.5");
    }
}
