//! Writing outputs so that no command destroys what it did not create.
//!
//! Every command that writes files declares them in one [`Outputs`] set
//! before it does any work: its inputs, then each output with its kind (a
//! [file](Outputs::file), a [checkpoint folder](Outputs::folder), or an
//! input deliberately [replaced in place](Outputs::in_place)) and whether
//! `--force` was given. Each declaration is checked at once, against what
//! is on disk and against everything declared before it:
//!
//! - Outputs are compared with inputs and with each other by file identity
//!   (device and inode where the file exists, else the resolved path), so
//!   `a.safetensors`, `./d/../a.safetensors`, a hard link and a symlink to
//!   it are one file. A folder output may not hold an input or another output.
//! - `--force` replaces only what modeltool itself would have written
//!   there: a regular file for a file output; for a folder output, a folder
//!   that holds nothing but a checkpoint (`model.safetensors`, or
//!   `model.safetensors.index.json` and the shards it names). A symbolic
//!   link, a FIFO, a device, a folder of other files: refused, naming the
//!   path and why, and nothing is touched. Without `--force` nothing that
//!   exists is replaced.
//! - The folder an output goes in must exist; errors name the path the user
//!   gave, never a temporary one.
//!
//! Then each output is written to a temporary file (or folder) beside its
//! target, and [`Outputs::commit`] renames them all into place: a replaced
//! file keeps its permission bits, the swap is one atomic step where the
//! file system allows it (`renameat2(RENAME_EXCHANGE)`), and if one rename
//! fails, the outputs already placed are taken back, so a command writes all
//! of its outputs or none. Dropping the set without committing removes
//! every temporary file.
//!
//! ```
//! use std::io::Write;
//! use modeltool_loader::write::Outputs;
//!
//! let dir = tempfile::tempdir()?;
//! let (data, model, plot) = (dir.path().join("d.csv"), dir.path().join("m.json"), dir.path().join("loss.svg"));
//! std::fs::write(&data, "x,y\n1,2\n")?;
//!
//! let mut outputs = Outputs::new();
//! outputs.input(&data)?;
//! let m = outputs.file(&model, false)?;
//! let p = outputs.file(&plot, false)?;
//! // The same file under another spelling is refused before any work.
//! let again = dir.path().join(".").join("loss.svg");
//! assert!(outputs.file(&again, true).is_err());
//! // So is writing over an input, with or without --force.
//! assert!(outputs.file(&data, true).is_err());
//!
//! outputs.write_bytes(m, b"{}")?;
//! outputs.write_bytes(p, b"<svg/>")?;
//! outputs.commit()?;
//! assert_eq!(std::fs::read(&plot)?, b"<svg/>");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, Metadata};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::shards::INDEX_NAME;
use crate::{LoadError, Model, Result};

/// The name a one-shard checkpoint folder gives its only file.
pub const SINGLE_SHARD_NAME: &str = "model.safetensors";

/// What an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A regular file.
    File,
    /// A folder holding a checkpoint (`model.safetensors`, or the index and
    /// its shards).
    Folder,
}

/// One output of an [`Outputs`] set, as [`Outputs::file`] and
/// [`Outputs::folder`] hand it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputId(usize);

/// A file as compared with others: the same thing under any spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Identity {
    /// An existing file: its device and inode.
    Inode(u64, u64),
    /// A file that does not exist yet: its resolved path.
    Path(PathBuf),
}

#[derive(Debug)]
struct Input {
    shown: PathBuf,
    identity: Identity,
    resolved: PathBuf,
}

/// What is at an output's name, to be replaced.
#[derive(Debug, Clone, Copy)]
struct Existing {
    dev: u64,
    ino: u64,
    /// Its permission bits, which the new output keeps.
    mode: u32,
}

#[derive(Debug)]
enum Staged {
    File { file: File, temp: PathBuf },
    Folder { temp: PathBuf },
}

impl Staged {
    fn temp(&self) -> &Path {
        match self {
            Staged::File { temp, .. } | Staged::Folder { temp } => temp,
        }
    }
}

#[derive(Debug)]
struct Planned {
    shown: PathBuf,
    target: Target,
    resolved: PathBuf,
    identity: Identity,
    existing: Option<Existing>,
    /// An input rewritten deliberately ([`Outputs::in_place`]).
    in_place: bool,
    staged: Option<Staged>,
}

