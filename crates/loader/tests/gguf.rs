//! GGUF files through `Model::open`: header-only opening, entries in
//! row-major order, quantized tensors decoded on read, metadata under
//! `gguf.`, and hostile headers refused with one line.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use modeltool_format::Dtype;
use modeltool_format::gguf::{
    Array, GgmlType, GgufError, GgufWriter, Value, dequantize_to_vec, quantize,
};
use modeltool_loader::{LoadError, Location, Model, ModelKind, OpenOptions, VerifyOptions};

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 16.0)
        .collect()
}

/// A file with a plain F32 and F16 tensor, a Q8_0 one, an I32 one, and a
/// 150k-entry vocabulary.
fn sample() -> (Vec<u8>, Vec<f32>) {
    let mut w = GgufWriter::new();
    w.add_metadata("general.name", Value::String("tiny".into()))
        .unwrap();
    w.add_metadata("llama.context_length", Value::U32(4096))
        .unwrap();
    w.add_metadata(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String(vec!["tok".into(); 150_000])),
    )
    .unwrap();
    let v = values(2 * 64);
    w.add_tensor(
        "plain",
        &[2, 3],
        GgmlType::F32,
        quantize(GgmlType::F32, &values(6)).unwrap(),
    )
    .unwrap();
    w.add_tensor(
        "half",
        &[4],
        GgmlType::F16,
        quantize(GgmlType::F16, &values(4)).unwrap(),
    )
    .unwrap();
    w.add_tensor(
        "q",
        &[2, 64],
        GgmlType::Q8_0,
        quantize(GgmlType::Q8_0, &v).unwrap(),
    )
    .unwrap();
    let ints: Vec<u8> = [7i32, -1].iter().flat_map(|x| x.to_le_bytes()).collect();
    w.add_tensor("ints", &[2], GgmlType::I32, ints).unwrap();
    (w.to_bytes().unwrap(), v)
}

#[test]
fn a_gguf_file_opens_with_row_major_entries_and_decoded_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let (file, v) = sample();
    std::fs::write(&path, &file).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(model.kind(), &ModelKind::Gguf);

    let plain = model.entry("plain").unwrap();
    assert_eq!(
        (plain.meta.dtype, &plain.meta.shape[..]),
        (Dtype::F32, &[2, 3][..])
    );
    assert!(matches!(plain.location, Location::File { .. }));
    assert_eq!(plain.stored_type(), None);
    assert_eq!(model.entry("half").unwrap().meta.dtype, Dtype::F16);
    let ints = model.entry("ints").unwrap();
    assert_eq!(ints.meta.dtype, Dtype::I32);
    assert_eq!(
        &model.bytes(ints).unwrap()[..],
        &[7, 0, 0, 0, 255, 255, 255, 255]
    );

    // Quantized: logical F32, stored Q8_0, decoded bit for bit as the
    // format crate's dequantizer (itself checked against gguf-py).
    let q = model.entry("q").unwrap();
    assert_eq!(
        (q.meta.dtype, &q.meta.shape[..]),
        (Dtype::F32, &[2, 64][..])
    );
    assert_eq!(q.stored_type(), Some(GgmlType::Q8_0));
    assert_eq!(q.stored_len(), 4 * 34);
    assert_eq!(q.byte_len(), 2 * 64 * 4);
    let expected =
        dequantize_to_vec(GgmlType::Q8_0, &quantize(GgmlType::Q8_0, &v).unwrap()).unwrap();
    let got = model.tensor_f32("q").unwrap();
    assert_eq!(
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        expected.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    // Streamed in chunks smaller than a block run: the same bytes.
    let mut streamed = Vec::new();
    model
        .for_each_chunk(q, 100, |c| {
            streamed.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
    assert_eq!(streamed, model.bytes(q).unwrap().into_owned());

    let user = &model.metadata().user;
    assert_eq!(user["gguf.general.name"], "tiny");
    assert_eq!(user["gguf.llama.context_length"], "4096");
    assert_eq!(
        user["gguf.tokenizer.ggml.tokens"], "array of 150000 string",
        "a vocabulary is summarised, never dumped"
    );
    // Opening read the header, not the data: the header is what the
    // parser needed.
    assert!(model.files()[0].header_bytes < file.len() as u64);
}

#[test]
fn a_gguf_from_elsewhere_verifies_its_structure_with_no_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    let mut w = GgufWriter::new();
    // Q1_0 has no decoder: the file still opens and verifies.
    w.add_tensor("iq", &[256], GgmlType::Q1_0, vec![0u8; 36])
        .unwrap();
    w.add_tensor("w", &[32], GgmlType::Q8_0, vec![0u8; 34])
        .unwrap();
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let report = model.verify(&VerifyOptions::default()).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.no_checksum.len(), 2);
    let iq = model.entry("iq").unwrap();
    match model.bytes(iq).unwrap_err() {
        LoadError::Gguf {
            source: GgufError::CannotDequantize { ggml_type, .. },
            ..
        } => assert_eq!(ggml_type, GgmlType::Q1_0),
        other => panic!("{other}"),
    }
}

#[test]
fn hostile_gguf_headers_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = sample();
    let mut huge_count = file.clone();
    // The tensor count (bytes 8..16) says 2^60.
    huge_count[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let mut bad_type = file.clone();
    // The version: 9.
    bad_type[4..8].copy_from_slice(&9u32.to_le_bytes());
    let cases: [(&str, &[u8]); 4] = [
        ("cut.gguf", &file[..40]),
        ("count.gguf", &huge_count),
        ("version.gguf", &bad_type),
        ("magic-only.gguf", b"GGUF\x03\x00\x00\x00"),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = Model::open(&path, OpenOptions::default()).unwrap_err();
        assert!(matches!(err, LoadError::Gguf { .. }), "{name}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(name), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }
}

#[test]
fn a_folder_holding_one_gguf_file_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.gguf"), sample().0).unwrap();
    std::fs::write(dir.path().join("README.md"), b"# hi").unwrap();
    let model = Model::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(model.kind(), &ModelKind::Gguf);
    assert_eq!(model.entries().len(), 4);
}
