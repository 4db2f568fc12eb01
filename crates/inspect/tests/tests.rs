//! Integration tests of modeltool-inspect, built into one binary.

mod bounds;
mod gguf;
mod growth;
mod layers;
mod quant;
mod report;
mod tree;
mod util;
