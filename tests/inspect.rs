//! `modeltool inspect`: the human and JSON reports of the fixtures compared
//! against snapshots in tests/snapshots/, and the report's numbers checked
//! against the files on disk (single files, shards, JSON model files).
//!
//! `UPDATE_SNAPSHOTS=1 cargo test -p modeltool --test tests inspect` rewrites
//! the snapshots from the current output; review the diff before committing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{Run, assert_error, bin, fixtures, run_in, tempdir};

/// The folder of the snapshot files.
fn snapshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/snapshots")
}

/// Compares `actual` with the snapshot `name`, or writes it when
/// `UPDATE_SNAPSHOTS` is set. A mismatch names the first differing line.
fn assert_snapshot(name: &str, actual: &str) {
    let path = snapshots().join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(snapshots()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "snapshot {}: {e}; run with UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    if expected == actual {
        return;
    }
    let (mut want, mut got) = (expected.lines(), actual.lines());
    let mut line = 1;
    loop {
        match (want.next(), got.next()) {
            (Some(w), Some(g)) if w == g => line += 1,
            (None, None) => break,
            (w, g) => panic!(
                "output differs from snapshot {} at line {line}:\n  expected: {}\n  actual:   {}\n\
                 (UPDATE_SNAPSHOTS=1 rewrites the snapshot)",
                path.display(),
                w.map_or_else(|| "<end of snapshot>".to_owned(), |w| format!("{w:?}")),
                g.map_or_else(|| "<end of output>".to_owned(), |g| format!("{g:?}")),
            ),
        }
    }
    panic!(
        "output differs from snapshot {} only in line endings or the final newline",
        path.display()
    );
}

/// Runs modeltool with `args` in `dir` on an 80-column screen.
fn run_80(dir: &Path, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "80")
        .output()
        .unwrap()
        .into()
}

/// Runs `modeltool inspect ARGS` in the fixtures folder and checks success.
fn inspect_fixture(args: &[&str]) -> Run {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    let r = run_80(&fixtures(), &all);
    assert_eq!(r.code, 0, "inspect {args:?}: {}", r.stderr);
    assert!(r.stderr.is_empty(), "inspect {args:?}: {}", r.stderr);
    r
}

/// The JSON report of a successful run.
fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

