//! The vector operations the direct float transposed convolutions
//! ([`super::conv_transpose_float`], [`super::conv_transpose_float_one`]) are written in, for
//! AVX-512 (16 lanes, [`Zmm`]) and AVX2 + FMA + F16C (8 lanes, [`Ymm`]), so that each kernel's
//! loops exist once.
//!
//! Every operation is `#[inline(always)]` and carries no target features of its own: the
//! kernels' generic bodies are `#[inline(always)]` too, and each instruction set enters them
//! through its own `#[target_feature]` function ([`FloatLanes::run_many`],
//! [`FloatLanes::run_one`], [`FloatLanes::many_channels`]), into which everything inlines, the
//! intrinsics included. Closures that call these operations would not inherit the features:
//! the bodies use loops instead.

use core::arch::x86_64::*;

use super::conv_transpose_float::{self as many, Geometry, Lanes};
use super::conv_transpose_float_one as one;
use super::dense_i8_avx2::transpose8;
use super::requantize_avx512::transpose16;
use super::Level;
use crate::kernels::conv_layout::OutputRun;
use crate::kernels::ConvFloat;

/// One instruction set's float vectors.
///
/// # Safety
/// Every method needs the CPU to have [`FloatLanes::LEVEL`]; the pointer arguments are as each
/// says.
pub(super) unsafe trait FloatLanes: Sized {
    /// A vector of [`FloatLanes::N`] floats.
    type V: Copy;
    /// Lanes per vector.
    const N: usize;
    /// Most pixels the many-channel kernel computes at once: with two lane blocks, twice as
    /// many accumulators, which with the two weight vectors and a broadcast fill the registers.
    const PIXELS: usize;
    /// What the CPU must have.
    const LEVEL: Level;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `v`.
    unsafe fn splat(v: f32) -> Self::V;
    /// `N` floats at `p`, aligned to the vector.
    unsafe fn load(p: *const f32) -> Self::V;
    /// `N` floats at `p`.
    unsafe fn loadu(p: *const f32) -> Self::V;
    /// Stores `N` floats at `p`.
    unsafe fn storeu(p: *mut f32, v: Self::V);
    /// `a * b + c`, fused.
    unsafe fn fmadd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    /// `max(0, v)`: `v` when it is NaN, as the reference keeps it.
    unsafe fn relu(v: Self::V) -> Self::V;

    /// Transposes a tile of `rows` (at most `N`) source rows `src_step` floats apart, each of
    /// `cols` (at most `N`) floats, into `cols` rows `dst_step` apart of `rows` floats each,
    /// touching no other float.
    unsafe fn transpose_tile(
        src: *const f32,
        src_step: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_step: usize,
    );
    /// Weights `0..count` (`count` at most `N`; f16 when `F16`, else f32) of `N` rows
    /// `row_bytes` apart from `from`, widened and transposed: vector `k` (at `to + k * to_step`,
    /// aligned) holds weight `k` of every row.
    unsafe fn turn_tile<const F16: bool>(from: *const u8, row_bytes: usize, count: usize, to: *mut f32, to_step: usize);
    /// `out[i] = w[i]` for `i < n` as f32 (`w` little-endian f16 when `F16`, else f32),
    /// reading and writing nothing else.
    unsafe fn widen<const F16: bool>(w: *const u8, n: usize, out: *mut f32);
    /// Writes the first `count` lanes of `y` to `ys` at `at`, `at + step`, ..; nothing if the
    /// last is past the end.
    unsafe fn store_strided(y: Self::V, count: usize, ys: &mut [f32], at: usize, step: usize);

    /// The many-channel layer ([`many::run`]) in this instruction set.
    unsafe fn run_many<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]);
    /// The one-channel layer ([`one::run`]) in this instruction set.
    unsafe fn run_one<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]);
    /// One run of the many-channel layer ([`many::many_channels`]), out of line: it is called
    /// from a closure, which would not inline the operations.
    #[allow(clippy::too_many_arguments)]
    unsafe fn many_channels(
        l: &Lanes<Self>,
        g: &Geometry,
        channels_last: bool,
        window: *const f32,
        turned: *const f32,
        run: (&OutputRun, usize),
        ys: &mut [f32],
    );
}

/// The first `n` lanes, as an AVX-512 mask.
#[inline(always)]
fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}

