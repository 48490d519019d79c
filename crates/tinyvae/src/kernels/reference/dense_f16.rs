//! Dense with f16 weights, scalar reference: weights widen to f32, accumulation is f32.

#[cfg(feature = "f16")]
use super::le_f32;
use crate::kernels::DenseFloat;
#[cfg(feature = "f16")]
use half::f16;

/// See [`crate::kernels::DenseFloat`]; weights are little-endian IEEE binary16.
pub fn dense_f16(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the feature, blobs of this precision never parse, so this is never reached
    // with work to do; leaving the body out keeps the float code out of int8-only firmware.
    #[cfg(feature = "f16")]
    {
        let n = p.samples(2, x, batch, out);
        if n == 0 {
            return;
        }
        for (xs, ys) in x.chunks_exact(p.cols).zip(out.chunks_exact_mut(p.rows)).take(n) {
            for (o, (y, w)) in ys.iter_mut().zip(p.weights.chunks_exact(2 * p.cols)).enumerate() {
                let mut acc = le_f32(p.bias, o);
                for (wk, &xk) in w.chunks_exact(2).zip(xs) {
                    acc += f16::from_le_bytes([wk[0], wk[1]]).to_f32() * xk;
                }
                *y = if p.relu && acc < 0.0 { 0.0 } else { acc };
            }
        }
    }
    #[cfg(not(feature = "f16"))]
    let _ = (p, x, batch, out);
}
