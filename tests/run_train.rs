//! `modeltool train` and `modeltool run` as a user drives them.

use std::path::Path;

use crate::util::{assert_error, fixtures, run_in, tempdir};

fn copy_fixture(dir: &Path, name: &str) {
    std::fs::copy(fixtures().join(name), dir.join(name)).unwrap();
}

#[test]
fn two_samples_give_the_line_a_1_b_minus_110_and_it_runs() {
    let dir = tempdir();
    let d = dir.path();
    copy_fixture(d, "height_weight.csv");
    let r = run_in(d, &["train", "height_weight.csv", "--out", "h.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("final loss (mean squared error): 0\n"),
        "{}",
        r.stdout
    );
    let r = run_in(d, &["run", "h.safetensors", "175", "160"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "65\n50\n"), "{}", r.stderr);
    // The file records its architecture, checksums and how it was trained.
    assert_eq!(run_in(d, &["verify", "h.safetensors", "--strict"]).code, 0);
    let r = run_in(d, &["convert", "h.safetensors", "h.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("h.json")).unwrap()).unwrap();
    assert_eq!(v["tensors"]["0.weight"]["data"], serde_json::json!([1.0]));
    assert_eq!(v["tensors"]["0.bias"]["data"], serde_json::json!([-110.0]));
    assert_eq!(v["metadata"]["training.data"], "height_weight.csv");
    assert_eq!(v["metadata"]["training.rows"], "2");
    assert_eq!(v["architecture"]["layers"][0]["type"], "linear");
    // The shipped fixture is that same model.
    let r = run_in(&fixtures(), &["run", "height.json", "175"]);
    assert_eq!(r.stdout, "65\n");
}

#[test]
fn a_tanh_network_fits_a_curve_a_line_cannot() {
    let dir = tempdir();
    let d = dir.path();
    copy_fixture(d, "square.csv");
    let loss = |args: &[&str]| -> f64 {
        let r = run_in(d, args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with("final loss"))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let line = loss(&["train", "square.csv", "--out", "line.json"]);
    let stacked = loss(&[
        "train",
        "square.csv",
        "--out",
        "s.json",
        "--hidden",
        "8,8",
        "--activation",
        "identity",
    ]);
    let curve = loss(&[
        "train",
        "square.csv",
        "--out",
        "c.json",
        "--hidden",
        "16,16",
        "--plot",
        "loss.svg",
    ]);
    assert!(line > 5.0, "a line cannot fit y = x^2: {line}");
    assert!(
        (stacked - line).abs() < 0.1 * line,
        "stacked linear layers are still a line: {stacked} vs {line}"
    );
    assert!(curve < 0.05, "tanh network fits: {curve}");
    assert!(
        std::fs::read_to_string(d.join("loss.svg"))
            .unwrap()
            .contains("<svg")
    );
    let r = run_in(d, &["run", "c.json", "-2", "0", "2"]);
    let ys: Vec<f64> = r.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert!(
        (ys[0] - 4.0).abs() < 0.3 && ys[1].abs() < 0.3 && (ys[2] - 4.0).abs() < 0.3,
        "{ys:?}"
    );
    // Same seed, same model, bit for bit.
    loss(&[
        "train",
        "square.csv",
        "--out",
        "c2.json",
        "--hidden",
        "16,16",
    ]);
    assert_eq!(
        std::fs::read(d.join("c.json")).unwrap(),
        std::fs::read(d.join("c2.json")).unwrap()
    );
}

#[test]
fn batches_from_csv_and_safetensors_to_csv_and_safetensors() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("in.csv"), "height_cm\n175\n160\n").unwrap();
    let model = fixtures().join("height.json");
    let m = model.to_str().unwrap();
    let r = run_in(d, &["run", m, "--input", "in.csv", "--output", "out.csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The output CSV has a header row: the model's recorded target.
    assert_eq!(
        std::fs::read_to_string(d.join("out.csv")).unwrap(),
        "weight_kg\n65\n50\n"
    );
    let r = run_in(
        d,
        &["run", m, "--input", "in.csv", "--output", "out.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The safetensors output feeds back in as input of the same width.
    let r = run_in(d, &["convert", "out.safetensors", "out.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out.json")).unwrap()).unwrap();
    assert_eq!(v["tensors"]["output"]["shape"], serde_json::json!([2, 1]));
    assert_eq!(
        v["tensors"]["output"]["data"],
        serde_json::json!([65.0, 50.0])
    );
    let input = r#"{"format":"modeltool.json/1","tensors":{"input":{"dtype":"F32","shape":[1,1],"data":[180.0]}}}"#;
    std::fs::write(d.join("in.json"), input).unwrap();
    assert_eq!(run_in(d, &["convert", "in.json", "in.safetensors"]).code, 0);
    let r = run_in(d, &["run", m, "--input", "in.safetensors"]);
    assert_eq!(r.stdout, "70\n", "{}", r.stderr);
}

#[test]
fn sequential_files_need_an_activation_and_others_say_what_is_missing() {
    let dir = tempdir();
    let d = dir.path();
    // nn.Sequential(Linear(1, 2), ReLU(), Linear(2, 1)) saved tensors-only.
    let seq = r#"{"format":"modeltool.json/1","tensors":{
        "0.weight":{"dtype":"F32","shape":[2,1],"data":[1.0,-1.0]},
        "0.bias":{"dtype":"F32","shape":[2],"data":[0.0,0.0]},
        "2.weight":{"dtype":"F32","shape":[1,2],"data":[1.0,1.0]},
        "2.bias":{"dtype":"F32","shape":[1],"data":[0.5]}}}"#;
    std::fs::write(d.join("seq.json"), seq).unwrap();
    assert_error(
        &run_in(d, &["run", "seq.json", "3"]),
        2,
        &["seq.json", "--activation"],
    );
    let r = run_in(d, &["run", "seq.json", "3", "-2", "--activation", "relu"]);
    assert_eq!(
        r.stdout, "3.5\n2.5\n",
        "|x| + 0.5 through relu: {}",
        r.stderr
    );
    let r = run_in(d, &["run", "seq.json", "3", "--activation", "identity"]);
    assert_eq!(r.stdout, "0.5\n");

    let other = r#"{"format":"modeltool.json/1","tensors":{"encoder.w":{"dtype":"F32","shape":[1,1],"data":[1.0]}}}"#;
    std::fs::write(d.join("other.json"), other).unwrap();
    assert_error(
        &run_in(d, &["run", "other.json", "1"]),
        2,
        &["other.json", "architecture"],
    );
    // A layer that says two things at once: read by one reader as relu, by
    // another as linear. Refused, not run (found by fuzzing).
    let height = std::fs::read_to_string(fixtures().join("height.json")).unwrap();
    let twice = height.replace(r#"{"type":"linear","#, r#"{"type":"relu","type":"linear","#);
    assert_ne!(twice, height);
    std::fs::write(d.join("twice.json"), twice).unwrap();
    assert_error(
        &run_in(d, &["run", "twice.json", "175"]),
        2,
        &["twice.json", "`type` appears twice"],
    );
    assert_error(
        &run_in(d, &["convert", "twice.json", "twice.safetensors"]),
        2,
        &["twice.json", "`type` appears twice"],
    );
    assert!(!d.join("twice.safetensors").exists());
    assert_error(
        &run_in(&fixtures(), &["run", "height.json", "1,2"]),
        2,
        &["2 values", "1 input"],
    );
    assert_error(
        &run_in(&fixtures(), &["run", "height.json", "tall"]),
        2,
        &["`tall` is not a number"],
    );
    assert_error(
        &run_in(&fixtures(), &["run", "height.json"]),
        2,
        &["samples"],
    );
}

#[test]
fn bad_csv_gets_an_error_naming_line_and_column() {
    let dir = tempdir();
    let d = dir.path();
    let cases: [(&str, &str, &[&str]); 4] = [
        ("ragged.csv", "x,y\n1,2\n3\n", &["ragged.csv", "line 3"]),
        (
            "words.csv",
            "x,y\n1,2\nabc,4\n",
            &["words.csv", "line 3", "`x`", "`abc` is not a number"],
        ),
        ("empty.csv", "", &["empty.csv"]),
        ("header_only.csv", "x,y\n", &["header_only.csv"]),
    ];
    for (name, text, needles) in cases {
        std::fs::write(d.join(name), text).unwrap();
        let r = run_in(d, &["train", name, "--out", "m.json"]);
        assert_error(&r, 2, needles);
        assert!(!d.join("m.json").exists(), "{name}: no model written");
    }
    std::fs::write(d.join("ok.csv"), "x,y\n1,2\n2,4\n").unwrap();
    assert_error(
        &run_in(d, &["train", "ok.csv", "--out", "m.txt"]),
        2,
        &["m.txt", ".json or .safetensors"],
    );
    assert_error(
        &run_in(d, &["train", "ok.csv", "--out", "m.json", "--target", "z"]),
        2,
        &["`z`"],
    );
}

#[test]
fn outputs_never_replace_inputs_and_failures_leave_nothing() {
    let dir = tempdir();
    let d = dir.path();
    copy_fixture(d, "height_weight.csv");
    copy_fixture(d, "height.json");
    let model = std::fs::read(d.join("height.json")).unwrap();
    for args in [
        &[
            "run",
            "height.json",
            "175",
            "--output",
            "height.json",
            "--force",
        ][..],
        &[
            "train",
            "height_weight.csv",
            "--out",
            "height_weight.csv",
            "--force",
        ],
        &[
            "train",
            "height_weight.csv",
            "--plot",
            "height_weight.csv",
            "--out",
            "m.json",
            "--force",
        ],
    ] {
        // Each is refused before any work, naming the file it would replace.
        let target = args[args
            .iter()
            .position(|a| a.starts_with("--o") || *a == "--plot")
            .unwrap()
            + 1];
        assert_error(&run_in(d, args), 2, &[target]);
    }
    assert_eq!(std::fs::read(d.join("height.json")).unwrap(), model);
    assert!(
        std::fs::read_to_string(d.join("height_weight.csv"))
            .unwrap()
            .starts_with("height_cm")
    );
    // A plot that cannot be written takes the model back with it.
    let r = run_in(
        d,
        &[
            "train",
            "height_weight.csv",
            "--out",
            "m.json",
            "--plot",
            "no/such/dir/loss.svg",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!d.join("m.json").exists(), "no half-finished output");
}

#[test]
fn run_refuses_damaged_parameters_with_exit_1() {
    let dir = tempdir();
    let d = dir.path();
    let text = std::fs::read_to_string(fixtures().join("height.json")).unwrap();
    // a = 2 instead of 1, checksum left as it was.
    std::fs::write(
        d.join("h.json"),
        text.replacen("\"data\": [1.0]", "\"data\": [2.0]", 1),
    )
    .unwrap();
    assert_error(
        &run_in(d, &["run", "h.json", "175"]),
        1,
        &["h.json", "`0.weight`", "damaged"],
    );
}

/// `run model.json --input height_weight.csv` failed with "line 2 has 2 values; the model
/// takes 1 inputs", though the model records `training.inputs: height_cm`: run read CSV with
/// a second, hand-written reader that knew no column names.
#[test]
fn run_input_picks_columns_by_the_names_the_model_records() {
    let dir = tempdir();
    let d = dir.path();
    copy_fixture(d, "height_weight.csv");
    copy_fixture(d, "height.json");
    // Inputs and targets: predictions beside targets, and the error.
    let r = run_in(d, &["run", "height.json", "--input", "height_weight.csv"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["predicted", "weight_kg", "weight_kg"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["60", "60"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["50", "50"]
    );
    assert_eq!(
        lines[3],
        "2 rows: mean squared error 0, mean absolute error 0"
    );

    // Columns in another order, an extra column, targets off the line.
    std::fs::write(
        d.join("more.csv"),
        "weight_kg,name,height_cm\n61,a,170\n48,b,160\n",
    )
    .unwrap();
    let r = run_in(
        d,
        &[
            "run",
            "height.json",
            "--input",
            "more.csv",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["inputs"], serde_json::json!(["height_cm"]));
    assert_eq!(v["outputs"], serde_json::json!(["weight_kg"]));
    assert_eq!(v["predictions"], serde_json::json!([[60.0], [50.0]]));
    assert_eq!(v["targets"], serde_json::json!([[61.0], [48.0]]));
    assert_eq!(v["error"]["mse"], 2.5);
    assert_eq!(v["error"]["mae"], 1.5);

    // Without the targets: predictions only; without a header: by position.
    std::fs::write(d.join("in.csv"), "height_cm\n175\n").unwrap();
    let r = run_in(d, &["run", "height.json", "--input", "in.csv"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "65\n"), "{}", r.stderr);
    std::fs::write(d.join("bare.csv"), "175\n-10\n").unwrap();
    let r = run_in(d, &["run", "height.json", "--input", "bare.csv"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "65\n-120\n"),
        "{}",
        r.stderr
    );

    // A header without the recorded input is refused, naming both.
    std::fs::write(d.join("other.csv"), "height\n175\n").unwrap();
    assert_error(
        &run_in(d, &["run", "height.json", "--input", "other.csv"]),
        2,
        &["other.csv", "`height_cm`", "columns: height"],
    );
    // Column names from the file are escaped in errors.
    std::fs::write(d.join("evil.csv"), "height_cm,x\u{1b}[2J\n1,2\nabc,3\n").unwrap();
    let r = run_in(d, &["run", "height.json", "--input", "evil.csv"]);
    assert_error(&r, 2, &["evil.csv", "line 3", "`abc`"]);
    std::fs::write(d.join("evil.csv"), "x\u{1b}[2J\n1\n").unwrap();
    let r = run_in(d, &["run", "height.json", "--input", "evil.csv"]);
    assert_error(&r, 2, &["x\\u{1b}[2J"]);
    assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
}

/// `run seq.safetensors 1,2,3 -1,0.5,2` and `-inf` failed as "unexpected argument".
#[test]
fn samples_may_be_negative_comma_lists() {
    let dir = tempdir();
    let d = dir.path();
    // A 3 -> 3 identity layer.
    let eye = r#"{"format":"modeltool.json/1","tensors":{
        "0.weight":{"dtype":"F32","shape":[3,3],"data":[1,0,0,0,1,0,0,0,1]}}}"#;
    std::fs::write(d.join("eye.json"), eye).unwrap();
    let r = run_in(d, &["run", "eye.json", "1,2,3", "-1,0.5,2"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "1,2,3\n-1,0.5,2\n"),
        "{}",
        r.stderr
    );
    let r = run_in(d, &["run", "eye.json", "-1,-2,-3", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["predictions"], serde_json::json!([[-1.0, -2.0, -3.0]]));
    assert_error(
        &run_in(d, &["run", "eye.json", "1,2,3", "-inf,0,0"]),
        2,
        &["sample 2", "`-inf` is not a finite number"],
    );
    assert_error(
        &run_in(d, &["run", "eye.json", "-1,2,3", "--bogus"]),
        2,
        &["unexpected argument", "--bogus"],
    );
    // Options after negative samples are still options.
    let seq = r#"{"format":"modeltool.json/1","tensors":{
        "0.weight":{"dtype":"F32","shape":[2,1],"data":[1.0,-1.0]},
        "2.weight":{"dtype":"F32","shape":[1,2],"data":[1.0,1.0]}}}"#;
    std::fs::write(d.join("seq.json"), seq).unwrap();
    let r = run_in(
        d,
        &[
            "run",
            "seq.json",
            "-3",
            "--activation",
            "relu",
            "-2",
            "--output",
            "o.csv",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(d.join("o.csv")).unwrap(),
        "output\n3\n2\n"
    );
}

/// An encoder's checkpoint got "its 53 nn.Sequential-style linear layers need --activation",
/// then with one "tensor names are not nn.Sequential-style": it is not a network `run` can
/// execute, and that is said once, first.
#[test]
fn a_model_that_is_not_a_linear_stack_says_so_once() {
    let dir = tempdir();
    let d = dir.path();
    let encoder = r#"{"format":"modeltool.json/1","tensors":{
        "0.weight":{"dtype":"F32","shape":[1,1],"data":[1.0]},
        "2.weight":{"dtype":"F32","shape":[1,1],"data":[1.0]},
        "encoder.layer.0.attention.self.query.weight":{"dtype":"F32","shape":[1,1],"data":[1.0]}}}"#;
    std::fs::write(d.join("enc.json"), encoder).unwrap();
    for args in [
        &["run", "enc.json", "1"][..],
        &["run", "enc.json", "1", "--activation", "relu"],
    ] {
        let r = run_in(d, args);
        assert_error(
            &r,
            2,
            &[
                "enc.json",
                "not a network that can be run",
                "encoder.layer.0.attention.self.query.weight",
                "0.weight, 0.bias, 2.weight",
            ],
        );
        assert!(!r.stderr.contains("--activation"), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
}
