//! The loader as another tool uses it: single files, JSON files, sharded
//! checkpoints and the mistakes people make with them.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use std::borrow::Cow;
use std::path::Path;

use modeltool_format::{
    Checksum, Dtype, HeaderDamageKind, HeaderSha256, ModelMetadata, TensorMeta, keys, sha256_hex,
    write_safetensors,
};
use modeltool_loader::save::{ConvertOptions, OutputKind, convert};
use modeltool_loader::{INDEX_NAME, LoadError, Model, ModelKind, OpenOptions};

fn meta(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
    TensorMeta {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// Options that map: the test states the memory-map assumption for its
/// process (it truncates files only where it means to see the result).
fn mapped() -> OpenOptions {
    #[expect(unsafe_code, reason = "opting in to memory maps")]
    // SAFETY: nothing truncates or rewrites the files these tests map.
    unsafe {
        modeltool_loader::allow_mmap()
    };
    OpenOptions {
        mmap: true,
        ..OpenOptions::default()
    }
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A model with `n` F32 tensors `t0..`, each of 25 values, with checksums.
fn write_model(path: &Path, n: usize) -> Vec<(TensorMeta, Vec<u8>)> {
    let tensors: Vec<(TensorMeta, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                meta(&format!("t{i}"), Dtype::F32, &[5, 5]),
                f32_bytes(&[i as f32 + 0.5; 25]),
            )
        })
        .collect();
    write_checksummed(path, &tensors, &[("format", "pt")]);
    tensors
}

/// Writes `tensors` as a safetensors file with each one's checksum and the
/// metadata pairs `user`.
fn write_checksummed(path: &Path, tensors: &[(TensorMeta, Vec<u8>)], user: &[(&str, &str)]) {
    let mut md = ModelMetadata::default();
    for (k, v) in user {
        md.user.insert((*k).into(), (*v).into());
    }
    for (m, b) in tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    write_safetensors(
        std::fs::File::create(path).unwrap(),
        &refs,
        &md.to_safetensors(),
    )
    .unwrap();
}

fn shard(model: &Model, dir: &Path, max: u64) {
    let options = ConvertOptions {
        kind: OutputKind::Sharded {
            max_shard_size: max,
        },
        dtype: None,
        force: false,
        ..Default::default()
    };
    convert(model, dir, &options, &|_| {}).unwrap();
}

#[test]
fn aligned_f32_is_borrowed_from_the_map_and_plain_reads_give_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let tensors = write_model(&path, 3);
    let mapped = Model::open(&path, mapped()).unwrap();
    let plain = Model::open(&path, OpenOptions::default()).unwrap();
    for (m, bytes) in &tensors {
        let a = mapped.tensor_f32(&m.name).unwrap();
        assert!(matches!(a, Cow::Borrowed(_)), "zero-copy for aligned F32");
        let b = plain.tensor_f32(&m.name).unwrap();
        assert!(matches!(b, Cow::Owned(_)));
        assert_eq!(a, b);
        assert_eq!(
            &*mapped
                .bytes_checked(mapped.entry(&m.name).unwrap())
                .unwrap(),
            &bytes[..]
        );
    }
    assert_eq!(mapped.parameter_count(), 75);
    assert_eq!(mapped.metadata().user["format"], "pt");
}

#[test]
fn unaligned_files_from_other_tools_are_copied_and_half_floats_converted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.safetensors");
    // Hand-made: a 1-byte U8 tensor first, so the F32 tensor starts at an odd offset.
    let header = r#"{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},"h":{"dtype":"BF16","shape":[1],"data_offsets":[9,11]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.push(7);
    file.extend_from_slice(&f32_bytes(&[1.5, -2.25]));
    file.extend_from_slice(&half::bf16::from_f32(3.0).to_le_bytes());
    std::fs::write(&path, file).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let w = model.tensor_f32("w").unwrap();
    assert_eq!(&w[..], &[1.5, -2.25]);
    assert_eq!(&model.tensor_f32("h").unwrap()[..], &[3.0]);
    assert!(matches!(
        model.tensor_f32("b"),
        Err(LoadError::WrongDtype { .. })
    ));
    assert!(matches!(
        model.tensor_f32("nope"),
        Err(LoadError::NoSuchTensor { .. })
    ));
}

