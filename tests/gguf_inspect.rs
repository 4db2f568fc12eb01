//! `modeltool inspect` on GGUF files: the per ggml type rows (tensors,
//! parameters, bytes, bits per weight), the metadata summary, `--metadata
//! KEY` for one value whole, escaping and 80 columns. The files come from
//! the repository's fixture, from modeltool's own writer (hostile strings),
//! and, with Python, from the `gguf` package's writer.

use std::path::Path;
use std::process::Command;

use modeltool_format::gguf::{Array, GgmlType, GgufWriter, Value};
use serde_json::Value as Json;

use crate::util::{self, Run, assert_error, bin, fixtures, tempdir};

/// (block size, bytes per block) of the ggml types these tests meet, as
/// ggml.c lists them: the figures bits per weight are checked against.
fn ggml_block(name: &str) -> (u64, u64) {
    match name {
        "F32" => (1, 4),
        "F16" => (1, 2),
        "Q4_0" => (32, 18),
        "Q8_0" => (32, 34),
        "Q4_K" => (256, 144),
        "Q6_K" => (256, 210),
        other => panic!("no block size for {other} in this test"),
    }
}

/// Runs modeltool in `dir` on an 80-column screen.
fn run(dir: &Path, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "80")
        .output()
        .unwrap()
        .into()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = run(dir, args);
    assert_eq!(r.code, 0, "modeltool {args:?} failed: {}", r.stderr);
    let human = !args.contains(&"json");
    for line in r.stdout.lines().filter(|_| human) {
        assert!(
            line.chars().count() <= 80,
            "{args:?}: a line over 80 columns: {line}"
        );
    }
    r.stdout
}

fn json(dir: &Path, args: &[&str]) -> Json {
    let mut args = args.to_vec();
    args.extend(["--format", "json"]);
    serde_json::from_str(&ok(dir, &args)).unwrap()
}

/// The human view's row for ggml type `t`: (tensors, parameters, bits per
/// weight as printed).
fn human_row(text: &str, t: &str) -> (u64, u64, String) {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(t) && l.starts_with("  "))
        .unwrap_or_else(|| panic!("no row for {t} in\n{text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| s.replace(',', "").parse::<u64>().unwrap();
    (num(words[1]), num(words[2]), words[5].to_owned())
}

/// The value after `label` on its line of the metadata summary.
fn summary_line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("  {label:<18}")))
        .unwrap_or_else(|| panic!("no `{label}` line in\n{text}"))
}

/// Checks the per type rows of `report` (JSON) and `text` (human) against
/// `expected`: ggml type name to (tensors, elements).
fn check_types(report: &Json, text: &str, expected: &[(String, u64, u64)]) {
    let g = &report["gguf"];
    let rows = g["types"].as_array().unwrap();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    let (mut elements, mut bytes) = (0u64, 0u64);
    for (name, tensors, n) in expected {
        let row = rows
            .iter()
            .find(|r| r["ggml_type"] == name.as_str())
            .unwrap_or_else(|| panic!("no {name} row in {rows:?}"));
        let (block, type_size) = ggml_block(name);
        let stored = n / block * type_size;
        assert_eq!(row["tensor_count"], *tensors, "{name}");
        assert_eq!(row["parameter_count"], *n, "{name}");
        assert_eq!(row["bytes"], stored, "{name}");
        assert_eq!(row["block_size"], block, "{name}");
        assert_eq!(row["bytes_per_block"], type_size, "{name}");
        let bpw = 8.0 * type_size as f64 / block as f64;
        assert_eq!(row["bits_per_weight"].as_f64().unwrap(), bpw, "{name}");
        assert_eq!(
            human_row(text, name),
            (*tensors, *n, format!("{bpw:.2}")),
            "{name}"
        );
        elements += n;
        bytes += stored;
    }
    assert_eq!(g["parameter_count"], elements);
    assert_eq!(g["data_bytes"], bytes);
    let whole = 8.0 * bytes as f64 / elements as f64;
    assert_eq!(g["bits_per_weight"].as_f64().unwrap(), whole);
    let file = g["file_bytes"].as_u64().unwrap();
    assert_eq!(
        g["file_bits_per_weight"].as_f64().unwrap(),
        8.0 * file as f64 / elements as f64
    );
    let all = text
        .lines()
        .find(|l| l.starts_with("  all "))
        .unwrap_or_else(|| panic!("no `all` row in\n{text}"));
    assert!(all.contains(&format!("{whole:.2}")), "{all}");
    assert!(
        all.contains(&format!(
            "whole file {:.2}",
            8.0 * file as f64 / elements as f64
        )),
        "{all}"
    );
}

