//! Property tests: what a user relies on when converting model files, checked
//! on random models through the library API the way the CLI drives it
//! (`Model::open`, then `save::convert`; `verify` is `sha256_all` against the
//! stored checksums).
//!
//! - A: safetensors -> JSON -> safetensors (and JSON -> safetensors -> JSON)
//!   keep every tensor's name, dtype, shape and bytes, for all 22 dtypes,
//!   scalars, empty tensors, NaN payloads, -0.0, subnormals and extremes;
//!   every output stores sha256 checksums that verify; metadata and the
//!   architecture pass through.
//! - B: splitting into shards follows the documented Hugging Face plan,
//!   every shard verifies on its own and as part of the checkpoint, and
//!   merging gives back the file modeltool writes for the same tensors.
//! - C: `--dtype f16|bf16|f32` rounds to nearest, ties to even, exactly like
//!   an independent bit-level reference (and `half` for f32 sources); NaNs
//!   stay NaNs of the same sign, quieted, keeping the top payload bits; the
//!   report counts exactly the values whose value changed.
//!
//! Case counts: 256 for A and C, 64 for B (it writes the most files).
//! A failing case is not saved to a regressions file; proptest prints it.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap what they built themselves"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use modeltool_format::{
    Checksum, Dtype, Header, ModelMetadata, TensorMeta, sha256_hex, write_safetensors,
};
use modeltool_loader::save::{ConvertOptions, ConvertReport, OutputKind, convert, write_model};
use modeltool_loader::{LoadError, Model, ModelKind, OpenOptions};
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::TestCaseError;
use serde_json::{Value, json};

type TestResult = Result<(), TestCaseError>;

/// Turns a library error into a proptest failure that names the step.
trait OrFail<T> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError>;
}

impl<T, E: Display> OrFail<T> for Result<T, E> {
    fn or_fail(self, what: &str) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
    }
}

// ---------------------------------------------------------------------------
// The generated models
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Tensor {
    meta: TensorMeta,
    data: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Sample {
    tensors: Vec<Tensor>,
    user: BTreeMap<String, String>,
    architecture: Option<Value>,
    /// Which tensors the input safetensors file stores a checksum for:
    /// all (modeltool's own files), none (files from other tools) or some.
    stored: Vec<bool>,
}

impl Sample {
    fn metadata(&self) -> ModelMetadata {
        ModelMetadata {
            user: self.user.clone(),
            checksums: BTreeMap::new(),
            architecture: self.architecture.clone(),
        }
    }

    fn pairs(&self) -> Vec<(TensorMeta, Vec<u8>)> {
        self.tensors
            .iter()
            .map(|t| (t.meta.clone(), t.data.clone()))
            .collect()
    }

    fn total_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64).sum()
    }

    fn all_stored(&self) -> bool {
        self.stored.iter().all(|&b| b)
    }

    fn stored_count(&self) -> usize {
        self.stored.iter().filter(|&&b| b).count()
    }
}

/// Pieces of tensor names and metadata strings: dots, unicode, and
/// everything JSON must escape (quotes, backslashes, control characters,
/// U+2028), plus look-alikes of the reserved keys.
const FRAGMENTS: &[&str] = &[
    "layer",
    "0",
    "17",
    ".",
    ".",
    "weight",
    "bias",
    "_",
    "é",
    "日本",
    "😀",
    "\"",
    "\\",
    "/",
    "\n",
    "\t",
    "\u{0}",
    "\u{1f}",
    "\u{7f}",
    " ",
    "\u{2028}",
    "\u{feff}",
    "modeltool.sha256.",
    "modeltool",
    "__metadata",
    "{}",
    "[\"x\"]",
];

/// A string of 1 to 5 fragments, or now and then the empty string.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        9 => proptest::collection::vec(select(FRAGMENTS), 1..6).prop_map(|parts| parts.concat()),
    ]
}

/// User metadata: keys outside the reserved `modeltool.` prefix (FORMAT.md:
/// a JSON model file using it is refused), any string values.
fn user_metadata() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = text().prop_map(|k| {
        if k.starts_with("modeltool.") {
            format!("x{k}")
        } else {
            k
        }
    });
    let value = prop_oneof![text(), any::<String>()];
    proptest::collection::btree_map(key, value, 0..4)
}

/// Architectures shaped like the FORMAT.md examples (layer and tensor
/// names are free text, so they exercise the JSON-in-metadata escaping).
fn architecture() -> impl Strategy<Value = Option<Value>> {
    let leaf = prop_oneof![
        (text(), proptest::option::of(text())).prop_map(|(w, b)| match b {
            Some(b) => json!({"type": "linear", "weight": w, "bias": b}),
            None => json!({"type": "linear", "weight": w}),
        }),
        select(&["relu", "tanh", "sigmoid", "identity", "gelu"][..])
            .prop_map(|t| json!({ "type": t })),
    ];
    let layer = leaf.prop_recursive(2, 8, 3, |inner| {
        (1u32..=4096, proptest::collection::vec(inner, 1..3))
            .prop_map(|(times, layers)| json!({"type": "repeat", "times": times, "layers": layers}))
    });
    let arch = (proptest::collection::vec(layer, 1..4), any::<bool>()).prop_map(
        |(mut layers, softmax)| {
            if softmax {
                layers.push(json!({"type": "softmax"}));
            }
            json!({ "layers": layers })
        },
    );
    proptest::option::of(arch)
}

/// Exponent and mantissa widths of the IEEE-style float dtypes.
fn ieee(dtype: Dtype) -> Option<(u32, u32)> {
    match dtype {
        Dtype::F16 => Some((5, 10)),
        Dtype::BF16 => Some((8, 7)),
        Dtype::F32 | Dtype::C64 => Some((8, 23)),
        Dtype::F64 => Some((11, 52)),
        Dtype::F8_E5M2 => Some((5, 2)),
        _ => None,
    }
}

