//! int8 Dense on `sdot` (FEAT_DotProd: Raspberry Pi 5, Cortex-A76): one instruction adds 16
//! int8 products into four int32 lanes, exactly (no intermediate can overflow).
//!
//! The `vdotq_s32` intrinsic is still unstable, so the instruction is emitted with `asm!`;
//! `.arch_extension dotprod` lets the assembler accept it whatever the crate's target features.

use core::arch::aarch64::*;
use core::arch::asm;

use super::dense_i8_tiles::{dense_i8_tiled, fits, wide_loops, DotStep};
use crate::kernels::DenseI8;

/// See [`crate::kernels::DenseI8Fn`]; same bytes as the reference. On a CPU without dotprod it
/// runs the NEON kernel.
pub(super) fn dense_i8_sdot(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if super::has_dotprod() && fits(p, x, batch, out) {
        // SAFETY: NEON and dotprod are present (checked above) and `fits` has checked every
        // slice against the shapes the driver walks.
        unsafe { dense_i8_tiled::<SignedDot>(p, x, batch, out) }
    } else {
        super::dense_i8_neon::dense_i8_neon(p, x, batch, out)
    }
}

/// `sdot acc.4s, w.16b, x.16b`: lane i gets the products of bytes 4i..4i+4.
pub(super) struct SignedDot;

/// One `sdot` per 16 products (no scratch register needed).
macro_rules! sdot_step {
    ($acc:literal, $w:literal, $x:literal, $tmp:literal) => {
        concat!("sdot ", $acc, ".4s, ", $w, ".16b, ", $x, ".16b")
    };
}

impl DotStep for SignedDot {
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn step(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: register-only arithmetic (no memory, stack or flags); the caller guarantees
        // the CPU has dotprod.
        asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags),
        );
        acc
    }

    wide_loops!(sdot_step, ".arch_extension dotprod");
}
