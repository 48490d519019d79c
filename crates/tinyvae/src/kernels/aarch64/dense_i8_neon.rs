//! int8 Dense on plain NEON, for cores without dotprod (Raspberry Pi 4, Cortex-A72).
//!
//! 16 products cost three instructions: `smull` (low 8 lanes) and `smlal2` (high 8 lanes) leave
//! pairs of products in int16 lanes, and `sadalp` adds the pairs into the int32 accumulator. Two
//! products fit an int16 lane because weights are never -128 (the parser rejects it, see
//! `docs/FORMAT.md`): `2 * 127 * 128 = 32512 <= 32767`.
//!
//! Three instructions per 16 MACs is this scheme's floor (a third product per int16 lane could
//! overflow), so speed comes from everything around it: the driver's assembly loops add only
//! one `ld1` per row and sample per 64 (or 32) columns, and little per-tile overhead.

use core::arch::aarch64::*;

use super::dense_i8_tiles::{dense_i8_tiled, fits, wide_loops, DotStep};
use crate::kernels::{reference, DenseI8};

/// See [`crate::kernels::DenseI8Fn`]; same bytes as the reference.
pub(super) fn dense_i8_neon(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if super::has_neon() && fits(p, x, batch, out) {
        // SAFETY: NEON is present (checked above) and `fits` has checked every slice against
        // the shapes the driver walks.
        unsafe { dense_i8_tiled::<WideningMac>(p, x, batch, out) }
    } else {
        reference::dense_i8(p, x, batch, out)
    }
}

/// `smull` + `smlal2` + `sadalp`.
pub(super) struct WideningMac;

/// The three instructions of [`WideningMac::step`], through a scratch vector.
macro_rules! widening_step {
    ($acc:literal, $w:literal, $x:literal, $tmp:literal) => {
        concat!(
            "smull ", $tmp, ".8h, ", $w, ".8b, ", $x, ".8b\n", "smlal2 ", $tmp, ".8h, ", $w, ".16b, ", $x, ".16b\n",
            "sadalp ", $acc, ".4s, ", $tmp, ".8h"
        )
    };
}

impl DotStep for WideningMac {
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn step(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let pairs = vmlal_high_s8(vmull_s8(vget_low_s8(w), vget_low_s8(x)), w, x);
        vpadalq_s16(acc, pairs)
    }

    // The NEON table has no directive to give: everything here is base Armv8-A.
    wide_loops!(widening_step, "");
}
