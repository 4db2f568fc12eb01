//! Fitting a network to a [`Dataset`]: the settings ([`settings`](TrainConfig)), the exact
//! least-squares line without hidden layers (`least_squares.rs`), Adam with backpropagation
//! otherwise (`mlp.rs`), and the record a model file keeps of it ([`Provenance`]).

mod least_squares;
mod mlp;
mod provenance;
mod report;
mod settings;

use serde::{Deserialize, Serialize};

pub use crate::data::Dataset;
use crate::{Architecture, Layer, NetError, Network};
pub use provenance::{Provenance, keys as provenance_keys};
pub use report::TrainReport;
pub(crate) use report::significant;
pub use settings::{MAX_HIDDEN_LAYERS, MAX_PARAMETERS, MAX_WIDTH, TrainConfig, TrainWarning};

/// One trained tensor, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedTensor {
    /// Name such as `0.weight` (PyTorch `nn.Sequential` style).
    pub name: String,
    /// Shape, `[out, in]` for weights and `[out]` for biases.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// The result of [`train`]: a network that maps raw inputs to raw targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The layers; tensor names are `0.weight`, `0.bias`, `2.weight`, ... where the index
    /// counts activation layers too, as in `nn.Sequential`.
    pub architecture: Architecture,
    /// The tensors the architecture names, in layer order.
    pub tensors: Vec<NamedTensor>,
    /// Mean squared error of the saved (`f32`) network over the whole data set, in the units of
    /// the targets (averaged over target columns too).
    pub final_loss: f64,
    /// Mean squared error over the whole data set in target units after each epoch (one entry
    /// for the least-squares solve).
    pub loss_history: Vec<f64>,
    /// The method used: least squares, or Adam with its settings.
    pub method: Method,
    /// Settings that did not apply (see [`TrainConfig::warnings`]); the caller shows them.
    pub warnings: Vec<TrainWarning>,
}

/// How a network was fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Method {
    /// The exact least-squares line (no hidden layers).
    LeastSquares,
    /// Adam with backpropagation (hidden layers).
    Adam {
        /// Passes over the data.
        epochs: usize,
        /// Learning rate at the start.
        lr: f32,
        /// Mini-batch size asked for.
        batch: usize,
        /// Seed of the initialisation and shuffling.
        seed: u64,
    },
}

impl Method {
    /// Epochs trained: 0 for least squares.
    pub fn epochs(&self) -> usize {
        match self {
            Method::LeastSquares => 0,
            Method::Adam { epochs, .. } => *epochs,
        }
    }
}

impl std::fmt::Display for Method {
    /// `least squares`, or `adam, lr 0.01, batch 32, seed 0`: the `training.method` value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::LeastSquares => f.write_str("least squares"),
            Method::Adam {
                lr, batch, seed, ..
            } => {
                write!(f, "adam, lr {lr}, batch {batch}, seed {seed}")
            }
        }
    }
}

