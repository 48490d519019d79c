//! f32 elementwise activations (f32 and f16 graphs), and their conversion to pixels.
//!
//! `exp` is computed inline (range reduction to `n ln 2 + r`, a degree-6 polynomial, and the
//! exponent set by bit arithmetic) rather than by a `libm` call per element: the loop then
//! vectorizes, which matters because a decoder's sigmoid runs over every output pixel. Relative
//! error stays within 3e-7 (2 ulp) over the whole range (tested against `libm::expf`). Float graphs are
//! not bit-exact across targets (summation orders differ); int8 graphs are.

use crate::format::ActKind;

/// e^x for any finite x (clamped to the f32 range of the result), vectorizable.
#[cfg(any(feature = "f32", feature = "f16"))]
#[inline(always)]
pub fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // ln 2 split in two so that n * LN2_HI is exact for |n| < 2^8.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = crate::quant::round_half_away_small(x * LOG2E);
    let nf = n as f32;
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n + 127) as u32) << 23)
}

/// Applies `act` elementwise; `alpha` is the leaky-ReLU slope.
pub fn activation_f32(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    activation_f32_inline(act, alpha, x, out)
}

/// The body of [`activation_f32`], for SIMD wrappers that compile it with wider vectors: the
/// operations and their order are the same (no FMA contraction), so every build gives the
/// reference's values exactly.
#[inline(always)]
pub(crate) fn activation_f32_inline(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    // Only float graphs have Activation nodes; see `dense_f32` on leaving bodies out.
    #[cfg(any(feature = "f32", feature = "f16"))]
    {
        let pairs = out.iter_mut().zip(x);
        // One loop per function, so each one vectorizes on its own.
        match act {
            ActKind::None => pairs.for_each(|(y, &v)| *y = v),
            ActKind::Relu => pairs.for_each(|(y, &v)| *y = v.max(0.0)),
            ActKind::LeakyRelu => pairs.for_each(|(y, &v)| *y = if v >= 0.0 { v } else { alpha * v }),
            ActKind::Sigmoid => pairs.for_each(|(y, &v)| *y = 1.0 / (1.0 + exp_fast(-v))),
            ActKind::Tanh => pairs.for_each(|(y, &v)| *y = 1.0 - 2.0 / (1.0 + exp_fast(2.0 * v))),
            ActKind::Silu => pairs.for_each(|(y, &v)| *y = v / (1.0 + exp_fast(-v))),
            ActKind::HardSwish => pairs.for_each(|(y, &v)| *y = v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
        }
    }
    #[cfg(not(any(feature = "f32", feature = "f16")))]
    let _ = (act, alpha, x, out);
}

/// `out[i] = to_pixel(x[i])`.
pub fn pixels_f32(x: &[f32], out: &mut [u8]) {
    pixels_f32_inline(x, out)
}

/// The body of [`pixels_f32`], for SIMD wrappers (as [`activation_f32_inline`]).
#[inline(always)]
pub(crate) fn pixels_f32_inline(x: &[f32], out: &mut [u8]) {
    // Only float graphs have f32 outputs; see `dense_f32` on leaving bodies out (about 1 KiB
    // of int8 firmware).
    #[cfg(any(feature = "f32", feature = "f16"))]
    for (o, &v) in out.iter_mut().zip(x) {
        *o = crate::quant::to_pixel(v);
    }
    #[cfg(not(any(feature = "f32", feature = "f16")))]
    let _ = (x, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp_fast(x), libm::expf(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert_eq!(exp_fast(0.0), 1.0);
        assert!(exp_fast(-1000.0) > 0.0 && exp_fast(1000.0).is_finite());
    }

    #[test]
    fn activations_match_their_definitions() {
        let x: [f32; 9] = [-30.0, -5.0, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0, 30.0];
        let mut y = [0f32; 9];
        activation_f32(ActKind::Sigmoid, 0.0, &x, &mut y);
        for (v, s) in x.iter().zip(y) {
            assert!((s - 1.0 / (1.0 + libm::expf(-v))).abs() < 1e-7, "sigmoid({v})");
        }
        activation_f32(ActKind::Tanh, 0.0, &x, &mut y);
        for (v, t) in x.iter().zip(y) {
            assert!((t - libm::tanhf(*v)).abs() < 3e-7, "tanh({v})");
        }
        activation_f32(ActKind::Silu, 0.0, &x, &mut y);
        for (v, s) in x.iter().zip(y) {
            let want = v / (1.0 + libm::expf(-v));
            assert!((s - want).abs() <= 3e-7 * want.abs().max(1.0), "silu({v}) = {s}, want {want}");
        }
        activation_f32(ActKind::HardSwish, 0.0, &x, &mut y);
        for (v, h) in x.iter().zip(y) {
            let want = *v as f64 * (*v as f64 + 3.0).clamp(0.0, 6.0) / 6.0;
            assert!((h as f64 - want).abs() <= 1e-7 * want.abs().max(1.0), "hardswish({v}) = {h}");
        }
        assert_eq!((y[0], y[1], y[7], y[8]), (0.0, 0.0, 5.0, 30.0));
        activation_f32(ActKind::LeakyRelu, 0.1, &x, &mut y);
        assert_eq!((y[1], y[7]), (-0.5, 5.0));
    }
}
