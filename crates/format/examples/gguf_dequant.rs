//! Times GGUF dequantization of raw blocks read from a file, to compare with
//! the `gguf` Python package (tests/python/gguf_reference.py `bench` writes
//! the blocks and times `gguf.quants.dequantize` on them).
//!
//! ```text
//! python tests/python/gguf_reference.py bench 100000000 /tmp/q4k.bin
//! cargo run --release -p modeltool-format --example gguf_dequant -- Q4_K /tmp/q4k.bin
//! ```
//!
//! Prints the best of five runs and the sha256 of the f32 output (little
//! endian), which matches the Python side's. `--runs N` sets the runs and
//! `--no-sha256` skips the hash (benches/gguf.sh times the whole process
//! with `--runs 1 --no-sha256` against benches/gguf_dequant.py).

use std::time::Instant;

use modeltool_format::gguf::{GgmlType, dequantize};
use modeltool_format::sha256_hex;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gguf_dequant TYPE FILE [--runs N] [--no-sha256]";
    let ty = args.next().ok_or(usage)?;
    let path = args.next().ok_or(usage)?;
    let (mut runs, mut hash) = (5usize, true);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--runs" => runs = args.next().ok_or(usage)?.parse()?,
            "--no-sha256" => hash = false,
            _ => return Err(usage.into()),
        }
    }
    let ty = GgmlType::from_name(&ty).ok_or_else(|| format!("unknown ggml type {ty}"))?;
    let data = std::fs::read(&path)?;
    let n = data.len() / ty.type_size() as usize * ty.block_size() as usize;
    let mut out = vec![0f32; n];
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        dequantize(ty, &data, &mut out)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    let sha = if hash {
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        format!("\"{}\"", sha256_hex(&bytes))
    } else {
        "null".to_owned()
    };
    println!(
        "{{\"values\": {n}, \"seconds\": {best}, \"threads\": {}, \"sha256\": {sha}}}",
        rayon::current_num_threads(),
    );
    Ok(())
}
