//! The files a model is made of: opened only when regular, read through a
//! bounded set of open handles, and checked for changes on every read; or
//! remote files read with HTTP range requests ([`crate::remote`]).

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;

use memmap2::Mmap;
use modeltool_format::HeaderSha256;
use sha2::{Digest, Sha256};

use crate::remote::RemoteFile;
use crate::{CHUNK, LoadError, Result, sigbus};

/// How many files of one model are kept open at once. A checkpoint of
/// 3000 shards then works under `ulimit -n 256`: a file is reopened when
/// needed and checked to be the same file.
pub const MAX_OPEN_FILES: usize = 32;

/// Opens `path` for reading only if it is a regular file. Opened without
/// blocking (a FIFO would otherwise wait for a writer forever) and checked
/// on the handle (`fstat`), so what is checked is what is read.
pub(crate) fn open_regular(path: &Path) -> Result<(File, Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| {
            // open(2) on a socket fails with ENXIO: say what it is.
            if source.raw_os_error() == Some(libc::ENXIO) {
                if let Ok(m) = std::fs::metadata(path) {
                    if m.file_type().is_socket() {
                        return LoadError::NotRegularFile {
                            path: path.to_owned(),
                            what: "a socket",
                        };
                    }
                }
            }
            LoadError::Io {
                path: path.to_owned(),
                source,
            }
        })?;
    let meta = file.metadata().map_err(LoadError::io(path))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = crate::write::describe(&meta);
        return Err(LoadError::NotRegularFile {
            path: path.to_owned(),
            what,
        });
    }
    Ok((file, meta))
}

/// One open handle, or none when it was closed to keep the count bounded.
type Slot = Arc<Mutex<Option<Arc<File>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The open handles of one model's files, least recently opened first:
/// opening one more than [`MAX_OPEN_FILES`] closes the oldest.
#[derive(Debug)]
pub(crate) struct Handles {
    cap: usize,
    open: Mutex<VecDeque<Slot>>,
}

impl Handles {
    pub(crate) fn new() -> Arc<Handles> {
        Arc::new(Handles {
            cap: MAX_OPEN_FILES,
            open: Mutex::new(VecDeque::new()),
        })
    }

    /// Records `slot` as open, closing the oldest beyond the cap. A reader
    /// still using a closed handle keeps it alive until it is done.
    fn opened(&self, slot: &Slot) {
        let mut open = lock(&self.open);
        open.push_back(slot.clone());
        while open.len() > self.cap {
            if let Some(old) = open.pop_front() {
                lock(&old).take();
            }
        }
    }
}

/// What identifies a file and its contents between a close and a reopen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
}

/// One file a model is made of.
#[derive(Debug)]
pub struct ModelFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_len: u64,
    /// Bytes before the tensor data: for safetensors the 8-byte length plus
    /// the JSON header; for a JSON model file, the whole file.
    pub header_bytes: u64,
    /// What the header's `modeltool.header_sha256` says about it (always
    /// [`HeaderSha256::Absent`] for a JSON model file, which has no header).
    pub header_sha256: HeaderSha256,
    /// Where the bytes come from.
    source: Source,
    pub(crate) mmap: bool,
    map: OnceLock<Option<Mapped>>,
}

/// Where a [`ModelFile`]'s bytes come from.
#[derive(Debug)]
enum Source {
    /// A local file, read through a handle.
    Local(Local),
    /// A remote file, read with HTTP range requests that carry the ETag of
    /// the first answer (a file changed on the server is an error).
    Remote(Box<RemoteFile>),
}

/// A local file's handle and what identifies it.
#[derive(Debug)]
struct Local {
    /// The path it is reopened from (symlinks resolved, for shards).
    open_path: PathBuf,
    /// The handle, while open. Reads go through it, never through the
    /// path; a handle closed to bound the number of open files is reopened
    /// from `open_path` and must be the same file (device and inode), with
    /// the same length and modification time.
    slot: Slot,
    handles: Arc<Handles>,
    identity: Identity,
    /// Its modification time when opened (when the system has one).
    modified: Option<SystemTime>,
}

