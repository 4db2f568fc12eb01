//! The bytes of the tensors a model parsed itself (a JSON model file's
//! values), one after another: in memory while they are few, then in an
//! unnamed temporary file. A JSON model file has no bytes to read a tensor
//! from, only text; parsed once, its values would otherwise all stay in
//! memory for as long as the model is open. In the file they cost page
//! cache, which the kernel writes out or drops under pressure, and a
//! model's memory grows with its tensor count, not its values.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

/// Held in memory up to this many bytes; past it, in the file. A model
/// that small costs no file; one larger costs at most this much memory
/// more than its tensor list while it is read.
const IN_MEMORY: usize = 8 << 20;
/// Reads of the file this small go through one read of [`READ_AHEAD`]
/// bytes, kept for the reads after it: tensors are read back in the order
/// they were stored (a conversion), and 100k tensors of a few hundred bytes
/// would otherwise cost 100k system calls.
const SMALL_READ: usize = 16 << 10;
const READ_AHEAD: usize = 256 << 10;

/// Tensors' bytes, each at a start the store gave when it took them.
#[derive(Debug, Default)]
pub(crate) struct Store {
    memory: Vec<u8>,
    /// Set once the bytes outgrew [`IN_MEMORY`]; it holds all of them.
    file: Option<File>,
    /// The file's length.
    len: u64,
    /// The last [`READ_AHEAD`] bytes read for a small read, and where they
    /// start in the file.
    ahead: Mutex<(u64, Vec<u8>)>,
}

/// A [`Store`] being filled.
#[derive(Debug, Default)]
pub(crate) struct StoreWriter {
    memory: Vec<u8>,
    file: Option<BufWriter<File>>,
    /// No file could be made (no writable temporary folder): keep
    /// everything in memory, as a model always did.
    memory_only: bool,
    len: u64,
}

impl StoreWriter {
    /// Appends `bytes`; returns where they start.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> io::Result<u64> {
        let start = self.len;
        if self.file.is_none() && !self.memory_only && self.memory.len() + bytes.len() > IN_MEMORY {
            match tempfile::tempfile() {
                Ok(file) => {
                    let mut out = BufWriter::with_capacity(1 << 20, file);
                    out.write_all(&self.memory).map_err(full)?;
                    self.memory = Vec::new();
                    self.file = Some(out);
                }
                Err(_) => self.memory_only = true,
            }
        }
        match &mut self.file {
            Some(out) => out.write_all(bytes).map_err(full)?,
            None => self.memory.extend_from_slice(bytes),
        }
        self.len += bytes.len() as u64;
        Ok(start)
    }

    /// The store, every byte pushed readable.
    pub(crate) fn finish(self) -> io::Result<Store> {
        let file = match self.file {
            Some(out) => Some(out.into_inner().map_err(|e| full(e.into_error()))?),
            None => None,
        };
        Ok(Store {
            memory: self.memory,
            file,
            len: self.len,
            ahead: Mutex::default(),
        })
    }
}

/// A failed write to the temporary file, said as what it is: the error
/// names the model being read, and "no space left" alone would point at it.
fn full(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "cannot hold its parsed values in a temporary file in {}: {e}",
            std::env::temp_dir().display()
        ),
    )
}

impl Store {
    /// The `len` bytes at `start`: borrowed from memory, or read from the
    /// file.
    pub(crate) fn get(&self, start: u64, len: u64) -> io::Result<Cow<'_, [u8]>> {
        match &self.file {
            None => Ok(Cow::Borrowed(&self.memory[range(start, len)])),
            Some(file) => {
                let mut buf = vec![0u8; len as usize];
                self.read_at(file, &mut buf, start)?;
                Ok(Cow::Owned(buf))
            }
        }
    }

    /// Fills `buf` from the file at `start`: a small read from the bytes
    /// read ahead (reading the next [`READ_AHEAD`] when they do not hold
    /// it), a large one straight from the file.
    fn read_at(&self, file: &File, buf: &mut [u8], start: u64) -> io::Result<()> {
        if buf.len() > SMALL_READ {
            return file.read_exact_at(buf, start);
        }
        // A reader on another thread holds it: read past it, not behind it.
        let Ok(mut ahead) = self.ahead.try_lock() else {
            return file.read_exact_at(buf, start);
        };
        let (at, bytes) = &mut *ahead;
        let end = start + buf.len() as u64;
        if !(*at <= start && end <= *at + bytes.len() as u64) {
            let n = (self.len.saturating_sub(start) as usize)
                .min(READ_AHEAD)
                .max(buf.len());
            bytes.resize(n, 0);
            if let Err(e) = file.read_exact_at(bytes, start) {
                bytes.clear();
                return Err(e);
            }
            *at = start;
        }
        let from = (start - *at) as usize;
        buf.copy_from_slice(&bytes[from..from + buf.len()]);
        Ok(())
    }

    /// The `len` bytes at `start`, handed to `f` in pieces of at most
    /// `chunk` bytes; a failed read of the file is `read_error`'s.
    pub(crate) fn chunks<E>(
        &self,
        (start, len): (u64, u64),
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
        read_error: impl FnOnce(io::Error) -> E,
    ) -> Result<(), E> {
        let chunk = chunk.max(1);
        match &self.file {
            None => {
                for c in self.memory[range(start, len)].chunks(chunk) {
                    f(c)?;
                }
            }
            Some(file) => {
                let mut buf = vec![0u8; (len as usize).min(chunk)];
                let mut at = start;
                let end = start + len;
                while at < end {
                    let n = ((end - at) as usize).min(chunk);
                    if let Err(e) = self.read_at(file, &mut buf[..n], at) {
                        return Err(read_error(e));
                    }
                    f(&buf[..n])?;
                    at += n as u64;
                }
            }
        }
        Ok(())
    }
}

