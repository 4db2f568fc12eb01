//! Writing models: conversion between safetensors, JSON model files and
//! sharded checkpoints, with dtype casts ([`modeltool_format::cast`]),
//! checksums, and the rules of [`crate::write::Outputs`]: every output is
//! checked against the inputs and what is on disk before any work, written
//! to a temporary file (or folder) beside the target and put in place only
//! when complete, so a failed conversion leaves nothing behind and an
//! existing output is never half-replaced.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use modeltool_format::cast::{is_cast_target, is_castable};
use modeltool_format::gguf::{GgmlType, GgufWriter, Value};
use modeltool_format::{
    Checksum, Dtype, HeaderPlan, JsonWriter, ModelMetadata, TensorMeta, keys, sha256_hex,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use modeltool_format::cast::CastStats;

use crate::shards::{INDEX_NAME, plan_shards, shard_name};
use crate::write::{OutputId, Outputs, SINGLE_SHARD_NAME, Writeback};
pub use crate::write::{check_output, write_atomically};
use crate::{CHUNK, Entry, LoadError, Model, ModelKind, Result};

/// Chunks smaller than this are cast and hashed on one core: handing one
/// to another core costs more than the work.
const JOIN_MIN: usize = 256 << 10;

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputKind {
    /// One `.safetensors` file.
    #[default]
    Safetensors,
    /// A JSON model file.
    Json,
    /// A folder of shards plus `model.safetensors.index.json`.
    Sharded {
        /// The largest shard, in bytes of tensor data.
        max_shard_size: u64,
    },
    /// One GGUF file (see [`convert`] for what it holds).
    Gguf {
        /// Quantize float tensors of two or more dimensions whose rows are
        /// whole blocks to this type ([`GgmlType::Q8_0`] is the one
        /// supported); the others keep their (cast) dtype.
        quantize: Option<GgmlType>,
    },
}

impl OutputKind {
    /// What `convert` writes, for messages about an output it cannot tell.
    pub const ACCEPTED: &'static str = "modeltool writes a .safetensors or .json file, a .gguf \
        file, or a folder of shards (give --max-shard-size, end the name in /, or name an \
        existing checkpoint folder)";

    /// The kind of output `output` names, from its spelling and what is
    /// there: `.safetensors`, `.json` and `.gguf` name files; a folder of
    /// shards is written only when asked for (`max_shard_size` given, a name
    /// ending in `/`) or into an existing checkpoint folder. Anything else
    /// (`out.pt`, `model.safetensor`, `-`, a folder of other files) is
    /// [`LoadError::OutputKind`]: never guessed into a folder.
    ///
    /// ```
    /// use std::path::Path;
    /// use modeltool_loader::save::OutputKind;
    ///
    /// assert_eq!(OutputKind::for_path(Path::new("m.json"), None)?, OutputKind::Json);
    /// assert_eq!(
    ///     OutputKind::for_path(Path::new("shards/"), Some("2GB"))?,
    ///     OutputKind::Sharded { max_shard_size: 2_000_000_000 }
    /// );
    /// assert!(OutputKind::for_path(Path::new("model.pt"), None).is_err());
    /// # Ok::<(), modeltool_loader::LoadError>(())
    /// ```
    pub fn for_path(output: &Path, max_shard_size: Option<&str>) -> Result<OutputKind> {
        let refuse = |reason: String| LoadError::OutputKind {
            path: output.to_owned(),
            reason,
        };
        let text = output.as_os_str().to_string_lossy();
        if text == "-" {
            return Err(refuse("cannot write a model to standard output".into()));
        }
        let ext = output
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let file = match ext.as_deref() {
            Some("json") => Some(OutputKind::Json),
            Some("safetensors") => Some(OutputKind::Safetensors),
            Some("gguf") => Some(OutputKind::Gguf { quantize: None }),
            _ => None,
        };
        let folder = || -> Result<OutputKind> {
            let size = max_shard_size.unwrap_or("5GB");
            let max_shard_size = crate::size::parse_size(size).map_err(|e| LoadError::Usage {
                message: format!("--max-shard-size {e}"),
            })?;
            Ok(OutputKind::Sharded { max_shard_size })
        };
        let slash = text.ends_with('/');
        match (file, max_shard_size) {
            (Some(_), Some(_)) if !slash => Err(LoadError::Usage {
                message: format!(
                    "{}: --max-shard-size needs a folder as output, not a single file",
                    crate::error::shown(output)
                ),
            }),
            (Some(kind), None) if !slash => Ok(kind),
            _ if slash || max_shard_size.is_some() => folder(),
            _ => {
                let is_dir = std::fs::symlink_metadata(output).is_ok_and(|m| m.is_dir());
                let why = match (is_dir, ext.as_deref()) {
                    (true, _) => match crate::write::checkpoint_folder(output) {
                        Ok(_) => return folder(),
                        Err(why) => format!("is a folder that is not a checkpoint: it {why}"),
                    },
                    (false, Some(e)) => format!(
                        "`.{}` is not a kind of file modeltool writes",
                        modeltool_format::text::Escaped(e)
                    ),
                    (false, None) => "the name says neither a file kind nor a folder".to_owned(),
                };
                Err(refuse(why))
            }
        }
    }
}

/// Options for [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// The output's kind.
    pub kind: OutputKind,
    /// Cast F16/BF16/F32/F64 tensors to this dtype (F32, F16 or BF16),
    /// rounding to nearest, ties to even. Other dtypes pass through.
    pub dtype: Option<Dtype>,
    /// Replace an existing output (only one modeltool could have written:
    /// see [`Outputs`]).
    pub force: bool,
    /// Write fresh checksums instead of refusing an input whose stored
    /// checksums or header checksum do not match (or are partly missing):
    /// a deliberate edit. Invalid values are refused all the same.
    pub rehash: bool,
    /// Write values too large for the cast's target as infinities instead
    /// of refusing the conversion ([`LoadError::CastOverflow`]).
    pub allow_overflow: bool,
    /// Write quantized GGUF tensors as their raw blocks (U8 tensors of
    /// their stored length) instead of decoding them, with what a GGUF
    /// output needs to give them back (see [`KEEP_PREFIX`]): the only way to
    /// carry types with no decoder. Safetensors outputs only.
    pub keep_quantized: bool,
}