#[test]
fn damaged_tensor_is_caught_when_checked_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_model(&path, 2);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let last = model
        .entries()
        .iter()
        .max_by_key(|e| e.offset().unwrap_or(0) + e.byte_len())
        .unwrap();
    let err = model.bytes_checked(last).unwrap_err();
    assert!(err.is_check_failure());
    assert!(
        err.to_string().contains(&format!("`{}`", last.meta.name)),
        "{err}"
    );
    let first = model
        .entries()
        .iter()
        .min_by_key(|e| e.offset().unwrap_or(0))
        .unwrap();
    assert!(model.bytes_checked(first).is_ok());
}

/// `path` with its first `from` replaced by `to` (same length).
fn edit(path: &Path, from: &str, to: &str) {
    assert_eq!(from.len(), to.len());
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes
        .windows(from.len())
        .position(|w| w == from.as_bytes())
        .unwrap_or_else(|| panic!("`{from}` in {}", path.display()));
    bytes[at..at + to.len()].copy_from_slice(to.as_bytes());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_changed_header_is_caught_by_its_header_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.safetensors");
    write_model(&plain, 2);
    let model = Model::open(&plain, OpenOptions::default()).unwrap();
    assert_eq!(model.files()[0].header_sha256, HeaderSha256::Absent);
    // convert writes one, and does not keep it as metadata.
    let path = dir.path().join("m.safetensors");
    let options = ConvertOptions {
        kind: OutputKind::Safetensors,
        dtype: None,
        force: true,
        ..Default::default()
    };
    convert(&model, &path, &options, &|_| {}).unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    assert_eq!(model.files()[0].header_sha256, HeaderSha256::Matches);
    assert!(model.check_headers().is_ok());
    assert!(!model.metadata().user.contains_key(keys::HEADER_SHA256));
    assert!(model.missing_checksums().is_empty());

    for (what, from, to) in [
        ("a dtype", "\"F32\"", "\"I32\""),
        ("a metadata value", "\"pt\"", "\"tf\""),
        (
            "a checksum key",
            "modeltool.sha256.t0",
            "modeltoolXsha256.t0",
        ),
    ] {
        let damaged = dir.path().join("damaged.safetensors");
        std::fs::copy(&path, &damaged).unwrap();
        edit(&damaged, from, to);
        let model = Model::open(&damaged, OpenOptions::default()).unwrap();
        let HeaderSha256::Damaged(damage) = &model.files()[0].header_sha256 else {
            panic!("{what}: {:?}", model.files()[0].header_sha256);
        };
        assert_eq!(damage.kind, HeaderDamageKind::Changed, "{what}");
        let err = model.check_headers().unwrap_err();
        assert!(err.is_check_failure(), "{what}: {err}");
        assert!(err.to_string().contains("header is damaged"), "{err}");
        // Checked reads refuse it, even though every tensor's bytes are intact.
        let err = model.bytes_checked(&model.entries()[0]).unwrap_err();
        assert!(
            matches!(err, LoadError::HeaderDamaged { .. }),
            "{what}: {err}"
        );
        // convert refuses it and writes nothing.
        let out = dir.path().join("out.json");
        let err = convert(&model, &out, &options, &|_| {}).unwrap_err();
        assert!(
            matches!(err, LoadError::HeaderDamaged { .. }),
            "{what}: {err}"
        );
        assert!(!out.exists());
        let missing: Vec<&str> = model
            .missing_checksums()
            .iter()
            .map(|e| e.meta.name.as_str())
            .collect();
        let expected: &[&str] = if what == "a checksum key" {
            &["t0"]
        } else {
            &[]
        };
        assert_eq!(missing, expected, "{what}");
    }
}

