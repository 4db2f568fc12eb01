//! The report: totals, the module tree, the layer table and where the file
//! size comes from, built from an opened model or from facts alone.

use std::collections::BTreeMap;

use modeltool_format::Dtype;
use modeltool_loader::{Location, Model};
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::buffers::buffer_kind;
use crate::config::HfConfig;
use crate::facts::{FileFacts, ModelFacts, TensorFacts, element_count};
use crate::gguf::GgufReport;
use crate::layers::{LayerTable, table};
use crate::quant::{Quantization, recognise};
use crate::source::Source;
use crate::tree::{Tree, TreeNode};

/// Rows the module tree may take in the human view when no depth is given:
/// the deepest level that fits is shown, so a BERT-like model's whole report
/// stays within 60 lines.
pub const TREE_ROW_BUDGET: usize = 24;

/// Tensors the human view's tensor table lists unless told otherwise.
pub const TENSOR_ROW_LIMIT: usize = 200;

/// What to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InspectOptions {
    /// Levels of the module tree: `None` picks the deepest that fits
    /// [`TREE_ROW_BUDGET`] rows in the human view (the JSON then has the
    /// whole tree); `Some(n)` shows, and serializes, `n` levels.
    pub depth: Option<usize>,
    /// Whether the human view lists the tensors (the JSON always lists
    /// every one).
    pub tensors: bool,
    /// The most tensors the human view lists (`None`: every one).
    pub tensor_limit: Option<usize>,
    /// Columns the human view may take; at least 80 are used.
    pub columns: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            depth: None,
            tensors: false,
            tensor_limit: Some(TENSOR_ROW_LIMIT),
            columns: 80,
        }
    }
}

/// Everything known about a model from its headers. Serializes as the JSON
/// report; [`Report::render_human`] writes the text view.
///
/// The report borrows the model (or facts) it describes: tensor names,
/// shapes and metadata are not copied, and the module tree and tensor list
/// are made as they are written.
///
/// ```
/// use modeltool_format::{write_safetensors, Dtype, TensorMeta};
/// use modeltool_inspect::{InspectOptions, Report};
/// use modeltool_loader::{Model, OpenOptions};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("line.safetensors");
/// let meta = |name: &str| TensorMeta { name: name.into(), dtype: Dtype::F32, shape: vec![1] };
/// let one = 1.0f32.to_le_bytes();
/// write_safetensors(
///     std::fs::File::create(&path)?,
///     &[(meta("a"), &one[..]), (meta("b"), &one[..])],
///     &Default::default(),
/// )?;
///
/// let model = Model::open(&path, OpenOptions::default())?;
/// let report = Report::from_model(&model, &InspectOptions::default());
/// assert_eq!(report.parameter_count, 2);
/// assert_eq!(report.size_formula.as_ref().map(|f| f.matches), Some(true));
///
/// let mut text = Vec::new();
/// report.render_human(&mut text)?;
/// let text = String::from_utf8(text)?;
/// assert!(text.contains("<- this model"));
/// assert!(text.lines().all(|l| l.chars().count() <= 80));
///
/// let json = serde_json::to_value(&report)?;
/// assert_eq!(json["tensors"][1]["name"], "b");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Serialize)]
pub struct Report<'m> {
    /// The path as given.
    pub path: String,
    /// `safetensors`, `json` or `sharded`.
    pub kind: String,
    /// What is odd about the model: said before the rest, never fatal.
    pub warnings: Vec<String>,
    /// Number of tensors.
    pub tensor_count: u64,
    /// Every stored element of every tensor, buffers and quantization
    /// state included; packed elements count once each (see
    /// `quantization`).
    pub parameter_count: u64,
    /// `parameter_count` in short form (`22.7M`).
    pub parameter_count_short: String,
    /// `parameter_count` without the buffers: the trained parameters (as
    /// stored: packed elements count once each).
    pub parameters_without_buffers: u64,
    /// The non-parameter tensors.
    pub buffers: Buffers<'m>,
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
    /// JSON model file, whose size depends on how its numbers print, and
    /// for a GGUF file, whose layout is not safetensors').
    pub size_formula: Option<SizeFormula>,
    /// What the data would weigh at other precisions.
    pub sizes_at: Vec<SizeAt>,
    /// Well-known models, smallest first, with this one in its place.
    pub landmarks: Vec<Landmark>,
    /// Packed quantized weights (bitsandbytes, GPTQ/AWQ), when recognised.
    pub quantization: Option<Quantization>,
    /// The Hugging Face `config.json` beside the model, when there is one.
    pub config: Option<HfConfig>,
    /// The user's string metadata.
    pub metadata: &'m BTreeMap<String, String>,
    /// The module tree's top-level rows (see [`Report::tree`]).
    #[serde(serialize_with = "serialize_tree", rename = "tree")]
    tree_rows: TreeField<'m>,
    /// Every tensor, in the order of the model.
    pub tensors: Tensors<'m>,
    /// The architecture's layer table, when the model stores one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<LayerTable>,
    /// For a GGUF file: per ggml type totals and bits per weight, and the
    /// metadata summary (see [`GgufReport`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gguf: Option<GgufReport>,
    #[serde(skip)]
    pub(crate) view: View,
}

