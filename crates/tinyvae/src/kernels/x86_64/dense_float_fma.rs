//! f16 and f32 Dense with AVX2-era instructions: F16C widens 8 f16 weights per step (exact),
//! FMA accumulates in f32, the reference's arithmetic up to summation order.
//!
//! One sample: 8 rows per pass sharing each activation load. Batches: 4 rows x 2 samples per
//! pass (each widened weight vector feeds both samples). Tails (`cols % 8`) go through small
//! zero-padded copies of exactly the tail's bytes: reading a neighbour row's weights here would
//! turn an infinite weight times a zero activation into NaN. Row and sample blocks are
//! full-width, the last one pulled back to end at the edge; narrow layers go one row at a time.

use core::arch::x86_64::*;

use super::{block_starts, has, Level};
use crate::kernels::reference::{self, le_f32};
use crate::kernels::DenseFloat;

/// Rows per pass of the one-sample kernel.
const ROWS: usize = 8;
/// Rows per pass of the batched kernel.
const ROW_BLOCK: usize = 4;
/// Samples per pass of the batched kernel.
const SAMPLE_BLOCK: usize = 2;
/// Activation bytes a sample group may occupy (half of a 32 KiB L1).
const GROUP_BYTES: usize = 16 * 1024;

/// See [`crate::kernels::DenseFloat`]; weights are little-endian IEEE binary16.
pub fn dense_f16(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if !has(Level::Avx2) {
        return reference::dense_f16(p, x, batch, out);
    }
    let batch = p.samples(2, x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: the CPU has AVX2, FMA and F16C (checked above); `samples` returned `batch` > 0, so
    // weights hold rows*cols 2-byte weights, bias 4*rows bytes, x batch*cols and out batch*rows
    // values.
    unsafe { run::<true>(p, x, batch, out) }
}

/// See [`crate::kernels::DenseFloat`]; weights are little-endian f32.
pub fn dense_f32(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if !has(Level::Avx2) {
        return reference::dense_f32(p, x, batch, out);
    }
    let batch = p.samples(4, x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: as in dense_f16, with 4-byte weights.
    unsafe { run::<false>(p, x, batch, out) }
}

/// Bytes per weight.
const fn weight_size<const F16: bool>() -> usize {
    if F16 {
        2
    } else {
        4
    }
}

/// # Safety
/// AVX2, FMA and F16C, and `p`'s buffers, `x` and `out` cover the shape (`DenseFloat::samples`).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn run<const F16: bool>(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    let (rows, cols) = (p.rows, p.cols);
    let out = out.as_mut_ptr();
    if batch >= SAMPLE_BLOCK && rows >= ROW_BLOCK {
        let blocks = batch.div_ceil(SAMPLE_BLOCK);
        let per_group = (GROUP_BYTES / (SAMPLE_BLOCK * 4 * cols)).max(1);
        let mut first = 0;
        while first < blocks {
            let group = first..(first + per_group).min(blocks);
            for o in block_starts(rows, ROW_BLOCK) {
                for b in block_starts(batch, SAMPLE_BLOCK).skip(group.start).take(group.len()) {
                    let xs = x.get(b * cols..(b + SAMPLE_BLOCK) * cols).unwrap_or(&[]);
                    // SAFETY: b + 2 <= batch and o + 4 <= rows (block_starts); xs holds both
                    // samples' inputs and their outputs are in bounds.
                    unsafe { rows4_samples2::<F16>(p, xs, out.add(b * rows), o) };
                }
            }
            first = group.end;
        }
        return;
    }
    for b in 0..batch {
        let xb = x.get(b * cols..(b + 1) * cols).unwrap_or(&[]);
        // SAFETY: b < batch: sample b's outputs are in bounds.
        let yb = unsafe { out.add(b * rows) };
        if rows >= ROWS {
            for o in block_starts(rows, ROWS) {
                // SAFETY: o + 8 <= rows; xb holds cols inputs.
                unsafe { rows8_sample1::<F16>(p, xb, yb, o) };
            }
        } else {
            for o in 0..rows {
                // SAFETY: o < rows; xb holds cols inputs.
                unsafe { row1_sample1::<F16>(p, xb, yb, o) };
            }
        }
    }
}

/// Weights `at..at+8` (elements), widened to f32.
///
/// # Safety
/// The 8 weights are inside the weight buffer.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn weights8<const F16: bool>(w: *const u8, at: usize) -> __m256 {
    // SAFETY: caller's contract; loadu has no alignment requirement.
    unsafe {
        if F16 {
            _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * at).cast()))
        } else {
            _mm256_loadu_ps(w.add(4 * at).cast())
        }
    }
}

