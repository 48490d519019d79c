//! f16 and f32 Dense with AVX-512: 16 weights per step, widened from f16 by `vcvtph2ps`
//! (exact) and accumulated in f32 with FMA, the reference's arithmetic up to summation order.
//!
//! The blocking is that of the int8 AVX-512 kernel: 16 rows per pass for one sample (each
//! activation load feeds 16 weight streams; the 16 accumulators reduce in one transposing
//! tree), 4 rows x 4 samples per pass for batches (each widened weight vector feeds 4 samples).
//! The last 1..=15 columns use masked loads; row and sample blocks are full-width, the last one
//! pulled back to end at the edge; layers narrower than 16 rows go one row at a time.

use core::arch::x86_64::*;

use super::{block_starts, has, Level};
use crate::kernels::reference::{self, le_f32};
use crate::kernels::DenseFloat;

/// Rows per pass of the one-sample kernel.
const ROWS: usize = 16;
/// Rows and samples per pass of the batched kernel.
const BLOCK: usize = 4;
/// Activation bytes a sample group may occupy (half of a 32 KiB L1).
const GROUP_BYTES: usize = 16 * 1024;

/// See [`crate::kernels::DenseFloat`]; weights are little-endian IEEE binary16.
pub fn dense_f16(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if !has(Level::Avx512Vnni) {
        return reference::dense_f16(p, x, batch, out);
    }
    let batch = p.samples(2, x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); `samples` returned `batch` > 0, so
    // weights hold rows*cols 2-byte weights, bias 4*rows bytes, x batch*cols and out batch*rows
    // values.
    unsafe { run::<true>(p, x, batch, out) }
}

/// See [`crate::kernels::DenseFloat`]; weights are little-endian f32.
pub fn dense_f32(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if !has(Level::Avx512Vnni) {
        return reference::dense_f32(p, x, batch, out);
    }
    let batch = p.samples(4, x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: as in dense_f16, with 4-byte weights.
    unsafe { run::<false>(p, x, batch, out) }
}

/// # Safety
/// AVX-512 F/BW/VL, and `p`'s buffers, `x` and `out` cover the shape (`DenseFloat::samples`)
/// with `2` (F16) or `4` byte weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn run<const F16: bool>(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    let (rows, cols) = (p.rows, p.cols);
    let (x, out) = (x.as_ptr(), out.as_mut_ptr());
    if batch >= BLOCK && rows >= BLOCK {
        let blocks = batch.div_ceil(BLOCK);
        let per_group = (GROUP_BYTES / (BLOCK * 4 * cols)).max(1);
        let mut first = 0;
        while first < blocks {
            let group = first..(first + per_group).min(blocks);
            for o in block_starts(rows, BLOCK) {
                for b in block_starts(batch, BLOCK).skip(group.start).take(group.len()) {
                    // SAFETY: b + 4 <= batch and o + 4 <= rows (block_starts).
                    unsafe { rows4_samples4::<F16>(p, x.add(b * cols), out.add(b * rows), o) };
                }
            }
            first = group.end;
        }
        return;
    }
    for b in 0..batch {
        // SAFETY: b < batch: sample b's inputs and outputs are in bounds.
        let (xb, yb) = unsafe { (x.add(b * cols), out.add(b * rows)) };
        if F16 && rows >= ROWS && (32..=SPLIT_MAX_COLS).contains(&cols) {
            let mut split = [0f32; SPLIT_MAX_COLS];
            // SAFETY: xb points to cols inputs; split holds SPLIT_MAX_COLS >= cols floats.
            if unsafe { split_scaled(xb, cols, &mut split) } {
                for o in block_starts(rows, ROWS) {
                    // SAFETY: o + 16 <= rows; split was filled for these inputs.
                    unsafe { rows16_sample1_f16_split(p, xb, &split, yb, o) };
                }
                continue;
            }
        }
        if rows >= ROWS {
            for o in block_starts(rows, ROWS) {
                // SAFETY: o + 16 <= rows.
                unsafe { rows16_sample1::<F16>(p, xb, yb, o) };
            }
        } else {
            for o in 0..rows {
                // SAFETY: o < rows.
                unsafe { row1_sample1::<F16>(p, xb, yb, o) };
            }
        }
    }
}

