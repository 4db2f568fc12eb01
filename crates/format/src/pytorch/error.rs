//! Why bytes are not a PyTorch checkpoint we read: one variant per kind of damage.

use crate::text::Escaped;

fn forbidden_reason(allowable: bool) -> &'static str {
    if allowable {
        "which a checkpoint does not need; it would have been imported and could run code, so nothing was loaded"
    } else {
        "an entry point that runs code; nothing was loaded, and it can never be allowed"
    }
}

/// Why a pickle was refused. Offsets count from the start of the pickle.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    /// The pickle names a global that is neither a checkpoint's own
    /// (tensors, storages, dtypes, `OrderedDict`...) nor allowed by the
    /// caller; nothing was imported or called. Code-execution entry points
    /// (`os.system`, `builtins.eval`...) are refused even when allowed, and
    /// say so (`allowable` is false): a caller offers its way of allowing a
    /// class (a command-line flag) only when `allowable` is true.
    #[error(
        "byte {offset}: {opcode} names `{}`, {}",
        Escaped(.global),
        forbidden_reason(*.allowable)
    )]
    Forbidden {
        /// Offset of the opcode.
        offset: u64,
        /// `GLOBAL`, `STACK_GLOBAL` or `INST`.
        opcode: &'static str,
        /// `module.name`.
        global: String,
        /// Whether [`super::PickleOptions::allow_globals`] could accept it
        /// (false for the entry points [`super::never_allowed`] lists).
        allowable: bool,
    },
    /// An opcode we do not run (extension registry, out-of-band buffers) or an unknown byte.
    #[error("byte {offset}: opcode 0x{opcode:02x} ({name}) is not supported")]
    UnsupportedOpcode {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode byte.
        opcode: u8,
        /// Its name, `unknown` if none.
        name: &'static str,
    },
    /// A protocol above 5.
    #[error("byte {offset}: pickle protocol {version} is newer than 5")]
    Protocol {
        /// Offset of the opcode.
        offset: u64,
        /// The protocol.
        version: u8,
    },
    /// The bytes end before the opcode's argument does.
    #[error("byte {offset}: {opcode} needs {need} bytes but {available} are left")]
    Truncated {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
        /// Bytes it needs.
        need: u64,
        /// Bytes left.
        available: u64,
    },
    /// A length field declares more bytes than are left (checked before
    /// anything is allocated).
    #[error("byte {offset}: {opcode} declares {declared} bytes but only {available} are left")]
    DeclaredPastEnd {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
        /// The declared length.
        declared: u64,
        /// Bytes left.
        available: u64,
    },
    /// The bytes end without a `STOP`.
    #[error("the pickle ends after {len} bytes without a STOP opcode")]
    NoStop {
        /// Bytes read.
        len: u64,
    },
    /// An opcode needs more values than the stack holds (above the last mark).
    #[error("byte {offset}: {opcode} finds the stack empty")]
    StackUnderflow {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
    },
    /// An opcode needs a mark and there is none.
    #[error("byte {offset}: {opcode} needs a MARK and there is none")]
    NoMark {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
    },
    /// A memo index that was never stored.
    #[error("byte {offset}: memo index {index} was never stored")]
    MemoMissing {
        /// Offset of the opcode.
        offset: u64,
        /// The index.
        index: u64,
    },
    /// An opcode applied to a value of the wrong kind (`APPEND` to a dict).
    #[error("byte {offset}: {opcode} expects {expected}, found a {found}")]
    WrongType {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
        /// What it needs.
        expected: &'static str,
        /// What it found.
        found: &'static str,
    },
    /// `DICT` or `SETITEMS` with an odd number of items.
    #[error("byte {offset}: {opcode} has an odd number of items")]
    OddItems {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
    },
    /// A string that is not UTF-8.
    #[error("byte {offset}: a string is not valid UTF-8")]
    NotUtf8 {
        /// Offset of the opcode.
        offset: u64,
    },
    /// A protocol-0 text argument that does not parse.
    #[error("byte {offset}: the text argument of {opcode} does not parse")]
    BadText {
        /// Offset of the opcode.
        offset: u64,
        /// The opcode.
        opcode: &'static str,
    },
    /// A recognised global called with arguments it does not take.
    #[error("byte {offset}: `{callable}` called wrongly: {reason}")]
    BadArguments {
        /// Offset of the opcode.
        offset: u64,
        /// `module.name`.
        callable: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor kind we do not read (quantized, sparse, meta, nested...).
    #[error(
        "byte {offset}: tensors rebuilt by `{rebuild}` (quantized, sparse or device-specific) are not supported"
    )]
    UnsupportedTensor {
        /// Offset of the opcode.
        offset: u64,
        /// The rebuild function.
        rebuild: String,
    },
    /// A persistent id that is not a storage reference.
    #[error("byte {offset}: persistent id is not a storage reference: {reason}")]
    BadPersistentId {
        /// Offset of the opcode.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Containers nested deeper than [`super::MAX_DEPTH`].
    #[error("values are nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// More values than [`super::MAX_VALUES`] once shared references are expanded.
    #[error("the pickle expands to more than {max} values")]
    TooManyValues {
        /// The limit.
        max: usize,
    },
    /// A container that contains itself.
    #[error("a container contains itself")]
    Recursive,
}

