//! A safetensors header with modeltool's checksums, written straight to
//! bytes: the same bytes as [`Layout::with_header_sha256`] with every
//! tensor's `modeltool.sha256.<name>` in its metadata, without building the
//! metadata map, the header or the canonical description in memory. A
//! header of 100k small tensors is about 20 MB of JSON; the maps and the
//! copies of it cost several times that.
//!
//! [`Layout::with_header_sha256`]: crate::Layout::with_header_sha256

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{self, Write};

use sha2::{Digest, Sha256};

use crate::error::{FormatError, Result};
use crate::safetensors::{MAX_HEADER_LEN, METADATA_KEY};
use crate::{TensorMeta, keys};

/// A safetensors file's header planned before its tensors are written:
/// where each tensor goes, and the header's length, which does not depend
/// on the checksums (they are 64 hex digits each). The header itself is
/// written by [`HeaderPlan::write`] once the checksums are known.
///
/// ```
/// use std::collections::BTreeMap;
/// use modeltool_format::{Dtype, HeaderPlan, Layout, TensorMeta, keys};
///
/// let a = TensorMeta { name: "a".into(), dtype: Dtype::F32, shape: vec![2] };
/// let user = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
/// let plan = HeaderPlan::new(vec![&a], &user)?;
/// let mut header = Vec::new();
/// plan.write(&[[0xab; 32]], &mut header)?;
///
/// // The same bytes as a layout of the whole metadata map.
/// let mut all = user.clone();
/// all.insert(format!("{}a", keys::SHA256_PREFIX), "ab".repeat(32));
/// assert_eq!(header, Layout::with_header_sha256(&[a.clone()], &all)?.header);
/// assert_eq!(header.len(), plan.header_len());
/// # Ok::<(), modeltool_format::FormatError>(())
/// ```
#[derive(Debug)]
pub struct HeaderPlan<'a> {
    tensors: Vec<&'a TensorMeta>,
    /// The metadata other than the checksum keys of these tensors, with
    /// `modeltool.header_sha256` (its value is written in its place).
    metadata: BTreeMap<&'a str, &'a str>,
    /// Tensor indices in the order their bytes follow the header.
    order: Vec<usize>,
    /// Each tensor's `data_offsets`, indexed like the tensors.
    offsets: Vec<(u64, u64)>,
    /// Tensor indices by name (byte order).
    by_name: Vec<u32>,
    data_len: u64,
    /// The whole header: the 8-byte length, the JSON and its padding.
    header_len: usize,
}

/// Where the value of `modeltool.header_sha256` goes in `metadata`.
const HEADER_PLACEHOLDER: &str = "";

