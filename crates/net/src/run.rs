//! Running a model on a batch of samples: where the samples come from ([`Batch`]), what the
//! outputs are called ([`Runner`]), what a run gives ([`Predictions`]) and where it is written
//! ([`PredictionFile`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use modeltool_format::text::{Count, cut};
use modeltool_format::{Dtype, ModelMetadata, TensorMeta};
use modeltool_loader::save::stage_model;
use modeltool_loader::write::{OutputId, Outputs};
use modeltool_loader::{LoadError, Model, OpenOptions};
use serde::Serialize;

use crate::train::Provenance;
use crate::{Activation, Dataset, NetError, Network, PredictionError, write_csv};

/// Samples to run through a network: `rows` rows of `width` values, row-major, in `f32`, every
/// value finite. Read from a CSV file (with the targets beside them when the file holds them),
/// from the tensor `input` of a `.safetensors` file, or from text such as `-1,0.5,2`.
///
/// ```
/// use modeltool_net::Batch;
/// let batch = Batch::from_samples(&["1,2", "-3, 4.5"], 2)?;
/// assert_eq!((batch.rows(), batch.values()), (2, &[1.0, 2.0, -3.0, 4.5][..]));
/// assert!(Batch::from_samples(&["1,2,3"], 2).is_err());
/// # Ok::<(), modeltool_net::NetError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    values: Vec<f32>,
    rows: usize,
    width: usize,
    data: Option<Dataset>,
}

impl Batch {
    /// Samples given as text, one per string: a number each, or comma-separated numbers for
    /// wider inputs (fields trimmed; negative values anywhere). Each must hold exactly `width`
    /// finite numbers; errors name the sample (1-based) and the field.
    pub fn from_samples<S: AsRef<str>>(samples: &[S], width: usize) -> Result<Batch, NetError> {
        if samples.is_empty() {
            return Err(NetError::NoSamples {
                source_name: "samples".into(),
            });
        }
        let mut values = Vec::with_capacity(samples.len() * width);
        for (i, s) in samples.iter().enumerate() {
            let text = s.as_ref();
            let before = values.len();
            for field in text.split(',') {
                let field = field.trim();
                match field.parse::<f32>() {
                    Ok(v) if v.is_finite() => values.push(v),
                    parsed => {
                        return Err(NetError::SampleNotNumber {
                            sample: i + 1,
                            text: text.to_owned(),
                            field: field.to_owned(),
                            infinite: parsed.is_ok(),
                        });
                    }
                }
            }
            let found = values.len() - before;
            if found != width {
                return Err(NetError::SampleWidth {
                    sample: i + 1,
                    text: text.to_owned(),
                    found,
                    width,
                });
            }
        }
        Ok(Batch {
            values,
            rows: samples.len(),
            width,
            data: None,
        })
    }

