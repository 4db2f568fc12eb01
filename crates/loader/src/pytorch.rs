//! PyTorch checkpoints (`model.pt`, `pytorch_model.bin`; the zip archive of
//! torch >= 1.6, the legacy stream before it and the older tar archive) as
//! a [`Model`].
//!
//! Opening reads only what describes the tensors: for a zip, the end
//! records, the central directory, `data.pkl`, `byteorder` and each
//! storage's local header; for a legacy stream, its pickles and each
//! storage's 8-byte element count; for a tar, its headers and the records
//! of its `pickle`, `tensors` and `storages` entries. The pickle is interpreted as data by
//! [`modeltool_format::pytorch`], never run: a global a checkpoint does not
//! need is refused unless the caller allows it ([`OpenOptions::allow_globals`]).
//!
//! A tensor whose view is row-major contiguous (and little-endian) is an
//! ordinary byte range of the file ([`Location::File`]); any other view
//! (transposed, sliced with steps, expanded, big-endian) is a
//! [`Location::Torch`], copied out on read in exactly the order
//! `tensor.contiguous()` gives. Tensors sharing one storage are listed by
//! [`Model::shared_storages`] and noted in the metadata under
//! [`TIED_PREFIX`]; every other value of the checkpoint (an epoch, a
//! learning rate, a string) is metadata by its path.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::Path;

use modeltool_format::pytorch::zip::{self, Directory, EndRecord, TAIL_LEN, ZipEntry};
use modeltool_format::pytorch::{
    ByteOrder, Checkpoint, Container, LegacyFile, PytorchError, TarFile, TorchArchive, TorchTensor,
    Value,
};
use modeltool_format::{ModelMetadata, TensorMeta, keys};

use crate::{Entry, LoadError, Location, Model, ModelFile, ModelKind, OpenOptions, Result};

/// Metadata key prefix noting a tensor that shares its storage with another
/// (`modeltool.tied.lm_head.weight` = `transformer.wte.weight`): the value
/// names the first tensor of the checkpoint on the same storage. Written
/// files hold a copy of the bytes under every name (safetensors forbids
/// shared storage), and the key says they were one storage.
pub const TIED_PREFIX: &str = "modeltool.tied.";

/// At most this many non-tensor values of a checkpoint become metadata.
pub const MAX_METADATA_VALUES: usize = 10_000;

/// At most this many bytes of keys and values of non-tensor values become
/// metadata; the rest are counted under [`DROPPED_KEY`].
pub const MAX_METADATA_BYTES: usize = 16 << 20;

/// Metadata key counting the non-tensor values left out by the bounds.
pub const DROPPED_KEY: &str = "modeltool.pytorch.dropped_values";

/// How a [`Location::Torch`] view is copied out: the strided view in its
/// storage and the storage's byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchView {
    /// The tensor as the checkpoint describes it (shape, strides, offset).
    pub tensor: TorchTensor,
    /// The storage's byte order.
    pub byte_order: ByteOrder,
}

/// What the loader keeps of a PyTorch checkpoint beyond its entries.
#[derive(Debug, Default)]
pub(crate) struct TorchState {
    /// Views that need a copy to be contiguous, by [`Location::Torch`]'s `view`.
    pub(crate) views: Vec<TorchView>,
    /// Groups of tensor names sharing one storage.
    pub(crate) shared: Vec<Vec<String>>,
    /// Per file of the model: the zip directory (`None` for a legacy stream).
    pub(crate) directories: Vec<(usize, Option<Directory>)>,
}

fn torch_err(path: &Path) -> impl FnOnce(PytorchError) -> LoadError + '_ {
    move |source| LoadError::Pytorch {
        path: path.to_owned(),
        source,
    }
}

/// Bytes `start..end` of the file.
fn read_range(file: &ModelFile, start: u64, end: u64) -> Result<Vec<u8>> {
    let len = end.saturating_sub(start);
    let len = usize::try_from(len).map_err(|_| LoadError::NotAModel {
        path: file.path.clone(),
        reason: format!("a record of {len} bytes does not fit in memory"),
    })?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, start)?;
    Ok(buf)
}

/// Asks the kernel not to read ahead on this file while its records are
/// read one by one: an inspection of a 500 MB checkpoint then reads a few
/// pages, not 128 KiB around each storage's local header.
fn advise(file: &ModelFile, advice: libc::c_int) {
    if let Ok(handle) = file.handle() {
        #[expect(unsafe_code, reason = "posix_fadvise has no safe wrapper in libc")]
        // SAFETY: the descriptor is open (we hold its handle) and
        // posix_fadvise only advises the kernel; it touches no memory of ours.
        unsafe {
            libc::posix_fadvise(handle.as_raw_fd(), 0, 0, advice);
        }
    }
}

