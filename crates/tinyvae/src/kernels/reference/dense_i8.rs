//! int8 Dense, scalar reference: int32 dot products, then the fixed-point epilogue.

use super::le_i32;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let n = p.samples(x, batch, out);
    if n == 0 {
        return;
    }
    for (xs, ys) in x.chunks_exact(p.cols).zip(out.chunks_exact_mut(p.rows)).take(n) {
        for (o, (y, w)) in ys.iter_mut().zip(p.weights.chunks_exact(p.cols)).enumerate() {
            let mut acc = le_i32(p.bias, o);
            for (&wk, &xk) in w.iter().zip(xs) {
                // |w x| <= 2^14 and cols <= 2^22 keep this far from i32 overflow... except
                // for hostile blobs, where wrapping is still defined behaviour.
                acc = acc.wrapping_add(wk as i8 as i32 * xk as i32);
            }
            let (m, s) = (le_i32(p.multipliers, o), le_i32(p.shifts, o));
            *y = requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max);
        }
    }
}
