//! Totals, buffers, the human view and the JSON report.

use std::collections::BTreeMap;

use modeltool_format::Dtype;
use modeltool_inspect::{FileFacts, InspectOptions, ModelFacts, TensorFacts, inspect};
use serde_json::json;

use crate::util::{human, meta, minilm, safetensors_facts, snapshot};

#[test]
fn minilm_counts_are_exact() {
    let facts = minilm();
    let report = inspect(&facts, &InspectOptions::default());
    assert_eq!(report.tensor_count, 104);
    assert_eq!(report.parameter_count, 22_713_728);
    assert_eq!(report.parameter_count_short, "22.7M");
    assert_eq!(report.parameters_without_buffers, 22_713_216);
    assert_eq!(report.buffers.tensor_count, 1);
    assert_eq!(report.buffers.element_count, 512);
    assert_eq!(report.buffers.bytes, 4096);
    assert_eq!(
        report.buffers.tensors.iter().next().map(|b| b.name),
        Some("embeddings.position_ids")
    );
    assert_eq!(report.dtypes["F32"].parameter_count, 22_713_216);
    assert_eq!(report.dtypes["F32"].bytes, 90_852_864);
    assert_eq!(report.dtypes["I64"].bytes, 4096);
    assert_eq!(report.data_bytes, 90_856_960);
    assert_eq!(report.file_bytes, report.header_bytes + report.data_bytes);
    let formula = report.size_formula.as_ref().expect("a safetensors file");
    assert!(formula.matches);
    assert_eq!(formula.length_bytes, 8);
    assert_eq!(formula.total, report.file_bytes);
    let sizes: Vec<u64> = report.sizes_at.iter().map(|s| s.bytes).collect();
    assert_eq!(sizes, [90_854_912, 45_427_456, 22_713_728, 11_356_864]);
    let order: Vec<&str> = report.landmarks.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        order,
        [
            "line y = ax + b",
            "all-MiniLM-L6-v2",
            "all-MiniLM-L6-v2.safetensors",
            "Llama-2-7B",
            "GPT-3"
        ]
    );
    assert!(report.landmarks[2].this_model);
}

