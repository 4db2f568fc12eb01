//! The architecture reader (`modeltool_format::arch`), and building and
//! running what it accepts.
//!
//! `Architecture::from_json` and `from_value` must agree; the lenient
//! reading (`arch::read`, the layer table's) must find a problem exactly
//! when `from_value` refuses the value for a layer, and never panic; an accepted
//! architecture must survive `to_json`, and `Network::build` must accept it
//! whenever the tensors fit: every weight `[2, 2]`, every bias `[2]` (unless
//! a name is used both as a weight and as a bias). The forward pass must
//! then give `batch * 2` values, rows summing to 1 after a softmax.
//! A second build gives each tensor a shape picked from its name (1 to 3 per
//! dimension), which explores the shape errors; it must not panic, and a
//! network it builds must run.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::fmt;

use libfuzzer_sys::fuzz_target;
use modeltool_format::arch;
use modeltool_net::{Architecture, Layer, Network};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// Most layer applications a forward pass is run with here, so that one
/// input stays fast (the crate itself allows a million).
const MAX_RUN: usize = 20_000;

#[derive(Default)]
struct Uses {
    weights: Vec<String>,
    biases: Vec<(String, String)>,
}

fn walk(layers: &[Layer], uses: &mut Uses) {
    for layer in layers {
        match layer {
            Layer::Linear { weight, bias } => {
                uses.weights.push(weight.clone());
                if let Some(b) = bias {
                    uses.biases.push((b.clone(), weight.clone()));
                }
            }
            Layer::Repeat { layers, .. } => walk(layers, uses),
            _ => {}
        }
    }
}

/// Layer applications per forward pass, saturating.
fn applications(layers: &[Layer]) -> usize {
    layers.iter().fold(0usize, |n, layer| {
        n.saturating_add(match layer {
            Layer::Repeat { times, layers } => applications(layers).saturating_mul(*times),
            Layer::Softmax => 0,
            _ => 1,
        })
    })
}

fn dim(name: &str, salt: u32) -> usize {
    let h = name.bytes().fold(2_166_136_261u32 ^ salt, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    (h % 3) as usize + 1
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed * 3) % 11) as f32 / 4.0 - 1.25)
        .collect()
}

/// Whether some JSON object in `text` has the same key twice.
fn has_repeated_key(text: &str) -> bool {
    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut keys = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(de::Error::custom("repeated key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
    matches!(serde_json::from_str::<Unique>(text), Err(e) if e.to_string().starts_with("repeated key"))
}

fn ends_in_softmax(arch: &Architecture) -> bool {
    matches!(arch.layers.last(), Some(Layer::Softmax))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Architecture::from_json(text);
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        let reading = arch::read(&value);
        let first = reading.first_problem();
        let from_value = Architecture::from_value(&value);
        match (&first, &from_value) {
            // The strict reader refuses the reading's first problem.
            (Some(problem), Err(e)) => assert_eq!(problem, e),
            (Some(problem), Ok(_)) => panic!("a problem {problem} but accepted"),
            // No problem in the reading: only a whole-architecture rule may refuse it.
            (None, _) => {}
        }
        match (&parsed, &from_value) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            // A repeated key: serde_json's Value keeps the last one, so
            // `from_value` cannot see it, while `from_json` refuses it. Model
            // files go through a Value (see fuzz/README.md, Regressions).
            (Err(_), Ok(_)) if has_repeated_key(text) => {}
            _ => panic!("from_json and from_value disagree: {parsed:?} vs {from_value:?}"),
        }
    }
    let Ok(arch) = parsed else { return };
    let again = Architecture::from_json(&arch.to_json()).expect("to_json reads back");
    assert_eq!(again, arch);
    assert!(!arch.tensor_names().is_empty());

    let mut uses = Uses::default();
    walk(&arch.layers, &mut uses);
    let run = applications(&arch.layers) <= MAX_RUN;
    let batch = data.len() % 3 + 1;

    // Square tensors: must build whenever no name is both a weight and a bias.
    let mixed = uses
        .biases
        .iter()
        .any(|(b, _)| uses.weights.iter().any(|w| w == b));
    let mut square: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for (i, w) in uses.weights.iter().enumerate() {
        square.insert(w.clone(), (vec![2, 2], values(4, i)));
    }
    for (i, (b, _)) in uses.biases.iter().enumerate() {
        square
            .entry(b.clone())
            .or_insert_with(|| (vec![2], values(2, i)));
    }
    let built = Network::build(&arch, |name| square.get(name).cloned());
    match built {
        Ok(net) => {
            assert_eq!((net.input_width(), net.output_width()), (2, 2));
            if run {
                let out = net.forward(&values(2 * batch, 5), batch).expect("forward");
                assert_eq!(out.len(), 2 * batch);
                if ends_in_softmax(&arch) && out.iter().all(|v| v.is_finite()) {
                    for row in out.chunks(2) {
                        let sum: f32 = row.iter().sum();
                        assert!((sum - 1.0).abs() < 1e-4, "softmax row sums to {sum}");
                    }
                }
            }
        }
        Err(e) => assert!(mixed, "square tensors were refused: {e}"),
    }

    // Shapes from the names: errors are fine, panics are not.
    let mut shaped: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
    for w in &uses.weights {
        let shape = vec![dim(w, 1), dim(w, 2)];
        let n = shape.iter().product();
        shaped.insert(w.clone(), (shape, values(n, 1)));
    }
    for (b, w) in &uses.biases {
        let out = if dim(b, 3) == 3 { dim(b, 4) } else { dim(w, 1) };
        shaped
            .entry(b.clone())
            .or_insert_with(|| (vec![out], values(out, 2)));
    }
    if let Ok(net) = Network::build(&arch, |name| shaped.get(name).cloned()) {
        if run {
            let input = values(net.input_width() * batch, 3);
            let out = net.forward(&input, batch).expect("forward");
            assert_eq!(out.len(), net.output_width() * batch);
        }
        // A wrong input length is an error, not a panic.
        assert!(net.forward(&[0.0; 7], 2).is_err() || net.input_width() * 2 == 7);
    }
});
