//! Our GGUF code against the `gguf` Python package (llama.cpp's reference
//! reader, writer and quantizer), through tests/python/gguf_reference.py.
//!
//! Skipped when `MODELTOOL_PYTHON` is unset, failing instead when
//! `MODELTOOL_REQUIRE_PYTHON=1` (as in CI). The interpreter needs the
//! `gguf` package and numpy.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use modeltool_format::gguf::{
    Array, GgmlType, GgufHeader, GgufWriter, Value, can_dequantize, quantize,
};
use modeltool_format::sha256_hex;
use serde_json::json;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/python/gguf_reference.py"
);

fn python() -> Option<PathBuf> {
    match std::env::var_os("MODELTOOL_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("MODELTOOL_REQUIRE_PYTHON").is_some() => {
            panic!("MODELTOOL_REQUIRE_PYTHON is set but MODELTOOL_PYTHON is not")
        }
        None => {
            eprintln!("skipping: set MODELTOOL_PYTHON to a python with the gguf package");
            None
        }
    }
}

/// A fresh folder under the system's temporary folder, for this test only.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modeltool-gguf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(py: &Path, args: &[&str]) -> String {
    let out = Command::new(py).arg(SCRIPT).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gguf_reference.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The folder the reference script wrote (once per test run).
fn reference() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let py = python()?;
        let dir = scratch("reference");
        run(&py, &["write", dir.to_str().unwrap()]);
        Some(dir)
    })
    .as_deref()
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn dequantize_matches_the_gguf_package_bit_for_bit() {
    let Some(dir) = reference() else { return };
    let file = std::fs::read(dir.join("ref.gguf")).unwrap();
    let header = GgufHeader::from_file_bytes(&file).unwrap();
    assert_eq!(header.alignment, 64);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut covered = BTreeSet::new();
    for t in manifest["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let index = header.tensor_index(name).unwrap();
        let info = &header.tensors[index];
        assert_eq!(info.ggml_type.name(), t["type"].as_str().unwrap(), "{name}");
        let shape: Vec<u64> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(
            info.shape(),
            shape,
            "{name}: row-major shape is the stored dims reversed"
        );
        let ours = header.dequantize_tensor(&file, index).unwrap();
        let theirs = f32s(&std::fs::read(dir.join(format!("{name}.f32"))).unwrap());
        assert_eq!(ours.len(), theirs.len(), "{name}");
        let differ = ours
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a.to_bits() != b.to_bits());
        if let Some(i) = differ {
            panic!(
                "{name}: element {i} is {} here, {} in the gguf package",
                ours[i], theirs[i]
            );
        }
        covered.insert(info.ggml_type);
    }
    let decodable: BTreeSet<GgmlType> = GgmlType::ALL
        .into_iter()
        .filter(|&t| can_dequantize(t))
        .collect();
    assert_eq!(covered, decodable, "every type we decode is compared");
    // ...and we decode every type the package decodes (F32 and F16 views
    // included; the plain integer types and F64 it only reinterprets, and
    // we copy them as they are).
    for name in manifest["package_dequantizes"].as_array().unwrap() {
        let t = GgmlType::from_name(name.as_str().unwrap()).unwrap();
        assert!(
            can_dequantize(t) || t.plain_dtype().is_some(),
            "the gguf package dequantizes {t}, modeltool does not"
        );
    }
}

#[test]
fn metadata_the_package_writes_is_read_with_its_types() {
    let Some(dir) = reference() else { return };
    let file = std::fs::read(dir.join("ref.gguf")).unwrap();
    let h = GgufHeader::from_file_bytes(&file).unwrap();
    let expect = [
        (
            "general.architecture",
            Value::String("modeltool-test".into()),
        ),
        ("general.alignment", Value::U32(64)),
        ("t.u8", Value::U8(200)),
        ("t.i8", Value::I8(-100)),
        ("t.u16", Value::U16(60000)),
        ("t.i16", Value::I16(-30000)),
        ("t.u32", Value::U32(4_000_000_000)),
        ("t.i32", Value::I32(-2_000_000_000)),
        ("t.f32", Value::F32(0.15625)),
        ("t.bool", Value::Bool(true)),
        ("t.string", Value::String("héllo\u{202e}".into())),
        ("t.u64", Value::U64((1 << 63) + 5)),
        ("t.i64", Value::I64(-(1 << 62))),
        ("t.f64", Value::F64(0.1)),
        ("t.arr_i32", Value::Array(Array::I32(vec![1, -2, 3]))),
        (
            "t.arr_str",
            Value::Array(Array::String(vec!["a".into(), "".into(), "ü".into()])),
        ),
        ("t.arr_f32", Value::Array(Array::F32(vec![0.5, -1.25]))),
        ("t.arr_bool", Value::Array(Array::Bool(vec![true, false]))),
        (
            "t.nested",
            Value::Array(Array::Array(vec![
                Array::I32(vec![1, 2]),
                Array::I32(vec![3]),
            ])),
        ),
    ];
    let got: Vec<(&str, &Value)> = h.metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let want: Vec<(&str, &Value)> = expect.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(got, want);
}

#[test]
fn q8_0_quantization_matches_the_gguf_package_bit_for_bit() {
    let Some(dir) = reference() else { return };
    let input = f32s(&std::fs::read(dir.join("q8_in.f32")).unwrap());
    let theirs = std::fs::read(dir.join("q8_out.bin")).unwrap();
    let ours = quantize(GgmlType::Q8_0, &input).unwrap();
    assert_eq!(ours.len(), theirs.len());
    if let Some(i) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
        panic!(
            "block {} byte {} differs: {} here, {} in the gguf package",
            i / 34,
            i % 34,
            ours[i],
            theirs[i]
        );
    }
}

