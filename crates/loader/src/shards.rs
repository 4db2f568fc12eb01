//! Hugging Face sharded checkpoints: `model.safetensors.index.json` plus
//! `model-00001-of-0000N.safetensors` shards.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};

use rayon::prelude::*;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use crate::file::{Handles, open_regular};
use crate::{
    LoadError, Model, ModelFile, ModelKind, ModelWarning, OpenOptions, Result,
    read_safetensors_header,
};
use modeltool_format::text::Escaped;
use modeltool_format::{FileKind, ModelMetadata, detect};

/// The index file's name in a sharded checkpoint folder.
pub const INDEX_NAME: &str = "model.safetensors.index.json";

/// The index file's name in a folder of PyTorch shards
/// (`pytorch_model-00001-of-00002.bin`), read when there is no [`INDEX_NAME`].
pub const PYTORCH_INDEX_NAME: &str = "pytorch_model.bin.index.json";

/// One shard, read: a safetensors header or a PyTorch checkpoint.
pub(crate) enum Shard {
    Safetensors(ModelFile, modeltool_format::Header),
    Pytorch(ModelFile, crate::pytorch::Read),
}

/// A parsed `model.safetensors.index.json`.
#[derive(Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
    weight_map: WeightMap,
}

/// An index's `weight_map`, compact: an index of a million tensors costs
/// their names' bytes and 16 bytes each, not a map of two strings each.
#[derive(Debug, Default)]
struct WeightMap {
    /// Every tensor name, one after the other.
    names: String,
    /// (start of the name in `names`, its length, its shard in `shards`),
    /// sorted by name; of a name listed twice, the last one (as a JSON map
    /// reader keeps it).
    entries: Vec<(usize, u32, u32)>,
    /// The shard file names, each once.
    shards: Vec<String>,
}

impl WeightMap {
    fn name(&self, e: &(usize, u32, u32)) -> &str {
        &self.names[e.0..e.0 + e.1 as usize]
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The shard the index puts tensor `name` in.
    fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .binary_search_by(|e| self.name(e).cmp(name))
            .ok()
            .map(|k| self.shards[self.entries[k].2 as usize].as_str())
    }

    /// Every (name, shard), sorted by name.
    fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (self.name(e), self.shards[e.2 as usize].as_str()))
    }
}

impl<'de> Deserialize<'de> for WeightMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(WeightMapVisitor)
    }
}

struct WeightMapVisitor;

impl<'de> Visitor<'de> for WeightMapVisitor {
    type Value = WeightMap;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<WeightMap, A::Error> {
        let mut w = WeightMap::default();
        let mut shard_of: HashMap<String, u32> = HashMap::new();
        let mut shard = String::new();
        loop {
            let start = w.names.len();
            if map.next_key_seed(AppendStr(&mut w.names))?.is_none() {
                break;
            }
            let len = u32::try_from(w.names.len() - start)
                .map_err(|_| de::Error::custom("a tensor name longer than 4 GiB"))?;
            shard.clear();
            map.next_value_seed(AppendStr(&mut shard))?;
            let k = match shard_of.get(shard.as_str()) {
                Some(&k) => k,
                None => {
                    let k = u32::try_from(w.shards.len())
                        .map_err(|_| de::Error::custom("more than 4294967295 shards"))?;
                    shard_of.insert(shard.clone(), k);
                    w.shards.push(shard.clone());
                    k
                }
            };
            w.entries.push((start, len, k));
        }
        // By name, and of equal names the later first, which the dedup keeps.
        let names = &w.names;
        w.entries.sort_unstable_by(|a, b| {
            names[a.0..a.0 + a.1 as usize]
                .cmp(&names[b.0..b.0 + b.1 as usize])
                .then(b.0.cmp(&a.0))
        });
        w.entries.dedup_by(|later, kept| {
            names[later.0..later.0 + later.1 as usize] == names[kept.0..kept.0 + kept.1 as usize]
        });
        w.entries.shrink_to_fit();
        Ok(w)
    }
}