/// Prefix of the metadata `keep_quantized` writes: `<prefix>type.<name>`
/// (the ggml type's name), `<prefix>shape.<name>` (the row-major shape as
/// JSON), and, when the input is a GGUF file, `<prefix>header` (its header
/// and padding, in hex) and `<prefix>file_len`, with which a GGUF output
/// holding the same tensors is written byte for byte as the original.
pub const KEEP_PREFIX: &str = "modeltool.gguf.";

/// What a conversion did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ConvertReport {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub data_bytes: u64,
    /// Input tensors whose stored checksum was checked (and matched).
    pub checked: usize,
    /// Input tensors that had no stored checksum.
    pub unchecked: usize,
    /// Tensors that were cast.
    pub cast_tensors: usize,
    /// Values that were cast.
    pub cast_values: u64,
    /// Cast values the target dtype could not represent exactly (overflowed
    /// values included).
    pub inexact_values: u64,
    /// Cast values too large for the target, written as infinities
    /// (only with [`ConvertOptions::allow_overflow`]).
    pub overflow_values: u64,
    /// With [`ConvertOptions::rehash`]: the checksums that changed.
    pub rehashed: Vec<Rehashed>,
}

/// A tensor whose stored checksum a rehash replaced or added.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rehashed {
    /// The tensor.
    pub name: String,
    /// The checksum the input stored (`None`: it had none).
    pub old: Option<String>,
    /// The checksum written.
    pub new: String,
}

/// Converts `model` into `output`. Input checksums are checked as the bytes
/// go by; a mismatch stops the conversion with
/// [`LoadError::ChecksumMismatch`] and nothing is written. An input header
/// that does not match its `modeltool.header_sha256` is refused before
/// anything is written ([`LoadError::HeaderDamaged`]); with
/// [`ConvertOptions::rehash`], both are replaced by fresh checksums instead.
/// A tensor holding invalid values is refused ([`LoadError::InvalidValue`]),
/// and so is a cast that overflows unless allowed
/// ([`LoadError::CastOverflow`]). Every output tensor carries its checksum,
/// and every safetensors output its header checksum.
///
/// A GGUF output ([`OutputKind::Gguf`]) holds F32, F16, BF16, F64 and
/// I8..I64 tensors (other dtypes are refused), Q8_0 ones with
/// `quantize`, bit for bit what `gguf.quants.quantize` writes; the user
/// metadata as string values under their keys (`gguf.` ones included:
/// their text must not stand in for llama.cpp's typed values), the
/// architecture under `modeltool.architecture` and each tensor's checksum
/// under `modeltool.sha256.<name>` (of the bytes the loader returns: the
/// decoded f32 values of a quantized tensor).
pub fn convert(
    model: &Model,
    output: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    if let Some(d) = options.dtype {
        if !is_cast_target(d) {
            return Err(LoadError::Refused {
                path: output.to_owned(),
                reason: format!("cannot cast to {d}: choose f32, f16 or bf16"),
            });
        }
    }
    if options.keep_quantized && matches!(options.kind, OutputKind::Json | OutputKind::Gguf { .. })
    {
        return Err(LoadError::Refused {
            path: output.to_owned(),
            reason: "--keep-quantized writes raw GGUF blocks into safetensors: name a \
                     .safetensors file or a folder of shards"
                .into(),
        });
    }
    if !options.keep_quantized {
        let undecodable = model.entries().iter().find_map(|e| {
            e.stored_type()
                .filter(|&t| !modeltool_format::gguf::can_dequantize(t))
                .map(|t| (e, t))
        });
        if let Some((e, t)) = undecodable {
            return Err(LoadError::Refused {
                path: model.files()[e.file].path.clone(),
                reason: format!(
                    "tensor `{}` is {t}, which modeltool cannot decode (nor can the gguf \
                     package for some types); --keep-quantized writes its raw blocks to \
                     safetensors instead",
                    modeltool_format::text::Escaped(&e.meta.name)
                ),
            });
        }
    }
    let mut outputs = Outputs::new();
    outputs.model(model)?;
    let id = match options.kind {
        OutputKind::Sharded { .. } => outputs.folder(output, options.force)?,
        _ => outputs.file(output, options.force)?,
    };
    if !options.rehash {
        // Damage, and a partial checksum set (which may hide an edited
        // tensor), are refused before anything is written.
        model.check_headers()?;
        model.check_checksum_set()?;
    }
    let mut report = ConvertReport {
        tensors: model.entries().len(),
        ..ConvertReport::default()
    };
    let mut job = Job::new(model, options, &mut report, progress);
    match options.kind {
        OutputKind::Json => {
            outputs.write(id, |out| job.write_json(*out.get_ref(), output).map(drop))?;
            job.report.files.push(output.to_owned());
        }
        OutputKind::Safetensors => {
            let all: Vec<&Entry> = model.entries().iter().collect();
            let file = outputs.create_file(id)?;
            job.write_safetensors(file, &all, output)?;
            job.report.files.push(output.to_owned());
        }
        OutputKind::Gguf { quantize } => {
            let file = outputs.create_file(id)?;
            job.write_gguf(file, output, quantize)?;
            job.report.files.push(output.to_owned());
        }
        OutputKind::Sharded { max_shard_size } => {
            let names = job.write_shards(&mut outputs, id, output, max_shard_size)?;
            job.report
                .files
                .extend(names.iter().map(|n| output.join(n)));
        }
    }
    job.finish(output)?;
    outputs.commit()?;
    Ok(report)
}

