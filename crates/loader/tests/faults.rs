//! Files that change under the loader after `Model::open`: replaced by a
//! rename, truncated, grown, rewritten in place; and the SIGBUS of a
//! truncated memory map. Each case is made deterministic by doing the change
//! in the test itself, between opening and reading.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, sha256_hex, write_safetensors};
use modeltool_loader::{LoadError, Model, OpenOptions};

/// Tensors `small` (F32 [4]) and `big` (F32, 256 KiB: many pages), with
/// checksums; `seed` changes every value. Returns the tensors and the
/// file's header length (8 + JSON).
fn write_model(path: &Path, seed: f32) -> (Vec<(TensorMeta, Vec<u8>)>, u64) {
    let values = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| (i as f32 * 0.25 + seed).to_le_bytes())
            .collect()
    };
    let tensors = vec![
        (
            TensorMeta {
                name: "small".into(),
                dtype: Dtype::F32,
                shape: vec![4],
            },
            values(4),
        ),
        (
            TensorMeta {
                name: "big".into(),
                dtype: Dtype::F32,
                shape: vec![256, 256],
            },
            values(256 * 256),
        ),
    ];
    let mut md = ModelMetadata::default();
    for (m, b) in &tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    write_safetensors(File::create(path).unwrap(), &refs, &md.to_safetensors()).unwrap();
    let model = Model::open(
        path,
        OpenOptions {
            mmap: false,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let header = model.files()[0].header_bytes;
    (tensors, header)
}

/// Options that map: the test states the memory-map assumption for its
/// process (it truncates files only where it means to see the result).
fn mapped() -> OpenOptions {
    #[expect(unsafe_code, reason = "opting in to memory maps")]
    // SAFETY: these tests truncate a mapped file only in a child process
    // whose death by SIGBUS is the point of the test.
    unsafe {
        modeltool_loader::allow_mmap()
    };
    OpenOptions {
        mmap: true,
        ..OpenOptions::default()
    }
}

fn both() -> [OpenOptions; 2] {
    [
        mapped(),
        OpenOptions {
            mmap: false,
            ..OpenOptions::default()
        },
    ]
}

fn truncate(path: &Path, len: u64) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Asserts `err` is the truncation error for `path`, with both lengths.
fn assert_truncated(err: LoadError, path: &Path, expected: u64, actual: u64) {
    let text = err.to_string();
    assert!(
        matches!(err, LoadError::Truncated { expected: e, actual: a, .. } if e == expected && a == actual),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "{}: truncated while being read (expected {expected} bytes, file now has {actual})",
            path.display()
        )
    );
}

#[test]
fn a_file_renamed_over_after_open_is_still_read_as_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (tensors, _) = write_model(&path, 1.0);
    let original = std::fs::read(&path).unwrap();
    for options in both() {
        let model = Model::open(&path, options).unwrap();
        // Same layout, other values, renamed into place: before, every read
        // reopened the path and took data from this new file under the old
        // header.
        let other = dir.path().join("other.safetensors");
        write_model(&other, 7.0);
        std::fs::rename(&other, &path).unwrap();
        let sums = model.sha256_all(&|_| {}).unwrap();
        for (entry, sum) in model.entries().iter().zip(&sums) {
            let (_, bytes) = tensors
                .iter()
                .find(|(m, _)| m.name == entry.meta.name)
                .unwrap();
            assert_eq!(*sum, sha256_hex(bytes), "{}", entry.meta.name);
            assert_eq!(&*model.bytes_checked(entry).unwrap(), &bytes[..]);
        }
        assert_eq!(model.files()[0].sha256().unwrap(), sha256_hex(&original));
        std::fs::write(&path, &original).unwrap();
    }
}

