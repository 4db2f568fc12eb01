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