/// Widest layer whose inputs the integer-widening f16 path keeps (de-interleaved) on the stack.
const SPLIT_MAX_COLS: usize = 2048;
/// `2^112`: an f16's magnitude bits shifted into an f32's place read as `|w| * 2^-112`.
const TWO_POW_112: f32 = 5.192_297e33;

/// Fills `split` with the inputs of the 32-column steps de-interleaved and scaled by 2^112: per
/// 32 columns, 16 even ones then 16 odd ones (the order in which [`rows16_sample1_f16_split`]
/// unpacks a 64-byte load of f16 weights). Returns false, leaving the vcvtph2ps path to run,
/// when some |x| >= 2^15 (its scaled value could overflow) or is NaN.
///
/// # Safety
/// AVX-512 F; `x` points to `cols <= SPLIT_MAX_COLS` inputs.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn split_scaled(x: *const f32, cols: usize, split: &mut [f32; SPLIT_MAX_COLS]) -> bool {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let scale = _mm512_set1_ps(TWO_POW_112);
    let limit = _mm512_set1_ps(32768.0);
    let mut ok: __mmask16 = 0xFFFF;
    let mut k = 0;
    while k + 32 <= cols {
        // SAFETY: columns k..k+32 are inside x; split has room for them.
        unsafe {
            let (a, b) = (_mm512_loadu_ps(x.add(k)), _mm512_loadu_ps(x.add(k + 16)));
            // |x| < 2^15 (false for NaN): the scaled value stays finite.
            ok &= _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(a), limit)
                & _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(b), limit);
            let s = split.as_mut_ptr().add(k);
            _mm512_storeu_ps(s, _mm512_mul_ps(_mm512_permutex2var_ps(a, even, b), scale));
            _mm512_storeu_ps(s.add(16), _mm512_mul_ps(_mm512_permutex2var_ps(a, odd, b), scale));
        }
        k += 32;
    }
    ok == 0xFFFF
}

/// [`rows16_sample1`] for f16 weights without `vcvtph2ps`, whose throughput bounds that loop.
/// One 64-byte load holds 32 weights, two per dword. With a weight in a dword's top half (the
/// odd one is; the even one is shifted there), an arithmetic shift right by 3 and a mask put
/// its sign, exponent and mantissa where an f32's go, which reads as `w * 2^-112` exactly
/// (subnormals included). The inputs are pre-scaled by 2^112 ([`split_scaled`]), so each product
/// is exactly `w * x` and every FMA matches the `vcvtph2ps` path's; the columns after the last
/// 32-column step take that path. (Non-finite f16 weights, which the quantizer never writes,
/// read as large finite ones here.)
///
/// # Safety
/// AVX-512 F/BW/VL; `x` points to `cols` inputs and `split` holds them as [`split_scaled`]
/// wrote; `out` to `rows` outputs, `o + 16 <= rows`, and `p`'s buffers cover its shape with
/// f16 weights.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn rows16_sample1_f16_split(
    p: &DenseFloat<'_>,
    x: *const f32,
    split: &[f32; SPLIT_MAX_COLS],
    out: *mut f32,
    o: usize,
) {
    let cols = p.cols;
    let w = p.weights.as_ptr();
    let full = cols / 32 * 32;
    // Sign, exponent and mantissa of an f16 held in a dword's top half, after an arithmetic
    // shift right by 3: bits 28..31 are all the sign; keep bit 31 and the 15 bits below 28.
    let bits = _mm512_set1_epi32(0x8FFF_E000_u32 as i32);
    let xs = split.as_ptr();
    let mut partial = [_mm512_setzero_ps(); ROWS];
    for (r, part) in partial.iter_mut().enumerate() {
        let row = (o + r) * cols;
        let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut k = 0;
        // SAFETY: row o + r < rows is inside the weights; k + 32 <= full <= cols keeps each load
        // inside the row (2 bytes a weight) and inside `split`, and `row_rest` reads the rest of
        // the row and of x with masked loads.
        unsafe {
            while k < full {
                let d = _mm512_loadu_si512(w.add(2 * (row + k)).cast());
                let lo =
                    _mm512_castsi512_ps(_mm512_and_si512(_mm512_srai_epi32::<3>(_mm512_slli_epi32::<16>(d)), bits));
                let hi = _mm512_castsi512_ps(_mm512_and_si512(_mm512_srai_epi32::<3>(d), bits));
                even = _mm512_fmadd_ps(lo, _mm512_loadu_ps(xs.add(k)), even);
                odd = _mm512_fmadd_ps(hi, _mm512_loadu_ps(xs.add(k + 16)), odd);
                k += 32;
            }
            (even, odd) = row_rest::<true>(w, x, row, k, cols, (even, odd));
        }
        *part = _mm512_add_ps(even, odd);
    }
    // SAFETY: o + 16 <= rows.
    unsafe { store_rows16(p, &partial, out, o) };
}