impl Trained {
    /// Builds the runnable network from the trained tensors.
    pub fn network(&self) -> Result<Network<'_>, NetError> {
        Network::build(&self.architecture, |name| {
            self.tensors
                .iter()
                .find(|t| t.name == name)
                .map(|t| (t.shape.clone(), t.values.as_slice()))
        })
    }

    /// Number of parameters (every tensor's values).
    pub fn parameter_count(&self) -> usize {
        self.tensors.iter().map(|t| t.values.len()).sum()
    }

    /// What a model file of this network holds: its tensors (F32, little-endian, in layer
    /// order) and its metadata (the architecture, and `provenance` as `training.*` keys), as
    /// the loader's writers (`modeltool_loader::save::write_model`, `stage_model`) take them.
    ///
    /// ```
    /// use modeltool_net::train::{train, Dataset, Provenance, TrainConfig};
    /// let data = Dataset::from_csv_reader("x,y\n1,3\n2,5\n".as_bytes(), "d.csv", &[])?;
    /// let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {})?;
    /// let (tensors, metadata) = trained.to_model_parts(&Provenance::new("d.csv", "", &data, &trained));
    /// let names: Vec<&str> = tensors.iter().map(|(m, _)| m.name.as_str()).collect();
    /// assert_eq!(names, ["0.weight", "0.bias"]);
    /// assert_eq!(tensors[1].1, 1f32.to_le_bytes());
    /// assert_eq!(metadata.user["training.data"], "d.csv");
    /// assert!(metadata.architecture.is_some());
    /// # Ok::<(), modeltool_net::NetError>(())
    /// ```
    pub fn to_model_parts(
        &self,
        provenance: &Provenance,
    ) -> (
        Vec<(modeltool_format::TensorMeta, Vec<u8>)>,
        modeltool_format::ModelMetadata,
    ) {
        let metadata = modeltool_format::ModelMetadata {
            architecture: Some(self.architecture.to_value()),
            user: provenance.to_metadata(),
            ..Default::default()
        };
        let tensors = self
            .tensors
            .iter()
            .map(|t| {
                let meta = modeltool_format::TensorMeta {
                    name: t.name.clone(),
                    dtype: modeltool_format::Dtype::F32,
                    shape: t.shape.clone(),
                };
                (
                    meta,
                    t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            })
            .collect();
        (tensors, metadata)
    }
}

