//! The JSON model reader on arbitrary bytes.
//!
//! Checks that reading from a slice and from a stream (handed out in small,
//! uneven pieces) agree, on the model or on the error, and that an accepted model survives
//! JSON -> JSON and JSON -> safetensors bit-exactly: same names, dtypes,
//! shapes, bytes, metadata and architecture.
#![no_main]

use std::collections::BTreeMap;
use std::io::Read;

use libfuzzer_sys::fuzz_target;
use modeltool_format::{
    Checksum, Header, JsonModel, JsonWriter, METADATA_KEY, ModelMetadata, TensorMeta,
    write_safetensors,
};

/// A reader that hands out its bytes a few at a time.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
    turn: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.turn += 1;
        let n = ((self.turn * 7) % self.step + 1)
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let from_slice = JsonModel::from_slice(data);
    let step = data.first().map_or(1, |&b| usize::from(b % 61) + 1);
    let streamed = JsonModel::read(Trickle {
        data,
        step,
        turn: 0,
    });
    let model = match (from_slice, streamed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "slice and stream disagree");
            a
        }
        // The same error, whichever way the bytes came: small arrays of a
        // slice are parsed in batches on other cores, those of a trickle
        // one element after another as they arrive.
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "slice and stream fail differently"
            );
            return;
        }
        (a, b) => panic!("slice and stream disagree: {a:?} vs {b:?}"),
    };

    // Strict JSON (RFC 8259) is UTF-8.
    if let Err(e) = std::str::from_utf8(data) {
        panic!("accepted a file that is not UTF-8: {e}");
    }
    for t in &model.tensors {
        let len = t
            .meta
            .byte_len()
            .expect("an accepted tensor has a byte size");
        assert_eq!(t.data.len(), len, "bytes of `{}`", t.meta.name);
    }

    // JSON -> JSON: the writer's text reads back to the same model.
    let mut writer = JsonWriter::new(Vec::new(), &model.metadata, model.architecture.as_ref())
        .expect("writing to a Vec");
    let mut checksums = BTreeMap::new();
    for t in &model.tensors {
        let sum = Checksum::of(&t.data);
        writer
            .write_tensor(&t.meta, &t.data, &sum.to_string())
            .unwrap_or_else(|e| panic!("write_tensor `{}`: {e}", t.meta.name));
        checksums.insert(t.meta.name.clone(), sum);
    }
    let text = writer.finish().expect("writing to a Vec");
    let again = JsonModel::from_slice(&text).unwrap_or_else(|e| {
        panic!(
            "the writer's own text does not read back: {e}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(again.metadata, model.metadata);
    assert_eq!(again.architecture, model.architecture);
    assert_eq!(again.tensors.len(), model.tensors.len());
    for (a, b) in model.tensors.iter().zip(&again.tensors) {
        assert_eq!(a.meta, b.meta);
        assert_eq!(a.data, b.data, "JSON round trip changed `{}`", a.meta.name);
        assert_eq!(b.sha256, Some(checksums[&a.meta.name]));
    }

    // JSON -> safetensors, when the model can be one: the same bytes back.
    let reserved = model.metadata.keys().any(|k| k.starts_with("modeltool."));
    let metadata_name = model.tensors.iter().any(|t| t.meta.name == METADATA_KEY);
    if reserved || metadata_name {
        return;
    }
    let meta = ModelMetadata {
        user: model.metadata.clone(),
        checksums: checksums.clone(),
        architecture: model.architecture.clone(),
    };
    let tensors: Vec<(TensorMeta, &[u8])> = model
        .tensors
        .iter()
        .map(|t| (t.meta.clone(), &t.data[..]))
        .collect();
    let mut file = Vec::new();
    if write_safetensors(&mut file, &tensors, &meta.to_safetensors()).is_err() {
        // Only a header past the 100 MB cap may be refused; inputs are far smaller.
        panic!("write_safetensors refused an accepted model");
    }
    let header = Header::from_file_bytes(&file).expect("a written file parses");
    let stored = ModelMetadata::from_safetensors(header.metadata.clone())
        .expect("written metadata splits again");
    assert_eq!(stored.user, model.metadata);
    assert_eq!(stored.checksums, checksums);
    assert_eq!(stored.architecture, model.architecture);
    let body = &file[header.data_start() as usize..];
    assert_eq!(header.tensors.len(), model.tensors.len());
    for t in &header.tensors {
        let original = model
            .tensors
            .iter()
            .find(|o| o.meta.name == t.meta.name)
            .expect("the same names come back");
        assert_eq!(original.meta, t.meta);
        let (b, e) = t.data_offsets;
        assert_eq!(
            &body[b as usize..e as usize],
            &original.data[..],
            "safetensors round trip changed `{}`",
            t.meta.name
        );
    }
});
