//! The parallel window pipeline: a window cut after its last comma, split
//! at commas into pieces parsed on every core while the next window is
//! read, and the pieces' bytes copied into the tensor in order.

use super::*;

impl<R: Read> Reader<R> {
    /// Parses the `cut` bytes from `pos` (whole elements; a comma follows)
    /// in parallel, and moves past them and the comma. Returns the number
    /// of elements.
    pub(super) fn parse_in_place(
        &mut self,
        cut: usize,
        dtype: Dtype,
        out: &mut TensorBuf,
        first_index: usize,
    ) -> Result<usize> {
        let at = self.offset();
        let buffers = std::mem::take(&mut self.piece_buffers);
        let pieces = parse_parallel(&self.buf[self.pos..self.pos + cut], dtype, buffers);
        self.pos += cut + 1;
        append_pieces(pieces, out, first_index, at, &mut self.piece_buffers)
    }

    /// Parses the `cut` bytes from `pos` (whole elements; a comma follows)
    /// in parallel, while this thread reads the next window into the spare
    /// buffer behind what follows the cut. Then the spare buffer becomes
    /// the window. Returns the number of elements.
    pub(super) fn parse_window(
        &mut self,
        cut: usize,
        dtype: Dtype,
        out: &mut TensorBuf,
        first_index: usize,
    ) -> Result<usize> {
        let at = self.offset();
        let rest = self.pos + cut + 1;
        let next_base = self.base + rest as u64;
        let tail = self.end - rest;
        let mut next = std::mem::take(&mut self.spare);
        // What follows the cut fits: it came from a window no larger than
        // this one. The window does not grow with each array that ends
        // inside it (the rest of the window is the start of the next one).
        let size = self.window.max(tail);
        next.resize(size, 0);
        next.truncate(size);
        next.shrink_to(size);
        next[..tail].copy_from_slice(&self.buf[rest..self.end]);
        self.stats.moved += tail as u64;
        self.stats.largest_window = self.stats.largest_window.max(size);
        let region = &self.buf[self.pos..self.pos + cut];
        let src = &mut self.src;
        let eof = self.eof;
        let buffers = std::mem::take(&mut self.piece_buffers);
        let mut parsed = None;
        let read = par::scope(|scope| {
            scope.spawn(|| parsed = Some(parse_parallel(region, dtype, buffers)));
            let end = if eof {
                Ok(tail)
            } else {
                read_into(src, &mut next, tail)
            };
            // Meanwhile, too: where the array ends in the next window.
            end.map(|end| (end, memchr(b']', &next[..end])))
        });
        let pieces = parsed.expect("the scope ran the parse");
        // The spare buffer now holds what follows the cut.
        self.spare = std::mem::replace(&mut self.buf, next);
        self.base += rest as u64;
        self.pos = 0;
        match read {
            Ok((end, close)) => {
                self.end = end;
                self.eof |= end < self.buf.len();
                self.close = Some(CloseScan {
                    from: next_base,
                    to: next_base + end as u64,
                    at: close.map(|i| next_base + i as u64),
                });
            }
            Err(e) => {
                self.end = tail;
                return Err(e);
            }
        }
        append_pieces(pieces, out, first_index, at, &mut self.piece_buffers)
    }
}

/// What one piece of a window gave: its range in the window, and its
/// bytes and element count or the first error in it.
pub(super) type Pieces = Vec<(Range<usize>, Result<(Vec<u8>, usize), ElementError>)>;

