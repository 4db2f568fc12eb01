//! The data-safety suite: no command destroys what it did not create.
//!
//! For every command that writes (convert, train, growth, rehash): folders
//! of other files, symbolic links in and out, FIFOs, character devices
//! (made with `mknod` where the tests run as root; skipped with a note
//! elsewhere), permission bits, the same file under two spellings, and a
//! failing second output that must leave the first untouched.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, write_safetensors};

use crate::util::{Run, assert_error, fixtures, run_in, tempdir};

/// Every file and folder under `path` with its bytes (folders as `None`),
/// symbolic links as their target text: what must not change.
fn snapshot(path: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return out;
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap();
        out.insert(
            path.to_owned(),
            Some(target.into_os_string().into_encoded_bytes()),
        );
    } else if meta.is_dir() {
        out.insert(path.to_owned(), None);
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(snapshot(&e.unwrap().path()));
        }
    } else if meta.is_file() {
        out.insert(path.to_owned(), Some(std::fs::read(path).unwrap()));
    } else {
        out.insert(path.to_owned(), Some(b"<special>".to_vec()));
    }
    out
}

/// A small safetensors model with checksums: `w` (F32) and `flag` (BOOL).
fn model(path: &Path, w: &[f32], flag: &[u8]) {
    let tensors = [
        (
            TensorMeta {
                name: "w".into(),
                dtype: Dtype::F32,
                shape: vec![w.len()],
            },
            w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
        ),
        (
            TensorMeta {
                name: "flag".into(),
                dtype: Dtype::BOOL,
                shape: vec![flag.len()],
            },
            flag.to_vec(),
        ),
    ];
    let mut md = ModelMetadata::default();
    for (m, b) in &tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    let mut bytes = Vec::new();
    write_safetensors(&mut bytes, &refs, &md.to_safetensors()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn in_model(d: &Path) {
    model(&d.join("in.safetensors"), &[1.0, 2.0, 3.0], &[0, 1]);
}

fn no_temporaries(d: &Path) {
    for e in std::fs::read_dir(d).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "a temporary {name} was left in {}",
            d.display()
        );
    }
}