impl<'a> HeaderPlan<'a> {
    /// Plans the header of `tensors` (in any order: they are laid out as
    /// [`crate::Layout::new`] lays them out) with the `__metadata__` pairs
    /// `metadata` plus, for every tensor, `modeltool.sha256.<name>`, and
    /// `modeltool.header_sha256`. A pair of `metadata` under one of those
    /// keys is replaced, as inserting them into the map would.
    pub fn new(
        tensors: Vec<&'a TensorMeta>,
        metadata: &'a BTreeMap<String, String>,
    ) -> Result<HeaderPlan<'a>> {
        let n = u32::try_from(tensors.len()).map_err(|_| FormatError::BadValue {
            name: METADATA_KEY.to_owned(),
            reason: "more than 4294967295 tensors in one file".into(),
        })?;
        if let Some(t) = tensors.iter().find(|t| t.name == METADATA_KEY) {
            return Err(FormatError::BadValue {
                name: t.name.clone(),
                reason: "`__metadata__` is reserved by safetensors and cannot name a tensor".into(),
            });
        }
        let mut by_name: Vec<u32> = (0..n).collect();
        by_name.sort_unstable_by(|&a, &b| {
            tensors[a as usize]
                .name
                .cmp(&tensors[b as usize].name)
                .then(a.cmp(&b))
        });
        if let Some(w) = by_name
            .windows(2)
            .find(|w| tensors[w[0] as usize].name == tensors[w[1] as usize].name)
        {
            return Err(FormatError::DuplicateTensor {
                name: tensors[w[0] as usize].name.clone(),
            });
        }
        let crate::safetensors::DataPlan {
            order,
            offsets,
            len: end,
        } = crate::safetensors::data_plan(&tensors)?;
        let named = |name: &str| {
            by_name
                .binary_search_by(|&i| tensors[i as usize].name.as_str().cmp(name))
                .is_ok()
        };
        let mut meta: BTreeMap<&str, &str> = metadata
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(keys::SHA256_PREFIX)
                    .is_none_or(|n| !named(n))
            })
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        meta.insert(keys::HEADER_SHA256, HEADER_PLACEHOLDER);
        let mut plan = HeaderPlan {
            tensors,
            metadata: meta,
            order,
            offsets,
            by_name,
            data_len: end,
            header_len: 0,
        };
        let mut count = Count(0);
        let zeros = vec![[0u8; 32]; plan.tensors.len()];
        plan.write_json(&zeros, &"0".repeat(64), &mut count)
            .expect("counting cannot fail");
        let json_len = count.0.next_multiple_of(8);
        if json_len > MAX_HEADER_LEN {
            return Err(FormatError::HeaderTooLarge {
                len: json_len,
                max: MAX_HEADER_LEN,
            });
        }
        plan.header_len = 8 + json_len as usize;
        Ok(plan)
    }

    /// Tensor indices in the order their bytes must follow the header.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Each tensor's `data_offsets`, indexed like the tensors given.
    pub fn offsets(&self) -> &[(u64, u64)] {
        &self.offsets
    }

    /// The size of the data section.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// The bytes [`HeaderPlan::write`] writes: the 8-byte length, the JSON
    /// and its padding.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Writes the header with `sums` (each tensor's sha256, indexed like
    /// the tensors given) as the tensors' checksums, and the header
    /// checksum they make; returns that header checksum.
    pub fn write(&self, sums: &[[u8; 32]], mut out: impl Write) -> Result<String> {
        assert_eq!(sums.len(), self.tensors.len(), "a checksum per tensor");
        // Buffered: the description comes in pieces of a few bytes.
        let mut hasher = io::BufWriter::with_capacity(64 << 10, HashWriter(Sha256::new()));
        self.write_canonical(sums, &mut hasher)
            .expect("hashing cannot fail");
        let hasher = hasher
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
            .expect("hashing cannot fail");
        let digest = hex::encode(hasher.0.finalize());
        let json_len = self.header_len - 8;
        out.write_all(&(json_len as u64).to_le_bytes())?;
        let mut count = Count(0);
        self.write_json(sums, &digest, &mut Tee(&mut out, &mut count))?;
        let pad = json_len as u64 - count.0;
        assert!(pad < 8, "checksums have a fixed length");
        out.write_all(&b"       "[..pad as usize])?;
        Ok(digest)
    }

    /// Calls `f` with every metadata pair in key order: the pairs given and
    /// the checksum keys; `header` stands for `modeltool.header_sha256`'s
    /// value, and `None` leaves that pair out.
    fn each_pair(
        &self,
        sums: &[[u8; 32]],
        header: Option<&str>,
        mut f: impl FnMut(Key<'_>, &str) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut hex_sum = [0u8; 64];
        let mut sums_by_name = self.by_name.iter().map(|&i| i as usize).peekable();
        let mut given = self
            .metadata
            .iter()
            .filter(|&(&k, _)| header.is_some() || k != keys::HEADER_SHA256)
            .peekable();
        loop {
            let take_given = match (given.peek(), sums_by_name.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(&(&k, _)), Some(&i)) => {
                    let sum_key = keys::SHA256_PREFIX
                        .bytes()
                        .chain(self.tensors[i].name.bytes());
                    k.bytes().cmp(sum_key) == Ordering::Less
                }
            };
            if take_given {
                let (&k, &v) = given.next().expect("peeked");
                let v = if k == keys::HEADER_SHA256 {
                    header.expect("left out without a value")
                } else {
                    v
                };
                f(Key::Plain(k), v)?;
            } else {
                let i = sums_by_name.next().expect("peeked");
                let v = crate::sha256_digits(&sums[i], &mut hex_sum);
                f(Key::Sum(&self.tensors[i].name), v)?;
            }
        }
    }

    /// The header's JSON, as [`crate::Layout::new`] writes it.
    fn write_json(&self, sums: &[[u8; 32]], header: &str, out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{")?;
        write_str(out, METADATA_KEY)?;
        out.write_all(b":{")?;
        let mut first = true;
        self.each_pair(sums, Some(header), |k, v| write_pair(out, &mut first, k, v))?;
        out.write_all(b"}")?;
        for &i in &self.order {
            let t = self.tensors[i];
            out.write_all(b",")?;
            write_str(out, &t.name)?;
            out.write_all(b":{\"dtype\":\"")?;
            out.write_all(t.dtype.name().as_bytes())?;
            out.write_all(b"\",\"shape\":")?;
            write_shape(out, &t.shape)?;
            let (a, b) = self.offsets[i];
            out.write_all(b",\"data_offsets\":")?;
            write_pair_of(out, a, b)?;
            out.write_all(b"}")?;
        }
        out.write_all(b"}")
    }

    /// The canonical description `modeltool.header_sha256` is the sha256
    /// of ([`crate::canonical_header`]).
    fn write_canonical(&self, sums: &[[u8; 32]], out: &mut impl Write) -> io::Result<()> {
        out.write_all(b"{\"metadata\":{")?;
        let mut first = true;
        self.each_pair(sums, None, |k, v| write_pair(out, &mut first, k, v))?;
        out.write_all(b"},\"tensors\":{")?;
        for (n, &i) in self.by_name.iter().enumerate() {
            let t = self.tensors[i as usize];
            if n > 0 {
                out.write_all(b",")?;
            }
            write_str(out, &t.name)?;
            let (a, b) = self.offsets[i as usize];
            out.write_all(b":{\"data_offsets\":")?;
            write_pair_of(out, a, b)?;
            out.write_all(b",\"dtype\":\"")?;
            out.write_all(t.dtype.name().as_bytes())?;
            out.write_all(b"\",\"shape\":")?;
            write_shape(out, &t.shape)?;
            out.write_all(b"}")?;
        }
        out.write_all(b"}}")
    }
}

