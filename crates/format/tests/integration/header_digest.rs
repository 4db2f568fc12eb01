//! `modeltool.header_sha256`: written by the modeltool writers, checked
//! against the header, and every kind of header change the tensor
//! checksums cannot see (a dtype, a shape, an offset, a metadata value, a
//! checksum key) detected. The worked example of docs/FORMAT.md is what
//! the code writes and computes.

use std::collections::BTreeMap;

use modeltool_format::{
    Checksum, Dtype, FormatError, Header, HeaderDamageKind, HeaderSha256, Layout, ModelMetadata,
    TensorMeta, canonical_header, header_sha256, keys, sha256_hex, write_safetensors,
    write_safetensors_with_header_sha256,
};

fn meta(name: &str, dtype: Dtype, shape: &[usize]) -> TensorMeta {
    TensorMeta {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}

/// A small model as modeltool writes it: two F32 `[2, 3]` tensors, an F16
/// and a BF16 of the same size, checksums, an architecture and user metadata.
fn model_file() -> Vec<u8> {
    let tensors: Vec<(TensorMeta, Vec<u8>)> = vec![
        (meta("w", Dtype::F32, &[2, 3]), (0..24).collect()),
        (meta("v", Dtype::F32, &[2, 3]), (100..124).collect()),
        (meta("h", Dtype::F16, &[3]), vec![1, 2, 3, 4, 5, 6]),
        (meta("g", Dtype::BF16, &[3]), vec![7, 8, 9, 10, 11, 12]),
    ];
    let mut md = ModelMetadata::default();
    md.user.insert("note".into(), "v1".into());
    md.architecture = Some(serde_json::json!({"layers": []}));
    for (m, b) in &tensors {
        md.checksums.insert(m.name.clone(), Checksum::of(b));
    }
    let refs: Vec<(TensorMeta, &[u8])> = tensors.iter().map(|(m, b)| (m.clone(), &b[..])).collect();
    let mut out = Vec::new();
    write_safetensors_with_header_sha256(&mut out, &refs, &md.to_safetensors()).unwrap();
    out
}

/// The JSON header of a file (without its padding) and the rest.
fn split(file: &[u8]) -> (String, Vec<u8>) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let json = std::str::from_utf8(&file[8..8 + n]).unwrap();
    (json.trim_end().to_owned(), file[8 + n..].to_vec())
}

