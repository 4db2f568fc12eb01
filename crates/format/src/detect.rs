//! What a file is, told from its first bytes rather than its name.
//!
//! A file called `model.safetensors` may be a Git LFS pointer, an HTML
//! error page saved by a browser, a GGUF file or a PyTorch checkpoint; a
//! `config.json` holds no weights. [`detect`] looks at the start of the
//! file (the first [`DETECT_LEN`] bytes are enough; fewer work, with less
//! certainty for JSON) and says which [`FileKind`] it is, so that a reader
//! can either parse it or say plainly what the file is instead of failing
//! with a parser error that makes no sense for it.
//!
//! ```
//! use modeltool_format::{FileKind, detect};
//!
//! assert_eq!(detect(b"GGUF\x03\x00\x00\x00"), FileKind::Gguf { byte_swapped: false });
//! assert_eq!(detect(b"version https://git-lfs.github.com/spec/v1\n"), FileKind::GitLfsPointer);
//! assert_eq!(detect(br#"{"metadata": {}, "weight_map": {"a": "x.safetensors"}}"#), FileKind::ShardIndex);
//! let mut st = 2u64.to_le_bytes().to_vec();
//! st.extend_from_slice(b"{}");
//! assert_eq!(detect(&st), FileKind::Safetensors);
//! assert_eq!(detect(b""), FileKind::Empty);
//! ```

use std::fmt;

use crate::MAX_HEADER_LEN;
use crate::json::FORMAT_ID;

/// How many leading bytes [`detect`] looks at; give it at least this many
/// when the file has them.
pub const DETECT_LEN: usize = 64 << 10;

/// What a file is, as far as its first bytes tell.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// No bytes at all.
    Empty,
    /// A safetensors file: a plausible 8-byte little-endian header length
    /// followed by `{`.
    Safetensors,
    /// A modeltool JSON model file (`"format": "modeltool.json/1"`).
    JsonModel,
    /// A Hugging Face shard index (`model.safetensors.index.json`): JSON
    /// with a `weight_map`.
    ShardIndex,
    /// A Hugging Face model config (`config.json`): JSON with
    /// `architectures` or `model_type`, and no weights.
    HfConfig,
    /// JSON that is none of the above.
    Json,
    /// A GGUF file (llama.cpp), `GGUF` magic; `byte_swapped` for the
    /// big-endian variant.
    Gguf {
        /// Whether the version number is stored big-endian.
        byte_swapped: bool,
    },
    /// A zip archive (`PK\x03\x04`): what `torch.save` writes since
    /// PyTorch 1.6, or any other zip.
    Zip,
    /// A legacy PyTorch checkpoint (torch < 1.6): a protocol-2 pickle of
    /// the magic number `0x1950a86a20f9469cfc6c`.
    PytorchLegacy,
    /// A tar archive (`ustar` at byte 257): what `torch.save` wrote before
    /// torch 0.1.10, or any other tar.
    Tar,
    /// A Python pickle that is not a legacy PyTorch checkpoint.
    Pickle,
    /// Probably an ONNX model (a protobuf starting with `ir_version`):
    /// protobuf has no magic number, so this is a best guess.
    Onnx,
    /// A Git LFS pointer file: a few lines of text standing in for the
    /// real file, left behind by a clone without `git lfs pull`.
    GitLfsPointer,
    /// An HTML page (an error or login page saved in place of the file).
    Html,
    /// XML, SVG included.
    Xml,
    /// Text that is none of the above: CSV, plain text.
    Text,
    /// Bytes none of the above describe.
    Binary,
}

