//! Bytes -> JSON model file -> the same bytes, for every dtype: random
//! values through proptest, and the values that are easiest to lose
//! (negative zero, subnormals, infinities, NaN payloads, integer extremes).

use std::collections::BTreeMap;

use half::{bf16, f16};
use modeltool_format::{Dtype, FormatError, JsonWriter, TensorMeta, sha256_hex};
use proptest::prelude::*;

use crate::common::{
    Sample, any_tensors, assert_json_round_trip, json_model, json_ok, noise, write_json,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_tensors_of_every_dtype_round_trip(samples in any_tensors()) {
        assert_json_round_trip(&samples);
    }
}

#[test]
fn every_dtype_round_trips_with_random_bytes_beyond_a_block() {
    // The writer formats 16384 elements per parallel block; cross a few
    // block boundaries with a count that is not a multiple of the block.
    let count = 2 * 16384 + 12;
    for (seed, dtype) in Dtype::ALL.into_iter().enumerate() {
        let len = dtype
            .byte_len(count)
            .expect("a multiple of 4 elements fills whole bytes");
        let mut data = noise(len, seed as u64 + 1);
        if dtype == Dtype::BOOL {
            data.iter_mut().for_each(|b| *b &= 1);
        }
        assert_json_round_trip(&[Sample::new("big", dtype, &[4, count / 4], data)]);
    }
}

#[test]
fn tensors_spanning_many_read_windows_round_trip() {
    // The reader takes a file 4 MB at a time and parses each window in
    // parallel pieces; arrays end mid-window, and the next tensor's array
    // starts in the same window. Three tensors of several windows each.
    let samples: Vec<Sample> = [(700_001usize, 11u64), (333_333, 12), (900_000, 13)]
        .into_iter()
        .enumerate()
        .map(|(i, (count, seed))| {
            let data = noise(count * 4, seed)
                .chunks(4)
                .flat_map(|b| {
                    // Finite f32s of every magnitude, with their sign.
                    let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    let x = f32::from_bits(bits & 0x7eff_ffff | (bits & 1) << 31);
                    x.to_le_bytes()
                })
                .collect();
            Sample::new(&format!("t{i}"), Dtype::F32, &[count], data)
        })
        .collect();
    assert_json_round_trip(&samples);
}

#[test]
fn scalars_and_empty_tensors_of_every_dtype_round_trip() {
    for dtype in Dtype::ALL {
        for shape in [&[][..], &[0], &[2, 0], &[0, 3], &[1, 0, 1]] {
            let Some(len) = dtype.byte_len(shape.iter().product()) else {
                continue; // a packed scalar: see the next test
            };
            let data = if dtype == Dtype::BOOL {
                vec![1; len]
            } else {
                noise(len, 7)
            };
            assert_json_round_trip(&[Sample::new("t", dtype, shape, data)]);
        }
    }
}

#[test]
fn a_packed_scalar_does_not_fill_a_byte() {
    for dtype in [Dtype::F4, Dtype::F6_E2M3, Dtype::F6_E3M2] {
        let meta = TensorMeta {
            name: "s".into(),
            dtype,
            shape: vec![],
        };
        let mut w = JsonWriter::new(Vec::new(), &BTreeMap::new(), None).expect("vec");
        let e = w
            .write_tensor(&meta, &[0], &sha256_hex(&[0]))
            .expect_err("packed scalar");
        assert!(
            matches!(&e, FormatError::PackedNotWhole { name, elements: 1, .. } if name == "s"),
            "{e:?}"
        );
    }
}

