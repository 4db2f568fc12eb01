//! The report: totals, the module tree, the layer table and where the file
//! size comes from, built from facts alone.

use std::collections::BTreeMap;

use modeltool_format::Dtype;
use serde::Serialize;

use crate::buffers::buffer_kind;
use crate::facts::{ModelFacts, element_count};
use crate::layers::{LayerTable, table};
use crate::tree::{self, TreeNode};

/// Rows the module tree may take in the human view when no depth is given:
/// the deepest level that fits is shown, so a BERT-like model's whole report
/// stays within 60 lines.
pub const TREE_ROW_BUDGET: usize = 24;

/// What to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// Levels of the module tree: `None` picks the deepest that fits
    /// [`TREE_ROW_BUDGET`] rows in the human view (the JSON then has the
    /// whole tree); `Some(n)` shows, and serializes, `n` levels.
    pub depth: Option<usize>,
    /// Whether the human view lists every tensor (the JSON always does).
    pub tensors: bool,
}

/// Everything known about a model from its facts. Serializes as the JSON
/// report; [`Report::render_human`] writes the text view.
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The path as given.
    pub path: String,
    /// `safetensors`, `json` or `sharded`.
    pub kind: String,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Every element of every tensor, buffers included.
    pub parameter_count: u64,
    /// `parameter_count` in short form (`22.7M`).
    pub parameter_count_short: String,
    /// `parameter_count` without the buffers: the trained parameters.
    pub parameters_without_buffers: u64,
    /// The non-parameter tensors.
    pub buffers: Buffers,
    /// Size of all files.
    pub file_bytes: u64,
    /// Bytes before the tensor data, summed over files.
    pub header_bytes: u64,
    /// `header_bytes / file_bytes`.
    pub header_share: f64,
    /// Bytes of tensor data in binary form.
    pub data_bytes: u64,
    /// `data_bytes / parameter_count` (null without parameters).
    pub bytes_per_parameter: Option<f64>,
    /// `file_bytes / parameter_count` (null without parameters).
    pub file_bytes_per_parameter: Option<f64>,
    /// Parameters and bytes per dtype.
    pub dtypes: BTreeMap<String, DtypeTotals>,
    /// Each file.
    pub files: Vec<FileSummary>,
    /// The safetensors size formula with this model's numbers (null for a
    /// JSON model file, whose size depends on how its numbers print).
    pub size_formula: Option<SizeFormula>,
    /// What the data would weigh at other precisions.
    pub sizes_at: Vec<SizeAt>,
    /// Well-known models, smallest first, with this one in its place.
    pub landmarks: Vec<Landmark>,
    /// The user's string metadata.
    pub metadata: BTreeMap<String, String>,
    /// The module tree's top-level rows.
    pub tree: Vec<TreeNode>,
    /// Every tensor, in the order of the facts.
    pub tensors: Vec<TensorRow>,
    /// The architecture's layer table, when the model stores one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<LayerTable>,
    #[serde(skip)]
    pub(crate) view: View,
}

/// Human-view settings carried from the options.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) depth: usize,
    pub(crate) height: usize,
    pub(crate) auto: bool,
    pub(crate) tensors: bool,
}

/// The non-parameter tensors.
#[derive(Debug, Clone, Serialize)]
pub struct Buffers {
    /// How many.
    pub tensor_count: u64,
    /// Their elements.
    pub element_count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Each one.
    pub tensors: Vec<BufferTensor>,
}

/// One non-parameter tensor.
#[derive(Debug, Clone, Serialize)]
pub struct BufferTensor {
    /// Its name.
    pub name: String,
    /// What kind of buffer (`integer table`, `causal mask`, ...).
    pub kind: String,
    /// Its elements.
    pub element_count: u64,
}

/// Totals for one dtype.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DtypeTotals {
    /// Tensors of this dtype.
    pub tensor_count: u64,
    /// Their elements.
    pub parameter_count: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// One file of the model.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// The path.
    pub path: String,
    /// Its size.
    pub file_bytes: u64,
    /// Bytes before the tensor data.
    pub header_bytes: u64,
    /// Bytes of the tensors it holds.
    pub data_bytes: u64,
    /// Tensors it holds.
    pub tensor_count: u64,
}

