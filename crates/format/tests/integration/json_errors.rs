//! A JSON model file that is not valid is an error, from a slice and from a
//! stream alike, whose message names the tensor (or key) at fault.

use modeltool_format::{Dtype, FormatError, JsonModel, JsonWriter, TensorMeta, sha256_hex};

use crate::common::{json_err, json_model, json_ok};

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
    assert_eq!(t.sha256.as_deref(), Some(SUM));
}

#[test]
fn sha256_is_optional_and_metadata_and_architecture_default_to_empty() {
    let m = json_ok(br#"{"format": "modeltool.json/1", "tensors": {"w": {"dtype": "U8", "shape": [], "data": [7]}}}"#);
    assert!(m.metadata.is_empty());
    assert_eq!(m.architecture, None);
    assert_eq!(m.tensors[0].data, [7]);
    assert_eq!(m.tensors[0].sha256, None);
}

#[test]
fn bare_nan_is_not_json() {
    for bare in ["NaN", "Infinity", "-Infinity", "nan"] {
        let msg = json_err(&tensor("w", "F32", "[1]", &format!("[{bare}]")));
        assert!(msg.contains("tensor `w`"), "{bare}: {msg}");
    }
}

#[test]
fn too_few_values_for_the_shape() {
    let msg = json_err(&tensor("w", "F32", "[3]", "[1.0, 2.0]"));
    assert!(
        msg.contains("tensor `w`") && msg.contains("2 values") && msg.contains("needs 3"),
        "{msg}"
    );
}

#[test]
fn too_many_values_for_the_shape() {
    let msg = json_err(&tensor("w", "F32", "[2]", "[1.0, 2.0, 3.0]"));
    assert!(
        msg.contains("tensor `w`") && msg.contains("more values than its shape allows (2)"),
        "{msg}"
    );
    // With the shape after the data, the count is checked at the end.
    let text = json_model(r#""w": {"dtype": "U8", "data": [1, 2, 3], "shape": [2]}"#);
    let msg = json_err(&text);
    assert!(
        msg.contains("tensor `w`") && msg.contains("3 values"),
        "{msg}"
    );
    // A scalar holds exactly one value.
    let msg = json_err(&tensor("s", "I32", "[]", "[]"));
    assert!(
        msg.contains("tensor `s`") && msg.contains("0 values"),
        "{msg}"
    );
}

#[test]
fn wrong_format_tag() {
    let text = r#"{"format": "modeltool.json/2", "tensors": {}}"#;
    let msg = json_err(text);
    assert!(
        msg.contains("modeltool.json/2") && msg.contains("modeltool.json/1"),
        "{msg}"
    );
    let msg = json_err(r#"{"format": 1, "tensors": {}}"#);
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn missing_format() {
    let msg = json_err(r#"{"metadata": {}, "tensors": {}}"#);
    assert!(msg.contains("missing `format`"), "{msg}");
    let msg = json_err(r#"{"format": "modeltool.json/1"}"#);
    assert!(msg.contains("missing `tensors`"), "{msg}");
}

#[test]
fn unknown_keys() {
    let msg = json_err(r#"{"format": "modeltool.json/1", "tensors": {}, "extra": 1}"#);
    assert!(msg.contains("unknown key `extra`"), "{msg}");
    let msg = json_err(&json_model(
        r#""w": {"dtype": "U8", "shape": [1], "data": [1], "scale": 2}"#,
    ));
    assert!(
        msg.contains("tensor `w`") && msg.contains("unknown key `scale`"),
        "{msg}"
    );
}

#[test]
fn repeated_keys() {
    let msg =
        json_err(r#"{"format": "modeltool.json/1", "format": "modeltool.json/1", "tensors": {}}"#);
    assert!(msg.contains("`format` appears twice"), "{msg}");
    let msg = json_err(&json_model(
        r#""w": {"dtype": "U8", "shape": [1], "data": [1], "data": [2]}"#,
    ));
    assert!(
        msg.contains("tensor `w`") && msg.contains("`data` appears twice"),
        "{msg}"
    );
}

#[test]
fn duplicate_tensor_names() {
    let one = r#"{"dtype": "U8", "shape": [1], "data": [1]}"#;
    let msg = json_err(&json_model(&format!(r#""w": {one}, "w": {one}"#)));
    assert!(msg.contains("tensor `w` appears twice"), "{msg}");
}

#[test]
fn bad_sha256() {
    let upper = SUM.replace('0', "A");
    for bad in [&SUM[1..], &upper, &format!("{SUM}0"), "xyz"] {
        let text = json_model(&format!(
            r#""w": {{"dtype": "U8", "shape": [1], "data": [1], "sha256": "{bad}"}}"#
        ));
        let msg = json_err(&text);
        assert!(
            msg.contains("tensor `w`") && msg.contains("not 64 lowercase hex digits"),
            "{bad}: {msg}"
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
        let msg = json_err(&tensor("w", dtype, "[1]", &format!("[{value}]")));
        assert!(msg.contains("tensor `w`"), "{value} in {dtype}: {msg}");
    }
    let msg = json_err(&tensor("w", "U8", "[2]", "[1, 300]"));
    assert!(
        msg.contains("value 1") && msg.contains("300 is out of range for U8"),
        "{msg}"
    );
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
        let msg = json_err(&tensor("w", dtype, "[1]", &format!("[{value}]")));
        assert!(msg.contains("tensor `w`"), "{value} in {dtype}: {msg}");
    }
}

#[test]
fn nested_array_in_a_f32_tensor() {
    let msg = json_err(&tensor("w", "F32", "[2, 2]", "[[1, 2], [3, 4]]"));
    assert!(
        msg.contains("tensor `w`") && msg.contains("nested array"),
        "{msg}"
    );
}

#[test]
fn c64_values_are_pairs() {
    for data in ["[1.0]", "[[1.0]]", "[[1.0, 2.0, 3.0]]", "[[[1.0], 2.0]]"] {
        let msg = json_err(&tensor("z", "C64", "[1]", data));
        assert!(msg.contains("tensor `z`"), "{data}: {msg}");
    }
}

#[test]
fn packed_f4_with_odd_value_count() {
    let msg = json_err(&tensor("q", "F4", "[3]", "[0.5, 1, 6]"));
    assert!(
        msg.contains("tensor `q`") && msg.contains("whole bytes"),
        "{msg}"
    );
}

#[test]
fn unknown_dtype() {
    let msg = json_err(&tensor("w", "F128", "[1]", "[1]"));
    assert!(
        msg.contains("tensor `w`") && msg.contains("`F128`"),
        "{msg}"
    );
}

#[test]
fn deeply_nested_architecture_is_an_error_not_a_stack_overflow() {
    let deep = "[".repeat(10_000);
    let text =
        format!(r#"{{"format": "modeltool.json/1", "architecture": {deep}, "tensors": {{}}}}"#);
    let msg = json_err(&text);
    assert!(msg.contains("recursion limit"), "{msg}");
    // The same inside a tensor's data and inside metadata.
    json_err(&tensor("w", "C64", "[1]", &deep));
    json_err(&format!(
        r#"{{"format": "modeltool.json/1", "metadata": {{"k": {deep}}}, "tensors": {{}}}}"#
    ));
}

#[test]
fn trailing_garbage_after_the_object() {
    let good = tensor("w", "U8", "[1]", "[1]");
    json_ok(format!("{good}\n  \n").as_bytes());
    for tail in ["x", "{}", ",", "0"] {
        let msg = json_err(&format!("{good} {tail}"));
        assert!(msg.contains("trailing characters"), "{tail}: {msg}");
    }
    // A trailing comma inside is not JSON either.
    json_err(&tensor("w", "U8", "[2]", "[1, 2,]"));
}

#[test]
fn non_string_metadata_values() {
    let msg =
        json_err(r#"{"format": "modeltool.json/1", "metadata": {"epochs": 3}, "tensors": {}}"#);
    assert!(
        msg.contains("`epochs`") && msg.contains("not a string"),
        "{msg}"
    );
}

#[test]
fn not_json_at_all() {
    for text in ["", "   ", "[]", "\"modeltool.json/1\"", "{", "\u{feff}{}"] {
        let e = JsonModel::from_slice(text.as_bytes()).expect_err(text);
        assert!(matches!(e, FormatError::Json(_)), "{text:?}: {e:?}");
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
