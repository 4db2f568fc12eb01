//! GGUF, the single-file format of llama.cpp, Ollama and LM Studio: the
//! header parser, ggml tensor types, dequantization to f32, quantization to
//! Q8_0, and a writer. The byte-level description is `docs/GGUF.md` in the
//! modeltool repository.
//!
//! Like the rest of this crate it works on bytes: [`parse`] reads the header
//! from a prefix of the file and says how many bytes it needs when the
//! prefix is short, so a loader reads a few MB of a multi-GB file before it
//! knows where every tensor lies. Shapes come in two orders: ggml stores
//! them fastest first ([`GgufTensor::dims`]); [`GgufTensor::shape`] gives
//! the row-major order safetensors and PyTorch use.
//!
//! ```
//! use modeltool_format::gguf::{GgmlType, GgufHeader, GgufWriter, Value, dequantize_to_vec, quantize};
//!
//! // Write a file with one Q8_0 tensor of 2 x 32 values...
//! let values: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 8.0).collect();
//! let mut w = GgufWriter::new();
//! w.add_metadata("general.name", Value::String("tiny".into()))?;
//! w.add_tensor("w", &[2, 32], GgmlType::Q8_0, quantize(GgmlType::Q8_0, &values)?)?;
//! let file = w.to_bytes()?;
//!
//! // ...read it back and dequantize.
//! let header = GgufHeader::from_file_bytes(&file)?;
//! let t = &header.tensors[0];
//! assert_eq!((t.shape(), t.ggml_type), (vec![2, 32], GgmlType::Q8_0));
//! let back = dequantize_to_vec(t.ggml_type, header.tensor_data(&file, 0).expect("in the file"))?;
//! assert!(back.iter().zip(&values).all(|(a, b)| (a - b).abs() < 0.02));
//! # Ok::<(), modeltool_format::gguf::GgufError>(())
//! ```

mod dequant;
mod error;
#[rustfmt::skip]
mod iq_tables;
mod parse;
mod quant;
mod types;
mod value;
mod write;

pub use dequant::{can_dequantize, dequantize, dequantize_to_vec};
pub use error::{GgufError, Result};
pub use parse::{Endian, GgufHeader, GgufTensor, Parsed, parse};
pub use quant::quantize;
pub use types::GgmlType;
pub use value::{Array, Value, ValueType};
pub use write::{GgufWriter, TensorStream};

/// The metadata key that sets the data alignment (a u32).
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;

/// Largest header (everything before the tensor data) [`parse`] reads:
/// 256 MiB. Real headers, vocabularies of 260k tokens included, are a few MB.
pub const MAX_HEADER_LEN: u64 = 256 << 20;

/// Deepest nesting of arrays [`parse`] reads (an array of arrays is depth 2).
pub const MAX_ARRAY_DEPTH: usize = 8;

/// Most dimensions a ggml tensor has.
pub const MAX_DIMS: u32 = 4;
