//! Look inside a model without reading its numbers: parameter counts, the
//! module tree (with identical numbered blocks collapsed), the layer table
//! of a stored architecture, non-parameter buffers, and where the file size
//! comes from. The file formats are specified in docs/FORMAT.md.
//!
//! The crate works on plain [`ModelFacts`] that the caller gathers when it
//! opens a file, so it depends on nothing but the format crate. Only
//! [`growth`] writes files: real models of growing size, to measure them.
//!
//! ```
//! use std::collections::BTreeMap;
//! use modeltool_format::{Dtype, TensorMeta};
//! use modeltool_inspect::{FileFacts, InspectOptions, ModelFacts, TensorFacts, inspect};
//!
//! // y = a*x + b as a safetensors file: 8 + 112 header bytes, then 8 of data.
//! let tensor = |name: &str, offset| TensorFacts {
//!     meta: TensorMeta { name: name.into(), dtype: Dtype::F32, shape: vec![] },
//!     file: 0,
//!     offset,
//!     bytes: 4,
//! };
//! let facts = ModelFacts {
//!     path: "line.safetensors".into(),
//!     kind: "safetensors".into(),
//!     files: vec![FileFacts { path: "line.safetensors".into(), file_bytes: 128, header_bytes: 120 }],
//!     tensors: vec![tensor("a", 120), tensor("b", 124)],
//!     metadata: BTreeMap::new(),
//!     architecture: None,
//! };
//! let report = inspect(&facts, &InspectOptions::default());
//! assert_eq!(report.parameter_count, 2);
//! assert_eq!(report.size_formula.as_ref().map(|f| f.matches), Some(true));
//!
//! let mut text = Vec::new();
//! report.render_human(&mut text)?;
//! assert!(String::from_utf8_lossy(&text).contains("<- this model"));
//!
//! let json: serde_json::Value = serde_json::to_value(&report)?;
//! assert_eq!(json["dtypes"]["F32"]["bytes"], 8);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod buffers;
mod error;
mod facts;
pub mod growth;
mod human;
mod layers;
mod report;
mod tree;
pub mod units;

pub use crate::buffers::buffer_kind;
pub use crate::error::InspectError;
pub use crate::facts::{FileFacts, ModelFacts, TensorFacts};
pub use crate::layers::{ACTIVATIONS, LayerRow, LayerTable};
pub use crate::report::{
    BufferTensor, Buffers, DtypeTotals, FileSummary, InspectOptions, Landmark, Report, SizeAt,
    SizeFormula, SizeTerm, TREE_ROW_BUDGET, TensorRow, inspect,
};
pub use crate::tree::TreeNode;
