//! The module tree: tensors grouped by the parts of their dotted names, with
//! runs of identical numbered siblings (`encoder.layer.0` … `5`) collapsed
//! into one row.
//!
//! Nothing is copied per tensor: the tensors are sorted once by name parts
//! (one index per tensor), every module is a range of that order, and rows
//! are made as they are shown or serialized. A module with a million
//! children costs a few bytes per child while it is being listed, and
//! nothing once it has been.

use std::borrow::Cow;
use std::cmp::Ordering;

use modeltool_format::Dtype;
use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::buffers::buffer_kind;
use crate::facts::element_count;
use crate::source::Source;

/// One row of the module tree: a module, a tensor, or a run of identical
/// numbered siblings. Made on request by [`crate::Report::tree`]; the JSON
/// report has the same keys.
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

/// The number of parts of `name` (at least 1, at most [`MAX_PARTS`]).
fn parts(name: &str) -> usize {
    name.bytes()
        .filter(|&b| b == b'.')
        .count()
        .min(MAX_PARTS - 1)
        + 1
}

/// The byte length of the first `k` parts of `name` joined with their dots.
fn prefix_end(name: &str, k: usize) -> usize {
    if k == 0 {
        return 0;
    }
    if k >= MAX_PARTS {
        return name.len();
    }
    name.bytes()
        .enumerate()
        .filter(|&(_, b)| b == b'.')
        .nth(k - 1)
        .map_or(name.len(), |(i, _)| i)
}

/// Part `d` of `name` (counting from 0), if it has that many: one scan.
fn part(name: &str, d: usize) -> Option<&str> {
    let bytes = name.as_bytes();
    let (mut start, mut k) = (0, 0);
    loop {
        let dot = if k == MAX_PARTS - 1 {
            None
        } else {
            bytes[start..].iter().position(|&b| b == b'.')
        };
        match dot {
            Some(i) if k < d => {
                start += i + 1;
                k += 1;
            }
            Some(i) => return name.get(start..start + i),
            None => return (k == d).then(|| &name[start..]),
        }
    }
}

/// Orders names part by part, so that every group of names sharing their
/// first `k` parts is contiguous, a name before those that extend it.
fn cmp_parts(a: &str, b: &str) -> Ordering {
    a.splitn(MAX_PARTS, '.').cmp(b.splitn(MAX_PARTS, '.'))
}

/// A name part that is a canonical decimal index (`7`, not `07`).
fn index_of(part: &str) -> Option<u64> {
    let canonical = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && (part == "0" || !part.starts_with('0'));
    if canonical { part.parse().ok() } else { None }
}

/// A set of dtypes, listed by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DtypeSet(u32);

impl DtypeSet {
    fn insert(&mut self, d: Dtype) {
        if let Some(i) = Dtype::ALL.iter().position(|&x| x == d) {
            self.0 |= 1 << i;
        }
    }

    /// The names, sorted.
    pub(crate) fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = Dtype::ALL
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, d)| d.name())
            .collect();
        names.sort_unstable();
        names
    }
}

/// The module tree of a model, as an order of its tensors.
#[derive(Debug, Clone)]
pub(crate) struct Tree<'m> {
    src: Source<'m>,
    /// Tensor indices sorted by name parts (ties in file order).
    order: Vec<u32>,
    /// The model's element count, for shares.
    total: u64,
}

/// A row before it is filled in: a range of the order (for a run, its
/// first instance), how many name parts it has consumed, and its label.
#[derive(Debug, Clone)]
pub(crate) struct Row<'m> {
    start: usize,
    end: usize,
    depth: usize,
    pub(crate) label: Cow<'m, str>,
    pub(crate) count: u64,
    first: u64,
    /// A single tensor, shown with its shape.
    pub(crate) leaf: bool,
}

/// The numbers of one row, summed over its first instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sums {
    pub(crate) parameter_count: u64,
    pub(crate) buffer_count: u64,
    pub(crate) bytes: u64,
    pub(crate) tensor_count: u64,
    pub(crate) dtypes: DtypeSet,
}

