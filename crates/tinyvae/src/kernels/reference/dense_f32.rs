//! f32 Dense, scalar reference (the full-precision baseline of every comparison).

#[cfg(feature = "f32")]
use super::le_f32;
use crate::kernels::DenseFloat;

/// See [`crate::kernels::DenseFloat`]; weights are little-endian f32.
pub fn dense_f32(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the feature, blobs of this precision never parse, so this is never reached
    // with work to do; leaving the body out keeps the float code out of int8-only firmware.
    #[cfg(feature = "f32")]
    {
        let n = p.samples(4, x, batch, out);
        if n == 0 {
            return;
        }
        for (xs, ys) in x.chunks_exact(p.cols).zip(out.chunks_exact_mut(p.rows)).take(n) {
            for (o, (y, w)) in ys.iter_mut().zip(p.weights.chunks_exact(4 * p.cols)).enumerate() {
                let mut acc = le_f32(p.bias, o);
                for (wk, &xk) in w.chunks_exact(4).zip(xs) {
                    acc += f32::from_le_bytes([wk[0], wk[1], wk[2], wk[3]]) * xk;
                }
                *y = if p.relu && acc < 0.0 { 0.0 } else { acc };
            }
        }
    }
    #[cfg(not(feature = "f32"))]
    let _ = (p, x, batch, out);
}