/// A memory map of a whole file, known to the SIGBUS lookup while it lives.
#[derive(Debug)]
struct Mapped {
    // Declared (so dropped) before the map: the address range leaves the
    // table before it is unmapped and can be reused.
    _watch: sigbus::Watch,
    map: Mmap,
}

impl ModelFile {
    pub(crate) fn new(
        path: &Path,
        open_path: &Path,
        handle: File,
        meta: &Metadata,
        handles: &Arc<Handles>,
        mmap: bool,
    ) -> ModelFile {
        let slot: Slot = Arc::new(Mutex::new(Some(Arc::new(handle))));
        handles.opened(&slot);
        ModelFile {
            path: path.to_owned(),
            file_len: meta.len(),
            header_bytes: 0,
            header_sha256: HeaderSha256::Absent,
            source: Source::Local(Local {
                open_path: open_path.to_owned(),
                slot,
                handles: handles.clone(),
                identity: Identity {
                    dev: meta.dev(),
                    ino: meta.ino(),
                },
                modified: meta.modified().ok(),
            }),
            mmap,
            map: OnceLock::new(),
        }
    }

    /// A remote file, known by its first answer.
    pub(crate) fn remote(file: RemoteFile) -> ModelFile {
        ModelFile {
            path: file.shown.clone(),
            file_len: file.len,
            header_bytes: 0,
            header_sha256: HeaderSha256::Absent,
            source: Source::Remote(Box::new(file)),
            mmap: false,
            map: OnceLock::new(),
        }
    }

