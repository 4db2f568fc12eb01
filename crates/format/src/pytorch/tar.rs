//! The tar format of torch before 0.1.10, which current torch still reads
//! (`torch.load(..., weights_only=False)`, `_legacy_load`): a tar archive
//! of four entries, found by name.
//!
//! - `sys_info`: a pickled dict (`little_endian`, type sizes); optional,
//!   as torch never reads it, but a big-endian writer is refused.
//! - `pickle`: the object; each tensor (or storage) a persistent id
//!   `str(key)` naming a record of the two entries below.
//! - `tensors`: the pickled count, then per tensor the pickled
//!   `(key, storage key, tensor type)`, an `int32` ndim and 4 bytes of
//!   padding, ndim `int64` sizes, ndim `int64` strides and the `int64`
//!   storage offset.
//! - `storages`: the pickled count, then per storage the pickled
//!   `(key, location, storage class)`, its `int64` element count and its
//!   bytes; then the pickled list of storage views
//!   `(view key, root key, offset, elements)`.
//!
//! Tar entries are stored as they are, so each storage is a byte range of
//! the file. The 512-byte headers are parsed here rather than with the
//! `tar` crate: the reader works from byte ranges (a loader fetches only the
//! headers and the records, never the storages' bytes), where the `tar`
//! crate reads a `Read` stream and reports damage as `io::Error` text; a
//! torch checkpoint needs only ustar headers, plus the pax and GNU records
//! that carry a long name or a large size, which are handled.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use super::checkpoint::Checkpoint;
use super::error::{PickleError, PytorchError};
use super::legacy::class_element_size;
use super::pickle::{PickleOptions, parse_pickle};
use super::value::{RawTensor, StorageRef, Value};

/// Bytes in a tar block: headers are one block, data is padded to blocks.
pub const BLOCK: u64 = 512;

/// Most entries read before giving up: a torch checkpoint has four.
pub const MAX_ENTRIES: usize = 64;

/// Largest pax or GNU long-name record read (they hold a name or a size).
const MAX_EXTENDED: u64 = 64 << 10;

/// First read of a pickle inside an entry; doubled until the pickle fits.
const PICKLE_WINDOW: u64 = 4096;

/// Whether `head` starts like a tar archive (a ustar or GNU header).
pub fn is_tar(head: &[u8]) -> bool {
    head.len() >= 263 && &head[257..262] == b"ustar"
}

/// A tar checkpoint: its tensors and where each storage's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct TarFile {
    /// The object's tensors and values.
    pub checkpoint: Checkpoint,
    /// Every storage's bytes in the file, by key.
    pub storages: BTreeMap<String, Range<u64>>,
    /// The entries found, by name, with their data's bytes in the file.
    pub entries: BTreeMap<String, Range<u64>>,
}

/// The key a persistent id or record names: Python's `int(key)`, as text.
pub(crate) fn int_key(v: &Value) -> Option<String> {
    match v {
        Value::Int(i) => Some(i.to_string()),
        Value::Str(s) => s.trim().parse::<i64>().ok().map(|i| i.to_string()),
        Value::Bytes(b) => std::str::from_utf8(b)
            .ok()?
            .trim()
            .parse::<i64>()
            .ok()
            .map(|i| i.to_string()),
        _ => None,
    }
}

fn header_err(offset: u64, reason: impl Into<String>) -> PytorchError {
    PytorchError::TarHeader {
        offset,
        reason: reason.into(),
    }
}

/// A numeric header field: octal text (NUL- or space-terminated), or
/// base-256 when the first byte's high bit is set (GNU, for large sizes).
fn number(field: &[u8], what: &str, offset: u64) -> Result<u64, PytorchError> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return Err(header_err(offset, format!("its {what} is negative")));
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(u64::from(b)))
                .ok_or_else(|| header_err(offset, format!("its {what} overflows")))?;
        }
        return Ok(n);
    }
    let text = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect::<Vec<u8>>();
    if text.is_empty() {
        return Ok(0);
    }
    let mut n: u64 = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return Err(header_err(
                offset,
                format!("its {what} is not an octal number"),
            ));
        }
        n = n
            .checked_mul(8)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| header_err(offset, format!("its {what} overflows")))?;
    }
    Ok(n)
}