/// The `#[target_feature]` entry points of one instruction set into the kernels' bodies (a
/// generic body gets the features only when inlined into a function that enables them).
macro_rules! entry_points {
    ($lanes:ty, $features:literal, $run_many:ident, $run_one:ident, $many_channels:ident) => {
        /// See [`FloatLanes::run_many`].
        ///
        /// # Safety
        #[doc = concat!("As [`many::run`], with ", $features, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $run_many<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
            // SAFETY: the caller's.
            unsafe { many::run::<$lanes, F16>(p, g, x, n, out) }
        }

        /// See [`FloatLanes::run_one`].
        ///
        /// # Safety
        #[doc = concat!("As [`one::run`], with ", $features, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $run_one<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
            // SAFETY: the caller's.
            unsafe { one::run::<$lanes, F16>(p, g, x, n, out) }
        }

        /// See [`FloatLanes::many_channels`].
        ///
        /// # Safety
        #[doc = concat!("As [`many::many_channels`], with ", $features, ".")]
        #[target_feature(enable = $features)]
        unsafe fn $many_channels(
            l: &Lanes<$lanes>,
            g: &Geometry,
            channels_last: bool,
            window: *const f32,
            turned: *const f32,
            run: (&OutputRun, usize),
            ys: &mut [f32],
        ) {
            // SAFETY: the caller's.
            unsafe { many::many_channels::<$lanes>(l, g, channels_last, window, turned, run, ys) }
        }
    };
}

/// AVX-512 F/BW/VL: 16 lanes, masked loads and stores, `vcvtph2ps` from memory, scatters.
pub(super) struct Zmm;

// SAFETY: every method runs only AVX-512 F/BW/VL instructions, which `Level::Avx512Vnni`
// includes.
unsafe impl FloatLanes for Zmm {
    type V = __m512;
    const N: usize = 16;
    const PIXELS: usize = 8;
    const LEVEL: Level = Level::Avx512Vnni;

    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller's.
        unsafe { _mm512_load_ps(p) }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m512 {
        // SAFETY: the caller's.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn storeu(p: *mut f32, v: __m512) {
        // SAFETY: the caller's.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m512, b: __m512) -> __m512 {
        _mm512_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(v: __m512) -> __m512 {
        _mm512_max_ps(_mm512_setzero_ps(), v)
    }

    #[inline(always)]
    unsafe fn transpose_tile(
        src: *const f32,
        src_step: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_step: usize,
    ) {
        let (col_mask, row_mask) = (mask16(cols), mask16(rows));
        let mut v = [_mm512_setzero_si512(); 16];
        for (i, v) in v.iter_mut().enumerate().take(rows) {
            // SAFETY: row i's `cols` floats (caller's contract); masked-off lanes are not read.
            *v = unsafe { _mm512_maskz_loadu_epi32(col_mask, src.wrapping_add(i * src_step).cast()) };
        }
        // SAFETY: AVX-512 F (the trait's contract).
        let t = unsafe { transpose16(&v) };
        for (j, t) in t.iter().enumerate().take(cols) {
            // SAFETY: destination row j's `rows` floats (caller's contract).
            unsafe { _mm512_mask_storeu_epi32(dst.wrapping_add(j * dst_step).cast(), row_mask, *t) };
        }
    }

    #[inline(always)]
    unsafe fn turn_tile<const F16: bool>(
        from: *const u8,
        row_bytes: usize,
        count: usize,
        to: *mut f32,
        to_step: usize,
    ) {
        let m = mask16(count);
        // Row by row from one pointer: 16 addresses computed from the index apart were
        // vectorized and extracted one by one (the turning measured 15% slower).
        let mut by_row = [_mm512_setzero_si512(); 16];
        let mut at = from;
        for v in by_row.iter_mut() {
            // SAFETY: `count` weights of each row (caller's contract); masked-off ones are not
            // read.
            *v = unsafe {
                if F16 {
                    _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, at.cast())))
                } else {
                    _mm512_maskz_loadu_epi32(m, at.cast())
                }
            };
            at = at.wrapping_add(row_bytes);
        }
        let mut to = to;
        // SAFETY: AVX-512 F (the trait's contract).
        for v in unsafe { transpose16(&by_row) }.iter().take(count) {
            // SAFETY: vector k of the tile, aligned (caller's contract).
            unsafe { _mm512_store_si512(to.cast(), *v) };
            to = to.wrapping_add(to_step);
        }
    }

    #[inline(always)]
    unsafe fn widen<const F16: bool>(w: *const u8, n: usize, out: *mut f32) {
        let mut i = 0;
        while i < n {
            let m = mask16(n - i);
            // SAFETY: weights i..i + 16 below n (caller's contract); masked-off ones are
            // neither read nor written.
            unsafe {
                let v = if F16 {
                    _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w.add(2 * i).cast()))
                } else {
                    _mm512_maskz_loadu_ps(m, w.add(4 * i).cast())
                };
                _mm512_mask_storeu_ps(out.add(i), m, v);
            }
            i += 16;
        }
    }

    #[inline(always)]
    unsafe fn store_strided(y: __m512, count: usize, ys: &mut [f32], at: usize, step: usize) {
        let last = at + (count.max(1) - 1) * step;
        if count == 0 || count > 16 || last >= ys.len() {
            return;
        }
        let (m, to) = (mask16(count), ys[at..].as_mut_ptr());
        if step == 1 {
            // SAFETY: the mask selects floats at..=last < ys.len(); masked-off ones are not
            // touched.
            unsafe { _mm512_mask_storeu_ps(to, m, y) };
        } else {
            let index = _mm512_mullo_epi32(
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                _mm512_set1_epi32(step as i32),
            );
            // SAFETY: the mask selects floats at, at + step, .., last < ys.len(); masked-off
            // lanes are not written.
            unsafe { _mm512_mask_i32scatter_ps::<4>(to.cast(), m, index, y) };
        }
    }

    unsafe fn run_many<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run_many_zmm::<F16>(p, g, x, n, out) }
    }
    unsafe fn run_one<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run_one_zmm::<F16>(p, g, x, n, out) }
    }
    unsafe fn many_channels(
        l: &Lanes<Self>,
        g: &Geometry,
        channels_last: bool,
        window: *const f32,
        turned: *const f32,
        run: (&OutputRun, usize),
        ys: &mut [f32],
    ) {
        // SAFETY: the caller's.
        unsafe { many_channels_zmm(l, g, channels_last, window, turned, run, ys) }
    }
}

