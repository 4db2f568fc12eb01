//! Files our writer makes, of any metadata and tensors, parse back to the
//! same metadata, shapes and bytes, from the whole file and from a prefix.

use modeltool_format::gguf::{Array, GgmlType, GgufHeader, GgufWriter, Parsed, Value, parse};
use proptest::prelude::*;

fn comparable_f32() -> impl Strategy<Value = f32> {
    prop::num::f32::NORMAL
        | prop::num::f32::SUBNORMAL
        | prop::num::f32::ZERO
        | prop::num::f32::INFINITE
}

fn comparable_f64() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::ZERO
}

fn array() -> impl Strategy<Value = Array> {
    let leaf = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Array::U8),
        prop::collection::vec(any::<i8>(), 0..8).prop_map(Array::I8),
        prop::collection::vec(any::<u16>(), 0..8).prop_map(Array::U16),
        prop::collection::vec(any::<i16>(), 0..8).prop_map(Array::I16),
        prop::collection::vec(any::<u32>(), 0..8).prop_map(Array::U32),
        prop::collection::vec(any::<i32>(), 0..8).prop_map(Array::I32),
        prop::collection::vec(comparable_f32(), 0..8).prop_map(Array::F32),
        prop::collection::vec(any::<bool>(), 0..8).prop_map(Array::Bool),
        prop::collection::vec(".{0,6}", 0..8).prop_map(Array::String),
        prop::collection::vec(any::<u64>(), 0..8).prop_map(Array::U64),
        prop::collection::vec(any::<i64>(), 0..8).prop_map(Array::I64),
        prop::collection::vec(comparable_f64(), 0..8).prop_map(Array::F64),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Array::Array)
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        comparable_f32().prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        ".{0,12}".prop_map(Value::String),
        array().prop_map(Value::Array),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        comparable_f64().prop_map(Value::F64),
    ]
}

/// A tensor: type, row-major shape (last dimension whole blocks), bytes.
fn tensor() -> impl Strategy<Value = (GgmlType, Vec<u64>, Vec<u8>)> {
    (
        prop::sample::select(GgmlType::ALL.to_vec()),
        prop::collection::vec(0u64..4, 0..4),
        0u64..3,
    )
        .prop_flat_map(|(t, outer, blocks)| {
            let mut shape = outer;
            shape.push(blocks * u64::from(t.block_size()));
            let size = t.byte_size(shape.iter().product()).unwrap() as usize;
            (
                Just(t),
                Just(shape),
                prop::collection::vec(any::<u8>(), size),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn written_files_read_back(
        meta in prop::collection::vec(("[a-z.]{1,10}", value()), 0..6),
        tensors in prop::collection::vec(tensor(), 0..5),
        alignment in prop::sample::select(vec![8u32, 16, 24, 32, 40, 64, 96]),
    ) {
        let mut w = GgufWriter::new();
        w.set_alignment(alignment).unwrap();
        let mut kept = vec![("general.alignment".to_owned(), Value::U32(alignment))];
        for (k, v) in meta {
            if k != "general.alignment" && w.add_metadata(k.clone(), v.clone()).is_ok() {
                kept.push((k, v));
            }
        }
        for (i, (t, shape, data)) in tensors.iter().enumerate() {
            w.add_tensor(format!("t{i}"), shape, *t, data.clone()).unwrap();
        }
        let file = w.to_bytes().unwrap();
        prop_assert_eq!(file.len() as u64, w.file_len());
        let h = GgufHeader::from_file_bytes(&file).unwrap();
        prop_assert_eq!(&h.metadata, &kept);
        prop_assert_eq!(h.alignment, alignment);
        prop_assert_eq!(h.data_start % u64::from(alignment), 0);
        prop_assert_eq!(h.tensors.len(), tensors.len());
        for (i, (t, shape, data)) in tensors.iter().enumerate() {
            prop_assert_eq!(h.tensors[i].ggml_type, *t);
            prop_assert_eq!(&h.tensors[i].shape(), shape);
            prop_assert_eq!(h.tensor_data(&file, i).unwrap(), &data[..]);
        }
        // The file ends on an aligned boundary after the last tensor.
        prop_assert_eq!((file.len() as u64 - h.data_start) % u64::from(alignment), 0);
        // From a prefix of any length: more asked for, or the same header.
        for cut in [0, 1, 4, 8, 23, 24, h.header_len as usize - 1, h.header_len as usize] {
            match parse(&file[..cut.min(file.len())], file.len() as u64).unwrap() {
                Parsed::NeedMore { at_least } => prop_assert!(at_least > cut as u64 && at_least <= h.header_len),
                Parsed::Header(p) => {
                    prop_assert!(cut as u64 >= h.header_len);
                    prop_assert_eq!(p, h.clone());
                }
            }
        }
    }
}

#[test]
fn a_tensor_with_no_dimensions_is_a_scalar() {
    let mut w = GgufWriter::new();
    w.add_tensor("s", &[], GgmlType::F32, 1.5f32.to_le_bytes().to_vec())
        .unwrap();
    let file = w.to_bytes().unwrap();
    let h = GgufHeader::from_file_bytes(&file).unwrap();
    assert_eq!(
        (h.tensors[0].dims.len(), h.tensors[0].element_count()),
        (0, 1)
    );
    assert_eq!(h.dequantize_tensor(&file, 0).unwrap(), [1.5]);
}
