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
    let (rows, cols) = (p.rows, p.cols);
    // Checked slices rather than `chunks_exact` (whose zero-size assertion is a panic path).
    for b in 0..n {
        let (Some(xs), Some(ys)) = (x.get(b * cols..(b + 1) * cols), out.get_mut(b * rows..(b + 1) * rows)) else {
            return;
        };
        for (o, y) in ys.iter_mut().enumerate() {
            let Some(w) = p.weights.get(o * cols..(o + 1) * cols) else { return };
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