/// The weights from element `at` to the end of its row (`n < 8` of them), zero-padded.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn weights_tail<const F16: bool>(w: &[u8], at: usize, n: usize) -> __m256 {
    let size = weight_size::<F16>();
    let mut buf = [0u8; 32];
    if let Some(src) = w.get(size * at..size * (at + n)) {
        buf[..src.len()].copy_from_slice(src);
    }
    // SAFETY: `buf` holds 32 bytes: 16 f16 or 8 f32, either is enough.
    unsafe { weights8::<F16>(buf.as_ptr(), 0) }
}

/// The last `n < 8` activations of a sample, zero-padded.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn activations_tail(x: &[f32]) -> __m256 {
    let mut buf = [0f32; 8];
    for (b, &v) in buf.iter_mut().zip(x) {
        *b = v;
    }
    // SAFETY: `buf` is 8 readable f32.
    unsafe { _mm256_loadu_ps(buf.as_ptr()) }
}

/// Horizontal sums of 8 vectors at once: lane `i` is the sum of `v[i]`'s lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn reduce8(v: &[__m256; 8]) -> __m256 {
    let h0 = _mm256_hadd_ps(_mm256_hadd_ps(v[0], v[1]), _mm256_hadd_ps(v[2], v[3]));
    let h1 = _mm256_hadd_ps(_mm256_hadd_ps(v[4], v[5]), _mm256_hadd_ps(v[6], v[7]));
    _mm256_add_ps(_mm256_permute2f128_ps::<0x20>(h0, h1), _mm256_permute2f128_ps::<0x31>(h0, h1))
}

/// Bias and optional ReLU; `max(0, v)` keeps NaN like the reference's `v < 0` test.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn finish(v: __m256, bias: __m256, relu: bool) -> __m256 {
    let v = _mm256_add_ps(v, bias);
    if relu {
        _mm256_max_ps(_mm256_setzero_ps(), v)
    } else {
        v
    }
}

/// Rows `o..o+8` of one sample.
///
/// # Safety
/// AVX2/FMA/F16C; `x` holds `cols` inputs, `out` points to `rows` outputs, `o + 8 <= rows`, and
/// `p`'s buffers cover its shape.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows8_sample1<const F16: bool>(p: &DenseFloat<'_>, x: &[f32], out: *mut f32, o: usize) {
    let cols = p.cols;
    let full = cols / 8 * 8;
    let w = p.weights.as_ptr();
    let mut acc = [_mm256_setzero_ps(); ROWS];
    let mut k = 0;
    while k < full {
        // SAFETY: x holds cols inputs, and k + 8 <= full <= cols.
        let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(k)) };
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: row o + r < rows is inside the weights, and k + 8 <= cols inside the row.
            let wv = unsafe { weights8::<F16>(w, (o + r) * cols + k) };
            *a = _mm256_fmadd_ps(wv, xv, *a);
        }
        k += 8;
    }
    if full < cols {
        let xv = activations_tail(x.get(full..).unwrap_or(&[]));
        for (r, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(weights_tail::<F16>(p.weights, (o + r) * cols + full, cols - full), xv, *a);
        }
    }
    // SAFETY: bias has rows f32 and out rows outputs; o + 8 <= rows.
    unsafe {
        let bias = _mm256_loadu_ps(p.bias.as_ptr().add(4 * o).cast());
        _mm256_storeu_ps(out.add(o), finish(reduce8(&acc), bias, p.relu));
    }
}

