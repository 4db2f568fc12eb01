//! The architecture schema: the layers a model file runs, stored as the JSON
//! model's `architecture` or as JSON text under `modeltool.architecture` in
//! safetensors (docs/FORMAT.md, "Architecture").
//!
//! There is one reader, [`read`]. It reads a JSON value layer by layer and
//! keeps going after a problem, so a tool that describes a file (a layer
//! table) shows everything it could read and every problem in place;
//! [`Architecture::from_value`] and [`Architecture::from_json`] take the same
//! reading and refuse the first problem. Objects that repeat a key are refused
//! when reading text ([`Architecture::from_json`]): two readers would take
//! different values.
//!
//! ```
//! use modeltool_format::arch::{Architecture, Layer};
//!
//! let arch = Architecture::from_json(r#"{"layers": [
//!     {"type": "linear", "weight": "0.weight", "bias": "0.bias"},
//!     {"type": "relu"},
//!     {"type": "repeat", "times": 2, "layers": [{"type": "linear", "weight": "r"}]}
//! ]}"#)?;
//! assert_eq!(arch.layers[1], Layer::Relu);
//! assert_eq!(arch.tensor_names(), ["0.weight", "0.bias", "r"]);
//!
//! let err = Architecture::from_json(r#"{"layers": [{"type": "conv"}]}"#).unwrap_err();
//! assert_eq!(err.at, "0");
//! assert!(err.to_string().starts_with("layer 0: unknown layer type `conv`"));
//! # Ok::<(), modeltool_format::arch::ArchError>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;

use crate::text::{Escaped, cut};

/// Deepest allowed nesting of `repeat` blocks.
pub const MAX_REPEAT_DEPTH: usize = 16;

/// Largest allowed `times` of a `repeat` block.
pub const MAX_REPEAT_TIMES: usize = 4096;

/// The most layer applications one forward pass may make, counting each
/// layer inside `repeat` blocks as often as it runs: nested repeats multiply.
pub const MAX_LAYER_APPLICATIONS: usize = 1_000_000;

/// The layer types of the schema, in the order they are documented.
pub const LAYER_TYPES: [&str; 8] = [
    "linear", "relu", "tanh", "sigmoid", "gelu", "identity", "softmax", "repeat",
];

/// An element-wise activation function.
///
/// Written as its lowercase name (`"relu"`, `"tanh"`, `"sigmoid"`, `"gelu"`, `"identity"`).
///
/// ```
/// use modeltool_format::arch::Activation;
/// assert_eq!("gelu".parse::<Activation>(), Ok(Activation::Gelu));
/// assert!("swish".parse::<Activation>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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
    pub const fn name(self) -> &'static str {
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

/// A name that is not one of the [activations](Activation::ALL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown activation `{}` (expected relu, tanh, sigmoid, gelu or identity)", Escaped(.0))]
pub struct UnknownActivation(pub String);

impl FromStr for Activation {
    type Err = UnknownActivation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| UnknownActivation(s.to_owned()))
    }
}

/// One layer of an [`Architecture`].
///
/// Written as a JSON object whose `"type"` field names the kind; see docs/FORMAT.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Layer {
    /// `y = x @ weight^T + bias`, with `weight` of shape `[out, in]` and `bias` of shape `[out]`.
    Linear {
        /// Name of the weight tensor, shape `[out, in]`.
        weight: String,
        /// Name of the bias tensor, shape `[out]`; no bias when absent.
        #[serde(skip_serializing_if = "Option::is_none")]
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

    /// The `type` this layer is written with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Layer::Linear { .. } => "linear",
            Layer::Softmax => "softmax",
            Layer::Repeat { .. } => "repeat",
            other => other
                .activation()
                .expect("every other layer is an activation")
                .name(),
        }
    }
}

/// A feed-forward network's layers, applied first to last.
///
/// Build one by hand, or read one with [`Architecture::from_json`] or
/// [`Architecture::from_value`]; [`Architecture::validate`] checks the rules
/// that need no tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Architecture {
    /// The layers, first applied first.
    pub layers: Vec<Layer>,
}