/// Bits of an IEEE-style float with `e` exponent and `m` mantissa bits,
/// biased toward the values that are easiest to lose: zeros of both signs,
/// infinities, NaNs with any payload and sign (quiet and signalling),
/// smallest and largest subnormals, smallest normal, largest finite.
fn float_bits(e: u32, m: u32) -> BoxedStrategy<u64> {
    let exp_ones = ((1u64 << e) - 1) << m;
    let man_mask = (1u64 << m) - 1;
    let one = ((1u64 << (e - 1)) - 1) << m;
    let magnitude = prop_oneof![
        1 => Just(0u64),
        1 => Just(exp_ones),
        2 => (1..=man_mask).prop_map(move |p| exp_ones | p),
        1 => Just(1u64),
        1 => Just(man_mask),
        1 => Just(1u64 << m),
        1 => Just(exp_ones - 1),
        1 => Just(one),
        1 => 1..=man_mask,
        4 => any::<u64>().prop_map(move |b| b & (exp_ones | man_mask)),
    ];
    (magnitude, any::<bool>())
        .prop_map(move |(mag, neg)| mag | (u64::from(neg) << (e + m)))
        .boxed()
}

/// Codes of a `width`-bit type, biased toward its edges: 0, 1, the
/// top code, the sign bit alone and its neighbours (-0, NaN of the FNUZ
/// types, 0x7f/0xff NaNs of E4M3, the E8M0 NaN and 1.0, integer extremes).
fn code_bits(width: u32) -> BoxedStrategy<u64> {
    let full = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let half = 1u64 << (width - 1);
    prop_oneof![
        1 => select(vec![0, 1, half - 1, half, half + 1, full, full - 1]),
        2 => any::<u64>().prop_map(move |b| b & full),
    ]
    .boxed()
}

/// One element's bits for `dtype` (for C64: one of its two f32 halves).
fn element(dtype: Dtype) -> BoxedStrategy<u64> {
    if dtype == Dtype::BOOL {
        return (0u64..=1).boxed();
    }
    match ieee(dtype) {
        Some((e, m)) => float_bits(e, m),
        None => code_bits(dtype.bits() as u32),
    }
}

/// Little-endian bytes of elements: packed LSB-first for sub-byte types.
fn to_bytes(dtype: Dtype, elements: &[u64]) -> Vec<u8> {
    let bits = dtype.bits();
    if bits < 8 {
        let mut out = vec![0u8; (elements.len() * bits).div_ceil(8)];
        for (i, &c) in elements.iter().enumerate() {
            for b in 0..bits {
                if c >> b & 1 == 1 {
                    let at = i * bits + b;
                    out[at / 8] |= 1 << (at % 8);
                }
            }
        }
        out
    } else {
        let size = if dtype == Dtype::C64 { 4 } else { bits / 8 };
        elements
            .iter()
            .flat_map(|e| e.to_le_bytes()[..size].to_vec())
            .collect()
    }
}

/// A shape of 0 to 3 dimensions of 0..=5 (a scalar `[]` a quarter of the
/// time, an empty tensor about one time in six), extended so that packed
/// types fill whole bytes: F4 needs an even element count, F6 a multiple of 4.
fn shape_for(dtype: Dtype) -> impl Strategy<Value = Vec<usize>> {
    let dim = prop_oneof![1 => Just(0usize), 12 => 1usize..=5];
    proptest::collection::vec(dim, 0..=3).prop_map(move |mut shape| {
        let count: usize = shape.iter().product();
        if dtype.byte_len(count).is_none() {
            shape.push(if dtype.bits() == 4 { 2 } else { 4 });
        }
        shape
    })
}

fn tensor_of(dtype: Dtype) -> impl Strategy<Value = (Dtype, Vec<usize>, Vec<u8>)> {
    shape_for(dtype).prop_flat_map(move |shape| {
        let count: usize = shape.iter().product();
        let units = if dtype == Dtype::C64 {
            2 * count
        } else {
            count
        };
        proptest::collection::vec(element(dtype), units)
            .prop_map(move |els| (dtype, shape.clone(), to_bytes(dtype, &els)))
    })
}

fn any_tensor() -> impl Strategy<Value = (Dtype, Vec<usize>, Vec<u8>)> {
    select(Dtype::ALL.to_vec()).prop_flat_map(tensor_of)
}

/// Makes names unique (and never `__metadata__`, which safetensors reserves).
fn unique_names(names: Vec<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .enumerate()
        .map(|(i, mut name)| {
            while name == "__metadata__" || seen.contains(&name) {
                name = format!("{name}#{i}");
            }
            seen.insert(name.clone());
            name
        })
        .collect()
}

fn tensors(max: usize) -> impl Strategy<Value = Vec<Tensor>> {
    proptest::collection::vec((text(), any_tensor()), 1..=max).prop_map(|ts| {
        let (names, ts): (Vec<String>, Vec<_>) = ts.into_iter().unzip();
        unique_names(names)
            .into_iter()
            .zip(ts)
            .map(|(name, (dtype, shape, data))| Tensor {
                meta: TensorMeta { name, dtype, shape },
                data,
            })
            .collect()
    })
}

fn sample(max_tensors: usize) -> impl Strategy<Value = Sample> {
    (tensors(max_tensors), user_metadata(), architecture()).prop_flat_map(
        |(tensors, user, architecture)| {
            let n = tensors.len();
            let stored = prop_oneof![
                2 => Just(vec![true; n]),
                1 => Just(vec![false; n]),
                1 => proptest::collection::vec(any::<bool>(), n),
            ];
            (Just(tensors), Just(user), Just(architecture), stored).prop_map(
                |(tensors, user, architecture, stored)| Sample {
                    tensors,
                    user,
                    architecture,
                    stored,
                },
            )
        },
    )
}

// ---------------------------------------------------------------------------
// Files, conversions and checks
// ---------------------------------------------------------------------------

