//! GGUF through the command line: inspect, verify and convert read the
//! files llama.cpp runs; convert writes them (plain or Q8_0); hostile headers
//! give one `error:` line and exit 2. The interop tests (skipped when
//! `MODELTOOL_PYTHON` is unset) compare with the `gguf` package bit for bit.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{self, assert_error, fixtures, run_in, tempdir};

fn tiny() -> PathBuf {
    fixtures().join("gguf/tiny_llama.gguf")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = run_in(dir, args);
    assert_eq!(r.code, 0, "modeltool {args:?} failed: {}", r.stderr);
    r.stdout
}

/// A safetensors file's header (tensors and `__metadata__`).
fn st_header(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    serde_json::from_slice(&bytes[8..8 + n]).unwrap()
}

#[test]
fn a_gguf_converts_to_safetensors_with_the_packages_dequantized_values() {
    let dir = tempdir();
    let d = dir.path();
    let tiny = tiny();
    ok(d, &["convert", tiny.to_str().unwrap(), "out.safetensors"]);
    // What the gguf package read from the fixture: per tensor the sha256
    // of gguf.quants.dequantize's f32 output.
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("gguf/tiny_llama.json")).unwrap(),
    )
    .unwrap();
    let header = st_header(&d.join("out.safetensors"));
    let meta = &header["__metadata__"];
    for t in expected["tensors"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let out = &header[name];
        assert_eq!(out["shape"], t["shape"], "{name}: row-major shape");
        let (dtype, sum) = match t["type"].as_str().unwrap() {
            // Plain types are copied as they are.
            "F16" => ("F16", &t["sha256"]),
            "F32" => ("F32", &t["sha256"]),
            _ => ("F32", &t["dequantized_sha256"]),
        };
        assert_eq!(out["dtype"], dtype, "{name}");
        assert_eq!(
            meta[format!("modeltool.sha256.{name}")],
            *sum,
            "{name} ({}): not the package's values",
            t["type"]
        );
    }
    assert_eq!(meta["gguf.general.architecture"], "llama");
    assert_eq!(meta["gguf.llama.context_length"], "128", "numbers as text");
    assert_eq!(
        meta["gguf.tokenizer.ggml.tokens"], "array of 100 string",
        "a vocabulary is summarised, not dumped"
    );
    ok(d, &["verify", "out.safetensors"]);
}

#[test]
fn a_gguf_from_elsewhere_verifies_its_structure_only() {
    let dir = tempdir();
    let out = ok(dir.path(), &["verify", tiny().to_str().unwrap()]);
    assert!(
        out.contains("no checksums stored: only the structure was checked"),
        "{out}"
    );
    let inspect = ok(dir.path(), &["inspect", tiny().to_str().unwrap()]);
    assert!(inspect.contains("(gguf, 1 file)"), "{inspect}");
}