/// Weights `k..k+16` of the row starting at element `row`, widened to f32.
///
/// # Safety
/// The 16 weights are inside the weight buffer.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn weights16<const F16: bool>(w: *const u8, at: usize) -> __m512 {
    // SAFETY: caller's contract; loadu has no alignment requirement.
    unsafe {
        if F16 {
            _mm512_cvtph_ps(_mm256_loadu_si256(w.add(2 * at).cast()))
        } else {
            _mm512_loadu_ps(w.add(4 * at).cast())
        }
    }
}

/// The weights of `m` from element `at`, zero elsewhere.
///
/// # Safety
/// The weights selected by `m` are inside the weight buffer; the others are not accessed.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn weights16_masked<const F16: bool>(m: __mmask16, w: *const u8, at: usize) -> __m512 {
    // SAFETY: caller's contract; masked-off elements are not accessed.
    unsafe {
        if F16 {
            _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w.add(2 * at).cast()))
        } else {
            _mm512_maskz_loadu_ps(m, w.add(4 * at).cast())
        }
    }
}

/// Mask of the first `n` (< 16) elements.
#[inline]
fn low_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Horizontal sums of 16 vectors at once: lane `i` is the sum of `v[i]`'s lanes.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce16(v: &[__m512; 16]) -> __m512 {
    let pair = |a: __m512, b: __m512| _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    let quad = |a: __m512, b: __m512| {
        let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
        _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)))
    };
    let lanes = |a: __m512, b: __m512| {
        _mm512_add_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b))
    };
    let q0 = quad(pair(v[0], v[1]), pair(v[2], v[3]));
    let q1 = quad(pair(v[4], v[5]), pair(v[6], v[7]));
    let q2 = quad(pair(v[8], v[9]), pair(v[10], v[11]));
    let q3 = quad(pair(v[12], v[13]), pair(v[14], v[15]));
    lanes(lanes(q0, q1), lanes(q2, q3))
}

/// Bias and optional ReLU; `max(0, v)` keeps NaN (like the reference's `v < 0` test) because
/// `vmaxps` returns its second operand when either is NaN.
#[target_feature(enable = "avx512f")]
#[inline]
fn finish(v: __m512, bias: __m512, relu: bool) -> __m512 {
    let v = _mm512_add_ps(v, bias);
    if relu {
        _mm512_max_ps(_mm512_setzero_ps(), v)
    } else {
        v
    }
}