/// Rows `o..o+4` of two samples (`x` holds both samples' inputs, outputs at `out` and
/// `out + rows`).
///
/// # Safety
/// AVX2/FMA/F16C; `x` holds `2 * cols` inputs, `out` points to `2 * rows` outputs,
/// `o + 4 <= rows`, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows4_samples2<const F16: bool>(p: &DenseFloat<'_>, x: &[f32], out: *mut f32, o: usize) {
    let (rows, cols) = (p.rows, p.cols);
    let full = cols / 8 * 8;
    let w = p.weights.as_ptr();
    // acc[4 s + r]: row o+r of sample s.
    let mut acc = [_mm256_setzero_ps(); ROW_BLOCK * SAMPLE_BLOCK];
    let mut k = 0;
    while k < full {
        // SAFETY: rows o..o+4 are inside the weights (o + 4 <= rows), and k + 8 <= full <= cols
        // keeps each load inside its row.
        let wv: [__m256; ROW_BLOCK] = core::array::from_fn(|r| unsafe { weights8::<F16>(w, (o + r) * cols + k) });
        for s in 0..SAMPLE_BLOCK {
            // SAFETY: x holds both samples' cols inputs, and k + 8 <= cols.
            let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(s * cols + k)) };
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = _mm256_fmadd_ps(wv[r], xv, acc[ROW_BLOCK * s + r]);
            }
        }
        k += 8;
    }
    if full < cols {
        let wv: [__m256; ROW_BLOCK] =
            core::array::from_fn(|r| weights_tail::<F16>(p.weights, (o + r) * cols + full, cols - full));
        for s in 0..SAMPLE_BLOCK {
            let xv = activations_tail(x.get(s * cols + full..(s + 1) * cols).unwrap_or(&[]));
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = _mm256_fmadd_ps(wv[r], xv, acc[ROW_BLOCK * s + r]);
            }
        }
    }
    // SAFETY: bias has rows f32, o + 4 <= rows, and outputs o..o+4 of both samples are in bounds.
    unsafe {
        let bias4 = _mm_loadu_ps(p.bias.as_ptr().add(4 * o).cast());
        let bias = _mm256_set_m128(bias4, bias4);
        let y = finish(reduce8(&acc), bias, p.relu);
        _mm_storeu_ps(out.add(o), _mm256_castps256_ps128(y));
        _mm_storeu_ps(out.add(rows + o), _mm256_extractf128_ps::<1>(y));
    }
}

/// Row `o` of one sample, for layers narrower than an 8-row block.
///
/// # Safety
/// AVX2/FMA/F16C; `x` holds `cols` inputs, `out` points to `rows` outputs, `o < rows`, and `p`'s
/// buffers cover its shape.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn row1_sample1<const F16: bool>(p: &DenseFloat<'_>, x: &[f32], out: *mut f32, o: usize) {
    let cols = p.cols;
    let full = cols / 8 * 8;
    let mut acc = _mm256_setzero_ps();
    let mut k = 0;
    while k < full {
        // SAFETY: k + 8 <= cols: inside x and inside row o.
        let (xv, wv) =
            unsafe { (_mm256_loadu_ps(x.as_ptr().add(k)), weights8::<F16>(p.weights.as_ptr(), o * cols + k)) };
        acc = _mm256_fmadd_ps(wv, xv, acc);
        k += 8;
    }
    if full < cols {
        let xv = activations_tail(x.get(full..).unwrap_or(&[]));
        acc = _mm256_fmadd_ps(weights_tail::<F16>(p.weights, o * cols + full, cols - full), xv, acc);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` is 8 writable f32.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    let v = lanes.iter().sum::<f32>() + le_f32(p.bias, o);
    // SAFETY: o < rows.
    unsafe { out.add(o).write(if p.relu && v < 0.0 { 0.0 } else { v }) };
}
