//! Faults a user meets: a conversion killed half way, a full disk, a
//! read-only folder, a file that changes while modeltool reads it, and
//! damage to any single byte of a model file.
//!
//! The full-disk and read-only tests mount small tmpfs file systems, which
//! needs root (or CAP_SYS_ADMIN); elsewhere they say so and skip, unless
//! `MODELTOOL_REQUIRE_MOUNT=1`, where that is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use modeltool_format::{Checksum, Dtype, ModelMetadata, TensorMeta, write_safetensors};
use sha2::{Digest, Sha256};

use crate::util::{Run, assert_error, bin, run_in, tempdir};

// --- helpers -----------------------------------------------------------------

/// A model of `n` F32 tensors of `mib` MiB each plus a small I64 tensor,
/// every one with its checksum, written fast (one MiB pattern repeated).
fn big_model(path: &Path, n: usize, mib: usize) {
    let block: Vec<u8> = (0..1u32 << 18)
        .flat_map(|i| (i as f32 * 1e-3 - 3.0).to_le_bytes())
        .collect();
    let mut tensors: Vec<(TensorMeta, Vec<u8>)> = (0..n)
        .map(|i| {
            let mut data = block.repeat(mib);
            // Every tensor its own bytes, so their checksums differ.
            data[..4].copy_from_slice(&(i as f32).to_le_bytes());
            let meta = TensorMeta {
                name: format!("layer.{i}.weight"),
                dtype: Dtype::F32,
                shape: vec![mib << 8, 1 << 10],
            };
            (meta, data)
        })
        .collect();
    tensors.push((
        TensorMeta {
            name: "step".into(),
            dtype: Dtype::I64,
            shape: vec![1],
        },
        1234i64.to_le_bytes().to_vec(),
    ));
    let mut md = ModelMetadata::default();
    md.user.insert("note".into(), "a big model".into());
    for (m, b) in &tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    write_safetensors(file, &refs, &md.to_safetensors()).unwrap();
}

fn file_sha256(path: &Path) -> String {
    let mut hasher = Sha256::new();
    std::io::copy(&mut std::fs::File::open(path).unwrap(), &mut hasher).unwrap();
    hex::encode(hasher.finalize())
}

/// Names in `dir`.
fn listing(dir: &Path) -> BTreeSet<OsString> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

/// Bytes under `path`: a file's length, or the sum over a folder's files.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// Every file under `path` (a file, or a folder's files) with its bytes.
fn snapshot(path: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(snapshot(&e.unwrap().path()));
        }
    } else {
        out.insert(path.to_owned(), std::fs::read(path).unwrap());
    }
    out
}

fn remove_any(path: &Path) {
    if path.is_dir() {
        std::fs::remove_dir_all(path).unwrap();
    } else if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path).unwrap();
    }
}

/// A tiny pseudo-random generator (xorshift64*), seeded, so a failure can be
/// replayed with `MODELTOOL_FAULTS_SEED`.
struct Rng(u64);

