//! A zip central-directory reader over bytes, for torch's stored archives.
//!
//! A reader fetches three things and nothing else: the file's last
//! [`TAIL_LEN`] bytes ([`EndRecord::find`]), the central directory they
//! point to ([`Directory::parse`]), and for each entry it wants the
//! [`ZipEntry::local_prefix_len`] bytes of its local header
//! ([`ZipEntry::data_range`]). Entries must be stored (torch never
//! compresses; nothing is ever inflated, so no zip bomb can expand), must
//! not overlap each other or the directory, and must agree with their local
//! headers. [`crc32`] checks an entry's bytes for `verify`.

use std::collections::HashSet;
use std::ops::Range;

use super::error::PytorchError;

/// The end-of-central-directory record's size without its comment.
const EOCD_LEN: usize = 22;
/// The zip64 end record locator's size.
const LOCATOR_LEN: usize = 20;
/// The zip64 end record's size (without extensible data).
const ZIP64_EOCD_LEN: usize = 56;
/// A local file header's fixed part.
pub const LOCAL_HEADER_LEN: usize = 30;
/// How many bytes at the end of a file hold the end records: the EOCD with
/// its longest comment, the zip64 locator and the zip64 end record.
pub const TAIL_LEN: u64 = (EOCD_LEN + 0xffff + LOCATOR_LEN + ZIP64_EOCD_LEN) as u64;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Where the central directory is, from the end records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndRecord {
    /// The directory's first byte in the file.
    pub offset: u64,
    /// Its length.
    pub len: u64,
    /// Entries it holds.
    pub entries: u64,
    /// Where the end records start: entries and directory must end before.
    pub end_start: u64,
}

impl EndRecord {
    /// Finds the end records in `tail`, the file's last bytes
    /// (`tail_start` is the offset of `tail[0]` in the file, whose length
    /// is `file_len`). Reading the last [`TAIL_LEN`] bytes (or the whole
    /// file if shorter) always suffices.
    pub fn find(tail: &[u8], tail_start: u64, file_len: u64) -> Result<EndRecord, PytorchError> {
        if tail.len() < EOCD_LEN {
            return Err(PytorchError::ZipNoEnd);
        }
        // The last signature whose comment length reaches the end exactly.
        let mut at = None;
        for i in (0..=tail.len() - EOCD_LEN).rev() {
            if tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06]
                && i + EOCD_LEN + usize::from(u16_at(tail, i + 20)) == tail.len()
            {
                at = Some(i);
                break;
            }
        }
        let i = at.ok_or(PytorchError::ZipNoEnd)?;
        let e = &tail[i..];
        let (disk, cd_disk) = (u16_at(e, 4), u16_at(e, 6));
        let mut entries = u64::from(u16_at(e, 10));
        let mut len = u64::from(u32_at(e, 12));
        let mut offset = u64::from(u32_at(e, 16));
        let mut end_start = tail_start + i as u64;
        let zip64 = entries == 0xffff || len == 0xffff_ffff || offset == 0xffff_ffff;
        if zip64
            || (i >= LOCATOR_LEN
                && tail[i - LOCATOR_LEN..i - LOCATOR_LEN + 4] == [0x50, 0x4b, 0x06, 0x07])
        {
            let bad = |reason: &str| PytorchError::ZipBadZip64 {
                reason: reason.to_owned(),
            };
            if i < LOCATOR_LEN {
                return Err(bad("no zip64 locator before the end record"));
            }
            let l = &tail[i - LOCATOR_LEN..i];
            if l[..4] != [0x50, 0x4b, 0x06, 0x07] {
                return Err(bad("no zip64 locator before the end record"));
            }
            let rec = u64_at(l, 8);
            let rec_in_tail = rec
                .checked_sub(tail_start)
                .and_then(|r| usize::try_from(r).ok())
                .filter(|&r| {
                    r.checked_add(ZIP64_EOCD_LEN)
                        .is_some_and(|e| e <= i - LOCATOR_LEN)
                })
                .ok_or_else(|| bad("the zip64 end record is not just before its locator"))?;
            let z = &tail[rec_in_tail..];
            if z[..4] != [0x50, 0x4b, 0x06, 0x06] {
                return Err(bad("bad zip64 end record signature"));
            }
            if u32_at(z, 16) != 0 || u32_at(z, 20) != 0 {
                return Err(bad("multi-disk archive"));
            }
            entries = u64_at(z, 32);
            len = u64_at(z, 40);
            offset = u64_at(z, 48);
            end_start = rec;
        } else if disk != 0 || cd_disk != 0 {
            return Err(PytorchError::ZipBadZip64 {
                reason: "multi-disk archive".into(),
            });
        }
        if offset.checked_add(len).is_none_or(|e| e > end_start) || end_start > file_len {
            return Err(PytorchError::ZipDirectoryPastEnd {
                offset,
                len,
                file_len,
            });
        }
        Ok(EndRecord {
            offset,
            len,
            entries,
            end_start,
        })
    }
}