entry_points!(Zmm, "avx512f,avx512bw,avx512vl", run_many_zmm, run_one_zmm, many_channels_zmm);

/// AVX2 + FMA + F16C: 8 lanes; masked moves by `vmaskmovps`, f16 tails through a small copy.
pub(super) struct Ymm;

/// `vmaskmovps`'s mask of the first `n` lanes.
#[inline(always)]
unsafe fn mask8(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

// SAFETY: every method runs only AVX2, FMA and F16C instructions: `Level::Avx2`.
unsafe impl FloatLanes for Ymm {
    type V = __m256;
    const N: usize = 8;
    const PIXELS: usize = 6;
    const LEVEL: Level = Level::Avx2;

    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller's.
        unsafe { _mm256_load_ps(p) }
    }
    #[inline(always)]
    unsafe fn loadu(p: *const f32) -> __m256 {
        // SAFETY: the caller's.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn storeu(p: *mut f32, v: __m256) {
        // SAFETY: the caller's.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn add(a: __m256, b: __m256) -> __m256 {
        _mm256_add_ps(a, b)
    }
    #[inline(always)]
    unsafe fn relu(v: __m256) -> __m256 {
        _mm256_max_ps(_mm256_setzero_ps(), v)
    }

    #[inline(always)]
    unsafe fn transpose_tile(
        src: *const f32,
        src_step: usize,
        rows: usize,
        cols: usize,
        dst: *mut f32,
        dst_step: usize,
    ) {
        // SAFETY: AVX2 (the trait's contract).
        let (col_mask, row_mask) = unsafe { (mask8(cols), mask8(rows)) };
        let mut v = [_mm256_setzero_si256(); 8];
        for (i, v) in v.iter_mut().enumerate().take(rows) {
            // SAFETY: row i's `cols` floats (caller's contract); masked-off lanes are not read.
            *v = unsafe { _mm256_castps_si256(_mm256_maskload_ps(src.wrapping_add(i * src_step), col_mask)) };
        }
        // SAFETY: AVX2 (the trait's contract).
        let t = unsafe { transpose8(&v) };
        for (j, t) in t.iter().enumerate().take(cols) {
            // SAFETY: destination row j's `rows` floats (caller's contract).
            unsafe { _mm256_maskstore_ps(dst.wrapping_add(j * dst_step), row_mask, _mm256_castsi256_ps(*t)) };
        }
    }

    #[inline(always)]
    unsafe fn turn_tile<const F16: bool>(
        from: *const u8,
        row_bytes: usize,
        count: usize,
        to: *mut f32,
        to_step: usize,
    ) {
        let count = count.min(8);
        let mut by_row = [_mm256_setzero_si256(); 8];
        let mut at = from;
        for v in by_row.iter_mut() {
            // SAFETY: `count` weights of each row (caller's contract): whole vectors, or a copy
            // of exactly the tail's bytes.
            *v = unsafe {
                if F16 {
                    let half = if count == 8 {
                        _mm_loadu_si128(at.cast())
                    } else {
                        let mut tail = [0u8; 16];
                        core::ptr::copy_nonoverlapping(at, tail.as_mut_ptr(), 2 * count);
                        _mm_loadu_si128(tail.as_ptr().cast())
                    };
                    _mm256_castps_si256(_mm256_cvtph_ps(half))
                } else {
                    _mm256_castps_si256(_mm256_maskload_ps(at.cast(), mask8(count)))
                }
            };
            at = at.wrapping_add(row_bytes);
        }
        let mut to = to;
        // SAFETY: AVX2 (the trait's contract).
        for v in unsafe { transpose8(&by_row) }.iter().take(count) {
            // SAFETY: vector k of the tile, aligned (caller's contract).
            unsafe { _mm256_store_si256(to.cast(), *v) };
            to = to.wrapping_add(to_step);
        }
    }

    #[inline(always)]
    unsafe fn widen<const F16: bool>(w: *const u8, n: usize, out: *mut f32) {
        let bytes = if F16 { 2 } else { 4 };
        let mut i = 0;
        while i < n {
            let count = (n - i).min(8);
            // Whole vectors in place, the tail through a copy of exactly its bytes.
            let mut tail = [0u8; 32];
            let from = if count == 8 {
                w.wrapping_add(bytes * i)
            } else {
                // SAFETY: weights i..n (caller's contract) into a 32-byte buffer.
                unsafe { core::ptr::copy_nonoverlapping(w.add(bytes * i), tail.as_mut_ptr(), bytes * count) };
                tail.as_ptr()
            };
            // SAFETY: 8 weights at `from`; `count` floats from `out + i` (caller's contract).
            unsafe {
                let v = if F16 { _mm256_cvtph_ps(_mm_loadu_si128(from.cast())) } else { _mm256_loadu_ps(from.cast()) };
                _mm256_maskstore_ps(out.add(i), mask8(count), v);
            }
            i += 8;
        }
    }

    #[inline(always)]
    unsafe fn store_strided(y: __m256, count: usize, ys: &mut [f32], at: usize, step: usize) {
        let last = at + (count.max(1) - 1) * step;
        if count == 0 || count > 8 || last >= ys.len() {
            return;
        }
        let mut lanes = [0f32; 8];
        // SAFETY: 8 writable floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), y) };
        for (k, &v) in lanes.iter().enumerate().take(count) {
            if let Some(out) = ys.get_mut(at + k * step) {
                *out = v;
            }
        }
    }

    unsafe fn run_many<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run_many_ymm::<F16>(p, g, x, n, out) }
    }
    unsafe fn run_one<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
        // SAFETY: the caller's.
        unsafe { run_one_ymm::<F16>(p, g, x, n, out) }
    }
    unsafe fn many_channels(
        l: &Lanes<Self>,
        g: &Geometry,
        channels_last: bool,
        window: *const f32,
        turned: *const f32,
        run: (&OutputRun, usize),
        ys: &mut [f32],
    ) {
        // SAFETY: the caller's.
        unsafe { many_channels_ymm(l, g, channels_last, window, turned, run, ys) }
    }
}

entry_points!(Ymm, "avx2,fma,f16c", run_many_ymm, run_one_ymm, many_channels_ymm);
