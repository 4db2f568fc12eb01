//! The safetensors container: an 8-byte little-endian header length, a UTF-8
//! JSON header, then the tensors' bytes, contiguous from offset 0.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer as _};

use crate::error::{FormatError, Result};
use crate::{Dtype, TensorMeta};

/// The largest header accepted, as in the reference implementation (100 MB).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The key of the free-form string metadata in a safetensors header.
pub const METADATA_KEY: &str = "__metadata__";

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// Start and end of the bytes, relative to the start of the data section.
    pub data_offsets: (u64, u64),
}

impl TensorInfo {
    /// The number of bytes the tensor takes.
    pub fn byte_len(&self) -> u64 {
        self.data_offsets.1 - self.data_offsets.0
    }
}

/// A parsed, validated safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The tensors, in the order of their bytes in the file.
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` string map (empty when absent).
    pub metadata: BTreeMap<String, String>,
    /// The length of the JSON header in bytes (the number in the first 8 bytes).
    pub header_len: u64,
}

impl Header {
    /// Reads the header length from a file's first 8 bytes and checks it
    /// against the cap and the file size.
    pub fn read_len(prefix: &[u8], file_len: u64) -> Result<u64> {
        let Some(bytes) = prefix.get(..8) else {
            return Err(FormatError::TooShort {
                len: file_len.min(prefix.len() as u64),
            });
        };
        let len = u64::from_le_bytes(bytes.try_into().expect("slice of 8 bytes"));
        if len > MAX_HEADER_LEN {
            return Err(FormatError::HeaderTooLarge {
                len,
                max: MAX_HEADER_LEN,
            });
        }
        let available = file_len.saturating_sub(8);
        if len > available {
            return Err(FormatError::HeaderPastEnd { len, available });
        }
        Ok(len)
    }

    /// Parses and validates a header: `json` is the header text, `data_len`
    /// the number of bytes after it. Every tensor's bytes must lie in the
    /// data, contiguous from 0, without holes, overlaps or trailing bytes.
    pub fn parse(json: &[u8], data_len: u64) -> Result<Header> {
        if let Err(e) = std::str::from_utf8(json) {
            return Err(FormatError::HeaderNotUtf8 {
                offset: e.valid_up_to(),
            });
        }
        // Each entry is validated as it is read, into one vector sized
        // up front: no second list of raw entries, and no doubling copies
        // of a million-tensor list (capacity never written to costs
        // address space, not memory).
        let mut failure = None;
        let mut de = serde_json::Deserializer::from_slice(json);
        let parsed = de
            .deserialize_map(RawHeaderVisitor {
                capacity: entry_count_hint(json),
                failure: &mut failure,
            })
            .and_then(|raw| de.end().map(|()| raw));
        if let Some(e) = failure {
            return Err(e);
        }
        let raw = parsed?;
        let mut tensors = raw.tensors;
        check_coverage(&mut tensors, data_len)?;
        Ok(Header {
            tensors,
            metadata: raw.metadata,
            header_len: json.len() as u64,
        })
    }

    /// Parses the header of a whole file held in memory (or memory-mapped:
    /// only the header's pages are read).
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Header> {
        let len = Header::read_len(bytes, bytes.len() as u64)?;
        let end = 8 + len as usize;
        Header::parse(&bytes[8..end], (bytes.len() - end) as u64)
    }

    /// Where the data section starts in the file: 8 + the header length.
    pub fn data_start(&self) -> u64 {
        8 + self.header_len
    }

    /// The size of the data section.
    pub fn data_len(&self) -> u64 {
        self.tensors.last().map_or(0, |t| t.data_offsets.1)
    }
}

fn check_coverage(tensors: &mut [TensorInfo], data_len: u64) -> Result<()> {
    for t in tensors.iter() {
        if t.data_offsets.1 > data_len {
            return Err(FormatError::OutOfRange {
                name: t.meta.name.clone(),
                end: t.data_offsets.1,
                data_len,
            });
        }
    }
    tensors.sort_by_key(|t| t.data_offsets);
    let mut end = 0u64;
    let mut previous: Option<&TensorInfo> = None;
    for t in tensors.iter() {
        let (begin, stop) = t.data_offsets;
        if begin > end {
            return Err(FormatError::Hole {
                name: t.meta.name.clone(),
                begin: end,
                end: begin,
            });
        }
        if begin < end {
            let p = previous.expect("a tensor ends after 0, so one came before");
            return Err(FormatError::Overlap {
                name: t.meta.name.clone(),
                begin,
                previous: p.meta.name.clone(),
                previous_end: p.data_offsets.1,
            });
        }
        end = stop;
        previous = Some(t);
    }
    if end != data_len {
        return Err(FormatError::TrailingBytes {
            trailing: data_len - end,
            data_len,
            used: end,
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename = "an object with dtype, shape and data_offsets"
)]
struct RawEntry<'a> {
    /// Borrowed from the header (no allocation per tensor) unless escaped.
    #[serde(borrow)]
    dtype: Cow<'a, str>,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

impl RawEntry<'_> {
    fn validate(self, name: String) -> Result<TensorInfo> {
        let dtype: Dtype = match self.dtype.parse() {
            Ok(d) => d,
            Err(_) => {
                return Err(FormatError::UnknownDtype {
                    name,
                    dtype: self.dtype.into_owned(),
                });
            }
        };
        let mut shape = self.shape;
        // Parsed into a vector of at least 4 dimensions: a header of a
        // million tensors keeps only what they have.
        shape.shrink_to_fit();
        let meta = TensorMeta { name, dtype, shape };
        let expected = meta.byte_len()? as u64;
        let (begin, end) = self.data_offsets;
        if begin > end {
            return Err(FormatError::OffsetsReversed {
                name: meta.name,
                begin,
                end,
            });
        }
        if end - begin != expected {
            return Err(FormatError::SizeMismatch {
                name: meta.name,
                dtype: meta.dtype,
                shape: meta.shape,
                expected,
                actual: end - begin,
            });
        }
        Ok(TensorInfo {
            meta,
            data_offsets: self.data_offsets,
        })
    }
}

/// An upper bound of the number of tensor entries in a header, to size
/// the list once: every entry has a `data_offsets` key (a key written with
/// escapes is not counted, and the list then grows as usual), and an
/// entry takes at least [`MIN_ENTRY_LEN`] bytes whatever else holds that
/// text.
fn entry_count_hint(json: &[u8]) -> usize {
    memchr::memmem::find_iter(json, b"\"data_offsets\"")
        .count()
        .min(json.len() / MIN_ENTRY_LEN)
}

/// The shortest tensor entry: `"":{"dtype":"I8","shape":[],"data_offsets":[0,1]},`.
const MIN_ENTRY_LEN: usize = 48;

struct RawHeader {
    metadata: BTreeMap<String, String>,
    tensors: Vec<TensorInfo>,
}

/// Reads the header object, validating each tensor entry as it comes. A
/// validation error is kept in `failure` (and the parse stopped), so that
/// it reaches the caller as its own [`FormatError`] variant.
struct RawHeaderVisitor<'f> {
    capacity: usize,
    failure: &'f mut Option<FormatError>,
}

impl<'de> Visitor<'de> for RawHeaderVisitor<'_> {
    type Value = RawHeader;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object mapping tensor names to {dtype, shape, data_offsets}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawHeader, A::Error> {
        let mut metadata = None;
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(self.capacity);
        // Names seen, by hash, to the index of the first with that hash: 12
        // bytes a tensor instead of a second copy of every name (a header
        // of a million tensors is common enough).
        let hasher = RandomState::new();
        let mut seen: HashMap<u64, u32> = HashMap::with_capacity(self.capacity);
        while let Some(key) = map.next_key::<String>()? {
            if key == METADATA_KEY {
                if metadata.is_some() {
                    return Err(de::Error::custom("`__metadata__` appears twice"));
                }
                metadata = Some(map.next_value_seed(StringMap("`__metadata__`"))?);
                continue;
            }
            let h = hasher.hash_one(&key);
            let twice = match seen.get(&h) {
                Some(&i) => {
                    tensors[i as usize].meta.name == key
                        // Another name with the same hash: look at all.
                        || tensors.iter().any(|t| t.meta.name == key)
                }
                None => {
                    let i = u32::try_from(tensors.len())
                        .map_err(|_| de::Error::custom("more than 4294967295 tensors"))?;
                    seen.insert(h, i);
                    false
                }
            };
            if twice {
                return Err(de::Error::custom(format_args!(
                    "tensor `{key}` appears twice"
                )));
            }
            let entry = map.next_value::<RawEntry>().map_err(|e| {
                de::Error::custom(format_args!(
                    "tensor `{key}`: {}",
                    strip_position(&e.to_string())
                ))
            })?;
            match entry.validate(key) {
                Ok(t) => tensors.push(t),
                Err(e) => {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("invalid tensor entry"));
                }
            }
        }
        // A hint too large (text that only looks like entries) gives back
        // what it took.
        tensors.shrink_to_fit();
        Ok(RawHeader {
            metadata: metadata.unwrap_or_default(),
            tensors,
        })
    }
}

/// Drops serde_json's " at line L column C" so that it is appended once, by
/// the outer error.
pub(crate) fn strip_position(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

/// Deserializes a JSON object whose values must all be strings; `what`
/// names it in errors. `null` counts as empty.
pub(crate) struct StringMap(pub(crate) &'static str);

impl<'de> DeserializeSeed<'de> for StringMap {
    type Value = BTreeMap<String, String>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for StringMap {
    type Value = BTreeMap<String, String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to be an object of strings", self.0)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(BTreeMap::new())
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<serde_json::Value>()?;
            match value {
                serde_json::Value::String(s) => {
                    if out.insert(key.clone(), s).is_some() {
                        return Err(de::Error::custom(format_args!(
                            "{} key `{key}` appears twice",
                            self.0
                        )));
                    }
                }
                other => {
                    return Err(de::Error::custom(format_args!(
                        "{} value for key `{key}` is {}, not a string",
                        self.0,
                        json_kind(&other)
                    )));
                }
            }
        }
        Ok(out)
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Where each tensor goes in a safetensors file about to be written.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The first bytes of the file: the 8-byte length and the JSON header,
    /// padded with spaces so that the data starts at a multiple of 8.
    pub header: Vec<u8>,
    /// Indices into the tensors given to [`Layout::new`], in the order their
    /// bytes must follow the header.
    pub order: Vec<usize>,
    /// Each tensor's `data_offsets`, indexed like the tensors given.
    pub offsets: Vec<(u64, u64)>,
    /// The size of the data section.
    pub data_len: u64,
}

/// The data section of a safetensors file modeltool writes.
pub(crate) struct DataPlan {
    /// The tensors' indices in the order their bytes follow the header:
    /// decreasing alignment, then name, so that each starts naturally aligned.
    pub order: Vec<usize>,
    /// Each tensor's `data_offsets`, indexed like the tensors given.
    pub offsets: Vec<(u64, u64)>,
    /// The section's length.
    pub len: u64,
}

/// Plans the data section of `tensors` (see [`DataPlan`]).
pub(crate) fn data_plan<T: std::borrow::Borrow<TensorMeta>>(tensors: &[T]) -> Result<DataPlan> {
    let meta = |i: usize| tensors[i].borrow();
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (meta(a), meta(b));
        b.dtype
            .alignment()
            .cmp(&a.dtype.alignment())
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut offsets = vec![(0, 0); tensors.len()];
    let mut end = 0u64;
    for &i in &order {
        let len = meta(i).byte_len()? as u64;
        let stop = end
            .checked_add(len)
            .ok_or_else(|| FormatError::ShapeOverflow {
                name: meta(i).name.clone(),
                shape: meta(i).shape.clone(),
            })?;
        offsets[i] = (end, stop);
        end = stop;
    }
    Ok(DataPlan {
        order,
        offsets,
        len: end,
    })
}

impl Layout {
    /// Plans a file: tensors are ordered by decreasing alignment, then by
    /// name, so that each starts naturally aligned for its dtype (the data
    /// section itself starts at a multiple of 8).
    pub fn new(tensors: &[TensorMeta], metadata: &BTreeMap<String, String>) -> Result<Layout> {
        let mut seen = HashSet::new();
        for t in tensors {
            if t.name == METADATA_KEY {
                return Err(FormatError::BadValue {
                    name: t.name.clone(),
                    reason: "`__metadata__` is reserved by safetensors and cannot name a tensor"
                        .into(),
                });
            }
            if !seen.insert(t.name.as_str()) {
                return Err(FormatError::DuplicateTensor {
                    name: t.name.clone(),
                });
            }
        }
        let DataPlan {
            order,
            offsets,
            len: end,
        } = data_plan(tensors)?;

        let mut json = Vec::with_capacity(64 + tensors.len() * 96);
        json.push(b'{');
        if !metadata.is_empty() {
            write_json_string(&mut json, METADATA_KEY);
            json.push(b':');
            serde_json::to_writer(&mut json, metadata)?;
        }
        for &i in &order {
            let t = &tensors[i];
            if json.len() > 1 {
                json.push(b',');
            }
            write_json_string(&mut json, &t.name);
            json.extend_from_slice(b":{\"dtype\":\"");
            json.extend_from_slice(t.dtype.name().as_bytes());
            json.extend_from_slice(b"\",\"shape\":");
            serde_json::to_writer(&mut json, &t.shape)?;
            let (a, b) = offsets[i];
            json.extend_from_slice(format!(",\"data_offsets\":[{a},{b}]}}").as_bytes());
        }
        json.push(b'}');
        while json.len() % 8 != 0 {
            json.push(b' ');
        }
        let len = json.len() as u64;
        if len > MAX_HEADER_LEN {
            return Err(FormatError::HeaderTooLarge {
                len,
                max: MAX_HEADER_LEN,
            });
        }
        let mut header = Vec::with_capacity(8 + json.len());
        header.extend_from_slice(&len.to_le_bytes());
        header.extend_from_slice(&json);
        Ok(Layout {
            header,
            order,
            offsets,
            data_len: end,
        })
    }

    /// The size of the whole file.
    pub fn file_len(&self) -> u64 {
        self.header.len() as u64 + self.data_len
    }
}

pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("writing a string to a Vec cannot fail");
}