#[test]
fn sharded_round_trip_follows_hugging_face_naming() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let tensors = write_model(&path, 7);
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let out = dir.path().join("sharded");
    shard(&model, &out, 250); // 100 bytes each: two per shard
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "model-00001-of-00004.safetensors",
            "model-00002-of-00004.safetensors",
            "model-00003-of-00004.safetensors",
            "model-00004-of-00004.safetensors",
            INDEX_NAME,
        ]
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(INDEX_NAME)).unwrap()).unwrap();
    assert_eq!(index["metadata"]["total_size"], 700);
    for opened in [out.clone(), out.join(INDEX_NAME)] {
        let sharded = Model::open(&opened, OpenOptions::default()).unwrap();
        assert!(matches!(sharded.kind(), ModelKind::Sharded { .. }));
        assert_eq!(sharded.files().len(), 4);
        for (m, bytes) in &tensors {
            let e = sharded.entry(&m.name).unwrap();
            assert_eq!(&*sharded.bytes_checked(e).unwrap(), &bytes[..]);
        }
        assert_eq!(sharded.metadata().user["format"], "pt");
    }
    // Merging gives back the same tensors, bit for bit.
    let merged = dir.path().join("merged.safetensors");
    let sharded = Model::open(&out, OpenOptions::default()).unwrap();
    convert(
        &sharded,
        &merged,
        &ConvertOptions {
            kind: OutputKind::Safetensors,
            dtype: None,
            force: false,
            ..Default::default()
        },
        &|_| {},
    )
    .unwrap();
    let merged = Model::open(&merged, OpenOptions::default()).unwrap();
    for (m, bytes) in &tensors {
        assert_eq!(
            &*merged
                .bytes_checked(merged.entry(&m.name).unwrap())
                .unwrap(),
            &bytes[..]
        );
    }
}

fn sharded_fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_model(&path, 4);
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let out = dir.path().join("sharded");
    shard(&model, &out, 250);
    (dir, out)
}

fn edit_index(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(INDEX_NAME);
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    f(&mut index);
    std::fs::write(&p, serde_json::to_vec(&index).unwrap()).unwrap();
}

fn open_err(dir: &Path) -> String {
    match Model::open(dir, OpenOptions::default()) {
        Ok(_) => panic!("opened a broken checkpoint"),
        Err(e) => {
            assert!(e.to_string().contains(INDEX_NAME), "names the index: {e}");
            e.to_string()
        }
    }
}