#[test]
fn a_gguf_written_by_modeltool_carries_checksums_that_catch_damage() {
    let dir = tempdir();
    let d = dir.path();
    let tiny = tiny();
    ok(d, &["convert", tiny.to_str().unwrap(), "t.safetensors"]);
    ok(
        d,
        &["convert", "t.safetensors", "q.gguf", "--quantize", "q8_0"],
    );
    ok(d, &["convert", "t.safetensors", "p.gguf"]);
    for f in ["q.gguf", "p.gguf"] {
        let out = ok(d, &["verify", f]);
        assert!(out.contains("6 of 6 tensor checksums match"), "{f}: {out}");
    }
    // Back to safetensors: the checksums (of the values the loader reads)
    // carry over, so the plain file comes back identical in its tensors.
    ok(d, &["convert", "p.gguf", "back.safetensors"]);
    let (a, b) = (
        st_header(&d.join("t.safetensors")),
        st_header(&d.join("back.safetensors")),
    );
    for (k, v) in a.as_object().unwrap() {
        if k != "__metadata__" {
            assert_eq!(b[k]["dtype"], v["dtype"], "{k}");
            let key = format!("modeltool.sha256.{k}");
            assert_eq!(b["__metadata__"][&key], a["__metadata__"][&key], "{k}");
        }
    }
    // One flipped byte in the last tensor's data: verify fails (exit 1).
    let mut bytes = std::fs::read(d.join("p.gguf")).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(d.join("p.gguf"), &bytes).unwrap();
    let r = run_in(d, &["verify", "p.gguf"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // And convert refuses to pass it on.
    let r = run_in(d, &["convert", "p.gguf", "again.safetensors"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!d.join("again.safetensors").exists());
}

#[test]
fn gguf_output_rules() {
    let dir = tempdir();
    let d = dir.path();
    let tiny = tiny();
    ok(d, &["convert", tiny.to_str().unwrap(), "t.safetensors"]);
    assert_error(
        &run_in(
            d,
            &["convert", "t.safetensors", "x.json", "--quantize", "q8_0"],
        ),
        2,
        &["x.json", "--quantize", ".gguf"],
    );
    ok(d, &["convert", "t.safetensors", "o.gguf"]);
    // An existing output needs --force, as for every other kind.
    assert_error(
        &run_in(d, &["convert", "t.safetensors", "o.gguf"]),
        2,
        &["o.gguf"],
    );
    ok(d, &["convert", "t.safetensors", "o.gguf", "--force"]);
    // Dtypes GGUF has no type for are refused, and nothing is written.
    let multi = fixtures().join("multi_dtype.safetensors");
    assert_error(
        &run_in(d, &["convert", multi.to_str().unwrap(), "m.gguf"]),
        2,
        &["m.gguf", "GGUF does not store"],
    );
    assert!(!d.join("m.gguf").exists());
    // rehash rewrites in place as safetensors: a GGUF is refused, untouched.
    let before = std::fs::read(d.join("o.gguf")).unwrap();
    assert_error(&run_in(d, &["rehash", "o.gguf"]), 2, &["o.gguf", "convert"]);
    assert!(std::fs::read(d.join("o.gguf")).unwrap() == before);
}

#[test]
fn hostile_gguf_headers_give_one_error_line_through_every_command() {
    let dir = tempdir();
    let d = dir.path();
    let file = std::fs::read(tiny()).unwrap();
    let mut count = file.clone();
    count[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let mut kv = file.clone();
    kv[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let mut version = file.clone();
    version[4..8].copy_from_slice(&7u32.to_le_bytes());
    // The first key's length says 2^62 bytes.
    let mut key = file.clone();
    key[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    let cases: [(&str, &[u8]); 6] = [
        ("cut.gguf", &file[..300]),
        ("count.gguf", &count),
        ("kv.gguf", &kv),
        ("version.gguf", &version),
        ("key.gguf", &key),
        ("magic.gguf", b"GGUF\x03\x00\x00\x00"),
    ];
    for (name, bytes) in cases {
        std::fs::write(d.join(name), bytes).unwrap();
        for args in [
            &["inspect", name][..],
            &["verify", name],
            &["convert", name, "out.safetensors"],
        ] {
            let r = run_in(d, args);
            assert_error(&r, 2, &[name]);
            assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        }
        assert!(!d.join("out.safetensors").exists());
    }
}

// --- with the gguf package --------------------------------------------------

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name)
}

fn py(python: &Path, dir: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(script(name))
        .args(args)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}{stdout}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn files_the_gguf_package_writes_convert_bit_exactly_with_its_dequantizer() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    // Every type the package quantizes, and random blocks of the K, IQ4,
    // TQ and FP4 types it only dequantizes.
    py(&python, d, "gguf_reference.py", &["write", "ref"]);
    ok(d, &["convert", "ref/ref.gguf", "ref.safetensors"]);
    let out = py(
        &python,
        d,
        "gguf_convert_check.py",
        &["dequantized", "ref", "ref.safetensors"],
    );
    assert!(out.contains("34 tensors bit-exact"), "{out}");
    // Kept as blocks and back: the package's file, byte for byte.
    ok(
        d,
        &[
            "convert",
            "ref/ref.gguf",
            "k.safetensors",
            "--keep-quantized",
        ],
    );
    ok(d, &["convert", "k.safetensors", "back.gguf"]);
    assert!(
        std::fs::read(d.join("back.gguf")).unwrap()
            == std::fs::read(d.join("ref/ref.gguf")).unwrap()
    );
}

#[test]
fn gguf_files_modeltool_writes_read_back_in_the_gguf_package() {
    let Some(python) = util::python() else { return };
    let dir = tempdir();
    let d = dir.path();
    py(&python, d, "gguf_reference.py", &["write", "ref"]);
    ok(d, &["convert", "ref/ref.gguf", "ref.safetensors"]);
    let tiny = tiny();
    ok(d, &["convert", tiny.to_str().unwrap(), "tiny.safetensors"]);
    for input in ["ref.safetensors", "tiny.safetensors"] {
        for (out, extra) in [
            ("plain.gguf", &[][..]),
            ("q8.gguf", &["--quantize", "q8_0"][..]),
        ] {
            let mut args = vec!["convert", input, out, "--force"];
            args.extend_from_slice(extra);
            ok(d, &args);
            py(
                &python,
                d,
                "gguf_convert_check.py",
                &["read-back", input, out],
            );
        }
    }
}

/// A GGUF file with one Q1_0 tensor (a type neither the `gguf` package
/// nor modeltool decodes) of 256 values, made by hand.
fn iq2_gguf() -> Vec<u8> {
    let mut f = b"GGUF".to_vec();
    f.extend_from_slice(&3u32.to_le_bytes());
    f.extend_from_slice(&1u64.to_le_bytes()); // tensors
    f.extend_from_slice(&0u64.to_le_bytes()); // metadata
    f.extend_from_slice(&2u64.to_le_bytes());
    f.extend_from_slice(b"iq");
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&256u64.to_le_bytes());
    f.extend_from_slice(&41u32.to_le_bytes()); // Q1_0
    f.extend_from_slice(&0u64.to_le_bytes());
    f.resize(f.len().next_multiple_of(32), 0);
    f.extend((0..36u8).map(|i| i.wrapping_mul(7)));
    f.resize(f.len().next_multiple_of(32), 0);
    f
}

#[test]
fn keep_quantized_gives_the_original_gguf_back_byte_for_byte() {
    let dir = tempdir();
    let d = dir.path();
    let tiny = tiny();
    ok(
        d,
        &[
            "convert",
            tiny.to_str().unwrap(),
            "k.safetensors",
            "--keep-quantized",
        ],
    );
    let header = st_header(&d.join("k.safetensors"));
    assert_eq!(header["blk.0.ffn_up.weight"]["dtype"], "U8");
    assert_eq!(
        header["__metadata__"]["modeltool.gguf.type.blk.0.ffn_up.weight"],
        "Q4_K"
    );
    ok(d, &["verify", "k.safetensors"]);
    ok(d, &["convert", "k.safetensors", "back.gguf"]);
    assert!(
        std::fs::read(d.join("back.gguf")).unwrap() == std::fs::read(&tiny).unwrap(),
        "not the original bytes"
    );
    // Changed on the way (a cast): the blocks come back as blocks, in a new
    // file with checksums.
    ok(
        d,
        &["convert", "k.safetensors", "f16.gguf", "--dtype", "f16"],
    );
    let out = ok(d, &["verify", "f16.gguf"]);
    assert!(out.contains("6 of 6 tensor checksums match"), "{out}");
    assert_error(
        &run_in(
            d,
            &[
                "convert",
                tiny.to_str().unwrap(),
                "k.json",
                "--keep-quantized",
            ],
        ),
        2,
        &["k.json", "--keep-quantized"],
    );
}

#[test]
fn a_type_without_a_decoder_is_refused_unless_kept() {
    let dir = tempdir();
    let d = dir.path();
    std::fs::write(d.join("iq.gguf"), iq2_gguf()).unwrap();
    // Inspect and verify read the structure.
    ok(d, &["inspect", "iq.gguf"]);
    let out = ok(d, &["verify", "iq.gguf"]);
    assert!(out.contains("only the structure was checked"), "{out}");
    assert_error(
        &run_in(d, &["convert", "iq.gguf", "iq.safetensors"]),
        2,
        &["iq.gguf", "`iq`", "Q1_0", "--keep-quantized"],
    );
    assert!(!d.join("iq.safetensors").exists());
    ok(
        d,
        &["convert", "iq.gguf", "iq.safetensors", "--keep-quantized"],
    );
    ok(d, &["convert", "iq.safetensors", "iq2.gguf"]);
    assert!(std::fs::read(d.join("iq2.gguf")).unwrap() == iq2_gguf());
    // Rewritten (not the original layout): the checksum covers the blocks.
    ok(
        d,
        &["convert", "iq.safetensors", "iq3.gguf", "--dtype", "f16"],
    );
    let out = ok(d, &["verify", "iq3.gguf"]);
    assert!(out.contains("1 of 1 tensor checksum matches"), "{out}");
}
