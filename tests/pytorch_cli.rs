//! PyTorch checkpoints through every command: `inspect`, `verify`,
//! `convert` and `run` read `model.pt` / `pytorch_model.bin`; a pickle that
//! would call anything is refused by each with one `error:` line and exit 2,
//! and nothing runs. With `MODELTOOL_PYTHON` (and torch), converted bytes
//! and `run`'s outputs are compared with torch's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{assert_error, fixtures, python, run_in, tempdir};

fn pt(name: &str) -> PathBuf {
    fixtures().join("pytorch").join(name)
}

/// Copies a fixture into `dir` under `as_name`.
fn copy(dir: &Path, name: &str, as_name: &str) -> PathBuf {
    let to = dir.join(as_name);
    std::fs::copy(pt(name), &to).expect("copy the fixture");
    to
}

/// The marker the hostile fixtures' pickles would create in the current
/// folder (`touch modeltool_pwned`) if anything ran them.
const MARKER: &str = "modeltool_pwned";

#[test]
fn hostile_pickles_are_refused_by_every_command_and_nothing_runs() {
    for file in ["hostile_system.pt", "hostile_eval.pt", "hostile_legacy.pt"] {
        let d = tempdir();
        let d = d.path();
        copy(d, file, "pytorch_model.bin");
        let named = if file == "hostile_eval.pt" {
            "builtins.eval"
        } else {
            "posix.system"
        };
        let commands: [&[&str]; 7] = [
            &["inspect", "pytorch_model.bin"],
            &["inspect", "--format", "json", "pytorch_model.bin"],
            &["verify", "pytorch_model.bin"],
            &["convert", "pytorch_model.bin", "out.safetensors"],
            &["convert", "pytorch_model.bin", "out.json"],
            &["run", "pytorch_model.bin", "1"],
            // Allowing the name changes nothing for code-execution entry points.
            &[
                "inspect",
                "--allow-global",
                "posix.system",
                "--allow-global",
                "builtins.eval",
                "pytorch_model.bin",
            ],
        ];
        for args in commands {
            let r = run_in(d, args);
            assert_error(&r, 2, &["pytorch_model.bin", named, "nothing was loaded"]);
            assert_eq!(
                r.stderr.lines().count(),
                1,
                "{file} {args:?}: one line: {}",
                r.stderr
            );
            assert!(!d.join(MARKER).exists(), "{file} {args:?} ran the payload");
            assert!(!d.join("out.safetensors").exists() && !d.join("out.json").exists());
        }
        let r = run_in(
            d,
            &[
                "run",
                "--allow-global",
                "posix.system",
                "pytorch_model.bin",
                "1",
            ],
        );
        assert_error(&r, 2, &[named]);
        assert!(!d.join(MARKER).exists());
    }
}