/// Where a problem is and what it is.
///
/// `at` is the layer's position: `2` is the third top-level layer, `2.1` the
/// second layer inside the repeat block at `2`; empty for the architecture as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", if .at.is_empty() { String::new() } else { format!("layer {}: ", .at) })]
pub struct ArchError {
    /// Position of the layer, or empty.
    pub at: String,
    /// What is wrong.
    pub problem: ArchProblem,
}

/// One kind of damage to an architecture. Strings from the file are escaped
/// and bounded when shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArchProblem {
    /// The text is not JSON, or an object in it repeats a key.
    #[error("the architecture is not JSON: {0}")]
    Json(String),
    /// The architecture is not an object `{"layers": [...]}`.
    #[error(
        "the architecture has no `layers` list: it is {}, not an object {{\"layers\": [...]}}",
        shown(.found)
    )]
    NotAnObject {
        /// The value found, as JSON text.
        found: String,
    },
    /// The architecture object has no `layers`.
    #[error("the architecture has no `layers` list")]
    NoLayers,
    /// A `layers` field holds something other than a list.
    #[error("`layers` is {}, not a list", shown(.found))]
    LayersNotAList {
        /// The value found, as JSON text.
        found: String,
    },
    /// A layer is not a JSON object.
    #[error("{} is not a layer object", shown(.found))]
    NotALayerObject {
        /// The value found, as JSON text.
        found: String,
    },
    /// A layer object has no `type`.
    #[error("the layer object has no `type`")]
    NoType,
    /// A layer's `type` is not a string.
    #[error("`type` is {}, not a layer type", shown(.found))]
    TypeNotAString {
        /// The value found, as JSON text.
        found: String,
    },
    /// A layer's `type` is not in the schema.
    #[error("unknown layer type `{}` (expected {})", Escaped(.type_name), LAYER_TYPES.join(", "))]
    UnknownType {
        /// The type as written.
        type_name: String,
    },
    /// A field the layer type (or the top level) does not have.
    #[error("unknown field `{}` in {}", Escaped(.field), .owner)]
    UnknownField {
        /// What holds the field: `a linear layer`, `the architecture`, ...
        owner: &'static str,
        /// The field as written.
        field: String,
    },
    /// A required field is missing.
    #[error("{layer} has no `{field}` {}", expected_of(.field))]
    MissingField {
        /// The layer type.
        layer: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// A `weight` or `bias` field does not hold a string.
    #[error("`{field}` is {}, not a tensor name", shown(.found))]
    NotATensorName {
        /// `weight` or `bias`.
        field: &'static str,
        /// The value found, as JSON text.
        found: String,
    },
    /// A repeat's `times` is not a non-negative integer.
    #[error("`times` is {}, not a count", shown(.found))]
    TimesNotACount {
        /// The value found, as JSON text.
        found: String,
    },
    /// A repeat's `times` is outside 1 to [`MAX_REPEAT_TIMES`].
    #[error("repeat `times` is {times}, expected 1 to {MAX_REPEAT_TIMES}")]
    TimesOutOfRange {
        /// The value found.
        times: u64,
    },
    /// A repeat block holds no layers.
    #[error("repeat block has no layers")]
    EmptyRepeat,
    /// Repeat blocks are nested deeper than [`MAX_REPEAT_DEPTH`].
    #[error("repeat blocks nested deeper than {MAX_REPEAT_DEPTH} are not allowed")]
    TooDeep,
    /// A softmax anywhere but last at the top level.
    #[error("softmax is only allowed as the last top-level layer")]
    SoftmaxNotLast,
    /// There is no linear layer, so the input width is unknown.
    #[error("it has no linear layer, so its input width is unknown")]
    NoLinear,
    /// Repeat blocks would apply more than [`MAX_LAYER_APPLICATIONS`] layers in one pass.
    #[error("its repeat blocks apply more than {MAX_LAYER_APPLICATIONS} layers in one pass")]
    TooManyApplications,
}

fn expected_of(field: &str) -> &'static str {
    match field {
        "times" => "count",
        "layers" => "list",
        _ => "tensor name",
    }
}

/// JSON text from a file, escaped and bounded for a message.
fn shown(found: &str) -> std::borrow::Cow<'_, str> {
    cut(found, 40)
}

