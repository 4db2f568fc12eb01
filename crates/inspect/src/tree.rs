//! The module tree: tensors grouped by the parts of their dotted names, with
//! runs of identical numbered siblings (`encoder.layer.0` … `5`) collapsed
//! into one row.

use std::collections::{BTreeSet, HashMap};

use modeltool_format::{Dtype, TensorMeta};
use serde::Serialize;

use crate::buffers::buffer_kind;
use crate::facts::{TensorFacts, element_count};

/// One row of the module tree: a module, a tensor, or a run of identical
/// numbered siblings.
#[derive(Debug, Clone, Serialize)]
pub struct TreeNode {
    /// The full dotted path; a collapsed run shows its indices,
    /// `encoder.layer.[0-5]`.
    pub name: String,
    /// The part of the name this row adds to its parent's; single-child
    /// chains are joined (`pooler.dense`).
    pub label: String,
    /// How many identical siblings the row stands for (1 for a plain row).
    pub count: u64,
    /// First and last index of a collapsed run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indices: Option<[u64; 2]>,
    /// Elements in one instance (buffers included).
    pub parameter_count: u64,
    /// Elements in all `count` instances.
    pub total_parameter_count: u64,
    /// Elements of one instance that are buffers rather than parameters.
    pub buffer_count: u64,
    /// `total_parameter_count` as a fraction of the whole model's.
    pub share: f64,
    /// Bytes of all `count` instances.
    pub bytes: u64,
    /// The dtypes present, sorted by name.
    pub dtypes: Vec<String>,
    /// Tensors in one instance.
    pub tensor_count: u64,
    /// The shape, for a row that is a single tensor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
    /// Why the tensor is a buffer, for a single-tensor row that is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<String>,
    /// The rows below this one (empty past the depth limit).
    pub children: Vec<TreeNode>,
}

/// The most name parts the tree splits a name into; the rest stays joined
/// in the last part.
const MAX_PARTS: usize = 32;

/// A prefix tree of name parts, before collapsing.
#[derive(Default)]
struct Trie {
    children: Vec<(String, Trie)>,
    index: HashMap<String, usize>,
    tensors: Vec<usize>,
}

impl Trie {
    fn insert(&mut self, name: &str, tensor: usize) {
        let mut node = self;
        // A cap on depth keeps the recursion below bounded whatever the names.
        for part in name.splitn(MAX_PARTS, '.') {
            let i = match node.index.get(part) {
                Some(&i) => i,
                None => {
                    node.children.push((part.to_owned(), Trie::default()));
                    node.index.insert(part.to_owned(), node.children.len() - 1);
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i].1;
        }
        node.tensors.push(tensor);
    }

    /// Every tensor below, as (name relative to this node, dtype, shape):
    /// two subtrees with equal signatures hold the same kind of thing.
    fn signature<'a>(
        &self,
        tensors: &'a [TensorFacts],
        prefix: &str,
    ) -> Vec<(String, Dtype, &'a [usize])> {
        let mut out = Vec::new();
        self.collect_signature(tensors, prefix, &mut out);
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    fn collect_signature<'a>(
        &self,
        tensors: &'a [TensorFacts],
        prefix: &str,
        out: &mut Vec<(String, Dtype, &'a [usize])>,
    ) {
        for &t in &self.tensors {
            let meta = &tensors[t].meta;
            out.push((prefix.to_owned(), meta.dtype, &meta.shape));
        }
        for (part, child) in &self.children {
            child.collect_signature(tensors, &format!("{prefix}.{part}"), out);
        }
    }
}

/// A name part that is a canonical decimal index (`7`, not `07`).
fn index_of(part: &str) -> Option<u64> {
    let n: u64 = part.parse().ok()?;
    (n.to_string() == part).then_some(n)
}

/// Builds the collapsed module tree of `tensors`; `total` is the model's
/// element count, for shares.
pub(crate) fn build(tensors: &[TensorFacts], total: u64) -> Vec<TreeNode> {
    let mut root = Trie::default();
    for (i, t) in tensors.iter().enumerate() {
        root.insert(&t.meta.name, i);
    }
    let ctx = Ctx { tensors, total };
    ctx.children(&root, "")
}

struct Ctx<'a> {
    tensors: &'a [TensorFacts],
    total: u64,
}

