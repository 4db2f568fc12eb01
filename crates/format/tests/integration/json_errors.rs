//! A JSON model file that is not valid is an error, from a slice and from a
//! stream alike, whose message names the tensor (or key) at fault.

use modeltool_format::{
    Dtype, FormatError, JsonErrorKind, JsonModel, JsonWriter, TensorMeta, sha256_hex,
};

use crate::common::{json_err, json_fail, json_model, json_ok};

const SUM: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One tensor entry, with a valid checksum-shaped string.
fn tensor(name: &str, dtype: &str, shape: &str, data: &str) -> String {
    json_model(&format!(
        r#""{name}": {{"dtype": "{dtype}", "shape": {shape}, "data": {data}, "sha256": "{SUM}"}}"#
    ))
}

#[test]
fn the_valid_base_file_reads() {
    let m = json_ok(tensor("w", "F32", "[2]", "[1.5, -2]").as_bytes());
    assert_eq!(m.tensors.len(), 1);
    let t = &m.tensors[0];
    assert_eq!(
        t.meta,
        TensorMeta {
            name: "w".into(),
            dtype: Dtype::F32,
            shape: vec![2]
        }
    );
    let expected: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(t.data, expected);
    assert_eq!(t.sha256.map(|s| s.to_string()).as_deref(), Some(SUM));
}

