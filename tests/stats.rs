//! `modeltool stats` and `modeltool diff`: figures checked against numpy
//! (when `MODELTOOL_PYTHON` is set), exit codes as diff(1), NaN handling,
//! the checksum shortcut and what it reads, and output fit for a terminal.

use std::path::{Path, PathBuf};
use std::process::Command;

use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, write_safetensors};

use crate::util::{self, assert_error, run_in, tempdir};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

/// Runs a script of tests/python/ in `dir`; fails the test with its message.
fn py(python: &Path, dir: &Path, name: &str, args: &[&str]) {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Writes F32 tensors, with modeltool checksums when `checksums`.
fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)], checksums: bool) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut meta = ModelMetadata::default();
    let list: Vec<(TensorMeta, &[u8])> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            if checksums {
                meta.checksums.insert((*name).into(), Checksum::of(b));
            }
            let t = TensorMeta {
                name: (*name).into(),
                dtype: Dtype::F32,
                shape: shape.clone(),
            };
            (t, &b[..])
        })
        .collect();
    let file = std::fs::File::create(path).unwrap();
    write_safetensors(file, &list, &meta.to_safetensors()).unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn stats_agree_with_numpy_on_every_float_dtype_with_nan_inf_and_subnormals() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    py(
        &python,
        dir.path(),
        "write_stats_models.py",
        &["m.safetensors"],
    );
    let run = run_in(dir.path(), &["stats", "m.safetensors", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::write(dir.path().join("s.json"), &run.stdout).unwrap();
    py(
        &python,
        dir.path(),
        "check_stats.py",
        &["m.safetensors", "s.json"],
    );
}

#[test]
fn stats_agree_with_numpy_on_the_fixtures() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let model = util::fixtures().join("multi_dtype.safetensors");
    let model = model.to_str().unwrap();
    let run = run_in(dir.path(), &["stats", model, "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    std::fs::write(dir.path().join("s.json"), &run.stdout).unwrap();
    py(&python, dir.path(), "check_stats.py", &[model, "s.json"]);
}

#[test]
fn stats_figures_of_a_known_tensor() {
    let dir = tempdir();
    let v = vec![1.0, -2.0, 0.0, f32::NAN, f32::INFINITY, 1e-40, 4.0];
    write_f32(
        &dir.path().join("m.safetensors"),
        &[("w", vec![7], v)],
        false,
    );
    let run = run_in(dir.path(), &["stats", "m.safetensors", "--format", "json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let w = &json(&run.stdout)["tensors"][0];
    assert_eq!(w["min"], -2.0);
    assert_eq!(w["max"], 4.0);
    assert_eq!(w["max_abs"], 4.0);
    assert_eq!(
        (w["nan"].as_u64(), w["pos_inf"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (w["zeros"].as_u64(), w["subnormal"].as_u64()),
        (Some(1), Some(1))
    );
    let finite = [1.0, -2.0, 0.0, f64::from(1e-40f32), 4.0];
    let mean = finite.iter().sum::<f64>() / 5.0;
    assert!((w["mean"].as_f64().unwrap() - mean).abs() < 1e-15);
}

#[test]
fn stats_human_view_fits_80_columns_and_escapes_names() {
    let dir = tempdir();
    let long = format!("encoder.{}.weight", "layer".repeat(30));
    write_f32(
        &dir.path().join("m.safetensors"),
        &[
            (&long, vec![3], vec![1.0, f32::NAN, -1e-3]),
            ("b\u{1b}[2J", vec![2], vec![0.0, 1.0]),
        ],
        false,
    );
    let run = run_in(dir.path(), &["stats", "m.safetensors"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains('\u{1b}'), "{}", run.stdout);
    assert!(run.stdout.contains("\\u{1b}"), "{}", run.stdout);
    assert!(run.stdout.lines().count() >= 5, "{}", run.stdout);
    for line in run.stdout.lines() {
        let cols = modeltool_format::text::width(line);
        assert!(cols <= 80, "{cols} columns: {line}");
    }
}

#[test]
fn stats_tensors_glob_picks_and_a_glob_matching_nothing_is_bad_input() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("m.safetensors"),
        &[
            ("fc1.weight", vec![1], vec![1.0]),
            ("fc1.bias", vec![1], vec![2.0]),
            ("fc2.weight", vec![1], vec![3.0]),
        ],
        false,
    );
    let run = run_in(
        dir.path(),
        &[
            "stats",
            "m.safetensors",
            "--tensors",
            "*.weight",
            "--format",
            "json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = json(&run.stdout)["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["fc1.weight", "fc2.weight"]);
    let run = run_in(dir.path(), &["stats", "m.safetensors", "--tensors", "fc3*"]);
    assert_error(&run, 2, &["m.safetensors", "fc3*"]);
}

#[test]
fn diff_of_a_model_against_itself_is_exit_0() {
    let dir = tempdir();
    let v: Vec<f32> = (0..100).map(|i| i as f32 * 0.5).collect();
    write_f32(
        &dir.path().join("m.safetensors"),
        &[("w", vec![10, 10], v)],
        false,
    );
    let run = run_in(dir.path(), &["diff", "m.safetensors", "m.safetensors"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.starts_with("same:"), "{}", run.stdout);
}

#[test]
fn diff_finds_a_one_value_change_with_its_index() {
    let dir = tempdir();
    let v: Vec<f32> = (0..24).map(|i| i as f32).collect();
    let mut w = v.clone();
    w[23] = 100.0; // [1, 2, 3] of [2, 3, 4]
    write_f32(
        &dir.path().join("a.safetensors"),
        &[("t", vec![2, 3, 4], v)],
        true,
    );
    write_f32(
        &dir.path().join("b.safetensors"),
        &[("t", vec![2, 3, 4], w)],
        true,
    );
    let run = run_in(
        dir.path(),
        &["diff", "a.safetensors", "b.safetensors", "--format", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let c = &json(&run.stdout)["changed"][0];
    assert_eq!(c["differing"], 1);
    assert_eq!(c["max_abs_index"], 23);
    assert_eq!(c["max_abs_position"], serde_json::json!([1, 2, 3]));
    assert_eq!(c["max_abs_diff"], 77.0);
    let human = run_in(dir.path(), &["diff", "a.safetensors", "b.safetensors"]);
    assert!(human.stdout.contains("at [1, 2, 3]"), "{}", human.stdout);
}

#[test]
fn diff_counts_nan_at_the_same_place_as_equal_and_against_a_number_as_different() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("a.safetensors"),
        &[("t", vec![3], vec![f32::NAN, 1.0, 2.0])],
        false,
    );
    // Another NaN payload at the same place: still equal.
    let other_nan = f32::from_bits(0x7fc0_0001);
    write_f32(
        &dir.path().join("b.safetensors"),
        &[("t", vec![3], vec![other_nan, 1.0, 2.0])],
        false,
    );
    write_f32(
        &dir.path().join("c.safetensors"),
        &[("t", vec![3], vec![0.0, 1.0, 2.0])],
        false,
    );
    let same = run_in(dir.path(), &["diff", "a.safetensors", "b.safetensors"]);
    assert_eq!(same.code, 0, "{}", same.stdout);
    let run = run_in(
        dir.path(),
        &["diff", "a.safetensors", "c.safetensors", "--format", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    let c = &json(&run.stdout)["changed"][0];
    assert_eq!(
        (c["differing"].as_u64(), c["nan_mismatch"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn diff_tolerance_is_numpy_isclose_and_bad_tolerance_is_exit_2() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("a.safetensors"),
        &[("t", vec![2], vec![1.0, 100.0])],
        false,
    );
    write_f32(
        &dir.path().join("b.safetensors"),
        &[("t", vec![2], vec![1.001, 100.5])],
        false,
    );
    let args = |tol: &str| {
        run_in(
            dir.path(),
            &["diff", "a.safetensors", "b.safetensors", "--tolerance", tol],
        )
    };
    assert_eq!(args("0.01").code, 1, "0.5 apart at 100");
    assert_eq!(args("0.01,0.01").code, 0, "0.5 <= 0.01 + 0.01 * 100.5");
    assert_eq!(args("0.002").code, 1);
    assert_error(&args("=-1"), 2, &["tolerance"]);
    let run = run_in(
        dir.path(),
        &["diff", "a.safetensors", "missing.safetensors"],
    );
    assert_error(&run, 2, &["missing.safetensors"]);
}

#[test]
fn diff_of_checksummed_files_differing_in_one_tensor_reads_only_that_tensor() {
    let dir = tempdir();
    let tensor =
        |seed: usize| -> Vec<f32> { (0..250_000).map(|i| ((i * seed) % 1000) as f32).collect() };
    let names: Vec<String> = (0..8).map(|i| format!("layer.{i}.weight")).collect();
    let a: Vec<(&str, Vec<usize>, Vec<f32>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), vec![500, 500], tensor(i + 1)))
        .collect();
    let mut b = a.clone();
    b[5].2[1234] += 1.0;
    write_f32(&dir.path().join("a.safetensors"), &a, true);
    write_f32(&dir.path().join("b.safetensors"), &b, true);
    let run = run_in(
        dir.path(),
        &["diff", "a.safetensors", "b.safetensors", "--format", "json"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let r = json(&run.stdout);
    let one_tensor = 250_000 * 4;
    assert_eq!(r["bytes_read"], 2 * one_tensor, "one tensor from each file");
    assert_eq!(r["changed"][0]["name"], "layer.5.weight");
    assert_eq!(r["equal"].as_array().unwrap().len(), 7);
    assert!(
        r["equal"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["by"] == "checksum")
    );
    // --read-all reads everything, and says so.
    let run = run_in(
        dir.path(),
        &[
            "diff",
            "a.safetensors",
            "b.safetensors",
            "--read-all",
            "--format",
            "json",
        ],
    );
    assert_eq!(json(&run.stdout)["bytes_read"], 2 * 8 * one_tensor);
    let human = run_in(dir.path(), &["diff", "a.safetensors", "b.safetensors"]);
    assert!(human.stdout.contains("were not read"), "{}", human.stdout);
}

#[test]
fn diff_agrees_with_numpy_across_dtypes_nan_and_tolerance() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    py(
        &python,
        dir.path(),
        "write_diff_models.py",
        &["a.safetensors", "b.safetensors"],
    );
    for (tol, abs, rel) in [("0", "0", "0"), ("1e-5,1e-3", "1e-5", "1e-3")] {
        let run = run_in(
            dir.path(),
            &[
                "diff",
                "a.safetensors",
                "b.safetensors",
                "--tolerance",
                tol,
                "--format",
                "json",
            ],
        );
        assert_eq!(run.code, 1, "{}", run.stderr);
        std::fs::write(dir.path().join("d.json"), &run.stdout).unwrap();
        py(
            &python,
            dir.path(),
            "check_diff.py",
            &["a.safetensors", "b.safetensors", "d.json", abs, rel],
        );
    }
}

#[test]
fn diff_compares_values_across_dtypes_and_names_the_dtype_change() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("a.safetensors"),
        &[("t", vec![3], vec![0.5, -1.0, 2.0])],
        false,
    );
    let run = run_in(
        dir.path(),
        &[
            "convert",
            "a.safetensors",
            "b.safetensors",
            "--dtype",
            "f16",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = run_in(dir.path(), &["diff", "a.safetensors", "b.safetensors"]);
    assert_eq!(
        run.code, 0,
        "values exactly representable in F16: {}",
        run.stdout
    );
    assert!(
        run.stdout.contains("t: F32 vs F16, values equal"),
        "{}",
        run.stdout
    );
}

#[test]
fn verify_values_fails_naming_each_tensor_with_nan_or_inf_and_says_when_values_were_not_read() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("m.safetensors"),
        &[
            (
                "mask",
                vec![3],
                vec![0.0, f32::NEG_INFINITY, f32::NEG_INFINITY],
            ),
            ("w", vec![2], vec![f32::NAN, 1.0]),
            ("ok", vec![1], vec![1.0]),
        ],
        true,
    );
    let run = run_in(dir.path(), &["verify", "m.safetensors"]);
    assert_eq!(run.code, 0, "not read by default: {}", run.stderr);
    assert!(run.stdout.contains("values: not checked"), "{}", run.stdout);
    let run = run_in(dir.path(), &["verify", "m.safetensors", "--values"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr
            .contains("tensor `mask` holds 0 NaN, 0 +inf, 2 -inf"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("tensor `w` holds 1 NaN, 0 +inf, 0 -inf"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("`ok`"), "{}", run.stderr);
    let run = run_in(
        dir.path(),
        &["verify", "m.safetensors", "--values", "--format", "json"],
    );
    let v = json(&run.stdout);
    assert_eq!(v["ok"], false);
    assert_eq!(v["values"]["non_finite"][1]["nan"], 1);
}

#[test]
fn inspect_stats_adds_the_figures_below_the_report() {
    let dir = tempdir();
    write_f32(
        &dir.path().join("m.safetensors"),
        &[("w", vec![2], vec![1.0, 3.0])],
        false,
    );
    let run = run_in(dir.path(), &["inspect", "m.safetensors", "--stats"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let values = run
        .stdout
        .split("\nValues\n")
        .nth(1)
        .expect("a Values section");
    assert!(
        values.contains("F32: 1 tensor, 2 values\n    min 1.000, max 3.000, mean 2.000"),
        "{values}"
    );
    let run = run_in(
        dir.path(),
        &["inspect", "m.safetensors", "--stats", "--format", "json"],
    );
    assert_eq!(json(&run.stdout)["stats"]["tensors"][0]["std"], 1.0);
}
