//! Look inside a model without reading its numbers: parameter counts, the
//! module tree (with identical numbered blocks collapsed), the layer table
//! of a stored architecture, non-parameter buffers, packed quantized
//! weights, the Hugging Face `config.json` beside a checkpoint, and where
//! the file size comes from. The file formats are specified in
//! docs/FORMAT.md; the report in docs/INSPECT.md.
//!
//! [`Report::from_model`] builds the report of a model opened with the
//! loader; [`Report::from_facts`] (or [`inspect`]) builds it from plain
//! [`ModelFacts`] a caller gathered some other way. The report borrows
//! what it describes and serializes as the JSON report;
//! [`Report::render_human`] writes the text view, which is safe and
//! bounded on any screen whatever the file holds. Only [`growth`] writes
//! files: real models of growing size, to measure them.
//!
//! ```
//! use std::collections::BTreeMap;
//! use modeltool_format::{Dtype, TensorMeta};
//! use modeltool_inspect::{FileFacts, InspectOptions, ModelFacts, Report, TensorFacts};
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
//! let report = Report::from_facts(&facts, &InspectOptions::default());
//! assert_eq!(report.parameter_count, 2);
//! assert_eq!(report.size_formula.as_ref().map(|f| f.matches), Some(true));
//!
//! let mut text = Vec::new();
//! report.render_human(&mut text)?;
//! assert!(String::from_utf8_lossy(&text).contains("<- this model"));
//!
//! let json: serde_json::Value = serde_json::to_value(&report)?;
//! assert_eq!(json["dtypes"]["F32"]["bytes"], 8);
//! assert_eq!(json["tensors"][1]["data_offset"], 4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod buffers;
mod config;
mod error;
mod facts;
mod gguf;
pub mod growth;
mod human;
mod layers;
mod quant;
mod report;
mod source;
mod tree;
pub mod units;

pub use crate::buffers::buffer_kind;
pub use crate::config::{HfConfig, MAX_CONFIG_BYTES};
pub use crate::error::InspectError;
pub use crate::facts::{FileFacts, ModelFacts, TensorFacts};
pub use crate::gguf::{
    ArraySummary, GgmlTypeTotals, GgufReport, GgufSummary, MetadataValue, SHAPE_ORDER,
};
pub use crate::human::{MAX_COLUMNS, MAX_LINES, screen_columns};
pub use crate::layers::{ACTIVATIONS, LayerRow, LayerTable};
pub use crate::quant::{Packing, Quantization};
pub use crate::report::{
    BufferList, BufferTensor, Buffers, DtypeTotals, FileSummary, InspectOptions, Landmark, Report,
    SizeAt, SizeFormula, SizeTerm, TENSOR_ROW_LIMIT, TREE_ROW_BUDGET, TensorRow, Tensors, inspect,
};
pub use crate::tree::TreeNode;
