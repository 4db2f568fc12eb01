//! Checking a whole model: every stored checksum, every header checksum,
//! the completeness of the checksum set, the values, and optionally the
//! whole file's sha256 against one from a trusted place.

use std::sync::Mutex;

use modeltool_format::HeaderSha256;
use rayon::prelude::*;
use serde::Serialize;

use crate::{LoadError, Model, ModelKind, Result};

/// What [`Model::verify`] checks beyond the stored checksums.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The expected sha256 of the whole file, as 64 hex digits (as the
    /// Hugging Face Hub lists it): the one check that holds against a
    /// deliberate edit, when the hash comes from a place the user trusts.
    /// Only for a model of one file.
    pub sha256: Option<String>,
    /// Fail when a tensor has no stored checksum at all (a model written by
    /// another tool has none).
    pub strict: bool,
}

/// What [`Model::verify`] found. Serializes with the field names of
/// `modeltool verify --format json`. Strings are as in the file: escape
/// them before printing them for people.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The model's path.
    pub path: String,
    /// How many files it is made of.
    pub files: usize,
    /// How many tensors it holds.
    pub tensors: usize,
    /// Tensors whose stored checksum matched.
    pub verified: usize,
    /// Files whose header matched its `modeltool.header_sha256`.
    pub headers_matched: usize,
    /// Files whose header does not match its `modeltool.header_sha256`.
    pub damaged_headers: Vec<DamagedHeader>,
    /// Tensors without a stored checksum.
    pub no_checksum: Vec<String>,
    /// Those of `no_checksum` that should have one: the model carries
    /// modeltool checksums, which are written for every tensor.
    pub missing_checksums: Vec<String>,
    /// Tensors whose bytes do not match their checksum.
    pub damaged: Vec<DamagedTensor>,
    /// Checksums stored for tensors the model does not hold.
    pub orphan_checksums: Vec<String>,
    /// Tensors holding values their dtype does not allow (BOOL bytes other
    /// than 0 and 1), found while hashing: those whose checksum matched or
    /// that have none (a damaged tensor is reported as damaged).
    pub invalid_values: Vec<InvalidValues>,
    /// What else is wrong with the model ([`Model::warnings`]), as text.
    pub warnings: Vec<String>,
    /// The whole-file hash, when one was expected.
    pub file_sha256: Option<FileHash>,
    /// Damage the container's own checks found (a PyTorch zip entry whose
    /// CRC-32 does not match), as text.
    pub container_damage: Vec<String>,
    /// What the checks could not cover, as text (a PyTorch checkpoint
    /// carries no per-tensor checksums of its own).
    pub notes: Vec<String>,
    /// Whether tensors without a checksum count as a failure.
    pub strict: bool,
    /// The verdict: nothing above is wrong.
    pub ok: bool,
}

/// A tensor whose bytes do not match their checksum.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedTensor {
    /// The tensor.
    pub name: String,
    /// The stored checksum.
    pub expected: String,
    /// The checksum of the bytes.
    pub actual: String,
}

/// A file whose header does not match its header checksum.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedHeader {
    /// The file.
    pub file: String,
    /// What differs.
    pub reason: String,
    /// The stored header checksum.
    pub expected: String,
    /// What the header hashes to.
    pub actual: String,
}

/// Values a tensor's dtype does not allow.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidValues {
    /// The tensor.
    pub name: String,
    /// The first invalid element.
    pub index: u64,
    /// The byte found there.
    pub byte: u8,
    /// How many elements are invalid.
    pub count: u64,
}

/// The whole file's sha256 against the expected one.
#[derive(Debug, Clone, Serialize)]
pub struct FileHash {
    /// What was expected.
    pub expected: String,
    /// What the file hashes to.
    pub actual: String,
    /// Whether they are the same.
    pub ok: bool,
}

