//! Fixed-point arithmetic of the int8 path: the one definition of every rounding.
//!
//! These are the gemmlowp/TFLite reference functions (`SaturatingRoundingDoublingHighMul`,
//! `RoundingDivideByPOT`, `MultiplyByQuantizedMultiplier`), so a TFLite user gets the numbers
//! they expect. Every SIMD kernel must reproduce them bit for bit; the kernel test suite in
//! `kernels` checks that against this module.

/// `round(a * b / 2^31)`, saturating the single overflow case (`i32::MIN * i32::MIN`). Ties
/// round up (+0.5 to 1, -0.5 to 0), exactly as gemmlowp's nudge-then-truncate does.
///
/// gemmlowp writes it as `(ab + (ab >= 0 ? 2^30 : 1 - 2^30)) / 2^31` with C's truncating
/// division. For negative `ab` that truncation is a ceiling, and
/// `ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31)`; for non-negative `ab` it is a
/// floor of the same numerator. So one arithmetic shift computes it with no branch, which is
/// what lets the 32-bit targets keep it to a multiply-long, an add and a shift
/// (`gemmlowp_form_is_the_same` below checks the identity).
#[inline]
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero. `exponent` is in `0..=31`.
#[inline]
pub const fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let exponent = if exponent > 31 { 31 } else { exponent };
    // 32-bit arithmetic only (2^31 - 1 for exponent 31 by wrapping): cheap on Cortex-M.
    let mask = ((1u32 << exponent) as i32).wrapping_sub(1);
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// Scales an int32 accumulator by the real number `multiplier * 2^(shift - 31)`.
///
/// `multiplier` is in `[2^30, 2^31)` (or 0) and `shift` in `-31..=30`, as made by
/// [`quantize_multiplier`]; the blob parser rejects anything else.
#[inline]
pub const fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    // Left shifts (scales above 1) are rare; keeping them off the common path keeps the
    // multiply-with-saturation out of it. Shifts outside -31..=30 never come from a blob, but
    // kernels take any parameters and must not panic on them: the wrapping forms are what
    // `<<` and `-` do in release builds, spelled out so that debug builds agree.
    let scaled = if shift > 0 { x.saturating_mul(1i32.wrapping_shl(shift as u32)) } else { x };
    let right = if shift > 0 { 0 } else { shift.wrapping_neg() as u32 };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)
}

/// The int8 Dense epilogue: scale the accumulator to the output's quantization, add its zero
/// point and clamp to the (possibly ReLU-folded) activation range.
#[inline]
pub const fn requantize(acc: i32, multiplier: i32, shift: i32, zero_point: i32, min: i8, max: i8) -> i8 {
    let v = multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(zero_point);
    if v < min as i32 {
        min
    } else if v > max as i32 {
        max
    } else {
        v as i8
    }
}

/// The left shift that gives a quantized addition's inputs headroom before rescaling (TFLite's
/// `left_shift` for int8 Add): 20 bits keep 8-bit differences exact through the multiplier.
pub const ADD_LEFT_SHIFT: u32 = 20;

/// The int8 residual addition, TFLite's quantized Add exactly: each input code `q` with zero
/// point `zp` is widened to `(q - zp) << 20` and rescaled to a shared scale,
/// `multiply_by_quantized_multiplier((q - zp) << 20, multiplier, shift)`; the two are summed
/// (saturating), and the sum is [`requantize`]d with the output's multiplier, shift, zero
/// point and clamp.
///
/// The arrays are indexed `[a, b, out]`. With the quantizer's parameters (TFLite's
/// `PrepareGeneralSubOp`): `2 * max(s_a, s_b)` is the shared scale, the input multipliers
/// encode `s_a / shared` and `s_b / shared` (below 1), and the output multiplier
/// `shared / (2^20 * s_out)`. Defined for any values (wrapping where C would overflow), so
/// kernels can take any parameters without panicking.
#[inline]
pub const fn add_i8(
    a: i8,
    b: i8,
    zero_points: [i32; 3],
    multipliers: [i32; 3],
    shifts: [i32; 3],
    act_min: i8,
    act_max: i8,
) -> i8 {
    let a = (a as i32).wrapping_sub(zero_points[0]).wrapping_shl(ADD_LEFT_SHIFT);
    let b = (b as i32).wrapping_sub(zero_points[1]).wrapping_shl(ADD_LEFT_SHIFT);
    let a = multiply_by_quantized_multiplier(a, multipliers[0], shifts[0]);
    let b = multiply_by_quantized_multiplier(b, multipliers[1], shifts[1]);
    requantize(a.saturating_add(b), multipliers[2], shifts[2], zero_points[2], act_min, act_max)
}

