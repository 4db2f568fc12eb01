//! Helpers shared by the test modules: hand-made files, generated tensors.

use std::collections::BTreeMap;

use modeltool_format::{
    Checksum, Dtype, FormatError, Header, JsonErrorKind, JsonModel, JsonWriter, TensorMeta,
    sha256_hex,
};
use proptest::prelude::*;

/// A safetensors file from a header written by hand: the 8-byte
/// little-endian length, the header text, then `data`.
pub fn file(header_json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header_json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header_json.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Parses `bytes` as a safetensors file that must be rejected.
pub fn header_err(bytes: &[u8]) -> FormatError {
    match Header::from_file_bytes(bytes) {
        Ok(h) => panic!("accepted an invalid file: {h:?}"),
        Err(e) => e,
    }
}

/// A JSON model file around the given text of the `tensors` object.
pub fn json_model(tensors: &str) -> String {
    format!(r#"{{"format": "modeltool.json/1", "metadata": {{}}, "tensors": {{{tensors}}}}}"#)
}

/// Reads `text` both from a slice and from a stream; both must fail with
/// the same error. Returns it.
pub fn json_fail(text: &str) -> FormatError {
    let from_slice = match JsonModel::from_slice(text.as_bytes()) {
        Ok(m) => panic!("from_slice accepted an invalid model: {m:?}"),
        Err(e) => e,
    };
    let from_reader = match JsonModel::read(text.as_bytes()) {
        Ok(m) => panic!("read accepted an invalid model: {m:?}"),
        Err(e) => e,
    };
    let (a, b) = (from_slice.to_string(), from_reader.to_string());
    assert_eq!(
        without_position(&a),
        without_position(&b),
        "from_slice and read disagree"
    );
    from_slice
}

/// [`json_fail`] for an error of the JSON reader: the tensor it names and
/// what is wrong.
pub fn json_err(text: &str) -> (Option<String>, JsonErrorKind) {
    match json_fail(text) {
        FormatError::JsonModel(e) => (e.tensor, e.kind),
        other => panic!("not a JSON model error: {other:?}"),
    }
}

fn without_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Reads `text` both from a slice and from a stream; both must succeed and agree.
pub fn json_ok(text: &[u8]) -> JsonModel {
    let a = JsonModel::from_slice(text).unwrap_or_else(|e| panic!("from_slice: {e}"));
    let b = JsonModel::read(text).unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(a, b, "from_slice and read disagree");
    a
}

/// One tensor to write: name, dtype, shape and its bytes.
#[derive(Debug, Clone)]
pub struct Sample {
    pub meta: TensorMeta,
    pub data: Vec<u8>,
}

impl Sample {
    pub fn new(name: &str, dtype: Dtype, shape: &[usize], data: Vec<u8>) -> Sample {
        Sample {
            meta: TensorMeta {
                name: name.to_owned(),
                dtype,
                shape: shape.to_vec(),
            },
            data,
        }
    }
}

/// Writes tensors as a JSON model file with the given metadata and architecture.
pub fn write_json(
    samples: &[Sample],
    metadata: &BTreeMap<String, String>,
    architecture: Option<&serde_json::Value>,
) -> Vec<u8> {
    let mut w = JsonWriter::new(Vec::new(), metadata, architecture).expect("writing to a Vec");
    for s in samples {
        w.write_tensor(&s.meta, &s.data, &sha256_hex(&s.data))
            .unwrap_or_else(|e| panic!("write_tensor {}: {e}", s.meta.name));
    }
    w.finish().expect("writing to a Vec")
}

/// Writes, then reads back (from a slice and from a stream) and checks that
/// every tensor comes back with the same name, dtype, shape, bytes and checksum.
pub fn assert_json_round_trip(samples: &[Sample]) {
    let text = write_json(samples, &BTreeMap::new(), None);
    let model = json_ok(&text);
    assert_eq!(model.tensors.len(), samples.len());
    for (s, t) in samples.iter().zip(&model.tensors) {
        assert_eq!(t.meta, s.meta);
        assert_eq!(
            t.data, s.data,
            "bytes of `{}` ({})",
            s.meta.name, s.meta.dtype
        );
        assert_eq!(t.sha256, Some(Checksum::of(&s.data)));
        assert_eq!(
            hex::encode(t.actual_sha256),
            sha256_hex(&s.data),
            "hashed while read"
        );
    }
}

/// The number of bytes a tensor of `dtype` and `shape` takes.
pub fn byte_len(dtype: Dtype, shape: &[usize]) -> usize {
    TensorMeta {
        name: String::new(),
        dtype,
        shape: shape.to_vec(),
    }
    .byte_len()
    .expect("a shape with whole bytes")
}

/// A shape of 0 to 3 small dimensions whose element count fills whole bytes
/// for `dtype` (packed F4 needs an even count, F6 a multiple of 4).
pub fn shape_for(dtype: Dtype) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..5, 0..=3).prop_map(move |mut shape| {
        let count: usize = shape.iter().product();
        if dtype.byte_len(count).is_none() {
            shape.push(8 / gcd(dtype.bits(), 8));
        }
        shape
    })
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Valid bytes for a tensor of `dtype` and `shape`: anything for most types,
/// only 0 and 1 for BOOL.
pub fn bytes_for(dtype: Dtype, shape: &[usize]) -> BoxedStrategy<Vec<u8>> {
    let len = byte_len(dtype, shape);
    if dtype == Dtype::BOOL {
        proptest::collection::vec(0u8..=1, len).boxed()
    } else {
        proptest::collection::vec(any::<u8>(), len).boxed()
    }
}

/// Any dtype, a shape for it and valid bytes.
pub fn any_tensor() -> impl Strategy<Value = (Dtype, Vec<usize>, Vec<u8>)> {
    proptest::sample::select(Dtype::ALL.to_vec())
        .prop_flat_map(|dtype| (Just(dtype), shape_for(dtype)))
        .prop_flat_map(|(dtype, shape)| {
            let bytes = bytes_for(dtype, &shape);
            (Just(dtype), Just(shape), bytes)
        })
}

/// One to five tensors with distinct names.
pub fn any_tensors() -> impl Strategy<Value = Vec<Sample>> {
    proptest::collection::vec(any_tensor(), 1..=5).prop_map(|ts| {
        ts.into_iter()
            .enumerate()
            .map(|(i, (dtype, shape, data))| {
                Sample::new(&format!("layer.{i}.{dtype}"), dtype, &shape, data)
            })
            .collect()
    })
}

/// Deterministic pseudo-random bytes (xorshift), for tensors too large to
/// be worth generating through proptest.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
