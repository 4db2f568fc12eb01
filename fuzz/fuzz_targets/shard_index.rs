//! The sharded-checkpoint reader (`model.safetensors.index.json`).
//!
//! A folder, made once per process, holds two small valid shards:
//! `model-00001-of-00002.safetensors` (`a` F32 [2], `b` F16 [3], `c` U8 [0],
//! with checksums, user metadata and an architecture) and
//! `model-00002-of-00002.safetensors` (`d` BF16 [2, 2], `e` F64 [], with the
//! checksum of `a` too). The input is written there as the index file; if it
//! holds the separator `\n--shard--\n`, the bytes after it become a third
//! shard, `fuzz.safetensors` (otherwise that file is removed). Then the
//! index is opened, with or without mmap (the last input byte decides).
//!
//! An accepted checkpoint must keep the promises in docs/FORMAT.md: every
//! tensor of the index is in the shard it names, no tensor is in two
//! shards, every tensor's bytes lie inside its file after the header, and
//! reading them gives exactly the dtype's size times the element count.
#![no_main]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, sha256_hex, write_safetensors};
use modeltool_loader::{Model, OpenOptions};

const SEPARATOR: &[u8] = b"\n--shard--\n";

fn shard(tensors: &[(&str, Dtype, &[usize], Vec<u8>)], extra_sums: &[(&str, &[u8])]) -> Vec<u8> {
    let mut meta = ModelMetadata::default();
    let mut list = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let m = TensorMeta {
            name: (*name).into(),
            dtype: *dtype,
            shape: shape.to_vec(),
        };
        meta.checksums.insert((*name).into(), Checksum::of(bytes));
        list.push((m, &bytes[..]));
    }
    for (name, bytes) in extra_sums {
        meta.checksums.insert((*name).into(), Checksum::of(bytes));
    }
    meta.user.insert("source".into(), "fuzz".into());
    meta.architecture = Some(serde_json::json!({"layers": [
        {"type": "linear", "weight": "d", "bias": "a"}
    ]}));
    let mut out = Vec::new();
    write_safetensors(&mut out, &list, &meta.to_safetensors()).expect("a valid shard");
    out
}

fn folder() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let a: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let b = vec![0x00, 0x3c, 0x00, 0xc0, 0x00, 0x7c]; // F16 1, -2, inf
        let d = vec![0x80, 0x3f, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f]; // BF16 identity
        let e = 0.25f64.to_le_bytes().to_vec();
        let first = shard(
            &[
                ("a", Dtype::F32, &[2], a.clone()),
                ("b", Dtype::F16, &[3], b),
                ("c", Dtype::U8, &[0], Vec::new()),
            ],
            &[],
        );
        let second = shard(
            &[("d", Dtype::BF16, &[2, 2], d), ("e", Dtype::F64, &[], e)],
            &[("a", &a)],
        );
        std::fs::write(dir.path().join("model-00001-of-00002.safetensors"), first)
            .expect("write shard 1");
        std::fs::write(dir.path().join("model-00002-of-00002.safetensors"), second)
            .expect("write shard 2");
        let path = dir.path().to_owned();
        (dir, path)
    })
    .1
}

fuzz_target!(|data: &[u8]| {
    let dir = folder();
    let index_path = dir.join("model.safetensors.index.json");
    let fuzz_shard = dir.join("fuzz.safetensors");
    let (index, extra) = match data.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        Some(i) => (&data[..i], Some(&data[i + SEPARATOR.len()..])),
        None => (data, None),
    };
    std::fs::write(&index_path, index).expect("write the index");
    match extra {
        Some(bytes) => std::fs::write(&fuzz_shard, bytes).expect("write the fuzzed shard"),
        None => {
            let _ = std::fs::remove_file(&fuzz_shard);
        }
    }
    let mmap = data.last().is_none_or(|b| b & 1 == 0);

    let Ok(model) = Model::open(
        &index_path,
        OpenOptions {
            mmap,
            ..OpenOptions::default()
        },
    ) else {
        return;
    };

    assert!(
        std::str::from_utf8(index).is_ok(),
        "accepted an index that is not UTF-8"
    );
    // The weight map as the index states it (serde_json keeps the last of
    // a repeated key, as the reader does).
    let parsed: serde_json::Value =
        serde_json::from_slice(index).expect("an accepted index is JSON");
    let weight_map: BTreeMap<String, String> =
        serde_json::from_value(parsed["weight_map"].clone()).expect("an accepted weight_map");

    let mut seen = HashSet::new();
    for entry in model.entries() {
        let name = &entry.meta.name;
        assert!(seen.insert(name.clone()), "`{name}` listed twice");
        let file = &model.files()[entry.file];
        let shard = weight_map
            .get(name)
            .unwrap_or_else(|| panic!("`{name}` is not in the index"));
        assert_eq!(
            file.path,
            dir.join(shard),
            "`{name}` is not in the shard the index names"
        );
        let start = entry
            .offset()
            .expect("a shard's tensor is a range of its file");
        let end = start + entry.byte_len();
        assert!(file.header_bytes <= start && start <= end && end <= file.file_len);
        let len = entry
            .meta
            .byte_len()
            .expect("an accepted tensor has a size");
        assert_eq!(entry.byte_len(), len as u64);
        let bytes = model.bytes(entry).expect("the bytes of an accepted tensor");
        assert_eq!(bytes.len(), len);
        if let Some(sum) = &entry.stored_sha256 {
            let ok = model.bytes_checked(entry).is_ok();
            assert_eq!(ok, Checksum::of(&bytes) == *sum);
        }
        if matches!(
            entry.meta.dtype,
            Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::F64
        ) {
            let values = model.tensor_f32(name).expect("a float tensor as f32");
            let elements = entry.meta.element_count().expect("an element count");
            assert_eq!(values.len(), elements);
        }
    }
    for name in weight_map.keys() {
        assert!(
            model.entry(name).is_ok(),
            "`{name}` from the index is missing"
        );
    }
    assert_eq!(model.entries().len(), weight_map.len());
    // Every tensor's checksum, hashed in bounded chunks, equals the hash of its bytes.
    let sums = model.sha256_all(&|_| {}).expect("hashing accepted tensors");
    for (entry, sum) in model.entries().iter().zip(sums) {
        let bytes = model.bytes(entry).expect("bytes");
        assert_eq!(sum, sha256_hex(&bytes));
    }
});