fn open(path: &Path, mmap: bool) -> Result<Model, TestCaseError> {
    Model::open(
        path,
        OpenOptions {
            mmap,
            ..OpenOptions::default()
        },
    )
    .or_fail(&format!("open {}", path.display()))
}

/// Writes the sample as a safetensors file: through `save::write_model`
/// (modeltool's writer, every checksum stored) or, like a file from another
/// tool or an older modeltool, with only some checksums or none.
fn write_input_safetensors(path: &Path, s: &Sample) -> TestResult {
    if s.all_stored() {
        return write_model(path, &s.pairs(), &s.metadata(), false).or_fail("write_model");
    }
    let mut meta = s.metadata();
    for (t, _) in s.tensors.iter().zip(&s.stored).filter(|(_, b)| **b) {
        meta.checksums
            .insert(t.meta.name.clone(), Checksum::of(&t.data));
    }
    let refs: Vec<(TensorMeta, &[u8])> = s
        .tensors
        .iter()
        .map(|t| (t.meta.clone(), &t.data[..]))
        .collect();
    let file = std::fs::File::create(path).or_fail("create")?;
    write_safetensors(file, &refs, &meta.to_safetensors()).or_fail("write_safetensors")
}

/// The safetensors file modeltool writes for the sample (its canonical form).
fn canonical_safetensors(dir: &Path, s: &Sample) -> Result<Vec<u8>, TestCaseError> {
    let path = dir.join("canonical.safetensors");
    write_model(&path, &s.pairs(), &s.metadata(), false).or_fail("write_model")?;
    std::fs::read(&path).or_fail("read canonical")
}

fn run_convert(
    model: &Model,
    output: &Path,
    kind: OutputKind,
    dtype: Option<Dtype>,
) -> Result<ConvertReport, TestCaseError> {
    let mut options = ConvertOptions {
        kind,
        dtype,
        force: false,
        allow_overflow: true,
        ..Default::default()
    };
    // A partial checksum set is refused, writing nothing; `--rehash` is
    // the explicit way through, and is what the round trip then takes.
    if model.check_checksum_set().is_err() {
        let err = convert(model, output, &options, &|_| {}).err();
        prop_assert!(
            matches!(err, Some(LoadError::ChecksumsIncomplete { .. })),
            "convert refuses a partial checksum set: {err:?}"
        );
        prop_assert!(!output.exists(), "nothing written for a refused convert");
        options.rehash = true;
    }
    convert(model, output, &options, &|_| {}).or_fail(&format!("convert to {}", output.display()))
}

/// What `modeltool verify --strict` checks: every tensor has a stored
/// checksum equal to the sha256 of its bytes, and no checksum is orphaned.
fn verify(model: &Model) -> TestResult {
    let sums = model.sha256_all(&|_| {}).or_fail("sha256_all")?;
    prop_assert_eq!(sums.len(), model.entries().len());
    for (entry, actual) in model.entries().iter().zip(sums) {
        prop_assert_eq!(
            entry.stored_sha256.map(|s| s.to_string()),
            Some(actual),
            "stored checksum of `{}`",
            entry.meta.name
        );
    }
    prop_assert!(
        model.orphan_checksums().is_empty(),
        "orphan checksums {:?}",
        model.orphan_checksums()
    );
    Ok(())
}

/// `model` holds exactly the sample's tensors, bit for bit, with checksums
/// stored for the tensors `stored` says (all of them when it is `None`),
/// and the sample's metadata and architecture.
fn check_model(model: &Model, s: &Sample, stored: Option<&[bool]>) -> TestResult {
    prop_assert_eq!(model.entries().len(), s.tensors.len());
    // Some checksums but not all: damage to every checked read (a removed
    // checksum key may hide an edit); the bytes are still there unchecked.
    let partial = stored.is_some_and(|s| s.contains(&true) && s.contains(&false));
    for (i, t) in s.tensors.iter().enumerate() {
        let e = model.entry(&t.meta.name).or_fail("entry")?;
        prop_assert_eq!(&e.meta, &t.meta);
        prop_assert_eq!(e.byte_len(), t.data.len() as u64);
        let bytes = if partial {
            let err = model.bytes_checked(e).err();
            prop_assert!(
                matches!(err, Some(LoadError::ChecksumsIncomplete { .. })),
                "a partial checksum set is refused: {err:?}"
            );
            model.bytes(e).or_fail("bytes")?
        } else {
            model.bytes_checked(e).or_fail("bytes_checked")?
        };
        prop_assert!(
            *bytes == *t.data,
            "bytes of `{}` ({}): {:02x?} != {:02x?}",
            t.meta.name,
            t.meta.dtype,
            &*bytes,
            t.data
        );
        let has_sum = stored.is_none_or(|s| s[i]);
        let expected = has_sum.then(|| sha256_hex(&t.data));
        let stored = e.stored_sha256.map(|s| s.to_string());
        prop_assert_eq!(stored, expected, "checksum of `{}`", t.meta.name);
    }
    if stored.is_none() {
        verify(model)?;
    }
    prop_assert!(model.orphan_checksums().is_empty());
    prop_assert_eq!(&model.metadata().user, &s.user);
    prop_assert_eq!(&model.metadata().architecture, &s.architecture);
    Ok(())
}

