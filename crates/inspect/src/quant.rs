//! Packed quantized weights: bitsandbytes 4-bit (`weight` as U8 with its
//! `weight.absmax`, `weight.quant_map`, `weight.quant_state.bitsandbytes__nf4`
//! ...), bitsandbytes int8 (`weight` as I8 with `SCB`), and GPTQ/AWQ
//! (`qweight`, `qzeros`, `scales`, `g_idx` as I32 and F16). Their stored
//! elements are not their parameters: a U8 of a 4-bit weight holds two, an
//! I32 of `qweight` eight.

use std::collections::{BTreeMap, HashMap};

use modeltool_format::{Dtype, TensorMeta};
use serde::Serialize;

use crate::buffers::buffer_kind;
use crate::facts::element_count;
use crate::source::Source;

/// The quantized weights of a model.
#[derive(Debug, Clone, Serialize)]
pub struct Quantization {
    /// One entry per packing found.
    pub packings: Vec<Packing>,
    /// Tensors that hold quantization state (scales, zeros, absmax, maps,
    /// group indices, serialized quant states) rather than weights.
    pub state_tensors: u64,
    /// Their stored elements.
    pub state_elements: u64,
    /// The model's parameters: packed weights counted as the parameters
    /// they hold (unrecognised packings as stored), quantization state and
    /// buffers left out.
    pub parameters: u64,
}

/// Weights stored with one packing.
#[derive(Debug, Clone, Serialize)]
pub struct Packing {
    /// `bitsandbytes nf4`, `bitsandbytes fp4`, `bitsandbytes int8`,
    /// `GPTQ`, `AWQ`, or `GPTQ/AWQ (unrecognised layout)`.
    pub scheme: String,
    /// Bits per parameter, when the layout says.
    pub bits: Option<u32>,
    /// Packed tensors.
    pub tensors: u64,
    /// Their stored elements.
    pub stored_elements: u64,
    /// The parameters they hold (null when the layout is unrecognised:
    /// then only the stored elements are known).
    pub parameters: Option<u64>,
}

/// What one tensor is, found from its name and its siblings.
struct Found {
    scheme: &'static str,
    bits: Option<u32>,
    stored: u64,
    parameters: Option<u64>,
}

