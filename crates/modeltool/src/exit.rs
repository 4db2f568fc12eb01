//! Outcomes to exit codes: 0 success, 1 a check failed, 2 bad input or usage.
//! A pipe closed early (`modeltool inspect big | head`) ends quietly.

use std::process::ExitCode;

use modeltool_format::pytorch::PickleError;
use modeltool_loader::LoadError;

/// A check ran and failed (damaged data): exit 1, the report says why.
#[derive(Debug)]
pub struct CheckFailed;

impl std::fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("check failed")
    }
}

impl std::error::Error for CheckFailed {}

/// Prints a failed outcome as one `error: ...` line and picks the exit code.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    if is_broken_pipe(&err) {
        return ExitCode::SUCCESS;
    }
    if err.downcast_ref::<CheckFailed>().is_some() {
        return ExitCode::from(1);
    }
    // The library errors already name the file and the cause; their
    // `source` chain would only repeat it. Escaped as a last defence: the
    // libraries escape what came from a file, and no control character
    // (a line break included) reaches stderr whatever slipped through.
    let mut line = err.to_string().replace('\n', " ");
    if let Some(global) = allowable_global(&err) {
        line.push_str(&format!(
            "; if you trust it, --allow-global {global} accepts it as opaque data (never called)"
        ));
    }
    eprintln!("error: {}", modeltool_format::text::escape(&line));
    let check = err
        .downcast_ref::<LoadError>()
        .is_some_and(LoadError::is_check_failure);
    ExitCode::from(if check { 1 } else { 2 })
}

/// The global a checkpoint's pickle was refused for, when the command line
/// can accept it (`--allow-global`); never a code-execution entry point.
fn allowable_global(err: &anyhow::Error) -> Option<&str> {
    err.chain()
        .find_map(|e| match e.downcast_ref::<PickleError>()? {
            PickleError::Forbidden {
                global,
                allowable: true,
                ..
            } => Some(global.as_str()),
            _ => None,
        })
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = Some(std::io::ErrorKind::BrokenPipe);
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) == pipe
            // serde_json wraps the I/O error of a JSON report written to a closed pipe.
            || e.downcast_ref::<serde_json::Error>().and_then(serde_json::Error::io_error_kind) == pipe
    })
}