/// One stored entry of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Its name (`archive/data/0`).
    pub name: String,
    /// Where its local header starts.
    pub header_offset: u64,
    /// Its length in bytes in the file (stored: equal to [`ZipEntry::size`]).
    pub len: u64,
    /// Its uncompressed length as the directory claims it.
    pub size: u64,
    /// The CRC-32 the directory records.
    pub crc32: u32,
    /// The compression method: 0 (stored) is the only one read.
    pub method: u16,
    /// Whether a data descriptor follows the data (sizes in the local header may be 0).
    descriptor: bool,
    /// Where the next entry (or the directory) starts: the data must end before.
    limit: u64,
}

impl ZipEntry {
    /// How many bytes from [`ZipEntry::header_offset`] [`ZipEntry::data_range`] needs.
    pub fn local_prefix_len(&self) -> usize {
        LOCAL_HEADER_LEN + self.name.len()
    }

    /// Where the entry's bytes are in the file, from the first
    /// [`ZipEntry::local_prefix_len`] bytes of its local header, which
    /// must agree with the directory and leave the data before the next entry.
    pub fn data_range(&self, local: &[u8]) -> Result<Range<u64>, PytorchError> {
        let bad = |reason: String| PytorchError::ZipLocalHeader {
            name: self.name.clone(),
            offset: self.header_offset,
            reason,
        };
        if self.method != 0 {
            // Never inflated: a compressed entry cannot expand into anything.
            return Err(PytorchError::ZipCompressed {
                name: self.name.clone(),
                method: self.method,
                compressed: self.len,
                size: self.size,
            });
        }
        if local.len() < self.local_prefix_len() {
            return Err(bad(format!(
                "{} bytes given, {} needed",
                local.len(),
                self.local_prefix_len()
            )));
        }
        if local[..4] != [0x50, 0x4b, 0x03, 0x04] {
            return Err(bad("no local header signature".into()));
        }
        if u16_at(local, 8) != 0 {
            return Err(bad("compressed, unlike its directory entry".into()));
        }
        let name_len = usize::from(u16_at(local, 26));
        let extra_len = u64::from(u16_at(local, 28));
        if &local[LOCAL_HEADER_LEN..LOCAL_HEADER_LEN + self.name.len()] != self.name.as_bytes()
            || name_len != self.name.len()
        {
            return Err(bad("its name differs from the directory's".into()));
        }
        let (csize, usize_) = (u32_at(local, 18), u32_at(local, 22));
        let sizes_given = !(self.descriptor && csize == 0 && usize_ == 0);
        let zip64 = csize == 0xffff_ffff || usize_ == 0xffff_ffff;
        if sizes_given && !zip64 && (u64::from(csize) != self.len || u64::from(usize_) != self.len)
        {
            return Err(bad(format!(
                "it says {csize} bytes, the directory {}",
                self.len
            )));
        }
        let start = self.header_offset + (LOCAL_HEADER_LEN + name_len) as u64 + extra_len;
        let end = start
            .checked_add(self.len)
            .filter(|&e| e <= self.limit)
            .ok_or_else(|| PytorchError::ZipOverlap {
                name: self.name.clone(),
                start: self.header_offset,
                end: start.saturating_add(self.len),
                other: "the next entry".into(),
                other_start: self.limit,
            })?;
        Ok(start..end)
    }
}

/// The central directory: every entry, checked against each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directory {
    /// Entries in directory order.
    pub entries: Vec<ZipEntry>,
}