/// A metadata key: as given, or a tensor's checksum key.
#[derive(Clone, Copy)]
enum Key<'s> {
    Plain(&'s str),
    /// `modeltool.sha256.` and this tensor name.
    Sum(&'s str),
}

fn write_pair(out: &mut impl Write, first: &mut bool, key: Key<'_>, value: &str) -> io::Result<()> {
    if !std::mem::take(first) {
        out.write_all(b",")?;
    }
    match key {
        Key::Plain(k) => write_str(out, k)?,
        Key::Sum(name) => {
            // Escaping works character by character, and the prefix has
            // nothing to escape: the key's text is the prefix's and the
            // name's, joined.
            out.write_all(b"\"")?;
            out.write_all(keys::SHA256_PREFIX.as_bytes())?;
            if name.bytes().any(needs_escape) {
                let mut name_text = Vec::with_capacity(name.len() + 2);
                serde_json::to_writer(&mut name_text, name).map_err(io::Error::other)?;
                out.write_all(&name_text[1..])?;
            } else {
                out.write_all(name.as_bytes())?;
                out.write_all(b"\"")?;
            }
        }
    }
    out.write_all(b":")?;
    write_str(out, value)
}

/// A string as serde_json writes it. Names that need no escape (nearly
/// all) are copied between quotes: a header of 100k tensors writes 200k
/// strings, and a serializer a string costs more than the copy.
fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    if s.bytes().any(needs_escape) {
        return serde_json::to_writer(out, s).map_err(io::Error::other);
    }
    out.write_all(b"\"")?;
    out.write_all(s.as_bytes())?;
    out.write_all(b"\"")
}

/// The bytes serde_json escapes in a string: quote, backslash and the
/// control characters.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// A shape as serde_json writes a list of integers.
fn write_shape(out: &mut impl Write, shape: &[usize]) -> io::Result<()> {
    out.write_all(b"[")?;
    for (k, d) in shape.iter().enumerate() {
        if k > 0 {
            out.write_all(b",")?;
        }
        out.write_all(itoa::Buffer::new().format(*d).as_bytes())?;
    }
    out.write_all(b"]")
}

/// `[a,b]`.
fn write_pair_of(out: &mut impl Write, a: u64, b: u64) -> io::Result<()> {
    let mut n = itoa::Buffer::new();
    out.write_all(b"[")?;
    out.write_all(n.format(a).as_bytes())?;
    out.write_all(b",")?;
    out.write_all(n.format(b).as_bytes())?;
    out.write_all(b"]")
}

