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

/// The JSON header of a safetensors file, parsed.
fn header_of(path: &Path) -> modeltool_format::Header {
    let bytes = std::fs::read(path).unwrap();
    modeltool_format::Header::from_file_bytes(&bytes).unwrap()
}

/// Whether the file at `path` carries a header checksum that matches.
fn header_checksum_matches(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap();
    let header = modeltool_format::Header::from_file_bytes(&bytes).unwrap();
    let json = &bytes[8..header.data_start() as usize];
    header.check_header_sha256(json).unwrap() == modeltool_format::HeaderSha256::Matches
}

/// `path` with its first `from` replaced by `to` (same length).
fn edit(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` in {}", path.display()));
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn every_safetensors_output_carries_a_header_checksum_and_json_drops_it() {
    let dir = tempdir();
    let d = dir.path();
    write(d, "line.json", LINE_JSON.as_bytes());
    assert_eq!(
        run_in(d, &["convert", "line.json", "line.safetensors"]).code,
        0
    );
    assert!(header_checksum_matches(&d.join("line.safetensors")));
    // Not user metadata: inspect shows only the note.
    let r = run_in(d, &["inspect", "line.safetensors", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        report["metadata"],
        serde_json::json!({"note": "y = a*x + b"})
    );
    // JSON has no header: the key is not carried, and it comes back fresh.
    assert_eq!(
        run_in(d, &["convert", "line.safetensors", "back.json"]).code,
        0
    );
    let text = std::fs::read_to_string(d.join("back.json")).unwrap();
    assert!(!text.contains("header_sha256"), "{text}");
    assert_eq!(
        run_in(d, &["convert", "back.json", "again.safetensors"]).code,
        0
    );
    assert_eq!(
        std::fs::read(d.join("again.safetensors")).unwrap(),
        std::fs::read(d.join("line.safetensors")).unwrap()
    );
    // A cast gets a header of its own.
    let r = run_in(
        d,
        &[
            "convert",
            "line.safetensors",
            "half.safetensors",
            "--dtype",
            "f16",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(header_checksum_matches(&d.join("half.safetensors")));

    // Each shard its own header checksum, each damaged shard named.
    let r = run_in(
        d,
        &[
            "convert",
            "line.safetensors",
            "shards",
            "--max-shard-size",
            "4",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shards = [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ];
    for shard in shards {
        let path = d.join("shards").join(shard);
        assert!(header_checksum_matches(&path), "{shard}");
        assert_eq!(header_of(&path).tensors.len(), 1);
    }
    let r = run_in(d, &["verify", "shards", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("header: checksum matches in 2 of 2 files"),
        "{}",
        r.stdout
    );
    let second = d.join("shards").join(shards[1]);
    edit(&second, "\"F32\"", "\"I32\"");
    let r = run_in(d, &["verify", "shards"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let shown = format!("shards/{}", shards[1]);
    assert!(
        r.stdout.contains(&format!(
            "header of {shown}: DAMAGED (metadata or tensor entries changed since the file was written)"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("header: checksum matches in 1 of 2 files"),
        "{}",
        r.stdout
    );
    assert_eq!(
        r.stderr.trim(),
        format!(
            "error: {shown}: header is damaged (metadata or tensor entries changed since the file was written)"
        )
    );
    let r = run_in(d, &["convert", "shards", "merged.safetensors"]);
    assert_error(
        &r,
        1,
        &[&shown, "header is damaged", "modeltool.header_sha256 is"],
    );
    assert!(!d.join("merged.safetensors").exists());
}

#[test]
fn train_writes_a_header_checksum_and_run_refuses_a_changed_header() {
    let dir = tempdir();
    let d = dir.path();
    let csv = crate::util::fixtures().join("height_weight.csv");
    let r = run_in(
        d,
        &["train", csv.to_str().unwrap(), "--out", "h.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(header_checksum_matches(&d.join("h.safetensors")));
    assert_eq!(run_in(d, &["run", "h.safetensors", "175"]).code, 0);
    // A metadata value changed: the tensors are intact, the header is not.
    edit(&d.join("h.safetensors"), "least squares", "least square_");
    let r = run_in(d, &["run", "h.safetensors", "175"]);
    assert_error(&r, 1, &["h.safetensors", "header is damaged"]);
    let r = run_in(d, &["verify", "h.safetensors"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("2 of 2 tensor checksums match"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("header: DAMAGED"), "{}", r.stdout);
}

/// A safetensors file of three U8 tensors `a`, `b`, `c` with the metadata
/// pairs given, plus a correct `modeltool.header_sha256` when `digest`.
fn three_tensors(metadata: &[(&str, &str)], digest: bool) -> Vec<u8> {
    let mut md: std::collections::BTreeMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let tensors = |md: &std::collections::BTreeMap<String, String>| {
        format!(
            r#"{{"__metadata__":{},"a":{{"dtype":"U8","shape":[1],"data_offsets":[0,1]}},"b":{{"dtype":"U8","shape":[1],"data_offsets":[1,2]}},"c":{{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}}}"#,
            serde_json::to_string(md).unwrap()
        )
    };
    if digest {
        let plain = raw_file(&tensors(&md), &[1, 2, 3]);
        let h = modeltool_format::Header::from_file_bytes(&plain).unwrap();
        md.insert(
            "modeltool.header_sha256".into(),
            modeltool_format::header_sha256(&h.metadata, &h.tensors),
        );
    }
    raw_file(&tensors(&md), &[1, 2, 3])
}

#[test]
fn verify_fails_when_some_tensors_have_a_checksum_and_others_not() {
    let dir = tempdir();
    let d = dir.path();
    let sum = |b: u8| modeltool_format::sha256_hex(&[b]);
    let (sa, sb) = (sum(1), sum(2));
    let two = [
        ("modeltool.sha256.a", sa.as_str()),
        ("modeltool.sha256.b", sb.as_str()),
    ];
    // Two of three, with or without a header checksum.
    for digest in [false, true] {
        write(d, "p.safetensors", &three_tensors(&two, digest));
        let r = run_in(d, &["verify", "p.safetensors"]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("2 of 3 tensor checksums match"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout.contains(
                "MISSING checksum of c: no checksum, while 2 other tensors have one: damaged metadata?"
            ),
            "{}",
            r.stdout
        );
        assert_eq!(
            r.stderr.trim(),
            "error: p.safetensors: tensor `c` has no checksum, while 2 other tensors have one: damaged metadata?"
        );
        // convert applies verify's rule: a partial set may hide an edited
        // tensor, so it is refused (exit 1, nothing written) and the
        // explicit path for a deliberate edit is named.
        let _ = std::fs::remove_file(d.join("p.json"));
        let r = run_in(d, &["convert", "p.safetensors", "p.json"]);
        assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("modeltool rehash"), "{}", r.stderr);
        assert!(!d.join("p.json").exists());
        let r = run_in(d, &["convert", "p.safetensors", "p.json", "--rehash"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // None at all: only unchecked, as before, unless the file has a header
    // checksum (modeltool writes both).
    write(d, "n.safetensors", &three_tensors(&[("k", "v")], false));
    let r = run_in(d, &["verify", "n.safetensors"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("no checksums stored"), "{}", r.stdout);
    write(d, "n.safetensors", &three_tensors(&[("k", "v")], true));
    let r = run_in(d, &["verify", "n.safetensors"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("header: checksum matches"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "MISSING checksum of a: no checksum, while its file has a header checksum (modeltool writes both): damaged metadata?"
        ),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr.lines().count(), 3, "{}", r.stderr);
    // All three: fine.
    let sc = sum(3);
    let all = [two[0], two[1], ("modeltool.sha256.c", sc.as_str())];
    write(d, "f.safetensors", &three_tensors(&all, true));
    let r = run_in(d, &["verify", "f.safetensors", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("header: checksum matches"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_malformed_header_checksum_is_malformed() {
    let dir = tempdir();
    let d = dir.path();
    write(
        d,
        "bad.safetensors",
        &three_tensors(&[("modeltool.header_sha256", "xyz")], false),
    );
    for args in [
        &["verify", "bad.safetensors"][..],
        &["convert", "bad.safetensors", "bad.json"],
        &["inspect", "bad.safetensors"],
    ] {
        let r = run_in(d, args);
        assert_error(
            &r,
            2,
            &[
                "bad.safetensors",
                "`modeltool.header_sha256`",
                "`xyz`",
                "64",
            ],
        );
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    assert!(!d.join("bad.json").exists());
    // A JSON model file has no header to checksum: the key is modeltool's.
    let json =
        r#"{"format":"modeltool.json/1","metadata":{"modeltool.header_sha256":"0"},"tensors":{}}"#;
    write(d, "r.json", json.as_bytes());
    assert_error(
        &run_in(d, &["convert", "r.json", "r.safetensors"]),
        2,
        &["r.json", "`modeltool.header_sha256`", "modeltool's own"],
    );
}

#[test]
fn bare_modeltool_prints_the_commands_and_examples_as_usage() {
    let dir = tempdir();
    let r = run_in(dir.path(), &[]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    for needle in [
        "Usage: modeltool <COMMAND>",
        "Commands:",
        "inspect",
        "Examples:",
    ] {
        assert!(r.stderr.contains(needle), "{needle} in\n{}", r.stderr);
    }
    assert!(!r.stderr.starts_with("error:"), "{}", r.stderr);
    for line in r.stderr.lines() {
        assert!(line.chars().count() <= 80, "a line over 80 columns: {line}");
    }
}
