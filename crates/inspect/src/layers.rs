//! The architecture's layer table, torchinfo style: index, layer,
//! in -> out, activation, parameters. The architecture is walked as plain
//! JSON, so anything unexpected becomes a note instead of an error.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::facts::{TensorFacts, element_count};

/// The activations of the architecture schema (docs/FORMAT.md).
pub const ACTIVATIONS: [&str; 6] = ["relu", "tanh", "sigmoid", "gelu", "identity", "softmax"];

/// How deep `repeat` blocks may nest before the walk stops.
const MAX_NESTING: usize = 32;

/// The layers of an architecture, with widths taken from the tensors.
#[derive(Debug, Clone, Serialize)]
pub struct LayerTable {
    /// One row per layer; an activation that follows a layer is folded
    /// into that layer's row.
    pub rows: Vec<LayerRow>,
    /// Parameters the layers use, a repeated block's once.
    pub parameter_count: u64,
    /// Tensors of the file that no layer names.
    pub unused_tensors: Vec<String>,
    /// Whatever did not fit the schema.
    pub notes: Vec<String>,
}

/// One layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerRow {
    /// Position in the layer list; inside a repeat `2.0`, `2.1`, ...
    pub index: String,
    /// Nesting level: 0 at the top, 1 inside a repeat, ...
    pub depth: usize,
    /// The layer type as written (`linear`, `repeat`, `relu`, ...), or `?`.
    pub layer: String,
    /// Input width, when known.
    pub input: Option<u64>,
    /// Output width, when known.
    pub output: Option<u64>,
    /// The activation applied after the layer.
    pub activation: Option<String>,
    /// Parameters the layer uses (a repeat: its inner layers', once).
    pub parameter_count: u64,
    /// How many times a `repeat` runs its layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What is odd about the layer, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Builds the layer table of `architecture` against the file's tensors.
pub(crate) fn table(architecture: &Value, tensors: &[TensorFacts]) -> LayerTable {
    let by_name: HashMap<&str, &TensorFacts> =
        tensors.iter().map(|t| (t.meta.name.as_str(), t)).collect();
    let mut walk = Walk {
        by_name,
        rows: Vec::new(),
        used: BTreeSet::new(),
        notes: Vec::new(),
    };
    let layers = match architecture {
        Value::Array(list) => Some(list),
        Value::Object(map) => map.get("layers").and_then(Value::as_array),
        _ => None,
    };
    let parameter_count = match layers {
        Some(list) => {
            let mut width = None;
            walk.list(list, "", 0, &mut width)
        }
        None => {
            walk.notes
                .push("the architecture has no `layers` list".to_owned());
            0
        }
    };
    let unused_tensors = tensors
        .iter()
        .filter(|t| !walk.used.contains(t.meta.name.as_str()))
        .map(|t| t.meta.name.clone())
        .collect();
    LayerTable {
        rows: walk.rows,
        parameter_count,
        unused_tensors,
        notes: walk.notes,
    }
}

struct Walk<'a> {
    by_name: HashMap<&'a str, &'a TensorFacts>,
    rows: Vec<LayerRow>,
    used: BTreeSet<&'a str>,
    notes: Vec<String>,
}

impl<'a> Walk<'a> {
    /// Walks one list of layers; `width` carries the current width through
    /// it. Returns the parameters used.
    fn list(
        &mut self,
        layers: &'a [Value],
        prefix: &str,
        depth: usize,
        width: &mut Option<u64>,
    ) -> u64 {
        let mut total = 0u64;
        // The row an activation may fold into: the previous layer at this
        // level, if it has no activation yet.
        let mut open: Option<usize> = None;
        for (i, layer) in layers.iter().enumerate() {
            let index = if prefix.is_empty() {
                i.to_string()
            } else {
                format!("{prefix}.{i}")
            };
            let ty = layer.get("type").and_then(Value::as_str);
            if let Some(act) = ty.filter(|t| ACTIVATIONS.contains(t)) {
                match open.take() {
                    Some(r) => self.rows[r].activation = Some(act.to_owned()),
                    None => self.rows.push(LayerRow {
                        index,
                        depth,
                        layer: act.to_owned(),
                        input: *width,
                        output: *width,
                        activation: None,
                        parameter_count: 0,
                        times: None,
                        note: None,
                    }),
                }
                continue;
            }
            let params = match ty {
                Some("linear") => self.linear(layer, index, depth, width),
                Some("repeat") => self.repeat(layer, index, depth, width),
                _ => self.unknown(layer, ty, index, depth, width),
            };
            total = total.saturating_add(params);
            open = (ty != Some("repeat")).then(|| self.rows.len() - 1);
        }
        total
    }

