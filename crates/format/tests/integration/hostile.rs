//! Damaged input is an error, never a panic: valid files with bytes changed
//! or cut off, and header numbers chosen to overflow.

use std::collections::BTreeMap;

use modeltool_format::{Header, JsonModel, TensorMeta, write_safetensors};
use proptest::prelude::*;

use crate::common::{any_tensors, file, write_json};

fn safetensors_bytes(samples: &[crate::common::Sample]) -> Vec<u8> {
    let tensors: Vec<(TensorMeta, &[u8])> = samples
        .iter()
        .map(|s| (s.meta.clone(), &s.data[..]))
        .collect();
    let mut out = Vec::new();
    write_safetensors(&mut out, &tensors, &BTreeMap::new()).expect("valid tensors");
    out
}

proptest! {
    #[test]
    fn damaged_safetensors_files_do_not_panic(
        samples in any_tensors(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = safetensors_bytes(&samples);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = Header::from_file_bytes(&bytes);
        let _ = Header::from_file_bytes(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn damaged_json_files_do_not_panic(
        samples in any_tensors(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = write_json(&samples, &BTreeMap::new(), None);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        let _ = JsonModel::from_slice(&bytes);
        let _ = JsonModel::read(&bytes[..]);
        let _ = JsonModel::from_slice(&bytes[..cut.index(bytes.len())]);
    }

    #[test]
    fn any_header_numbers_give_a_result(
        dims in proptest::collection::vec(any::<u64>(), 0..4),
        begin in any::<u64>(),
        end in any::<u64>(),
        data_len in 0usize..64,
    ) {
        let json = format!(r#"{{"t":{{"dtype":"F64","shape":{dims:?},"data_offsets":[{begin},{end}]}}}}"#);
        let _ = Header::from_file_bytes(&file(&json, &vec![0; data_len]));
    }
}

/// Names and dtypes from a safetensors header reach an error line escaped
/// (no terminal control gets through) and cut, while the error's fields
/// keep them exactly.
#[test]
fn header_errors_escape_and_cut_strings_from_the_file() {
    let name = format!("w\u{1b}[2J{}", "x".repeat(10_000));
    let header = format!(
        r#"{{"{}":{{"dtype":"F\u202e128","shape":[1],"data_offsets":[0,4]}}}}"#,
        name.replace('\u{1b}', "\\u001b")
    );
    let e = crate::common::header_err(&file(&header, &[0; 4]));
    let line = e.to_string();
    assert!(
        !line.contains('\u{1b}') && !line.contains('\u{202e}'),
        "{line:?}"
    );
    assert!(
        line.contains("\\u{1b}[2J") && line.contains("\\u{202e}"),
        "{line}"
    );
    assert!(line.len() < 400, "{} bytes", line.len());
    assert!(
        matches!(&e, modeltool_format::FormatError::UnknownDtype { name: n, dtype } if *n == name && dtype == "F\u{202e}128"),
        "{e:?}"
    );
}
