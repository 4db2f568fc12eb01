//! Run and train small feed-forward networks stored in modeltool parameter files.
//!
//! [`Network::from_model`] builds the network a model file stores (its architecture, see
//! `docs/FORMAT.md`, "Architecture", or its `nn.Sequential`-style tensor names), borrowing
//! the tensors from the open model; [`Network::build`] takes an [`Architecture`] and the
//! tensors through a closure. [`train::train`] fits a network to a [`Dataset`] read from CSV
//! and returns its tensors as plain data ([`train::NamedTensor`]), with the `training.*`
//! record a model file keeps of it ([`train::Provenance`]).
//!
//! [`Runner`] runs a model on a [`Batch`] of samples (text such as `-1,0.5,2`, a CSV file
//! whose columns are picked by the names the model records, or a tensor `input`) and gives
//! [`Predictions`]: the outputs with their names, and the targets and error when the CSV held
//! them, rendered as text or serialised; [`PredictionFile`] writes them (CSV or safetensors)
//! without ever replacing an input. [`train::Trained::to_model_parts`] turns a trained
//! network into the tensors and metadata of a model file.
//!
//! The architecture schema itself (its types, and the one reader of it) belongs to the file
//! format: [`modeltool_format::arch`], re-exported here.
//!
//! # Example
//!
//! ```
//! use modeltool_net::{Architecture, Network};
//! use modeltool_net::train::{train, Dataset, TrainConfig};
//!
//! // Run a network described by JSON, with tensors supplied by a closure.
//! let arch = Architecture::from_json(r#"{"layers": [
//!     {"type": "linear", "weight": "0.weight", "bias": "0.bias"},
//!     {"type": "relu"}
//! ]}"#)?;
//! let net = Network::build(&arch, |name| match name {
//!     "0.weight" => Some((vec![2, 2], vec![1.0, 0.0, 0.0, -1.0])),
//!     "0.bias" => Some((vec![2], vec![0.5, 0.5])),
//!     _ => None,
//! })?;
//! assert_eq!(net.forward(&[1.0, 2.0], 1)?, vec![1.5, 0.0]);
//!
//! // Fit a line exactly: no hidden layers means least squares.
//! let csv = "height,weight\n170,60\n160,50\n";
//! let data = Dataset::from_csv_reader(csv.as_bytes(), "data.csv", &[])?;
//! let trained = train(&data, &TrainConfig::linear(), &mut |_epoch, _loss| {})?;
//! let line = trained.network()?;
//! assert_eq!(line.forward(&[180.0], 1)?, vec![70.0]);
//! # Ok::<(), modeltool_net::NetError>(())
//! ```
//!
//! `examples/run_model.rs` opens a model file, builds its network and runs it;
//! `examples/run_csv.rs` runs a model on a CSV file in a few lines.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod data;
mod error;
mod model;
mod network;
mod plot;
mod run;
mod sequential;
pub mod train;

pub use data::{Dataset, PredictionError, write_csv};
pub use error::NetError;
pub use model::model_architecture;
pub use modeltool_format::arch::{
    self, Activation, Architecture, Layer, MAX_LAYER_APPLICATIONS, MAX_REPEAT_DEPTH,
    MAX_REPEAT_TIMES,
};
pub use network::Network;
pub use plot::{loss_svg, plot_loss_svg};
pub use run::{Batch, PredictionFile, Predictions, Runner};
pub use sequential::sequential_architecture;
