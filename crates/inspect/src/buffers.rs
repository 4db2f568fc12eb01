//! Telling non-parameter buffers (masks, index tables, running statistics)
//! apart from trained parameters, by name and dtype.

use modeltool_format::{Dtype, TensorMeta};

/// Why a tensor counts as a buffer rather than a parameter, or `None` for a
/// parameter.
///
/// The rules, first match wins:
/// - a BOOL tensor is a mask;
/// - `position_ids`, `token_type_ids` and other integer tensors are index
///   tables, except integer tensors whose last name part mentions `weight`
///   or `zeros` (quantized weights such as GPTQ's `qweight`, int8 `weight`);
/// - `…attn.bias` and `…attn.masked_bias` are GPT-2 style causal masks;
/// - `…inv_freq` holds rotary embedding frequencies;
/// - `num_batches_tracked`, `running_mean`, `running_var` are batch-norm
///   statistics.
pub fn buffer_kind(meta: &TensorMeta) -> Option<&'static str> {
    let last = meta.name.rsplit('.').next().unwrap_or(&meta.name);
    let ends_with_part = |suffix: &str| {
        meta.name == suffix
            || meta
                .name
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    if meta.dtype == Dtype::BOOL {
        return Some("boolean mask");
    }
    if ends_with_part("attn.bias") || ends_with_part("attn.masked_bias") {
        return Some("causal mask");
    }
    if last == "inv_freq" || last.ends_with("_inv_freq") {
        return Some("rotary frequencies");
    }
    if matches!(last, "num_batches_tracked" | "running_mean" | "running_var") {
        return Some("batch-norm statistic");
    }
    if !meta.dtype.is_float() {
        if last.contains("weight") || last.contains("zeros") {
            return None;
        }
        return Some("integer table");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, dtype: Dtype) -> TensorMeta {
        TensorMeta {
            name: name.to_owned(),
            dtype,
            shape: vec![4],
        }
    }

    #[test]
    fn buffers_are_recognised_by_name_and_dtype() {
        let buffer = |n, d| buffer_kind(&meta(n, d)).is_some();
        assert!(buffer("embeddings.position_ids", Dtype::I64));
        assert!(buffer("embeddings.token_type_ids", Dtype::I64));
        assert!(buffer("h.0.attn.bias", Dtype::F32));
        assert!(buffer("h.0.attn.masked_bias", Dtype::F32));
        assert!(buffer("layers.0.self_attn.rotary_emb.inv_freq", Dtype::F32));
        assert!(buffer("bn1.num_batches_tracked", Dtype::I64));
        assert!(buffer("bn1.running_mean", Dtype::F32));
        assert!(buffer("bn1.running_var", Dtype::F32));
        assert!(buffer("mask", Dtype::BOOL));
        assert!(!buffer("h.0.attn.c_attn.bias", Dtype::F32));
        assert!(!buffer(
            "encoder.layer.0.attention.self.query.bias",
            Dtype::F32
        ));
        assert!(!buffer("layers.0.q_proj.qweight", Dtype::I32));
        assert!(!buffer("layers.0.q_proj.qzeros", Dtype::I32));
        assert!(!buffer("fc.weight", Dtype::I8));
        assert!(!buffer("fc.weight", Dtype::BF16));
    }
}