/// A safetensors file modeltool wrote, read at the byte level: the header
/// stores exactly `expected` checksums (each the sha256 of its tensor's
/// bytes), the user metadata and the architecture, and every tensor starts
/// aligned for its dtype in a data section that starts at a multiple of 8.
fn check_safetensors_file(
    path: &Path,
    s: &Sample,
    expected: &BTreeSet<&str>,
) -> Result<Header, TestCaseError> {
    let file = std::fs::read(path).or_fail("read")?;
    let header = Header::from_file_bytes(&file).or_fail("header")?;
    prop_assert_eq!(header.data_start() % 8, 0);
    let meta = ModelMetadata::from_safetensors(header.metadata.clone()).or_fail("metadata")?;
    let data = &file[header.data_start() as usize..];
    let mut sums = BTreeMap::new();
    for t in &header.tensors {
        let (a, b) = t.data_offsets;
        prop_assert_eq!(
            a % t.meta.dtype.alignment() as u64,
            0,
            "`{}` unaligned",
            t.meta.name
        );
        sums.insert(
            t.meta.name.as_str(),
            sha256_hex(&data[a as usize..b as usize]),
        );
    }
    let names: BTreeSet<&str> = sums.keys().copied().collect();
    prop_assert_eq!(&names, expected);
    let stored: BTreeMap<&str, String> = meta
        .checksums
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_string()))
        .collect();
    prop_assert_eq!(stored, sums, "stored checksums of {}", path.display());
    prop_assert_eq!(&meta.user, &s.user);
    prop_assert_eq!(&meta.architecture, &s.architecture);
    Ok(header)
}

fn check_report(r: &ConvertReport, s: &Sample, checked: usize) -> TestResult {
    prop_assert_eq!(r.tensors, s.tensors.len());
    prop_assert_eq!(r.checked, checked);
    prop_assert_eq!(r.unchecked, s.tensors.len() - checked);
    prop_assert_eq!(r.data_bytes, s.total_bytes());
    prop_assert_eq!((r.cast_tensors, r.cast_values, r.inexact_values), (0, 0, 0));
    Ok(())
}

fn all_names(s: &Sample) -> BTreeSet<&str> {
    s.tensors.iter().map(|t| t.meta.name.as_str()).collect()
}

// ---------------------------------------------------------------------------
// A: JSON <-> safetensors
// ---------------------------------------------------------------------------

/// safetensors -> JSON -> safetensors -> JSON.
fn safetensors_json_safetensors(s: &Sample, mmap: bool) -> TestResult {
    let dir = tempfile::tempdir().or_fail("tempdir")?;
    let n = s.tensors.len();
    let input = dir.path().join("in.safetensors");
    write_input_safetensors(&input, s)?;
    let m0 = open(&input, mmap)?;
    check_model(&m0, s, Some(&s.stored))?;

    let json1 = dir.path().join("a.json");
    let r = run_convert(&m0, &json1, OutputKind::Json, None)?;
    check_report(&r, s, s.stored_count())?;
    prop_assert_eq!(&r.files, &vec![json1.clone()]);
    let m1 = open(&json1, mmap)?;
    prop_assert_eq!(m1.kind(), &ModelKind::Json);
    check_model(&m1, s, None)?;

    let st = dir.path().join("b.safetensors");
    let r = run_convert(&m1, &st, OutputKind::Safetensors, None)?;
    check_report(&r, s, n)?;
    let m2 = open(&st, mmap)?;
    check_model(&m2, s, None)?;
    check_safetensors_file(&st, s, &all_names(s))?;
    // The writer is canonical: the same file as modeltool writes directly.
    let got = std::fs::read(&st).or_fail("read")?;
    prop_assert!(
        got == canonical_safetensors(dir.path(), s)?,
        "safetensors -> JSON -> safetensors is not the file modeltool writes"
    );

    // A second JSON from the round-tripped file is the same text: the JSON
    // writer is deterministic and nothing drifted on the way.
    let json2 = dir.path().join("c.json");
    run_convert(&m2, &json2, OutputKind::Json, None)?;
    let (t1, t2) = (
        std::fs::read(&json1).or_fail("read")?,
        std::fs::read(&json2).or_fail("read")?,
    );
    prop_assert!(
        t1 == t2,
        "JSON text changed:\n{}\n---\n{}",
        String::from_utf8_lossy(&t1),
        String::from_utf8_lossy(&t2)
    );
    Ok(())
}

/// JSON (tensors in generated order) -> safetensors -> JSON.
fn json_safetensors_json(s: &Sample, mmap: bool) -> TestResult {
    let dir = tempfile::tempdir().or_fail("tempdir")?;
    let n = s.tensors.len();
    let input = dir.path().join("in.json");
    write_model(&input, &s.pairs(), &s.metadata(), false).or_fail("write_model json")?;
    let m0 = open(&input, mmap)?;
    check_model(&m0, s, None)?;
    // The JSON model file keeps the order it was written in.
    let order: Vec<&str> = m0.entries().iter().map(|e| e.meta.name.as_str()).collect();
    let expected: Vec<&str> = s.tensors.iter().map(|t| t.meta.name.as_str()).collect();
    prop_assert_eq!(order, expected);

    let st = dir.path().join("a.safetensors");
    let r = run_convert(&m0, &st, OutputKind::Safetensors, None)?;
    check_report(&r, s, n)?;
    let m1 = open(&st, mmap)?;
    check_model(&m1, s, None)?;
    check_safetensors_file(&st, s, &all_names(s))?;
    let got = std::fs::read(&st).or_fail("read")?;
    prop_assert!(got == canonical_safetensors(dir.path(), s)?);

    let back = dir.path().join("b.json");
    let r = run_convert(&m1, &back, OutputKind::Json, None)?;
    check_report(&r, s, n)?;
    let m2 = open(&back, mmap)?;
    check_model(&m2, s, None)?;

    // The text comes back too, up to the order of the tensors, which is now
    // the documented safetensors order (decreasing alignment, then name).
    let mut sorted = s.pairs();
    sorted.sort_by(|(a, _), (b, _)| {
        (b.dtype.alignment(), &a.name).cmp(&(a.dtype.alignment(), &b.name))
    });
    let canonical = dir.path().join("canonical.json");
    write_model(&canonical, &sorted, &s.metadata(), false).or_fail("write_model json")?;
    let (got, want) = (
        std::fs::read(&back).or_fail("read")?,
        std::fs::read(&canonical).or_fail("read")?,
    );
    prop_assert!(
        got == want,
        "JSON text changed:\n{}\n---\n{}",
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn safetensors_to_json_and_back_is_bit_exact(s in sample(6), mmap in any::<bool>()) {
        safetensors_json_safetensors(&s, mmap)?;
    }

    #[test]
    fn json_to_safetensors_and_back_is_bit_exact(s in sample(6), mmap in any::<bool>()) {
        json_safetensors_json(&s, mmap)?;
    }
}

// ---------------------------------------------------------------------------
// B: shards
// ---------------------------------------------------------------------------

/// The documented plan (FORMAT.md, "Sharded checkpoints"): tensors in order
/// join the current shard until the next would push it past the limit; a
/// tensor larger than the limit gets a shard of its own where it was met.
fn documented_plan(sizes: &[u64], max: u64) -> Vec<Vec<usize>> {
    let mut shards = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut used = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max {
            shards.push(vec![i]);
        } else if used + size > max {
            shards.push(std::mem::replace(&mut current, vec![i]));
            used = size;
        } else {
            current.push(i);
            used += size;
        }
    }
    if !current.is_empty() {
        shards.push(current);
    }
    shards
}

