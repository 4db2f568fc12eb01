//! Training data read from CSV.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::NetError;

/// A table of numbers split into input columns and target columns.
///
/// Values are kept as `f64`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    source_name: String,
    input_names: Vec<String>,
    target_names: Vec<String>,
    inputs: Vec<f64>,
    targets: Vec<f64>,
    rows: usize,
}

impl Dataset {
    /// Makes a data set from values already in memory.
    ///
    /// `inputs` is row-major `[rows, input_names.len()]`, `targets` row-major
    /// `[rows, target_names.len()]`; every value must be finite and there must be at least one
    /// row, one input column and one target column.
    pub fn new(
        source_name: &str,
        input_names: Vec<String>,
        target_names: Vec<String>,
        inputs: Vec<f64>,
        targets: Vec<f64>,
    ) -> Result<Dataset, NetError> {
        let header_error = |message: String| NetError::CsvHeader {
            source_name: source_name.to_owned(),
            message,
        };
        if input_names.is_empty() || target_names.is_empty() {
            return Err(header_error(
                "a data set needs at least one input column and one target column".into(),
            ));
        }
        if inputs.len() % input_names.len() != 0 {
            return Err(header_error(format!(
                "{} input values do not fill rows of {} columns",
                inputs.len(),
                input_names.len()
            )));
        }
        let rows = inputs.len() / input_names.len();
        if targets.len() != rows * target_names.len() {
            return Err(header_error(format!(
                "{} target values do not match {rows} rows of {} target columns",
                targets.len(),
                target_names.len()
            )));
        }
        if rows == 0 {
            return Err(NetError::CsvNoRows {
                source_name: source_name.to_owned(),
            });
        }
        if inputs.iter().chain(&targets).any(|v| !v.is_finite()) {
            return Err(header_error("a value is NaN or infinite".into()));
        }
        Ok(Dataset {
            source_name: source_name.to_owned(),
            input_names,
            target_names,
            inputs,
            targets,
            rows,
        })
    }

    /// Reads a CSV file; see [`Dataset::from_csv_reader`]. Errors name the path.
    pub fn from_path(path: &Path, targets: &[String]) -> Result<Dataset, NetError> {
        let source_name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| NetError::Io {
            source_name: source_name.clone(),
            source,
        })?;
        Dataset::from_csv_reader(std::io::BufReader::new(file), &source_name, targets)
    }

    /// Reads CSV with a header row of column names, then one row of numbers per sample.
    ///
    /// The target is the last column, unless `targets` names columns: then those are the targets
    /// (in the order given) and all other columns are inputs. Fields are trimmed; every field
    /// must be a finite number. Errors name `source_name`, the line and the column.
    pub fn from_csv_reader<R: Read>(
        reader: R,
        source_name: &str,
        targets: &[String],
    ) -> Result<Dataset, NetError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(reader);
        let mut records = reader.records();
        let header = match records.next() {
            None => {
                return Err(NetError::CsvEmpty {
                    source_name: source_name.to_owned(),
                });
            }
            Some(record) => record.map_err(|e| csv_error(source_name, e))?,
        };
        let names: Vec<String> = header.iter().map(str::to_owned).collect();
        let header_error = |message: String| NetError::CsvHeader {
            source_name: source_name.to_owned(),
            message,
        };
        if names.iter().all(|n| n.parse::<f64>().is_ok()) {
            return Err(header_error(
                "the first line holds numbers, not column names; add a header row".into(),
            ));
        }
        // Column index by name: one lookup per name, so a header of many
        // thousands of columns costs linear time, not quadratic.
        let mut column_of: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            if column_of.insert(name, i).is_some() {
                return Err(header_error(format!(
                    "column `{name}` appears twice in the header"
                )));
            }
        }
        if names.len() < 2 {
            return Err(header_error(format!(
                "the header has {} column; at least one input column and one target column are needed",
                names.len()
            )));
        }

        let mut is_target = vec![false; names.len()];
        let target_columns: Vec<usize> = if targets.is_empty() {
            is_target[names.len() - 1] = true;
            vec![names.len() - 1]
        } else {
            let mut columns = Vec::with_capacity(targets.len());
            for target in targets {
                let column = *column_of.get(target.as_str()).ok_or_else(|| {
                    NetError::UnknownTargetColumn {
                        source_name: source_name.to_owned(),
                        column: target.clone(),
                        available: names.join(", "),
                    }
                })?;
                if is_target[column] {
                    return Err(header_error(format!(
                        "target column `{target}` is named twice"
                    )));
                }
                is_target[column] = true;
                columns.push(column);
            }
            columns
        };
        let input_columns: Vec<usize> = (0..names.len()).filter(|&c| !is_target[c]).collect();
        if input_columns.is_empty() {
            return Err(header_error(
                "every column is a target; at least one input column is needed".into(),
            ));
        }

        let mut inputs = Vec::new();
        let mut target_values = Vec::new();
        let mut values = vec![0f64; names.len()];
        for record in records {
            let record = record.map_err(|e| csv_error(source_name, e))?;
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() != names.len() {
                return Err(NetError::CsvRagged {
                    source_name: source_name.to_owned(),
                    line,
                    fields: record.len(),
                    header: names.len(),
                });
            }
            for (column, field) in record.iter().enumerate() {
                values[column] = field
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| NetError::CsvNotNumber {
                        source_name: source_name.to_owned(),
                        line,
                        column: names[column].clone(),
                        value: field.to_owned(),
                    })?;
            }
            inputs.extend(input_columns.iter().map(|&c| values[c]));
            target_values.extend(target_columns.iter().map(|&c| values[c]));
        }
        let pick = |columns: &[usize]| columns.iter().map(|&c| names[c].clone()).collect();
        Dataset::new(
            source_name,
            pick(&input_columns),
            pick(&target_columns),
            inputs,
            target_values,
        )
    }

    /// Where the data came from (a path or a name given by the caller).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Names of the input columns, in order.
    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    /// Names of the target columns, in order.
    pub fn target_names(&self) -> &[String] {
        &self.target_names
    }

    /// Input values, row-major `[rows, input_names().len()]`.
    pub fn inputs(&self) -> &[f64] {
        &self.inputs
    }

    /// Target values, row-major `[rows, target_names().len()]`.
    pub fn targets(&self) -> &[f64] {
        &self.targets
    }

    /// Number of input columns.
    pub fn input_width(&self) -> usize {
        self.input_names.len()
    }

    /// Number of target columns.
    pub fn target_width(&self) -> usize {
        self.target_names.len()
    }
}

fn csv_error(source_name: &str, error: csv::Error) -> NetError {
    let line = error.position().map_or(0, csv::Position::line);
    let message = match error.kind() {
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("field {} is not valid UTF-8", err.field() + 1)
        }
        _ => error.to_string(),
    };
    match error.into_kind() {
        csv::ErrorKind::Io(source) => NetError::Io {
            source_name: source_name.to_owned(),
            source,
        },
        _ => NetError::CsvSyntax {
            source_name: source_name.to_owned(),
            line,
            message,
        },
    }
}