/// The tree and the depth the JSON shows.
#[derive(Debug, Clone)]
struct TreeField<'m> {
    tree: Tree<'m>,
    depth: Option<usize>,
}

fn serialize_tree<S: Serializer>(t: &TreeField<'_>, s: S) -> Result<S::Ok, S::Error> {
    t.tree.serialize_rows(t.depth, s)
}

/// Human-view settings carried from the options.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) depth: usize,
    pub(crate) height: usize,
    pub(crate) tensors: bool,
    pub(crate) tensor_limit: Option<usize>,
    pub(crate) columns: usize,
}

/// The non-parameter tensors.
#[derive(Debug, Clone, Serialize)]
pub struct Buffers<'m> {
    /// How many.
    pub tensor_count: u64,
    /// Their elements.
    pub element_count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Each one.
    pub tensors: BufferList<'m>,
}

/// The buffers of a model, listed as they are asked for.
#[derive(Debug, Clone, Copy)]
pub struct BufferList<'m> {
    src: Source<'m>,
    len: usize,
}

impl<'m> BufferList<'m> {
    /// Every buffer, in the order of the model.
    pub fn iter(&self) -> impl Iterator<Item = BufferTensor<'m>> + 'm {
        let src = self.src;
        (0..src.len()).filter_map(move |i| {
            let meta = src.meta(i);
            buffer_kind(meta).map(|kind| BufferTensor {
                name: &meta.name,
                kind,
                element_count: element_count(meta),
            })
        })
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Serialize for BufferList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len))?;
        for b in self.iter() {
            seq.serialize_element(&b)?;
        }
        seq.end()
    }
}

/// One non-parameter tensor.
#[derive(Debug, Clone, Serialize)]
pub struct BufferTensor<'m> {
    /// Its name.
    pub name: &'m str,
    /// What kind of buffer (`integer table`, `causal mask`, ...).
    pub kind: &'static str,
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

/// Every tensor of a model, made as it is asked for.
#[derive(Debug, Clone)]
pub struct Tensors<'m> {
    src: Source<'m>,
    /// Each file's header bytes, for offsets from the start of the data.
    header_bytes: Vec<u64>,
    json: bool,
}

impl<'m> Tensors<'m> {
    /// How many.
    pub fn len(&self) -> usize {
        self.src.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.src.len() == 0
    }

    /// Tensor `i`, in the order of the model.
    pub fn get(&self, i: usize) -> Option<TensorRow<'m>> {
        if i >= self.src.len() {
            return None;
        }
        let meta = self.src.meta(i);
        let file = self.src.file(i);
        let offset = self.src.offset(i);
        Some(TensorRow {
            name: &meta.name,
            dtype: meta.dtype,
            shape: &meta.shape,
            parameter_count: element_count(meta),
            bytes: self.src.bytes(i),
            file,
            offset,
            data_offset: if self.json {
                None
            } else {
                self.header_bytes
                    .get(file)
                    .map(|&h| offset.saturating_sub(h))
            },
            buffer: buffer_kind(meta),
        })
    }

    /// Every tensor, in the order of the model.
    pub fn iter(&self) -> impl Iterator<Item = TensorRow<'m>> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Serialize for Tensors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.len()))?;
        for t in self.iter() {
            seq.serialize_element(&t)?;
        }
        seq.end()
    }
}

/// One tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorRow<'m> {
    /// Its name.
    pub name: &'m str,
    /// Its dtype.
    pub dtype: Dtype,
    /// Its shape.
    pub shape: &'m [usize],
    /// Its stored elements.
    pub parameter_count: u64,
    /// Its bytes.
    pub bytes: u64,
    /// Index of its file in `files`.
    pub file: usize,
    /// Absolute offset of its bytes in the file (0 for JSON).
    pub offset: u64,
    /// Offset of its bytes from the start of the file's data, as the
    /// safetensors header writes it (null for a JSON model file).
    pub data_offset: Option<u64>,
    /// Why it is a buffer, if it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<&'static str>,
}