/// Splits a positive real scale into `(multiplier, shift)` with
/// `real == multiplier * 2^(shift - 31)` to 31 bits of precision (TFLite's `QuantizeMultiplier`).
///
/// Returns `(0, 0)` for zero or tiny scales (below 2^-31, where the product rounds to 0
/// anyway) and `None` for negative, non-finite or too-large (`>= 2^30`) scales.
pub fn quantize_multiplier(real: f64) -> Option<(i32, i32)> {
    if !real.is_finite() || real < 0.0 || real >= (1u64 << 30) as f64 {
        return None;
    }
    if real < 1.0 / (1u64 << 31) as f64 {
        return Some((0, 0));
    }
    // frexp by hand: real = q * 2^shift with q in [0.5, 1).
    let mut q = real;
    let mut shift = 0i32;
    while q >= 1.0 {
        q /= 2.0;
        shift += 1;
    }
    while q < 0.5 {
        q *= 2.0;
        shift -= 1;
    }
    let mut q_fixed = round_half_away(q * (1u64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return Some((0, 0));
    }
    Some((q_fixed as i32, shift))
}

/// Rounds half away from zero (`round()` in C) without `std`.
fn round_half_away(x: f64) -> f64 {
    libm::round(x)
}

/// Rounds half away from zero (C's `round`) for `|v| <= 2^21`; larger magnitudes give
/// `+-2^21`, NaN gives 0.
///
/// Only float arithmetic, compares and bit operations, so that loops over it vectorize (a
/// saturating `as i32` does not: LLVM scalarizes it, lane by lane, which made a decoder's
/// sigmoid and pixel conversion 4x slower). Adding `1.5 * 2^23` rounds `|v|` to the nearest
/// integer, ties to even (the sum's ulp is 1); the exact remainder `|v| - r` is 0.5 only at a
/// tie that went down, which then steps up; the integer is read off the sum's mantissa bits.
#[inline(always)]
pub fn round_half_away_small(v: f32) -> i32 {
    const LIMIT: f32 = 2_097_152.0; // 2^21
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let a = if v.is_nan() { 0.0 } else { v.abs().min(LIMIT) };
    let r = (a + MAGIC) - MAGIC;
    let away = r + if a - r == 0.5 { 1.0 } else { 0.0 };
    let n = ((away + MAGIC).to_bits() - MAGIC.to_bits()) as i32;
    if v < 0.0 {
        -n
    } else {
        n
    }
}

/// Quantizes a real value to int8: `clamp(round(x / scale) + zero_point, -128, 127)`, ties away
/// from zero. The division (not a multiplication by a reciprocal) is part of the definition: it
/// is correctly rounded on every IEEE-754 target, so inputs quantize identically everywhere.
/// NaN maps to the zero point.
#[inline]
pub fn quantize_i8(x: f32, scale: f32, zero_point: i32) -> i8 {
    // Past +-300 every zero point clamps the same way, and the rounding helper stays exact.
    let v = (x / scale).clamp(-300.0, 300.0);
    (round_half_away_small(v) + zero_point).clamp(-128, 127) as i8
}

/// The real value an int8 code stands for.
#[inline]
pub fn dequantize_i8(q: i8, scale: f32, zero_point: i32) -> f32 {
    (q as i32 - zero_point) as f32 * scale
}

/// `round(255 * clamp(v, 0, 1))`, ties away from zero; NaN gives 0: a float decoder's
/// probability as a display pixel. (An int8 sigmoid output needs no rounding: its scale is
/// 1/255 and its zero point -128, so `pixel = q + 128`.)
#[inline(always)]
pub fn to_pixel(v: f32) -> u8 {
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
    round_half_away_small(v * 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_away_small_is_c_round() {
        let check = |v: f32| {
            let want = libm::roundf(v).clamp(-2_097_152.0, 2_097_152.0) as i32;
            assert_eq!(round_half_away_small(v), want, "{v}");
        };
        for k in -3000..3000 {
            let base = k as f32 * 0.5;
            for v in [base, base.next_up(), base.next_down(), base + 0.25] {
                check(v);
            }
        }
        let mut rng = crate::rng::Rng::new(5);
        // Miri (scripts/miri.sh) checks the code paths, not the coverage: fewer draws there.
        for _ in 0..if cfg!(miri) { 2_000 } else { 200_000 } {
            let bits = rng.next_u64() as u32;
            let v = f32::from_bits(bits);
            if !v.is_nan() {
                check(v);
            }
        }
        for v in [0.0, -0.0, 1e-45, -1e-45, 0.49999997, -0.49999997, 2_097_151.5, 4e6, -4e6, f32::MAX, f32::MIN] {
            check(v);
        }
        assert_eq!(round_half_away_small(f32::NAN), 0);
        assert_eq!(round_half_away_small(f32::INFINITY), 2_097_152);
    }

    #[test]
    fn srdhm_matches_gemmlowp_examples() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        // 0.5 * 0.5 in Q31 is 0.25.
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // gemmlowp's nudge rounds ties upward: +0.5 -> 1 but -0.5 -> 0.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 29), 1);
    }

    /// gemmlowp's own formulation, kept as the specification the shift form must equal.
    fn gemmlowp_srdhm(a: i32, b: i32) -> i32 {
        if a == i32::MIN && b == i32::MIN {
            return i32::MAX;
        }
        let ab = a as i64 * b as i64;
        let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        ((ab + nudge) / (1i64 << 31)) as i32
    }

    #[test]
    fn gemmlowp_form_is_the_same() {
        let edges = [i32::MIN, i32::MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3, 1 << 30, i32::MAX - 1, i32::MAX];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(saturating_rounding_doubling_high_mul(a, b), gemmlowp_srdhm(a, b), "{a} * {b}");
            }
        }
        let mut rng = crate::Rng::new(77);
        for i in 0..if cfg!(miri) { 2_000 } else { 2_000_000u32 } {
            let a = rng.next_u64() as i32 >> (i % 31);
            let b = rng.next_u64() as i32 >> ((i / 31) % 31);
            assert_eq!(saturating_rounding_doubling_high_mul(a, b), gemmlowp_srdhm(a, b), "{a} * {b}");
            // Exact ties, where the two roundings could part.
            let t = (a >> 1) | 1;
            assert_eq!(saturating_rounding_doubling_high_mul(t, 1 << 30), gemmlowp_srdhm(t, 1 << 30), "tie {t}");
        }
    }

    /// TFLite's `AddElementwise` for int8 (reference_ops), written out as the specification.
    fn tflite_add(a: i8, b: i8, zp: [i32; 3], m: [i32; 3], s: [i32; 3], min: i8, max: i8) -> i8 {
        let ia = (a as i32 - zp[0]) * (1 << 20);
        let ib = (b as i32 - zp[1]) * (1 << 20);
        let sa = multiply_by_quantized_multiplier(ia, m[0], s[0]);
        let sb = multiply_by_quantized_multiplier(ib, m[1], s[1]);
        let raw = multiply_by_quantized_multiplier(sa + sb, m[2], s[2]) + zp[2];
        raw.clamp(min as i32, max as i32) as i8
    }

    #[test]
    fn quantized_add_is_tflites_and_adds_real_values() {
        let mut rng = crate::Rng::new(21);
        let draws = if cfg!(miri) { 20 } else { 200 };
        for _ in 0..draws {
            let scale = |rng: &mut crate::Rng| 0.001 + rng.uniform() as f64 * 0.1;
            let (s_a, s_b, s_out) = (scale(&mut rng), scale(&mut rng), scale(&mut rng) * 2.0);
            let zp = [rng.below(256) as i32 - 128, rng.below(256) as i32 - 128, rng.below(256) as i32 - 128];
            let shared = 2.0 * s_a.max(s_b);
            let (ma, sa) = quantize_multiplier(s_a / shared).unwrap();
            let (mb, sb) = quantize_multiplier(s_b / shared).unwrap();
            let (mo, so) = quantize_multiplier(shared / ((1u64 << 20) as f64 * s_out)).unwrap();
            let (m, s) = ([ma, mb, mo], [sa, sb, so]);
            for _ in 0..draws {
                let (a, b) = (rng.next_u64() as i8, rng.next_u64() as i8);
                let got = add_i8(a, b, zp, m, s, -128, 127);
                assert_eq!(got, tflite_add(a, b, zp, m, s, -128, 127));
                let real = (a as i32 - zp[0]) as f64 * s_a + (b as i32 - zp[1]) as f64 * s_b;
                let want = (real / s_out).round() + zp[2] as f64;
                let want = want.clamp(-128.0, 127.0);
                assert!((got as f64 - want).abs() <= 1.0, "{a} + {b}: {got} vs {want}");
            }
        }
        // Any parameters: no panic, and the clamp holds.
        let odd = [
            ([i32::MIN, i32::MAX, 0], [i32::MAX, -1, i32::MIN], [40, -40, 30]),
            ([1000, -1000, 5], [1 << 30, 1 << 30, i32::MAX], [30, 30, 30]),
        ];
        for (zp, m, s) in odd {
            let y = add_i8(-128, 127, zp, m, s, -5, 5);
            assert!((-5..=5).contains(&y));
        }
    }

    #[test]
    fn rounding_divide_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    }

    #[test]
    fn quantized_multiplier_reproduces_real_scales() {
        for &real in &[0.5f64, 0.1234, 1e-3, 3.7e-6, 0.999_999_9, 1.0, 2.5, 1234.5] {
            let (m, s) = quantize_multiplier(real).unwrap();
            assert!((1 << 30..=i32::MAX).contains(&m), "{real}: {m}");
            let back = m as f64 * 2f64.powi(s - 31);
            assert!((back - real).abs() <= real * 1e-9, "{real} -> {back}");
            // Scaling an accumulator agrees with float math to within one unit.
            for &acc in &[0i32, 1, -1, 1000, -12345, 1 << 20, -(1 << 20)] {
                let got = multiply_by_quantized_multiplier(acc, m, s) as f64;
                let want = (acc as f64 * real).round();
                if want.abs() < 1e9 {
                    assert!((got - want).abs() <= 1.0, "{acc} * {real}: {got} vs {want}");
                }
            }
        }
        assert_eq!(quantize_multiplier(0.0), Some((0, 0)));
        assert_eq!(quantize_multiplier(-1.0), None);
        assert_eq!(quantize_multiplier(f64::NAN), None);
    }

    /// The definition the fast rounding must equal: C's `round`, clamped.
    fn quantize_i8_spec(x: f32, scale: f32, zero_point: i32) -> i8 {
        let q = libm::roundf(x / scale);
        let q = if q.is_nan() { 0.0 } else { q };
        let v = if q >= 255.0 {
            255
        } else if q <= -256.0 {
            -256
        } else {
            q as i32
        };
        (v + zero_point).clamp(-128, 127) as i8
    }

    #[test]
    fn fast_quantize_equals_round_half_away() {
        let mut rng = crate::Rng::new(5);
        let scales = [1.0f32, 1.0 / 255.0, 0.0366, 3.3e-3, 0.5, 7.25];
        for &scale in &scales {
            for zp in [-128, -1, 0, 37, 127] {
                // Every representable value near each half-step boundary, and random ones.
                for k in (-300i32..=300).step_by(if cfg!(miri) { 50 } else { 1 }) {
                    let mut x = (k as f32 + 0.5) * scale;
                    for _ in 0..8 {
                        x = f32::from_bits(x.to_bits().wrapping_sub(4));
                        for _ in 0..8 {
                            assert_eq!(quantize_i8(x, scale, zp), quantize_i8_spec(x, scale, zp), "{x} {scale} {zp}");
                            x = f32::from_bits(x.to_bits() + 1);
                        }
                    }
                }
                for _ in 0..if cfg!(miri) { 20 } else { 20_000 } {
                    let x = f32::from_bits(rng.next_u64() as u32);
                    assert_eq!(quantize_i8(x, scale, zp), quantize_i8_spec(x, scale, zp), "{x:e} {scale} {zp}");
                    let y = (rng.gaussian() * 100.0) * scale;
                    assert_eq!(quantize_i8(y, scale, zp), quantize_i8_spec(y, scale, zp), "{y} {scale} {zp}");
                }
            }
        }
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE] {
            assert_eq!(quantize_i8(x, 0.1, 3), quantize_i8_spec(x, 0.1, 3), "{x}");
        }
    }

    #[test]
    fn quantize_i8_rounds_and_clamps() {
        assert_eq!(quantize_i8(0.5, 1.0, 0), 1);
        assert_eq!(quantize_i8(-0.5, 1.0, 0), -1);
        assert_eq!(quantize_i8(1e9, 0.1, 3), 127);
        assert_eq!(quantize_i8(-1e9, 0.1, 3), -128);
        assert_eq!(quantize_i8(f32::NAN, 0.1, 3), 3);
        assert_eq!(quantize_i8(f32::INFINITY, 0.1, 3), 127);
        assert_eq!(quantize_i8(0.0, 1.0 / 255.0, -128), -128);
        assert_eq!(quantize_i8(1.0, 1.0 / 255.0, -128), 127);
        assert_eq!(dequantize_i8(127, 1.0 / 255.0, -128), 1.0);
    }
}