fn json_text(value: &Value) -> String {
    // A value nested deeper than this is shown by its kind only: the text of
    // a hostile value can be as long as the file.
    match value {
        Value::Array(a) if a.len() > 8 => format!("a list of {} values", a.len()),
        Value::Object(o) if o.len() > 8 => format!("an object of {} fields", o.len()),
        other => {
            let text = other.to_string();
            if text.len() > 200 {
                let end = (0..=200)
                    .rev()
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}…", &text[..end])
            } else {
                text
            }
        }
    }
}

/// The architecture as read: every layer that could be read, and where it
/// breaks the schema. Made by [`read`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The top-level layers.
    pub layers: Vec<LayerReading>,
    /// Problems of the architecture as a whole (not an object, no `layers`, an unknown field).
    pub problems: Vec<ArchProblem>,
}

/// One layer as read, with its position and whatever did not fit the schema.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReading {
    /// Position: `2`, or `2.1` for the second layer inside the repeat at `2`.
    pub at: String,
    /// Nesting level: 0 at the top, 1 inside a repeat, ...
    pub depth: usize,
    /// What the layer is, as far as it could be read.
    pub kind: LayerKind,
    /// What is wrong with this layer itself (not its inner layers).
    pub problems: Vec<ArchProblem>,
}

/// What a layer is, as far as it could be read.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerKind {
    /// A `linear` layer; a name is `None` when missing or not a string.
    Linear {
        /// The weight tensor's name.
        weight: Option<String>,
        /// The bias tensor's name.
        bias: Option<String>,
    },
    /// An element-wise activation.
    Activation(Activation),
    /// A softmax.
    Softmax,
    /// A `repeat` block; `times` is `None` when missing or not a count.
    Repeat {
        /// How often the block runs, as written.
        times: Option<u64>,
        /// The inner layers (empty when the block is nested too deep or has no list).
        layers: Vec<LayerReading>,
    },
    /// Something that is not a layer of the schema: the type as written, if
    /// it is a string, and any `weight`/`bias` names it carries.
    Unknown {
        /// The `type`, when it is a string.
        type_name: Option<String>,
        /// A `weight` name, when there is one.
        weight: Option<String>,
        /// A `bias` name, when there is one.
        bias: Option<String>,
    },
}

/// Reads an architecture value layer by layer, keeping every problem in
/// place instead of stopping at the first. Nesting is read at most
/// [`MAX_REPEAT_DEPTH`] deep. A bare list of layers is read as the `layers`
/// of an object, with a [`ArchProblem::NotAnObject`] problem.
///
/// ```
/// use modeltool_format::arch::{read, ArchProblem, LayerKind};
/// let value = serde_json::json!({"layers": [{"type": "linear", "weight": "w", "bias": 7}]});
/// let reading = read(&value);
/// let layer = &reading.layers[0];
/// assert_eq!(layer.kind, LayerKind::Linear { weight: Some("w".into()), bias: None });
/// assert!(matches!(layer.problems[0], ArchProblem::NotATensorName { field: "bias", .. }));
/// ```
pub fn read(value: &Value) -> Reading {
    let mut problems = Vec::new();
    let list = match value {
        Value::Object(map) => {
            for key in map.keys().filter(|k| *k != "layers") {
                problems.push(ArchProblem::UnknownField {
                    owner: "the architecture",
                    field: key.clone(),
                });
            }
            match map.get("layers") {
                Some(Value::Array(list)) => Some(list),
                Some(other) => {
                    problems.push(ArchProblem::LayersNotAList {
                        found: json_text(other),
                    });
                    None
                }
                None => {
                    problems.push(ArchProblem::NoLayers);
                    None
                }
            }
        }
        Value::Array(list) => {
            problems.push(ArchProblem::NotAnObject {
                found: "a list".to_owned(),
            });
            Some(list)
        }
        other => {
            problems.push(ArchProblem::NotAnObject {
                found: json_text(other),
            });
            None
        }
    };
    let layers = list.map_or_else(Vec::new, |list| read_list(list, "", 0));
    Reading { layers, problems }
}

fn position(prefix: &str, index: usize) -> String {
    if prefix.is_empty() {
        index.to_string()
    } else {
        format!("{prefix}.{index}")
    }
}

fn read_list(list: &[Value], prefix: &str, depth: usize) -> Vec<LayerReading> {
    list.iter()
        .enumerate()
        .map(|(i, v)| read_layer(v, position(prefix, i), depth))
        .collect()
}

