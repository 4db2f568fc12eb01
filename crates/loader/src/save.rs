//! Writing models: conversion between safetensors, JSON model files and
//! sharded checkpoints, with dtype casts, checksums and atomic writes.
//!
//! Every write goes to a temporary file (or folder) beside the target and
//! is renamed into place only when complete, so a failed conversion leaves
//! nothing behind and an existing file is never half-replaced.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use modeltool_format::{Dtype, JsonWriter, Layout, ModelMetadata, TensorMeta, sha256_hex};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::shards::{INDEX_NAME, plan_shards, shard_name};
use crate::{CHUNK, Entry, LoadError, Model, ModelKind, Result};

/// What to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputKind {
    /// One `.safetensors` file.
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
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// The output's kind.
    pub kind: OutputKind,
    /// Cast F16/BF16/F32/F64 tensors to this dtype (F32, F16 or BF16),
    /// rounding to nearest, ties to even. Other dtypes pass through.
    pub dtype: Option<Dtype>,
    /// Replace an existing output.
    pub force: bool,
}

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
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
    /// Cast values the target dtype could not represent exactly.
    pub inexact_values: u64,
}

/// Converts `model` into `output`. Input checksums are checked as the bytes
/// go by; a mismatch stops the conversion with
/// [`LoadError::ChecksumMismatch`] and nothing is written. An input header
/// that does not match its `modeltool.header_sha256` is refused before
/// anything is written ([`LoadError::HeaderDamaged`]). Every output tensor
/// carries its checksum, and every safetensors output its header checksum.
pub fn convert(
    model: &Model,
    output: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ConvertReport> {
    if let Some(d) = options.dtype {
        if !matches!(d, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(LoadError::Refused {
                path: output.to_owned(),
                reason: format!("cannot cast to {d}: choose f32, f16 or bf16"),
            });
        }
    }
    check_target(model, output, options.force)?;
    model.check_headers()?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut report = ConvertReport {
        files: Vec::new(),
        tensors: model.entries().len(),
        data_bytes: 0,
        checked: 0,
        unchecked: 0,
        cast_tensors: 0,
        cast_values: 0,
        inexact_values: 0,
    };
    let mut job = Job {
        model,
        dtype: options.dtype,
        report: &mut report,
        progress,
    };
    match options.kind {
        OutputKind::Json => {
            write_atomically(output, options.force, |out| {
                job.write_json(*out.get_ref(), output).map(drop)
            })?;
            job.report.files.push(output.to_owned());
        }
        OutputKind::Safetensors => {
            let all: Vec<&Entry> = model.entries().iter().collect();
            write_atomically(output, options.force, |out| {
                job.write_safetensors(out.get_ref(), &all, output)
            })?;
            job.report.files.push(output.to_owned());
        }
        OutputKind::Sharded { max_shard_size } => {
            let tmp_dir = tempfile::Builder::new()
                .prefix(".modeltool-shards-")
                .permissions(std::fs::Permissions::from_mode(0o777))
                .tempdir_in(&parent)
                .map_err(|e| cannot_create(output, &parent, e))?;
            let entries = model.entries();
            let sizes: Vec<u64> = entries
                .iter()
                .map(|e| job.out_meta(e).byte_len().map(|n| n as u64).unwrap_or(0))
                .collect();
            let plan = plan_shards(&sizes, max_shard_size);
            let n = plan.len();
            let mut weight_map = BTreeMap::new();
            let mut names = Vec::new();
            for (i, shard) in plan.iter().enumerate() {
                let name = if n == 1 {
                    "model.safetensors".to_owned()
                } else {
                    shard_name(i, n)
                };
                // Errors name the shard as it will be called, not the
                // temporary folder it is written in.
                let shown_as = output.join(&name);
                let path = tmp_dir.path().join(&name);
                let file = File::create(&path).map_err(LoadError::io(&shown_as))?;
                let members: Vec<&Entry> = shard.iter().map(|&j| &entries[j]).collect();
                job.write_safetensors(&file, &members, &shown_as)?;
                file.sync_all().map_err(LoadError::io(&shown_as))?;
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
                let path = tmp_dir.path().join(INDEX_NAME);
                let shown_as = output.join(INDEX_NAME);
                let mut text = serde_json::to_vec_pretty(&index).expect("an index serializes");
                text.push(b'\n');
                let mut file = File::create(&path).map_err(LoadError::io(&shown_as))?;
                file.write_all(&text)
                    .and_then(|()| file.sync_all())
                    .map_err(LoadError::io(&shown_as))?;
                names.push(INDEX_NAME.to_owned());
            }
            replace_dir(tmp_dir, output, options.force)?;
            job.report
                .files
                .extend(names.iter().map(|n| output.join(n)));
        }
    }
    Ok(report)
}

struct Job<'a> {
    model: &'a Model,
    dtype: Option<Dtype>,
    report: &'a mut ConvertReport,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl Job<'_> {
    fn target(&self, from: Dtype) -> Option<Dtype> {
        self.dtype.filter(|&to| {
            to != from && matches!(from, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
        })
    }

    fn out_meta(&self, e: &Entry) -> TensorMeta {
        let mut meta = e.meta.clone();
        if let Some(to) = self.target(meta.dtype) {
            meta.dtype = to;
        }
        meta
    }

    fn check_input(&mut self, e: &Entry, actual: String) -> Result<()> {
        match &e.stored_sha256 {
            Some(expected) if *expected != actual => Err(LoadError::ChecksumMismatch {
                path: self.model.files()[e.file].path.clone(),
                name: e.meta.name.clone(),
                expected: expected.clone(),
                actual,
            }),
            Some(_) => {
                self.report.checked += 1;
                Ok(())
            }
            None => {
                self.report.unchecked += 1;
                Ok(())
            }
        }
    }

    /// Streams the tensors into a safetensors file: a header with
    /// placeholder checksums and header checksum first (both are
    /// fixed-length, so the header length is known), the data chunk by
    /// chunk, then the real header.
    fn write_safetensors(
        &mut self,
        file: &File,
        entries: &[&Entry],
        shown_as: &Path,
    ) -> Result<()> {
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
        for &i in &layout.order {
            let e = entries[i];
            let to = self.target(e.meta.dtype);
            let known = known[i].take();
            let mut in_hash = known.is_none().then(Sha256::new);
            // Without a cast the output bytes are the input bytes: one hash serves both.
            let mut out_hash = to.is_some().then(Sha256::new);
            let mut buf = Vec::new();
            let mut cast = CastStats::default();
            self.model.for_each_chunk(e, CHUNK, |chunk| {
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
                (self.progress)(chunk.len() as u64);
                Ok(())
            })?;
            let in_sum = match (known, in_hash) {
                (Some(sum), _) => sum,
                (None, Some(h)) => hex::encode(h.finalize()),
                (None, None) => unreachable!("an input hash is known or computed"),
            };
            self.check_input(e, in_sum.clone())?;
            let out_sum = out_hash.map_or(in_sum, |h| hex::encode(h.finalize()));
            self.count_cast(to, &cast);
            meta.checksums.insert(metas[i].name.clone(), out_sum);
            self.report.data_bytes +=
                metas[i].byte_len().map_err(LoadError::format(shown_as))? as u64;
        }
        let final_layout = Layout::with_header_sha256(&metas, &meta.to_safetensors())
            .map_err(LoadError::format(shown_as))?;
        assert_eq!(
            final_layout.header.len(),
            layout.header.len(),
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
        Ok(())
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
            let in_sum = match self.model.kind() {
                // Hashed as it was read.
                ModelKind::Json => self.model.sha256(e)?,
                _ => sha256_hex(&bytes),
            };
            self.check_input(e, in_sum.clone())?;
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
            self.count_cast(to, &cast);
            let out_meta = self.out_meta(e);
            // Without a cast the output bytes are the input bytes.
            let sum = if to.is_some() {
                sha256_hex(&data)
            } else {
                in_sum
            };
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

    fn count_cast(&mut self, to: Option<Dtype>, cast: &CastStats) {
        if to.is_some() {
            self.report.cast_tensors += 1;
            self.report.cast_values += cast.values;
            self.report.inexact_values += cast.inexact;
        }
    }
}

/// Counts of a cast in progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct CastStats {
    /// Values cast.
    pub values: u64,
    /// Values that changed (NaN to NaN counts as exact).
    pub inexact: u64,
}

impl CastStats {
    /// Casts little-endian `input` of dtype `from` to `to`, appending to
    /// `out`, rounding to nearest with ties to even. Both must be among
    /// F16, BF16, F32 and F64 and `input` whole elements.
    pub fn cast(&mut self, from: Dtype, to: Dtype, input: &[u8], out: &mut Vec<u8>) {
        const PIECE: usize = 1 << 20; // a multiple of every element size
        if input.len() <= PIECE {
            return self.cast_serial(from, to, input, out);
        }
        let pieces: Vec<(Vec<u8>, CastStats)> = input
            .par_chunks(PIECE)
            .map(|piece| {
                let (mut bytes, mut stats) = (Vec::new(), CastStats::default());
                stats.cast_serial(from, to, piece, &mut bytes);
                (bytes, stats)
            })
            .collect();
        for (bytes, stats) in pieces {
            out.extend_from_slice(&bytes);
            self.values += stats.values;
            self.inexact += stats.inexact;
        }
    }

    fn cast_serial(&mut self, from: Dtype, to: Dtype, input: &[u8], out: &mut Vec<u8>) {
        let size = from.bits() / 8;
        out.reserve(input.len() / size * (to.bits() / 8));
        for c in input.chunks_exact(size) {
            let v: f64 = match from {
                Dtype::F16 => f16::from_le_bytes([c[0], c[1]]).to_f64(),
                Dtype::BF16 => bf16::from_le_bytes([c[0], c[1]]).to_f64(),
                Dtype::F32 => f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))),
                Dtype::F64 => f64::from_le_bytes(c.try_into().expect("8 bytes")),
                _ => unreachable!("only float tensors are cast"),
            };
            // Every source value is exact in f64. The half-width conversions
            // go through f32: exactly for F16/BF16/F32 sources, and for F64
            // rounded to odd, which keeps the final round-to-nearest-even
            // correct (half's own from_f64 rounds twice or truncates).
            let back: f64 = match to {
                Dtype::F32 => {
                    let x = v as f32;
                    out.extend_from_slice(&x.to_le_bytes());
                    f64::from(x)
                }
                Dtype::F16 => {
                    let x = f16::from_f32(to_f32_for_rounding(v, from));
                    out.extend_from_slice(&x.to_le_bytes());
                    x.to_f64()
                }
                Dtype::BF16 => {
                    let x = bf16::from_f32(to_f32_for_rounding(v, from));
                    out.extend_from_slice(&x.to_le_bytes());
                    x.to_f64()
                }
                _ => unreachable!("casts go to F32, F16 or BF16"),
            };
            self.values += 1;
            if back != v && !(back.is_nan() && v.is_nan()) {
                self.inexact += 1;
            }
        }
    }
}

