//! GGUF headers built by hand, one per kind of damage: each must be refused
//! with its own error variant, without a panic and without allocating from
//! the declared counts.

use modeltool_format::gguf::{
    Array, GgmlType, GgufError, GgufHeader, GgufWriter, MAX_HEADER_LEN, Parsed, Value, ValueType,
    dequantize, parse, quantize,
};

/// A GGUF file written byte by byte.
#[derive(Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Magic, version and the two counts.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> Bytes {
        let mut b = Bytes(b"GGUF".to_vec());
        b.u32(version).u64(n_tensors).u64(n_kv);
        b
    }
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    /// A metadata entry holding a u32.
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.str(key).u32(4).u32(v)
    }
    /// A tensor info: name, dims (fastest first), type id, offset.
    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(type_id).u64(offset)
    }
    /// Zero bytes up to a multiple of `align`, then `n` data bytes.
    pub fn data(&mut self, align: usize, n: usize) -> &mut Self {
        while self.0.len() % align != 0 {
            self.0.push(0);
        }
        self.0.extend((0..n).map(|i| i as u8));
        self
    }
}

fn err(bytes: &[u8]) -> GgufError {
    match GgufHeader::from_file_bytes(bytes) {
        Ok(h) => panic!("accepted a damaged file: {h:?}"),
        Err(e) => e,
    }
}

/// A file with one F32 tensor of `n` elements at offset 0, and the given
/// metadata entries written by `kv` (whose count is `n_kv`).
fn one_tensor(n_kv: u64, kv: impl Fn(&mut Bytes), align: usize) -> Vec<u8> {
    let mut b = Bytes::header(3, 1, n_kv);
    kv(&mut b);
    b.tensor("w", &[4], 0, 0).data(align, 16);
    b.0
}

#[test]
fn a_well_formed_hand_made_file_is_read() {
    let bytes = one_tensor(0, |_| {}, 32);
    let h = GgufHeader::from_file_bytes(&bytes).unwrap();
    assert_eq!(h.tensors[0].shape(), [4]);
    assert_eq!(h.data_start % 32, 0);
    assert_eq!(
        h.tensor_data(&bytes, 0).unwrap(),
        (0..16).collect::<Vec<u8>>()
    );
}

#[test]
fn bad_magic() {
    assert_eq!(
        err(b"GGML\x03\0\0\0"),
        GgufError::BadMagic {
            found: b"GGML".to_vec()
        }
    );
    assert_eq!(
        err(b"GG"),
        GgufError::BadMagic {
            found: b"GG".to_vec()
        }
    );
}

#[test]
fn version_1_and_future_versions_are_refused() {
    for version in [0, 1, 4] {
        let b = Bytes::header(version, 0, 0);
        assert_eq!(err(&b.0), GgufError::UnsupportedVersion { version });
    }
}

#[test]
fn truncated_header() {
    let full = one_tensor(
        1,
        |b| {
            b.kv_u32("a", 7);
        },
        32,
    );
    // Cut inside the tensor info: the whole file is 'all there is'.
    let cut = &full[..40];
    assert!(matches!(
        err(cut),
        GgufError::Truncated { file_len: 40, .. }
    ));
}

#[test]
fn header_larger_than_the_cap_is_refused_without_reading_it() {
    let mut b = Bytes::header(3, 0, 1);
    b.u64(MAX_HEADER_LEN + 1); // a key as long as the cap
    b.0.extend([b'k'; 16]);
    // The file claims to be a terabyte: the length fits, the cap does not.
    let e = parse(&b.0, 1 << 40).unwrap_err();
    assert!(matches!(e, GgufError::HeaderTooLarge { .. }), "{e:?}");
}

