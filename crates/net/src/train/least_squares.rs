//! The least-squares method: without hidden layers, the line `y = W x + b` is solved exactly
//! (a thin SVD of the standardised, centred inputs, in f64). It has no epochs and no learning
//! rate; its errors say so by speaking of rows and columns only.

use faer::Mat;

use super::{Dense, Scaling};
use crate::{Dataset, NetError};

/// Exact least-squares fit of `targets ≈ W inputs + b`.
///
/// Refused ([`NetError::Underdetermined`]) when the rows do not determine the line: fewer
/// linearly independent rows (counting the bias) than `inputs + 1` parameters, as with one
/// row, or a constant or duplicated input column.
pub(super) fn least_squares(data: &Dataset) -> Result<Dense, NetError> {
    let (n, d, k) = (data.rows(), data.input_width(), data.target_width());
    let xs = Scaling::of(data.inputs(), d);
    let ys = Scaling::of(data.targets(), k);
    let x = xs.apply(data.inputs());
    let x = Mat::from_fn(n, d, |i, j| x[i * d + j]);
    let yc = Mat::from_fn(n, k, |i, t| data.targets()[i * k + t] - ys.mean[t]);
    let svd = x
        .thin_svd()
        .map_err(|e| NetError::Solve(format!("{e:?}")))?;
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    let s_max = (0..s.nrows()).map(|i| s[i]).fold(0f64, f64::max);
    // Standardised columns have norm sqrt(n) unless constant: singular values below this
    // are rounding noise (a column constant up to rounding), not an independent direction.
    let tolerance = n.max(d) as f64 * f64::EPSILON * s_max.max((n as f64).sqrt());
    let rank = (0..s.nrows()).filter(|&i| s[i] > tolerance).count();
    // Centring took one direction: the bias column.
    let independent = (rank + 1).min(n);
    if independent < d + 1 {
        return Err(NetError::Underdetermined {
            source_name: data.source_name().to_owned(),
            rows: n,
            independent,
            parameters: d + 1,
        });
    }
    // Coefficients in standardised coordinates, [d, k].
    let mut coef = Mat::<f64>::zeros(d, k);
    for i in 0..s.nrows() {
        if s[i] <= tolerance {
            continue;
        }
        for t in 0..k {
            let projection: f64 = (0..n).map(|r| u[(r, i)] * yc[(r, t)]).sum::<f64>() / s[i];
            for j in 0..d {
                coef[(j, t)] += v[(j, i)] * projection;
            }
        }
    }
    let mut weight = vec![0f64; k * d];
    let mut bias = ys.mean.clone();
    for t in 0..k {
        for j in 0..d {
            let w = coef[(j, t)] / xs.std[j];
            weight[t * d + j] = w;
            bias[t] -= w * xs.mean[j];
        }
    }
    Ok(Dense {
        inputs: d,
        outputs: k,
        weight,
        bias,
    })
}
