//! modeltool's integration tests: the `modeltool` binary run as a user runs
//! it, each test in its own temporary folder.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

mod util;

mod cli;
mod escapes;
mod faults;
mod gguf_cli;
mod gguf_inspect;
mod inspect;
mod interop;
mod loader_cli;
mod pytorch_cli;
mod remote;
mod run_train;
mod s3;
mod safety;
mod stats;
mod tutorial;
