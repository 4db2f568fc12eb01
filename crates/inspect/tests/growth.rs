//! Growth: real files of growing size, measured.

use std::fs;

use modeltool_format::{Header, JsonModel, ModelMetadata, sha256_hex};
use modeltool_inspect::growth::{
    GrowthReport, GrowthSpec, default_points, measure, render_table, write_svg,
};
use modeltool_inspect::{
    FileFacts, InspectError, InspectOptions, ModelFacts, TensorFacts, inspect,
};

#[test]
fn default_points_span_more_than_five_orders_of_magnitude() {
    let counts: Vec<u64> = default_points()
        .iter()
        .map(|p| p.parameter_count().expect("no overflow"))
        .collect();
    assert_eq!(counts[0], 2);
    assert!(counts.windows(2).all(|w| w[0] < w[1]), "{counts:?}");
    assert!(*counts.last().expect("points") >= 5_000_000, "{counts:?}");
}

#[test]
fn growth_files_are_real_and_their_sizes_add_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Up to ~10^6 parameters here: the unoptimized test build of the
    // format crate is slow at printing 10^7 numbers as JSON text.
    let specs: Vec<GrowthSpec> = default_points()
        .into_iter()
        .filter(|p| p.parameter_count().is_some_and(|n| n <= 2_000_000))
        .collect();
    let points = measure(dir.path(), &specs).expect("measure");
    assert_eq!(points.len(), specs.len());
    let (first, last) = (&points[0], &points[points.len() - 1]);
    assert_eq!(first.parameter_count, 2);
    assert_eq!(first.layers, 1);
    assert!(
        last.parameter_count / first.parameter_count >= 100_000,
        "spans at least five orders of magnitude"
    );

    for p in &points {
        let st = dir.path().join(format!("{}.safetensors", p.name));
        let bytes = fs::read(&st).expect("read safetensors");
        assert_eq!(bytes.len() as u64, p.safetensors_bytes);
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        assert_eq!(p.safetensors_header_bytes, 8 + header_len);
        assert_eq!(p.safetensors_bytes, 8 + header_len + 4 * p.parameter_count);
        assert_eq!(
            p.bytes_per_parameter_safetensors,
            p.safetensors_bytes as f64 / p.parameter_count as f64
        );

        // The file is what it says: checksums and architecture included.
        let header = Header::from_file_bytes(&bytes).expect("valid safetensors");
        let meta = ModelMetadata::from_safetensors(header.metadata.clone()).expect("metadata");
        assert_eq!(meta.checksums.len(), 2 * p.layers);
        let data_start = 8 + header_len as usize;
        for t in &header.tensors {
            let (s, e) = t.data_offsets;
            let data = &bytes[data_start + s as usize..data_start + e as usize];
            assert_eq!(meta.checksums[&t.meta.name].to_string(), sha256_hex(data));
        }

        // Inspecting the file's facts gives back its layer structure.
        let facts = ModelFacts {
            path: st.display().to_string(),
            kind: "safetensors".into(),
            files: vec![FileFacts {
                path: st.display().to_string(),
                file_bytes: p.safetensors_bytes,
                header_bytes: p.safetensors_header_bytes,
            }],
            tensors: header
                .tensors
                .iter()
                .map(|t| TensorFacts {
                    meta: t.meta.clone(),
                    file: 0,
                    offset: data_start as u64 + t.data_offsets.0,
                    bytes: t.byte_len(),
                })
                .collect(),
            metadata: meta.user.clone(),
            architecture: meta.architecture.clone(),
        };
        let report = inspect(&facts, &InspectOptions::default());
        assert_eq!(report.parameter_count, p.parameter_count);
        assert!(report.size_formula.as_ref().is_some_and(|f| f.matches));
        let table = report.layers.as_ref().expect("architecture stored");
        assert_eq!(table.parameter_count, p.parameter_count);
        let widths: Vec<u64> = std::iter::once(table.rows[0].input.expect("width"))
            .chain(table.rows.iter().map(|r| r.output.expect("width")))
            .collect();
        let expected: Vec<u64> = p.widths.iter().map(|&w| w as u64).collect();
        assert_eq!(widths, expected);

        let json = dir.path().join(format!("{}.json", p.name));
        assert_eq!(fs::metadata(&json).expect("json").len(), p.json_bytes);
        if p.parameter_count >= 1000 {
            // Numbers as text take more than their 4 bytes.
            assert!(p.json_bytes > p.safetensors_bytes, "{p:?}");
        }
        if p.parameter_count < 100_000 {
            let model = JsonModel::from_slice(&fs::read(&json).expect("read json")).expect("valid");
            assert_eq!(model.architecture, meta.architecture);
            for t in &model.tensors {
                assert_eq!(t.sha256.map(|s| s.to_string()), Some(sha256_hex(&t.data)));
            }
        }
    }

    // The same run writes the same files.
    let again = measure(dir.path(), &specs[..3]).expect("measure again");
    assert_eq!(again[..], points[..3]);

    let mut table = Vec::new();
    render_table(&points, &mut table).expect("write to a Vec");
    let table = String::from_utf8(table).expect("UTF-8");
    assert!(
        table.contains("line") && table.contains("mlp-1e6"),
        "{table}"
    );
    assert!(table.contains("File size, log scale"), "{table}");

    let svg = dir.path().join("growth.svg");
    write_svg(&points, &svg).expect("draw");
    let svg = fs::read_to_string(&svg).expect("read svg");
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("safetensors") && svg.contains("JSON"));

    let value = serde_json::to_value(GrowthReport { points }).expect("serializable");
    assert_eq!(value["points"][0]["parameter_count"], 2);
    for key in [
        "name",
        "layers",
        "widths",
        "parameter_count",
        "safetensors_bytes",
        "json_bytes",
        "bytes_per_parameter_safetensors",
        "bytes_per_parameter_json",
    ] {
        assert!(value["points"][0].get(key).is_some(), "no `{key}`");
    }
}

#[test]
fn growth_errors_name_the_point_or_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = [
        GrowthSpec::new("empty", &[3]),
        GrowthSpec::new("zero", &[3, 0, 1]),
        GrowthSpec::new("../escape", &[1, 1]),
        GrowthSpec::new("huge", &[1 << 20, 1 << 20]),
    ];
    for spec in bad {
        let err = measure(dir.path(), std::slice::from_ref(&spec)).expect_err("refused");
        assert!(matches!(err, InspectError::Spec { .. }), "{err}");
        assert!(err.to_string().contains(&spec.name), "{err}");
    }
    let missing = dir.path().join("no").join("such");
    let err = measure(&missing, &[GrowthSpec::new("line", &[1, 1])]).expect_err("no dir");
    assert!(matches!(err, InspectError::Io { .. }), "{err}");
    assert!(err.to_string().contains("line.safetensors"), "{err}");

    let err = write_svg(&[], &dir.path().join("empty.svg")).expect_err("no points");
    assert!(err.to_string().contains("empty.svg"), "{err}");
}
