//! Checking an [`Architecture`] against tensors, and running it.

use std::borrow::Cow;
use std::collections::HashMap;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use crate::{Activation, Architecture, Layer, NetError};

/// Position of the `index`-th layer inside a block at `prefix`, as shown in error messages.
fn position(prefix: &str, index: usize) -> String {
    if prefix.is_empty() {
        index.to_string()
    } else {
        format!("{prefix}.{index}")
    }
}

/// Matrix products with at least this many multiply-adds use all rayon threads.
const PARALLEL_MACS: usize = 1 << 20;
/// Element-wise passes over at least this many values are split across rayon threads.
const PARALLEL_ELEMENTS: usize = 1 << 16;
/// Chunk size of the parallel element-wise passes.
const CHUNK: usize = 1 << 13;

/// One tensor the network holds.
#[derive(Debug, Clone)]
struct Param<'a> {
    name: String,
    values: Cow<'a, [f32]>,
}

/// A checked, runnable layer. Tensors are referred to by index into `Network::params`, so a
/// tensor used by several layers (a repeat block) is stored once.
#[derive(Debug, Clone)]
enum Op {
    Linear {
        weight: usize,
        bias: Option<usize>,
        inputs: usize,
        outputs: usize,
    },
    Activation(Activation),
    Softmax,
    Repeat {
        times: usize,
        ops: Vec<Op>,
    },
}

/// A feed-forward network whose tensors have been looked up and whose shapes have been checked.
///
/// Built once by [`Network::build`] or [`Network::from_model`], after which
/// [`Network::forward`] cannot fail on shapes. The tensors may be borrowed (`'a`), e.g.
/// from the memory map of the model they were read from.
#[derive(Debug, Clone)]
pub struct Network<'a> {
    architecture: Architecture,
    params: Vec<Param<'a>>,
    ops: Vec<Op>,
    input_width: usize,
    output_width: usize,
    /// The widest layer's output width.
    max_width: usize,
}

/// The most activation values one group of rows may hold in a layer
/// (256 MiB of f32); larger batches run in groups of rows.
const CHUNK_VALUES: usize = 1 << 26;

/// The most output values a forward pass returns (8 GiB of f32).
const MAX_VALUES: usize = 1 << 31;

/// State threaded through [`Builder::block`].
struct Builder<'a, F> {
    lookup: F,
    params: Vec<Param<'a>>,
    by_name: HashMap<String, (usize, Vec<usize>)>,
    /// Width of the network's input, known once the first linear layer is seen.
    input_width: Option<usize>,
}

impl<'a, V, F> Builder<'a, F>
where
    V: Into<Cow<'a, [f32]>>,
    F: FnMut(&str) -> Option<(Vec<usize>, V)>,
{
    /// Fetches a tensor once and returns its index and shape.
    fn fetch(&mut self, layer: &str, name: &str) -> Result<(usize, Vec<usize>), NetError> {
        if let Some((index, shape)) = self.by_name.get(name) {
            return Ok((*index, shape.clone()));
        }
        let (shape, values) = (self.lookup)(name).ok_or_else(|| NetError::MissingTensor {
            layer: layer.to_owned(),
            name: name.to_owned(),
        })?;
        let values: Cow<'a, [f32]> = values.into();
        let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if count != Some(values.len()) {
            return Err(NetError::TensorShape {
                layer: layer.to_owned(),
                name: name.to_owned(),
                problem: format!("but {} values were given", values.len()),
                shape,
            });
        }
        let index = self.params.len();
        self.params.push(Param {
            name: name.to_owned(),
            values,
        });
        self.by_name.insert(name.to_owned(), (index, shape.clone()));
        Ok((index, shape))
    }

    /// Builds one block; `width` is the width flowing in (None before the first linear layer)
    /// and is updated to the width flowing out.
    fn block(
        &mut self,
        layers: &[Layer],
        prefix: &str,
        width: &mut Option<usize>,
    ) -> Result<Vec<Op>, NetError> {
        let mut ops = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            let at = position(prefix, index);
            let op = match layer {
                Layer::Linear { weight, bias } => {
                    let (w, shape) = self.fetch(&at, weight)?;
                    let &[outputs, inputs] = shape.as_slice() else {
                        return Err(NetError::TensorShape {
                            layer: at,
                            name: weight.clone(),
                            shape,
                            problem: "expected a 2-d weight [out, in]".into(),
                        });
                    };
                    if outputs == 0 || inputs == 0 {
                        return Err(NetError::TensorShape {
                            layer: at,
                            name: weight.clone(),
                            shape,
                            problem: "a weight must not have a zero dimension".into(),
                        });
                    }
                    match *width {
                        Some(expected) if expected != inputs => {
                            return Err(NetError::WidthMismatch {
                                layer: at,
                                weight: weight.clone(),
                                expected,
                                found: inputs,
                            });
                        }
                        Some(_) => {}
                        None => {
                            self.input_width.get_or_insert(inputs);
                        }
                    }
                    let bias = match bias {
                        None => None,
                        Some(name) => {
                            let (b, shape) = self.fetch(&at, name)?;
                            if shape != [outputs] {
                                return Err(NetError::TensorShape {
                                    layer: at,
                                    name: name.clone(),
                                    shape,
                                    problem: format!(
                                        "expected a 1-d bias [{outputs}] to match weight `{weight}`"
                                    ),
                                });
                            }
                            Some(b)
                        }
                    };
                    *width = Some(outputs);
                    Op::Linear {
                        weight: w,
                        bias,
                        inputs,
                        outputs,
                    }
                }
                Layer::Softmax => Op::Softmax,
                Layer::Repeat { times, layers } => {
                    let before = *width;
                    let inner = self.block(layers, &at, width)?;
                    let block_input = before.or(self.input_width);
                    if let (Some(input), Some(output)) = (block_input, *width)
                        && input != output
                    {
                        return Err(NetError::RepeatWidth {
                            layer: at,
                            input,
                            output,
                        });
                    }
                    Op::Repeat {
                        times: *times,
                        ops: inner,
                    }
                }
                other => Op::Activation(
                    other
                        .activation()
                        .expect("every remaining layer kind is an activation"),
                ),
            };
            ops.push(op);
        }
        Ok(ops)
    }
}