#[test]
fn files_we_write_are_read_by_the_gguf_package() {
    let Some(py) = python() else { return };
    let dir = scratch("written");
    let mut w = GgufWriter::new();
    w.set_alignment(64).unwrap();
    let meta = [
        ("general.architecture", Value::String("llama".into())),
        ("m.u8", Value::U8(255)),
        ("m.i8", Value::I8(-128)),
        ("m.u16", Value::U16(65535)),
        ("m.i16", Value::I16(-32768)),
        ("m.u32", Value::U32(u32::MAX)),
        ("m.i32", Value::I32(i32::MIN)),
        ("m.f32", Value::F32(-2.5)),
        ("m.bool", Value::Bool(false)),
        ("m.string", Value::String("tab\there, ü".into())),
        ("m.u64", Value::U64(u64::MAX)),
        ("m.i64", Value::I64(i64::MIN)),
        ("m.f64", Value::F64(1e300)),
        ("m.arr_u8", Value::Array(Array::U8(vec![0, 1, 255]))),
        ("m.arr_i64", Value::Array(Array::I64(vec![-1, 1 << 40]))),
        (
            "m.arr_str",
            Value::Array(Array::String(vec!["<s>".into(), "▁the".into()])),
        ),
        ("m.arr_f64", Value::Array(Array::F64(vec![0.25]))),
        ("m.arr_u16", Value::Array(Array::U16(vec![7, 8]))),
    ];
    for (k, v) in &meta {
        w.add_metadata(*k, v.clone()).unwrap();
    }
    let values: Vec<f32> = (0..2 * 3 * 64)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    let tensors: Vec<(&str, Vec<u64>, GgmlType, Vec<u8>)> = vec![
        (
            "f32",
            vec![2, 3, 64],
            GgmlType::F32,
            quantize(GgmlType::F32, &values).unwrap(),
        ),
        (
            "f16",
            vec![6, 64],
            GgmlType::F16,
            quantize(GgmlType::F16, &values).unwrap(),
        ),
        (
            "bf16",
            vec![384],
            GgmlType::BF16,
            quantize(GgmlType::BF16, &values).unwrap(),
        ),
        (
            "q8_0",
            vec![3, 2, 64],
            GgmlType::Q8_0,
            quantize(GgmlType::Q8_0, &values).unwrap(),
        ),
        (
            "q4_k.raw",
            vec![2, 256],
            GgmlType::Q4_K,
            (0..288).map(|i| (i * 7) as u8).collect(),
        ),
        (
            "i32",
            vec![3],
            GgmlType::I32,
            [1i32, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    ];
    for (name, shape, t, data) in &tensors {
        w.add_tensor(*name, shape, *t, data.clone()).unwrap();
    }
    let path = dir.join("ours.gguf");
    std::fs::write(&path, w.to_bytes().unwrap()).unwrap();
    let ours = GgufHeader::from_file_bytes(&std::fs::read(&path).unwrap()).unwrap();

    let theirs: serde_json::Value =
        serde_json::from_str(&run(&py, &["read", path.to_str().unwrap()])).unwrap();
    assert_eq!(theirs["alignment"], 64);
    let fields = theirs["fields"].as_object().unwrap();
    assert_eq!(
        fields["general.alignment"],
        json!({"type": "UINT32", "value": 64})
    );
    for (k, v) in &meta {
        let (ty, value) = match v {
            Value::U8(x) => ("UINT8", json!(x)),
            Value::I8(x) => ("INT8", json!(x)),
            Value::U16(x) => ("UINT16", json!(x)),
            Value::I16(x) => ("INT16", json!(x)),
            Value::U32(x) => ("UINT32", json!(x)),
            Value::I32(x) => ("INT32", json!(x)),
            Value::F32(x) => ("FLOAT32", json!(x)),
            Value::Bool(x) => ("BOOL", json!(x)),
            Value::String(x) => ("STRING", json!(x)),
            Value::U64(x) => ("UINT64", json!(x)),
            Value::I64(x) => ("INT64", json!(x)),
            Value::F64(x) => ("FLOAT64", json!(x)),
            Value::Array(Array::U8(x)) => ("ARRAY:UINT8", json!(x)),
            Value::Array(Array::I64(x)) => ("ARRAY:INT64", json!(x)),
            Value::Array(Array::String(x)) => ("ARRAY:STRING", json!(x)),
            Value::Array(Array::F64(x)) => ("ARRAY:FLOAT64", json!(x)),
            Value::Array(Array::U16(x)) => ("ARRAY:UINT16", json!(x)),
            other => panic!("not in this test: {other:?}"),
        };
        assert_eq!(fields[*k], json!({"type": ty, "value": value}), "{k}");
    }
    let their_tensors = theirs["tensors"].as_array().unwrap();
    assert_eq!(their_tensors.len(), tensors.len());
    for ((name, shape, t, data), (theirs, info)) in
        tensors.iter().zip(their_tensors.iter().zip(&ours.tensors))
    {
        let ne: Vec<u64> = shape.iter().rev().copied().collect();
        assert_eq!(theirs["name"], *name);
        assert_eq!(theirs["type"], t.name());
        assert_eq!(theirs["ne"], json!(ne), "{name}: stored fastest first");
        assert_eq!(theirs["n_bytes"], data.len());
        assert_eq!(theirs["sha256"], sha256_hex(data), "{name}: same bytes");
        assert_eq!(theirs["offset"], ours.data_start + info.offset, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