/// What [`rehash`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RehashReport {
    /// The model rewritten.
    pub path: PathBuf,
    /// The files rewritten in place.
    pub files: Vec<PathBuf>,
    /// Tensors whose stored checksum was replaced or added.
    pub changed: Vec<Rehashed>,
    /// Tensors whose stored checksum was right and stays.
    pub unchanged: usize,
    /// Stored checksums of tensors that do not exist, dropped.
    pub dropped: Vec<String>,
    /// Each safetensors file's header checksum, before and after.
    pub headers: Vec<HeaderRehash>,
}

/// A file's `modeltool.header_sha256` before and after [`rehash`].
#[derive(Debug, Clone, Serialize)]
pub struct HeaderRehash {
    /// The file.
    pub file: PathBuf,
    /// What the header checksum said of the old header: `absent`,
    /// `matched` or `damaged`.
    pub before: &'static str,
    /// The new header checksum.
    pub after: String,
}

/// Rewrites a model in place with fresh checksums (`modeltool rehash`):
/// every tensor's, and every safetensors file's header checksum, for a
/// deliberate edit. The tensors, dtypes, shapes and metadata stay as they
/// are; invalid values are refused. Every file is rewritten through an
/// [`Outputs`] set: atomically, keeping its permission bits, all files of a
/// sharded checkpoint or none.
pub fn rehash(model: &Model, progress: &(dyn Fn(u64) + Sync)) -> Result<RehashReport> {
    let refused = match model.kind() {
        // Rewriting in place would put a safetensors file under its name.
        ModelKind::Gguf => Some(
            "rehash rewrites safetensors and JSON model files in place; `modeltool \
             convert` to a new .gguf writes one with checksums",
        ),
        ModelKind::Pytorch => Some(
            "a PyTorch checkpoint stores no checksums to refresh; \
             `modeltool convert` writes it as safetensors with checksums",
        ),
        _ => None,
    };
    if let Some(reason) = refused {
        return Err(LoadError::Refused {
            path: model.path().to_owned(),
            reason: reason.into(),
        });
    }
    let mut outputs = Outputs::new();
    outputs.model(model)?;
    let ids: Vec<OutputId> = model
        .files()
        .iter()
        .map(|f| outputs.in_place(&f.path))
        .collect::<Result<_>>()?;
    let options = ConvertOptions {
        kind: OutputKind::Safetensors,
        rehash: true,
        ..ConvertOptions::default()
    };
    let mut report = ConvertReport::default();
    let mut job = Job::new(model, &options, &mut report, progress);
    let mut headers = Vec::new();
    for (i, (f, &id)) in model.files().iter().zip(&ids).enumerate() {
        let members: Vec<&Entry> = model.entries().iter().filter(|e| e.file == i).collect();
        if matches!(model.kind(), ModelKind::Json) {
            outputs.write(id, |out| job.write_json(*out.get_ref(), &f.path).map(drop))?;
            continue;
        }
        let file = outputs.create_file(id)?;
        let after = job.write_safetensors(file, &members, &f.path)?;
        headers.push(HeaderRehash {
            file: f.path.clone(),
            before: match f.header_sha256 {
                modeltool_format::HeaderSha256::Absent => "absent",
                modeltool_format::HeaderSha256::Matches => "matched",
                modeltool_format::HeaderSha256::Damaged(_) => "damaged",
            },
            after,
        });
    }
    job.finish(model.path())?;
    outputs.commit()?;
    let rehashed = std::mem::take(&mut report.rehashed);
    Ok(RehashReport {
        path: model.path().to_owned(),
        files: model.files().iter().map(|f| f.path.clone()).collect(),
        unchanged: model.entries().len() - rehashed.len(),
        changed: rehashed,
        dropped: model.orphan_checksums().to_vec(),
        headers,
    })
}

