//! The PyTorch pickle interpreter and checkpoint reader on arbitrary bytes.
//!
//! The input is read twice: as one pickle (`parse_pickle`, then the
//! checkpoint walk over its value) and as a whole checkpoint file
//! (`PytorchFile::parse`: zip, legacy stream). Beyond "no panic", an
//! accepted input must keep what docs/PYTORCH.md promises: the pickle's
//! length is within the input; no value names a code-execution entry point;
//! every tensor's view lies inside its storage, and copying it out gives
//! exactly its contiguous size; values render as text and as JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modeltool_format::pytorch::{
    ByteOrder, Checkpoint, PickleOptions, PytorchFile, Value, never_allowed, parse_pickle,
};

/// Largest storage the target fabricates to copy a view out of.
const MAX_STORAGE: u64 = 1 << 20;

fn no_forbidden_names(v: &Value) {
    match v {
        Value::Global(g) => assert!(!never_allowed(&g.module, &g.name), "{g} accepted"),
        Value::Object(o) => {
            assert!(!never_allowed(&o.class.module, &o.class.name), "{} accepted", o.class);
            o.args.iter().for_each(no_forbidden_names);
            if let Some(s) = &o.state {
                no_forbidden_names(s);
            }
        }
        Value::List(items) | Value::Tuple(items) | Value::Set(items) => {
            items.iter().for_each(no_forbidden_names)
        }
        Value::Dict(items) => items.iter().for_each(|(k, v)| {
            no_forbidden_names(k);
            no_forbidden_names(v);
        }),
        _ => {}
    }
}

fn check_checkpoint(c: &Checkpoint) {
    for t in &c.tensors {
        let s = &c.storages[&t.storage];
        let r = t.storage_range();
        assert!(r.start <= r.end && r.end <= s.nbytes, "`{}` outside its storage", t.name);
        if s.nbytes <= MAX_STORAGE {
            let storage = vec![0xa5u8; (r.end - r.start) as usize];
            let out = t
                .contiguous_bytes(&storage, ByteOrder::Big)
                .expect("a checked view copies out");
            assert_eq!(out.len(), t.byte_len());
        }
    }
    for (_, v) in &c.metadata {
        let _ = v.to_string();
        let _ = serde_json::to_string(v).expect("values serialise");
    }
}

fuzz_target!(|data: &[u8]| {
    let allow = ["argparse.Namespace".to_owned()];
    for torchscript in [false, true] {
        let opts = PickleOptions {
            allow_globals: &allow,
            torchscript,
            tar_objects: None,
        };
        if let Ok(p) = parse_pickle(data, &opts) {
            assert!(p.len >= 1 && p.len <= data.len());
            no_forbidden_names(&p.value);
            if let Ok(c) = Checkpoint::from_value(&p.value) {
                check_checkpoint(&c);
            }
        }
    }
    if let Ok(file) = PytorchFile::parse(data, &allow) {
        check_checkpoint(&file.checkpoint);
        for t in &file.checkpoint.tensors {
            let bytes = file.tensor_bytes(data, t).expect("an accepted tensor reads");
            assert_eq!(bytes.len(), t.byte_len());
        }
        let _ = file.check_crc(data);
    }
});
