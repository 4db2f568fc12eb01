//! Facts builders shared by the tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use modeltool_format::{Dtype, Layout, ModelMetadata, TensorMeta};
use modeltool_inspect::{FileFacts, ModelFacts, TensorFacts};

/// A tensor's name, dtype and shape.
pub fn meta(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
    TensorMeta {
        name: name.to_owned(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// The facts of the safetensors file these tensors would make, header and
/// offsets planned by the format crate exactly as it would write them.
pub fn safetensors_facts(
    path: &str,
    metas: Vec<TensorMeta>,
    user: BTreeMap<String, String>,
    architecture: Option<serde_json::Value>,
) -> ModelFacts {
    let stored = ModelMetadata {
        user: user.clone(),
        checksums: BTreeMap::new(),
        architecture: architecture.clone(),
    };
    let layout = Layout::new(&metas, &stored.to_safetensors()).expect("valid tensors");
    let header = layout.header.len() as u64;
    let tensors = metas
        .into_iter()
        .zip(&layout.offsets)
        .map(|(meta, &(start, end))| TensorFacts {
            meta,
            file: 0,
            offset: header + start,
            bytes: end - start,
        })
        .collect();
    ModelFacts {
        path: path.to_owned(),
        kind: "safetensors".to_owned(),
        files: vec![FileFacts {
            path: path.to_owned(),
            file_bytes: header + layout.data_len,
            header_bytes: header,
        }],
        tensors,
        metadata: user,
        architecture,
    }
}

/// The tensors of one BERT encoder layer.
pub fn bert_layer(i: usize, hidden: usize, intermediate: usize) -> Vec<TensorMeta> {
    let p = format!("encoder.layer.{i}");
    let f = Dtype::F32;
    vec![
        meta(
            &format!("{p}.attention.self.query.weight"),
            f,
            &[hidden, hidden],
        ),
        meta(&format!("{p}.attention.self.query.bias"), f, &[hidden]),
        meta(
            &format!("{p}.attention.self.key.weight"),
            f,
            &[hidden, hidden],
        ),
        meta(&format!("{p}.attention.self.key.bias"), f, &[hidden]),
        meta(
            &format!("{p}.attention.self.value.weight"),
            f,
            &[hidden, hidden],
        ),
        meta(&format!("{p}.attention.self.value.bias"), f, &[hidden]),
        meta(
            &format!("{p}.attention.output.dense.weight"),
            f,
            &[hidden, hidden],
        ),
        meta(&format!("{p}.attention.output.dense.bias"), f, &[hidden]),
        meta(
            &format!("{p}.attention.output.LayerNorm.weight"),
            f,
            &[hidden],
        ),
        meta(
            &format!("{p}.attention.output.LayerNorm.bias"),
            f,
            &[hidden],
        ),
        meta(
            &format!("{p}.intermediate.dense.weight"),
            f,
            &[intermediate, hidden],
        ),
        meta(&format!("{p}.intermediate.dense.bias"), f, &[intermediate]),
        meta(
            &format!("{p}.output.dense.weight"),
            f,
            &[hidden, intermediate],
        ),
        meta(&format!("{p}.output.dense.bias"), f, &[hidden]),
        meta(&format!("{p}.output.LayerNorm.weight"), f, &[hidden]),
        meta(&format!("{p}.output.LayerNorm.bias"), f, &[hidden]),
    ]
}

/// all-MiniLM-L6-v2's tensor list: vocabulary 30522, hidden 384, 6 layers,
/// intermediate 1536, 512 positions, 2 token types, plus the
/// `position_ids` buffer. `intermediate_5` changes the last layer.
pub fn minilm_metas(intermediate_5: usize) -> Vec<TensorMeta> {
    let (hidden, f) = (384, Dtype::F32);
    let mut metas = vec![
        meta("embeddings.word_embeddings.weight", f, &[30522, hidden]),
        meta("embeddings.position_embeddings.weight", f, &[512, hidden]),
        meta("embeddings.token_type_embeddings.weight", f, &[2, hidden]),
        meta("embeddings.LayerNorm.weight", f, &[hidden]),
        meta("embeddings.LayerNorm.bias", f, &[hidden]),
        meta("embeddings.position_ids", Dtype::I64, &[1, 512]),
    ];
    for i in 0..6 {
        let intermediate = if i == 5 { intermediate_5 } else { 1536 };
        metas.extend(bert_layer(i, hidden, intermediate));
    }
    metas.push(meta("pooler.dense.weight", f, &[hidden, hidden]));
    metas.push(meta("pooler.dense.bias", f, &[hidden]));
    metas
}

/// The facts of all-MiniLM-L6-v2 as a safetensors file.
pub fn minilm() -> ModelFacts {
    let mut user = BTreeMap::new();
    user.insert("format".to_owned(), "pt".to_owned());
    safetensors_facts(
        "all-MiniLM-L6-v2.safetensors",
        minilm_metas(1536),
        user,
        None,
    )
}

/// Compares `actual` with `tests/snapshots/<name>`, or rewrites the file
/// when `UPDATE_SNAPSHOTS=1`.
pub fn snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write the snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the output (run with UPDATE_SNAPSHOTS=1 to accept it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

/// The human view as a string.
pub fn human(report: &modeltool_inspect::Report) -> String {
    let mut out = Vec::new();
    report.render_human(&mut out).expect("write to a Vec");
    String::from_utf8(out).expect("UTF-8 output")
}
