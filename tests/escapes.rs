//! Escape injection: files whose tensor names, metadata keys and values,
//! layer types, shard file names and CSV column names carry terminal
//! controls (ESC sequences, `\r`, U+202E and friends), run through every
//! command. The raw bytes written to stdout and stderr must hold no control,
//! format or bidi character but `\n`; `--format json` must parse and hold
//! the exact original strings. And every command's human output on the
//! shipped fixtures fits 80 columns.

use std::path::Path;
use std::process::Command;

use modeltool_format::text::{is_unsafe_char, width};
use serde_json::{Value, json};

use crate::util::{Run, bin, fixtures, tempdir};

/// Strings a hostile file may carry, each with a different trick.
const NASTY: [&str; 6] = [
    "\u{1b}[2J\u{1b}[H",
    "ok\rFAILED",
    "\u{202e}gnp.exe",
    "bell\u{7}\u{8}\u{9b}31m",
    "zero\u{200b}width\u{2066}isolate",
    "line\nbreak",
];

/// Runs modeltool with `args` in `dir` on an 80-column screen.
fn run(dir: &Path, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "80")
        .output()
        .unwrap()
        .into()
}

/// Asserts that neither stream of `r` holds a control, format or bidi
/// character other than `\n`.
fn assert_clean(what: &str, r: &Run) {
    for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        if let Some((at, c)) = text
            .char_indices()
            .find(|&(_, c)| c != '\n' && is_unsafe_char(c))
        {
            let from = text[..at].rfind('\n').map_or(0, |i| i + 1);
            panic!(
                "{what}: {stream} holds {c:?} at byte {at}, in the line {:?}",
                &text[from..text[at..].find('\n').map_or(text.len(), |i| at + i)]
            );
        }
    }
    assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
}

