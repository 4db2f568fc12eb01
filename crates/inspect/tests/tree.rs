//! The module tree and the collapsing of numbered siblings.

use modeltool_format::Dtype;
use modeltool_inspect::{InspectOptions, TreeNode, inspect};

use crate::util::{bert_layer, meta, minilm, minilm_metas, safetensors_facts};

fn tree_of(metas: Vec<modeltool_format::TensorMeta>) -> Vec<TreeNode> {
    let facts = safetensors_facts("m.safetensors", metas, Default::default(), None);
    inspect(&facts, &InspectOptions::default()).tree()
}

fn labels(nodes: &[TreeNode]) -> Vec<&str> {
    nodes.iter().map(|n| n.label.as_str()).collect()
}

#[test]
fn six_identical_layers_collapse_into_one_row() {
    let facts = minilm();
    let tree = inspect(&facts, &InspectOptions::default()).tree();
    assert_eq!(
        labels(&tree),
        ["embeddings", "encoder.layer.[0-5]", "pooler.dense"]
    );
    let layers = &tree[1];
    assert_eq!(layers.name, "encoder.layer.[0-5]");
    assert_eq!(layers.count, 6);
    assert_eq!(layers.indices, Some([0, 5]));
    assert_eq!(layers.parameter_count, 1_774_464);
    assert_eq!(layers.total_parameter_count, 10_646_784);
    assert_eq!(layers.bytes, 10_646_784 * 4);
    assert_eq!(layers.tensor_count, 16);
    assert_eq!(
        labels(&layers.children),
        ["attention", "intermediate.dense", "output"]
    );
    // Descendants of a collapsed row are named after the run.
    assert_eq!(
        layers.children[0].children[0].name,
        "encoder.layer.[0-5].attention.self"
    );
    assert_eq!(tree[0].parameter_count, 11_918_592 + 512);
    assert_eq!(tree[0].buffer_count, 512);
    assert_eq!(tree[0].dtypes, ["F32", "I64"]);
    assert_eq!(tree[2].parameter_count, 147_840);
    let shares: f64 = tree.iter().map(|n| n.share).sum();
    assert!((shares - 1.0).abs() < 1e-12);
}

#[test]
fn a_differing_layer_stays_apart() {
    let tree = tree_of(minilm_metas(3072));
    let encoder = &tree[1];
    assert_eq!(encoder.label, "encoder.layer");
    assert_eq!(labels(&encoder.children), ["[0-4]", "5"]);
    assert_eq!(encoder.children[0].count, 5);
    assert_eq!(encoder.children[1].count, 1);
    assert_eq!(encoder.children[1].name, "encoder.layer.5");
    assert_eq!(
        encoder.children[1].parameter_count,
        1_774_464 + 2 * 384 * 1536 + 1536
    );
}

#[test]
fn only_consecutive_runs_collapse() {
    let mut metas = Vec::new();
    for i in 0..6 {
        metas.extend(bert_layer(i, 8, if i == 3 { 64 } else { 32 }));
    }
    let tree = tree_of(metas);
    assert_eq!(labels(&tree[0].children), ["[0-2]", "3", "[4-5]"]);
}

#[test]
fn numbered_siblings_sort_numerically() {
    // Alphabetical order, as many writers store them: 0, 1, 10, 11, 2, ...
    let mut metas = Vec::new();
    for i in 0..12 {
        metas.extend(bert_layer(i, 8, 32));
    }
    metas.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = tree_of(metas);
    assert_eq!(labels(&tree), ["encoder.layer.[0-11]"]);
    assert_eq!(tree[0].count, 12);
}

#[test]
fn dtype_or_shape_differences_prevent_collapse() {
    let tree = tree_of(vec![
        meta("h.0.w", Dtype::F32, &[2, 2]),
        meta("h.1.w", Dtype::F16, &[2, 2]),
        meta("h.2.w", Dtype::F16, &[2, 2]),
        meta("h.3.w", Dtype::F16, &[2, 3]),
        meta("h.05.w", Dtype::F16, &[2, 3]),
    ]);
    assert_eq!(labels(&tree[0].children), ["0.w", "[1-2].w", "3.w", "05.w"]);
}

#[test]
fn odd_names_do_not_break_the_tree() {
    let deep = vec!["x"; 500].join(".");
    let tree = tree_of(vec![
        meta("a", Dtype::F32, &[1]),
        meta("a.b", Dtype::F32, &[2]),
        meta("", Dtype::F32, &[3]),
        meta("c..d.", Dtype::F32, &[4]),
        meta(&deep, Dtype::F32, &[5]),
    ]);
    let total: u64 = tree.iter().map(|n| n.total_parameter_count).sum();
    assert_eq!(total, 15);
}

#[test]
fn depth_limits_the_tree() {
    let facts = minilm();
    let shallow = inspect(
        &facts,
        &InspectOptions {
            depth: Some(1),
            ..InspectOptions::default()
        },
    );
    assert!(shallow.tree().iter().all(|n| n.children.is_empty()));
    let full = inspect(&facts, &InspectOptions::default());
    let query = &full.tree()[1].children[0].children[0].children[0];
    assert_eq!(query.label, "query");
    assert_eq!(query.children[0].shape, Some(vec![384, 384]));
}
