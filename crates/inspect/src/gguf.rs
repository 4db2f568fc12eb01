//! The GGUF part of the report: parameters, bytes and bits per weight per
//! ggml type, and a summary of the metadata llama.cpp reads (architecture,
//! sizes, heads, rope, tokenizer), from the header alone. Large arrays (a
//! vocabulary, merges) are described by element type and length; one
//! metadata value is shown whole only when asked for ([`MetadataValue`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use modeltool_format::gguf::{Array, GgmlType, Value};
use modeltool_format::text::escape;
use modeltool_loader::{GGUF_PREFIX, GgufInfo, MAX_ARRAY_SHOWN, Model, value_json};
use serde::Serialize;

/// What the report says once about shapes in a GGUF file.
pub const SHAPE_ORDER: &str = "row-major, slowest dimension first: ggml stores ne0 (the fastest) first, so shapes are its dimensions reversed";

/// The GGUF section of the report.
#[derive(Debug, Clone, Serialize)]
pub struct GgufReport {
    /// The format version (2 or 3).
    pub version: u32,
    /// The data alignment (`general.alignment`, or 32).
    pub alignment: u32,
    /// The order shapes are given in everywhere in the report ([`SHAPE_ORDER`]).
    pub shape_order: &'static str,
    /// Totals per ggml type, most bytes first.
    pub types: Vec<GgmlTypeTotals>,
    /// Elements of every tensor.
    pub parameter_count: u64,
    /// Bytes of tensor data as stored (blocks, not decoded values).
    pub data_bytes: u64,
    /// The file's size.
    pub file_bytes: u64,
    /// `8 x data_bytes / parameter_count`: the tensor data's bits per
    /// weight (null without parameters).
    pub bits_per_weight: Option<f64>,
    /// `8 x file_bytes / parameter_count`, header included: the figure
    /// llama.cpp prints as BPW (null without parameters).
    pub file_bits_per_weight: Option<f64>,
    /// The metadata llama.cpp reads first.
    pub summary: GgufSummary,
    /// Every metadata value that is an array, by element type and length
    /// (`--metadata KEY` shows one whole).
    pub arrays: Vec<ArraySummary>,
}

/// Totals for one ggml type.
#[derive(Debug, Clone, Serialize)]
pub struct GgmlTypeTotals {
    /// The type's name (`Q4_K`).
    pub ggml_type: &'static str,
    /// Its id in the file.
    pub id: u32,
    /// Elements per block.
    pub block_size: u32,
    /// Bytes per block.
    pub bytes_per_block: u32,
    /// Tensors of this type.
    pub tensor_count: u64,
    /// Their elements.
    pub parameter_count: u64,
    /// Their bytes as stored.
    pub bytes: u64,
    /// `8 x bytes / parameter_count` (`8 x bytes_per_block / block_size`
    /// for whole blocks; null without elements).
    pub bits_per_weight: Option<f64>,
}

