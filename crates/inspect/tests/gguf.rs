//! The GGUF section of the report comes from the header alone.

use modeltool_format::gguf::{GgmlType, GgufWriter, Value, quantize};
use modeltool_inspect::{InspectOptions, MetadataValue, Report};
use modeltool_loader::{Model, OpenOptions};

#[test]
fn the_gguf_section_needs_no_tensor_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", Value::String("llama".into()))
        .unwrap();
    w.add_metadata("llama.block_count", Value::U32(1)).unwrap();
    let values: Vec<f32> = (0..512).map(|i| i as f32 / 512.0).collect();
    w.add_tensor(
        "blk.0.w",
        &[2, 256],
        GgmlType::Q8_0,
        quantize(GgmlType::Q8_0, &values).unwrap(),
    )
    .unwrap();
    w.add_tensor("norm", &[256], GgmlType::F32, vec![0u8; 1024])
        .unwrap();
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let data_start = model.gguf().unwrap().data_start;

    // The tensor data is gone (the same file, cut to its header): a report
    // that read any of it could not have the figures below.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(data_start)
        .unwrap();
    let entry = model.entry("blk.0.w").unwrap();
    assert!(model.bytes(entry).is_err(), "the data is unreadable now");

    let report = Report::from_model(&model, &InspectOptions::default());
    let g = report.gguf.as_ref().expect("a GGUF section");
    let q8 = g.types.iter().find(|t| t.ggml_type == "Q8_0").unwrap();
    assert_eq!((q8.tensor_count, q8.parameter_count), (1, 512));
    assert_eq!(q8.bytes, 16 * 34);
    assert_eq!(q8.bits_per_weight, Some(8.5));
    assert_eq!(g.summary.block_count, Some(serde_json::json!(1)));
    let mut text = Vec::new();
    report.render_human(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("Q8_0"), "{text}");
    let v = MetadataValue::find(&model, "general.architecture").unwrap();
    assert_eq!(v.type_name(), "string");
    assert!(MetadataValue::find(&model, "nope").is_none());
}

#[test]
fn other_models_have_no_gguf_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let meta = modeltool_format::TensorMeta {
        name: "a".into(),
        dtype: modeltool_format::Dtype::F32,
        shape: vec![1],
    };
    modeltool_format::write_safetensors(
        std::fs::File::create(&path).unwrap(),
        &[(meta, &1f32.to_le_bytes()[..])],
        &Default::default(),
    )
    .unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let report = Report::from_model(&model, &InspectOptions::default());
    assert!(report.gguf.is_none());
    assert!(serde_json::to_value(&report).unwrap().get("gguf").is_none());
}
