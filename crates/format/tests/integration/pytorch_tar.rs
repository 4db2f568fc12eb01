//! The tar format of torch before 0.1.10: the fixture torch reads back
//! (made by fixtures/pytorch/make.py), checkpoints built here entry by
//! entry, and every kind of damage as its own typed error.

use std::borrow::Cow;
use std::ops::Range;

use modeltool_format::pytorch::{
    Container, PickleError, PytorchError, PytorchFile, TarFile, Value, sniff, tar,
};

/// A ustar header and the data of each entry, padded to 512 bytes, and the
/// two zero blocks that end an archive.
fn tar(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        out.extend(header(name, data.len() as u64, b'0'));
        out.extend(*data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.extend([0u8; 1024]);
    out
}

fn header(name: &str, size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    set_checksum(&mut h);
    h
}

fn set_checksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h[..512].iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// Pickle pieces (protocol 2).
fn int(i: u8) -> Vec<u8> {
    vec![b'K', i]
}
fn text(s: &str) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend((s.len() as u32).to_le_bytes());
    v.extend(s.as_bytes());
    v
}
fn pickle(parts: &[&[u8]]) -> Vec<u8> {
    [&b"\x80\x02"[..], &parts.concat(), b"."].concat()
}
fn tuple(items: &[&[u8]]) -> Vec<u8> {
    [&b"("[..], &items.concat(), b"t"].concat()
}
fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|i| i.to_le_bytes()).collect()
}

/// A storages entry: each (key, class, element count, bytes), then views.
fn storages(list: &[(u8, &str, i64, &[u8])], views: &[u8]) -> Vec<u8> {
    let mut v = pickle(&[&int(list.len() as u8)]);
    for (key, class, count, bytes) in list {
        let class = format!("ctorch\n{class}\n");
        v.extend(pickle(&[&tuple(&[
            &int(*key),
            &text("cpu"),
            class.as_bytes(),
        ])]));
        v.extend(count.to_le_bytes());
        v.extend(*bytes);
    }
    v.extend(views);
    v
}

fn no_views() -> Vec<u8> {
    pickle(&[b"]"])
}

/// A tensor record: key, storage key, sizes, strides, storage offset.
type TensorRecord<'a> = (u8, u8, &'a [i64], &'a [i64], i64);

