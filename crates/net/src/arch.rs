//! The architecture description stored next to the tensors in a model file.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::NetError;

/// Deepest allowed nesting of `repeat` blocks.
pub const MAX_REPEAT_DEPTH: usize = 16;

/// Largest allowed `times` of a `repeat` block.
pub const MAX_REPEAT_TIMES: usize = 4096;
/// The most layer applications one forward pass may make, counting each
/// layer inside `repeat` blocks as often as it runs: nested repeats multiply.
pub const MAX_LAYER_APPLICATIONS: usize = 1_000_000;

/// An element-wise activation function.
///
/// Serialised as its lowercase name (`"relu"`, `"tanh"`, `"sigmoid"`, `"gelu"`, `"identity"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// The exact GELU, `x * Φ(x) = x/2 * (1 + erf(x/√2))`, as PyTorch's default `nn.GELU()`
    /// (not the tanh approximation).
    Gelu,
    /// `x`, unchanged.
    Identity,
}

impl Activation {
    /// All activations, in the order they are documented.
    pub const ALL: [Activation; 5] = [
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Gelu,
        Activation::Identity,
    ];

    /// The lowercase name used in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Gelu => "gelu",
            Activation::Identity => "identity",
        }
    }

    /// The layer that applies this activation.
    pub fn layer(self) -> Layer {
        match self {
            Activation::Relu => Layer::Relu,
            Activation::Tanh => Layer::Tanh,
            Activation::Sigmoid => Layer::Sigmoid,
            Activation::Gelu => Layer::Gelu,
            Activation::Identity => Layer::Identity,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                NetError::InvalidConfig(format!(
                    "unknown activation `{s}` (expected relu, tanh, sigmoid, gelu or identity)"
                ))
            })
    }
}

/// One layer of an [`Architecture`].
///
/// Serialised as a JSON object whose `"type"` field names the kind; see the
/// [crate documentation](crate#architecture-json) for the schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Layer {
    /// `y = x @ weight^T + bias`, with `weight` of shape `[out, in]` and `bias` of shape `[out]`.
    Linear {
        /// Name of the weight tensor, shape `[out, in]`.
        weight: String,
        /// Name of the bias tensor, shape `[out]`; no bias when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
    },
    /// See [`Activation::Relu`].
    Relu,
    /// See [`Activation::Tanh`].
    Tanh,
    /// See [`Activation::Sigmoid`].
    Sigmoid,
    /// See [`Activation::Gelu`].
    Gelu,
    /// See [`Activation::Identity`].
    Identity,
    /// Softmax over each sample's outputs; only allowed as the last top-level layer.
    Softmax,
    /// Apply `layers` `times` times in a row, with the same parameters each time.
    /// The block must map its width to the same width.
    Repeat {
        /// How often the block is applied, 1 to [`MAX_REPEAT_TIMES`].
        times: usize,
        /// The block.
        layers: Vec<Layer>,
    },
}

impl Layer {
    /// The activation this layer applies, if it is an element-wise activation.
    pub fn activation(&self) -> Option<Activation> {
        match self {
            Layer::Relu => Some(Activation::Relu),
            Layer::Tanh => Some(Activation::Tanh),
            Layer::Sigmoid => Some(Activation::Sigmoid),
            Layer::Gelu => Some(Activation::Gelu),
            Layer::Identity => Some(Activation::Identity),
            _ => None,
        }
    }
}

/// A feed-forward network: a list of layers applied in order.
///
/// Build one by hand, parse it with [`Architecture::from_json`], or derive it from
/// `nn.Sequential` tensor names with [`Architecture::from_sequential`].
/// [`Network::build`](crate::Network::build) checks it against actual tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// The layers, first applied first.
    pub layers: Vec<Layer>,
}

impl Architecture {
    /// Parses and [validates](Architecture::validate) the JSON form.
    pub fn from_json(json: &str) -> Result<Architecture, NetError> {
        let arch: Architecture = serde_json::from_str(json).map_err(NetError::ArchitectureJson)?;
        arch.validate()?;
        Ok(arch)
    }

    /// Parses and validates an already-parsed JSON value (e.g. a field of a model file's header).
    pub fn from_value(value: serde_json::Value) -> Result<Architecture, NetError> {
        let arch: Architecture =
            serde_json::from_value(value).map_err(NetError::ArchitectureJson)?;
        arch.validate()?;
        Ok(arch)
    }