fn sharded_round_trip(s: &Sample, max: u64, from_json: bool, mmap: bool) -> TestResult {
    let dir = tempfile::tempdir().or_fail("tempdir")?;
    let input = if from_json {
        let p = dir.path().join("in.json");
        write_model(&p, &s.pairs(), &s.metadata(), false).or_fail("write_model json")?;
        p
    } else {
        let p = dir.path().join("in.safetensors");
        write_input_safetensors(&p, s)?;
        p
    };
    let m0 = open(&input, mmap)?;
    let out = dir.path().join("sharded");
    let r = run_convert(
        &m0,
        &out,
        OutputKind::Sharded {
            max_shard_size: max,
        },
        None,
    )?;
    let checked = if from_json {
        s.tensors.len()
    } else {
        s.stored_count()
    };
    check_report(&r, s, checked)?;

    // The plan, over the tensors in the order the input holds them.
    let order: Vec<&str> = m0.entries().iter().map(|e| e.meta.name.as_str()).collect();
    let sizes: Vec<u64> = m0.entries().iter().map(|e| e.byte_len()).collect();
    let plan = documented_plan(&sizes, max);
    let n = plan.len();
    let shard_names: Vec<String> = if n == 1 {
        vec!["model.safetensors".to_owned()]
    } else {
        (1..=n)
            .map(|i| format!("model-{i:05}-of-{n:05}.safetensors"))
            .collect()
    };
    let mut files = shard_names.clone();
    if n > 1 {
        files.push("model.safetensors.index.json".to_owned());
    }
    let expected_files: Vec<PathBuf> = files.iter().map(|f| out.join(f)).collect();
    prop_assert_eq!(&r.files, &expected_files);
    let mut listed: Vec<String> = std::fs::read_dir(&out)
        .or_fail("read_dir")?
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listed.sort();
    let mut sorted = files.clone();
    sorted.sort();
    prop_assert_eq!(listed, sorted, "files in the shard folder");

    // Every shard: at most `max` bytes of tensor data unless it is a single
    // oversized tensor; it holds its planned tensors and their checksums only.
    let mut seen = BTreeMap::new();
    for (shard, name) in plan.iter().zip(&shard_names) {
        let names: BTreeSet<&str> = shard.iter().map(|&i| order[i]).collect();
        let header = check_safetensors_file(&out.join(name), s, &names)?;
        let data: u64 = header.tensors.iter().map(|t| t.byte_len()).sum();
        prop_assert!(
            data <= max || header.tensors.len() == 1,
            "shard {} holds {} bytes in {} tensors, limit {}",
            name,
            data,
            header.tensors.len(),
            max
        );
        for t in &header.tensors {
            let before = seen.insert(t.meta.name.clone(), name.clone());
            prop_assert!(before.is_none(), "`{}` in two shards", t.meta.name);
        }
    }
    let all: BTreeSet<&str> = seen.keys().map(String::as_str).collect();
    prop_assert_eq!(&all, &all_names(s), "every tensor exactly once");

    if n > 1 {
        let text = std::fs::read(out.join("model.safetensors.index.json")).or_fail("index")?;
        let index: Value = serde_json::from_slice(&text).or_fail("index JSON")?;
        prop_assert_eq!(
            index["metadata"]["total_size"].as_u64(),
            Some(s.total_bytes())
        );
        let weight_map: BTreeMap<String, String> =
            serde_json::from_value(index["weight_map"].clone()).or_fail("weight_map")?;
        prop_assert_eq!(&weight_map, &seen);
    }

    // The folder, and the index itself, open as one model that verifies.
    let mut opened = vec![out.clone()];
    if n > 1 {
        opened.push(out.join("model.safetensors.index.json"));
    }
    for path in &opened {
        let m = open(path, mmap)?;
        prop_assert_eq!(m.files().len(), n);
        prop_assert_eq!(
            matches!(m.kind(), ModelKind::Sharded { .. }),
            n > 1,
            "kind {:?}",
            m.kind()
        );
        check_model(&m, s, None)?;
    }

    // Merged back: the very file modeltool writes for these tensors.
    let sharded = open(&out, mmap)?;
    let merged = dir.path().join("merged.safetensors");
    let r = run_convert(&sharded, &merged, OutputKind::Safetensors, None)?;
    check_report(&r, s, s.tensors.len())?;
    check_model(&open(&merged, mmap)?, s, None)?;
    let got = std::fs::read(&merged).or_fail("read merged")?;
    prop_assert!(
        got == canonical_safetensors(dir.path(), s)?,
        "merged file differs"
    );
    Ok(())
}

