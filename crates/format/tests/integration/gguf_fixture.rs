//! fixtures/gguf/tiny_llama.gguf, written by the `gguf` Python package
//! (fixtures/gguf/make.py), against what the package read back from it
//! (tiny_llama.json): runs without Python.

use modeltool_format::gguf::{Array, GgufHeader, Parsed, Value, parse};
use modeltool_format::sha256_hex;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../fixtures/gguf/tiny_llama"
);

fn fixture() -> (Vec<u8>, serde_json::Value) {
    let file = std::fs::read(format!("{FIXTURE}.gguf")).unwrap();
    let json = serde_json::from_slice(&std::fs::read(format!("{FIXTURE}.json")).unwrap()).unwrap();
    (file, json)
}

#[test]
fn tensors_have_the_packages_shapes_bytes_and_dequantized_values() {
    let (file, expect) = fixture();
    let h = GgufHeader::from_file_bytes(&file).unwrap();
    assert_eq!(u64::from(h.alignment), expect["alignment"]);
    let want = expect["tensors"].as_array().unwrap();
    assert_eq!(h.tensors.len(), want.len());
    for (i, (t, w)) in h.tensors.iter().zip(want).enumerate() {
        assert_eq!(t.name, w["name"].as_str().unwrap());
        assert_eq!(
            t.ggml_type.name(),
            w["type"].as_str().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            serde_json::json!(t.shape()),
            w["shape"],
            "{}: row-major shape",
            t.name
        );
        assert_eq!(
            sha256_hex(h.tensor_data(&file, i).unwrap()),
            w["sha256"],
            "{}",
            t.name
        );
        let values = h.dequantize_tensor(&file, i).unwrap();
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            sha256_hex(&bytes),
            w["dequantized_sha256"],
            "{}: f32 values",
            t.name
        );
    }
}

#[test]
fn metadata_keys_values_and_the_vocabulary() {
    let (file, expect) = fixture();
    let h = GgufHeader::from_file_bytes(&file).unwrap();
    let keys: Vec<&str> = h.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(serde_json::json!(keys), expect["metadata_keys"]);
    assert_eq!(
        h.get("general.architecture").and_then(Value::as_str),
        Some("llama")
    );
    assert_eq!(
        h.get("llama.embedding_length").and_then(Value::as_u64),
        Some(64)
    );
    assert_eq!(
        h.get("llama.attention.layer_norm_rms_epsilon"),
        Some(&Value::F32(1e-5))
    );
    match h.get("tokenizer.ggml.tokens") {
        Some(Value::Array(Array::String(tokens))) => {
            assert_eq!(tokens.len(), 100);
            assert_eq!((tokens[1].as_str(), tokens[99].as_str()), ("<s>", "▁w64"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(h.get("tokenizer.ggml.scores"), Some(Value::Array(Array::F32(s))) if s.len() == 100)
    );
    assert!(
        matches!(h.get("tokenizer.ggml.token_type"), Some(Value::Array(Array::I32(s))) if s.len() == 100)
    );
}

#[test]
fn a_loader_reading_a_doubling_prefix_gets_the_same_header() {
    let (file, _) = fixture();
    let whole = GgufHeader::from_file_bytes(&file).unwrap();
    let mut have = 256usize;
    let mut reads = 1;
    let header = loop {
        match parse(&file[..have.min(file.len())], file.len() as u64).unwrap() {
            Parsed::Header(h) => break h,
            Parsed::NeedMore { at_least } => {
                have = (at_least as usize).max(have * 2);
                reads += 1;
            }
        }
    };
    assert_eq!(header, whole);
    assert!(
        have < file.len(),
        "the header was read without the tensor data"
    );
    assert!(reads <= 6, "{reads} reads");
}