fn field_text(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `path` and `size` of a pax extended header's records
/// (`LEN KEY=VALUE\n`, LEN counting the whole record).
fn pax(data: &[u8], offset: u64) -> Result<(Option<String>, Option<u64>), PytorchError> {
    let (mut path, mut size) = (None, None);
    let mut rest = data;
    while !rest.is_empty() && rest.iter().any(|&b| b != 0) {
        let bad = || header_err(offset, "its pax record is malformed");
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&l| l > space + 1 && l <= rest.len())
            .ok_or_else(bad)?;
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (key, value) = (&record[..eq], &record[eq + 1..]);
        match key {
            b"path" => path = Some(String::from_utf8_lossy(value).into_owned()),
            b"size" => {
                size = Some(
                    std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(bad)?,
                )
            }
            _ => {}
        }
        rest = &rest[len..];
    }
    Ok((path, size))
}

/// Walks the archive's headers (one [`BLOCK`] read each) and returns every
/// regular file's name and data range. Two entries of one name are
/// refused; at most [`MAX_ENTRIES`] entries are read.
pub fn entries<'a, E: From<PytorchError>>(
    file_len: u64,
    fetch: &mut impl FnMut(Range<u64>) -> Result<Cow<'a, [u8]>, E>,
) -> Result<BTreeMap<String, Range<u64>>, E> {
    let mut found = BTreeMap::new();
    let (mut long_name, mut long_size): (Option<String>, Option<u64>) = (None, None);
    let mut at = 0u64;
    for _ in 0..MAX_ENTRIES {
        if at == file_len {
            // An archive without its end blocks: tarfile reads it too.
            return Ok(found);
        }
        if at.saturating_add(BLOCK) > file_len {
            return Err(header_err(at, "the file ends inside it").into());
        }
        let block = fetch(at..at + BLOCK)?;
        if block.iter().all(|&b| b == 0) {
            return Ok(found);
        }
        let stored = number(&block[148..156], "checksum", at)?;
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(b as i8)
                }
            })
            .sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(header_err(
                at,
                format!("checksum {stored} but its bytes sum to {unsigned}: not a tar header"),
            )
            .into());
        }
        let mut name = field_text(&block[..100]);
        if &block[257..262] == b"ustar" && block[345] != 0 {
            name = format!("{}/{name}", field_text(&block[345..500]));
        }
        let name = long_name.take().unwrap_or(name);
        let size = match long_size.take() {
            Some(s) => s,
            None => number(&block[124..136], "size", at)?,
        };
        let kind = block[156];
        drop(block);
        let data = at + BLOCK;
        let past_end = || PytorchError::TarEntryPastEnd {
            name: name.clone(),
            offset: at,
            size,
            file_len,
        };
        let end = data
            .checked_add(size)
            .filter(|&e| e <= file_len)
            .ok_or_else(past_end)?;
        match kind {
            b'x' | b'g' | b'L' => {
                if size > MAX_EXTENDED {
                    return Err(header_err(
                        at,
                        format!("an extended header of {size} bytes (at most {MAX_EXTENDED})"),
                    )
                    .into());
                }
                let bytes = fetch(data..end)?;
                match kind {
                    b'x' => (long_name, long_size) = pax(&bytes, at)?,
                    b'L' => long_name = Some(field_text(&bytes)),
                    _ => {} // global pax records: nothing torch's entries need
                }
            }
            b'0' | 0 | b'7' => {
                let name = name.strip_prefix("./").unwrap_or(&name).to_owned();
                if found.contains_key(&name) {
                    return Err(PytorchError::TarDuplicate { name }.into());
                }
                found.insert(name, data..end);
            }
            _ => {} // directories, links: nothing to read
        }
        at = end
            .checked_next_multiple_of(BLOCK)
            .ok_or_else(past_end)?
            .min(file_len);
    }
    Err(PytorchError::TarTooManyEntries { max: MAX_ENTRIES }.into())
}