/// Runs and asserts a refusal (exit `code`, one error line with every
/// needle) that changed nothing under `d`.
fn refused(d: &Path, args: &[&str], code: i32, needles: &[&str]) -> Run {
    let before = snapshot(d);
    let r = run_in(d, args);
    assert_error(&r, code, needles);
    assert!(
        !r.stderr.contains(".tmp"),
        "{args:?} leaked a temporary name: {}",
        r.stderr
    );
    assert_eq!(snapshot(d), before, "{args:?} changed the folder");
    r
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

/// A character device at `path` (`/dev/null`'s numbers), or `None` with a
/// printed note when this is not root.
/// With `MODELTOOL_REQUIRE_MKNOD` set (`.ci/run` sets it where mknod
/// works), a skip is a failure.
fn char_device(path: &Path) -> Option<()> {
    let skip = |why: &str| {
        assert!(
            std::env::var_os("MODELTOOL_REQUIRE_MKNOD").is_none(),
            "the character device case cannot run ({why}) but MODELTOOL_REQUIRE_MKNOD is set"
        );
        eprintln!("skipping the character device case: {why}");
        None
    };
    if !is_root() {
        return skip("mknod needs root");
    }
    let ok = Command::new("mknod")
        .arg(path)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return skip("mknod failed");
    }
    Some(())
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// --- 1. --force replaces only what modeltool would have written there ---------

#[test]
fn force_never_replaces_a_folder_of_other_files() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    std::fs::create_dir_all(d.join("victim/sub")).unwrap();
    std::fs::write(d.join("victim/thesis.tex"), "important").unwrap();
    // As the issue wrote it, and every way of asking for a folder.
    refused(
        d,
        &["convert", "in.safetensors", "victim", "--force"],
        2,
        &["victim"],
    );
    refused(
        d,
        &["convert", "in.safetensors", "victim/", "--force"],
        2,
        &["victim", "sub"],
    );
    std::fs::remove_dir(d.join("victim/sub")).unwrap();
    refused(
        d,
        &[
            "convert",
            "in.safetensors",
            "victim",
            "--force",
            "--max-shard-size",
            "1KB",
        ],
        2,
        &["victim", "thesis.tex"],
    );
    // A checkpoint with one stray file beside its shards is not replaced either.
    let r = run_in(
        d,
        &["convert", "in.safetensors", "ckpt", "--max-shard-size", "4"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(d.join("ckpt/notes.txt"), "mine").unwrap();
    refused(
        d,
        &["convert", "in.safetensors", "ckpt", "--force"],
        2,
        &["ckpt", "notes.txt"],
    );
    // A folder holding an input is never replaced.
    std::fs::remove_file(d.join("ckpt/notes.txt")).unwrap();
    refused(
        d,
        &["convert", "ckpt", "ckpt/", "--force"],
        2,
        &["ckpt", "input"],
    );
    // What modeltool wrote there is replaced.
    let r = run_in(d, &["convert", "in.safetensors", "ckpt", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let names: Vec<_> = std::fs::read_dir(d.join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["model.safetensors"]);
    no_temporaries(d);
}

#[test]
fn force_never_replaces_a_fifo_a_device_a_folder_or_a_symlink_with_a_file() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    mkfifo(&d.join("fifo.safetensors"));
    refused(
        d,
        &["convert", "in.safetensors", "fifo.safetensors", "--force"],
        2,
        &["fifo.safetensors", "FIFO"],
    );
    std::fs::create_dir(d.join("dir.json")).unwrap();
    refused(
        d,
        &["convert", "in.safetensors", "dir.json", "--force"],
        2,
        &["dir.json", "folder"],
    );
    std::fs::write(d.join("real.json"), "precious").unwrap();
    symlink("real.json", d.join("link.json")).unwrap();
    refused(
        d,
        &["convert", "in.safetensors", "link.json", "--force"],
        2,
        &["link.json", "symbolic link"],
    );
    if char_device(&d.join("dev.safetensors")).is_some() {
        refused(
            d,
            &["convert", "in.safetensors", "dev.safetensors", "--force"],
            2,
            &["dev.safetensors", "character device"],
        );
        refused(
            d,
            &[
                "convert",
                "in.safetensors",
                "dev.safetensors/",
                "--force",
                "--max-shard-size",
                "1KB",
            ],
            2,
            &["dev.safetensors", "character device"],
        );
    }
    // A folder output over a FIFO or a file.
    refused(
        d,
        &["convert", "in.safetensors", "fifo.safetensors/", "--force"],
        2,
        &["fifo.safetensors"],
    );
    no_temporaries(d);
}

#[test]
fn without_force_nothing_that_exists_is_replaced() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    std::fs::write(d.join("out.json"), "old").unwrap();
    refused(
        d,
        &["convert", "in.safetensors", "out.json"],
        2,
        &["out.json", "--force"],
    );
    let r = run_in(d, &["convert", "in.safetensors", "s/"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    refused(
        d,
        &["convert", "in.safetensors", "s/"],
        2,
        &["s", "--force"],
    );
}

// --- 2. the output kind is explicit -----------------------------------------

#[test]
fn an_output_of_no_kind_modeltool_writes_is_refused_not_made_a_folder() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    for out in ["out.safetensor", "model.pt", "-", "plain"] {
        let r = refused(
            d,
            &["convert", "in.safetensors", out],
            2,
            &[out, ".safetensors or .json"],
        );
        assert!(r.stderr.contains("--max-shard-size"), "{}", r.stderr);
        assert!(!d.join(out).exists());
    }
    // A folder when asked for: a slash, --max-shard-size, or an existing checkpoint.
    for (out, extra) in [("a/", &[][..]), ("b", &["--max-shard-size", "1KB"][..])] {
        let mut args = vec!["convert", "in.safetensors", out];
        args.extend_from_slice(extra);
        let r = run_in(d, &args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(d.join(out).join("model.safetensors").is_file());
    }
    let r = run_in(d, &["convert", "in.safetensors", "b", "--force"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // File kinds in any case; -o is the same as OUTPUT.
    let r = run_in(d, &["convert", "in.safetensors", "-o", "UP.JSON"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(d.join("UP.JSON"))
            .unwrap()
            .starts_with('{')
    );
    let r = run_in(
        d,
        &["convert", "in.safetensors", "--output", "o.safetensors"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

// --- 3. several outputs, and the same file under several names ----------------

#[test]
fn an_output_is_never_an_input_under_any_spelling() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    in_model(d);
    std::fs::hard_link(d.join("in.safetensors"), d.join("hard.safetensors")).unwrap();
    symlink("in.safetensors", d.join("sym.safetensors")).unwrap();
    for out in [
        "in.safetensors",
        "./sub/../in.safetensors",
        "hard.safetensors",
    ] {
        refused(
            d,
            &["convert", "in.safetensors", out, "--force"],
            2,
            &[out, "input"],
        );
    }
    // Through a symlink the input is still the input.
    refused(
        d,
        &["convert", "sym.safetensors", "in.safetensors", "--force"],
        2,
        &["in.safetensors", "input"],
    );
    refused(
        d,
        &["convert", "in.safetensors", "sym.safetensors", "--force"],
        2,
        &["sym.safetensors"],
    );
    // train: the data is an input too.
    std::fs::copy(fixtures().join("height_weight.csv"), d.join("hw.csv")).unwrap();
    refused(
        d,
        &[
            "train",
            "hw.csv",
            "-o",
            "m.json",
            "--plot",
            "./sub/../hw.csv",
            "--force",
        ],
        2,
        &["hw.csv", "input"],
    );
}

#[test]
fn train_writes_both_outputs_or_neither() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::copy(fixtures().join("height_weight.csv"), d.join("hw.csv")).unwrap();
    std::fs::write(d.join("keep.json"), "keep me").unwrap();
    // The plot cannot be written: the model stays as it was.
    refused(
        d,
        &[
            "train",
            "hw.csv",
            "--out",
            "keep.json",
            "--plot",
            "nosuchdir/loss.svg",
            "--force",
        ],
        2,
        &["nosuchdir/loss.svg", "does not exist"],
    );
    // Two names for one file.
    std::fs::write(d.join("m.safetensors"), "old model").unwrap();
    for plot in ["./m.safetensors", "m.safetensors"] {
        refused(
            d,
            &[
                "train",
                "hw.csv",
                "--out",
                "m.safetensors",
                "--plot",
                plot,
                "--force",
            ],
            2,
            &[plot, "m.safetensors"],
        );
    }
    std::fs::hard_link(d.join("keep.json"), d.join("alias.svg")).unwrap();
    refused(
        d,
        &[
            "train",
            "hw.csv",
            "-o",
            "keep.json",
            "--plot",
            "alias.svg",
            "--force",
        ],
        2,
        &["alias.svg", "keep.json"],
    );
    // A FIFO as the plot: refused before training, the model untouched.
    mkfifo(&d.join("loss.svg"));
    refused(
        d,
        &[
            "train",
            "hw.csv",
            "-o",
            "keep.json",
            "--plot",
            "loss.svg",
            "--force",
        ],
        2,
        &["loss.svg", "FIFO"],
    );
    std::fs::remove_file(d.join("loss.svg")).unwrap();
    // Both fine: both written; --out and -o/--output are one option.
    let r = run_in(
        d,
        &[
            "train", "hw.csv", "--output", "new.json", "--plot", "loss.svg",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(d.join("loss.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    assert_eq!(run_in(d, &["verify", "new.json"]).code, 0);
    no_temporaries(d);
}

// --- 4. growth ----------------------------------------------------------------

#[test]
fn growth_never_follows_a_symlink_or_overwrites_without_force() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("keep")).unwrap();
    std::fs::write(d.join("precious.txt"), "do not truncate").unwrap();
    symlink("../precious.txt", d.join("keep/line.safetensors")).unwrap();
    refused(
        d,
        &["growth", "--keep", "keep"],
        2,
        &["line.safetensors", "symbolic link"],
    );
    refused(
        d,
        &["growth", "--keep", "keep", "--force"],
        2,
        &["line.safetensors", "symbolic link"],
    );
    std::fs::write(d.join("chart.svg"), "old chart").unwrap();
    refused(
        d,
        &["growth", "--svg", "chart.svg"],
        2,
        &["chart.svg", "--force"],
    );
    refused(
        d,
        &["growth", "-o", "keep", "--force"],
        2,
        &["keep", "folder"],
    );
    // A chart that cannot be written fails before the models are made.
    refused(
        d,
        &["growth", "--keep", "fresh", "--svg", "nosuchdir/c.svg"],
        2,
        &["nosuchdir/c.svg"],
    );
    assert!(!d.join("fresh").exists());
}

// --- 5. permission bits, 6. the user's path in errors ---------------------------

#[test]
fn a_replaced_file_keeps_its_permission_bits() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    std::fs::copy(fixtures().join("height_weight.csv"), d.join("hw.csv")).unwrap();
    for (args, out) in [
        (
            &["convert", "in.safetensors", "o.json", "--force"][..],
            "o.json",
        ),
        (
            &[
                "convert",
                "in.safetensors",
                "o.safetensors",
                "--force",
                "--dtype",
                "f16",
            ][..],
            "o.safetensors",
        ),
        (
            &["train", "hw.csv", "-o", "t.json", "--force"][..],
            "t.json",
        ),
        (
            &[
                "train", "hw.csv", "-o", "t2.json", "--plot", "p.svg", "--force",
            ][..],
            "p.svg",
        ),
    ] {
        std::fs::write(d.join(out), "old").unwrap();
        for bits in [0o600, 0o640, 0o444] {
            std::fs::set_permissions(d.join(out), std::fs::Permissions::from_mode(bits)).unwrap();
            let r = run_in(d, args);
            assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
            assert_eq!(mode(&d.join(out)), bits, "{args:?}");
            assert_ne!(std::fs::read(d.join(out)).unwrap(), b"old");
        }
    }
    // rehash rewrites in place and keeps them too.
    std::fs::set_permissions(
        d.join("in.safetensors"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let r = run_in(d, &["rehash", "in.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(mode(&d.join("in.safetensors")), 0o600);
}

#[test]
fn errors_name_the_path_given_never_a_temporary_one() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    for out in ["nodir/x.safetensors", "nodir/x.json", "nodir/shards/"] {
        let r = refused(
            d,
            &["convert", "in.safetensors", out],
            2,
            &["nodir", "does not exist"],
        );
        assert!(!r.stderr.contains(".modeltool-"), "{}", r.stderr);
    }
    std::fs::write(d.join("file"), "x").unwrap();
    refused(
        d,
        &["convert", "in.safetensors", "file/x.json"],
        2,
        &["file/x.json", "not a folder"],
    );
}

// --- 7. rehash, 8. one rule for values ------------------------------------------

/// Changes the first data byte of `path` (the first value of `w`).
fn damage(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // `w` (F32, 4-aligned) comes first in the data.
    bytes[8 + header + 3] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_deliberate_edit_is_rehashed_explicitly_and_damage_is_refused_otherwise() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    damage(&d.join("in.safetensors"));
    assert_eq!(run_in(d, &["verify", "in.safetensors"]).code, 1);
    // convert refuses damage unless told it is an edit.
    refused(
        d,
        &["convert", "in.safetensors", "o.safetensors"],
        1,
        &["in.safetensors", "`w`"],
    );
    let r = run_in(
        d,
        &["convert", "in.safetensors", "o.safetensors", "--rehash"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 stored checksum replaced"),
        "{}",
        r.stdout
    );
    assert_eq!(run_in(d, &["verify", "o.safetensors", "--strict"]).code, 0);
    // rehash in place: prints what changed, then verifies.
    let r = run_in(d, &["rehash", "in.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 tensor checksum replaced"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("replaced w:"), "{}", r.stdout);
    assert!(
        r.stdout.contains("header checksum of in.safetensors"),
        "{}",
        r.stdout
    );
    let v = run_in(d, &["verify", "in.safetensors", "--strict"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    let r = run_in(d, &["rehash", "in.safetensors", "--format", "json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["changed"], serde_json::json!([]));
    assert_eq!(j["unchanged"], 2);
    no_temporaries(d);
}

#[test]
fn a_damaged_header_or_a_partial_checksum_set_is_rehashed_only_when_asked() {
    let dir = tempdir();
    let d = dir.path();
    // A header checksum, then a metadata value edited in place.
    let meta = TensorMeta {
        name: "w".into(),
        dtype: Dtype::F32,
        shape: vec![1],
    };
    let bytes = 1f32.to_le_bytes();
    let mut md = ModelMetadata::default();
    md.user.insert("note".into(), "aaaa".into());
    md.checksums.insert("w".into(), Checksum::of(&bytes));
    let mut file = Vec::new();
    modeltool_format::write_safetensors_with_header_sha256(
        &mut file,
        &[(meta.clone(), &bytes[..])],
        &md.to_safetensors(),
    )
    .unwrap();
    let at = file.windows(4).position(|w| w == b"aaaa").unwrap();
    file[at..at + 4].copy_from_slice(b"bbbb");
    std::fs::write(d.join("edited.safetensors"), &file).unwrap();
    assert_eq!(run_in(d, &["verify", "edited.safetensors"]).code, 1);
    refused(
        d,
        &["convert", "edited.safetensors", "o.json"],
        1,
        &["edited.safetensors", "header"],
    );
    let r = run_in(d, &["convert", "edited.safetensors", "o.json", "--rehash"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(d, &["rehash", "edited.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("(the old one was damaged):"),
        "{}",
        r.stdout
    );
    let v = run_in(d, &["verify", "edited.safetensors", "--strict"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    // A checksum for one tensor but not the other: rehash adds it.
    let mut md = ModelMetadata::default();
    md.checksums.insert("w".into(), Checksum::of(&bytes));
    let flag = TensorMeta {
        name: "flag".into(),
        dtype: Dtype::BOOL,
        shape: vec![1],
    };
    let mut file = Vec::new();
    write_safetensors(
        &mut file,
        &[(meta, &bytes[..]), (flag, &[1u8][..])],
        &md.to_safetensors(),
    )
    .unwrap();
    std::fs::write(d.join("partial.safetensors"), &file).unwrap();
    let r = run_in(
        d,
        &[
            "convert",
            "partial.safetensors",
            "p.safetensors",
            "--rehash",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("0 stored checksums replaced, 1 added"),
        "{}",
        r.stdout
    );
    let r = run_in(d, &["rehash", "partial.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("added    flag:\n      now "),
        "{}",
        r.stdout
    );
    let v = run_in(d, &["verify", "partial.safetensors", "--strict"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    no_temporaries(d);
}

/// One safetensors file holding `name` with `bytes`, its checksum stored.
fn shard(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) {
    let meta = TensorMeta {
        name: name.into(),
        dtype,
        shape: vec![bytes.len() / (dtype.bits() / 8)],
    };
    let mut md = ModelMetadata::default();
    md.checksums.insert(name.into(), Checksum::of(bytes));
    let mut file = Vec::new();
    write_safetensors(&mut file, &[(meta, bytes)], &md.to_safetensors()).unwrap();
    std::fs::write(path, file).unwrap();
}

#[test]
fn rehash_rewrites_every_shard_or_none() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::create_dir(d.join("ckpt")).unwrap();
    let first = d.join("ckpt/model-00001-of-00002.safetensors");
    let second = d.join("ckpt/model-00002-of-00002.safetensors");
    shard(&first, "a", Dtype::F32, &1f32.to_le_bytes());
    damage(&first);
    shard(&second, "flag", Dtype::BOOL, &[1, 2]);
    std::fs::write(
        d.join("ckpt/model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","flag":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    // The second shard cannot be rewritten: the first, already rewritten
    // beside its name, is not put in place either.
    refused(
        d,
        &["rehash", "ckpt"],
        1,
        &["model-00002-of-00002.safetensors", "`flag`"],
    );
    // Both fine: both rewritten.
    shard(&second, "flag", Dtype::BOOL, &[1, 0]);
    let r = run_in(d, &["rehash", "ckpt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("1 tensor checksum replaced"),
        "{}",
        r.stdout
    );
    let v = run_in(d, &["verify", "ckpt", "--strict"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    no_temporaries(&d.join("ckpt"));
}

#[test]
fn invalid_values_are_refused_for_every_output() {
    let dir = tempdir();
    let d = dir.path();
    model(&d.join("bad.safetensors"), &[1.0], &[0, 2, 1]);
    for out in ["o.safetensors", "o.json", "shards/"] {
        refused(
            d,
            &["convert", "bad.safetensors", out],
            1,
            &["`flag`", "0x02"],
        );
        refused(
            d,
            &["convert", "bad.safetensors", out, "--rehash"],
            1,
            &["`flag`", "0x02"],
        );
    }
    refused(d, &["rehash", "bad.safetensors"], 1, &["`flag`"]);
}

// --- 9. overflow, 10. sizes, 11. dtype names ----------------------------------

#[test]
fn a_cast_that_overflows_fails_unless_allowed() {
    let dir = tempdir();
    let d = dir.path();
    model(
        &d.join("big.safetensors"),
        &[1e6, -70000.0, 65520.0, 3e38, 1.0, f32::INFINITY, f32::NAN],
        &[1],
    );
    let r = refused(
        d,
        &[
            "convert",
            "big.safetensors",
            "h.safetensors",
            "--dtype",
            "f16",
        ],
        2,
        &[
            "h.safetensors",
            "`w`",
            "4 values",
            "F16",
            "--allow-overflow",
        ],
    );
    assert!(
        r.stderr.contains("largest magnitude 3.000e38"),
        "{}",
        r.stderr
    );
    let r = run_in(
        d,
        &[
            "convert",
            "big.safetensors",
            "h.safetensors",
            "--dtype",
            "F16",
            "--allow-overflow",
            "--format",
            "json",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["overflow_values"], 4);
    // NaN and infinity stay what they are, and are not overflow.
    model(
        &d.join("odd.safetensors"),
        &[f32::INFINITY, f32::NAN, 1.5],
        &[1],
    );
    let r = run_in(
        d,
        &[
            "convert",
            "odd.safetensors",
            "o.safetensors",
            "--dtype",
            "bf16",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("0 values were not exactly representable"),
        "{}",
        r.stdout
    );
}

#[test]
fn sizes_are_exact_and_dtype_names_case_insensitive() {
    let dir = tempdir();
    let d = dir.path();
    in_model(d);
    let r = run_in(
        d,
        &[
            "convert",
            "in.safetensors",
            "a",
            "--max-shard-size",
            "18446744073709551615",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(
        d,
        &[
            "convert",
            "in.safetensors",
            "b",
            "--max-shard-size",
            "1.5KB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    refused(
        d,
        &["convert", "in.safetensors", "c", "--max-shard-size", "1.9"],
        2,
        &["1.9", "whole number of bytes"],
    );
    assert!(!d.join("c").exists());
    for name in ["BF16", "bf16", "Bf16", "F32", "f16"] {
        let out = format!("{name}.safetensors");
        let r = run_in(d, &["convert", "in.safetensors", &out, "--dtype", name]);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
}
