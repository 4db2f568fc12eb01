//! The GGUF header parser on arbitrary bytes, as a whole file and as a
//! loader reads it (a growing prefix of a file of known length).
//!
//! Beyond "no panic, bounded memory", checks what an accepted header
//! promises (docs/GGUF.md): the prefix loop and the whole-file parse give the
//! same result (header or error); every tensor lies inside the file, starts
//! at an aligned offset, overlaps no other, and has the size its type and
//! dims give; tensors it can decode dequantize without panicking; and writing
//! the metadata and tensors back out gives a file that parses to the same
//! header bytes and tensor bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modeltool_format::gguf::{GgufHeader, GgufWriter, Parsed, can_dequantize, dequantize, parse};

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    let whole = GgufHeader::from_file_bytes(data);

    // A loader's loop: start with 16 bytes, read what is asked (at least
    // double), until the parser answers.
    let mut have = 16usize.min(data.len());
    let looped = loop {
        match parse(&data[..have], len) {
            Ok(Parsed::NeedMore { at_least }) => {
                assert!(at_least > have as u64, "asked for {at_least} with {have}");
                assert!(at_least <= len, "asked for {at_least} of a {len}-byte file");
                have = (at_least as usize).max(have * 2).min(data.len());
            }
            Ok(Parsed::Header(h)) => break Ok(h),
            Err(e) => break Err(e),
        }
    };
    // Compared through Debug: a NaN in the metadata is not equal to itself.
    assert_eq!(
        format!("{whole:?}"),
        format!("{looped:?}"),
        "whole-file and prefix parses disagree"
    );

    let Ok(h) = whole else { return };
    assert!(h.data_start >= h.header_len && h.data_start % u64::from(h.alignment) == 0);
    let mut ranges = Vec::new();
    for (i, t) in h.tensors.iter().enumerate() {
        let r = h.tensor_range(i).expect("index in range");
        assert!(r.end <= len, "`{}` past the end", t.name);
        assert_eq!(t.offset % u64::from(h.alignment), 0);
        assert_eq!(Some(t.size), t.ggml_type.byte_size(t.element_count()));
        let shape = t.shape();
        assert_eq!(shape.iter().rev().copied().collect::<Vec<_>>(), t.dims);
        if t.size > 0 {
            ranges.push(r.clone());
        }
        let bytes = h.tensor_data(data, i).expect("inside the file");
        if can_dequantize(t.ggml_type) && t.size <= 1 << 20 {
            let n = t.element_count() as usize;
            let mut out = vec![0f32; n];
            dequantize(t.ggml_type, bytes, &mut out).expect("whole blocks of a decodable type");
        }
    }
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        assert!(w[0].end <= w[1].start, "overlap");
    }

    // Write it again: the same header bytes and tensor bytes come back.
    // (Not for alignments above 64 KiB: the padding is written out, and a
    // 2 GiB alignment would only measure the allocator.)
    if h.alignment > 1 << 16 {
        return;
    }
    let rewrite = |h: &GgufHeader, file: &[u8]| -> Vec<u8> {
        let mut w = GgufWriter::new();
        for (k, v) in &h.metadata {
            w.add_metadata(k.clone(), v.clone()).expect("accepted metadata can be written");
        }
        for (i, t) in h.tensors.iter().enumerate() {
            let bytes = h.tensor_data(file, i).expect("inside the file").to_vec();
            w.add_tensor(t.name.clone(), &t.shape(), t.ggml_type, bytes)
                .expect("an accepted tensor can be written");
        }
        w.to_bytes().expect("every tensor has its data")
    };
    let out = rewrite(&h, data);
    let again = GgufHeader::from_file_bytes(&out).expect("a written file parses");
    assert_eq!(again.tensors.len(), h.tensors.len());
    for i in 0..h.tensors.len() {
        assert_eq!(again.tensors[i].dims, h.tensors[i].dims);
        assert_eq!(again.tensor_data(&out, i), h.tensor_data(data, i));
    }
    assert_eq!(rewrite(&again, &out), out, "writing is stable");
});
