//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while describing, building, running or training a network.
///
/// Messages are sentence fragments without a leading `error:`; the caller adds that.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The architecture JSON could not be parsed (syntax, unknown field or unknown layer type).
    #[error("architecture is not valid JSON for this schema: {0}")]
    ArchitectureJson(#[source] serde_json::Error),

    /// The architecture parsed but breaks a rule (softmax not last, bad `times`, nesting too deep, ...).
    #[error("invalid architecture: {0}")]
    InvalidArchitecture(String),

    /// No architecture was stored and the tensor names do not follow `nn.Sequential` naming.
    #[error(
        "no architecture stored and tensor names are not nn.Sequential-style ({0}); pass a model with an architecture"
    )]
    NotSequential(String),

    /// A tensor named by the architecture is not among the parameters.
    #[error("layer {layer} needs tensor `{name}`, which is not in the parameters")]
    MissingTensor {
        /// Position of the layer, e.g. `2` or `3.1` for the second layer inside a repeat at 3.
        layer: String,
        /// The missing tensor name.
        name: String,
    },

    /// A tensor has the wrong number of dimensions, a zero dimension, or the wrong length.
    #[error("layer {layer}: tensor `{name}` has shape {shape:?}, {problem}")]
    TensorShape {
        /// Position of the layer.
        layer: String,
        /// The tensor name.
        name: String,
        /// The shape that was found.
        shape: Vec<usize>,
        /// What was expected instead.
        problem: String,
    },

    /// A linear layer's input width does not match the width produced before it.
    #[error(
        "layer {layer}: linear `{weight}` takes {found} inputs, but the layers before it produce {expected}"
    )]
    WidthMismatch {
        /// Position of the layer.
        layer: String,
        /// Name of the weight tensor.
        weight: String,
        /// Width produced by the preceding layers.
        expected: usize,
        /// Input width of the weight (its second dimension).
        found: usize,
    },

    /// A repeat block does not map its width to the same width.
    #[error(
        "layer {layer}: a repeat block must keep its width, but it maps {input} values to {output}"
    )]
    RepeatWidth {
        /// Position of the repeat layer.
        layer: String,
        /// Width going into the block.
        input: usize,
        /// Width coming out of the block.
        output: usize,
    },

    /// The input slice given to `forward` does not hold `batch * input_width` values.
    #[error(
        "input has {found} values, but a batch of {batch} rows of width {width} needs {expected}"
    )]
    InputLength {
        /// Number of values expected.
        expected: usize,
        /// Batch size asked for.
        batch: usize,
        /// The network's input width.
        width: usize,
        /// Number of values given.
        found: usize,
    },

    /// A data file could not be opened or read.
    #[error("{source_name}: {source}")]
    Io {
        /// The file or source name.
        source_name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The CSV reader itself failed (bad UTF-8, unbalanced quotes, ...).
    #[error("{source_name}: line {line}: {message}")]
    CsvSyntax {
        /// The file or source name.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// What the CSV reader reported.
        message: String,
    },

    /// The CSV has no header row at all.
    #[error("{source_name}: the file is empty; expected a header row and at least one data row")]
    CsvEmpty {
        /// The file or source name.
        source_name: String,
    },

    /// The CSV has a header but no data rows.
    #[error(
        "{source_name}: the header is there but there are no data rows; training needs at least 1 row (2 or more to fit a slope, more rows than input columns for a unique linear fit)"
    )]
    CsvNoRows {
        /// The file or source name.
        source_name: String,
    },

    /// A data row has a different number of fields than the header.
    #[error("{source_name}: line {line} has {fields} fields, the header has {header}")]
    CsvRagged {
        /// The file or source name.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// Fields on that line.
        fields: usize,
        /// Fields in the header.
        header: usize,
    },

    /// A field is not a finite number.
    #[error("{source_name}: line {line}, column `{column}`: `{value}` is not a number")]
    CsvNotNumber {
        /// The file or source name.
        source_name: String,
        /// 1-based line number.
        line: u64,
        /// Header name of the column.
        column: String,
        /// The offending text.
        value: String,
    },

    /// The header has a problem (duplicate names, too few columns).
    #[error("{source_name}: {message}")]
    CsvHeader {
        /// The file or source name.
        source_name: String,
        /// What is wrong.
        message: String,
    },

    /// A target column asked for is not in the header.
    #[error(
        "{source_name}: there is no column `{column}` to use as a target (columns: {available})"
    )]
    UnknownTargetColumn {
        /// The file or source name.
        source_name: String,
        /// The requested column.
        column: String,
        /// The header's columns, comma separated.
        available: String,
    },

    /// A training setting is out of range.
    #[error("invalid training setting: {0}")]
    InvalidConfig(String),

    /// The training loss became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch} (the loss is no longer finite); try a smaller learning rate"
    )]
    Diverged {
        /// 1-based epoch at which it happened.
        epoch: usize,
    },

    /// A linear algebra routine failed to converge.
    #[error("least-squares solve failed: {0}")]
    Solve(String),

    /// Drawing or writing the loss chart failed.
    #[error("{path}: could not draw the loss chart: {message}", path = .path.display())]
    Plot {
        /// Where the chart was to be written (empty for in-memory charts).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
