//! What every command accepts as a model, as a user meets it: files told by
//! their first bytes, FIFOs that no longer hang, the checkpoint folder as
//! the boundary, thousands of shards under a low `ulimit -n`, partial
//! checksum sets, invalid values, and strings from files kept away from the
//! terminal.

use std::path::Path;
use std::process::{Command, Stdio};

use modeltool_format::{
    Checksum, Dtype, ModelMetadata, TensorMeta, write_safetensors,
    write_safetensors_with_header_sha256,
};

use crate::util::{Run, assert_error, bin, fixtures, run_in, tempdir};

fn tensor(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
    TensorMeta {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// Writes `tensors` with modeltool checksums for those named in `summed`.
fn write_st(path: &Path, tensors: &[(TensorMeta, Vec<u8>)], summed: &[&str], digest: bool) {
    let mut md = ModelMetadata::default();
    for (m, b) in tensors {
        if summed.contains(&m.name.as_str()) {
            md.checksums.insert(m.name.clone(), Checksum::of(b));
        }
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    let f = std::fs::File::create(path).unwrap();
    if digest {
        write_safetensors_with_header_sha256(f, &refs, &md.to_safetensors()).unwrap();
    } else {
        write_safetensors(f, &refs, &md.to_safetensors()).unwrap();
    }
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A checkpoint of `n` shards of one F32 tensor each, fully checksummed.
fn write_checkpoint(dir: &Path, n: usize) {
    let mut map = serde_json::Map::new();
    for i in 0..n {
        let shard = format!("model-{:05}-of-{n:05}.safetensors", i + 1);
        let name = format!("t{i}");
        write_st(
            &dir.join(&shard),
            &[(tensor(&name, Dtype::F32, &[1]), f32s(&[i as f32]))],
            &[&name],
            true,
        );
        map.insert(name, shard.into());
    }
    let index = serde_json::json!({"metadata": {"total_size": 4 * n}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

/// Runs modeltool on `args`, killed if it has not finished after a minute
/// (a FIFO used to make it wait forever): the deadline only stops a hang,
/// the assertions are on what it printed.
fn run_bounded(dir: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!("modeltool {args:?} did not finish");
}

#[test]
fn files_that_are_not_weights_say_what_they_are() {
    let dir = tempdir();
    let d = dir.path();
    let cases: &[(&str, &[u8], &str)] = &[
        (
            "big.gguf",
            b"GGUF\x00\x00\x00\x03",
            "big.gguf is a big-endian GGUF file; modeltool reads safetensors, GGUF (little-endian), modeltool JSON model files and Hugging Face sharded checkpoints",
        ),
        (
            "pytorch_model.bin",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n",
            "pytorch_model.bin is a Git LFS pointer, not the weights: run `git lfs pull`",
        ),
        (
            "config.json",
            br#"{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}"#,
            "config.json is a Hugging Face model config, not weights",
        ),
        (
            "model.safetensors",
            b"<!doctype html>\n<html>",
            "model.safetensors is an HTML page saved instead of the weights",
        ),
    ];
    for (name, bytes, message) in cases {
        std::fs::write(d.join(name), bytes).unwrap();
        for cmd in ["inspect", "verify"] {
            assert_error(&run_in(d, &[cmd, name]), 2, &[message]);
        }
    }
    // A folder with only other formats says what it found.
    let only = d.join("only");
    std::fs::create_dir(&only).unwrap();
    std::fs::write(only.join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    assert_error(
        &run_in(d, &["inspect", "only"]),
        2,
        &["only model files of other formats (pytorch_model.bin)"],
    );
}

#[test]
fn a_fifo_or_a_device_is_refused_at_once() {
    let dir = tempdir();
    let d = dir.path();
    assert!(
        Command::new("mkfifo")
            .arg(d.join("x.safetensors"))
            .status()
            .unwrap()
            .success()
    );
    for cmd in ["inspect", "verify"] {
        let r = run_bounded(d, &[cmd, "x.safetensors"]);
        assert_error(
            &r,
            2,
            &["x.safetensors: a FIFO (named pipe), not a regular file"],
        );
        let r = run_bounded(d, &[cmd, "/dev/zero"]);
        assert_error(
            &r,
            2,
            &["/dev/zero: a character device, not a regular file"],
        );
    }
}

#[test]
fn convert_refuses_a_shard_symlinked_out_of_the_folder() {
    let outside = tempdir();
    write_st(
        &outside.path().join("secret.safetensors"),
        &[(tensor("t1", Dtype::F32, &[1]), f32s(&[42.0]))],
        &["t1"],
        true,
    );
    let dir = tempdir();
    let d = dir.path();
    let ckpt = d.join("ckpt");
    std::fs::create_dir(&ckpt).unwrap();
    write_checkpoint(&ckpt, 2);
    let shard = ckpt.join("model-00002-of-00002.safetensors");
    std::fs::remove_file(&shard).unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret.safetensors"), &shard).unwrap();
    let r = run_in(d, &["convert", "ckpt", "out.json"]);
    assert_error(
        &r,
        2,
        &[
            "shard `model-00002-of-00002.safetensors` resolves to",
            "outside the checkpoint folder",
        ],
    );
    assert!(!d.join("out.json").exists());
}

/// `Too many open files` with 3000 shards under `ulimit -n 1024`.
#[test]
fn thousands_of_shards_work_under_a_low_open_file_limit() {
    let dir = tempdir();
    let d = dir.path();
    write_checkpoint(d, 3000);
    for cmd in ["inspect", "verify"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n 256 && exec \"$0\" {cmd} ."))
            .arg(bin())
            .current_dir(d)
            .output()
            .unwrap();
        let r: Run = out.into();
        assert_eq!(r.code, 0, "{cmd}: {}{}", r.stdout, r.stderr);
    }
}

/// Removing one tensor's checksum key after editing its data made `run`
/// run the edited weights.
#[test]
fn run_refuses_a_model_whose_checksum_set_is_partial() {
    let dir = tempdir();
    let d = dir.path();
    let tensors = [
        (tensor("0.weight", Dtype::F32, &[1, 1]), f32s(&[1.0])),
        (tensor("0.bias", Dtype::F32, &[1]), f32s(&[-110.0])),
    ];
    write_st(
        &d.join("ok.safetensors"),
        &tensors,
        &["0.weight", "0.bias"],
        false,
    );
    let r = run_in(d, &["run", "ok.safetensors", "175"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The bias edited, its checksum removed (no header checksum either).
    let edited = [tensors[0].clone(), (tensors[1].0.clone(), f32s(&[500.0]))];
    write_st(&d.join("p.safetensors"), &edited, &["0.weight"], false);
    let r = run_in(d, &["run", "p.safetensors", "175"]);
    assert_error(
        &r,
        1,
        &[
            "checksums are incomplete",
            "tensor `0.bias` has no checksum",
            "modeltool rehash MODEL",
        ],
    );
    let r = run_in(d, &["verify", "p.safetensors"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("modeltool rehash MODEL"), "{}", r.stdout);
}

#[test]
fn verify_fails_on_invalid_bool_values_naming_the_tensor() {
    let dir = tempdir();
    let d = dir.path();
    let tensors = [(tensor("mask", Dtype::BOOL, &[4]), vec![0u8, 1, 2, 1])];
    write_st(&d.join("b.safetensors"), &tensors, &["mask"], true);
    let r = run_in(d, &["verify", "b.safetensors"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("INVALID values in mask"), "{}", r.stdout);
    assert!(
        r.stderr.contains("tensor `mask` holds 1 invalid value"),
        "{}",
        r.stderr
    );
    let r = run_in(d, &["verify", "b.safetensors", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["invalid_values"][0]["name"], "mask");
    assert_eq!(v["invalid_values"][0]["index"], 2);
    assert_eq!(v["ok"], false);
}

#[test]
fn a_wrong_total_size_is_inspected_and_fails_verify() {
    let dir = tempdir();
    let d = dir.path();
    write_checkpoint(d, 2);
    let index = d.join("model.safetensors.index.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    v["metadata"]["total_size"] = 999.into();
    std::fs::write(&index, v.to_string()).unwrap();
    let r = run_in(d, &["inspect", "."]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(d, &["verify", "."]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("metadata.total_size is 999 but the shards hold 8 bytes"),
        "{}",
        r.stdout
    );
}

/// A name that moves the cursor up and writes `OK` over the verdict.
#[test]
fn names_from_a_file_never_reach_the_terminal_raw() {
    let dir = tempdir();
    let d = dir.path();
    let evil = "w\u{1b}[1A\u{1b}[2K\rOK\u{202e}";
    let tensors = [
        (tensor(evil, Dtype::F32, &[1]), f32s(&[1.0])),
        (tensor("b", Dtype::F32, &[1]), f32s(&[2.0])),
    ];
    // `b` has no checksum: verify fails and names both.
    write_st(&d.join("e.safetensors"), &tensors, &[evil], false);
    for args in [
        &["verify", "e.safetensors"][..],
        &["run", "e.safetensors", "1"],
    ] {
        let r = run_in(d, args);
        assert_ne!(r.code, 0);
        for out in [&r.stdout, &r.stderr] {
            assert!(
                !out.chars()
                    .any(|c| c.is_control() && c != '\n' || c == '\u{202e}'),
                "{args:?}: {out:?}"
            );
        }
    }
    // A shard name with control characters, in an error line.
    let index = serde_json::json!({"weight_map": {"a": "x\u{1b}[31m.safetensors"}});
    std::fs::write(d.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let r = run_in(d, &["inspect", "."]);
    assert_error(&r, 2, &["\\u{1b}[31m.safetensors` is missing"]);
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
}

#[test]
fn no_mmap_reads_the_same() {
    let dir = tempdir();
    let d = dir.path();
    write_checkpoint(d, 3);
    for extra in [&[][..], &["--no-mmap"]] {
        let mut args = vec!["verify", "."];
        args.extend_from_slice(extra);
        let r = run_in(d, &args);
        assert_eq!(r.code, 0, "{extra:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("3 of 3 tensor checksums match"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn verify_help_says_what_a_checksum_proves() {
    let dir = tempdir();
    let r = run_in(dir.path(), &["verify", "--help"]);
    assert_eq!(r.code, 0);
    let text = r.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("not someone who edits the data and recomputes them"),
        "{text}"
    );
    assert!(text.contains("--sha256"), "{text}");
}

#[test]
fn readme_and_format_md_say_what_a_checksum_proves() {
    // Where a user reads about checksums, the same two facts: what they
    // catch, what they cannot, and the whole-file hash to use instead.
    let root = fixtures().parent().expect("the repository").to_owned();
    for doc in ["README.md", "docs/FORMAT.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "catches accidents",
            "recomputes the checksums",
            "--sha256 HEX",
        ] {
            assert!(text.contains(needle), "{doc} does not say {needle:?}");
        }
    }
}
