//! Integration tests of modeltool-format, built as one binary: each module
//! covers one part of the crate's behaviour.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

mod common;
mod gguf_fixture;
mod gguf_hostile;
mod gguf_interop;
mod gguf_round_trip;
mod header_digest;
mod header_errors;
mod hostile;
mod json_errors;
mod key_order;
mod pytorch;
mod pytorch_hostile;
mod pytorch_interop;
mod pytorch_tar;
mod round_trip;
mod safetensors_interop;