#[test]
fn a_file_truncated_after_open_is_reported_not_read_as_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (_, header) = write_model(&path, 1.0);
    let full = std::fs::read(&path).unwrap();
    let len = full.len() as u64;
    let cut = header + 100;
    type Read = fn(&Model) -> Result<(), LoadError>;
    let reads: [(&str, Read); 4] = [
        ("sha256_all", |m| m.sha256_all(&|_| {}).map(drop)),
        ("bytes", |m| m.bytes(m.entry("big")?).map(drop)),
        ("for_each_chunk", |m| {
            m.for_each_chunk(m.entry("big")?, 4096, |_| Ok(()))
        }),
        ("file sha256", |m| m.files()[0].sha256().map(drop)),
    ];
    for options in both() {
        for (what, read) in reads {
            std::fs::write(&path, &full).unwrap();
            let model = Model::open(&path, options.clone()).unwrap();
            truncate(&path, cut);
            let err = read(&model).expect_err(what);
            assert_truncated(err, &path, len, cut);
        }
        // Truncated after the file was mapped, before the bytes were asked
        // for: still an error, and no page is touched.
        std::fs::write(&path, &full).unwrap();
        let model = Model::open(&path, options).unwrap();
        model.bytes(model.entry("small").unwrap()).unwrap();
        truncate(&path, cut);
        let err = model.bytes(model.entry("big").unwrap()).unwrap_err();
        assert_truncated(err, &path, len, cut);
    }
}

#[test]
fn a_file_truncated_in_the_middle_of_a_read_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (_, header) = write_model(&path, 1.0);
    let len = std::fs::metadata(&path).unwrap().len();
    let model = Model::open(
        &path,
        OpenOptions {
            mmap: false,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let big = model.entry("big").unwrap();
    let mut chunks = 0;
    // The first chunk's callback truncates the file: the next read comes
    // up short, which used to be "failed to fill whole buffer".
    let err = model
        .for_each_chunk(big, 4096, |_| {
            chunks += 1;
            if chunks == 1 {
                truncate(&path, header + 10_000);
            }
            Ok(())
        })
        .unwrap_err();
    assert_truncated(err, &path, len, header + 10_000);
    assert!(chunks >= 2, "read on until the data ran out: {chunks}");
}

#[test]
fn a_file_written_to_after_open_is_reported_as_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_model(&path, 1.0);
    let full = std::fs::read(&path).unwrap();
    let len = full.len();
    for options in both() {
        // Grown.
        std::fs::write(&path, &full).unwrap();
        let model = Model::open(&path, options.clone()).unwrap();
        let mut f = File::options().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"more").unwrap();
        let err = model.sha256_all(&|_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: changed since it was opened (it was {len} bytes long, now {})",
                path.display(),
                len + 4
            )
        );
        assert!(!err.is_check_failure(), "unreadable input, exit 2");
        // Rewritten in place, same length, a later modification time.
        std::fs::write(&path, &full).unwrap();
        let model = Model::open(&path, options).unwrap();
        let f = File::options().write(true).open(&path).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xAA], len as u64 - 1).unwrap();
        let opened = std::fs::metadata(&path).unwrap().modified().unwrap();
        f.set_modified(opened + Duration::from_secs(2)).unwrap();
        for err in [
            model.sha256_all(&|_| {}).unwrap_err(),
            model.bytes(model.entry("big").unwrap()).unwrap_err(),
        ] {
            assert!(matches!(err, LoadError::Changed { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("{}: ", path.display()))
            );
        }
    }
}

#[test]
fn a_same_length_rewrite_that_keeps_the_mtime_is_caught_by_the_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (tensors, _) = write_model(&path, 1.0);
    let full = std::fs::read(&path).unwrap();
    for options in both() {
        std::fs::write(&path, &full).unwrap();
        let model = Model::open(&path, options).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        // One byte of `big` changes, and the modification time is put back:
        // what a coarse clock or a careful vandal leaves.
        let f = File::options().write(true).open(&path).unwrap();
        let inside_big = model.entry("big").unwrap().offset().unwrap() + 1000;
        std::os::unix::fs::FileExt::write_all_at(&f, &[0x55], inside_big).unwrap();
        f.set_modified(mtime).unwrap();
        // What `verify` does: every tensor's sha256 against the stored one.
        let sums = model.sha256_all(&|_| {}).unwrap();
        let damaged: Vec<&str> = model
            .entries()
            .iter()
            .zip(&sums)
            .filter(|(e, s)| e.stored_sha256.is_none_or(|c| c != *s.as_str()))
            .map(|(e, _)| e.meta.name.as_str())
            .collect();
        assert_eq!(damaged, ["big"]);
        let err = model
            .bytes_checked(model.entry("big").unwrap())
            .unwrap_err();
        assert!(err.is_check_failure(), "{err}");
        assert!(err.to_string().contains("`big`"), "{err}");
        let small = &tensors[0].1;
        assert_eq!(
            &*model.bytes_checked(model.entry("small").unwrap()).unwrap(),
            &small[..]
        );
    }
}

