//! Training data read from CSV.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use modeltool_format::text::Escaped;

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
        read_csv(reader, source_name, |header, header_error| {
            let names = match header {
                Header::Names(names) => names,
                Header::Unnamed(_) => {
                    return Err(header_error(
                        "the first line holds numbers, not column names; add a header row".into(),
                    ));
                }
            };
            let column_of = index_columns(names, header_error)?;
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
                            "target column `{}` is named twice",
                            Escaped(target)
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
            Ok((input_columns, target_columns))
        })
    }

    /// Reads CSV samples for a network of `width` inputs: the columns `run --input` reads.
    ///
    /// When `inputs` names the columns the model was trained on, a header row must hold them
    /// and they are read by name, in that order; the `targets` columns are read too when the
    /// header holds all of them (to compare predictions with them), and other columns are
    /// ignored. Otherwise, or when the file has no header row (its first line is numbers),
    /// every row must hold exactly `width` values, all inputs, and there are no targets
    /// ([`Dataset::target_width`] is 0).
    ///
    /// ```
    /// use modeltool_net::Dataset;
    /// let csv = "id,height_cm,weight_kg\n7,170,60\n8,160,50\n";
    /// let names = |s: &str| vec![s.to_owned()];
    /// let data = Dataset::for_network(csv.as_bytes(), "d.csv", 1, &names("height_cm"), &names("weight_kg"))?;
    /// assert_eq!((data.inputs(), data.targets()), (&[170.0, 160.0][..], &[60.0, 50.0][..]));
    /// let plain = Dataset::for_network("175\n-3\n".as_bytes(), "d.csv", 1, &[], &[])?;
    /// assert_eq!((plain.inputs(), plain.target_width()), (&[175.0, -3.0][..], 0));
    /// # Ok::<(), modeltool_net::NetError>(())
    /// ```
    pub fn for_network<R: Read>(
        reader: R,
        source_name: &str,
        width: usize,
        inputs: &[String],
        targets: &[String],
    ) -> Result<Dataset, NetError> {
        let by_position = |fields: usize| {
            if fields == width {
                Ok(((0..width).collect(), Vec::new()))
            } else {
                Err(NetError::CsvWidth {
                    source_name: source_name.to_owned(),
                    found: fields,
                    width,
                })
            }
        };
        read_csv(reader, source_name, |header, header_error| {
            let names = match header {
                Header::Unnamed(fields) => return by_position(fields),
                Header::Names(names) if inputs.is_empty() => return by_position(names.len()),
                Header::Names(names) => names,
            };
            let column_of = index_columns(names, header_error)?;
            let input_columns = inputs
                .iter()
                .map(|name| {
                    column_of.get(name.as_str()).copied().ok_or_else(|| {
                        NetError::MissingInputColumn {
                            source_name: source_name.to_owned(),
                            column: name.clone(),
                            available: names.join(", "),
                            wanted: inputs.join(", "),
                        }
                    })
                })
                .collect::<Result<Vec<usize>, NetError>>()?;
            let target_columns: Option<Vec<usize>> = targets
                .iter()
                .map(|name| column_of.get(name.as_str()).copied())
                .collect();
            Ok((input_columns, target_columns.unwrap_or_default()))
        })
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

    /// Number of target columns (0 for samples read without their targets, see
    /// [`Dataset::for_network`]).
    pub fn target_width(&self) -> usize {
        self.target_names.len()
    }
}

/// How far predictions are from their targets, in the targets' units.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct PredictionError {
    /// Mean squared error over every row and target column.
    pub mse: f64,
    /// Mean absolute error over every row and target column.
    pub mae: f64,
}

impl Dataset {
    /// The error of `predicted` (row-major `[rows, target_width]`, e.g. a network's output on
    /// [`Dataset::inputs`]) against the targets; `None` when there are no targets or the
    /// lengths differ.
    ///
    /// ```
    /// use modeltool_net::Dataset;
    /// let data = Dataset::new("d", vec!["x".into()], vec!["y".into()], vec![1.0, 2.0], vec![3.0, 5.0])?;
    /// let e = data.prediction_error(&[4.0, 5.0]).expect("targets");
    /// assert_eq!((e.mse, e.mae), (0.5, 0.5));
    /// # Ok::<(), modeltool_net::NetError>(())
    /// ```
    pub fn prediction_error(&self, predicted: &[f32]) -> Option<PredictionError> {
        if self.targets.is_empty() || predicted.len() != self.targets.len() {
            return None;
        }
        let (mut squared, mut absolute) = (0f64, 0f64);
        for (&p, &t) in predicted.iter().zip(&self.targets) {
            let d = f64::from(p) - t;
            squared += d * d;
            absolute += d.abs();
        }
        let n = self.targets.len() as f64;
        Some(PredictionError {
            mse: squared / n,
            mae: absolute / n,
        })
    }
}