/// Counts the bytes written.
struct Count(u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes to both.
struct Tee<'w, A, B>(&'w mut A, &'w mut B);

impl<A: Write, B: Write> Write for Tee<'_, A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(buf)?;
        self.1.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Feeds what is written into the hash.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dtype, Layout, header_sha256};

    fn meta(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
        TensorMeta {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        }
    }

    /// The plan's header next to the layout of the whole metadata map.
    fn same_as_layout(tensors: &[TensorMeta], user: &BTreeMap<String, String>) {
        let sums: Vec<[u8; 32]> = tensors
            .iter()
            .map(|t| Sha256::digest(t.name.as_bytes()).into())
            .collect();
        let plan = HeaderPlan::new(tensors.iter().collect(), user).expect("a valid plan");
        let mut ours = Vec::new();
        let digest = plan.write(&sums, &mut ours).expect("written");
        let mut all = user.clone();
        for (t, s) in tensors.iter().zip(&sums) {
            all.insert(format!("{}{}", keys::SHA256_PREFIX, t.name), hex::encode(s));
        }
        let (layout, theirs) = Layout::with_header_sha256_digest(tensors, &all).expect("valid");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&layout.header)
        );
        assert_eq!(digest, theirs);
        assert_eq!(plan.header_len(), ours.len());
        assert_eq!(plan.order(), &layout.order[..]);
        assert_eq!(plan.offsets(), &layout.offsets[..]);
        assert_eq!(plan.data_len(), layout.data_len);
        // And the digest is the one a reader computes from the header.
        let header = crate::Header::parse(&ours[8..], plan.data_len()).expect("parses");
        assert_eq!(digest, header_sha256(&header.metadata, &header.tensors));
    }

    #[test]
    fn the_header_is_the_layouts_byte_for_byte() {
        let tensors = vec![
            meta("b.weight", Dtype::F32, &[2, 3]),
            meta("a", Dtype::F16, &[5]),
            meta("é\"\u{1}\\n", Dtype::U8, &[]),
            meta("z.ids", Dtype::I64, &[1, 4]),
            meta("modeltool", Dtype::BF16, &[0, 7]),
            meta("packed", Dtype::F4, &[6]),
        ];
        // Keys before, between and after the checksum keys, one that
        // escapes, one that the checksum of `a` replaces, one of a
        // tensor that is not there, and a header checksum that is replaced.
        let mut user = BTreeMap::new();
        for (k, v) in [
            ("format", "pt"),
            ("modeltool.architecture", "{\"layers\":[]}"),
            ("modeltool.sha256.a", "stale"),
            ("modeltool.sha256.gone", "kept"),
            ("modeltool.sha256.b", "before b.weight"),
            ("modeltool.header_sha256", "stale"),
            ("zz\u{7f}\t", "\u{202e}"),
            ("modeltool.t", "after the checksums"),
        ] {
            user.insert(k.to_owned(), v.to_owned());
        }
        same_as_layout(&tensors, &user);
        same_as_layout(&tensors, &BTreeMap::new());
        same_as_layout(&[], &user);
        same_as_layout(&[], &BTreeMap::new());
    }

    #[test]
    fn many_tensors_pad_to_any_length() {
        // Names of every length from 1 to 24 move the header's end through
        // every remainder modulo 8.
        for n in 1..24 {
            let tensors: Vec<TensorMeta> = (0..n)
                .map(|i| meta(&"x".repeat(i + 1), Dtype::F32, &[i, 2]))
                .collect();
            same_as_layout(&tensors, &BTreeMap::new());
        }
    }

    #[test]
    fn refuses_what_a_layout_refuses() {
        let dup = [meta("a", Dtype::F32, &[1]), meta("a", Dtype::F16, &[1])];
        assert!(matches!(
            HeaderPlan::new(dup.iter().collect(), &BTreeMap::new()),
            Err(FormatError::DuplicateTensor { name }) if name == "a"
        ));
        let reserved = [meta(METADATA_KEY, Dtype::F32, &[1])];
        assert!(matches!(
            HeaderPlan::new(reserved.iter().collect(), &BTreeMap::new()),
            Err(FormatError::BadValue { .. })
        ));
        let huge = [
            meta("a", Dtype::F64, &[1 << 60]),
            meta("b", Dtype::F64, &[1 << 60]),
        ];
        assert!(matches!(
            HeaderPlan::new(huge.iter().collect(), &BTreeMap::new()),
            Err(FormatError::ShapeOverflow { .. })
        ));
    }
}
