//! Behaviour of modeltool-net through its public API.

use modeltool_net::train::{Dataset, Provenance, TrainConfig, TrainWarning, train};
use modeltool_net::{
    Activation, Architecture, Layer, NetError, Network, loss_svg, plot_loss_svg,
    sequential_architecture,
};

type Tensors = Vec<(&'static str, Vec<usize>, Vec<f32>)>;

fn lookup(tensors: &Tensors) -> impl FnMut(&str) -> Option<(Vec<usize>, Vec<f32>)> + '_ {
    |name| {
        tensors
            .iter()
            .find(|t| t.0 == name)
            .map(|t| (t.1.clone(), t.2.clone()))
    }
}

fn linear(weight: &str, bias: Option<&str>) -> Layer {
    Layer::Linear {
        weight: weight.into(),
        bias: bias.map(Into::into),
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn parabola() -> Dataset {
    let xs: Vec<f64> = (0..50).map(|i| -3.0 + 6.0 * f64::from(i) / 49.0).collect();
    let ys = xs.iter().map(|x| x * x).collect();
    Dataset::new("parabola", names(&["x"]), names(&["y"]), xs, ys).expect("valid data")
}

// ---------------------------------------------------------------- least squares

#[test]
fn two_samples_give_the_exact_line() {
    let csv = "height,weight\n170,60\n160,50\n";
    let data = Dataset::from_csv_reader(csv.as_bytes(), "data.csv", &[]).expect("parses");
    assert_eq!(data.input_names(), ["height"]);
    assert_eq!(data.target_names(), ["weight"]);
    let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    let weight = &trained.tensors[0];
    let bias = &trained.tensors[1];
    assert_eq!(
        (weight.name.as_str(), &weight.shape),
        ("0.weight", &vec![1, 1])
    );
    assert_eq!((bias.name.as_str(), &bias.shape), ("0.bias", &vec![1]));
    assert_eq!(weight.values, [1.0]);
    assert_eq!(bias.values, [-110.0]);
    assert_eq!(trained.final_loss, 0.0);
    assert_eq!(trained.loss_history, [0.0]);
    assert_eq!(
        trained.architecture,
        Architecture {
            layers: vec![linear("0.weight", Some("0.bias"))]
        }
    );
}

#[test]
fn least_squares_finds_the_best_fit() {
    // y = 1.1 x + 1.1 is the best line through (0,1) (1,3) (2,2) (3,5).
    let data = Dataset::new(
        "four",
        names(&["x"]),
        names(&["y"]),
        vec![0.0, 1.0, 2.0, 3.0],
        vec![1.0, 3.0, 2.0, 5.0],
    )
    .expect("valid");
    let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    assert!((trained.tensors[0].values[0] - 1.1).abs() < 1e-6);
    assert!((trained.tensors[1].values[0] - 1.1).abs() < 1e-6);

    // Two inputs on a 3x3 grid, y = 1 + 2a - 3b + noise, with noise orthogonal to 1, a and b,
    // so the best fit is exactly (2, -3, 1) and the loss is the noise's mean square, 0.02.
    let (mut inputs, mut targets) = (Vec::new(), Vec::new());
    for a in [-1.0, 0.0, 1.0] {
        for b in [-1.0, 0.0, 1.0] {
            inputs.extend([a, b]);
            targets.push(1.0 + 2.0 * a - 3.0 * b + 0.1 * (3.0 * a * a - 2.0));
        }
    }
    let data =
        Dataset::new("grid", names(&["a", "b"]), names(&["y"]), inputs, targets).expect("valid");
    let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    let w = &trained.tensors[0].values;
    assert_eq!(trained.tensors[0].shape, [1, 2]);
    assert!(
        (w[0] - 2.0).abs() < 1e-6 && (w[1] + 3.0).abs() < 1e-6,
        "{w:?}"
    );
    assert!((trained.tensors[1].values[0] - 1.0).abs() < 1e-6);
    assert!(
        (trained.final_loss - 0.02).abs() < 1e-6,
        "{}",
        trained.final_loss
    );
}

/// A one-row CSV "trained 2 parameters on 1 rows" and picked b = y; a constant column got
/// weight 0 out of the many lines that fit equally well. Neither is determined by the rows.
#[test]
fn an_underdetermined_line_is_refused() {
    let constant_column = Dataset::new(
        "d",
        names(&["x", "c"]),
        names(&["y"]),
        vec![1.0, 5.0, 2.0, 5.0, 3.0, 5.0],
        vec![2.0, 4.0, 6.0],
    )
    .expect("valid");
    let one = Dataset::from_csv_reader("x,y\n3,7\n".as_bytes(), "one.csv", &[]).expect("valid");
    let duplicated = Dataset::new(
        "dup",
        names(&["x"]),
        names(&["y"]),
        vec![2.0, 2.0, 2.0],
        vec![1.0, 2.0, 3.0],
    )
    .expect("valid");
    for (data, rows, independent, parameters) in [
        (&constant_column, 3, 2, 3),
        (&one, 1, 1, 2),
        (&duplicated, 3, 1, 2),
    ] {
        let err = train(data, &TrainConfig::linear(), &mut |_, _| {}).expect_err("refused");
        assert!(
            matches!(err, NetError::Underdetermined { rows: r, independent: i, parameters: p, .. }
                if (r, i, p) == (rows, independent, parameters)),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.starts_with(data.source_name()), "{text}");
        assert!(!text.contains("learning rate"), "{text}");
    }
    // Enough independent rows: the constant column dropped, the same data fits.
    let fixed = Dataset::new(
        "d",
        names(&["x"]),
        names(&["y"]),
        vec![1.0, 2.0, 3.0],
        vec![2.0, 4.0, 6.0],
    )
    .expect("valid");
    let trained = train(&fixed, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    assert_eq!(trained.tensors[0].values, [2.0]);
}

/// Least squares on values near 1e300 said "training diverged ... try a smaller learning
/// rate", a setting it does not have.
#[test]
fn values_beyond_f32_are_refused_without_speaking_of_a_learning_rate() {
    let data = Dataset::from_csv_reader(
        "x,y\n1e300,1\n2e300,2\n3e300,3\n".as_bytes(),
        "huge.csv",
        &[],
    )
    .expect("finite f64");
    let err = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect_err("beyond f32");
    assert!(matches!(err, NetError::ValuesTooLarge { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("huge.csv") && text.contains("e300"), "{text}");
    assert!(
        !text.contains("learning rate") && !text.contains("diverged"),
        "{text}"
    );
}

/// `train` ignored `--epochs` without `--hidden` in silence.
#[test]
fn settings_least_squares_does_not_use_are_warnings() {
    let data = parabola();
    let config = TrainConfig {
        epochs: 50,
        lr: 0.5,
        ..TrainConfig::linear()
    };
    let trained = train(&data, &config, &mut |_, _| {}).expect("trains");
    assert_eq!(
        trained.warnings,
        [
            TrainWarning::NotUsedByLeastSquares { setting: "epochs" },
            TrainWarning::NotUsedByLeastSquares {
                setting: "learning rate"
            },
        ]
    );
    assert!(trained.warnings[0].to_string().contains("least squares"));
    let plain = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    assert!(plain.warnings.is_empty());
    let mlp = TrainConfig {
        epochs: 5,
        batch: 500,
        ..TrainConfig::default()
    };
    let trained = train(&data, &mlp, &mut |_, _| {}).expect("trains");
    assert_eq!(
        trained.warnings,
        [TrainWarning::BatchLargerThanData {
            batch: 500,
            rows: 50
        }]
    );
}

#[test]
fn provenance_records_data_method_and_columns() {
    let data = Dataset::from_csv_reader(
        "height_cm,weight_kg\n170,60\n160,50\n".as_bytes(),
        "hw.csv",
        &[],
    )
    .expect("valid");
    let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("trains");
    let meta = Provenance::new("hw.csv", "00ff", &data, &trained).to_metadata();
    let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("training.data", "hw.csv"),
            ("training.data_sha256", "00ff"),
            ("training.epochs", "0"),
            ("training.final_loss", "0"),
            ("training.inputs", "height_cm"),
            ("training.method", "least squares"),
            ("training.rows", "2"),
            ("training.targets", "weight_kg"),
        ]
    );
    let config = TrainConfig {
        epochs: 3,
        hidden: vec![2],
        seed: 9,
        ..TrainConfig::default()
    };
    let trained = train(&parabola(), &config, &mut |_, _| {}).expect("trains");
    let meta = Provenance::new("p.csv", "", &parabola(), &trained).to_metadata();
    assert_eq!(meta["training.method"], "adam, lr 0.01, batch 32, seed 9");
    assert_eq!(meta["training.epochs"], "3");
    assert_eq!(
        Provenance::columns(&meta),
        (vec!["x".to_owned()], vec!["y".to_owned()])
    );
}

// ---------------------------------------------------------------- training a network

#[test]
fn parabola_needs_a_nonlinear_network() {
    let data = parabola();
    let linear_loss = train(&data, &TrainConfig::linear(), &mut |_, _| {})
        .expect("trains")
        .final_loss;
    // The best line through a symmetric parabola is flat: its loss is the variance of y.
    assert!(linear_loss > 6.0, "linear loss {linear_loss}");

    let stacked = TrainConfig {
        activation: Activation::Identity,
        ..TrainConfig::default()
    };
    let stacked_loss = train(&data, &stacked, &mut |_, _| {})
        .expect("trains")
        .final_loss;
    assert!(
        (stacked_loss - linear_loss).abs() < 0.02 * linear_loss,
        "stacked identity {stacked_loss} vs linear {linear_loss}"
    );

    let mut epochs = 0;
    let trained = train(&data, &TrainConfig::default(), &mut |epoch, _| {
        epochs = epoch
    })
    .expect("trains");
    assert_eq!(epochs, TrainConfig::default().epochs);
    assert_eq!(trained.loss_history.len(), epochs);
    assert!(
        trained.final_loss < 0.01,
        "tanh loss {}",
        trained.final_loss
    );
    assert!(trained.loss_history[0] > 10.0 * trained.final_loss);
    let names: Vec<&str> = trained.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"
        ]
    );
    let shapes: Vec<&[usize]> = trained.tensors.iter().map(|t| t.shape.as_slice()).collect();
    assert_eq!(
        shapes,
        [&[16, 1][..], &[16], &[16, 16], &[16], &[1, 16], &[1]]
    );
    assert_eq!(trained.architecture.layers[1], Layer::Tanh);
    // The stored architecture is the nn.Sequential one.
    assert_eq!(
        sequential_architecture(
            &trained
                .tensors
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>(),
            Activation::Tanh
        )
        .expect("sequential names"),
        trained.architecture
    );
    // The saved network predicts raw targets from raw inputs.
    let net = trained.network().expect("builds");
    let y = net.forward(&[2.0], 1).expect("runs")[0];
    assert!((y - 4.0).abs() < 0.3, "f(2) = {y}");
}

#[test]
fn same_seed_same_bits() {
    let data = parabola();
    let config = TrainConfig {
        epochs: 20,
        activation: Activation::Gelu,
        hidden: vec![8, 4],
        batch: 7,
        seed: 42,
        ..TrainConfig::default()
    };
    let a = train(&data, &config, &mut |_, _| {}).expect("trains");
    let b = train(&data, &config, &mut |_, _| {}).expect("trains");
    let bits = |t: &modeltool_net::train::Trained| -> Vec<u32> {
        t.tensors
            .iter()
            .flat_map(|t| t.values.iter().map(|v| v.to_bits()))
            .collect()
    };
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(a.loss_history, b.loss_history);
    let c = train(
        &data,
        &TrainConfig {
            seed: 43,
            ..config.clone()
        },
        &mut |_, _| {},
    )
    .expect("trains");
    assert_ne!(bits(&a), bits(&c));
}

#[test]
fn multiple_targets_and_every_activation_train() {
    let xs: Vec<f64> = (0..40).map(|i| f64::from(i) / 10.0).collect();
    let ys: Vec<f64> = xs
        .iter()
        .flat_map(|&x| [x.sin(), 100.0 + 50.0 * x])
        .collect();
    let data = Dataset::new(
        "two",
        names(&["x"]),
        names(&["s", "l"]),
        xs.clone(),
        ys.clone(),
    )
    .expect("valid");
    let inputs: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
    for activation in Activation::ALL {
        let config = TrainConfig {
            activation,
            ..TrainConfig::default()
        };
        let trained = train(&data, &config, &mut |_, _| {}).expect("trains");
        assert_eq!(trained.tensors[4].shape, [2, 16]);
        let out = trained
            .network()
            .expect("builds")
            .forward(&inputs, 40)
            .expect("runs");
        let column_mse = |c: usize| {
            out.chunks(2)
                .zip(ys.chunks(2))
                .map(|(o, y)| (f64::from(o[c]) - y[c]).powi(2))
                .sum::<f64>()
                / 40.0
        };
        // The straight line is fitted by every activation, to half a percent of its variance
        // (about 3300; sigmoid, the slowest, gets to about 5).
        assert!(column_mse(1) < 15.0, "{activation}: {}", column_mse(1));
        // Identity cannot bend to the sine (variance about 0.5); the others do.
        if activation == Activation::Identity {
            assert!(column_mse(0) > 0.1, "{activation}: {}", column_mse(0));
        } else {
            assert!(column_mse(0) < 0.01, "{activation}: {}", column_mse(0));
        }
    }
}

#[test]
fn bad_settings_are_rejected() {
    let data = parabola();
    for config in [
        TrainConfig {
            epochs: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            lr: f32::NAN,
            ..TrainConfig::default()
        },
        TrainConfig {
            batch: 0,
            ..TrainConfig::default()
        },
        TrainConfig {
            hidden: vec![4, 0],
            ..TrainConfig::default()
        },
    ] {
        let err = train(&data, &config, &mut |_, _| {}).expect_err("invalid");
        assert!(matches!(err, NetError::InvalidConfig(_)), "{err}");
    }
    let diverging = TrainConfig {
        lr: 1e30,
        hidden: vec![4],
        activation: Activation::Identity,
        ..TrainConfig::default()
    };
    let err = train(&data, &diverging, &mut |_, _| {}).expect_err("diverges");
    assert!(err.to_string().contains("diverged"), "{err}");
    assert_eq!(
        "gelu".parse::<Activation>().expect("known"),
        Activation::Gelu
    );
    assert!("swish".parse::<Activation>().is_err());
}

// ---------------------------------------------------------------- running a network

#[test]
fn forward_by_hand_for_every_activation() {
    let tensors: Tensors = vec![
        ("w", vec![2, 2], vec![1.0, -2.0, 0.5, 1.0]),
        ("b", vec![2], vec![0.1, -0.2]),
    ];
    // Rows [1, 0.5] and [-1, 2] give pre-activations [0.1, 0.8] and [-4.9, 1.3].
    let z = [0.1f64, 0.8, -4.9, 1.3];
    let gelu = [0.053_982_78, 0.630_515_7, -2.347_998e-6, 1.174_159_4];
    for act in Activation::ALL {
        let arch = Architecture {
            layers: vec![linear("w", Some("b")), act.layer()],
        };
        let net = Network::build(&arch, lookup(&tensors)).expect("builds");
        let out = net.forward(&[1.0, 0.5, -1.0, 2.0], 2).expect("runs");
        for (i, (&o, &z)) in out.iter().zip(&z).enumerate() {
            let expected = match act {
                Activation::Relu => z.max(0.0),
                Activation::Tanh => z.tanh(),
                Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
                Activation::Gelu => gelu[i],
                Activation::Identity => z,
            };
            assert!(
                (f64::from(o) - expected).abs() < 1e-6,
                "{act}: {o} vs {expected}"
            );
        }
    }
}

#[test]
fn softmax_rows_sum_to_one() {
    let tensors: Tensors = vec![("w", vec![3, 1], vec![1.0, 2.0, 3.0])];
    let arch = Architecture::from_json(
        r#"{"layers": [{"type": "linear", "weight": "w"}, {"type": "softmax"}]}"#,
    )
    .expect("valid");
    let net = Network::build(&arch, lookup(&tensors)).expect("builds");
    let out = net.forward(&[0.0, 1.0, -1.0, 100.0], 4).expect("runs");
    for row in out.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
    }
    assert_eq!(&out[..3], &[1.0 / 3.0; 3]);
    // Row x=1: softmax(1, 2, 3).
    let e: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let total: f64 = e.iter().sum();
    for (o, e) in out[3..6].iter().zip(&e) {
        assert!((f64::from(*o) - e / total).abs() < 1e-6);
    }
    // Large logits do not overflow.
    assert!(out[9..].iter().all(|v| v.is_finite()));
}