/// A safetensors file of `tensors` (name, shape, f32 values) and metadata.
fn safetensors(tensors: &[(String, Vec<usize>, Vec<f32>)], metadata: &Value) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".to_owned(), metadata.clone());
    let mut data = Vec::new();
    for (name, shape, values) in tensors {
        let start = data.len();
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut header = serde_json::to_string(&header).unwrap();
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// The metadata of the hostile files: a nasty key and value per string.
fn nasty_metadata(architecture: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for (i, s) in NASTY.iter().enumerate() {
        m.insert(format!("key{i}{s}"), json!(format!("value{s}")));
    }
    m.insert(
        "modeltool.architecture".to_owned(),
        json!(architecture.to_string()),
    );
    Value::Object(m)
}

/// A line y = 2x + 1 whose other tensors, metadata and (when
/// `bad_layer`) one layer type are hostile.
fn write_models(d: &Path, bad_layer: bool) {
    let mut layers = vec![json!({"type": "linear", "weight": "0.weight", "bias": "0.bias"})];
    if bad_layer {
        layers.push(json!({"type": format!("relu{}", NASTY[0])}));
        layers.push(json!({"type": format!("x{}", NASTY[2])}));
    }
    let arch = json!({ "layers": layers });
    let mut tensors = vec![
        ("0.weight".to_owned(), vec![1, 1], vec![2.0]),
        ("0.bias".to_owned(), vec![1], vec![1.0]),
    ];
    for (i, s) in NASTY.iter().enumerate() {
        tensors.push((format!("extra{i}.{s}"), vec![2], vec![0.5, 0.25]));
    }
    let name = if bad_layer {
        "nasty_layer.safetensors"
    } else {
        "nasty.safetensors"
    };
    std::fs::write(d.join(name), safetensors(&tensors, &nasty_metadata(&arch))).unwrap();
}

/// A sharded checkpoint of the nasty model whose shard files have nasty
/// names: made by `convert`, then renamed.
fn write_shards(d: &Path) {
    let r = run(
        d,
        &[
            "convert",
            "nasty.safetensors",
            "shards",
            "--max-shard-size",
            "24B",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let index_path = d.join("shards/model.safetensors.index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let mut renamed = std::collections::BTreeMap::new();
    for (name, file) in index["weight_map"].as_object_mut().unwrap() {
        let old = file.as_str().unwrap().to_owned();
        let n = renamed.len();
        let new = renamed
            .entry(old.clone())
            .or_insert_with(|| format!("shard{n}{}.safetensors", NASTY[n % 3]))
            .clone();
        let _ = name;
        *file = json!(new);
    }
    for (old, new) in &renamed {
        std::fs::rename(d.join("shards").join(old), d.join("shards").join(new)).unwrap();
    }
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// Every string of NASTY is somewhere in `v`, exactly.
fn assert_exact(what: &str, v: &Value) {
    let text = v.to_string();
    for s in NASTY {
        let encoded = serde_json::to_string(s).unwrap();
        let inner = &encoded[1..encoded.len() - 1];
        assert!(text.contains(inner), "{what}: {s:?} is not in the JSON");
    }
}

#[test]
fn inspect_escapes_every_string_from_the_file() {
    let dir = tempdir();
    let d = dir.path();
    write_models(d, true);
    write_models(d, false);
    write_shards(d);
    let r = run(d, &["convert", "nasty.safetensors", "nasty.json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for model in [
        "nasty.safetensors",
        "nasty_layer.safetensors",
        "nasty.json",
        "shards",
    ] {
        for extra in [&[][..], &["--tensors"], &["--depth", "9"]] {
            let mut args = vec!["inspect", model];
            args.extend_from_slice(extra);
            let r = run(d, &args);
            assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
            assert_clean(&format!("{args:?}"), &r);
            assert!(r.stdout.contains("\\u{1b}[2J"), "{args:?}: {}", r.stdout);
        }
        let r = run(d, &["inspect", model, "--format", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_clean(&format!("inspect {model} --format json"), &r);
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_exact(model, &v);
        for (i, s) in NASTY.iter().enumerate() {
            assert_eq!(v["metadata"][format!("key{i}{s}")], format!("value{s}"));
        }
    }
    // The shard file names, escaped in the human view, exact in the JSON.
    let r = run(d, &["inspect", "shards", "--tensors"]);
    assert!(r.stdout.contains("shard0\\u{1b}[2J"), "{}", r.stdout);
    let v: Value =
        serde_json::from_str(&run(d, &["inspect", "shards", "--format", "json"]).stdout).unwrap();
    assert!(v["files"].as_array().unwrap().iter().any(|f| {
        f["path"]
            .as_str()
            .unwrap()
            .ends_with("\u{1b}[2J\u{1b}[H.safetensors")
    }));
}

#[test]
fn verify_escapes_every_string_from_the_file() {
    let dir = tempdir();
    let d = dir.path();
    write_models(d, true);
    write_models(d, false);
    write_shards(d);
    for model in ["nasty.safetensors", "nasty_layer.safetensors", "shards"] {
        let r = run(d, &["verify", model]);
        assert_clean(&format!("verify {model}"), &r);
        let r = run(d, &["verify", model, "--format", "json"]);
        assert_clean(&format!("verify {model} --format json"), &r);
        let _: Value = serde_json::from_str(&r.stdout).unwrap();
    }
    // A damaged file: the error names the tensor.
    let mut bytes = std::fs::read(d.join("nasty.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(d.join("damaged.safetensors"), bytes).unwrap();
    let r = run(d, &["verify", "damaged.safetensors"]);
    assert_clean("verify damaged", &r);
}

#[test]
fn rehash_diff_and_stats_escape_every_string_from_the_file() {
    let dir = tempdir();
    let d = dir.path();
    write_models(d, false);
    let r = run(d, &["convert", "nasty.safetensors", "copy.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A changed value, so that diff names the tensors that differ.
    let mut bytes = std::fs::read(d.join("nasty.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x40;
    std::fs::write(d.join("edited.safetensors"), bytes).unwrap();
    for args in [
        &["rehash", "edited.safetensors"][..],
        &["diff", "nasty.safetensors", "copy.safetensors"],
        &["diff", "copy.safetensors", "edited.safetensors"],
        &[
            "diff",
            "copy.safetensors",
            "edited.safetensors",
            "--format",
            "json",
        ],
        &["stats", "copy.safetensors"],
        &["inspect", "copy.safetensors", "--stats"],
    ] {
        let r = run(d, args);
        assert_clean(&args.join(" "), &r);
        assert!(r.code == 0 || r.code == 1, "{args:?}: {}", r.stderr);
    }
}

#[test]
fn a_malformed_checksum_value_is_escaped_in_the_error() {
    // A checksum value is a string from the file like any other: a
    // malformed one is quoted in the error line, escaped.
    let dir = tempdir();
    let d = dir.path();
    let tensors = [("w".to_owned(), vec![1], vec![1.0])];
    for (i, s) in NASTY.iter().enumerate() {
        let metadata = json!({ "modeltool.sha256.w": format!("{s}{}", "a".repeat(60)) });
        std::fs::write(
            d.join(format!("m{i}.safetensors")),
            safetensors(&tensors, &metadata),
        )
        .unwrap();
        let model = format!("m{i}.safetensors");
        for command in ["inspect", "verify", "run", "stats"] {
            let args: &[&str] = match command {
                "run" => &[command, &model, "3"],
                _ => &[command, &model],
            };
            let r = run(d, args);
            assert_clean(&format!("{command} {model}"), &r);
            assert_eq!(r.code, 2, "{command} {model}: {}", r.stderr);
            assert_eq!(
                r.stderr.lines().count(),
                1,
                "{command} {model}: {}",
                r.stderr
            );
            assert!(
                r.stderr.starts_with("error: "),
                "{command} {model}: {}",
                r.stderr
            );
        }
    }
}

#[test]
fn convert_escapes_every_string_from_the_file() {
    let dir = tempdir();
    let d = dir.path();
    write_models(d, true);
    write_models(d, false);
    write_shards(d);
    for (from, to) in [
        ("nasty.safetensors", "out.json"),
        ("nasty_layer.safetensors", "out2.safetensors"),
        ("shards", "joined.safetensors"),
        ("nasty.safetensors", "more_shards"),
    ] {
        let r = run(d, &["convert", from, to]);
        assert_clean(&format!("convert {from} {to}"), &r);
    }
    // Converted, the strings are kept exactly.
    let v: Value = serde_json::from_slice(&std::fs::read(d.join("out.json")).unwrap()).unwrap();
    assert_exact("out.json", &v);
}

#[test]
fn run_escapes_every_string_from_the_file() {
    let dir = tempdir();
    let d = dir.path();
    write_models(d, true);
    write_models(d, false);
    let r = run(d, &["run", "nasty.safetensors", "3"]);
    assert_clean("run nasty", &r);
    let r = run(d, &["run", "nasty_layer.safetensors", "3"]);
    assert_ne!(r.code, 0, "an unknown layer type cannot run");
    assert_clean("run nasty_layer", &r);
}

#[test]
fn train_escapes_csv_column_names() {
    let dir = tempdir();
    let d = dir.path();
    let header = format!("height{},weight{}", NASTY[0], NASTY[2]);
    std::fs::write(d.join("nasty.csv"), format!("{header}\n170,60\n160,50\n")).unwrap();
    let r = run(d, &["train", "nasty.csv", "--out", "m.json"]);
    assert_clean("train nasty.csv", &r);
    // A target column that is not there names the columns that are.
    let r = run(
        d,
        &["train", "nasty.csv", "--out", "n.json", "--target", "x"],
    );
    assert_clean("train --target x", &r);
    // A row with a bad number names its column.
    std::fs::write(
        d.join("bad.csv"),
        format!("{header}\n170,60\n16\u{1b}[2J0,50\n"),
    )
    .unwrap();
    let r = run(d, &["train", "bad.csv", "--out", "b.json"]);
    assert_clean("train bad.csv", &r);
    let r = run(
        d,
        &[
            "train",
            "nasty.csv",
            "--out",
            "p.json",
            "--hidden",
            "2",
            "--epochs",
            "1",
        ],
    );
    assert_clean("train --hidden", &r);
}

#[test]
fn growth_escapes_the_paths_it_prints() {
    let dir = tempdir();
    let d = dir.path();
    let keep = format!("keep{}", NASTY[0]);
    let svg = format!("chart{}.svg", NASTY[2]);
    let r = run(d, &["growth", "--keep", &keep, "--svg", &svg]);
    assert_clean("growth", &r);
}

/// Every line of both streams of `r` is at most 80 columns.
fn assert_fits(what: &str, r: &Run) {
    for (stream, text) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
        for l in text.lines() {
            assert!(
                width(l) <= 80,
                "{what}: a {}-column {stream} line: {l}",
                width(l)
            );
        }
    }
}

#[test]
fn inspect_output_on_the_fixtures_fits_80_columns() {
    let f = fixtures();
    for model in [
        "multi_dtype.safetensors",
        "height.json",
        "gguf/tiny_llama.gguf",
    ] {
        for extra in [&[][..], &["--tensors"], &["--depth", "9"]] {
            let mut args = vec!["inspect", model];
            args.extend_from_slice(extra);
            let r = run(&f, &args);
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_fits(&format!("{args:?}"), &r);
        }
    }
    // A BERT-shaped checkpoint, sharded, with its tensor list.
    let dir = tempdir();
    let d = dir.path();
    let mut tensors = vec![(
        "embeddings.word_embeddings.weight".to_owned(),
        vec![50, 8],
        vec![0.0; 400],
    )];
    for i in 0..6 {
        for part in [
            "attention.self.query.weight",
            "attention.output.LayerNorm.weight",
            "intermediate.dense.weight",
        ] {
            tensors.push((
                format!("encoder.layer.{i}.{part}"),
                vec![8, 8],
                vec![0.0; 64],
            ));
        }
    }
    std::fs::write(
        d.join("bert.safetensors"),
        safetensors(&tensors, &json!({})),
    )
    .unwrap();
    let r = run(
        d,
        &[
            "convert",
            "bert.safetensors",
            "bert-shards",
            "--max-shard-size",
            "1KB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for model in ["bert.safetensors", "bert-shards"] {
        for extra in [&[][..], &["--tensors"], &["--depth", "9"]] {
            let mut args = vec!["inspect", model];
            args.extend_from_slice(extra);
            let r = run(d, &args);
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_fits(&format!("{args:?}"), &r);
        }
    }
}

#[test]
fn every_command_on_the_fixtures_fits_80_columns() {
    let dir = tempdir();
    let d = dir.path();
    for name in [
        "multi_dtype.safetensors",
        "height.json",
        "height_weight.csv",
        "square.csv",
    ] {
        std::fs::copy(fixtures().join(name), d.join(name)).unwrap();
    }
    for args in [
        &["verify", "multi_dtype.safetensors"][..],
        &["verify", "height.json"],
        &["convert", "multi_dtype.safetensors", "m.json"],
        &[
            "convert",
            "height.json",
            "h-shards",
            "--max-shard-size",
            "1KB",
        ],
        &["run", "height.json", "175", "160"],
        &["train", "height_weight.csv", "--out", "t.json"],
        &[
            "train",
            "square.csv",
            "--out",
            "s.json",
            "--hidden",
            "4",
            "--epochs",
            "2",
        ],
        &["growth", "--keep", "g"],
    ] {
        let r = run(d, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_fits(&format!("{args:?}"), &r);
    }
}

/// Runs modeltool with `args` in `dir` on a screen of `cols` columns.
fn run_cols(dir: &Path, cols: usize, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", cols.to_string())
        .output()
        .unwrap()
        .into()
}

#[test]
fn every_command_fits_80_columns_with_long_names_and_damage() {
    let dir = tempdir();
    let d = dir.path();
    // Names as long as deep checkpoints have, and longer.
    let long = |i: usize| {
        format!(
            "model.encoder.layers.{i}.{}.weight",
            "self_attention".repeat(8)
        )
    };
    let tensors: Vec<_> = (0..3)
        .map(|i| {
            (
                long(i),
                vec![4, 4],
                (0..16).map(|v| v as f32 * 0.1).collect(),
            )
        })
        .collect();
    std::fs::write(d.join("m.safetensors"), safetensors(&tensors, &json!({}))).unwrap();
    let r = run(d, &["convert", "m.safetensors", "c.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_fits("convert", &r);
    // One data byte of the checksummed copy changed: damage.
    let mut bytes = std::fs::read(d.join("c.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(d.join("damaged.safetensors"), &bytes).unwrap();
    std::fs::write(d.join("edited.safetensors"), &bytes).unwrap();
    let zeros = "0".repeat(64);
    // Columns with names as long as a file may hold.
    let (x, y) = ("height_".repeat(20), "weight_".repeat(20));
    std::fs::write(
        d.join("long.csv"),
        format!("{x},{y}\n170,60\n160,50\n150,41\n"),
    )
    .unwrap();
    for (args, code) in [
        (&["verify", "damaged.safetensors"][..], 1),
        (&["verify", "c.safetensors", "--sha256", &zeros], 1),
        (&["verify", "c.safetensors", "--values"], 0),
        (
            &[
                "convert",
                "damaged.safetensors",
                "r.safetensors",
                "--rehash",
            ],
            0,
        ),
        (&["rehash", "edited.safetensors"], 0),
        (
            &[
                "convert",
                "m.safetensors",
                "b.safetensors",
                "--dtype",
                "bf16",
            ],
            0,
        ),
        (&["diff", "m.safetensors", "r.safetensors"], 1),
        (&["diff", "c.safetensors", "c.safetensors"], 0),
        (&["stats", "m.safetensors"], 0),
        (&["inspect", "m.safetensors", "--stats"], 0),
        (&["train", "long.csv", "-o", "t.json"], 0),
        (&["run", "t.json", "--input", "long.csv"], 0),
    ] {
        let r = run(d, args);
        assert_eq!(r.code, code, "{args:?}: {}{}", r.stdout, r.stderr);
        // The report fits the screen; an error line on stderr stays one
        // line, which a terminal wraps.
        for l in r.stdout.lines() {
            assert!(width(l) <= 80, "{args:?}: a {}-column line: {l}", width(l));
        }
        for l in r.stderr.lines() {
            assert!(l.starts_with("error: "), "{args:?}: {l}");
        }
        assert_clean(&format!("{args:?}"), &r);
    }
}

#[test]
fn a_wider_screen_shows_more_of_a_long_name() {
    let dir = tempdir();
    let d = dir.path();
    let name = format!("decoder.blocks.0.{}.weight", "cross_attention".repeat(5));
    let tensors = vec![(name.clone(), vec![2], vec![1.0, 2.0])];
    std::fs::write(d.join("m.safetensors"), safetensors(&tensors, &json!({}))).unwrap();
    std::fs::write(
        d.join("n.safetensors"),
        safetensors(&[(name.clone(), vec![2], vec![1.0, 3.0])], &json!({})),
    )
    .unwrap();
    for args in [
        &["stats", "m.safetensors"][..],
        &["diff", "m.safetensors", "n.safetensors"],
    ] {
        let narrow = run_cols(d, 80, args);
        let wide = run_cols(d, 200, args);
        assert!(
            !narrow.stdout.contains(&name),
            "{args:?} at 80 columns: {}",
            narrow.stdout
        );
        assert!(narrow.stdout.contains('…'), "{args:?}: {}", narrow.stdout);
        assert!(
            wide.stdout.contains(&name),
            "{args:?} at 200 columns: {}",
            wide.stdout
        );
    }
}
