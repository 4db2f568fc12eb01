//! PyTorch checkpoints through `Model`: every fixture's tensors read back
//! exactly as torch's `tensor.contiguous()` bytes (their sha256 is in
//! fixtures/pytorch/MANIFEST.json, written by torch), through plain reads
//! and memory maps, and converted to safetensors; hostile pickles refused.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use modeltool_format::Dtype;
use modeltool_loader::save::{ConvertOptions, OutputKind, convert};
use modeltool_loader::{LoadError, Location, Model, ModelKind, OpenOptions, TIED_PREFIX};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pytorch")
}

/// name -> (dtype, shape, sha256) per fixture, from the manifest.
type Expected = BTreeMap<String, (String, Vec<usize>, String)>;

fn manifest() -> BTreeMap<String, Expected> {
    let text = std::fs::read_to_string(fixtures().join("MANIFEST.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = BTreeMap::new();
    for (file, f) in v["files"].as_object().unwrap() {
        let mut tensors = BTreeMap::new();
        for (name, t) in f["tensors"].as_object().unwrap() {
            let shape = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_u64().unwrap() as usize)
                .collect();
            tensors.insert(
                name.clone(),
                (
                    t["dtype"].as_str().unwrap().to_owned(),
                    shape,
                    t["sha256"].as_str().unwrap().to_owned(),
                ),
            );
        }
        out.insert(file.clone(), tensors);
    }
    out
}

/// Fixtures the loader opens without options (the others are refused by
/// design: a complex dtype, a pickled module).
const READABLE: &[&str] = &[
    "big_endian.pt",
    "dtypes.pt",
    "legacy.pt",
    "legacy_dtypes.pt",
    "nested.pt",
    "no_byteorder.pt",
    "numpy_values.pt",
    "parameters.pt",
    "protocol4.pt",
    "protocol5.pt",
    "renamed_folder.pt",
    "tar.pt",
    "tied.pt",
    "torchscript.pt",
    "views.pt",
];

fn check_model(model: &Model, expected: &Expected, what: &str) {
    let names: Vec<&str> = model
        .entries()
        .iter()
        .map(|e| e.meta.name.as_str())
        .collect();
    assert_eq!(
        names.len(),
        expected.len(),
        "{what}: tensors {names:?} vs {:?}",
        expected.keys()
    );
    for (name, (dtype, shape, sha)) in expected {
        let e = model
            .entry(name)
            .unwrap_or_else(|_| panic!("{what}: no `{name}`"));
        assert_eq!(e.meta.dtype.to_string(), *dtype, "{what}: {name} dtype");
        assert_eq!(&e.meta.shape, shape, "{what}: {name} shape");
        assert_eq!(&model.sha256(e).unwrap(), sha, "{what}: {name} bytes");
        let whole = model.bytes(e).unwrap();
        assert_eq!(
            &modeltool_format::sha256_hex(&whole),
            sha,
            "{what}: {name} bytes (whole)"
        );
    }
}

#[test]
fn every_fixture_reads_as_torch_contiguous_bytes_plain_and_mapped() {
    let manifest = manifest();
    #[expect(unsafe_code, reason = "opting in to memory maps")]
    // SAFETY: nothing truncates or rewrites the fixtures while this test runs.
    unsafe {
        modeltool_loader::allow_mmap()
    };
    for file in READABLE {
        for mmap in [false, true] {
            let path = fixtures().join(file);
            let model = Model::open(
                &path,
                OpenOptions {
                    mmap,
                    ..OpenOptions::default()
                },
            )
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(model.kind(), &ModelKind::Pytorch);
            check_model(&model, &manifest[*file], &format!("{file} mmap={mmap}"));
        }
    }
}

#[test]
fn strided_and_big_endian_views_are_copied_out_contiguous_ones_are_file_ranges() {
    let views = Model::open(fixtures().join("views.pt"), OpenOptions::default()).unwrap();
    let loc = |m: &Model, n: &str| m.entry(n).unwrap().location;
    assert!(matches!(loc(&views, "transposed"), Location::Torch { .. }));
    assert!(matches!(loc(&views, "expanded"), Location::Torch { .. }));
    assert!(matches!(loc(&views, "tied_a"), Location::File { .. }));
    let Location::Torch { view, .. } = loc(&views, "transposed") else {
        unreachable!()
    };
    let v = views.torch_view(view).unwrap();
    assert_eq!(v.tensor.shape, vec![6, 4]);
    assert_eq!(v.tensor.strides, vec![1, 6]);
    let big = Model::open(fixtures().join("big_endian.pt"), OpenOptions::default()).unwrap();
    assert!(matches!(loc(&big, "tied_a"), Location::Torch { .. }));
}

#[test]
fn tied_weights_are_named_and_noted_in_the_metadata() {
    let model = Model::open(fixtures().join("tied.pt"), OpenOptions::default()).unwrap();
    assert_eq!(
        model.shared_storages(),
        &[vec!["0.weight".to_owned(), "1.weight".to_owned()]]
    );
    assert_eq!(
        model.metadata().user.get(&format!("{TIED_PREFIX}1.weight")),
        Some(&"0.weight".to_owned())
    );
    let plain = Model::open(fixtures().join("nested.pt"), OpenOptions::default()).unwrap();
    assert!(plain.shared_storages().is_empty());
}

#[test]
fn non_tensor_values_become_exact_metadata() {
    let model = Model::open(fixtures().join("nested.pt"), OpenOptions::default()).unwrap();
    let user = &model.metadata().user;
    assert!(
        !user.is_empty()
            && user
                .keys()
                .all(|k| !k.starts_with("model.encoder.0.weight")),
        "{user:?}"
    );
    let numpy = Model::open(fixtures().join("numpy_values.pt"), OpenOptions::default()).unwrap();
    assert_eq!(
        numpy.metadata().user.get("best_acc").map(String::as_str),
        Some("0.5"),
        "{:?}",
        numpy.metadata().user
    );
}

#[test]
fn conversion_to_safetensors_json_and_shards_is_bit_exact_and_keeps_tied_copies() {
    let manifest = manifest();
    let dir = tempfile::tempdir().unwrap();
    for file in READABLE {
        let model = Model::open(fixtures().join(file), OpenOptions::default()).unwrap();
        let outputs = [
            ("st.safetensors", OutputKind::Safetensors),
            ("j.json", OutputKind::Json),
            (
                "shards",
                OutputKind::Sharded {
                    max_shard_size: 256,
                },
            ),
        ];
        for (suffix, kind) in outputs {
            if kind == OutputKind::Json
                && model.entries().iter().any(|e| {
                    !matches!(
                        e.meta.dtype,
                        Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16
                    )
                })
            {
                // JSON model files hold the dtypes a network computes with.
                continue;
            }
            let out = dir.path().join(format!("{file}.{suffix}"));
            let options = ConvertOptions {
                kind,
                ..ConvertOptions::default()
            };
            convert(&model, &out, &options, &|_| {}).unwrap_or_else(|e| panic!("{file}: {e}"));
            let back = Model::open(&out, OpenOptions::default()).unwrap();
            check_model(&back, &manifest[*file], &format!("{file} -> {suffix}"));
            let report = back
                .verify(&modeltool_loader::VerifyOptions::default())
                .unwrap();
            assert!(report.ok, "{file} -> {suffix}: {report:?}");
            assert_eq!(report.verified, back.entries().len(), "checksums written");
            for group in model.shared_storages() {
                for name in &group[1..] {
                    assert_eq!(
                        back.metadata().user.get(&format!("{TIED_PREFIX}{name}")),
                        Some(&group[0]),
                        "{file} -> {suffix}"
                    );
                }
            }
        }
    }
}

#[test]
fn verify_checks_zip_crcs_and_says_there_are_no_tensor_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tied.pt");
    let mut bytes = std::fs::read(fixtures().join("tied.pt")).unwrap();
    let model = Model::open(fixtures().join("tied.pt"), OpenOptions::default()).unwrap();
    let report = model
        .verify(&modeltool_loader::VerifyOptions::default())
        .unwrap();
    assert!(report.ok, "{report:?}");
    assert!(report.container_damage.is_empty());
    assert!(report.notes[0].contains("no per-tensor checksums"));
    // Flip one byte of the tensor data: the structure is intact, the CRC is not.
    let e = model.entry("0.weight").unwrap();
    let at = e.offset().unwrap() as usize;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let damaged = Model::open(&path, OpenOptions::default()).unwrap();
    let report = damaged
        .verify(&modeltool_loader::VerifyOptions::default())
        .unwrap();
    assert!(!report.ok);
    assert_eq!(report.container_damage.len(), 1, "{report:?}");
    assert!(report.container_damage[0].contains("CRC-32"));
}