#[test]
fn repeat_applies_shared_parameters_n_times() {
    let tensors: Tensors = vec![
        (
            "in.weight",
            vec![3, 2],
            vec![0.2, -0.1, 0.4, 0.3, -0.5, 0.6],
        ),
        (
            "block.weight",
            vec![3, 3],
            vec![0.9, -0.3, 0.1, 0.2, 0.8, -0.4, -0.1, 0.5, 0.7],
        ),
        ("block.bias", vec![3], vec![0.05, -0.02, 0.1]),
    ];
    let arch = Architecture::from_json(
        r#"{"layers": [
            {"type": "linear", "weight": "in.weight"},
            {"type": "repeat", "times": 4, "layers": [
                {"type": "linear", "weight": "block.weight", "bias": "block.bias"},
                {"type": "tanh"}
            ]}
        ]}"#,
    )
    .expect("valid");
    let net = Network::build(&arch, lookup(&tensors)).expect("builds");
    assert_eq!(net.parameter_count(), 6 + 9 + 3);
    assert_eq!((net.input_width(), net.output_width()), (2, 3));

    let first = Network::build(
        &Architecture {
            layers: vec![linear("in.weight", None)],
        },
        lookup(&tensors),
    )
    .expect("builds");
    let block = Network::build(
        &Architecture {
            layers: vec![linear("block.weight", Some("block.bias")), Layer::Tanh],
        },
        lookup(&tensors),
    )
    .expect("builds");
    let input = [1.0, -2.0, 0.5, 0.25];
    let mut manual = first.forward(&input, 2).expect("runs");
    for _ in 0..4 {
        manual = block.forward(&manual, 2).expect("runs");
    }
    assert_eq!(net.forward(&input, 2).expect("runs"), manual);
}

