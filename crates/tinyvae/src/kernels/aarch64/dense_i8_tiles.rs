//! The int8 Dense driver shared by the NEON and `sdot` kernels: tiling, tails, reduction and
//! epilogue. The two kernels differ only in how 16 int8 products reach the int32 lanes (a
//! [`DotStep`]).
//!
//! Tiles are 4 output rows by up to 4 samples: each loaded weight vector feeds every sample of
//! the tile, each loaded input vector every row. Row tiles are the outer loop so that the
//! `4 x cols` weight block stays in L1 while the batch streams past it, and the requantization
//! parameters are prepared once per row tile. (8 rows by 1 sample was tried for batch 1: LLVM
//! then chains the row addresses through extra adds, and the loop gets no shorter per MAC.)
//!
//! The last `cols % 16` columns are read as the row's last 16 bytes with the already-counted
//! lanes of the input zeroed, so every load stays inside its row (this needs `cols >= 16`;
//! narrower layers go to the reference).

use core::arch::aarch64::*;

use super::requantize::ChannelQuant4;
use crate::kernels::reference::le_i32;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// How one kernel adds 16 int8 products into four int32 lanes.
pub(super) trait DotStep {
    /// `acc` plus the 16 products `w[i] * x[i]`, spread over the four lanes in any way (the
    /// lanes are summed at the end).
    ///
    /// # Safety
    /// The CPU must support the instructions of the implementation.
    unsafe fn step(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

/// True when the vector driver may run: `cols >= 16`, and the slices hold the whole batch
/// ([`DenseI8::samples`] gives all of it). Anything else goes to the scalar reference, which
/// keeps the kernel contract for short slices too.
pub(super) fn fits(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &[i8]) -> bool {
    p.cols >= 16 && batch > 0 && p.samples(x, batch, out) == batch
}

/// int8 Dense over the batch with `D` as the inner product.
///
/// # Safety
/// The CPU must support NEON and `D`'s instructions, and [`fits`]`(p, x, batch, out)` must hold:
/// every pointer below is derived from those checked lengths.
#[target_feature(enable = "neon")]
pub(super) unsafe fn dense_i8_tiled<D: DotStep>(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let (rows, cols) = (p.rows, p.cols);
    let tail_mask = tail_mask(cols);
    let mut o = 0;
    while o + 4 <= rows {
        let tile = RowTile::new(p, o, tail_mask);
        let mut b = 0;
        while b < batch {
            b += match batch - b {
                4.. => tile.emit::<D, 4>(x, b, rows, o, out),
                2 | 3 => tile.emit::<D, 2>(x, b, rows, o, out),
                _ => tile.emit::<D, 1>(x, b, rows, o, out),
            };
        }
        o += 4;
    }
    // The last rows % 4 channels, one at a time, with the scalar epilogue.
    while o < rows {
        let (bias, m, s) = (le_i32(p.bias, o), le_i32(p.multipliers, o), le_i32(p.shifts, o));
        let row = (p.weights.as_ptr() as *const i8).add(o * cols);
        let mut b = 0;
        while b < batch {
            let emitted = if batch - b >= 4 { 4 } else { 1 };
            let mut sums = [0i32; 4];
            if emitted == 4 {
                let acc = dot_tile::<D, 1, 4>(row, cols, x.as_ptr().add(b * cols), tail_mask);
                for (sum, lanes) in sums.iter_mut().zip(acc[0]) {
                    *sum = vaddvq_s32(lanes);
                }
            } else {
                sums[0] = vaddvq_s32(dot_tile::<D, 1, 1>(row, cols, x.as_ptr().add(b * cols), tail_mask)[0][0]);
            }
            for (s_off, &sum) in sums.iter().enumerate().take(emitted) {
                let q = requantize(sum.wrapping_add(bias), m, s, p.out_zero_point, p.act_min, p.act_max);
                if let Some(y) = out.get_mut((b + s_off) * rows + o) {
                    *y = q;
                }
            }
            b += emitted;
        }
        o += 1;
    }
}

/// Four consecutive output channels and what they share across the batch.
struct RowTile {
    /// First weight of the tile's first row.
    weights: *const i8,
    cols: usize,
    tail_mask: int8x16_t,
    bias: int32x4_t,
    quant: ChannelQuant4,
}

impl RowTile {
    /// Channels `o..o + 4`.
    ///
    /// # Safety
    /// As [`dense_i8_tiled`], with `o + 4 <= rows`.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn new(p: &DenseI8<'_>, o: usize, tail_mask: int8x16_t) -> Self {
        RowTile {
            weights: (p.weights.as_ptr() as *const i8).add(o * p.cols),
            cols: p.cols,
            tail_mask,
            bias: load_channels(p.bias, o),
            quant: ChannelQuant4::new(
                load_channels(p.multipliers, o),
                load_channels(p.shifts, o),
                p.out_zero_point,
                p.act_min,
                p.act_max,
            ),
        }
    }

    /// Computes the tile's 4 channels for samples `b..b + S` and stores them; returns `S`.
    ///
    /// # Safety
    /// As [`dense_i8_tiled`], with `b + S <= batch` and `o + 4 <= rows`.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn emit<D: DotStep, const S: usize>(
        &self,
        x: &[i8],
        b: usize,
        rows: usize,
        o: usize,
        out: &mut [i8],
    ) -> usize {
        let acc = dot_tile::<D, 4, S>(self.weights, self.cols, x.as_ptr().add(b * self.cols), self.tail_mask);
        // `acc` is row-major; this walks its sample columns.
        #[allow(clippy::needless_range_loop)]
        for s in 0..S {
            self.finish([acc[0][s], acc[1][s], acc[2][s], acc[3][s]], (b + s) * rows + o, out);
        }
        S
    }

