//! The input window: a buffer of a few MB over the stream, refilled only
//! when a value runs past its end, and the counts that keep it linear.

use super::*;

pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// A buffered window over the input, with the JSON structure on top.
pub(super) struct Reader<R> {
    pub(super) src: R,
    pub(super) buf: Vec<u8>,
    /// The usual size of `buf` ([`WINDOW`]; smaller in tests).
    pub(super) window: usize,
    /// The next unread byte of `buf`.
    pub(super) pos: usize,
    /// The end of the valid bytes of `buf`.
    pub(super) end: usize,
    /// The input offset of `buf[0]`, for error messages.
    pub(super) base: u64,
    /// The input offset of the input's end, when known.
    pub(super) input_end: Option<u64>,
    pub(super) eof: bool,
    /// The next window, read while the current one is parsed.
    pub(super) spare: Vec<u8>,
    /// Where the first `]` is in a stretch of input, found while the
    /// previous window was being parsed.
    pub(super) close: Option<CloseScan>,
    /// Output buffers of the pieces of a window, kept for the next window
    /// (fresh ones would cost a page fault per 4 KB, window after window).
    pub(super) piece_buffers: Vec<Vec<u8>>,
    /// Small arrays' text, to be parsed on other cores.
    pub(super) batch: Batch,
    /// What the window cost, for the tests that keep it linear.
    pub(super) stats: WindowStats,
}

/// The copying the window did: the bytes moved to its front or into the
/// next window, and its largest size. Reading a file costs at most a few
/// copies of each byte and a window of a bounded size, whatever the
/// number or the sizes of the tensors.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowStats {
    /// Bytes copied within or between window buffers.
    pub(super) moved: u64,
    /// The largest window buffer, in bytes.
    pub(super) largest_window: usize,
}

impl<R: Read> Reader<R> {
    pub(super) fn new(src: R, base: u64, input_end: Option<u64>) -> Self {
        Reader {
            src,
            buf: Vec::new(),
            // No larger than the input needs (plus one byte, to see its end).
            window: input_end.map_or(WINDOW, |end| {
                usize::try_from(end.saturating_sub(base).saturating_add(1))
                    .map_or(WINDOW, |n| n.min(WINDOW))
            }),
            pos: 0,
            end: 0,
            base,
            input_end,
            eof: false,
            spare: Vec::new(),
            close: None,
            piece_buffers: Vec::new(),
            batch: Batch::default(),
            stats: WindowStats::default(),
        }
    }

    /// The input offset of the next unread byte.
    pub(super) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Makes at least `want` bytes available from `pos`, unless the input
    /// ends first.
    pub(super) fn fill(&mut self, want: usize) -> Result<()> {
        if self.end - self.pos >= want || self.eof {
            return Ok(());
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.stats.moved += (self.end - self.pos) as u64;
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let size = want.max(self.window);
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        } else if self.buf.len() > size && self.end <= size {
            // Back to the usual size after an element longer than a window.
            self.buf.truncate(size);
            self.buf.shrink_to_fit();
        }
        self.stats.largest_window = self.stats.largest_window.max(self.buf.len());
        while self.end < want {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FormatError::Io(e)),
            }
        }
        Ok(())
    }

    /// Skips whitespace and returns the next byte without consuming it.
    pub(super) fn peek(&mut self) -> Result<Option<u8>> {
        loop {
            while self.pos < self.end {
                let b = self.buf[self.pos];
                if !is_ws(b) {
                    return Ok(Some(b));
                }
                self.pos += 1;
            }
            if self.eof {
                return Ok(None);
            }
            self.fill(1)?;
        }
    }

    /// Consumes `byte` (after whitespace) or fails, naming `inside`.
    pub(super) fn expect(&mut self, byte: u8, inside: &'static str) -> Result<()> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => Err(syntax(
                format_args!("expected `{}`", byte as char),
                self.offset(),
            )),
            None => Err(early_end(inside)),
        }
    }
}

/// The first `]` in the input offsets `from..to`, if any.
#[derive(Debug, Clone, Copy)]
pub(super) struct CloseScan {
    pub(super) from: u64,
    pub(super) to: u64,
    pub(super) at: Option<u64>,
}

impl<R: Read> Reader<R> {
    /// The offset from `pos` of the first `]` in the window, or the
    /// window's length: from the scan made while the previous window was
    /// parsed when it covers the window, else found now.
    pub(super) fn first_close(&self) -> usize {
        let (from, to) = (self.offset(), self.base + self.end as u64);
        match self.close {
            Some(c) if c.from <= from && c.to == to && c.at.is_none_or(|at| at >= from) => {
                c.at.map_or(self.end - self.pos, |at| (at - from) as usize)
            }
            _ => memchr(b']', &self.buf[self.pos..self.end]).unwrap_or(self.end - self.pos),
        }
    }
}

/// Reads into `buf[from..]` until it is full or the input ends; returns
/// the end of the valid bytes.
pub(super) fn read_into(src: &mut impl Read, buf: &mut [u8], mut from: usize) -> Result<usize> {
    while from < buf.len() {
        match src.read(&mut buf[from..]) {
            Ok(0) => break,
            Ok(n) => from += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::Io(e)),
        }
    }
    Ok(from)
}