#[test]
fn build_errors_name_the_layer() {
    let tensors: Tensors = vec![
        ("a", vec![3, 2], vec![0.0; 6]),
        ("b", vec![3], vec![0.0; 3]),
        ("c", vec![1, 4], vec![0.0; 4]),
        ("bad_bias", vec![2], vec![0.0; 2]),
        ("flat", vec![6], vec![0.0; 6]),
        ("square", vec![2, 2], vec![0.0; 4]),
    ];
    let build = |layers: Vec<Layer>| Network::build(&Architecture { layers }, lookup(&tensors));

    let err = build(vec![linear("a", Some("b")), Layer::Relu, linear("c", None)])
        .expect_err("widths differ");
    assert!(
        matches!(&err, NetError::WidthMismatch { layer, expected: 3, found: 4, .. } if layer == "2"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "layer 2: linear `c` takes 4 inputs, but the layers before it produce 3"
    );

    let err = build(vec![linear("missing", None)]).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "layer 0 needs tensor `missing`, which is not in the parameters"
    );

    let err = build(vec![linear("a", Some("bad_bias"))]).expect_err("bias");
    assert!(
        err.to_string().contains("`bad_bias` has shape [2]"),
        "{err}"
    );

    let err = build(vec![linear("flat", None)]).expect_err("1-d weight");
    assert!(err.to_string().contains("expected a 2-d weight"), "{err}");

    let err = build(vec![Layer::Repeat {
        times: 2,
        layers: vec![linear("a", None)],
    }])
    .expect_err("repeat changes width");
    assert_eq!(
        err.to_string(),
        "layer 0: a repeat block must keep its width, but it maps 2 values to 3"
    );
    let net = build(vec![
        linear("square", None),
        Layer::Repeat {
            times: 2,
            layers: vec![Layer::Tanh, linear("square", None)],
        },
    ])
    .expect("width kept");
    assert_eq!(net.parameter_count(), 4);

    let wrong_count = |_: &str| Some((vec![2, 2], vec![1.0; 3]));
    let err = Network::build(
        &Architecture {
            layers: vec![linear("w", None)],
        },
        wrong_count,
    )
    .expect_err("count");
    assert!(err.to_string().contains("but 3 values were given"), "{err}");

    let net = build(vec![linear("a", None)]).expect("builds");
    let err = net.forward(&[1.0; 5], 2).expect_err("short input");
    assert_eq!(
        err.to_string(),
        "input has 5 values, but a batch of 2 rows of width 2 needs 4"
    );
    assert_eq!(net.forward(&[], 0).expect("empty batch"), Vec::<f32>::new());
}

