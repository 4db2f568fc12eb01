//! Our safetensors writer against our parser and the reference `safetensors`
//! crate, and files the reference crate writes against our parser.

use std::collections::{BTreeMap, HashMap};

use modeltool_format::{
    Checksum, Dtype, Header, Layout, ModelMetadata, TensorMeta, keys, sha256_hex, write_safetensors,
};
use proptest::prelude::*;
use safetensors::SafeTensors;
use safetensors::tensor::TensorView;

use crate::common::{Sample, any_tensors, noise};

fn write(samples: &[Sample], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let tensors: Vec<(TensorMeta, &[u8])> = samples
        .iter()
        .map(|s| (s.meta.clone(), &s.data[..]))
        .collect();
    let mut out = Vec::new();
    write_safetensors(&mut out, &tensors, metadata).expect("valid tensors");
    out
}

fn their_dtype(d: Dtype) -> safetensors::Dtype {
    serde_json::from_value(serde_json::Value::String(d.name().to_owned()))
        .expect("the reference crate knows every dtype")
}

/// Checks a file we wrote: our parser and the reference crate both read it,
/// agree on every tensor, find the bytes given, and every tensor starts at
/// an absolute file offset that is a multiple of its dtype's alignment.
fn check_written(samples: &[Sample], metadata: &BTreeMap<String, String>, bytes: &[u8]) {
    let header = Header::from_file_bytes(bytes).expect("our parser reads our file");
    assert_eq!(header.data_start() % 8, 0, "(8 + header_len) % 8 == 0");
    assert_eq!(header.metadata, *metadata);
    assert_eq!(header.tensors.len(), samples.len());
    assert_eq!(header.data_start() + header.data_len(), bytes.len() as u64);

    let theirs = SafeTensors::deserialize(bytes)
        .unwrap_or_else(|e| panic!("the reference crate rejects our file: {e:?}"));
    let (n, their_meta) = SafeTensors::read_metadata(bytes).expect("read above");
    assert_eq!(n as u64, header.header_len);
    let their_user: Option<BTreeMap<String, String>> = their_meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    assert_eq!(their_user.unwrap_or_default(), *metadata);
    assert_eq!(theirs.len(), samples.len());

    for s in samples {
        let info = header
            .tensors
            .iter()
            .find(|t| t.meta.name == s.meta.name)
            .expect("every tensor is in the header");
        assert_eq!(info.meta, s.meta);
        let start = header.data_start() + info.data_offsets.0;
        assert_eq!(
            start % s.meta.dtype.alignment() as u64,
            0,
            "`{}` ({}) starts at byte {start}",
            s.meta.name,
            s.meta.dtype
        );
        let ours = &bytes[start as usize..(header.data_start() + info.data_offsets.1) as usize];
        assert_eq!(ours, &s.data[..], "our view of `{}`", s.meta.name);

        let view = theirs
            .tensor(&s.meta.name)
            .expect("the reference crate finds every tensor");
        assert_eq!(view.dtype().to_string(), s.meta.dtype.name());
        assert_eq!(view.dtype(), their_dtype(s.meta.dtype));
        assert_eq!(view.shape(), &s.meta.shape[..]);
        assert_eq!(
            view.data(),
            &s.data[..],
            "the reference crate's view of `{}`",
            s.meta.name
        );
        let their_info = their_meta.info(&s.meta.name).expect("present");
        assert_eq!(
            their_info.data_offsets,
            (info.data_offsets.0 as usize, info.data_offsets.1 as usize)
        );
    }
}

#[test]
fn every_dtype_loads_in_the_reference_crate() {
    let samples: Vec<Sample> = Dtype::ALL
        .into_iter()
        .enumerate()
        .map(|(i, dtype)| {
            // Odd counts where allowed, so sizes do not happen to be aligned.
            let count = match dtype.bits() {
                4 => 6,
                6 => 12,
                _ => 2 * i + 1,
            };
            let len = dtype.byte_len(count).expect("whole bytes");
            let mut data = noise(len, i as u64 + 3);
            if dtype == Dtype::BOOL {
                data.iter_mut().for_each(|b| *b &= 1);
            }
            Sample::new(
                &format!("t.{}", dtype.name().to_lowercase()),
                dtype,
                &[count],
                data,
            )
        })
        .collect();
    let bytes = write(&samples, &BTreeMap::new());
    check_written(&samples, &BTreeMap::new(), &bytes);
}

#[test]
fn mixed_odd_sizes_stay_aligned() {
    let samples = [
        Sample::new("a.u8", Dtype::U8, &[3], vec![1, 2, 3]),
        Sample::new("b.f16", Dtype::F16, &[5], noise(10, 1)),
        Sample::new("c.f32", Dtype::F32, &[7], noise(28, 2)),
        Sample::new("d.f64", Dtype::F64, &[3], noise(24, 3)),
        Sample::new("e.u8", Dtype::U8, &[1], vec![9]),
        Sample::new("f.f32", Dtype::F32, &[1, 1], noise(4, 4)),
        Sample::new("g.f16", Dtype::F16, &[], noise(2, 5)),
        Sample::new("h.f64", Dtype::F64, &[0], vec![]),
        Sample::new("i.c64", Dtype::C64, &[1], noise(8, 6)),
        Sample::new("j.f4", Dtype::F4, &[2], vec![0x21]),
    ];
    // Header lengths that need 0..7 bytes of padding.
    for extra in 0..8 {
        let metadata: BTreeMap<String, String> = [("pad".to_owned(), "x".repeat(extra))]
            .into_iter()
            .collect();
        let bytes = write(&samples, &metadata);
        check_written(&samples, &metadata, &bytes);
    }
}