/// `file bytes = 8 + header + sum(elements x bytes per element)`, filled in.
#[derive(Debug, Clone, Serialize)]
pub struct SizeFormula {
    /// 8 per file: the header length.
    pub length_bytes: u64,
    /// The JSON headers (with their padding).
    pub json_header_bytes: u64,
    /// One term per dtype.
    pub terms: Vec<SizeTerm>,
    /// The sum.
    pub total: u64,
    /// The files' actual size.
    pub file_bytes: u64,
    /// Whether the two agree.
    pub matches: bool,
}

/// `elements x bytes per element` for one dtype.
#[derive(Debug, Clone, Serialize)]
pub struct SizeTerm {
    /// The dtype.
    pub dtype: String,
    /// Elements of that dtype.
    pub elements: u64,
    /// Bytes per element (0.5 for 4-bit types).
    pub bytes_per_element: f64,
    /// The product.
    pub bytes: u64,
}

/// What the model's data would weigh at one precision.
#[derive(Debug, Clone, Serialize)]
pub struct SizeAt {
    /// `f32`, `f16/bf16`, `int8` or `4-bit`.
    pub precision: String,
    /// Bytes per parameter.
    pub bytes_per_parameter: f64,
    /// `parameter_count x bytes_per_parameter`, data only.
    pub bytes: u64,
}

/// A model on the size scale.
#[derive(Debug, Clone, Serialize)]
pub struct Landmark {
    /// Its name.
    pub name: String,
    /// Its parameters.
    pub parameter_count: u64,
    /// Its size, roughly.
    pub bytes: u64,
    /// How that size is usually stored, as text (`~91 MB f32`).
    pub size: String,
    /// Whether this is the model being inspected.
    pub this_model: bool,
}

/// One tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow {
    /// Its name.
    pub name: String,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its elements.
    pub parameter_count: u64,
    /// Its bytes.
    pub bytes: u64,
    /// Index of its file.
    pub file: usize,
    /// Absolute offset of its bytes in the file (0 for JSON).
    pub offset: u64,
    /// Why it is a buffer, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<String>,
}

/// Well-known models: name, parameters, bytes, size as usually quoted.
const LANDMARKS: [(&str, u64, u64, &str); 4] = [
    ("line y = ax + b", 2, 8, "under 1 KB"),
    ("all-MiniLM-L6-v2", 22_713_216, 90_852_864, "~91 MB f32"),
    ("Llama-2-7B", 6_738_415_616, 13_476_831_232, "~13.5 GB bf16"),
    ("GPT-3", 175_000_000_000, 350_000_000_000, "~350 GB bf16"),
];

