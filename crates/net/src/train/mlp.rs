//! The MLP method: with hidden layers, a multilayer perceptron trained by Adam with
//! backpropagation on the mean squared error, in f64 on standardised data, one thread, seeded.
//! Its errors speak of epochs and the learning rate, which only it has.

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

use super::{Dense, Scaling, TrainConfig};
use crate::{Activation, Dataset, NetError};

/// SplitMix64 (Steele, Lea and Flood 2014): a fixed, tiny generator, so the same seed gives
/// the same numbers whatever crate versions are in use.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` by multiply-shift (bias below 2^-32 for any realistic `n`).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// `dst = lhs @ rhs` (or `+=` with `Accum::Add`), single-threaded so results are reproducible.
fn gemm(dst: MatMut<'_, f64>, accum: Accum, lhs: MatRef<'_, f64>, rhs: MatRef<'_, f64>) {
    matmul(dst, accum, lhs, rhs, 1.0, Par::Seq);
}

fn activate(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Identity => z,
        Activation::Relu => z.max(0.0),
        Activation::Tanh => z.tanh(),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Gelu => 0.5 * z * (1.0 + libm::erf(z * std::f64::consts::FRAC_1_SQRT_2)),
    }
}

/// Derivative of `act` at `z`, where `a = act(z)`.
fn derivative(act: Activation, z: f64, a: f64) -> f64 {
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if z > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Tanh => 1.0 - a * a,
        Activation::Sigmoid => a * (1.0 - a),
        Activation::Gelu => {
            let cdf = 0.5 * (1.0 + libm::erf(z * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
            cdf + z * pdf
        }
    }
}

/// A multilayer perceptron in `f64`, working on standardised data.
#[derive(Debug, Clone)]
struct Mlp {
    layers: Vec<Dense>,
    activation: Activation,
}

/// Pre-activations `z[l]` and activations `a[l]` (a[0] = input) of one forward pass.
#[derive(Debug, Default)]
struct Tape {
    z: Vec<Vec<f64>>,
    a: Vec<Vec<f64>>,
}

impl Mlp {
    fn init(widths: &[usize], activation: Activation, rng: &mut SplitMix64) -> Mlp {
        let count = widths.len() - 1;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(l, pair)| {
                let (inputs, outputs) = (pair[0], pair[1]);
                let he = matches!(activation, Activation::Relu | Activation::Gelu);
                let limit = if he && l + 1 < count {
                    (6.0 / inputs as f64).sqrt()
                } else {
                    (6.0 / (inputs + outputs) as f64).sqrt()
                };
                let weight = (0..inputs * outputs)
                    .map(|_| (2.0 * rng.next_f64() - 1.0) * limit)
                    .collect();
                Dense {
                    inputs,
                    outputs,
                    weight,
                    bias: vec![0.0; outputs],
                }
            })
            .collect();
        Mlp { layers, activation }
    }

    /// Forward pass over `rows` rows of `x`, recording what backpropagation needs.
    fn forward(&self, x: &[f64], rows: usize, tape: &mut Tape) {
        let count = self.layers.len();
        tape.z.resize_with(count, Vec::new);
        tape.a.resize_with(count + 1, Vec::new);
        tape.a[0].clear();
        tape.a[0].extend_from_slice(x);
        for (l, layer) in self.layers.iter().enumerate() {
            let z = &mut tape.z[l];
            z.clear();
            for _ in 0..rows {
                z.extend_from_slice(&layer.bias);
            }
            gemm(
                MatMut::from_row_major_slice_mut(z, rows, layer.outputs),
                Accum::Add,
                MatRef::from_row_major_slice(&tape.a[l], rows, layer.inputs),
                MatRef::from_row_major_slice(&layer.weight, layer.outputs, layer.inputs)
                    .transpose(),
            );
            let act = if l + 1 < count {
                self.activation
            } else {
                Activation::Identity
            };
            let (before, after) = tape.a.split_at_mut(l + 1);
            let _ = before;
            let a = &mut after[0];
            a.clear();
            a.extend(tape.z[l].iter().map(|&v| activate(act, v)));
        }
    }

    /// Predictions for all rows, in chunks to bound memory.
    fn predict(&self, x: &[f64], rows: usize) -> Vec<f64> {
        const CHUNK_ROWS: usize = 4096;
        let width = self.layers[0].inputs;
        let mut out = Vec::with_capacity(rows * self.layers[self.layers.len() - 1].outputs);
        let mut tape = Tape::default();
        for chunk in x.chunks(CHUNK_ROWS * width) {
            self.forward(chunk, chunk.len() / width, &mut tape);
            out.extend_from_slice(tape.a.last().expect("the tape has an output"));
        }
        out
    }

    /// Gradients of the mean squared error against `y` for the pass recorded in `tape`.
    fn backward(&self, tape: &Tape, y: &[f64], rows: usize, grads: &mut [Dense]) {
        let count = self.layers.len();
        let output = &tape.a[count];
        let scale = 2.0 / output.len() as f64;
        let mut delta: Vec<f64> = output.iter().zip(y).map(|(p, t)| scale * (p - t)).collect();
        for l in (0..count).rev() {
            let layer = &self.layers[l];
            let grad = &mut grads[l];
            gemm(
                MatMut::from_row_major_slice_mut(&mut grad.weight, layer.outputs, layer.inputs),
                Accum::Replace,
                MatRef::from_row_major_slice(&delta, rows, layer.outputs).transpose(),
                MatRef::from_row_major_slice(&tape.a[l], rows, layer.inputs),
            );
            grad.bias.iter_mut().for_each(|b| *b = 0.0);
            for row in delta.chunks_exact(layer.outputs) {
                grad.bias.iter_mut().zip(row).for_each(|(g, d)| *g += d);
            }
            if l == 0 {
                break;
            }
            let mut previous = vec![0f64; rows * layer.inputs];
            gemm(
                MatMut::from_row_major_slice_mut(&mut previous, rows, layer.inputs),
                Accum::Replace,
                MatRef::from_row_major_slice(&delta, rows, layer.outputs),
                MatRef::from_row_major_slice(&layer.weight, layer.outputs, layer.inputs),
            );
            for ((p, &z), &a) in previous.iter_mut().zip(&tape.z[l - 1]).zip(&tape.a[l]) {
                *p *= derivative(self.activation, z, a);
            }
            delta = previous;
        }
    }

    /// Folds input standardisation into the first layer and target standardisation into the
    /// last, so the layers map raw inputs to raw targets.
    fn unscaled(mut self, xs: &Scaling, ys: &Scaling) -> Vec<Dense> {
        let first = &mut self.layers[0];
        for o in 0..first.outputs {
            let row = &mut first.weight[o * first.inputs..(o + 1) * first.inputs];
            for (j, w) in row.iter_mut().enumerate() {
                *w /= xs.std[j];
                first.bias[o] -= *w * xs.mean[j];
            }
        }
        let last = self.layers.last_mut().expect("an MLP has layers");
        for o in 0..last.outputs {
            let row = &mut last.weight[o * last.inputs..(o + 1) * last.inputs];
            row.iter_mut().for_each(|w| *w *= ys.std[o]);
            last.bias[o] = last.bias[o] * ys.std[o] + ys.mean[o];
        }
        self.layers
    }
}