    /// Looks up the tensor a layer's `key` names, marking it used.
    fn tensor(
        &mut self,
        layer: &'a Value,
        key: &str,
        notes: &mut Vec<String>,
    ) -> Option<&'a TensorFacts> {
        let name = match layer.get(key)? {
            Value::String(s) => s.as_str(),
            other => {
                notes.push(format!("`{key}` is {other}, not a tensor name"));
                return None;
            }
        };
        match self.by_name.get(name) {
            Some(t) => {
                self.used.insert(name);
                Some(*t)
            }
            None => {
                notes.push(format!("{key} `{name}` is not in the file"));
                None
            }
        }
    }

    fn linear(
        &mut self,
        layer: &'a Value,
        index: String,
        depth: usize,
        width: &mut Option<u64>,
    ) -> u64 {
        let mut notes = Vec::new();
        let weight = self.tensor(layer, "weight", &mut notes);
        let bias = self.tensor(layer, "bias", &mut notes);
        if layer.get("weight").is_none() {
            notes.push("no `weight`".to_owned());
        }
        let (mut input, mut output) = (None, None);
        if let Some(w) = weight {
            match w.meta.shape[..] {
                [out, inp] => {
                    (input, output) = (Some(inp as u64), Some(out as u64));
                }
                ref shape => notes.push(format!(
                    "weight `{}` has shape {shape:?}, not [out, in]",
                    w.meta.name
                )),
            }
        }
        if let (Some(b), Some(out)) = (bias, output) {
            if b.meta.shape[..] != [out as usize] {
                notes.push(format!(
                    "bias `{}` has shape {:?}, not [{out}]",
                    b.meta.name, b.meta.shape
                ));
            }
        }
        if let (Some(prev), Some(inp)) = (*width, input) {
            if prev != inp {
                notes.push(format!(
                    "takes {inp} inputs but the layer before gives {prev}"
                ));
            }
        }
        if output.is_some() {
            *width = output;
        }
        let params = [weight, bias]
            .into_iter()
            .flatten()
            .fold(0u64, |acc, t| acc.saturating_add(element_count(&t.meta)));
        self.rows.push(LayerRow {
            index,
            depth,
            layer: "linear".to_owned(),
            input,
            output,
            activation: None,
            parameter_count: params,
            times: None,
            note: (!notes.is_empty()).then(|| notes.join("; ")),
        });
        params
    }

    fn repeat(
        &mut self,
        layer: &'a Value,
        index: String,
        depth: usize,
        width: &mut Option<u64>,
    ) -> u64 {
        let mut notes = Vec::new();
        let times = match layer.get("times") {
            Some(t) => t.as_u64().or_else(|| {
                notes.push(format!("`times` is {t}, not a count"));
                None
            }),
            None => {
                notes.push("no `times`".to_owned());
                None
            }
        };
        let row = self.rows.len();
        let input = *width;
        self.rows.push(LayerRow {
            index: index.clone(),
            depth,
            layer: "repeat".to_owned(),
            input,
            output: None,
            activation: None,
            parameter_count: 0,
            times,
            note: None,
        });
        let params = match layer.get("layers").and_then(Value::as_array) {
            Some(_) if depth >= MAX_NESTING => {
                notes.push(format!(
                    "repeats nested deeper than {MAX_NESTING} are not shown"
                ));
                0
            }
            Some(inner) => self.list(inner, &index, depth + 1, width),
            None => {
                notes.push("no `layers` list".to_owned());
                0
            }
        };
        if let (Some(i), Some(o), Some(t)) = (input, *width, times) {
            if t > 1 && i != o {
                notes.push(format!(
                    "the block maps {i} to {o}, so it cannot run {t} times"
                ));
            }
        }
        let r = &mut self.rows[row];
        r.output = *width;
        r.parameter_count = params;
        r.note = (!notes.is_empty()).then(|| notes.join("; "));
        params
    }

    fn unknown(
        &mut self,
        layer: &'a Value,
        ty: Option<&str>,
        index: String,
        depth: usize,
        width: &mut Option<u64>,
    ) -> u64 {
        let mut notes = vec![match (ty, layer) {
            (Some(t), _) => format!("unknown layer type `{t}`"),
            (None, Value::Object(_)) => "no `type`".to_owned(),
            (None, other) => format!("{other} is not a layer object"),
        }];
        let weight = self.tensor(layer, "weight", &mut notes);
        let bias = self.tensor(layer, "bias", &mut notes);
        let input = *width;
        *width = weight.and_then(|w| match w.meta.shape[..] {
            [out, _] => Some(out as u64),
            _ => None,
        });
        let params = [weight, bias]
            .into_iter()
            .flatten()
            .fold(0u64, |acc, t| acc.saturating_add(element_count(&t.meta)));
        self.rows.push(LayerRow {
            index,
            depth,
            layer: ty.unwrap_or("?").to_owned(),
            input,
            output: *width,
            activation: None,
            parameter_count: params,
            times: None,
            note: Some(notes.join("; ")),
        });
        params
    }
}