impl FileKind {
    /// What the kind is, as a noun phrase for a message ("a GGUF file").
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Empty => "an empty file",
            FileKind::Safetensors => "a safetensors file",
            FileKind::JsonModel => "a modeltool JSON model file",
            FileKind::ShardIndex => "a Hugging Face shard index (JSON)",
            FileKind::HfConfig => "a Hugging Face model config (JSON)",
            FileKind::Json => "a JSON file",
            FileKind::Gguf {
                byte_swapped: false,
            } => "a GGUF file",
            FileKind::Gguf { byte_swapped: true } => "a big-endian GGUF file",
            FileKind::Zip => "a zip archive (PyTorch checkpoints since torch 1.6 are zips)",
            FileKind::PytorchLegacy => "a legacy PyTorch checkpoint (torch < 1.6)",
            FileKind::Tar => "a tar archive (PyTorch checkpoints before torch 0.1.10 are tars)",
            FileKind::Pickle => "a Python pickle",
            FileKind::Onnx => "an ONNX model (by its first bytes)",
            FileKind::GitLfsPointer => "a Git LFS pointer",
            FileKind::Html => "an HTML page",
            FileKind::Xml => "an XML or SVG document",
            FileKind::Text => "a text file",
            FileKind::Binary => "binary data of no kind modeltool knows",
        }
    }

    /// Whether the kind is one of the JSON kinds.
    pub fn is_json(self) -> bool {
        matches!(
            self,
            FileKind::JsonModel | FileKind::ShardIndex | FileKind::HfConfig | FileKind::Json
        )
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The legacy PyTorch magic number as pickled at protocol 2: `LONG1` of 10
/// bytes, little-endian `0x1950a86a20f9469cfc6c`.
const TORCH_LEGACY_MAGIC: &[u8] = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

/// Says what a file is from its first bytes (give it the first
/// [`DETECT_LEN`] bytes, or the whole file when shorter). Never fails:
/// bytes nothing matches are [`FileKind::Binary`] or [`FileKind::Text`].
pub fn detect(head: &[u8]) -> FileKind {
    if head.is_empty() {
        return FileKind::Empty;
    }
    // First: a header length of up to 100 MB has zero high bytes, so its
    // low bytes may look like anything (0x0280 starts like a pickle).
    if let Some(len) = head.get(..8) {
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        if (2..=MAX_HEADER_LEN).contains(&len) && head.get(8) == Some(&b'{') {
            return FileKind::Safetensors;
        }
    }
    if head.starts_with(b"GGUF") {
        // The version follows the magic; a big-endian file stores it
        // byte-swapped (version 3 reads as 0x03000000).
        let swapped = head
            .get(4..8)
            .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
            .is_some_and(|v| v > 0xffff && v.swap_bytes() <= 0xffff);
        return FileKind::Gguf {
            byte_swapped: swapped,
        };
    }
    if head.starts_with(b"FUGG") {
        return FileKind::Gguf { byte_swapped: true };
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return FileKind::Zip;
    }
    if crate::pytorch::is_tar(head) {
        return FileKind::Tar;
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return if head[2..].starts_with(TORCH_LEGACY_MAGIC) {
            FileKind::PytorchLegacy
        } else {
            FileKind::Pickle
        };
    }
    let text = strip_bom(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&[][..], |i| &text[i..]);
    if start.starts_with(b"version https://git-lfs") {
        return FileKind::GitLfsPointer;
    }
    if start.starts_with(b"{") || start.starts_with(b"[") {
        return json_kind(start);
    }
    if start.starts_with(b"<") {
        let lower: Vec<u8> = start
            .iter()
            .take(1024)
            .map(u8::to_ascii_lowercase)
            .collect();
        if contains(&lower, b"<html") || lower.starts_with(b"<!doctype html") {
            return FileKind::Html;
        }
        return FileKind::Xml;
    }
    if looks_like_onnx(head) {
        return FileKind::Onnx;
    }
    if looks_like_text(head) {
        return FileKind::Text;
    }
    FileKind::Binary
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// Which JSON it is, from the keys seen in the prefix.
fn json_kind(json: &[u8]) -> FileKind {
    let format = format!("\"{FORMAT_ID}\"");
    if contains(json, b"\"format\"") && contains(json, format.as_bytes()) {
        FileKind::JsonModel
    } else if contains(json, b"\"weight_map\"") {
        FileKind::ShardIndex
    } else if contains(json, b"\"architectures\"") || contains(json, b"\"model_type\"") {
        FileKind::HfConfig
    } else {
        FileKind::Json
    }
}

/// An ONNX `ModelProto` starts with field 1 (`ir_version`, a small varint)
/// and then a string field (producer name, graph, opset import...).
fn looks_like_onnx(b: &[u8]) -> bool {
    matches!(b, [0x08, v, tag, ..] if (1..=32).contains(v) && matches!(tag, 0x12 | 0x1a | 0x22 | 0x2a | 0x3a | 0x42))
}

/// UTF-8 without NUL or control bytes other than tab, CR, LF and FF (a
/// multi-byte character cut at the end of the prefix is allowed).
fn looks_like_text(b: &[u8]) -> bool {
    let valid = match std::str::from_utf8(b) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid
        && b.iter()
            .all(|&c| c >= 0x20 || matches!(c, b'\t' | b'\n' | b'\r' | 0x0c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_told_by_its_first_bytes() {
        let mut st = 16u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{\"a\":1}         ");
        // A tar header: a name, then `ustar` at byte 257.
        let tar = [&b"sys_info"[..], &[0; 249], b"ustar\x0000"].concat();
        let cases: Vec<(&[u8], FileKind)> = vec![
            (b"", FileKind::Empty),
            (&st, FileKind::Safetensors),
            (
                b"{\n  \"format\": \"modeltool.json/1\", \"tensors\": {}}",
                FileKind::JsonModel,
            ),
            (
                b"{\"metadata\": {\"total_size\": 4}, \"weight_map\": {}}",
                FileKind::ShardIndex,
            ),
            (
                b"{\"architectures\": [\"BertModel\"], \"model_type\": \"bert\"}",
                FileKind::HfConfig,
            ),
            (b"\xef\xbb\xbf [1, 2]", FileKind::Json),
            (
                b"GGUF\x03\x00\x00\x00",
                FileKind::Gguf {
                    byte_swapped: false,
                },
            ),
            (
                b"GGUF\x00\x00\x00\x03",
                FileKind::Gguf { byte_swapped: true },
            ),
            (b"PK\x03\x04\x14\x00", FileKind::Zip),
            (
                b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.",
                FileKind::PytorchLegacy,
            ),
            (b"\x80\x04\x95\x10\x00", FileKind::Pickle),
            (&tar, FileKind::Tar),
            (b"\x08\x07\x12\x07pytorch", FileKind::Onnx),
            (
                b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n",
                FileKind::GitLfsPointer,
            ),
            (b"<!DOCTYPE html><html><body>", FileKind::Html),
            (b"\n<HTML>", FileKind::Html),
            (b"<?xml version=\"1.0\"?><svg/>", FileKind::Xml),
            (b"height,weight\n170,65\n", FileKind::Text),
            (b"\x00\x01\x02\xff\xfe", FileKind::Binary),
        ];
        for (bytes, kind) in cases {
            assert_eq!(detect(bytes), kind, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    /// A JSON file read as safetensors gave "header length
    /// 7017841271895827067 exceeds the limit": its first 8 bytes are no
    /// plausible length.
    #[test]
    fn json_is_never_taken_for_safetensors() {
        assert_eq!(
            detect(b"{\"weight_map\": {\"a\": \"model.safetensors.index.json\"}}"),
            FileKind::ShardIndex
        );
        // A safetensors length too large for the cap is not safetensors.
        let mut b = (MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
        b.push(b'{');
        assert_ne!(detect(&b), FileKind::Safetensors);
    }

    /// Found by the round-trip property test: a 640-byte header starts
    /// `80 02`, which is also how a protocol-2 pickle starts.
    #[test]
    fn a_safetensors_length_that_looks_like_a_pickle_is_safetensors() {
        let mut b = 640u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{\"a\":{}}");
        assert_eq!(detect(&b), FileKind::Safetensors);
    }
}
