//! Keys in any order: another writer (Python's `json.dump(sort_keys=True)`
//! puts `data` before `dtype` and `shape`) must read back to the same bytes.

use std::collections::BTreeMap;

use modeltool_format::{Checksum, Dtype, sha256_hex};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{Sample, any_tensors, json_model, json_ok, write_json};

/// The same JSON with every object's keys sorted, as `sort_keys=True` writes it.
fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let sorted: BTreeMap<String, Value> =
                map.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// Writes `samples` with our writer, re-orders every key, and checks that
/// both readers give back the same bytes.
fn assert_sorted_round_trip(samples: &[Sample], pretty: bool) {
    let text = write_json(
        samples,
        &BTreeMap::new(),
        Some(&serde_json::json!({"b": 1, "a": [2]})),
    );
    let value: Value = serde_json::from_slice(&text).expect("the writer writes JSON");
    let value = sort_keys(value);
    let resorted = if pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    }
    .expect("to a Vec");
    let first_tensor = value["tensors"].as_object().and_then(|t| t.values().next());
    if let Some(Value::Object(t)) = first_tensor {
        assert_eq!(
            t.keys().next().map(String::as_str),
            Some("data"),
            "keys are sorted"
        );
    }
    let model = json_ok(&resorted);
    assert_eq!(model.tensors.len(), samples.len());
    for s in samples {
        let t = model
            .tensors
            .iter()
            .find(|t| t.meta.name == s.meta.name)
            .expect("every tensor is read");
        assert_eq!(t.meta, s.meta);
        assert_eq!(
            t.data, s.data,
            "bytes of `{}` ({})",
            s.meta.name, s.meta.dtype
        );
        assert_eq!(t.sha256, Some(Checksum::of(&s.data)));
    }
}

proptest! {
    #[test]
    fn sorted_keys_read_back_the_same(samples in any_tensors(), pretty in any::<bool>()) {
        assert_sorted_round_trip(&samples, pretty);
    }
}

#[test]
fn sorted_keys_with_special_values() {
    let f32s: Vec<u8> = [0x7f80_0001u32, 0x8000_0000, 0xff80_0000]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let samples = [
        Sample::new("a.f32", Dtype::F32, &[3], f32s),
        Sample::new("b.u64", Dtype::U64, &[1], u64::MAX.to_le_bytes().to_vec()),
        Sample::new("c.f4", Dtype::F4, &[4], vec![0xf1, 0x7e]),
        Sample::new(
            "d.c64",
            Dtype::C64,
            &[1],
            [f32::NAN, -0.0f32]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        Sample::new("e.empty", Dtype::BF16, &[0, 2], vec![]),
    ];
    assert_sorted_round_trip(&samples, false);
    assert_sorted_round_trip(&samples, true);
}

#[test]
fn python_style_text_with_data_first() {
    // What `json.dump(model, f, sort_keys=True)` writes, separators and all.
    let sum = sha256_hex(&[1, 0, 0, 0, 2, 0, 0, 0]);
    let text = format!(
        r#"{{"architecture": null, "format": "modeltool.json/1", "metadata": {{"a": "b"}}, "tensors": {{"w": {{"data": [1, 2], "dtype": "I32", "sha256": "{sum}", "shape": [2]}}}}}}"#
    );
    let m = json_ok(text.as_bytes());
    assert_eq!(m.tensors[0].data, [1, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(m.tensors[0].sha256.map(|s| s.to_string()), Some(sum));
    assert_eq!(m.architecture, None);

    // Every permutation of the four keys.
    let parts = [
        r#""data": [1.5, "NaN:0x7fc00001"]"#,
        r#""dtype": "F32""#,
        r#""sha256": "{SUM}""#,
        r#""shape": [2]"#,
    ];
    let expected: Vec<u8> = [1.5f32.to_bits(), 0x7fc0_0001]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let sum = sha256_hex(&expected);
    for order in permutations(4) {
        let entry: Vec<String> = order
            .iter()
            .map(|&i| parts[i].replace("{SUM}", &sum))
            .collect();
        let text = json_model(&format!(r#""w": {{{}}}"#, entry.join(", ")));
        let m = json_ok(text.as_bytes());
        assert_eq!(m.tensors[0].data, expected, "key order {order:?}");
    }
}

/// Errors in deferred data (read before its dtype was known) still name the tensor.
#[test]
fn errors_in_data_before_dtype_name_the_tensor() {
    for (data, shape) in [
        ("[300]", "[1]"),
        ("[1, 2]", "[1]"),
        ("[[1]]", "[1]"),
        ("[1]", "[2]"),
    ] {
        let text = json_model(&format!(
            r#""w": {{"data": {data}, "dtype": "U8", "shape": {shape}}}"#
        ));
        let (tensor, kind) = crate::common::json_err(&text);
        assert_eq!(tensor.as_deref(), Some("w"), "{data} {shape}: {kind:?}");
    }
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}