/// Reads entries' records through `fetch`, which returns exactly the bytes
/// of a range within the file.
struct Reader<'f, F> {
    fetch: &'f mut F,
}

impl<'a, 'f, E, F> Reader<'f, F>
where
    E: From<PytorchError>,
    F: FnMut(Range<u64>) -> Result<Cow<'a, [u8]>, E>,
{
    /// The pickle starting at `pos` (inside an entry ending at `end`) and
    /// its length: a window of bytes is read and doubled until it fits.
    fn pickle(
        &mut self,
        entry: &'static str,
        pos: u64,
        end: u64,
        opts: &PickleOptions<'_>,
    ) -> Result<(Value, u64), E> {
        let left = end.saturating_sub(pos);
        let mut window = left.min(PICKLE_WINDOW);
        loop {
            let bytes = (self.fetch)(pos..pos + window)?;
            match parse_pickle(&bytes, opts) {
                Ok(p) => return Ok((p.value, p.len as u64)),
                Err(
                    PickleError::NoStop { .. }
                    | PickleError::Truncated { .. }
                    | PickleError::DeclaredPastEnd { .. },
                ) if window < left => window = window.saturating_mul(2).min(left),
                Err(e) => {
                    return Err(PytorchError::pickle(&format!("{entry} at byte {pos}"), e).into());
                }
            }
        }
    }

    /// `n` little-endian 8-byte integers at `pos`.
    fn i64s(&mut self, pos: u64, n: u64) -> Result<Vec<i64>, E> {
        let bytes = (self.fetch)(pos..pos + 8 * n)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    }
}

fn record_err(entry: &'static str, offset: u64, reason: impl Into<String>) -> PytorchError {
    PytorchError::TarRecord {
        entry,
        offset,
        reason: reason.into(),
    }
}

/// A count pickled at the start of an entry, checked against the records
/// the rest of the entry could hold (`min_record` bytes each).
fn count(
    entry: &'static str,
    at: u64,
    v: &Value,
    left: u64,
    min_record: u64,
) -> Result<u64, PytorchError> {
    let n = match v {
        Value::Int(n) if *n >= 0 => *n as u64,
        other => {
            return Err(record_err(
                entry,
                at,
                format!(
                    "its count is {}, not a non-negative int",
                    crate::text::cut(&other.to_string(), 40)
                ),
            ));
        }
    };
    if n > left / min_record {
        return Err(record_err(
            entry,
            at,
            format!(
                "it declares {n} records, but its {left} bytes left hold at most {}",
                left / min_record
            ),
        ));
    }
    Ok(n)
}

fn items(v: Value, n: usize) -> Option<Vec<Value>> {
    match v {
        Value::Tuple(items) | Value::List(items) if items.len() == n => Some(items),
        _ => None,
    }
}

/// A root storage read from the `storages` entry.
struct Root {
    storage: StorageRef,
    data: Range<u64>,
}

impl TarFile {
    /// Reads a tar checkpoint from the whole file's bytes.
    pub fn parse(file: &[u8], allow_globals: &[String]) -> Result<TarFile, PytorchError> {
        TarFile::read(file.len() as u64, allow_globals, &mut |r: Range<u64>| {
            Ok::<_, PytorchError>(Cow::Borrowed(&file[r.start as usize..r.end as usize]))
        })
    }