// ---------------------------------------------------------------- architecture JSON

/// `tensor_names` (which `modeltool run` calls on the architecture a file
/// stores) checked each name against every name before it: quadratic in the
/// number of layers, minutes for the 200,000 here, which a 10 MB header holds.
#[test]
fn tensor_names_of_many_layers_take_linear_time() {
    let n = 200_000;
    let layers: Vec<Layer> = (0..n)
        .map(|i| linear(&format!("w{i}"), (i % 2 == 0).then_some("shared")))
        .collect();
    let arch = Architecture { layers };
    let started = std::time::Instant::now();
    let names = arch.tensor_names();
    let elapsed = started.elapsed();
    assert_eq!(names.len(), n + 1);
    assert_eq!(names[..3], ["w0", "shared", "w1"]);
    assert_eq!(names[n], format!("w{}", n - 1));
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "tensor_names of {n} layers took {elapsed:?}"
    );
}

#[test]
fn architecture_json_round_trips_and_rejects_mistakes() {
    let json = r#"{"layers":[{"type":"linear","weight":"0.weight","bias":"0.bias"},{"type":"tanh"},{"type":"repeat","times":3,"layers":[{"type":"linear","weight":"r"},{"type":"gelu"}]},{"type":"softmax"}]}"#;
    let arch = Architecture::from_json(json).expect("valid");
    assert_eq!(arch.to_json(), json);
    assert_eq!(arch.tensor_names(), ["0.weight", "0.bias", "r"]);

    let cases = [
        (
            r#"{"layers":[{"type":"conv","weight":"w"}]}"#,
            "layer 0: unknown layer type `conv`",
        ),
        (
            r#"{"layers":[{"type":"linear","weight":"w","scale":2}]}"#,
            "unknown field `scale`",
        ),
        (
            r#"{"layers":[{"type":"linear","weight":"w"}],"name":"x"}"#,
            "unknown field `name`",
        ),
        (
            r#"{"layers":[{"type":"linear"}]}"#,
            "layer 0: linear has no `weight` tensor name",
        ),
        (
            r#"{"layers":[{"type":"linear","weight":"w"},{"type":"softmax"},{"type":"relu"}]}"#,
            "layer 1: softmax is only allowed as the last top-level layer",
        ),
        (
            r#"{"layers":[{"type":"linear","weight":"w"},{"type":"repeat","times":0,"layers":[{"type":"relu"}]}]}"#,
            "layer 1: repeat `times` is 0",
        ),
        (
            r#"{"layers":[{"type":"linear","weight":"w"},{"type":"repeat","times":2,"layers":[]}]}"#,
            "layer 1: repeat block has no layers",
        ),
        (r#"{"layers":[{"type":"relu"}]}"#, "it has no linear layer"),
    ];
    for (json, message) in cases {
        let err = Architecture::from_json(json).expect_err(json);
        assert!(err.to_string().contains(message), "{json}: {err}");
    }

    let mut inner = vec![linear("w", None)];
    for _ in 0..17 {
        inner = vec![Layer::Repeat {
            times: 1,
            layers: inner,
        }];
    }
    let err = Architecture { layers: inner }
        .validate()
        .expect_err("too deep");
    assert!(err.to_string().contains("nested deeper than 16"), "{err}");
}

#[test]
fn from_sequential_orders_numerically() {
    let arch = sequential_architecture(
        &names(&[
            "10.weight",
            "2.bias",
            "0.weight",
            "10.bias",
            "2.weight",
            "0.bias",
        ]),
        Activation::Relu,
    )
    .expect("sequential");
    assert_eq!(
        arch.layers,
        [
            linear("0.weight", Some("0.bias")),
            Layer::Relu,
            linear("2.weight", Some("2.bias")),
            Layer::Relu,
            linear("10.weight", Some("10.bias")),
        ]
    );
    let no_bias =
        sequential_architecture(&names(&["0.weight"]), Activation::Tanh).expect("sequential");
    assert_eq!(no_bias.layers, [linear("0.weight", None)]);

    let err = sequential_architecture(&names(&["0.weight", "encoder.w"]), Activation::Relu)
        .expect_err("not sequential");
    assert_eq!(
        err.to_string(),
        "tensor names are not nn.Sequential-style: `encoder.w` is not `<index>.weight` or `<index>.bias`"
    );
    let err = sequential_architecture(&names(&["0.weight", "2.bias"]), Activation::Relu)
        .expect_err("bias alone");
    assert!(
        err.to_string().contains("`2.bias` has no matching weight"),
        "{err}"
    );
    assert!(sequential_architecture(&[], Activation::Relu).is_err());
}

// ---------------------------------------------------------------- CSV

fn csv_error(text: &str, targets: &[&str]) -> String {
    Dataset::from_csv_reader(text.as_bytes(), "data.csv", &names(targets))
        .expect_err("invalid CSV")
        .to_string()
}

#[test]
fn csv_errors_name_line_and_column() {
    assert_eq!(
        csv_error("height,weight\n1,2\n3,4\n5,6,7\n", &[]),
        "data.csv: line 4 has 3 fields, the header has 2"
    );
    assert_eq!(
        csv_error("weight,height\n1,2\n3,abc\n", &[]),
        "data.csv: line 3, column `height`: `abc` is not a number"
    );
    assert_eq!(
        csv_error("a,b\n1,\n", &[]),
        "data.csv: line 2, column `b`: `` is not a number"
    );
    assert!(csv_error("a,b\n1,nan\n", &[]).contains("`nan` is not a number"));
    assert_eq!(
        csv_error("", &[]),
        "data.csv: the file is empty; expected a header row and at least one data row"
    );
    assert!(
        csv_error("a,b\n", &[])
            .starts_with("data.csv: the header is there but there are no data rows")
    );
    assert_eq!(
        csv_error("a,b\n1,2\n", &["c"]),
        "data.csv: there is no column `c` to use as a target (columns: a, b)"
    );
    assert!(csv_error("1,2\n3,4\n", &[]).contains("add a header row"));
    assert!(csv_error("a,a\n1,2\n", &[]).contains("column `a` appears twice"));
    assert!(csv_error("a\n1\n", &[]).contains("at least one input column"));
    assert!(csv_error("a,b\n1,2\n", &["a", "b"]).contains("every column is a target"));
}

#[test]
fn csv_targets_choose_columns() {
    let text = "x, y ,z\n1,2,3\n4,5,6\n";
    let data = Dataset::from_csv_reader(text.as_bytes(), "t.csv", &names(&["y"])).expect("parses");
    assert_eq!(data.input_names(), ["x", "z"]);
    assert_eq!(data.target_names(), ["y"]);
    assert_eq!(data.inputs(), [1.0, 3.0, 4.0, 6.0]);
    assert_eq!(data.targets(), [2.0, 5.0]);
    assert_eq!(data.rows(), 2);

    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.csv");
    std::fs::write(&path, text).expect("write");
    let from_file = Dataset::from_path(&path, &[]).expect("parses");
    assert_eq!(from_file.target_names(), ["z"]);
    let err = Dataset::from_path(&dir.path().join("nope.csv"), &[]).expect_err("missing");
    assert!(err.to_string().contains("nope.csv"), "{err}");
}

/// The header's duplicate check compared every column name with every
/// earlier one: a 57 KB header of 10,000 names took 14 s in the csv fuzz
/// target's build (fuzz/regressions/csv/slow-header-10000-columns.csv), 100,000
/// names over 10 minutes. Target columns went through the same quadratic lookups.
#[test]
fn a_header_of_many_columns_is_read_in_linear_time() {
    let n = 200_000;
    let header: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let row = vec!["1"; n].join(",");
    let text = format!("{}\n{row}\n", header.join(","));
    let targets: Vec<String> = header[n / 2..].to_vec();
    let started = std::time::Instant::now();
    let data = Dataset::from_csv_reader(text.as_bytes(), "wide.csv", &targets).expect("parses");
    assert_eq!((data.input_width(), data.target_width()), (n / 2, n / 2));
    assert_eq!(data.target_names()[0], format!("c{}", n / 2));
    // A duplicate at the very end is still found.
    let text = format!("{},c7\n{row},1\n", header.join(","));
    let err = Dataset::from_csv_reader(text.as_bytes(), "wide.csv", &[]).expect_err("duplicate");
    assert!(
        err.to_string().contains("column `c7` appears twice"),
        "{err}"
    );
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_secs(20),
        "reading 200,000 columns took {elapsed:?}"
    );
}

