//! Reads a JSON model file and prints its tensor count, tensor bytes and the
//! process's peak resident memory: the reader's memory, without the loader.
//!
//! `cargo run --release -p modeltool-format --example read_json -- m.json`

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: read_json FILE.json")?;
    let file = std::fs::File::open(&path)?;
    let model = modeltool_format::JsonModel::read_file(&file)?;
    let bytes: usize = model.tensors.iter().map(|t| t.data.len()).sum();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?");
    println!("{} tensors, {bytes} bytes; {peak}", model.tensors.len());
    Ok(())
}
