//! Graph inputs (f32) to int8 on a Cortex-M4F/M7 FPU; gives the bytes of
//! [`crate::kernels::reference::quantize_i8`] exactly.
//!
//! The reference rounds half away from zero with float tricks that cost a Cortex-M4 about 55
//! instructions an element (an anomaly detector's 640 features: 35k instructions, a tenth of
//! its whole inference). Here the rounding is two conversions the FPU does in one instruction
//! each (`VCVT` truncates and saturates, NaN to 0, exactly Rust's `as i32`): `t = trunc(v)`,
//! then `k = trunc(2 * (v - t))`, which is -1, 0 or 1 and says whether the fraction reaches
//! one half (`v - t` is exact, and doubling it too). `t + k`, saturating, is `v` rounded half
//! away from zero; out-of-range values and infinities saturate, and NaN gives 0, so the
//! reference's clamp to ±300 and its NaN rule (the zero point) come out the same after the
//! saturating add of the zero point and the clamp to int8 (`SSAT`). About 15 instructions an
//! element.

/// `out[i] = quant::quantize_i8(x[i], scale, zero_point)`.
pub fn quantize_i8(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    for (q, &v) in out.iter_mut().zip(x) {
        let v = v / scale;
        let t = v as i32;
        // Exact: below 2^24 the fraction of a float is a float; above, `v` is an integer and
        // `t` is `v` (or saturated, and then the saturating adds below saturate too).
        let frac = v - t as f32;
        let half = (frac + frac) as i32;
        *q = t.saturating_add(half).saturating_add(zero_point).clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod tests {
    use crate::rng::Rng;

    /// The rounding is exact on every host too (it is plain Rust): every tie, the largest float
    /// below a half, huge, infinite and NaN values, and random bit patterns, at several scales
    /// and zero points. (The kernel suite checks it on a Cortex-M4 under QEMU.)
    #[test]
    fn gives_the_reference_bytes() {
        let mut rng = Rng::new(12);
        let mut x: Vec<f32> = (-600..=600).map(|i| i as f32 * 0.5).collect();
        x.extend([0.49999997, -0.49999997, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 8388607.5, -8388607.5]);
        x.extend([16777216.0, 3e9, -3e9, f32::MAX, f32::MIN, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        x.extend((0..20_000).map(|_| f32::from_bits(rng.next_u64() as u32)));
        for scale in [1.0, 0.5, 1.0 / 255.0, 3e-3, 1e-30, 3e30] {
            for zero_point in [-128, -76, 0, 5, 127] {
                let mut got = vec![0i8; x.len()];
                super::quantize_i8(&x, scale, zero_point, &mut got);
                for (&v, &g) in x.iter().zip(&got) {
                    assert_eq!(g, crate::quant::quantize_i8(v, scale, zero_point), "{v} / {scale} + {zero_point}");
                }
            }
        }
    }
}
