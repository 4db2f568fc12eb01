//! The JSON model file, `modeltool.json/1`: one object holding string
//! metadata, an optional architecture and every tensor with its values and
//! checksum. See docs/FORMAT.md for the full description.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};

use rayon::prelude::*;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::error::{FormatError, Result};
use crate::safetensors::{StringMap, strip_position, write_json_string};
use crate::values::{self, Token};
use crate::{Dtype, TensorMeta, is_sha256_hex};

/// The value of the `format` key that every JSON model file carries.
pub const FORMAT_ID: &str = "modeltool.json/1";

/// Elements formatted per parallel work item when writing.
const BLOCK: usize = 1 << 14;

/// Writes a JSON model file one tensor at a time, so a model never has to be
/// held in memory as text.
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
    names: std::collections::HashSet<String>,
}

impl<W: Write> JsonWriter<W> {
    /// Starts a file: writes the format tag, the metadata and the architecture.
    pub fn new(
        mut out: W,
        metadata: &BTreeMap<String, String>,
        architecture: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let mut head = Vec::new();
        head.extend_from_slice(b"{\n  \"format\": \"");
        head.extend_from_slice(FORMAT_ID.as_bytes());
        head.extend_from_slice(b"\",\n  \"metadata\": ");
        serde_json::to_writer(&mut head, metadata)?;
        if let Some(arch) = architecture {
            head.extend_from_slice(b",\n  \"architecture\": ");
            serde_json::to_writer(&mut head, arch)?;
        }
        head.extend_from_slice(b",\n  \"tensors\": {");
        out.write_all(&head)?;
        Ok(JsonWriter {
            out,
            names: Default::default(),
        })
    }

    /// Writes one tensor: its dtype, shape, values and the sha256 of `data`,
    /// which the caller has computed (or checked) already.
    pub fn write_tensor(&mut self, meta: &TensorMeta, data: &[u8], sha256: &str) -> Result<()> {
        if !is_sha256_hex(sha256) {
            return Err(FormatError::BadValue {
                name: meta.name.clone(),
                reason: format!("checksum `{sha256}` is not 64 lowercase hex digits"),
            });
        }
        if self.names.contains(&meta.name) {
            return Err(FormatError::DuplicateTensor {
                name: meta.name.clone(),
            });
        }
        let count = meta.element_count()?;
        if meta.byte_len()? != data.len() {
            return Err(FormatError::BadValue {
                name: meta.name.clone(),
                reason: format!(
                    "{} bytes given for {} {:?}",
                    data.len(),
                    meta.dtype,
                    meta.shape
                ),
            });
        }
        let mut head = Vec::with_capacity(160);
        head.extend_from_slice(if self.names.is_empty() {
            b"\n    "
        } else {
            b",\n    "
        });
        write_json_string(&mut head, &meta.name);
        head.extend_from_slice(b": {\"dtype\": \"");
        head.extend_from_slice(meta.dtype.name().as_bytes());
        head.extend_from_slice(b"\", \"shape\": ");
        serde_json::to_writer(&mut head, &meta.shape)?;
        head.extend_from_slice(b", \"data\": [");
        self.out.write_all(&head)?;

        // Format blocks of elements in parallel, a bounded group at a time.
        let group = BLOCK * rayon::current_num_threads().max(1) * 2;
        let mut first = 0;
        while first < count {
            let n = group.min(count - first);
            let texts: Vec<Vec<u8>> = (first..first + n)
                .step_by(BLOCK)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|start| {
                    let len = BLOCK.min(first + n - start);
                    let mut text = Vec::with_capacity(len * 12);
                    values::write_elements(&mut text, meta.dtype, data, start, len, count)
                        .map(|()| text)
                })
                .collect::<Result<_, String>>()
                .map_err(|reason| FormatError::BadValue {
                    name: meta.name.clone(),
                    reason,
                })?;
            for text in texts {
                self.out.write_all(&text)?;
            }
            first += n;
        }
        let mut tail = Vec::with_capacity(90);
        tail.extend_from_slice(b"], \"sha256\": \"");
        tail.extend_from_slice(sha256.as_bytes());
        tail.extend_from_slice(b"\"}");
        self.out.write_all(&tail)?;
        self.names.insert(meta.name.clone());
        Ok(())
    }

    /// Closes the object and returns the writer (flushed).
    pub fn finish(mut self) -> Result<W> {
        self.out.write_all(if self.names.is_empty() {
            b"}\n}\n"
        } else {
            b"\n  }\n}\n"
        })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A tensor read from a JSON model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTensor {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// The little-endian bytes, exactly as a safetensors file stores them.
    pub data: Vec<u8>,
    /// The checksum the file states, if any (lowercase hex).
    pub sha256: Option<String>,
}

/// A whole JSON model file.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonModel {
    /// The string metadata.
    pub metadata: BTreeMap<String, String>,
    /// The architecture, carried as JSON.
    pub architecture: Option<serde_json::Value>,
    /// The tensors, in file order.
    pub tensors: Vec<JsonTensor>,
}

