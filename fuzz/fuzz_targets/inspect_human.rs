//! The human view of `modeltool inspect` on arbitrary safetensors files.
//!
//! Whatever header is accepted, rendering must not panic and must stay
//! bounded and terminal-safe (docs/INSPECT.md, "Bounds"): no control,
//! format or bidi character but `\n`, no line wider than the screen
//! (80 to 200 columns, picked from the input), and at most
//! `MAX_LINES` lines plus the tensor rows asked for. The JSON report of the
//! same header must parse back and keep every tensor name exactly.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use modeltool_format::text::{is_unsafe_char, width};
use modeltool_format::{Header, ModelMetadata};
use modeltool_inspect::{
    FileFacts, InspectOptions, MAX_LINES, ModelFacts, Report, TensorFacts,
};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::from_file_bytes(data) else {
        return;
    };
    // Metadata as the loader reads it; a file whose modeltool keys do not
    // parse still has its tensors inspected, with the metadata as plain
    // strings.
    let (user, architecture) = match ModelMetadata::from_safetensors(header.metadata.clone()) {
        Ok(m) => (m.user, m.architecture),
        Err(_) => (header.metadata.clone().into_iter().collect::<BTreeMap<_, _>>(), None),
    };
    let start = header.data_start();
    let facts = ModelFacts {
        path: "fuzz.safetensors".to_owned(),
        kind: "safetensors".to_owned(),
        files: vec![FileFacts {
            path: "fuzz.safetensors".to_owned(),
            file_bytes: data.len() as u64,
            header_bytes: start,
        }],
        tensors: header
            .tensors
            .iter()
            .map(|t| TensorFacts {
                meta: t.meta.clone(),
                file: 0,
                offset: start + t.data_offsets.0,
                bytes: t.byte_len(),
            })
            .collect(),
        metadata: user,
        architecture,
    };
    let columns = 80 + data.len() % 121;
    let limit = 1 + data.len() % 50;
    for (depth, tensors) in [(None, false), (Some(1 + data.len() % 4), true)] {
        let options = InspectOptions {
            depth,
            tensors,
            tensor_limit: Some(limit),
            columns,
        };
        let report = Report::from_facts(&facts, &options);
        let mut out = Vec::new();
        report.render_human(&mut out).expect("write to a Vec");
        let text = String::from_utf8(out).expect("the human view is UTF-8");
        let mut lines = 0;
        for line in text.lines() {
            lines += 1;
            assert!(
                width(line) <= columns,
                "a {}-column line on a {columns}-column screen: {line}",
                width(line)
            );
            if let Some(c) = line.chars().find(|&c| is_unsafe_char(c)) {
                panic!("{c:?} reached the screen: {line}");
            }
        }
        // The tensor table: a blank line, its heading, the column heads, the
        // rows, the `in FILE` line of a shard and `... and N more`.
        let rows = if tensors { limit + 5 } else { 0 };
        assert!(lines <= MAX_LINES + rows, "{lines} lines");

        let mut json_out = Vec::new();
        modeltool_format::text::write_json(&mut json_out, &report).expect("write to a Vec");
        let text = String::from_utf8(json_out).expect("JSON is UTF-8");
        assert!(!text.chars().any(|c| c != '\n' && is_unsafe_char(c)));
        let value: serde_json::Value = serde_json::from_str(&text).expect("the JSON report parses");
        let names = value["tensors"].as_array().expect("a tensor list");
        assert_eq!(names.len(), facts.tensors.len());
        for (t, v) in facts.tensors.iter().zip(names) {
            assert_eq!(v["name"].as_str(), Some(t.meta.name.as_str()));
        }
    }
});