struct Job<'a> {
    model: &'a Model,
    dtype: Option<Dtype>,
    rehash: bool,
    allow_overflow: bool,
    keep_quantized: bool,
    /// Tensors whose cast overflowed, and the counts.
    overflowed: Vec<String>,
    overflow: CastStats,
    report: &'a mut ConvertReport,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<'a> Job<'a> {
    fn new(
        model: &'a Model,
        options: &ConvertOptions,
        report: &'a mut ConvertReport,
        progress: &'a (dyn Fn(u64) + Sync),
    ) -> Job<'a> {
        Job {
            model,
            dtype: options.dtype,
            rehash: options.rehash,
            allow_overflow: options.allow_overflow,
            keep_quantized: options.keep_quantized,
            overflowed: Vec::new(),
            overflow: CastStats::default(),
            report,
            progress,
        }
    }

    fn target(&self, from: Dtype) -> Option<Dtype> {
        self.dtype.filter(|&to| to != from && is_castable(from))
    }

    /// Whether `e` is written as its raw GGUF blocks (`--keep-quantized`).
    fn kept(&self, e: &Entry) -> bool {
        self.keep_quantized && e.stored_type().is_some()
    }

    /// The dtype `e` is cast to, if any (never for kept blocks).
    fn target_of(&self, e: &Entry) -> Option<Dtype> {
        if self.kept(e) {
            return None;
        }
        self.target(e.meta.dtype)
    }

    /// Whether [`Job::out_meta`] differs from the input's description.
    fn out_changes(&self, e: &Entry) -> bool {
        self.kept(e) || self.target(e.meta.dtype).is_some()
    }

    fn out_meta(&self, e: &Entry) -> TensorMeta {
        let mut meta = e.meta.clone();
        if self.kept(e) {
            meta.dtype = Dtype::U8;
            meta.shape = vec![e.stored_len() as usize];
            return meta;
        }
        if let Some(to) = self.target(meta.dtype) {
            meta.dtype = to;
        }
        meta
    }

    /// Refuses the conversion when casts overflowed and that is not allowed.
    fn finish(&mut self, output: &Path) -> Result<()> {
        if self.overflow.overflowed > 0 && !self.allow_overflow {
            return Err(LoadError::CastOverflow {
                path: output.to_owned(),
                dtype: self.dtype.expect("only a cast overflows"),
                tensors: std::mem::take(&mut self.overflowed),
                values: self.overflow.overflowed,
                largest: self.overflow.largest_overflow,
            });
        }
        self.report.overflow_values = self.overflow.overflowed;
        Ok(())
    }

    fn check_input(&mut self, e: &Entry, actual: &str) -> Result<()> {
        match &e.stored_sha256 {
            Some(expected) if expected == actual => {
                self.report.checked += 1;
                Ok(())
            }
            Some(expected) if !self.rehash => {
                // Bytes that changed because the file was truncated or
                // rewritten while being read are that, not damage.
                self.model.files()[e.file].check_unchanged()?;
                Err(LoadError::ChecksumMismatch {
                    path: self.model.files()[e.file].path.clone(),
                    name: e.meta.name.clone(),
                    expected: expected.to_string(),
                    actual: actual.to_owned(),
                })
            }
            _ => {
                if e.stored_sha256.is_none() {
                    self.report.unchecked += 1;
                }
                Ok(())
            }
        }
    }

    /// [`Job::check_input`] of a digest: compared as bytes, written as
    /// digits only when it does not match (100k small tensors, 100k
    /// comparisons).
    fn check_input_sum(&mut self, e: &Entry, actual: Checksum) -> Result<()> {
        if e.stored_sha256 == Some(actual) {
            self.report.checked += 1;
            return Ok(());
        }
        self.check_input(e, actual.digits(&mut [0; 64]))
    }

    /// Notes a rehashed checksum: one the input did not store as written.
    fn note_rehash(&mut self, e: &Entry, new: &str, cast: bool) {
        if self.rehash && !cast && e.stored_sha256.is_none_or(|old| old != *new) {
            self.report.rehashed.push(Rehashed {
                name: e.meta.name.clone(),
                old: e.stored_sha256.map(|old| old.to_string()),
                new: new.to_owned(),
            });
        }
    }

    fn check_values(&self, e: &Entry, chunk: &[u8], offset: usize) -> Result<()> {
        match e.meta.dtype.first_invalid(chunk) {
            None => Ok(()),
            Some(mut value) => {
                value.index += offset;
                Err(LoadError::InvalidValue {
                    path: self.model.files()[e.file].path.clone(),
                    name: e.meta.name.clone(),
                    value,
                })
            }
        }
    }

    fn write_shards(
        &mut self,
        outputs: &mut Outputs,
        id: OutputId,
        output: &Path,
        max_shard_size: u64,
    ) -> Result<Vec<String>> {
        let tmp_dir = outputs.create_folder(id)?;
        let entries = self.model.entries();
        let sizes: Vec<u64> = entries
            .iter()
            .map(|e| self.out_meta(e).byte_len().map(|n| n as u64).unwrap_or(0))
            .collect();
        let plan = plan_shards(&sizes, max_shard_size);
        let n = plan.len();
        let mut weight_map = BTreeMap::new();
        let mut names = Vec::new();
        for (i, shard) in plan.iter().enumerate() {
            let name = if n == 1 {
                SINGLE_SHARD_NAME.to_owned()
            } else {
                shard_name(i, n)
            };
            // Errors name the shard as it will be called, not the
            // temporary folder it is written in.
            let shown_as = output.join(&name);
            let path = tmp_dir.join(&name);
            let file = File::create(&path).map_err(LoadError::io(&shown_as))?;
            let members: Vec<&Entry> = shard.iter().map(|&j| &entries[j]).collect();
            self.write_safetensors(&file, &members, &shown_as)?;
            for e in &members {
                weight_map.insert(e.meta.name.clone(), name.clone());
            }
            names.push(name);
        }
        if n > 1 {
            let index = serde_json::json!({
                "metadata": { "total_size": sizes.iter().sum::<u64>() },
                "weight_map": weight_map,
            });
            let path = tmp_dir.join(INDEX_NAME);
            let shown_as = output.join(INDEX_NAME);
            let mut text = serde_json::to_vec_pretty(&index).expect("an index serializes");
            text.push(b'\n');
            let mut file = File::create(&path).map_err(LoadError::io(&shown_as))?;
            file.write_all(&text)
                .and_then(|()| file.sync_all())
                .map_err(LoadError::io(&shown_as))?;
            names.push(INDEX_NAME.to_owned());
        }
        Ok(names)
    }

    /// Streams the tensors into a safetensors file: a header with
    /// placeholder checksums and header checksum first (both are
    /// fixed-length, so the header length is known), the data chunk by
    /// chunk, then the real header. Returns the header checksum written.
    ///
    /// The header is written straight to the file ([`HeaderPlan`]): no map
    /// of checksum keys and no copy of the header is held, so that a model
    /// of 100k small tensors costs little more than its names and shapes.
    fn write_safetensors(
        &mut self,
        file: &File,
        entries: &[&Entry],
        shown_as: &Path,
    ) -> Result<String> {
        // The input's names and shapes, borrowed: only a cast or kept
        // tensor's description is made anew.
        let changed: Vec<TensorMeta> = entries
            .iter()
            .filter(|e| self.out_changes(e))
            .map(|e| self.out_meta(e))
            .collect();
        let mut made = changed.iter();
        let metas: Vec<&TensorMeta> = entries
            .iter()
            .map(|e| match self.out_changes(e) {
                true => made.next().expect("one made for each changed"),
                false => &e.meta,
            })
            .collect();
        let mut meta = ModelMetadata {
            checksums: BTreeMap::new(),
            ..self.model.metadata().clone()
        };
        self.keep_metadata(entries, &mut meta)?;
        let pairs = meta.to_safetensors();
        drop(meta);
        let plan = HeaderPlan::new(metas, &pairs).map_err(LoadError::format(shown_as))?;
        let mut sums = vec![[0u8; 32]; entries.len()];
        // The header's length does not depend on the checksums: the data
        // goes after it now, and the header, once, when they are known.
        (&mut &*file)
            .seek(SeekFrom::Start(plan.header_len() as u64))
            .map_err(LoadError::io(shown_as))?;
        let mut out =
            BufWriter::with_capacity(1 << 20, Writeback::new(file, plan.header_len() as u64));
        let model = self.model;
        for &i in plan.order() {
            let e = entries[i];
            let to = self.target_of(e);
            let kept = self.kept(e);
            // A model that parsed its values (a JSON file) hashed them as
            // it read them; a file on disk is hashed as it streams by.
            let known = model.known_sha256(e);
            let mut in_hash = known.is_none().then(Sha256::new);
            // Without a cast the output bytes are the input bytes: one hash serves both.
            let mut out_hash = to.is_some().then(Sha256::new);
            let mut buf = Vec::new();
            let mut cast = CastStats::default();
            let mut offset = 0;
            let this = &*self;
            let mut step = |chunk: &[u8]| -> Result<()> {
                this.check_values(e, chunk, offset)?;
                offset += chunk.len();
                // Hashing the input and casting it are independent: do both
                // at once when both are asked for and the chunk is worth
                // another core (handing a small one over costs more).
                let mut cast_chunk = || {
                    if let Some(to) = to {
                        buf.clear();
                        cast.cast(e.meta.dtype, to, chunk, &mut buf);
                    }
                };
                let mut hash_chunk = || {
                    if let Some(h) = in_hash.as_mut() {
                        h.update(chunk);
                    }
                };
                if to.is_some() && known.is_none() && chunk.len() >= JOIN_MIN {
                    rayon::join(hash_chunk, cast_chunk);
                } else {
                    hash_chunk();
                    cast_chunk();
                }
                let bytes = if to.is_some() { &buf[..] } else { chunk };
                if let Some(h) = out_hash.as_mut() {
                    h.update(bytes);
                }
                out.write_all(bytes).map_err(LoadError::io(shown_as))?;
                (this.progress)(chunk.len() as u64);
                Ok(())
            };
            if kept {
                self.model.for_each_stored_chunk(e, CHUNK, &mut step)?;
            } else {
                self.model.for_each_chunk(e, CHUNK, &mut step)?;
            }
            let in_sum: [u8; 32] = match (known, in_hash) {
                (Some(sum), _) => sum,
                (None, Some(h)) => h.finalize().into(),
                (None, None) => unreachable!("an input hash is known or computed"),
            };
            // The digits on the stack: 100k small tensors, 100k strings.
            let mut digits = [0u8; 64];
            // A kept tensor's stored checksum covers its decoded values.
            if kept && e.stored_sha256.is_some() {
                let decoded = self.model.sha256(e)?;
                self.check_input(e, &decoded)?;
            } else {
                self.check_input_sum(e, Checksum(in_sum))?;
            }
            let cast_done = out_hash.is_some();
            let out_sum: [u8; 32] = out_hash.map_or(in_sum, |h| h.finalize().into());
            if self.rehash {
                self.note_rehash(
                    e,
                    modeltool_format::sha256_digits(&out_sum, &mut digits),
                    cast_done,
                );
            }
            self.count_cast(e, to, &cast);
            sums[i] = out_sum;
            let (a, b) = plan.offsets()[i];
            self.report.data_bytes += b - a;
        }
        let mut file = out
            .into_inner()
            .map_err(|e| LoadError::Io {
                path: shown_as.to_owned(),
                source: e.into_error(),
            })?
            .file;
        file.seek(SeekFrom::Start(0))
            .map_err(LoadError::io(shown_as))?;
        let mut head = BufWriter::with_capacity(1 << 20, file);
        let header_sha256 = plan
            .write(&sums, &mut head)
            .map_err(LoadError::format(shown_as))?;
        let file = head.into_inner().map_err(|e| LoadError::Io {
            path: shown_as.to_owned(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(LoadError::io(shown_as))?;
        Ok(header_sha256)
    }

    /// Writes the JSON model file to `out`; `output` is the name errors
    /// writing it give (a full disk is the output's problem, not the input's).
    fn write_json<W: Write>(&mut self, out: W, output: &Path) -> Result<W> {
        let path = self.model.path().to_owned();
        let meta = self.model.metadata();
        // The writer's I/O errors concern the output; its other errors
        // (a value JSON cannot hold) the input.
        let fail = |e: modeltool_format::FormatError| match e {
            modeltool_format::FormatError::Io(source) => LoadError::Io {
                path: output.to_owned(),
                source,
            },
            other => LoadError::Format {
                path: path.clone(),
                source: other,
            },
        };
        let mut writer = JsonWriter::new(
            BufWriter::with_capacity(1 << 20, out),
            &meta.user,
            meta.architecture.as_ref(),
        )
        .map_err(fail)?;
        for e in self.model.entries() {
            let bytes = self.model.bytes(e)?;
            self.check_values(e, &bytes, 0)?;
            let in_sum = match self.model.kind() {
                // Hashed as it was read.
                ModelKind::Json => self.model.sha256(e)?,
                _ => sha256_hex(&bytes),
            };
            self.check_input(e, &in_sum)?;
            let out_meta = self.out_meta(e);
            let (data, sum) = self.cast_whole(e, bytes, in_sum);
            writer.write_tensor(&out_meta, &data, &sum).map_err(fail)?;
            self.report.data_bytes += data.len() as u64;
            (self.progress)(e.byte_len());
        }
        let buffered = writer.finish().map_err(fail)?;
        buffered.into_inner().map_err(|e| LoadError::Io {
            path: output.to_owned(),
            source: e.into_error(),
        })
    }

    /// Writes the model as a GGUF file: a header with placeholder
    /// checksums (fixed-length strings), the tensors one at a time, then the
    /// real header over the first.
    fn write_gguf(
        &mut self,
        file: &File,
        shown_as: &Path,
        quantize: Option<GgmlType>,
    ) -> Result<()> {
        if let Some(q) = quantize.filter(|&q| q != GgmlType::Q8_0) {
            return Err(LoadError::Refused {
                path: shown_as.to_owned(),
                reason: format!("cannot quantize to {q}: modeltool quantizes to q8_0"),
            });
        }
        if quantize.is_none() && self.dtype.is_none() && self.write_gguf_verbatim(file, shown_as)? {
            return Ok(());
        }
        let entries = self.model.entries();
        let mut types = Vec::with_capacity(entries.len());
        let mut shapes: Vec<Vec<u64>> = Vec::with_capacity(entries.len());
        for e in entries {
            let meta = self.out_meta(e);
            if let Some(kept) = self.restored(e, shown_as)? {
                types.push(kept.0);
                shapes.push(kept.1);
                continue;
            }
            shapes.push(meta.shape.iter().map(|&d| d as u64).collect());
            let float = matches!(
                meta.dtype,
                Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64
            );
            let blocks = quantize.filter(|q| {
                float
                    && meta.shape.len() >= 2
                    && meta
                        .shape
                        .last()
                        .is_some_and(|&n| n > 0 && n as u64 % u64::from(q.block_size()) == 0)
                    && !meta.shape.contains(&0)
            });
            let t = match blocks.or_else(|| ggml_plain(meta.dtype)) {
                Some(t) => t,
                None => {
                    return Err(LoadError::Refused {
                        path: shown_as.to_owned(),
                        reason: format!(
                            "tensor `{}` is {}, which GGUF does not store (it holds F32, F16, \
                             BF16, F64 and I8..I64 tensors)",
                            modeltool_format::text::Escaped(&e.meta.name),
                            meta.dtype
                        ),
                    });
                }
            };
            types.push(t);
        }
        let placeholder: Vec<String> = vec!["0".repeat(64); entries.len()];
        let writer = self.gguf_writer(&types, &shapes, &placeholder, shown_as)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut stream = writer.stream(&mut out).map_err(LoadError::io(shown_as))?;
        let mut sums = Vec::with_capacity(entries.len());
        for (e, &t) in entries.iter().zip(&types) {
            let bytes = self.model.bytes(e)?;
            self.check_values(e, &bytes, 0)?;
            let in_sum = match self.model.kind() {
                ModelKind::Json => self.model.sha256(e)?,
                _ => sha256_hex(&bytes),
            };
            self.check_input(e, &in_sum)?;
            let (data, sum) = if e.meta.dtype == Dtype::U8 && t.plain_dtype().is_none() {
                // Raw blocks kept by --keep-quantized, given back as they were.
                let sum = if modeltool_format::gguf::can_dequantize(t) {
                    let values = modeltool_format::gguf::dequantize_to_vec(t, &bytes)
                        .map_err(LoadError::gguf(shown_as))?;
                    sha256_hex(bytemuck::cast_slice(&values))
                } else {
                    in_sum.clone()
                };
                (bytes, sum)
            } else if t == GgmlType::Q8_0 {
                let values = crate::to_f32(bytes, e.meta.dtype).expect("a float dtype");
                let q = modeltool_format::gguf::quantize(t, &values)
                    .map_err(LoadError::gguf(shown_as))?;
                let back = modeltool_format::gguf::dequantize_to_vec(t, &q)
                    .map_err(LoadError::gguf(shown_as))?;
                let sum = sha256_hex(bytemuck::cast_slice(&back));
                (std::borrow::Cow::Owned(q), sum)
            } else {
                self.cast_whole(e, bytes, in_sum.clone())
            };
            stream
                .write_tensor(&data)
                .map_err(LoadError::io(shown_as))?;
            self.report.data_bytes += data.len() as u64;
            (self.progress)(e.byte_len());
            sums.push(sum);
        }
        stream.finish().map_err(LoadError::io(shown_as))?;
        let header = writer.header_bytes();
        let final_header = self
            .gguf_writer(&types, &shapes, &sums, shown_as)?
            .header_bytes();
        assert_eq!(
            final_header.len(),
            header.len(),
            "checksums have a fixed length"
        );
        let file = out.into_inner().map_err(|e| LoadError::Io {
            path: shown_as.to_owned(),
            source: e.into_error(),
        })?;
        let mut file = file;
        file.seek(SeekFrom::Start(0))
            .map_err(LoadError::io(shown_as))?;
        file.write_all(&final_header)
            .map_err(LoadError::io(shown_as))?;
        file.sync_all().map_err(LoadError::io(shown_as))?;
        Ok(())
    }

    /// The GGUF writer for the model's tensors as `types`, with `sums` as
    /// their checksums.
    fn gguf_writer(
        &self,
        types: &[GgmlType],
        shapes: &[Vec<u64>],
        sums: &[String],
        shown_as: &Path,
    ) -> Result<GgufWriter> {
        let fail = LoadError::gguf(shown_as);
        let mut w = GgufWriter::new();
        let meta = self.model.metadata();
        let add = |w: &mut GgufWriter, key: String, value: String| {
            w.add_metadata(key, Value::String(value))
        };
        let r = (|| {
            // Keys as they are: a `gguf.` key read from a GGUF holds text
            // (a vocabulary's summary, a number as digits) that must not
            // stand in for the typed value llama.cpp reads under the bare key.
            for (k, v) in &meta.user {
                if !k.starts_with(KEEP_PREFIX) {
                    add(&mut w, k.clone(), v.clone())?;
                }
            }
            if let Some(a) = &meta.architecture {
                add(&mut w, keys::ARCHITECTURE.to_owned(), a.to_string())?;
            }
            for (e, sum) in self.model.entries().iter().zip(sums) {
                add(
                    &mut w,
                    format!("{}{}", keys::SHA256_PREFIX, e.meta.name),
                    sum.clone(),
                )?;
            }
            for ((e, &t), shape) in self.model.entries().iter().zip(types).zip(shapes) {
                w.add_tensor_info(e.meta.name.clone(), shape, t)?;
            }
            Ok(())
        })();
        r.map_err(fail)?;
        Ok(w)
    }

    /// The ggml type and shape of a U8 tensor that `--keep-quantized`
    /// wrote from GGUF blocks (its `KEEP_PREFIX` keys), if it is one.
    fn restored(&self, e: &Entry, shown_as: &Path) -> Result<Option<(GgmlType, Vec<u64>)>> {
        let user = &self.model.metadata().user;
        let name = &e.meta.name;
        let Some(t) = user.get(&format!("{KEEP_PREFIX}type.{name}")) else {
            return Ok(None);
        };
        if e.meta.dtype != Dtype::U8 {
            return Ok(None);
        }
        let bad = |why: String| LoadError::Refused {
            path: shown_as.to_owned(),
            reason: format!(
                "tensor `{}` was kept as GGUF blocks, but {why}",
                modeltool_format::text::Escaped(name)
            ),
        };
        let t = GgmlType::from_name(t).ok_or_else(|| {
            bad(format!(
                "`{}` is not a ggml type",
                modeltool_format::text::Escaped(t)
            ))
        })?;
        let shape: Vec<u64> = user
            .get(&format!("{KEEP_PREFIX}shape.{name}"))
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| bad("its shape is missing or not a list of numbers".into()))?;
        let size = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| t.byte_size(n));
        if size != Some(e.byte_len()) {
            return Err(bad(format!(
                "its {} bytes are not {t} blocks of shape {shape:?}",
                e.byte_len()
            )));
        }
        Ok(Some((t, shape)))
    }

    /// Writes the GGUF header `--keep-quantized` kept, and every tensor's
    /// bytes where that header puts them, when the model holds exactly the
    /// tensors it describes: the original file, byte for byte. `false`
    /// (nothing written) when there is no such header or it does not fit.
    fn write_gguf_verbatim(&mut self, file: &File, shown_as: &Path) -> Result<bool> {
        let user = &self.model.metadata().user;
        let (Some(hex_header), Some(file_len)) = (
            user.get(&format!("{KEEP_PREFIX}header")),
            user.get(&format!("{KEEP_PREFIX}file_len"))
                .and_then(|n| n.parse::<u64>().ok()),
        ) else {
            return Ok(false);
        };
        let Ok(header_bytes) = hex::decode(hex_header) else {
            return Ok(false);
        };
        let Ok(modeltool_format::gguf::Parsed::Header(header)) =
            modeltool_format::gguf::parse(&header_bytes, file_len)
        else {
            return Ok(false);
        };
        if header.data_start != header_bytes.len() as u64
            || header.tensors.len() != self.model.entries().len()
        {
            return Ok(false);
        }
        let mut order = Vec::with_capacity(header.tensors.len());
        for (i, t) in header.tensors.iter().enumerate() {
            let Ok(e) = self.model.entry(&t.name) else {
                return Ok(false);
            };
            let fits = match t.ggml_type.plain_dtype() {
                Some(d) => e.meta.dtype == d,
                None => self
                    .restored(e, shown_as)?
                    .is_some_and(|(k, _)| k == t.ggml_type),
            };
            if !fits || e.byte_len() != t.size {
                return Ok(false);
            }
            order.push((header.tensor_range(i).expect("an index of the header"), e));
        }
        order.sort_by_key(|(r, _)| r.start);
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let io = LoadError::io(shown_as);
        let zeros = |out: &mut BufWriter<&File>, n: u64| -> std::io::Result<()> {
            std::io::copy(&mut std::io::repeat(0).take(n), out).map(drop)
        };
        out.write_all(&header_bytes)
            .map_err(LoadError::io(shown_as))?;
        let mut at = header.data_start;
        for (range, e) in order {
            let bytes = self.model.bytes(e)?;
            self.check_values(e, &bytes, 0)?;
            let in_sum = match self.model.kind() {
                ModelKind::Json => self.model.sha256(e)?,
                _ => sha256_hex(&bytes),
            };
            self.check_input(e, &in_sum)?;
            zeros(&mut out, range.start - at).map_err(LoadError::io(shown_as))?;
            out.write_all(&bytes).map_err(LoadError::io(shown_as))?;
            self.report.data_bytes += bytes.len() as u64;
            (self.progress)(e.byte_len());
            at = range.end;
        }
        zeros(&mut out, file_len.saturating_sub(at)).map_err(LoadError::io(shown_as))?;
        let file = out.into_inner().map_err(|e| LoadError::Io {
            path: shown_as.to_owned(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io)?;
        Ok(true)
    }

    /// Adds what `--keep-quantized` needs to give kept tensors back.
    fn keep_metadata(&self, entries: &[&Entry], meta: &mut ModelMetadata) -> Result<()> {
        if !entries.iter().any(|e| self.kept(e)) {
            return Ok(());
        }
        for e in entries.iter().filter(|e| self.kept(e)) {
            let t = e.stored_type().expect("kept tensors are GGUF blocks");
            let name = &e.meta.name;
            meta.user
                .insert(format!("{KEEP_PREFIX}type.{name}"), t.name().to_owned());
            meta.user.insert(
                format!("{KEEP_PREFIX}shape.{name}"),
                serde_json::to_string(&e.meta.shape).expect("a shape serializes"),
            );
        }
        if matches!(self.model.kind(), ModelKind::Gguf) {
            let header = self.model.header_of(0)?;
            meta.user
                .insert(format!("{KEEP_PREFIX}header"), hex::encode(header));
            meta.user.insert(
                format!("{KEEP_PREFIX}file_len"),
                self.model.files()[0].file_len.to_string(),
            );
        }
        Ok(())
    }

    /// A tensor held whole in memory, cast to the output dtype when one
    /// is asked for, counted, and its output checksum: `in_sum` when not
    /// cast (the output bytes are the input bytes), else the new bytes' hash.
    fn cast_whole<'b>(
        &mut self,
        e: &Entry,
        bytes: std::borrow::Cow<'b, [u8]>,
        in_sum: String,
    ) -> (std::borrow::Cow<'b, [u8]>, String) {
        let to = self.target(e.meta.dtype);
        let mut cast = CastStats::default();
        let data = match to {
            Some(to) => {
                let mut buf = Vec::new();
                cast.cast(e.meta.dtype, to, &bytes, &mut buf);
                std::borrow::Cow::Owned(buf)
            }
            None => bytes,
        };
        self.count_cast(e, to, &cast);
        let sum = if to.is_some() {
            sha256_hex(&data)
        } else {
            in_sum
        };
        self.note_rehash(e, &sum, to.is_some());
        (data, sum)
    }

    fn count_cast(&mut self, e: &Entry, to: Option<Dtype>, cast: &CastStats) {
        if to.is_some() {
            self.report.cast_tensors += 1;
            self.report.cast_values += cast.values;
            self.report.inexact_values += cast.inexact;
            if cast.overflowed > 0 {
                self.overflowed.push(e.meta.name.clone());
            }
            self.overflow.add(cast);
        }
    }
}

/// Writes tensors held in memory as a new model file, JSON or safetensors
/// by `path`'s extension, with every tensor's checksum (and, as
/// safetensors, the header checksum), atomically (a temporary file beside
/// it, then a rename), with the rules of [`Outputs`]. An existing file
/// needs `force`.
pub fn write_model(
    path: &Path,
    tensors: &[(TensorMeta, Vec<u8>)],
    metadata: &ModelMetadata,
    force: bool,
) -> Result<()> {
    model_format(path)?;
    let mut outputs = Outputs::new();
    let id = outputs.file(path, force)?;
    stage_model(&mut outputs, id, tensors, metadata)?;
    outputs.commit()
}

/// Whether a model file at `path` is JSON (`true`) or safetensors, by its
/// extension (case-insensitive); any other name is refused.
pub fn model_format(path: &Path) -> Result<bool> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("json") => Ok(true),
        Some("safetensors") => Ok(false),
        _ => Err(LoadError::Refused {
            path: path.to_owned(),
            reason: "the name must end in .json or .safetensors".into(),
        }),
    }
}