impl JsonModel {
    /// Reads a JSON model file from a stream. Values go straight into typed
    /// byte buffers as they are parsed; no JSON tree is built for them.
    /// Strict JSON: bare `NaN`, trailing commas or garbage after the object
    /// are errors, as are unknown keys.
    pub fn read(reader: impl Read) -> Result<JsonModel> {
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::with_capacity(
            1 << 16,
            reader,
        ));
        let model = de.deserialize_map(ModelVisitor)?;
        de.end()?;
        Ok(model)
    }

    /// Reads a JSON model file held in memory.
    pub fn from_slice(bytes: &[u8]) -> Result<JsonModel> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let model = de::Deserializer::deserialize_map(&mut de, ModelVisitor)?;
        de.end()?;
        Ok(model)
    }
}

use serde::Deserializer as _;

struct ModelVisitor;

impl<'de> Visitor<'de> for ModelVisitor {
    type Value = JsonModel;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {FORMAT_ID} object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonModel, A::Error> {
        let mut format = None;
        let mut metadata = None;
        let mut architecture = None;
        let mut tensors = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" if format.is_none() => {
                    let f: String = map.next_value()?;
                    if f != FORMAT_ID {
                        return Err(de::Error::custom(format_args!(
                            "`format` is `{f}`, expected `{FORMAT_ID}`"
                        )));
                    }
                    format = Some(f);
                }
                "metadata" if metadata.is_none() => {
                    metadata = Some(map.next_value_seed(StringMap("`metadata`"))?)
                }
                "architecture" if architecture.is_none() => {
                    architecture = Some(map.next_value::<serde_json::Value>()?)
                }
                "tensors" if tensors.is_none() => tensors = Some(map.next_value_seed(TensorsSeed)?),
                "format" | "metadata" | "architecture" | "tensors" => {
                    return Err(de::Error::custom(format_args!("key `{key}` appears twice")));
                }
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown key `{other}` (expected format, metadata, architecture, tensors)"
                    )));
                }
            }
        }
        if format.is_none() {
            return Err(de::Error::custom(format_args!(
                "missing `format`: not a {FORMAT_ID} model file"
            )));
        }
        let tensors = tensors.ok_or_else(|| de::Error::custom("missing `tensors`"))?;
        Ok(JsonModel {
            metadata: metadata.unwrap_or_default(),
            architecture: architecture.filter(|a| !a.is_null()),
            tensors,
        })
    }
}

struct TensorsSeed;

impl<'de> DeserializeSeed<'de> for TensorsSeed {
    type Value = Vec<JsonTensor>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorsSeed {
    type Value = Vec<JsonTensor>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`tensors` to be an object mapping names to tensors")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out: Vec<JsonTensor> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            if !seen.insert(name.clone()) {
                return Err(de::Error::custom(format_args!(
                    "tensor `{name}` appears twice"
                )));
            }
            let tensor = map
                .next_value_seed(TensorSeed { name: &name })
                .map_err(|e| {
                    de::Error::custom(format_args!(
                        "tensor `{name}`: {}",
                        strip_position(&e.to_string())
                    ))
                })?;
            out.push(tensor);
        }
        Ok(out)
    }
}

struct TensorSeed<'n> {
    name: &'n str,
}

impl<'de> DeserializeSeed<'de> for TensorSeed<'_> {
    type Value = JsonTensor;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TensorSeed<'_> {
    type Value = JsonTensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with dtype, shape, data and sha256")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonTensor, A::Error> {
        let mut dtype: Option<Dtype> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut data: Option<(Vec<u8>, usize)> = None;
        let mut deferred: Option<Box<RawValue>> = None;
        let mut sha256: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "dtype" if dtype.is_none() => {
                    let s: String = map.next_value()?;
                    dtype = Some(s.parse().map_err(de::Error::custom)?);
                }
                "shape" if shape.is_none() => shape = Some(map.next_value()?),
                // With the dtype known, values stream straight into bytes;
                // otherwise (keys in another order) the raw text waits.
                "data" if data.is_none() && deferred.is_none() => match dtype {
                    Some(d) => {
                        data = Some(map.next_value_seed(DataSeed {
                            dtype: d,
                            limit: limit(&shape),
                        })?)
                    }
                    None => deferred = Some(map.next_value()?),
                },
                "sha256" if sha256.is_none() => {
                    let s: String = map.next_value()?;
                    if !is_sha256_hex(&s) {
                        return Err(de::Error::custom(format_args!(
                            "sha256 `{s}` is not 64 lowercase hex digits"
                        )));
                    }
                    sha256 = Some(s);
                }
                "dtype" | "shape" | "data" | "sha256" => {
                    return Err(de::Error::custom(format_args!("key `{key}` appears twice")));
                }
                other => {
                    return Err(de::Error::custom(format_args!(
                        "unknown key `{other}` (expected dtype, shape, data, sha256)"
                    )));
                }
            }
        }
        let dtype = dtype.ok_or_else(|| de::Error::custom("missing `dtype`"))?;
        let shape = shape.ok_or_else(|| de::Error::custom("missing `shape`"))?;
        let (bytes, count) = match (data, deferred) {
            (Some(d), _) => d,
            (None, Some(raw)) => {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                DataSeed {
                    dtype,
                    limit: limit(&Some(shape.clone())),
                }
                .deserialize(&mut de)
                .map_err(|e| de::Error::custom(strip_position(&e.to_string())))?
            }
            (None, None) => return Err(de::Error::custom("missing `data`")),
        };
        let meta = TensorMeta {
            name: self.name.to_owned(),
            dtype,
            shape,
        };
        let expected = meta.element_count().map_err(de::Error::custom)?;
        if count != expected {
            return Err(de::Error::custom(format_args!(
                "data has {count} values but shape {:?} needs {expected}",
                meta.shape
            )));
        }
        let data = match dtype {
            Dtype::F4 | Dtype::F6_E2M3 | Dtype::F6_E3M2 => {
                meta.byte_len().map_err(de::Error::custom)?;
                values::pack(&bytes, dtype.bits())
            }
            _ => bytes,
        };
        Ok(JsonTensor { meta, data, sha256 })
    }
}