/// `v` as an f32 that a second rounding to a narrower type (F16, BF16)
/// rounds exactly as `v` itself would: exact for sources of 32 bits or
/// fewer, rounded to odd for F64 (inexact results get their lowest bit set),
/// which is the classic cure for double rounding when the intermediate has at
/// least two more bits than the target.
fn to_f32_for_rounding(v: f64, from: Dtype) -> f32 {
    if from != Dtype::F64 || v.is_nan() {
        return v as f32;
    }
    let nearest = v as f32;
    if f64::from(nearest) == v {
        return nearest;
    }
    // Truncate toward zero, then mark the lost bits in the lowest bit.
    let mut bits = nearest.to_bits();
    if f64::from(nearest).abs() > v.abs() {
        bits -= 1; // one step toward zero in magnitude (the sign bit is apart)
    }
    f32::from_bits(bits | 1)
}

/// Refuses to write over an input, or over an existing output without `force`.
fn check_target(model: &Model, output: &Path, force: bool) -> Result<()> {
    let inputs: Vec<&Path> = model
        .files()
        .iter()
        .map(|f| f.path.as_path())
        .chain(std::iter::once(model.path()))
        .collect();
    check_output(output, &inputs, force)
}

/// Checks that writing `output` replaces none of `inputs` (nor a folder
/// holding one), and, unless `force`, no existing file at all. Every
/// command that writes calls this before doing any work.
pub fn check_output(output: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    if !output.exists() {
        return Ok(());
    }
    let out = output.canonicalize().map_err(LoadError::io(output))?;
    for input in inputs {
        let Ok(input) = input.canonicalize() else {
            continue;
        };
        if input == out || input.starts_with(&out) {
            return Err(LoadError::Refused {
                path: output.to_owned(),
                reason: "refusing to overwrite an input".into(),
            });
        }
    }
    if !force {
        return Err(LoadError::Refused {
            path: output.to_owned(),
            reason: "already exists (use --force to replace it)".into(),
        });
    }
    Ok(())
}

