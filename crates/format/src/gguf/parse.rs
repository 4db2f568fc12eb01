//! The header parser: magic, version, metadata, tensor infos and layout,
//! from a prefix of the file.

use std::collections::HashMap;
use std::ops::Range;

use super::error::{GgufError, Result};
use super::value::{Array, Value, ValueType};
use super::{
    ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgmlType, MAX_ARRAY_DEPTH, MAX_DIMS, MAX_HEADER_LEN,
};

/// The byte order of a file's numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// Little-endian: every file llama.cpp writes on common hardware.
    Little,
    /// Big-endian (s390x builds): the header is read, tensor data is not
    /// decoded.
    Big,
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufTensor {
    /// The tensor's name.
    pub name: String,
    /// The dimensions as ggml stores them: fastest first (`ne0` first).
    /// [`shape`](Self::shape) gives them in row-major order.
    pub dims: Vec<u64>,
    /// The element type.
    pub ggml_type: GgmlType,
    /// Where the data starts, relative to the start of the data section
    /// ([`GgufHeader::data_start`]).
    pub offset: u64,
    /// The data's size in bytes.
    pub size: u64,
}

impl GgufTensor {
    /// The shape in row-major order (slowest dimension first), as
    /// safetensors and PyTorch write it: the stored dimensions reversed.
    ///
    /// ```
    /// use modeltool_format::gguf::{GgmlType, GgufTensor};
    /// // A 4096 x 32000 embedding as ggml stores it: ne0 = 4096 per row.
    /// let t = GgufTensor { name: "token_embd.weight".into(), dims: vec![4096, 32000],
    ///     ggml_type: GgmlType::F16, offset: 0, size: 4096 * 32000 * 2 };
    /// assert_eq!(t.shape(), [32000, 4096]);
    /// ```
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }

    /// The number of elements (1 for a tensor with no dimensions);
    /// saturates at `u64::MAX` for dims the parser would have refused.
    pub fn element_count(&self) -> u64 {
        self.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d))
    }
}

/// A parsed GGUF header: everything before the tensor data.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    /// The format version (2 or 3).
    pub version: u32,
    /// The byte order of the file.
    pub endian: Endian,
    /// Metadata entries in file order (keys are unique).
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order (names are unique).
    pub tensors: Vec<GgufTensor>,
    /// `general.alignment`, or 32 when absent.
    pub alignment: u32,
    /// Bytes up to the end of the last tensor info.
    pub header_len: u64,
    /// Where the data section starts: `header_len` rounded up to the
    /// alignment. Tensor offsets count from here.
    pub data_start: u64,
}

/// The outcome of [`parse`]: the header, or how many bytes to read first.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// The whole header was in the prefix.
    Header(GgufHeader),
    /// The prefix ends inside the header: read at least this many bytes
    /// from the start of the file (reading more, e.g. double, saves calls)
    /// and parse again.
    NeedMore {
        /// The prefix length that gets the parser further.
        at_least: u64,
    },
}