/// Rows `o..o+16` of one sample, row after row so that the weights stream in address order
/// (the activations, at most a few KiB, stay in L1 and feed the FMAs as memory operands).
/// Interleaving the 16 rows column by column instead measured 1.3x slower at 784 x 400.
///
/// # Safety
/// AVX-512 F/BW/VL; `x` points to `cols` inputs, `out` to `rows` outputs, `o + 16 <= rows`,
/// and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn rows16_sample1<const F16: bool>(p: &DenseFloat<'_>, x: *const f32, out: *mut f32, o: usize) {
    let cols = p.cols;
    let w = p.weights.as_ptr();
    let mut partial = [_mm512_setzero_ps(); ROWS];
    for (r, part) in partial.iter_mut().enumerate() {
        let row = (o + r) * cols;
        // Two chains halve the wait on the FMA latency.
        let (mut even, mut odd) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut k = 0;
        // SAFETY: row o + r < rows is inside the weights; k + 32 <= cols keeps each load inside
        // the row and inside x, and `row_rest` reads the rest with masked loads.
        unsafe {
            while k + 32 <= cols {
                even = _mm512_fmadd_ps(weights16::<F16>(w, row + k), _mm512_loadu_ps(x.add(k)), even);
                odd = _mm512_fmadd_ps(weights16::<F16>(w, row + k + 16), _mm512_loadu_ps(x.add(k + 16)), odd);
                k += 32;
            }
            (even, odd) = row_rest::<F16>(w, x, row, k, cols, (even, odd));
        }
        *part = _mm512_add_ps(even, odd);
    }
    // SAFETY: o + 16 <= rows.
    unsafe { store_rows16(p, &partial, out, o) };
}

/// Columns `k..cols` (fewer than 32) of the row starting at element `row`: one full step of 16
/// into the first accumulator if there is room, the masked rest into the second.
///
/// # Safety
/// AVX-512 F/BW/VL; the row's `cols` weights and `x`'s `cols` inputs are readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn row_rest<const F16: bool>(
    w: *const u8,
    x: *const f32,
    row: usize,
    mut k: usize,
    cols: usize,
    (mut even, mut odd): (__m512, __m512),
) -> (__m512, __m512) {
    // SAFETY: the row's cols weights and x's cols inputs are readable (caller); k + 16 <= cols
    // keeps the full load inside both, and the tail loads are masked to the cols - k left.
    unsafe {
        if k + 16 <= cols {
            even = _mm512_fmadd_ps(weights16::<F16>(w, row + k), _mm512_loadu_ps(x.add(k)), even);
            k += 16;
        }
        if k < cols {
            let m = low_lanes(cols - k);
            odd = _mm512_fmadd_ps(weights16_masked::<F16>(m, w, row + k), _mm512_maskz_loadu_ps(m, x.add(k)), odd);
        }
    }
    (even, odd)
}

/// Outputs `o..o+16`: the 16 rows' partial sums reduced, plus bias, optional ReLU.
///
/// # Safety
/// AVX-512 F/BW/VL; `o + 16 <= rows`, `out` points to `rows` outputs, `p.bias` holds `rows` f32.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn store_rows16(p: &DenseFloat<'_>, partial: &[__m512; ROWS], out: *mut f32, o: usize) {
    // SAFETY: the caller's contract.
    unsafe {
        let bias = _mm512_loadu_ps(p.bias.as_ptr().add(4 * o).cast());
        _mm512_storeu_ps(out.add(o), finish(reduce16(partial), bias, p.relu));
    }
}

