//! int8 2-D convolution (grouped and depthwise too), scalar reference.
//!
//! The definition: `acc = bias[o] + sum_{c, ky, kx} W[o][c][ky][kx] * x'` (the weight found
//! where [`crate::kernels::conv_layout`] puts it), where `x'` is the
//! input code at `(g * C_in/groups + c, oy * stride_h - pad_top + ky * dilation_h, ...)`, or
//! the input zero point where that position lies outside the input (padding is real 0), then
//! [`requantize`]. The bias holds `-zp_in * sum_k W[o][k]`, as Dense's does.
//!
//! Written to visit only the taps that land inside the input ([`crate::kernels::taps`]), as a
//! fast kernel would and as the MAC count says: since `W * x' = W * zp_in + W * (x' - zp_in)`
//! and the second term is 0 on padding, `acc = bias[o] + zp_in * sum_k W[o][k] + sum over the
//! valid taps of W * (x - zp_in)`, which is the same integer in wrapping i32 arithmetic. The row
//! sum is taken from the weights here, not from `weight_sums`, so that the reference depends
//! on the weights alone (the suite checks it against the definition above, padding included).

#[cfg(feature = "conv")]
use super::le_i32;
use crate::kernels::ConvI8;
#[cfg(feature = "conv")]
use crate::quant::requantize;

/// See [`crate::kernels::ConvI8`].
pub fn conv_i8(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    // Without the `conv` feature no blob with this op parses, and the kernel is not linked.
    #[cfg(feature = "conv")]
    conv_i8_body(p, x, batch, out);
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

/// See [`crate::kernels::ConvI8`].
#[cfg(feature = "conv")]
fn conv_i8_body(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let n = p.samples(false, x, batch, out);
    let Some(d) = p.dims(false).filter(|_| n > 0) else {
        return;
    };
    let (cg, zp) = (d.in_channels_per_group, p.in_zero_point);
    let phase = d.phase(false, 0, 0);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        for (o, w) in p.weights.chunks_exact(d.cols).take(d.rows).enumerate() {
            let g = o / d.out_channels_per_group;
            // Either layout keeps an output channel's weights together.
            let row_sum = w.iter().fold(0i32, |s, &v| s.wrapping_add(v as i8 as i32));
            let base = le_i32(p.bias, o).wrapping_add(zp.wrapping_mul(row_sum));
            let (m, s) = (le_i32(p.multipliers, o), le_i32(p.shifts, o));
            for oy in 0..p.out_shape.height {
                let rows = d.h.conv_taps(oy);
                for ox in 0..p.out_shape.width {
                    let cols = d.w.conv_taps(ox);
                    let mut acc = base;
                    for c in 0..cg {
                        for (ky, iy) in rows {
                            for (kx, ix) in cols {
                                let wv =
                                    p.weights[d.weight_index(p.layout, false, &phase, (o, c, ky, kx))] as i8 as i32;
                                let xv = (xs[p.in_shape.index(g * cg + c, iy, ix)] as i32).wrapping_sub(zp);
                                acc = acc.wrapping_add(wv.wrapping_mul(xv));
                            }
                        }
                    }
                    ys[p.out_shape.index(o, oy, ox)] = requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max);
                }
            }
        }
    }
}
