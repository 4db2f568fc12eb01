//! Hugging Face sharded checkpoints: `model.safetensors.index.json` plus
//! `model-00001-of-0000N.safetensors` shards.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path};

use rayon::prelude::*;
use serde::Deserialize;

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
enum Shard {
    Safetensors(ModelFile, modeltool_format::Header),
    Pytorch(ModelFile, crate::pytorch::Read),
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
    weight_map: BTreeMap<String, String>,
}

pub(crate) fn open_index(index_path: &Path, handle: &File, options: OpenOptions) -> Result<Model> {
    let mut text = Vec::new();
    (&*handle)
        .read_to_end(&mut text)
        .map_err(LoadError::io(index_path))?;
    let shards_err = |reason: String| LoadError::Shards {
        path: index_path.to_owned(),
        reason,
    };
    // JSON is UTF-8 (RFC 8259). Checked first: serde_json does not check
    // the strings of fields it skips, so bytes that are not UTF-8 under an
    // unknown key would otherwise pass.
    let text = std::str::from_utf8(&text).map_err(|e| {
        shards_err(format!(
            "not a valid index: not UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })?;
    let index: Index = serde_json::from_str(text)
        .map_err(|e| shards_err(format!("not a valid index: {}", Escaped(&e.to_string()))))?;
    let dir = match index_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if index.weight_map.is_empty() {
        return Err(shards_err("`weight_map` lists no tensors".into()));
    }
    // The folder is the boundary: every shard, symlinks resolved, must be
    // inside the index's folder (itself resolved).
    let folder = dir.canonicalize().map_err(LoadError::io(dir))?;

    // Shard files in the order of their names.
    let mut shard_names: Vec<&str> = index.weight_map.values().map(String::as_str).collect();
    shard_names.sort_unstable();
    shard_names.dedup();
    let mut real = Vec::with_capacity(shard_names.len());
    for name in &shard_names {
        let p = Path::new(name);
        if !p.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(shards_err(format!(
                "shard `{}` is not a file name inside the checkpoint folder",
                Escaped(name)
            )));
        }
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
                shard: (*name).to_owned(),
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
            let kind = detect(&head[..n]);
            if matches!(
                kind,
                FileKind::Zip | FileKind::PytorchLegacy | FileKind::Tar
            ) {
                let file = ModelFile::new(&shown_path, real, file, &meta, &handles, options.mmap);
                let read = crate::pytorch::read_shard(&file, &head[..n], &options)?;
                return Ok(Shard::Pytorch(file, read));
            }
            if !matches!(kind, FileKind::Safetensors | FileKind::Binary) {
                return Err(shards_err(format!(
                    "shard `{}` is {kind}, not safetensors",
                    Escaped(name)
                )));
            }
            let file = ModelFile::new(&shown_path, real, file, &meta, &handles, options.mmap);
            read_safetensors_header(file).map(|(f, h)| Shard::Safetensors(f, h))
        })
        .collect::<Result<_>>()?;

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
        let shard = shard_names[i];
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
            e.stored_sha256 = all_checksums.get(&e.meta.name).cloned();
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
