//! The JSON model file, `modeltool.json/1`: one object holding string
//! metadata, an optional architecture and every tensor with its values and
//! checksum. See docs/FORMAT.md for the full description.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use crate::error::{FormatError, Result};
use crate::safetensors::write_json_string;
use crate::{Checksum, TensorMeta, is_sha256_hex};
use crate::{par, values};

/// The value of the `format` key that every JSON model file carries.
pub const FORMAT_ID: &str = "modeltool.json/1";

/// Elements formatted per parallel work item when writing.
const BLOCK: usize = 1 << 14;

/// Writes a JSON model file one tensor at a time, so a model never has to be
/// held in memory as text.
#[derive(Debug)]
pub struct JsonWriter<W: Write> {
    out: W,
    names: std::collections::HashSet<String>,
}

impl<W: Write> JsonWriter<W> {
    /// Starts a file: writes the format tag, the metadata and the architecture.
    pub fn new(
        mut out: W,
        metadata: &BTreeMap<String, String>,
        architecture: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let mut head = Vec::new();
        head.extend_from_slice(b"{\n  \"format\": \"");
        head.extend_from_slice(FORMAT_ID.as_bytes());
        head.extend_from_slice(b"\",\n  \"metadata\": ");
        serde_json::to_writer(&mut head, metadata)?;
        if let Some(arch) = architecture {
            head.extend_from_slice(b",\n  \"architecture\": ");
            serde_json::to_writer(&mut head, arch)?;
        }
        head.extend_from_slice(b",\n  \"tensors\": {");
        out.write_all(&head)?;
        Ok(JsonWriter {
            out,
            names: Default::default(),
        })
    }

    /// Writes one tensor: its dtype, shape, values and the sha256 of `data`,
    /// which the caller has computed (or checked) already.
    pub fn write_tensor(&mut self, meta: &TensorMeta, data: &[u8], sha256: &str) -> Result<()> {
        if !is_sha256_hex(sha256) {
            return Err(FormatError::BadValue {
                name: meta.name.clone(),
                reason: format!("checksum `{sha256}` is not 64 lowercase hex digits"),
            });
        }
        if self.names.contains(&meta.name) {
            return Err(FormatError::DuplicateTensor {
                name: meta.name.clone(),
            });
        }
        let count = meta.element_count()?;
        if meta.byte_len()? != data.len() {
            return Err(FormatError::BadValue {
                name: meta.name.clone(),
                reason: format!(
                    "{} bytes given for {} {:?}",
                    data.len(),
                    meta.dtype,
                    meta.shape
                ),
            });
        }
        let mut head = Vec::with_capacity(160);
        head.extend_from_slice(if self.names.is_empty() {
            b"\n    "
        } else {
            b",\n    "
        });
        write_json_string(&mut head, &meta.name);
        head.extend_from_slice(b": {\"dtype\": \"");
        head.extend_from_slice(meta.dtype.name().as_bytes());
        head.extend_from_slice(b"\", \"shape\": ");
        serde_json::to_writer(&mut head, &meta.shape)?;
        head.extend_from_slice(b", \"data\": [");
        self.out.write_all(&head)?;

        let mut first = 0;
        if count <= BLOCK {
            // One block: formatted here (handing it to another core would
            // cost more than formatting it, tensor after small tensor).
            let mut text = Vec::with_capacity(count * 12);
            values::write_elements(&mut text, meta.dtype, data, 0, count, count).map_err(
                |reason| FormatError::BadValue {
                    name: meta.name.clone(),
                    reason,
                },
            )?;
            self.out.write_all(&text)?;
            first = count;
        }
        // Format blocks of elements in parallel, a bounded group at a time.
        let group = BLOCK * par::threads() * 2;
        while first < count {
            let n = group.min(count - first);
            let starts: Vec<usize> = (first..first + n).step_by(BLOCK).collect();
            let texts: Vec<Vec<u8>> = par::map(starts, |start| {
                let len = BLOCK.min(first + n - start);
                let mut text = Vec::with_capacity(len * 12);
                values::write_elements(&mut text, meta.dtype, data, start, len, count)
                    .map(|()| text)
            })
            .into_iter()
            .collect::<Result<_, String>>()
            .map_err(|reason| FormatError::BadValue {
                name: meta.name.clone(),
                reason,
            })?;
            for text in texts {
                self.out.write_all(&text)?;
            }
            first += n;
        }
        let mut tail = Vec::with_capacity(90);
        tail.extend_from_slice(b"], \"sha256\": \"");
        tail.extend_from_slice(sha256.as_bytes());
        tail.extend_from_slice(b"\"}");
        self.out.write_all(&tail)?;
        self.names.insert(meta.name.clone());
        Ok(())
    }

