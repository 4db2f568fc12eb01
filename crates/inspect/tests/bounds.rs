//! The human view on hostile files: every string from the file escaped,
//! every line within the screen, the whole output within a bound, and the
//! JSON report still exact.

use std::collections::BTreeMap;

use modeltool_format::Dtype;
use modeltool_format::text::{is_unsafe_char, width};
use modeltool_inspect::{InspectOptions, MAX_LINES, ModelFacts, Report};
use serde_json::json;

use crate::util::{meta, safetensors_facts};

/// The human view with these options, as a string.
fn render(facts: &ModelFacts, options: &InspectOptions) -> String {
    let mut out = Vec::new();
    Report::from_facts(facts, options)
        .render_human(&mut out)
        .expect("write to a Vec");
    String::from_utf8(out).expect("UTF-8 output")
}

/// Asserts the view holds no control, format or bidi character but `\n`,
/// no line wider than `cols` and at most `lines` lines.
fn assert_bounded(text: &str, cols: usize, lines: usize) {
    for c in text.chars() {
        assert!(c == '\n' || !is_unsafe_char(c), "{c:?} in\n{text}");
    }
    for l in text.lines() {
        assert!(width(l) <= cols, "{} columns > {cols}: {l}", width(l));
    }
    let n = text.lines().count();
    assert!(n <= lines, "{n} lines > {lines}");
}

/// Strings a hostile file may carry.
const NASTY: [&str; 6] = [
    "\u{1b}[2J\u{1b}[H",
    "ok\rFAILED",
    "\u{202e}gnp.exe",
    "bell\u{7}\u{8}\u{9b}31m",
    "zero\u{200b}width\u{2066}isolate",
    "line\nbreak",
];

fn hostile() -> ModelFacts {
    let mut metadata = BTreeMap::new();
    let mut metas = Vec::new();
    let mut layers = Vec::new();
    for (i, s) in NASTY.iter().enumerate() {
        metadata.insert(format!("key{s}{i}"), format!("value{s}"));
        metas.push(meta(&format!("t{i}.{s}.weight"), Dtype::F32, &[2, 2]));
        layers.push(json!({"type": format!("layer{s}"), "weight": format!("t{i}.{s}.weight")}));
    }
    // A layer type of 65,536 characters and a tensor of 22,000 dimensions.
    layers.push(json!({"type": "x".repeat(65_536)}));
    metas.push(meta("wide", Dtype::F32, &[1; 22_000]));
    metadata.insert("long".to_owned(), "v".repeat(100_000));
    safetensors_facts(
        "hostile.safetensors",
        metas,
        metadata,
        Some(json!({ "layers": layers })),
    )
}

#[test]
fn strings_from_the_file_are_escaped_and_cut() {
    let facts = hostile();
    for tensors in [false, true] {
        let text = render(
            &facts,
            &InspectOptions {
                tensors,
                ..InspectOptions::default()
            },
        );
        assert_bounded(&text, 80, MAX_LINES + 20);
        assert!(text.contains("\\u{1b}[2J"), "{text}");
        assert!(text.contains("\\u{202e}"), "{text}");
        assert!(text.contains("ok\\u{d}FAILED"), "{text}");
        assert!(text.contains("(65536 chars)"), "{text}");
        assert!(text.contains("(100000 chars)"), "{text}");
        if tensors {
            assert!(text.contains("22000 dims]"), "{text}");
        }
    }
}

#[test]
fn the_json_report_keeps_the_exact_strings() {
    let facts = hostile();
    let report = Report::from_facts(&facts, &InspectOptions::default());
    let text = serde_json::to_string(&report).expect("serializable");
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for (i, s) in NASTY.iter().enumerate() {
        assert_eq!(value["metadata"][format!("key{s}{i}")], format!("value{s}"));
        let name = format!("t{i}.{s}.weight");
        assert!(
            value["tensors"]
                .as_array()
                .expect("tensors")
                .iter()
                .any(|t| t["name"] == name.as_str()),
            "{name:?}"
        );
    }
    assert_eq!(
        value["layers"]["rows"][NASTY.len()]["layer"]
            .as_str()
            .map(str::len),
        Some(65_536)
    );
    assert_eq!(
        value["tensors"][NASTY.len()]["shape"]
            .as_array()
            .map(Vec::len),
        Some(22_000)
    );
}

