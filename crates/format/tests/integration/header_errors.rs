//! One test per way a safetensors file can be invalid, each built from
//! hand-made bytes, checking the error variant and that its message names
//! the tensor or key involved.

use modeltool_format::{
    Dtype, FormatError, Header, Layout, MAX_HEADER_LEN, ModelMetadata, TensorMeta,
    write_safetensors,
};

use crate::common::{file, header_err};

/// A valid two-tensor header, the base the invalid ones below differ from.
const VALID: &str = r#"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}"#;

#[test]
fn the_valid_base_file_parses() {
    let bytes = file(VALID, &[0; 11]);
    let h = Header::from_file_bytes(&bytes).expect("valid file");
    assert_eq!(h.tensors.len(), 2);
    assert_eq!(
        h.tensors[0].meta,
        TensorMeta {
            name: "a".into(),
            dtype: Dtype::F32,
            shape: vec![2]
        }
    );
    assert_eq!(h.tensors[1].data_offsets, (8, 11));
    assert_eq!(h.metadata["k"], "v");
    assert_eq!(h.header_len, VALID.len() as u64);
    assert_eq!(h.data_start(), 8 + VALID.len() as u64);
    assert_eq!(h.data_len(), 11);
}

#[test]
fn tensors_come_back_in_byte_order_whatever_the_header_order() {
    let json = r#"{"late":{"dtype":"U8","shape":[1],"data_offsets":[4,5]},"early":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}"#;
    let h = Header::from_file_bytes(&file(json, &[0; 5])).expect("valid file");
    let names: Vec<&str> = h.tensors.iter().map(|t| t.meta.name.as_str()).collect();
    assert_eq!(names, ["early", "late"]);
}

#[test]
fn too_short() {
    for len in 0..8 {
        let e = header_err(&vec![0; len]);
        assert!(
            matches!(e, FormatError::TooShort { len: l } if l == len as u64),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(&format!("file is {len} bytes")),
            "{e}"
        );
    }
    // read_len sees only a prefix; the size reported is the smaller of the two.
    let e = Header::read_len(&[0; 5], 1000).expect_err("5-byte prefix");
    assert!(matches!(e, FormatError::TooShort { len: 5 }), "{e:?}");
}

#[test]
fn header_length_2_pow_63() {
    let mut bytes = (1u64 << 63).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    let e = header_err(&bytes);
    assert!(
        matches!(e, FormatError::HeaderTooLarge { len, max } if len == 1 << 63 && max == MAX_HEADER_LEN),
        "{e:?}"
    );
    assert!(e.to_string().contains("9223372036854775808"), "{e}");
}

#[test]
fn header_length_at_the_cap_is_allowed_and_one_more_is_not() {
    // read_len takes the file size separately, so no 100 MB buffer is needed.
    let at_cap = MAX_HEADER_LEN.to_le_bytes();
    assert_eq!(
        Header::read_len(&at_cap, 8 + MAX_HEADER_LEN).expect("at the cap"),
        MAX_HEADER_LEN
    );
    let over = (MAX_HEADER_LEN + 1).to_le_bytes();
    let e = Header::read_len(&over, u64::MAX).expect_err("over the cap");
    assert!(matches!(e, FormatError::HeaderTooLarge { .. }), "{e:?}");
}

#[test]
fn header_length_past_the_end() {
    let mut bytes = 100u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}        ");
    let e = header_err(&bytes);
    assert!(
        matches!(
            e,
            FormatError::HeaderPastEnd {
                len: 100,
                available: 10
            }
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("100") && msg.contains("10 bytes"), "{msg}");
}