#[test]
fn hostile_pickles_are_refused_naming_the_call_even_when_allowed() {
    for file in ["hostile_system.pt", "hostile_eval.pt", "hostile_legacy.pt"] {
        for allow in [
            vec![],
            vec!["posix.system".to_owned(), "builtins.eval".to_owned()],
        ] {
            let err = Model::open(
                fixtures().join(file),
                OpenOptions {
                    allow_globals: allow,
                    ..OpenOptions::default()
                },
            )
            .expect_err(file);
            assert!(matches!(err, LoadError::Pytorch { .. }), "{file}: {err:?}");
            let text = err.to_string();
            assert!(
                text.contains("posix.system") || text.contains("builtins.eval"),
                "{text}"
            );
        }
    }
}

#[test]
fn an_allowed_class_is_read_as_data_and_its_parameters_found() {
    let path = fixtures().join("whole_module.pt");
    let err = Model::open(&path, OpenOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("torch.nn.modules.linear.Linear"),
        "{err}"
    );
    let model = Model::open(
        &path,
        OpenOptions {
            allow_globals: vec!["torch.nn.modules.linear.Linear".into()],
            ..OpenOptions::default()
        },
    )
    .unwrap();
    // Found in the module's state, named by their path in it.
    let expected: Expected = manifest()["whole_module.pt"]
        .iter()
        .map(|(k, v)| (format!("_parameters.{k}"), v.clone()))
        .collect();
    check_model(&model, &expected, "whole_module.pt");
}