#[test]
fn counts_near_2_64_are_refused_before_allocating() {
    for (n_tensors, n_kv, what) in [(u64::MAX, 0, "tensor"), (0, u64::MAX, "metadata entry")] {
        let b = Bytes::header(3, n_tensors, n_kv);
        match err(&b.0) {
            GgufError::CountTooLarge { what: w, count, .. } => {
                assert_eq!((w, count), (what, u64::MAX));
            }
            e => panic!("{e:?}"),
        }
    }
    // An array of 2^64 - 1 strings in a 50-byte file.
    let mut b = Bytes::header(3, 0, 1);
    b.str("tokenizer.ggml.tokens").u32(9).u32(8).u64(u64::MAX);
    assert!(matches!(
        err(&b.0),
        GgufError::CountTooLarge {
            what: "array element",
            min_size: 8,
            ..
        }
    ));
    // Also in a prefix of a file that claims to be huge: no allocation.
    let e = parse(&b.0, u64::MAX).unwrap_err();
    assert!(
        matches!(
            e,
            GgufError::CountTooLarge { .. } | GgufError::HeaderTooLarge { .. }
        ),
        "{e:?}"
    );
}

#[test]
fn string_length_near_2_64() {
    let mut b = Bytes::header(3, 0, 1);
    b.u64(u64::MAX - 3);
    b.0.extend([b'k'; 16]);
    assert_eq!(
        err(&b.0),
        GgufError::StringTooLong {
            len: u64::MAX - 3,
            offset: 24,
            available: 16
        }
    );
}

#[test]
fn string_not_utf8() {
    let mut b = Bytes::header(3, 0, 1);
    b.u64(2).u8(0xC3).u8(0x28).u32(4).u32(1);
    assert_eq!(err(&b.0), GgufError::InvalidUtf8 { offset: 32 });
}

#[test]
fn unknown_value_type() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(13).u32(0);
    assert_eq!(
        err(&b.0),
        GgufError::UnknownValueType {
            type_id: 13,
            offset: 33
        }
    );
}

#[test]
fn arrays_nested_too_deep() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(9);
    for _ in 0..20 {
        b.u32(9).u64(1);
    }
    b.u32(0).u64(0);
    assert!(matches!(
        err(&b.0),
        GgufError::NestingTooDeep { max: 8, .. }
    ));
}

#[test]
fn bool_other_than_0_or_1() {
    let mut b = Bytes::header(3, 0, 1);
    b.str("k").u32(7).u8(2);
    assert_eq!(
        err(&b.0),
        GgufError::InvalidBool {
            offset: 37,
            byte: 2
        }
    );
}

#[test]
fn duplicate_metadata_key() {
    let mut b = Bytes::header(3, 0, 2);
    b.kv_u32("k", 1).kv_u32("k", 2);
    assert_eq!(
        err(&b.0),
        GgufError::DuplicateKey {
            key: "k".into(),
            first: 0,
            second: 1
        }
    );
}

#[test]
fn alignment_of_another_type_or_an_array_is_refused() {
    // A u64 alignment: a reader that took it as a u32 would misplace data.
    let mut b = Bytes::header(3, 0, 1);
    b.str("general.alignment").u32(10).u64(64);
    assert_eq!(
        err(&b.0),
        GgufError::WrongValueType {
            key: "general.alignment".into(),
            expected: ValueType::U32,
            found: ValueType::U64
        }
    );
    // An array where the scalar belongs.
    let mut b = Bytes::header(3, 0, 1);
    b.str("general.alignment").u32(9).u32(4).u64(1).u32(32);
    assert!(matches!(
        err(&b.0),
        GgufError::WrongValueType {
            found: ValueType::Array,
            ..
        }
    ));
}

#[test]
fn alignment_zero_or_not_a_multiple_of_8() {
    for alignment in [0, 4, 12, 33] {
        let bytes = one_tensor(
            1,
            |b| {
                b.kv_u32("general.alignment", alignment);
            },
            8,
        );
        assert_eq!(err(&bytes), GgufError::BadAlignment { alignment });
    }
}