/// How one output was put in place by [`Outputs::commit`], to take it back.
#[derive(Debug)]
enum Placed {
    /// Nothing was there; the output is new.
    Created,
    /// The old output waits at this path (swapped with the temporary one,
    /// or renamed aside).
    Replaced { old: PathBuf, swapped: bool },
}

/// The outputs of one command, checked against its inputs and each other,
/// written to temporary files and put in place all together; see the
/// [module documentation](self).
#[derive(Debug, Default)]
pub struct Outputs {
    inputs: Vec<Input>,
    outputs: Vec<Planned>,
}

fn refused(path: &Path, reason: impl Into<String>) -> LoadError {
    LoadError::Refused {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// What a thing that is not a regular file or a folder is, for messages
/// (about an output here, and about an input in `file.rs`).
pub(crate) fn describe(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_file() {
        "a file"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The folder `path` goes in, as given (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `path` with its folder resolved (symlinks, `.`, `..`) and its own name
/// kept as it is: where a new file of that name would be.
fn resolve(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| refused(path, "names no file (it ends in `..` or is a root)"))?;
    let parent = parent_of(path);
    let resolved = parent.canonicalize().map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            format!("the folder {} does not exist", parent.display())
        } else if e.raw_os_error() == Some(libc::ENOTDIR) {
            format!("{} is not a folder", parent.display())
        } else {
            format!("cannot reach the folder {}: {e}", parent.display())
        };
        LoadError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(e.kind(), why),
        }
    })?;
    if !resolved.is_dir() {
        return Err(refused(
            path,
            format!("{} is not a folder", parent.display()),
        ));
    }
    Ok(resolved.join(name))
}

/// The files a folder holds that make it a checkpoint modeltool could
/// have written, or why it is not one: nothing but regular files, and
/// either only `model.safetensors`, or `model.safetensors.index.json` and
/// only the shards its `weight_map` names. An empty folder counts too.
///
/// ```
/// use modeltool_loader::write::checkpoint_folder;
/// let dir = tempfile::tempdir()?;
/// assert!(checkpoint_folder(dir.path()).is_ok());
/// std::fs::write(dir.path().join("model.safetensors"), b"")?;
/// assert!(checkpoint_folder(dir.path()).is_ok());
/// std::fs::write(dir.path().join("thesis.tex"), b"important")?;
/// assert!(checkpoint_folder(dir.path()).unwrap_err().contains("thesis.tex"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn checkpoint_folder(dir: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let read = std::fs::read_dir(dir).map_err(|e| format!("cannot list it: {e}"))?;
    let mut names = BTreeSet::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(entry.path())
            .map_err(|e| format!("cannot look at `{name}` in it: {e}"))?;
        if !meta.file_type().is_file() {
            return Err(format!(
                "holds `{}`, {}, which is not part of a checkpoint modeltool writes",
                modeltool_format::text::middle(&name, 80),
                describe(&meta)
            ));
        }
        names.insert(name);
    }
    let foreign = |name: &str, why: &str| {
        Err(format!(
            "holds `{}`, {why}",
            modeltool_format::text::middle(name, 80)
        ))
    };
    if names.contains(INDEX_NAME) {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: BTreeMap<String, String>,
        }
        let text = std::fs::read(dir.join(INDEX_NAME))
            .map_err(|e| format!("cannot read its {INDEX_NAME}: {e}"))?;
        let index: Index = serde_json::from_slice(&text)
            .map_err(|e| format!("its {INDEX_NAME} is not an index modeltool writes: {e}"))?;
        let named: BTreeSet<&str> = index.weight_map.values().map(String::as_str).collect();
        for name in &names {
            if name != INDEX_NAME && !named.contains(name.as_str()) {
                return foreign(name, "which its index does not name");
            }
        }
    } else if let Some(name) = names.iter().find(|n| n.as_str() != SINGLE_SHARD_NAME) {
        return foreign(name, "which is not part of a checkpoint modeltool writes");
    }
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