impl GgufHeader {
    /// Parses a whole file held in memory.
    ///
    /// ```
    /// use modeltool_format::gguf::{GgmlType, GgufHeader, GgufWriter, Value};
    ///
    /// let mut w = GgufWriter::new();
    /// w.add_metadata("general.architecture", Value::String("llama".into()))?;
    /// w.add_tensor("w", &[2, 3], GgmlType::F32, vec![0u8; 24])?;
    /// let file = w.to_bytes()?;
    /// let header = GgufHeader::from_file_bytes(&file)?;
    /// assert_eq!(header.get("general.architecture").and_then(Value::as_str), Some("llama"));
    /// assert_eq!(header.tensors[0].shape(), [2, 3]);
    /// assert_eq!(header.tensor_data(&file, 0), Some(&[0u8; 24][..]));
    /// # Ok::<(), modeltool_format::gguf::GgufError>(())
    /// ```
    pub fn from_file_bytes(file: &[u8]) -> Result<GgufHeader> {
        let len = file.len() as u64;
        match parse(file, len)? {
            Parsed::Header(h) => Ok(h),
            // Unreachable: every read past the buffer is past the file.
            Parsed::NeedMore { at_least } => Err(GgufError::Truncated {
                what: "header",
                offset: 0,
                needed: at_least,
                file_len: len,
            }),
        }
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The index of the tensor called `name`.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// Where tensor `index`'s bytes are in the file (absolute offsets).
    pub fn tensor_range(&self, index: usize) -> Option<Range<u64>> {
        let t = self.tensors.get(index)?;
        // Checked not to overflow when the header was parsed.
        let start = self.data_start + t.offset;
        Some(start..start + t.size)
    }

    /// Tensor `index`'s bytes within `file` (the whole file, or at least
    /// everything up to the tensor's end).
    pub fn tensor_data<'a>(&self, file: &'a [u8], index: usize) -> Option<&'a [u8]> {
        let r = self.tensor_range(index)?;
        file.get(usize::try_from(r.start).ok()?..usize::try_from(r.end).ok()?)
    }
}

impl GgufHeader {
    /// Tensor `index` dequantized to f32 (see [`dequantize`](super::dequantize)
    /// for the types decoded); `file` holds at least the bytes up to the
    /// tensor's end.
    pub fn dequantize_tensor(&self, file: &[u8], index: usize) -> Result<Vec<f32>> {
        let Some(range) = self.tensor_range(index) else {
            return Err(GgufError::NoSuchTensor {
                index,
                count: self.tensors.len(),
            });
        };
        if self.endian == Endian::Big {
            return Err(GgufError::BigEndianData);
        }
        let Some(data) = self.tensor_data(file, index) else {
            return Err(GgufError::Truncated {
                what: "tensor data",
                offset: range.start,
                needed: range.end,
                file_len: file.len() as u64,
            });
        };
        super::dequantize_to_vec(self.tensors[index].ggml_type, data)
    }
}

/// Parses the header from the first bytes of a file of `file_len` bytes.
///
/// Returns [`Parsed::NeedMore`] when `prefix` ends inside the header (a
/// loader reads that much and calls again), or the header, checked against
/// `file_len`: every tensor lies inside the file, aligned, with no overlap.
/// Nothing is allocated from a declared count before the bytes it needs are
/// known to be in the file and in `prefix`, so memory stays within a small
/// multiple of `prefix.len()`.
///
/// ```
/// use modeltool_format::gguf::{GgufWriter, Parsed, parse};
///
/// let file = GgufWriter::new().to_bytes()?;
/// assert_eq!(parse(&file[..10], file.len() as u64)?, Parsed::NeedMore { at_least: 16 });
/// assert!(matches!(parse(&file, file.len() as u64)?, Parsed::Header(_)));
/// # Ok::<(), modeltool_format::gguf::GgufError>(())
/// ```
pub fn parse(prefix: &[u8], file_len: u64) -> Result<Parsed> {
    let buf = match usize::try_from(file_len) {
        Ok(n) if n < prefix.len() => &prefix[..n],
        _ => prefix,
    };
    let mut r = Reader {
        buf,
        pos: 0,
        file_len,
        big: false,
    };
    match read_header(&mut r) {
        Ok(h) => Ok(Parsed::Header(h)),
        Err(Stop::Need(n)) => Ok(Parsed::NeedMore { at_least: n }),
        Err(Stop::Err(e)) => Err(e),
    }
}

enum Stop {
    /// The prefix ends before this many bytes.
    Need(u64),
    Err(GgufError),
}

impl From<GgufError> for Stop {
    fn from(e: GgufError) -> Stop {
        Stop::Err(e)
    }
}

type R<T> = std::result::Result<T, Stop>;

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    file_len: u64,
    big: bool,
}

