//! The weight-streaming floor on NEON: every weight byte loaded once (64 bytes per iteration)
//! and summed as int8 with `sadalp`, wrapping like the reference.

use core::arch::aarch64::*;

use crate::kernels::reference;

/// See [`crate::kernels::WeightStreamFn`]; equals the reference's wrapping sum.
pub(super) fn weight_stream_neon(weights: &[u8]) -> i32 {
    if super::has_neon() {
        // SAFETY: NEON is present (checked above).
        unsafe { weight_stream_sadalp(weights) }
    } else {
        reference::weight_stream(weights)
    }
}

/// 64-byte iterations between widenings of the int16 partial sums: each adds at most two
/// bytes (|v| <= 128) per lane, and `128 * 2 * 128 = 32768` reaches only `i16::MIN`.
const ITERATIONS_PER_WIDENING: usize = 128;

/// # Safety
/// NEON.
#[target_feature(enable = "neon")]
unsafe fn weight_stream_sadalp(weights: &[u8]) -> i32 {
    let p = weights.as_ptr() as *const i8;
    let n = weights.len();
    let mut wide = [vdupq_n_s32(0); 4];
    let mut i = 0;
    // Loads read bytes i..i+64 with i + 64 <= n.
    while i + 64 <= n {
        let block_end = n.min(i + 64 * ITERATIONS_PER_WIDENING);
        let mut narrow = [vdupq_n_s16(0); 4];
        while i + 64 <= block_end {
            for (j, acc) in narrow.iter_mut().enumerate() {
                *acc = vpadalq_s8(*acc, vld1q_s8(p.add(i + 16 * j)));
            }
            i += 64;
        }
        for (w, &nw) in wide.iter_mut().zip(&narrow) {
            *w = vpadalq_s16(*w, nw);
        }
    }
    // int32 lane adds and `addv` wrap, like the reference's wrapping_add.
    let total = vaddvq_s32(vaddq_s32(vaddq_s32(wide[0], wide[1]), vaddq_s32(wide[2], wide[3])));
    weights[i..].iter().fold(total, |acc, &w| acc.wrapping_add(w as i8 as i32))
}
