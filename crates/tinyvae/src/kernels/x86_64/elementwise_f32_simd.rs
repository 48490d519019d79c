//! f32 elementwise kernels: a float decoder's output sigmoid and its conversion to pixels (over
//! every pixel), and graph inputs quantized to int8 (a division each). AVX2 and AVX-512
//! compile the reference's own loop bodies in functions with wider target features, so that
//! they vectorize 8 or 16 lanes wide instead of baseline SSE2's 4: same operations in the same
//! order, hence the reference's values exactly. The AVX-512 input quantization has its own,
//! shorter rounding, shown equal to the reference's where it is used (see `quantize_avx512`).

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

/// 64 values at a time, rounded with fewer operations than the reference's portable helper,
/// and narrowed to bytes in registers (the compiled reference loop stored each 16 lanes with
/// `vpmovsdb` to memory, which held it to a fifth of its arithmetic's speed: 14% of a batch-64
/// encoder).
///
/// The rounding: for `|v| <= 300`, truncating `v + copysign(0.5 - 2^-25, v)` is `round(v)`
/// with ties away from zero, as [`crate::quant::quantize_i8`] defines it. Below a tie the sum
/// stays under the next integer (it is at most that integer less `ulp(v)` less `2^-25`, which
/// rounds to the float one `ulp(v)` below it); at a tie it is that integer less `2^-25`, which
/// rounds up to it (for `v = 0.5`, the halfway case rounds to the even 1.0); above a tie it
/// exceeds it. The test below checks every float within 64 ulps of every tie up to 300.
/// Every code is in -128..=127 before the narrowing, so the saturating packs are exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_avx512(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    use core::arch::x86_64::*;
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let (scale_v, zp) = (_mm512_set1_ps(scale), _mm512_set1_epi32(zero_point));
    let (lo, hi) = (_mm512_set1_ps(-300.0), _mm512_set1_ps(300.0));
    let below_half = _mm512_set1_ps(0.5 - 1.0 / (1u32 << 25) as f32);
    let sign = _mm512_set1_epi32(i32::MIN);
    let codes = |p: *const f32| {
        // SAFETY: the caller passes 16 readable floats.
        let q = _mm512_div_ps(unsafe { _mm512_loadu_ps(p) }, scale_v);
        // NaN (unordered) lanes become 0, as in the reference.
        let ordered = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(q, q);
        let v = _mm512_maskz_min_ps(ordered, _mm512_max_ps(q, lo), hi);
        // copysign(0.5 - 2^-25, v): v's sign bit, the constant's other bits.
        let nudge = _mm512_ternarylogic_epi32::<0xEA>(_mm512_castps_si512(v), sign, _mm512_castps_si512(below_half));
        let r = _mm512_cvttps_epi32(_mm512_add_ps(v, _mm512_castsi512_ps(nudge)));
        _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zp), _mm512_set1_epi32(-128)), _mm512_set1_epi32(127))
    };
    // The packs interleave 128-bit lanes: dword 4L + k of the packed vector holds values
    // 16k + 4L .. 16k + 4L + 4.
    let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let mut chunks = out.chunks_exact_mut(64);
    for (q, v) in (&mut chunks).zip(x.chunks_exact(64)) {
        let at = |k: usize| codes(v[16 * k..].as_ptr());
        let words = [_mm512_packs_epi32(at(0), at(1)), _mm512_packs_epi32(at(2), at(3))];
        let bytes = _mm512_permutexvar_epi32(order, _mm512_packs_epi16(words[0], words[1]));
        // SAFETY: `q` is 64 writable bytes.
        unsafe { _mm512_storeu_si512(q.as_mut_ptr().cast(), bytes) };
    }
    let done = n - chunks.into_remainder().len();
    reference::quantize_i8_inline(&x[done..], scale, zero_point, &mut out[done..]);
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    reference::quantize_i8_inline(x, scale, zero_point, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizing_near_every_tie_is_the_reference() {
        if !has(Level::Avx512Vnni) {
            return;
        }
        // Every float within 64 ulps of each tie k + 0.5 and each integer, both signs, up to
        // 300, then past the clamp; scale 1 so that the division is exact.
        let mut x = Vec::new();
        for k in 0..=301 {
            for base in [k as f32, k as f32 + 0.5] {
                for d in -64i32..=64 {
                    let v = f32::from_bits((base.to_bits() as i32 + d).max(0) as u32);
                    x.extend([v, -v]);
                }
            }
        }
        x.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30, 0.0, -0.0]);
        for zero_point in [-128, -3, 0, 5, 127] {
            let mut got = alloc::vec![0i8; x.len()];
            let mut want = alloc::vec![0i8; x.len()];
            quantize_i8_avx512(&x, 1.0, zero_point, &mut got);
            reference::quantize_i8(&x, 1.0, zero_point, &mut want);
            for i in 0..x.len() {
                assert_eq!(got[i], want[i], "x = {} ({:#x}), zero point {zero_point}", x[i], x[i].to_bits());
            }
        }
    }
}