/// Well-known models: name, parameters, bytes, size as usually quoted.
const LANDMARKS: [(&str, u64, u64, &str); 4] = [
    ("line y = ax + b", 2, 8, "under 1 KB"),
    ("all-MiniLM-L6-v2", 22_713_216, 90_852_864, "~91 MB f32"),
    ("Llama-2-7B", 6_738_415_616, 13_476_831_232, "~13.5 GB bf16"),
    ("GPT-3", 175_000_000_000, 350_000_000_000, "~350 GB bf16"),
];

/// Builds the report of a model from its facts; the same as
/// [`Report::from_facts`].
pub fn inspect<'m>(facts: &'m ModelFacts, options: &InspectOptions) -> Report<'m> {
    Report::from_facts(facts, options)
}

impl<'m> Report<'m> {
    /// The report of an opened model, from its headers: nothing of the
    /// tensor data is read. When the model's folder holds a Hugging Face
    /// `config.json`, its main sizes are part of the report (a config that
    /// cannot be read is a warning).
    pub fn from_model(model: &'m Model, options: &InspectOptions) -> Report<'m> {
        let files: Vec<FileFacts> = model
            .files()
            .iter()
            .map(|f| FileFacts {
                path: f.path.display().to_string(),
                file_bytes: f.file_len,
                header_bytes: f.header_bytes,
            })
            .collect();
        let metadata = model.metadata();
        // The layer table reads facts; only a model that stores an
        // architecture pays for them.
        let layers = metadata.architecture.as_ref().map(|a| {
            let facts: Vec<TensorFacts> = model
                .entries()
                .iter()
                .map(|e| TensorFacts {
                    meta: e.meta.clone(),
                    file: e.file,
                    offset: e.offset().unwrap_or(0),
                    bytes: e.stored_len(),
                })
                .collect();
            table(a, &facts)
        });
        let mut report = Report::build(
            Source::Model(model),
            model.path().display().to_string(),
            model.kind().name(),
            files,
            &metadata.user,
            layers,
            options,
        );
        // What the loader noticed while opening (an index whose total_size
        // disagrees with its shards, ...): shown, not fatal.
        report
            .warnings
            .extend(model.warnings().iter().map(ToString::to_string));
        // The size formula is the safetensors layout: a folder of PyTorch
        // shards (storages inside zip files) does not follow it.
        if !model
            .entries()
            .iter()
            .all(|e| matches!(e.location, Location::File { .. }))
        {
            report.size_formula = None;
        }
        report.gguf = GgufReport::from_model(model);
        // A GGUF file is as large as it is for its ggml types, not for the
        // f32 its quantized tensors decode to.
        if let Some(main) = report.gguf.as_ref().and_then(|g| g.types.first()) {
            let size = format!(
                "{} {}",
                crate::units::bytes(report.file_bytes),
                main.ggml_type
            );
            if let Some(l) = report.landmarks.iter_mut().find(|l| l.this_model) {
                l.size = size;
            }
        }
        let folder = model
            .files()
            .first()
            .and_then(|f| f.path.parent())
            .or_else(|| model.path().parent());
        if let Some(folder) = folder {
            match HfConfig::read_folder(folder) {
                Ok(config) => report.config = config,
                Err(warning) => report.warnings.push(warning),
            }
        }
        report
    }

    /// The report of a model described by facts the caller gathered.
    pub fn from_facts(facts: &'m ModelFacts, options: &InspectOptions) -> Report<'m> {
        let layers = facts
            .architecture
            .as_ref()
            .map(|a| table(a, &facts.tensors));
        Report::build(
            Source::Facts(facts),
            facts.path.clone(),
            &facts.kind,
            facts.files.clone(),
            &facts.metadata,
            layers,
            options,
        )
    }

    /// Sets the path the report names the model by (the binary shows the
    /// path as the user typed it).
    pub fn with_path(mut self, path: impl Into<String>) -> Report<'m> {
        let path = path.into();
        for l in &mut self.landmarks {
            if l.this_model {
                l.name.clone_from(&path);
            }
        }
        self.path = path;
        self
    }

    /// Adds warnings about the model (an index whose `total_size`
    /// disagrees with its shards, ...), shown first in the human view.
    pub fn with_warnings(mut self, warnings: impl IntoIterator<Item = String>) -> Report<'m> {
        self.warnings.extend(warnings);
        self
    }

