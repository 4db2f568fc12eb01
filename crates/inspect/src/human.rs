//! The text view of a [`Report`]: bounded and safe on any screen.
//!
//! Every string that came from the file (tensor names, metadata keys and
//! values, layer types, notes, file names) is escaped and cut with
//! `modeltool_format::text` before it is placed; every line is then held to
//! the screen's width (at least 80 columns) by [`Screen`], whatever was
//! placed on it. Lists are capped: see [`Report::render_human`] for the
//! bound.

use std::io::{self, Write};

use modeltool_format::text::{cut, escape, middle, width};
use unicode_width::UnicodeWidthChar;

use crate::layers::LayerTable;
use crate::report::Report;
use crate::tree::{Row, Tree};
use crate::units::{bytes, percent, percent_coarse, ratio, short, thousands};

/// Width of the label column of the summary.
const KEY: usize = 18;
/// Names listed before "and N more".
const LIST: usize = 3;
/// Tree rows shown at most when no depth was asked for and even the top
/// level is longer than the budget, and at most with a depth.
const TREE_ROW_CAP: usize = 40;
/// Rows of the layer table shown at most.
const LAYER_ROW_CAP: usize = 40;
/// Metadata entries shown at most.
const METADATA_CAP: usize = 20;
/// Warnings and notes shown at most.
const NOTE_CAP: usize = 10;
/// Files of a sharded model listed at most.
const FILE_CAP: usize = 6;
/// Lines a wrapped list may take at most.
const WRAP_LINES: usize = 4;
/// Columns of the screen used at most, whatever COLUMNS says.
pub const MAX_COLUMNS: usize = 400;

/// Lines the human view takes at most, besides the tensor table (its
/// heading lines, at most the tensor limit of rows, one line per file).
/// The sum of every section's cap: the title, 10 warnings, the summary
/// (each item wrapped on at most 4 lines, 22 dtypes, 11 packings), 40 tree
/// rows, 40 layer rows with their notes, the size section, 20 metadata
/// entries, and for a GGUF file its section (a row per ggml type and the
/// metadata summary).
pub const MAX_LINES: usize = 400 + crate::gguf::MAX_GGUF_LINES;

/// A writer that holds every line to `cols` columns: a line wider than that
/// is cut with `…`. The text it is given is already escaped.
struct Screen<'a> {
    out: &'a mut dyn Write,
    cols: usize,
}

impl Screen<'_> {
    fn line(&mut self, s: &str) -> io::Result<()> {
        let s = s.trim_end();
        if width(s) <= self.cols {
            return writeln!(self.out, "{s}");
        }
        let mut used = 0;
        let mut end = 0;
        for (i, c) in s.char_indices() {
            let w = c.width().unwrap_or(0);
            if used + w > self.cols.saturating_sub(1) {
                break;
            }
            used += w;
            end = i + c.len_utf8();
        }
        writeln!(self.out, "{}…", &s[..end])
    }

    fn blank(&mut self) -> io::Result<()> {
        writeln!(self.out)
    }

    /// `head` then `items` separated by `sep`, wrapped onto lines indented
    /// by `indent` columns, at most [`WRAP_LINES`] lines.
    fn wrap(&mut self, head: &str, indent: usize, items: &[String], sep: &str) -> io::Result<()> {
        let mut line = head.to_owned();
        let mut lines = 0;
        let pad = " ".repeat(indent);
        for (k, item) in items.iter().enumerate() {
            let piece = if k + 1 < items.len() {
                format!("{item}{sep}")
            } else {
                item.clone()
            };
            let fresh = width(&line) <= indent || line.trim().is_empty();
            if !fresh && width(&line) + width(piece.trim_end()) > self.cols {
                lines += 1;
                if lines == WRAP_LINES {
                    line.push('…');
                    break;
                }
                self.line(&line)?;
                line = pad.clone();
            }
            line.push_str(&piece);
        }
        self.line(&line)
    }
}