fn le32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le64(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le16(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn special_float_values_keep_their_bits() {
    let f32_bits = [
        0x8000_0000, // -0.0
        0x0000_0001, // smallest subnormal
        0x807f_ffff, // largest negative subnormal
        0x0080_0000, // smallest normal
        0x7f7f_ffff, // f32::MAX
        0xff7f_ffff, // f32::MIN
        0x7f80_0000, // inf
        0xff80_0000, // -inf
        0x7fc0_0000, // canonical NaN
        0xffc0_0000, // negative quiet NaN
        0x7f80_0001, // signalling NaN
        0xff80_0001,
        0x7fff_ffff,
        0x3dcc_cccd, // 0.1
    ];
    let f64_bits = [
        0x8000_0000_0000_0000,
        0x0000_0000_0000_0001,
        0x800f_ffff_ffff_ffff,
        0x7fef_ffff_ffff_ffff,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        0x7ff8_0000_0000_0000,
        0xfff8_0000_0000_0000,
        0x7ff0_0000_0000_0001,
        0x7ff8_0000_dead_beef,
        0x3fb9_9999_9999_999a, // 0.1
    ];
    let f16_bits = [
        0x8000, 0x0001, 0x83ff, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01, 0x7fff,
    ];
    let bf16_bits = [
        0x8000, 0x0001, 0x807f, 0x7f7f, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x7f81, 0xffff,
    ];
    // C64: pairs of f32, a NaN payload in either half.
    let c64_bits = [
        0x7f80_0001,
        0x8000_0000,
        0xff80_0000,
        0xffc0_0000,
        0x0000_0001,
        0x7fc0_0000,
    ];
    let samples = [
        Sample::new("f32", Dtype::F32, &[f32_bits.len()], le32(&f32_bits)),
        Sample::new("f64", Dtype::F64, &[f64_bits.len()], le64(&f64_bits)),
        Sample::new("f16", Dtype::F16, &[f16_bits.len()], le16(&f16_bits)),
        Sample::new("bf16", Dtype::BF16, &[bf16_bits.len()], le16(&bf16_bits)),
        Sample::new("c64", Dtype::C64, &[3], le32(&c64_bits)),
        Sample::new("neg0", Dtype::F32, &[], le32(&[0x8000_0000])),
    ];
    assert_json_round_trip(&samples);

    // And the text says what the bits are.
    let text = String::from_utf8(write_json(&samples, &BTreeMap::new(), None)).expect("UTF-8");
    for needle in [
        "-0.0",
        "\"inf\"",
        "\"-inf\"",
        "\"NaN\"",
        "\"NaN:0xffc00000\"",
        "\"NaN:0x7f800001\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn every_code_of_the_small_floats_round_trips() {
    for dtype in [
        Dtype::F8_E5M2,
        Dtype::F8_E4M3,
        Dtype::F8_E8M0,
        Dtype::F8_E4M3FNUZ,
        Dtype::F8_E5M2FNUZ,
    ] {
        let all: Vec<u8> = (0..=255).collect();
        assert_json_round_trip(&[Sample::new("codes", dtype, &[256], all)]);
    }
    // Packed: 16 F4 codes in 8 bytes; 64 F6 codes in 48 bytes (all 2^48 bit
    // patterns are valid, so 0..48 covers every code at every bit offset).
    let f4: Vec<u8> = (0..8).map(|i| (2 * i) | ((2 * i + 1) << 4)).collect();
    assert_json_round_trip(&[Sample::new("f4", Dtype::F4, &[16], f4)]);
    for dtype in [Dtype::F6_E2M3, Dtype::F6_E3M2] {
        let bytes: Vec<u8> = (0..48).map(|i| (i * 37 + 11) as u8).collect();
        assert_json_round_trip(&[Sample::new("f6", dtype, &[64], bytes)]);
    }
    // Every F16 and BF16 bit pattern.
    let all16: Vec<u16> = (0..=u16::MAX).collect();
    for dtype in [Dtype::F16, Dtype::BF16] {
        assert_json_round_trip(&[Sample::new("all", dtype, &[256, 256], le16(&all16))]);
    }
}

#[test]
fn integer_extremes_are_exact() {
    let samples = [
        Sample::new("u64", Dtype::U64, &[3], le64(&[u64::MAX, 0, 1 << 63])),
        Sample::new(
            "i64",
            Dtype::I64,
            &[3],
            [i64::MIN, i64::MAX, -1]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        Sample::new(
            "i32",
            Dtype::I32,
            &[2],
            [i32::MIN, i32::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        Sample::new("u32", Dtype::U32, &[1], le32(&[u32::MAX])),
        Sample::new(
            "i16",
            Dtype::I16,
            &[2],
            [i16::MIN, i16::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        Sample::new("u16", Dtype::U16, &[1], le16(&[u16::MAX])),
        Sample::new("i8", Dtype::I8, &[2], vec![0x80, 0x7f]),
        Sample::new("u8", Dtype::U8, &[1], vec![255]),
        Sample::new("bool", Dtype::BOOL, &[2], vec![0, 1]),
    ];
    assert_json_round_trip(&samples);
    let text = String::from_utf8(write_json(&samples, &BTreeMap::new(), None)).expect("UTF-8");
    assert!(
        text.contains("18446744073709551615") && text.contains("-9223372036854775808"),
        "{text}"
    );
    assert!(text.contains("[false,true]"), "{text}");
}

#[test]
fn metadata_and_architecture_round_trip() {
    let metadata: BTreeMap<String, String> = [
        ("license".to_owned(), "MIT".to_owned()),
        (
            "quote \" and \\ and \n".to_owned(),
            "ünïcödé ✓ \u{1}".to_owned(),
        ),
    ]
    .into_iter()
    .collect();
    let arch =
        serde_json::json!({"kind": "mlp", "layers": [784, 128, 10], "act": null, "eps": 1e-5});
    let text = write_json(&[], &metadata, Some(&arch));
    let m = json_ok(&text);
    assert_eq!(m.metadata, metadata);
    assert_eq!(m.architecture.as_ref(), Some(&arch));
    assert!(m.tensors.is_empty());
}

#[test]
fn readers_accept_numbers_written_in_other_ways() {
    // What another writer (Python's json, a person) may produce for F32 and friends.
    let text = json_model(
        r#""a": {"dtype": "F32", "shape": [5], "data": [1, -0.0, 1e0, 0.10000000149011612, -3]},
           "b": {"dtype": "F64", "shape": [2], "data": [1, 5e-324]},
           "c": {"dtype": "U8", "shape": [2], "data": [1, 255]},
           "d": {"dtype": "F16", "shape": [2], "data": [65504, 0.0000000596]},
           "e": {"dtype": "C64", "shape": [1], "data": [["NaN", "-inf"]]}"#,
    );
    let m = json_ok(text.as_bytes());
    let f32s: Vec<u8> = [1.0f32, -0.0, 1.0, 0.1, -3.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    assert_eq!(m.tensors[0].data, f32s);
    assert_eq!(m.tensors[1].data, le64(&[1f64.to_bits(), 1]));
    assert_eq!(m.tensors[2].data, [1, 255]);
    assert_eq!(m.tensors[3].data, le16(&[f16::MAX.to_bits(), 1]));
    assert_eq!(m.tensors[4].data, le32(&[0x7fc0_0000, 0xff80_0000]));
}

/// values.rs documents that "the reader rounds a decimal to the nearest
/// value of the tensor's dtype (ties to even)". Each decimal below lies just
/// above the midpoint between two neighbours of its dtype, so the nearest
/// value is the upper one; rounding it first to f64 lands exactly on the
/// midpoint, and the second rounding (ties to even) picks the lower one.
/// The F32 case is realistic: `1.0000000596046448` is how Python prints the
/// f64 1 + 2^-24.
#[test]
fn decimals_round_once_to_the_nearest_value() {
    let cases = [
        (
            "F32",
            "1.0000000596046448",
            0x3f80_0001u32.to_le_bytes().to_vec(),
        ),
        // An integer: 2^63 + 2^39 + 1 becomes the midpoint 2^63 + 2^39 as f64.
        (
            "F32",
            "9223372586610589697",
            0x5f00_0001u32.to_le_bytes().to_vec(),
        ),
        (
            "F16",
            "1.00048828125000000001",
            0x3c01u16.to_le_bytes().to_vec(),
        ),
        (
            "BF16",
            "1.00390625000000000001",
            0x3f81u16.to_le_bytes().to_vec(),
        ),
        ("F8_E4M3", "1.06250000000000000001", vec![0x39]),
    ];
    let mut wrong = Vec::new();
    for (dtype, decimal, nearest) in cases {
        let text = json_model(&format!(
            r#""w": {{"dtype": "{dtype}", "shape": [1], "data": [{decimal}]}}"#
        ));
        let got = json_ok(text.as_bytes()).tensors.remove(0).data;
        if got != nearest {
            wrong.push(format!(
                "{decimal} as {dtype}: got {got:02x?}, nearest is {nearest:02x?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// F16, BF16, F32 and the FN/FNUZ F8 types reject a finite number beyond
/// their range; F8_E5M2, which has infinities, turns it into infinity.
#[test]
fn out_of_range_finite_values_are_rejected_for_every_float_type() {
    // Each value is beyond the largest finite value plus half an ulp.
    for (dtype, value) in [
        ("F16", "70000"),
        ("BF16", "1e39"),
        ("F32", "1e39"),
        ("F8_E5M2", "1e6"),
    ] {
        let text = json_model(&format!(
            r#""w": {{"dtype": "{dtype}", "shape": [1], "data": [{value}]}}"#
        ));
        let read = modeltool_format::JsonModel::from_slice(text.as_bytes());
        assert!(read.is_err(), "{value} accepted as {dtype}: {read:?}");
    }
}

#[test]
fn rounding_to_a_short_type_is_to_nearest() {
    // 1.1 is between bf16 1.09375 (0x3f8c) and 1.1015625 (0x3f8d); nearer the latter.
    let text = json_model(
        r#""b": {"dtype": "BF16", "shape": [1], "data": [1.1]},
           "e": {"dtype": "F8_E4M3", "shape": [3], "data": [448, 460, -0.0]}"#,
    );
    let m = json_ok(text.as_bytes());
    assert_eq!(m.tensors[0].data, bf16::from_bits(0x3f8d).to_le_bytes());
    // 460 is within half an ulp (16) of the maximum 448; -0.0 keeps its sign.
    assert_eq!(m.tensors[1].data, [0x7e, 0x7e, 0x80]);
}