// ---------------------------------------------------------------- chart

#[test]
fn loss_chart_is_svg() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("loss.svg");
    let losses: Vec<f64> = (1..=100).map(|i| 10.0 / f64::from(i * i)).collect();
    plot_loss_svg(&path, &losses).expect("draws");
    let svg = std::fs::read_to_string(&path).expect("written");
    assert!(
        svg.starts_with("<svg") && svg.contains("epoch"),
        "{}",
        &svg[..100]
    );
    assert!(loss_svg(&[1.0]).expect("one point").contains("<svg"));
    assert!(loss_svg(&[]).is_err());
}

#[test]
fn nested_repeats_are_capped_by_the_layers_they_would_run() {
    let mut block = serde_json::json!([{"type": "linear", "weight": "w"}]);
    for _ in 0..4 {
        block = serde_json::json!([{"type": "repeat", "times": 4096, "layers": block}]);
    }
    let err = modeltool_net::Architecture::from_value(&serde_json::json!({ "layers": block }))
        .expect_err("4096^4 layer runs per pass is refused");
    assert!(
        err.to_string().contains("more than 1000000 layers"),
        "{err}"
    );
    // One level of the same repeat is fine.
    let ok = serde_json::json!({"layers": [{"type": "repeat", "times": 4096, "layers": [{"type": "linear", "weight": "w"}]}]});
    assert!(modeltool_net::Architecture::from_value(&ok).is_ok());
}

#[test]
fn training_refuses_widths_and_sizes_it_cannot_hold() {
    use modeltool_net::train::{Dataset, TrainConfig, train};
    let data = Dataset::from_csv_reader("x,y\n1,2\n2,4\n".as_bytes(), "d.csv", &[]).unwrap();
    for hidden in [
        vec![usize::MAX],
        vec![100_000, 100_000],
        vec![60_000, 60_000],
    ] {
        let config = TrainConfig {
            hidden: hidden.clone(),
            ..TrainConfig::default()
        };
        let err = train(&data, &config, &mut |_, _| {}).expect_err("refused before allocating");
        assert!(
            err.to_string().contains("at most") || err.to_string().contains("more than"),
            "{hidden:?}: {err}"
        );
    }
}

// ---------------------------------------------------------------- networks from model files

mod from_model {
    use std::path::{Path, PathBuf};

