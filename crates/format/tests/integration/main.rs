//! Integration tests of modeltool-format, built as one binary: each module
//! covers one part of the crate's behaviour.

mod common;
mod header_errors;
mod hostile;
mod json_errors;
mod key_order;
mod round_trip;
mod safetensors_interop;
