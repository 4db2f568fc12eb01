//! The text view of a [`Report`].

use std::io::{self, Write};

use crate::layers::LayerTable;
use crate::report::Report;
use crate::tree::TreeNode;
use crate::units::{bytes, percent, percent_coarse, ratio, short, thousands};

/// Width of the label column of the summary.
const KEY: usize = 18;
/// The widest module label before the columns stop lining up.
const MAX_LABEL: usize = 64;
/// Names listed before "and N more".
const LIST: usize = 3;
/// Characters of a metadata value shown.
const VALUE_CHARS: usize = 100;

impl Report {
    /// Writes the report for people: totals, module tree, layer table,
    /// tensors (when asked for), file size and metadata.
    pub fn render_human(&self, out: &mut impl Write) -> io::Result<()> {
        self.summary(out)?;
        self.module_tree(out)?;
        if let Some(layers) = &self.layers {
            layer_table(layers, out)?;
        }
        if self.view.tensors {
            self.tensor_table(out)?;
        }
        self.size(out)?;
        self.metadata_section(out)
    }

    fn summary(&self, out: &mut impl Write) -> io::Result<()> {
        let files = match self.files.len() {
            1 => "1 file".to_owned(),
            n => format!("{n} files"),
        };
        writeln!(out, "{} ({}, {files})", self.path, self.kind)?;
        let key = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<KEY$}{v}");
        key(out, "tensors", thousands(self.tensor_count))?;
        key(out, "parameters", exact_and_short(self.parameter_count))?;
        let b = &self.buffers;
        if b.tensor_count == 0 {
            key(out, "buffers", "none".to_owned())?;
        } else {
            let mut names: Vec<String> = b
                .tensors
                .iter()
                .take(LIST)
                .map(|t| format!("{} ({})", t.name, t.kind))
                .collect();
            if b.tensors.len() > LIST {
                names.push(format!("and {} more", b.tensors.len() - LIST));
            }
            key(
                out,
                "buffers",
                format!(
                    "{} in {} tensor{}, not parameters: {}",
                    thousands(b.element_count),
                    b.tensor_count,
                    if b.tensor_count == 1 { "" } else { "s" },
                    names.join(", ")
                ),
            )?;
            key(
                out,
                "without buffers",
                exact_and_short(self.parameters_without_buffers),
            )?;
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
            .map(|d| thousands(d.bytes).len())
            .max()
            .unwrap_or(0);
        for (name, d) in &self.dtypes {
            let share = if self.parameter_count == 0 {
                0.0
            } else {
                d.parameter_count as f64 / self.parameter_count as f64
            };
            key(
                out,
                name,
                format!(
                    "{:>count_width$} parameters {:>byte_width$} bytes  {}",
                    thousands(d.parameter_count),
                    thousands(d.bytes),
                    percent(share)
                ),
            )?;
        }
        let per = self
            .bytes_per_parameter
            .map(|x| format!(", {} bytes per parameter", ratio(x)))
            .unwrap_or_default();
        key(
            out,
            "data",
            format!(
                "{} bytes ({}){per}",
                thousands(self.data_bytes),
                bytes(self.data_bytes)
            ),
        )?;
        key(
            out,
            "header",
            format!(
                "{} bytes ({}), {} of the file",
                thousands(self.header_bytes),
                bytes(self.header_bytes),
                percent(self.header_share)
            ),
        )?;
        let per = self
            .file_bytes_per_parameter
            .filter(|_| self.kind == "json")
            .map(|x| format!(", {} bytes per parameter", ratio(x)))
            .unwrap_or_default();
        key(
            out,
            "file",
            format!(
                "{} bytes ({}){per}",
                thousands(self.file_bytes),
                bytes(self.file_bytes)
            ),
        )?;
        if self.files.len() > 1 {
            writeln!(out, "  files")?;
            for f in self.files.iter().take(2 * LIST) {
                writeln!(
                    out,
                    "    {}  {} tensors  {}  header {}",
                    f.path,
                    f.tensor_count,
                    bytes(f.file_bytes),
                    bytes(f.header_bytes)
                )?;
            }
            if self.files.len() > 2 * LIST {
                writeln!(out, "    and {} more", self.files.len() - 2 * LIST)?;
            }
        }
        Ok(())
    }