/// Writes rows of `width` values as CSV: a header row of `names` (quoted where CSV needs it),
/// then one line per row, each value in the shortest form that reads back to the same f32.
///
/// ```
/// let mut out = Vec::new();
/// modeltool_net::write_csv(&mut out, &["y".to_owned(), "a,b".to_owned()], &[1.5, -2.0, 0.1, 3.0], 2)?;
/// assert_eq!(String::from_utf8(out).unwrap(), "y,\"a,b\"\n1.5,-2\n0.1,3\n");
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn write_csv(
    out: &mut impl std::io::Write,
    names: &[String],
    values: &[f32],
    width: usize,
) -> std::io::Result<()> {
    {
        let mut header = csv::Writer::from_writer(&mut *out);
        header.write_record(names).map_err(std::io::Error::other)?;
        header.flush()?;
    }
    write_rows(out, values.chunks(width.max(1)))
}

/// One line per row, values comma-separated, each in the shortest form that
/// reads back to the same f32 (the rows of [`write_csv`] and of `run`'s output).
pub(crate) fn write_rows<'v>(
    out: &mut impl std::io::Write,
    rows: impl IntoIterator<Item = &'v [f32]>,
) -> std::io::Result<()> {
    let mut line = String::new();
    for row in rows {
        line.clear();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&v.to_string());
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// The first line of a CSV file: column names, or (when it holds only numbers) a first row
/// of data with this many fields.
enum Header<'h> {
    Names(&'h [String]),
    Unnamed(usize),
}

/// Input and target column indices.
type Picked = (Vec<usize>, Vec<usize>);

/// Column index by name: one lookup per name, so a header of many thousands of columns costs
/// linear time, not quadratic. A name that appears twice is an error.
fn index_columns<'n>(
    names: &'n [String],
    header_error: &dyn Fn(String) -> NetError,
) -> Result<HashMap<&'n str, usize>, NetError> {
    let mut column_of: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if column_of.insert(name, i).is_some() {
            return Err(header_error(format!(
                "column `{}` appears twice in the header",
                Escaped(name)
            )));
        }
    }
    Ok(column_of)
}

/// Reads a CSV file: its first line, then (after `pick` chose the input and target columns
/// from it) every row, parsing the chosen fields. A first line of numbers is a first row of
/// data, its columns unnamed (`pick` says whether that is allowed).
fn read_csv<R: Read>(
    reader: R,
    source_name: &str,
    pick: impl FnOnce(Header<'_>, &dyn Fn(String) -> NetError) -> Result<Picked, NetError>,
) -> Result<Dataset, NetError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut records = reader.records();
    let first = match records.next() {
        None => {
            return Err(NetError::CsvEmpty {
                source_name: source_name.to_owned(),
            });
        }
        Some(record) => record.map_err(|e| csv_error(source_name, e))?,
    };
    let header_error = |message: String| NetError::CsvHeader {
        source_name: source_name.to_owned(),
        message,
    };
    let unnamed = first.iter().all(|n| n.parse::<f64>().is_ok());
    let (names, pending): (Vec<String>, Option<csv::StringRecord>) = if unnamed {
        let names = (1..=first.len()).map(|i| format!("column {i}")).collect();
        (names, Some(first))
    } else {
        (first.iter().map(str::to_owned).collect(), None)
    };
    let header = if unnamed {
        Header::Unnamed(names.len())
    } else {
        Header::Names(&names)
    };
    let (input_columns, target_columns) = pick(header, &header_error)?;

    let mut inputs = Vec::new();
    let mut targets = Vec::new();
    let rows = pending.into_iter().map(Ok).chain(records);
    let mut count = 0usize;
    for record in rows {
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
        let value = |column: usize| {
            let field = &record[column];
            field
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| NetError::CsvNotNumber {
                    source_name: source_name.to_owned(),
                    line,
                    column: names[column].clone(),
                    value: field.to_owned(),
                })
        };
        for &c in &input_columns {
            inputs.push(value(c)?);
        }
        for &c in &target_columns {
            targets.push(value(c)?);
        }
        count += 1;
    }
    if count == 0 {
        return Err(NetError::CsvNoRows {
            source_name: source_name.to_owned(),
        });
    }
    let pick_names = |columns: &[usize]| columns.iter().map(|&c| names[c].clone()).collect();
    Ok(Dataset {
        source_name: source_name.to_owned(),
        input_names: pick_names(&input_columns),
        target_names: pick_names(&target_columns),
        inputs,
        targets,
        rows: count,
    })
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
