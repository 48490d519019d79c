//! f32 Dense, scalar reference (the full-precision baseline of every comparison).

use super::le_f32;
use crate::kernels::DenseFloat;

/// See [`crate::kernels::DenseFloat`]; weights are little-endian f32.
pub fn dense_f32(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if p.rows == 0 || p.cols == 0 {
        return;
    }
    for (xs, ys) in x.chunks_exact(p.cols).zip(out.chunks_exact_mut(p.rows)).take(batch) {
        for (o, (y, w)) in ys.iter_mut().zip(p.weights.chunks_exact(4 * p.cols)).enumerate() {
            let mut acc = le_f32(p.bias, o);
            for (wk, &xk) in w.chunks_exact(4).zip(xs) {
                acc += f32::from_le_bytes([wk[0], wk[1], wk[2], wk[3]]) * xk;
            }
            *y = if p.relu && acc < 0.0 { 0.0 } else { acc };
        }
    }
}