    /// Reads a tar checkpoint through `fetch`, which returns the bytes of a
    /// range of the file (never asked past `file_len`): the headers, the
    /// pickles and each storage's 8-byte element count, never a storage's
    /// bytes.
    pub fn read<'a, E: From<PytorchError>>(
        file_len: u64,
        allow_globals: &[String],
        fetch: &mut impl FnMut(Range<u64>) -> Result<Cow<'a, [u8]>, E>,
    ) -> Result<TarFile, E> {
        let entries = entries(file_len, fetch)?;
        let entry = |name: &'static str| {
            entries
                .get(name)
                .cloned()
                .ok_or(PytorchError::TarMissing { name })
        };
        let (pickle, tensors, storages) = (entry("pickle")?, entry("tensors")?, entry("storages")?);
        let mut r = Reader { fetch };
        let plain = PickleOptions::default();
        if let Some(s) = entries.get("sys_info") {
            let (info, _) = r.pickle("sys_info", s.start, s.end, &plain)?;
            if info.get("little_endian") == Some(&Value::Bool(false)) {
                return Err(PytorchError::LegacyBigEndian.into());
            }
        }

        // Storages: (key, location, class), an 8-byte count and the bytes.
        const S: &str = "storages";
        let mut pos = storages.start;
        let (n, len) = r.pickle(S, pos, storages.end, &plain)?;
        pos += len;
        let n = count(S, storages.start, &n, storages.end - pos, 10)?;
        let mut roots: BTreeMap<String, Root> = BTreeMap::new();
        for _ in 0..n {
            let at = pos;
            let (v, len) = r.pickle(S, pos, storages.end, &plain)?;
            pos += len;
            let bad = |reason: &str| record_err(S, at, reason);
            let [key, location, class] =
                items(v, 3)
                    .and_then(|i| <[Value; 3]>::try_from(i).ok())
                    .ok_or_else(|| bad("a storage record is not (key, location, storage class)"))?;
            let key = int_key(&key).ok_or_else(|| bad("a storage key is not an int"))?;
            let location = location
                .as_str()
                .ok_or_else(|| bad("a storage location is not a string"))?
                .to_owned();
            let class = match class {
                Value::Global(g) if g.module == "torch" && g.name.ends_with("Storage") => g.name,
                _ => return Err(bad("a storage class is not one of torch's").into()),
            };
            let count_at = pos;
            let lie = |reason: String| PytorchError::TarStorage {
                key: key.clone(),
                offset: count_at,
                reason,
            };
            if storages.end - pos < 8 {
                return Err(lie("the entry ends before its element count".into()).into());
            }
            let numel = r.i64s(pos, 1)?[0];
            let numel = u64::try_from(numel)
                .map_err(|_| lie(format!("its element count {numel} is negative")))?;
            let es = class_element_size(&class);
            let data = pos + 8;
            let left = storages.end - data;
            let nbytes = numel
                .checked_mul(es)
                .filter(|&b| b <= left)
                .ok_or_else(|| {
                    lie(format!(
                        "it declares {numel} elements of {es} bytes, but the entry has {left} bytes left"
                    ))
                })?;
            pos = data + nbytes;
            let storage = StorageRef {
                key: key.clone(),
                class,
                location,
                numel,
                view: None,
            };
            if roots
                .insert(
                    key.clone(),
                    Root {
                        storage,
                        data: data..pos,
                    },
                )
                .is_some()
            {
                return Err(lie("the key is used twice".into()).into());
            }
        }
        // Views of storages: (view key, root key, offset, elements).
        let at = pos;
        let (v, _) = r.pickle(S, pos, storages.end, &plain)?;
        let bad = |reason: String| record_err(S, at, reason);
        let Value::List(views) = v else {
            return Err(bad("the storage views are not a list".into()).into());
        };
        let mut objects: BTreeMap<String, Value> = roots
            .iter()
            .map(|(k, root)| (k.clone(), Value::Storage(Box::new(root.storage.clone()))))
            .collect();
        for view in views {
            let fields = items(view, 4)
                .ok_or_else(|| bad("a storage view is not (key, root, offset, elements)".into()))?;
            let key = int_key(&fields[0]).ok_or_else(|| bad("a view key is not an int".into()))?;
            let root_key =
                int_key(&fields[1]).ok_or_else(|| bad("a view's root is not an int".into()))?;
            let num = |v: &Value| match v {
                Value::Int(n) if *n >= 0 => Some(*n as u64),
                _ => None,
            };
            let (Some(offset), Some(len)) = (num(&fields[2]), num(&fields[3])) else {
                return Err(bad(format!(
                    "view {key}: its offset or size is not a non-negative int"
                ))
                .into());
            };
            let root = roots.get(&root_key).ok_or_else(|| {
                bad(format!(
                    "view {key} names storage {root_key}, which is not stored"
                ))
            })?;
            if offset
                .checked_add(len)
                .is_none_or(|e| e > root.storage.numel)
            {
                return Err(bad(format!(
                    "view {key} is elements {offset}..+{len} of storage {root_key}, which has {}",
                    root.storage.numel
                ))
                .into());
            }
            let storage = StorageRef {
                view: Some((offset, len)),
                ..root.storage.clone()
            };
            if objects
                .insert(key.clone(), Value::Storage(Box::new(storage)))
                .is_some()
            {
                return Err(bad(format!("view key {key} is used twice")).into());
            }
        }

        // Tensors: (key, storage key, type), ndim, sizes, strides, offset.
        const T: &str = "tensors";
        let mut pos = tensors.start;
        let (n, len) = r.pickle(T, pos, tensors.end, &plain)?;
        pos += len;
        let n = count(T, tensors.start, &n, tensors.end - pos, 18)?;
        for _ in 0..n {
            let at = pos;
            let (v, len) = r.pickle(T, pos, tensors.end, &plain)?;
            pos += len;
            let bad = |reason: String| record_err(T, at, reason);
            let fields = items(v, 3)
                .ok_or_else(|| bad("a tensor record is not (key, storage, type)".into()))?;
            let key =
                int_key(&fields[0]).ok_or_else(|| bad("a tensor key is not an int".into()))?;
            let lie = |reason: String| PytorchError::TarTensor {
                key: key.clone(),
                offset: at,
                reason,
            };
            let storage = match int_key(&fields[1]) {
                Some(s) => match objects.get(&s) {
                    Some(Value::Storage(s)) => (**s).clone(),
                    _ => return Err(lie(format!("its storage {s} is not stored")).into()),
                },
                None => return Err(lie("it has no storage".into()).into()),
            };
            if tensors.end - pos < 8 {
                return Err(lie("the entry ends before its dimensions".into()).into());
            }
            let ndim = r.i64s(pos, 1)?[0] as i32;
            pos += 8;
            let ndim = u64::try_from(ndim).map_err(|_| lie(format!("it has {ndim} dimensions")))?;
            let need = ndim * 16 + 8;
            if tensors.end - pos < need {
                return Err(lie(format!(
                    "its {ndim} dimensions need {need} bytes, the entry has {} left",
                    tensors.end - pos
                ))
                .into());
            }
            let nums = r.i64s(pos, 2 * ndim + 1)?;
            pos += need;
            let nums = nums
                .into_iter()
                .map(u64::try_from)
                .collect::<Result<Vec<u64>, _>>()
                .map_err(|_| lie("a size, stride or offset is negative".into()))?;
            let (shape, rest) = nums.split_at(ndim as usize);
            let (strides, offset) = rest.split_at(ndim as usize);
            let tensor = RawTensor {
                storage,
                storage_offset: offset[0],
                shape: shape.to_vec(),
                strides: strides.to_vec(),
                dtype: None,
                parameter: false,
                requires_grad: false,
            };
            if objects
                .insert(key.clone(), Value::Tensor(Box::new(tensor)))
                .is_some()
            {
                return Err(lie("its key is used twice".into()).into());
            }
        }

        // The object, whose persistent ids name those tensors and storages.
        let opts = PickleOptions {
            allow_globals,
            torchscript: false,
            tar_objects: Some(&objects),
        };
        let (value, _) = r.pickle("pickle", pickle.start, pickle.end, &opts)?;
        let checkpoint = Checkpoint::from_value(&value)?;
        let mut ranges = BTreeMap::new();
        for (key, s) in &checkpoint.storages {
            let root = roots.get(key).ok_or_else(|| PytorchError::StorageMissing {
                tensor: key.clone(),
                key: key.clone(),
            })?;
            if root.data.end - root.data.start != s.nbytes {
                return Err(PytorchError::StorageSize {
                    key: key.clone(),
                    declared: s.nbytes,
                    found: root.data.end - root.data.start,
                }
                .into());
            }
            ranges.insert(key.clone(), root.data.clone());
        }
        Ok(TarFile {
            checkpoint,
            storages: ranges,
            entries,
        })
    }
}