#[test]
fn index_and_shards_that_disagree_are_clear_errors() {
    let (_d, out) = sharded_fixture();
    edit_index(&out, |i| {
        i["weight_map"]["t0"] = "model-00002-of-00002.safetensors".into()
    });
    assert!(
        open_err(&out)
            .contains("index puts `t0` in `model-00002-of-00002.safetensors`, but it is in")
    );

    let (_d, out) = sharded_fixture();
    edit_index(&out, |i| {
        i["weight_map"]["ghost"] = "model-00001-of-00002.safetensors".into()
    });
    assert!(open_err(&out).contains("`ghost`"));

    let (_d, out) = sharded_fixture();
    std::fs::remove_file(out.join("model-00002-of-00002.safetensors")).unwrap();
    assert!(open_err(&out).contains("shard `model-00002-of-00002.safetensors` is missing"));

    let (_d, out) = sharded_fixture();
    // A wrong total_size opens, with a warning that verify fails on.
    edit_index(&out, |i| i["metadata"]["total_size"] = 12345.into());
    let model = Model::open(&out, OpenOptions::default()).unwrap();
    let warnings: Vec<String> = model.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("total_size is 12345 but the shards hold 400 bytes"));
    let report = model.verify(&Default::default()).unwrap();
    assert!(!report.ok);
    assert_eq!(report.warnings, warnings);

    let (_d, out) = sharded_fixture();
    edit_index(&out, |i| {
        i["weight_map"].as_object_mut().unwrap().remove("t3");
    });
    assert!(open_err(&out).contains("which the index does not list"));

    let (_d, out) = sharded_fixture();
    edit_index(&out, |i| {
        i["weight_map"]["t0"] = "../escape.safetensors".into()
    });
    assert!(open_err(&out).contains("not a file name inside the checkpoint folder"));

    // The same tensor in two shards.
    let (_d, out) = sharded_fixture();
    let one = Model::open(
        out.join("model-00001-of-00002.safetensors"),
        OpenOptions::default(),
    )
    .unwrap();
    let two = out.join("model-00002-of-00002.safetensors");
    let mut tensors: Vec<(TensorMeta, Vec<u8>)> = Vec::new();
    for m in [&one, &Model::open(&two, OpenOptions::default()).unwrap()] {
        for e in m.entries() {
            tensors.push((e.meta.clone(), m.bytes(e).unwrap().into_owned()));
        }
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    std::fs::remove_file(&two).unwrap();
    write_safetensors(
        std::fs::File::create(&two).unwrap(),
        &refs,
        &Default::default(),
    )
    .unwrap();
    assert!(open_err(&out).contains("is in two shards"));
}

#[test]
fn a_json_model_past_the_memory_limit_reads_every_value_back() {
    // 11.2 MB of values, past the 8 MiB a JSON model keeps in memory: the
    // rest goes to a temporary file. Small integers make short JSON text;
    // the one-byte tensor after the big ones is read back from the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let big: Vec<f32> = (0..2_000_000).map(|i| (i % 97) as f32 - 48.0).collect();
    let ids: Vec<u8> = (0..400_000u64)
        .flat_map(|i| (i % 1000).to_le_bytes())
        .collect();
    let tensors = vec![
        (meta("a.weight", Dtype::F32, &[2000, 1000]), f32_bytes(&big)),
        (meta("b.ids", Dtype::I64, &[400_000]), ids),
        (meta("c.flag", Dtype::BOOL, &[1]), vec![1u8]),
    ];
    write_checksummed(&path, &tensors, &[]);
    let json = dir.path().join("m.json");
    let options = ConvertOptions {
        kind: OutputKind::Json,
        dtype: None,
        force: false,
        rehash: false,
        allow_overflow: false,
        keep_quantized: false,
    };
    let original = Model::open(&path, OpenOptions::default()).unwrap();
    convert(&original, &json, &options, &|_| {}).unwrap();

    let model = Model::open(&json, OpenOptions::default()).unwrap();
    assert_eq!(model.kind(), &ModelKind::Json);
    for (m, b) in &tensors {
        let e = model.entry(&m.name).unwrap();
        assert_eq!(&model.bytes_checked(e).unwrap()[..], &b[..], "{}", m.name);
        assert_eq!(model.sha256(e).unwrap(), sha256_hex(b), "{}", m.name);
        let mut chunks = Vec::new();
        model
            .for_each_chunk(e, 65_536, |c| {
                assert!(c.len() <= 65_536);
                chunks.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        assert_eq!(chunks, *b, "{}", m.name);
    }
    // Back to safetensors: the same file as converting the original.
    let (from_json, direct) = (
        dir.path().join("j.safetensors"),
        dir.path().join("d.safetensors"),
    );
    let options = ConvertOptions {
        kind: OutputKind::Safetensors,
        ..options
    };
    convert(&model, &from_json, &options, &|_| {}).unwrap();
    convert(&original, &direct, &options, &|_| {}).unwrap();
    assert_eq!(
        std::fs::read(&from_json).unwrap(),
        std::fs::read(&direct).unwrap()
    );
}