/// Builds the report of a model from its facts.
pub fn inspect(facts: &ModelFacts, options: &InspectOptions) -> Report {
    let mut dtypes: BTreeMap<String, DtypeTotals> = BTreeMap::new();
    let mut by_dtype: BTreeMap<Dtype, u64> = BTreeMap::new();
    let mut files: Vec<FileSummary> = facts
        .files
        .iter()
        .map(|f| FileSummary {
            path: f.path.clone(),
            file_bytes: f.file_bytes,
            header_bytes: f.header_bytes,
            data_bytes: 0,
            tensor_count: 0,
        })
        .collect();
    let mut buffers = Buffers {
        tensor_count: 0,
        element_count: 0,
        bytes: 0,
        tensors: Vec::new(),
    };
    let mut tensors = Vec::with_capacity(facts.tensors.len());
    let (mut parameter_count, mut data_bytes) = (0u64, 0u64);
    for t in &facts.tensors {
        let n = element_count(&t.meta);
        parameter_count = parameter_count.saturating_add(n);
        data_bytes = data_bytes.saturating_add(t.bytes);
        let d = dtypes.entry(t.meta.dtype.name().to_owned()).or_default();
        d.tensor_count += 1;
        d.parameter_count = d.parameter_count.saturating_add(n);
        d.bytes = d.bytes.saturating_add(t.bytes);
        let e = by_dtype.entry(t.meta.dtype).or_default();
        *e = e.saturating_add(n);
        if let Some(f) = files.get_mut(t.file) {
            f.data_bytes = f.data_bytes.saturating_add(t.bytes);
            f.tensor_count += 1;
        }
        let kind = buffer_kind(&t.meta);
        if let Some(kind) = kind {
            buffers.tensor_count += 1;
            buffers.element_count = buffers.element_count.saturating_add(n);
            buffers.bytes = buffers.bytes.saturating_add(t.bytes);
            buffers.tensors.push(BufferTensor {
                name: t.meta.name.clone(),
                kind: kind.to_owned(),
                element_count: n,
            });
        }
        tensors.push(TensorRow {
            name: t.meta.name.clone(),
            dtype: t.meta.dtype,
            shape: t.meta.shape.clone(),
            parameter_count: n,
            bytes: t.bytes,
            file: t.file,
            offset: t.offset,
            buffer: kind.map(str::to_owned),
        });
    }
    let file_bytes = facts
        .files
        .iter()
        .fold(0u64, |acc, f| acc.saturating_add(f.file_bytes));
    let header_bytes = facts
        .files
        .iter()
        .fold(0u64, |acc, f| acc.saturating_add(f.header_bytes));
    let per = |bytes: u64| (parameter_count > 0).then(|| bytes as f64 / parameter_count as f64);

    let size_formula = (facts.kind != "json").then(|| {
        let length_bytes = 8u64.saturating_mul(facts.files.len() as u64);
        let json_header_bytes = header_bytes.saturating_sub(length_bytes);
        let mut terms: Vec<SizeTerm> = by_dtype
            .iter()
            .map(|(&dtype, &elements)| SizeTerm {
                dtype: dtype.name().to_owned(),
                elements,
                bytes_per_element: dtype.bits() as f64 / 8.0,
                bytes: elements.saturating_mul(dtype.bits() as u64) / 8,
            })
            .collect();
        terms.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        let total = terms
            .iter()
            .fold(length_bytes.saturating_add(json_header_bytes), |acc, t| {
                acc.saturating_add(t.bytes)
            });
        SizeFormula {
            length_bytes,
            json_header_bytes,
            terms,
            total,
            file_bytes,
            matches: total == file_bytes,
        }
    });

    let sizes_at = [("f32", 8u64), ("f16/bf16", 4), ("int8", 2), ("4-bit", 1)]
        .into_iter()
        .map(|(precision, half_bytes)| SizeAt {
            precision: precision.to_owned(),
            bytes_per_parameter: half_bytes as f64 / 2.0,
            bytes: parameter_count.saturating_mul(half_bytes).div_ceil(2),
        })
        .collect();

    let main_dtype = dtypes
        .iter()
        .max_by_key(|(_, d)| d.bytes)
        .map(|(name, _)| name.to_lowercase())
        .unwrap_or_default();
    let mut landmarks: Vec<Landmark> = LANDMARKS
        .iter()
        .map(|&(name, params, bytes, size)| Landmark {
            name: name.to_owned(),
            parameter_count: params,
            bytes,
            size: size.to_owned(),
            this_model: false,
        })
        .collect();
    let at = landmarks
        .iter()
        .position(|l| l.parameter_count > parameter_count)
        .unwrap_or(landmarks.len());
    landmarks.insert(
        at,
        Landmark {
            name: facts.path.clone(),
            parameter_count,
            bytes: file_bytes,
            size: format!("{} {main_dtype}", crate::units::bytes(file_bytes))
                .trim_end()
                .to_owned(),
            this_model: true,
        },
    );

    let mut tree = tree::build(&facts.tensors, parameter_count);
    let height = tree::height(&tree);
    let (depth, auto) = match options.depth {
        Some(d) => {
            tree::truncate(&mut tree, d);
            (d, false)
        }
        None => {
            let fits = (1..=height)
                .take_while(|&d| tree::rows_to(&tree, d) <= TREE_ROW_BUDGET)
                .last()
                .unwrap_or(1);
            (fits, true)
        }
    };

    let layers = facts
        .architecture
        .as_ref()
        .map(|a| table(a, &facts.tensors));

    Report {
        path: facts.path.clone(),
        kind: facts.kind.clone(),
        tensor_count: facts.tensors.len() as u64,
        parameter_count,
        parameter_count_short: crate::units::short(parameter_count),
        parameters_without_buffers: parameter_count.saturating_sub(buffers.element_count),
        buffers,
        file_bytes,
        header_bytes,
        header_share: if file_bytes == 0 {
            0.0
        } else {
            header_bytes as f64 / file_bytes as f64
        },
        data_bytes,
        bytes_per_parameter: per(data_bytes),
        file_bytes_per_parameter: per(file_bytes),
        dtypes,
        files,
        size_formula,
        sizes_at,
        landmarks,
        metadata: facts.metadata.clone(),
        tree,
        tensors,
        layers,
        view: View {
            depth,
            height,
            auto,
            tensors: options.tensors,
        },
    }
}