fn temp_file(dir: &Path, output: &Path) -> Result<tempfile::NamedTempFile> {
    let stem = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{stem}."))
        .suffix(".tmp")
        // Like any new file: 0666 less the umask (tempfile's default is 0600).
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| cannot_create(output, dir, e))
}

/// The operating system's message for an error, without the temporary
/// path `tempfile` adds to it (the user never asked for that name).
fn os_message(e: &std::io::Error) -> String {
    let inner = e
        .get_ref()
        .and_then(|e| e.source())
        .and_then(|e| e.downcast_ref::<std::io::Error>());
    inner.unwrap_or(e).to_string()
}

/// The error for a temporary file or folder that cannot be made beside
/// `output` (a read-only or full file system, a folder without write
/// permission): it names the output the user asked for.
fn cannot_create(output: &Path, dir: &Path, source: std::io::Error) -> LoadError {
    LoadError::Io {
        path: output.to_owned(),
        source: std::io::Error::new(
            source.kind(),
            format!(
                "cannot create a file in {}: {}",
                dir.display(),
                os_message(&source)
            ),
        ),
    }
}

fn persist(tmp: tempfile::NamedTempFile, output: &Path, force: bool) -> Result<()> {
    tmp.as_file().sync_all().map_err(LoadError::io(output))?;
    let result = if force {
        tmp.persist(output)
    } else {
        tmp.persist_noclobber(output)
    };
    result.map(drop).map_err(|e| LoadError::Io {
        path: output.to_owned(),
        source: e.error,
    })
}

