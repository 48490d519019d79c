//! Rounding float weights to int8 codes: to nearest, or with error compensation (GPTQ, Frantar
//! et al. 2022).
//!
//! Rounding each weight to its nearest code is optimal weight by weight but not for the layer:
//! what matters is the error of `W x` on the inputs the layer actually sees. GPTQ rounds one
//! input column at a time and spreads each column's rounding error over the columns not yet
//! rounded, weighted by the inverse of the inputs' second-moment matrix `H = E[x x^T]`, so that
//! correlated inputs cancel each other's errors. The codes stay plain symmetric per-channel
//! int8: the runtime never knows how they were chosen.

use ndarray::Array2;

/// Per output channel scales: `max |w| / 127` (1 for an all-zero row).
pub fn row_scales(weight: &Array2<f32>) -> Vec<f64> {
    weight
        .rows()
        .into_iter()
        .map(|row| {
            let max = row.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
            if max > 0.0 {
                max / 127.0
            } else {
                1.0
            }
        })
        .collect()
}

fn code(v: f64, scale: f64) -> i8 {
    (v / scale).round().clamp(-127.0, 127.0) as i8
}

/// Round-to-nearest codes.
pub fn nearest(weight: &Array2<f32>, scales: &[f64]) -> Array2<i8> {
    Array2::from_shape_fn(weight.dim(), |(o, k)| code(weight[[o, k]] as f64, scales[o]))
}

/// Lower-triangular `L` with `a = L L^T`, or `None` if `a` is not positive definite.
fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut d = a[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        // Not positive, or NaN: the matrix is not positive definite.
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        l[[j, j]] = d;
        for i in j + 1..n {
            let mut s = a[[i, j]];
            for k in 0..j {
                s -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = s / d;
        }
    }
    Some(l)
}

/// Inverse of a lower-triangular matrix.
fn invert_lower(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        inv[[j, j]] = 1.0 / l[[j, j]];
        for i in j + 1..n {
            let mut s = 0.0;
            for k in j..i {
                s -= l[[i, k]] * inv[[k, j]];
            }
            inv[[i, j]] = s / l[[i, i]];
        }
    }
    inv
}

/// GPTQ codes for `weight` (`out x in`) given the second moments `gram` (`in x in`,
/// `E[x x^T]`) of the layer's inputs. Falls back to nearest rounding when `gram` is singular
/// even after damping.
pub fn gptq(weight: &Array2<f32>, scales: &[f64], gram: &Array2<f64>) -> Array2<i8> {
    let n = weight.ncols();
    if gram.dim() != (n, n) {
        return nearest(weight, scales);
    }
    // Damping keeps H invertible when some inputs never vary (dead ReLUs, constant pixels).
    let mean_diag = (0..n).map(|i| gram[[i, i]]).sum::<f64>() / n as f64;
    let mut h = gram.clone();
    for i in 0..n {
        h[[i, i]] += 0.01 * mean_diag.max(1e-12);
    }
    let Some(l) = cholesky(&h) else { return nearest(weight, scales) };
    let li = invert_lower(&l);
    let hinv = li.t().dot(&li);
    // Upper factor U of H^-1 = U^T U: row j drives how column j's error moves to later columns.
    let Some(u) = cholesky(&hinv).map(|l2| l2.reversed_axes()) else { return nearest(weight, scales) };
    let mut w: Array2<f64> = weight.mapv(|v| v as f64);
    let mut codes = Array2::<i8>::zeros(weight.dim());
    for j in 0..n {
        let d = u[[j, j]];
        for o in 0..weight.nrows() {
            let q = code(w[[o, j]], scales[o]);
            codes[[o, j]] = q;
            let err = (w[[o, j]] - q as f64 * scales[o]) / d;
            for k in j + 1..n {
                w[[o, k]] -= err * u[[j, k]];
            }
        }
    }
    codes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output error `E ||(W~ - W) x||^2 = sum_o dw_o^T H dw_o`.
    fn layer_error(w: &Array2<f32>, codes: &Array2<i8>, scales: &[f64], h: &Array2<f64>) -> f64 {
        let dw = Array2::from_shape_fn(w.dim(), |(o, k)| codes[[o, k]] as f64 * scales[o] - w[[o, k]] as f64);
        (0..w.nrows()).map(|o| dw.row(o).dot(&h.dot(&dw.row(o)))).sum()
    }

    #[test]
    fn gptq_beats_nearest_on_correlated_inputs() {
        let mut rng = tinyvae::Rng::new(3);
        let (rows, cols, n) = (32, 48, 2000);
        let w = Array2::from_shape_fn((rows, cols), |_| rng.gaussian() * 0.1);
        // Inputs with a strong shared component, like ReLU activations of one layer.
        let x = Array2::from_shape_fn((n, cols), |_| 0.0f32);
        let x = x.mapv(|_| rng.gaussian().max(0.0));
        let common: Vec<f32> = (0..n).map(|_| rng.gaussian()).collect();
        let x = Array2::from_shape_fn((n, cols), |(i, k)| x[[i, k]] + common[i].abs());
        let h = x.t().dot(&x).mapv(|v| v as f64 / n as f64);
        let scales = row_scales(&w);
        let near = nearest(&w, &scales);
        let g = gptq(&w, &scales, &h);
        let (e_near, e_gptq) = (layer_error(&w, &near, &scales, &h), layer_error(&w, &g, &scales, &h));
        assert!(e_gptq < 0.7 * e_near, "gptq {e_gptq} vs nearest {e_near}");
        // Codes stay within one step of the weights' range.
        assert!(g.iter().all(|&c| (-127..=127).contains(&c)));
    }

    #[test]
    fn cholesky_inverts() {
        let a = ndarray::arr2(&[[4.0, 2.0, 0.6], [2.0, 5.0, 1.0], [0.6, 1.0, 3.0]]);
        let l = cholesky(&a).unwrap();
        let back = l.dot(&l.t());
        assert!((&back - &a).iter().all(|d| d.abs() < 1e-12));
        let li = invert_lower(&l);
        let id = li.t().dot(&li).dot(&a);
        for i in 0..3 {
            for j in 0..3 {
                assert!((id[[i, j]] - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(cholesky(&ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]])).is_none());
    }
}