macro_rules! read_num {
    ($name:ident, $t:ty, $what:literal) => {
        fn $name(&mut self) -> R<$t> {
            let b = self.take(std::mem::size_of::<$t>() as u64, $what)?;
            let a = b.try_into().expect("take returns the length asked for");
            Ok(if self.big {
                <$t>::from_be_bytes(a)
            } else {
                <$t>::from_le_bytes(a)
            })
        }
    };
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn available(&self) -> u64 {
        self.file_len.saturating_sub(self.offset())
    }

    /// Asks that the prefix reach `end`: an error past the file or the
    /// header cap, `Need` past the prefix.
    fn reach(&self, end: u64) -> R<()> {
        if end > MAX_HEADER_LEN {
            return Err(GgufError::HeaderTooLarge {
                needed: end,
                max: MAX_HEADER_LEN,
            }
            .into());
        }
        if end > self.buf.len() as u64 {
            return Err(Stop::Need(end));
        }
        Ok(())
    }

    fn take(&mut self, n: u64, what: &'static str) -> R<&'a [u8]> {
        let offset = self.offset();
        let end = offset.saturating_add(n);
        if end > self.file_len {
            return Err(GgufError::Truncated {
                what,
                offset,
                needed: end,
                file_len: self.file_len,
            }
            .into());
        }
        self.reach(end)?;
        // `reach` checked end <= buf.len().
        let b = &self.buf[self.pos..end as usize];
        self.pos = end as usize;
        Ok(b)
    }

    read_num!(u8, u8, "a u8");
    read_num!(i8, i8, "an i8");
    read_num!(u16, u16, "a u16");
    read_num!(i16, i16, "an i16");
    read_num!(u32, u32, "a u32");
    read_num!(i32, i32, "an i32");
    read_num!(u64, u64, "a u64");
    read_num!(i64, i64, "an i64");
    read_num!(f32, f32, "an f32");
    read_num!(f64, f64, "an f64");

    fn bool(&mut self) -> R<bool> {
        let offset = self.offset();
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(GgufError::InvalidBool { offset, byte }.into()),
        }
    }

    fn string(&mut self) -> R<String> {
        let offset = self.offset();
        let len = self.u64()?;
        if len > self.available() {
            return Err(GgufError::StringTooLong {
                len,
                offset,
                available: self.available(),
            }
            .into());
        }
        let start = self.offset();
        let bytes = self.take(len, "a string")?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(GgufError::InvalidUtf8 { offset: start }.into()),
        }
    }

    /// Reads a count and checks that `count` entries of at least `min_size`
    /// bytes fit in the rest of the file; returns it with the number of
    /// entries to reserve room for (only as many as the prefix holds).
    fn count(&mut self, what: &'static str, min_size: u64) -> R<(u64, usize)> {
        let offset = self.offset();
        let count = self.u64()?;
        let available = self.available();
        if count > available / min_size {
            return Err(GgufError::CountTooLarge {
                what,
                count,
                offset,
                available,
                min_size,
            }
            .into());
        }
        // Ask for the bytes the entries need at the least before
        // allocating for them; count * min_size <= available, no overflow.
        self.reach(self.offset() + count * min_size)?;
        Ok((count, count as usize))
    }

    fn value_type(&mut self) -> R<ValueType> {
        let offset = self.offset();
        let type_id = self.u32()?;
        ValueType::from_id(type_id)
            .ok_or(Stop::Err(GgufError::UnknownValueType { type_id, offset }))
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> R<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8()?),
            ValueType::I8 => Value::I8(self.i8()?),
            ValueType::U16 => Value::U16(self.u16()?),
            ValueType::I16 => Value::I16(self.i16()?),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(self.i32()?),
            ValueType::F32 => Value::F32(self.f32()?),
            ValueType::Bool => Value::Bool(self.bool()?),
            ValueType::String => Value::String(self.string()?),
            ValueType::Array => Value::Array(self.array(depth + 1)?),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(self.i64()?),
            ValueType::F64 => Value::F64(self.f64()?),
        })
    }

    fn array(&mut self, depth: usize) -> R<Array> {
        let offset = self.offset();
        if depth > MAX_ARRAY_DEPTH {
            return Err(GgufError::NestingTooDeep {
                offset,
                max: MAX_ARRAY_DEPTH,
            }
            .into());
        }
        let ty = self.value_type()?;
        let (count, cap) = self.count("array element", ty.min_size())?;
        macro_rules! many {
            ($variant:ident, $read:expr) => {{
                let mut v = Vec::with_capacity(cap);
                for _ in 0..count {
                    v.push($read);
                }
                Array::$variant(v)
            }};
        }
        Ok(match ty {
            ValueType::U8 => Array::U8(self.take(count, "u8 array")?.to_vec()),
            ValueType::I8 => many!(I8, self.i8()?),
            ValueType::U16 => many!(U16, self.u16()?),
            ValueType::I16 => many!(I16, self.i16()?),
            ValueType::U32 => many!(U32, self.u32()?),
            ValueType::I32 => many!(I32, self.i32()?),
            ValueType::F32 => many!(F32, self.f32()?),
            ValueType::Bool => many!(Bool, self.bool()?),
            ValueType::String => many!(String, self.string()?),
            ValueType::Array => many!(Array, self.array(depth + 1)?),
            ValueType::U64 => many!(U64, self.u64()?),
            ValueType::I64 => many!(I64, self.i64()?),
            ValueType::F64 => many!(F64, self.f64()?),
        })
    }
}