/// Deserializes a JSON string by appending it to a `String`: no allocation
/// per string.
struct AppendStr<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for AppendStr<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for AppendStr<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// Parses an index's text and lists its shards (sorted, each once), each
/// a relative path of plain names.
pub(crate) fn parse_index(index_path: &Path, text: &[u8]) -> Result<(Index, Vec<String>)> {
    let shards_err = |reason: String| LoadError::Shards {
        path: index_path.to_owned(),
        reason,
    };
    // JSON is UTF-8 (RFC 8259). Checked first: serde_json does not check
    // the strings of fields it skips, so bytes that are not UTF-8 under an
    // unknown key would otherwise pass.
    let text = std::str::from_utf8(text).map_err(|e| {
        shards_err(format!(
            "not a valid index: not UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let index: Index = serde_json::from_str(text)
        .map_err(|e| shards_err(format!("not a valid index: {}", Escaped(&e.to_string()))))?;
    if index.weight_map.is_empty() {
        return Err(shards_err("`weight_map` lists no tensors".into()));
    }
    // Shard files in the order of their names.
    let mut used = vec![false; index.weight_map.shards.len()];
    for e in &index.weight_map.entries {
        used[e.2 as usize] = true;
    }
    let mut shard_names: Vec<String> = index
        .weight_map
        .shards
        .iter()
        .zip(&used)
        .filter(|&(_, &used)| used)
        .map(|(s, _)| s.clone())
        .collect();
    shard_names.sort_unstable();
    for name in &shard_names {
        if !Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(shards_err(format!(
                "shard `{}` is not a file name inside the checkpoint folder",
                Escaped(name)
            )));
        }
    }
    Ok((index, shard_names))
}

/// Opens a local index and its shards, which must lie inside `boundary`
/// (the index's own folder when `None`), symlinks resolved.
pub(crate) fn open_index_within(
    index_path: &Path,
    handle: &File,
    options: OpenOptions,
    boundary: Option<&Path>,
) -> Result<Model> {
    let mut text = Vec::new();
    (&*handle)
        .read_to_end(&mut text)
        .map_err(LoadError::io(index_path))?;
    let (index, shard_names) = parse_index(index_path, &text)?;
    // An index of a million tensors is tens of megabytes: parsed, it goes.
    drop(text);
    let shards_err = |reason: String| LoadError::Shards {
        path: index_path.to_owned(),
        reason,
    };
    let dir = match index_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The folder is the boundary: every shard, symlinks resolved, must be
    // inside the index's folder (itself resolved), or the boundary given
    // (a Hugging Face cache keeps the files in the repo's `blobs/`).
    let boundary = boundary.unwrap_or(dir);
    let folder = boundary.canonicalize().map_err(LoadError::io(boundary))?;
    let mut real = Vec::with_capacity(shard_names.len());
    for name in &shard_names {
        let p = Path::new(name);
        let resolved = match dir.join(p).canonicalize() {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(shards_err(format!("shard `{}` is missing", Escaped(name))));
            }
            Err(e) => return Err(LoadError::io(dir.join(p))(e)),
        };
        if !resolved.starts_with(&folder) {
            return Err(LoadError::OutsideFolder {
                index: index_path.to_owned(),
                shard: name.clone(),
                resolved,
                folder,
            });
        }
        real.push(resolved);
    }

    let handles = Handles::new();
    let headers: Vec<_> = shard_names
        .par_iter()
        .zip(real.par_iter())
        .map(|(name, real)| {
            let shown_path = dir.join(name);
            let (file, meta) = open_regular(real).map_err(|e| match e {
                LoadError::NotRegularFile { what, .. } => shards_err(format!(
                    "shard `{}` is {what}, not a regular file",
                    Escaped(name)
                )),
                other => other,
            })?;
            let mut head = [0u8; 4096];
            let n = read_head_into(&file, &mut head).map_err(LoadError::io(&shown_path))?;
            let file = ModelFile::new(&shown_path, real, file, &meta, &handles, options.mmap);
            read_shard(index_path, name, file, &head[..n], &options)
        })
        .collect::<Result<_>>()?;
    assemble(index_path, &index, &shard_names, headers)
}

/// Reads shard `name` of the index at `index_path`, whose first bytes are
/// `head`: a safetensors header or a PyTorch checkpoint's description.
pub(crate) fn read_shard(
    index_path: &Path,
    name: &str,
    file: ModelFile,
    head: &[u8],
    options: &OpenOptions,
) -> Result<Shard> {
    let kind = detect(head);
    if matches!(
        kind,
        FileKind::Zip | FileKind::PytorchLegacy | FileKind::Tar
    ) {
        let read = crate::pytorch::read_shard(&file, head, options)?;
        return Ok(Shard::Pytorch(file, read));
    }
    if !matches!(kind, FileKind::Safetensors | FileKind::Binary) {
        return Err(LoadError::Shards {
            path: index_path.to_owned(),
            reason: format!("shard `{}` is {kind}, not safetensors", Escaped(name)),
        });
    }
    read_safetensors_header(file).map(|(f, h)| Shard::Safetensors(f, h))
}

/// Builds the model of an index from its shards, read (in the order of
/// `shard_names`), checking that they agree with it.
pub(crate) fn assemble(
    index_path: &Path,
    index: &Index,
    shard_names: &[String],
    headers: Vec<Shard>,
) -> Result<Model> {
    let shards_err = |reason: String| LoadError::Shards {
        path: index_path.to_owned(),
        reason,
    };
    let mut model = Model::empty(
        index_path,
        ModelKind::Sharded {
            index: index_path.to_owned(),
        },
    );
    model.files.reserve(headers.len());
    let mut all_checksums = BTreeMap::new();
    let mut data_total: u64 = 0;
    let mut listed = 0usize;
    // Reported after a tensor held twice, which explains it better.
    let mut misplaced = None;
    for (i, shard_read) in headers.into_iter().enumerate() {
        let shard = shard_names[i].as_str();
        let (file, mut header) = match shard_read {
            Shard::Safetensors(file, header) => (file, header),
            Shard::Pytorch(file, read) => {
                model.files.push(file);
                for (name, bytes) in crate::pytorch::add_shard(&mut model, i, read)? {
                    match index.weight_map.get(&name) {
                        Some(s) if s == shard => listed += 1,
                        Some(s) => {
                            misplaced.get_or_insert_with(|| {
                                shards_err(format!(
                                    "index puts `{}` in `{}`, but it is in `{}`",
                                    Escaped(&name),
                                    Escaped(s),
                                    Escaped(shard)
                                ))
                            });
                        }
                        None => {
                            return Err(shards_err(format!(
                                "shard `{}` holds `{}`, which the index does not list",
                                Escaped(shard),
                                Escaped(&name)
                            )));
                        }
                    }
                    data_total += bytes;
                }
                continue;
            }
        };
        let meta = ModelMetadata::from_safetensors(std::mem::take(&mut header.metadata))
            .map_err(LoadError::format(&file.path))?;
        for t in &header.tensors {
            let name = &t.meta.name;
            match index.weight_map.get(name) {
                Some(s) if s == shard => listed += 1,
                Some(s) => {
                    misplaced.get_or_insert_with(|| {
                        shards_err(format!(
                            "index puts `{}` in `{}`, but it is in `{}`",
                            Escaped(name),
                            Escaped(s),
                            Escaped(shard)
                        ))
                    });
                }
                None => {
                    return Err(shards_err(format!(
                        "shard `{}` holds `{}`, which the index does not list",
                        Escaped(shard),
                        Escaped(name)
                    )));
                }
            }
            data_total += t.byte_len();
        }
        for (k, v) in meta.user {
            model.metadata.user.entry(k).or_insert(v);
        }
        if model.metadata.architecture.is_none() {
            model.metadata.architecture = meta.architecture;
        }
        model.files.push(file);
        model.add_entries(i, header, &meta.checksums);
        all_checksums.extend(meta.checksums);
    }
    // A checksum kept in another shard's metadata still belongs to its tensor.
    for e in &mut model.entries {
        if e.stored_sha256.is_none() {
            e.stored_sha256 = all_checksums.get(&e.meta.name).copied();
        }
    }
    model.finish(&all_checksums)?;
    if let Some(e) = misplaced {
        return Err(e);
    }
    if listed != index.weight_map.len() {
        // Every tensor found is listed, in its shard (checked above), and
        // no name is found twice: some listed name was not found.
        if let Some((name, shard)) = index
            .weight_map
            .iter()
            .find(|(name, _)| model.entry(name).is_err())
        {
            return Err(shards_err(format!(
                "index puts `{}` in `{}`, but that shard does not hold it",
                Escaped(name),
                Escaped(shard)
            )));
        }
    }
    if let Some(total) = index.metadata.get("total_size") {
        let stated = total.as_u64().or_else(|| {
            total
                .as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                .map(|f| f as u64)
        });
        match stated {
            Some(n) if n == data_total => {}
            Some(n) => model.warnings.push(ModelWarning::TotalSizeMismatch {
                index: index_path.to_owned(),
                stated: n,
                actual: data_total,
            }),
            None => model.warnings.push(ModelWarning::TotalSizeNotACount {
                index: index_path.to_owned(),
                value: total.to_string(),
            }),
        }
    }
    Ok(model)
}

fn read_head_into(file: &File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Splits tensors (given by their byte sizes, in order) into shards the way
/// Hugging Face does: greedily in order, starting a new shard when the next
/// tensor would push the current one over `max`; a tensor larger than `max`
/// gets a shard of its own, placed where it was met.
pub fn plan_shards(sizes: &[u64], max: u64) -> Vec<Vec<usize>> {
    let mut shards = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max {
            shards.push(vec![i]);
            continue;
        }
        if current_size + size > max && !current.is_empty() {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size += size;
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

/// The file name of shard `i` (0-based) of `n`, as Hugging Face names them.
pub fn shard_name(i: usize, n: usize) -> String {
    format!("model-{:05}-of-{:05}.safetensors", i + 1, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the shard_index fuzz target (fuzz/regressions/shard_index/):
    /// bytes that are not UTF-8 in the value of a key the index does not
    /// know were accepted, since serde_json skips such strings unchecked.
    #[test]
    fn an_index_that_is_not_utf8_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shard = dir.path().join("model-00001-of-00001.safetensors");
        let meta = modeltool_format::TensorMeta {
            name: "a".into(),
            dtype: modeltool_format::Dtype::U8,
            shape: vec![1],
        };
        let mut bytes = Vec::new();
        modeltool_format::write_safetensors(&mut bytes, &[(meta, &[7][..])], &BTreeMap::new())
            .expect("a shard");
        std::fs::write(&shard, bytes).expect("write the shard");
        let index = dir.path().join(INDEX_NAME);
        let map = r#""weight_map": {"a": "model-00001-of-00001.safetensors"}"#;
        std::fs::write(&index, format!("{{{map}}}")).expect("write the index");
        Model::open(&index, OpenOptions::default()).expect("the valid index opens");

        let mut text = br#"{"note": "caf"#.to_vec();
        text.extend_from_slice(&[0xff, 0xfe]);
        text.extend_from_slice(format!(r#"", {map}}}"#).as_bytes());
        std::fs::write(&index, &text).expect("write the index");
        let err = Model::open(&index, OpenOptions::default()).expect_err("not UTF-8");
        assert!(err.to_string().contains("not UTF-8 at byte 13"), "{err}");
    }

    #[test]
    fn sharding_follows_hugging_face() {
        assert_eq!(plan_shards(&[4, 4, 4], 10), vec![vec![0, 1], vec![2]]);
        // An oversized tensor gets its own shard where it was met.
        assert_eq!(
            plan_shards(&[4, 20, 4, 4], 10),
            vec![vec![1], vec![0, 2], vec![3]]
        );
        assert_eq!(plan_shards(&[], 10), Vec::<Vec<usize>>::new());
    }
}
