//! Interoperability with the Python reference `safetensors` (and numpy):
//! files it writes, modeltool reads to the bit, and files modeltool writes,
//! it reads to the bit. The checks themselves run in the Python scripts of
//! tests/python/, which exit 1 naming the first tensor and value that
//! differ. Every test is skipped when `MODELTOOL_PYTHON` is unset (see
//! `util::python`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, run_in, tempdir};

/// A script in tests/python/.
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

/// Runs `python tests/python/<name> args..` in `dir` and returns its
/// stdout; fails the test with the script's message if it exits non-zero.
fn py(python: &Path, dir: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .current_dir(dir)
        // Keep __pycache__ out of the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{stderr}{stdout}",
        out.status
    );
    stdout
}

/// Runs modeltool in `dir`, asserting it succeeds; returns its stdout.
fn modeltool(dir: &Path, args: &[&str]) -> String {
    let r = run_in(dir, args);
    assert_eq!(r.code, 0, "modeltool {args:?} failed: {}", r.stderr);
    assert!(
        r.stderr.is_empty(),
        "modeltool {args:?} complained: {}",
        r.stderr
    );
    r.stdout
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn python_written_file_of_every_dtype_survives_json_round_trip_bit_exactly() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    py(&python, d, "write_all_dtypes.py", &["x.safetensors"]);

    let report = json(&modeltool(
        d,
        &["convert", "x.safetensors", "x.json", "--format", "json"],
    ));
    assert_eq!(report["tensors"], 25, "{report}");
    assert_eq!(report["unchecked"], 25, "the reference stores no checksums");
    let model = json(&std::fs::read_to_string(d.join("x.json")).expect("x.json"));
    let tensors = &model["tensors"];
    assert_eq!(tensors["bf16"]["dtype"], "BF16");
    assert_eq!(tensors["scalar"]["shape"], serde_json::json!([]));
    assert_eq!(tensors["scalar"]["data"], serde_json::json!([-2.5]));
    assert_eq!(tensors["empty"]["shape"], serde_json::json!([0, 3]));
    assert_eq!(tensors["i64"]["data"][0], i64::MIN, "no detour through f64");
    assert_eq!(tensors["u64"]["data"][4], u64::MAX);
    assert_eq!(
        tensors["f32"]["data"][14], "NaN:0x7f800001",
        "signalling NaN"
    );
    assert_eq!(model["metadata"]["source"], "write_all_dtypes.py");

    modeltool(d, &["convert", "x.json", "y.safetensors"]);
    let r = run_in(d, &["verify", "y.safetensors", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out = py(
        &python,
        d,
        "check_roundtrip.py",
        &["x.safetensors", "y.safetensors"],
    );
    assert!(out.contains("ok: 25 tensors bit-identical"), "{out}");
}

#[test]
fn interop_check_notices_one_flipped_bit() {
    // The scripts above would pass vacuously if they compared nothing.
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    py(&python, d, "write_all_dtypes.py", &["x.safetensors"]);
    modeltool(d, &["convert", "x.safetensors", "y.safetensors"]);
    let mut bytes = std::fs::read(d.join("y.safetensors")).expect("y.safetensors");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(d.join("z.safetensors"), bytes).expect("write z.safetensors");
    let out = Command::new(&python)
        .arg(script("check_roundtrip.py"))
        .args(["x.safetensors", "z.safetensors"])
        .current_dir(d)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the check passed a damaged file"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bytes differ"), "{stderr}");
}

#[test]
fn modeltool_written_file_loads_in_python_with_metadata_and_checksums() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let fixture = util::fixtures().join("multi_dtype.safetensors");
    let fixture = fixture.to_str().expect("a UTF-8 path");
    modeltool(d, &["convert", fixture, "m.json"]);
    modeltool(d, &["convert", "m.json", "m.safetensors"]);
    let out = py(
        &python,
        d,
        "check_numpy_load.py",
        &[fixture, "m.safetensors"],
    );
    assert!(out.contains("ok: 15 tensors load with equal bits"), "{out}");
    assert!(
        out.contains("'modeltool.sha256.c64'") && out.contains("'source'"),
        "{out}"
    );
}

/// Casts a Python-written file of float edge cases and random bit patterns
/// with `--dtype to`; Python checks every value against numpy's
/// round-to-nearest-even and counts what the report should say.
fn cast_matches_numpy(to: &str) {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    py(&python, d, "write_floats.py", &["floats.safetensors"]);
    let out = format!("cast_{to}.safetensors");
    let report = json(&modeltool(
        d,
        &[
            "convert",
            "floats.safetensors",
            &out,
            "--dtype",
            to,
            // The edge cases include values too large for F16 and BF16,
            // which numpy turns into infinities.
            "--allow-overflow",
            "--format",
            "json",
        ],
    ));
    let r = run_in(d, &["verify", &out, "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let expected = json(&py(
        &python,
        d,
        "check_cast.py",
        &["floats.safetensors", &out, to],
    ));
    for key in ["cast_tensors", "cast_values", "inexact_values"] {
        assert_eq!(report[key], expected[key], "{key} in the report {report}");
    }
}

#[test]
fn cast_to_f16_rounds_to_nearest_even_like_numpy() {
    cast_matches_numpy("f16");
}

#[test]
fn cast_to_bf16_rounds_to_nearest_even_like_numpy() {
    cast_matches_numpy("bf16");
}

#[test]
fn cast_to_f32_rounds_to_nearest_even_like_numpy() {
    cast_matches_numpy("f32");
}

#[test]
fn sharded_checkpoint_loads_in_python_and_merges_back_bit_exactly() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    // Eleven tensors of 200-800 bytes and one of 1536, more than a shard.
    py(
        &python,
        d,
        "write_big.py",
        &["--oversized", "big.safetensors"],
    );
    let report = json(&modeltool(
        d,
        &[
            "convert",
            "big.safetensors",
            "shards",
            "--max-shard-size",
            "1KB",
            "--format",
            "json",
        ],
    ));
    assert_eq!(report["tensors"], 12, "{report}");
    let files = report["files"].as_array().expect("files in the report");
    assert!(files.len() >= 7, "6048 bytes in 1000-byte shards: {report}");
    let out = py(
        &python,
        d,
        "check_shards.py",
        &["big.safetensors", "shards", "1000"],
    );
    assert!(out.contains("ok: 12 tensors"), "{out}");
    let r = run_in(d, &["verify", "shards", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    modeltool(d, &["convert", "shards", "merged.safetensors"]);
    let out = py(
        &python,
        d,
        "check_roundtrip.py",
        &["big.safetensors", "merged.safetensors"],
    );
    assert!(out.contains("ok: 12 tensors bit-identical"), "{out}");
}
