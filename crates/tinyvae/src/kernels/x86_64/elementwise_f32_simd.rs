//! f32 elementwise kernels (a float decoder's output sigmoid and its conversion to pixels, over
//! every pixel; graph inputs quantized to int8, a division each) compiled for AVX2 and AVX-512: the reference's own loop bodies, inlined into
//! functions with wider target features, so that they vectorize 8 or 16 lanes wide instead of
//! baseline SSE2's 4. Same operations in the same order, hence the reference's values exactly.

use super::{has, Level};
use crate::format::ActKind;
use crate::kernels::reference;

/// See [`crate::kernels::ActivationF32Fn`]; 16 lanes.
pub fn activation_f32_avx512(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    if !has(Level::Avx512Vnni) {
        return reference::activation_f32(act, alpha, x, out);
    }
    // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); the body is safe code.
    unsafe { avx512(act, alpha, x, out) }
}

/// See [`crate::kernels::ActivationF32Fn`]; 8 lanes.
pub fn activation_f32_avx2(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    if !has(Level::Avx2) {
        return reference::activation_f32(act, alpha, x, out);
    }
    // SAFETY: the CPU has AVX2 (checked above); the body is safe code.
    unsafe { avx2(act, alpha, x, out) }
}

/// See [`crate::kernels::PixelsF32Fn`]; 16 lanes.
pub fn pixels_f32_avx512(x: &[f32], out: &mut [u8]) {
    if !has(Level::Avx512Vnni) {
        return reference::pixels_f32(x, out);
    }
    // SAFETY: as in activation_f32_avx512.
    unsafe { pixels_avx512(x, out) }
}

/// See [`crate::kernels::PixelsF32Fn`]; 8 lanes.
pub fn pixels_f32_avx2(x: &[f32], out: &mut [u8]) {
    if !has(Level::Avx2) {
        return reference::pixels_f32(x, out);
    }
    // SAFETY: as in activation_f32_avx2.
    unsafe { pixels_avx2(x, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pixels_avx512(x: &[f32], out: &mut [u8]) {
    reference::pixels_f32_inline(x, out)
}

#[target_feature(enable = "avx2")]
unsafe fn pixels_avx2(x: &[f32], out: &mut [u8]) {
    reference::pixels_f32_inline(x, out)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn avx512(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    reference::activation_f32_inline(act, alpha, x, out)
}

// No "fma": the reference multiplies and adds separately, and so must this.
#[target_feature(enable = "avx2")]
unsafe fn avx2(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    reference::activation_f32_inline(act, alpha, x, out)
}

/// See [`crate::kernels::QuantizeI8Fn`]; 16 lanes.
pub fn quantize_i8_avx512(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    if !has(Level::Avx512Vnni) {
        return reference::quantize_i8(x, scale, zero_point, out);
    }
    // SAFETY: as in activation_f32_avx512.
    unsafe { quantize_avx512(x, scale, zero_point, out) }
}

/// See [`crate::kernels::QuantizeI8Fn`]; 8 lanes.
pub fn quantize_i8_avx2(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    if !has(Level::Avx2) {
        return reference::quantize_i8(x, scale, zero_point, out);
    }
    // SAFETY: as in activation_f32_avx2.
    unsafe { quantize_avx2(x, scale, zero_point, out) }
}

/// 64 values at a time, narrowed to bytes in registers: the loop's own conversion stored each
/// 16 lanes with `vpmovsdb` to memory, which held it to a fifth of its arithmetic's speed (14% of
/// a batch-64 encoder). Every value is in -128..=127 before the narrowing, so the saturating
/// packs are exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_avx512(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    use core::arch::x86_64::*;
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    // The packs interleave 128-bit lanes: dword 4L + k of the packed vector holds values
    // 16k + 4L .. 16k + 4L + 4.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let mut chunks = out.chunks_exact_mut(64);
    for (q, v) in (&mut chunks).zip(x.chunks_exact(64)) {
        let mut codes = [0i32; 64];
        for (c, &v) in codes.iter_mut().zip(v) {
            *c = crate::quant::quantize_i8(v, scale, zero_point) as i32;
        }
        // SAFETY: `codes` is 256 readable bytes, `q` 64 writable ones.
        unsafe {
            let at = |k: usize| _mm512_loadu_si512(codes.as_ptr().add(16 * k).cast());
            let words = [_mm512_packs_epi32(at(0), at(1)), _mm512_packs_epi32(at(2), at(3))];
            let bytes = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(words[0], words[1]));
            _mm512_storeu_si512(q.as_mut_ptr().cast(), bytes);
        }
    }
    let done = n - chunks.into_remainder().len();
    reference::quantize_i8_inline(&x[done..], scale, zero_point, &mut out[done..]);
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    reference::quantize_i8_inline(x, scale, zero_point, out)
}