impl<'a> Network<'a> {
    /// Checks `arch` and looks up each tensor it names through `params`, which returns the
    /// tensor's shape and its values in row-major order (a `Vec<f32>`, or a borrowed
    /// `&'a [f32]` the network keeps without copying), or `None` when there is no such tensor.
    ///
    /// Each distinct name is asked for once. Weights must be 2-d `[out, in]` with no zero
    /// dimension, biases 1-d `[out]`, each linear layer's `in` must equal the width before it,
    /// and repeat blocks must keep their width; every violation is an error naming the layer.
    pub fn build<V: Into<Cow<'a, [f32]>>>(
        arch: &Architecture,
        params: impl FnMut(&str) -> Option<(Vec<usize>, V)>,
    ) -> Result<Network<'a>, NetError> {
        arch.validate()?;
        let mut builder = Builder {
            lookup: params,
            params: Vec::new(),
            by_name: HashMap::new(),
            input_width: None,
        };
        let mut width = None;
        let ops = builder.block(&arch.layers, "", &mut width)?;
        let input_width = builder
            .input_width
            .expect("validate() ensures there is a linear layer");
        let output_width = width.expect("validate() ensures there is a linear layer");
        let max_width = widest(&ops).max(input_width);
        Ok(Network {
            architecture: arch.clone(),
            params: builder.params,
            ops,
            input_width,
            output_width,
            max_width,
        })
    }

    /// The architecture this network was built from.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Number of values each input row has.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Number of values each output row has.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// Number of parameters, counting a tensor used by several layers (a repeat block) once.
    pub fn parameter_count(&self) -> usize {
        self.params.iter().map(|p| p.values.len()).sum()
    }

    /// Names of the tensors the network holds, in order of first use.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.params.iter().map(|p| p.name.as_str())
    }

    /// Names of the tensors the network borrows rather than holds a copy of (from a model:
    /// F32 tensors whose bytes are aligned in the file's memory map or in the parsed JSON).
    pub fn borrowed_tensors(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .filter(|p| matches!(p.values, Cow::Borrowed(_)))
            .map(|p| p.name.as_str())
    }

    /// Runs the network on `batch` rows: `input` is row-major `[batch, input_width]`, the result
    /// is row-major `[batch, output_width]`.
    ///
    /// Linear layers compute `x @ W^T + b` with a GEMM that reads `W` through strides (no
    /// transposed copy); large batches use all rayon threads.
    pub fn forward(&self, input: &[f32], batch: usize) -> Result<Vec<f32>, NetError> {
        let expected = batch.checked_mul(self.input_width);
        if expected != Some(input.len()) {
            return Err(NetError::InputLength {
                expected: expected.unwrap_or(usize::MAX),
                batch,
                width: self.input_width,
                found: input.len(),
            });
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        let out_len = batch
            .checked_mul(self.output_width)
            .filter(|&n| n <= MAX_VALUES)
            .ok_or(NetError::TooManyOutputs {
                batch,
                width: self.output_width,
                max: MAX_VALUES,
            })?;
        // Rows in bounded groups, so that the widest layer's activations stay
        // within CHUNK_VALUES however large the batch.
        let rows = (CHUNK_VALUES / self.max_width.max(1)).max(1);
        if rows >= batch {
            return Ok(self
                .run(&self.ops, Cow::Borrowed(input), batch)
                .into_owned());
        }
        let mut out = Vec::with_capacity(out_len);
        for part in input.chunks(rows * self.input_width) {
            let n = part.len() / self.input_width;
            out.extend_from_slice(&self.run(&self.ops, Cow::Borrowed(part), n));
        }
        Ok(out)
    }

    fn run<'x>(&self, ops: &[Op], mut x: Cow<'x, [f32]>, batch: usize) -> Cow<'x, [f32]> {
        for op in ops {
            match op {
                Op::Linear {
                    weight,
                    bias,
                    inputs,
                    outputs,
                } => {
                    let w = &self.params[*weight].values;
                    let b = bias.map(|b| &*self.params[b].values);
                    x = Cow::Owned(linear(&x, batch, *inputs, *outputs, w, b));
                }
                Op::Activation(act) => apply_activation(*act, x.to_mut()),
                Op::Softmax => {
                    let width = self.output_width;
                    softmax_rows(x.to_mut(), width);
                }
                Op::Repeat { times, ops } => {
                    for _ in 0..*times {
                        x = self.run(ops, x, batch);
                    }
                }
            }
        }
        x
    }
}

