//! GGUF files as a [`Model`]: the header is read in bounded steps (never the
//! tensor data), plain ggml types become entries of their own dtype, and
//! quantized tensors entries of dtype F32 whose bytes are decoded on read
//! ([`Location::GgufBlocks`]).

use std::collections::BTreeMap;
use std::path::Path;

use modeltool_format::gguf::{self, Array, GgmlType, GgufError, GgufHeader, Parsed, Value};
use modeltool_format::text::Escaped;
use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, keys};

use crate::{Entry, LoadError, Location, Model, ModelFile, ModelKind, Result};

/// The prefix GGUF metadata keys get in [`ModelMetadata::user`].
pub const GGUF_PREFIX: &str = "gguf.";

/// Arrays with more elements than this are summarised ("array of 151936
/// string") in the metadata instead of rendered.
pub const MAX_ARRAY_SHOWN: usize = 16;

/// A GGUF file's header as the file has it, kept beside the entries
/// ([`Model::gguf`]): what a report about GGUF needs beyond tensors and
/// text metadata. The tensor data is not part of it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GgufInfo {
    /// The format version (2 or 3).
    pub version: u32,
    /// `general.alignment`, or 32 when absent.
    pub alignment: u32,
    /// Where the data section starts (the header's length, padded).
    pub data_start: u64,
    /// Every metadata entry in file order, typed, arrays whole.
    pub metadata: Vec<(String, Value)>,
    /// Each tensor's ggml type, in the order of [`Model::entries`].
    pub types: Vec<GgmlType>,
}

impl GgufInfo {
    /// The value of metadata key `key`, exactly as the file spells it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The first read of a header; real headers with a large vocabulary are a
/// few MB, and [`gguf::parse`] says how much more it needs.
const FIRST_READ: u64 = 1 << 20;

/// Reads the header of `file` in bounded steps: a first MiB, then at least
/// what the parser asks for (doubling), never past the file's end or
/// [`gguf::MAX_HEADER_LEN`].
pub(crate) fn read_header(file: &ModelFile) -> Result<GgufHeader> {
    let path = &file.path;
    let file_len = file.file_len;
    let mut want = file_len.min(FIRST_READ);
    loop {
        let mut prefix = vec![0u8; want as usize];
        file.read_exact_at(&mut prefix, 0)?;
        match gguf::parse(&prefix, file_len).map_err(LoadError::gguf(path))? {
            Parsed::Header(h) => return Ok(h),
            Parsed::NeedMore { at_least } => {
                if at_least > gguf::MAX_HEADER_LEN {
                    return Err(LoadError::gguf(path)(GgufError::HeaderTooLarge {
                        needed: at_least,
                        max: gguf::MAX_HEADER_LEN,
                    }));
                }
                let next = at_least
                    .max(want.saturating_mul(2))
                    .min(file_len)
                    .min(gguf::MAX_HEADER_LEN);
                if next <= want || at_least > file_len {
                    return Err(LoadError::gguf(path)(GgufError::Truncated {
                        what: "header",
                        offset: 0,
                        needed: at_least,
                        file_len,
                    }));
                }
                want = next;
            }
        }
    }
}

/// Opens a little-endian GGUF file: header only.
pub(crate) fn open(path: &Path, mut file: ModelFile) -> Result<Model> {
    let header = read_header(&file)?;
    file.header_bytes = header.data_start;
    let mut model = Model::empty(path, ModelKind::Gguf);
    let mut checksums = BTreeMap::new();
    let mut user = BTreeMap::new();
    let mut architecture = None;
    for (key, value) in &header.metadata {
        let bad = |why: &str| LoadError::NotAModel {
            path: path.to_owned(),
            reason: format!("metadata key `{}` {why}", Escaped(key)),
        };
        if let Some(name) = key.strip_prefix(keys::SHA256_PREFIX) {
            match value.as_str().and_then(Checksum::from_hex) {
                Some(sum) => {
                    checksums.insert(name.to_owned(), sum);
                }
                None => return Err(bad("is not a sha256 (64 lowercase hex digits as a string)")),
            }
        } else if key == keys::ARCHITECTURE {
            let json = value
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| bad("is not JSON text"))?;
            architecture = Some(json);
        } else {
            // A key already under `gguf.` is one modeltool wrote from a
            // model read from a GGUF: it stays as it was.
            let key = if key.starts_with(GGUF_PREFIX) {
                key.clone()
            } else {
                format!("{GGUF_PREFIX}{key}")
            };
            user.insert(key, render(value));
        }
    }
    model.entries.reserve(header.tensors.len());
    for (i, t) in header.tensors.iter().enumerate() {
        let range = header.tensor_range(i).expect("an index of the header");
        let shape = t
            .shape()
            .into_iter()
            .map(usize::try_from)
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| LoadError::NotAModel {
                path: path.to_owned(),
                reason: format!(
                    "tensor `{}` has a dimension too large for this machine",
                    Escaped(&t.name)
                ),
            })?;
        let (dtype, location) = match t.ggml_type.plain_dtype() {
            Some(dtype) => (
                dtype,
                Location::File {
                    file: 0,
                    start: range.start,
                    end: range.end,
                },
            ),
            None => (
                Dtype::F32,
                Location::GgufBlocks {
                    file: 0,
                    start: range.start,
                    end: range.end,
                    ggml_type: t.ggml_type,
                },
            ),
        };
        model.entries.push(Entry {
            meta: TensorMeta {
                name: t.name.clone(),
                dtype,
                shape,
            },
            file: 0,
            location,
            stored_sha256: checksums.get(&t.name).copied(),
        });
    }
    model.files.push(file);
    model.gguf = Some(Box::new(GgufInfo {
        version: header.version,
        alignment: header.alignment,
        data_start: header.data_start,
        types: header.tensors.iter().map(|t| t.ggml_type).collect(),
        metadata: header.metadata,
    }));
    model.metadata = ModelMetadata {
        user,
        checksums: BTreeMap::new(),
        architecture,
    };
    model.finish(&checksums)?;
    Ok(model)
}