    fn module_tree(&self, out: &mut impl Write) -> io::Result<()> {
        let mut rows = Vec::new();
        collect(&self.tree, 0, self.view.depth, &mut rows);
        if rows.is_empty() {
            return Ok(());
        }
        let hidden = if self.view.auto && rows.len() > TREE_ROW_CAP {
            let n = rows.len() - TREE_ROW_CAP;
            rows.truncate(TREE_ROW_CAP);
            n
        } else {
            0
        };
        let labels: Vec<String> = rows
            .iter()
            .map(|(level, n)| tree_label(*level, n))
            .collect();
        let width = labels
            .iter()
            .map(|l| l.chars().count())
            .max()
            .unwrap_or(0)
            .clamp("module".len(), MAX_LABEL);
        writeln!(out)?;
        let more = if self.view.depth < self.view.height {
            "; --depth N shows more"
        } else {
            ""
        };
        writeln!(
            out,
            "Modules ({} of {} level{}{more})",
            self.view.depth.min(self.view.height),
            self.view.height,
            if self.view.height == 1 { "" } else { "s" }
        )?;
        writeln!(
            out,
            "  {:<width$}  {:>10}  {:>7}  {:<8}  {:>9}",
            "module", "parameters", "share", "dtype", "bytes"
        )?;
        for ((_, n), label) in rows.iter().zip(&labels) {
            writeln!(
                out,
                "  {label:<width$}  {:>10}  {:>7}  {:<8}  {:>9}",
                short(n.total_parameter_count),
                percent_coarse(n.share),
                n.dtypes.join(","),
                bytes(n.bytes)
            )?;
        }
        if hidden > 0 {
            writeln!(
                out,
                "  ... and {hidden} more rows (--depth 1 shows them all)"
            )?;
        }
        Ok(())
    }

    fn tensor_table(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "Tensors")?;
        let name_w = self
            .tensors
            .iter()
            .map(|t| t.name.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(4, MAX_LABEL);
        let shapes: Vec<String> = self
            .tensors
            .iter()
            .map(|t| format!("{:?}", t.shape))
            .collect();
        let shape_w = shapes.iter().map(String::len).max().unwrap_or(0).max(5);
        let sharded = self.files.len() > 1;
        writeln!(
            out,
            "  {:<name_w$}  {:<11}  {:<shape_w$}  {:>13}  {:>14}  {:>14}{}",
            "name",
            "dtype",
            "shape",
            "parameters",
            "bytes",
            "offset",
            if sharded { "  file" } else { "" }
        )?;
        for (t, shape) in self.tensors.iter().zip(&shapes) {
            let file = if sharded {
                format!("  {}", t.file)
            } else {
                String::new()
            };
            let buffer = if t.buffer.is_some() { "  (buffer)" } else { "" };
            writeln!(
                out,
                "  {:<name_w$}  {:<11}  {shape:<shape_w$}  {:>13}  {:>14}  {:>14}{file}{buffer}",
                t.name,
                t.dtype.name(),
                thousands(t.parameter_count),
                thousands(t.bytes),
                thousands(t.offset)
            )?;
        }
        Ok(())
    }

    fn size(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "File size")?;
        match &self.size_formula {
            Some(f) => {
                writeln!(
                    out,
                    "  file = 8 + header + sum(elements x bytes per element)"
                )?;
                let length = if self.files.len() == 1 {
                    "8".to_owned()
                } else {
                    format!("8 x {}", self.files.len())
                };
                let mut text = format!("{length} + {}", thousands(f.json_header_bytes));
                for t in &f.terms {
                    text.push_str(&format!(
                        " + {} x {}",
                        thousands(t.elements),
                        t.bytes_per_element
                    ));
                }
                let verdict = if f.matches {
                    "the file's size".to_owned()
                } else {
                    format!("but the file has {} bytes", thousands(f.file_bytes))
                };
                writeln!(out, "       = {text}")?;
                writeln!(out, "       = {} bytes, {verdict}", thousands(f.total))?;
            }
            None => {
                writeln!(
                    out,
                    "  JSON text: {} bytes for {} parameters; the same tensors take {} as binary data",
                    thousands(self.file_bytes),
                    thousands(self.parameter_count),
                    bytes(self.data_bytes)
                )?;
            }
        }
        let at: Vec<String> = self
            .sizes_at
            .iter()
            .map(|s| format!("{} {}", s.precision, bytes(s.bytes)))
            .collect();
        writeln!(out, "  data at {}", at.join(", "))?;
        let name_w = self
            .landmarks
            .iter()
            .map(|l| l.name.chars().count())
            .max()
            .unwrap_or(0)
            .min(MAX_LABEL);
        writeln!(out, "  where it stands:")?;
        for l in &self.landmarks {
            let line = format!(
                "    {:<name_w$}  {:>6} parameters  {:<14}{}",
                l.name,
                short(l.parameter_count),
                l.size,
                if l.this_model { "  <- this model" } else { "" }
            );
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    fn metadata_section(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out)?;
        if self.metadata.is_empty() {
            return writeln!(out, "Metadata: none");
        }
        writeln!(out, "Metadata")?;
        for (k, v) in &self.metadata {
            let mut shown: String = v
                .chars()
                .take(VALUE_CHARS)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            if v.chars().count() > VALUE_CHARS {
                shown.push_str("...");
            }
            writeln!(out, "  {k}: {shown}")?;
        }
        Ok(())
    }
}