/// How many values the shape allows, when the shape is already known; more
/// values than that stop the read at once.
fn limit(shape: &Option<Vec<usize>>) -> Option<usize> {
    shape
        .as_ref()
        .and_then(|s| s.iter().try_fold(1usize, |a, &d| a.checked_mul(d)))
}

/// Streams a `data` array into little-endian bytes (or one code byte per
/// element for packed types); yields the bytes and the element count.
struct DataSeed {
    dtype: Dtype,
    limit: Option<usize>,
}

impl<'de> DeserializeSeed<'de> for DataSeed {
    type Value = (Vec<u8>, usize);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataSeed {
    type Value = (Vec<u8>, usize);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`data` to be a flat array of values")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let per = self.dtype.bits().div_ceil(8);
        // Never trust a shape for the allocation size: cap what is reserved up front.
        let mut out = Vec::with_capacity(self.limit.unwrap_or(0).min(1 << 24) * per);
        let mut count = 0usize;
        while seq
            .next_element_seed(ElementSeed {
                dtype: self.dtype,
                out: &mut out,
                index: count,
            })?
            .is_some()
        {
            count += 1;
            if self.limit.is_some_and(|l| count > l) {
                return Err(de::Error::custom(format_args!(
                    "data has more values than its shape allows ({})",
                    self.limit.unwrap_or(0)
                )));
            }
        }
        Ok((out, count))
    }
}

struct ElementSeed<'a> {
    dtype: Dtype,
    out: &'a mut Vec<u8>,
    index: usize,
}

impl ElementSeed<'_> {
    fn push<E: de::Error>(self, t: Token<'_>) -> Result<(), E> {
        if self.dtype == Dtype::C64 {
            return Err(E::custom(format_args!(
                "value {}: C64 values are [re, im] pairs, found {t}",
                self.index
            )));
        }
        values::push_token(self.out, self.dtype, t)
            .map_err(|e| E::custom(format_args!("value {}: {e}", self.index)))
    }
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} value", self.dtype)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.push(Token::Bool(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.push(Token::U64(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.push(Token::I64(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.push(Token::F64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.push(Token::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.dtype != Dtype::C64 {
            return Err(de::Error::custom(format_args!(
                "value {}: a nested array in a {} tensor (data is a flat array)",
                self.index, self.dtype
            )));
        }
        let index = self.index;
        for _ in 0..2 {
            let part = seq.next_element::<PartToken>()?.ok_or_else(|| {
                de::Error::custom(format_args!(
                    "value {index}: C64 pair has fewer than 2 parts"
                ))
            })?;
            let token = match &part {
                PartToken::Num(t) => *t,
                PartToken::Str(s) => Token::Str(s),
            };
            values::push_token(self.out, Dtype::F32, token)
                .map_err(|e| de::Error::custom(format_args!("value {index}: {e}")))?;
        }
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom(format_args!(
                "value {index}: C64 pair has more than 2 parts"
            )));
        }
        Ok(())
    }
}

/// One half of a C64 pair.
enum PartToken {
    Num(Token<'static>),
    Str(String),
}

impl<'de> de::Deserialize<'de> for PartToken {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PartToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or one of \"NaN\", \"inf\", \"-inf\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PartToken, E> {
                Ok(PartToken::Num(Token::U64(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PartToken, E> {
                Ok(PartToken::Num(Token::I64(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<PartToken, E> {
                Ok(PartToken::Num(Token::F64(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PartToken, E> {
                Ok(PartToken::Str(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}