impl Rng {
    fn new(default_seed: u64) -> Rng {
        let seed = std::env::var("MODELTOOL_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_seed);
        eprintln!("faults: seed {seed} (set MODELTOOL_FAULTS_SEED to replay another)");
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A nonzero byte to XOR with.
    fn flip(&mut self) -> u8 {
        (self.next() % 255 + 1) as u8
    }
}

// --- 1. conversions killed at any point ----------------------------------------

/// When to send SIGKILL.
#[derive(Debug, Clone, Copy)]
enum KillAt {
    /// This long after the start.
    After(Duration),
    /// As soon as a temporary file or folder appears in the target folder.
    TempAppears,
    /// When the temporary output holds at least this many bytes.
    TempHolds(u64),
}

#[derive(Debug)]
enum Outcome {
    /// Killed by the signal; whether a temporary output existed just before.
    Killed { mid_write: bool },
    /// It finished before the kill point.
    Finished(ExitStatus, String),
}

/// Starts `modeltool args` in `dir`, kills it at `at`, and says how it ended.
/// `known` are the names in `dir` that are not temporary output.
fn convert_and_kill(dir: &Path, args: &[&str], at: KillAt, known: &BTreeSet<OsString>) -> Outcome {
    let temps = || -> Vec<PathBuf> {
        listing(dir)
            .difference(known)
            .map(|n| dir.join(n))
            .collect()
    };
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return Outcome::Finished(status, stderr);
        }
        let now = temps();
        let reached = match at {
            KillAt::After(t) => start.elapsed() >= t,
            KillAt::TempAppears => !now.is_empty(),
            KillAt::TempHolds(n) => now.iter().map(|p| size_of(p)).sum::<u64>() >= n,
        };
        if reached {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{args:?} never reached {at:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mid_write = !temps().is_empty();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    if status.signal() == Some(9) {
        Outcome::Killed { mid_write }
    } else {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        Outcome::Finished(status, stderr)
    }
}

/// One kind of conversion to kill.
struct Target {
    /// The output name (a file, or a folder of shards).
    output: &'static str,
    extra: &'static [&'static str],
    /// Bytes the temporary output reaches when its data is all written,
    /// or `None` for conversions too slow (in a debug build) to wait for.
    full_size: Option<u64>,
}

#[test]
fn a_killed_conversion_leaves_the_input_intact_and_nothing_at_the_output() {
    let started = Instant::now();
    let dir = tempdir();
    let d = dir.path();
    // 256 MiB of F32 in 4 tensors: safetensors and shards take about a
    // second to write in a debug build, bf16 and JSON much longer.
    big_model(&d.join("big.safetensors"), 4, 64);
    let input_len = std::fs::metadata(d.join("big.safetensors")).unwrap().len();
    let input_sum = file_sha256(&d.join("big.safetensors"));
    let input_mtime = std::fs::metadata(d.join("big.safetensors"))
        .unwrap()
        .modified()
        .unwrap();
    // An old output of each kind, to be replaced with --force: a small model
    // converted the ordinary way.
    std::fs::write(
        d.join("small.json"),
        r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[2],"data":[1.0,2.0]},"b":{"dtype":"F32","shape":[2],"data":[3.0,4.0]}}}"#,
    )
    .unwrap();
    let targets = [
        Target {
            output: "out.safetensors",
            extra: &[],
            full_size: Some(input_len),
        },
        Target {
            output: "shards",
            extra: &["--max-shard-size", "64MiB"],
            full_size: Some(input_len),
        },
        Target {
            output: "out-bf16.safetensors",
            extra: &["--dtype", "bf16"],
            full_size: None,
        },
        Target {
            output: "out.json",
            extra: &[],
            full_size: None,
        },
    ];
    let mut rng = Rng::new(0x5eed_0001);
    let mut leftovers: BTreeMap<String, usize> = BTreeMap::new();
    for target in &targets {
        let mut points = vec![
            KillAt::After(Duration::ZERO),
            KillAt::After(Duration::from_millis(15)),
            KillAt::TempAppears,
            KillAt::TempHolds(1 << 20),
        ];
        match target.full_size {
            Some(full) => points.extend([
                KillAt::After(Duration::from_millis(rng.next() % 1200)),
                KillAt::TempHolds(full / 3),
                KillAt::TempHolds(full * 2 / 3),
                // Data all written: the header rewrite, fsync and rename.
                KillAt::TempHolds(full),
            ]),
            None => points.push(KillAt::TempHolds(16 << 20)),
        }
        for force in [false, true] {
            let out = d.join(target.output);
            remove_any(&out);
            if force {
                let mut args = vec!["convert", "small.json", target.output];
                args.extend_from_slice(target.extra);
                let r = run_in(d, &args);
                assert_eq!(r.code, 0, "{}", r.stderr);
            }
            let old = force.then(|| snapshot(&out));
            let mut known = listing(d);
            known.insert(target.output.into());
            let temp_prefix = if target.output == "shards" {
                ".modeltool-shards-".to_owned()
            } else {
                format!(".{}.", target.output)
            };
            let mut args = vec!["convert", "big.safetensors", target.output];
            args.extend_from_slice(target.extra);
            if force {
                args.push("--force");
            }
            let mut mid_write_kills = 0;
            let mut outcomes = Vec::new();
            for &at in &points {
                let outcome = convert_and_kill(d, &args, at, &known);
                // The input is never touched: same length and modification
                // time after every run, same bytes at the end.
                let meta = std::fs::metadata(d.join("big.safetensors")).unwrap();
                assert_eq!(
                    (meta.len(), meta.modified().unwrap()),
                    (input_len, input_mtime),
                    "{args:?} {at:?}"
                );
                // At the output's name: the old output untouched, or
                // nothing; or, if the process got past its final rename,
                // the complete new output.
                let complete_new = |why: &str| {
                    let r = run_in(d, &["verify", target.output, "--strict"]);
                    assert_eq!(
                        r.code, 0,
                        "{why}: {args:?} {at:?}: {}{}",
                        r.stdout, r.stderr
                    );
                    assert!(
                        r.stdout.contains("5 of 5 tensor checksums match"),
                        "{}",
                        r.stdout
                    );
                };
                outcomes.push(match &outcome {
                    Outcome::Killed { mid_write: true } => "killed mid-write",
                    Outcome::Killed { mid_write: false } => "killed before writing",
                    Outcome::Finished(..) => "finished",
                });
                match &outcome {
                    Outcome::Killed { mid_write } => {
                        mid_write_kills += usize::from(*mid_write);
                        let now = std::fs::symlink_metadata(&out)
                            .is_ok()
                            .then(|| snapshot(&out));
                        if now != old {
                            complete_new("killed after the output was in place");
                        }
                    }
                    Outcome::Finished(status, stderr) => {
                        assert!(status.success(), "{args:?} {at:?}: {status:?} {stderr}");
                        complete_new("finished");
                    }
                }
                // Whatever is left beside it is a hidden temporary name that
                // says what it is; it goes before the next run.
                for name in listing(d).difference(&known) {
                    let name = name.to_string_lossy().into_owned();
                    assert!(
                        name.starts_with(&temp_prefix),
                        "unexpected leftover {name} after {args:?} {at:?}"
                    );
                    let kind = if d.join(&name).is_dir() {
                        "folder"
                    } else {
                        "file"
                    };
                    *leftovers
                        .entry(format!("{temp_prefix}* ({kind})"))
                        .or_default() += 1;
                    remove_any(&d.join(&name));
                }
                // Back to the state before the run.
                let now = std::fs::symlink_metadata(&out)
                    .is_ok()
                    .then(|| snapshot(&out));
                if now != old {
                    remove_any(&out);
                    if force {
                        let mut args = vec!["convert", "small.json", target.output];
                        args.extend_from_slice(target.extra);
                        assert_eq!(run_in(d, &args).code, 0);
                        assert_eq!(Some(snapshot(&out)), old);
                    }
                }
            }
            assert!(
                mid_write_kills >= 2,
                "{args:?}: only {mid_write_kills} kills hit a conversion while it was writing"
            );
            eprintln!("faults: {args:?}: {outcomes:?}");
        }
    }
    assert_eq!(file_sha256(&d.join("big.safetensors")), input_sum);
    eprintln!(
        "faults: killed conversions left only these temporary names (removed by the test): {leftovers:?}; {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

// --- 2. full disk, read-only folder ------------------------------------------------

/// A tmpfs mounted for one test; unmounted when dropped, panic or not.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs with `options` at `path`, or says why it cannot and
    /// returns `None` (the caller skips), unless `MODELTOOL_REQUIRE_MOUNT`.
    fn tmpfs(path: &Path, options: &str) -> Option<Mount> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(path.to_owned())),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("MODELTOOL_REQUIRE_MOUNT").is_none(),
                    "MODELTOOL_REQUIRE_MOUNT is set but a tmpfs cannot be mounted: {why}"
                );
                eprintln!(
                    "skipping: cannot mount a tmpfs at {} (needs root or CAP_SYS_ADMIN): {why}",
                    path.display()
                );
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {options}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy: detach it now, it goes when the last user does.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A 4 MiB model (F32 and BF16 tensors) in `dir`.
fn four_mib_model(dir: &Path) -> PathBuf {
    let path = dir.join("in.safetensors");
    let f32s: Vec<u8> = (0..(3u32 << 18))
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    let bf16s: Vec<u8> = (0..(1u32 << 19))
        .flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes())
        .collect();
    let tensors = [
        (
            TensorMeta {
                name: "w".into(),
                dtype: Dtype::F32,
                shape: vec![3 << 18],
            },
            f32s,
        ),
        (
            TensorMeta {
                name: "h".into(),
                dtype: Dtype::BF16,
                shape: vec![1 << 19],
            },
            bf16s,
        ),
    ];
    let mut md = ModelMetadata::default();
    for (m, b) in &tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    write_safetensors(
        std::fs::File::create(&path).unwrap(),
        &refs,
        &md.to_safetensors(),
    )
    .unwrap();
    path
}