/// Fits a network to `data` as set by `config`, calling `progress(epoch, loss)` after each epoch
/// (1-based; `loss` as in [`Trained::loss_history`]).
///
/// Without hidden layers the linear model `y = W x + b` is solved exactly by least squares in
/// `f64` (a thin SVD of the standardised, centred inputs). Two samples give the line through
/// both. When the rows do not determine the line (fewer independent rows than the `inputs + 1`
/// parameters of a line: one row, a constant or duplicated input column) the fit is refused
/// with [`NetError::Underdetermined`] rather than one of its many answers picked.
///
/// Values beyond the range of f32 (in which the network runs) are refused first
/// ([`NetError::ValuesTooLarge`]); settings the method does not use are listed in
/// [`Trained::warnings`].
///
/// With hidden layers: Adam (β₁ 0.9, β₂ 0.999, ε 1e-8, learning rate decaying from
/// `config.lr` to `config.lr / 100` along a cosine over the epochs) on the mean squared error, shuffled
/// mini-batches, Xavier-uniform initialisation (He-uniform for relu and gelu), zero biases, in
/// `f64`. Inputs and targets are standardised per column for training and the scaling is folded
/// into the first and last layers, so the returned tensors take raw inputs.
/// The random numbers come from SplitMix64 seeded with `config.seed` and every step runs on
/// one thread, so the same data and config give bit-identical tensors.
pub fn train(
    data: &Dataset,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<Trained, NetError> {
    config.validate()?;
    if data.target_width() == 0 {
        return Err(NetError::CsvHeader {
            source_name: data.source_name().to_owned(),
            message: "there are no target columns to train on".into(),
        });
    }
    let largest = data
        .inputs()
        .iter()
        .chain(data.targets())
        .fold(0f64, |m, v| m.max(v.abs()));
    if largest > f64::from(f32::MAX) {
        return Err(NetError::ValuesTooLarge {
            source_name: data.source_name().to_owned(),
            largest,
        });
    }
    let warnings = config.warnings(data.rows());
    let method = if config.hidden.is_empty() {
        Method::LeastSquares
    } else {
        Method::Adam {
            epochs: config.epochs,
            lr: config.lr,
            batch: config.batch,
            seed: config.seed,
        }
    };
    let widths: Vec<usize> = std::iter::once(data.input_width())
        .chain(config.hidden.iter().copied())
        .chain(std::iter::once(data.target_width()))
        .collect();
    let parameters = widths
        .windows(2)
        .try_fold(0usize, |sum, w| {
            w[0].checked_mul(w[1])?.checked_add(w[1])?.checked_add(sum)
        })
        .filter(|&n| n <= MAX_PARAMETERS);
    if parameters.is_none() {
        return Err(NetError::InvalidConfig(format!(
            "layers {widths:?} would need more than {MAX_PARAMETERS} parameters"
        )));
    }
    let (layers, history) = if config.hidden.is_empty() {
        let layer = least_squares::least_squares(data)?;
        (vec![layer], None)
    } else {
        let (layers, history) = mlp::fit_mlp(data, config, progress)?;
        (layers, Some(history))
    };

    let mut arch_layers = Vec::new();
    let mut tensors = Vec::new();
    let count = layers.len();
    for (i, layer) in layers.into_iter().enumerate() {
        let weight = format!("{}.weight", 2 * i);
        let bias = format!("{}.bias", 2 * i);
        arch_layers.push(Layer::Linear {
            weight: weight.clone(),
            bias: Some(bias.clone()),
        });
        if i + 1 < count {
            arch_layers.push(config.activation.layer());
        }
        tensors.push(NamedTensor {
            name: weight,
            shape: vec![layer.outputs, layer.inputs],
            values: layer.weight.iter().map(|&v| v as f32).collect(),
        });
        tensors.push(NamedTensor {
            name: bias,
            shape: vec![layer.outputs],
            values: layer.bias.iter().map(|&v| v as f32).collect(),
        });
    }
    let mut trained = Trained {
        architecture: Architecture {
            layers: arch_layers,
        },
        tensors,
        final_loss: 0.0,
        loss_history: Vec::new(),
        method,
        warnings,
    };
    let final_loss = network_mse(&trained.network()?, data)?;
    if !final_loss.is_finite() {
        // The f64 fit stayed finite but the weights or predictions do not fit in f32.
        return Err(match history {
            Some(history) => NetError::Diverged {
                epoch: history.len(),
            },
            None => NetError::LeastSquaresOverflow { largest },
        });
    }
    trained.final_loss = final_loss;
    trained.loss_history = match history {
        Some(history) => history,
        None => {
            progress(1, trained.final_loss);
            vec![trained.final_loss]
        }
    };
    Ok(trained)
}

/// Mean squared error of `network` on `data`, in target units.
pub fn network_mse(network: &Network<'_>, data: &Dataset) -> Result<f64, NetError> {
    let inputs: Vec<f32> = data.inputs().iter().map(|&v| v as f32).collect();
    let predicted = network.forward(&inputs, data.rows())?;
    let sum: f64 = predicted
        .iter()
        .zip(data.targets())
        .map(|(&p, &t)| (f64::from(p) - t).powi(2))
        .sum();
    Ok(sum / data.targets().len() as f64)
}

/// A dense layer in `f64`: `weight` row-major `[outputs, inputs]`.
#[derive(Debug, Clone)]
struct Dense {
    inputs: usize,
    outputs: usize,
    weight: Vec<f64>,
    bias: Vec<f64>,
}

/// Per-column mean and standard deviation (population); a constant column gets std 1.
#[derive(Debug, Clone)]
struct Scaling {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Scaling {
    fn of(values: &[f64], width: usize) -> Scaling {
        let rows = (values.len() / width) as f64;
        let mut mean = vec![0f64; width];
        for row in values.chunks_exact(width) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        let mut var = vec![0f64; width];
        for row in values.chunks_exact(width) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m).powi(2);
            }
        }
        let std = var
            .into_iter()
            .zip(&mean)
            .map(|(s, m)| {
                let std = (s / rows).sqrt();
                // Constant (up to rounding) columns are left unscaled.
                if std > 1e-12 * m.abs().max(1e-300) {
                    std
                } else {
                    1.0
                }
            })
            .collect();
        Scaling { mean, std }
    }

    fn apply(&self, values: &[f64]) -> Vec<f64> {
        let width = self.mean.len();
        let mut out = values.to_vec();
        for row in out.chunks_exact_mut(width) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}