#[test]
fn minilm_human_view_fits_in_60_lines() {
    let text = human(&inspect(&minilm(), &InspectOptions::default()));
    let lines = text.lines().count();
    assert!(lines <= 60, "{lines} lines:\n{text}");
    for expected in [
        "22,713,728 (22.7M)",
        "22,713,216 (22.7M)",
        "embeddings.position_ids (integer table)",
        "encoder.layer.[0-5]  x6  1.77M each",
        "10.6M",
        "word_embeddings.weight  [30522, 384]",
        "pooler.dense",
        "<- this model",
        "format: pt",
        "the file's size",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
    snapshot("minilm_human.txt", &text);
}

#[test]
fn tensors_option_lists_every_tensor() {
    let facts = minilm();
    let options = InspectOptions {
        depth: Some(2),
        tensors: true,
        tensor_limit: None,
        columns: 200,
    };
    let text = human(&inspect(&facts, &options));
    for t in &facts.tensors {
        assert!(text.contains(&t.meta.name), "{} missing", t.meta.name);
    }
    assert!(text.contains("Modules (2 of 5 levels; --depth N shows more)"));
}

#[test]
fn buffers_are_counted_apart() {
    let facts = safetensors_facts(
        "gpt2ish.safetensors",
        vec![
            meta("h.0.attn.c_attn.weight", Dtype::F32, &[8, 24]),
            meta("h.0.attn.c_attn.bias", Dtype::F32, &[24]),
            meta("h.0.attn.bias", Dtype::F32, &[1, 1, 16, 16]),
            meta("h.0.attn.masked_bias", Dtype::F32, &[]),
            meta("rotary.inv_freq", Dtype::F32, &[4]),
            meta("bn.running_mean", Dtype::F32, &[8]),
            meta("bn.running_var", Dtype::F32, &[8]),
            meta("bn.num_batches_tracked", Dtype::I64, &[]),
            meta("mask", Dtype::BOOL, &[3]),
        ],
        BTreeMap::new(),
        None,
    );
    let report = inspect(&facts, &InspectOptions::default());
    assert_eq!(
        report.parameter_count,
        192 + 24 + 256 + 1 + 4 + 8 + 8 + 1 + 3
    );
    assert_eq!(report.buffers.tensor_count, 7);
    assert_eq!(report.buffers.element_count, 256 + 1 + 4 + 8 + 8 + 1 + 3);
    assert_eq!(report.parameters_without_buffers, 192 + 24);
    let text = human(&report);
    assert!(text.contains("and 4 more"), "{text}");
}

#[test]
fn json_model_files_and_empty_models() {
    let facts = ModelFacts {
        path: "m.json".into(),
        kind: "json".into(),
        files: vec![FileFacts {
            path: "m.json".into(),
            file_bytes: 300,
            header_bytes: 300,
        }],
        tensors: vec![TensorFacts {
            meta: meta("w", Dtype::F32, &[2, 3]),
            file: 0,
            offset: 0,
            bytes: 24,
        }],
        metadata: BTreeMap::new(),
        architecture: None,
    };
    let report = inspect(&facts, &InspectOptions::default());
    assert!(report.size_formula.is_none());
    assert_eq!(report.file_bytes_per_parameter, Some(50.0));
    assert!(human(&report).contains("JSON text: 300 bytes for 6 elements"));

    let empty = ModelFacts {
        path: "empty".into(),
        kind: "sharded".into(),
        files: Vec::new(),
        tensors: Vec::new(),
        metadata: BTreeMap::new(),
        architecture: Some(json!("not a layer list")),
    };
    let report = inspect(&empty, &InspectOptions::default());
    assert_eq!(report.parameter_count, 0);
    assert_eq!(report.bytes_per_parameter, None);
    let text = human(&report);
    assert!(
        text.contains("the architecture has no `layers` list"),
        "{text}"
    );
}

#[test]
fn sharded_models_sum_their_files() {
    let mut a = safetensors_facts(
        "a",
        vec![meta("x.0.w", Dtype::F32, &[4])],
        BTreeMap::new(),
        None,
    );
    let b = safetensors_facts(
        "b",
        vec![meta("x.1.w", Dtype::F32, &[4])],
        BTreeMap::new(),
        None,
    );
    a.files.extend(b.files);
    a.tensors
        .extend(b.tensors.into_iter().map(|t| TensorFacts { file: 1, ..t }));
    a.kind = "sharded".into();
    let report = inspect(&a, &InspectOptions::default());
    let formula = report.size_formula.as_ref().expect("formula");
    assert_eq!(formula.length_bytes, 16);
    assert!(formula.matches);
    assert_eq!(report.files[1].tensor_count, 1);
    assert_eq!(report.tree()[0].label, "x.[0-1].w");
    assert!(human(&report).contains("8 x 2 + "));
}

/// A small model with everything: architecture, metadata, a buffer.
fn small() -> ModelFacts {
    let mut user = BTreeMap::new();
    user.insert("author".to_owned(), "tests".to_owned());
    let arch = json!({"layers": [
        {"type": "linear", "weight": "0.weight", "bias": "0.bias"},
        {"type": "relu"},
        {"type": "linear", "weight": "2.weight", "bias": "2.bias"},
        {"type": "softmax"}
    ]});
    safetensors_facts(
        "small.safetensors",
        vec![
            meta("0.weight", Dtype::F32, &[3, 2]),
            meta("0.bias", Dtype::F32, &[3]),
            meta("2.weight", Dtype::BF16, &[2, 3]),
            meta("2.bias", Dtype::BF16, &[2]),
            meta("steps", Dtype::I64, &[]),
        ],
        user,
        Some(arch),
    )
}

#[test]
fn json_report_has_the_required_keys() {
    let small = small();
    let report = inspect(&small, &InspectOptions::default());
    let value = serde_json::to_value(&report).expect("serializable");
    for key in [
        "parameter_count",
        "tensor_count",
        "file_bytes",
        "header_bytes",
        "data_bytes",
        "dtypes",
        "files",
        "tree",
        "tensors",
        "buffers",
        "bytes_per_parameter",
        "metadata",
        "sizes_at",
        "layers",
        "landmarks",
        "size_formula",
    ] {
        assert!(value.get(key).is_some(), "no `{key}`");
    }
    assert_eq!(
        value["dtypes"]["F32"],
        json!({"tensor_count": 2, "parameter_count": 9, "bytes": 36})
    );
    assert_eq!(value["tensors"][2]["shape"], json!([2, 3]));
    for key in [
        "name",
        "dtype",
        "shape",
        "parameter_count",
        "bytes",
        "file",
        "offset",
    ] {
        assert!(
            value["tensors"][0].get(key).is_some(),
            "tensor has no `{key}`"
        );
    }
    let mut text = serde_json::to_string_pretty(&report).expect("serializable");
    text.push('\n');
    snapshot("small_report.json", &text);
}

#[test]
fn facts_serialize_flat() {
    let value = serde_json::to_value(small()).expect("serializable");
    assert_eq!(value["tensors"][0]["name"], "0.weight");
    assert_eq!(value["tensors"][0]["dtype"], "F32");
    assert_eq!(value["tensors"][0]["shape"], json!([3, 2]));
}
