//! Packed quantized weights counted as the parameters they hold, and the
//! Hugging Face config.json beside a checkpoint.

use std::collections::BTreeMap;

use modeltool_format::{Dtype, TensorMeta, write_safetensors};
use modeltool_inspect::{HfConfig, InspectOptions, Report};
use modeltool_loader::{Model, OpenOptions};

use crate::util::{human, meta, safetensors_facts};

fn report_of(metas: Vec<TensorMeta>) -> (modeltool_inspect::ModelFacts, String) {
    let facts = safetensors_facts("q.safetensors", metas, BTreeMap::new(), None);
    let text = human(&Report::from_facts(&facts, &InspectOptions::default()));
    (facts, text)
}

#[test]
fn bitsandbytes_4bit_weights_hold_two_parameters_a_byte() {
    let metas = vec![
        meta("l.weight", Dtype::U8, &[2048, 1]),
        meta("l.weight.absmax", Dtype::F32, &[64]),
        meta("l.weight.quant_map", Dtype::F32, &[16]),
        meta("l.weight.quant_state.bitsandbytes__nf4", Dtype::U8, &[100]),
        meta("l.bias", Dtype::F16, &[64]),
    ];
    let (facts, text) = report_of(metas);
    let report = Report::from_facts(&facts, &InspectOptions::default());
    let q = report.quantization.as_ref().expect("recognised");
    assert_eq!(q.packings.len(), 1);
    assert_eq!(q.packings[0].scheme, "bitsandbytes nf4");
    assert_eq!(q.packings[0].bits, Some(4));
    assert_eq!(q.packings[0].stored_elements, 2048);
    assert_eq!(q.packings[0].parameters, Some(4096));
    assert_eq!((q.state_tensors, q.state_elements), (3, 64 + 16 + 100));
    assert_eq!(q.parameters, 4096 + 64);
    assert!(
        text.contains("2,048 stored elements = 4,096 parameters at 4 bits"),
        "{text}"
    );
    assert!(
        text.contains("unpacked          4,160 (4.16K) parameters"),
        "{text}"
    );
    // The precisions are of the parameters the weights hold.
    assert_eq!(report.sizes_at[0].bytes, 4 * 4160);
}

#[test]
fn gptq_and_awq_layouts_give_their_bits() {
    let (facts, text) = report_of(vec![
        meta("a.qweight", Dtype::I32, &[16, 64]),
        meta("a.qzeros", Dtype::I32, &[1, 8]),
        meta("a.scales", Dtype::F16, &[1, 64]),
        meta("a.g_idx", Dtype::I32, &[128]),
        meta("b.qweight", Dtype::I32, &[128, 8]),
        meta("b.qzeros", Dtype::I32, &[1, 8]),
        meta("b.scales", Dtype::F16, &[1, 64]),
    ]);
    let report = Report::from_facts(&facts, &InspectOptions::default());
    let q = report.quantization.as_ref().expect("recognised");
    let found: Vec<_> = q
        .packings
        .iter()
        .map(|p| (p.scheme.as_str(), p.bits, p.stored_elements, p.parameters))
        .collect();
    assert_eq!(
        found,
        [
            ("AWQ", Some(4), 1024, Some(8192)),
            ("GPTQ", Some(4), 1024, Some(8192)),
        ]
    );
    assert_eq!(q.state_tensors, 5);
    assert_eq!(q.parameters, 2 * 8192);
    assert!(
        text.contains("= 8,192 parameters at 4 bits (GPTQ, 1\n"),
        "{text}"
    );
}

#[test]
fn an_unrecognised_packing_says_it_counts_stored_elements() {
    let (facts, text) = report_of(vec![meta("x.qweight", Dtype::I32, &[3, 5])]);
    let report = Report::from_facts(&facts, &InspectOptions::default());
    let q = report.quantization.as_ref().expect("a qweight");
    assert_eq!(q.packings[0].parameters, None);
    assert!(
        text.contains("counted as stored, not as parameters"),
        "{text}"
    );
}

#[test]
fn plain_models_have_no_quantization() {
    let (facts, _) = report_of(vec![
        meta("fc.weight", Dtype::I8, &[4, 4]),
        meta("h.0.attn.c_attn.weight", Dtype::F32, &[4]),
    ]);
    assert!(
        Report::from_facts(&facts, &InspectOptions::default())
            .quantization
            .is_none()
    );
}

/// A one-tensor safetensors model in `dir`.
fn write_model(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("model.safetensors");
    let m = meta("w", Dtype::F32, &[1]);
    let bytes = 1f32.to_le_bytes();
    write_safetensors(
        std::fs::File::create(&path).expect("create"),
        &[(m, &bytes[..])],
        &BTreeMap::new(),
    )
    .expect("write");
    path
}

#[test]
fn config_json_beside_the_model_is_summarised() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path());
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "bert\u001b[2J", "architectures": ["BertModel"], "hidden_size": 384,
            "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536,
            "vocab_size": 30522, "torch_dtype": "float32"}"#,
    )
    .expect("write config");
    let model = Model::open(&path, OpenOptions::default()).expect("open");
    let report = Report::from_model(&model, &InspectOptions::default());
    let c = report.config.as_ref().expect("a config");
    assert_eq!(c.model_type.as_deref(), Some("bert\u{1b}[2J"));
    assert_eq!(
        (c.hidden_size, c.layers, c.heads),
        (Some(384), Some(6), Some(12))
    );
    let text = human(&report);
    assert!(
        text.contains("  config.json       bert\\u{1b}[2J (BertModel), hidden 384, 6 layers,"),
        "{text}"
    );
    assert!(text.contains("vocabulary 30,522"), "{text}");
    assert!(report.warnings.is_empty());
}

#[test]
fn a_broken_config_json_is_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path());
    std::fs::write(dir.path().join("config.json"), "{\"hidden_size\": ").expect("write");
    let model = Model::open(&path, OpenOptions::default()).expect("open");
    let report = Report::from_model(&model, &InspectOptions::default());
    assert!(report.config.is_none());
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let text = human(&report);
    assert!(
        text.lines().nth(1).is_some_and(
            |l| l.starts_with("warning: ") && l.contains("config.json: not valid JSON")
        ),
        "{text}"
    );
    // Not an object, and too large, are warnings too.
    assert!(HfConfig::from_json(b"[1, 2]").is_err());
    std::fs::write(
        dir.path().join("config.json"),
        vec![b' '; (modeltool_inspect::MAX_CONFIG_BYTES + 1) as usize],
    )
    .expect("write");
    let report = Report::from_model(&model, &InspectOptions::default());
    assert!(
        report.warnings[0].contains("larger than"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn model_warnings_come_first_in_the_human_view() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = write_model(dir.path());
    let model = Model::open(&path, OpenOptions::default()).expect("open");
    let report = Report::from_model(&model, &InspectOptions::default())
        .with_warnings(["index says \u{1b}[2J 12 bytes".to_owned()]);
    let text = human(&report);
    assert_eq!(
        text.lines().nth(1),
        Some("warning: index says \\u{1b}[2J 12 bytes")
    );
}
