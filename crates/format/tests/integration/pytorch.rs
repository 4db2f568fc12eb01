//! PyTorch checkpoints written by real torch (fixtures/pytorch, made by
//! make.py): every tensor's contiguous bytes must hash to what torch's
//! `tensor.contiguous()` gave when the fixture was made (MANIFEST.json), and
//! views, shared storages, metadata, containers and byte order must come out
//! as torch sees them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modeltool_format::pytorch::{
    ByteOrder, Container, PickleError, PytorchError, PytorchFile, TorchArchive, Value, zip,
};
use modeltool_format::{Dtype, sha256_hex};

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pytorch")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Fixtures that are refused on purpose (see their tests).
pub const REFUSED: [&str; 2] = ["complex.pt", "whole_module.pt"];

fn manifest() -> serde_json::Value {
    serde_json::from_slice(&fixture("MANIFEST.json")).unwrap()
}

fn parse(name: &str) -> (Vec<u8>, PytorchFile) {
    let bytes = fixture(name);
    let file = PytorchFile::parse(&bytes, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    (bytes, file)
}

/// Every tensor of `name`: the names, dtypes, shapes and contiguous bytes
/// torch recorded in MANIFEST.json, no more, no fewer.
fn check_against_manifest(name: &str) -> (Vec<u8>, PytorchFile) {
    let (bytes, file) = parse(name);
    let m = manifest();
    let expected = m["files"][name]["tensors"]
        .as_object()
        .unwrap_or_else(|| panic!("{name} is not in MANIFEST.json"));
    let ours: BTreeMap<&str, _> = file
        .checkpoint
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    assert_eq!(
        ours.keys().copied().collect::<Vec<_>>(),
        expected.keys().map(String::as_str).collect::<Vec<_>>(),
        "{name}: tensor names"
    );
    for (tname, want) in expected {
        let t = ours[tname.as_str()];
        assert_eq!(t.dtype.name(), want["dtype"], "{name}: dtype of {tname}");
        let shape: Vec<usize> = serde_json::from_value(want["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{name}: shape of {tname}");
        let data = file.tensor_bytes(&bytes, t).unwrap();
        assert_eq!(data.len(), t.byte_len());
        assert_eq!(
            sha256_hex(&data),
            want["sha256"],
            "{name}: bytes of {tname} differ from torch's contiguous()"
        );
    }
    (bytes, file)
}

#[test]
fn every_fixture_matches_torch_byte_for_byte() {
    let m = manifest();
    let files = m["files"].as_object().unwrap();
    assert!(
        files.len() >= 14,
        "MANIFEST.json lists {} files",
        files.len()
    );
    for name in files.keys() {
        if REFUSED.contains(&name.as_str()) {
            continue;
        }
        check_against_manifest(name);
    }
}

#[test]
fn nested_dicts_name_tensors_by_path_and_keep_other_values_exact() {
    let (_, file) = check_against_manifest("nested.pt");
    assert_eq!(file.container, Container::Zip);
    let names: Vec<&str> = file
        .checkpoint
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "model.encoder.0.weight",
            "model.encoder.0.bias",
            "model.encoder.1.scale"
        ]
    );
    let meta: BTreeMap<&str, &Value> = file
        .checkpoint
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert_eq!(meta["epoch"], &Value::Int(7));
    assert_eq!(meta["best"], &Value::Float(0.125));
    assert_eq!(meta["name"], &Value::Str("tiny \u{e9}".into()));
    assert_eq!(meta["flags.0"], &Value::Bool(true));
    assert_eq!(meta["flags.1"], &Value::None);
    assert_eq!(meta["flags.2.1"], &Value::Int(2));
    assert_eq!(meta["optimizer.lr"], &Value::Float(0.001));
    assert_eq!(meta["optimizer.betas.1"], &Value::Float(0.999));
    assert_eq!(meta["optimizer.step"], &Value::Int(1 << 40));
    // JSON rendering of a value for --format json stays exact.
    assert_eq!(
        serde_json::to_string(meta["optimizer.lr"]).unwrap(),
        "0.001"
    );
}

#[test]
fn views_are_made_contiguous_and_shared_storages_are_reported() {
    let (_, file) = check_against_manifest("views.pt");
    let c = &file.checkpoint;
    let t = c.tensor("transposed").unwrap();
    assert_eq!(
        (t.shape.clone(), t.strides.clone()),
        (vec![6, 4], vec![1, 6])
    );
    assert!(!t.is_contiguous());
    let s = c.tensor("sliced").unwrap();
    assert_eq!(s.storage_offset, 8);
    let e = c.tensor("expanded").unwrap();
    assert_eq!(e.strides, vec![1, 0]);
    assert!(c.tensor("tied_a").unwrap().is_contiguous());
    assert_eq!(c.tensor("tied_b").unwrap().storage_offset, 4);
    assert_eq!(c.tensor("empty").unwrap().byte_len(), 0);
    assert_eq!(c.tensor("scalar").unwrap().shape, Vec::<usize>::new());
    let shared = c.shared_storages();
    let tied = shared
        .iter()
        .find(|(_, names)| names.contains(&"tied_a".to_owned()))
        .expect("tied_a shares its storage");
    assert_eq!(tied.1, ["tied_a", "tied_b", "tied_c"]);
    // base's views share base's storage.
    assert!(
        shared
            .iter()
            .any(|(_, n)| n.contains(&"transposed".to_owned()) && n.contains(&"sliced".to_owned()))
    );
}