#[test]
fn alignment_24_is_not_a_power_of_two_and_still_places_data_right() {
    // Two tensors: the second starts at data offset 24, and the data section
    // starts at the header rounded up to 24, not to 32.
    let mut b = Bytes::header(3, 2, 1);
    b.kv_u32("general.alignment", 24);
    b.tensor("a", &[4], 0, 0).tensor("b", &[2], 0, 24);
    while b.0.len() % 24 != 0 {
        b.0.push(0);
    }
    let start = b.0.len();
    b.0.extend([1u8; 16]);
    b.0.extend([0u8; 8]);
    b.0.extend(2f32.to_le_bytes());
    b.0.extend(3f32.to_le_bytes());
    let h = GgufHeader::from_file_bytes(&b.0).unwrap();
    assert_eq!((h.alignment, h.data_start), (24, start as u64));
    assert_ne!(
        start % 32,
        0,
        "the test needs a start that 32 would misplace"
    );
    let second = h.tensor_data(&b.0, 1).unwrap();
    assert_eq!(second, [2f32.to_le_bytes(), 3f32.to_le_bytes()].concat());
}

#[test]
fn duplicate_tensor_name() {
    let mut b = Bytes::header(3, 2, 0);
    b.tensor("w", &[4], 0, 0)
        .tensor("w", &[4], 0, 32)
        .data(32, 64);
    assert_eq!(
        err(&b.0),
        GgufError::DuplicateTensor {
            name: "w".into(),
            first: 0,
            second: 1
        }
    );
}

#[test]
fn more_than_four_dimensions() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[1, 1, 1, 1, 1], 0, 0).data(32, 4);
    assert!(matches!(
        err(&b.0),
        GgufError::BadDimCount { n_dims: 5, .. }
    ));
}

#[test]
fn element_count_overflows() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[1 << 32, 1 << 32], 0, 0).data(32, 4);
    assert!(matches!(
        err(&b.0),
        GgufError::DimsOverflow { index: 0, .. }
    ));
    // A zero among the dims does not excuse an overflow of the others,
    // whatever their order (found by the gguf_header fuzz target: the
    // parser accepted these dims, the writer refused them reversed).
    let mut b = Bytes::header(3, 1, 0);
    b.tensor(
        "w",
        &[376_111_104, 0, 235_969_795_105_751_040, 16_777_216],
        0,
        0,
    )
    .data(32, 4);
    assert!(matches!(err(&b.0), GgufError::DimsOverflow { .. }));
    // Fits in u64 but not in ggml's i64.
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[1 << 32, 1 << 31], 0, 0).data(32, 4);
    assert!(matches!(err(&b.0), GgufError::DimsOverflow { .. }));
}

#[test]
fn unknown_type_id_names_the_id_and_the_tensor() {
    // 4 and 36 are retired ids; 99 was never used. MXFP4 (39) is known.
    for type_id in [4, 36, 99] {
        let mut b = Bytes::header(3, 1, 0);
        b.tensor("blk.0.attn_q.weight", &[32], type_id, 0)
            .data(32, 64);
        let e = err(&b.0);
        assert_eq!(
            e,
            GgufError::UnknownTensorType {
                name: "blk.0.attn_q.weight".into(),
                index: 0,
                type_id
            }
        );
        let msg = e.to_string();
        assert!(
            msg.contains(&type_id.to_string()) && msg.contains("blk.0.attn_q.weight"),
            "{msg}"
        );
    }
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[32], 39, 0).data(32, 17);
    assert_eq!(
        GgufHeader::from_file_bytes(&b.0).unwrap().tensors[0].ggml_type,
        GgmlType::MXFP4
    );
}

#[test]
fn rows_that_are_not_whole_blocks() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[33, 2], GgmlType::Q4_0.id(), 0).data(32, 64);
    assert!(matches!(
        err(&b.0),
        GgufError::PartialBlock {
            row: 33,
            block_size: 32,
            ..
        }
    ));
}

#[test]
fn misaligned_offset() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[4], 0, 8).data(32, 64);
    assert!(matches!(
        err(&b.0),
        GgufError::MisalignedOffset {
            offset: 8,
            alignment: 32,
            ..
        }
    ));
}

