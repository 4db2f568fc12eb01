//! The legacy stream (`torch.save(..., _use_new_zipfile_serialization=False)`,
//! and every file of torch 0.1.10 to 1.5): five pickles back to back (the
//! magic number, the protocol version 1001, the writer's sys info, the
//! object, the list of storage keys), then each storage in the order of
//! that list as an 8-byte little-endian element count and its bytes.

use std::collections::BTreeMap;
use std::ops::Range;

use super::checkpoint::Checkpoint;
use super::error::PickleError;
use super::error::PytorchError;
use super::pickle::{PickleOptions, parse_pickle};
use super::value::{StorageRef, Value};

/// The magic number, as the 10 little-endian bytes `LONG1` stores.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether `head` starts like a legacy stream: a protocol-2 pickle of the
/// magic number (`\x80\x02\x8a\x0a` and its bytes).
pub fn is_legacy(head: &[u8]) -> bool {
    head.len() >= 14 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10 && head[4..14] == MAGIC
}

/// A legacy checkpoint: its tensors and where each storage's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyFile {
    /// The object's tensors and values.
    pub checkpoint: Checkpoint,
    /// Every storage's bytes in the file, by key.
    pub storages: BTreeMap<String, Range<u64>>,
    /// Storages whose 8-byte element count lay beyond the head given to
    /// [`LegacyFile::parse_head`]: key, the count's offset and the count the
    /// pickle declares. Check each with [`LegacyFile::check_count`] before
    /// trusting its range.
    pub unchecked: Vec<(String, u64, u64)>,
}

/// Bytes per element of a storage class, for every class torch has.
pub(crate) fn class_element_size(class: &str) -> u64 {
    match class {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "ComplexDoubleStorage" => 16,
        "FloatStorage" | "IntStorage" | "QInt32Storage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        _ => 1,
    }
}

fn storage_refs(v: &Value, out: &mut BTreeMap<String, StorageRef>) {
    match v {
        Value::Storage(s) => {
            out.entry(s.key.clone()).or_insert_with(|| (**s).clone());
        }
        Value::Tensor(t) => {
            out.entry(t.storage.key.clone())
                .or_insert_with(|| t.storage.clone());
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.iter().for_each(|i| storage_refs(i, out));
        }
        Value::Dict(items) => items.iter().for_each(|(k, v)| {
            storage_refs(k, out);
            storage_refs(v, out);
        }),
        Value::Object(o) => {
            o.args.iter().for_each(|i| storage_refs(i, out));
            if let Some(s) = &o.state {
                storage_refs(s, out);
            }
        }
        _ => {}
    }
}

impl LegacyFile {
    /// Reads a legacy stream from the whole file's bytes: every storage's
    /// element count is checked.
    pub fn parse(file: &[u8], allow_globals: &[String]) -> Result<LegacyFile, PytorchError> {
        let f = LegacyFile::parse_head(file, file.len() as u64, allow_globals)?;
        debug_assert!(f.unchecked.is_empty());
        Ok(f)
    }

    /// Reads a legacy stream from its first bytes (`head`) and the file's
    /// length: the stream has no index, so the pickles come first and the
    /// storages' places follow from their declared sizes. A head that ends
    /// inside the pickles is [`PytorchError::LegacyHeadShort`]: read more
    /// (double it) and call again. Counts past the head are listed in
    /// [`LegacyFile::unchecked`].
    pub fn parse_head(
        file: &[u8],
        file_len: u64,
        allow_globals: &[String],
    ) -> Result<LegacyFile, PytorchError> {
        let plain = PickleOptions::default();
        let opts = PickleOptions {
            allow_globals,
            ..PickleOptions::default()
        };
        let mut pos = 0usize;
        let mut next = |what: &str, opts: &PickleOptions<'_>| {
            let p = parse_pickle(&file[pos..], opts).map_err(|e| match e {
                PickleError::NoStop { .. }
                | PickleError::Truncated { .. }
                | PickleError::DeclaredPastEnd { .. }
                    if (file.len() as u64) < file_len =>
                {
                    PytorchError::LegacyHeadShort {
                        have: file.len() as u64,
                    }
                }
                e => PytorchError::pickle(&format!("legacy stream, {what} at byte {pos}"), e),
            })?;
            pos += p.len;
            Ok::<_, PytorchError>(p.value)
        };
        match next("magic number", &plain)? {
            Value::BigInt(b) if b == MAGIC => {}
            _ => return Err(PytorchError::LegacyMagic),
        }
        match next("protocol version", &plain)? {
            Value::Int(1001) => {}
            other => {
                return Err(PytorchError::LegacyProtocol {
                    found: crate::text::cut(&other.to_string(), 80).into_owned(),
                });
            }
        }
        let sys_info = next("sys info", &plain)?;
        if sys_info.get("little_endian") == Some(&Value::Bool(false)) {
            return Err(PytorchError::LegacyBigEndian);
        }
        let value = next("object", &opts)?;
        let keys = next("storage keys", &plain)?;
        let checkpoint = Checkpoint::from_value(&value)?;