    /// The module tree, made now, down to the depth the JSON report shows
    /// (all levels unless a depth was asked for).
    pub fn tree(&self) -> Vec<TreeNode> {
        let depth = self.tree_rows.depth.unwrap_or(usize::MAX);
        self.tree_rows.tree.nodes(depth)
    }

    pub(crate) fn tree_view(&self) -> &Tree<'m> {
        &self.tree_rows.tree
    }

    fn build(
        src: Source<'m>,
        path: String,
        kind: &str,
        file_facts: Vec<FileFacts>,
        metadata: &'m BTreeMap<String, String>,
        layers: Option<LayerTable>,
        options: &InspectOptions,
    ) -> Report<'m> {
        let mut dtypes: BTreeMap<String, DtypeTotals> = BTreeMap::new();
        let mut by_dtype: BTreeMap<Dtype, u64> = BTreeMap::new();
        let mut files: Vec<FileSummary> = file_facts
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
            tensors: BufferList { src, len: 0 },
        };
        let (mut parameter_count, mut data_bytes) = (0u64, 0u64);
        for i in 0..src.len() {
            let meta = src.meta(i);
            let bytes = src.bytes(i);
            let n = element_count(meta);
            parameter_count = parameter_count.saturating_add(n);
            data_bytes = data_bytes.saturating_add(bytes);
            let d = match dtypes.get_mut(meta.dtype.name()) {
                Some(d) => d,
                None => dtypes.entry(meta.dtype.name().to_owned()).or_default(),
            };
            d.tensor_count += 1;
            d.parameter_count = d.parameter_count.saturating_add(n);
            d.bytes = d.bytes.saturating_add(bytes);
            let e = by_dtype.entry(meta.dtype).or_default();
            *e = e.saturating_add(n);
            if let Some(f) = files.get_mut(src.file(i)) {
                f.data_bytes = f.data_bytes.saturating_add(bytes);
                f.tensor_count += 1;
            }
            if buffer_kind(meta).is_some() {
                buffers.tensor_count += 1;
                buffers.tensors.len += 1;
                buffers.element_count = buffers.element_count.saturating_add(n);
                buffers.bytes = buffers.bytes.saturating_add(bytes);
            }
        }
        let file_bytes = file_facts
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(f.file_bytes));
        let header_bytes = file_facts
            .iter()
            .fold(0u64, |acc, f| acc.saturating_add(f.header_bytes));
        let per = |bytes: u64| (parameter_count > 0).then(|| bytes as f64 / parameter_count as f64);

        let size_formula = (kind == "safetensors" || kind == "sharded").then(|| {
            let length_bytes = 8u64.saturating_mul(file_facts.len() as u64);
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

        let quantization = recognise(src);
        // The precisions table is about parameters: packed weights count
        // as the parameters they hold.
        let model_parameters = quantization
            .as_ref()
            .map_or(parameter_count, |q| q.parameters);
        let sizes_at = [("f32", 8u64), ("f16/bf16", 4), ("int8", 2), ("4-bit", 1)]
            .into_iter()
            .map(|(precision, half_bytes)| SizeAt {
                precision: precision.to_owned(),
                bytes_per_parameter: half_bytes as f64 / 2.0,
                bytes: model_parameters.saturating_mul(half_bytes).div_ceil(2),
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
            .position(|l| l.parameter_count > model_parameters)
            .unwrap_or(landmarks.len());
        landmarks.insert(
            at,
            Landmark {
                name: path.clone(),
                parameter_count: model_parameters,
                bytes: file_bytes,
                size: format!("{} {main_dtype}", crate::units::bytes(file_bytes))
                    .trim_end()
                    .to_owned(),
                this_model: true,
            },
        );

        let tree = Tree::new(src, parameter_count);
        let height = tree.height();
        let depth = options.depth.unwrap_or_else(|| {
            (1..=height)
                .take_while(|&d| tree.rows_to(d, TREE_ROW_BUDGET) <= TREE_ROW_BUDGET)
                .last()
                .unwrap_or(1)
        });

        Report {
            path,
            kind: kind.to_owned(),
            warnings: Vec::new(),
            tensor_count: src.len() as u64,
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
            quantization,
            config: None,
            metadata,
            tree_rows: TreeField {
                tree,
                depth: options.depth,
            },
            tensors: Tensors {
                src,
                header_bytes: file_facts.iter().map(|f| f.header_bytes).collect(),
                json: kind == "json",
            },
            layers,
            gguf: None,
            view: View {
                depth,
                height,
                tensors: options.tensors,
                tensor_limit: options.tensor_limit,
                columns: options.columns.max(80),
            },
        }
    }
}