/// A metadata value as text: strings as they are, numbers in decimal,
/// arrays of up to [`MAX_ARRAY_SHOWN`] elements as JSON, longer ones as
/// their element type and length ("array of 151936 string").
pub fn render(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(a) => render_array(a),
        other => scalar_json(other).to_string(),
    }
}

fn render_array(a: &Array) -> String {
    if a.len() > MAX_ARRAY_SHOWN {
        return format!("array of {} {}", a.len(), a.element_type());
    }
    array_json(a).to_string()
}

/// A metadata value as JSON, exact: integers as numbers, floats as numbers
/// (a NaN or infinity as its text), strings as they are, arrays whole
/// (nested ones too).
///
/// ```
/// use modeltool_format::gguf::{Array, Value};
/// let v = Value::Array(Array::String(vec!["<s>".into(), "</s>".into()]));
/// assert_eq!(modeltool_loader::value_json(&v), serde_json::json!(["<s>", "</s>"]));
/// ```
pub fn value_json(value: &Value) -> serde_json::Value {
    fn whole(a: &Array) -> serde_json::Value {
        match a {
            Array::Array(v) => serde_json::Value::Array(v.iter().map(whole).collect()),
            other => array_json(other),
        }
    }
    match value {
        Value::Array(a) => whole(a),
        other => scalar_json(other),
    }
}

fn array_json(a: &Array) -> serde_json::Value {
    use serde_json::Value as J;
    fn all<T: Clone + Into<J>>(v: &[T]) -> J {
        J::Array(v.iter().cloned().map(Into::into).collect())
    }
    match a {
        Array::U8(v) => all(v),
        Array::I8(v) => all(v),
        Array::U16(v) => all(v),
        Array::I16(v) => all(v),
        Array::U32(v) => all(v),
        Array::I32(v) => all(v),
        Array::F32(v) => J::Array(v.iter().map(|&x| float(f64::from(x))).collect()),
        Array::Bool(v) => all(v),
        Array::String(v) => all(v),
        Array::Array(v) => J::Array(
            v.iter()
                .map(|a| {
                    if a.len() > MAX_ARRAY_SHOWN {
                        J::String(render_array(a))
                    } else {
                        array_json(a)
                    }
                })
                .collect(),
        ),
        Array::U64(v) => all(v),
        Array::I64(v) => all(v),
        Array::F64(v) => J::Array(v.iter().map(|&x| float(x)).collect()),
    }
}

fn float(x: f64) -> serde_json::Value {
    serde_json::Number::from_f64(x)
        .map(serde_json::Value::Number)
        .unwrap_or_else(|| serde_json::Value::String(x.to_string()))
}

fn scalar_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match *v {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => x.into(),
        Value::I64(x) => x.into(),
        Value::F32(x) => float(f64::from(x)),
        Value::F64(x) => float(x),
        Value::Bool(x) => x.into(),
        Value::String(ref s) => J::String(s.clone()),
        Value::Array(ref a) => array_json(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arrays_are_summarised_not_dumped() {
        let vocab = Value::Array(Array::String(vec!["tok".into(); 151_936]));
        assert_eq!(render(&vocab), "array of 151936 string");
        let small = Value::Array(Array::I32(vec![1, -2]));
        assert_eq!(render(&small), "[1,-2]");
        assert_eq!(render(&Value::U32(4096)), "4096");
        assert_eq!(render(&Value::F32(0.5)), "0.5");
    }
}