/// The size of a file on disk.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// A safetensors file's header bytes: the 8-byte length plus the JSON header.
fn header_bytes(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

/// A safetensors file of zeros holding `tensors` (name, dtype, shape, bytes
/// per element), in that order.
fn safetensors(tensors: &[(String, &str, Vec<usize>, usize)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, dtype, shape, width) in tensors {
        let end = offset + shape.iter().product::<usize>() * width;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let header = serde_json::to_string(&header).unwrap();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + offset, 0);
    out
}

/// A BERT-like model: embeddings with an integer `position_ids` table,
/// `layers` identical encoder blocks, a pooler.
fn bert_like(layers: usize) -> Vec<u8> {
    let h = 8;
    let mut t = vec![
        (
            "embeddings.word_embeddings.weight".to_owned(),
            "F32",
            vec![50, h],
            4,
        ),
        ("embeddings.position_ids".to_owned(), "I64", vec![1, 16], 8),
    ];
    for i in 0..layers {
        for (part, shape) in [
            ("attention.self.query.weight", vec![h, h]),
            ("attention.self.query.bias", vec![h]),
            ("intermediate.dense.weight", vec![4 * h, h]),
            ("output.dense.weight", vec![h, 4 * h]),
        ] {
            t.push((format!("encoder.layer.{i}.{part}"), "F32", shape, 4));
        }
    }
    t.push(("pooler.dense.weight".to_owned(), "F32", vec![h, h], 4));
    safetensors(&t)
}

#[test]
fn multi_dtype_reports_match_snapshots() {
    let r = inspect_fixture(&["multi_dtype.safetensors"]);
    assert_snapshot("inspect_multi_dtype.txt", &r.stdout);
    let r = inspect_fixture(&["multi_dtype.safetensors", "--format", "json"]);
    assert_snapshot("inspect_multi_dtype.json", &r.stdout);
    let r = inspect_fixture(&["multi_dtype.safetensors", "--tensors"]);
    assert_snapshot("inspect_multi_dtype_tensors.txt", &r.stdout);
}

#[test]
fn height_reports_match_snapshots() {
    let r = inspect_fixture(&["height.json"]);
    assert_snapshot("inspect_height.txt", &r.stdout);
    let r = inspect_fixture(&["height.json", "--format", "json"]);
    assert_snapshot("inspect_height.json", &r.stdout);
}

#[test]
fn json_report_of_height_has_the_documented_numbers() {
    let r = inspect_fixture(&["height.json", "--format", "json"]);
    let j = json(&r);
    let on_disk = size(&fixtures().join("height.json"));
    assert_eq!(j["path"], "height.json");
    assert_eq!(j["kind"], "json");
    assert_eq!(j["parameter_count"], 2);
    assert_eq!(j["parameters_without_buffers"], 2);
    assert_eq!(j["tensor_count"], 2);
    assert_eq!(j["data_bytes"], 8);
    assert_eq!(j["file_bytes"], on_disk);
    // A JSON model file has no binary data section: all of it is header.
    assert_eq!(j["header_bytes"], on_disk);
    assert_eq!(j["header_share"], 1.0);
    assert_eq!(j["bytes_per_parameter"], 4.0);
    assert_eq!(j["dtypes"]["F32"]["parameter_count"], 2);
    assert_eq!(j["dtypes"]["F32"]["tensor_count"], 2);
    assert_eq!(j["dtypes"]["F32"]["bytes"], 8);
    assert_eq!(j["files"].as_array().unwrap().len(), 1);
    assert_eq!(j["files"][0]["file_bytes"], on_disk);
    assert_eq!(j["size_formula"], Value::Null, "no formula for JSON text");
    assert_eq!(j["buffers"]["tensor_count"], 0);
    assert_eq!(j["tensors"].as_array().unwrap().len(), 2);
    assert!(j["tree"].is_array());
    assert!(j["metadata"].is_object());
    assert_eq!(j["layers"]["parameter_count"], 2, "the stored architecture");
    let mine: Vec<&Value> = j["landmarks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["this_model"] == true)
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["name"], "height.json");
    assert_eq!(
        j["sizes_at"][0],
        serde_json::json!({"precision": "f32", "bytes_per_parameter": 4.0, "bytes": 8})
    );
}

#[test]
fn json_report_of_a_safetensors_file_adds_up() {
    let r = inspect_fixture(&["multi_dtype.safetensors", "--format", "json"]);
    let j = json(&r);
    let path = fixtures().join("multi_dtype.safetensors");
    let on_disk = size(&path);
    assert_eq!(j["kind"], "safetensors");
    assert_eq!(j["file_bytes"], on_disk);
    assert_eq!(j["header_bytes"], header_bytes(&path));
    assert_eq!(
        j["data_bytes"].as_u64().unwrap() + j["header_bytes"].as_u64().unwrap(),
        on_disk
    );
    assert_eq!(j["tensor_count"], 15);
    assert_eq!(j["parameter_count"], 78);
    let dtypes = j["dtypes"].as_object().unwrap();
    let sum = |key: &str| -> u64 { dtypes.values().map(|d| d[key].as_u64().unwrap()).sum() };
    assert_eq!(sum("parameter_count"), 78);
    assert_eq!(sum("bytes"), j["data_bytes"].as_u64().unwrap());
    assert_eq!(sum("tensor_count"), 15);
    assert_eq!(j["dtypes"]["C64"]["bytes"], 24);
    // Integer and BOOL tensors are buffers, not parameters.
    let buffers = &j["buffers"];
    assert_eq!(buffers["tensor_count"], 9);
    assert_eq!(
        j["parameters_without_buffers"].as_u64().unwrap()
            + buffers["element_count"].as_u64().unwrap(),
        78
    );
    let formula = &j["size_formula"];
    assert_eq!(formula["length_bytes"], 8);
    assert_eq!(formula["total"], on_disk);
    assert_eq!(formula["matches"], true);
    assert_eq!(j["metadata"]["source"], "make_multi_dtype.py");
}

#[test]
fn sharded_checkpoint_sums_over_shards_from_folder_and_index() {
    let dir = tempdir();
    let d = dir.path();
    let input = fixtures().join("multi_dtype.safetensors");
    let r = run_in(
        d,
        &[
            "convert",
            input.to_str().unwrap(),
            "shards",
            "--max-shard-size",
            "200B",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut shards: Vec<PathBuf> = std::fs::read_dir(d.join("shards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    assert!(shards.len() >= 2, "{shards:?}");
    let shard_bytes: u64 = shards.iter().map(|p| size(p)).sum();
    let shard_headers: u64 = shards.iter().map(|p| header_bytes(p)).sum();
    let index = d.join("shards/model.safetensors.index.json");
    assert!(index.is_file());

    let from_folder = json(&run_in(d, &["inspect", "shards", "--format", "json"]));
    let from_index = json(&run_in(
        d,
        &[
            "inspect",
            "shards/model.safetensors.index.json",
            "--format",
            "json",
        ],
    ));
    for j in [&from_folder, &from_index] {
        assert_eq!(j["kind"], "sharded");
        assert_eq!(j["tensor_count"], 15);
        assert_eq!(j["parameter_count"], 78);
        assert_eq!(j["data_bytes"], 322);
        assert_eq!(j["header_bytes"], shard_headers);
        // The index file is not counted: file_bytes is the shards' sum.
        assert_eq!(j["file_bytes"], shard_bytes);
        assert_ne!(j["file_bytes"], shard_bytes + size(&index));
        let files = j["files"].as_array().unwrap();
        assert_eq!(files.len(), shards.len());
        let per_file: u64 = files
            .iter()
            .map(|f| f["file_bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(per_file, shard_bytes);
        let tensors: u64 = files
            .iter()
            .map(|f| f["tensor_count"].as_u64().unwrap())
            .sum();
        assert_eq!(tensors, 15);
        assert_eq!(j["size_formula"]["length_bytes"], 8 * shards.len() as u64);
        assert_eq!(j["size_formula"]["matches"], true);
    }
    assert_eq!(from_folder["path"], "shards");
    assert_eq!(from_index["path"], "shards/model.safetensors.index.json");
    assert_eq!(from_folder["files"], from_index["files"]);
    assert_eq!(from_folder["tensors"], from_index["tensors"]);

    let human = run_in(d, &["inspect", "shards"]);
    assert_eq!(human.code, 0, "{}", human.stderr);
    assert!(
        human
            .stdout
            .starts_with(&format!("shards (sharded, {} files)\n", shards.len())),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains(&format!("= 8 x {} + ", shards.len())),
        "{}",
        human.stdout
    );
}

#[test]
fn repeated_blocks_collapse_into_one_row() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("bert.safetensors"), bert_like(6)).unwrap();
    let r = run_80(d, &["inspect", "bert.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let block = 8 * 8 + 8 + 32 * 8 + 8 * 32;
    assert!(
        r.stdout
            .contains(&format!("encoder.layer.[0-5]  x6  {block} each")),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("encoder.layer.0"), "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "  buffers           16 elements in 1 tensor, not parameters:\n                      embeddings.position_ids (integer table)\n"
        ),
        "{}",
        r.stdout
    );
    let j = json(&run_in(
        d,
        &["inspect", "bert.safetensors", "--format", "json"],
    ));
    let run = j["tree"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "encoder.layer.[0-5]")
        .unwrap_or_else(|| panic!("{}", j["tree"]));
    assert_eq!(run["count"], 6);
    assert_eq!(run["indices"], serde_json::json!([0, 5]));
    assert_eq!(run["parameter_count"], block);
    assert_eq!(run["total_parameter_count"], 6 * block);
    assert_eq!(run["tensor_count"], 4);
    assert_eq!(j["buffers"]["element_count"], 16);
    assert_eq!(
        j["parameters_without_buffers"],
        j["parameter_count"].as_u64().unwrap() - 16
    );
}

#[test]
fn depth_1_shows_fewer_lines_than_the_default() {
    let full = inspect_fixture(&["height.json"]);
    let top = inspect_fixture(&["height.json", "--depth", "1"]);
    assert!(
        top.stdout.lines().count() < full.stdout.lines().count(),
        "--depth 1:\n{}\ndefault:\n{}",
        top.stdout,
        full.stdout
    );
    assert!(full.stdout.contains("Modules (2 of 2 levels)"));
    assert!(full.stdout.contains("weight  [1, 1]"));
    assert!(
        top.stdout
            .contains("Modules (1 of 2 levels; --depth N shows more)"),
        "{}",
        top.stdout
    );
    assert!(!top.stdout.contains("weight  [1, 1]"), "{}", top.stdout);
    // The JSON tree is cut at the same depth.
    let j = json(&inspect_fixture(&[
        "height.json",
        "--depth",
        "1",
        "--format",
        "json",
    ]));
    assert_eq!(j["tree"][0]["children"], serde_json::json!([]));
    let j = json(&inspect_fixture(&["height.json", "--format", "json"]));
    assert_eq!(j["tree"][0]["children"].as_array().unwrap().len(), 2);
}

#[test]
fn tensors_flag_lists_every_tensor() {
    let plain = inspect_fixture(&["multi_dtype.safetensors"]);
    let listed = inspect_fixture(&["multi_dtype.safetensors", "--tensors"]);
    let heading = "\nTensors (offsets from the start of each file's data, as in its header)\n";
    assert!(!plain.stdout.contains(heading));
    let table: Vec<&str> = listed
        .stdout
        .split(heading)
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 1 + 15, "a heading and one row per tensor");
    assert!(
        table
            .iter()
            .any(|l| l.contains("bool") && l.ends_with("(buffer)"))
    );
}

#[test]
fn malformed_file_gives_one_error_line_and_exit_2() {
    let dir = tempdir();
    let d = dir.path();
    let mut bad = u64::MAX.to_le_bytes().to_vec();
    bad.extend_from_slice(b"{}");
    std::fs::write(d.join("bad.safetensors"), &bad).unwrap();
    let r = run_in(d, &["inspect", "bad.safetensors"]);
    assert_error(&r, 2, &["bad.safetensors", "header"]);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    std::fs::write(d.join("bad.json"), "{").unwrap();
    let r = run_in(d, &["inspect", "bad.json", "--format", "json"]);
    assert_error(&r, 2, &["bad.json"]);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);

    let r = run_in(d, &["inspect", "missing.safetensors"]);
    assert_error(&r, 2, &["missing.safetensors"]);
}

/// Spawns `modeltool inspect` on a model with thousands of tensors, reads
/// one line and closes the pipe, as `modeltool inspect big | head -1` does.
fn closed_pipe(extra: &[&str]) -> Run {
    let dir = tempdir();
    let d = dir.path();
    let tensors: Vec<_> = (0..5000)
        .map(|i| (format!("blocks.{i}.weight"), "F32", vec![1 + i % 7], 4))
        .collect();
    std::fs::write(d.join("big.safetensors"), safetensors(&tensors)).unwrap();
    let mut child = Command::new(bin())
        .args(["inspect", "big.safetensors"])
        .args(extra)
        .current_dir(d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "no output before the pipe closed");
    drop(stdout);
    child.wait_with_output().unwrap().into()
}

#[test]
fn early_closed_pipe_exits_quietly() {
    // The tensor table alone is hundreds of KB, far more than a pipe holds,
    // so modeltool is still writing when the pipe closes.
    let r = closed_pipe(&["--tensors"]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(r.stderr.is_empty(), "stderr: {}", r.stderr);
}

#[test]
fn early_closed_pipe_exits_quietly_for_json() {
    let r = closed_pipe(&["--format", "json"]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(r.stderr.is_empty(), "stderr: {}", r.stderr);
}

#[test]
fn columns_widen_the_view_and_80_is_the_least() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("bert.safetensors"), bert_like(2)).unwrap();
    let width = |cols: &str| -> usize {
        let r: Run = Command::new(bin())
            .args(["inspect", "bert.safetensors", "--tensors"])
            .current_dir(d)
            .env("COLUMNS", cols)
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.stdout.lines().map(|l| l.chars().count()).max().unwrap()
    };
    let narrow = width("80");
    assert!(narrow <= 80, "{narrow}");
    // Names shortened at 80 columns are whole on a wider screen.
    let wide = width("200");
    assert!(wide > 80 && wide <= 200, "{wide}");
    assert!(width("20") <= 80);
}
