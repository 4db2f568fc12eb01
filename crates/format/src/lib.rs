//! Parse and write neural-network parameter files: safetensors and the
//! modeltool JSON model file, each tensor carrying a sha256 checksum that
//! survives conversion between the two. The byte-level specification is
//! `docs/FORMAT.md` in the modeltool repository.
//!
//! This crate parses and produces bytes; it does no file I/O of its own, so
//! it serves memory maps, buffers and streams alike.
//!
//! ```
//! use std::collections::BTreeMap;
//! use modeltool_format::{Checksum, Dtype, Header, JsonModel, JsonWriter, ModelMetadata, TensorMeta, sha256_hex, write_safetensors};
//!
//! // y = a*x + b with a = 1, b = -110: the smallest model there is.
//! let a = TensorMeta { name: "a".into(), dtype: Dtype::F32, shape: vec![] };
//! let b = TensorMeta { name: "b".into(), dtype: Dtype::F32, shape: vec![] };
//! let (a_bytes, b_bytes) = (1f32.to_le_bytes(), (-110f32).to_le_bytes());
//!
//! // As safetensors, checksums in `__metadata__`:
//! let mut meta = ModelMetadata::default();
//! meta.checksums.insert("a".into(), Checksum::of(&a_bytes));
//! meta.checksums.insert("b".into(), Checksum::of(&b_bytes));
//! let mut file = Vec::new();
//! write_safetensors(&mut file, &[(a.clone(), &a_bytes[..]), (b.clone(), &b_bytes[..])], &meta.to_safetensors())?;
//! let header = Header::from_file_bytes(&file)?;
//! assert_eq!(header.tensors.len(), 2);
//! let stored = ModelMetadata::from_safetensors(header.metadata)?;
//! assert_eq!(stored.checksums["b"].to_string(), sha256_hex(&b_bytes));
//!
//! // As JSON, and back to the same bytes:
//! let mut json = JsonWriter::new(Vec::new(), &BTreeMap::new(), None)?;
//! json.write_tensor(&b, &b_bytes, &sha256_hex(&b_bytes))?;
//! let text = json.finish()?;
//! let model = JsonModel::from_slice(&text)?;
//! assert_eq!(model.tensors[0].data, b_bytes);
//! # Ok::<(), modeltool_format::FormatError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod arch;
pub mod cast;
pub mod decode;
mod detect;
mod dtype;
mod error;
pub mod gguf;
mod header_digest;
mod header_write;
mod json;
mod json_error;
mod json_read;
mod number;
mod par;
pub mod pytorch;
mod safe_json;
mod safetensors;
mod strict_json;
pub mod text;
mod values;

use std::collections::BTreeMap;
use std::io::Write;

use sha2::{Digest, Sha256};

pub use crate::detect::{DETECT_LEN, FileKind, detect};
pub use crate::dtype::{Dtype, InvalidValue, UnknownDtype};
pub use crate::error::{FormatError, Result};
pub use crate::header_digest::{
    HeaderDamage, HeaderDamageKind, HeaderSha256, canonical_header, header_sha256,
};
pub use crate::header_write::HeaderPlan;
pub use crate::json::{FORMAT_ID, JsonModel, JsonTensor, JsonWriter};
pub use crate::json_error::{JsonError, JsonErrorKind};
pub use crate::safetensors::{Header, Layout, MAX_HEADER_LEN, METADATA_KEY, TensorInfo};

/// A tensor's name, element type and shape: everything but its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorMeta {
    /// The tensor's name, e.g. `encoder.layer.0.attention.self.query.weight`.
    pub name: String,
    /// The element type.
    pub dtype: Dtype,
    /// The dimensions; empty for a scalar, and a zero anywhere makes it empty.
    pub shape: Vec<usize>,
}

impl TensorMeta {
    /// The number of elements, with overflow reported as an error.
    pub fn element_count(&self) -> Result<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| FormatError::ShapeOverflow {
                name: self.name.clone(),
                shape: self.shape.clone(),
            })
    }

    /// The number of bytes the elements take.
    pub fn byte_len(&self) -> Result<usize> {
        let elements = self.element_count()?;
        match self.dtype.byte_len(elements) {
            Some(n) => Ok(n),
            None if elements.checked_mul(self.dtype.bits()).is_none() => {
                Err(FormatError::ShapeOverflow {
                    name: self.name.clone(),
                    shape: self.shape.clone(),
                })
            }
            None => Err(FormatError::PackedNotWhole {
                name: self.name.clone(),
                dtype: self.dtype,
                elements,
            }),
        }
    }
}