/// A file with `json` as its header, padded with spaces as modeltool pads.
fn join(json: &str, data: &[u8]) -> Vec<u8> {
    let mut text = json.to_owned();
    while (8 + text.len()) % 8 != 0 {
        text.push(' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The header check of a whole file.
fn check(file: &[u8]) -> Result<HeaderSha256, FormatError> {
    let header = Header::from_file_bytes(file).expect("a valid header");
    let n = header.header_len as usize;
    header.check_header_sha256(&file[8..8 + n])
}

/// The file with `from` replaced by `to` in its header (once).
fn edited(file: &[u8], from: &str, to: &str) -> Vec<u8> {
    let (json, data) = split(file);
    assert_eq!(json.matches(from).count(), 1, "`{from}` once in {json}");
    join(&json.replacen(from, to, 1), &data)
}

fn damaged(result: Result<HeaderSha256, FormatError>) -> HeaderDamageKind {
    match result {
        Ok(HeaderSha256::Damaged(d)) => {
            assert_ne!(d.stored, d.actual, "{d:?}");
            d.kind
        }
        other => panic!("not reported as damaged: {other:?}"),
    }
}

#[test]
fn the_writers_add_a_header_checksum_that_matches() {
    let file = model_file();
    let header = Header::from_file_bytes(&file).unwrap();
    let stored = &header.metadata[keys::HEADER_SHA256];
    assert_eq!(*stored, header_sha256(&header.metadata, &header.tensors));
    assert_eq!(check(&file).unwrap(), HeaderSha256::Matches);
    // The canonical description is what is hashed.
    assert_eq!(
        *stored,
        sha256_hex(&canonical_header(&header.metadata, &header.tensors))
    );
    // Not user metadata, nor anything else a model carries.
    let md = ModelMetadata::from_safetensors(header.metadata.clone()).unwrap();
    assert_eq!(md.user.keys().collect::<Vec<_>>(), ["note"]);
    assert!(!md.to_safetensors().contains_key(keys::HEADER_SHA256));
    // Writing the model again gives the same file, digest and all.
    let metas: Vec<TensorMeta> = header.tensors.iter().map(|t| t.meta.clone()).collect();
    let layout = Layout::with_header_sha256(&metas, &md.to_safetensors()).unwrap();
    assert_eq!(layout.header, file[..header.data_start() as usize]);
    // The plain writer writes exactly the metadata given, no digest.
    let mut plain = Vec::new();
    write_safetensors(&mut plain, &[], &BTreeMap::new()).unwrap();
    assert_eq!(check(&plain).unwrap(), HeaderSha256::Absent);
}

#[test]
fn the_header_length_does_not_depend_on_the_checksums() {
    // save.rs writes a placeholder header first and rewrites it at the end.
    let metas = [meta("a", Dtype::F32, &[2]), meta("b", Dtype::U8, &[5])];
    let sums = |s: &str| -> BTreeMap<String, String> {
        ["a", "b"]
            .iter()
            .map(|n| (format!("{}{n}", keys::SHA256_PREFIX), s.repeat(64)))
            .collect()
    };
    let placeholder = Layout::with_header_sha256(&metas, &sums("0")).unwrap();
    let real = Layout::with_header_sha256(&metas, &sums("f")).unwrap();
    assert_eq!(placeholder.header.len(), real.header.len());
    assert_ne!(placeholder.header, real.header);
    // A stale digest in the metadata given is replaced, not kept.
    let mut stale = sums("f");
    stale.insert(keys::HEADER_SHA256.into(), "1".repeat(64));
    let again = Layout::with_header_sha256(&metas, &stale).unwrap();
    assert_eq!(again.header, real.header);
}

#[test]
fn every_kind_of_header_change_is_detected() {
    let file = model_file();
    let cases = [
        ("a metadata value", r#""note":"v1""#, r#""note":"v2""#),
        ("a metadata key", r#""note":"v1""#, r#""nose":"v1""#),
        (
            "a dtype of the same width",
            r#""w":{"dtype":"F32""#,
            r#""w":{"dtype":"I32""#,
        ),
        (
            "F16 into BF16",
            r#""h":{"dtype":"F16""#,
            r#""h":{"dtype":"BF16""#,
        ),
        (
            "a shape's dimensions swapped",
            r#""w":{"dtype":"F32","shape":[2,3]"#,
            r#""w":{"dtype":"F32","shape":[3,2]"#,
        ),
        (
            "a checksum key renamed",
            "modeltool.sha256.w",
            "modeltoolXsha256.w",
        ),
        (
            "the architecture",
            r#"{\"layers\":[]}"#,
            r#"{\"layers\":[ ]}"#,
        ),
        ("a tensor renamed", r#""g":{"#, r#""f":{"#),
    ];
    for (what, from, to) in cases {
        let changed = edited(&file, from, to);
        assert_eq!(
            damaged(check(&changed)),
            HeaderDamageKind::Changed,
            "{what}"
        );
    }
    // Two tensors of one size trading places: the offsets change, nothing else.
    let header = Header::from_file_bytes(&file).unwrap();
    let at = |name: &str| {
        let t = header.tensors.iter().find(|t| t.meta.name == name).unwrap();
        format!("[{},{}]", t.data_offsets.0, t.data_offsets.1)
    };
    let (v, w) = (at("v"), at("w"));
    let (json, data) = split(&file);
    let swapped = json
        .replace(&format!(r#""data_offsets":{v}"#), "VV")
        .replace(
            &format!(r#""data_offsets":{w}"#),
            &format!(r#""data_offsets":{v}"#),
        )
        .replace("VV", &format!(r#""data_offsets":{w}"#));
    assert_ne!(swapped, json);
    assert_eq!(
        damaged(check(&join(&swapped, &data))),
        HeaderDamageKind::Changed,
        "offsets swapped"
    );
    // Any single digit of the digest itself.
    let digest = header.metadata[keys::HEADER_SHA256].clone();
    let mut other = digest.clone().into_bytes();
    other[10] = if other[10] == b'0' { b'1' } else { b'0' };
    let changed = edited(&file, &digest, std::str::from_utf8(&other).unwrap());
    assert_eq!(damaged(check(&changed)), HeaderDamageKind::Changed);
}

#[test]
fn a_damaged_key_or_padding_does_not_switch_the_check_off() {
    let file = model_file();
    for to in [
        "modeltoolXheader_sha256",
        "modeltool.header_sha257",
        "Modeltool.header_sha256",
        // One byte `l` -> `\`, read as the escape `\t`: a key of other length.
        r"mode\tool.header_sha256",
        r"modeltool.head\r_sha256",
    ] {
        let changed = edited(&file, "modeltool.header_sha256", to);
        match damaged(check(&changed)) {
            HeaderDamageKind::Key(key) => {
                assert_eq!(serde_json::to_string(&key).unwrap(), format!("\"{to}\""));
            }
            other => panic!("{to}: {other:?}"),
        }
    }
    // Two bytes away is not the key: another key, and no digest.
    let changed = edited(&file, "modeltool.header_sha256", "modeltool.header_sha2XX");
    assert_eq!(check(&changed).unwrap(), HeaderSha256::Absent);

    // A tab or newline where modeltool pads with spaces, or before the `{`.
    let (json, data) = split(&file);
    let padded = join(&format!("{json}        "), &data);
    assert_eq!(check(&padded).unwrap(), HeaderSha256::Matches);
    let n = u64::from_le_bytes(padded[..8].try_into().unwrap()) as usize;
    for ws in [b'\t', b'\n', b'\r'] {
        for at in [8 + json.len(), 8 + n - 1] {
            let mut changed = padded.clone();
            changed[at] = ws;
            assert_eq!(damaged_or_same(check(&changed)), HeaderDamageKind::Padding);
        }
        let leading = join(&format!("{}{json}", ws as char), &data);
        assert_eq!(damaged_or_same(check(&leading)), HeaderDamageKind::Padding);
    }
}

/// A padding change leaves the digest as it was: damaged all the same.
fn damaged_or_same(result: Result<HeaderSha256, FormatError>) -> HeaderDamageKind {
    match result {
        Ok(HeaderSha256::Damaged(d)) => d.kind,
        other => panic!("not reported as damaged: {other:?}"),
    }
}

#[test]
fn a_malformed_digest_is_an_error() {
    let file = model_file();
    let header = Header::from_file_bytes(&file).unwrap();
    let digest = header.metadata[keys::HEADER_SHA256].clone();
    for bad in [
        digest.to_uppercase(),
        digest[1..].to_owned(),
        "x".repeat(64),
    ] {
        let changed = edited(&file, &digest, &bad);
        let e = check(&changed).expect_err("malformed");
        assert!(matches!(e, FormatError::BadMetadata { .. }), "{e:?}");
        assert!(e.to_string().contains(keys::HEADER_SHA256), "{e}");
        let h = Header::from_file_bytes(&changed).unwrap();
        let e = ModelMetadata::from_safetensors(h.metadata).expect_err("malformed");
        assert!(e.to_string().contains(&bad), "{e}");
    }
}

#[test]
fn the_digest_is_of_what_the_header_says_not_how_it_is_written() {
    let file = model_file();
    let (json, data) = split(&file);
    // Reordered, spaced and escaped differently: the same header.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut entries: Vec<(String, serde_json::Value)> = value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    entries.reverse();
    let pretty = serde_json::to_string_pretty(&serde_json::Map::from_iter(entries))
        .unwrap()
        .replace(r#""note": "v1""#, r#""note": "\u0076\u0031""#);
    assert!(pretty.contains("\\u0076"));
    assert_eq!(check(&join(&pretty, &data)).unwrap(), HeaderSha256::Matches);

    // Escaping as documented: control characters, quotes, backslashes and
    // non-ASCII in names and values.
    let mut md = BTreeMap::new();
    md.insert(
        "k\u{1f}\t".to_owned(),
        "\"\\/\u{7f}·\u{8}\u{c}\n\r".to_owned(),
    );
    let canonical = canonical_header(&md, &[]);
    assert_eq!(
        std::str::from_utf8(&canonical).unwrap(),
        "{\"metadata\":{\"k\\u001f\\t\":\"\\\"\\\\/\u{7f}·\\b\\f\\n\\r\"},\"tensors\":{}}"
    );
    assert_eq!(
        std::str::from_utf8(&canonical_header(&BTreeMap::new(), &[])).unwrap(),
        r#"{"metadata":{},"tensors":{}}"#
    );
}

/// The code blocks of the section of `markdown` that starts with `heading`.
fn code_blocks<'a>(markdown: &'a str, heading: &str) -> Vec<&'a str> {
    let start = markdown.find(heading).expect("the section");
    let section = &markdown[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```")
        .skip(1)
        .step_by(2)
        .map(|block| {
            block
                .split_once('\n')
                .map_or("", |(_, body)| body)
                .trim_end()
        })
        .collect()
}

#[test]
fn the_example_in_format_md_is_what_the_code_computes() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/FORMAT.md"))
        .unwrap();
    let blocks = code_blocks(&doc, "## The header checksum");
    let (header_text, canonical_text) = (blocks[blocks.len() - 2], blocks[blocks.len() - 1]);

    // What modeltool writes for the example's tensors and metadata.
    let (a, b) = (1f32.to_le_bytes(), (-110f32).to_le_bytes());
    let mut md = ModelMetadata::default();
    md.user
        .insert("note".into(), "y = a·x + b, a \"line\"".into());
    md.checksums.insert("a".into(), Checksum::of(&a));
    md.checksums.insert("b".into(), Checksum::of(&b));
    let tensors = [
        (meta("a", Dtype::F32, &[1, 1]), &a[..]),
        (meta("b", Dtype::F32, &[1]), &b[..]),
    ];
    let mut file = Vec::new();
    write_safetensors_with_header_sha256(&mut file, &tensors, &md.to_safetensors()).unwrap();
    let n = u64::from_le_bytes(file[..8].try_into().unwrap());
    assert_eq!(n, 432, "the 8-byte length FORMAT.md gives");
    assert_eq!(
        split(&file),
        (header_text.to_owned(), hex_bytes("0000803f0000dcc2"))
    );
    assert_eq!(n as usize - header_text.len(), 3, "three spaces of padding");

    let header = Header::from_file_bytes(&file).unwrap();
    let canonical = canonical_header(&header.metadata, &header.tensors);
    assert_eq!(std::str::from_utf8(&canonical).unwrap(), canonical_text);
    let digest = &header.metadata[keys::HEADER_SHA256];
    assert_eq!(*digest, sha256_hex(canonical_text.as_bytes()));
    assert!(
        doc.contains(&format!("`{digest}`")),
        "FORMAT.md states the digest {digest}"
    );

    // The two changes the example names are caught.
    for (from, to) in [
        (r#""b":{"dtype":"F32""#, r#""b":{"dtype":"I32""#),
        (r#""shape":[1,1]"#, r#""shape":[1]"#),
    ] {
        assert_eq!(
            damaged(check(&edited(&file, from, to))),
            HeaderDamageKind::Changed
        );
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