#[test]
fn a_truncated_shard_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_model(&path, 1.0);
    let model = Model::open(&path, OpenOptions::default()).unwrap();
    let out = dir.path().join("sharded");
    let options = modeltool_loader::save::ConvertOptions {
        kind: modeltool_loader::save::OutputKind::Sharded {
            max_shard_size: 1000,
        },
        dtype: None,
        force: false,
        ..Default::default()
    };
    modeltool_loader::save::convert(&model, &out, &options, &|_| {}).unwrap();
    let sharded = Model::open(&out, OpenOptions::default()).unwrap();
    let big = sharded.entry("big").unwrap();
    let shard = sharded.files()[big.file].path.clone();
    let len = sharded.files()[big.file].file_len;
    truncate(&shard, 100);
    assert_truncated(sharded.sha256_all(&|_| {}).unwrap_err(), &shard, len, 100);
}

// --- SIGBUS: a map truncated while its bytes are in use ---------------------
//
// The library installs no signal handler (the binary does, and its test is
// in tests/faults.rs); it offers the lookup a handler needs.

const CHILD: &str = "MODELTOOL_LOADER_FAULTS_CHILD";

/// In the child: maps `path`, borrows `big`'s bytes, truncates the file to
/// its header, then touches the bytes.
fn child_touches_a_truncated_map(path: &Path) -> ! {
    let model = Model::open(path, mapped()).unwrap();
    let bytes = model.bytes(model.entry("big").unwrap()).unwrap();
    assert!(matches!(bytes, std::borrow::Cow::Borrowed(_)), "mapped");
    truncate(path, model.files()[0].header_bytes);
    let sum: u64 = bytes.iter().map(|&b| u64::from(b)).sum();
    eprintln!("read {sum} from a truncated map and lived");
    std::process::exit(3)
}

/// Runs `test` of this binary as a child with `CHILD=scenario:path`.
fn run_child(test: &str, scenario: &str, path: &Path) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, format!("{scenario}:{}", path.display()))
        .output()
        .unwrap()
}

fn child_scenario() -> Option<(String, PathBuf)> {
    let v = std::env::var(CHILD).ok()?;
    let (scenario, path) = v.split_once(':')?;
    Some((scenario.to_owned(), PathBuf::from(path)))
}

/// The library chooses no exit status and prints nothing: without a
/// handler of the program's, a truncated map kills the process by SIGBUS.
#[test]
fn the_library_installs_no_sigbus_handler() {
    if let Some((_, path)) = child_scenario() {
        child_touches_a_truncated_map(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    write_model(&path, 1.0);
    let out = run_child("the_library_installs_no_sigbus_handler", "default", &path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(7), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("modeltool"), "{stderr}");
}

/// A SIGBUS handler asks which file an address is mapped from: the map's
/// file while the map lives, nothing after, nothing for plain reads.
#[test]
fn mapped_file_at_names_the_file_of_a_live_map_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m\x1b[2J.safetensors");
    write_model(&path, 1.0);
    let model = Model::open(&path, mapped()).unwrap();
    let bytes = model.bytes(model.entry("big").unwrap()).unwrap();
    let addr = bytes.as_ptr() as usize + 1000;
    let shown = format!("{}", dir.path().join("m\\u{1b}[2J.safetensors").display());
    #[expect(unsafe_code, reason = "the lookup's contract: the map is alive")]
    // SAFETY: `bytes` borrows from the map, which lives until `model` drops.
    let found = unsafe { modeltool_loader::mapped_file_at(addr) };
    assert_eq!(found, Some(shown.as_bytes()), "escaped, ready to write");
    drop(bytes);
    drop(model);
    #[expect(unsafe_code, reason = "nothing is returned")]
    // SAFETY: no map holds the address any more; nothing is borrowed.
    let after = unsafe { modeltool_loader::mapped_file_at(addr) };
    assert_eq!(after, None);

    let model = Model::open(
        &path,
        OpenOptions {
            mmap: false,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let bytes = model.bytes(model.entry("big").unwrap()).unwrap();
    assert!(
        matches!(bytes, std::borrow::Cow::Owned(_)),
        "plain reads by default"
    );
    #[expect(unsafe_code, reason = "nothing is returned")]
    // SAFETY: plain reads map nothing.
    let none = unsafe { modeltool_loader::mapped_file_at(bytes.as_ptr() as usize) };
    assert_eq!(none, None);
}
