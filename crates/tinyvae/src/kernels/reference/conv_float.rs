//! Float 2-D convolution (grouped and depthwise too) with f32 or f16 weights, scalar
//! reference: `y[o][oy][ox] = act(bias[o] + sum W[o][c][ky][kx] * x[...])`, padding reading 0.
//!
//! Written as the int8 reference is, over the valid taps only ([`crate::kernels::taps`]):
//! padding contributes nothing in float, so skipping it changes no value. f16 weights widen to
//! f32 one at a time; accumulation is f32.

use crate::kernels::ConvFloat;

/// See [`crate::kernels::ConvFloat`]; weights are little-endian f32.
pub fn conv_f32(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the feature, blobs of this precision never parse (see `dense_f32`).
    #[cfg(all(feature = "conv", feature = "f32"))]
    conv_float(p, x, batch, out, 4, |w: &[u8], i: usize| {
        f32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
    });
    #[cfg(not(all(feature = "conv", feature = "f32")))]
    let _ = (p, x, batch, out);
}

/// See [`crate::kernels::ConvFloat`]; weights are little-endian IEEE binary16.
pub fn conv_f16(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    #[cfg(all(feature = "conv", feature = "f16"))]
    conv_float(p, x, batch, out, 2, |w: &[u8], i: usize| half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f32());
    #[cfg(not(all(feature = "conv", feature = "f16")))]
    let _ = (p, x, batch, out);
}

/// The body of both: `weight(weights, i)` is weight `i` of the array.
#[cfg(all(feature = "conv", any(feature = "f32", feature = "f16")))]
#[inline(always)]
fn conv_float(
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
    weight_bytes: usize,
    weight: impl Fn(&[u8], usize) -> f32,
) {
    let n = p.samples(false, weight_bytes, x, batch, out);
    let Some(d) = p.dims(false).filter(|_| n > 0) else {
        return;
    };
    let cg = d.in_channels_per_group;
    let phase = d.phase(false, 0, 0);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        for o in 0..d.rows {
            let g = o / d.out_channels_per_group;
            let bias = super::le_f32(p.bias, o);
            for oy in 0..p.out_shape.height {
                let rows = d.h.conv_taps(oy);
                for ox in 0..p.out_shape.width {
                    let cols = d.w.conv_taps(ox);
                    let mut acc = bias;
                    for c in 0..cg {
                        for (ky, iy) in rows {
                            for (kx, ix) in cols {
                                let at = d.weight_index(p.layout, false, &phase, (o, c, ky, kx));
                                acc += weight(p.weights, at) * xs[p.in_shape.index(g * cg + c, iy, ix)];
                            }
                        }
                    }
                    ys[p.out_shape.index(o, oy, ox)] = if p.relu && acc < 0.0 { 0.0 } else { acc };
                }
            }
        }
    }
}