impl Outputs {
    /// An empty set.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Declares an input: no output may be it (or, for a folder output,
    /// hold it). A path that does not exist is ignored (opening it fails
    /// with its own error).
    pub fn input(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let resolved = path.canonicalize().map_err(LoadError::io(path))?;
        let input = Input {
            shown: path.to_owned(),
            identity: Identity::Inode(meta.dev(), meta.ino()),
            resolved,
        };
        for o in &self.outputs {
            if !(o.in_place && o.is_in_place_of(&input)) {
                check_against_input(o, &input)?;
            }
        }
        self.inputs.push(input);
        Ok(())
    }

    /// Declares every file a model was opened from as an input.
    pub fn model(&mut self, model: &Model) -> Result<()> {
        for f in model.files() {
            self.input(&f.path)?;
        }
        self.input(model.path())
    }

    /// Declares a file output. An existing regular file there needs
    /// `force`; anything else there (a folder, a symbolic link, a FIFO, a
    /// device) is refused.
    pub fn file(&mut self, path: impl AsRef<Path>, force: bool) -> Result<OutputId> {
        self.add(path.as_ref(), Target::File, force, false)
    }

    /// Declares a checkpoint folder output. An existing folder there needs
    /// `force` and must hold nothing but a checkpoint
    /// ([`checkpoint_folder`]); anything else is refused.
    pub fn folder(&mut self, path: impl AsRef<Path>, force: bool) -> Result<OutputId> {
        self.add(path.as_ref(), Target::Folder, force, false)
    }

    /// Declares an input file that the command deliberately rewrites in
    /// place (`modeltool rehash`): it must exist and be a regular file;
    /// declare it as an input too.
    pub fn in_place(&mut self, path: impl AsRef<Path>) -> Result<OutputId> {
        self.add(path.as_ref(), Target::File, true, true)
    }

