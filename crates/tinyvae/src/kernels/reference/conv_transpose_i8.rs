//! int8 2-D transposed convolution, scalar reference, by phase decomposition.
//!
//! The definition: `acc = bias[o] + sum W[o][c][ky][kx] * (x[c][iy][ix] - zp_in)` over the taps
//! with `oy + pad_top - ky = iy * stride_h` for an `iy` inside the input (the same across),
//! then [`requantize`]. The bias does not fold the input zero point: which taps an output gets
//! varies from output to output, so the zero point is subtracted from each input instead.
//!
//! Why phases: a transposed convolution is often explained as zeros inserted between the
//! inputs and an ordinary convolution with the flipped filter. That multiplies the zeros too,
//! and needs the flipped copy in RAM. Instead, output rows with `oy ≡ p (mod stride_h)` use
//! only the kernel rows `ky ≡ p + pad_top (mod stride_h)` (columns likewise), so each of the
//! `stride_h * stride_w` phases is a small dense convolution over the stored filter, and
//! [`crate::kernels::taps`] lists exactly its valid taps: nothing is multiplied that does not
//! count, and the MAC count is what runs. Optimized kernels keep this loop structure and
//! vectorize inside a phase.

#[cfg(feature = "conv-transpose")]
use super::le_i32;
#[cfg(feature = "conv-transpose")]
use crate::format::WeightLayout;
use crate::kernels::ConvI8;
#[cfg(feature = "conv-transpose")]
use crate::quant::requantize;

/// See [`crate::kernels::ConvI8`].
pub fn conv_transpose_i8(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    // Without the `conv` feature no blob with this op parses, and the kernel is not linked.
    #[cfg(feature = "conv-transpose")]
    conv_transpose_i8_body(p, x, batch, out);
    #[cfg(not(feature = "conv-transpose"))]
    let _ = (p, x, batch, out);
}

/// See [`crate::kernels::ConvI8`].
#[cfg(feature = "conv-transpose")]
fn conv_transpose_i8_body(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let n = p.samples(true, x, batch, out);
    let Some(d) = p.dims(true).filter(|_| n > 0) else {
        return;
    };
    let (out_h, out_w) = (p.out_shape.height, p.out_shape.width);
    let zp = p.in_zero_point;
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        for o in 0..d.rows {
            let (m, s) = (le_i32(p.multipliers, o), le_i32(p.shifts, o));
            for phase_y in 0..d.h.stride().min(out_h) {
                for phase_x in 0..d.w.stride().min(out_w) {
                    let phase = d.phase(true, d.h.phase_tap(phase_y), d.w.phase_tap(phase_x));
                    let bias = match p.layout {
                        WeightLayout::RowMajor => le_i32(p.bias, o),
                        // The phase's bias folds -zp_in times its row's sum: put it back, so
                        // that only the valid taps need visiting.
                        WeightLayout::TapMajor => {
                            let row = &p.weights[phase.offset + o * phase.cols..][..phase.cols];
                            let sum = row.iter().fold(0i32, |s, &v| s.wrapping_add(v as i8 as i32));
                            le_i32(p.bias, phase.index * d.rows + o).wrapping_add(zp.wrapping_mul(sum))
                        }
                    };
                    for oy in (phase_y..out_h).step_by(d.h.stride()) {
                        let rows = d.h.transpose_taps(oy);
                        for ox in (phase_x..out_w).step_by(d.w.stride()) {
                            let cols = d.w.transpose_taps(ox);
                            let mut acc = bias;
                            for c in 0..d.in_channels_per_group {
                                for (ky, iy) in rows {
                                    for (kx, ix) in cols {
                                        let at = d.weight_index(p.layout, true, &phase, (o, c, ky, kx));
                                        let wv = p.weights[at] as i8 as i32;
                                        let xv = (xs[p.in_shape.index(c, iy, ix)] as i32).wrapping_sub(zp);
                                        acc = acc.wrapping_add(wv.wrapping_mul(xv));
                                    }
                                }
                            }
                            let y = &mut ys[p.out_shape.index(o, oy, ox)];
                            *y = requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max);
                        }
                    }
                }
            }
        }
    }
}