    /// The compact JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Architecture always serialises")
    }

    /// Checks the rules that do not need tensor shapes: at least one linear layer, softmax only
    /// as the last top-level layer, repeat blocks non-empty with `times` in
    /// `1..=MAX_REPEAT_TIMES` and nested at most [`MAX_REPEAT_DEPTH`] deep.
    pub fn validate(&self) -> Result<(), NetError> {
        let (linears, applications) = check_block(&self.layers, "", 0, true)?;
        if applications > MAX_LAYER_APPLICATIONS {
            return Err(NetError::InvalidArchitecture(format!(
                "its repeat blocks apply more than {MAX_LAYER_APPLICATIONS} layers in one pass"
            )));
        }
        if linears == 0 {
            return Err(NetError::InvalidArchitecture(
                "it has no linear layer, so its input width is unknown".into(),
            ));
        }
        Ok(())
    }

    /// Every tensor name the architecture refers to, in order of first use, without duplicates.
    pub fn tensor_names(&self) -> Vec<String> {
        // A set of the names seen, so that many layers cost linear time.
        fn walk<'a>(layers: &'a [Layer], seen: &mut HashSet<&'a str>, out: &mut Vec<String>) {
            for layer in layers {
                match layer {
                    Layer::Linear { weight, bias } => {
                        for name in std::iter::once(weight).chain(bias) {
                            if seen.insert(name) {
                                out.push(name.clone());
                            }
                        }
                    }
                    Layer::Repeat { layers, .. } => walk(layers, seen, out),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.layers, &mut HashSet::new(), &mut out);
        out
    }

    /// Derives the architecture of a PyTorch `nn.Sequential` of `nn.Linear` layers from its
    /// tensor names (`0.weight`, `0.bias`, `2.weight`, ...).
    ///
    /// Linear layers are ordered by the numeric index (so `10` comes after `2`), and
    /// `activation` is put between consecutive linear layers, not after the last. A bias is
    /// optional per layer. Names that are not `<index>.weight` or `<index>.bias`, or a bias
    /// without its weight, are errors.
    pub fn from_sequential(
        names: &[String],
        activation: Activation,
    ) -> Result<Architecture, NetError> {
        use std::collections::BTreeMap;
        // index -> (has weight, has bias)
        let mut by_index: BTreeMap<u64, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for name in names {
            let parsed = name.split_once('.').and_then(|(index, kind)| {
                let digits_only = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
                let index = if digits_only {
                    index.parse::<u64>().ok()?
                } else {
                    return None;
                };
                matches!(kind, "weight" | "bias").then_some((index, kind))
            });
            let Some((index, kind)) = parsed else {
                return Err(NetError::NotSequential(format!(
                    "`{name}` is not `<index>.weight` or `<index>.bias`"
                )));
            };
            let entry = by_index.entry(index).or_default();
            let slot = if kind == "weight" {
                &mut entry.0
            } else {
                &mut entry.1
            };
            if slot.is_some() {
                return Err(NetError::NotSequential(format!("`{name}` appears twice")));
            }
            *slot = Some(name.as_str());
        }
        if by_index.is_empty() {
            return Err(NetError::NotSequential("there are no tensors".into()));
        }
        let mut layers = Vec::new();
        let count = by_index.len();
        for (position, (index, (weight, bias))) in by_index.into_iter().enumerate() {
            let Some(weight) = weight else {
                return Err(NetError::NotSequential(format!(
                    "`{index}.bias` has no matching `{index}.weight`"
                )));
            };
            layers.push(Layer::Linear {
                weight: weight.to_owned(),
                bias: bias.map(str::to_owned),
            });
            if position + 1 < count {
                layers.push(activation.layer());
            }
        }
        Ok(Architecture { layers })
    }
}

/// Position of the `index`-th layer inside a block at `prefix`, as shown in error messages.
pub(crate) fn position(prefix: &str, index: usize) -> String {
    if prefix.is_empty() {
        index.to_string()
    } else {
        format!("{prefix}.{index}")
    }
}

/// Validates one block and returns how many linear layers it holds (counting each once).
fn check_block(
    layers: &[Layer],
    prefix: &str,
    depth: usize,
    top_level: bool,
) -> Result<(usize, usize), NetError> {
    let mut linears = 0;
    // Layer applications per pass, saturating: only whether it passes the cap matters.
    let mut applications = 0usize;
    for (index, layer) in layers.iter().enumerate() {
        let at = position(prefix, index);
        match layer {
            Layer::Linear { .. } => {
                linears += 1;
                applications = applications.saturating_add(1);
            }
            Layer::Softmax => {
                if !top_level || index + 1 != layers.len() {
                    return Err(NetError::InvalidArchitecture(format!(
                        "softmax is only allowed as the last layer, but it is layer {at}"
                    )));
                }
            }
            Layer::Repeat { times, layers } => {
                if depth + 1 > MAX_REPEAT_DEPTH {
                    return Err(NetError::InvalidArchitecture(format!(
                        "repeat blocks are nested more than {MAX_REPEAT_DEPTH} deep at layer {at}"
                    )));
                }
                if *times == 0 || *times > MAX_REPEAT_TIMES {
                    return Err(NetError::InvalidArchitecture(format!(
                        "layer {at}: repeat `times` is {times}, expected 1 to {MAX_REPEAT_TIMES}"
                    )));
                }
                if layers.is_empty() {
                    return Err(NetError::InvalidArchitecture(format!(
                        "layer {at}: repeat block has no layers"
                    )));
                }
                let (inner_linears, inner) = check_block(layers, &at, depth + 1, false)?;
                linears += inner_linears;
                applications = applications.saturating_add(inner.saturating_mul(*times));
            }
            Layer::Relu | Layer::Tanh | Layer::Sigmoid | Layer::Gelu | Layer::Identity => {
                applications = applications.saturating_add(1);
            }
        }
    }
    Ok((linears, applications))
}