/// Tree rows shown at most when no depth was asked for and even the top
/// level is longer than the budget.
const TREE_ROW_CAP: usize = 40;

/// `22,713,728 (22.7M)`, or just `78` where the short form adds nothing.
fn exact_and_short(n: u64) -> String {
    if n < 1000 {
        n.to_string()
    } else {
        format!("{} ({})", thousands(n), short(n))
    }
}

/// The rows of the tree down to `depth` levels, with their level.
fn collect<'a>(
    nodes: &'a [TreeNode],
    level: usize,
    depth: usize,
    rows: &mut Vec<(usize, &'a TreeNode)>,
) {
    if level >= depth {
        return;
    }
    for n in nodes {
        rows.push((level, n));
        collect(&n.children, level + 1, depth, rows);
    }
}

/// The label column of a tree row: indented name, repeat count, shape.
fn tree_label(level: usize, n: &TreeNode) -> String {
    let mut s = format!("{}{}", "  ".repeat(level), n.label);
    if n.count > 1 {
        s.push_str(&format!(
            "  x{}  {} each",
            n.count,
            short(n.parameter_count)
        ));
    }
    if let Some(shape) = &n.shape {
        s.push_str(&format!("  {shape:?}"));
    }
    if n.buffer.is_some() {
        s.push_str("  (buffer)");
    }
    s
}

fn width(w: Option<u64>) -> String {
    w.map_or_else(|| "?".to_owned(), |w| w.to_string())
}

fn layer_table(t: &LayerTable, out: &mut impl Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "Layers (architecture)")?;
    let index_w = t
        .rows
        .iter()
        .map(|r| 2 * r.depth + r.index.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let names: Vec<String> = t
        .rows
        .iter()
        .map(|r| match r.times {
            Some(n) => format!("{} x{n}", r.layer),
            None if r.layer == "repeat" => "repeat x?".to_owned(),
            None => r.layer.clone(),
        })
        .collect();
    let name_w = names.iter().map(String::len).max().unwrap_or(0).max(5);
    let io: Vec<String> = t
        .rows
        .iter()
        .map(|r| format!("{} -> {}", width(r.input), width(r.output)))
        .collect();
    let io_w = io.iter().map(String::len).max().unwrap_or(0).max(9);
    writeln!(
        out,
        "  {:<index_w$}  {:<name_w$}  {:<io_w$}  {:<10}  {:>12}",
        "#", "layer", "in -> out", "activation", "parameters"
    )?;
    for ((r, name), io) in t.rows.iter().zip(&names).zip(&io) {
        let index = format!("{}{}", "  ".repeat(r.depth), r.index);
        let mut tail = String::new();
        if r.layer == "repeat" {
            tail.push_str("  (shared parameters)");
        }
        if let Some(note) = &r.note {
            tail.push_str(&format!("  ! {note}"));
        }
        writeln!(
            out,
            "  {index:<index_w$}  {name:<name_w$}  {io:<io_w$}  {:<10}  {:>12}{tail}",
            r.activation.as_deref().unwrap_or(""),
            thousands(r.parameter_count)
        )?;
    }
    writeln!(
        out,
        "  {:<index_w$}  {:<name_w$}  {:<io_w$}  {:<10}  {:>12}",
        "",
        "total",
        "",
        "",
        thousands(t.parameter_count)
    )?;
    if !t.unused_tensors.is_empty() {
        let mut names: Vec<&str> = t
            .unused_tensors
            .iter()
            .take(LIST)
            .map(String::as_str)
            .collect();
        let more;
        if t.unused_tensors.len() > LIST {
            more = format!("and {} more", t.unused_tensors.len() - LIST);
            names.push(&more);
        }
        writeln!(
            out,
            "  {} tensor{} no layer names: {}",
            t.unused_tensors.len(),
            if t.unused_tensors.len() == 1 { "" } else { "s" },
            names.join(", ")
        )?;
    }
    for note in &t.notes {
        writeln!(out, "  ! {note}")?;
    }
    Ok(())
}
