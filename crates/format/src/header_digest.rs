//! `modeltool.header_sha256`: the sha256 of everything else a safetensors
//! header says, so that a changed dtype, shape, offset, checksum key or
//! metadata value is detected the way damaged tensor bytes are.
//!
//! The digest is taken over a canonical JSON description of the header,
//! not over its bytes, so that any implementation can compute it from the
//! parsed header alone (`docs/FORMAT.md`, "The header checksum").

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};
use crate::{Header, Layout, TensorInfo, TensorMeta, is_sha256_hex, keys};

/// One tensor in the canonical description: keys in byte order.
#[derive(Serialize)]
struct CanonicalTensor<'a> {
    data_offsets: [u64; 2],
    dtype: &'static str,
    shape: &'a [usize],
}

/// The canonical description of a header: keys in byte order at every
/// level (`BTreeMap<&str, _>` orders by bytes, and the fields are declared
/// in that order).
#[derive(Serialize)]
struct Canonical<'a> {
    metadata: BTreeMap<&'a str, &'a str>,
    tensors: BTreeMap<&'a str, CanonicalTensor<'a>>,
}

impl<'a> Canonical<'a> {
    fn new(
        metadata: &'a BTreeMap<String, String>,
        tensors: impl Iterator<Item = (&'a TensorMeta, (u64, u64))>,
    ) -> Canonical<'a> {
        Canonical {
            metadata: metadata
                .iter()
                .filter(|(k, _)| k.as_str() != keys::HEADER_SHA256)
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            tensors: tensors
                .map(|(m, (begin, end))| {
                    let entry = CanonicalTensor {
                        data_offsets: [begin, end],
                        dtype: m.dtype.name(),
                        shape: &m.shape,
                    };
                    (m.name.as_str(), entry)
                })
                .collect(),
        }
    }

    /// serde_json's compact output: no whitespace, its default string
    /// escaping, integers in decimal.
    fn write(&self, out: impl std::io::Write) {
        serde_json::to_writer(out, self)
            .expect("strings and integers serialize, and the writers cannot fail");
    }

    fn sha256(&self) -> String {
        let mut hasher = HashWriter(Sha256::new());
        self.write(&mut hasher);
        hex::encode(hasher.0.finalize())
    }
}

/// Feeds serde_json's output straight into the hash, so that a header of
/// many megabytes is never copied whole.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The canonical description of a header that `modeltool.header_sha256`
/// is the sha256 of: compact JSON
/// `{"metadata":{...},"tensors":{"NAME":{"data_offsets":[B,E],"dtype":"F32","shape":[2,3]},...}}`
/// with the keys of every object in byte order, every `__metadata__` pair
/// but `modeltool.header_sha256` itself, and strings escaped as serde_json
/// escapes them. See `docs/FORMAT.md`.
pub fn canonical_header(metadata: &BTreeMap<String, String>, tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    Canonical::new(metadata, tensors.iter().map(|t| (&t.meta, t.data_offsets))).write(&mut out);
    out
}

/// The value `modeltool.header_sha256` must hold for a header with this
/// metadata and these tensors: the sha256 of [`canonical_header`], as 64
/// lowercase hex digits. A `modeltool.header_sha256` pair in `metadata` is
/// ignored.
pub fn header_sha256(metadata: &BTreeMap<String, String>, tensors: &[TensorInfo]) -> String {
    Canonical::new(metadata, tensors.iter().map(|t| (&t.meta, t.data_offsets))).sha256()
}

/// What a header's `modeltool.header_sha256` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSha256 {
    /// The header stores no `modeltool.header_sha256` (a file from another
    /// tool, or from a modeltool older than the key): nothing to compare.
    Absent,
    /// The header is as it was written.
    Matches,
    /// The header changed since it was written.
    Damaged(HeaderDamage),
}

/// A header whose `modeltool.header_sha256` does not vouch for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderDamage {
    /// What is wrong.
    pub kind: HeaderDamageKind,
    /// The digest the header stores.
    pub stored: String,
    /// The digest of the header as it is now.
    pub actual: String,
}

/// How a header with a `modeltool.header_sha256` is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderDamageKind {
    /// Its metadata or tensor entries hash to another value than the one
    /// stored.
    Changed,
    /// The key itself was changed: a metadata key one byte away from
    /// `modeltool.header_sha256` (in its JSON form) holds 64 hex digits.
    Key(String),
    /// Bytes other than spaces (0x20) before the JSON object's `{` or
    /// after its `}`: the safetensors spec pads with spaces only.
    Padding,
}