#[test]
fn a_folder_of_pytorch_shards_opens_through_its_index() {
    let manifest = manifest();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = "pytorch_model-00001-of-00002.bin";
    let b = "pytorch_model-00002-of-00002.bin";
    std::fs::copy(fixtures().join("nested.pt"), d.join(a)).unwrap();
    std::fs::copy(fixtures().join("legacy_dtypes.pt"), d.join(b)).unwrap();
    let mut expected = manifest["nested.pt"].clone();
    expected.extend(manifest["legacy_dtypes.pt"].clone());
    let weight_map: BTreeMap<&String, &str> = manifest["nested.pt"]
        .keys()
        .map(|k| (k, a))
        .chain(manifest["legacy_dtypes.pt"].keys().map(|k| (k, b)))
        .collect();
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        d.join(modeltool_loader::PYTORCH_INDEX_NAME),
        index.to_string(),
    )
    .unwrap();
    let model = Model::open(d, OpenOptions::default()).unwrap();
    assert!(matches!(model.kind(), ModelKind::Sharded { .. }));
    assert_eq!(model.files().len(), 2);
    check_model(&model, &expected, "pytorch shards");
    assert!(model.is_pytorch());

    // The folder is the boundary, as for safetensors shards.
    let outside = tempfile::tempdir().unwrap();
    std::fs::rename(d.join(b), outside.path().join(b)).unwrap();
    std::os::unix::fs::symlink(outside.path().join(b), d.join(b)).unwrap();
    let err = Model::open(d, OpenOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::OutsideFolder { .. }), "{err}");
}
