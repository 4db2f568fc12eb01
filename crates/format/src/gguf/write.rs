//! The writer: metadata of every type, tensor infos, alignment and padding
//! as llama.cpp's reader expects (version 3, little-endian).

use std::io::{self, Write};

use super::error::{GgufError, Result};
use super::parse::{element_count, pad};
use super::value::{Array, Value, ValueType};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GgmlType, GgufTensor, MAX_DIMS};

/// Builds a GGUF file: metadata, then tensors in the order added.
///
/// Each tensor's data starts at a multiple of the alignment (32 unless
/// [`set_alignment`](Self::set_alignment) says otherwise) and is followed by
/// zero padding to the next multiple, the last one included, so the file
/// ends where llama.cpp expects the data section to end.
///
/// Tensors come with their data ([`add_tensor`](Self::add_tensor)) for
/// small files, or as infos only ([`add_tensor_info`](Self::add_tensor_info))
/// with the data streamed afterwards through [`GgufWriter::stream`], so a
/// converter holds one tensor at a time.
///
/// ```
/// use modeltool_format::gguf::{GgmlType, GgufHeader, GgufWriter, Value, quantize};
///
/// let mut w = GgufWriter::new();
/// w.set_alignment(64)?;
/// w.add_metadata("general.architecture", Value::String("llama".into()))?;
/// let values: Vec<f32> = (0..64).map(|i| i as f32).collect();
/// w.add_tensor("blk.0.ffn_up.weight", &[2, 32], GgmlType::Q8_0, quantize(GgmlType::Q8_0, &values)?)?;
/// let file = w.to_bytes()?;
/// let h = GgufHeader::from_file_bytes(&file)?;
/// assert_eq!((h.alignment, h.data_start % 64), (64, 0));
/// assert_eq!(h.tensors[0].dims, [32, 2]); // stored fastest first
/// # Ok::<(), modeltool_format::gguf::GgufError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GgufWriter {
    alignment: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<GgufTensor>,
    data: Vec<Option<Vec<u8>>>,
    data_len: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

impl GgufWriter {
    /// An empty file: no metadata, no tensors, alignment 32.
    pub fn new() -> GgufWriter {
        GgufWriter {
            alignment: DEFAULT_ALIGNMENT,
            metadata: Vec::new(),
            tensors: Vec::new(),
            data: Vec::new(),
            data_len: 0,
        }
    }

    /// Sets the alignment (a non-zero multiple of 8) and records it as
    /// `general.alignment`. Call it before adding tensors.
    pub fn set_alignment(&mut self, alignment: u32) -> Result<()> {
        if alignment == 0 || alignment % 8 != 0 {
            return Err(GgufError::BadAlignment { alignment });
        }
        if !self.tensors.is_empty() {
            return Err(GgufError::WriterMisuse(
                "the alignment must be set before the first tensor".into(),
            ));
        }
        self.alignment = alignment;
        let value = Value::U32(alignment);
        match self.metadata.iter_mut().find(|(k, _)| k == ALIGNMENT_KEY) {
            Some(entry) => entry.1 = value,
            None => self.metadata.push((ALIGNMENT_KEY.to_owned(), value)),
        }
        Ok(())
    }

    /// Adds a metadata entry. Keys are unique; `general.alignment` must be a
    /// u32 and goes through [`set_alignment`](Self::set_alignment).
    pub fn add_metadata(&mut self, key: impl Into<String>, value: Value) -> Result<()> {
        let key = key.into();
        if key == ALIGNMENT_KEY {
            return match value {
                Value::U32(a) => self.set_alignment(a),
                other => Err(GgufError::WrongValueType {
                    key,
                    expected: ValueType::U32,
                    found: other.value_type(),
                }),
            };
        }
        if let Some(first) = self.metadata.iter().position(|(k, _)| *k == key) {
            let second = self.metadata.len();
            return Err(GgufError::DuplicateKey { key, first, second });
        }
        self.metadata.push((key, value));
        Ok(())
    }

    /// Adds a tensor whose data will be streamed later; returns its index.
    /// `shape` is row-major (slowest first), as safetensors writes it; the
    /// file stores it reversed. The last dimension must be whole blocks of
    /// `ggml_type`.
    pub fn add_tensor_info(
        &mut self,
        name: impl Into<String>,
        shape: &[u64],
        ggml_type: GgmlType,
    ) -> Result<usize> {
        let name = name.into();
        let bad = |why| GgufError::BadShape {
            name: name.clone(),
            shape: shape.to_vec(),
            ggml_type,
            why,
        };
        if shape.len() > MAX_DIMS as usize {
            return Err(bad("ggml tensors have at most 4 dimensions"));
        }
        let row = shape.last().copied().unwrap_or(1);
        if row % u64::from(ggml_type.block_size()) != 0 {
            return Err(bad("the last dimension is not whole blocks"));
        }
        let size = element_count(shape)
            .and_then(|n| ggml_type.byte_size(n))
            .ok_or_else(|| bad("the size overflows"))?;
        if let Some(first) = self.tensors.iter().position(|t| t.name == name) {
            let second = self.tensors.len();
            return Err(GgufError::DuplicateTensor {
                name,
                first,
                second,
            });
        }
        let offset = self.data_len;
        self.data_len = size
            .checked_add(pad(size, self.alignment))
            .and_then(|s| s.checked_add(offset))
            .ok_or_else(|| bad("the file would exceed 2^64 bytes"))?;
        self.tensors.push(GgufTensor {
            name,
            dims: shape.iter().rev().copied().collect(),
            ggml_type,
            offset,
            size,
        });
        self.data.push(None);
        Ok(self.tensors.len() - 1)
    }