/// A sample and a shard limit from 1 byte to a little more than the total.
fn sharded_case() -> impl Strategy<Value = (Sample, u64)> {
    (sample(8), any::<Index>()).prop_map(|(s, i)| {
        let max = 1 + i.index(s.total_bytes() as usize + 8) as u64;
        (s, max)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn shards_follow_the_plan_verify_and_merge_back(
        (s, max) in sharded_case(),
        from_json in any::<bool>(),
        mmap in any::<bool>(),
    ) {
        sharded_round_trip(&s, max, from_json, mmap)?;
    }
}

// ---------------------------------------------------------------------------
// C: casts
// ---------------------------------------------------------------------------

/// The value of IEEE-style bits with `e` exponent and `m` mantissa bits
/// (`e` at most 8, so every power of two involved is a normal f64).
fn decode(bits: u64, e: u32, m: u32) -> f64 {
    let negative = bits >> (e + m) & 1 == 1;
    let exp = (bits >> m) & ((1 << e) - 1);
    let man = bits & ((1 << m) - 1);
    let bias = (1i32 << (e - 1)) - 1;
    let v = if exp == (1 << e) - 1 {
        if man == 0 { f64::INFINITY } else { f64::NAN }
    } else if exp == 0 {
        man as f64 * 2f64.powi(1 - bias - m as i32)
    } else {
        (man | 1 << m) as f64 * 2f64.powi(exp as i32 - bias - m as i32)
    };
    if negative { -v } else { v }
}

/// The value of one element of a float dtype, exactly, as f64.
fn value_of(dtype: Dtype, bits: u64) -> f64 {
    match dtype {
        Dtype::F64 => f64::from_bits(bits),
        Dtype::F32 => f64::from(f32::from_bits(bits as u32)),
        Dtype::F16 => f16::from_bits(bits as u16).to_f64(),
        Dtype::BF16 => bf16::from_bits(bits as u16).to_f64(),
        _ => unreachable!("only floats are cast"),
    }
}

/// Reference rounding, bit by bit: the bits of the IEEE-style type with
/// `e` exponent and `m` mantissa bits nearest to the non-NaN `v`, ties to
/// the even mantissa; beyond the largest finite value by half an ulp or
/// more (a tie goes to the even neighbour, infinity) it is infinity.
fn round_nearest_even(v: f64, e: u32, m: u32) -> u64 {
    assert!(!v.is_nan());
    let sign = u64::from(v.is_sign_negative()) << (e + m);
    let exp_ones = (1u64 << e) - 1;
    if v.is_infinite() {
        return sign | exp_ones << m;
    }
    if v == 0.0 {
        return sign;
    }
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    // |v| = mant * 2^exp2 exactly.
    let (mant, exp2) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    };
    let log2 = exp2 + (63 - mant.leading_zeros() as i32);
    let bias = (1i32 << (e - 1)) - 1;
    let emin = 1 - bias;
    // The target's quantum at |v|: round mant * 2^exp2 to a multiple of 2^q.
    let mut q = log2.max(emin) - m as i32;
    let shift = q - exp2;
    let mut n = if shift <= 0 {
        mant << -shift
    } else if shift >= 64 {
        0
    } else {
        let kept = mant >> shift;
        let rest = mant & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        if rest > half || (rest == half && kept & 1 == 1) {
            kept + 1
        } else {
            kept
        }
    };
    if n == 0 {
        return sign;
    }
    if log2 < emin {
        // Subnormal; n == 2^m is the smallest normal, whose bits are n too.
        return sign | n;
    }
    if n == 1 << (m + 1) {
        n >>= 1;
        q += 1;
    }
    let biased = q + m as i32 + bias;
    if biased >= exp_ones as i32 {
        return sign | exp_ones << m;
    }
    sign | (biased as u64) << m | (n - (1 << m))
}

/// What a cast does with a NaN (observed and asserted): it stays a NaN of
/// the same sign, quieted (top mantissa bit set), keeping the top payload
/// bits that fit, left-aligned. This is what `half` and the hardware
/// conversions do; the report counts NaN -> NaN as exact.
fn nan_cast(bits: u64, from: (u32, u32), to: (u32, u32)) -> u64 {
    let ((fe, fm), (e, m)) = (from, to);
    let negative = bits >> (fe + fm) & 1;
    let payload = (bits & ((1 << fm) - 1)) << (52 - fm);
    negative << (e + m) | ((1 << e) - 1) << m | 1 << (m - 1) | payload >> (52 - m)
}

/// The expected cast of one element, and whether its value changed.
fn expected_cast(from: Dtype, to: Dtype, bits: u64) -> (u64, bool) {
    let (src, dst) = (ieee(from).unwrap(), ieee(to).unwrap());
    let v = value_of(from, bits);
    let out = if v.is_nan() {
        nan_cast(bits, src, dst)
    } else {
        round_nearest_even(v, dst.0, dst.1)
    };
    if from == Dtype::F32 {
        // The independent reference agrees with `half`, NaNs included.
        let x = f32::from_bits(bits as u32);
        let by_half = match to {
            Dtype::F16 => Some(u64::from(f16::from_f32(x).to_bits())),
            Dtype::BF16 => Some(u64::from(bf16::from_f32(x).to_bits())),
            _ => None,
        };
        if let Some(h) = by_half {
            assert_eq!(
                out, h,
                "reference and half disagree on {bits:#010x} -> {to}"
            );
        }
    }
    let back = decode(out, dst.0, dst.1);
    let changed = !(back.is_nan() && v.is_nan()) && back != v;
    (out, changed)
}

/// Source bits biased toward the roundings that go wrong: near (within
/// two steps of the source type) the midpoints between neighbours of
/// F16, BF16 and F32, the overflow edges (the midpoint above the largest
/// finite value), and everything `float_bits` covers.
fn cast_bits(from: Dtype) -> BoxedStrategy<u64> {
    let (fe, fm) = ieee(from).unwrap();
    if !matches!(from, Dtype::F32 | Dtype::F64) {
        // F16 and BF16 sources: every pattern is likely enough on its own.
        return float_bits(fe, fm);
    }
    // Midpoints of the narrower types are exact in the source type.
    let targets: Vec<(u32, u32)> = [(5, 10), (8, 7), (8, 23)]
        .into_iter()
        .filter(|&(_, m)| m < fm)
        .collect();
    let near_tie = (
        select(targets),
        any::<u32>(),
        -2i64..=2,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |((e, m), code, step, high, negative)| {
            let finite = (((1u64 << e) - 1) << m) - 1;
            // Half the time the top of the range, where rounding up overflows.
            let c = if high {
                finite - u64::from(code % 4)
            } else {
                u64::from(code) % finite
            };
            let a = decode(c, e, m);
            let b = if c == finite {
                a + (decode(c, e, m) - decode(c - 1, e, m))
            } else {
                decode(c + 1, e, m)
            };
            let mid = (a + b) / 2.0;
            let bits = if fe == 11 {
                mid.to_bits()
            } else {
                u64::from((mid as f32).to_bits())
            };
            let bits = bits.saturating_add_signed(step);
            bits | u64::from(negative) << (fe + fm)
        });
    prop_oneof![2 => float_bits(fe, fm), 3 => near_tie].boxed()
}

#[derive(Debug, Clone)]
struct CastCase {
    tensors: Vec<(Tensor, Vec<u64>)>,
    to: Dtype,
    kind: OutputKind,
}

fn cast_tensor() -> impl Strategy<Value = (Dtype, Vec<u64>)> {
    let float = prop_oneof![
        4 => Just(Dtype::F32),
        2 => Just(Dtype::F64),
        1 => Just(Dtype::F16),
        1 => Just(Dtype::BF16),
    ]
    .prop_flat_map(|d| (Just(d), proptest::collection::vec(cast_bits(d), 0..48)));
    // Tensors of other dtypes must pass through a cast untouched.
    let other = select(vec![Dtype::I32, Dtype::C64, Dtype::F8_E4M3, Dtype::BOOL])
        .prop_flat_map(|d| (Just(d), proptest::collection::vec(element(d), 0..8)))
        .prop_map(|(d, els)| {
            let els = if d == Dtype::C64 && els.len() % 2 == 1 {
                els[1..].to_vec()
            } else {
                els
            };
            (d, els)
        });
    prop_oneof![4 => float, 1 => other]
}

fn cast_case() -> impl Strategy<Value = CastCase> {
    (
        proptest::collection::vec(cast_tensor(), 1..5),
        select(vec![Dtype::F16, Dtype::BF16, Dtype::F32]),
        prop_oneof![
            Just(OutputKind::Safetensors),
            Just(OutputKind::Json),
            (1u64..200).prop_map(|max_shard_size| OutputKind::Sharded { max_shard_size }),
        ],
    )
        .prop_map(|(ts, to, kind)| CastCase {
            tensors: ts
                .into_iter()
                .enumerate()
                .map(|(i, (dtype, els))| {
                    let count = if dtype == Dtype::C64 {
                        els.len() / 2
                    } else {
                        els.len()
                    };
                    let shape = if count == 1 && i % 2 == 0 {
                        vec![]
                    } else {
                        vec![count]
                    };
                    let tensor = Tensor {
                        meta: TensorMeta {
                            name: format!("t{i}.{dtype}"),
                            dtype,
                            shape,
                        },
                        data: to_bytes(dtype, &els),
                    };
                    (tensor, els)
                })
                .collect(),
            to,
            kind,
        })
}

fn cast_round_trip(c: &CastCase) -> TestResult {
    let dir = tempfile::tempdir().or_fail("tempdir")?;
    let input = dir.path().join("in.safetensors");
    let pairs: Vec<(TensorMeta, Vec<u8>)> = c
        .tensors
        .iter()
        .map(|(t, _)| (t.meta.clone(), t.data.clone()))
        .collect();
    write_model(&input, &pairs, &ModelMetadata::default(), false).or_fail("write_model")?;
    let m0 = open(&input, true)?;
    let out = dir.path().join(match c.kind {
        OutputKind::Json => "out.json",
        OutputKind::Safetensors => "out.safetensors",
        OutputKind::Sharded { .. } => "out",
        OutputKind::Gguf { .. } => "out.gguf",
    });
    let r = run_convert(&m0, &out, c.kind, Some(c.to))?;
    let m1 = open(&out, true)?;
    verify(&m1)?;
    prop_assert_eq!(m1.entries().len(), c.tensors.len());

    let (mut cast_tensors, mut cast_values, mut inexact, mut data_bytes) = (0, 0, 0, 0);
    for (t, els) in &c.tensors {
        let from = t.meta.dtype;
        let e = m1.entry(&t.meta.name).or_fail("entry")?;
        let got = m1.bytes_checked(e).or_fail("bytes_checked")?;
        data_bytes += got.len() as u64;
        let is_cast =
            from != c.to && matches!(from, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64);
        if !is_cast {
            prop_assert_eq!(&e.meta, &t.meta);
            prop_assert!(*got == *t.data, "`{}` changed without a cast", t.meta.name);
            continue;
        }
        cast_tensors += 1;
        cast_values += els.len() as u64;
        prop_assert_eq!(e.meta.dtype, c.to);
        prop_assert_eq!(&e.meta.shape, &t.meta.shape);
        let size = c.to.bits() / 8;
        prop_assert_eq!(got.len(), els.len() * size);
        for (i, (&bits, chunk)) in els.iter().zip(got.chunks_exact(size)).enumerate() {
            let mut word = [0u8; 8];
            word[..size].copy_from_slice(chunk);
            let actual = u64::from_le_bytes(word);
            let (expected, changed) = expected_cast(from, c.to, bits);
            inexact += u64::from(changed);
            prop_assert_eq!(
                actual,
                expected,
                "`{}`[{}]: {} {:#x} ({:e}) -> {}: got {:#x}, expected {:#x}",
                t.meta.name,
                i,
                from,
                bits,
                value_of(from, bits),
                c.to,
                actual,
                expected
            );
        }
    }
    prop_assert_eq!(r.checked, c.tensors.len());
    prop_assert_eq!(r.data_bytes, data_bytes);
    prop_assert_eq!(
        (r.cast_tensors, r.cast_values, r.inexact_values),
        (cast_tensors, cast_values, inexact),
        "cast counts (tensors, values, inexact)"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn casts_round_to_nearest_even(c in cast_case()) {
        cast_round_trip(&c)?;
    }
}

/// The bit-level reference itself agrees with `half` and with Rust's `as`
/// (both round to nearest, ties to even) on a sweep of f32 and f64 bit
/// patterns: a wrong reference would make property C meaningless.
#[test]
fn the_rounding_reference_agrees_with_half_and_as() {
    for i in 0..1u64 << 20 {
        let bits = (i * 4093) as u32 ^ (i as u32).rotate_left(21);
        let x = f32::from_bits(bits);
        let f16_ref = expected_cast(Dtype::F32, Dtype::F16, u64::from(bits)).0;
        assert_eq!(f16_ref, u64::from(f16::from_f32(x).to_bits()), "{bits:#x}");
        let bf16_ref = expected_cast(Dtype::F32, Dtype::BF16, u64::from(bits)).0;
        assert_eq!(
            bf16_ref,
            u64::from(bf16::from_f32(x).to_bits()),
            "{bits:#x}"
        );
        let wide = u64::from(bits).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let y = f64::from_bits(wide);
        if !y.is_nan() {
            assert_eq!(
                round_nearest_even(y, 8, 23),
                u64::from((y as f32).to_bits()),
                "{wide:#x}"
            );
        }
    }
}

/// A cast larger than one parallel piece of the caster (1 MiB of input),
/// through both writers, against the reference element by element.
#[test]
fn a_cast_larger_than_one_piece_matches_the_reference() {
    let count = (1 << 20) / 4 + 3; // just over 1 MiB of F32: two pieces, the second short
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bits: Vec<u64> = (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every eighth value on a BF16 midpoint, to make ties common.
            let b = (x >> 32) as u32;
            u64::from(if i % 8 == 0 {
                b & 0xffff_0000 | 0x8000
            } else {
                b
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.safetensors");
    let meta = TensorMeta {
        name: "big".into(),
        dtype: Dtype::F32,
        shape: vec![count],
    };
    let data = to_bytes(Dtype::F32, &bits);
    write_model(&input, &[(meta, data)], &ModelMetadata::default(), false).unwrap();
    let model = Model::open(&input, OpenOptions::default()).unwrap();
    let mut inexact = 0;
    let expected: Vec<u8> = bits
        .iter()
        .flat_map(|&b| {
            let (out, changed) = expected_cast(Dtype::F32, Dtype::BF16, b);
            inexact += u64::from(changed);
            (out as u16).to_le_bytes()
        })
        .collect();
    for (name, kind) in [
        ("out.safetensors", OutputKind::Safetensors),
        ("out.json", OutputKind::Json),
    ] {
        let out = dir.path().join(name);
        let options = ConvertOptions {
            kind,
            dtype: Some(Dtype::BF16),
            force: false,
            allow_overflow: true,
            ..Default::default()
        };
        let r = convert(&model, &out, &options, &|_| {}).unwrap();
        assert_eq!(
            (r.cast_tensors, r.cast_values, r.inexact_values),
            (1, count as u64, inexact),
            "{name}"
        );
        let cast = Model::open(&out, OpenOptions::default()).unwrap();
        let e = cast.entry("big").unwrap();
        assert_eq!(e.meta.dtype, Dtype::BF16);
        let got = cast.bytes_checked(e).unwrap();
        let first_bad = got.iter().zip(&expected).position(|(a, b)| a != b);
        assert_eq!(first_bad, None, "{name}: first wrong byte");
        assert_eq!(got.len(), expected.len());
    }
}

/// User metadata under the `modeltool.` prefix (other than modeltool's own
/// checksum and architecture keys) may come from another tool. A
/// conversion to JSON must then either fail, leaving nothing behind, or
/// produce a file that opens with the same metadata: never a JSON file
/// that modeltool itself refuses to open.
fn reserved_user_key(suffix: &str) -> TestResult {
    let dir = tempfile::tempdir().or_fail("tempdir")?;
    let input = dir.path().join("in.safetensors");
    let key = format!("modeltool.{suffix}");
    let mut meta = ModelMetadata::default();
    meta.user.insert(key.clone(), "x".into());
    let t = TensorMeta {
        name: "a".into(),
        dtype: Dtype::F32,
        shape: vec![],
    };
    let bytes = 1f32.to_le_bytes();
    let file = std::fs::File::create(&input).or_fail("create")?;
    write_safetensors(file, &[(t, &bytes[..])], &meta.to_safetensors()).or_fail("write")?;
    let model = open(&input, true)?;
    prop_assert_eq!(&model.metadata().user, &meta.user);
    let out = dir.path().join("out.json");
    let options = ConvertOptions {
        kind: OutputKind::Json,
        dtype: None,
        force: false,
        allow_overflow: true,
        ..Default::default()
    };
    match convert(&model, &out, &options, &|_| {}) {
        Err(_) => prop_assert!(!out.exists(), "a failed conversion left {}", out.display()),
        Ok(_) => {
            let back = Model::open(&out, OpenOptions::default()).map_err(|e| {
                TestCaseError::fail(format!(
                    "metadata key `{key}`: convert wrote a JSON file modeltool refuses: {e}"
                ))
            })?;
            prop_assert_eq!(&back.metadata().user, &meta.user);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reserved_metadata_keys_never_make_an_unreadable_json_file(
        suffix in text().prop_filter("a key of modeltool's own", |s| {
            !s.starts_with("sha256.") && s != "architecture"
        })
    ) {
        reserved_user_key(&suffix)?;
    }
}
