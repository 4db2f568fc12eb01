//! Writing models: conversion between safetensors, JSON model files and
//! sharded checkpoints, with dtype casts ([`modeltool_format::cast`]),
//! checksums, and the rules of [`crate::write::Outputs`]: every output is
//! checked against the inputs and what is on disk before any work, written
//! to a temporary file (or folder) beside the target and put in place only
//! when complete, so a failed conversion leaves nothing behind and an
//! existing output is never half-replaced.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use modeltool_format::cast::{is_cast_target, is_castable};
use modeltool_format::{Dtype, JsonWriter, Layout, ModelMetadata, TensorMeta, sha256_hex};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use modeltool_format::cast::CastStats;

use crate::shards::{INDEX_NAME, plan_shards, shard_name};
use crate::write::{OutputId, Outputs, SINGLE_SHARD_NAME};
pub use crate::write::{check_output, write_atomically};
use crate::{CHUNK, Entry, LoadError, Model, ModelKind, Result};

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
}

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
    if matches!(model.kind(), ModelKind::Pytorch) {
        return Err(LoadError::Refused {
            path: model.path().to_owned(),
            reason: "a PyTorch checkpoint stores no checksums to refresh; \
                     `modeltool convert` writes it as safetensors with checksums"
                .into(),
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
            overflowed: Vec::new(),
            overflow: CastStats::default(),
            report,
            progress,
        }
    }

    fn target(&self, from: Dtype) -> Option<Dtype> {
        self.dtype.filter(|&to| to != from && is_castable(from))
    }

    fn out_meta(&self, e: &Entry) -> TensorMeta {
        let mut meta = e.meta.clone();
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
            Some(expected) if !self.rehash => Err(LoadError::ChecksumMismatch {
                path: self.model.files()[e.file].path.clone(),
                name: e.meta.name.clone(),
                expected: expected.clone(),
                actual: actual.to_owned(),
            }),
            _ => {
                if e.stored_sha256.is_none() {
                    self.report.unchecked += 1;
                }
                Ok(())
            }
        }
    }

    /// Notes a rehashed checksum: one the input did not store as written.
    fn note_rehash(&mut self, e: &Entry, new: &str, cast: bool) {
        if self.rehash && !cast && e.stored_sha256.as_deref() != Some(new) {
            self.report.rehashed.push(Rehashed {
                name: e.meta.name.clone(),
                old: e.stored_sha256.clone(),
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
    fn write_safetensors(
        &mut self,
        file: &File,
        entries: &[&Entry],
        shown_as: &Path,
    ) -> Result<String> {
        let metas: Vec<TensorMeta> = entries.iter().map(|e| self.out_meta(e)).collect();
        let mut meta = ModelMetadata {
            checksums: BTreeMap::new(),
            ..self.model.metadata().clone()
        };
        for m in &metas {
            meta.checksums.insert(m.name.clone(), "0".repeat(64));
        }
        let layout = Layout::with_header_sha256(&metas, &meta.to_safetensors())
            .map_err(LoadError::format(shown_as))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&layout.header)
            .map_err(LoadError::io(shown_as))?;
        // Only the order and the length are needed from here on: a header
        // of 100k tensors is not kept twice.
        let (header_len, order) = (layout.header.len(), layout.order);
        meta.checksums.clear();
        // A model held in memory (a JSON file) was hashed as it was read;
        // a file on disk is hashed as it streams by.
        let model = self.model;
        let mut known: Vec<Option<String>> = if matches!(model.kind(), ModelKind::Json) {
            entries
                .par_iter()
                .map(|e| model.sha256(e).map(Some))
                .collect::<Result<_>>()?
        } else {
            vec![None; entries.len()]
        };
        for &i in &order {
            let e = entries[i];
            let to = self.target(e.meta.dtype);
            let known = known[i].take();
            let mut in_hash = known.is_none().then(Sha256::new);
            // Without a cast the output bytes are the input bytes: one hash serves both.
            let mut out_hash = to.is_some().then(Sha256::new);
            let mut buf = Vec::new();
            let mut cast = CastStats::default();
            let mut offset = 0;
            let this = &*self;
            self.model.for_each_chunk(e, CHUNK, |chunk| {
                this.check_values(e, chunk, offset)?;
                offset += chunk.len();
                // Hashing the input and casting it are independent: do both at once.
                let cast_chunk = || {
                    if let Some(to) = to {
                        buf.clear();
                        cast.cast(e.meta.dtype, to, chunk, &mut buf);
                    }
                };
                let hash_chunk = || {
                    if let Some(h) = in_hash.as_mut() {
                        h.update(chunk);
                    }
                };
                rayon::join(hash_chunk, cast_chunk);
                let bytes = if to.is_some() { &buf[..] } else { chunk };
                if let Some(h) = out_hash.as_mut() {
                    h.update(bytes);
                }
                out.write_all(bytes).map_err(LoadError::io(shown_as))?;
                (this.progress)(chunk.len() as u64);
                Ok(())
            })?;
            let in_sum = match (known, in_hash) {
                (Some(sum), _) => sum,
                (None, Some(h)) => hex::encode(h.finalize()),
                (None, None) => unreachable!("an input hash is known or computed"),
            };
            self.check_input(e, &in_sum)?;
            let cast_done = out_hash.is_some();
            let out_sum = out_hash.map_or(in_sum, |h| hex::encode(h.finalize()));
            self.note_rehash(e, &out_sum, cast_done);
            self.count_cast(e, to, &cast);
            meta.checksums.insert(metas[i].name.clone(), out_sum);
            self.report.data_bytes +=
                metas[i].byte_len().map_err(LoadError::format(shown_as))? as u64;
        }
        let (final_layout, header_sha256) =
            Layout::with_header_sha256_digest(&metas, &meta.to_safetensors())
                .map_err(LoadError::format(shown_as))?;
        drop(meta);
        assert_eq!(
            final_layout.header.len(),
            header_len,
            "checksums and the header checksum have a fixed length"
        );
        let mut file = out.into_inner().map_err(|e| LoadError::Io {
            path: shown_as.to_owned(),
            source: e.into_error(),
        })?;
        file.seek(SeekFrom::Start(0))
            .map_err(LoadError::io(shown_as))?;
        file.write_all(&final_layout.header)
            .map_err(LoadError::io(shown_as))?;
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
            let out_meta = self.out_meta(e);
            // Without a cast the output bytes are the input bytes.
            let sum = if to.is_some() {
                sha256_hex(&data)
            } else {
                in_sum
            };
            self.note_rehash(e, &sum, to.is_some());
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
    let sums: Vec<String> = tensors.iter().map(|(_, b)| sha256_hex(b)).collect();
    let path = &path;
    outputs.write(id, |out| {
        if json {
            let mut w = JsonWriter::new(out, &metadata.user, metadata.architecture.as_ref())
                .map_err(LoadError::format(path))?;
            for ((m, b), sum) in tensors.iter().zip(&sums) {
                w.write_tensor(m, b, sum).map_err(LoadError::format(path))?;
            }
            w.finish().map_err(LoadError::format(path))?;
        } else {
            let mut meta = metadata.clone();
            meta.checksums = tensors
                .iter()
                .zip(&sums)
                .map(|((m, _), s)| (m.name.clone(), s.clone()))
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
