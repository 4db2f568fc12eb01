//! Run and train small feed-forward networks stored in modeltool parameter files.
//!
//! This crate knows nothing about file formats: [`Network::build`] receives each tensor through
//! a closure, and [`train::train`] returns trained tensors as plain data
//! ([`train::NamedTensor`]). The architecture JSON below is stored inside model files; see
//! `docs/FORMAT.md` in the repository.
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
//! # Architecture JSON
//!
//! ```json
//! {"layers": [
//!   {"type": "linear", "weight": "0.weight", "bias": "0.bias"},
//!   {"type": "tanh"},
//!   {"type": "repeat", "times": 3, "layers": [
//!     {"type": "linear", "weight": "block.weight", "bias": "block.bias"},
//!     {"type": "relu"}
//!   ]},
//!   {"type": "linear", "weight": "out.weight"},
//!   {"type": "softmax"}
//! ]}
//! ```
//!
//! The top level is an object with exactly one field, `layers`, a list applied first to last.
//! Each layer is an object whose `type` is one of:
//!
//! | `type` | other fields | meaning |
//! | --- | --- | --- |
//! | `linear` | `weight` (string, required), `bias` (string, optional) | `y = x Wᵀ + b`; the named tensors have shapes `[out, in]` and `[out]` |
//! | `relu` | none | `max(0, x)` |
//! | `tanh` | none | `tanh(x)` |
//! | `sigmoid` | none | `1 / (1 + e^-x)` |
//! | `gelu` | none | exact GELU `x·Φ(x) = x/2·(1 + erf(x/√2))` (PyTorch's default, not the tanh approximation) |
//! | `identity` | none | `x` |
//! | `softmax` | none | softmax over each sample's outputs; only as the very last top-level layer |
//! | `repeat` | `times` (integer 1 to 4096), `layers` (non-empty list) | apply `layers` `times` times with the same tensors; the block must map width `w` to `w`; nested at most 16 deep |
//!
//! Unknown fields and unknown types are rejected. At least one `linear` layer is required. The
//! input width is the `in` of the first linear layer; every later linear layer's `in` must
//! equal the width before it. A tensor name may be used by several layers (they share it).
//! Layers are referred to in errors by position: `2` is the third top-level layer, `2.1` the
//! second layer inside the repeat block at `2`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod arch;
mod data;
mod error;
mod network;
mod plot;
pub mod train;

pub use arch::{Activation, Architecture, Layer, MAX_REPEAT_DEPTH, MAX_REPEAT_TIMES};
pub use error::NetError;
pub use network::Network;
pub use plot::{loss_svg, plot_loss_svg};