/// `n thing` or `n things`, the number with separators.
fn plural(n: u64, thing: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {thing}{s}", thousands(n))
}

/// `N more things`, or `1 more thing`, the number with separators.
fn and_more(n: u64, thing: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} more {thing}{s}", thousands(n))
}

/// `22,713,728 (22.7M)`, or just `78` where the short form adds nothing.
fn exact_and_short(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        format!("{} ({})", thousands(n), short(n))
    }
}

/// A shape in at most `max` columns: `[30522, 384]`, or its first
/// dimensions and how many there are.
fn shape_text(shape: &[usize], max: usize) -> String {
    modeltool_format::text::shape(shape, max)
}

/// The last part of a path, for short mentions of a file.
fn file_name(path: &str) -> &str {
    std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
}

impl Report<'_> {
    /// Writes the report for people: warnings, totals, module tree, layer
    /// table, tensors (when asked for), file size and metadata.
    ///
    /// The output is bounded whatever the file holds: every line fits the
    /// screen's columns (80, or more when the options say so, at most
    /// [`MAX_COLUMNS`]), and there are at most [`MAX_LINES`] lines plus the
    /// tensor table's rows, which are at most the tensor limit (200 unless
    /// asked otherwise) plus one heading per file.
    pub fn render_human(&self, out: &mut impl Write) -> io::Result<()> {
        let mut screen = Screen {
            out,
            cols: self.view.columns.clamp(80, MAX_COLUMNS),
        };
        let s = &mut screen;
        self.summary(s)?;
        if let Some(g) = &self.gguf {
            for line in g.human_lines() {
                s.line(&line)?;
            }
        }
        self.module_tree(s)?;
        if let Some(layers) = &self.layers {
            layer_table(layers, s)?;
        }
        if self.view.tensors {
            self.tensor_table(s)?;
        }
        self.size(s)?;
        self.metadata_section(s)
    }

    /// One line of the summary: the key, then `items` joined by `, `,
    /// wrapped at spaces.
    fn key(&self, s: &mut Screen<'_>, k: &str, items: &[String]) -> io::Result<()> {
        let text = items.join(", ");
        let words: Vec<String> = text.split(' ').map(str::to_owned).collect();
        s.wrap(&format!("  {k:<KEY$}"), 2 + KEY, &words, " ")
    }

    fn summary(&self, s: &mut Screen<'_>) -> io::Result<()> {
        let files = plural(self.files.len() as u64, "file");
        let room = s.cols.saturating_sub(width(&files) + width(&self.kind) + 5);
        s.line(&format!(
            "{} ({}, {files})",
            middle(&self.path, room.max(20)),
            escape(&self.kind)
        ))?;
        for w in self.warnings.iter().take(NOTE_CAP) {
            s.line(&format!("warning: {}", cut(w, s.cols - "warning: ".len())))?;
        }
        if self.warnings.len() > NOTE_CAP {
            s.line(&format!(
                "warning: and {} more",
                thousands((self.warnings.len() - NOTE_CAP) as u64)
            ))?;
        }
        let key = |s: &mut Screen<'_>, k: &str, v: String| self.key(s, k, &[v]);
        key(s, "tensors", thousands(self.tensor_count))?;
        let b = &self.buffers;
        if b.tensor_count == 0 {
            key(s, "parameters", exact_and_short(self.parameter_count))?;
            key(s, "buffers", "none".to_owned())?;
        } else {
            key(
                s,
                "elements",
                format!(
                    "{}, buffers included",
                    exact_and_short(self.parameter_count)
                ),
            )?;
            let mut items = vec![format!(
                "{} in {}, not parameters:",
                plural(b.element_count, "element"),
                plural(b.tensor_count, "tensor")
            )];
            let shown: Vec<String> = b
                .tensors
                .iter()
                .take(LIST)
                .map(|t| format!("{} ({})", middle(t.name, 40), t.kind))
                .collect();
            let n = shown.len();
            for (i, mut name) in shown.into_iter().enumerate() {
                if i + 1 < n || b.tensor_count > LIST as u64 {
                    name.push(',');
                }
                items.push(name);
            }
            if b.tensor_count > LIST as u64 {
                items.push(format!(
                    "and {} more",
                    thousands(b.tensor_count - LIST as u64)
                ));
            }
            s.wrap(&format!("  {:<KEY$}", "buffers"), 2 + KEY + 2, &items, " ")?;
            key(
                s,
                "parameters",
                format!(
                    "{}, elements less buffers",
                    exact_and_short(self.parameters_without_buffers)
                ),
            )?;
        }
        if let Some(q) = &self.quantization {
            for p in &q.packings {
                let what = match (p.parameters, p.bits) {
                    (Some(params), Some(bits)) => format!(
                        "{} stored elements = {} parameters at {bits} bits ({}, {})",
                        thousands(p.stored_elements),
                        thousands(params),
                        p.scheme,
                        plural(p.tensors, "tensor")
                    ),
                    _ => format!(
                        "{} stored elements in {} ({}): counted as stored, not as parameters",
                        thousands(p.stored_elements),
                        plural(p.tensors, "tensor"),
                        p.scheme
                    ),
                };
                key(s, "packed", what)?;
            }
            if q.state_tensors > 0 {
                key(
                    s,
                    "quant state",
                    format!(
                        "{} in {}, not parameters",
                        plural(q.state_elements, "element"),
                        plural(q.state_tensors, "tensor")
                    ),
                )?;
            }
            key(
                s,
                "unpacked",
                format!("{} parameters", exact_and_short(q.parameters)),
            )?;
        }
        if let Some(c) = self.config.as_ref().filter(|c| !c.is_empty()) {
            let mut items = Vec::new();
            let name = match (&c.model_type, &c.architecture) {
                (Some(t), Some(a)) => Some(format!("{} ({})", cut(t, 24), cut(a, 40))),
                (Some(t), None) => Some(cut(t, 24).into_owned()),
                (None, Some(a)) => Some(cut(a, 40).into_owned()),
                (None, None) => None,
            };
            items.extend(name);
            let mut num = |label: &str, v: Option<u64>, after: bool| {
                if let Some(v) = v {
                    items.push(if after {
                        format!("{} {label}", thousands(v))
                    } else {
                        format!("{label} {}", thousands(v))
                    });
                }
            };
            num("hidden", c.hidden_size, false);
            num("layers", c.layers, true);
            num("heads", c.heads, true);
            num("key-value heads", c.key_value_heads, true);
            num("intermediate", c.intermediate_size, false);
            num("vocabulary", c.vocab_size, false);
            if let Some(d) = &c.dtype {
                items.push(cut(d, 16).into_owned());
            }
            if let Some(q) = &c.quant_method {
                items.push(format!("quantized: {}", cut(q, 24)));
            }
            self.key(s, "config.json", &items)?;
        }
        let count_width = self
            .dtypes
            .values()
            .map(|d| thousands(d.parameter_count).len())
            .max()
            .unwrap_or(0);
        let byte_width = self
            .dtypes
            .values()
            .map(|d| bytes(d.bytes).len())
            .max()
            .unwrap_or(0);
        // A GGUF file's dtypes are those its tensors decode to: its own
        // section lists the ggml types it stores instead.
        for (name, d) in self.dtypes.iter().filter(|_| self.gguf.is_none()) {
            let share = if self.parameter_count == 0 {
                0.0
            } else {
                d.parameter_count as f64 / self.parameter_count as f64
            };
            let elements = if d.parameter_count == 1 {
                "element "
            } else {
                "elements"
            };
            key(
                s,
                name,
                format!(
                    "{:>count_width$} {elements}  {:>byte_width$}  {}",
                    thousands(d.parameter_count),
                    bytes(d.bytes),
                    percent(share)
                ),
            )?;
        }
        let mut data = vec![format!(
            "{} ({})",
            plural(self.data_bytes, "byte"),
            bytes(self.data_bytes)
        )];
        if let Some(x) = self.bytes_per_parameter {
            data.push(format!("{} bytes per element", ratio(x)));
        }
        self.key(s, "data", &data)?;
        self.key(
            s,
            "header",
            &[
                format!(
                    "{} ({})",
                    plural(self.header_bytes, "byte"),
                    bytes(self.header_bytes)
                ),
                format!("{} of the file", percent(self.header_share)),
            ],
        )?;
        let mut file = vec![format!(
            "{} ({})",
            plural(self.file_bytes, "byte"),
            bytes(self.file_bytes)
        )];
        if let Some(x) = self
            .file_bytes_per_parameter
            .filter(|_| self.kind == "json")
        {
            file.push(format!("{} bytes per element", ratio(x)));
        }
        self.key(s, "file", &file)?;
        if self.files.len() > 1 {
            s.line("  files")?;
            let room = s.cols.saturating_sub(44).max(20);
            for f in self.files.iter().take(FILE_CAP) {
                s.line(&format!(
                    "    {}  {}  {}  header {}",
                    middle(file_name(&f.path), room),
                    plural(f.tensor_count, "tensor"),
                    bytes(f.file_bytes),
                    bytes(f.header_bytes)
                ))?;
            }
            if self.files.len() > FILE_CAP {
                s.line(&format!(
                    "    and {} more",
                    thousands((self.files.len() - FILE_CAP) as u64)
                ))?;
            }
        }
        Ok(())
    }

    fn module_tree(&self, s: &mut Screen<'_>) -> io::Result<()> {
        let tree = self.tree_view();
        let depth = self.view.depth;
        // The rows down to `depth`, at most the cap, and how many in all.
        let mut rows: Vec<(usize, Row<'_>, String)> = Vec::new();
        fn walk<'m>(
            tree: &Tree<'m>,
            row: Row<'m>,
            parent: &str,
            level: usize,
            depth: usize,
            rows: &mut Vec<(usize, Row<'m>, String)>,
        ) -> Result<(), ()> {
            if rows.len() >= TREE_ROW_CAP {
                return Err(());
            }
            let name = Tree::full_name(parent, &row);
            let deeper = level + 1 < depth;
            rows.push((level, row.clone(), name.clone()));
            if deeper {
                tree.children(&row, &mut |c| walk(tree, c, &name, level + 1, depth, rows))?;
            }
            Ok(())
        }
        let _ = tree.roots(&mut |r| walk(tree, r, "", 0, depth, &mut rows));
        if rows.is_empty() {
            return Ok(());
        }
        let total = tree.rows_to(depth, usize::MAX);
        let hidden = total.saturating_sub(rows.len());

        s.blank()?;
        let more = if depth < self.view.height {
            "; --depth N shows more"
        } else {
            ""
        };
        s.line(&format!(
            "Modules ({} of {} level{}{more})",
            depth.min(self.view.height),
            self.view.height,
            if self.view.height == 1 { "" } else { "s" }
        ))?;
        // Right-hand columns: parameters, share, dtype, bytes.
        const RIGHT: usize = 2 + 7 + 2 + 6 + 2 + 8 + 2 + 8;
        let label_w = s.cols - 2 - RIGHT;
        let labels: Vec<String> = rows
            .iter()
            .map(|(level, row, _)| tree_label(tree, *level, row, label_w))
            .collect();
        let width_used = labels
            .iter()
            .map(|l| width(l))
            .max()
            .unwrap_or(0)
            .clamp("module".len(), label_w);
        s.line(&format!(
            "  {:<width_used$}  {:>7}  {:>6}  {:<8}  {:>8}",
            "module", "params", "share", "dtype", "bytes"
        ))?;
        for ((_, row, _), label) in rows.iter().zip(&labels) {
            let sums = tree.sums(row);
            let total = sums.parameter_count.saturating_mul(row.count);
            let pad = width_used.saturating_sub(width(label));
            s.line(&format!(
                "  {label}{:pad$}  {:>7}  {:>6}  {:<8}  {:>8}",
                "",
                short(total),
                percent_coarse(tree.share(total)),
                cut(&sums.dtypes.names().join(","), 8),
                bytes(sums.bytes.saturating_mul(row.count))
            ))?;
        }
        if hidden > 0 {
            s.line(&format!(
                "  ... and {} (--format json has them all)",
                and_more(hidden as u64, "row")
            ))?;
        }
        Ok(())
    }

    fn tensor_table(&self, s: &mut Screen<'_>) -> io::Result<()> {
        s.blank()?;
        let limit = self.view.tensor_limit.unwrap_or(usize::MAX);
        let shown = self.tensors.len().min(limit);
        s.line("Tensors (offsets from the start of each file's data, as in its header)")?;
        let rows: Vec<_> = self.tensors.iter().take(shown).collect();
        let shapes: Vec<String> = rows.iter().map(|t| shape_text(t.shape, 24)).collect();
        let dtype_w = rows
            .iter()
            .map(|t| t.dtype.name().len())
            .max()
            .unwrap_or(0)
            .max(5);
        let shape_w = shapes
            .iter()
            .map(|x| x.chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let bytes_w = rows
            .iter()
            .map(|t| thousands(t.bytes).len())
            .max()
            .unwrap_or(0)
            .max(5);
        let offset_w = rows
            .iter()
            .map(|t| t.data_offset.map_or(1, |o| thousands(o).len()))
            .max()
            .unwrap_or(0)
            .max(6);
        let fixed = 2 + (2 + dtype_w) + (2 + shape_w) + (2 + bytes_w) + (2 + offset_w) + 10;
        let name_w = rows
            .iter()
            .map(|t| width(t.name))
            .max()
            .unwrap_or(0)
            .clamp(4, s.cols.saturating_sub(fixed).max(16));
        s.line(&format!(
            "  {:<name_w$}  {:<dtype_w$}  {:<shape_w$}  {:>bytes_w$}  {:>offset_w$}",
            "name", "dtype", "shape", "bytes", "offset"
        ))?;
        let sharded = self.files.len() > 1;
        let mut file = usize::MAX;
        for (t, shape) in rows.iter().zip(&shapes) {
            if sharded && t.file != file {
                file = t.file;
                let f = self.files.get(file).map_or("?", |f| file_name(&f.path));
                s.line(&format!("  in {}", middle(f, s.cols - 5)))?;
            }
            let name = middle(t.name, name_w);
            let pad = name_w.saturating_sub(width(&name));
            s.line(&format!(
                "  {name}{:pad$}  {:<dtype_w$}  {shape:<shape_w$}  {:>bytes_w$}  {:>offset_w$}{}",
                "",
                t.dtype.name(),
                thousands(t.bytes),
                t.data_offset.map_or_else(|| "-".to_owned(), thousands),
                if t.buffer.is_some() { "  (buffer)" } else { "" }
            ))?;
        }
        if self.tensors.len() > shown {
            s.line(&format!(
                "  ... and {} (--limit 0 lists them all)",
                and_more((self.tensors.len() - shown) as u64, "tensor")
            ))?;
        }
        Ok(())
    }

    fn size(&self, s: &mut Screen<'_>) -> io::Result<()> {
        s.blank()?;
        s.line("File size")?;
        match &self.size_formula {
            Some(f) => {
                s.line("  file = 8 + header + sum(elements x bytes per element)")?;
                let length = if self.files.len() == 1 {
                    "8".to_owned()
                } else {
                    format!("8 x {}", self.files.len())
                };
                let mut items = vec![length, thousands(f.json_header_bytes)];
                for t in &f.terms {
                    items.push(format!(
                        "{} x {}",
                        thousands(t.elements),
                        t.bytes_per_element
                    ));
                }
                s.wrap("       = ", 9, &items, " + ")?;
                let verdict = if f.matches {
                    "the file's size".to_owned()
                } else {
                    format!("but the file has {}", plural(f.file_bytes, "byte"))
                };
                s.line(&format!("       = {}, {verdict}", plural(f.total, "byte")))?;
            }
            None if self.kind != "json" => {
                s.wrap(
                    "  ",
                    4,
                    &[
                        format!(
                            "{} file: {}, of which",
                            self.kind,
                            plural(self.file_bytes, "byte")
                        ),
                        format!("{} are tensor data", bytes(self.data_bytes)),
                        format!("for {}", plural(self.parameter_count, "element")),
                    ],
                    " ",
                )?;
            }
            None => {
                s.wrap(
                    "  ",
                    4,
                    &[
                        format!("JSON text: {} for", plural(self.file_bytes, "byte")),
                        format!("{};", plural(self.parameter_count, "element")),
                        format!(
                            "the same tensors take {} as binary data",
                            bytes(self.data_bytes)
                        ),
                    ],
                    " ",
                )?;
            }
        }
        let at: Vec<String> = self
            .sizes_at
            .iter()
            .map(|x| format!("{} {}", x.precision, bytes(x.bytes)))
            .collect();
        let head = if self.quantization.is_some() {
            "  unpacked data at "
        } else {
            "  data at "
        };
        s.wrap(head, 4, &at, ", ")?;
        s.line("  where it stands:")?;
        let room = s.cols.saturating_sub(49).max(16);
        let names: Vec<String> = self
            .landmarks
            .iter()
            .map(|l| {
                if l.this_model {
                    middle(file_name(&l.name), room).into_owned()
                } else {
                    l.name.clone()
                }
            })
            .collect();
        let name_w = names.iter().map(|n| width(n)).max().unwrap_or(0);
        for (l, name) in self.landmarks.iter().zip(&names) {
            let pad = name_w.saturating_sub(width(name));
            s.line(&format!(
                "    {name}{:pad$}  {:>6} params  {:<13}{}",
                "",
                short(l.parameter_count),
                l.size,
                if l.this_model { "  <- this model" } else { "" }
            ))?;
        }
        Ok(())
    }

    fn metadata_section(&self, s: &mut Screen<'_>) -> io::Result<()> {
        s.blank()?;
        if self.metadata.is_empty() {
            return s.line("Metadata: none");
        }
        s.line("Metadata")?;
        for (k, v) in self.metadata.iter().take(METADATA_CAP) {
            let key = middle(k, 32);
            let room = s.cols.saturating_sub(width(&key) + 4).max(16);
            s.line(&format!("  {key}: {}", cut(v, room)))?;
        }
        if self.metadata.len() > METADATA_CAP {
            s.line(&format!(
                "  ... and {} (--format json has them all)",
                and_more((self.metadata.len() - METADATA_CAP) as u64, "key")
            ))?;
        }
        Ok(())
    }
}

/// The label column of a tree row: indented name, repeat count, shape,
/// within `max` columns.
fn tree_label(tree: &Tree<'_>, level: usize, row: &Row<'_>, max: usize) -> String {
    let indent = "  ".repeat(level.min(8));
    let mut suffix = String::new();
    if row.count > 1 {
        let sums = tree.sums(row);
        suffix.push_str(&format!(
            "  x{}  {} each",
            short(row.count),
            short(sums.parameter_count)
        ));
    }
    let meta = tree.tensor(row).map(|t| tree.meta(t));
    if let Some(m) = meta {
        suffix.push_str(&format!("  {}", shape_text(&m.shape, 20)));
        if crate::buffers::buffer_kind(m).is_some() {
            suffix.push_str("  (buffer)");
        }
    }
    let room = max
        .saturating_sub(indent.len() + suffix.chars().count())
        .max(12);
    format!("{indent}{}{suffix}", middle(&row.label, room))
}

fn io_width(w: Option<u64>) -> String {
    w.map_or_else(|| "?".to_owned(), short)
}

fn layer_table(t: &LayerTable, s: &mut Screen<'_>) -> io::Result<()> {
    s.blank()?;
    s.line("Layers (architecture)")?;
    let rows = &t.rows[..t.rows.len().min(LAYER_ROW_CAP)];
    let indexes: Vec<String> = rows
        .iter()
        .map(|r| format!("{}{}", "  ".repeat(r.depth.min(4)), cut(&r.index, 16)))
        .collect();
    let index_w = indexes.iter().map(|i| width(i)).max().unwrap_or(0).max(1);
    let names: Vec<String> = rows
        .iter()
        .map(|r| {
            let layer = cut(&r.layer, 20);
            match r.times {
                Some(n) => format!("{layer} x{}", short(n)),
                None if r.layer == "repeat" => "repeat x?".to_owned(),
                None => layer.into_owned(),
            }
        })
        .collect();
    let name_w = names.iter().map(|n| width(n)).max().unwrap_or(0).max(5);
    let io: Vec<String> = rows
        .iter()
        .map(|r| format!("{} -> {}", io_width(r.input), io_width(r.output)))
        .collect();
    let io_w = io.iter().map(String::len).max().unwrap_or(0).max(9);
    s.line(&format!(
        "  {:<index_w$}  {:<name_w$}  {:<io_w$}  {:<10}  {:>12}",
        "#", "layer", "in -> out", "activation", "parameters"
    ))?;
    for (((r, index), name), io) in rows.iter().zip(&indexes).zip(&names).zip(&io) {
        let tail = if r.layer == "repeat" {
            "  (shared parameters)"
        } else {
            ""
        };
        let ipad = index_w.saturating_sub(width(index));
        let npad = name_w.saturating_sub(width(name));
        s.line(&format!(
            "  {index}{:ipad$}  {name}{:npad$}  {io:<io_w$}  {:<10}  {:>12}{tail}",
            "",
            "",
            cut(r.activation.as_deref().unwrap_or(""), 10),
            thousands(r.parameter_count)
        ))?;
        if let Some(note) = &r.note {
            s.line(&format!(
                "  {:index_w$}  ! {}",
                "",
                cut(note, s.cols - index_w - 6)
            ))?;
        }
    }
    if t.rows.len() > rows.len() {
        s.line(&format!(
            "  ... and {} (--format json has them all)",
            and_more((t.rows.len() - rows.len()) as u64, "layer")
        ))?;
    }
    s.line(&format!(
        "  {:<index_w$}  {:<name_w$}  {:<io_w$}  {:<10}  {:>12}",
        "",
        "total",
        "",
        "",
        thousands(t.parameter_count)
    ))?;
    if !t.unused_tensors.is_empty() {
        let mut items: Vec<String> = t
            .unused_tensors
            .iter()
            .take(LIST)
            .map(|n| middle(n, 40).into_owned())
            .collect();
        if t.unused_tensors.len() > LIST {
            items.push(format!(
                "and {} more",
                thousands((t.unused_tensors.len() - LIST) as u64)
            ));
        }
        let n = t.unused_tensors.len() as u64;
        s.wrap(
            &format!("  {} that no layer names: ", plural(n, "tensor")),
            4,
            &items,
            ", ",
        )?;
    }
    for note in t.notes.iter().take(NOTE_CAP) {
        s.line(&format!("  ! {}", cut(note, s.cols - 4)))?;
    }
    if t.notes.len() > NOTE_CAP {
        s.line(&format!(
            "  ! and {} more",
            plural((t.notes.len() - NOTE_CAP) as u64, "note")
        ))?;
    }
    Ok(())
}

/// The columns the human view may use: `COLUMNS` when it is set to a
/// number, else the width of the terminal on stdout, else 80; never less
/// than 80 or more than [`MAX_COLUMNS`].
pub fn screen_columns() -> usize {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok());
    let cols = from_env.or_else(|| {
        console::Term::stdout()
            .size_checked()
            .map(|(_, cols)| usize::from(cols))
    });
    cols.unwrap_or(80).clamp(80, MAX_COLUMNS)
}