fn read_layer(value: &Value, at: String, depth: usize) -> LayerReading {
    let mut problems = Vec::new();
    let unknown = |problems: Vec<ArchProblem>, type_name: Option<String>| LayerReading {
        at: at.clone(),
        depth,
        kind: LayerKind::Unknown {
            type_name,
            weight: value
                .get("weight")
                .and_then(Value::as_str)
                .map(str::to_owned),
            bias: value.get("bias").and_then(Value::as_str).map(str::to_owned),
        },
        problems,
    };
    let Value::Object(map) = value else {
        problems.push(ArchProblem::NotALayerObject {
            found: json_text(value),
        });
        return unknown(problems, None);
    };
    let type_name = match map.get("type") {
        None => {
            problems.push(ArchProblem::NoType);
            return unknown(problems, None);
        }
        Some(Value::String(t)) => t.as_str(),
        Some(other) => {
            problems.push(ArchProblem::TypeNotAString {
                found: json_text(other),
            });
            return unknown(problems, None);
        }
    };
    let (owner, fields): (&'static str, &[&str]) = match type_name {
        "linear" => ("a linear layer", &["type", "weight", "bias"]),
        "repeat" => ("a repeat layer", &["type", "times", "layers"]),
        "softmax" => ("a softmax layer", &["type"]),
        t if t.parse::<Activation>().is_ok() => ("an activation layer", &["type"]),
        _ => {
            problems.push(ArchProblem::UnknownType {
                type_name: type_name.to_owned(),
            });
            return unknown(problems, Some(type_name.to_owned()));
        }
    };
    for key in map.keys().filter(|k| !fields.contains(&k.as_str())) {
        problems.push(ArchProblem::UnknownField {
            owner,
            field: key.clone(),
        });
    }
    let kind = match type_name {
        "linear" => {
            let mut name = |field: &'static str, required: bool| match map.get(field) {
                Some(Value::String(s)) => Some(s.clone()),
                None | Some(Value::Null) if !required => None,
                None => {
                    problems.push(ArchProblem::MissingField {
                        layer: "linear",
                        field,
                    });
                    None
                }
                Some(other) => {
                    problems.push(ArchProblem::NotATensorName {
                        field,
                        found: json_text(other),
                    });
                    None
                }
            };
            let weight = name("weight", true);
            let bias = name("bias", false);
            LayerKind::Linear { weight, bias }
        }
        "softmax" => LayerKind::Softmax,
        "repeat" => {
            let times = match map.get("times") {
                Some(t) => t.as_u64().or_else(|| {
                    problems.push(ArchProblem::TimesNotACount {
                        found: json_text(t),
                    });
                    None
                }),
                None => {
                    problems.push(ArchProblem::MissingField {
                        layer: "repeat",
                        field: "times",
                    });
                    None
                }
            };
            let layers = match map.get("layers") {
                Some(Value::Array(_)) if depth + 1 > MAX_REPEAT_DEPTH => {
                    problems.push(ArchProblem::TooDeep);
                    Vec::new()
                }
                Some(Value::Array(list)) => read_list(list, &at, depth + 1),
                Some(other) => {
                    problems.push(ArchProblem::LayersNotAList {
                        found: json_text(other),
                    });
                    Vec::new()
                }
                None => {
                    problems.push(ArchProblem::MissingField {
                        layer: "repeat",
                        field: "layers",
                    });
                    Vec::new()
                }
            };
            LayerKind::Repeat { times, layers }
        }
        activation => LayerKind::Activation(
            activation
                .parse()
                .expect("checked to be an activation above"),
        ),
    };
    LayerReading {
        at,
        depth,
        kind,
        problems,
    }
}

impl Reading {
    /// The first problem in document order, if there is any.
    pub fn first_problem(&self) -> Option<ArchError> {
        fn walk(layers: &[LayerReading]) -> Option<ArchError> {
            layers.iter().find_map(|l| {
                l.problems
                    .first()
                    .map(|p| ArchError {
                        at: l.at.clone(),
                        problem: p.clone(),
                    })
                    .or_else(|| match &l.kind {
                        LayerKind::Repeat { layers, .. } => walk(layers),
                        _ => None,
                    })
            })
        }
        self.problems
            .first()
            .map(|p| ArchError {
                at: String::new(),
                problem: p.clone(),
            })
            .or_else(|| walk(&self.layers))
    }