    /// Sums each row's lanes, adds the bias, requantizes and stores the 4 codes at `out[at..]`.
    ///
    /// # Safety
    /// NEON.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn finish(&self, row_lanes: [int32x4_t; 4], at: usize, out: &mut [i8]) {
        let [r0, r1, r2, r3] = row_lanes;
        // Pairwise adds leave lane r holding row r's total.
        let sums = vpaddq_s32(vpaddq_s32(r0, r1), vpaddq_s32(r2, r3));
        let codes = self.quant.apply(vaddq_s32(sums, self.bias)).to_le_bytes();
        if let Some(y) = out.get_mut(at..at + 4) {
            for (y, code) in y.iter_mut().zip(codes) {
                *y = code as i8;
            }
        }
    }
}

/// Partial dot products of `R` weight rows (starting at `w`, `cols` apart) with `S` samples
/// (starting at `x`, `cols` apart), each as four int32 lanes still to be summed.
///
/// # Safety
/// The CPU must support NEON and `D`'s instructions; `cols >= 16`; `R` rows of `cols` bytes
/// from `w` and `S` rows of `cols` bytes from `x` must be readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_tile<D: DotStep, const R: usize, const S: usize>(
    w: *const i8,
    cols: usize,
    x: *const i8,
    tail_mask: int8x16_t,
) -> [[int32x4_t; S]; R] {
    let mut acc = [[vdupq_n_s32(0); S]; R];
    // One base per row and sample, all indexed by the same column.
    let w_rows: [*const i8; R] = core::array::from_fn(|r| w.add(r * cols));
    let x_rows: [*const i8; S] = core::array::from_fn(|s| x.add(s * cols));
    let keep_all = vdupq_n_s8(-1);
    let mut k = 0;
    // Every step reads bytes k..k+16 of each row with k + 16 <= cols.
    if S == 1 {
        // A single sample has few instructions per step, so the loop's own three weigh more:
        // two steps per iteration.
        while k + 32 <= cols {
            accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k, keep_all);
            accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k + 16, keep_all);
            k += 32;
        }
    }
    while k + 16 <= cols {
        accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k, keep_all);
        k += 16;
    }
    if k < cols {
        // The row's last 16 bytes (cols >= 16, so they start inside the row); the lanes before
        // k were counted above, and zeroing their inputs drops them.
        accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, cols - 16, tail_mask);
    }
    acc
}

/// Adds columns `k..k + 16` (inputs masked by `x_mask`) of every row and sample into `acc`.
///
/// # Safety
/// NEON and `D`'s instructions; bytes `k..k + 16` readable from every row and sample base.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn accumulate<D: DotStep, const R: usize, const S: usize>(
    acc: &mut [[int32x4_t; S]; R],
    w_rows: &[*const i8; R],
    x_rows: &[*const i8; S],
    k: usize,
    x_mask: int8x16_t,
) {
    let mut xv = [vdupq_n_s8(0); S];
    for (v, &x_row) in xv.iter_mut().zip(x_rows) {
        *v = vandq_s8(vld1q_s8(x_row.add(k)), x_mask);
    }
    for (acc_r, &w_row) in acc.iter_mut().zip(w_rows) {
        let wv = vld1q_s8(w_row.add(k));
        for (a, &xs) in acc_r.iter_mut().zip(&xv) {
            *a = D::step(*a, wv, xs);
        }
    }
}

/// The little-endian int32 values of channels `o..o + 4` from a per-channel byte array.
///
/// # Safety
/// NEON; `bytes.len() >= 4 * (o + 4)` ([`fits`] checks `4 * rows` bytes).
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_channels(bytes: &[u8], o: usize) -> int32x4_t {
    // A byte load has no alignment requirement (blob arrays are only 16-aligned as a whole).
    vreinterpretq_s32_u8(vld1q_u8(bytes.as_ptr().add(4 * o)))
}

/// All-ones in the last `cols % 16` lanes: the lanes of the final overlapping load that the
/// full 16-column steps haven't counted.
///
/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tail_mask(cols: usize) -> int8x16_t {
    const LANE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    let first_new_lane = (16 - cols % 16) as u8;
    // LANE is a 16-byte constant: the load reads exactly it.
    vreinterpretq_s8_u8(vcgeq_u8(vld1q_u8(LANE.as_ptr()), vdupq_n_u8(first_new_lane)))
}
