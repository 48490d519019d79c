//! Nearest-neighbour upsampling by integer factors, scalar reference:
//! `y[c][oy][ox] = x[c][oy / factor_h][ox / factor_w]`. A copy, so int8 codes (input and
//! output share one quantization, which the parser checks) and f32 values take the same code;
//! each output row is filled from one input row, the row repeated `factor_h` times.

use crate::kernels::Upsample;

/// See [`crate::kernels::Upsample`].
pub fn upsample_i8(p: &Upsample, x: &[i8], batch: usize, out: &mut [i8]) {
    // Without the `conv` feature no blob with this op parses, and the kernel is not linked.
    #[cfg(feature = "conv")]
    upsample(p, x, batch, out);
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

/// See [`crate::kernels::Upsample`].
pub fn upsample_f32(p: &Upsample, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the `conv` feature no blob with this op parses, and the kernel is not linked.
    #[cfg(feature = "conv")]
    upsample(p, x, batch, out);
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

#[cfg(feature = "conv")]
fn upsample<T: Copy>(p: &Upsample, x: &[T], batch: usize, out: &mut [T]) {
    let n = p.samples(x.len(), batch, out.len());
    let Some((o, in_len, out_len)) = p.dims().filter(|_| n > 0) else {
        return;
    };
    let w = p.in_shape.width;
    for (xs, ys) in x.chunks_exact(in_len).zip(out.chunks_exact_mut(out_len)).take(n) {
        for (xc, yc) in xs.chunks_exact(p.in_shape.height * w).zip(ys.chunks_exact_mut(o.height * o.width)) {
            for (oy, y) in yc.chunks_exact_mut(o.width).enumerate() {
                let row = &xc[(oy / p.factor_h) * w..][..w];
                for (ox, v) in y.iter_mut().enumerate() {
                    *v = row[ox / p.factor_w];
                }
            }
        }
    }
}
