//! Float 2-D transposed convolution with f32 or f16 weights, scalar reference, by phase
//! decomposition: `y[o][oy][ox] = act(bias[o] + sum W[o][c][ky][kx] * x[c][iy][ix])` over the
//! taps with `oy + pad_top - ky = iy * stride_h` inside the input (the same across).
//!
//! The loop structure is the int8 reference's (`conv_transpose_i8`, which says why): phase by
//! phase, valid taps only, the stored filter read in place.

use crate::kernels::ConvFloat;

/// See [`crate::kernels::ConvFloat`]; weights are little-endian f32.
pub fn conv_transpose_f32(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the feature, blobs of this precision never parse (see `dense_f32`).
    #[cfg(all(feature = "conv-transpose", feature = "f32"))]
    conv_transpose_float(p, x, batch, out, 4, |w: &[u8], i: usize| {
        f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
    });
    #[cfg(not(all(feature = "conv-transpose", feature = "f32")))]
    let _ = (p, x, batch, out);
}

/// See [`crate::kernels::ConvFloat`]; weights are little-endian IEEE binary16.
pub fn conv_transpose_f16(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    #[cfg(all(feature = "conv-transpose", feature = "f16"))]
    conv_transpose_float(p, x, batch, out, 2, |w: &[u8], i: usize| {
        half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32()
    });
    #[cfg(not(all(feature = "conv-transpose", feature = "f16")))]
    let _ = (p, x, batch, out);
}

/// The body of both: `weight(weights, i)` is weight `i` of the array.
#[cfg(all(feature = "conv-transpose", any(feature = "f32", feature = "f16")))]
#[inline(always)]
fn conv_transpose_float(
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    weight_bytes: usize,
    weight: impl Fn(&[u8], usize) -> f32,
) {
    let n = p.samples(true, weight_bytes, x, batch, out);
    let Some(d) = p.dims(true).filter(|_| n > 0) else {
        return;
    };
    let (out_h, out_w) = (p.out_shape.height, p.out_shape.width);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        for o in 0..d.rows {
            let bias = super::le_f32(p.bias, o);
            for phase_y in 0..d.h.stride().min(out_h) {
                for phase_x in 0..d.w.stride().min(out_w) {
                    let phase = d.phase(true, d.h.phase_tap(phase_y), d.w.phase_tap(phase_x));
                    for oy in (phase_y..out_h).step_by(d.h.stride()) {
                        let rows = d.h.transpose_taps(oy);
                        for ox in (phase_x..out_w).step_by(d.w.stride()) {
                            let cols = d.w.transpose_taps(ox);
                            let mut acc = bias;
                            for c in 0..d.in_channels_per_group {
                                for (ky, iy) in rows {
                                    for (kx, ix) in cols {
                                        let at = d.weight_index(p.layout, true, &phase, (o, c, ky, kx));
                                        acc += weight(p.weights, at) * xs[p.in_shape.index(c, iy, ix)];
                                    }
                                }
                            }
                            ys[p.out_shape.index(o, oy, ox)] = if p.relu && acc < 0.0 { 0.0 } else { acc };
                        }
                    }
                }
            }
        }
    }
}
