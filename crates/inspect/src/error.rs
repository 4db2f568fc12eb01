//! The one error type of the inspect crate.

use std::path::PathBuf;

/// Why measuring growth or drawing a chart failed. Inspecting facts cannot
/// fail; only the functions that write files return this.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Creating, writing or measuring a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The format crate refused to write a model file.
    #[error("{}: {source}", path.display())]
    Format {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: modeltool_format::FormatError,
    },
    /// A growth point cannot be built (too few or zero widths, or too large).
    #[error("growth point `{name}`: {reason}")]
    Spec {
        /// The point's name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Drawing the chart failed.
    #[error("{}: cannot draw the chart: {reason}", path.display())]
    Plot {
        /// The SVG file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