impl Model {
    /// Checks everything a model file can tell about its own integrity:
    /// each tensor's bytes against its stored checksum, each header against
    /// its header checksum, that the checksum set is complete (no tensor
    /// without one in a model that has them, no checksum without a tensor),
    /// that values are valid for their dtype, the model's
    /// [warnings](Model::warnings), and, when asked, the whole file's sha256.
    /// I/O errors and files changing meanwhile are errors; damage is in the
    /// report.
    ///
    /// A checksum inside a file catches accidents (bit rot, a truncated
    /// download, a bad edit, a wrong cast), not someone who edits the data
    /// and recomputes the checksums: only `sha256` from a trusted place
    /// does.
    ///
    /// ```
    /// use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, write_safetensors};
    /// use modeltool_loader::{Model, OpenOptions, VerifyOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("flags.safetensors");
    /// let t = TensorMeta { name: "flags".into(), dtype: Dtype::BOOL, shape: vec![3] };
    /// let bytes = [0u8, 1, 2];
    /// let mut meta = ModelMetadata::default();
    /// meta.checksums.insert("flags".into(), Checksum::of(&bytes));
    /// write_safetensors(std::fs::File::create(&path)?, &[(t, &bytes[..])], &meta.to_safetensors())?;
    ///
    /// let report = Model::open(&path, OpenOptions::default())?.verify(&VerifyOptions::default())?;
    /// assert_eq!(report.verified, 1);
    /// assert_eq!(report.invalid_values[0].index, 2, "BOOL is 0 or 1");
    /// assert!(!report.ok);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport> {
        self.verify_with_progress(options, &|_| {})
    }

    /// [`Model::verify`], calling `progress` with byte counts as tensors
    /// are hashed.
    pub fn verify_with_progress(
        &self,
        options: &VerifyOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<VerifyReport> {
        let expected = match &options.sha256 {
            Some(h) => {
                let h = h.to_ascii_lowercase();
                if !modeltool_format::is_sha256_hex(&h) {
                    return Err(LoadError::NotAModel {
                        path: self.path().to_owned(),
                        reason: format!(
                            "the expected sha256 `{}` is not 64 hex digits",
                            modeltool_format::text::Escaped(&h)
                        ),
                    });
                }
                if matches!(self.kind(), ModelKind::Sharded { .. }) {
                    return Err(LoadError::Shards {
                        path: self.path().to_owned(),
                        reason:
                            "a whole-file sha256 compares one file; verify each shard on its own"
                                .into(),
                    });
                }
                Some(h)
            }
            None => None,
        };
        let invalid = Mutex::new(Vec::new());
        // The whole-file hash (when asked for) is one sequential stream; it
        // runs beside the per-tensor hashes instead of after them, and reads
        // the file the model opened, not whatever the path names now.
        let (sums, file_hash) = rayon::join(
            || {
                self.entries()
                    .par_iter()
                    .map(|e| {
                        let (mut at, mut first, mut count) = (0u64, None, 0u64);
                        if e.stored_sha256.is_none() && e.stored_type().is_some() {
                            // Quantized GGUF blocks with no checksum to compare:
                            // decoding them would prove nothing more than the
                            // header did (and some types have no decoder).
                            progress(e.byte_len());
                            return Ok(String::new());
                        }
                        let sum = self.hash_entry(e, progress, &mut |chunk| {
                            if let Some(bad) = e.meta.dtype.first_invalid(chunk) {
                                first.get_or_insert((at + bad.index as u64, bad.byte));
                                count += bad.count as u64;
                            }
                            at += chunk.len() as u64;
                        })?;
                        if let Some((index, byte)) = first {
                            invalid
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(InvalidValues {
                                    name: e.meta.name.clone(),
                                    index,
                                    byte,
                                    count,
                                });
                        }
                        Ok(sum)
                    })
                    .collect::<Result<Vec<String>>>()
            },
            || {
                expected
                    .as_ref()
                    .and_then(|_| self.files().first())
                    .map(|f| f.sha256())
            },
        );
        let sums = sums?;
        let file_hash = file_hash.transpose()?;
        let mut invalid_values = invalid.into_inner().unwrap_or_else(|p| p.into_inner());
        invalid_values.sort_by(|a, b| a.name.cmp(&b.name));

        let mut report = VerifyReport {
            path: self.path().display().to_string(),
            files: self.files().len(),
            tensors: self.entries().len(),
            verified: 0,
            headers_matched: 0,
            damaged_headers: Vec::new(),
            no_checksum: Vec::new(),
            missing_checksums: self
                .missing_checksums()
                .iter()
                .map(|e| e.meta.name.clone())
                .collect(),
            damaged: Vec::new(),
            orphan_checksums: self.orphan_checksums().to_vec(),
            invalid_values,
            warnings: self.warnings().iter().map(|w| w.to_string()).collect(),
            file_sha256: None,
            container_damage: self.check_containers()?,
            notes: if self.is_pytorch() {
                vec![
                    "a PyTorch checkpoint carries no per-tensor checksums: its structure \
                     (zip CRC-32s where present, every storage within the file, every view \
                     within its storage) was checked, not the values"
                        .into(),
                ]
            } else {
                Vec::new()
            },
            strict: options.strict,
            ok: false,
        };
        for file in self.files() {
            match &file.header_sha256 {
                HeaderSha256::Absent => {}
                HeaderSha256::Matches => report.headers_matched += 1,
                HeaderSha256::Damaged(damage) => report.damaged_headers.push(DamagedHeader {
                    file: file.path.display().to_string(),
                    reason: damage.to_string(),
                    expected: damage.stored.clone(),
                    actual: damage.actual.clone(),
                }),
            }
        }
        for (entry, actual) in self.entries().iter().zip(sums) {
            match &entry.stored_sha256 {
                Some(expected) if *expected == *actual => report.verified += 1,
                Some(expected) => report.damaged.push(DamagedTensor {
                    name: entry.meta.name.clone(),
                    expected: expected.to_string(),
                    actual,
                }),
                None => report.no_checksum.push(entry.meta.name.clone()),
            }
        }
        report
            .invalid_values
            .retain(|v| !report.damaged.iter().any(|d| d.name == v.name));
        if let (Some(expected), Some(actual)) = (expected, file_hash) {
            report.file_sha256 = Some(FileHash {
                ok: actual == expected,
                expected,
                actual,
            });
        }
        report.ok = report.damaged.is_empty()
            && report.damaged_headers.is_empty()
            && report.missing_checksums.is_empty()
            && report.orphan_checksums.is_empty()
            && report.invalid_values.is_empty()
            && report.warnings.is_empty()
            && report.container_damage.is_empty()
            && report.file_sha256.as_ref().is_none_or(|f| f.ok)
            && (!options.strict || report.no_checksum.is_empty());
        Ok(report)
    }
}
