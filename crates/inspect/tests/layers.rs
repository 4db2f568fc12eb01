//! The architecture's layer table.

use std::collections::BTreeMap;

use modeltool_format::Dtype;
use modeltool_inspect::{InspectOptions, inspect};
use serde_json::json;

use crate::util::{human, meta, safetensors_facts};

fn mlp_with_repeat() -> modeltool_inspect::ModelFacts {
    let arch = json!({"layers": [
        {"type": "linear", "weight": "0.weight", "bias": "0.bias"},
        {"type": "relu"},
        {"type": "repeat", "times": 3, "layers": [
            {"type": "linear", "weight": "2.0.weight", "bias": "2.0.bias"},
            {"type": "tanh"}
        ]},
        {"type": "linear", "weight": "3.weight", "bias": "3.bias"},
        {"type": "softmax"}
    ]});
    safetensors_facts(
        "mlp.safetensors",
        vec![
            meta("0.weight", Dtype::F32, &[128, 784]),
            meta("0.bias", Dtype::F32, &[128]),
            meta("2.0.weight", Dtype::F32, &[128, 128]),
            meta("2.0.bias", Dtype::F32, &[128]),
            meta("3.weight", Dtype::F32, &[10, 128]),
            meta("3.bias", Dtype::F32, &[10]),
        ],
        BTreeMap::new(),
        Some(arch),
    )
}

#[test]
fn layer_table_from_an_architecture() {
    let mlp = mlp_with_repeat();
    let report = inspect(&mlp, &InspectOptions::default());
    let table = report.layers.as_ref().expect("an architecture");
    let rows: Vec<_> = table
        .rows
        .iter()
        .map(|r| {
            (
                r.index.as_str(),
                r.layer.as_str(),
                r.input,
                r.output,
                r.activation.as_deref(),
                r.parameter_count,
                r.times,
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (
                "0",
                "linear",
                Some(784),
                Some(128),
                Some("relu"),
                100_480,
                None
            ),
            ("2", "repeat", Some(128), Some(128), None, 16_512, Some(3)),
            (
                "2.0",
                "linear",
                Some(128),
                Some(128),
                Some("tanh"),
                16_512,
                None
            ),
            (
                "3",
                "linear",
                Some(128),
                Some(10),
                Some("softmax"),
                1_290,
                None
            ),
        ]
    );
    assert_eq!(table.parameter_count, 118_282);
    assert_eq!(report.parameter_count, 118_282);
    assert!(table.unused_tensors.is_empty());
    assert!(table.rows.iter().all(|r| r.note.is_none()));
    let text = human(&report);
    assert!(text.contains("repeat x3"), "{text}");
    assert!(text.contains("(shared parameters)"), "{text}");
    assert!(text.contains("784 -> 128"), "{text}");
}

#[test]
fn odd_architectures_give_notes_not_panics() {
    let mut facts = mlp_with_repeat();
    facts.architecture = Some(json!({"layers": [
        {"type": "relu"},
        {"type": "linear", "weight": "missing.weight"},
        {"type": "linear", "weight": "0.bias", "bias": 7},
        {"type": "linear", "weight": "2.0.weight", "bias": "0.bias"},
        {"type": "repeat", "times": 2, "layers": [{"type": "linear", "weight": "3.weight"}]},
        {"type": "conv2d", "weight": "3.weight"},
        {"type": "linear", "weight": "3.weight"},
        {"type": "repeat", "times": "many", "layers": [{"type": "repeat", "times": 2}]},
        42,
        {"no": "type"},
        {"type": "softmax"},
        {"type": "softmax"}
    ]}));
    let report = inspect(&facts, &InspectOptions::default());
    let table = report.layers.as_ref().expect("an architecture");
    let notes: Vec<&str> = table
        .rows
        .iter()
        .filter_map(|r| r.note.as_deref())
        .collect();
    let all = notes.join("\n");
    for expected in [
        "weight `missing.weight` is not in the file",
        "has shape [128], not [out, in]",
        "`bias` is 7, not a tensor name",
        "unknown layer type `conv2d`",
        "`times` is \"many\", not a count",
        "no `layers` list",
        "the block maps 128 to 10, so it cannot run 2 times",
        "takes 128 inputs but the layer before gives 10",
        "42 is not a layer object",
        "no `type`",
    ] {
        assert!(all.contains(expected), "no `{expected}` in\n{all}");
    }
    assert_eq!(table.rows[0].layer, "relu");
    assert!(table.unused_tensors.contains(&"0.weight".to_owned()));
    let text = human(&report);
    assert!(text.contains("! unknown layer type `conv2d`"), "{text}");

    // Deep nesting stops instead of overflowing the stack.
    let mut deep = json!({"type": "relu"});
    for _ in 0..100 {
        deep = json!({"type": "repeat", "times": 1, "layers": [deep]});
    }
    facts.architecture = Some(json!([deep]));
    let report = inspect(&facts, &InspectOptions::default());
    let table = report.layers.as_ref().expect("an architecture");
    assert!(table.rows.iter().any(|r| {
        r.note
            .as_deref()
            .is_some_and(|n| n.contains("nested deeper"))
    }));
}