/// The widest input or output of any linear layer, inside repeat blocks too.
fn widest(ops: &[Op]) -> usize {
    ops.iter()
        .map(|op| match op {
            Op::Linear {
                inputs, outputs, ..
            } => (*inputs).max(*outputs),
            Op::Repeat { ops, .. } => widest(ops),
            Op::Activation(_) | Op::Softmax => 0,
        })
        .max()
        .unwrap_or(0)
}

/// `x @ w^T + b` for row-major `x: [batch, inputs]`, `w: [outputs, inputs]`.
pub(crate) fn linear(
    x: &[f32],
    batch: usize,
    inputs: usize,
    outputs: usize,
    w: &[f32],
    b: Option<&[f32]>,
) -> Vec<f32> {
    let mut out = vec![0f32; batch * outputs];
    let accum = match b {
        Some(b) => {
            let fill = |row: &mut [f32]| row.copy_from_slice(b);
            if out.len() >= PARALLEL_ELEMENTS {
                out.par_chunks_exact_mut(outputs).for_each(fill);
            } else {
                out.chunks_exact_mut(outputs).for_each(fill);
            }
            Accum::Add
        }
        None => Accum::Replace,
    };
    let macs = batch.saturating_mul(inputs).saturating_mul(outputs);
    let par = if macs >= PARALLEL_MACS {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    matmul(
        MatMut::from_row_major_slice_mut(&mut out, batch, outputs),
        accum,
        MatRef::from_row_major_slice(x, batch, inputs),
        MatRef::from_row_major_slice(w, outputs, inputs).transpose(),
        1.0f32,
        par,
    );
    out
}

/// Applies `act` to every value.
pub(crate) fn apply_activation(act: Activation, data: &mut [f32]) {
    let f: fn(f32) -> f32 = match act {
        Activation::Identity => return,
        Activation::Relu => |v| v.max(0.0),
        Activation::Tanh => f32::tanh,
        Activation::Sigmoid => |v| 1.0 / (1.0 + (-v).exp()),
        Activation::Gelu => |v| 0.5 * v * (1.0 + libm::erff(v * std::f32::consts::FRAC_1_SQRT_2)),
    };
    let pass = |chunk: &mut [f32]| chunk.iter_mut().for_each(|v| *v = f(*v));
    if data.len() >= PARALLEL_ELEMENTS {
        data.par_chunks_mut(CHUNK).for_each(pass);
    } else {
        pass(data);
    }
}

/// Softmax over each row of `width` values, shifted by the row maximum for stability.
fn softmax_rows(data: &mut [f32], width: usize) {
    let row = |r: &mut [f32]| {
        let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for v in r.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        r.iter_mut().for_each(|v| *v /= sum);
    };
    if data.len() >= PARALLEL_ELEMENTS {
        data.par_chunks_mut(width).for_each(row);
    } else {
        data.chunks_mut(width).for_each(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches are cut into groups of rows by the widest layer, so that
    /// activations stay within CHUNK_VALUES. The widest layer used to be
    /// looked for among the top-level layers only: a repeat block widening
    /// to 4096 inside a 1-wide network ran 2^26 rows at once, 2^38 values
    /// (1 TiB) in one layer instead of 256 MiB.
    #[test]
    fn the_widest_layer_inside_a_repeat_block_bounds_the_groups() {
        let arch = Architecture::from_json(
            r#"{"layers": [
                {"type": "linear", "weight": "in"},
                {"type": "repeat", "times": 2, "layers": [
                    {"type": "linear", "weight": "up"},
                    {"type": "relu"},
                    {"type": "linear", "weight": "down"}
                ]}
            ]}"#,
        )
        .expect("valid");
        let wide = 4096;
        let net = Network::build(&arch, |name| match name {
            "in" => Some((vec![1, 1], vec![1.0f32])),
            "up" => Some((vec![wide, 1], vec![1.0; wide])),
            "down" => Some((vec![1, wide], vec![1.0 / wide as f32; wide])),
            _ => None,
        })
        .expect("builds");
        assert_eq!(net.max_width, wide);
        let out = net.forward(&[-2.0, 0.5, 2.0], 3).expect("runs");
        assert_eq!(out, [0.0, 0.5, 2.0]);
    }
}