/// The metadata llama.cpp reads first, each `null` when the file has no
/// such key. Keys are `general.*`, `{architecture}.*` and `tokenizer.ggml.*`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GgufSummary {
    /// `general.architecture` (`llama`, `qwen2`, ...).
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.file_type`: llama.cpp's file type id.
    pub file_type: Option<u64>,
    /// Its name (`MOSTLY_Q4_K_M`), for the ids llama.cpp defines.
    pub file_type_name: Option<&'static str>,
    /// `{arch}.context_length`.
    pub context_length: Option<serde_json::Value>,
    /// `{arch}.embedding_length`.
    pub embedding_length: Option<serde_json::Value>,
    /// `{arch}.block_count`.
    pub block_count: Option<serde_json::Value>,
    /// `{arch}.feed_forward_length` (a number, or one per layer).
    pub feed_forward_length: Option<serde_json::Value>,
    /// `{arch}.attention.head_count` (a number, or one per layer).
    pub head_count: Option<serde_json::Value>,
    /// `{arch}.attention.head_count_kv` (a number, or one per layer).
    pub head_count_kv: Option<serde_json::Value>,
    /// Every `{arch}.rope.*` key, without that prefix (`freq_base`,
    /// `dimension_count`, `scaling.type`, ...).
    pub rope: BTreeMap<String, serde_json::Value>,
    /// `tokenizer.ggml.model` (`llama`, `gpt2`, ...).
    pub tokenizer_model: Option<String>,
    /// The length of `tokenizer.ggml.tokens`.
    pub vocabulary_size: Option<u64>,
}

/// An array-valued metadata key, described rather than shown.
#[derive(Debug, Clone, Serialize)]
pub struct ArraySummary {
    /// The key.
    pub key: String,
    /// The type of its elements (`string`, `f32`, `array`, ...).
    pub element_type: &'static str,
    /// How many elements.
    pub length: u64,
}

/// llama.cpp's file type names (`general.file_type`), as the `gguf`
/// package's `LlamaFileType` lists them.
const FILE_TYPES: [(u64, &str); 36] = [
    (0, "ALL_F32"),
    (1, "MOSTLY_F16"),
    (2, "MOSTLY_Q4_0"),
    (3, "MOSTLY_Q4_1"),
    (7, "MOSTLY_Q8_0"),
    (8, "MOSTLY_Q5_0"),
    (9, "MOSTLY_Q5_1"),
    (10, "MOSTLY_Q2_K"),
    (11, "MOSTLY_Q3_K_S"),
    (12, "MOSTLY_Q3_K_M"),
    (13, "MOSTLY_Q3_K_L"),
    (14, "MOSTLY_Q4_K_S"),
    (15, "MOSTLY_Q4_K_M"),
    (16, "MOSTLY_Q5_K_S"),
    (17, "MOSTLY_Q5_K_M"),
    (18, "MOSTLY_Q6_K"),
    (19, "MOSTLY_IQ2_XXS"),
    (20, "MOSTLY_IQ2_XS"),
    (21, "MOSTLY_Q2_K_S"),
    (22, "MOSTLY_IQ3_XS"),
    (23, "MOSTLY_IQ3_XXS"),
    (24, "MOSTLY_IQ1_S"),
    (25, "MOSTLY_IQ4_NL"),
    (26, "MOSTLY_IQ3_S"),
    (27, "MOSTLY_IQ3_M"),
    (28, "MOSTLY_IQ2_S"),
    (29, "MOSTLY_IQ2_M"),
    (30, "MOSTLY_IQ4_XS"),
    (31, "MOSTLY_IQ1_M"),
    (32, "MOSTLY_BF16"),
    (36, "MOSTLY_TQ1_0"),
    (37, "MOSTLY_TQ2_0"),
    (38, "MOSTLY_MXFP4_MOE"),
    (39, "MOSTLY_NVFP4"),
    (40, "MOSTLY_Q1_0"),
    (1024, "GUESSED"),
];

/// A value for the summary: scalars and short arrays exactly, a long array
/// as `{"array_of": TYPE, "length": N}`.
fn summary_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Array(a) if a.len() > MAX_ARRAY_SHOWN => serde_json::json!({
            "array_of": a.element_type().name(),
            "length": a.len(),
        }),
        other => value_json(other),
    }
}

impl GgufReport {
    /// The GGUF section of `model`'s report, or `None` for a model that is
    /// not a GGUF file. Reads nothing: the loader kept the header.
    pub fn from_model(model: &Model) -> Option<GgufReport> {
        let info = model.gguf()?;
        let mut by_type: BTreeMap<GgmlType, GgmlTypeTotals> = BTreeMap::new();
        let (mut parameter_count, mut data_bytes) = (0u64, 0u64);
        for (e, &t) in model.entries().iter().zip(&info.types) {
            let n = e
                .meta
                .shape
                .iter()
                .fold(1u64, |acc, &d| acc.saturating_mul(d as u64));
            let bytes = e.stored_len();
            parameter_count = parameter_count.saturating_add(n);
            data_bytes = data_bytes.saturating_add(bytes);
            let row = by_type.entry(t).or_insert_with(|| GgmlTypeTotals {
                ggml_type: t.name(),
                id: t.id(),
                block_size: t.block_size(),
                bytes_per_block: t.type_size(),
                tensor_count: 0,
                parameter_count: 0,
                bytes: 0,
                bits_per_weight: None,
            });
            row.tensor_count += 1;
            row.parameter_count = row.parameter_count.saturating_add(n);
            row.bytes = row.bytes.saturating_add(bytes);
        }
        let bits = |bytes: u64, n: u64| (n > 0).then(|| bytes as f64 * 8.0 / n as f64);
        let mut types: Vec<GgmlTypeTotals> = by_type
            .into_values()
            .map(|mut r| {
                r.bits_per_weight = bits(r.bytes, r.parameter_count);
                r
            })
            .collect();
        types.sort_by_key(|r| std::cmp::Reverse(r.bytes));
        let file_bytes = model
            .files()
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(f.file_len));
        Some(GgufReport {
            version: info.version,
            alignment: info.alignment,
            shape_order: SHAPE_ORDER,
            types,
            parameter_count,
            data_bytes,
            file_bytes,
            bits_per_weight: bits(data_bytes, parameter_count),
            file_bits_per_weight: bits(file_bytes, parameter_count),
            summary: summary(info),
            arrays: info
                .metadata
                .iter()
                .filter_map(|(k, v)| match v {
                    Value::Array(a) => Some(ArraySummary {
                        key: k.clone(),
                        element_type: a.element_type().name(),
                        length: a.len() as u64,
                    }),
                    _ => None,
                })
                .collect(),
        })
    }
}

fn summary(info: &GgufInfo) -> GgufSummary {
    let text = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_owned);
    let architecture = text("general.architecture");
    let arch = architecture.clone().unwrap_or_default();
    let number = |k: &str| info.get(&format!("{arch}.{k}")).map(summary_json);
    let file_type = info.get("general.file_type").and_then(Value::as_u64);
    let rope_prefix = format!("{arch}.rope.");
    GgufSummary {
        name: text("general.name"),
        file_type,
        file_type_name: file_type
            .and_then(|id| FILE_TYPES.iter().find(|(i, _)| *i == id).map(|(_, n)| *n)),
        context_length: number("context_length"),
        embedding_length: number("embedding_length"),
        block_count: number("block_count"),
        feed_forward_length: number("feed_forward_length"),
        head_count: number("attention.head_count"),
        head_count_kv: number("attention.head_count_kv"),
        rope: if architecture.is_some() {
            info.metadata
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&rope_prefix)
                        .map(|rest| (rest.to_owned(), summary_json(v)))
                })
                .collect()
        } else {
            BTreeMap::new()
        },
        tokenizer_model: text("tokenizer.ggml.model"),
        vocabulary_size: match info.get("tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => Some(a.len() as u64),
            _ => None,
        },
        architecture,
    }
}

/// One metadata value, asked for by key (`inspect --metadata KEY`): the
/// whole value in JSON, and element by element, escaped, in the text view.
#[derive(Debug, Clone)]
pub struct MetadataValue<'m> {
    key: &'m str,
    value: Found<'m>,
}

#[derive(Debug, Clone)]
enum Found<'m> {
    /// A GGUF value, typed.
    Gguf(&'m Value),
    /// A text value (the metadata of every other kind of model).
    Text(&'m str),
}

impl<'m> MetadataValue<'m> {
    /// The value of metadata key `key` in `model`: for a GGUF file the key
    /// as the file spells it (`tokenizer.ggml.tokens`; a leading `gguf.`,
    /// as `convert` writes it, is also understood), for other models the
    /// key of the text metadata. `None` when there is no such key.
    pub fn find(model: &'m Model, key: &str) -> Option<MetadataValue<'m>> {
        if let Some(info) = model.gguf() {
            let bare = key.strip_prefix(GGUF_PREFIX);
            let hit = info
                .metadata
                .iter()
                .find(|(k, _)| k == key)
                .or_else(|| bare.and_then(|b| info.metadata.iter().find(|(k, _)| k == b)));
            if let Some((k, v)) = hit {
                return Some(MetadataValue {
                    key: k,
                    value: Found::Gguf(v),
                });
            }
        }
        model
            .metadata()
            .user
            .get_key_value(key)
            .map(|(k, v)| MetadataValue {
                key: k,
                value: Found::Text(v),
            })
    }

    /// The key as the file spells it.
    pub fn key(&self) -> &'m str {
        self.key
    }

    /// Its type: `string`, `u32`, `array of string`, ...
    pub fn type_name(&self) -> String {
        match self.value {
            Found::Gguf(Value::Array(a)) => format!("array of {}", a.element_type()),
            Found::Gguf(v) => v.value_type().name().to_owned(),
            Found::Text(_) => "string".to_owned(),
        }
    }

    /// Writes the value for people. A scalar is one line, the value alone
    /// (a string escaped: a line break shows as `\n`). An array is one
    /// element a line, `[index] value`, the first `limit` of them (`None`:
    /// all) and then `... N more`; nested arrays show as their type and
    /// length.
    pub fn render_human(&self, out: &mut impl Write, limit: Option<usize>) -> io::Result<()> {
        let v = match self.value {
            Found::Text(s) => return writeln!(out, "{}", escape(s)),
            Found::Gguf(v) => v,
        };
        let Value::Array(a) = v else {
            return writeln!(out, "{}", scalar_text(v));
        };
        let len = a.len();
        let shown = limit.map_or(len, |l| l.min(len));
        for i in 0..shown {
            writeln!(out, "[{i}] {}", element_text(a, i))?;
        }
        if shown < len {
            writeln!(
                out,
                "... {} more (of {}; --limit 0 shows every one)",
                crate::units::thousands((len - shown) as u64),
                crate::units::thousands(len as u64),
            )?;
        }
        Ok(())
    }
}

impl Serialize for MetadataValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("key", self.key)?;
        m.serialize_entry("type", &self.type_name())?;
        match self.value {
            Found::Gguf(v) => {
                if let Value::Array(a) = v {
                    m.serialize_entry("length", &a.len())?;
                }
                m.serialize_entry("value", &value_json(v))?;
            }
            Found::Text(t) => m.serialize_entry("value", t)?,
        }
        m.end()
    }
}

/// A scalar as text: numbers in decimal (floats in the shortest form
/// that reads back), strings escaped.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s).into_owned(),
        Value::Array(a) => format!("array of {} {}", a.len(), a.element_type()),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        other => value_json(other).to_string(),
    }
}

/// Lines the text view of the GGUF section takes at most: a blank and a
/// title, the type table (a heading, one row per ggml type, the total)
/// and the metadata summary (a title and eleven rows).
pub(crate) const MAX_GGUF_LINES: usize = 2 + (1 + GgmlType::ALL.len() + 1) + (1 + 11);

/// Width of the label column of the metadata summary.
const KEY: usize = 18;

impl GgufReport {
    /// The text view: escaped, each line to be held to the screen's width
    /// by the caller; at most [`MAX_GGUF_LINES`] lines.
    pub(crate) fn human_lines(&self) -> Vec<String> {
        use crate::units::{bytes, thousands};
        let bpw = |b: Option<f64>| b.map_or_else(|| "-".to_owned(), |b| format!("{b:.2}"));
        let mut lines = vec![
            String::new(),
            format!(
                "GGUF v{} (alignment {}): shapes are row-major, ggml's dimensions reversed",
                self.version, self.alignment
            ),
            format!(
                "  {:<9} {:>7} {:>17} {:>9} {:>11}",
                "ggml type", "tensors", "parameters", "bytes", "bits/weight"
            ),
        ];
        for t in &self.types {
            lines.push(format!(
                "  {:<9} {:>7} {:>17} {:>9} {:>11}",
                t.ggml_type,
                thousands(t.tensor_count),
                thousands(t.parameter_count),
                bytes(t.bytes),
                bpw(t.bits_per_weight),
            ));
        }
        let tensors: u64 = self.types.iter().map(|t| t.tensor_count).sum();
        lines.push(format!(
            "  {:<9} {:>7} {:>17} {:>9} {:>11}  (whole file {})",
            "all",
            thousands(tensors),
            thousands(self.parameter_count),
            bytes(self.data_bytes),
            bpw(self.bits_per_weight),
            bpw(self.file_bits_per_weight),
        ));

        let m = &self.summary;
        lines.push("Model metadata".to_owned());
        let title = lines.len();
        let mut row = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                lines.push(format!("  {k:<KEY$}{v}"));
            }
        };
        let text = |s: &Option<String>| s.as_deref().map(|s| escape(s).into_owned());
        row("architecture", text(&m.architecture));
        row("name", text(&m.name));
        row(
            "file type",
            m.file_type.map(|id| match m.file_type_name {
                Some(n) => format!("{id} ({n})"),
                None => id.to_string(),
            }),
        );
        row("context length", m.context_length.as_ref().map(json_text));
        row(
            "embedding length",
            m.embedding_length.as_ref().map(json_text),
        );
        row("blocks", m.block_count.as_ref().map(json_text));
        row(
            "feed forward",
            m.feed_forward_length.as_ref().map(json_text),
        );
        let heads = match (&m.head_count, &m.head_count_kv) {
            (None, None) => None,
            (h, kv) => Some(format!(
                "{}, key/value {}",
                h.as_ref().map_or_else(|| "-".to_owned(), json_text),
                kv.as_ref().map_or_else(|| "-".to_owned(), json_text)
            )),
        };
        row("attention heads", heads);
        row(
            "rope",
            (!m.rope.is_empty()).then(|| {
                m.rope
                    .iter()
                    .map(|(k, v)| format!("{} {}", escape(k), json_text(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        );
        let tokenizer = match (&m.tokenizer_model, m.vocabulary_size) {
            (None, None) => None,
            (model, vocab) => Some(format!(
                "{}, {} tokens",
                model.as_deref().map_or_else(|| "-".into(), escape),
                vocab.map_or_else(|| "no".to_owned(), thousands)
            )),
        };
        row("tokenizer", tokenizer);
        row(
            "arrays",
            (!self.arrays.is_empty()).then(|| {
                self.arrays
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({} {})",
                            escape(&a.key),
                            thousands(a.length),
                            a.element_type
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        );
        if lines.len() == title {
            lines[title - 1] =
                "Model metadata: none of the keys llama.cpp reads (general.*, ARCH.*)".to_owned();
        }
        lines
    }
}

/// A summary value as text: numbers as they are, a long array as its type
/// and length, anything else as escaped JSON.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => escape(s).into_owned(),
        serde_json::Value::Object(o) if o.contains_key("array_of") => format!(
            "array of {} {}",
            o.get("length").map(ToString::to_string).unwrap_or_default(),
            o.get("array_of").and_then(|t| t.as_str()).unwrap_or("?")
        ),
        other => escape(&other.to_string()).into_owned(),
    }
}

/// Element `i` of `a` as text.
fn element_text(a: &Array, i: usize) -> String {
    match a {
        Array::U8(v) => v[i].to_string(),
        Array::I8(v) => v[i].to_string(),
        Array::U16(v) => v[i].to_string(),
        Array::I16(v) => v[i].to_string(),
        Array::U32(v) => v[i].to_string(),
        Array::I32(v) => v[i].to_string(),
        Array::F32(v) => scalar_text(&Value::F32(v[i])),
        Array::Bool(v) => v[i].to_string(),
        Array::String(v) => escape(&v[i]).into_owned(),
        Array::Array(v) => {
            let inner = &v[i];
            if inner.len() > MAX_ARRAY_SHOWN {
                format!("array of {} {}", inner.len(), inner.element_type())
            } else {
                // Strings inside are JSON-quoted, which escapes control
                // characters; escape() catches the rest (bidi, format).
                escape(&value_json(&Value::Array(inner.clone())).to_string()).into_owned()
            }
        }
        Array::U64(v) => v[i].to_string(),
        Array::I64(v) => v[i].to_string(),
        Array::F64(v) => scalar_text(&Value::F64(v[i])),
    }
}
