//! PyTorch checkpoints against torch itself: for every fixture and for
//! fresh files torch writes during the test (random values of every dtype,
//! views, LSTM and channels-last weights; zip, protocol 4 and legacy), the
//! contiguous bytes we read must equal `tensor.contiguous()`'s bytes as
//! `torch.load` gives them (tests/python/torch_tensors.py). Skipped when
//! `MODELTOOL_PYTHON` is unset or cannot import torch; either is a failure
//! when `MODELTOOL_REQUIRE_PYTHON=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use modeltool_format::pytorch::PytorchFile;

use crate::pytorch::{fixture, fixture_dir};

fn python() -> Option<PathBuf> {
    let required = std::env::var_os("MODELTOOL_REQUIRE_PYTHON").is_some();
    let Some(python) = std::env::var_os("MODELTOOL_PYTHON").map(PathBuf::from) else {
        assert!(
            !required,
            "MODELTOOL_REQUIRE_PYTHON is set but MODELTOOL_PYTHON is not"
        );
        eprintln!("skipping: set MODELTOOL_PYTHON to a python with torch");
        return None;
    };
    // The safetensors interop tests need only safetensors and numpy; a
    // developer's Python without torch skips these instead of failing them.
    let has_torch = Command::new(&python)
        .args(["-c", "import torch"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        assert!(
            !required,
            "MODELTOOL_REQUIRE_PYTHON is set but {} cannot import torch",
            python.display()
        );
        eprintln!("skipping: {} cannot import torch", python.display());
        return None;
    }
    Some(python)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/torch_tensors.py")
}

fn run(python: &Path, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python)
        .arg(script())
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "torch_tensors.py {args:?}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compares every tensor of every file with torch's; returns how many.
fn compare(python: &Path, files: &[PathBuf]) -> usize {
    let mut args: Vec<&std::ffi::OsStr> = vec!["dump".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let theirs: serde_json::Value = serde_json::from_str(&run(python, &args)).unwrap();
    let mut n = 0;
    for path in files {
        let base = path.file_name().unwrap().to_str().unwrap();
        let want = theirs[base].as_object().unwrap();
        assert!(
            !want.contains_key("error"),
            "torch cannot load {base}: {}",
            want["error"]
        );
        let bytes = std::fs::read(path).unwrap();
        let file = PytorchFile::parse(&bytes, &[]).unwrap_or_else(|e| panic!("{base}: {e}"));
        let ours: Vec<&str> = file
            .checkpoint
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let mut names: Vec<&str> = want.keys().map(String::as_str).collect();
        let mut sorted = ours.clone();
        names.sort();
        sorted.sort();
        assert_eq!(sorted, names, "{base}: tensor names");
        for t in &file.checkpoint.tensors {
            let w = &want[&t.name];
            let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
            assert_eq!(t.shape, shape, "{base}: shape of {}", t.name);
            let got = hex::encode(file.tensor_bytes(&bytes, t).unwrap());
            assert_eq!(
                got, w["hex"],
                "{base}: `{}` ({}) differs from torch's contiguous bytes",
                t.name, t.dtype
            );
            n += 1;
        }
    }
    n
}

#[test]
fn fixtures_read_as_torch_load_reads_them() {
    let Some(python) = python() else { return };
    let m: serde_json::Value = serde_json::from_slice(&fixture("MANIFEST.json")).unwrap();
    let files: Vec<PathBuf> = m["files"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !crate::pytorch::REFUSED.contains(&k.as_str()))
        .map(|k| fixture_dir().join(k))
        .collect();
    let n = compare(&python, &files);
    assert!(n > 80, "only {n} tensors compared");
}

#[test]
fn fresh_checkpoints_torch_writes_read_byte_for_byte() {
    let Some(python) = python() else { return };
    let dir = std::env::temp_dir().join(format!("modeltool-torch-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    run(&python, &["write".as_ref(), dir.as_os_str()]);
    let files: Vec<PathBuf> = ["fresh_zip.pt", "fresh_p4.pt", "fresh_legacy.pt"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    let n = compare(&python, &files);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(n > 100, "only {n} tensors compared");
}