/// Why bytes are not a PyTorch checkpoint we read.
///
/// Like [`crate::FormatError`], messages do not name the file: the caller
/// that opened it prefixes its path. Strings from the file are escaped.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PytorchError {
    /// A pickle inside the checkpoint was refused.
    #[error("{}: {source}", Escaped(.part))]
    Pickle {
        /// Which pickle (`archive/data.pkl`, `legacy stream at byte 91`).
        part: String,
        /// Why.
        source: PickleError,
    },
    /// The bytes are a Git LFS pointer, not the weights.
    #[error(
        "this is a Git LFS pointer file, not the checkpoint: fetch the real file (`git lfs pull`)"
    )]
    LfsPointer,
    /// The bytes are an HTML page (a download that went wrong).
    #[error("this is an HTML page, not a checkpoint (a failed download?)")]
    Html,
    /// No PyTorch container starts here.
    #[error("not a PyTorch checkpoint: it starts with bytes {start:02x?}")]
    UnknownContainer {
        /// The first bytes.
        start: Vec<u8>,
    },
    /// A tar header that is not one (bad checksum, a number that does not
    /// parse, a malformed extended record) or that the file cuts short.
    #[error("tar: header at byte {offset}: {reason}")]
    TarHeader {
        /// Where the header starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A tar entry whose declared size runs past the end of the file.
    #[error("tar: entry `{}` (header at byte {offset}) declares {size} bytes, past the end of the file of {file_len} bytes", Escaped(.name))]
    TarEntryPastEnd {
        /// The entry's name.
        name: String,
        /// Where its header starts.
        offset: u64,
        /// Its declared size.
        size: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A tar archive without one of torch's entries.
    #[error("tar: no `{name}` entry, which a PyTorch checkpoint of the tar format has")]
    TarMissing {
        /// `pickle`, `tensors` or `storages`.
        name: &'static str,
    },
    /// Two tar entries of one name.
    #[error("tar: `{}` appears twice", Escaped(.name))]
    TarDuplicate {
        /// The name.
        name: String,
    },
    /// More tar entries than a checkpoint has.
    #[error("tar: more than {max} entries before the end: not a PyTorch checkpoint")]
    TarTooManyEntries {
        /// The limit.
        max: usize,
    },
    /// A record of the `storages` or `tensors` entry that is malformed: a
    /// count, a record of the wrong shape, a view outside its storage.
    #[error("tar: `{entry}` entry at byte {offset}: {reason}")]
    TarRecord {
        /// `storages` or `tensors`.
        entry: &'static str,
        /// Where the record starts in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A storage of the tar format whose element count disagrees with the
    /// bytes its entry holds.
    #[error("tar: storage `{}` at byte {offset}: {reason}", Escaped(.key))]
    TarStorage {
        /// The storage key.
        key: String,
        /// Where its element count is in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A tensor record of the tar format that is malformed.
    #[error("tar: tensor `{}` at byte {offset}: {reason}", Escaped(.key))]
    TarTensor {
        /// The tensor's key.
        key: String,
        /// Where its record starts in the file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// No end-of-central-directory record in the last 64 KiB.
    #[error("zip: no end of central directory record (not a zip file, or cut short)")]
    ZipNoEnd,
    /// A zip64 record that is missing or malformed.
    #[error("zip: zip64 end record: {reason}")]
    ZipBadZip64 {
        /// What is wrong.
        reason: String,
    },
    /// The central directory lies outside the file or its entries run past it.
    #[error(
        "zip: central directory at byte {offset} ({len} bytes) does not fit the file of {file_len} bytes"
    )]
    ZipDirectoryPastEnd {
        /// Where it starts.
        offset: u64,
        /// Its length.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// An entry of the central directory is malformed.
    #[error("zip: central directory entry {index}: {reason}")]
    ZipBadEntry {
        /// The entry's index.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The directory holds a different number of entries than its end record says.
    #[error("zip: the end record promises {declared} entries, the directory holds {found}")]
    ZipEntryCount {
        /// Entries promised.
        declared: u64,
        /// Entries found.
        found: u64,
    },
    /// Two entries with one name.
    #[error("zip: `{}` appears twice", Escaped(.name))]
    ZipDuplicate {
        /// The name.
        name: String,
    },
    /// A compressed entry was to be read: torch stores tensors and pickles
    /// uncompressed, and nothing is ever inflated (no zip bombs).
    #[error("zip: `{}` is compressed (method {method}; {compressed} bytes claim to hold {size}); torch stores tensors and pickles uncompressed, and compressed entries are never inflated", Escaped(.name))]
    ZipCompressed {
        /// The entry.
        name: String,
        /// The compression method.
        method: u16,
        /// Its compressed size.
        compressed: u64,
        /// Its claimed size.
        size: u64,
    },
    /// An encrypted entry.
    #[error("zip: `{}` is encrypted", Escaped(.name))]
    ZipEncrypted {
        /// The entry.
        name: String,
    },
    /// A stored entry whose compressed and uncompressed sizes differ.
    #[error("zip: `{}` is stored but its sizes differ ({compressed} vs {size})", Escaped(.name))]
    ZipSizeMismatch {
        /// The entry.
        name: String,
        /// Its compressed size.
        compressed: u64,
        /// Its size.
        size: u64,
    },
    /// Two entries' bytes overlap (or an entry overlaps the directory).
    #[error("zip: `{}` (bytes {start}..{end}) overlaps `{}` at byte {other_start}", Escaped(.name), Escaped(.other))]
    ZipOverlap {
        /// The entry.
        name: String,
        /// Where its local header starts.
        start: u64,
        /// Where its data ends.
        end: u64,
        /// The entry (or `central directory`) it runs into.
        other: String,
        /// Where that starts.
        other_start: u64,
    },
    /// A local header that disagrees with the central directory.
    #[error("zip: local header of `{}` at byte {offset}: {reason}", Escaped(.name))]
    ZipLocalHeader {
        /// The entry.
        name: String,
        /// Where the local header is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry's bytes do not match its CRC-32.
    #[error("zip: `{}` has CRC-32 {actual:08x} but the directory says {stored:08x}", Escaped(.name))]
    ZipCrc {
        /// The entry.
        name: String,
        /// The stored CRC.
        stored: u32,
        /// The CRC of the bytes.
        actual: u32,
    },
    /// A zip without `FOLDER/data.pkl`.
    #[error("zip: no `data.pkl` in a top folder: not a PyTorch checkpoint")]
    NoDataPkl,
    /// More than one top folder with a `data.pkl`.
    #[error("zip: `{}` and `{}` both hold a data.pkl", Escaped(.first), Escaped(.second))]
    SeveralArchives {
        /// One top folder.
        first: String,
        /// Another.
        second: String,
    },
    /// A `byteorder` record other than `little` or `big`.
    #[error("byteorder record holds `{}`, not `little` or `big`", Escaped(.found))]
    ByteOrder {
        /// The record's text.
        found: String,
    },
    /// A TorchScript archive whose parameters are not stored as ordinary tensors.
    #[error(
        "this is a TorchScript program ({reason}); its parameters are not stored as ordinary tensors"
    )]
    TorchScriptProgram {
        /// What was found.
        reason: String,
    },
    /// A tensor's storage has no record in the archive.
    #[error("tensor `{}`: storage `{}` has no record `data/{}`", Escaped(.tensor), Escaped(.key), Escaped(.key))]
    StorageMissing {
        /// The tensor.
        tensor: String,
        /// The storage key.
        key: String,
    },
    /// A storage record whose size differs from what the pickle declares.
    #[error("storage `{}` holds {found} bytes but the pickle declares {declared}", Escaped(.key))]
    StorageSize {
        /// The storage key.
        key: String,
        /// Bytes declared by the pickle.
        declared: u64,
        /// Bytes in the record.
        found: u64,
    },
    /// One storage key declared with two sizes.
    #[error("storage `{}` is declared as {first} and as {second} bytes", Escaped(.key))]
    StorageConflict {
        /// The storage key.
        key: String,
        /// One size.
        first: u64,
        /// The other.
        second: u64,
    },
    /// A view that reaches outside its storage.
    #[error("tensor `{}`: its view (offset {offset}, shape {shape:?}, strides {strides:?}) reaches element {last} of a storage of {numel} elements", Escaped(.tensor))]
    ViewOutOfStorage {
        /// The tensor.
        tensor: String,
        /// Storage offset in elements.
        offset: u64,
        /// Shape.
        shape: Vec<u64>,
        /// Strides.
        strides: Vec<u64>,
        /// The last element index it touches (saturated on overflow).
        last: u64,
        /// The storage's size in elements.
        numel: u64,
    },
    /// A dtype torch has but safetensors does not (complex, quantized), or an unknown one.
    #[error("tensor `{}` has dtype {dtype}, which is not read (no safetensors equivalent)", Escaped(.tensor))]
    UnsupportedDtype {
        /// The tensor.
        tensor: String,
        /// torch's name of the dtype or storage class.
        dtype: String,
    },
    /// A tensor whose size in bytes overflows.
    #[error("tensor `{}` has shape {shape:?} whose size overflows", Escaped(.tensor))]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// Its shape.
        shape: Vec<u64>,
    },
    /// Two tensors at one path.
    #[error("two tensors are named `{}`", Escaped(.name))]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The legacy stream does not start with torch's magic number.
    #[error("legacy stream: the first pickle is not torch's magic number")]
    LegacyMagic,
    /// The legacy stream has another protocol version than 1001.
    #[error("legacy stream: protocol version {found}, expected 1001")]
    LegacyProtocol {
        /// What it holds.
        found: String,
    },
    /// The head given to [`super::LegacyFile::parse_head`] ends inside the pickles.
    #[error("legacy stream: the first {have} bytes end inside its pickles; read more")]
    LegacyHeadShort {
        /// Bytes given.
        have: u64,
    },
    /// The legacy stream was written on a big-endian machine.
    #[error("legacy stream: written on a big-endian machine, which is not read")]
    LegacyBigEndian,
    /// The storage key list of a legacy stream is not a list of strings,
    /// or names a storage the pickle does not.
    #[error("legacy stream: storage keys: {reason}")]
    LegacyKeys {
        /// What is wrong.
        reason: String,
    },
    /// A legacy storage's size prefix disagrees with the pickle, or its
    /// bytes run past the end of the file.
    #[error("legacy stream: storage `{}` at byte {offset}: {reason}", Escaped(.key))]
    LegacyStorage {
        /// The storage key.
        key: String,
        /// Where its size prefix is.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Storage bytes given to a view copy are shorter than the view needs.
    #[error("tensor `{}`: {given} storage bytes given, the view needs {need}", Escaped(.tensor))]
    ShortStorage {
        /// The tensor.
        tensor: String,
        /// Bytes given.
        given: u64,
        /// Bytes needed.
        need: u64,
    },
}

impl PytorchError {
    pub(crate) fn pickle(part: &str, source: PickleError) -> PytorchError {
        PytorchError::Pickle {
            part: part.to_owned(),
            source,
        }
    }
}