/// A header of a few hundred KB that names thousands of everything.
fn crowded() -> ModelFacts {
    let mut metadata = BTreeMap::new();
    let mut metas = Vec::new();
    let mut layers = Vec::new();
    for i in 0..3000 {
        metadata.insert(format!("k{i:05}"), "w".repeat(50));
        metas.push(meta(
            &format!("m{i}.{}", "n".repeat(i % 200)),
            Dtype::F32,
            &[1 + i % 5],
        ));
        layers.push(
            json!({"type": format!("t{i}{}", "y".repeat(100)), "weight": format!("missing{i}")}),
        );
    }
    safetensors_facts(
        "crowded.safetensors",
        metas,
        metadata,
        Some(json!({ "layers": layers })),
    )
}

#[test]
fn output_is_bounded_whatever_the_file_holds() {
    let facts = crowded();
    let plain = render(&facts, &InspectOptions::default());
    assert_bounded(&plain, 80, MAX_LINES);
    for depth in [1, 2, 5] {
        let text = render(
            &facts,
            &InspectOptions {
                depth: Some(depth),
                ..InspectOptions::default()
            },
        );
        assert_bounded(&text, 80, MAX_LINES);
    }
    // --tensors lists at most its limit, and says how many it left out.
    let listed = render(
        &facts,
        &InspectOptions {
            tensors: true,
            ..InspectOptions::default()
        },
    );
    assert_bounded(&listed, 80, MAX_LINES + 200);
    assert!(
        listed.contains("and 2,800 more tensors (--limit 0 lists them all)"),
        "{listed}"
    );
    assert!(plain.contains("and 2,980 more keys"), "{plain}");
    assert!(plain.contains("and 2,960 more layers"), "{plain}");
    // Asked for every tensor, every one is listed.
    let all = render(
        &facts,
        &InspectOptions {
            tensors: true,
            tensor_limit: None,
            ..InspectOptions::default()
        },
    );
    assert_bounded(&all, 80, MAX_LINES + 3000);
    assert!(!all.contains("more tensors"));
}

#[test]
fn a_wider_screen_is_used_and_never_exceeded() {
    let facts = crowded();
    for cols in [100, 200] {
        let text = render(
            &facts,
            &InspectOptions {
                tensors: true,
                columns: cols,
                ..InspectOptions::default()
            },
        );
        assert_bounded(&text, cols, MAX_LINES + 200);
        assert!(
            text.lines().any(|l| width(l) > 80),
            "a {cols}-column screen is used"
        );
    }
    // Fewer than 80 columns are not honoured: the view is laid out for 80.
    let narrow = render(
        &facts,
        &InspectOptions {
            columns: 20,
            ..InspectOptions::default()
        },
    );
    assert_bounded(&narrow, 80, MAX_LINES);
}

#[test]
fn counts_read_without_contradiction() {
    let facts = safetensors_facts(
        "one.safetensors",
        vec![
            meta("w", Dtype::F32, &[4]),
            meta("position_ids", Dtype::I64, &[1]),
        ],
        BTreeMap::new(),
        None,
    );
    let text = render(&facts, &InspectOptions::default());
    assert!(text.contains("  tensors           2\n"), "{text}");
    assert!(
        text.contains("  elements          5, buffers included\n"),
        "{text}"
    );
    assert!(
        text.contains("  buffers           1 element in 1 tensor, not parameters:"),
        "{text}"
    );
    assert!(
        text.contains("  parameters        4, elements less buffers\n"),
        "{text}"
    );
    assert!(text.contains("  I64               1 element "), "{text}");
    assert!(
        text.starts_with("one.safetensors (safetensors, 1 file)\n"),
        "{text}"
    );
}
