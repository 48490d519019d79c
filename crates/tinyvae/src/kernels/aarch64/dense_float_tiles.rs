//! The float Dense driver shared by the f32 and f16 kernels: `fmla` in f32 over tiles of 4
//! output rows by 1 or 2 samples. The kernels differ only in how weights become f32 lanes (a
//! [`WeightFormat`]).
//!
//! Not bit-exact with the reference (the summation order differs); the kernel suite bounds the
//! difference. A single sample keeps two accumulators per row (eight independent `fmla` chains)
//! so the FMA latency is hidden; two samples get their eight chains from the second sample.

use core::arch::aarch64::*;

use crate::kernels::reference::le_f32;
use crate::kernels::DenseFloat;

/// How one weight dtype is read and widened to f32.
pub(super) trait WeightFormat {
    /// Bytes per weight.
    const BYTES: usize;
    /// Weights `0..4` and `4..8` at `p`, as f32.
    ///
    /// # Safety
    /// NEON; `8 * BYTES` bytes readable at `p`.
    unsafe fn load8(p: *const u8) -> (float32x4_t, float32x4_t);
    /// Weights `0..4` at `p`, as f32.
    ///
    /// # Safety
    /// NEON; `4 * BYTES` bytes readable at `p`.
    unsafe fn load4(p: *const u8) -> float32x4_t;
    /// The weight at `p`, as f32.
    ///
    /// # Safety
    /// `BYTES` bytes readable at `p`.
    unsafe fn load1(p: *const u8) -> f32;
}

/// True when the vector driver may run: the slices hold the whole batch
/// ([`DenseFloat::samples`] gives all of it). Anything else goes to the scalar reference, which
/// keeps the kernel contract for short slices too.
pub(super) fn fits<F: WeightFormat>(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &[f32]) -> bool {
    batch > 0 && p.samples(F::BYTES, x, batch, out) == batch
}

/// Float Dense over the batch with `F` weights.
///
/// # Safety
/// The CPU must support NEON, and [`fits`]`::<F>(p, x, batch, out)` must hold: every pointer
/// below is derived from those checked lengths.
#[target_feature(enable = "neon")]
pub(super) unsafe fn dense_float_tiled<F: WeightFormat>(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    let (rows, cols) = (p.rows, p.cols);
    let row_bytes = cols * F::BYTES;
    let out = out.as_mut_ptr();
    let mut o = 0;
    while o + 4 <= rows {
        let w = p.weights.as_ptr().add(o * row_bytes);
        // Channels o..o+4 lie inside bias (fits: 4 * rows bytes).
        let bias = vreinterpretq_f32_u8(vld1q_u8(p.bias.as_ptr().add(4 * o)));
        let mut b = 0;
        // Samples b..b+S and outputs (b+s)*rows + o .. +4 lie inside x and out (fits).
        while b < batch {
            b += if batch - b >= 2 {
                emit_rows4::<F, 2>(w, cols, x.as_ptr().add(b * cols), bias, p.relu, out.add(b * rows + o), rows)
            } else {
                emit_rows4::<F, 1>(w, cols, x.as_ptr().add(b * cols), bias, p.relu, out.add(b * rows + o), rows)
            };
        }
        o += 4;
    }
    // The last rows % 4 channels, one at a time.
    while o < rows {
        let w = p.weights.as_ptr().add(o * row_bytes);
        let bias = le_f32(p.bias, o);
        for b in 0..batch {
            let (a, t) = float_tile::<F, 1, 1>(w, cols, x.as_ptr().add(b * cols));
            let y = vaddvq_f32(a[0][0]) + t[0][0] + bias;
            *out.add(b * rows + o) = if p.relu && y < 0.0 { 0.0 } else { y };
        }
        o += 1;
    }
}