#[test]
fn a_pickled_module_needs_allow_global_on_every_command() {
    let d = tempdir();
    let d = d.path();
    copy(d, "whole_module.pt", "model.pt");
    let class = "torch.nn.modules.linear.Linear";
    for args in [
        &["inspect", "model.pt"][..],
        &["verify", "model.pt"],
        &["convert", "model.pt", "m.safetensors"],
    ] {
        assert_error(&run_in(d, args), 2, &[class]);
    }
    let allowed = ["--allow-global", class];
    let r = run_in(d, &[&["inspect"][..], &allowed, &["model.pt"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("_parameters"), "{}", r.stdout);
    let r = run_in(d, &[&["verify"][..], &allowed, &["model.pt"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_in(
        d,
        &[&["convert"][..], &allowed, &["model.pt", "m.safetensors"]].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(run_in(d, &["verify", "m.safetensors"]).code, 0);
}

#[test]
fn inspect_verify_and_convert_read_zip_and_legacy_checkpoints() {
    let d = tempdir();
    let d = d.path();
    copy(d, "views.pt", "model.pt");
    copy(d, "legacy.pt", "pytorch_model.bin");
    for input in ["model.pt", "pytorch_model.bin"] {
        let r = run_in(d, &["inspect", input]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("tied_c"), "{}", r.stdout);
        assert!(r.stdout.contains("modeltool.tied.tied_c"), "{}", r.stdout);

        let r = run_in(d, &["verify", input]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains("no per-tensor checksums"), "{}", r.stdout);
        assert!(r.stdout.ends_with("OK\n"), "{}", r.stdout);

        for out in ["out.safetensors", "out.json", "shards/"] {
            let out = format!("{input}.{out}");
            let r = run_in(d, &["convert", input, &out]);
            assert_eq!(r.code, 0, "{input} -> {out}: {}", r.stderr);
            let r = run_in(d, &["verify", "--strict", &out]);
            assert_eq!(r.code, 0, "{out}: {}{}", r.stdout, r.stderr);
        }
    }
}

#[test]
fn verify_fails_on_a_damaged_zip_entry_naming_it() {
    let d = tempdir();
    let d = d.path();
    let path = copy(d, "tied.pt", "model.pt");
    let mut bytes = std::fs::read(&path).expect("read");
    // The storage's local header (the first mention of its name; the
    // directory's comes last): 30 fixed bytes, the name, an extra field,
    // then the data.
    let name = b"tied/data/0";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("the storage entry's name")
        - 30;
    assert_eq!(&bytes[at..at + 4], b"PK\x03\x04", "a local header");
    let field = |i: usize| usize::from(u16::from_le_bytes([bytes[at + i], bytes[at + i + 1]]));
    let data = at + 30 + field(26) + field(28);
    bytes[data + 5] ^= 0x01;
    std::fs::write(&path, &bytes).expect("write");
    let r = run_in(d, &["verify", "model.pt"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("CRC-32"), "{}", r.stderr);
}

#[test]
fn rehash_refuses_a_checkpoint_it_would_rewrite_as_safetensors() {
    let d = tempdir();
    let d = d.path();
    let path = copy(d, "tied.pt", "model.pt");
    let before = std::fs::read(&path).expect("read");
    let r = run_in(d, &["rehash", "model.pt"]);
    assert_error(&r, 2, &["model.pt", "convert"]);
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn run_computes_torchs_forward_pass_from_a_state_dict() {
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pt("sequential.json")).expect("sequential.json"),
    )
    .expect("JSON");
    let inputs: Vec<String> = expected["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|v| v.as_f64().expect("a number").to_string())
        .collect();
    let outputs: Vec<f32> = expected["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|v| v.as_f64().expect("a number") as f32)
        .collect();
    let d = tempdir();
    let d = d.path();
    for file in ["sequential.pt", "sequential_legacy.pt"] {
        copy(d, file, "model.pt");
        let mut args = vec!["run", "model.pt", "--activation", "relu", "--"];
        args.extend(inputs.iter().map(String::as_str));
        let r = run_in(d, &args);
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        let got: Vec<f32> = r
            .stdout
            .lines()
            .map(|l| l.trim().parse().expect("a number"))
            .collect();
        assert_close(&got, &outputs, file);
    }
}

/// Outputs equal to torch's up to float rounding: a sum of products in
/// another order (torch uses fused multiply-adds) may differ in the last bit.
fn assert_close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: {ours:?} vs {theirs:?}");
    for (a, b) in ours.iter().zip(theirs) {
        assert!(
            (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1.0),
            "{what}: {ours:?} vs torch's {theirs:?}"
        );
    }
}

/// The Python with torch, or `None` to skip (a failure under
/// `MODELTOOL_REQUIRE_PYTHON=1`).
fn torch_python() -> Option<PathBuf> {
    let python = python()?;
    let ok = Command::new(&python)
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("MODELTOOL_REQUIRE_PYTHON").is_none(),
        "MODELTOOL_REQUIRE_PYTHON is set but {} cannot import torch",
        python.display()
    );
    eprintln!("skipping: {} cannot import torch", python.display());
    None
}

fn script(python: &Path, dir: &Path, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python");
    let (name, rest) = args.split_first().expect("a script");
    let out = Command::new(python)
        .arg(path.join(name))
        .args(rest)
        .current_dir(dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn converted_safetensors_hold_torchs_contiguous_bytes() {
    let Some(python) = torch_python() else { return };
    let d = tempdir();
    let d = d.path();
    script(&python, d, &["torch_tensors.py", "write", "."]);
    let mut files: Vec<PathBuf> = [
        "views.pt",
        "big_endian.pt",
        "nested.pt",
        "dtypes.pt",
        "legacy.pt",
        "legacy_dtypes.pt",
        "tied.pt",
        "protocol4.pt",
        "no_byteorder.pt",
        "renamed_folder.pt",
        "tar.pt",
    ]
    .iter()
    .map(|f| pt(f))
    .collect();
    files.extend(["fresh_zip.pt", "fresh_p4.pt", "fresh_legacy.pt"].map(|f| d.join(f)));
    for file in &files {
        let name = file.file_name().expect("a name").to_string_lossy();
        let out = d.join(format!("{name}.safetensors"));
        let r = run_in(
            d,
            &["convert", &file.to_string_lossy(), &out.to_string_lossy()],
        );
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        let n = script(
            &python,
            d,
            &[
                "torch_convert_check.py",
                "compare",
                &file.to_string_lossy(),
                &out.to_string_lossy(),
            ],
        );
        assert!(n.trim().parse::<usize>().expect("a count") > 0, "{name}");
    }
}

#[test]
fn run_matches_torchs_forward_pass_live() {
    let Some(python) = torch_python() else { return };
    let d = tempdir();
    let d = d.path();
    let model = copy(d, "sequential.pt", "model.pt");
    let xs = ["-3", "-0.25", "0", "0.5", "2", "1000"];
    let theirs: Vec<f32> = serde_json::from_str::<Vec<f64>>(&script(
        &python,
        d,
        &[
            &[
                "torch_convert_check.py",
                "forward",
                &model.to_string_lossy(),
            ][..],
            &xs,
        ]
        .concat(),
    ))
    .expect("JSON")
    .into_iter()
    .map(|v| v as f32)
    .collect();
    let r = run_in(
        d,
        &[&["run", "model.pt", "--activation", "relu", "--"][..], &xs].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ours: Vec<f32> = r
        .stdout
        .lines()
        .map(|l| l.trim().parse().expect("a number"))
        .collect();
    assert_close(&ours, &theirs, "sequential.pt");
}

#[test]
fn a_refused_class_names_the_flag_and_a_code_execution_entry_point_never_does() {
    let d = tempdir();
    let d = d.path();
    copy(d, "whole_module.pt", "model.pt");
    copy(d, "hostile_system.pt", "evil.pt");
    let class = "torch.nn.modules.linear.Linear";
    let hint = format!("--allow-global {class}");
    for args in [
        &["inspect", "model.pt"][..],
        &["verify", "model.pt"],
        &["convert", "model.pt", "m.safetensors"],
        &["stats", "model.pt"],
        &["diff", "model.pt", "model.pt"],
        &["run", "model.pt", "1"],
    ] {
        let r = run_in(d, args);
        assert_error(&r, 2, &[class, &hint]);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    for args in [
        &["inspect", "evil.pt"][..],
        &["stats", "evil.pt"],
        &["diff", "evil.pt", "model.pt"],
        &["inspect", "--allow-global", "posix.system", "evil.pt"],
    ] {
        let r = run_in(d, args);
        assert_error(&r, 2, &["posix.system", "never be allowed"]);
        assert!(
            !r.stderr.contains("--allow-global"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!d.join(MARKER).exists());
    }
}

#[test]
fn stats_and_diff_take_allow_global() {
    let d = tempdir();
    let d = d.path();
    copy(d, "whole_module.pt", "model.pt");
    let allowed = ["--allow-global", "torch.nn.modules.linear.Linear"];
    let r = run_in(d, &[&["stats"][..], &allowed, &["model.pt"]].concat());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("_parameters.weight"), "{}", r.stdout);
    let r = run_in(
        d,
        &[&["diff", "model.pt", "model.pt"][..], &allowed].concat(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 equal"), "{}", r.stdout);
}

#[test]
fn tar_checkpoints_read_through_every_command() {
    let d = tempdir();
    let d = d.path();
    copy(d, "tar.pt", "model.pt");
    let r = run_in(d, &["inspect", "model.pt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("state_dict.tied_b"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("modeltool.tied.state_dict.tied_b: state_dict.tied_a"),
        "{}",
        r.stdout
    );
    let r = run_in(d, &["verify", "model.pt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.ends_with("OK\n"), "{}", r.stdout);
    for out in ["out.safetensors", "out.json", "shards/"] {
        let r = run_in(d, &["convert", "model.pt", out]);
        assert_eq!(r.code, 0, "{out}: {}", r.stderr);
        let r = run_in(d, &["verify", "--strict", out]);
        assert_eq!(r.code, 0, "{out}: {}{}", r.stdout, r.stderr);
    }
    assert_eq!(run_in(d, &["stats", "model.pt"]).code, 0);
    assert_eq!(
        run_in(d, &["diff", "model.pt", "out.safetensors"]).code,
        0,
        "the conversion holds the same tensors"
    );
}

/// Sets a tar header's checksum after an edit.
fn tar_checksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h[..512].iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

#[test]
fn hostile_tar_checkpoints_give_one_error_line_each() {
    use modeltool_format::pytorch::TarFile;
    let good = std::fs::read(pt("tar.pt")).expect("the fixture");
    let t = TarFile::parse(&good, &[]).expect("the fixture reads");
    let entry = |name: &str| t.entries[name].clone();
    let (tensors, storages) = (entry("tensors"), entry("storages"));
    let header = |r: &std::ops::Range<u64>| (r.start - 512) as usize;
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // An entry whose size runs past the end of the file.
    cases.push((
        "cut",
        good[..storages.start as usize + 100].to_vec(),
        "past the end of the file",
    ));
    // A missing entry: `tensors` renamed.
    let mut b = good.clone();
    let h = header(&tensors);
    b[h..h + 7].copy_from_slice(b"tensorz");
    tar_checksum(&mut b[h..h + 512]);
    cases.push(("missing", b, "no `tensors` entry"));
    // A count the entry cannot hold (BININT1 255 records in 770 bytes).
    let mut b = good.clone();
    let at = tensors.start as usize;
    assert_eq!(&b[at..at + 3], b"\x80\x02K");
    b[at + 3] = 255;
    cases.push(("count", b, "255 records"));
    // A storage whose element count is near 2^63.
    let mut b = good.clone();
    let text = &good[storages.start as usize..storages.end as usize];
    let stop = text
        .windows(2)
        .skip(5)
        .position(|w| w == b"\x87q")
        .expect("the first storage record")
        + 5;
    // `\x87 q N .` ends the record's pickle: the count follows.
    let count = storages.start as usize + stop + 4;
    b[count..count + 8].copy_from_slice(&i64::MAX.to_le_bytes());
    cases.push(("storage count", b, "9223372036854775807 elements"));
    // A damaged header.
    let mut b = good.clone();
    b[header(&storages) + 1] ^= 1;
    cases.push(("checksum", b, "checksum"));

    let d = tempdir();
    let d = d.path();
    for (what, bytes, needle) in cases {
        std::fs::write(d.join("model.pt"), &bytes).expect("write");
        for args in [
            &["inspect", "model.pt"][..],
            &["verify", "model.pt"],
            &["convert", "model.pt", "out.safetensors"],
        ] {
            let r = run_in(d, args);
            assert_error(&r, 2, &["model.pt", needle]);
            assert_eq!(r.stderr.lines().count(), 1, "{what} {args:?}: {}", r.stderr);
            assert!(!d.join("out.safetensors").exists());
        }
    }
}

#[test]
fn a_sharded_folder_torch_wrote_reads_through_inspect_verify_and_convert() {
    let Some(python) = torch_python() else { return };
    let d = tempdir();
    let d = d.path();
    script(&python, d, &["torch_tensors.py", "shards", "ckpt"]);
    for input in ["ckpt", "ckpt/pytorch_model.bin.index.json"] {
        let r = run_in(d, &["inspect", input]);
        assert_eq!(r.code, 0, "{input}: {}", r.stderr);
        assert!(r.stdout.contains("sharded, 2 files"), "{}", r.stdout);
        assert!(r.stdout.contains("lm_head.weight"), "{}", r.stdout);
        // No safetensors size formula for zip files, which it would not fit.
        assert!(!r.stdout.contains("but the file has"), "{}", r.stdout);
        assert!(!r.stdout.contains("file = 8 + header"), "{}", r.stdout);
        let r = run_in(d, &["verify", input]);
        assert_eq!(r.code, 0, "{input}: {}", r.stderr);
        assert!(r.stdout.contains("6 tensors in 2 files"), "{}", r.stdout);
    }
    for out in ["out.safetensors", "out.json", "shards/"] {
        let r = run_in(d, &["convert", "ckpt", out]);
        assert_eq!(r.code, 0, "{out}: {}", r.stderr);
        assert_eq!(run_in(d, &["verify", "--strict", out]).code, 0, "{out}");
    }
    // Every tensor bit for bit as torch loads it from one file.
    let n = script(
        &python,
        d,
        &[
            "torch_convert_check.py",
            "compare",
            "all.pt",
            "out.safetensors",
        ],
    );
    assert_eq!(n.trim(), "6");
}