fn replace_dir(tmp: tempfile::TempDir, output: &Path, force: bool) -> Result<()> {
    let tmp_path = tmp.keep();
    let cleanup = |e: std::io::Error| {
        let _ = std::fs::remove_dir_all(&tmp_path);
        LoadError::Io {
            path: output.to_owned(),
            source: e,
        }
    };
    if output.exists() {
        if !force {
            return Err(cleanup(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists (use --force to replace it)",
            )));
        }
        // One atomic step where the file system allows it: the new folder
        // takes the output's name and the old output takes the temporary
        // one, so that at every instant the name holds one complete output,
        // old or new, whenever the process is killed.
        match exchange(&tmp_path, output) {
            Ok(()) => {
                // `tmp_path` now holds the old output. One that will not go
                // away is left under its temporary name rather than failing
                // a finished conversion.
                let _ = remove_any(&tmp_path);
                return Ok(());
            }
            Err(e) if !exchange_unsupported(&e) => return Err(cleanup(e)),
            Err(_) => {}
        }
        // Two renames: killed between them, the name is briefly empty and
        // the old output waits beside it under `*.old`.
        let aside = tmp_path.with_extension("old");
        std::fs::rename(output, &aside).map_err(cleanup)?;
        if let Err(e) = std::fs::rename(&tmp_path, output) {
            // Put the old output back where it was.
            let _ = std::fs::rename(&aside, output);
            return Err(cleanup(e));
        }
        // The new output is in place; an old copy that will not go away is
        // left beside it rather than failing a finished conversion.
        let _ = remove_any(&aside);
    } else {
        std::fs::rename(&tmp_path, output).map_err(cleanup)?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Whether [`exchange`] failed only because the system or file system
/// cannot swap (older kernels, some network file systems).
fn exchange_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::EINVAL || code == libc::ENOSYS || code == libc::EOPNOTSUPP)
}

/// Writes tensors held in memory as a new model file, JSON or safetensors
/// by `path`'s extension, with every tensor's checksum (and, as
/// safetensors, the header checksum), atomically (a
/// temporary file beside it, then a rename). An existing file needs `force`.
pub fn write_model(
    path: &Path,
    tensors: &[(TensorMeta, Vec<u8>)],
    metadata: &ModelMetadata,
    force: bool,
) -> Result<()> {
    let json = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("safetensors") => false,
        _ => {
            return Err(LoadError::Refused {
                path: path.to_owned(),
                reason: "the name must end in .json or .safetensors".into(),
            });
        }
    };
    let sums: Vec<String> = tensors.iter().map(|(_, b)| sha256_hex(b)).collect();
    write_atomically(path, force, |out| {
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

/// Writes a new file through `write`, atomically: into a temporary file
/// beside `path`, renamed into place only when `write` succeeded. An
/// existing file needs `force`; on failure nothing is left behind.
pub fn write_atomically(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    if path.exists() && !force {
        return Err(LoadError::Refused {
            path: path.to_owned(),
            reason: "already exists (use --force to replace it)".into(),
        });
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_file(&parent, path)?;
    let mut out = BufWriter::new(tmp.as_file());
    write(&mut out)?;
    out.flush().map_err(LoadError::io(path))?;
    drop(out);
    persist(tmp, path, force)
}
