//! Copying a strided view out of its storage into contiguous row-major
//! bytes, exactly as `tensor.contiguous()` orders them.

use super::checkpoint::TorchTensor;
use super::error::PytorchError;

/// The byte order of a checkpoint's storages (the zip's `byteorder`
/// record; absent means little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Little-endian, as every machine torch runs on today writes.
    #[default]
    Little,
    /// Big-endian: elements are byte-swapped on read.
    Big,
}

impl ByteOrder {
    /// Reads a `byteorder` record (`little` or `big`).
    pub fn parse(record: &[u8]) -> Result<ByteOrder, PytorchError> {
        match record {
            b"little" => Ok(ByteOrder::Little),
            b"big" => Ok(ByteOrder::Big),
            other => Err(PytorchError::ByteOrder {
                found: String::from_utf8_lossy(other).into_owned(),
            }),
        }
    }
}

/// Bytes handed to the sink at most at once.
const CHUNK: usize = 1 << 16;

impl TorchTensor {
    /// Copies the view out of `storage` (the storage's bytes from
    /// [`TorchTensor::storage_range`]`.start` on: a memory map's slice or a
    /// read of just that range) into contiguous row-major little-endian
    /// bytes, handed to `sink` in pieces of at most 64 KiB. A big-endian
    /// checkpoint's elements are byte-swapped.
    ///
    /// ```
    /// use modeltool_format::Dtype;
    /// use modeltool_format::pytorch::{ByteOrder, TorchTensor};
    ///
    /// // A 2x3 u8 matrix stored transposed: storage [0, 3, 1, 4, 2, 5], strides (1, 2).
    /// let t = TorchTensor {
    ///     name: "w".into(), dtype: Dtype::U8, shape: vec![2, 3], strides: vec![1, 2],
    ///     storage_offset: 0, storage: "0".into(), parameter: false,
    /// };
    /// let mut out = Vec::new();
    /// t.copy_contiguous(&[0, 3, 1, 4, 2, 5], ByteOrder::Little, &mut |b| out.extend_from_slice(b))?;
    /// assert_eq!(out, [0, 1, 2, 3, 4, 5]);
    /// # Ok::<(), modeltool_format::pytorch::PytorchError>(())
    /// ```
    pub fn copy_contiguous(
        &self,
        storage: &[u8],
        order: ByteOrder,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), PytorchError> {
        let range = self.storage_range();
        let need = range.end - range.start;
        if (storage.len() as u64) < need {
            return Err(PytorchError::ShortStorage {
                tensor: self.name.clone(),
                given: storage.len() as u64,
                need,
            });
        }
        if self.element_count() == 0 {
            return Ok(());
        }
        let es = self.dtype.bits() / 8;
        let swap = order == ByteOrder::Big && es > 1;
        let (shape, strides) = collapse(&self.shape, &self.strides);
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.min(self.byte_len()));
        let mut emit = |bytes: &[u8], buf: &mut Vec<u8>| {
            if swap {
                for e in bytes.chunks_exact(es) {
                    buf.extend(e.iter().rev());
                }
            } else {
                buf.extend_from_slice(bytes);
            }
            if buf.len() >= CHUNK {
                sink(buf);
                buf.clear();
            }
        };
        // The innermost dimension, as one run when its stride is 1.
        let inner = shape.len() - 1;
        let run = if strides[inner] == 1 { shape[inner] } else { 1 };
        let outer_dims = if run > 1 { inner } else { shape.len() };
        let mut idx = vec![0usize; outer_dims];
        'outer: loop {
            // Element offset relative to the first element of the view.
            let off: usize = idx.iter().zip(&strides).map(|(&i, &s)| i * s).sum();
            let start = off * es;
            emit(&storage[start..start + run * es], &mut buf);
            let mut d = outer_dims;
            loop {
                if d == 0 {
                    break 'outer;
                }
                d -= 1;
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        if !buf.is_empty() {
            sink(&buf);
        }
        Ok(())
    }

    /// [`TorchTensor::copy_contiguous`] into one vector.
    pub fn contiguous_bytes(
        &self,
        storage: &[u8],
        order: ByteOrder,
    ) -> Result<Vec<u8>, PytorchError> {
        let mut out = Vec::with_capacity(self.byte_len());
        self.copy_contiguous(storage, order, &mut |b| out.extend_from_slice(b))?;
        Ok(out)
    }
}

/// Drops dimensions of size 1 and merges neighbours that step as one
/// (`stride[i] == stride[i + 1] * shape[i + 1]`), so a contiguous view is
/// one run and a transposed one has long runs where it can. Never empty.
fn collapse(shape: &[usize], strides: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut s: Vec<usize> = Vec::new();
    let mut t: Vec<usize> = Vec::new();
    for (&n, &st) in shape.iter().zip(strides) {
        if n == 1 {
            continue;
        }
        if let (Some(ln), Some(lt)) = (s.last_mut(), t.last_mut())
            && *lt == st * n
        {
            *ln *= n;
            *lt = st;
            continue;
        }
        s.push(n);
        t.push(st);
    }
    if s.is_empty() {
        s.push(1);
        t.push(1);
    }
    (s, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_merges_contiguous_dimensions() {
        assert_eq!(collapse(&[2, 3, 4], &[12, 4, 1]), (vec![24], vec![1]));
        assert_eq!(collapse(&[3, 2], &[1, 3]), (vec![3, 2], vec![1, 3]));
        assert_eq!(collapse(&[1, 1], &[5, 7]), (vec![1], vec![1]));
        assert_eq!(collapse(&[4, 1, 5], &[5, 99, 1]), (vec![20], vec![1]));
    }
}