    /// The typed architecture, when the reading found no problem (rules that
    /// need the whole architecture are left to [`Architecture::validate`]).
    pub fn into_architecture(self) -> Result<Architecture, ArchError> {
        if let Some(e) = self.first_problem() {
            return Err(e);
        }
        fn convert(layers: Vec<LayerReading>) -> Result<Vec<Layer>, ArchError> {
            layers
                .into_iter()
                .map(|l| {
                    let at = l.at;
                    Ok(match l.kind {
                        LayerKind::Linear {
                            weight: Some(weight),
                            bias,
                        } => Layer::Linear { weight, bias },
                        LayerKind::Activation(a) => a.layer(),
                        LayerKind::Softmax => Layer::Softmax,
                        LayerKind::Repeat {
                            times: Some(times),
                            layers,
                        } => Layer::Repeat {
                            times: usize::try_from(times).map_err(|_| ArchError {
                                at: at.clone(),
                                problem: ArchProblem::TimesOutOfRange { times },
                            })?,
                            layers: convert(layers)?,
                        },
                        _ => unreachable!("a layer without problems is complete"),
                    })
                })
                .collect()
        }
        Ok(Architecture {
            layers: convert(self.layers)?,
        })
    }
}

impl Architecture {
    /// Reads JSON text, refusing an object that repeats a key, and
    /// [validates](Architecture::validate) it.
    pub fn from_json(json: &str) -> Result<Architecture, ArchError> {
        let value = crate::strict_json::from_slice(json.as_bytes()).map_err(|e| ArchError {
            at: String::new(),
            problem: ArchProblem::Json(e.to_string()),
        })?;
        Architecture::from_value(&value)
    }

    /// Reads an already-parsed JSON value (e.g. a model file's
    /// `architecture`) with [`read`], refuses its first problem, and
    /// [validates](Architecture::validate) it.
    pub fn from_value(value: &Value) -> Result<Architecture, ArchError> {
        let arch = read(value).into_architecture()?;
        arch.validate()?;
        Ok(arch)
    }