/// Writes tensors held in memory as the model file output `id` of an
/// [`Outputs`] set (JSON or safetensors by its extension, see
/// [`write_model`]), to be put in place with the set's other outputs by
/// [`Outputs::commit`].
pub fn stage_model(
    outputs: &mut Outputs,
    id: OutputId,
    tensors: &[(TensorMeta, Vec<u8>)],
    metadata: &ModelMetadata,
) -> Result<()> {
    let path = outputs.path(id).to_owned();
    let json = model_format(&path)?;
    let sums: Vec<Checksum> = tensors.iter().map(|(_, b)| Checksum::of(b)).collect();
    let path = &path;
    outputs.write(id, |out| {
        if json {
            let mut w = JsonWriter::new(out, &metadata.user, metadata.architecture.as_ref())
                .map_err(LoadError::format(path))?;
            for ((m, b), sum) in tensors.iter().zip(&sums) {
                w.write_tensor(m, b, &sum.to_string())
                    .map_err(LoadError::format(path))?;
            }
            w.finish().map_err(LoadError::format(path))?;
        } else {
            let mut meta = metadata.clone();
            meta.checksums = tensors
                .iter()
                .zip(&sums)
                .map(|((m, _), s)| (m.name.clone(), *s))
                .collect();
            let refs: Vec<(TensorMeta, &[u8])> =
                tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
            modeltool_format::write_safetensors_with_header_sha256(
                out,
                &refs,
                &meta.to_safetensors(),
            )
            .map_err(LoadError::format(path))?;
        }
        Ok(())
    })
}

/// The plain ggml type that stores `dtype`, if GGUF has one.
fn ggml_plain(dtype: Dtype) -> Option<GgmlType> {
    Some(match dtype {
        Dtype::F32 => GgmlType::F32,
        Dtype::F16 => GgmlType::F16,
        Dtype::BF16 => GgmlType::BF16,
        Dtype::F64 => GgmlType::F64,
        Dtype::I8 => GgmlType::I8,
        Dtype::I16 => GgmlType::I16,
        Dtype::I32 => GgmlType::I32,
        Dtype::I64 => GgmlType::I64,
        _ => return None,
    })
}