#[test]
fn offset_that_overflows_when_added_to_the_data_start() {
    let offset = u64::MAX - 31; // aligned, but data_start + offset overflows
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[4], 0, offset).data(32, 16);
    assert!(matches!(err(&b.0), GgufError::OffsetOverflow { .. }));
}

#[test]
fn data_past_the_end_of_the_file() {
    let mut b = Bytes::header(3, 1, 0);
    b.tensor("w", &[8], 0, 0).data(32, 16); // needs 32 bytes, has 16
    match err(&b.0) {
        GgufError::DataPastEnd {
            start,
            end,
            file_len,
            ..
        } => assert_eq!((end - start, file_len - start), (32, 16)),
        e => panic!("{e:?}"),
    }
}

#[test]
fn overlapping_tensors() {
    let mut b = Bytes::header(3, 2, 0);
    b.tensor("a", &[16], 0, 0)
        .tensor("b", &[8], 0, 32)
        .data(32, 96);
    match err(&b.0) {
        GgufError::Overlap {
            first,
            second,
            first_end,
            second_start,
            ..
        } => assert_eq!(
            (first.as_str(), second.as_str(), first_end, second_start),
            ("a", "b", 64, 32)
        ),
        e => panic!("{e:?}"),
    }
}

#[test]
fn big_endian_header_is_read_and_its_data_refused() {
    let mut b = Bytes(b"GGUF".to_vec());
    b.0.extend(3u32.to_be_bytes());
    b.0.extend(1u64.to_be_bytes());
    b.0.extend(1u64.to_be_bytes());
    b.0.extend(1u64.to_be_bytes());
    b.0.push(b'k');
    b.0.extend(4u32.to_be_bytes());
    b.0.extend(7u32.to_be_bytes());
    b.0.extend(1u64.to_be_bytes());
    b.0.push(b'w');
    b.0.extend(1u32.to_be_bytes());
    b.0.extend(2u64.to_be_bytes());
    b.0.extend(0u32.to_be_bytes());
    b.0.extend(0u64.to_be_bytes());
    b.data(32, 8);
    let h = GgufHeader::from_file_bytes(&b.0).unwrap();
    assert_eq!(h.endian, modeltool_format::gguf::Endian::Big);
    assert_eq!(h.get("k"), Some(&Value::U32(7)));
    assert_eq!(h.tensors[0].dims, [2]);
    assert_eq!(h.dequantize_tensor(&b.0, 0), Err(GgufError::BigEndianData));
}

#[test]
fn types_without_a_decoder_are_refused_not_guessed() {
    for t in [GgmlType::I32, GgmlType::F64, GgmlType::Q8_K, GgmlType::Q1_0] {
        let data = vec![0u8; t.type_size() as usize];
        let mut out = vec![0f32; t.block_size() as usize];
        assert!(
            matches!(dequantize(t, &data, &mut out), Err(GgufError::CannotDequantize { ggml_type, .. }) if ggml_type == t),
            "{t}"
        );
    }
}

#[test]
fn dequantize_checks_lengths() {
    let mut out = [0f32; 32];
    assert!(matches!(
        dequantize(GgmlType::Q8_0, &[0u8; 33], &mut out),
        Err(GgufError::LengthMismatch { .. })
    ));
    assert!(matches!(
        dequantize(GgmlType::Q8_0, &[0u8; 68], &mut out),
        Err(GgufError::LengthMismatch {
            expected: 64,
            found: 32,
            ..
        })
    ));
}

#[test]
fn quantize_refuses_other_types_and_partial_blocks() {
    assert_eq!(
        quantize(GgmlType::Q4_K, &[0.0; 256]),
        Err(GgufError::CannotQuantize {
            ggml_type: GgmlType::Q4_K
        })
    );
    assert!(matches!(
        quantize(GgmlType::Q8_0, &[0.0; 33]),
        Err(GgufError::LengthMismatch { found: 33, .. })
    ));
}

