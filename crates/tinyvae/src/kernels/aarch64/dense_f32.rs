//! f32 Dense on NEON `fmla` (the full-precision baseline, vectorized). Weights come straight
//! from the blob at any alignment, so they are loaded as bytes and reinterpreted.

use core::arch::aarch64::*;

use super::dense_float_tiles::{dense_float_tiled, fits, WeightFormat};
use crate::kernels::{reference, DenseFloat};

/// See [`crate::kernels::DenseFloatFn`]; within the kernel suite's tolerance of the reference.
pub(super) fn dense_f32_neon(p: &DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if super::has_neon() && fits::<F32>(p, x, batch, out) {
        // SAFETY: NEON is present (checked above) and `fits` has checked every slice against
        // the shapes the driver walks.
        unsafe { dense_float_tiled::<F32>(p, x, batch, out) }
    } else {
        reference::dense_f32(p, x, batch, out)
    }
}

/// Little-endian f32 weights.
struct F32;

impl WeightFormat for F32 {
    const BYTES: usize = 4;

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load8(p: *const u8) -> (float32x4_t, float32x4_t) {
        (Self::load4(p), Self::load4(p.add(16)))
    }

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // A byte load has no alignment requirement; the caller guarantees 16 readable bytes.
        vreinterpretq_f32_u8(vld1q_u8(p))
    }

    #[inline]
    unsafe fn load1(p: *const u8) -> f32 {
        // `[u8; 4]` has alignment 1; the caller guarantees 4 readable bytes.
        f32::from_le_bytes(*(p as *const [u8; 4]))
    }
}