impl fmt::Display for HeaderDamage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            HeaderDamageKind::Changed => {
                f.write_str("metadata or tensor entries changed since the file was written")
            }
            HeaderDamageKind::Key(key) => write!(
                f,
                "its `{}` key reads `{key}`: changed since the file was written",
                keys::HEADER_SHA256
            ),
            HeaderDamageKind::Padding => f.write_str(
                "bytes other than spaces around the JSON: changed since the file was written",
            ),
        }
    }
}

impl Header {
    /// Checks the header against its `modeltool.header_sha256`. `json` is
    /// the header as it is in the file (the `header_len` bytes after the
    /// 8-byte length), for the padding rule: in a header that stores the
    /// key, the JSON object must begin at the first byte and be followed by
    /// spaces only.
    ///
    /// A value that is not 64 lowercase hex digits is an error, as for a
    /// tensor's checksum. A header without the key but with a key one byte
    /// away from it holding 64 hex digits is [`HeaderDamageKind::Key`]:
    /// one changed byte must not make the check disappear.
    pub fn check_header_sha256(&self, json: &[u8]) -> Result<HeaderSha256> {
        let canonical = || {
            Canonical::new(
                &self.metadata,
                self.tensors.iter().map(|t| (&t.meta, t.data_offsets)),
            )
            .sha256()
        };
        let Some(stored) = self.metadata.get(keys::HEADER_SHA256) else {
            let near_miss = self
                .metadata
                .iter()
                .find(|(k, v)| is_sha256_hex(v) && one_byte_from_header_key(k));
            return Ok(match near_miss {
                Some((key, value)) => HeaderSha256::Damaged(HeaderDamage {
                    kind: HeaderDamageKind::Key(key.clone()),
                    stored: value.clone(),
                    actual: canonical(),
                }),
                None => HeaderSha256::Absent,
            });
        };
        check_form(stored)?;
        let actual = canonical();
        let kind = if actual != *stored {
            HeaderDamageKind::Changed
        } else if !padded_with_spaces(json) {
            HeaderDamageKind::Padding
        } else {
            return Ok(HeaderSha256::Matches);
        };
        Ok(HeaderSha256::Damaged(HeaderDamage {
            kind,
            stored: stored.clone(),
            actual,
        }))
    }
}

/// A stored header digest must look like one.
pub(crate) fn check_form(value: &str) -> Result<()> {
    if is_sha256_hex(value) {
        return Ok(());
    }
    Err(FormatError::BadMetadata {
        key: keys::HEADER_SHA256.to_owned(),
        reason: format!("holds `{value}`, not 64 lowercase hex digits"),
    })
}

/// Whether `key`, written as JSON, differs from `"modeltool.header_sha256"`
/// in exactly one byte: what one changed byte in the file makes of it
/// (an escape such as `\t` counts as the two bytes it takes in the file).
fn one_byte_from_header_key(key: &str) -> bool {
    // 23 bytes, or 22 when the changed byte made a two-byte escape.
    if !(22..=23).contains(&key.len()) {
        return false;
    }
    let written = serde_json::to_string(key).expect("a string serializes");
    let original = serde_json::to_string(keys::HEADER_SHA256).expect("a string serializes");
    written.len() == original.len()
        && written
            .bytes()
            .zip(original.bytes())
            .filter(|(a, b)| a != b)
            .count()
            == 1
}

/// The JSON object starts at the first byte and only spaces follow it.
fn padded_with_spaces(json: &[u8]) -> bool {
    let end = json.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    json.first() == Some(&b'{') && json[..end].last() == Some(&b'}')
}

impl Layout {
    /// Like [`Layout::new`], with `modeltool.header_sha256` added to the
    /// metadata (replacing any value given for it): the digest of the
    /// header this layout writes. The key's value always takes 64
    /// characters, so the header's length does not depend on it.
    pub fn with_header_sha256(
        tensors: &[TensorMeta],
        metadata: &BTreeMap<String, String>,
    ) -> Result<Layout> {
        Layout::with_header_sha256_digest(tensors, metadata).map(|(layout, _)| layout)
    }

    /// [`Layout::with_header_sha256`], also returning the header checksum
    /// it wrote (so a writer need not parse its own header to learn it).
    pub fn with_header_sha256_digest(
        tensors: &[TensorMeta],
        metadata: &BTreeMap<String, String>,
    ) -> Result<(Layout, String)> {
        // Offsets do not depend on the metadata.
        let plan = Layout::new(tensors, &BTreeMap::new())?;
        let digest =
            Canonical::new(metadata, tensors.iter().zip(plan.offsets.iter().copied())).sha256();
        drop(plan);
        let mut metadata = metadata.clone();
        metadata.insert(keys::HEADER_SHA256.to_owned(), digest.clone());
        Ok((Layout::new(tensors, &metadata)?, digest))
    }
}