/// Fewest bytes of a metadata entry: key length, value type, a 1-byte value.
const MIN_KV_SIZE: u64 = 8 + 4 + 1;
/// Fewest bytes of a tensor info: name length, dim count, type, offset.
const MIN_TENSOR_INFO_SIZE: u64 = 8 + 4 + 4 + 8;

fn read_header(r: &mut Reader<'_>) -> R<GgufHeader> {
    let magic_len = r.file_len.min(4) as usize;
    r.reach(magic_len as u64)?;
    if &r.buf[..magic_len] != b"GGUF" {
        return Err(GgufError::BadMagic {
            found: r.buf[..magic_len].to_vec(),
        }
        .into());
    }
    r.pos = 4;
    let raw = r.u32()?;
    // A big-endian file's version reads as 0x0?000000 little-endian.
    let (version, endian) = if raw & 0xFFFF == 0 && raw != 0 {
        r.big = true;
        (raw.swap_bytes(), Endian::Big)
    } else {
        (raw, Endian::Little)
    };
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion { version }.into());
    }
    let (n_tensors, _) = r.count("tensor", MIN_TENSOR_INFO_SIZE)?;
    let (n_kv, kv_cap) = r.count("metadata entry", MIN_KV_SIZE)?;

    let mut metadata: Vec<(String, Value)> = Vec::with_capacity(kv_cap);
    let mut keys: HashMap<String, usize> = HashMap::with_capacity(kv_cap);
    for i in 0..n_kv as usize {
        let key = r.string()?;
        let ty = r.value_type()?;
        let value = r.value(ty, 0)?;
        if let Some(&first) = keys.get(&key) {
            return Err(GgufError::DuplicateKey {
                key,
                first,
                second: i,
            }
            .into());
        }
        keys.insert(key.clone(), i);
        metadata.push((key, value));
    }
    let alignment = match keys.get(ALIGNMENT_KEY).map(|&i| &metadata[i].1) {
        None => DEFAULT_ALIGNMENT,
        Some(&Value::U32(a)) if a != 0 && a % 8 == 0 => a,
        Some(&Value::U32(alignment)) => return Err(GgufError::BadAlignment { alignment }.into()),
        Some(other) => {
            return Err(GgufError::WrongValueType {
                key: ALIGNMENT_KEY.to_owned(),
                expected: ValueType::U32,
                found: other.value_type(),
            }
            .into());
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names: HashMap<String, usize> = HashMap::with_capacity(n_tensors as usize);
    for index in 0..n_tensors as usize {
        let name = r.string()?;
        if let Some(&first) = names.get(&name) {
            return Err(GgufError::DuplicateTensor {
                name,
                first,
                second: index,
            }
            .into());
        }
        let n_dims = r.u32()?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::BadDimCount {
                name,
                index,
                n_dims,
                max: MAX_DIMS,
            }
            .into());
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let type_id = r.u32()?;
        let offset = r.u64()?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return Err(GgufError::UnknownTensorType {
                name,
                index,
                type_id,
            }
            .into());
        };
        let Some(elements) = element_count(&dims) else {
            return Err(GgufError::DimsOverflow { name, index, dims }.into());
        };
        let row = dims.first().copied().unwrap_or(1);
        if row % u64::from(ggml_type.block_size()) != 0 {
            return Err(GgufError::PartialBlock {
                name,
                index,
                ggml_type,
                row,
                block_size: ggml_type.block_size(),
            }
            .into());
        }
        let Some(size) = ggml_type.byte_size(elements) else {
            return Err(GgufError::DimsOverflow { name, index, dims }.into());
        };
        if offset % u64::from(alignment) != 0 {
            return Err(GgufError::MisalignedOffset {
                name,
                index,
                offset,
                alignment,
            }
            .into());
        }
        names.insert(name.clone(), index);
        tensors.push(GgufTensor {
            name,
            dims,
            ggml_type,
            offset,
            size,
        });
    }

    let header_len = r.offset();
    // header_len <= MAX_HEADER_LEN, far from overflowing.
    let data_start = header_len + pad(header_len, alignment);
    check_layout(&tensors, data_start, r.file_len)?;
    Ok(GgufHeader {
        version,
        endian,
        metadata,
        tensors,
        alignment,
        header_len,
        data_start,
    })
}