    use modeltool_format::{Dtype, ModelMetadata, TensorMeta};
    use modeltool_loader::save::write_model;
    use modeltool_loader::{Model, OpenOptions};
    use modeltool_net::{Activation, Architecture, NetError, Network};

    fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> (TensorMeta, Vec<u8>) {
        let meta = TensorMeta {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
        };
        (meta, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// nn.Sequential(Linear(1, 2), ReLU(), Linear(2, 1)): |x| + 0.5 with relu.
    fn sequential() -> Vec<(TensorMeta, Vec<u8>)> {
        vec![
            f32_tensor("0.weight", &[2, 1], &[1.0, -1.0]),
            f32_tensor("0.bias", &[2], &[0.0, 0.0]),
            f32_tensor("2.weight", &[1, 2], &[1.0, 1.0]),
            f32_tensor("2.bias", &[1], &[0.5]),
        ]
    }

    fn write(
        dir: &Path,
        name: &str,
        tensors: &[(TensorMeta, Vec<u8>)],
        arch: Option<&Architecture>,
    ) -> PathBuf {
        let path = dir.join(name);
        let meta = ModelMetadata {
            architecture: arch.map(Architecture::to_value),
            ..Default::default()
        };
        write_model(&path, tensors, &meta, false).expect("writes");
        path
    }

    /// Opens with memory maps, as the binary does: borrowed weights come
    /// from a map (plain reads, the library's default, copy).
    fn open(path: &Path) -> Model {
        #[expect(unsafe_code, reason = "the test opts in to maps as the binary does")]
        // SAFETY: the file lives in this test's own temporary folder and
        // nothing truncates or rewrites it while the model is open.
        unsafe {
            modeltool_loader::allow_mmap()
        };
        Model::open(
            path,
            OpenOptions {
                mmap: true,
                ..OpenOptions::default()
            },
        )
        .expect("opens")
    }

    #[test]
    fn a_mapped_f32_model_runs_on_borrowed_weights() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(dir.path(), "seq.safetensors", &sequential(), None);
        // Plain reads (the default) hand out owned bytes: only a map is borrowed from.
        let model = open(&path);
        let net = Network::from_model(&model, Some(Activation::Relu)).expect("builds");
        assert_eq!(net.forward(&[3.0, -2.0], 2).expect("runs"), [3.5, 2.5]);
        let borrowed: Vec<&str> = net.borrowed_tensors().collect();
        assert_eq!(borrowed, ["0.weight", "0.bias", "2.weight", "2.bias"]);

        // F16 is converted (and so copied); the result is the same.
        let half: Vec<(TensorMeta, Vec<u8>)> = sequential()
            .into_iter()
            .map(|(mut meta, bytes)| {
                meta.dtype = Dtype::F16;
                let values = bytes
                    .chunks_exact(4)
                    .flat_map(|c| {
                        let v = f32::from_le_bytes(c.try_into().expect("4 bytes"));
                        half::f16::from_f32(v).to_le_bytes()
                    })
                    .collect();
                (meta, values)
            })
            .collect();
        let path = write(dir.path(), "half.safetensors", &half, None);
        let model = open(&path);
        let net = Network::from_model(&model, Some(Activation::Relu)).expect("builds");
        assert_eq!(net.forward(&[3.0], 1).expect("runs"), [3.5]);
        assert_eq!(net.borrowed_tensors().count(), 0);
    }

    #[test]
    fn a_stored_architecture_runs_and_refuses_an_activation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let arch = modeltool_net::sequential_architecture(
            &["0.weight", "0.bias", "2.weight", "2.bias"].map(String::from),
            Activation::Relu,
        )
        .expect("sequential");
        let path = write(dir.path(), "arch.json", &sequential(), Some(&arch));
        let model = open(&path);
        let net = Network::from_model(&model, None).expect("builds");
        assert_eq!(net.forward(&[-4.0], 1).expect("runs"), [4.5]);
        let err = Network::from_model(&model, Some(Activation::Tanh)).expect_err("refused");
        assert!(
            matches!(&err, NetError::InModel { source, .. } if matches!(**source, NetError::ActivationNotApplicable)),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with(&path.display().to_string()),
            "{err}"
        );
    }

    /// An encoder got "its 53 nn.Sequential-style linear layers need --activation" and, with
    /// one, "tensor names are not nn.Sequential-style": the first thing to say is that it is
    /// not a network that can be run, whatever the activation.
    #[test]
    fn a_model_that_is_not_a_linear_stack_says_so_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut tensors = sequential();
        tensors.push(f32_tensor(
            "encoder.layer.0.attention.self.query.weight",
            &[2, 2],
            &[0.0; 4],
        ));
        let path = write(dir.path(), "encoder.safetensors", &tensors, None);
        let model = open(&path);
        for activation in [None, Some(Activation::Relu)] {
            let err = Network::from_model(&model, activation).expect_err("not runnable");
            let NetError::InModel { source, .. } = &err else {
                panic!("{err:?}");
            };
            assert!(matches!(**source, NetError::NotRunnable { .. }), "{err:?}");
            let text = err.to_string();
            assert!(text.contains("is not a network that can be run"), "{text}");
            assert!(
                text.contains("encoder.layer.0.attention.self.query.weight"),
                "{text}"
            );
            assert!(text.contains("0.weight, 0.bias, 2.weight"), "{text}");
            assert!(!text.contains("activation"), "{text}");
        }
        // A stack of several linear layers needs an activation; one layer does not.
        let path = write(dir.path(), "seq.safetensors", &sequential(), None);
        let err = Network::from_model(&open(&path), None).expect_err("needs activation");
        assert!(
            err.to_string()
                .contains("2 nn.Sequential-style linear layers"),
            "{err}"
        );
        let one = write(dir.path(), "one.safetensors", &sequential()[..2], None);
        let one = open(&one);
        let net = Network::from_model(&one, None).expect("one layer");
        assert_eq!(net.forward(&[2.0], 1).expect("runs"), [2.0, -2.0]);
    }

    #[test]
    fn a_damaged_parameter_is_refused_as_the_loaders_check_failure() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = write(dir.path(), "seq.json", &sequential(), None);
        let text = std::fs::read_to_string(&path).expect("reads");
        let damaged = text.replacen("[1.0,1.0]", "[1.0,2.0]", 1);
        assert_ne!(damaged, text, "the fixture holds 2.weight as written");
        std::fs::write(&path, damaged).expect("writes");
        let model = open(&path);
        let err = Network::from_model(&model, Some(Activation::Relu)).expect_err("damaged");
        let load = err.load_error().expect("the loader's error");
        assert!(load.is_check_failure(), "{load}");
        assert!(err.to_string().contains("2.weight"), "{err}");
    }

    #[test]
    fn tensor_names_in_errors_are_escaped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tensors = vec![f32_tensor("0.weight\u{1b}[2J", &[1, 1], &[1.0])];
        let path = write(dir.path(), "evil.safetensors", &tensors, None);
        let err = Network::from_model(&open(&path), None).expect_err("not sequential");
        let text = err.to_string();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("0.weight\\u{1b}[2J"), "{text}");
    }
}