#[test]
fn the_fixture_shows_each_ggml_type_with_its_bits_per_weight() {
    let f = fixtures().join("gguf");
    let text = ok(&f, &["inspect", "tiny_llama.gguf"]);
    let report = json(&f, &["inspect", "tiny_llama.gguf"]);
    // What the gguf package wrote (fixtures/gguf/make.py): each tensor's
    // type and row-major shape.
    let made: Json =
        serde_json::from_str(&std::fs::read_to_string(f.join("tiny_llama.json")).unwrap()).unwrap();
    let mut expected: Vec<(String, u64, u64)> = Vec::new();
    for t in made["tensors"].as_array().unwrap() {
        let name = t["type"].as_str().unwrap().to_owned();
        let n: u64 = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .product();
        match expected.iter_mut().find(|e| e.0 == name) {
            Some(e) => {
                e.1 += 1;
                e.2 += n;
            }
            None => expected.push((name, 1, n)),
        }
    }
    assert!(expected.len() >= 5, "the fixture mixes types: {expected:?}");
    check_types(&report, &text, &expected);

    assert!(
        text.contains("shapes are row-major, ggml's dimensions reversed"),
        "said once: {text}"
    );
    assert_eq!(text.matches("row-major").count(), 1, "{text}");
    // Its size is its ggml types', not the f32 they decode to.
    let me = report["landmarks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["this_model"] == true)
        .unwrap();
    assert_eq!(me["size"], "62.8 KB Q4_K");
    let s = &report["gguf"]["summary"];
    assert_eq!(s["architecture"], "llama");
    assert_eq!(s["name"], "tiny llama");
    assert_eq!(s["context_length"], 128);
    assert_eq!(s["embedding_length"], 64);
    assert_eq!(s["block_count"], 1);
    assert_eq!(s["head_count"], 4);
    assert_eq!(s["head_count_kv"], Json::Null, "the fixture has none");
    assert_eq!(s["tokenizer_model"], "llama");
    assert_eq!(s["vocabulary_size"], 100);
    assert_eq!(summary_line(&text, "architecture"), "llama");
    assert_eq!(summary_line(&text, "context length"), "128");
    assert_eq!(summary_line(&text, "tokenizer"), "llama, 100 tokens");
    assert_eq!(summary_line(&text, "attention heads"), "4, key/value -");
    // The vocabulary is described, never dumped.
    let arrays = report["gguf"]["arrays"].as_array().unwrap();
    assert!(arrays.iter().any(|a| a["key"] == "tokenizer.ggml.tokens"
        && a["element_type"] == "string"
        && a["length"] == 100));
    assert!(!text.contains("<unk>"), "{text}");
    // The tensor list, in the same order of dimensions.
    let tensors = report["tensors"].as_array().unwrap();
    let embd = tensors
        .iter()
        .find(|t| t["name"] == "token_embd.weight")
        .unwrap();
    assert_eq!(embd["shape"], made["tensors"][0]["shape"]);
    ok(&f, &["inspect", "tiny_llama.gguf", "--tensors"]);
}

#[test]
fn metadata_key_prints_one_value_whole_and_bounded() {
    let f = fixtures().join("gguf");
    // A scalar: the value alone, for scripts.
    assert_eq!(
        ok(
            &f,
            &[
                "inspect",
                "tiny_llama.gguf",
                "--metadata",
                "llama.context_length"
            ]
        ),
        "128\n"
    );
    // The key as convert writes it (under `gguf.`) works too.
    assert_eq!(
        ok(
            &f,
            &[
                "inspect",
                "tiny_llama.gguf",
                "--metadata",
                "gguf.general.name"
            ]
        ),
        "tiny llama\n"
    );
    // An array: one element a line, cut at --limit with what is left.
    let tokens = ok(
        &f,
        &[
            "inspect",
            "tiny_llama.gguf",
            "--metadata",
            "tokenizer.ggml.tokens",
            "--limit",
            "3",
        ],
    );
    let lines: Vec<&str> = tokens.lines().collect();
    assert_eq!(lines.len(), 4, "{tokens}");
    assert_eq!(lines[..3], ["[0] <unk>", "[1] <s>", "[2] </s>"]);
    assert_eq!(lines[3], "... 97 more (of 100; --limit 0 shows every one)");
    let all = ok(
        &f,
        &[
            "inspect",
            "tiny_llama.gguf",
            "--metadata",
            "tokenizer.ggml.tokens",
            "--limit",
            "0",
        ],
    );
    assert_eq!(all.lines().count(), 100);
    assert!(all.lines().last().unwrap().starts_with("[99] "), "{all}");
    // JSON: the exact value, every element.
    let j = json(
        &f,
        &[
            "inspect",
            "tiny_llama.gguf",
            "--metadata",
            "tokenizer.ggml.scores",
        ],
    );
    assert_eq!(j["key"], "tokenizer.ggml.scores");
    assert_eq!(j["type"], "array of f32");
    assert_eq!(j["length"], 100);
    assert_eq!(j["value"].as_array().unwrap().len(), 100);
    // A key that is not there: one error line, exit 2.
    let r = run(
        &f,
        &["inspect", "tiny_llama.gguf", "--metadata", "llama.nope"],
    );
    assert_error(&r, 2, &["tiny_llama.gguf", "`llama.nope`"]);
    assert_eq!(r.stderr.lines().count(), 1);
    assert!(r.stdout.is_empty());
}

#[test]
fn strings_from_a_gguf_are_escaped_in_every_view() {
    let dir = tempdir();
    let d = dir.path();
    let mut w = GgufWriter::new();
    let evil = "x\u{1b}[2J\u{202e}y";
    w.add_metadata("general.architecture", Value::String(evil.into()))
        .unwrap();
    w.add_metadata("general.name", Value::String(format!("n{evil}")))
        .unwrap();
    w.add_metadata("tokenizer.ggml.model", Value::String(evil.into()))
        .unwrap();
    let tokens = vec!["ok".to_owned(), evil.to_owned(), "a\nb".to_owned()];
    w.add_metadata("tokenizer.ggml.tokens", Value::Array(Array::String(tokens)))
        .unwrap();
    w.add_metadata(format!("{evil}.rope.freq_base"), Value::F32(10000.0))
        .unwrap();
    w.add_tensor(format!("w{evil}"), &[32], GgmlType::F32, vec![0u8; 128])
        .unwrap();
    std::fs::write(d.join("evil.gguf"), w.to_bytes().unwrap()).unwrap();
    for args in [
        &["inspect", "evil.gguf"][..],
        &["inspect", "evil.gguf", "--tensors"],
        &[
            "inspect",
            "evil.gguf",
            "--metadata",
            "tokenizer.ggml.tokens",
        ],
        &["inspect", "evil.gguf", "--metadata", "general.name"],
    ] {
        let out = ok(d, args);
        assert!(
            !out.chars()
                .any(|c| c != '\n' && modeltool_format::text::is_unsafe_char(c)),
            "{args:?}: unescaped control or bidi character in\n{out:?}"
        );
        assert!(out.contains("\\u{1b}"), "{args:?}: {out}");
    }
    let tokens = ok(
        d,
        &[
            "inspect",
            "evil.gguf",
            "--metadata",
            "tokenizer.ggml.tokens",
        ],
    );
    assert!(
        tokens.contains("[2] a\\u{a}b") || tokens.contains("[2] a\\nb"),
        "{tokens}"
    );
    // JSON keeps the exact strings (a JSON encoder escapes them).
    let j = json(d, &["inspect", "evil.gguf", "--metadata", "general.name"]);
    assert_eq!(j["value"], format!("n{evil}"));
    let r = json(d, &["inspect", "evil.gguf"]);
    assert_eq!(r["gguf"]["summary"]["architecture"], evil);
    assert_eq!(r["gguf"]["summary"]["rope"]["freq_base"], 10000.0);
}

// --- with the gguf package --------------------------------------------------

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

#[test]
fn a_llama_shaped_file_the_gguf_package_writes_is_summarised() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    let out = Command::new(&python)
        .arg(script("gguf_llama.py"))
        .args([
            "l.gguf",
            "--layers",
            "8",
            "--dim",
            "512",
            "--ff",
            "1024",
            "--vocab",
            "3000",
            "--heads",
            "8",
            "--kv-heads",
            "2",
            "--name",
            "small llama",
        ])
        .current_dir(d)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What the package says it wrote.
    let made: Json = serde_json::from_slice(&out.stdout).unwrap();
    let text = ok(d, &["inspect", "l.gguf"]);
    let report = json(d, &["inspect", "l.gguf"]);
    let expected: Vec<(String, u64, u64)> = made["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                t["tensors"].as_u64().unwrap(),
                t["elements"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 3, "Q4_K, Q6_K and F32: {expected:?}");
    check_types(&report, &text, &expected);
    assert_eq!(report["gguf"]["file_bytes"], made["file_bytes"]);
    assert_eq!(report["tensor_count"], made["tensors"]);
    assert!(text.contains("blk.[0-7]  x8"), "{text}");

    let s = &report["gguf"]["summary"];
    assert_eq!(s["architecture"], "llama");
    assert_eq!(s["name"], "small llama");
    assert_eq!(s["file_type"], 15);
    assert_eq!(s["file_type_name"], "MOSTLY_Q4_K_M");
    assert_eq!(s["context_length"], 4096);
    assert_eq!(s["embedding_length"], 512);
    assert_eq!(s["block_count"], 8);
    assert_eq!(s["feed_forward_length"], 1024);
    assert_eq!(s["head_count"], 8);
    assert_eq!(s["head_count_kv"], 2);
    assert_eq!(s["rope"]["dimension_count"], 64);
    assert_eq!(s["rope"]["freq_base"], 10000.0);
    assert_eq!(s["tokenizer_model"], "llama");
    assert_eq!(s["vocabulary_size"], 3000);
    assert_eq!(summary_line(&text, "name"), "small llama");
    assert_eq!(summary_line(&text, "file type"), "15 (MOSTLY_Q4_K_M)");
    assert_eq!(summary_line(&text, "embedding length"), "512");
    assert_eq!(summary_line(&text, "blocks"), "8");
    assert_eq!(summary_line(&text, "attention heads"), "8, key/value 2");
    assert_eq!(
        summary_line(&text, "rope"),
        "dimension_count 64, freq_base 10000.0"
    );
    assert_eq!(summary_line(&text, "tokenizer"), "llama, 3,000 tokens");
    // Three 3000-element arrays: described, not dumped.
    assert!(!text.contains("tok10"), "{text}");
    assert!(text.lines().count() < 80, "{text}");
    let tokens = ok(
        d,
        &["inspect", "l.gguf", "--metadata", "tokenizer.ggml.tokens"],
    );
    assert_eq!(tokens.lines().count(), 201, "200 and the cut");
    assert!(tokens.ends_with("... 2,800 more (of 3,000; --limit 0 shows every one)\n"));
}