    /// The compact JSON form, which [`Architecture::from_json`] reads back.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an Architecture always serialises")
    }

    /// The JSON value, as stored in a model file's metadata.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("an Architecture always serialises")
    }

    /// Checks the rules that need no tensor shapes: at least one linear
    /// layer, softmax only as the last top-level layer, repeat blocks
    /// non-empty with `times` in `1..=MAX_REPEAT_TIMES`, nested at most
    /// [`MAX_REPEAT_DEPTH`] deep, and at most [`MAX_LAYER_APPLICATIONS`]
    /// layer applications per pass.
    pub fn validate(&self) -> Result<(), ArchError> {
        let (linears, applications) = check_block(&self.layers, "", 0, true)?;
        let whole = |problem| ArchError {
            at: String::new(),
            problem,
        };
        if applications > MAX_LAYER_APPLICATIONS {
            return Err(whole(ArchProblem::TooManyApplications));
        }
        if linears == 0 {
            return Err(whole(ArchProblem::NoLinear));
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
}

/// Validates one block; returns its linear layers (each counted once) and
/// its layer applications per pass (saturating).
fn check_block(
    layers: &[Layer],
    prefix: &str,
    depth: usize,
    top_level: bool,
) -> Result<(usize, usize), ArchError> {
    let mut linears = 0;
    let mut applications = 0usize;
    for (index, layer) in layers.iter().enumerate() {
        let at = position(prefix, index);
        let fail = |problem| ArchError {
            at: at.clone(),
            problem,
        };
        match layer {
            Layer::Linear { .. } => {
                linears += 1;
                applications = applications.saturating_add(1);
            }
            Layer::Softmax => {
                if !top_level || index + 1 != layers.len() {
                    return Err(fail(ArchProblem::SoftmaxNotLast));
                }
            }
            Layer::Repeat { times, layers } => {
                if depth + 1 > MAX_REPEAT_DEPTH {
                    return Err(fail(ArchProblem::TooDeep));
                }
                if *times == 0 || *times > MAX_REPEAT_TIMES {
                    return Err(fail(ArchProblem::TimesOutOfRange {
                        times: *times as u64,
                    }));
                }
                if layers.is_empty() {
                    return Err(fail(ArchProblem::EmptyRepeat));
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(value: Value) -> ArchError {
        Architecture::from_value(&value).expect_err("refused")
    }

    #[test]
    fn each_kind_of_damage_has_its_variant_and_position() {
        let cases = [
            (json!([]), "", "NotAnObject"),
            (json!({}), "", "NoLayers"),
            (json!({"layers": 3}), "", "LayersNotAList"),
            (json!({"layers": [], "name": "x"}), "", "UnknownField"),
            (json!({"layers": [42]}), "0", "NotALayerObject"),
            (json!({"layers": [{}]}), "0", "NoType"),
            (json!({"layers": [{"type": 1}]}), "0", "TypeNotAString"),
            (json!({"layers": [{"type": "conv"}]}), "0", "UnknownType"),
            (
                json!({"layers": [{"type": "linear", "weight": "w", "scale": 2}]}),
                "0",
                "UnknownField",
            ),
            (json!({"layers": [{"type": "linear"}]}), "0", "MissingField"),
            (
                json!({"layers": [{"type": "linear", "weight": 1}]}),
                "0",
                "NotATensorName",
            ),
            (
                json!({"layers": [{"type": "linear", "weight": "w"}, {"type": "repeat", "times": -1, "layers": [{"type": "relu"}]}]}),
                "1",
                "TimesNotACount",
            ),
            (
                json!({"layers": [{"type": "linear", "weight": "w"}, {"type": "repeat", "times": 0, "layers": [{"type": "relu"}]}]}),
                "1",
                "TimesOutOfRange",
            ),
            (
                json!({"layers": [{"type": "linear", "weight": "w"}, {"type": "repeat", "times": 2, "layers": []}]}),
                "1",
                "EmptyRepeat",
            ),
            (
                json!({"layers": [{"type": "linear", "weight": "w"}, {"type": "softmax"}, {"type": "relu"}]}),
                "1",
                "SoftmaxNotLast",
            ),
            (json!({"layers": [{"type": "relu"}]}), "", "NoLinear"),
        ];
        for (value, at, variant) in cases {
            let err = problem(value.clone());
            assert_eq!(err.at, at, "{value}: {err}");
            assert!(
                format!("{:?}", err.problem).starts_with(variant),
                "{value}: {:?}",
                err.problem
            );
        }
    }

    #[test]
    fn nesting_is_read_at_most_max_depth_deep() {
        let mut deep = json!({"type": "linear", "weight": "w"});
        for _ in 0..MAX_REPEAT_DEPTH + 1 {
            deep = json!({"type": "repeat", "times": 1, "layers": [deep]});
        }
        let err = problem(json!({ "layers": [deep] }));
        assert_eq!(err.problem, ArchProblem::TooDeep);
        assert_eq!(err.at.split('.').count(), MAX_REPEAT_DEPTH + 1);
    }

    #[test]
    fn a_repeated_key_in_text_is_refused() {
        let err =
            Architecture::from_json(r#"{"layers":[{"type":"relu","type":"linear","weight":"w"}]}"#)
                .expect_err("repeated key");
        assert!(err.to_string().contains("`type` appears twice"), "{err}");
    }

    #[test]
    fn strings_from_the_file_are_escaped_in_messages() {
        let err = problem(json!({"layers": [{"type": "conv\u{1b}[2J"}]}));
        let text = err.to_string();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("conv\\u{1b}[2J"), "{text}");
        let err = problem(json!({"layers": [{"type": "linear", "weight": "w", "\u{202e}x": 1}]}));
        assert!(!err.to_string().contains('\u{202e}'), "{err}");
    }

    #[test]
    fn json_round_trips() {
        let text = r#"{"layers":[{"type":"linear","weight":"0.weight","bias":"0.bias"},{"type":"tanh"},{"type":"repeat","times":3,"layers":[{"type":"linear","weight":"r"},{"type":"gelu"}]},{"type":"softmax"}]}"#;
        let arch = Architecture::from_json(text).expect("valid");
        assert_eq!(arch.to_json(), text);
        assert_eq!(Architecture::from_value(&arch.to_value()), Ok(arch));
    }
}