/// Reads a checkpoint's description (not its tensor data) from `file`,
/// whose first bytes are `head`: for a shard of a sharded checkpoint.
pub(crate) fn read_shard(file: &ModelFile, head: &[u8], options: &OpenOptions) -> Result<Read> {
    let path = file.path.clone();
    let container = modeltool_format::pytorch::sniff(head).map_err(torch_err(&path))?;
    advise(file, libc::POSIX_FADV_RANDOM);
    let read = match container {
        Container::Zip => read_zip(&path, file, &options.allow_globals),
        Container::Legacy => read_legacy(&path, file, &options.allow_globals),
        Container::Tar => read_tar(&path, file, &options.allow_globals),
    };
    advise(file, libc::POSIX_FADV_NORMAL);
    read
}

/// Adds a shard's tensors as entries of file `file` (already pushed);
/// returns their names and sizes in bytes.
pub(crate) fn add_shard(model: &mut Model, file: usize, read: Read) -> Result<Vec<(String, u64)>> {
    let (checkpoint, storages, byte_order, directory) = read;
    let names = checkpoint
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.byte_len() as u64))
        .collect();
    model.torch.directories.push((file, directory));
    add_checkpoint(model, file, checkpoint, &storages, byte_order)?;
    Ok(names)
}

/// Opens a PyTorch checkpoint whose first bytes say it is `container`.
pub(crate) fn open(
    path: &Path,
    file: ModelFile,
    container: Container,
    options: &OpenOptions,
) -> Result<Model> {
    advise(&file, libc::POSIX_FADV_RANDOM);
    let read = match container {
        Container::Zip => read_zip(path, &file, &options.allow_globals),
        Container::Legacy => read_legacy(path, &file, &options.allow_globals),
        Container::Tar => read_tar(path, &file, &options.allow_globals),
    };
    advise(&file, libc::POSIX_FADV_NORMAL);
    let (checkpoint, storages, byte_order, directory) = read?;
    let mut model = Model::empty(path, ModelKind::Pytorch);
    model.files.push(file);
    model.torch.directories.push((0, directory));
    add_checkpoint(&mut model, 0, checkpoint, &storages, byte_order)?;
    model.finish(&BTreeMap::new())?;
    Ok(model)
}

/// What reading a checkpoint gives: its contents, each storage's bytes in
/// the file, their byte order and the zip directory.
pub(crate) type Read = (
    Checkpoint,
    BTreeMap<String, std::ops::Range<u64>>,
    ByteOrder,
    Option<Directory>,
);

fn read_zip(path: &Path, file: &ModelFile, allow: &[String]) -> Result<Read> {
    let len = file.file_len;
    let tail_start = len.saturating_sub(TAIL_LEN);
    let tail = read_range(file, tail_start, len)?;
    let end = EndRecord::find(&tail, tail_start, len).map_err(torch_err(path))?;
    let cd = match end
        .offset
        .checked_sub(tail_start)
        .and_then(|at| tail.get(at as usize..(at + end.len) as usize))
    {
        Some(inside) => inside.to_vec(),
        None => read_range(file, end.offset, end.offset.saturating_add(end.len))?,
    };
    let dir = Directory::parse(&cd, &end).map_err(torch_err(path))?;
    drop(cd);
    let archive = TorchArchive::from_directory(&dir).map_err(torch_err(path))?;
    let byte_order = match &archive.byteorder {
        Some(e) => ByteOrder::parse(&entry_bytes(path, file, e)?).map_err(torch_err(path))?,
        None => ByteOrder::Little,
    };
    let pkl = entry_bytes(path, file, &archive.data_pkl)?;
    let checkpoint = archive
        .read_checkpoint(&pkl, allow)
        .map_err(torch_err(path))?;
    archive
        .check_storages(&dir, &checkpoint)
        .map_err(torch_err(path))?;
    let mut storages = BTreeMap::new();
    for key in checkpoint.storages.keys() {
        let e = archive
            .storage_entry(&dir, key)
            .expect("check_storages found every storage");
        storages.insert(key.clone(), data_range(path, file, e)?);
    }
    Ok((checkpoint, storages, byte_order, Some(dir)))
}

/// Where a zip entry's bytes are, from its local header.
fn data_range(path: &Path, file: &ModelFile, e: &ZipEntry) -> Result<std::ops::Range<u64>> {
    let start = e.header_offset;
    let end = start
        .saturating_add(e.local_prefix_len() as u64)
        .min(file.file_len);
    let prefix = read_range(file, start.min(end), end)?;
    e.data_range(&prefix).map_err(torch_err(path))
}

