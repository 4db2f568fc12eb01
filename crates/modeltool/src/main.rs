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
/// (safetensors, modeltool JSON, Hugging Face sharded checkpoints).
#[derive(Debug, Parser)]
#[command(name = "modeltool", version, about, long_about = None)]
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
    /// Convert between safetensors, JSON model files and sharded checkpoints.
    ///
    /// The output format follows OUTPUT: `.json`, `.safetensors`, or a folder
    /// of Hugging Face shards (with --max-shard-size, a name ending in `/`, or
    /// an existing checkpoint folder). Stored checksums are checked on the
    /// way; every output carries checksums.
    Convert(cmd::convert::ConvertArgs),
    /// Check a model's structure, every stored checksum and the header's own
    /// checksum, that no checksum is missing, and that values are valid.
    ///
    /// Checksums inside a file catch accidents (bit rot, truncated downloads,
    /// bad edits, wrong casts), not someone who edits the data and recomputes
    /// them: for that, compare with --sha256 HEX against a hash from a place
    /// you trust (the Hugging Face Hub lists one per file).
    ///
    /// Exit status: 0 intact, 1 a check failed, 2 unreadable or malformed.
    Verify(cmd::verify::VerifyArgs),
    /// Show what is in a model: layers, parameter counts, dtypes, and why the
    /// file is the size it is. Reads headers only.
    Inspect(cmd::inspect::InspectArgs),
    /// Measure how file size grows with parameter count, on real files from
    /// the 2-parameter line up to millions of parameters.
    Growth(cmd::growth::GrowthArgs),
    /// Run the network a model file stores on samples: `modeltool run
    /// height.json 175`.
    Run(cmd::run::RunArgs),
    /// Train a network on a CSV of samples and write it as a model file.
    Train(cmd::train::TrainArgs),
    /// Rewrite a model in place with fresh checksums, after a deliberate
    /// edit: every tensor's and each file's header checksum. Prints which
    /// checksums changed.
    Rehash(cmd::rehash::RehashArgs),
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
    /// Accept a class a PyTorch checkpoint's pickle names (MODULE.NAME,
    /// repeatable) as opaque data: never imported or called. Code-execution
    /// entry points (os.system, builtins.eval, ...) can never be allowed.
    #[arg(long = "allow-global", value_name = "MODULE.NAME")]
    pub allow_global: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Args::command().debug_assert();
    }
}