    /// Adds a tensor with its data: whole blocks of `ggml_type` in ggml
    /// order (raw blocks of any type are stored as given).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        shape: &[u64],
        ggml_type: GgmlType,
        data: Vec<u8>,
    ) -> Result<()> {
        let index = self.add_tensor_info(name, shape, ggml_type)?;
        let t = &self.tensors[index];
        if data.len() as u64 != t.size {
            let e = GgufError::LengthMismatch {
                ggml_type,
                expected: t.size,
                found: data.len() as u64,
                unit: "bytes of data",
            };
            self.tensors.pop();
            self.data.pop();
            self.data_len = self
                .tensors
                .last()
                .map_or(0, |t| t.offset + t.size + pad(t.size, self.alignment));
            return Err(e);
        }
        self.data[index] = Some(data);
        Ok(())
    }

    /// The tensors as they will be written: dims fastest first, offsets
    /// relative to the data section.
    pub fn tensors(&self) -> &[GgufTensor] {
        &self.tensors
    }

    /// The header: magic, version 3, counts, metadata, tensor infos, and
    /// the zero padding up to the data section.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(b"GGUF");
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut h, k);
            h.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut h, v);
        }
        for t in &self.tensors {
            put_str(&mut h, &t.name);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&t.ggml_type.id().to_le_bytes());
            h.extend_from_slice(&t.offset.to_le_bytes());
        }
        let padding = pad(h.len() as u64, self.alignment) as usize;
        h.resize(h.len() + padding, 0);
        h
    }

    /// The whole file's length.
    pub fn file_len(&self) -> u64 {
        self.header_bytes().len() as u64 + self.data_len
    }

    /// Writes the header, then returns a [`TensorStream`] that takes each
    /// tensor's data in order.
    pub fn stream<W: Write>(&self, mut out: W) -> io::Result<TensorStream<'_, W>> {
        out.write_all(&self.header_bytes())?;
        Ok(TensorStream {
            writer: self,
            out,
            next: 0,
        })
    }

    /// Writes the whole file; every tensor must have been added with its
    /// data. Returns the bytes written.
    pub fn write_to<W: Write>(&self, out: W) -> io::Result<u64> {
        let mut s = self.stream(out)?;
        for (i, d) in self.data.iter().enumerate() {
            let Some(d) = d else {
                return Err(misuse(format!(
                    "tensor {i} was added without data; stream it with GgufWriter::stream"
                )));
            };
            s.write_tensor(d)?;
        }
        s.finish()?;
        Ok(self.file_len())
    }

    /// The whole file in memory (see [`write_to`](Self::write_to)).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.write_to(&mut v).map_err(|e| {
            let msg = e.to_string();
            e.into_inner()
                .and_then(|inner| inner.downcast::<GgufError>().ok())
                .map_or(GgufError::WriterMisuse(msg), |b| *b)
        })?;
        Ok(v)
    }
}

/// Padding is written from here, a page at a time.
static ZEROS: [u8; 4096] = [0; 4096];

fn misuse(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, GgufError::WriterMisuse(msg))
}

/// Writes tensor data after the header, in the order the tensors were
/// added, padding each to the alignment.
#[derive(Debug)]
pub struct TensorStream<'a, W: Write> {
    writer: &'a GgufWriter,
    out: W,
    next: usize,
}

impl<W: Write> TensorStream<'_, W> {
    /// Writes the next tensor's data, which must be exactly its size.
    pub fn write_tensor(&mut self, data: &[u8]) -> io::Result<()> {
        let Some(t) = self.writer.tensors.get(self.next) else {
            return Err(misuse(format!("only {} tensors were declared", self.next)));
        };
        if data.len() as u64 != t.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                GgufError::LengthMismatch {
                    ggml_type: t.ggml_type,
                    expected: t.size,
                    found: data.len() as u64,
                    unit: "bytes of data",
                },
            ));
        }
        self.out.write_all(data)?;
        let mut padding = pad(t.size, self.writer.alignment);
        while padding > 0 {
            let n = padding.min(ZEROS.len() as u64);
            self.out.write_all(&ZEROS[..n as usize])?;
            padding -= n;
        }
        self.next += 1;
        Ok(())
    }

    /// Checks that every tensor was written, flushes, and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        if self.next != self.writer.tensors.len() {
            return Err(misuse(format!(
                "{} of {} tensors were written",
                self.next,
                self.writer.tensors.len()
            )));
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

fn put_str(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

fn put_value(h: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => h.push(*x),
        Value::I8(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => h.push(u8::from(*x)),
        Value::String(s) => put_str(h, s),
        Value::Array(a) => put_array(h, a),
        Value::U64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => h.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(h: &mut Vec<u8>, a: &Array) {
    h.extend_from_slice(&a.element_type().id().to_le_bytes());
    h.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                h.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => h.extend_from_slice(v),
        Array::I8(v) => le!(v),
        Array::U16(v) => le!(v),
        Array::I16(v) => le!(v),
        Array::U32(v) => le!(v),
        Array::I32(v) => le!(v),
        Array::F32(v) => le!(v),
        Array::Bool(v) => h.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_str(h, s)),
        Array::Array(v) => v.iter().for_each(|inner| put_array(h, inner)),
        Array::U64(v) => le!(v),
        Array::I64(v) => le!(v),
        Array::F64(v) => le!(v),
    }
}
