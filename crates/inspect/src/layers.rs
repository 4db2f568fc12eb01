//! The architecture's layer table, torchinfo style: index, layer,
//! in -> out, activation, parameters. The architecture is read by the
//! format's one schema reader ([`modeltool_format::arch::read`]), which keeps
//! going after a problem: what breaks the schema becomes a note on its row
//! instead of an error, and nesting is read as deep as the schema allows.

use std::collections::{BTreeSet, HashMap};

use modeltool_format::arch::{self, Activation, LayerKind, LayerReading};
use modeltool_format::text::Escaped;
use serde::Serialize;
use serde_json::Value;

use crate::facts::{TensorFacts, element_count};

/// The activations of the architecture schema (docs/FORMAT.md), softmax last.
pub const ACTIVATIONS: [&str; 6] = [
    Activation::ALL[0].name(),
    Activation::ALL[1].name(),
    Activation::ALL[2].name(),
    Activation::ALL[3].name(),
    Activation::ALL[4].name(),
    "softmax",
];

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
    /// Whatever did not fit the schema as a whole.
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
    let reading = arch::read(architecture);
    let mut notes: Vec<String> = reading.problems.iter().map(ToString::to_string).collect();
    // The rules that need the whole architecture (softmax last, a linear
    // layer somewhere, repeat counts), once every layer reads.
    if reading.first_problem().is_none() {
        let rules = reading
            .clone()
            .into_architecture()
            .and_then(|a| a.validate());
        if let Err(e) = rules {
            notes.push(e.to_string());
        }
    }
    let mut walk = Walk {
        by_name,
        rows: Vec::new(),
        used: BTreeSet::new(),
    };
    let mut width = None;
    let parameter_count = walk.list(&reading.layers, &mut width);
    let unused_tensors = tensors
        .iter()
        .filter(|t| !walk.used.contains(t.meta.name.as_str()))
        .map(|t| t.meta.name.clone())
        .collect();
    LayerTable {
        rows: walk.rows,
        parameter_count,
        unused_tensors,
        notes,
    }
}

struct Walk<'a> {
    by_name: HashMap<&'a str, &'a TensorFacts>,
    rows: Vec<LayerRow>,
    used: BTreeSet<String>,
}

fn note(notes: Vec<String>) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

impl<'a> Walk<'a> {
    /// Walks one list of layers; `width` carries the current width through
    /// it. Returns the parameters used.
    fn list(&mut self, layers: &[LayerReading], width: &mut Option<u64>) -> u64 {
        let mut total = 0u64;
        // The row an activation may fold into: the previous layer at this
        // level, if it has no activation yet.
        let mut open: Option<usize> = None;
        for layer in layers {
            let mut notes: Vec<String> = layer.problems.iter().map(ToString::to_string).collect();
            let activation = match &layer.kind {
                LayerKind::Activation(a) => Some(a.name()),
                LayerKind::Softmax => Some("softmax"),
                _ => None,
            };
            if let Some(act) = activation {
                match open.take() {
                    Some(r) => {
                        let row = &mut self.rows[r];
                        row.activation = Some(act.to_owned());
                        if let Some(old) = row.note.take() {
                            notes.insert(0, old);
                        }
                        row.note = note(notes);
                    }
                    None => self.rows.push(LayerRow {
                        index: layer.at.clone(),
                        depth: layer.depth,
                        layer: act.to_owned(),
                        input: *width,
                        output: *width,
                        activation: None,
                        parameter_count: 0,
                        times: None,
                        note: note(notes),
                    }),
                }
                continue;
            }
            let params = match &layer.kind {
                LayerKind::Linear { weight, bias } => {
                    self.linear(layer, weight.as_deref(), bias.as_deref(), notes, width)
                }
                LayerKind::Repeat { times, layers } => {
                    self.repeat(layer, *times, layers, notes, width)
                }
                LayerKind::Unknown {
                    type_name,
                    weight,
                    bias,
                } => {
                    let (w, b) = (
                        self.tensor(weight.as_deref(), "weight", &mut notes),
                        self.tensor(bias.as_deref(), "bias", &mut notes),
                    );
                    let input = *width;
                    *width = w.and_then(|w| match w.meta.shape[..] {
                        [out, _] => Some(out as u64),
                        _ => None,
                    });
                    let params = parameters(w, b);
                    self.rows.push(LayerRow {
                        index: layer.at.clone(),
                        depth: layer.depth,
                        layer: type_name.clone().unwrap_or_else(|| "?".to_owned()),
                        input,
                        output: *width,
                        activation: None,
                        parameter_count: params,
                        times: None,
                        note: note(notes),
                    });
                    params
                }
                LayerKind::Activation(_) | LayerKind::Softmax => {
                    unreachable!("activations are folded above")
                }
            };
            total = total.saturating_add(params);
            let is_repeat = matches!(layer.kind, LayerKind::Repeat { .. });
            open = (!is_repeat).then(|| self.rows.len() - 1);
        }
        total
    }