/// Rows `o..o+4` of samples `0..4` (inputs `x + s*cols`, outputs `out + s*rows`).
///
/// # Safety
/// AVX-512 F/BW/VL; 4 samples of inputs and outputs from `x` and `out`, `o + 4 <= rows`, and
/// `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn rows4_samples4<const F16: bool>(p: &DenseFloat<'_>, x: *const f32, out: *mut f32, o: usize) {
    let (rows, cols) = (p.rows, p.cols);
    let w = p.weights.as_ptr();
    let row0 = o * cols;
    // acc[4 s + r]: row o+r of sample s.
    let mut acc = [_mm512_setzero_ps(); BLOCK * BLOCK];
    let mut k = 0;
    while k + 16 <= cols {
        // SAFETY: rows o..o+4 are inside the weights (o + 4 <= rows), and k + 16 <= cols keeps
        // each load inside its row.
        let wv: [__m512; BLOCK] = core::array::from_fn(|r| unsafe { weights16::<F16>(w, row0 + r * cols + k) });
        for s in 0..BLOCK {
            // SAFETY: sample s < 4 is inside x, and k + 16 <= cols keeps the load inside it.
            let xv = unsafe { _mm512_loadu_ps(x.add(s * cols + k)) };
            for r in 0..BLOCK {
                acc[BLOCK * s + r] = _mm512_fmadd_ps(wv[r], xv, acc[BLOCK * s + r]);
            }
        }
        k += 16;
    }
    if k < cols {
        let m = low_lanes(cols - k);
        // SAFETY: rows o..o+4 are inside the weights; the mask keeps each load to the cols - k
        // weights left in its row.
        let wv: [__m512; BLOCK] =
            core::array::from_fn(|r| unsafe { weights16_masked::<F16>(m, w, row0 + r * cols + k) });
        for s in 0..BLOCK {
            // SAFETY: sample s < 4 is inside x; the mask keeps the load to its cols - k inputs left.
            let xv = unsafe { _mm512_maskz_loadu_ps(m, x.add(s * cols + k)) };
            for r in 0..BLOCK {
                acc[BLOCK * s + r] = _mm512_fmadd_ps(wv[r], xv, acc[BLOCK * s + r]);
            }
        }
    }
    // SAFETY: bias has rows f32, o + 4 <= rows, and outputs o..o+4 of samples 0..4 are in bounds.
    unsafe {
        let bias = _mm512_broadcast_f32x4(_mm_loadu_ps(p.bias.as_ptr().add(4 * o).cast()));
        let y = finish(reduce16(&acc), bias, p.relu);
        _mm_storeu_ps(out.add(o), _mm512_extractf32x4_ps::<0>(y));
        _mm_storeu_ps(out.add(rows + o), _mm512_extractf32x4_ps::<1>(y));
        _mm_storeu_ps(out.add(2 * rows + o), _mm512_extractf32x4_ps::<2>(y));
        _mm_storeu_ps(out.add(3 * rows + o), _mm512_extractf32x4_ps::<3>(y));
    }
}

/// Row `o` of one sample, for layers narrower than a 16-row block.
///
/// # Safety
/// AVX-512 F/BW/VL; `x` points to `cols` inputs, `out` to `rows` outputs, `o < rows`, and `p`'s
/// buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn row1_sample1<const F16: bool>(p: &DenseFloat<'_>, x: *const f32, out: *mut f32, o: usize) {
    let cols = p.cols;
    let w = p.weights.as_ptr();
    let mut acc = _mm512_setzero_ps();
    let mut k = 0;
    while k + 16 <= cols {
        // SAFETY: row o < rows is inside the weights and x holds cols inputs; k + 16 <= cols
        // keeps both loads inside them.
        let (wv, xv) = unsafe { (weights16::<F16>(w, o * cols + k), _mm512_loadu_ps(x.add(k))) };
        acc = _mm512_fmadd_ps(wv, xv, acc);
        k += 16;
    }
    if k < cols {
        let m = low_lanes(cols - k);
        // SAFETY: as above; the mask keeps both loads to the cols - k elements left.
        let (wv, xv) = unsafe { (weights16_masked::<F16>(m, w, o * cols + k), _mm512_maskz_loadu_ps(m, x.add(k))) };
        acc = _mm512_fmadd_ps(wv, xv, acc);
    }
    let v = _mm512_reduce_add_ps(acc) + le_f32(p.bias, o);
    // SAFETY: o < rows.
    unsafe { out.add(o).write(if p.relu && v < 0.0 { 0.0 } else { v }) };
}