/// The sha256 of `bytes` as 64 lowercase hex digits: the checksum of a
/// tensor is this over its little-endian bytes exactly as stored.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A sha256 digest's 64 lowercase hex digits, written into `out` (no
/// allocation: for loops over many tensors' checksums).
///
/// ```
/// let mut out = [0u8; 64];
/// assert_eq!(modeltool_format::sha256_digits(&[0xab; 32], &mut out), "ab".repeat(32));
/// ```
pub fn sha256_digits<'o>(sum: &[u8; 32], out: &'o mut [u8; 64]) -> &'o str {
    hex::encode_to_slice(sum, out).expect("64 digits for 32 bytes");
    std::str::from_utf8(out).expect("hex digits are ASCII")
}

/// A stored sha256 checksum: the 32 bytes of the digest. A file holds it
/// as 64 lowercase hex digits ([`Checksum::from_hex`]; `Display` writes
/// them); in memory it takes 32 bytes in place rather than a string on the
/// heap, which matters for a model of 100k tensors.
///
/// ```
/// use modeltool_format::Checksum;
/// let hex = "ab".repeat(32);
/// let sum = Checksum::from_hex(&hex).expect("64 lowercase hex digits");
/// assert_eq!(sum, Checksum([0xab; 32]));
/// assert_eq!(sum.to_string(), hex);
/// assert_eq!(Checksum::from_hex(&hex.to_uppercase()), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Checksum(pub [u8; 32]);

impl Checksum {
    /// The sha256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Checksum {
        use sha2::Digest;
        Checksum(sha2::Sha256::digest(bytes).into())
    }

    /// The sha256 of each of `slices`, computed in parallel across cores
    /// (with the default `parallel` feature).
    pub fn of_all(slices: &[&[u8]]) -> Vec<Checksum> {
        par::map(slices.to_vec(), Checksum::of)
    }

    /// The checksum written as `s`, when `s` has the form modeltool
    /// writes and accepts: 64 lowercase hex digits ([`is_sha256_hex`]).
    pub fn from_hex(s: &str) -> Option<Checksum> {
        // One pass that checks and decodes through a table (a file of 100k
        // tensors holds 100k of them; the digits are random, so a branch
        // per digit is a guess lost half the time): only lowercase digits,
        // which `hex` does not insist on.
        const NIBBLE: [u8; 256] = {
            let mut t = [0xff; 256];
            let mut i = 0;
            while i < 10 {
                t[b'0' as usize + i] = i as u8;
                i += 1;
            }
            while i < 16 {
                t[b'a' as usize + i - 10] = i as u8;
                i += 1;
            }
            t
        };
        let s: &[u8; 64] = s.as_bytes().try_into().ok()?;
        let mut sum = [0u8; 32];
        let mut bad = 0;
        for (byte, pair) in sum.iter_mut().zip(s.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[pair[0] as usize], NIBBLE[pair[1] as usize]);
            bad |= hi | lo;
            *byte = hi << 4 | lo;
        }
        (bad & 0xf0 == 0).then_some(Checksum(sum))
    }

    /// The 64 digits, written into `out` (no allocation).
    pub fn digits<'o>(&self, out: &'o mut [u8; 64]) -> &'o str {
        sha256_digits(&self.0, out)
    }
}

impl From<[u8; 32]> for Checksum {
    fn from(sum: [u8; 32]) -> Checksum {
        Checksum(sum)
    }
}

/// A checksum equals its 64 lowercase hex digits.
impl PartialEq<str> for Checksum {
    fn eq(&self, digits: &str) -> bool {
        self.digits(&mut [0; 64]) == digits
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.digits(&mut [0; 64]))
    }
}

impl std::fmt::Debug for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Checksum({self})")
    }
}

/// Whether `s` has the form of a checksum: 64 lowercase hex digits.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The `__metadata__` keys modeltool uses in safetensors files. Other
/// readers see them as ordinary string metadata and ignore them.
pub mod keys {
    /// Prefix of a tensor's checksum key: `modeltool.sha256.<tensor name>`.
    pub const SHA256_PREFIX: &str = "modeltool.sha256.";
    /// The architecture, as JSON text (the same JSON as the JSON model's `architecture`).
    pub const ARCHITECTURE: &str = "modeltool.architecture";
    /// The sha256 of the rest of the header (metadata and tensor entries),
    /// see [`crate::header_sha256()`] and [`crate::Header::check_header_sha256`].
    pub const HEADER_SHA256: &str = "modeltool.header_sha256";
}

