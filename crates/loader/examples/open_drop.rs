//! Measures what opening a model costs: `Model::open` then drop, nothing
//! else, so that `/usr/bin/time -v` shows the loader's own peak memory.
//! `--make N` first writes a safetensors file of N one-element tensors with
//! realistic names (a header of about 70 bytes a tensor).
//!
//! ```sh
//! cargo run --release -p modeltool-loader --example open_drop -- --make 1400000 /tmp/many.safetensors
//! /usr/bin/time -v target/release/examples/open_drop /tmp/many.safetensors
//! ```

use std::process::ExitCode;
use std::time::Instant;

use modeltool_format::{Dtype, TensorMeta, write_safetensors};
use modeltool_loader::{Model, OpenOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [make, n, path] if make == "--make" => {
            let Ok(n) = n.parse::<usize>() else {
                eprintln!("usage: open_drop [--make N] MODEL");
                return ExitCode::from(2);
            };
            if let Err(e) = make_file(path, n) {
                eprintln!("error: {path}: {e}");
                return ExitCode::from(2);
            }
            path
        }
        [path] => path,
        _ => {
            eprintln!("usage: open_drop [--make N] MODEL");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    match Model::open(path, OpenOptions::default()) {
        Ok(model) => {
            let n = model.entries().len();
            let header = model.files()[0].header_bytes;
            drop(model);
            println!(
                "{n} tensors, {header} header bytes, opened and dropped in {:.2?}",
                start.elapsed()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn make_file(path: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = [0u8; 4];
    let tensors: Vec<(TensorMeta, &[u8])> = (0..n)
        .map(|i| {
            let meta = TensorMeta {
                name: format!("model.layers.{}.experts.{}.w{}", i / 1000, i % 1000, i % 3),
                dtype: Dtype::F32,
                shape: vec![1],
            };
            (meta, &bytes[..])
        })
        .collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    write_safetensors(file, &tensors, &Default::default())?;
    Ok(())
}