#[test]
fn writer_refuses_bad_shapes_sizes_and_order() {
    let mut w = GgufWriter::new();
    assert!(matches!(
        w.add_tensor_info("w", &[2, 33], GgmlType::Q8_0),
        Err(GgufError::BadShape { .. })
    ));
    assert!(matches!(
        w.add_tensor_info("w", &[1, 1, 1, 1, 1], GgmlType::F32),
        Err(GgufError::BadShape { .. })
    ));
    assert!(matches!(
        w.add_tensor("w", &[2], GgmlType::F32, vec![0; 7]),
        Err(GgufError::LengthMismatch {
            expected: 8,
            found: 7,
            ..
        })
    ));
    assert_eq!(w.tensors().len(), 0, "a refused tensor is not kept");
    w.add_tensor_info("w", &[2], GgmlType::F32).unwrap();
    assert!(matches!(w.to_bytes(), Err(GgufError::WriterMisuse(_))));
    assert!(matches!(
        w.set_alignment(64),
        Err(GgufError::WriterMisuse(_))
    ));
    assert!(matches!(
        w.add_metadata("general.alignment", Value::Array(Array::U32(vec![32]))),
        Err(GgufError::WrongValueType { .. })
    ));
    let mut s = w.stream(Vec::new()).unwrap();
    assert!(s.write_tensor(&[0; 4]).is_err());
    s.write_tensor(&[0; 8]).unwrap();
    assert!(s.write_tensor(&[0; 8]).is_err());
    let file = s.finish().unwrap();
    assert_eq!(GgufHeader::from_file_bytes(&file).unwrap().tensors.len(), 1);
}

#[test]
fn every_prefix_either_asks_for_more_or_gives_the_header() {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "tokenizer.ggml.tokens",
        Value::Array(Array::String((0..50).map(|i| format!("tok{i}")).collect())),
    )
    .unwrap();
    w.add_tensor("a", &[3, 32], GgmlType::Q8_0, vec![0; 102])
        .unwrap();
    let file = w.to_bytes().unwrap();
    let whole = GgufHeader::from_file_bytes(&file).unwrap();
    let len = file.len() as u64;
    let mut reads = 0;
    let mut have = 0u64;
    // A loader's loop: read what the parser asks (no more), parse again.
    loop {
        match parse(&file[..have as usize], len).unwrap() {
            Parsed::Header(h) => {
                assert_eq!(h, whole);
                break;
            }
            Parsed::NeedMore { at_least } => {
                assert!(
                    at_least > have && at_least <= whole.header_len,
                    "{at_least} after {have}"
                );
                have = at_least;
                reads += 1;
            }
        }
    }
    assert!(reads < 200, "{reads} reads");
    for cut in 0..whole.header_len {
        match parse(&file[..cut as usize], len).unwrap() {
            Parsed::NeedMore { at_least } => assert!(at_least > cut),
            Parsed::Header(_) => panic!("a header from {cut} of {} bytes", whole.header_len),
        }
    }
}

#[test]
fn version_2_is_read_like_version_3() {
    let mut b = Bytes::header(2, 1, 1);
    b.kv_u32("k", 5).tensor("w", &[4], 0, 0).data(32, 16);
    let h = GgufHeader::from_file_bytes(&b.0).unwrap();
    assert_eq!((h.version, h.get("k")), (2, Some(&Value::U32(5))));
    assert_eq!(h.tensor_data(&b.0, 0).unwrap().len(), 16);
}

#[test]
fn no_such_tensor() {
    let bytes = one_tensor(0, |_| {}, 32);
    let h = GgufHeader::from_file_bytes(&bytes).unwrap();
    assert_eq!(
        h.dequantize_tensor(&bytes, 1),
        Err(GgufError::NoSuchTensor { index: 1, count: 1 })
    );
    assert_eq!(h.tensor_range(1), None);
}
