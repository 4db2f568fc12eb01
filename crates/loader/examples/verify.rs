//! Another tool using modeltool-loader: open any model modeltool reads (a
//! .safetensors file, a .json model file, a GGUF file, a sharded checkpoint)
//! and verify it, in a few lines:
//!
//! ```sh
//! cargo run -p modeltool-loader --example verify -- fixtures/height.json
//! ```
//!
//! Plain reads (the library's default); exit 1 when a check fails.

use std::process::ExitCode;

use modeltool_loader::{Model, OpenOptions, VerifyOptions};

fn main() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Some(path) = std::env::args().nth(1) else {
        return Err("usage: verify MODEL".into());
    };
    let model = Model::open(&path, OpenOptions::default())?;
    let report = model.verify(&VerifyOptions::default())?;
    println!(
        "{}: {} tensors, {} checksums match, {} damaged: {}",
        report.path,
        report.tensors,
        report.verified,
        report.damaged.len(),
        if report.ok { "OK" } else { "FAILED" }
    );
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
