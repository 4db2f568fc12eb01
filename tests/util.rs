//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The modeltool binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_modeltool"))
}

/// The repository's fixtures folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o
                .status
                .code()
                .expect("modeltool exited normally, not by a signal"),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs modeltool with `args` in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .current_dir(dir)
        .output()
        .expect("modeltool runs")
        .into()
}

/// Asserts the run failed with exit code `code` and one `error: ` line
/// that contains every piece of `needles`.
pub fn assert_error(run: &Run, code: i32, needles: &[&str]) {
    assert_eq!(run.code, code, "exit code; stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert!(!lines.is_empty(), "no error message");
    let line = lines
        .iter()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no `error:` line in {:?}", run.stderr));
    for n in needles {
        assert!(
            line.contains(n),
            "error line {line:?} does not mention {n:?}"
        );
    }
    assert!(
        !run.stderr.contains("panicked"),
        "modeltool panicked: {}",
        run.stderr
    );
}

/// A fresh temporary folder.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder")
}

/// The Python interpreter with `safetensors` and `numpy`, from
/// `MODELTOOL_PYTHON` (set by .ci/run). When unset, interop tests are
/// skipped, unless `MODELTOOL_REQUIRE_PYTHON=1`, where that is a failure.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("MODELTOOL_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("MODELTOOL_REQUIRE_PYTHON").is_some() => {
            panic!("MODELTOOL_REQUIRE_PYTHON is set but MODELTOOL_PYTHON is not")
        }
        None => {
            eprintln!("skipping: set MODELTOOL_PYTHON to a python with safetensors and numpy");
            None
        }
    }
}