/// Every conversion into `folder` (relative to `d`) fails with one error
/// line naming the output and containing `problem`, exit 2, and leaves the
/// folder as it was.
fn every_conversion_fails(d: &Path, folder: &str, problem: &str, force: bool) {
    let before = snapshot(&d.join(folder));
    let input_sum = file_sha256(&d.join("in.safetensors"));
    let cases: [(&str, &[&str]); 4] = [
        ("out.safetensors", &[]),
        ("out.json", &[]),
        ("out-f16.safetensors", &["--dtype", "f16"]),
        ("shards", &["--max-shard-size", "1MB"]),
    ];
    for (name, extra) in cases {
        let output = format!("{folder}/{name}");
        let mut args = vec!["convert", "in.safetensors", &output];
        args.extend_from_slice(extra);
        if force {
            args.push("--force");
        }
        let r = run_in(d, &args);
        assert_error(&r, 2, &[&output, problem]);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{args:?}: one line: {}",
            r.stderr
        );
        assert_eq!(
            snapshot(&d.join(folder)),
            before,
            "{args:?} left {folder} as it was"
        );
    }
    assert_eq!(file_sha256(&d.join("in.safetensors")), input_sum);
}

#[test]
fn a_full_disk_is_one_clear_error_and_leaves_no_partial_file() {
    let dir = tempdir();
    let d = dir.path();
    four_mib_model(d);
    let Some(mount) = Mount::tmpfs(&d.join("full"), "size=1m") else {
        return;
    };
    every_conversion_fails(d, "full", "No space left on device", false);
    assert!(listing(&mount.0).is_empty());
    // An existing output, replaced with --force on a disk too full for the
    // new one, stays as it was (a small model: it fits).
    std::fs::write(
        d.join("small.json"),
        r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[1],"data":[1.0]}}}"#,
    )
    .unwrap();
    for name in ["out.safetensors", "out.json", "out-f16.safetensors"] {
        let r = run_in(d, &["convert", "small.json", &format!("full/{name}")]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = run_in(
        d,
        &[
            "convert",
            "small.json",
            "full/shards",
            "--max-shard-size",
            "1MB",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    every_conversion_fails(d, "full", "No space left on device", true);
    drop(mount);
}

#[test]
fn a_read_only_folder_is_one_clear_error_and_leaves_no_partial_file() {
    let dir = tempdir();
    let d = dir.path();
    four_mib_model(d);
    let Some(mount) = Mount::tmpfs(&d.join("ro"), "size=64m,ro") else {
        return;
    };
    every_conversion_fails(d, "ro", "Read-only file system", false);
    // An existing output in a folder that became read-only stays as it was.
    mount.remount("rw");
    std::fs::write(
        d.join("small.json"),
        r#"{"format":"modeltool.json/1","tensors":{"a":{"dtype":"F32","shape":[1],"data":[1.0]}}}"#,
    )
    .unwrap();
    for name in ["out.safetensors", "out.json", "out-f16.safetensors"] {
        let r = run_in(d, &["convert", "small.json", &format!("ro/{name}")]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let r = run_in(d, &["convert", "small.json", "ro/shards/"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    mount.remount("ro");
    every_conversion_fails(d, "ro", "Read-only file system", true);
    drop(mount);
}

// --- 3. a file truncated while modeltool reads it ---------------------------------

#[test]
fn an_input_truncated_during_a_conversion_is_one_clear_error() {
    let dir = tempdir();
    let d = dir.path();
    // JSON output from a mapped input: the slow path (seconds in a debug
    // build), so the truncation lands while the input is being read.
    big_model(&d.join("big.safetensors"), 1, 32);
    let full = std::fs::read(d.join("big.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(full[..8].try_into().unwrap());
    // As soon as the output's temporary file appears, the input is most
    // likely not mapped yet: the loader's length check catches it. Once 1 MB
    // of JSON is written, the input is mapped and its values are being
    // formatted: the next page touched raises SIGBUS, which the handler
    // modeltool installs reports.
    for (at, expected) in [
        (KillAt::TempAppears, "truncated while"),
        (
            KillAt::TempHolds(1 << 20),
            "big.safetensors: file was truncated while modeltool was reading it",
        ),
    ] {
        std::fs::write(d.join("big.safetensors"), &full).unwrap();
        let mut known = listing(d);
        known.insert("out.json".into());
        let temps =
            || -> Vec<PathBuf> { listing(d).difference(&known).map(|n| d.join(n)).collect() };
        let mut child = Command::new(bin())
            .args(["convert", "big.safetensors", "out.json"])
            .current_dir(d)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        loop {
            let now = temps();
            let reached = match at {
                KillAt::TempHolds(n) => now.iter().map(|p| size_of(p)).sum::<u64>() >= n,
                _ => !now.is_empty(),
            };
            if reached {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before {at:?}"
            );
            assert!(start.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::File::options()
            .write(true)
            .open(d.join("big.safetensors"))
            .unwrap()
            .set_len(header)
            .unwrap();
        let r = Run::from(child.wait_with_output().unwrap());
        assert_error(&r, 2, &["big.safetensors", expected]);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(!d.join("out.json").exists());
        let left: Vec<OsString> = listing(d).difference(&known).cloned().collect();
        eprintln!(
            "faults: input truncated at {at:?}: {} (left {left:?})",
            r.stderr.trim()
        );
        for name in &left {
            assert!(name.to_string_lossy().starts_with(".out.json."), "{name:?}");
            remove_any(&d.join(name));
        }
    }
}

// --- 4. every single-byte change of a small model file -------------------------------

const SMALL_MODEL: &str = r#"{"format":"modeltool.json/1","metadata":{"note":"v1"},"tensors":{
    "w32": {"dtype":"F32","shape":[4,6],"data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24]},
    "w64": {"dtype":"F64","shape":[3],"data":[0.5,-1.5,1e300]},
    "h16": {"dtype":"F16","shape":[2,3],"data":[1,2,3,4,5,6]},
    "b16": {"dtype":"BF16","shape":[5],"data":[1,-2,3,-4,5]},
    "steps": {"dtype":"I64","shape":[2],"data":[7,-9]},
    "count": {"dtype":"U32","shape":[3],"data":[1,2,4000000000]},
    "ids": {"dtype":"U8","shape":[7],"data":[1,2,3,4,5,6,255]},
    "mask": {"dtype":"BOOL","shape":[3],"data":[true,false,true]},
    "scale": {"dtype":"I8","shape":[],"data":[-3]},
    "f8": {"dtype":"F8_E4M3","shape":[4],"data":[0.5,1,2,-4]},
    "none": {"dtype":"F32","shape":[0],"data":[]}
}}"#;

/// Tensor name -> its byte range in the file.
fn data_ranges(file: &[u8]) -> (u64, BTreeMap<String, (u64, u64)>) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap());
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n as usize]).unwrap();
    let start = 8 + n;
    let ranges = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let o = &v["data_offsets"];
            (
                k.clone(),
                (
                    start + o[0].as_u64().unwrap(),
                    start + o[1].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    (start, ranges)
}

/// What `verify` on a file with one byte changed is allowed to say: never
/// exit 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// exit 2: malformed, one `error:` line naming the file.
    Malformed,
    /// exit 1: a tensor's bytes no longer match its checksum, which names it.
    TensorDamaged,
    /// exit 1: the header no longer matches its `modeltool.header_sha256`
    /// (a dtype, a shape, an offset, a checksum or other metadata, the
    /// digest itself or its key, the padding).
    HeaderDamaged,
}

/// The tensor whose checksum key or value a header byte belongs to.
fn checksum_owner(file: &[u8], pos: usize, names: &[String]) -> Option<String> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let text = std::str::from_utf8(&file[8..8 + n]).unwrap();
    let pos = pos.checked_sub(8)?;
    names
        .iter()
        .find(|name| {
            // A checksum key and value end at the value's closing quote.
            let sum = format!("\"modeltool.sha256.{name}\":\"");
            text.find(&sum).is_some_and(|s| {
                let end = s + sum.len() + 64;
                (s..=end).contains(&pos)
            })
        })
        .cloned()
}

#[test]
fn every_single_byte_change_is_reported_by_verify() {
    let started = Instant::now();
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("m.json"), SMALL_MODEL).unwrap();
    let r = run_in(d, &["convert", "m.json", "m.safetensors"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let original = std::fs::read(d.join("m.safetensors")).unwrap();
    let r = run_in(d, &["verify", "m.safetensors", "--strict"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("header: checksum matches"),
        "{}",
        r.stdout
    );
    let (data_start, ranges) = data_ranges(&original);
    let names: Vec<String> = ranges.keys().cloned().collect();
    let data_len = original.len() as u64 - data_start;
    assert!(data_len > 100, "a few hundred bytes of data: {data_len}");

    // Every byte, each changed by XOR with a random nonzero value.
    let mut rng = Rng::new(0x5eed_0004);
    let changes: Vec<(usize, u8)> = (0..original.len()).map(|i| (i, rng.flip())).collect();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let verdicts: Vec<(usize, Verdict)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (changes, original, ranges, names) = (&changes, &original, &ranges, &names);
                s.spawn(move || {
                    let wd = d.join(format!("worker{t}"));
                    std::fs::create_dir(&wd).unwrap();
                    let mut out = Vec::new();
                    for &(pos, x) in changes.iter().skip(t).step_by(threads) {
                        let mut file = original.clone();
                        file[pos] ^= x;
                        std::fs::write(wd.join("m.safetensors"), &file).unwrap();
                        let r = run_in(&wd, &["verify", "m.safetensors"]);
                        let what = format!("byte {pos} ^ {x:#04x}: exit {}: {}{}", r.code, r.stdout, r.stderr);
                        assert!(!r.stderr.contains("panicked"), "{what}");
                        let verdict = if pos as u64 >= data_start {
                            // Tensor data: exit 1, and the one tensor named.
                            let owner = ranges
                                .iter()
                                .find(|(_, (b, e))| (*b..*e).contains(&(pos as u64)))
                                .map(|(n, _)| n.clone())
                                .unwrap();
                            assert_eq!(r.code, 1, "{what}");
                            let damaged: Vec<&str> = r
                                .stdout
                                .lines()
                                .filter_map(|l| l.strip_prefix("DAMAGED "))
                                .map(|l| l.split(':').next().unwrap())
                                .collect();
                            assert_eq!(damaged, [owner.as_str()], "{what}");
                            assert!(r.stdout.contains("header: checksum matches"), "{what}");
                            assert_eq!(
                                r.stderr.trim(),
                                format!("error: m.safetensors: tensor `{owner}` is damaged (sha256 mismatch)"),
                                "{what}"
                            );
                            Verdict::TensorDamaged
                        } else {
                            match r.code {
                                2 => {
                                    assert_eq!(r.stderr.lines().count(), 1, "{what}");
                                    assert!(r.stderr.starts_with("error: m.safetensors: "), "{what}");
                                    assert!(r.stdout.is_empty(), "{what}");
                                    Verdict::Malformed
                                }
                                1 => {
                                    // Whatever the byte meant, the header
                                    // checksum no longer vouches for it.
                                    assert!(r.stdout.contains("\nheader: DAMAGED ("), "{what}");
                                    assert!(r.stdout.ends_with("FAILED\n"), "{what}");
                                    assert!(
                                        r.stderr.lines().all(|l| l.starts_with("error: m.safetensors: ")),
                                        "{what}"
                                    );
                                    assert!(
                                        r.stderr.lines().any(|l| l.starts_with("error: m.safetensors: header is damaged (")),
                                        "{what}"
                                    );
                                    // A byte of a checksum's key or value:
                                    // its tensor is named too (DAMAGED, or
                                    // MISSING checksum when the key changed).
                                    if let Some(owner) = checksum_owner(original, pos, names) {
                                        assert!(r.stdout.contains(&format!(" {owner}:")), "names `{owner}`: {what}");
                                    }
                                    Verdict::HeaderDamaged
                                }
                                _ => panic!("a changed header byte must not pass: {what}"),
                            }
                        };
                        out.push((pos, verdict));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert_eq!(verdicts.len(), original.len());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (pos, v) in &verdicts {
        let region = if (*pos as u64) < data_start {
            "header"
        } else {
            "data"
        };
        *counts.entry(format!("{region} {v:?}")).or_default() += 1;
    }
    eprintln!(
        "faults: {} header bytes and {data_len} data bytes changed one at a time: {counts:?}; {:.1}s",
        data_start,
        started.elapsed().as_secs_f64()
    );
}

/// The header changes the tensor checksums cannot see (the bytes stay as
/// they were), each reported by `verify` as a damaged header (exit 1), and
/// refused by `convert` the way a tensor checksum mismatch is: exit 1,
/// nothing written. The sweep above covers every other byte.
#[test]
fn header_changes_the_tensor_checksums_cannot_see_are_reported_as_damage() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("m.json"), SMALL_MODEL).unwrap();
    assert_eq!(run_in(d, &["convert", "m.json", "m.safetensors"]).code, 0);
    let original = std::fs::read(d.join("m.safetensors")).unwrap();
    let at = |needle: &str| -> usize {
        original
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap_or_else(|| panic!("`{needle}` in the header"))
    };
    let digit = at("modeltool.sha256.w32\":\"") + 24;
    let other_digit = if original[digit] == b'0' { b'1' } else { b'0' };
    let h16 = r#""h16":{"dtype":"F16","shape":[2,3]"#;
    let shape = at(h16) + h16.len() - 4; // the 2 of [2,3]
    let header_len = 8 + u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let changed = "header: DAMAGED (metadata or tensor entries changed since the file was written)";
    // (what, the bytes set, lines verify prints)
    type Case<'a> = (&'a str, Vec<(usize, u8)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (
            "F32 -> I32: same width, same bytes, same checksum",
            vec![(at(r#""w32":{"dtype":"F"#) + 16, b'I')],
            vec![changed, "11 of 11 tensor checksums match"],
        ),
        (
            "I8 -> U8",
            vec![(at(r#""scale":{"dtype":"I"#) + 18, b'U')],
            vec![changed],
        ),
        (
            "[2,3] -> [3,2]: the same elements, other rows",
            vec![(shape, b'3'), (shape + 2, b'2')],
            vec![changed],
        ),
        (
            "user metadata \"v1\" -> \"v3\"",
            vec![(at(r#""note":"v1""#) + 9, b'3')],
            vec![changed],
        ),
        (
            "modeltool.sha256.w32 -> modeltoolXsha256.w32: a user key now",
            vec![(at("modeltool.sha256.w32") + 9, b'X')],
            vec![
                changed,
                "MISSING checksum of w32: no checksum, while 10 other tensors have one: damaged metadata?",
            ],
        ),
        (
            "a digit of w32's checksum",
            vec![(digit, other_digit)],
            vec![changed, "DAMAGED w32: its data does not match"],
        ),
        (
            "modeltool.header_sha256 -> modeltoolXheader_sha256",
            vec![(at("modeltool.header_sha256") + 9, b'X')],
            vec![
                "header: DAMAGED (its `modeltool.header_sha256` key reads `modeltoolXheader_sha256`: changed since the file was written)",
            ],
        ),
        (
            "the last byte of the header padded with a tab instead of a space",
            vec![(header_len - 1, b'\t')],
            vec![
                "header: DAMAGED (bytes other than spaces around the JSON: changed since the file was written)",
            ],
        ),
    ];
    assert_eq!(original[header_len - 1], b' ', "the header is padded");
    for (what, edits, lines) in cases {
        let mut file = original.clone();
        for (pos, byte) in edits {
            file[pos] = byte;
        }
        std::fs::write(d.join("m.safetensors"), &file).unwrap();
        let r = run_in(d, &["verify", "m.safetensors"]);
        let out = format!("{what}: exit {}\n{}{}", r.code, r.stdout, r.stderr);
        assert_eq!(r.code, 1, "{out}");
        for line in lines {
            assert!(r.stdout.contains(line), "`{line}`: {out}");
        }
        assert!(r.stdout.ends_with("FAILED\n"), "{out}");
        assert!(
            r.stderr
                .lines()
                .any(|l| l.starts_with("error: m.safetensors: header is damaged (")),
            "{out}"
        );
        assert_eq!(run_in(d, &["verify", "m.safetensors", "--strict"]).code, 1);
        // convert refuses it, exit 1, and writes nothing.
        for target in ["out.json", "out.safetensors"] {
            let r = run_in(d, &["convert", "m.safetensors", target]);
            assert_error(&r, 1, &["m.safetensors", "header is damaged"]);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            assert!(!d.join(target).exists(), "{what}: {target}");
        }
    }
    assert_eq!(
        listing(d),
        ["m.json", "m.safetensors"].map(OsString::from).into(),
        "no temporary files left behind"
    );
}
