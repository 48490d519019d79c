//! f32 residual addition, scalar reference: `y = a + b`, then ReLU when fused. One IEEE
//! addition per element, so every target gives the same bits.

/// `out[i] = a[i] + b[i]` (ReLU'd when `relu`).
pub fn add_f32(relu: bool, a: &[f32], b: &[f32], out: &mut [f32]) {
    #[cfg(all(feature = "conv", any(feature = "f32", feature = "f16")))]
    for ((y, &a), &b) in out.iter_mut().zip(a).zip(b) {
        let v = a + b;
        *y = if relu && v < 0.0 { 0.0 } else { v };
    }
    #[cfg(not(all(feature = "conv", any(feature = "f32", feature = "f16"))))]
    let _ = (relu, a, b, out);
}