/// A stored entry's bytes (for `data.pkl` and `byteorder`).
fn entry_bytes(path: &Path, file: &ModelFile, e: &ZipEntry) -> Result<Vec<u8>> {
    let r = data_range(path, file, e)?;
    read_range(file, r.start, r.end)
}

fn read_legacy(path: &Path, file: &ModelFile, allow: &[String]) -> Result<Read> {
    let len = file.file_len;
    let mut want = len.min(1 << 20);
    let legacy = loop {
        let head = read_range(file, 0, want)?;
        match LegacyFile::parse_head(&head, len, allow) {
            Ok(l) => break l,
            Err(PytorchError::LegacyHeadShort { .. }) if want < len => {
                want = want.saturating_mul(2).min(len);
            }
            Err(e) => return Err(torch_err(path)(e)),
        }
    };
    for (key, at, _) in &legacy.unchecked {
        let count = read_range(file, *at, at.saturating_add(8).min(len))?;
        legacy.check_count(key, &count).map_err(torch_err(path))?;
    }
    Ok((legacy.checkpoint, legacy.storages, ByteOrder::Little, None))
}

/// Why reading a tar checkpoint stopped: the file's bytes, or reading them.
enum TarFail {
    Torch(PytorchError),
    Load(LoadError),
}

impl From<PytorchError> for TarFail {
    fn from(e: PytorchError) -> TarFail {
        TarFail::Torch(e)
    }
}

/// The tar format: its headers, pickles and each storage's element count
/// are read, one range at a time; the storages' bytes are not.
fn read_tar(path: &Path, file: &ModelFile, allow: &[String]) -> Result<Read> {
    let mut fetch = |r: std::ops::Range<u64>| {
        read_range(file, r.start, r.end)
            .map(std::borrow::Cow::Owned)
            .map_err(TarFail::Load)
    };
    match TarFile::read(file.file_len, allow, &mut fetch) {
        Ok(t) => Ok((t.checkpoint, t.storages, ByteOrder::Little, None)),
        Err(TarFail::Torch(e)) => Err(torch_err(path)(e)),
        Err(TarFail::Load(e)) => Err(e),
    }
}

/// Makes the checkpoint's tensors entries of file `file`, its other values
/// metadata, and notes shared storages.
fn add_checkpoint(
    model: &mut Model,
    file: usize,
    checkpoint: Checkpoint,
    storages: &BTreeMap<String, std::ops::Range<u64>>,
    byte_order: ByteOrder,
) -> Result<()> {
    let path = model.files[file].path.clone();
    let shared = checkpoint.shared_storages();
    for (_, names) in &shared {
        let first = &names[0];
        for other in &names[1..] {
            model
                .metadata
                .user
                .insert(format!("{TIED_PREFIX}{other}"), first.clone());
        }
    }
    model
        .torch
        .shared
        .extend(shared.into_iter().map(|(_, names)| names));
    add_values(&mut model.metadata, checkpoint.metadata);
    model.entries.reserve(checkpoint.tensors.len());
    for t in checkpoint.tensors {
        let s = storages.get(&t.storage).ok_or_else(|| LoadError::Pytorch {
            path: path.clone(),
            source: PytorchError::StorageMissing {
                tensor: t.name.clone(),
                key: t.storage.clone(),
            },
        })?;
        let r = t.storage_range();
        let (start, end) = (s.start + r.start, s.start + r.end);
        if end > s.end {
            return Err(LoadError::Pytorch {
                path: path.clone(),
                source: PytorchError::ShortStorage {
                    tensor: t.name.clone(),
                    given: (s.end - s.start).saturating_sub(r.start),
                    need: r.end - r.start,
                },
            });
        }
        let meta = TensorMeta {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        };
        let swap = byte_order == ByteOrder::Big && t.dtype.bits() > 8;
        let location = if t.is_contiguous() && !swap {
            Location::File { file, start, end }
        } else {
            let view = model.torch.views.len();
            model.torch.views.push(TorchView {
                tensor: t.clone(),
                byte_order,
            });
            Location::Torch {
                file,
                start,
                end,
                view,
                len: t.byte_len() as u64,
            }
        };
        model.entries.push(Entry {
            meta,
            file,
            location,
            stored_sha256: None,
        });
    }
    Ok(())
}

