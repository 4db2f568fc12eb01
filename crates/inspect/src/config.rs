//! The Hugging Face `config.json` beside a checkpoint: its model type and
//! main sizes, shown beside the counts the tensors give.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// The main sizes a Hugging Face `config.json` states. Every field is
/// optional: configs differ by model family, and only numbers and strings
/// of the expected type are taken.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HfConfig {
    /// `model_type` (`bert`, `llama`, ...).
    pub model_type: Option<String>,
    /// The first of `architectures` (`BertModel`, ...).
    pub architecture: Option<String>,
    /// `hidden_size` (or `n_embd`, `d_model`, `dim`).
    pub hidden_size: Option<u64>,
    /// `num_hidden_layers` (or `n_layer`, `num_layers`, `n_layers`).
    pub layers: Option<u64>,
    /// `num_attention_heads` (or `n_head`, `num_heads`, `n_heads`).
    pub heads: Option<u64>,
    /// `num_key_value_heads`, when it differs from the heads.
    pub key_value_heads: Option<u64>,
    /// `intermediate_size` (or `n_inner`, `ffn_dim`, `d_ff`).
    pub intermediate_size: Option<u64>,
    /// `vocab_size`.
    pub vocab_size: Option<u64>,
    /// `torch_dtype` (or `dtype`).
    pub dtype: Option<String>,
    /// `quantization_config.quant_method` (`bitsandbytes`, `gptq`, ...).
    pub quant_method: Option<String>,
}

/// The largest `config.json` read; real ones are a few KB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Strings taken from a config are kept to this many characters (the
/// human view cuts them further).
const MAX_STRING: usize = 256;

impl HfConfig {
    /// Reads `config.json` in `folder`: `Ok(None)` when there is none, an
    /// `Err` with a one-line warning when it cannot be read or is not a
    /// JSON object.
    pub fn read_folder(folder: &Path) -> Result<Option<HfConfig>, String> {
        let path = folder.join("config.json");
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read it: {e}", path.display())),
        };
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{}: cannot read it: {e}", path.display()))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(format!(
                "{}: larger than {} bytes, not read",
                path.display(),
                MAX_CONFIG_BYTES
            ));
        }
        HfConfig::from_json(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Takes the main sizes out of a `config.json`'s bytes.
    ///
    /// ```
    /// use modeltool_inspect::HfConfig;
    /// let c = HfConfig::from_json(br#"{"model_type": "bert", "hidden_size": 384,
    ///     "num_hidden_layers": 6, "num_attention_heads": 12, "vocab_size": 30522}"#)?;
    /// assert_eq!(c.model_type.as_deref(), Some("bert"));
    /// assert_eq!((c.hidden_size, c.layers, c.heads, c.vocab_size), (Some(384), Some(6), Some(12), Some(30522)));
    /// # Ok::<(), String>(())
    /// ```
    pub fn from_json(bytes: &[u8]) -> Result<HfConfig, String> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON: {e}"))?;
        let Value::Object(top) = &value else {
            return Err("not a JSON object".to_owned());
        };
        // Multimodal configs keep the language model's sizes in `text_config`.
        let text = top.get("text_config").and_then(Value::as_object);
        let number = |keys: &[&str]| {
            keys.iter().find_map(|k| {
                top.get(*k)
                    .and_then(Value::as_u64)
                    .or_else(|| text.and_then(|t| t.get(*k)).and_then(Value::as_u64))
            })
        };
        let string = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(|s| s.chars().take(MAX_STRING).collect::<String>())
        };
        let heads = number(&["num_attention_heads", "n_head", "num_heads", "n_heads"]);
        Ok(HfConfig {
            model_type: string(top.get("model_type")),
            architecture: string(
                top.get("architectures")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first()),
            ),
            hidden_size: number(&["hidden_size", "n_embd", "d_model", "dim"]),
            layers: number(&["num_hidden_layers", "n_layer", "num_layers", "n_layers"]),
            heads,
            key_value_heads: number(&["num_key_value_heads"]).filter(|&kv| Some(kv) != heads),
            intermediate_size: number(&["intermediate_size", "n_inner", "ffn_dim", "d_ff"]),
            vocab_size: number(&["vocab_size"]),
            dtype: string(top.get("torch_dtype").or_else(|| top.get("dtype"))),
            quant_method: string(
                top.get("quantization_config")
                    .and_then(|q| q.get("quant_method")),
            ),
        })
    }

    /// Whether the config said anything this report uses.
    pub fn is_empty(&self) -> bool {
        *self == HfConfig::default()
    }
}
