//! What `Model::open` accepts and how it refuses the rest: files told by
//! their first bytes, only regular files, the checkpoint folder as the
//! boundary, complete checksum sets, and the verify report.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use std::path::Path;
use std::process::Command;

use modeltool_format::{
    Checksum, Dtype, FileKind, ModelMetadata, TensorMeta, sha256_hex, write_safetensors,
    write_safetensors_with_header_sha256,
};
use modeltool_loader::{INDEX_NAME, LoadError, Model, OpenOptions, VerifyOptions};

fn meta(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
    TensorMeta {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// A safetensors file of tensors `names` (F32 [2] each), with modeltool
/// checksums for those in `summed` and a header checksum when `digest`.
fn write_st(path: &Path, names: &[&str], summed: &[&str], digest: bool) {
    let data: Vec<(TensorMeta, Vec<u8>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let b: Vec<u8> = [i as f32, 0.5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (meta(n, Dtype::F32, &[2]), b)
        })
        .collect();
    let mut md = ModelMetadata::default();
    for (m, b) in &data {
        if summed.contains(&m.name.as_str()) {
            md.checksums.insert(m.name.clone(), Checksum::of(b));
        }
    }
    let refs: Vec<(TensorMeta, &[u8])> = data.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    let f = std::fs::File::create(path).unwrap();
    if digest {
        write_safetensors_with_header_sha256(f, &refs, &md.to_safetensors()).unwrap();
    } else {
        write_safetensors(f, &refs, &md.to_safetensors()).unwrap();
    }
}

/// A checkpoint folder of `n` shards, one tensor `t{i}` each.
fn write_checkpoint(dir: &Path, n: usize) {
    let mut map = serde_json::Map::new();
    for i in 0..n {
        let shard = modeltool_loader::shard_name(i, n);
        let name = format!("t{i}");
        write_st(&dir.join(&shard), &[&name], &[], false);
        map.insert(name, shard.into());
    }
    let index = serde_json::json!({"metadata": {"total_size": 8 * n}, "weight_map": map});
    std::fs::write(dir.join(INDEX_NAME), index.to_string()).unwrap();
}

fn open_err(path: &Path) -> LoadError {
    Model::open(path, OpenOptions::default()).expect_err("refused")
}

#[test]
fn files_are_told_by_their_first_bytes_and_named_when_not_weights() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: &[(&str, &[u8], FileKind, &str)] = &[
        (
            "big.gguf",
            b"GGUF\x00\x00\x00\x03\x00\x00",
            FileKind::Gguf { byte_swapped: true },
            "big.gguf is a big-endian GGUF file; modeltool reads safetensors, GGUF (little-endian), modeltool JSON model files and Hugging Face sharded checkpoints",
        ),
        (
            "pytorch_model.bin",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
            FileKind::GitLfsPointer,
            "pytorch_model.bin is a Git LFS pointer, not the weights: run `git lfs pull`",
        ),
        (
            "config.json",
            br#"{"architectures": ["BertModel"], "model_type": "bert"}"#,
            FileKind::HfConfig,
            "config.json is a Hugging Face model config, not weights: the weights are model.safetensors",
        ),
        (
            "model.safetensors",
            b"<!DOCTYPE html><html><head><title>Sign in</title>",
            FileKind::Html,
            "model.safetensors is an HTML page saved instead of the weights",
        ),
        (
            "model.onnx",
            b"\x08\x07\x12\x07pytorch\x1a\x032.1",
            FileKind::Onnx,
            "model.onnx is an ONNX model",
        ),
        (
            "other.onnx",
            b"\x00\x01\x02\x03\xff",
            FileKind::Onnx,
            "other.onnx is an ONNX model",
        ),
        (
            "data.csv",
            b"height,weight\n170,65\n",
            FileKind::Text,
            "data.csv is a text file",
        ),
        (
            "empty.safetensors",
            b"",
            FileKind::Empty,
            "empty.safetensors is empty",
        ),
    ];
    for (name, bytes, kind, message) in cases {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = open_err(&path);
        match &err {
            LoadError::NotWeights { kind: k, .. } => assert_eq!(k, kind, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(message), "{name}: {text}");
        assert!(!text.contains('\n'), "one line: {text}");
    }
    // PyTorch checkpoints are read now (tests/pytorch.rs); cut short, the
    // reader names the damage.
    for (name, bytes, message) in [
        (
            "model.pt",
            &b"PK\x03\x04\x00\x00\x08\x00\x00\x00"[..],
            "zip: no end",
        ),
        (
            "old.pt",
            b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02",
            "legacy stream",
        ),
    ] {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = open_err(&path);
        assert!(matches!(err, LoadError::Pytorch { .. }), "{name}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(message), "{name}: {text}");
    }
}

#[test]
fn only_regular_files_are_opened() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("x.safetensors");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Opening a FIFO used to wait for a writer forever.
    let err = open_err(&fifo);
    assert!(
        matches!(err, LoadError::NotRegularFile { what, .. } if what.contains("FIFO")),
        "{err}"
    );
    let err = open_err(Path::new("/dev/zero"));
    assert!(
        matches!(
            err,
            LoadError::NotRegularFile {
                what: "a character device",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("/dev/zero: a character device, not a regular file")
    );
}

#[test]
fn a_fifo_a_device_or_a_folder_listed_as_a_shard_is_named_not_missing() {
    for what in ["fifo", "dir", "dev"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write_checkpoint(d, 2);
        let shard = d.join(modeltool_loader::shard_name(1, 2));
        std::fs::remove_file(&shard).unwrap();
        match what {
            "fifo" => assert!(
                Command::new("mkfifo")
                    .arg(&shard)
                    .status()
                    .unwrap()
                    .success()
            ),
            "dir" => std::fs::create_dir(&shard).unwrap(),
            _ => std::os::unix::fs::symlink("/dev/zero", &shard).unwrap(),
        }
        let text = open_err(d).to_string();
        let expected = match what {
            "fifo" => "is a FIFO",
            "dir" => "is a folder",
            // A symlink out of the folder is refused before it is opened.
            _ => "outside the checkpoint folder",
        };
        assert!(text.contains(expected), "{what}: {text}");
        assert!(!text.contains("missing"), "{what}: {text}");
    }
}

#[test]
fn a_shard_that_resolves_outside_the_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    write_st(
        &outside.path().join("secret.safetensors"),
        &["t1"],
        &[],
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_checkpoint(d, 2);
    let shard = d.join(modeltool_loader::shard_name(1, 2));
    std::fs::remove_file(&shard).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.safetensors"), &shard).unwrap();
    let err = open_err(d);
    assert!(matches!(err, LoadError::OutsideFolder { .. }), "{err}");

    // A shard under a symlinked subfolder too.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::os::unix::fs::symlink(outside.path(), d.join("sub")).unwrap();
    let index = serde_json::json!({"weight_map": {"t1": "sub/secret.safetensors"}});
    std::fs::write(d.join(INDEX_NAME), index.to_string()).unwrap();
    let err = open_err(d);
    assert!(matches!(err, LoadError::OutsideFolder { .. }), "{err}");

    // A symlink that stays inside is fine.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_checkpoint(d, 1);
    let shard = modeltool_loader::shard_name(0, 1);
    std::fs::rename(d.join(&shard), d.join("real.safetensors")).unwrap();
    std::os::unix::fs::symlink("real.safetensors", d.join(&shard)).unwrap();
    Model::open(d, OpenOptions::default()).unwrap();
}

/// Was "header length 7017841271895827067 exceeds the limit".
#[test]
fn an_index_that_lists_itself_as_a_shard_is_named_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let index = serde_json::json!({"weight_map": {"a": INDEX_NAME}});
    std::fs::write(d.join(INDEX_NAME), index.to_string()).unwrap();
    let text = open_err(d).to_string();
    assert!(
        text.contains(&format!(
            "shard `{INDEX_NAME}` is a Hugging Face shard index (JSON), not safetensors"
        )),
        "{text}"
    );
}

#[test]
fn a_folder_of_other_formats_says_what_it_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    std::fs::write(d.join("model.gguf"), b"GGUF").unwrap();
    std::fs::write(d.join("README.md"), b"# hi").unwrap();
    let text = open_err(d).to_string();
    assert!(
        text.contains("only model files of other formats (model.gguf, pytorch_model.bin)"),
        "{text}"
    );
    assert!(!text.contains("README"), "{text}");
}

#[test]
fn a_partial_checksum_set_is_refused_by_every_checked_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    // One checksum removed (with the header checksum, as someone hiding an
    // edit would): the other tensor's bytes are intact, yet refused.
    write_st(&path, &["a", "b"], &["a"], false);
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    for e in model.entries() {
        let err = model.bytes_checked(e).unwrap_err();
        assert!(
            matches!(err, LoadError::ChecksumsIncomplete { .. }),
            "{}: {err}",
            e.meta.name
        );
        assert!(err.is_check_failure());
        assert!(err.to_string().contains("modeltool rehash MODEL"), "{err}");
        assert!(
            err.to_string().contains("tensor `b` has no checksum"),
            "{err}"
        );
        // The unchecked read, for a deliberate rehash, still works.
        model.bytes(e).unwrap();
    }
    let report = model.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(report.missing_checksums, ["b"]);
    assert!(!report.ok);

    // All or nothing are fine.
    for summed in [&["a", "b"][..], &[]] {
        write_st(&path, &["a", "b"], summed, false);
        let model = Model::open(&path, OpenOptions::default()).unwrap();
        for e in model.entries() {
            model.bytes_checked(e).unwrap();
        }
        assert!(model.verify(&VerifyOptions::default()).unwrap().ok);
    }

    // One unchecksummed shard among checksummed ones.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_checkpoint(d, 2);
    write_st(
        &d.join(modeltool_loader::shard_name(0, 2)),
        &["t0"],
        &["t0"],
        true,
    );
    let model = Model::open(d, OpenOptions::default()).unwrap();
    let err = model.bytes_checked(model.entry("t0").unwrap()).unwrap_err();
    assert!(
        matches!(err, LoadError::ChecksumsIncomplete { .. }),
        "{err}"
    );
}

#[test]
fn verify_reports_invalid_bool_values_and_a_whole_file_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.safetensors");
    let bytes = [0u8, 1, 7, 1, 9];
    let t = meta("mask", Dtype::BOOL, &[5]);
    let mut md = ModelMetadata::default();
    md.checksums.insert("mask".into(), Checksum::of(&bytes));
    write_safetensors(
        std::fs::File::create(&path).unwrap(),
        &[(t, &bytes[..])],
        &md.to_safetensors(),
    )
    .unwrap();
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let whole = sha256_hex(&std::fs::read(&path).unwrap());
    let report = model
        .verify(&VerifyOptions {
            sha256: Some(whole.to_uppercase()),
            strict: true,
        })
        .unwrap();
    assert_eq!(report.verified, 1);
    let v = &report.invalid_values[0];
    assert_eq!(
        (v.name.as_str(), v.index, v.byte, v.count),
        ("mask", 2, 7, 2)
    );
    assert!(report.file_sha256.as_ref().unwrap().ok);
    assert!(!report.ok);
}