#[test]
fn header_not_utf8() {
    let mut header = br#"{"a"#.to_vec();
    header.push(0xff);
    header.extend_from_slice(br#"":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    let e = header_err(&bytes);
    assert!(
        matches!(e, FormatError::HeaderNotUtf8 { offset: 3 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("byte 3"), "{e}");
}

#[test]
fn header_not_json() {
    let e = header_err(&file(r#"{"a": {"dtype": "#, &[]));
    assert!(matches!(e, FormatError::Json(_)), "{e:?}");
    assert!(e.to_string().contains("line 1 column"), "{e}");
}

#[test]
fn header_json_not_an_object() {
    for json in ["[1]", "1", "\"a\"", "null"] {
        let e = header_err(&file(json, &[]));
        assert!(matches!(e, FormatError::Json(_)), "{json}: {e:?}");
        assert!(
            e.to_string().contains("a JSON object mapping tensor names"),
            "{json}: {e}"
        );
    }
}

#[test]
fn overlapping_offsets() {
    let json = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    let e = header_err(&file(json, &[0; 12]));
    assert!(
        matches!(&e, FormatError::Overlap { name, begin: 4, previous, previous_end: 8 } if name == "b" && previous == "a"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("`b`") && msg.contains("`a`"), "{msg}");
}

#[test]
fn empty_tensor_inside_another_overlaps() {
    let json = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}}"#;
    let e = header_err(&file(json, &[0; 4]));
    assert!(
        matches!(&e, FormatError::Overlap { name, .. } if name == "z"),
        "{e:?}"
    );
}

#[test]
fn offsets_out_of_range() {
    let json = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    let e = header_err(&file(json, &[0; 4]));
    assert!(
        matches!(&e, FormatError::OutOfRange { name, end: 8, data_len: 4 } if name == "a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`a` ends at byte 8"), "{e}");
}

#[test]
fn offsets_near_u64_max_are_out_of_range_not_a_panic() {
    let max = u64::MAX;
    let json = format!(
        r#"{{"a":{{"dtype":"U8","shape":[1],"data_offsets":[{},{max}]}}}}"#,
        max - 1
    );
    let e = header_err(&file(&json, &[0; 4]));
    assert!(
        matches!(&e, FormatError::OutOfRange { name, .. } if name == "a"),
        "{e:?}"
    );
}

#[test]
fn reversed_offsets() {
    let json = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#;
    let e = header_err(&file(json, &[0; 8]));
    assert!(
        matches!(&e, FormatError::OffsetsReversed { name, begin: 8, end: 0 } if name == "a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`a`"), "{e}");
}

#[test]
fn hole_between_tensors() {
    let json = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    let e = header_err(&file(json, &[0; 12]));
    assert!(
        matches!(&e, FormatError::Hole { name, begin: 4, end: 8 } if name == "b"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("4..8") && msg.contains("`b`"), "{msg}");
}

#[test]
fn hole_before_the_first_tensor() {
    let json = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    let e = header_err(&file(json, &[0; 8]));
    assert!(
        matches!(&e, FormatError::Hole { name, begin: 0, end: 4 } if name == "a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`a`"), "{e}");
}

#[test]
fn trailing_bytes() {
    let e = header_err(&file(VALID, &[0; 13]));
    assert!(
        matches!(
            e,
            FormatError::TrailingBytes {
                trailing: 2,
                data_len: 13,
                used: 11
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("2 trailing bytes"), "{e}");
    // With no tensors at all, every data byte is trailing.
    let e = header_err(&file("{}", &[0; 3]));
    assert!(
        matches!(
            e,
            FormatError::TrailingBytes {
                trailing: 3,
                data_len: 3,
                used: 0
            }
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_dtype() {
    let json = r#"{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}"#;
    let e = header_err(&file(json, &[0; 16]));
    assert!(
        matches!(&e, FormatError::UnknownDtype { name, dtype } if name == "w" && dtype == "F128"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(msg.contains("`w`") && msg.contains("`F128`"), "{msg}");
}

#[test]
fn shape_whose_product_overflows() {
    // 2^32 * 2^32 elements: the element count itself overflows.
    let json = r#"{"w":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#;
    let e = header_err(&file(json, &[]));
    assert!(
        matches!(&e, FormatError::ShapeOverflow { name, shape } if name == "w" && shape.len() == 2),
        "{e:?}"
    );
    assert!(e.to_string().contains("`w`"), "{e}");
    // 2^62 F32 elements: the count fits but the byte size does not.
    let json = r#"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}"#;
    let e = header_err(&file(json, &[]));
    assert!(
        matches!(&e, FormatError::ShapeOverflow { name, .. } if name == "w"),
        "{e:?}"
    );
}

#[test]
fn shape_disagreeing_with_offsets() {
    let json = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    let e = header_err(&file(json, &[0; 8]));
    assert!(
        matches!(&e, FormatError::SizeMismatch { name, dtype: Dtype::F32, expected: 12, actual: 8, .. } if name == "w"),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("`w`") && msg.contains("12 bytes") && msg.contains("span 8"),
        "{msg}"
    );
}

#[test]
fn packed_f4_with_odd_element_count() {
    let json = r#"{"q":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    let e = header_err(&file(json, &[0; 2]));
    assert!(
        matches!(&e, FormatError::PackedNotWhole { name, dtype: Dtype::F4, elements: 3 } if name == "q"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`q`"), "{e}");
    // Four F6 elements fill three bytes; two do not.
    let ok = r#"{"q":{"dtype":"F6_E2M3","shape":[4],"data_offsets":[0,3]}}"#;
    Header::from_file_bytes(&file(ok, &[0; 3])).expect("4 F6 elements in 3 bytes");
    let bad = r#"{"q":{"dtype":"F6_E3M2","shape":[2],"data_offsets":[0,2]}}"#;
    let e = header_err(&file(bad, &[0; 2]));
    assert!(
        matches!(e, FormatError::PackedNotWhole { elements: 2, .. }),
        "{e:?}"
    );
}

/// The parser reports a repeated name as a JSON error (serde stops at the
/// second key); `DuplicateTensor` is what the writer returns, below.
#[test]
fn duplicate_tensor_names_in_a_header() {
    let json = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
    let e = header_err(&file(json, &[0; 2]));
    assert!(matches!(e, FormatError::Json(_)), "{e:?}");
    assert!(e.to_string().contains("tensor `a` appears twice"), "{e}");
    // `__metadata__` twice as well.
    let json = r#"{"__metadata__":{},"__metadata__":{}}"#;
    let e = header_err(&file(json, &[]));
    assert!(
        e.to_string().contains("`__metadata__` appears twice"),
        "{e}"
    );
}

#[test]
fn duplicate_tensor_names_given_to_the_writer() {
    let m = TensorMeta {
        name: "a".into(),
        dtype: Dtype::U8,
        shape: vec![1],
    };
    let e = write_safetensors(
        Vec::new(),
        &[(m.clone(), &[1][..]), (m, &[2][..])],
        &Default::default(),
    )
    .expect_err("duplicate names");
    assert!(
        matches!(&e, FormatError::DuplicateTensor { name } if name == "a"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`a`"), "{e}");
    // A tensor named `__metadata__` would be read back as the metadata.
    let m = TensorMeta {
        name: "__metadata__".into(),
        dtype: Dtype::U8,
        shape: vec![1],
    };
    let e = Layout::new(&[m], &Default::default()).expect_err("reserved name");
    assert!(
        matches!(&e, FormatError::BadValue { name, .. } if name == "__metadata__"),
        "{e:?}"
    );
    assert!(e.to_string().contains("reserved"), "{e}");
}

#[test]
fn non_string_metadata_values() {
    for (value, kind) in [
        ("1", "a number"),
        ("[\"x\"]", "an array"),
        ("{}", "an object"),
        ("true", "a boolean"),
    ] {
        let json = format!(r#"{{"__metadata__":{{"ok":"x","bad_key":{value}}}}}"#);
        let e = header_err(&file(&json, &[]));
        assert!(matches!(e, FormatError::Json(_)), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("`bad_key`") && msg.contains(kind), "{msg}");
    }
    // `null` as the whole map means no metadata.
    let h = Header::from_file_bytes(&file(r#"{"__metadata__":null}"#, &[])).expect("null metadata");
    assert!(h.metadata.is_empty());
}

#[test]
fn unknown_field_in_a_tensor_entry() {
    let json = r#"{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"offset":7}}"#;
    let e = header_err(&file(json, &[0]));
    assert!(matches!(e, FormatError::Json(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("tensor `w`") && msg.contains("`offset`"),
        "{msg}"
    );
}

#[test]
fn missing_field_or_wrong_types_in_a_tensor_entry() {
    for entry in [
        r#"{"dtype":"U8","shape":[1]}"#,
        r#"{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}"#,
        r#"{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}"#,
        r#"{"dtype":8,"shape":[1],"data_offsets":[0,1]}"#,
    ] {
        let json = format!(r#"{{"w":{entry}}}"#);
        let e = header_err(&file(&json, &[0]));
        assert!(matches!(e, FormatError::Json(_)), "{entry}: {e:?}");
        assert!(e.to_string().contains("tensor `w`"), "{entry}: {e}");
    }
}

#[test]
fn bad_values_from_the_writers_and_metadata() {
    // Wrong number of bytes for the shape.
    let m = TensorMeta {
        name: "w".into(),
        dtype: Dtype::F32,
        shape: vec![2],
    };
    let e = write_safetensors(Vec::new(), &[(m, &[0; 7][..])], &Default::default())
        .expect_err("7 bytes");
    assert!(
        matches!(&e, FormatError::BadValue { name, .. } if name == "w"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("`w`") && e.to_string().contains("7 bytes"),
        "{e}"
    );

    // A BOOL byte that is neither 0 nor 1 cannot be written as JSON.
    let m = TensorMeta {
        name: "mask".into(),
        dtype: Dtype::BOOL,
        shape: vec![3],
    };
    let mut w =
        modeltool_format::JsonWriter::new(Vec::new(), &Default::default(), None).expect("vec");
    let e = w
        .write_tensor(&m, &[0, 1, 2], &modeltool_format::sha256_hex(&[0, 1, 2]))
        .expect_err("byte 2");
    assert!(
        matches!(&e, FormatError::BadValue { name, .. } if name == "mask"),
        "{e:?}"
    );
    assert!(e.to_string().contains("element 2"), "{e}");

    // A stored checksum that is not 64 lowercase hex digits.
    let meta = [("modeltool.sha256.w".to_owned(), "ABC".to_owned())]
        .into_iter()
        .collect();
    let e = ModelMetadata::from_safetensors(meta).expect_err("bad checksum");
    assert!(
        matches!(&e, FormatError::BadValue { name, .. } if name == "w"),
        "{e:?}"
    );
    assert!(e.to_string().contains("`ABC`"), "{e}");

    // A stored architecture that is not JSON.
    let meta = [("modeltool.architecture".to_owned(), "{".to_owned())]
        .into_iter()
        .collect();
    let e = ModelMetadata::from_safetensors(meta).expect_err("bad architecture");
    assert!(matches!(e, FormatError::BadValue { .. }), "{e:?}");
    assert!(e.to_string().contains("modeltool.architecture"), "{e}");
}

/// A writer that refuses every byte.
#[derive(Debug)]
struct Broken;

impl std::io::Write for Broken {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("disk on fire"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn io_errors_from_the_writers_pass_through() {
    let m = TensorMeta {
        name: "w".into(),
        dtype: Dtype::U8,
        shape: vec![1],
    };
    let e = write_safetensors(Broken, &[(m, &[0][..])], &Default::default())
        .expect_err("broken writer");
    assert!(matches!(e, FormatError::Io(_)), "{e:?}");
    assert!(e.to_string().contains("disk on fire"), "{e}");
    let e = modeltool_format::JsonWriter::new(Broken, &Default::default(), None)
        .expect_err("broken writer");
    assert!(matches!(e, FormatError::Io(_)), "{e:?}");
}

/// The parser sizes its tensor list from a count of `"data_offsets"` in
/// the text: a count that is too high (the word as a metadata value or a
/// name) or too low (the key written with an escape) must change nothing
/// but that guess.
#[test]
fn a_wrong_count_of_entries_changes_nothing() {
    let entry = |name: &str, key: &str, i: u64| {
        format!(
            r#""{name}":{{"dtype":"U8","shape":[1],"{key}":[{i},{}]}}"#,
            i + 1
        )
    };
    let decoys: Vec<String> = (0..200)
        .map(|i| format!(r#""k{i}":"data_offsets""#))
        .collect();
    let mut parts = vec![format!(r#""__metadata__":{{{}}}"#, decoys.join(","))];
    for i in 0..50 {
        let key = if i % 2 == 0 {
            "data_offsets"
        } else {
            r"data\u005foffsets"
        };
        parts.push(entry(&format!("t{i}"), key, i));
    }
    parts.push(entry("data_offsets", "data_offsets", 50));
    let json = format!("{{{}}}", parts.join(","));
    let h = Header::from_file_bytes(&file(&json, &[7; 51])).expect("a valid header");
    let names: Vec<&str> = h.tensors.iter().map(|t| t.meta.name.as_str()).collect();
    let mut want: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    want.push("data_offsets".to_owned());
    assert_eq!(names, want);
    assert!(
        h.tensors
            .iter()
            .all(|t| t.meta.shape == [1] && t.byte_len() == 1)
    );
    assert_eq!(h.metadata.len(), 200);
    assert_eq!(h.metadata["k7"], "data_offsets");
}

/// An entry that fails validation while the header is read stops the
/// parse with its own error, not a JSON error, even when the text after
/// it is not JSON.
#[test]
fn a_bad_entry_is_reported_as_itself_before_the_rest_is_read() {
    let json = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"Q9","shape":[1],"data_offsets":[1,2]},"c": nonsense"#;
    let e = header_err(&file(json, &[0; 2]));
    assert!(
        matches!(&e, FormatError::UnknownDtype { name, dtype } if name == "b" && dtype == "Q9"),
        "{e:?}"
    );
}
