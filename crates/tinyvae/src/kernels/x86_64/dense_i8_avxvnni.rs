//! int8 Dense with AVX-VNNI: the 256-bit VEX `vpdpbusd`, 32 multiply-accumulates per
//! instruction where AVX2 needs three (`vpsignb`, `vpmaddubsw`, `vpmaddwd`) plus an add.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the activations go in as `x ^ 0x80`
//! (`x + 128` as u8) and the epilogue takes `128 * weight_sums[o]` off each accumulator; the
//! products are exact and the int32 sums wrap like the reference's.
//!
//! Blocking and tails are those of `dense_i8_avx2`: 8 rows per pass for one sample, 4 rows x 2
//! samples for batches, zero-padded activation tails (padding is a u8 zero, not `0 ^ 0x80`, so
//! the weights beside it contribute nothing), full-width row blocks pulled back at the edge.

use core::arch::x86_64::*;

use super::dense_i8_avx2::pack8;
use super::param;
use super::requantize_avx2::{activation_tail, load32_or_pad, reduce8, Epilogue};
use super::{block_starts, has, Level};
use crate::kernels::reference;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Rows per pass of the one-sample kernel.
const ROWS: usize = 8;
/// Rows per pass of the batched kernel.
const ROW_BLOCK: usize = 4;
/// Samples per pass of the batched kernel.
const SAMPLE_BLOCK: usize = 2;
/// Activation bytes a sample group may occupy (half of a 32 KiB L1).
const GROUP_BYTES: usize = 16 * 1024;

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !has(Level::AvxVnni) {
        return reference::dense_i8(p, x, batch, out);
    }
    let batch = p.samples(x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: the CPU has AVX2 and AVX-VNNI (checked above); `samples` returned `batch` > 0, so
    // weights hold rows*cols bytes, every parameter array 4*rows, x batch*cols and out
    // batch*rows: the bounds every pointer below stays within.
    unsafe { run(p, x, batch, out) }
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn run(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let ep = Epilogue::new(p, true);
    let (rows, cols) = (p.rows, p.cols);
    // SAFETY: i8 and u8 have the same layout and validity.
    let x: &[u8] = unsafe { core::slice::from_raw_parts(x.as_ptr().cast(), x.len()) };
    let out = out.as_mut_ptr();
    if batch >= SAMPLE_BLOCK && rows >= ROW_BLOCK {
        let blocks = batch.div_ceil(SAMPLE_BLOCK);
        let per_group = (GROUP_BYTES / (SAMPLE_BLOCK * cols)).max(1);
        let mut first = 0;
        while first < blocks {
            let group = first..(first + per_group).min(blocks);
            for o in block_starts(rows, ROW_BLOCK) {
                for b in block_starts(batch, SAMPLE_BLOCK).skip(group.start).take(group.len()) {
                    let xs = x.get(b * cols..(b + SAMPLE_BLOCK) * cols).unwrap_or(&[]);
                    // SAFETY: b + 2 <= batch and o + 4 <= rows (block_starts); xs holds the two
                    // samples' inputs (`samples`), and their outputs are in bounds.
                    unsafe { rows4_samples2(p, &ep, xs, out.add(b * rows), o) };
                }
            }
            first = group.end;
        }
        return;
    }
    for b in 0..batch {
        let xb = x.get(b * cols..(b + 1) * cols).unwrap_or(&[]);
        // SAFETY: b < batch: sample b's rows outputs are in bounds.
        let yb = unsafe { out.add(b * rows) };
        if rows >= ROWS {
            for o in block_starts(rows, ROWS) {
                // SAFETY: o + 8 <= rows; xb holds cols inputs.
                unsafe { rows8_sample1(p, &ep, xb, yb, o) };
            }
        } else {
            for o in 0..rows {
                // SAFETY: o < rows; xb holds cols inputs.
                unsafe { row1_sample1(p, xb, yb, o) };
            }
        }
    }
}

/// `acc + x . w` over 32 byte pairs, `xu` being `x ^ 0x80`.
#[target_feature(enable = "avx2,avxvnni")]
#[inline]
fn dot32(acc: __m256i, xu: __m256i, w: __m256i) -> __m256i {
    _mm256_dpbusd_avx_epi32(acc, xu, w)
}

/// Rows `o..o+8` of one sample.
///
/// # Safety
/// AVX2 and AVX-VNNI; `x` holds `cols` inputs, `out` points to `rows` outputs, `o + 8 <= rows`, and `p`'s
/// buffers cover its shape.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn rows8_sample1(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: &[u8], out: *mut i8, o: usize) {
    let cols = p.cols;
    let full = cols / 32 * 32;
    let flip = _mm256_set1_epi8(-128);
    // SAFETY: rows o..o+8 are inside the weights (o + 8 <= rows), so their start is too.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    let mut acc = [_mm256_setzero_si256(); ROWS];
    let mut k = 0;
    while k < full {
        // SAFETY: x holds cols bytes, and k + 32 <= full <= cols.
        let xu = _mm256_xor_si256(unsafe { _mm256_loadu_si256(x.as_ptr().add(k).cast()) }, flip);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: row o + r < rows, and k + 32 <= cols keeps the load inside it.
            let wv = unsafe { _mm256_loadu_si256(w.add(r * cols + k).cast()) };
            *a = dot32(*a, xu, wv);
        }
        k += 32;
    }
    if full < cols {
        let xu = activation_tail(x.get(full..).unwrap_or(&[]), |v| v ^ 0x80);
        for (r, a) in acc.iter_mut().enumerate() {
            *a = dot32(*a, xu, load32_or_pad(p.weights, (o + r) * cols + full));
        }
    }
    // SAFETY: o + 8 <= rows (caller); the 8 outputs are in bounds.
    unsafe {
        let y = ep.rows8(reduce8(&acc), o);
        out.add(o).cast::<u64>().write_unaligned(pack8(y));
    }
}