/// Computes 4 channels for `S` samples and stores them at `out`, `out + rows`, ...; returns `S`.
///
/// # Safety
/// NEON; the reads of [`float_tile`]`::<F, 4, S>`, and 4 writable f32 at `out + s * rows` for
/// each `s < S`.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn emit_rows4<F: WeightFormat, const S: usize>(
    w: *const u8,
    cols: usize,
    x: *const f32,
    bias: float32x4_t,
    relu: bool,
    out: *mut f32,
    rows: usize,
) -> usize {
    let (acc, tail) = float_tile::<F, 4, S>(w, cols, x);
    // `acc` and `tail` are row-major; this walks their sample columns.
    #[allow(clippy::needless_range_loop)]
    for s in 0..S {
        // Pairwise adds leave lane r holding row r's total.
        let sums = vpaddq_f32(vpaddq_f32(acc[0][s], acc[1][s]), vpaddq_f32(acc[2][s], acc[3][s]));
        let tails = [tail[0][s], tail[1][s], tail[2][s], tail[3][s]];
        // `tails` is a 16-byte local: the load reads exactly it.
        let y = vaddq_f32(vaddq_f32(sums, vld1q_f32(tails.as_ptr())), bias);
        let y = if relu { vbslq_f32(vcltq_f32(y, vdupq_n_f32(0.0)), vdupq_n_f32(0.0), y) } else { y };
        vst1q_f32(out.add(s * rows), y);
    }
    S
}

/// Dot products of `R` weight rows (from `w`, `cols` weights apart) with `S` samples (from `x`,
/// `cols` apart): four f32 lanes to sum, plus the scalar sum of the last `cols % 4` columns.
///
/// # Safety
/// NEON; `R` rows of `cols * F::BYTES` bytes from `w` and `S` rows of `cols` f32 from `x` must
/// be readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn float_tile<F: WeightFormat, const R: usize, const S: usize>(
    w: *const u8,
    cols: usize,
    x: *const f32,
) -> ([[float32x4_t; S]; R], [[f32; S]; R]) {
    let row_bytes = cols * F::BYTES;
    let mut even = [[vdupq_n_f32(0.0); S]; R];
    // Second accumulators only for one sample; with two, the other sample's chains hide latency.
    let mut odd = [[vdupq_n_f32(0.0); S]; R];
    let mut x_lo = [vdupq_n_f32(0.0); S];
    let mut x_hi = [vdupq_n_f32(0.0); S];
    let mut k = 0;
    // Every load below reads columns k..k+8 (or k..k+4) of a row, inside it.
    while k + 8 <= cols {
        for (s, (lo, hi)) in x_lo.iter_mut().zip(&mut x_hi).enumerate() {
            *lo = vld1q_f32(x.add(s * cols + k));
            *hi = vld1q_f32(x.add(s * cols + k + 4));
        }
        for (r, (even_r, odd_r)) in even.iter_mut().zip(&mut odd).enumerate() {
            let (w_lo, w_hi) = F::load8(w.add(r * row_bytes + k * F::BYTES));
            for ((e, o), (&xl, &xh)) in even_r.iter_mut().zip(odd_r).zip(x_lo.iter().zip(&x_hi)) {
                *e = vfmaq_f32(*e, w_lo, xl);
                if S == 1 {
                    *o = vfmaq_f32(*o, w_hi, xh);
                } else {
                    *e = vfmaq_f32(*e, w_hi, xh);
                }
            }
        }
        k += 8;
    }
    if k + 4 <= cols {
        for (s, lo) in x_lo.iter_mut().enumerate() {
            *lo = vld1q_f32(x.add(s * cols + k));
        }
        for (r, even_r) in even.iter_mut().enumerate() {
            let w_lo = F::load4(w.add(r * row_bytes + k * F::BYTES));
            for (e, &xl) in even_r.iter_mut().zip(&x_lo) {
                *e = vfmaq_f32(*e, w_lo, xl);
            }
        }
        k += 4;
    }
    let mut tail = [[0f32; S]; R];
    for (r, (tail_r, (even_r, odd_r))) in tail.iter_mut().zip(even.iter_mut().zip(&odd)).enumerate() {
        for (s, (t, (e, &o))) in tail_r.iter_mut().zip(even_r.iter_mut().zip(odd_r)).enumerate() {
            for kk in k..cols {
                *t += F::load1(w.add(r * row_bytes + kk * F::BYTES)) * *x.add(s * cols + kk);
            }
            *e = vaddq_f32(*e, o);
        }
    }
    (even, tail)
}