    /// Samples read from CSV for a network of `width` inputs, as [`Dataset::for_network`]
    /// reads them: by the input column names the model records (`inputs`), with the
    /// `targets` columns beside them when the header holds them all; or, without names, rows
    /// of exactly `width` values. A value beyond the range of `f32` is refused, naming its row.
    pub fn from_csv<R: Read>(
        reader: R,
        source_name: &str,
        width: usize,
        inputs: &[String],
        targets: &[String],
    ) -> Result<Batch, NetError> {
        let data = Dataset::for_network(reader, source_name, width, inputs, targets)?;
        // Values were read as f64; the network runs in f32.
        let values: Vec<f32> = data.inputs().iter().map(|&v| v as f32).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(NetError::InputTooLarge {
                source_name: source_name.to_owned(),
                row: i / width.max(1) + 1,
                value: data.inputs()[i],
            });
        }
        Ok(Batch {
            values,
            rows: data.rows(),
            width,
            data: Some(data),
        })
    }

    /// [`Batch::from_csv`] on a file; errors name its path.
    pub fn from_csv_path(
        path: &Path,
        width: usize,
        inputs: &[String],
        targets: &[String],
    ) -> Result<Batch, NetError> {
        let source_name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| NetError::Io {
            source_name: source_name.clone(),
            source,
        })?;
        Batch::from_csv(
            std::io::BufReader::new(file),
            &source_name,
            width,
            inputs,
            targets,
        )
    }

    /// The tensor `input` of a model file (safetensors, as `run --input x.safetensors` reads
    /// it, or any file [`Model::open`] reads), of shape `[batch, width]`, every value finite
    /// and at least one row. The loader's errors come back as [`NetError::Load`].
    pub fn from_model_file(
        path: &Path,
        width: usize,
        options: OpenOptions,
    ) -> Result<Batch, NetError> {
        let shown = path.display();
        let model = Model::open(path, options)?;
        let entry = model.entry("input")?;
        let shape = &entry.meta.shape;
        if shape.len() != 2 || shape[1] != width {
            return Err(NetError::InputShape {
                source_name: shown.to_string(),
                shape: shape.clone(),
                width,
            });
        }
        let values = model.tensor_f32("input")?.into_owned();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(NetError::InputNotFinite {
                source_name: shown.to_string(),
                index: i,
                value: values[i],
            });
        }
        if shape[0] == 0 {
            return Err(NetError::NoSamples {
                source_name: shown.to_string(),
            });
        }
        Ok(Batch {
            values,
            rows: shape[0],
            width,
            data: None,
        })
    }

    /// A file of samples by its name: the tensor `input` of a `.safetensors` file
    /// ([`Batch::from_model_file`]), else CSV ([`Batch::from_csv_path`]).
    pub fn from_path(
        path: &Path,
        width: usize,
        inputs: &[String],
        targets: &[String],
        options: OpenOptions,
    ) -> Result<Batch, NetError> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            Batch::from_model_file(path, width, options)
        } else {
            Batch::from_csv_path(path, width, inputs, targets)
        }
    }

    /// Number of samples.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per sample.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The values, row-major `[rows, width]`.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The CSV the samples were read from, with their column names and, when the file held
    /// them, their targets; `None` for samples from text or a tensor.
    pub fn dataset(&self) -> Option<&Dataset> {
        self.data.as_ref()
    }
}

/// A network ready to run, with the names of its input and output columns.
///
/// The names come from the `training.*` record the model keeps ([`Provenance::columns`]),
/// when they fit this network: input names only when there is one per input, output names
/// when there is one per output, else `output` (one output) or `output0`, `output1`, ...
///
/// ```
/// use std::path::Path;
/// use modeltool_net::Runner;
/// use modeltool_net::train::{train, Dataset, Provenance, TrainConfig};
///
/// let data = Dataset::from_csv_reader("cm,kg\n170,60\n160,50\n".as_bytes(), "hw.csv", &[])?;
/// let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {})?;
/// let record = Provenance::new("hw.csv", "", &data, &trained).to_metadata();
/// let runner = Runner::with_network(trained.network()?, Path::new("hw.json"), &record);
/// assert_eq!((runner.input_names(), runner.output_names()), (&["cm".to_owned()][..], &["kg".to_owned()][..]));
///
/// // Columns by name, in any order; the targets come along when they are there.
/// let batch = runner.read_csv("id,kg,cm\n1,61,170\n2,48,160\n".as_bytes(), "in.csv")?;
/// let run = runner.run(&batch)?;
/// assert_eq!(run.predictions, [[60.0], [50.0]]);
/// assert_eq!(run.error.map(|e| e.mae), Some(1.5));
/// let mut text = Vec::new();
/// run.write_human(&mut text)?;
/// assert!(String::from_utf8(text).unwrap().ends_with("2 rows: mean squared error 2.5, mean absolute error 1.5\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Runner<'m> {
    net: Network<'m>,
    model: PathBuf,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl<'m> Runner<'m> {
    /// The network `model` stores ([`Network::from_model`]), named by its metadata.
    pub fn new(model: &'m Model, activation: Option<Activation>) -> Result<Runner<'m>, NetError> {
        let net = Network::from_model(model, activation)?;
        Ok(Runner::with_network(
            net,
            model.path(),
            &model.metadata().user,
        ))
    }

    /// A network built otherwise, named by the `training.*` `metadata` of the model at `model`
    /// (which errors and reports name).
    pub fn with_network(
        net: Network<'m>,
        model: &Path,
        metadata: &BTreeMap<String, String>,
    ) -> Runner<'m> {
        let (inputs, targets) = Provenance::columns(metadata);
        // Names recorded for another shape of network are not these columns.
        let inputs = if inputs.len() == net.input_width() {
            inputs
        } else {
            Vec::new()
        };
        let outputs = if targets.len() == net.output_width() {
            targets
        } else if net.output_width() == 1 {
            vec!["output".to_owned()]
        } else {
            (0..net.output_width())
                .map(|i| format!("output{i}"))
                .collect()
        };
        Runner {
            net,
            model: model.to_owned(),
            inputs,
            outputs,
        }
    }

    /// The network.
    pub fn network(&self) -> &Network<'m> {
        &self.net
    }

    /// The input column names the model records, one per input; empty when it records none.
    pub fn input_names(&self) -> &[String] {
        &self.inputs
    }

    /// One name per output: the model's recorded targets, or `output`, `output0`, ...
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// Samples given as text ([`Batch::from_samples`]).
    pub fn parse_samples<S: AsRef<str>>(&self, samples: &[S]) -> Result<Batch, NetError> {
        Batch::from_samples(samples, self.net.input_width())
    }

    /// Samples from CSV ([`Batch::from_csv`]), the columns picked by this model's names.
    pub fn read_csv<R: Read>(&self, reader: R, source_name: &str) -> Result<Batch, NetError> {
        Batch::from_csv(
            reader,
            source_name,
            self.net.input_width(),
            &self.inputs,
            &self.outputs,
        )
    }

    /// Samples from a `.safetensors` or CSV file ([`Batch::from_path`]).
    pub fn read_batch(&self, path: &Path, options: OpenOptions) -> Result<Batch, NetError> {
        Batch::from_path(
            path,
            self.net.input_width(),
            &self.inputs,
            &self.outputs,
            options,
        )
    }

    /// Runs the network on `batch`; with the targets the batch holds, the error against
    /// them. Errors start with the model's path.
    pub fn run(&self, batch: &Batch) -> Result<Predictions, NetError> {
        let predicted = self
            .net
            .forward(&batch.values, batch.rows)
            .map_err(|e| e.in_model(&self.model))?;
        let data = batch.dataset();
        let error = data.and_then(|d| d.prediction_error(&predicted));
        let targets = data.filter(|_| error.is_some()).map(|d| {
            d.targets()
                .chunks(d.target_width().max(1))
                .map(<[f64]>::to_vec)
                .collect()
        });
        Ok(Predictions {
            model: self.model.display().to_string(),
            inputs: data.map(|d| d.input_names().to_vec()).unwrap_or_default(),
            outputs: self.outputs.clone(),
            rows: batch.rows,
            predictions: predicted
                .chunks(self.net.output_width().max(1))
                .map(<[f32]>::to_vec)
                .collect(),
            targets,
            error,
        })
    }
}

