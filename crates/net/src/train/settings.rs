//! Training settings: what `train` is asked to do, their limits, and which of them a method
//! does not use (a warning, not silence).

use serde::{Deserialize, Serialize};

use crate::{Activation, NetError};

/// Largest number of hidden layers [`train`](super::train()) accepts.
pub const MAX_HIDDEN_LAYERS: usize = 64;

/// The widest hidden layer training accepts.
pub const MAX_WIDTH: usize = 1 << 16;

/// The most parameters training accepts (it runs on one core in f64).
pub const MAX_PARAMETERS: usize = 100_000_000;

/// Settings for [`train`](super::train()).
///
/// The defaults fit small tabular data sets (tens to thousands of rows, a handful of columns)
/// without tuning: two hidden layers of 16 tanh units, Adam at learning rate 0.01, mini-batches
/// of 32 and 500 epochs. Inputs and targets are standardised internally, so the learning rate
/// does not depend on the units of the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Widths of the hidden layers; empty means a linear model solved exactly by least squares.
    pub hidden: Vec<usize>,
    /// Activation after each hidden layer.
    pub activation: Activation,
    /// Passes over the data (Adam only; the least-squares solve has none).
    pub epochs: usize,
    /// Adam learning rate (Adam only).
    pub lr: f32,
    /// Mini-batch size, clamped to the number of rows (Adam only).
    pub batch: usize,
    /// Seed of the initialisation and shuffling; the same seed gives bit-identical results.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            hidden: vec![16, 16],
            activation: Activation::Tanh,
            epochs: 500,
            lr: 0.01,
            batch: 32,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// A linear model (no hidden layers), fitted exactly by least squares.
    pub fn linear() -> TrainConfig {
        TrainConfig {
            hidden: Vec::new(),
            ..TrainConfig::default()
        }
    }

    /// Checks every setting is in range.
    pub fn validate(&self) -> Result<(), NetError> {
        let bad = |m: String| Err(NetError::InvalidConfig(m));
        if self.hidden.len() > MAX_HIDDEN_LAYERS {
            return bad(format!(
                "{} hidden layers, at most {MAX_HIDDEN_LAYERS} are supported",
                self.hidden.len()
            ));
        }
        if let Some(i) = self.hidden.iter().position(|&w| w == 0) {
            return bad(format!("hidden layer {} has width 0", i + 1));
        }
        if let Some(i) = self.hidden.iter().position(|&w| w > MAX_WIDTH) {
            return bad(format!(
                "hidden layer {} has width {}, at most {MAX_WIDTH} is supported",
                i + 1,
                self.hidden[i]
            ));
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be a positive number, not {}",
                self.lr
            ));
        }
        if self.batch == 0 {
            return bad("batch size must be at least 1".into());
        }
        Ok(())
    }
}

/// A setting that does not apply to the data or the method, reported in
/// [`Trained::warnings`](super::Trained::warnings) instead of being ignored in silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrainWarning {
    /// A setting of gradient training (epochs, learning rate, batch size, seed, activation)
    /// differs from its default, but without hidden layers the fit is least squares, which
    /// does not use it.
    NotUsedByLeastSquares {
        /// The setting: `epochs`, `learning rate`, `batch size`, `seed` or `activation`.
        setting: &'static str,
    },
    /// The mini-batch is larger than the data: every step uses all rows.
    BatchLargerThanData {
        /// The batch size asked for.
        batch: usize,
        /// Rows in the data.
        rows: usize,
    },
}

impl std::fmt::Display for TrainWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainWarning::NotUsedByLeastSquares { setting } => write!(
                f,
                "the {setting} setting is not used: without hidden layers the line is solved exactly by least squares"
            ),
            TrainWarning::BatchLargerThanData { batch, rows } => write!(
                f,
                "batch size {batch} is more than the {rows} rows; every step uses all rows"
            ),
        }
    }
}

impl TrainConfig {
    /// The settings that do not apply to fitting `rows` rows with this configuration.
    ///
    /// Whether a setting was given is judged by comparing it with
    /// [`TrainConfig::default`]: a least-squares fit (no hidden layers) warns about each
    /// gradient-training setting that differs from its default.
    ///
    /// ```
    /// use modeltool_net::train::{TrainConfig, TrainWarning};
    /// let config = TrainConfig { epochs: 50, ..TrainConfig::linear() };
    /// assert_eq!(config.warnings(10), [TrainWarning::NotUsedByLeastSquares { setting: "epochs" }]);
    /// ```
    pub fn warnings(&self, rows: usize) -> Vec<TrainWarning> {
        let defaults = TrainConfig::default();
        if self.hidden.is_empty() {
            [
                ("epochs", self.epochs != defaults.epochs),
                ("learning rate", self.lr.to_bits() != defaults.lr.to_bits()),
                ("batch size", self.batch != defaults.batch),
                ("seed", self.seed != defaults.seed),
                ("activation", self.activation != defaults.activation),
            ]
            .into_iter()
            .filter(|(_, differs)| *differs)
            .map(|(setting, _)| TrainWarning::NotUsedByLeastSquares { setting })
            .collect()
        } else if self.batch > rows && self.batch != defaults.batch {
            vec![TrainWarning::BatchLargerThanData {
                batch: self.batch,
                rows,
            }]
        } else {
            Vec::new()
        }
    }
}