/// Splits `text` (complete elements separated by commas, no trailing
/// comma) at commas into pieces of about [`PIECE`] bytes and parses them
/// in parallel.
pub(super) fn parse_parallel(text: &[u8], dtype: Dtype, mut buffers: Vec<Vec<u8>>) -> Pieces {
    let mut pieces: Vec<Range<usize>> = Vec::with_capacity(text.len() / PIECE + 1);
    let mut start = 0;
    while text.len() - start > PIECE {
        match memchr(b',', &text[start + PIECE..]) {
            Some(i) => {
                let comma = start + PIECE + i;
                pieces.push(start..comma);
                start = comma + 1;
            }
            None => break,
        }
    }
    pieces.push(start..text.len());
    let per = dtype.bits().div_ceil(8);
    buffers.resize_with(buffers.len().max(pieces.len()), Vec::new);
    let work: Vec<_> = pieces.into_iter().zip(buffers).collect();
    par::map(work, |(r, mut bytes)| {
        let piece = &text[r.clone()];
        // Every element takes at least two bytes with its comma.
        bytes.clear();
        bytes.reserve((piece.len() / 2 + 1) * per);
        let result = parse_piece(piece, dtype, &mut bytes).map(|n| (bytes, n));
        (r, result)
    })
}

/// Appends the pieces' bytes to `out` in order (copied in parallel) and
/// returns the number of elements; an error names the first bad element
/// (`first_index` is the index of the first element, `at` the input
/// offset of the text). The pieces' buffers are kept in `buffers`.
pub(super) fn append_pieces(
    pieces: Pieces,
    out: &mut TensorBuf,
    first_index: usize,
    at: u64,
    buffers: &mut Vec<Vec<u8>>,
) -> Result<usize> {
    let mut count = 0;
    let mut parsed = Vec::with_capacity(pieces.len());
    for (r, result) in pieces {
        match result {
            Ok((bytes, n)) => {
                count += n;
                parsed.push(bytes);
            }
            Err(e) => return Err(e.into_read_error(first_index + count, at + r.start as u64)),
        }
    }
    let mut region = out.extend(parsed.iter().map(Vec::len).sum());
    let mut copies = Vec::with_capacity(parsed.len());
    for bytes in &parsed {
        let (head, rest) = region.split_at_mut(bytes.len());
        copies.push((head, bytes));
        region = rest;
    }
    par::map(copies, |(to, from)| to.copy_from_slice(from));
    buffers.extend(parsed);
    Ok(count)
}

/// A tensor's bytes as they are parsed. When its size is known and large
/// enough to be parsed in parallel pieces, it is allocated zeroed in one
/// piece (fresh pages from the system, not written yet), so that the pages
/// are first touched by the parallel copies of [`append_pieces`] rather
/// than one by one on the reading thread. Otherwise it grows as elements
/// are parsed straight into it.
pub(super) struct TensorBuf {
    bytes: Vec<u8>,
    /// How much of `bytes` holds parsed values.
    filled: usize,
}

impl TensorBuf {
    pub(super) fn sized(len: usize) -> Self {
        TensorBuf {
            bytes: vec![0; len],
            filled: 0,
        }
    }

    pub(super) fn growing(capacity: usize) -> Self {
        TensorBuf {
            bytes: Vec::with_capacity(capacity),
            filled: 0,
        }
    }

    /// The next `n` bytes, to be written.
    pub(super) fn extend(&mut self, n: usize) -> &mut [u8] {
        let start = self.filled;
        self.filled += n;
        if self.bytes.len() < self.filled {
            self.bytes.resize(self.filled, 0);
        }
        &mut self.bytes[start..self.filled]
    }

    /// Appends what `f` appends to the vector it is given: this buffer's
    /// own while it grows as it is filled (no copy), else `scratch`,
    /// copied in after.
    pub(super) fn append_with<T>(
        &mut self,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&mut Vec<u8>) -> T,
    ) -> T {
        if self.filled == self.bytes.len() {
            let result = f(&mut self.bytes);
            self.filled = self.bytes.len();
            return result;
        }
        scratch.clear();
        let result = f(scratch);
        self.extend(scratch.len()).copy_from_slice(scratch);
        result
    }

    pub(super) fn into_vec(mut self) -> Vec<u8> {
        self.bytes.truncate(self.filled);
        self.bytes
    }
}