/// What a run gives: the outputs, and beside them the targets and the error when the input
/// held them. Serialised as is for `--format json`; [`Predictions::write_human`] renders it
/// as text.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Predictions {
    /// The model's path.
    pub model: String,
    /// Names of the input columns read (empty for samples from text or a tensor).
    pub inputs: Vec<String>,
    /// Names of the outputs: the model's recorded targets, or `output`, `output0`, ...
    pub outputs: Vec<String>,
    /// Number of samples.
    pub rows: usize,
    /// One list of outputs per sample.
    pub predictions: Vec<Vec<f32>>,
    /// The targets of each sample, when the input file held them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Vec<f64>>>,
    /// Mean squared and mean absolute error against the targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<PredictionError>,
}

impl Predictions {
    /// Text for people: one line per sample (its values comma-separated); with targets, a
    /// table of each prediction beside its target (names cut to 30 columns), then the
    /// summary ([`Predictions::write_summary`]).
    pub fn write_human(&self, out: &mut impl Write) -> std::io::Result<()> {
        match &self.targets {
            Some(targets) if self.error.is_some() => {
                let mut header = Vec::new();
                for name in &self.outputs {
                    let name = cut(name, 30);
                    header.push(format!("predicted {name}"));
                    header.push(name.into_owned());
                }
                let mut lines = vec![header];
                for (p, t) in self.predictions.iter().zip(targets) {
                    let mut line = Vec::new();
                    for (p, t) in p.iter().zip(t) {
                        line.push(p.to_string());
                        line.push(t.to_string());
                    }
                    lines.push(line);
                }
                write_table(out, &lines)?;
                self.write_summary(out)
            }
            _ => crate::data::write_rows(out, self.predictions.iter().map(Vec::as_slice)),
        }
    }