#[test]
fn tied_weights_of_a_state_dict_share_one_storage() {
    let (_, file) = check_against_manifest("tied.pt");
    assert_eq!(
        file.checkpoint.shared_storages()[0].1,
        ["0.weight", "1.weight"]
    );
}

#[test]
fn every_dtype_torch_and_safetensors_share_is_read() {
    let (_, file) = check_against_manifest("dtypes.pt");
    let dtypes: std::collections::BTreeSet<Dtype> =
        file.checkpoint.tensors.iter().map(|t| t.dtype).collect();
    for d in [
        Dtype::F64,
        Dtype::F32,
        Dtype::F16,
        Dtype::BF16,
        Dtype::I64,
        Dtype::I32,
        Dtype::I16,
        Dtype::I8,
        Dtype::U8,
        Dtype::U16,
        Dtype::U32,
        Dtype::U64,
        Dtype::BOOL,
        Dtype::F8_E4M3,
        Dtype::F8_E5M2,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
        Dtype::F8_E8M0,
    ] {
        assert!(dtypes.contains(&d), "{d} missing");
    }
}

#[test]
fn complex_tensors_are_refused_by_name() {
    let bytes = fixture("complex.pt");
    match PytorchFile::parse(&bytes, &[]) {
        Err(PytorchError::UnsupportedDtype { tensor, dtype }) => {
            assert_eq!(tensor, "z");
            assert!(dtype.contains("Complex"), "{dtype}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_pickled_module_object_is_refused_naming_its_class_unless_allowed() {
    let bytes = fixture("whole_module.pt");
    let e = PytorchFile::parse(&bytes, &[]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("`torch.nn.modules.linear.Linear`"), "{msg}");
    // The library's message names no flag of any program; the error says
    // the class could be allowed, for a caller to word how.
    assert!(
        matches!(
            e,
            PytorchError::Pickle {
                source: PickleError::Forbidden {
                    allowable: true,
                    ..
                },
                ..
            }
        ),
        "{e:?}"
    );
    // Allowed as opaque data, the module's parameters are found in its state.
    let allow = ["torch.nn.modules.linear.Linear".to_owned()];
    let file = PytorchFile::parse(&bytes, &allow).unwrap();
    let mut names: Vec<&str> = file
        .checkpoint
        .tensors
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["_parameters.bias", "_parameters.weight"]);
}

#[test]
fn legacy_stream_reads_the_same_tensors_as_zip() {
    // burn #4896: a legacy file read with the zip rules gave wrong weights.
    let (legacy_bytes, legacy) = check_against_manifest("legacy.pt");
    assert_eq!(legacy.container, Container::Legacy);
    let (zip_bytes, zip) = parse("views.pt");
    for t in &zip.checkpoint.tensors {
        let l = legacy.checkpoint.tensor(&t.name).unwrap();
        assert_eq!(
            legacy.tensor_bytes(&legacy_bytes, l).unwrap(),
            zip.tensor_bytes(&zip_bytes, t).unwrap(),
            "{}",
            t.name
        );
    }
    check_against_manifest("legacy_dtypes.pt");
}

#[test]
fn big_endian_checkpoints_are_byte_swapped_on_read() {
    let (_, file) = check_against_manifest("big_endian.pt");
    assert_eq!(file.byte_order, ByteOrder::Big);
    let (_, little) = parse("views.pt");
    assert_eq!(little.byte_order, ByteOrder::Little);
    let (_, none) = check_against_manifest("no_byteorder.pt");
    assert_eq!(none.byte_order, ByteOrder::Little);
}

#[test]
fn any_top_folder_name_is_accepted() {
    let (bytes, file) = check_against_manifest("renamed_folder.pt");
    let dir = file.directory.as_ref().unwrap();
    let archive = TorchArchive::from_directory(dir).unwrap();
    assert_eq!(archive.prefix, "weights/");
    file.check_crc(&bytes).unwrap();
}

#[test]
fn torchscript_parameters_are_read_from_module_attributes() {
    let (_, file) = check_against_manifest("torchscript.pt");
    assert!(file.torchscript);
    let meta: BTreeMap<&str, &Value> = file
        .checkpoint
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert_eq!(meta["training"], &Value::Bool(true));
    assert_eq!(meta["fc.training"], &Value::Bool(true));
}

#[test]
fn numpy_scalars_are_read_as_numbers() {
    let (_, file) = check_against_manifest("numpy_values.pt");
    let meta: BTreeMap<&str, &Value> = file
        .checkpoint
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    assert_eq!(meta["best_acc"], &Value::Float(0.5));
    assert_eq!(meta["step"], &Value::Int(-3));
    assert_eq!(meta["f32"], &Value::Float(1.5));
    assert_eq!(meta["flag"], &Value::Bool(true));
    // A dtype stays an object (data, never made).
    assert!(
        matches!(meta["kind"], Value::Object(_)),
        "{:?}",
        meta["kind"]
    );
}

#[test]
fn parameters_are_marked() {
    let (_, file) = check_against_manifest("parameters.pt");
    assert!(file.checkpoint.tensor("p").unwrap().parameter);
    assert!(!file.checkpoint.tensor("buf").unwrap().parameter);
}

#[test]
fn crc_of_every_entry_matches_and_a_flipped_byte_is_caught() {
    let (mut bytes, file) = parse("views.pt");
    file.check_crc(&bytes).unwrap();
    let r = file.storages["0"].clone();
    bytes[r.start as usize] ^= 1;
    match file.check_crc(&bytes) {
        Err(PytorchError::ZipCrc { name, .. }) => assert_eq!(name, "views/data/0"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reader_of_ranges_needs_only_the_tail_directory_pickle_and_its_storage() {
    // What a loader over HTTP ranges or a big file does: read the tail,
    // the directory, data.pkl, and one tensor's bytes; count what it read.
    let bytes = fixture("views.pt");
    let len = bytes.len() as u64;
    let mut read = 0u64;
    let mut reads = Vec::new();
    let mut fetch = |r: std::ops::Range<u64>| {
        read += r.end - r.start;
        reads.push(r.end - r.start);
        bytes[r.start as usize..r.end as usize].to_vec()
    };
    let tail_start = len.saturating_sub(zip::TAIL_LEN);
    let end = zip::EndRecord::find(&fetch(tail_start..len), tail_start, len).unwrap();
    let dir = zip::Directory::parse(&fetch(end.offset..end.offset + end.len), &end).unwrap();
    let archive = TorchArchive::from_directory(&dir).unwrap();
    let e = &archive.data_pkl;
    let prefix = fetch(e.header_offset..e.header_offset + e.local_prefix_len() as u64);
    let pkl = fetch(e.data_range(&prefix).unwrap());
    let c = archive.read_checkpoint(&pkl, &[]).unwrap();
    archive.check_storages(&dir, &c).unwrap();
    let t = c.tensor("tied_b").unwrap();
    let se = archive.storage_entry(&dir, &t.storage).unwrap();
    let prefix = fetch(se.header_offset..se.header_offset + se.local_prefix_len() as u64);
    let data = se.data_range(&prefix).unwrap();
    let r = t.storage_range();
    let got = t
        .contiguous_bytes(
            &fetch(data.start + r.start..data.start + r.end),
            ByteOrder::Little,
        )
        .unwrap();
    // tied_b is elements 4..10 of a 10-element f32 storage: 24 bytes read.
    assert_eq!(reads.last(), Some(&24));
    assert_eq!(
        reads.len(),
        6,
        "tail, directory, 2 local headers, data.pkl, the view"
    );
    assert!(read > 0);
    let (b2, f2) = parse("views.pt");
    assert_eq!(got, f2.tensor_bytes(&b2, t).unwrap());
}

#[test]
fn a_legacy_stream_can_be_read_from_its_head_and_checked_storage_by_storage() {
    use modeltool_format::pytorch::LegacyFile;
    let bytes = fixture("legacy.pt");
    let whole = LegacyFile::parse(&bytes, &[]).unwrap();
    let len = bytes.len() as u64;
    // Grow the head until the pickles fit, as a reader of ranges would
    // (by doubling; by 16 bytes here, to stop just past the pickles).
    let mut have = 64usize;
    let head = loop {
        match LegacyFile::parse_head(&bytes[..have], len, &[]) {
            Ok(h) => break h,
            Err(PytorchError::LegacyHeadShort { have: h }) => {
                assert_eq!(h, have as u64);
                have += 16;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(have < bytes.len());
    assert_eq!(head.storages, whole.storages);
    assert_eq!(head.checkpoint, whole.checkpoint);
    assert!(!head.unchecked.is_empty());
    for (key, at, _) in &head.unchecked {
        let at = *at as usize;
        head.check_count(key, &bytes[at..at + 8]).unwrap();
        assert!(matches!(
            head.check_count(key, &[0xff; 8]),
            Err(PytorchError::LegacyStorage { .. })
        ));
    }
}