/// A model file's metadata, split into what modeltool itself stores
/// (checksums, architecture) and the user's own string pairs.
///
/// `modeltool.header_sha256` is not kept: it describes the header it was
/// read from, not the model ([`Header::check_header_sha256`] checks it),
/// and writers compute a new one for the header they write
/// ([`Layout::with_header_sha256`], [`write_safetensors_with_header_sha256`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelMetadata {
    /// Free-form string metadata, passed through conversions untouched.
    pub user: BTreeMap<String, String>,
    /// Stored checksums by tensor name.
    pub checksums: BTreeMap<String, Checksum>,
    /// The architecture, if the file stores one.
    pub architecture: Option<serde_json::Value>,
}

impl ModelMetadata {
    /// Splits a safetensors `__metadata__` map. A malformed checksum,
    /// architecture or header checksum value is an error rather than
    /// silently user metadata; the header checksum itself is dropped.
    pub fn from_safetensors(metadata: BTreeMap<String, String>) -> Result<ModelMetadata> {
        let mut out = ModelMetadata::default();
        for (key, value) in metadata {
            if key == keys::HEADER_SHA256 {
                header_digest::check_form(&value)?;
            } else if let Some(name) = key.strip_prefix(keys::SHA256_PREFIX) {
                let Some(sum) = Checksum::from_hex(&value) else {
                    return Err(FormatError::BadValue {
                        name: name.to_owned(),
                        reason: format!(
                            "metadata key `{key}` holds `{value}`, not 64 lowercase hex digits"
                        ),
                    });
                };
                out.checksums.insert(name.to_owned(), sum);
            } else if key == keys::ARCHITECTURE {
                let arch = strict_json::from_slice(value.as_bytes()).map_err(|e| {
                    FormatError::BadValue {
                        name: keys::ARCHITECTURE.to_owned(),
                        reason: format!("metadata key `{key}` is not JSON: {e}"),
                    }
                })?;
                // `null` means none, as in a JSON model file.
                out.architecture = Some(arch).filter(|a| !a.is_null());
            } else {
                out.user.insert(key, value);
            }
        }
        Ok(out)
    }

    /// Joins everything back into one `__metadata__` map.
    pub fn to_safetensors(&self) -> BTreeMap<String, String> {
        let mut out = self.user.clone();
        for (name, sum) in &self.checksums {
            out.insert(format!("{}{name}", keys::SHA256_PREFIX), sum.to_string());
        }
        if let Some(arch) = &self.architecture {
            out.insert(keys::ARCHITECTURE.to_owned(), arch.to_string());
        }
        out
    }
}

/// Writes a complete safetensors file from tensors held in memory, with
/// exactly the metadata given. For tensors that arrive one at a time, use
/// [`Layout`] directly.
pub fn write_safetensors(
    out: impl Write,
    tensors: &[(TensorMeta, &[u8])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_with(out, tensors, metadata, Layout::new)
}

/// Like [`write_safetensors`], and adds `modeltool.header_sha256`, the
/// checksum of the header written ([`Layout::with_header_sha256`]): how
/// modeltool writes its own files.
pub fn write_safetensors_with_header_sha256(
    out: impl Write,
    tensors: &[(TensorMeta, &[u8])],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    write_with(out, tensors, metadata, Layout::with_header_sha256)
}

fn write_with(
    mut out: impl Write,
    tensors: &[(TensorMeta, &[u8])],
    metadata: &BTreeMap<String, String>,
    layout: fn(&[TensorMeta], &BTreeMap<String, String>) -> Result<Layout>,
) -> Result<()> {
    let metas: Vec<TensorMeta> = tensors.iter().map(|(m, _)| m.clone()).collect();
    let layout = layout(&metas, metadata)?;
    // Check every length before the first byte goes out.
    for (meta, data) in tensors {
        if data.len() != meta.byte_len()? {
            return Err(FormatError::BadValue {
                name: meta.name.clone(),
                reason: format!(
                    "{} bytes given for {} {:?}",
                    data.len(),
                    meta.dtype,
                    meta.shape
                ),
            });
        }
    }
    out.write_all(&layout.header)?;
    for &i in &layout.order {
        out.write_all(tensors[i].1)?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_reads_back_from_its_digits_and_nothing_else_reads() {
        for seed in 0..64u8 {
            let sum = Checksum(std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ seed));
            let digits = sum.to_string();
            assert_eq!(digits, hex::encode(sum.0));
            assert_eq!(Checksum::from_hex(&digits), Some(sum));
        }
        let good = "0123456789abcdef".repeat(4);
        assert!(Checksum::from_hex(&good).is_some());
        for bad in [
            good.to_uppercase(),
            good[1..].to_owned(),
            format!("{good}0"),
            format!("{}g", &good[..63]),
            format!("{} ", &good[..63]),
            format!("{}é", &good[..62]), // 64 bytes, 63 characters
            String::new(),
        ] {
            assert_eq!(Checksum::from_hex(&bad), None, "{bad:?}");
        }
    }
}
