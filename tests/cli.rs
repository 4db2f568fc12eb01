//! The command line as a user sees it: conversions, verification, exit
//! codes, and one clear `error:` line for every kind of bad input.

use std::path::Path;

use crate::util::{assert_error, run_in, tempdir};

/// A safetensors file from a header text and data bytes, as hostile as asked.
fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write a test file");
}

const LINE_JSON: &str = r#"{
  "format": "modeltool.json/1",
  "metadata": {"note": "y = a*x + b"},
  "tensors": {
    "a": {"dtype": "F32", "shape": [1], "data": [1.0]},
    "b": {"dtype": "F32", "shape": [1], "data": [-110.0]}
  }
}"#;

#[test]
fn json_to_safetensors_and_back_keeps_bits_metadata_and_checksums() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "line.json", LINE_JSON.as_bytes());
    let r = run_in(d, &["convert", "line.json", "line.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(d, &["convert", "line.safetensors", "back.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("2 input checksums verified"),
        "{}",
        r.stdout
    );
    let back: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("back.json")).unwrap()).unwrap();
    assert_eq!(back["metadata"]["note"], "y = a*x + b");
    assert_eq!(back["tensors"]["b"]["data"][0], -110.0);
    assert_eq!(
        back["tensors"]["b"]["sha256"],
        modeltool_format::sha256_hex(&(-110f32).to_le_bytes()),
        "checksum of the little-endian bytes as stored"
    );
    let r = run_in(d, &["verify", "line.safetensors", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("2 of 2 tensor checksums match"),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_names_each_damaged_tensor_and_exits_1() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "line.json", LINE_JSON.as_bytes());
    assert_eq!(
        run_in(d, &["convert", "line.json", "line.safetensors"]).code,
        0
    );
    let mut bytes = std::fs::read(d.join("line.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01; // the last tensor's last byte
    write(d, "line.safetensors", &bytes);
    let r = run_in(d, &["verify", "line.safetensors"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("DAMAGED b"), "{}", r.stdout);
    assert!(!r.stdout.contains("DAMAGED a"), "{}", r.stdout);
    // convert refuses to carry the damage along, and leaves nothing behind.
    let r = run_in(d, &["convert", "line.safetensors", "out.json"]);
    assert_error(&r, 1, &["line.safetensors", "`b`"]);
    assert!(!d.join("out.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

#[test]
fn verify_whole_file_sha256_and_strict() {
    let dir = tempdir();
    let d = dir.path();
    let file = raw_file(
        r#"{"w":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
        &[1, 2],
    );
    write(d, "plain.safetensors", &file);
    let r = run_in(d, &["verify", "plain.safetensors"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no checksums stored"), "{}", r.stdout);
    assert_eq!(
        run_in(d, &["verify", "plain.safetensors", "--strict"]).code,
        1
    );
    let good = modeltool_format::sha256_hex(&file);
    assert_eq!(
        run_in(d, &["verify", "plain.safetensors", "--sha256", &good]).code,
        0
    );
    let bad = "0".repeat(64);
    let r = run_in(d, &["verify", "plain.safetensors", "--sha256", &bad]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("FILE SHA256 MISMATCH"), "{}", r.stdout);
    assert_error(
        &run_in(d, &["verify", "plain.safetensors", "--sha256", "xyz"]),
        2,
        &["--sha256"],
    );
}

#[test]
fn convert_never_overwrites_input_and_needs_force() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "line.json", LINE_JSON.as_bytes());
    assert_error(
        &run_in(d, &["convert", "line.json", "line.json", "--force"]),
        2,
        &["line.json", "input"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("line.json")).unwrap(),
        LINE_JSON
    );
    assert_eq!(
        run_in(d, &["convert", "line.json", "out.safetensors"]).code,
        0
    );
    assert_error(
        &run_in(d, &["convert", "line.json", "out.safetensors"]),
        2,
        &["out.safetensors", "--force"],
    );
    assert_eq!(
        run_in(d, &["convert", "line.json", "out.safetensors", "--force"]).code,
        0
    );
}

#[test]
fn cast_to_bf16_rounds_to_nearest_even_and_counts_inexact_values() {
    let dir = tempdir();
    let d = dir.path();
    // 1.0 is exact in bf16; 1 + 2^-8 is a tie that rounds to even (1.0);
    // 1 + 3 * 2^-9 rounds up to 1 + 2^-7; ints pass through untouched.
    let json = r#"{"format":"modeltool.json/1","tensors":{
        "w":{"dtype":"F32","shape":[3],"data":[1.0,1.00390625,1.005859375]},
        "n":{"dtype":"I32","shape":[1],"data":[7]}}}"#;
    write(d, "m.json", json.as_bytes());
    let r = run_in(
        d,
        &["convert", "m.json", "m.safetensors", "--dtype", "bf16"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("2 values were not exactly representable"),
        "{}",
        r.stdout
    );
    let r = run_in(d, &["convert", "m.safetensors", "m2.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("m2.json")).unwrap()).unwrap();
    assert_eq!(v["tensors"]["w"]["dtype"], "BF16");
    // 1.0078125 is written as 1.01: the shortest decimal that reads back to
    // the same bf16.
    assert_eq!(
        v["tensors"]["w"]["data"],
        serde_json::json!([1.0, 1.0, 1.01])
    );
    assert_eq!(v["tensors"]["n"]["dtype"], "I32");
}

/// Every kind of malformed input gets its own one-line error naming the
/// file and the problem, exit code 2, never a panic.
#[test]
fn malformed_safetensors_files_get_one_clear_error_each() {
    let dir = tempdir();
    let d = dir.path();
    let f32x2 = [0u8; 8];
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated", vec![1, 2, 3], &["too short"]),
        (
            "huge_len",
            [&(1u64 << 63).to_le_bytes()[..], b"{}"].concat(),
            &["exceeds the limit"],
        ),
        (
            "past_end",
            [&100u64.to_le_bytes()[..], b"{}"].concat(),
            &["runs past the end"],
        ),
        (
            "not_utf8",
            [&4u64.to_le_bytes()[..], b"{\"\xff\"", &[]].concat(),
            &["UTF-8"],
        ),
        (
            "not_json",
            raw_file("{not json", &[]),
            &["key must be a string"],
        ),
        (
            "not_object",
            raw_file("[1,2]", &[]),
            &["expected a JSON object"],
        ),
        (
            "overlap",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f32x2,
            ),
            &["`b`", "inside `a`"],
        ),
        (
            "out_of_range",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &f32x2,
            ),
            &["`a`", "ends at byte 16", "8 bytes of data"],
        ),
        (
            "reversed",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#,
                &f32x2,
            ),
            &["`a`", "reversed"],
        ),
        (
            "hole",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                &f32x2,
            ),
            &["belong to no tensor", "`a`"],
        ),
        (
            "trailing",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                &f32x2,
            ),
            &["4 trailing bytes"],
        ),
        (
            "unknown_dtype",
            raw_file(
                r#"{"a":{"dtype":"F128","shape":[1],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
            &["`a`", "unknown dtype `F128`"],
        ),
        (
            "overflow",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
            &["`a`", "overflows"],
        ),
        (
            "shape_mismatch",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
            &["`a`", "12 bytes", "span 8"],
        ),
        (
            "meta_not_string",
            raw_file(
                r#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &f32x2,
            ),
            &["`k`", "not a string"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let file = format!("{name}.safetensors");
        write(d, &file, &bytes);
        for cmd in ["verify", "convert"] {
            let out = format!("{name}.json");
            let args: Vec<&str> = if cmd == "verify" {
                vec![cmd, &file]
            } else {
                vec![cmd, &file, &out]
            };
            let r = run_in(d, &args);
            let mut all = vec![file.as_str()];
            all.extend_from_slice(needles);
            assert_error(&r, 2, &all);
            assert_eq!(
                r.stderr.lines().count(),
                1,
                "{name}: one line: {}",
                r.stderr
            );
            assert!(!d.join(&out).exists(), "{name}: no output left behind");
        }
    }
}

#[test]
fn malformed_json_model_files_get_one_clear_error_each() {
    let dir = tempdir();
    let d = dir.path();
    let nested = format!(
        r#"{{"format":"modeltool.json/1","architecture":{}{},"tensors":{{}}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let cases: Vec<(&str, String, &[&str])> = vec![
        ("bare_nan", r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[1],"data":[NaN]}}}"#.into(), &["`a`"]),
        ("short_data", r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[2,3],"data":[1,2]}}}"#.into(), &["`a`", "2 values", "needs 6"]),
        ("long_data", r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[1],"data":[1,2]}}}"#.into(), &["`a`", "more values"]),
        ("non_string_meta", r#"{"format":"modeltool.json/1","metadata":{"k":[1]},"tensors":{}}"#.into(), &["`k`", "not a string"]),
        ("deep", nested, &["recursion limit"]),
        ("out_of_range", r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"U8","shape":[1],"data":[300]}}}"#.into(), &["`a`", "300", "out of range"]),
        ("no_format", r#"{"tensors":{}}"#.into(), &["missing `format`"]),
    ];
    for (name, text, needles) in cases {
        let file = format!("{name}.json");
        write(d, &file, text.as_bytes());
        let r = run_in(d, &["convert", &file, "out.safetensors"]);
        let mut all = vec![file.as_str()];
        all.extend_from_slice(needles);
        assert_error(&r, 2, &all);
        assert!(!d.join("out.safetensors").exists());
    }
}