/// The element count of `dims` in any order, or `None` when the product
/// of the non-zero dimensions exceeds `i64::MAX` (ggml counts in `i64`).
/// A zero dimension makes the tensor empty but does not excuse the others:
/// otherwise `[0, 2^40, 2^40]` would pass or fail with the order of dims.
pub(crate) fn element_count(dims: &[u64]) -> Option<u64> {
    let nonzero = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)?;
    Some(if dims.contains(&0) { 0 } else { nonzero })
}

/// Bytes of padding after `n` bytes to reach a multiple of `alignment`
/// (any non-zero alignment, not only powers of two).
pub(crate) fn pad(n: u64, alignment: u32) -> u64 {
    let a = u64::from(alignment);
    (a - n % a) % a
}

fn check_layout(tensors: &[GgufTensor], data_start: u64, file_len: u64) -> Result<()> {
    for (index, t) in tensors.iter().enumerate() {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.size));
        let Some(end) = end else {
            return Err(GgufError::OffsetOverflow {
                name: t.name.clone(),
                index,
                offset: t.offset,
                size: t.size,
            });
        };
        if end > file_len {
            return Err(GgufError::DataPastEnd {
                name: t.name.clone(),
                index,
                start: data_start + t.offset,
                end,
                file_len,
            });
        }
    }
    let mut order: Vec<usize> = (0..tensors.len())
        .filter(|&i| tensors[i].size > 0)
        .collect();
    order.sort_by_key(|&i| (tensors[i].offset, i));
    for pair in order.windows(2) {
        let (a, b) = (&tensors[pair[0]], &tensors[pair[1]]);
        if a.offset + a.size > b.offset {
            return Err(GgufError::Overlap {
                first: a.name.clone(),
                first_index: pair[0],
                first_end: a.offset + a.size,
                second: b.name.clone(),
                second_index: pair[1],
                second_start: b.offset,
            });
        }
    }
    Ok(())
}