    /// The error line alone, when there were targets (`2 rows: mean squared error 0.5, mean
    /// absolute error 0.5`); nothing otherwise. What is shown when the predictions went to a
    /// file.
    pub fn write_summary(&self, out: &mut impl Write) -> std::io::Result<()> {
        match (&self.targets, &self.error) {
            (Some(_), Some(error)) => writeln!(
                out,
                "{}: mean squared error {}, mean absolute error {}",
                Count(self.rows as u64, "row"),
                crate::train::significant(error.mse),
                crate::train::significant(error.mae)
            ),
            _ => Ok(()),
        }
    }

    /// The predictions as CSV: a header row of the output names, then one line per sample
    /// (see [`write_csv`]).
    pub fn write_csv(&self, out: &mut impl Write) -> std::io::Result<()> {
        let values: Vec<f32> = self.predictions.concat();
        write_csv(out, &self.outputs, &values, self.outputs.len())
    }

    /// The predictions as the one tensor of a model file: `output`, F32, `[rows, outputs]`.
    pub fn to_tensor(&self) -> (TensorMeta, Vec<u8>) {
        let meta = TensorMeta {
            name: "output".into(),
            dtype: Dtype::F32,
            shape: vec![self.rows, self.outputs.len()],
        };
        let bytes = self
            .predictions
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        (meta, bytes)
    }
}

/// Columns left-aligned, two spaces apart.
fn write_table(out: &mut impl Write, lines: &[Vec<String>]) -> std::io::Result<()> {
    use modeltool_format::text::width;
    let columns = lines.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| lines.iter().map(|l| width(&l[c])).max().unwrap_or(0))
        .collect();
    for line in lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if c + 1 < line.len() {
                let pad = widths[c] - width(cell) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{text}")?;
    }
    Ok(())
}

/// The file predictions go to, declared before the run: a `.safetensors` file (tensor
/// `output`, [`Predictions::to_tensor`]) or CSV with a header row (any other name).
///
/// Declared through the loader's [`Outputs`]: compared by file identity with every file of
/// the model and with the input file, so no spelling of an input is ever written over; an
/// existing regular file is replaced only with `force`, anything else never; written to a
/// temporary file and put in place in one step.
///
/// ```
/// use modeltool_loader::{Model, OpenOptions};
/// use modeltool_net::{PredictionFile, Runner};
///
/// let dir = tempfile::tempdir()?;
/// let model_path = dir.path().join("line.json");
/// std::fs::write(&model_path, r#"{"format": "modeltool.json/1",
///   "architecture": {"layers": [{"type": "linear", "weight": "0.weight"}]},
///   "tensors": {"0.weight": {"dtype": "F32", "shape": [1, 1], "data": [2.0]}}}"#)?;
/// let model = Model::open(&model_path, OpenOptions::default())?;
/// // Writing over the model is refused before anything runs, --force or not.
/// assert!(PredictionFile::declare(&model_path, true, &model, None).is_err());
///
/// let out = dir.path().join("out.csv");
/// let file = PredictionFile::declare(&out, false, &model, None)?;
/// let runner = Runner::new(&model, None)?;
/// file.write(&runner.run(&runner.parse_samples(&["3", "-1"])?)?)?;
/// assert_eq!(std::fs::read_to_string(&out)?, "output\n6\n-2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PredictionFile {
    outputs: Outputs,
    id: OutputId,
}

impl PredictionFile {
    /// Declares `path` as the output of running `model` on the samples in `input` (if they
    /// come from a file). The loader's refusals come back as [`NetError::Load`].
    pub fn declare(
        path: &Path,
        force: bool,
        model: &Model,
        input: Option<&Path>,
    ) -> Result<PredictionFile, NetError> {
        let mut outputs = Outputs::new();
        outputs.model(model)?;
        if let Some(input) = input {
            outputs.input(input)?;
        }
        let id = outputs.file(path, force)?;
        Ok(PredictionFile { outputs, id })
    }

    /// Where the predictions go, as given.
    pub fn path(&self) -> &Path {
        self.outputs.path(self.id)
    }

    /// Writes `predictions` and puts the file in place.
    pub fn write(mut self, predictions: &Predictions) -> Result<(), NetError> {
        let path = self.path().to_owned();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let tensors = [predictions.to_tensor()];
            stage_model(
                &mut self.outputs,
                self.id,
                &tensors,
                &ModelMetadata::default(),
            )?;
        } else {
            self.outputs.write(self.id, |out| {
                predictions.write_csv(out).map_err(|source| LoadError::Io {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        Ok(self.outputs.commit()?)
    }
}