impl<'m> Tree<'m> {
    /// Sorts the tensors of `src`; `total` is the model's element count.
    /// A model of more than 2^32 tensors gets an empty tree.
    pub(crate) fn new(src: Source<'m>, total: u64) -> Tree<'m> {
        let n = u32::try_from(src.len()).unwrap_or(0);
        let mut order: Vec<u32> = (0..n).collect();
        // Stable: equal names keep their file order.
        order.sort_by(|&a, &b| cmp_parts(src.name(a as usize), src.name(b as usize)));
        Tree { src, order, total }
    }

    fn name(&self, i: usize) -> &'m str {
        self.src.name(self.order[i] as usize)
    }

    /// The top-level rows, given one at a time to `f`.
    pub(crate) fn roots<E>(&self, f: &mut dyn FnMut(Row<'m>) -> Result<(), E>) -> Result<(), E> {
        self.children_of(0, self.order.len(), 0, f)
    }

    /// The rows below `row`, given one at a time to `f`.
    pub(crate) fn children<E>(
        &self,
        row: &Row<'m>,
        f: &mut dyn FnMut(Row<'m>) -> Result<(), E>,
    ) -> Result<(), E> {
        if row.leaf {
            return Ok(());
        }
        self.children_of(row.start, row.end, row.depth, f)
    }

    /// The rows of the range `start..end`, whose names share their first
    /// `depth` parts.
    fn children_of<E>(
        &self,
        start: usize,
        end: usize,
        depth: usize,
        f: &mut dyn FnMut(Row<'m>) -> Result<(), E>,
    ) -> Result<(), E> {
        // Names that end here sort first. A name that is also the prefix of
        // others (`a` and `a.b`) gets its own leaf row, as do duplicates.
        let mut k = start;
        while k < end && parts(self.name(k)) <= depth {
            k += 1;
        }
        if k < end || k - start > 1 {
            for i in start..k {
                f(Row {
                    start: i,
                    end: i + 1,
                    depth,
                    label: Cow::Borrowed("(self)"),
                    count: 1,
                    first: 0,
                    leaf: true,
                })?;
            }
        }

        let groups = self.groups(k, end, depth);
        let part_of = |g: &(u32, u32, u32)| part(self.name(g.0 as usize), depth).unwrap_or("");

        let mut g = 0;
        while g < groups.len() {
            let (s, e, _) = groups[g];
            let (s, e) = (s as usize, e as usize);
            let p = part_of(&groups[g]);
            let Some(first) = index_of(p) else {
                self.node(s, e, depth + 1, Cow::Borrowed(p), 1, 0, f)?;
                g += 1;
                continue;
            };
            // Extend a run while the next sibling is the next index with the
            // same tensors below it.
            let mut last = first;
            let mut h = g + 1;
            while h < groups.len() {
                let next = groups[h];
                if index_of(part_of(&next)) != last.checked_add(1) {
                    break;
                }
                if !self.same(s, e, next.0 as usize, next.1 as usize, depth + 1) {
                    break;
                }
                last += 1;
                h += 1;
            }
            if h - g == 1 {
                self.node(s, e, depth + 1, Cow::Borrowed(p), 1, first, f)?;
            } else {
                let label = Cow::Owned(format!("[{first}-{last}]"));
                let count = last - first + 1;
                self.node(s, e, depth + 1, label, count, first, f)?;
            }
            g = h;
        }
        Ok(())
    }

    /// The groups of `start..end` by part `depth`, as (start, end, first
    /// tensor), in the order their first tensor has in the file, numbered
    /// groups in numeric order in the places numbered groups hold (so `10`
    /// follows `9`, not `1`).
    fn groups(&self, start: usize, end: usize, depth: usize) -> Vec<(u32, u32, u32)> {
        let mut groups: Vec<(u32, u32, u32)> = Vec::new();
        let mut i = start;
        while i < end {
            let p = part(self.name(i), depth);
            let s = i;
            let mut first = self.order[i];
            i += 1;
            while i < end && part(self.name(i), depth) == p {
                first = first.min(self.order[i]);
                i += 1;
            }
            groups.push((s as u32, i as u32, first));
        }
        groups.sort_unstable_by_key(|g| g.2);
        let part_of = |g: &(u32, u32, u32)| part(self.name(g.0 as usize), depth).unwrap_or("");
        let slots: Vec<usize> = (0..groups.len())
            .filter(|&g| index_of(part_of(&groups[g])).is_some())
            .collect();
        let mut numbered: Vec<(u32, u32, u32)> = slots.iter().map(|&g| groups[g]).collect();
        numbered.sort_by_key(|g| index_of(part_of(g)));
        for (&slot, g) in slots.iter().zip(numbered) {
            groups[slot] = g;
        }
        groups
    }

    /// The first and last index when the groups of `start..end` (names
    /// sharing `depth` parts, none ending there) make one run of identical
    /// numbered siblings.
    fn single_run(&self, start: usize, end: usize, depth: usize) -> Option<(u64, u64)> {
        let groups = self.groups(start, end, depth);
        if groups.len() < 2 {
            return None;
        }
        let index = |g: &(u32, u32, u32)| index_of(part(self.name(g.0 as usize), depth)?);
        let (s, e, _) = groups[0];
        let first = index(&groups[0])?;
        let mut last = first;
        for g in &groups[1..] {
            if index(g) != last.checked_add(1)
                || !self.same(
                    s as usize,
                    e as usize,
                    g.0 as usize,
                    g.1 as usize,
                    depth + 1,
                )
            {
                return None;
            }
            last += 1;
        }
        Some((first, last))
    }

    /// Whether two ranges hold the same tensors below their first `depth`
    /// parts: names, dtypes and shapes.
    fn same(&self, s1: usize, e1: usize, s2: usize, e2: usize, depth: usize) -> bool {
        e1 - s1 == e2 - s2
            && (0..e1 - s1).all(|j| {
                let a = self.src.meta(self.order[s1 + j] as usize);
                let b = self.src.meta(self.order[s2 + j] as usize);
                a.dtype == b.dtype
                    && a.shape == b.shape
                    && a.name[prefix_end(&a.name, depth)..] == b.name[prefix_end(&b.name, depth)..]
            })
    }

    /// The row for the range `start..end` (names sharing `depth` parts),
    /// joined with its only child while it has exactly one.
    #[expect(clippy::too_many_arguments, reason = "one row's fields")]
    fn node<E>(
        &self,
        start: usize,
        end: usize,
        mut depth: usize,
        mut label: Cow<'m, str>,
        count: u64,
        first: u64,
        f: &mut dyn FnMut(Row<'m>) -> Result<(), E>,
    ) -> Result<(), E> {
        let name = self.name(start);
        // Where a borrowed label starts in `name`, to extend it in place.
        let label_start = prefix_end(name, depth.saturating_sub(1)) + usize::from(depth > 1);
        loop {
            let ends_here = parts(name) <= depth;
            if ends_here && end - start == 1 {
                return f(Row {
                    start,
                    end,
                    depth,
                    label,
                    count,
                    first,
                    leaf: true,
                });
            }
            if ends_here {
                break;
            }
            // Sorted by parts: one next part for all iff the first and the
            // last have the same.
            let next = part(name, depth);
            if next != part(self.name(end - 1), depth) {
                // The only row below may still be a run of identical
                // siblings: it then takes this row's place (unless this
                // row is a run itself, whose count would be lost).
                if count == 1 {
                    if let Some((a, b)) = self.single_run(start, end, depth) {
                        let (s, e, _) = self.groups(start, end, depth)[0];
                        let label = Cow::Owned(format!("{label}.[{a}-{b}]"));
                        return self.node(
                            s as usize,
                            e as usize,
                            depth + 1,
                            label,
                            b - a + 1,
                            a,
                            f,
                        );
                    }
                }
                break;
            }
            depth += 1;
            label = match label {
                Cow::Borrowed(_) => Cow::Borrowed(
                    name.get(label_start..prefix_end(name, depth))
                        .unwrap_or_default(),
                ),
                Cow::Owned(mut s) => {
                    s.push('.');
                    s.push_str(next.unwrap_or_default());
                    Cow::Owned(s)
                }
            };
        }
        f(Row {
            start,
            end,
            depth,
            label,
            count,
            first,
            leaf: false,
        })
    }

    /// The numbers of one instance of `row`.
    pub(crate) fn sums(&self, row: &Row<'m>) -> Sums {
        let mut s = Sums::default();
        for &t in &self.order[row.start..row.end] {
            let meta = self.src.meta(t as usize);
            let n = element_count(meta);
            s.parameter_count = s.parameter_count.saturating_add(n);
            if buffer_kind(meta).is_some() {
                s.buffer_count = s.buffer_count.saturating_add(n);
            }
            s.bytes = s.bytes.saturating_add(self.src.bytes(t as usize));
            s.tensor_count += 1;
            s.dtypes.insert(meta.dtype);
        }
        s
    }

    /// Name, dtype and shape of tensor `t` of the model.
    pub(crate) fn meta(&self, t: usize) -> &'m modeltool_format::TensorMeta {
        self.src.meta(t)
    }

    /// The tensor of a leaf row.
    pub(crate) fn tensor(&self, row: &Row<'m>) -> Option<usize> {
        row.leaf.then(|| self.order[row.start] as usize)
    }

    /// `n` as a share of the model's elements.
    pub(crate) fn share(&self, n: u64) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            n as f64 / self.total as f64
        }
    }

    /// The full name of a row below a parent named `parent` ("" at the
    /// top); a `(self)` row is named as its parent.
    pub(crate) fn full_name(parent: &str, row: &Row<'_>) -> String {
        if row.label == "(self)" && row.leaf && !parent.is_empty() {
            parent.to_owned()
        } else if parent.is_empty() {
            row.label.clone().into_owned()
        } else {
            format!("{parent}.{}", row.label)
        }
    }

    /// The levels of the tree.
    pub(crate) fn height(&self) -> usize {
        fn below(t: &Tree<'_>, row: &Row<'_>) -> usize {
            let mut h = 0;
            let _ = t.children::<()>(row, &mut |c| {
                h = h.max(below(t, &c));
                Ok(())
            });
            1 + h
        }
        let mut h = 0;
        let _ = self.roots::<()>(&mut |r| {
            h = h.max(below(self, &r));
            Ok(())
        });
        h
    }

    /// The rows shown down to `depth` levels (1 = the top level only),
    /// counting no further than `limit`.
    pub(crate) fn rows_to(&self, depth: usize, limit: usize) -> usize {
        fn count(
            t: &Tree<'_>,
            row: &Row<'_>,
            depth: usize,
            limit: usize,
            n: &mut usize,
        ) -> Result<(), ()> {
            *n += 1;
            if *n > limit {
                return Err(());
            }
            if depth > 1 {
                t.children(row, &mut |c| count(t, &c, depth - 1, limit, n))?;
            }
            Ok(())
        }
        let mut n = 0;
        if depth > 0 {
            let _ = self.roots(&mut |r| count(self, &r, depth, limit, &mut n));
        }
        n.min(limit.saturating_add(1))
    }

    /// The rows down to `depth` levels as [`TreeNode`]s.
    pub(crate) fn nodes(&self, depth: usize) -> Vec<TreeNode> {
        let mut out = Vec::new();
        if depth > 0 {
            let _ = self.roots::<()>(&mut |r| {
                out.push(self.node_of(&r, "", depth));
                Ok(())
            });
        }
        out
    }

    /// One row as a [`TreeNode`], with its rows down to `depth` levels.
    fn node_of(&self, row: &Row<'m>, parent: &str, depth: usize) -> TreeNode {
        let name = Tree::full_name(parent, row);
        let mut children = Vec::new();
        if depth > 1 {
            let _ = self.children::<()>(row, &mut |c| {
                children.push(self.node_of(&c, &name, depth - 1));
                Ok(())
            });
        }
        let s = self.sums(row);
        let tensor = self.tensor(row).map(|t| self.src.meta(t));
        let total = s.parameter_count.saturating_mul(row.count);
        TreeNode {
            label: row.label.clone().into_owned(),
            count: row.count,
            indices: (row.count > 1).then(|| [row.first, row.first + row.count - 1]),
            parameter_count: s.parameter_count,
            total_parameter_count: total,
            buffer_count: s.buffer_count,
            share: self.share(total),
            bytes: s.bytes.saturating_mul(row.count),
            dtypes: s.dtypes.names().into_iter().map(str::to_owned).collect(),
            tensor_count: s.tensor_count,
            shape: tensor.map(|m| m.shape.clone()),
            buffer: tensor.and_then(buffer_kind).map(str::to_owned),
            children,
            name,
        }
    }

    /// Serializes the rows down to `depth` levels (`None`: all) as a JSON
    /// array of [`TreeNode`]s, making each row as it is written.
    pub(crate) fn serialize_rows<S: Serializer>(
        &self,
        depth: Option<usize>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        if depth != Some(0) {
            self.roots(&mut |r| {
                seq.serialize_element(&LazyNode {
                    tree: self,
                    row: r,
                    parent: "",
                    depth,
                })
            })?;
        }
        seq.end()
    }
}

/// A row serialized as a [`TreeNode`] whose children are made while they
/// are written.
struct LazyNode<'a, 'm> {
    tree: &'a Tree<'m>,
    row: Row<'m>,
    parent: &'a str,
    depth: Option<usize>,
}

impl Serialize for LazyNode<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (t, row) = (self.tree, &self.row);
        let name = Tree::full_name(self.parent, row);
        let sums = t.sums(row);
        let tensor = t.tensor(row).map(|i| t.src.meta(i));
        let total = sums.parameter_count.saturating_mul(row.count);
        let mut st = s.serialize_struct("TreeNode", 14)?;
        st.serialize_field("name", &name)?;
        st.serialize_field("label", &row.label)?;
        st.serialize_field("count", &row.count)?;
        if row.count > 1 {
            st.serialize_field("indices", &[row.first, row.first + row.count - 1])?;
        }
        st.serialize_field("parameter_count", &sums.parameter_count)?;
        st.serialize_field("total_parameter_count", &total)?;
        st.serialize_field("buffer_count", &sums.buffer_count)?;
        st.serialize_field("share", &t.share(total))?;
        st.serialize_field("bytes", &sums.bytes.saturating_mul(row.count))?;
        st.serialize_field("dtypes", &sums.dtypes.names())?;
        st.serialize_field("tensor_count", &sums.tensor_count)?;
        if let Some(m) = tensor {
            st.serialize_field("shape", &m.shape)?;
            if let Some(b) = buffer_kind(m) {
                st.serialize_field("buffer", b)?;
            }
        }
        st.serialize_field(
            "children",
            &LazyChildren {
                tree: t,
                row,
                name: &name,
                depth: self.depth.map(|d| d.saturating_sub(1)),
            },
        )?;
        st.end()
    }
}

/// The children of a row, serialized as they are made.
struct LazyChildren<'a, 'm> {
    tree: &'a Tree<'m>,
    row: &'a Row<'m>,
    name: &'a str,
    depth: Option<usize>,
}

impl Serialize for LazyChildren<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        if self.depth != Some(0) {
            self.tree.children(self.row, &mut |c| {
                seq.serialize_element(&LazyNode {
                    tree: self.tree,
                    row: c,
                    parent: self.name,
                    depth: self.depth,
                })
            })?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_names() {
        assert_eq!(parts("a.b.c"), 3);
        assert_eq!(parts(""), 1);
        assert_eq!(prefix_end("a.bb.c", 2), 4);
        assert_eq!(part("a.bb.c", 1), Some("bb"));
        assert_eq!(part("a.bb.c", 3), None);
        assert_eq!(part("c..d.", 3), Some(""));
        let deep = vec!["x"; 40].join(".");
        assert_eq!(parts(&deep), MAX_PARTS);
        assert_eq!(part(&deep, MAX_PARTS - 1).map(str::len), Some(17));
        assert_eq!(cmp_parts("a", "a.b"), Ordering::Less);
        assert_eq!(cmp_parts("a.b", "a-b"), Ordering::Less);
    }
}