impl Directory {
    /// Parses the directory's bytes (`end.len` bytes from `end.offset`).
    pub fn parse(cd: &[u8], end: &EndRecord) -> Result<Directory, PytorchError> {
        if cd.len() as u64 != end.len {
            return Err(PytorchError::ZipDirectoryPastEnd {
                offset: end.offset,
                len: end.len,
                file_len: cd.len() as u64,
            });
        }
        // Each entry takes at least 46 bytes: the count is checked before
        // anything is allocated from it.
        if end.entries > cd.len() as u64 / 46 {
            return Err(PytorchError::ZipEntryCount {
                declared: end.entries,
                found: cd.len() as u64 / 46,
            });
        }
        let mut entries = Vec::with_capacity(end.entries as usize);
        let mut pos = 0usize;
        let mut names = HashSet::new();
        while pos < cd.len() {
            let index = entries.len();
            let bad = |reason: &str| PytorchError::ZipBadEntry {
                index,
                reason: reason.to_owned(),
            };
            let e = &cd[pos..];
            if e.len() < 46 || e[..4] != [0x50, 0x4b, 0x01, 0x02] {
                return Err(bad("no central directory signature"));
            }
            let flags = u16_at(e, 8);
            let method = u16_at(e, 10);
            let crc = u32_at(e, 16);
            let mut csize = u64::from(u32_at(e, 20));
            let mut size = u64::from(u32_at(e, 24));
            let name_len = usize::from(u16_at(e, 28));
            let extra_len = usize::from(u16_at(e, 30));
            let comment_len = usize::from(u16_at(e, 32));
            let mut offset = u64::from(u32_at(e, 42));
            let total = 46 + name_len + extra_len + comment_len;
            if e.len() < total {
                return Err(bad("runs past the end of the directory"));
            }
            let name = std::str::from_utf8(&e[46..46 + name_len])
                .map_err(|_| bad("name is not UTF-8"))?
                .to_owned();
            // The zip64 extra field holds the fields that are 0xffffffff, in order.
            let mut extra = &e[46 + name_len..46 + name_len + extra_len];
            while extra.len() >= 4 {
                let id = u16_at(extra, 0);
                let n = usize::from(u16_at(extra, 2));
                if extra.len() < 4 + n {
                    return Err(bad("an extra field runs past its end"));
                }
                if id == 1 {
                    let mut f = &extra[4..4 + n];
                    for v in [&mut size, &mut csize, &mut offset] {
                        if *v == 0xffff_ffff {
                            if f.len() < 8 {
                                return Err(bad("zip64 extra field too short"));
                            }
                            *v = u64_at(f, 0);
                            f = &f[8..];
                        }
                    }
                }
                extra = &extra[4 + n..];
            }
            if flags & 1 != 0 {
                return Err(PytorchError::ZipEncrypted { name });
            }
            // A compressed entry (TorchScript compresses its code/) is
            // listed but never read: reading it is an error, see data_range.
            if method == 0 && csize != size {
                return Err(PytorchError::ZipSizeMismatch {
                    name,
                    compressed: csize,
                    size,
                });
            }
            if !names.insert(name.clone()) {
                return Err(PytorchError::ZipDuplicate { name });
            }
            entries.push(ZipEntry {
                name,
                header_offset: offset,
                len: csize,
                size,
                method,
                crc32: crc,
                descriptor: flags & 8 != 0,
                limit: 0,
            });
            pos += total;
        }
        if entries.len() as u64 != end.entries {
            return Err(PytorchError::ZipEntryCount {
                declared: end.entries,
                found: entries.len() as u64,
            });
        }
        // Sorted by position, each entry's smallest extent (local header,
        // name, data) must end before the next one starts, the last before
        // the directory.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| entries[i].header_offset);
        for (n, &i) in order.iter().enumerate() {
            let (next_start, next_name) = match order.get(n + 1) {
                Some(&j) => (entries[j].header_offset, entries[j].name.clone()),
                None => (end.offset, "central directory".to_owned()),
            };
            let e = &entries[i];
            let min_end = e
                .header_offset
                .checked_add((LOCAL_HEADER_LEN + e.name.len()) as u64)
                .and_then(|x| x.checked_add(e.len));
            if min_end.is_none_or(|m| m > next_start) {
                return Err(PytorchError::ZipOverlap {
                    name: e.name.clone(),
                    start: e.header_offset,
                    end: min_end.unwrap_or(u64::MAX),
                    other: next_name,
                    other_start: next_start,
                });
            }
            entries[i].limit = next_start;
        }
        Ok(Directory { entries })
    }

    /// The entry named `name`.
    pub fn entry(&self, name: &str) -> Option<&ZipEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Reads the whole directory from a file's bytes.
    pub fn from_file_bytes(file: &[u8]) -> Result<Directory, PytorchError> {
        let len = file.len() as u64;
        let tail_start = len.saturating_sub(TAIL_LEN);
        let end = EndRecord::find(&file[tail_start as usize..], tail_start, len)?;
        Directory::parse(
            &file[end.offset as usize..(end.offset + end.len) as usize],
            &end,
        )
    }

    /// The bytes of `entry` in a whole file's bytes.
    pub fn entry_bytes<'f>(
        &self,
        file: &'f [u8],
        entry: &ZipEntry,
    ) -> Result<&'f [u8], PytorchError> {
        let start = usize::try_from(entry.header_offset).unwrap_or(usize::MAX);
        let prefix = file
            .get(start..start.saturating_add(entry.local_prefix_len()))
            .ok_or_else(|| PytorchError::ZipLocalHeader {
                name: entry.name.clone(),
                offset: entry.header_offset,
                reason: "past the end of the file".into(),
            })?;
        let r = entry.data_range(prefix)?;
        Ok(&file[r.start as usize..r.end as usize])
    }
}

/// The CRC-32 (IEEE, as zip uses) of `bytes`; `crc32_update` continues one
/// over pieces.
///
/// ```
/// assert_eq!(modeltool_format::pytorch::zip::crc32(b"123456789"), 0xcbf4_3926);
/// ```
pub fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

/// Continues a CRC-32: start from `!0`, feed pieces, finish with `!`.
pub fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[[u32; 256]; 8]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [[0u32; 256]; 8];
        for i in 0..256u32 {
            let mut c = i;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            t[0][i as usize] = c;
        }
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            }
        }
        t
    });
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let hi = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in chunks.remainder() {
        crc = t[0][((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// Checks an entry's bytes against its recorded CRC-32.
pub fn check_crc(entry: &ZipEntry, bytes: &[u8]) -> Result<(), PytorchError> {
    let actual = crc32(bytes);
    if actual != entry.crc32 {
        return Err(PytorchError::ZipCrc {
            name: entry.name.clone(),
            stored: entry.crc32,
            actual,
        });
    }
    Ok(())
}
