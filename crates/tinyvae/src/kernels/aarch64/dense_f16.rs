//! Dense with f16 weights on NEON: weights widened to f32 with `fcvtl`/`fcvtl2` (base Armv8
//! NEON, no FEAT_FP16 needed), then `fmla` in f32 like the reference's f32 accumulation. Half
//! the weight bytes of f32 for the same arithmetic.
//!
//! The conversion intrinsics take `float16x4_t`, which is unstable, so `fcvtl` is emitted with
//! `asm!` on the raw bits.

use core::arch::aarch64::*;
use core::arch::asm;

use super::dense_float_tiles::{dense_float_tiled, fits, WeightFormat};
use crate::kernels::{reference, DenseFloat};

/// See [`crate::kernels::DenseFloatFn`]; within the kernel suite's tolerance of the reference.
pub(super) fn dense_f16_neon(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if super::has_neon() && fits::<F16>(p, x, batch, out) {
        // SAFETY: NEON is present (checked above) and `fits` has checked every slice against
        // the shapes the driver walks.
        unsafe { dense_float_tiled::<F16>(p, x, batch, out) }
    } else {
        reference::dense_f16(p, x, batch, out)
    }
}

/// Little-endian IEEE binary16 weights.
struct F16;

impl WeightFormat for F16 {
    const BYTES: usize = 2;

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load8(p: *const u8) -> (float32x4_t, float32x4_t) {
        // A byte load has no alignment requirement; the caller guarantees 16 readable bytes.
        let bits = vld1q_u8(p);
        let (lo, hi): (float32x4_t, float32x4_t);
        // SAFETY: register-only conversions (no memory, stack or flags), base NEON.
        asm!(
            "fcvtl {lo:v}.4s, {bits:v}.4h",
            "fcvtl2 {hi:v}.4s, {bits:v}.8h",
            bits = in(vreg) bits,
            lo = out(vreg) lo,
            hi = out(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
        (lo, hi)
    }

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // A byte load has no alignment requirement; the caller guarantees 8 readable bytes.
        let bits = vld1_u8(p);
        let wide: float32x4_t;
        // SAFETY: a register-only conversion (no memory, stack or flags), base NEON.
        asm!(
            "fcvtl {wide:v}.4s, {bits:v}.4h",
            bits = in(vreg) bits,
            wide = out(vreg) wide,
            options(pure, nomem, nostack, preserves_flags),
        );
        wide
    }

    #[inline]
    unsafe fn load1(p: *const u8) -> f32 {
        // `[u8; 2]` has alignment 1; the caller guarantees 2 readable bytes.
        half::f16::from_le_bytes(*(p as *const [u8; 2])).to_f32()
    }
}