        let mut refs = BTreeMap::new();
        storage_refs(&value, &mut refs);
        let keys = match keys {
            Value::List(k) => k,
            other => {
                return Err(PytorchError::LegacyKeys {
                    reason: format!("a {} instead of a list", other.kind()),
                });
            }
        };
        let mut storages = BTreeMap::new();
        let mut unchecked = Vec::new();
        let mut at = pos as u64;
        for k in keys {
            let key = match k {
                Value::Str(s) => s,
                other => {
                    return Err(PytorchError::LegacyKeys {
                        reason: format!("a key is a {}", other.kind()),
                    });
                }
            };
            let r = refs.get(&key).ok_or_else(|| PytorchError::LegacyKeys {
                reason: format!(
                    "`{}` is not a storage of the object",
                    crate::text::escape(&key)
                ),
            })?;
            let bad = |reason: String| PytorchError::LegacyStorage {
                key: key.clone(),
                offset: at,
                reason,
            };
            if at.saturating_add(8) > file_len {
                return Err(bad("the file ends before its size".into()));
            }
            let start = usize::try_from(at).unwrap_or(usize::MAX);
            match file.get(start..start.saturating_add(8)) {
                Some(prefix) => check_count(&key, at, prefix, r.numel)?,
                None => unchecked.push((key.clone(), at, r.numel)),
            }
            let len = r
                .numel
                .checked_mul(class_element_size(&r.class))
                .ok_or_else(|| bad("its size overflows".into()))?;
            let data = at + 8;
            let end = data
                .checked_add(len)
                .filter(|&e| e <= file_len)
                .ok_or_else(|| {
                    bad(format!(
                        "its {len} bytes run past the end of the file ({file_len} bytes)"
                    ))
                })?;
            if storages.insert(key.clone(), data..end).is_some() {
                return Err(PytorchError::LegacyKeys {
                    reason: format!("`{}` is listed twice", crate::text::escape(&key)),
                });
            }
            at = end;
        }
        for s in checkpoint.storages.values() {
            let Some(r) = storages.get(&s.key) else {
                return Err(PytorchError::LegacyKeys {
                    reason: format!("`{}` is used but not stored", crate::text::escape(&s.key)),
                });
            };
            if r.end - r.start != s.nbytes {
                return Err(PytorchError::StorageSize {
                    key: s.key.clone(),
                    declared: s.nbytes,
                    found: r.end - r.start,
                });
            }
        }
        Ok(LegacyFile {
            checkpoint,
            storages,
            unchecked,
        })
    }

    /// Checks a storage's 8-byte element count (read at the offset
    /// [`LegacyFile::unchecked`] gives) against the pickle's.
    pub fn check_count(&self, key: &str, count: &[u8]) -> Result<(), PytorchError> {
        match self.unchecked.iter().find(|(k, _, _)| k == key) {
            Some((_, at, numel)) => check_count(key, *at, count, *numel),
            None => Ok(()),
        }
    }
}

fn check_count(key: &str, at: u64, count: &[u8], declared: u64) -> Result<(), PytorchError> {
    let bad = |reason: String| PytorchError::LegacyStorage {
        key: key.to_owned(),
        offset: at,
        reason,
    };
    let Some(bytes) = count.get(..8) else {
        return Err(bad("fewer than 8 bytes of its size given".into()));
    };
    let mut n = [0u8; 8];
    n.copy_from_slice(bytes);
    let numel = u64::from_le_bytes(n);
    if numel != declared {
        return Err(bad(format!(
            "it holds {numel} elements, the pickle declares {declared}"
        )));
    }
    Ok(())
}