impl Ctx<'_> {
    fn share(&self, n: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 / self.total as f64
        }
    }

    /// The rows below `trie`, whose full name is `path` ("" at the root).
    fn children(&self, trie: &Trie, path: &str) -> Vec<TreeNode> {
        let join = |part: &str| {
            if path.is_empty() {
                part.to_owned()
            } else {
                format!("{path}.{part}")
            }
        };
        let mut rows = Vec::new();
        // A name that is also the prefix of others (`a` and `a.b`) gets
        // its own leaf row, as do duplicate names.
        if !trie.children.is_empty() || trie.tensors.len() > 1 {
            for &t in &trie.tensors {
                rows.push(self.leaf(t, "(self)".to_owned()));
            }
        }

        // Numbered children in numeric order, in the places numbered
        // children held (so `10` follows `9`, not `1`).
        let mut order: Vec<usize> = (0..trie.children.len()).collect();
        let numbered: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| index_of(&trie.children[i].0).is_some())
            .collect();
        let mut sorted = numbered.clone();
        sorted.sort_by_key(|&i| index_of(&trie.children[i].0));
        for (slot, i) in numbered.iter().zip(sorted) {
            order[*slot] = i;
        }

        let mut k = 0;
        while k < order.len() {
            let (part, child) = &trie.children[order[k]];
            let Some(first) = index_of(part) else {
                rows.push(self.node(child, join(part), part.clone()));
                k += 1;
                continue;
            };
            // Extend a run while the next sibling is the next index with the
            // same signature.
            let sig = child.signature(self.tensors, "");
            let mut last = first;
            let mut end = k + 1;
            while end < order.len() {
                let (next_part, next) = &trie.children[order[end]];
                if index_of(next_part) != last.checked_add(1) {
                    break;
                }
                if next.signature(self.tensors, "") != sig {
                    break;
                }
                last += 1;
                end += 1;
            }
            if end - k == 1 {
                rows.push(self.node(child, join(part), part.clone()));
            } else {
                let label = format!("[{first}-{last}]");
                let mut row = self.node(child, join(&label), label);
                let count = last - first + 1;
                row.count = count;
                row.indices = Some([first, last]);
                row.total_parameter_count = row.parameter_count.saturating_mul(count);
                row.bytes = row.bytes.saturating_mul(count);
                row.share = self.share(row.total_parameter_count);
                rows.push(row);
            }
            k = end;
        }
        rows
    }

    /// The row for `trie`, merged with its only child when it has one.
    fn node(&self, trie: &Trie, name: String, label: String) -> TreeNode {
        if trie.children.is_empty() && trie.tensors.len() == 1 {
            return self.leaf_named(trie.tensors[0], name, label);
        }
        let children = self.children(trie, &name);
        if children.len() == 1 && trie.tensors.is_empty() {
            let mut only = children.into_iter().next().expect("one child");
            only.label = format!("{label}.{}", only.label);
            return only;
        }
        let mut row = TreeNode {
            name,
            label,
            count: 1,
            indices: None,
            parameter_count: 0,
            total_parameter_count: 0,
            buffer_count: 0,
            share: 0.0,
            bytes: 0,
            dtypes: Vec::new(),
            tensor_count: 0,
            shape: None,
            buffer: None,
            children: Vec::new(),
        };
        let mut dtypes = BTreeSet::new();
        for c in &children {
            row.parameter_count = row.parameter_count.saturating_add(c.total_parameter_count);
            row.buffer_count = row
                .buffer_count
                .saturating_add(c.buffer_count.saturating_mul(c.count));
            row.bytes = row.bytes.saturating_add(c.bytes);
            row.tensor_count = row
                .tensor_count
                .saturating_add(c.tensor_count.saturating_mul(c.count));
            dtypes.extend(c.dtypes.iter().cloned());
        }
        row.total_parameter_count = row.parameter_count;
        row.share = self.share(row.parameter_count);
        row.dtypes = dtypes.into_iter().collect();
        row.children = children;
        row
    }

    fn leaf(&self, t: usize, label: String) -> TreeNode {
        let name = self.tensors[t].meta.name.clone();
        self.leaf_named(t, name, label)
    }

    fn leaf_named(&self, t: usize, name: String, label: String) -> TreeNode {
        let facts = &self.tensors[t];
        let meta: &TensorMeta = &facts.meta;
        let n = element_count(meta);
        let buffer = buffer_kind(meta);
        TreeNode {
            name,
            label,
            count: 1,
            indices: None,
            parameter_count: n,
            total_parameter_count: n,
            buffer_count: if buffer.is_some() { n } else { 0 },
            share: self.share(n),
            bytes: facts.bytes,
            dtypes: vec![meta.dtype.name().to_owned()],
            tensor_count: 1,
            shape: Some(meta.shape.clone()),
            buffer: buffer.map(str::to_owned),
            children: Vec::new(),
        }
    }
}

/// The number of rows shown down to `depth` levels (1 = top level only).
pub(crate) fn rows_to(nodes: &[TreeNode], depth: usize) -> usize {
    if depth == 0 {
        return 0;
    }
    nodes
        .iter()
        .map(|n| 1 + rows_to(&n.children, depth - 1))
        .sum()
}

/// The number of levels of the tree.
pub(crate) fn height(nodes: &[TreeNode]) -> usize {
    nodes
        .iter()
        .map(|n| 1 + height(&n.children))
        .max()
        .unwrap_or(0)
}

/// Drops the rows below `depth` levels.
pub(crate) fn truncate(nodes: &mut [TreeNode], depth: usize) {
    for n in nodes {
        if depth <= 1 {
            n.children.clear();
        } else {
            truncate(&mut n.children, depth - 1);
        }
    }
}