fn range(start: u64, len: u64) -> std::ops::Range<usize> {
    start as usize..(start + len) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tensors of every size around the limit, read back whole and in
    /// pieces from a store that moved to its file half way.
    #[test]
    fn bytes_read_back_the_same_before_and_after_the_move_to_a_file() {
        let tensors: Vec<Vec<u8>> = (0..40)
            .map(|i| {
                (0..(i * 37_001 + 3) % 1_500_000)
                    .map(|b| (b * 7 + i) as u8)
                    .collect()
            })
            .collect();
        let mut w = StoreWriter::default();
        let starts: Vec<u64> = tensors.iter().map(|t| w.push(t).expect("pushed")).collect();
        assert!(w.len > IN_MEMORY as u64, "the test crosses the limit");
        let store = w.finish().expect("finished");
        assert!(store.file.is_some() && store.memory.is_empty());
        for (t, &start) in tensors.iter().zip(&starts) {
            assert_eq!(&store.get(start, t.len() as u64).expect("read")[..], &t[..]);
            let mut again = Vec::new();
            store
                .chunks(
                    (start, t.len() as u64),
                    4096,
                    |c| {
                        assert!(c.len() <= 4096);
                        again.extend_from_slice(c);
                        Ok(())
                    },
                    |e| e,
                )
                .expect("read");
            assert_eq!(again, *t);
        }
    }

    #[test]
    fn small_reads_from_the_file_read_back_the_same_in_any_order() {
        // Small tensors are served from a read ahead of the file: in file
        // order (a conversion), backwards, skipping about, and from two
        // threads at once, each read gives its own bytes.
        let tensors: Vec<Vec<u8>> = (0..30_000u32)
            .map(|i| (0..(i * 7919) % 700).map(|b| (b ^ i) as u8).collect())
            .collect();
        let mut w = StoreWriter::default();
        let starts: Vec<u64> = tensors.iter().map(|t| w.push(t).expect("pushed")).collect();
        let store = w.finish().expect("finished");
        assert!(store.file.is_some(), "the test reads from the file");
        let check = |i: usize| {
            let len = tensors[i].len() as u64;
            assert_eq!(
                &store.get(starts[i], len).expect("read")[..],
                &tensors[i][..],
                "{i}"
            );
            let mut again = Vec::new();
            store
                .chunks(
                    (starts[i], len),
                    100,
                    |c| {
                        again.extend_from_slice(c);
                        Ok(())
                    },
                    |e| e,
                )
                .expect("read");
            assert_eq!(again, tensors[i], "{i} in chunks");
        };
        (0..tensors.len()).for_each(check);
        (0..tensors.len()).rev().for_each(check);
        (0..tensors.len())
            .map(|i| i * 7_001 % tensors.len())
            .for_each(check);
        std::thread::scope(|s| {
            s.spawn(|| (0..tensors.len()).for_each(check));
            s.spawn(|| (0..tensors.len()).rev().for_each(check));
        });
    }

    #[test]
    fn a_small_model_stays_in_memory() {
        let mut w = StoreWriter::default();
        let a = w.push(&[1, 2, 3]).expect("pushed");
        let b = w.push(&[4]).expect("pushed");
        let store = w.finish().expect("finished");
        assert!(store.file.is_none());
        assert!(matches!(store.get(b, 1).expect("read"), Cow::Borrowed([4])));
        assert_eq!(&store.get(a, 3).expect("read")[..], &[1, 2, 3]);
    }
}
