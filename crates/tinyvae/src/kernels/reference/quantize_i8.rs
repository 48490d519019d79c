//! Graph inputs (f32) to int8, by the one definition in [`crate::quant::quantize_i8`].

/// `out[i] = quantize_i8(x[i], scale, zero_point)`.
pub fn quantize_i8(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    quantize_i8_inline(x, scale, zero_point, out)
}

/// The body of [`quantize_i8`], for SIMD wrappers that compile it with wider vectors (IEEE
/// division is correctly rounded in every width, so the bytes are the same).
#[inline(always)]
pub(crate) fn quantize_i8_inline(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    for (q, &v) in out.iter_mut().zip(x) {
        *q = crate::quant::quantize_i8(v, scale, zero_point);
    }
}