    fn add(
        &mut self,
        path: &Path,
        target: Target,
        force: bool,
        in_place: bool,
    ) -> Result<OutputId> {
        let resolved = resolve(path)?;
        let (identity, existing) = match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !in_place => {
                (Identity::Path(resolved.clone()), None)
            }
            Err(e) => return Err(LoadError::io(path)(e)),
            Ok(meta) => {
                check_replaceable(path, &meta, target)?;
                if !force {
                    return Err(refused(path, "already exists (use --force to replace it)"));
                }
                let existing = Existing {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    mode: meta.mode() & 0o777,
                };
                (Identity::Inode(meta.dev(), meta.ino()), Some(existing))
            }
        };
        let planned = Planned {
            shown: path.to_owned(),
            target,
            resolved,
            identity,
            existing,
            in_place,
            staged: None,
        };
        for input in &self.inputs {
            if !(in_place && planned.is_in_place_of(input)) {
                check_against_input(&planned, input)?;
            }
        }
        if in_place && !self.inputs.iter().any(|i| planned.is_in_place_of(i)) {
            return Err(refused(
                path,
                "is rewritten in place but was not declared as an input",
            ));
        }
        for other in &self.outputs {
            let same = other.identity == planned.identity || other.resolved == planned.resolved;
            let inside = |outer: &Planned, inner: &Planned| {
                outer.target == Target::Folder && inner.resolved.starts_with(&outer.resolved)
            };
            let why = if same {
                "is the same file as"
            } else if inside(other, &planned) {
                "is inside"
            } else if inside(&planned, other) {
                "would hold"
            } else {
                continue;
            };
            return Err(refused(
                path,
                format!(
                    "{why} the other output {}; give each output its own place",
                    other.shown.display()
                ),
            ));
        }
        self.outputs.push(planned);
        Ok(OutputId(self.outputs.len() - 1))
    }

    /// The output's path as it was given.
    pub fn path(&self, id: OutputId) -> &Path {
        &self.outputs[id.0].shown
    }

    /// Creates the temporary file for a file output, beside its target,
    /// and returns it, empty, for the caller to write (and seek). Creating
    /// it again starts over. Errors name the output, not the temporary file.
    pub fn create_file(&mut self, id: OutputId) -> Result<&File> {
        let o = &mut self.outputs[id.0];
        assert_eq!(o.target, Target::File, "create_file is for file outputs");
        o.discard();
        let dir = o.resolved.parent().expect("a resolved path has a folder");
        let name = o
            .shown
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            // Like any new file: 0666 less the umask (tempfile's default is 0600).
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| cannot_create(&o.shown, e))?;
        let (file, temp) = tmp.into_parts();
        let temp = temp.keep().map_err(|e| cannot_create(&o.shown, e.error))?;
        if let Some(existing) = o.existing {
            file.set_permissions(std::fs::Permissions::from_mode(existing.mode))
                .map_err(LoadError::io(&o.shown))?;
        }
        o.staged = Some(Staged::File { file, temp });
        match &o.staged {
            Some(Staged::File { file, .. }) => Ok(file),
            _ => unreachable!("just staged a file"),
        }
    }

    /// Writes a file output through `write` into its temporary file
    /// (buffered, then flushed and synced to disk).
    pub fn write<T>(
        &mut self,
        id: OutputId,
        write: impl FnOnce(&mut BufWriter<&File>) -> Result<T>,
    ) -> Result<T> {
        let path = self.outputs[id.0].shown.clone();
        let file = self.create_file(id)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let value = write(&mut out)?;
        out.flush().map_err(LoadError::io(&path))?;
        drop(out);
        file.sync_all().map_err(LoadError::io(&path))?;
        Ok(value)
    }

    /// Writes `bytes` as a file output's whole content.
    pub fn write_bytes(&mut self, id: OutputId, bytes: &[u8]) -> Result<()> {
        let path = self.outputs[id.0].shown.clone();
        self.write(id, |w| w.write_all(bytes).map_err(LoadError::io(path)))
    }

    /// The temporary file of a file output, once created: to measure or
    /// read back what was written before it is committed.
    pub fn staged_file(&self, id: OutputId) -> Option<&File> {
        match &self.outputs[id.0].staged {
            Some(Staged::File { file, .. }) => Some(file),
            _ => None,
        }
    }

    /// Creates the temporary folder for a folder output, beside its
    /// target, and returns its path for the caller to fill.
    pub fn create_folder(&mut self, id: OutputId) -> Result<PathBuf> {
        let o = &mut self.outputs[id.0];
        assert_eq!(
            o.target,
            Target::Folder,
            "create_folder is for folder outputs"
        );
        o.discard();
        let dir = o.resolved.parent().expect("a resolved path has a folder");
        let mode = o.existing.map_or(0o777, |e| e.mode);
        let temp = tempfile::Builder::new()
            .prefix(".modeltool-shards-")
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempdir_in(dir)
            .map_err(|e| cannot_create(&o.shown, e))?
            .keep();
        if o.existing.is_some() {
            std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))
                .map_err(LoadError::io(&o.shown))?;
        }
        o.staged = Some(Staged::Folder { temp: temp.clone() });
        Ok(temp)
    }

    /// Puts every output in place, in the order declared. If one cannot
    /// be, those already placed are taken back (a replaced output returns,
    /// a new one is removed) and the error names the output that failed.
    ///
    /// # Panics
    /// When an output was declared but never written: a bug in the caller.
    pub fn commit(mut self) -> Result<()> {
        let mut placed: Vec<(usize, Placed)> = Vec::new();
        for i in 0..self.outputs.len() {
            match self.place(i) {
                Ok(p) => placed.push((i, p)),
                Err(e) => {
                    for (j, p) in placed.into_iter().rev() {
                        self.undo(j, p);
                    }
                    return Err(e);
                }
            }
        }
        let mut folders = BTreeSet::new();
        for (j, p) in placed {
            if let Placed::Replaced { old, .. } = p {
                // The new output is in place; an old copy that will not go
                // away is left under its temporary name rather than failing
                // a finished command.
                let _ = remove_any(&old);
            }
            let o = &self.outputs[j];
            folders.insert(o.resolved.parent().map(Path::to_owned));
        }
        // The renames themselves reach the disk.
        for dir in folders.into_iter().flatten() {
            let _ = File::open(&dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    fn place(&mut self, i: usize) -> Result<Placed> {
        let o = &mut self.outputs[i];
        let shown = o.shown.clone();
        let staged = o
            .staged
            .take()
            .unwrap_or_else(|| panic!("output {} was declared but not written", shown.display()));
        if let Staged::File { file, .. } = &staged {
            file.sync_all().map_err(LoadError::io(&shown))?;
        }
        let temp = staged.temp().to_owned();
        // From here on the temporary name is handled below, not by drop.
        drop(staged);
        let fail = |e: std::io::Error| {
            let _ = remove_any(&temp);
            LoadError::Io {
                path: shown.clone(),
                source: e,
            }
        };
        let Some(existing) = o.existing else {
            return match rename_noreplace(&temp, &shown) {
                Ok(()) => Ok(Placed::Created),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = remove_any(&temp);
                    Err(refused(
                        &shown,
                        "appeared while modeltool was writing it; it was left as it is",
                    ))
                }
                Err(e) => Err(fail(e)),
            };
        };
        // What is there must still be what was checked: the same file, and
        // a folder still holding nothing but a checkpoint (nothing the user
        // put there meanwhile is removed with it).
        let target = o.target;
        match std::fs::symlink_metadata(&shown) {
            Ok(m)
                if m.dev() == existing.dev
                    && m.ino() == existing.ino
                    && match target {
                        // An inode number can be reused at once: the kind
                        // of file is checked too.
                        Target::File => m.file_type().is_file(),
                        Target::Folder => m.is_dir() && checkpoint_folder(&shown).is_ok(),
                    } => {}
            _ => {
                let _ = remove_any(&temp);
                return Err(refused(
                    &shown,
                    "changed while modeltool was writing it; it was left as it is",
                ));
            }
        }
        // One atomic step where the file system allows it: the new output
        // takes the name and the old one takes the temporary name, so the
        // name always holds one complete output, old or new.
        match exchange(&temp, &shown) {
            Ok(()) => {
                return Ok(Placed::Replaced {
                    old: temp,
                    swapped: true,
                });
            }
            Err(e) if !exchange_unsupported(&e) => return Err(fail(e)),
            Err(_) => {}
        }
        // Two renames: killed between them, the name is briefly empty and
        // the old output waits beside it under `*.old`.
        let aside = temp.with_extension("old");
        std::fs::rename(&shown, &aside).map_err(fail)?;
        if let Err(e) = std::fs::rename(&temp, &shown) {
            let _ = std::fs::rename(&aside, &shown);
            return Err(fail(e));
        }
        Ok(Placed::Replaced {
            old: aside,
            swapped: false,
        })
    }

    /// Takes back an output placed by [`Outputs::place`].
    fn undo(&self, i: usize, placed: Placed) {
        let shown = &self.outputs[i].shown;
        match placed {
            Placed::Created => {
                let _ = remove_any(shown);
            }
            Placed::Replaced { old, swapped: true } => {
                // Swap back: the new output returns to the temporary name.
                if exchange(&old, shown).is_ok() {
                    let _ = remove_any(&old);
                }
            }
            Placed::Replaced {
                old,
                swapped: false,
            } => {
                if remove_any(shown).is_ok() {
                    let _ = std::fs::rename(&old, shown);
                }
            }
        }
    }
}

impl Planned {
    /// Whether this output is `input` itself (a rewrite in place).
    fn is_in_place_of(&self, input: &Input) -> bool {
        self.identity == input.identity
    }

    /// Removes a temporary file or folder made for this output.
    fn discard(&mut self) {
        if let Some(staged) = self.staged.take() {
            let _ = remove_any(staged.temp());
        }
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        for o in &mut self.outputs {
            o.discard();
        }
    }
}

fn check_against_input(o: &Planned, input: &Input) -> Result<()> {
    if o.identity == input.identity || o.resolved == input.resolved {
        return Err(refused(
            &o.shown,
            format!(
                "is the input {}; modeltool never writes over an input",
                input.shown.display()
            ),
        ));
    }
    if o.target == Target::Folder && input.resolved.starts_with(&o.resolved) {
        return Err(refused(
            &o.shown,
            format!(
                "holds the input {}; modeltool never replaces a folder holding an input",
                input.shown.display()
            ),
        ));
    }
    Ok(())
}

/// Refuses what an output of kind `target` may not replace even with
/// `--force`: anything modeltool would not have written there.
fn check_replaceable(path: &Path, meta: &Metadata, target: Target) -> Result<()> {
    let t = meta.file_type();
    match target {
        Target::File if t.is_file() => Ok(()),
        Target::File => Err(refused(
            path,
            format!(
                "is {}; modeltool replaces only a regular file it could have written there, \
                 so it was left as it is",
                describe(meta)
            ),
        )),
        Target::Folder if t.is_dir() => checkpoint_folder(path).map(drop).map_err(|why| {
            refused(
                path,
                format!(
                    "{why}; modeltool replaces only a folder holding nothing but a checkpoint, \
                     so it was left as it is"
                ),
            )
        }),
        Target::Folder => Err(refused(
            path,
            format!(
                "is {}, not a checkpoint folder; it was left as it is",
                describe(meta)
            ),
        )),
    }
}

/// The operating system's message for an error, without the temporary
/// path `tempfile` adds to it (` at path "…"`: the user never asked for
/// that name).
fn os_message(e: &std::io::Error) -> String {
    if let Some(code) = e.raw_os_error() {
        return std::io::Error::from_raw_os_error(code).to_string();
    }
    let text = e.to_string();
    match text.find(" at path ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The error for a temporary file or folder that cannot be made beside
/// `output` (a read-only or full file system, a folder without write
/// permission): it names the output the user asked for.
fn cannot_create(output: &Path, source: std::io::Error) -> LoadError {
    let message = os_message(&source);
    LoadError::Io {
        path: output.to_owned(),
        source: std::io::Error::new(
            source.kind(),
            format!(
                "cannot create a file in {}: {message}",
                parent_of(output).display(),
            ),
        ),
    }
}

/// A file being written in order from `at`, whose written pages are handed
/// to the kernel's writeback every [`Writeback::STEP`] bytes, so that the
/// disk works while the rest is computed and the sync before the rename
/// waits for little. (`POSIX_FADV_DONTNEED` starts the writeback of dirty
/// pages without waiting and drops only pages already clean.)
pub(crate) struct Writeback<'f> {
    pub(crate) file: &'f File,
    at: u64,
    kicked: u64,
}

impl<'f> Writeback<'f> {
    const STEP: u64 = 8 << 20;

    pub(crate) fn new(file: &'f File, at: u64) -> Self {
        Writeback {
            file,
            at,
            kicked: at,
        }
    }
}

impl Write for Writeback<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.at += n as u64;
        if let Some(len) = std::num::NonZeroU64::new(self.at - self.kicked)
            && len.get() >= Self::STEP
        {
            // Advice only: the sync before the rename is what counts.
            let _ = rustix::fs::fadvise(
                self.file,
                self.kicked,
                Some(len),
                rustix::fs::Advice::DontNeed,
            );
            self.kicked = self.at;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&mut &*self.file).flush()
    }
}