    /// Closes the object and returns the writer (flushed).
    pub fn finish(mut self) -> Result<W> {
        self.out.write_all(if self.names.is_empty() {
            b"}\n}\n"
        } else {
            b"\n  }\n}\n"
        })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A tensor read from a JSON model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonTensor {
    /// Name, dtype and shape.
    pub meta: TensorMeta,
    /// The little-endian bytes, exactly as a safetensors file stores them.
    pub data: Vec<u8>,
    /// The checksum the file states, if any.
    pub sha256: Option<Checksum>,
    /// The sha256 of `data` (the 32 bytes of the digest, which
    /// [`hex::encode`] turns into the 64 digits `sha256` holds), computed
    /// while the file was read (on another core, while the next tensor was
    /// parsed). A tensor is intact when the two agree. Raw bytes, not text:
    /// a model of 100k small tensors would spend 8 MB on the digits.
    pub actual_sha256: [u8; 32],
}

/// A whole JSON model file.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonModel {
    /// The string metadata.
    pub metadata: BTreeMap<String, String>,
    /// The architecture, carried as JSON.
    pub architecture: Option<serde_json::Value>,
    /// The tensors, in file order.
    pub tensors: Vec<JsonTensor>,
}

impl JsonModel {
    /// Reads a JSON model file from a stream, a window of a few MB at a
    /// time: values go straight into typed byte buffers, parsed in parallel,
    /// and no JSON tree is built for them. Strict JSON: bare `NaN`, trailing
    /// commas or garbage after the object are errors, as are unknown keys.
    pub fn read(reader: impl Read) -> Result<JsonModel> {
        crate::json_read::read(reader, None)
    }

    /// Reads a JSON model file from an open file, from its current
    /// position: [`read`](Self::read), with the file's size known, which
    /// lets each tensor's buffer be allocated once.
    pub fn read_file(mut file: &std::fs::File) -> Result<JsonModel> {
        let len = file.metadata()?.len();
        let at = std::io::Seek::stream_position(&mut file)?;
        crate::json_read::read(file, Some(len.saturating_sub(at)))
    }

    /// Reads a JSON model file from an open file, from its current
    /// position, like [`read_file`](Self::read_file), but hands each tensor
    /// to `take` as soon as it is read and hashed, in file order, instead
    /// of keeping it: the model returned holds no tensors, and only the
    /// tensors `take` keeps stay in memory. Two tensors of one name are not
    /// an error here (the reader keeps no names): the caller finds them.
    ///
    /// ```
    /// use modeltool_format::JsonModel;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("m.json");
    /// std::fs::write(&path, r#"{"format": "modeltool.json/1", "tensors": {
    ///     "a": {"dtype": "F32", "shape": [2], "data": [1.0, -110.0]},
    ///     "b": {"dtype": "I64", "shape": [], "data": [7]}}}"#)?;
    /// let mut seen = Vec::new();
    /// let model = JsonModel::read_file_each(&std::fs::File::open(&path)?, |t| {
    ///     seen.push((t.meta.name, t.data.len()));
    ///     Ok(())
    /// })?;
    /// assert!(model.tensors.is_empty());
    /// assert_eq!(seen, [("a".to_owned(), 8), ("b".to_owned(), 8)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read_file_each(
        mut file: &std::fs::File,
        mut take: impl FnMut(JsonTensor) -> Result<()>,
    ) -> Result<JsonModel> {
        let len = file.metadata()?.len();
        let at = std::io::Seek::stream_position(&mut file)?;
        crate::json_read::read_each(file, Some(len.saturating_sub(at)), &mut take)
    }

    /// Reads a JSON model file held in memory.
    pub fn from_slice(bytes: &[u8]) -> Result<JsonModel> {
        crate::json_read::read(bytes, Some(bytes.len() as u64))
    }
}