    /// Whether the bytes come from a remote server.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote(_))
    }

    fn local(&self) -> Result<&Local> {
        match &self.source {
            Source::Local(l) => Ok(l),
            Source::Remote(_) => Err(LoadError::Remote {
                path: self.path.clone(),
                reason: "a remote file has no local handle".into(),
            }),
        }
    }

    /// The open handle, reopened (and checked to be the same, unchanged
    /// file) if it was closed to keep the number of open files bounded.
    pub(crate) fn handle(&self) -> Result<Arc<File>> {
        let local = self.local()?;
        if let Some(f) = lock(&local.slot).as_ref() {
            return Ok(f.clone());
        }
        let (file, meta) = open_regular(&local.open_path).map_err(|e| match e {
            LoadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                LoadError::Changed {
                    path: self.path.clone(),
                    detail: "it was removed".into(),
                }
            }
            other => other,
        })?;
        let now = Identity {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        if now != local.identity {
            return Err(LoadError::Changed {
                path: self.path.clone(),
                detail: "it was replaced by another file".into(),
            });
        }
        self.compare(local, &meta)?;
        let file = Arc::new(file);
        *lock(&local.slot) = Some(file.clone());
        local.handles.opened(&local.slot);
        Ok(file)
    }

    fn compare(&self, local: &Local, meta: &Metadata) -> Result<()> {
        let now = meta.len();
        if now < self.file_len {
            return Err(self.truncated(now));
        }
        if now != self.file_len {
            return Err(LoadError::Changed {
                path: self.path.clone(),
                detail: format!("it was {} bytes long, now {now}", self.file_len),
            });
        }
        if meta.modified().ok() != local.modified {
            return Err(LoadError::Changed {
                path: self.path.clone(),
                detail: "it was written to while being read".into(),
            });
        }
        Ok(())
    }

    /// Checks that the file still has the length and modification time it
    /// had when it was opened: [`LoadError::Truncated`] if it is shorter,
    /// [`LoadError::Changed`] if it is longer or was written to (or, when
    /// its handle had been closed, if the path now names another file).
    /// One `fstat`; the loader calls it before and after every read. A
    /// remote file is checked on every answer instead (its ETag and length),
    /// so this costs no request.
    pub fn check_unchanged(&self) -> Result<()> {
        let Source::Local(local) = &self.source else {
            return Ok(());
        };
        let meta = self
            .handle()?
            .metadata()
            .map_err(LoadError::io(&self.path))?;
        self.compare(local, &meta)
    }

    pub(crate) fn truncated(&self, actual: u64) -> LoadError {
        LoadError::Truncated {
            path: self.path.clone(),
            expected: self.file_len,
            actual,
        }
    }

    /// Fills `buf` from `offset` of the file as opened. A read that ends
    /// early because the file shrank is [`LoadError::Truncated`], not a bare
    /// "failed to fill whole buffer".
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        if let Source::Remote(remote) = &self.source {
            return remote.read_exact_at(buf, offset);
        }
        let handle = self.handle()?;
        handle.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                if let Ok(meta) = handle.metadata() {
                    if meta.len() < self.file_len {
                        return self.truncated(meta.len());
                    }
                }
            }
            LoadError::Io {
                path: self.path.clone(),
                source: e,
            }
        })
    }

    /// The sha256 of the whole file as it was opened (the hash the Hugging
    /// Face Hub lists), read in bounded chunks through the handle opened by
    /// [`Model::open`](crate::Model::open). A file that changes meanwhile is
    /// an error.
    pub fn sha256(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        self.read_chunks((0, self.file_len), CHUNK, |c| {
            hasher.update(c);
            Ok(())
        })?;
        Ok(hex::encode(hasher.finalize()))
    }

    /// Reads the byte range `start..end` of the file as opened in chunks of
    /// at most `chunk` bytes, handing each to `f`, with the file checked
    /// before and after ([`ModelFile::check_unchanged`]): one that shrank
    /// or was written to meanwhile is an error, even if `f` has seen some
    /// of its bytes.
    pub(crate) fn read_chunks(
        &self,
        (start, end): (u64, u64),
        chunk: usize,
        mut f: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        if let Source::Remote(remote) = &self.source {
            // One request for the whole range, streamed.
            return remote.read_chunks((start, end), chunk, &mut f);
        }
        self.check_unchanged()?;
        let mut buf = vec![0u8; chunk.min((end - start) as usize).max(1)];
        let mut at = start;
        while at < end {
            let n = buf.len().min((end - at) as usize);
            self.read_exact_at(&mut buf[..n], at)?;
            f(&buf[..n])?;
            at += n as u64;
        }
        self.check_unchanged()
    }

    /// [`LoadError::HeaderDamaged`] if the file's header does not match
    /// its `modeltool.header_sha256`; `Ok` when it matches or has none.
    pub fn check_header(&self) -> Result<()> {
        match &self.header_sha256 {
            HeaderSha256::Damaged(damage) => Err(LoadError::HeaderDamaged {
                path: self.path.clone(),
                damage: damage.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The file's memory map, made on first use; `None` when the model was
    /// opened without mmap or the file cannot be mapped (plain reads then).
    pub(crate) fn map(&self) -> Option<&Mmap> {
        if !self.mmap || !crate::mmap_allowed() || self.is_remote() {
            return None;
        }
        self.map
            .get_or_init(|| {
                let handle = self.handle().ok()?;
                map_file(&handle, self.file_len, &self.path)
            })
            .as_ref()
            .map(|m| &m.map)
    }
}

/// Maps the first `len` bytes of `file` (its length when opened, so that
/// the map never covers bytes the header did not account for), and records
/// it for [`crate::mapped_file_at`]. `None` if the file cannot be mapped.
fn map_file(file: &File, len: u64, path: &Path) -> Option<Mapped> {
    let len = usize::try_from(len).ok()?;
    #[expect(unsafe_code, reason = "the one memory map of modeltool")]
    // SAFETY: mapping is unsafe because the mapped bytes change if the file
    // is modified, and touching pages beyond a truncated end raises SIGBUS.
    // The map is only made after the program called the unsafe
    // `allow_mmap`, promising the crate docs' assumption: nobody truncates
    // the file while bytes borrowed from the map are in use. The file's length
    // and modification time are checked against those at open after
    // mapping and before every hand-out; a truncation after that raises
    // SIGBUS, which a program can name with `mapped_file_at`; a rewrite in
    // place is caught by the checksums. Bytes are only read through `&[u8]`
    // views whose lifetime is bound to the `Model`. If mapping fails we fall
    // back to plain reads.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }.ok()?;
    let watch = sigbus::Watch::new(map.as_ptr(), map.len(), path);
    Some(Mapped { _watch: watch, map })
}