proptest! {
    #[test]
    fn random_tensors_load_in_both_parsers(samples in any_tensors(), note in "[a-z\u{e9}\"\\\\ ]{0,9}") {
        let metadata: BTreeMap<String, String> = [("note".to_owned(), note)].into_iter().collect();
        let bytes = write(&samples, &metadata);
        check_written(&samples, &metadata, &bytes);
    }

    #[test]
    fn files_the_reference_crate_writes_parse_with_the_same_offsets(samples in any_tensors(), with_metadata in any::<bool>()) {
        let views: Vec<(String, TensorView<'_>)> = samples
            .iter()
            .map(|s| {
                let view = TensorView::new(their_dtype(s.meta.dtype), s.meta.shape.clone(), &s.data).expect("valid view");
                (s.meta.name.clone(), view)
            })
            .collect();
        let metadata: Option<HashMap<String, String>> =
            with_metadata.then(|| [("framework".to_owned(), "pt".to_owned())].into_iter().collect());
        let bytes = safetensors::serialize(views, metadata.clone()).expect("the reference crate writes");
        let ours = Header::from_file_bytes(&bytes).unwrap_or_else(|e| panic!("we reject the reference crate's file: {e}"));
        let (n, theirs) = SafeTensors::read_metadata(&bytes).expect("it reads its own file");
        prop_assert_eq!(ours.header_len, n as u64);
        prop_assert_eq!(ours.tensors.len(), samples.len());
        let expected_metadata: BTreeMap<String, String> = metadata.unwrap_or_default().into_iter().collect();
        prop_assert_eq!(&ours.metadata, &expected_metadata);
        for t in &ours.tensors {
            let info = theirs.info(&t.meta.name).expect("same names");
            prop_assert_eq!(t.data_offsets, (info.data_offsets.0 as u64, info.data_offsets.1 as u64));
            prop_assert_eq!(t.meta.dtype.name(), info.dtype.to_string());
            prop_assert_eq!(&t.meta.shape, &info.shape);
            let s = samples.iter().find(|s| s.meta.name == t.meta.name).expect("same names");
            let start = (ours.data_start() + t.data_offsets.0) as usize;
            prop_assert_eq!(&bytes[start..start + s.data.len()], &s.data[..]);
        }
    }
}

#[test]
fn model_metadata_round_trips_through_dunder_metadata() {
    let a = noise(12, 1);
    let b = noise(3, 2);
    let samples = [
        Sample::new("enc.w", Dtype::F32, &[3], a.clone()),
        Sample::new("enc.b", Dtype::U8, &[3], b.clone()),
    ];
    let mut meta = ModelMetadata::default();
    meta.user.insert("license".into(), "MIT".into());
    meta.user.insert("format".into(), "pt".into());
    meta.checksums.insert("enc.w".into(), Checksum::of(&a));
    meta.checksums.insert("enc.b".into(), Checksum::of(&b));
    meta.architecture =
        Some(serde_json::json!({"kind": "mlp", "layers": [3, 1], "nested": {"eps": 1e-5}}));

    let stored = meta.to_safetensors();
    assert_eq!(
        stored[&format!("{}enc.w", keys::SHA256_PREFIX)],
        sha256_hex(&a)
    );
    assert!(stored.contains_key(keys::ARCHITECTURE));
    assert_eq!(stored["license"], "MIT");

    let bytes = write(&samples, &stored);
    check_written(&samples, &stored, &bytes);
    let header = Header::from_file_bytes(&bytes).expect("valid");
    let back = ModelMetadata::from_safetensors(header.metadata).expect("valid metadata");
    assert_eq!(back, meta);
    // The reference crate sees plain strings.
    let (_, theirs) = SafeTensors::read_metadata(&bytes).expect("valid");
    let theirs = theirs.metadata().as_ref().expect("metadata present");
    assert_eq!(theirs["modeltool.sha256.enc.b"], sha256_hex(&b));
}

#[test]
fn empty_metadata_and_no_tensors() {
    let bytes = write(&[], &BTreeMap::new());
    let h = Header::from_file_bytes(&bytes).expect("valid");
    assert!(h.tensors.is_empty() && h.metadata.is_empty());
    assert_eq!(bytes.len() % 8, 0);
    assert_eq!(SafeTensors::deserialize(&bytes).expect("valid").len(), 0);
    assert_eq!(
        ModelMetadata::from_safetensors(h.metadata).expect("empty"),
        ModelMetadata::default()
    );
}

#[test]
fn layout_streams_the_same_file_as_write_safetensors() {
    let samples = [
        Sample::new("z", Dtype::U8, &[3], vec![1, 2, 3]),
        Sample::new("y", Dtype::F64, &[2], noise(16, 9)),
        Sample::new("x", Dtype::F16, &[1], noise(2, 8)),
    ];
    let metas: Vec<TensorMeta> = samples.iter().map(|s| s.meta.clone()).collect();
    let layout = Layout::new(&metas, &BTreeMap::new()).expect("valid");
    let mut streamed = layout.header.clone();
    for &i in &layout.order {
        assert_eq!(
            layout.offsets[i].0,
            streamed.len() as u64 - layout.header.len() as u64
        );
        streamed.extend_from_slice(&samples[i].data);
    }
    assert_eq!(layout.file_len(), streamed.len() as u64);
    assert_eq!(streamed, write(&samples, &BTreeMap::new()));
    // Largest alignment first.
    let order: Vec<&str> = layout
        .order
        .iter()
        .map(|&i| samples[i].meta.name.as_str())
        .collect();
    assert_eq!(order, ["y", "x", "z"]);
}