// ---------------------------------------------------------------- running a model on a batch

mod running {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use modeltool_format::{Dtype, ModelMetadata, TensorMeta};
    use modeltool_loader::save::write_model;
    use modeltool_loader::{LoadError, Model, OpenOptions};
    use modeltool_net::train::{Dataset, Provenance, TrainConfig, TrainReport, train};
    use modeltool_net::{Batch, NetError, PredictionFile, Runner};

    fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> (TensorMeta, Vec<u8>) {
        let meta = TensorMeta {
            name: name.into(),
            dtype: Dtype::F32,
            shape: shape.to_vec(),
        };
        (meta, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn write(path: &Path, tensors: &[(TensorMeta, Vec<u8>)], meta: &ModelMetadata) {
        write_model(path, tensors, meta, false).expect("writes");
    }

    /// `weight_kg = height_cm - 110`, trained on height_weight-like data and saved as `name`.
    fn height_model(dir: &Path, name: &str) -> PathBuf {
        let csv = "height_cm,weight_kg\n170,60\n160,50\n";
        let data = Dataset::from_csv_reader(csv.as_bytes(), "hw.csv", &[]).expect("data");
        let trained = train(&data, &TrainConfig::linear(), &mut |_, _| {}).expect("fits");
        let record = Provenance::new("hw.csv", "00", &data, &trained);
        let (tensors, meta) = trained.to_model_parts(&record);
        let path = dir.join(name);
        write(&path, &tensors, &meta);
        path
    }

    fn open(path: &Path) -> Model {
        Model::open(path, OpenOptions::default()).expect("opens")
    }

    #[test]
    fn samples_from_text_say_which_sample_and_field_is_wrong() {
        let b = Batch::from_samples(&["1, -2", "-inf,0"], 2).expect_err("-inf");
        assert!(
            matches!(&b, NetError::SampleNotNumber { sample: 2, field, infinite: true, .. } if field == "-inf"),
            "{b:?}"
        );
        assert_eq!(
            b.to_string(),
            "sample 2 (`-inf,0`): `-inf` is not a finite number"
        );
        let b = Batch::from_samples(&["tall\u{1b}"], 1).expect_err("a word");
        assert!(matches!(
            b,
            NetError::SampleNotNumber {
                infinite: false,
                ..
            }
        ));
        assert!(!b.to_string().contains('\u{1b}'), "{b}");
        let b = Batch::from_samples(&["1,2,3"], 2).expect_err("too wide");
        assert!(matches!(
            b,
            NetError::SampleWidth {
                sample: 1,
                found: 3,
                width: 2,
                ..
            }
        ));
        let none: [&str; 0] = [];
        assert!(matches!(
            Batch::from_samples(&none, 1),
            Err(NetError::NoSamples { .. })
        ));
        let ok = Batch::from_samples(&["-1,0.5,2"], 3).expect("parses");
        assert_eq!(
            (ok.rows(), ok.width(), ok.values()),
            (1, 3, &[-1.0, 0.5, 2.0][..])
        );
        assert!(ok.dataset().is_none());
    }

    #[test]
    fn a_csv_value_beyond_f32_is_refused_naming_its_row() {
        let e = Batch::from_csv("x\n1\n1e39\n".as_bytes(), "big.csv", 1, &[], &[])
            .expect_err("beyond f32");
        assert!(matches!(e, NetError::InputTooLarge { row: 2, .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "big.csv: value 1000000000000000000000000000000000000000 of row 2 does not fit in a 32-bit float"
        );
    }

    #[test]
    fn a_tensor_batch_must_be_batch_by_width_and_finite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let none = ModelMetadata::default();
        let cases: [(&str, (TensorMeta, Vec<u8>)); 3] = [
            ("shape.safetensors", f32_tensor("input", &[2], &[1.0, 2.0])),
            (
                "nan.safetensors",
                f32_tensor("input", &[2, 1], &[1.0, f32::NAN]),
            ),
            ("empty.safetensors", f32_tensor("input", &[0, 1], &[])),
        ];
        for (name, tensor) in cases {
            write(&d.join(name), &[tensor], &none);
        }
        let read =
            |name: &str| Batch::from_path(&d.join(name), 1, &[], &[], OpenOptions::default());
        assert!(matches!(
            read("shape.safetensors"),
            Err(NetError::InputShape { width: 1, .. })
        ));
        assert!(matches!(
            read("nan.safetensors"),
            Err(NetError::InputNotFinite { index: 1, .. })
        ));
        assert!(matches!(
            read("empty.safetensors"),
            Err(NetError::NoSamples { .. })
        ));
        write(
            &d.join("other.safetensors"),
            &[f32_tensor("x", &[1, 1], &[1.0])],
            &none,
        );
        let e = read("other.safetensors").expect_err("no tensor `input`");
        assert!(e.load_error().is_some(), "{e:?}");
        write(
            &d.join("ok.safetensors"),
            &[f32_tensor("input", &[2, 1], &[3.0, 4.0])],
            &none,
        );
        let ok = read("ok.safetensors").expect("reads");
        assert_eq!((ok.rows(), ok.values()), (2, &[3.0, 4.0][..]));
    }

    #[test]
    fn a_model_runs_on_a_csv_by_its_recorded_column_names() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = height_model(dir.path(), "height.json");
        let model = open(&path);
        let runner = Runner::new(&model, None).expect("runs");
        assert_eq!(runner.input_names(), ["height_cm"]);
        assert_eq!(runner.output_names(), ["weight_kg"]);
        let csv = "weight_kg,name,height_cm\n61,a,170\n48,b,160\n";
        let run = runner
            .run(&runner.read_csv(csv.as_bytes(), "more.csv").expect("reads"))
            .expect("runs");
        assert_eq!(run.inputs, ["height_cm"]);
        assert_eq!(run.predictions, [[60.0], [50.0]]);
        assert_eq!(run.targets, Some(vec![vec![61.0], vec![48.0]]));
        let json = serde_json::to_value(&run).expect("serialises");
        let keys: Vec<&str> = json
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "model",
                "inputs",
                "outputs",
                "rows",
                "predictions",
                "targets",
                "error"
            ]
        );
        assert_eq!(json["error"], serde_json::json!({"mse": 2.5, "mae": 1.5}));
        let mut text = Vec::new();
        run.write_human(&mut text).expect("writes");
        let text = String::from_utf8(text).expect("utf-8");
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], ["predicted", "weight_kg", "weight_kg"]);
        assert_eq!(lines[1], ["60", "61"]);
        let mut summary = Vec::new();
        run.write_summary(&mut summary).expect("writes");
        assert_eq!(
            summary,
            b"2 rows: mean squared error 2.5, mean absolute error 1.5\n"
        );

        // Without targets: no error, and neither is serialised; text is one line per row.
        let run = runner
            .run(&runner.parse_samples(&["175", "160"]).expect("parses"))
            .expect("runs");
        assert_eq!((run.targets.as_ref(), run.error), (None, None));
        let json = serde_json::to_value(&run).expect("serialises");
        assert!(
            json.get("targets").is_none() && json.get("error").is_none(),
            "{json}"
        );
        let mut text = Vec::new();
        run.write_human(&mut text).expect("writes");
        assert_eq!(text, b"65\n50\n");
        let mut summary = Vec::new();
        run.write_summary(&mut summary).expect("writes");
        assert!(summary.is_empty());
    }

    #[test]
    fn names_recorded_for_another_shape_are_not_used() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("two.safetensors");
        // 1 input, 2 outputs; the record names two inputs and one target.
        let user = BTreeMap::from([
            ("training.inputs".to_owned(), "a,b".to_owned()),
            ("training.targets".to_owned(), "y".to_owned()),
        ]);
        let meta = ModelMetadata {
            user,
            ..Default::default()
        };
        write(
            &path,
            &[f32_tensor("0.weight", &[2, 1], &[1.0, -1.0])],
            &meta,
        );
        let model = open(&path);
        let runner = Runner::new(&model, None).expect("runs");
        assert!(runner.input_names().is_empty());
        assert_eq!(runner.output_names(), ["output0", "output1"]);
        let run = runner
            .run(&runner.parse_samples(&["2"]).expect("parses"))
            .expect("runs");
        let mut csv = Vec::new();
        run.write_csv(&mut csv).expect("writes");
        assert_eq!(csv, b"output0,output1\n2,-2\n");
    }

    #[test]
    fn predictions_never_replace_an_input_and_read_back_as_a_tensor() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let path = height_model(d, "height.safetensors");
        let model = open(&path);
        std::fs::write(d.join("in.csv"), "height_cm\n175\n").expect("writes");
        let input = d.join("in.csv");
        // The model and the input, under other spellings, with or without force.
        for (target, force) in [
            (d.join(".").join("height.safetensors"), true),
            (d.join("in.csv"), true),
            (d.join("in.csv"), false),
        ] {
            let e = PredictionFile::declare(&target, force, &model, Some(&input))
                .expect_err("an input");
            assert!(
                matches!(e.load_error(), Some(LoadError::Refused { .. })),
                "{e:?}"
            );
        }
        let out = d.join("out.safetensors");
        std::fs::write(&out, b"old").expect("writes");
        assert!(PredictionFile::declare(&out, false, &model, Some(&input)).is_err());
        assert_eq!(std::fs::read(&out).expect("reads"), b"old");

        let file = PredictionFile::declare(&out, true, &model, Some(&input)).expect("declared");
        assert_eq!(file.path(), out);
        let runner = Runner::new(&model, None).expect("runs");
        let run = runner
            .run(
                &runner
                    .read_batch(&input, OpenOptions::default())
                    .expect("reads"),
            )
            .expect("runs");
        file.write(&run).expect("written");
        // The tensor feeds back in as a batch of the same width.
        let back = open(&out);
        assert_eq!(back.entry("output").expect("output").meta.shape, [1, 1]);
        assert_eq!(back.tensor_f32("output").expect("f32").as_ref(), [65.0]);
        let again = Batch::from_model_file(&out, 1, OpenOptions::default());
        assert!(
            matches!(again, Err(NetError::Load(_))),
            "the tensor is `output`, not `input`"
        );
    }

    #[test]
    fn a_trained_model_saved_from_its_parts_runs_the_same_and_records_its_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let data_path = d.join("square.csv");
        std::fs::write(&data_path, "x,y\n-2,4\n-1,1\n0,0\n1,1\n2,4\n").expect("writes");
        let data = Dataset::from_path(&data_path, &[]).expect("reads");
        let config = TrainConfig {
            hidden: vec![4],
            epochs: 20,
            ..TrainConfig::default()
        };
        let trained = train(&data, &config, &mut |_, _| {}).expect("trains");
        let record = Provenance::for_file(&data_path, &data, &trained).expect("reads");
        assert_eq!(record.data, "square.csv");
        assert_eq!(
            record.data_sha256,
            modeltool_format::sha256_hex(&std::fs::read(&data_path).expect("reads"))
        );
        let (tensors, meta) = trained.to_model_parts(&record);
        let path = d.join("curve.safetensors");
        write(&path, &tensors, &meta);
        let model = open(&path);
        let xs = [-2.0f32, 0.5, 3.0];
        let saved = Runner::new(&model, None).expect("runs");
        let batch = Batch::from_samples(&["-2", "0.5", "3"], 1).expect("parses");
        let run = saved.run(&batch).expect("runs");
        let direct = trained
            .network()
            .expect("builds")
            .forward(&xs, 3)
            .expect("runs");
        assert_eq!(run.predictions.concat(), direct);
        assert_eq!(saved.output_names(), ["y"]);

        let report = TrainReport::new(&path, &data, &trained);
        assert_eq!((report.rows, report.epochs, report.parameters), (5, 20, 13));
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["inputs"], serde_json::json!(["x"]));
        let mut text = Vec::new();
        report.write_human(&mut text).expect("writes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.starts_with("trained 13 parameters on 5 rows by 20 epochs\ncolumns: x -> y\n"),
            "{text}"
        );
        assert!(Provenance::for_file(&d.join("gone.csv"), &data, &trained).is_err());
    }
}
