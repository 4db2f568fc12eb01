//! The safetensors header parser on arbitrary bytes, as a whole file.
//!
//! Beyond "no panic", checks what an accepted header promises
//! (docs/FORMAT.md): the tensors come in byte order and cover the data
//! exactly, each range has the dtype's size times the element count, names
//! are unique; the two entry points (`from_file_bytes`, `read_len` +
//! `parse`) agree; and writing the tensors back out gives a file that parses
//! to the same tensors and bytes.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use modeltool_format::{Header, METADATA_KEY, ModelMetadata, TensorMeta, write_safetensors};

fuzz_target!(|data: &[u8]| {
    let whole = Header::from_file_bytes(data);

    // The same through the two-step API the loader uses.
    let split = Header::read_len(data, data.len() as u64).and_then(|len| {
        let end = 8 + len as usize;
        assert!(
            end <= data.len(),
            "read_len accepted {len} for {} bytes",
            data.len()
        );
        Header::parse(&data[8..end], (data.len() - end) as u64)
    });
    match (&whole, &split) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "from_file_bytes and read_len+parse disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("from_file_bytes and read_len+parse disagree: {whole:?} vs {split:?}"),
    }
    // A shorter prefix must never make read_len accept more than is there.
    if data.len() >= 8
        && let Ok(len) = Header::read_len(&data[..8], data.len() as u64 / 2)
    {
        assert!(len <= (data.len() as u64 / 2).saturating_sub(8));
    }

    let Ok(header) = whole else { return };
    let data_start = header.data_start();
    assert_eq!(data_start, 8 + header.header_len);
    assert!(data_start <= data.len() as u64);
    let data_len = data.len() as u64 - data_start;
    assert_eq!(header.data_len(), data_len, "tensors do not cover the data");

    // Sorted, contiguous, sized by dtype and shape, names unique.
    let mut end = 0u64;
    let mut names = HashSet::new();
    for t in &header.tensors {
        let (b, e) = t.data_offsets;
        assert_eq!(b, end, "hole or overlap before `{}`", t.meta.name);
        assert!(b <= e && e <= data_len);
        assert_eq!(t.byte_len(), e - b);
        let expected = t
            .meta
            .byte_len()
            .expect("accepted tensors have a byte size");
        assert_eq!(expected as u64, e - b, "size of `{}`", t.meta.name);
        assert_ne!(t.meta.name, METADATA_KEY);
        assert!(
            names.insert(t.meta.name.as_str()),
            "`{}` twice",
            t.meta.name
        );
        end = e;
    }
    assert_eq!(end, data_len);

    // Splitting the metadata must not panic (it may refuse a malformed checksum).
    let _ = ModelMetadata::from_safetensors(header.metadata.clone());

    // Write the same tensors and metadata again and read them back.
    let body = &data[data_start as usize..];
    let tensors: Vec<(TensorMeta, &[u8])> = header
        .tensors
        .iter()
        .map(|t| {
            let (b, e) = t.data_offsets;
            (t.meta.clone(), &body[b as usize..e as usize])
        })
        .collect();
    let mut out = Vec::new();
    write_safetensors(&mut out, &tensors, &header.metadata)
        .expect("an accepted header can be written again");
    let again = Header::from_file_bytes(&out).expect("a written file parses");
    assert_eq!(again.metadata, header.metadata);
    assert_eq!(again.tensors.len(), header.tensors.len());
    let again_body = &out[again.data_start() as usize..];
    for t in &again.tensors {
        let (_, bytes) = tensors
            .iter()
            .find(|(m, _)| m.name == t.meta.name)
            .expect("the same names come back");
        let (b, e) = t.data_offsets;
        assert_eq!(
            &again_body[b as usize..e as usize],
            *bytes,
            "bytes of `{}`",
            t.meta.name
        );
        let original = header.tensors.iter().find(|o| o.meta.name == t.meta.name);
        assert_eq!(original.map(|o| &o.meta), Some(&t.meta));
        // The writer aligns every tensor to its element size.
        assert_eq!(
            (again.data_start() + b) % t.meta.dtype.alignment() as u64,
            0,
            "`{}` is not aligned",
            t.meta.name
        );
    }
});