    /// Looks up the tensor a layer names as its `role`, marking it used.
    fn tensor(
        &mut self,
        name: Option<&str>,
        role: &str,
        notes: &mut Vec<String>,
    ) -> Option<&'a TensorFacts> {
        let name = name?;
        match self.by_name.get(name) {
            Some(t) => {
                self.used.insert(name.to_owned());
                Some(*t)
            }
            None => {
                notes.push(format!("{role} `{}` is not in the file", Escaped(name)));
                None
            }
        }
    }

    fn linear(
        &mut self,
        layer: &LayerReading,
        weight: Option<&str>,
        bias: Option<&str>,
        mut notes: Vec<String>,
        width: &mut Option<u64>,
    ) -> u64 {
        let weight = self.tensor(weight, "weight", &mut notes);
        let bias = self.tensor(bias, "bias", &mut notes);
        let (mut input, mut output) = (None, None);
        if let Some(w) = weight {
            match w.meta.shape[..] {
                [out, inp] => {
                    (input, output) = (Some(inp as u64), Some(out as u64));
                }
                ref shape => notes.push(format!(
                    "weight `{}` has shape {shape:?}, not [out, in]",
                    Escaped(&w.meta.name)
                )),
            }
        }
        if let (Some(b), Some(out)) = (bias, output) {
            if b.meta.shape[..] != [out as usize] {
                notes.push(format!(
                    "bias `{}` has shape {:?}, not [{out}]",
                    Escaped(&b.meta.name),
                    b.meta.shape
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
        let params = parameters(weight, bias);
        self.rows.push(LayerRow {
            index: layer.at.clone(),
            depth: layer.depth,
            layer: "linear".to_owned(),
            input,
            output,
            activation: None,
            parameter_count: params,
            times: None,
            note: note(notes),
        });
        params
    }

    fn repeat(
        &mut self,
        layer: &LayerReading,
        times: Option<u64>,
        inner: &[LayerReading],
        mut notes: Vec<String>,
        width: &mut Option<u64>,
    ) -> u64 {
        let row = self.rows.len();
        let input = *width;
        self.rows.push(LayerRow {
            index: layer.at.clone(),
            depth: layer.depth,
            layer: "repeat".to_owned(),
            input,
            output: None,
            activation: None,
            parameter_count: 0,
            times,
            note: None,
        });
        let params = self.list(inner, width);
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
        r.note = note(notes);
        params
    }
}

/// Elements of a layer's weight and bias.
fn parameters(weight: Option<&TensorFacts>, bias: Option<&TensorFacts>) -> u64 {
    [weight, bias]
        .into_iter()
        .flatten()
        .fold(0u64, |acc, t| acc.saturating_add(element_count(&t.meta)))
}

#[cfg(test)]
mod tests {
    use modeltool_format::{Dtype, TensorMeta};
    use serde_json::json;

    use super::*;

    fn facts(name: &str, shape: &[usize]) -> TensorFacts {
        TensorFacts {
            meta: TensorMeta {
                name: name.into(),
                dtype: Dtype::F32,
                shape: shape.to_vec(),
            },
            file: 0,
            offset: 0,
            bytes: 0,
        }
    }

    /// The table used to accept what the runner refuses: it had its own
    /// reading of the schema. Now a rule of the schema that every layer
    /// passes but the whole breaks (a softmax not last) is a note.
    #[test]
    fn a_rule_the_runner_refuses_is_a_note() {
        let tensors = [facts("w", &[2, 2])];
        let arch = json!({"layers": [
            {"type": "linear", "weight": "w"},
            {"type": "softmax"},
            {"type": "linear", "weight": "w"}
        ]});
        let t = table(&arch, &tensors);
        assert_eq!(
            t.notes,
            ["layer 1: softmax is only allowed as the last top-level layer"]
        );
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].activation.as_deref(), Some("softmax"));

        let fine = json!({"layers": [{"type": "linear", "weight": "w"}, {"type": "softmax"}]});
        assert!(table(&fine, &tensors).notes.is_empty());
    }

    #[test]
    fn names_from_the_file_in_notes_are_escaped() {
        let arch = json!({"layers": [
            {"type": "linear", "weight": "gone\u{1b}[2J"},
            {"type": "conv\u{202e}"}
        ]});
        let t = table(&arch, &[]);
        let notes: Vec<&str> = t.rows.iter().filter_map(|r| r.note.as_deref()).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes
                .iter()
                .all(|n| !n.contains('\u{1b}') && !n.contains('\u{202e}')),
            "{notes:?}"
        );
        assert!(notes[0].contains("gone\\u{1b}[2J"), "{notes:?}");
    }
}
