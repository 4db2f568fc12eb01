//! The one error type of this crate.

use std::path::PathBuf;

use modeltool_format::Dtype;
use modeltool_format::arch::ArchError;
use modeltool_format::text::{Count, Escaped};
use modeltool_loader::LoadError;

/// Everything that can go wrong while describing, building, running or training a network.
///
/// Messages are sentence fragments without a leading `error:`; the caller adds that. Names
/// that came from a file (tensor names, CSV column names, field values) are escaped and
/// bounded with [`modeltool_format::text`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The architecture breaks the schema (docs/FORMAT.md, "Architecture").
    #[error("invalid architecture: {0}")]
    Architecture(#[from] ArchError),

    /// An error about a model file, with the file's path in front.
    #[error("{}: {source}", path.display())]
    InModel {
        /// The model.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<NetError>,
    },

    /// Reading the model's tensors failed (a damaged tensor among them).
    #[error(transparent)]
    Load(#[from] LoadError),

    /// No architecture is stored and the tensors are not a stack of linear layers: the model
    /// is not a network `run` can execute.
    #[error(
        "this model is not a network that can be run: it stores no architecture, and its tensor names are not nn.Sequential-style linear layers (`{}` {reason}). Runnable models store an architecture (docs/FORMAT.md, \"Architecture\"), or hold only `0.weight, 0.bias, 2.weight, ...` linear layers",
        Escaped(.example)
    )]
    NotRunnable {
        /// One tensor name that does not fit.
        example: String,
        /// Why it does not fit.
        reason: &'static str,
    },

    /// No architecture is stored and the tensor names do not follow `nn.Sequential` naming.
    #[error("tensor names are not nn.Sequential-style: `{}` {reason}", Escaped(.name))]
    NotSequential {
        /// The name that does not fit.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// An `nn.Sequential`-style stack of several linear layers, with no activation given.
    #[error(
        "no architecture stored; its {layers} nn.Sequential-style linear layers need an activation between them (--activation relu, tanh, sigmoid, gelu or identity)"
    )]
    NeedsActivation {
        /// Number of linear layers.
        layers: usize,
    },

    /// An activation was given for a model that stores its own architecture.
    #[error("the file stores its architecture; an activation applies only to files without one")]
    ActivationNotApplicable,

    /// A tensor the network needs is not of a float dtype.
    #[error("tensor `{}` is {dtype}, not a float dtype a network can run", Escaped(.name))]
    NotFloat {
        /// The tensor.
        name: String,
        /// Its dtype.
        dtype: Dtype,
    },

    /// A tensor named by the architecture is not among the parameters.
    #[error("layer {layer} needs tensor `{}`, which is not in the parameters", Escaped(.name))]
    MissingTensor {
        /// Position of the layer, e.g. `2` or `3.1` for the second layer inside a repeat at 3.
        layer: String,
        /// The missing tensor name.
        name: String,
    },

    /// A tensor has the wrong number of dimensions, a zero dimension, or the wrong length.
    #[error("layer {layer}: tensor `{}` has shape {shape:?}, {problem}", Escaped(.name))]
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
        "layer {layer}: linear `{}` takes {}, but the layers before it produce {expected}",
        Escaped(.weight),
        count(.found, "input")
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
        "layer {layer}: a repeat block must keep its width, but it maps {} to {output}",
        count(.input, "value")
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
        "input has {}, but a batch of {} of width {width} needs {expected}",
        count(.found, "value"),
        count(.batch, "row")
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

    /// A forward pass would return more values than it may hold at once.
    #[error(
        "{} of {} are more than {max} values; run the input in parts",
        count(.batch, "sample"),
        count(.width, "output")
    )]
    TooManyOutputs {
        /// Batch size asked for.
        batch: usize,
        /// The network's output width.
        width: usize,
        /// The most values one pass returns.
        max: usize,
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
    #[error("{source_name}: the header is there but there are no data rows")]
    CsvNoRows {
        /// The file or source name.
        source_name: String,
    },

    /// A data row has a different number of fields than the header.
    #[error("{source_name}: line {line} has {}, the header has {header}", count(.fields, "field"))]
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
    #[error(
        "{source_name}: line {line}, column `{}`: `{}` is not a number",
        Escaped(.column),
        Escaped(.value)
    )]
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
        /// What is wrong (names in it already escaped).
        message: String,
    },

    /// A target column asked for is not in the header.
    #[error(
        "{source_name}: there is no column `{}` to use as a target (columns: {})",
        Escaped(.column),
        Escaped(.available)
    )]
    UnknownTargetColumn {
        /// The file or source name.
        source_name: String,
        /// The requested column.
        column: String,
        /// The header's columns, comma separated.
        available: String,
    },

    /// A column the network takes as input (by the name the model records) is not in the header.
    #[error(
        "{source_name}: there is no column `{}`, which the model takes as input (columns: {}; the model takes {})",
        Escaped(.column),
        Escaped(.available),
        Escaped(.wanted)
    )]
    MissingInputColumn {
        /// The file or source name.
        source_name: String,
        /// The missing column.
        column: String,
        /// The header's columns, comma separated.
        available: String,
        /// The input columns the model records, comma separated.
        wanted: String,
    },

    /// Rows of a CSV whose columns cannot be picked by name have the wrong number of values.
    #[error(
        "{source_name}: rows have {}; the model takes {}",
        count(.found, "value"),
        count(.width, "input")
    )]
    CsvWidth {
        /// The file or source name.
        source_name: String,
        /// Values per row.
        found: usize,
        /// The network's input width.
        width: usize,
    },

    /// A sample given as text (`1.5`, `-1,0.5,2`) holds a field that is not a finite number.
    #[error(
        "sample {sample} (`{}`): `{}` is not {}",
        Escaped(.text),
        Escaped(.field),
        number_kind(.infinite)
    )]
    SampleNotNumber {
        /// 1-based position of the sample.
        sample: usize,
        /// The whole sample as given.
        text: String,
        /// The field that is not a finite number.
        field: String,
        /// Whether the field is a number, but NaN or infinite.
        infinite: bool,
    },

    /// A sample given as text holds another number of values than the network takes.
    #[error(
        "sample {sample} (`{}`) has {}; the model takes {}",
        Escaped(.text),
        count(.found, "value"),
        count(.width, "input")
    )]
    SampleWidth {
        /// 1-based position of the sample.
        sample: usize,
        /// The whole sample as given.
        text: String,
        /// Values in it.
        found: usize,
        /// The network's input width.
        width: usize,
    },

    /// A batch holds no samples.
    #[error("{source_name}: no samples")]
    NoSamples {
        /// The file or source name.
        source_name: String,
    },

    /// The tensor `input` of a safetensors batch is not of shape `[batch, width]`.
    #[error("{source_name}: tensor `input` has shape {shape:?}; the model takes [batch, {width}]")]
    InputShape {
        /// The file.
        source_name: String,
        /// The shape found.
        shape: Vec<usize>,
        /// The network's input width.
        width: usize,
    },

    /// A value of the tensor `input` of a safetensors batch is NaN or infinite.
    #[error("{source_name}: tensor `input` value {index} is {value}, not a finite number")]
    InputNotFinite {
        /// The file.
        source_name: String,
        /// 0-based position of the value, row-major.
        index: usize,
        /// The value.
        value: f32,
    },

    /// A CSV value to run is finite as a 64-bit float but beyond the range of f32, in which the
    /// network runs.
    #[error("{source_name}: value {value} of row {row} does not fit in a 32-bit float")]
    InputTooLarge {
        /// The file or source name.
        source_name: String,
        /// 1-based data row (the header not counted).
        row: usize,
        /// The value as read.
        value: f64,
    },

    /// A training setting is out of range.
    #[error("invalid training setting: {0}")]
    InvalidConfig(String),

    /// Adam's training loss became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch} (the loss is no longer finite); try a smaller learning rate"
    )]
    Diverged {
        /// 1-based epoch at which it happened.
        epoch: usize,
    },

    /// The data holds values beyond the range of f32, in which networks run.
    #[error(
        "{source_name}: values near {largest:e} do not fit in 32-bit floats, in which the network computes; rescale the columns (e.g. other units)"
    )]
    ValuesTooLarge {
        /// The file or source name.
        source_name: String,
        /// The largest magnitude in the data.
        largest: f64,
    },

    /// The least-squares line does not fit in f32, or its error is not finite.
    #[error(
        "least squares: the fitted line's weights or predictions do not fit in 32-bit floats (data values near {largest:e}); rescale the columns, e.g. to other units"
    )]
    LeastSquaresOverflow {
        /// The largest magnitude in the data.
        largest: f64,
    },

    /// Fewer independent rows than the parameters of a line: the fit is not unique.
    #[error(
        "{source_name}: least squares cannot fit {parameters} parameters (a weight per input column and a bias) from {independent} independent rows ({rows} rows); add rows that differ, or drop a constant or duplicated input column"
    )]
    Underdetermined {
        /// The file or source name.
        source_name: String,
        /// Rows in the data.
        rows: usize,
        /// Rows that are linearly independent (with the bias column).
        independent: usize,
        /// Parameters of the line per target: inputs + 1.
        parameters: usize,
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

/// What a sample field that failed to parse is not: a finite number (it is NaN or infinite) or a
/// number at all.
fn number_kind(infinite: &bool) -> &'static str {
    if *infinite {
        "a finite number"
    } else {
        "a number"
    }
}

impl NetError {
    /// The loader's error inside, when the failure was reading the model (a damaged tensor
    /// is [`LoadError::is_check_failure`]); the binary maps it to its own exit code.
    pub fn load_error(&self) -> Option<&LoadError> {
        match self {
            NetError::Load(e) => Some(e),
            NetError::InModel { source, .. } => source.load_error(),
            _ => None,
        }
    }

    pub(crate) fn in_model(self, path: &std::path::Path) -> NetError {
        match self {
            // The loader's errors name the file already.
            e @ (NetError::Load(_) | NetError::InModel { .. }) => e,
            e => NetError::InModel {
                path: path.to_owned(),
                source: Box::new(e),
            },
        }
    }
}

/// `1 input`, `3 inputs`: a count in an error message.
fn count<'a>(n: &usize, noun: &'a str) -> Count<'a> {
    Count(*n as u64, noun)
}