/// Thousands of shards open with a bounded number of open files; a shard
/// whose handle was closed and that was replaced meanwhile is detected.
#[test]
fn open_files_stay_bounded_and_a_replaced_shard_is_detected_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = modeltool_loader::MAX_OPEN_FILES * 4;
    write_checkpoint(d, n);
    let count = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let model = Model::open(d, OpenOptions::default()).unwrap();
    // Other tests of this binary run at the same time and hold some files;
    // far fewer than one per shard.
    assert!(count() < n, "{} files open for {n} shards", count());
    let report = model.verify(&VerifyOptions::default()).unwrap();
    assert!(report.ok, "{report:?}");
    assert!(count() < n, "{} files open for {n} shards", count());

    // The first shard's handle is closed by now: replace the file.
    let first = d.join(modeltool_loader::shard_name(0, n));
    let tmp = d.join("new.safetensors");
    write_st(&tmp, &["t0"], &[], false);
    std::fs::rename(&tmp, &first).unwrap();
    let err = model.bytes(model.entry("t0").unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("replaced by another file"),
        "{err}"
    );
}

/// Every `LoadError` message keeps strings from a file away from the
/// terminal: a tensor name in a format error, a shard name in an index.
#[test]
fn error_messages_escape_what_came_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = "{\"a\\u001b[2J\":{\"dtype\":\"XX\",\"shape\":[1],\"data_offsets\":[0,1]}}";
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.push(0);
    let path = d.join("bad.safetensors");
    std::fs::write(&path, bytes).unwrap();
    let text = open_err(&path).to_string();
    assert!(text.contains("a\\u{1b}[2J"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let index = serde_json::json!({"weight_map": {"t\u{202e}": "s\u{1b}[31m.safetensors"}});
    std::fs::write(d.join(INDEX_NAME), index.to_string()).unwrap();
    let text = open_err(d).to_string();
    assert!(
        text.contains("s\\u{1b}[31m.safetensors` is missing"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

/// A header of many tensors is moved into the model a slice at a time:
/// every tensor arrives once, in file order, each found by its name.
#[test]
fn a_header_of_many_tensors_opens_whole_and_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.safetensors");
    let n = 10_007;
    // Names whose sorted order is not the file order.
    let names: Vec<String> = (0..n).map(|i| format!("m{}.w", (i * 7919) % n)).collect();
    let one = [1u8];
    let tensors: Vec<(TensorMeta, &[u8])> = names
        .iter()
        .map(|name| (meta(name, Dtype::U8, &[1]), &one[..]))
        .collect();
    let f = std::fs::File::create(&path).unwrap();
    write_safetensors(f, &tensors, &Default::default()).unwrap();
    let header = modeltool_format::Header::from_file_bytes(&std::fs::read(&path).unwrap()).unwrap();

    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let got: Vec<(&str, Option<u64>)> = model
        .entries()
        .iter()
        .map(|e| (e.meta.name.as_str(), e.offset()))
        .collect();
    let want: Vec<(&str, Option<u64>)> = header
        .tensors
        .iter()
        .map(|t| {
            (
                t.meta.name.as_str(),
                Some(header.data_start() + t.data_offsets.0),
            )
        })
        .collect();
    assert_eq!(got.len(), n);
    assert_eq!(got, want);
    for name in &names {
        assert_eq!(&model.entry(name).unwrap().meta.name, name);
    }
}

/// The index's names are matched as JSON reads them (escapes decoded), and
/// a name the index lists twice is where its last listing puts it, as for
/// any JSON object read into a map.
#[test]
fn index_names_are_read_as_json_and_the_last_listing_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        modeltool_loader::shard_name(0, 2),
        modeltool_loader::shard_name(1, 2),
    );
    write_st(&dir.path().join(&a), &["caf\u{e9}", "q\"uote"], &[], false);
    write_st(&dir.path().join(&b), &["t"], &[], false);
    let index = |map: &str| {
        std::fs::write(
            dir.path().join(INDEX_NAME),
            format!(r#"{{"metadata": {{"total_size": 24}}, "weight_map": {{{map}}}}}"#),
        )
        .unwrap();
    };
    index(&format!(
        r#""caf\u00e9": "{a}", "q\"uote": "{a}", "t": "{a}", "t": "{b}""#
    ));
    let model = Model::open(dir.path(), OpenOptions::default()).unwrap();
    assert_eq!(model.entries().len(), 3);
    assert!(model.warnings().is_empty(), "{:?}", model.warnings());
    assert!(model.entry("caf\u{e9}").is_ok() && model.entry("q\"uote").is_ok());

    index(&format!(
        r#""caf\u00e9": "{a}", "q\"uote": "{a}", "t": "{b}", "t": "{a}""#
    ));
    // Shard b is then listed for nothing, so not read.
    let e = open_err(dir.path()).to_string();
    assert!(
        e.contains(&format!(
            "index puts `t` in `{a}`, but that shard does not hold it"
        )),
        "{e}"
    );
}