/// Finds the packed weights of a model, or `None` when it has none.
pub(crate) fn recognise(src: Source<'_>) -> Option<Quantization> {
    let hint = (0..src.len()).any(|i| {
        let n = src.name(i);
        n.ends_with("qweight") || n.contains(".quant_state.bitsandbytes__") || n.ends_with("SCB")
    });
    if !hint {
        return None;
    }
    let by_name: HashMap<&str, &TensorMeta> =
        (0..src.len()).map(|i| (src.name(i), src.meta(i))).collect();
    let get = |base: &str, suffix: &str| by_name.get(format!("{base}{suffix}").as_str()).copied();

    let mut packings: BTreeMap<(&'static str, Option<u32>), Packing> = BTreeMap::new();
    let (mut state, mut parameters) = ((0u64, 0u64), 0u64);
    // Quantization state: GPTQ/AWQ's siblings of a `qweight`, the
    // `SCB` and `weight_format` of an int8 weight, and everything under a
    // bitsandbytes 4-bit weight (`X.weight.absmax`, `X.weight.quant_map`,
    // `X.weight.quant_state.bitsandbytes__nf4`, ...).
    let is_bnb4 = |weight: &str| {
        by_name.get(weight).is_some_and(|w| w.dtype == Dtype::U8)
            && ["nf4", "fp4"]
                .iter()
                .any(|k| get(weight, &format!(".quant_state.bitsandbytes__{k}")).is_some())
    };
    let is_state = |name: &str| {
        let sibling = |suffixes: &[&str], of: &str| {
            suffixes.iter().any(|s| {
                name.strip_suffix(s)
                    .is_some_and(|base| get(base, of).is_some())
            })
        };
        sibling(&["qzeros", "scales", "g_idx"], "qweight")
            || sibling(&["SCB", "weight_format"], "weight")
            || name
                .rfind(".weight.")
                .is_some_and(|at| is_bnb4(&name[..at + ".weight".len()]))
    };
    for i in 0..src.len() {
        let meta = src.meta(i);
        let name = meta.name.as_str();
        let found = if let Some(base) = name.strip_suffix("qweight") {
            Some(gptq(
                meta,
                get(base, "g_idx"),
                get(base, "qzeros"),
                get(base, "scales"),
            ))
        } else if meta.dtype == Dtype::U8 && (name == "weight" || name.ends_with(".weight")) {
            ["nf4", "fp4"]
                .into_iter()
                .find(|kind| get(name, &format!(".quant_state.bitsandbytes__{kind}")).is_some())
                .map(|kind| {
                    let stored = element_count(meta);
                    Found {
                        scheme: if kind == "nf4" {
                            "bitsandbytes nf4"
                        } else {
                            "bitsandbytes fp4"
                        },
                        bits: Some(4),
                        stored,
                        parameters: Some(stored.saturating_mul(2)),
                    }
                })
        } else if meta.dtype == Dtype::I8 && (name == "weight" || name.ends_with(".weight")) {
            let base = name.strip_suffix("weight").unwrap_or(name);
            get(base, "SCB").map(|_| {
                let stored = element_count(meta);
                Found {
                    scheme: "bitsandbytes int8",
                    bits: Some(8),
                    stored,
                    parameters: Some(stored),
                }
            })
        } else {
            None
        };
        let Some(f) = found else {
            if is_state(name) {
                state.0 += 1;
                state.1 = state.1.saturating_add(element_count(meta));
            } else if buffer_kind(meta).is_none() {
                parameters = parameters.saturating_add(element_count(meta));
            }
            continue;
        };
        parameters = parameters.saturating_add(f.parameters.unwrap_or(f.stored));
        let p = packings
            .entry((f.scheme, f.bits))
            .or_insert_with(|| Packing {
                scheme: f.scheme.to_owned(),
                bits: f.bits,
                tensors: 0,
                stored_elements: 0,
                parameters: Some(0),
            });
        p.tensors += 1;
        p.stored_elements = p.stored_elements.saturating_add(f.stored);
        p.parameters = match (p.parameters, f.parameters) {
            (Some(a), Some(b)) => Some(a.saturating_add(b)),
            _ => None,
        };
    }
    if packings.is_empty() {
        return None;
    }
    Some(Quantization {
        packings: packings.into_values().collect(),
        state_tensors: state.0,
        state_elements: state.1,
        parameters,
    })
}

/// A GPTQ or AWQ `qweight` with its siblings. GPTQ packs along the input
/// (`qweight` is `[in * bits / 32, out]`, `g_idx` is `[in]`), AWQ along the
/// output (`qweight` is `[in, out * bits / 32]`); both pack `qzeros` as
/// `[groups, out * bits / 32]` beside `scales` `[groups, out]`.
fn gptq(
    qweight: &TensorMeta,
    g_idx: Option<&TensorMeta>,
    qzeros: Option<&TensorMeta>,
    scales: Option<&TensorMeta>,
) -> Found {
    let stored = element_count(qweight);
    let unknown = Found {
        scheme: "GPTQ/AWQ (unrecognised layout)",
        bits: None,
        stored,
        parameters: None,
    };
    if !matches!(qweight.dtype, Dtype::I32 | Dtype::U32) {
        return unknown;
    }
    let [rows, cols] = qweight.shape[..] else {
        return unknown;
    };
    let (rows, cols) = (rows as u64, cols as u64);
    let valid = |bits: u64| matches!(bits, 2 | 3 | 4 | 8);
    if let Some(g) = g_idx.filter(|g| g.shape.len() == 1) {
        let inputs = g.shape[0] as u64;
        if inputs > 0
            && (rows.saturating_mul(32)) % inputs == 0
            && valid(rows.saturating_mul(32) / inputs)
        {
            return Found {
                scheme: "GPTQ",
                bits: Some((rows.saturating_mul(32) / inputs) as u32),
                stored,
                parameters: Some(inputs.saturating_mul(cols)),
            };
        }
    }
    let (Some(z), Some(s)) = (qzeros, scales) else {
        return unknown;
    };
    let ([_, zc], [_, out]) = (&z.shape[..], &s.shape[..]) else {
        return unknown;
    };
    let (zc, out) = (*zc as u64, *out as u64);
    if out == 0 || (zc.saturating_mul(32)) % out != 0 || !valid(zc.saturating_mul(32) / out) {
        return unknown;
    }
    let bits = zc.saturating_mul(32) / out;
    if cols == out && (rows.saturating_mul(32)) % bits == 0 {
        Found {
            scheme: "GPTQ",
            bits: Some(bits as u32),
            stored,
            parameters: Some((rows.saturating_mul(32) / bits).saturating_mul(out)),
        }
    } else if cols.saturating_mul(32) == out.saturating_mul(bits) {
        Found {
            scheme: "AWQ",
            bits: Some(bits as u32),
            stored,
            parameters: Some(rows.saturating_mul(out)),
        }
    } else {
        unknown
    }
}