/// Rows `o..o+4` of two samples (`x` holds both samples' inputs, outputs at `out` and
/// `out + rows`).
///
/// # Safety
/// AVX2 and AVX-VNNI; `x` holds `2 * cols` inputs, `out` points to `2 * rows` outputs, `o + 4 <= rows`, and
/// `p`'s buffers cover its shape.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn rows4_samples2(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: &[u8], out: *mut i8, o: usize) {
    let (rows, cols) = (p.rows, p.cols);
    let full = cols / 32 * 32;
    let flip = _mm256_set1_epi8(-128);
    // SAFETY: rows o..o+4 are inside the weights (o + 4 <= rows), so their start is too.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    // acc[4 s + r]: row o+r of sample s.
    let mut acc = [_mm256_setzero_si256(); ROW_BLOCK * SAMPLE_BLOCK];
    let mut k = 0;
    while k < full {
        // SAFETY: rows o..o+4 < rows, and k + 32 <= full <= cols keeps each load inside its row.
        let wv: [__m256i; ROW_BLOCK] =
            core::array::from_fn(|r| unsafe { _mm256_loadu_si256(w.add(r * cols + k).cast()) });
        for s in 0..SAMPLE_BLOCK {
            // SAFETY: x holds both samples' cols bytes, and k + 32 <= cols.
            let xu = _mm256_xor_si256(unsafe { _mm256_loadu_si256(x.as_ptr().add(s * cols + k).cast()) }, flip);
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = dot32(acc[ROW_BLOCK * s + r], xu, wv[r]);
            }
        }
        k += 32;
    }
    if full < cols {
        let wv: [__m256i; ROW_BLOCK] = core::array::from_fn(|r| load32_or_pad(p.weights, (o + r) * cols + full));
        for s in 0..SAMPLE_BLOCK {
            let xu = activation_tail(x.get(s * cols + full..(s + 1) * cols).unwrap_or(&[]), |v| v ^ 0x80);
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = dot32(acc[ROW_BLOCK * s + r], xu, wv[r]);
            }
        }
    }
    // SAFETY: o + 4 <= rows (caller); outputs o..o+4 of both samples are in bounds.
    unsafe {
        let bytes = pack8(ep.rows4x2(reduce8(&acc), o));
        out.add(o).cast::<u32>().write_unaligned(bytes as u32);
        out.add(rows + o).cast::<u32>().write_unaligned((bytes >> 32) as u32);
    }
}

/// Row `o` of one sample, for layers narrower than an 8-row block.
///
/// # Safety
/// AVX2 and AVX-VNNI; `x` holds `cols` inputs, `out` points to `rows` outputs, `o < rows`, and `p`'s buffers
/// cover its shape.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn row1_sample1(p: &DenseI8<'_>, x: &[u8], out: *mut i8, o: usize) {
    let cols = p.cols;
    let full = cols / 32 * 32;
    let flip = _mm256_set1_epi8(-128);
    let mut acc = _mm256_setzero_si256();
    let mut k = 0;
    while k < full {
        // SAFETY: k + 32 <= cols: inside x and inside row o.
        let (xv, wv) = unsafe {
            (
                _mm256_loadu_si256(x.as_ptr().add(k).cast()),
                _mm256_loadu_si256(p.weights.as_ptr().add(o * cols + k).cast()),
            )
        };
        acc = dot32(acc, _mm256_xor_si256(xv, flip), wv);
        k += 32;
    }
    if full < cols {
        let xu = activation_tail(x.get(full..).unwrap_or(&[]), |v| v ^ 0x80);
        acc = dot32(acc, xu, load32_or_pad(p.weights, o * cols + full));
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    let acc = lanes
        .iter()
        .fold(param(p.bias, o), |a, &l| a.wrapping_add(l))
        .wrapping_sub(param(p.weight_sums, o).wrapping_mul(128));
    let y = requantize(acc, param(p.multipliers, o), param(p.shifts, o), p.out_zero_point, p.act_min, p.act_max);
    // SAFETY: o < rows.
    unsafe { out.add(o).write(y) };
}
