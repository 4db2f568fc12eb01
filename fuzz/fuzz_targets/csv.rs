//! CSV training data (`modeltool train DATA.csv`), and what `train` and `run`
//! do with it next.
//!
//! Input: optionally a first line `#name,name,...` naming target columns
//! (`--target`), then the CSV. An accepted data set must be consistent
//! (rows, widths, finite values, the columns split into inputs and targets);
//! then the least-squares fit and a tiny Adam run (one hidden layer of 3,
//! 2 epochs) must each give a network or an error, never a panic, and a
//! network they give must run on the data (`run` with the same rows).
//! Reading the same text as `run --input` does, picking the columns by
//! name, must give the same values.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use modeltool_net::Activation;
use modeltool_net::train::{Dataset, TrainConfig, network_mse, train};

/// Above this many values the (single-threaded, f64) training is skipped
/// to keep each input fast; parsing is always done.
const MAX_TRAIN_VALUES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let (targets, csv): (Vec<String>, &[u8]) = match data.strip_prefix(b"#") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let line = String::from_utf8_lossy(&rest[..end]);
            let names = line.split(',').map(str::to_owned).collect();
            (names, rest.get(end + 1..).unwrap_or_default())
        }
        None => (Vec::new(), data),
    };
    let Ok(set) = Dataset::from_csv_reader(csv, "fuzz.csv", &targets) else {
        return;
    };

    let (rows, d, k) = (set.rows(), set.input_width(), set.target_width());
    assert!(rows >= 1 && d >= 1 && k >= 1);
    assert_eq!(set.inputs().len(), rows * d);
    assert_eq!(set.targets().len(), rows * k);
    assert!(
        set.inputs()
            .iter()
            .chain(set.targets())
            .all(|v| v.is_finite())
    );
    let mut names = HashSet::new();
    for n in set.input_names().iter().chain(set.target_names()) {
        assert!(names.insert(n.as_str()), "column `{n}` twice");
    }
    if !targets.is_empty() {
        assert_eq!(set.target_names(), &targets[..]);
    }

    let by_name = Dataset::for_network(csv, "fuzz.csv", d, set.input_names(), set.target_names())
        .expect("the columns a data set was read with read again by name");
    assert_eq!(by_name.inputs(), set.inputs());
    assert_eq!(by_name.targets(), set.targets());

    if rows * (d + k) > MAX_TRAIN_VALUES {
        return;
    }
    let tiny = TrainConfig {
        hidden: vec![3],
        activation: Activation::ALL[data.len() % Activation::ALL.len()],
        epochs: 2,
        lr: 0.01,
        batch: 4,
        seed: data.len() as u64,
    };
    for config in [TrainConfig::linear(), tiny] {
        let Ok(trained) = train(&set, &config, &mut |_, loss| {
            assert!(loss.is_finite(), "a non-finite loss was reported");
        }) else {
            continue;
        };
        assert!(trained.final_loss.is_finite() && trained.final_loss >= 0.0);
        assert_eq!(
            trained.loss_history.len(),
            if config.hidden.is_empty() {
                1
            } else {
                config.epochs
            }
        );
        let net = trained.network().expect("a trained network builds");
        assert_eq!((net.input_width(), net.output_width()), (d, k));
        let input: Vec<f32> = set.inputs().iter().map(|&v| v as f32).collect();
        let out = net
            .forward(&input, rows)
            .expect("the network runs on its data");
        assert_eq!(out.len(), rows * k);
        let mse = network_mse(&net, &set).expect("mse");
        assert_eq!(mse.to_bits(), trained.final_loss.to_bits());
    }
});