pub(crate) fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Renames `from` to `to` unless something is at `to`
/// (`renameat2(RENAME_NOREPLACE)` on Linux; elsewhere, or where the file
/// system cannot, a check and a rename).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) => {
                let e = std::io::Error::from(e);
                if !exchange_unsupported(&e) {
                    return Err(e);
                }
            }
        }
    }
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(std::io::ErrorKind::AlreadyExists.into());
    }
    std::fs::rename(from, to)
}

/// Whether [`exchange`] failed only because the system or file system
/// cannot swap (older kernels, some network file systems).
fn exchange_unsupported(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if code == libc::EINVAL || code == libc::ENOSYS || code == libc::EOPNOTSUPP)
}

/// Checks that writing the file `output` replaces none of `inputs`, and,
/// unless `force`, nothing that exists; and that what is there is a
/// regular file modeltool could have written. One output; for several,
/// declare them all in one [`Outputs`] set.
pub fn check_output(output: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    let mut outputs = Outputs::new();
    for input in inputs {
        outputs.input(input)?;
    }
    outputs.file(output, force).map(drop)
}

/// Writes one new file through `write`, atomically: into a temporary file
/// beside `path`, put in place only when `write` succeeded, with the rules
/// of [`Outputs`] (an existing regular file needs `force`; nothing else is
/// replaced). On failure nothing is left behind.
pub fn write_atomically(
    path: &Path,
    force: bool,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<()>,
) -> Result<()> {
    let mut outputs = Outputs::new();
    let id = outputs.file(path, force)?;
    outputs.write(id, write)?;
    outputs.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failing_second_output_takes_the_first_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            dir.path().join("a.json"),
            dir.path().join("b.svg"),
            dir.path().join("c.svg"),
        );
        std::fs::write(&a, "old a").expect("write");
        std::fs::write(&c, "old c").expect("write");
        // b appears after it was checked: the first output returns.
        let mut outputs = Outputs::new();
        let ia = outputs.file(&a, true).expect("a");
        let ib = outputs.file(&b, true).expect("b");
        outputs.write_bytes(ia, b"new a").expect("write a");
        outputs.write_bytes(ib, b"new b").expect("write b");
        std::fs::write(&b, "someone else's").expect("write");
        let err = outputs.commit().expect_err("b appeared");
        assert!(err.to_string().contains("b.svg"), "{err}");
        assert_eq!(std::fs::read(&a).expect("a"), b"old a");
        assert_eq!(std::fs::read(&b).expect("b"), b"someone else's");
        assert_eq!(names(dir.path()), ["a.json", "b.svg", "c.svg"]);
        // c is replaced by a folder after it was checked: a returns, and a
        // new output before it is removed.
        let d = dir.path().join("d.json");
        let mut outputs = Outputs::new();
        let id = outputs.file(&d, false).expect("d");
        let ia = outputs.file(&a, true).expect("a");
        let ic = outputs.file(&c, true).expect("c");
        for i in [id, ia, ic] {
            outputs.write_bytes(i, b"new").expect("write");
        }
        std::fs::remove_file(&c).expect("rm");
        std::fs::create_dir(&c).expect("mkdir");
        let err = outputs.commit().expect_err("c changed");
        assert!(err.to_string().contains("c.svg"), "{err}");
        assert_eq!(std::fs::read(&a).expect("a"), b"old a");
        assert!(c.is_dir());
        assert_eq!(names(dir.path()), ["a.json", "b.svg", "c.svg"]);
    }

    #[test]
    fn a_file_put_in_a_folder_output_meanwhile_is_not_removed_with_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("ckpt");
        std::fs::create_dir(&out).expect("mkdir");
        std::fs::write(out.join(SINGLE_SHARD_NAME), b"old").expect("write");
        let mut outputs = Outputs::new();
        let id = outputs.folder(&out, true).expect("a checkpoint folder");
        let tmp = outputs.create_folder(id).expect("folder");
        std::fs::write(tmp.join(SINGLE_SHARD_NAME), b"new").expect("write");
        std::fs::write(out.join("notes.txt"), b"mine").expect("write");
        let err = outputs.commit().expect_err("the folder changed");
        assert!(err.to_string().contains("changed"), "{err}");
        assert_eq!(names(&out), ["model.safetensors", "notes.txt"]);
        assert_eq!(names(dir.path()), ["ckpt"]);
    }

    #[test]
    fn dropping_a_set_removes_its_temporary_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut outputs = Outputs::new();
        let f = outputs.file(dir.path().join("f.json"), false).expect("f");
        let g = outputs.folder(dir.path().join("g"), false).expect("g");
        outputs.write_bytes(f, b"x").expect("write");
        let tmp = outputs.create_folder(g).expect("folder");
        std::fs::write(tmp.join("model.safetensors"), b"x").expect("write");
        assert_eq!(names(dir.path()).len(), 2);
        drop(outputs);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn outputs_are_compared_by_identity_not_spelling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("in"), "input").expect("write");
        std::fs::hard_link(d.join("in"), d.join("hard")).expect("link");
        let mut outputs = Outputs::new();
        outputs.input(d.join("in")).expect("input");
        for same in ["in", "sub/../in", "hard"] {
            let err = outputs.file(d.join(same), true).expect_err(same);
            assert!(err.to_string().contains("input"), "{err}");
        }
        // A folder output may not hold an input.
        assert!(outputs.folder(d, true).is_err());
        outputs.file(d.join("new.json"), false).expect("new");
        let err = outputs
            .file(d.join("sub/../new.json"), false)
            .expect_err("the same new file twice");
        assert!(err.to_string().contains("other output"), "{err}");
        // An input declared after the output is checked too.
        let mut outputs = Outputs::new();
        outputs.file(d.join("hard"), true).expect("hard");
        assert!(outputs.input(d.join("in")).is_err());
    }
}
