//! `modeltool`: look inside, convert, check, run and train neural-network
//! parameter files. A thin command line over the modeltool crates.
#![deny(unsafe_code)]

mod cmd;
mod exit;
mod sigbus;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Look inside, convert, check, run and train neural-network parameter files
/// (safetensors, modeltool JSON, GGUF, Hugging Face sharded checkpoints).
#[derive(Debug, Parser)]
#[command(
    name = "modeltool",
    version,
    about,
    long_about = None,
    arg_required_else_help = true,
    after_help = "Examples:\n  modeltool inspect model.safetensors      what is inside, from headers alone\n  modeltool verify model.safetensors       every checksum, exit 1 on damage\n  modeltool convert model.json model.safetensors\n  modeltool run height.json 175            run the network a file stores"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Text for people.
    #[default]
    Human,
    /// One JSON object, for programs.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert between safetensors, JSON, GGUF and sharded checkpoints.
    ///
    /// The output format follows OUTPUT: `.json`, `.safetensors`, `.gguf`, or a folder
    /// of Hugging Face shards (with --max-shard-size, a name ending in `/`, or
    /// an existing checkpoint folder). Stored checksums are checked on the
    /// way; every output carries checksums.
    Convert(cmd::convert::ConvertArgs),
    /// Check structure, every stored checksum, and that values are valid.
    ///
    /// Also the header's own checksum, and that no checksum is missing.
    /// Checksums inside a file catch accidents (bit rot, truncated downloads,
    /// bad edits, wrong casts), not someone who edits the data and recomputes
    /// them: for that, compare with --sha256 HEX against a hash from a place
    /// you trust (the Hugging Face Hub lists one per file).
    ///
    /// Exit status: 0 intact, 1 a check failed, 2 unreadable or malformed.
    Verify(cmd::verify::VerifyArgs),
    /// Show layers, parameter counts, dtypes and why the file is its size.
    ///
    /// Reads headers only.
    Inspect(cmd::inspect::InspectArgs),
    /// Measure how file size grows with parameter count, on real files.
    ///
    /// From the 2-parameter line up to millions of parameters.
    Growth(cmd::growth::GrowthArgs),
    /// Run the network a model file stores: `modeltool run height.json 175`.
    Run(cmd::run::RunArgs),
    /// Train a network on a CSV of samples and write it as a model file.
    Train(cmd::train::TrainArgs),
    /// Write fresh checksums into a model after a deliberate edit.
    ///
    /// Rewrites the model in place (atomically): every tensor's checksum and
    /// each file's header checksum. Prints which checksums changed.
    Rehash(cmd::rehash::RehashArgs),
    /// Per-tensor statistics: min, max, mean, std, NaN, inf, a histogram.
    ///
    /// Also the largest magnitude, zeros and subnormals.
    /// Reads every value (as f64) in bounded pieces, on all cores.
    Stats(cmd::stats::StatsArgs),
    /// Compare two models tensor by tensor, value by value.
    ///
    /// Tensors only in one, of another shape, changed (with the largest
    /// difference and where), and equal.
    /// Tensors whose stored checksums are equal in both files are equal
    /// without being read. Exit status: 0 the same (within --tolerance),
    /// 1 different, 2 unreadable or malformed.
    Diff(cmd::diff::DiffArgs),
}

fn main() -> ExitCode {
    // A model file truncated by another process while mapped: one error
    // line and exit 2 instead of death by SIGBUS. Without it (not Linux),
    // mapped reads work the same, minus that message.
    let _ = sigbus::install();
    // Memory maps (unless --no-mmap), with the handler above in place.
    sigbus::allow_mmap();
    let args = match Args::try_parse() {
        Ok(args) => args,
        // --help and --version print as clap renders them; usage errors
        // become one `error: ...` line like every other error.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // Bare `modeltool`: the commands and examples, as usage (exit 2).
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {} (see --help)", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = match args.command {
        Command::Convert(a) => cmd::convert::run(a, &mut out),
        Command::Verify(a) => cmd::verify::run(a, &mut out),
        Command::Inspect(a) => cmd::inspect::run(a, &mut out),
        Command::Growth(a) => cmd::growth::run(a, &mut out),
        Command::Run(a) => cmd::run::run(a, &mut out),
        Command::Train(a) => cmd::train::run(a, &mut out),
        Command::Rehash(a) => cmd::rehash::run(a, &mut out),
        Command::Stats(a) => cmd::stats::run(a, &mut out),
        Command::Diff(a) => cmd::diff::run(a, &mut out),
    };
    let _ = out.flush();
    exit::finish(result)
}

/// A clap message on one line: its text before the usage section, with
/// line breaks and indentation folded into single spaces.
fn one_line(message: &str) -> String {
    let text = message.split("\nUsage:").next().unwrap_or(message);
    let text = text.split("\nFor more information").next().unwrap_or(text);
    let text = text.trim().strip_prefix("error:").unwrap_or(text).trim();
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Shared `--format` and `--no-mmap` style flags used by several commands.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// A .safetensors file, a .json model file, a model.safetensors.index.json,
    /// or a folder holding a sharded checkpoint.
    pub input: PathBuf,
    /// Read tensors with plain reads instead of memory-mapping the files.
    #[arg(long)]
    pub no_mmap: bool,
    /// How a PyTorch checkpoint's pickle is read.
    #[command(flatten)]
    pub pickle: PickleArgs,
}

/// `--allow-global`, taken by every command that opens a model.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PickleArgs {
    /// Accept a class a PyTorch checkpoint's pickle names (MODULE.NAME,
    /// repeatable) as opaque data: never imported or called. Code-execution
    /// entry points (os.system, builtins.eval, ...) can never be allowed.
    #[arg(long = "allow-global", value_name = "MODULE.NAME")]
    pub allow_global: Vec<String>,
}

impl PickleArgs {
    /// The loader's options: these globals, memory maps or plain reads.
    pub fn open_options(&self, mmap: bool) -> modeltool_loader::OpenOptions {
        modeltool_loader::OpenOptions {
            mmap,
            allow_globals: self.allow_global.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Args::command().debug_assert();
    }
}