/// A tensors entry of these records.
fn tensors(list: &[TensorRecord<'_>]) -> Vec<u8> {
    let mut v = pickle(&[&int(list.len() as u8)]);
    for (key, storage, sizes, strides, offset) in list {
        v.extend(pickle(&[&tuple(&[
            &int(*key),
            &int(*storage),
            b"ctorch\nFloatTensor\n",
        ])]));
        v.extend((sizes.len() as i32).to_le_bytes());
        v.extend([0; 4]);
        v.extend(i64s(sizes));
        v.extend(i64s(strides));
        v.extend(offset.to_le_bytes());
    }
    v
}

/// `{"w": <tensor 10>, "epoch": 3}`, the tensor a persistent id.
fn object() -> Vec<u8> {
    pickle(&[
        b"}(",
        &text("w"),
        &text("10"),
        b"Q",
        &text("epoch"),
        &int(3),
        b"u",
    ])
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A good checkpoint's four entries: `w` is the transpose of a 2x3 matrix
/// stored in storage 1.
fn parts() -> [(&'static str, Vec<u8>); 4] {
    let data = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    [
        (
            "sys_info",
            pickle(&[b"}", &text("little_endian"), b"\x88s"]),
        ),
        ("pickle", object()),
        ("tensors", tensors(&[(10, 1, &[3, 2], &[1, 3], 0)])),
        (
            "storages",
            storages(&[(1, "FloatStorage", 6, &data)], &no_views()),
        ),
    ]
}

fn build(parts: &[(&'static str, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<(&str, &[u8])> = parts.iter().map(|(n, d)| (*n, &d[..])).collect();
    tar(&entries)
}

fn with(name: &str, data: Vec<u8>) -> Vec<u8> {
    let mut p = parts();
    p.iter_mut().find(|(n, _)| *n == name).unwrap().1 = data;
    build(&p)
}

fn err(file: &[u8]) -> PytorchError {
    match PytorchFile::parse(file, &[]) {
        Ok(f) => panic!("accepted: {:?}", f.checkpoint),
        Err(e) => e,
    }
}

#[test]
fn the_fixture_is_a_tar_read_like_the_zip_of_the_same_views() {
    let bytes = crate::pytorch::fixture("tar.pt");
    assert_eq!(sniff(&bytes[..512]).unwrap(), Container::Tar);
    let file = PytorchFile::parse(&bytes, &[]).unwrap();
    assert_eq!(file.container, Container::Tar);
    let c = &file.checkpoint;
    // A storage view (tied_b: elements 4.. of tied_a's storage) is the
    // same storage, shared with tied_a and tied_c.
    let shared = c.shared_storages();
    assert!(
        shared.iter().any(|(_, names)| names
            == &[
                "state_dict.tied_a",
                "state_dict.tied_b",
                "state_dict.tied_c"
            ]),
        "{shared:?}"
    );
    let tied_b = c.tensor("state_dict.tied_b").unwrap();
    assert_eq!(tied_b.storage_offset, 4);
    assert_eq!(
        c.metadata,
        vec![
            ("epoch".to_owned(), Value::Int(3)),
            ("arch".to_owned(), Value::Str("tar".into())),
        ]
    );
}

#[test]
fn a_hand_made_tar_checkpoint_reads_its_strided_view() {
    let file = PytorchFile::parse(&build(&parts()), &[]).unwrap();
    let t = file.checkpoint.tensor("w").unwrap();
    assert_eq!(t.shape, [3, 2]);
    let bytes = file.tensor_bytes(&build(&parts()), t).unwrap();
    assert_eq!(bytes, f32s(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]));
    assert_eq!(
        file.checkpoint.metadata,
        vec![("epoch".into(), Value::Int(3))]
    );
}

#[test]
fn a_reader_of_ranges_fetches_a_few_kilobytes_of_a_large_file() {
    let data = vec![7u8; 4 << 20];
    let mut p = parts();
    p[3].1 = storages(&[(1, "FloatStorage", 1 << 20, &data)], &no_views());
    p[2].1 = tensors(&[(10, 1, &[1024, 1024], &[1024, 1], 0)]);
    let file = build(&p);
    let mut fetched = 0u64;
    let t = TarFile::read(file.len() as u64, &[], &mut |r: Range<u64>| {
        fetched += r.end - r.start;
        Ok::<_, PytorchError>(Cow::Borrowed(&file[r.start as usize..r.end as usize]))
    })
    .unwrap();
    let range = &t.storages["1"];
    assert_eq!(range.end - range.start, 4 << 20);
    assert!(
        fetched < 64 << 10,
        "{fetched} bytes fetched for a 4 MiB file"
    );
    assert_eq!(&file[range.start as usize..range.end as usize], &data[..]);
}

#[test]
fn a_name_in_a_pax_header_is_read() {
    // tarfile's PAX format gives an entry a pax header when its name does
    // not fit the ustar fields; the name there is the one that counts.
    let p = parts();
    let mut file = Vec::new();
    for (name, data) in &p {
        if *name == "pickle" {
            let record = " path=pickle\n";
            let record = format!("{}{record}", record.len() + 2);
            file.extend(header("PaxHeaders/x", record.len() as u64, b'x'));
            file.extend(record.as_bytes());
            file.resize(file.len().next_multiple_of(512), 0);
            file.extend(header("not-the-name", data.len() as u64, b'0'));
        } else {
            file.extend(header(name, data.len() as u64, b'0'));
        }
        file.extend(data);
        file.resize(file.len().next_multiple_of(512), 0);
    }
    file.extend([0; 1024]);
    let mut fetch = |r: Range<u64>| {
        Ok::<_, PytorchError>(Cow::Borrowed(&file[r.start as usize..r.end as usize]))
    };
    let names: Vec<String> = tar::entries(file.len() as u64, &mut fetch)
        .unwrap()
        .into_keys()
        .collect();
    assert_eq!(names, ["pickle", "storages", "sys_info", "tensors"]);
    PytorchFile::parse(&file, &[]).unwrap();
}

#[test]
fn entry_sizes_past_the_end_are_refused() {
    let mut file = build(&parts());
    let at = file.len() - 1024 - 512; // the storages entry's one block
    file.truncate(at + 16);
    let e = err(&file);
    // Its header now declares bytes past the end of the file.
    assert!(
        matches!(&e, PytorchError::TarEntryPastEnd { name, .. } if name == "storages"),
        "{e}"
    );
    // A header cut short (the second: sys_info's data is one block).
    let mut file = build(&parts());
    file.truncate(1024 + 100);
    assert!(matches!(
        err(&file),
        PytorchError::TarHeader { offset: 1024, .. }
    ));
}

#[test]
fn missing_and_duplicate_entries_are_refused() {
    for missing in ["pickle", "tensors", "storages"] {
        let p: Vec<_> = parts().into_iter().filter(|(n, _)| *n != missing).collect();
        match err(&build(&p)) {
            PytorchError::TarMissing { name } => assert_eq!(name, missing),
            other => panic!("{missing}: {other}"),
        }
    }
    // torch never reads sys_info: a file without it reads.
    let p: Vec<_> = parts()
        .into_iter()
        .filter(|(n, _)| *n != "sys_info")
        .collect();
    PytorchFile::parse(&build(&p), &[]).unwrap();
    let mut p = parts().to_vec();
    p.push(p[1].clone());
    assert!(matches!(err(&build(&p)), PytorchError::TarDuplicate { name } if name == "pickle"));
}

#[test]
fn a_damaged_header_is_not_read() {
    let mut file = build(&parts());
    file[0] = b'X'; // the checksum no longer matches
    let e = err(&file);
    assert!(
        matches!(e, PytorchError::TarHeader { offset: 0, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("checksum"), "{e}");
    // A size field that is not octal.
    let mut file = build(&parts());
    file[124..136].copy_from_slice(b"0000000009x\0");
    set_checksum(&mut file[..512]);
    assert!(matches!(err(&file), PytorchError::TarHeader { .. }));
    // Many entries: not a checkpoint.
    let many: Vec<(String, Vec<u8>)> = (0..70).map(|i| (format!("e{i}"), vec![1])).collect();
    let refs: Vec<(&str, &[u8])> = many.iter().map(|(n, d)| (n.as_str(), &d[..])).collect();
    assert!(matches!(
        err(&tar(&refs)),
        PytorchError::TarTooManyEntries { .. }
    ));
}

#[test]
fn counts_near_2_pow_63_are_refused_before_reading_records() {
    // LONG1 of 8 bytes: 2^63 - 1.
    let huge = pickle(&[b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"]);
    for entry in ["tensors", "storages"] {
        let mut data = huge.clone();
        let rest = match entry {
            "tensors" => tensors(&[(10, 1, &[3, 2], &[1, 3], 0)]),
            _ => storages(&[(1, "FloatStorage", 6, &f32s(&[0.0; 6]))], &no_views()),
        };
        data.extend(&rest[5..]); // the real count pickle is 5 bytes
        let e = err(&with(entry, data));
        match &e {
            PytorchError::TarRecord {
                entry: en, reason, ..
            } => {
                assert_eq!(*en, entry);
                assert!(reason.contains("9223372036854775807 records"), "{e}");
            }
            other => panic!("{entry}: {other}"),
        }
    }
    // A negative count.
    let neg = [pickle(&[b"J\xff\xff\xff\xff"]), tensors(&[])[5..].to_vec()].concat();
    assert!(matches!(
        err(&with("tensors", neg)),
        PytorchError::TarRecord { .. }
    ));
}

#[test]
fn storages_that_lie_about_their_element_count_are_refused() {
    let data = f32s(&[0.0; 6]);
    // More elements than the entry holds, one of them near 2^63.
    for count in [100, i64::MAX, 1 << 62] {
        let e = err(&with(
            "storages",
            storages(&[(1, "FloatStorage", count, &data)], &no_views()),
        ));
        assert!(
            matches!(&e, PytorchError::TarStorage { key, .. } if key == "1"),
            "{count}: {e}"
        );
    }
    let e = err(&with(
        "storages",
        storages(&[(1, "FloatStorage", -1, &data)], &no_views()),
    ));
    assert!(e.to_string().contains("negative"), "{e}");
    // Fewer elements than the tensor's view needs.
    let e = err(&with(
        "storages",
        storages(&[(1, "FloatStorage", 5, &data[..20])], &no_views()),
    ));
    assert!(matches!(e, PytorchError::ViewOutOfStorage { .. }), "{e}");
    // A storage view past its root.
    let views = pickle(&[b"]", &tuple(&[&int(2), &int(1), &int(4), &int(3)]), b"a"]);
    let e = err(&with(
        "storages",
        storages(&[(1, "FloatStorage", 6, &data)], &views),
    ));
    assert!(matches!(e, PytorchError::TarRecord { .. }), "{e}");
    // A tensor larger than the view it is on (torch's set_ refuses it).
    let views = pickle(&[b"]", &tuple(&[&int(2), &int(1), &int(2), &int(3)]), b"a"]);
    let mut p = parts();
    p[2].1 = tensors(&[(10, 2, &[2, 2], &[2, 1], 0)]);
    p[3].1 = storages(&[(1, "FloatStorage", 6, &data)], &views);
    assert!(matches!(
        err(&build(&p)),
        PytorchError::ViewOutOfStorage { .. }
    ));
    // The same tensor within the view reads elements 2.. of the root.
    let full = f32s(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    p[2].1 = tensors(&[(10, 2, &[3], &[1], 0)]);
    p[3].1 = storages(&[(1, "FloatStorage", 6, &full)], &views);
    let file = build(&p);
    let f = PytorchFile::parse(&file, &[]).unwrap();
    let t = f.checkpoint.tensor("w").unwrap();
    assert_eq!(f.tensor_bytes(&file, t).unwrap(), f32s(&[2.0, 3.0, 4.0]));
}

#[test]
fn tensor_records_that_lie_are_refused() {
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "an unknown storage",
            tensors(&[(10, 9, &[3, 2], &[1, 3], 0)]),
        ),
        ("a negative size", tensors(&[(10, 1, &[-3, 2], &[1, 3], 0)])),
        (
            "a negative offset",
            tensors(&[(10, 1, &[3, 2], &[1, 3], -1)]),
        ),
        ("dimensions past the entry", {
            let mut t = tensors(&[(10, 1, &[3, 2], &[1, 3], 0)]);
            // ndim sits after the count (4 bytes) and the record's pickle.
            let at = t.len() - 8 - 16 * 2 - 8;
            t[at..at + 4].copy_from_slice(&1_000_000i32.to_le_bytes());
            t
        }),
    ];
    for (what, data) in cases {
        let e = err(&with("tensors", data));
        assert!(matches!(e, PytorchError::TarTensor { .. }), "{what}: {e}");
    }
}

#[test]
fn the_pickle_is_read_as_data_and_its_ids_must_name_records() {
    // A global that would run code is refused by name.
    let evil = pickle(&[b"cposix\nsystem\n", &tuple(&[&text("touch x")]), b"R"]);
    match err(&with("pickle", evil)) {
        PytorchError::Pickle {
            source: PickleError::Forbidden {
                global, allowable, ..
            },
            ..
        } => {
            assert_eq!(global, "posix.system");
            assert!(!allowable);
        }
        other => panic!("{other}"),
    }
    // A persistent id naming no record.
    let stray = pickle(&[b"}(", &text("w"), &text("77"), b"Qu"]);
    assert!(matches!(
        err(&with("pickle", stray)),
        PytorchError::Pickle {
            source: PickleError::BadPersistentId { .. },
            ..
        }
    ));
    // A whole module (a (class, file, source) id) is refused.
    let module = pickle(&[b"}(", &text("m"), &tuple(&[b"N", b"N", b"N"]), b"Qu"]);
    let e = err(&with("pickle", module));
    assert!(e.to_string().contains("state_dict"), "{e}");
    // A big-endian writer.
    let be = pickle(&[b"}", &text("little_endian"), b"\x89s"]);
    assert!(matches!(
        err(&with("sys_info", be)),
        PytorchError::LegacyBigEndian
    ));
}