#[test]
fn usage_errors_exit_2_and_missing_files_are_named() {
    let dir = tempdir();
    let d = dir.path();
    for args in [
        &["convert"][..],
        &["convert", "a", "b", "--dtype", "f8"],
        &["bogus"],
    ] {
        let r = run_in(d, args);
        assert_error(&r, 2, &[]);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "usage errors are one line too: {}",
            r.stderr
        );
    }
    assert_error(
        &run_in(d, &["verify", "nope.safetensors"]),
        2,
        &["nope.safetensors"],
    );
    write(d, "line.json", LINE_JSON.as_bytes());
    assert_error(
        &run_in(
            d,
            &["convert", "line.json", "o.json", "--max-shard-size", "1KB"],
        ),
        2,
        &["--max-shard-size"],
    );
    assert_error(
        &run_in(
            d,
            &["convert", "line.json", "shards", "--max-shard-size", "lots"],
        ),
        2,
        &["lots"],
    );
}

#[test]
fn reserved_metadata_keys_and_empty_indexes_are_refused_cleanly() {
    let dir = tempdir();
    let d = dir.path();
    let json =
        r#"{"format":"modeltool.json/1","metadata":{"modeltool.architecture":"{"},"tensors":{}}"#;
    write(d, "r.json", json.as_bytes());
    assert_error(
        &run_in(d, &["convert", "r.json", "r.safetensors"]),
        2,
        &["r.json", "`modeltool.architecture`", "modeltool's own"],
    );
    std::fs::create_dir(d.join("empty")).unwrap();
    write(
        &d.join("empty"),
        "model.safetensors.index.json",
        br#"{"weight_map":{}}"#,
    );
    for cmd in ["verify", "inspect"] {
        assert_error(
            &run_in(d, &[cmd, "empty"]),
            2,
            &["model.safetensors.index.json", "no tensors"],
        );
    }
}