/// Adam state for one layer.
#[derive(Debug, Clone)]
struct Moments {
    m: Dense,
    v: Dense,
}

fn adam_step(params: &mut [f64], grads: &[f64], m: &mut [f64], v: &mut [f64], lr: f64, t: i32) {
    const BETA1: f64 = 0.9;
    const BETA2: f64 = 0.999;
    const EPS: f64 = 1e-8;
    let c1 = 1.0 - BETA1.powi(t);
    let c2 = 1.0 - BETA2.powi(t);
    for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(m).zip(v) {
        *m = BETA1 * *m + (1.0 - BETA1) * g;
        *v = BETA2 * *v + (1.0 - BETA2) * g * g;
        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + EPS);
    }
}

/// Trains an MLP and returns its layers in raw units plus the per-epoch loss.
pub(super) fn fit_mlp(
    data: &Dataset,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Vec<Dense>, Vec<f64>), NetError> {
    let (model, xs, ys, history) = fit_standardised(data, config, progress)?;
    Ok((model.unscaled(&xs, &ys), history))
}

/// The training loop proper, in standardised units.
fn fit_standardised(
    data: &Dataset,
    config: &TrainConfig,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Mlp, Scaling, Scaling, Vec<f64>), NetError> {
    let (n, d, k) = (data.rows(), data.input_width(), data.target_width());
    let xs = Scaling::of(data.inputs(), d);
    let ys = Scaling::of(data.targets(), k);
    let x = xs.apply(data.inputs());
    let y = ys.apply(data.targets());

    let mut widths = vec![d];
    widths.extend_from_slice(&config.hidden);
    widths.push(k);
    let mut rng = SplitMix64(config.seed);
    let mut model = Mlp::init(&widths, config.activation, &mut rng);
    let zeroed = |model: &Mlp| -> Vec<Dense> {
        model
            .layers
            .iter()
            .map(|l| Dense {
                weight: vec![0.0; l.weight.len()],
                bias: vec![0.0; l.bias.len()],
                ..*l
            })
            .collect()
    };
    let mut grads = zeroed(&model);
    let mut moments: Vec<Moments> = zeroed(&model)
        .into_iter()
        .map(|z| Moments { m: z.clone(), v: z })
        .collect();

    let batch = config.batch.min(n);
    let lr = f64::from(config.lr);
    let mut order: Vec<usize> = (0..n).collect();
    let mut tape = Tape::default();
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    let mut step = 0i32;
    let mut history = Vec::with_capacity(config.epochs);
    for epoch in 1..=config.epochs {
        // Cosine decay from `lr` to `lr / 100` over the run: Adam at a constant rate keeps
        // jittering around the minimum, the decay lets the last epochs settle.
        let progress_done = (epoch - 1) as f64 / config.epochs as f64;
        let lr_now =
            lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * progress_done).cos()));
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for indices in order.chunks(batch) {
            xb.clear();
            yb.clear();
            for &r in indices {
                xb.extend_from_slice(&x[r * d..(r + 1) * d]);
                yb.extend_from_slice(&y[r * k..(r + 1) * k]);
            }
            model.forward(&xb, indices.len(), &mut tape);
            model.backward(&tape, &yb, indices.len(), &mut grads);
            step = step.saturating_add(1);
            for ((layer, grad), moment) in model.layers.iter_mut().zip(&grads).zip(&mut moments) {
                adam_step(
                    &mut layer.weight,
                    &grad.weight,
                    &mut moment.m.weight,
                    &mut moment.v.weight,
                    lr_now,
                    step,
                );
                adam_step(
                    &mut layer.bias,
                    &grad.bias,
                    &mut moment.m.bias,
                    &mut moment.v.bias,
                    lr_now,
                    step,
                );
            }
        }
        let predicted = model.predict(&x, n);
        let mut sum = 0f64;
        for (p_row, y_row) in predicted.chunks_exact(k).zip(y.chunks_exact(k)) {
            for ((p, t), s) in p_row.iter().zip(y_row).zip(&ys.std) {
                sum += (s * (p - t)).powi(2);
            }
        }
        let loss = sum / (n * k) as f64;
        if !loss.is_finite() {
            return Err(NetError::Diverged { epoch });
        }
        history.push(loss);
        progress(epoch, loss);
    }
    Ok((model, xs, ys, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::train;

    fn parabola() -> Dataset {
        let xs: Vec<f64> = (0..50).map(|i| -3.0 + 6.0 * f64::from(i) / 49.0).collect();
        let ys = xs.iter().map(|x| x * x).collect();
        Dataset::new("parabola", vec!["x".into()], vec!["y".into()], xs, ys)
            .expect("valid data set")
    }

    #[test]
    fn folded_network_matches_standardised_prediction() {
        let data = parabola();
        let config = TrainConfig {
            epochs: 50,
            ..TrainConfig::default()
        };
        let (model, xs, ys, _) = fit_standardised(&data, &config, &mut |_, _| {}).expect("trains");
        let internal = model.predict(&xs.apply(data.inputs()), data.rows());
        let trained = train(&data, &config, &mut |_, _| {}).expect("trains");
        let net = trained.network().expect("builds");
        let raw: Vec<f32> = data.inputs().iter().map(|&v| v as f32).collect();
        let out = net.forward(&raw, data.rows()).expect("runs");
        for (o, p) in out.iter().zip(&internal) {
            let unscaled = p * ys.std[0] + ys.mean[0];
            assert!(
                (f64::from(*o) - unscaled).abs() < 1e-4 * (1.0 + unscaled.abs()),
                "{o} vs {unscaled}"
            );
        }
    }

    #[test]
    fn splitmix_known_values() {
        // Reference values of SplitMix64 seeded with 0.
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for act in Activation::ALL {
            let mut rng = SplitMix64(7);
            let model = Mlp::init(&[3, 4, 2], act, &mut rng);
            let x: Vec<f64> = (0..15).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
            let y: Vec<f64> = (0..10).map(|_| rng.next_f64()).collect();
            let loss = |m: &Mlp| {
                let p = m.predict(&x, 5);
                p.iter().zip(&y).map(|(p, t)| (p - t).powi(2)).sum::<f64>() / 10.0
            };
            let mut tape = Tape::default();
            model.forward(&x, 5, &mut tape);
            let mut grads: Vec<Dense> = model.layers.clone();
            model.backward(&tape, &y, 5, &mut grads);
            for (l, grad) in grads.iter().enumerate() {
                let analytic = grad.weight.iter().map(|&g| (true, g));
                let analytic = analytic.chain(grad.bias.iter().map(|&g| (false, g)));
                for (i, (is_weight, analytic)) in analytic.enumerate() {
                    let h = 1e-6;
                    let nudge = |delta: f64| {
                        let mut m = model.clone();
                        let layer = &mut m.layers[l];
                        if is_weight {
                            layer.weight[i] += delta;
                        } else {
                            layer.bias[i - layer.weight.len()] += delta;
                        }
                        loss(&m)
                    };
                    let numeric = (nudge(h) - nudge(-h)) / (2.0 * h);
                    assert!(
                        (numeric - analytic).abs() < 1e-6,
                        "{act}: layer {l} parameter {i}: {numeric} vs {analytic}"
                    );
                }
            }
        }
    }
}