#[test]
fn sha256_is_optional_and_metadata_and_architecture_default_to_empty() {
    let m = json_ok(br#"{"format": "modeltool.json/1", "tensors": {"w": {"dtype": "U8", "shape": [], "data": [7]}}}"#);
    assert!(m.metadata.is_empty());
    assert_eq!(m.architecture, None);
    assert_eq!(m.tensors[0].data, [7]);
    assert_eq!(m.tensors[0].sha256, None);
}

/// The tensor named and the kind of error, for a file that must fail.
fn err_in(text: &str) -> (Option<String>, JsonErrorKind) {
    json_err(text)
}

#[test]
fn bare_nan_is_not_json() {
    for bare in ["NaN", "Infinity", "-Infinity", "nan"] {
        let (name, kind) = err_in(&tensor("w", "F32", "[1]", &format!("[{bare}]")));
        assert_eq!(name.as_deref(), Some("w"), "{bare}");
        assert!(
            matches!(kind, JsonErrorKind::Syntax { .. }),
            "{bare}: {kind:?}"
        );
    }
}

#[test]
fn too_few_values_for_the_shape() {
    let (name, kind) = err_in(&tensor("w", "F32", "[3]", "[1.0, 2.0]"));
    assert_eq!(name.as_deref(), Some("w"));
    assert_eq!(
        kind,
        JsonErrorKind::CountMismatch {
            count: 2,
            shape: vec![3],
            expected: 3
        }
    );
}

#[test]
fn too_many_values_for_the_shape() {
    let (name, kind) = err_in(&tensor("w", "F32", "[2]", "[1.0, 2.0, 3.0]"));
    assert_eq!(name.as_deref(), Some("w"));
    assert_eq!(kind, JsonErrorKind::TooManyValues { limit: 2 });
    // With the shape after the data, the count is checked at the end.
    let text = json_model(r#""w": {"dtype": "U8", "data": [1, 2, 3], "shape": [2]}"#);
    let (name, kind) = err_in(&text);
    assert_eq!(name.as_deref(), Some("w"));
    assert!(
        matches!(
            kind,
            JsonErrorKind::CountMismatch {
                count: 3,
                expected: 2,
                ..
            }
        ),
        "{kind:?}"
    );
    // A scalar holds exactly one value.
    let (name, kind) = err_in(&tensor("s", "I32", "[]", "[]"));
    assert_eq!(name.as_deref(), Some("s"));
    assert!(
        matches!(
            kind,
            JsonErrorKind::CountMismatch {
                count: 0,
                expected: 1,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn wrong_format_tag() {
    let (_, kind) = err_in(r#"{"format": "modeltool.json/2", "tensors": {}}"#);
    assert_eq!(
        kind,
        JsonErrorKind::WrongFormat {
            found: "modeltool.json/2".into()
        }
    );
    let (_, kind) = err_in(r#"{"format": 1, "tensors": {}}"#);
    assert!(
        matches!(
            kind,
            JsonErrorKind::BadValue {
                key: "format",
                offset: 11,
                ..
            }
        ),
        "{kind:?}"
    );
}

#[test]
fn missing_format() {
    let (_, kind) = err_in(r#"{"metadata": {}, "tensors": {}}"#);
    assert_eq!(kind, JsonErrorKind::MissingKey { key: "format" });
    let (_, kind) = err_in(r#"{"format": "modeltool.json/1"}"#);
    assert_eq!(kind, JsonErrorKind::MissingKey { key: "tensors" });
    for key in ["dtype", "shape", "data"] {
        let entry: Vec<&str> = [r#""dtype": "U8""#, r#""shape": [1]"#, r#""data": [1]"#]
            .into_iter()
            .filter(|e| !e.contains(key))
            .collect();
        let (name, kind) = err_in(&json_model(&format!(r#""w": {{{}}}"#, entry.join(", "))));
        assert_eq!(name.as_deref(), Some("w"));
        assert_eq!(kind, JsonErrorKind::MissingKey { key });
    }
}

#[test]
fn unknown_keys() {
    let (name, kind) = err_in(r#"{"format": "modeltool.json/1", "tensors": {}, "extra": 1}"#);
    assert_eq!(name, None);
    assert!(
        matches!(&kind, JsonErrorKind::UnknownKey { key, .. } if key == "extra"),
        "{kind:?}"
    );
    let (name, kind) = err_in(&json_model(
        r#""w": {"dtype": "U8", "shape": [1], "data": [1], "scale": 2}"#,
    ));
    assert_eq!(name.as_deref(), Some("w"));
    assert!(
        matches!(&kind, JsonErrorKind::UnknownKey { key, .. } if key == "scale"),
        "{kind:?}"
    );
}

#[test]
fn repeated_keys() {
    let (_, kind) =
        err_in(r#"{"format": "modeltool.json/1", "format": "modeltool.json/1", "tensors": {}}"#);
    assert_eq!(kind, JsonErrorKind::RepeatedKey { key: "format" });
    let (name, kind) = err_in(&json_model(
        r#""w": {"dtype": "U8", "shape": [1], "data": [1], "data": [2]}"#,
    ));
    assert_eq!(name.as_deref(), Some("w"));
    assert_eq!(kind, JsonErrorKind::RepeatedKey { key: "data" });
}

#[test]
fn duplicate_tensor_names() {
    let one = r#"{"dtype": "U8", "shape": [1], "data": [1]}"#;
    let (_, kind) = err_in(&json_model(&format!(r#""w": {one}, "w": {one}"#)));
    assert_eq!(kind, JsonErrorKind::DuplicateTensor { name: "w".into() });
}

#[test]
fn bad_sha256() {
    let upper = SUM.replace('0', "A");
    for bad in [&SUM[1..], &upper, &format!("{SUM}0"), "xyz"] {
        let text = json_model(&format!(
            r#""w": {{"dtype": "U8", "shape": [1], "data": [1], "sha256": "{bad}"}}"#
        ));
        let (name, kind) = err_in(&text);
        assert_eq!(name.as_deref(), Some("w"));
        assert_eq!(
            kind,
            JsonErrorKind::BadSha256 {
                found: bad.to_owned()
            }
        );
    }
}

#[test]
fn values_out_of_range_for_the_dtype() {
    for (dtype, value) in [
        ("U8", "300"),
        ("U8", "-1"),
        ("I8", "128"),
        ("U64", "18446744073709551616"),
        ("I64", "-9223372036854775809"),
        ("F32", "1e39"),
        ("F16", "70000"),
        ("BF16", "1e39"),
        ("F8_E4M3", "1000"),
        ("F8_E4M3FNUZ", "1000"),
        ("F8_E8M0", "-1"),
    ] {
        let (name, kind) = err_in(&tensor("w", dtype, "[1]", &format!("[{value}]")));
        assert_eq!(name.as_deref(), Some("w"), "{value} in {dtype}");
        assert!(
            matches!(kind, JsonErrorKind::BadElement { index: 0, .. }),
            "{value} in {dtype}: {kind:?}"
        );
    }
    let (_, kind) = err_in(&tensor("w", "U8", "[2]", "[1, 300]"));
    assert!(
        matches!(&kind, JsonErrorKind::BadElement { index: 1, reason } if reason.contains("300 is out of range for U8")),
        "{kind:?}"
    );
}

#[test]
fn an_error_quotes_a_short_excerpt_of_a_huge_number() {
    // A number (or string) of 10 million characters is valid JSON, but not
    // a U8 or a C64 value; the error, and the line it makes, stay short.
    let huge = "9".repeat(10_000_000);
    for (dtype, data) in [
        ("U8", format!("[{huge}]")),
        ("C64", format!("[{huge}]")),
        ("C64", format!("[\"{huge}\"]")),
    ] {
        let e = json_fail(&tensor("w", dtype, "[1]", &data));
        match &e {
            FormatError::JsonModel(j) => match &j.kind {
                JsonErrorKind::BadElement { index: 0, reason } => {
                    assert!(
                        reason.len() < 200,
                        "{dtype}: a reason of {} bytes",
                        reason.len()
                    )
                }
                other => panic!("{dtype}: {other:?}"),
            },
            other => panic!("{dtype}: {other:?}"),
        }
        let line = e.to_string();
        assert!(line.len() < 300, "{dtype}: {} bytes", line.len());
    }
}

#[test]
fn strings_from_the_file_are_escaped_in_the_message() {
    let text = json_model(r#""w\u001b[2J": {"dtype": "F\u202e32", "shape": [1], "data": [1]}"#);
    let e = json_fail(&text);
    let line = e.to_string();
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{202e}'),
        "{line:?}"
    );
    assert!(
        line.contains("\\u{1b}[2J") && line.contains("\\u{202e}"),
        "{line}"
    );
    match e {
        FormatError::JsonModel(j) => {
            assert_eq!(j.tensor.as_deref(), Some("w\u{1b}[2J"));
            assert_eq!(
                j.kind,
                JsonErrorKind::UnknownDtype {
                    dtype: "F\u{202e}32".into()
                }
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_of_the_wrong_kind() {
    for (dtype, value) in [
        ("U8", "1.5"),
        ("U8", "true"),
        ("BOOL", "1"),
        ("F32", "true"),
        ("F32", "\"nan\""),
        ("F32", "null"),
        ("F32", "{}"),
        ("F8_E4M3", "\"inf\""),
        ("F4", "\"NaN\""),
        ("F32", "\"NaN:0x7f800000\""),
        ("F32", "\"NaN:0x17fc00000\""),
    ] {
        let (name, kind) = err_in(&tensor("w", dtype, "[1]", &format!("[{value}]")));
        assert_eq!(name.as_deref(), Some("w"), "{value} in {dtype}");
        assert!(
            matches!(kind, JsonErrorKind::BadElement { index: 0, .. }),
            "{value} in {dtype}: {kind:?}"
        );
    }
}

#[test]
fn nested_array_in_a_f32_tensor() {
    let (name, kind) = err_in(&tensor("w", "F32", "[2, 2]", "[[1, 2], [3, 4]]"));
    assert_eq!(name.as_deref(), Some("w"));
    assert!(
        matches!(&kind, JsonErrorKind::BadElement { index: 0, reason } if reason.contains("nested array")),
        "{kind:?}"
    );
}

#[test]
fn c64_values_are_pairs() {
    for data in ["[1.0]", "[[1.0]]", "[[1.0, 2.0, 3.0]]", "[[[1.0], 2.0]]"] {
        let (name, kind) = err_in(&tensor("z", "C64", "[1]", data));
        assert_eq!(name.as_deref(), Some("z"), "{data}");
        assert!(
            matches!(kind, JsonErrorKind::BadElement { index: 0, .. }),
            "{data}: {kind:?}"
        );
    }
}

#[test]
fn packed_f4_with_odd_value_count() {
    let e = json_fail(&tensor("q", "F4", "[3]", "[0.5, 1, 6]"));
    assert!(
        matches!(&e, FormatError::PackedNotWhole { name, dtype: Dtype::F4, elements: 3 } if name == "q"),
        "{e:?}"
    );
}

#[test]
fn unknown_dtype() {
    let (name, kind) = err_in(&tensor("w", "F128", "[1]", "[1]"));
    assert_eq!(name.as_deref(), Some("w"));
    assert_eq!(
        kind,
        JsonErrorKind::UnknownDtype {
            dtype: "F128".into()
        }
    );
}

#[test]
fn deeply_nested_architecture_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(10_000);
    let text =
        format!(r#"{{"format": "modeltool.json/1", "architecture": {deep}, "tensors": {{}}}}"#);
    let (_, kind) = err_in(&text);
    assert!(
        matches!(kind, JsonErrorKind::TooDeep { max: 128, .. }),
        "{kind:?}"
    );
    // The same inside a tensor's data and inside metadata.
    err_in(&tensor("w", "C64", "[1]", &deep));
    err_in(&format!(
        r#"{{"format": "modeltool.json/1", "metadata": {{"k": {deep}}}, "tensors": {{}}}}"#
    ));
}

#[test]
fn trailing_garbage_after_the_object() {
    let good = tensor("w", "U8", "[1]", "[1]");
    json_ok(format!("{good}\n  \n").as_bytes());
    for tail in ["x", "{}", ",", "0"] {
        let (_, kind) = err_in(&format!("{good} {tail}"));
        assert_eq!(
            kind,
            JsonErrorKind::Syntax {
                offset: good.len() as u64 + 1,
                what: "trailing characters".into()
            },
            "{tail}"
        );
    }
    // A trailing comma inside is not JSON either.
    let (_, kind) = err_in(&tensor("w", "U8", "[2]", "[1, 2,]"));
    assert!(
        matches!(&kind, JsonErrorKind::Syntax { what, .. } if what == "trailing comma"),
        "{kind:?}"
    );
}

#[test]
fn non_string_metadata_values() {
    let (_, kind) =
        err_in(r#"{"format": "modeltool.json/1", "metadata": {"epochs": 3}, "tensors": {}}"#);
    assert!(
        matches!(&kind, JsonErrorKind::BadValue { key: "metadata", reason, .. } if reason.contains("`epochs`") && reason.contains("not a string")),
        "{kind:?}"
    );
}

#[test]
fn not_json_at_all() {
    for text in ["", "   ", "[]", "\"modeltool.json/1\"", "{", "\u{feff}{}"] {
        let e = JsonModel::from_slice(text.as_bytes()).expect_err(text);
        assert!(
            matches!(
                &e,
                FormatError::JsonModel(j) if matches!(
                    j.kind,
                    JsonErrorKind::Eof { .. } | JsonErrorKind::WrongType { offset: 0, .. } | JsonErrorKind::Syntax { .. }
                )
            ),
            "{text:?}: {e:?}"
        );
        JsonModel::read(text.as_bytes()).expect_err(text);
    }
}

/// What the JSON writer accepts, its reader must read back. Given a checksum
/// that is not 64 lowercase hex digits, the writer writes it anyway and the
/// file it produced cannot be read.
#[test]
fn the_writer_refuses_a_malformed_checksum() {
    let m = TensorMeta {
        name: "w".into(),
        dtype: Dtype::U8,
        shape: vec![1],
    };
    let mut w = JsonWriter::new(Vec::new(), &Default::default(), None).expect("vec");
    let upper = sha256_hex(&[1]).to_uppercase();
    let e = w
        .write_tensor(&m, &[1], &upper)
        .expect_err("an upper-case checksum");
    assert!(
        matches!(&e, FormatError::BadValue { name, .. } if name == "w"),
        "{e:?}"
    );
}

/// Same for a name written twice: the safetensors writer returns
/// `DuplicateTensor`, the JSON writer writes a file its reader rejects.
#[test]
fn the_writer_refuses_a_repeated_name() {
    let m = TensorMeta {
        name: "w".into(),
        dtype: Dtype::U8,
        shape: vec![1],
    };
    let mut w = JsonWriter::new(Vec::new(), &Default::default(), None).expect("vec");
    w.write_tensor(&m, &[1], &sha256_hex(&[1])).expect("first");
    let e = w
        .write_tensor(&m, &[2], &sha256_hex(&[2]))
        .expect_err("the same name again");
    assert!(
        matches!(&e, FormatError::DuplicateTensor { name } if name == "w"),
        "{e:?}"
    );
}