/// The checkpoint's non-tensor values as metadata, exact (a string as
/// itself, anything else as JSON), within [`MAX_METADATA_VALUES`] and
/// [`MAX_METADATA_BYTES`]. A path that would read as one of modeltool's
/// own keys (`modeltool.*`) is kept under `pytorch.` + the path.
fn add_values(metadata: &mut ModelMetadata, values: Vec<(String, Value)>) {
    let (mut kept, mut bytes, mut dropped) = (0usize, 0usize, 0usize);
    for (key, value) in values {
        let text = match value {
            Value::Str(s) => s,
            other => serde_json::to_string(&other).unwrap_or_else(|e| format!("<{e}>")),
        };
        let key = if key.starts_with("modeltool.")
            || key.starts_with(keys::SHA256_PREFIX)
            || key == keys::ARCHITECTURE
        {
            format!("pytorch.{key}")
        } else {
            key
        };
        let size = key.len() + text.len();
        if kept >= MAX_METADATA_VALUES || bytes + size > MAX_METADATA_BYTES {
            dropped += 1;
            continue;
        }
        kept += 1;
        bytes += size;
        metadata.user.insert(key, text);
    }
    if dropped > 0 {
        metadata.user.insert(
            DROPPED_KEY.to_owned(),
            format!(
                "{dropped} values not kept (more than {MAX_METADATA_VALUES} values or {MAX_METADATA_BYTES} bytes)"
            ),
        );
    }
}

impl Model {
    /// Groups of tensors that share one storage in a PyTorch checkpoint
    /// (tied embeddings, LSTM gates packed in one buffer), names in
    /// checkpoint order; empty for other models. Written files hold a copy
    /// under every name, noted under [`TIED_PREFIX`] in the metadata.
    ///
    /// ```no_run
    /// # use modeltool_loader::{Model, OpenOptions};
    /// let model = Model::open("tied.pt", OpenOptions::default())?;
    /// for group in model.shared_storages() {
    ///     println!("one storage: {}", group.join(", "));
    /// }
    /// # Ok::<(), modeltool_loader::LoadError>(())
    /// ```
    pub fn shared_storages(&self) -> &[Vec<String>] {
        &self.torch.shared
    }

    /// The view behind a [`Location::Torch`] entry.
    pub fn torch_view(&self, view: usize) -> Option<&TorchView> {
        self.torch.views.get(view)
    }

    /// Reads a [`Location::Torch`] entry's storage bytes and copies the
    /// view out contiguously into `sink`, in pieces of at most 64 KiB.
    pub(crate) fn torch_copy(
        &self,
        file: usize,
        start: u64,
        end: u64,
        view: usize,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let f = &self.files[file];
        let v = &self.torch.views[view];
        let storage = match f.map() {
            Some(map) => {
                f.check_unchanged()?;
                std::borrow::Cow::Borrowed(
                    map.get(start as usize..end as usize)
                        .ok_or_else(|| f.truncated(map.len() as u64))?,
                )
            }
            None => {
                f.check_unchanged()?;
                let b = read_range(f, start, end)?;
                f.check_unchanged()?;
                std::borrow::Cow::Owned(b)
            }
        };
        let mut failed = None;
        v.tensor
            .copy_contiguous(&storage, v.byte_order, &mut |b| {
                if failed.is_none()
                    && let Err(e) = sink(b)
                {
                    failed = Some(e);
                }
            })
            .map_err(|source| LoadError::Pytorch {
                path: f.path.clone(),
                source,
            })?;
        failed.map_or(Ok(()), Err)
    }

    /// For `verify`: every stored zip entry's CRC-32, read in bounded
    /// chunks. Returns the problems found, as text.
    pub(crate) fn check_containers(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for (file, dir) in &self.torch.directories {
            let Some(dir) = dir else { continue };
            let f = &self.files[*file];
            for e in dir.entries.iter().filter(|e| e.method == 0) {
                let r = match data_range(&f.path, f, e) {
                    Ok(r) => r,
                    Err(err) => {
                        problems.push(err.to_string());
                        continue;
                    }
                };
                let mut crc = !0u32;
                f.read_chunks((r.start, r.end), crate::CHUNK, |c| {
                    crc = zip::crc32_update(crc, c);
                    Ok(())
                })?;
                if !crc != e.crc32 {
                    problems.push(
                        LoadError::Pytorch {
                            path: f.path.clone(),
                            source: PytorchError::ZipCrc {
                                name: e.name.clone(),
                                stored: e.crc32,
                                actual: !crc,
                            },
                        }
                        .to_string(),
                    );
                }
            }
        }
        Ok(problems)
    }

    /// Whether the model is (or its shards are) a PyTorch checkpoint, which
    /// carries no per-tensor checksums of its own.
    pub fn is_pytorch(&self) -> bool {
        !self.torch.directories.is_empty()
    }
}
