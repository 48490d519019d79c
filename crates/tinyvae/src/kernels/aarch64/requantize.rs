//! The int8 requantization epilogue for four output channels at once, on NEON, bit-exact with
//! [`crate::quant::requantize`].
//!
//! Why these instructions give gemmlowp's reference bytes:
//! - `SaturatingRoundingDoublingHighMul`: gemmlowp computes `(ab + nudge) / 2^31` truncated, with
//!   `nudge = 2^30` for `ab >= 0` and `1 - 2^30` otherwise. For negative `ab`, truncation is a
//!   ceiling, and `ceil((u + 1 - 2^31) / 2^31) = floor(u / 2^31)` for any integer `u = ab + 2^30`;
//!   so both signs give `floor((ab + 2^30) / 2^31)`, which is exactly `sqrdmulh`'s
//!   `(2ab + 2^31) >> 32`. Both saturate only `i32::MIN * i32::MIN`. No fix-up needed: ties round
//!   upward in both (the unit tests below pin the tie cases).
//! - `RoundingDivideByPOT`: `srshl` by `-e` rounds ties upward, gemmlowp rounds them away from
//!   zero. Subtracting 1 from negative inputs first (when `e > 0`) turns
//!   `floor((x + 2^(e-1)) / 2^e)` into `floor((x - 1 + 2^(e-1)) / 2^e) = ceil((x - 2^(e-1)) / 2^e)`,
//!   which is the away-from-zero rounding for negative `x` (gemmlowp's own NEON fix-up).
//!
//! Shifts above 30 or an inverted clamp range never come out of the quantizer (the parser rejects
//! them), but the scalar reference still defines a result for them; channels holding them take
//! the scalar path, so the bytes agree for any input.

use core::arch::aarch64::*;

use crate::quant::requantize;

/// The requantization parameters of four consecutive output channels, prepared once per row
/// tile and applied to every sample of the batch.
pub(super) struct ChannelQuant4 {
    multiplier_v: int32x4_t,
    /// The blob's shifts, as given (the scalar path needs them unclamped).
    shift_v: int32x4_t,
    left_shift_v: int32x4_t,
    /// Minus the right-shift exponent, clamped to `-31..=0` (what `srshl` wants).
    neg_right_shift_v: int32x4_t,
    zero_point_v: int32x4_t,
    act_min_v: int32x4_t,
    act_max_v: int32x4_t,
    zero_point: i32,
    act_min: i8,
    act_max: i8,
    /// All four channels are in the range where the vector path is exact.
    vector_exact: bool,
}

impl ChannelQuant4 {
    /// # Safety
    /// The CPU must support NEON.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn new(
        multiplier_v: int32x4_t,
        shift_v: int32x4_t,
        zero_point: i32,
        act_min: i8,
        act_max: i8,
    ) -> Self {
        ChannelQuant4 {
            multiplier_v,
            shift_v,
            left_shift_v: vmaxq_s32(shift_v, vdupq_n_s32(0)),
            // The reference's exponent is min(-shift, 31) for shift <= 0, so this is
            // max(shift, -31) there (no negation: -i32::MIN would overflow).
            neg_right_shift_v: vminq_s32(vmaxq_s32(shift_v, vdupq_n_s32(-31)), vdupq_n_s32(0)),
            zero_point_v: vdupq_n_s32(zero_point),
            act_min_v: vdupq_n_s32(act_min as i32),
            act_max_v: vdupq_n_s32(act_max as i32),
            zero_point,
            act_min,
            act_max,
            vector_exact: act_min <= act_max && vmaxvq_s32(shift_v) <= 30,
        }
    }

    /// Requantizes four accumulators (lane `i` is channel `i`); returns the four int8 codes as
    /// the bytes of a little-endian `u32`, ready to store.
    ///
    /// # Safety
    /// The CPU must support NEON.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn apply(&self, acc: int32x4_t) -> u32 {
        if !self.vector_exact {
            // The parameters go by value: a `&self` call made LLVM store the whole struct to
            // the stack for every row tile, on the path that is never taken.
            return apply_scalar(acc, self.multiplier_v, self.shift_v, self.zero_point, self.act_min, self.act_max);
        }
        let clamped = self.clamped(acc);
        // Every lane is in -128..=127 now, so the narrowing moves are exact.
        let halves = vmovn_s32(clamped);
        let bytes = vmovn_s16(vcombine_s16(halves, halves));
        vget_lane_u32::<0>(vreinterpret_u32_s8(bytes))
    }

    /// [`ChannelQuant4::apply`] to four accumulator vectors at once (a tile's four pixels):
    /// byte `4 * j + i` of the result is channel `i` of `acc[j]`. One test of the parameters
    /// and one narrowing for all sixteen, which a convolution's many small tiles notice.
    ///
    /// # Safety
    /// The CPU must support NEON.
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn apply4(&self, acc: [int32x4_t; 4]) -> int8x16_t {
        if !self.vector_exact {
            let words = acc
                .map(|a| apply_scalar(a, self.multiplier_v, self.shift_v, self.zero_point, self.act_min, self.act_max));
            return vreinterpretq_s8_u32(vld1q_u32(words.as_ptr()));
        }
        let c = acc.map(|a| self.clamped(a));
        // Every lane is in -128..=127, so the narrowing moves are exact.
        let low = vmovn_high_s32(vmovn_s32(c[0]), c[1]);
        let high = vmovn_high_s32(vmovn_s32(c[2]), c[3]);
        vmovn_high_s16(vmovn_s16(low), high)
    }

    /// Whether [`ChannelQuant4::apply_pair`] may be used: the vector path is exact for all four
    /// channels.
    #[inline]
    pub(super) fn is_vector_exact(&self) -> bool {
        self.vector_exact
    }

    /// Eight channels of two samples at once (the dense kernel's 8x2 tile): `self` holds
    /// channels 0..4 and `upper` channels 4..8; `sums` are sample 0's channels 0..4 and 4..8,
    /// then sample 1's. Bytes 0..8 of the result are sample 0's eight codes, bytes 8..16 sample
    /// 1's. One narrowing for the sixteen instead of four.
    ///
    /// # Safety
    /// The CPU must support NEON, and both [`ChannelQuant4::is_vector_exact`].
    #[inline]
    #[target_feature(enable = "neon")]
    pub(super) unsafe fn apply_pair(&self, upper: &ChannelQuant4, sums: [int32x4_t; 4]) -> int8x16_t {
        let c = [self.clamped(sums[0]), upper.clamped(sums[1]), self.clamped(sums[2]), upper.clamped(sums[3])];
        // Every lane is in -128..=127, so the narrowing moves are exact.
        let first = vmovn_high_s32(vmovn_s32(c[0]), c[1]);
        let second = vmovn_high_s32(vmovn_s32(c[2]), c[3]);
        vmovn_high_s16(vmovn_s16(first), second)
    }

    /// The vector path up to the clamp: every lane in `act_min..=act_max`.
    ///
    /// # Safety
    /// The CPU must support NEON, and `vector_exact` must hold.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn clamped(&self, acc: int32x4_t) -> int32x4_t {
        // `sqshl` saturates exactly like the reference's `saturating_mul(1 << left)`.
        let scaled = vqshlq_s32(acc, self.left_shift_v);
        let high = vqrdmulhq_s32(scaled, self.multiplier_v);
        // -1 where high < 0 and the exponent is non-zero (neg_right_shift has its sign bit set).
        let fixup = vshrq_n_s32::<31>(vandq_s32(high, self.neg_right_shift_v));
        let divided = vrshlq_s32(vqaddq_s32(high, fixup), self.neg_right_shift_v);
        let shifted = vqaddq_s32(divided, self.zero_point_v);
        vminq_s32(vmaxq_s32(shifted, self.act_min_v), self.act_max_v)
    }
}

/// [`ChannelQuant4::apply`] one channel at a time with the scalar reference, for parameters
/// outside the vector path's exact range.
///
/// # Safety
/// The CPU must support NEON.
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn apply_scalar(
    acc: int32x4_t,
    multiplier_v: int32x4_t,
    shift_v: int32x4_t,
    zero_point: i32,
    act_min: i8,
    act_max: i8,
) -> u32 {
    let (mut lanes, mut multipliers, mut shifts) = ([0i32; 4], [0i32; 4], [0i32; 4]);
    // Each array is a 16-byte local: the stores stay inside them.
    vst1q_s32(lanes.as_mut_ptr(), acc);
    vst1q_s32(multipliers.as_mut_ptr(), multiplier_v);
    vst1q_s32(shifts.as_mut_ptr(), shift_v);
    let mut bytes = [0u8; 4];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = requantize(lanes[i], multipliers[i], shifts[i], zero_point, act_min, act_max) as u8;
    }
    u32::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// # Safety
    /// The CPU must support NEON.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load_i32x4(values: &[i32; 4]) -> int32x4_t {
        // Reads exactly the 16 bytes of the array.
        vld1q_s32(values.as_ptr())
    }

    /// Runs one four-channel group through the vector epilogue and the scalar reference.
    fn check(acc: [i32; 4], multipliers: [i32; 4], shifts: [i32; 4], zero_point: i32, act_min: i8, act_max: i8) {
        if !super::super::has_neon() {
            return;
        }
        // SAFETY: NEON was detected just above.
        let got = unsafe {
            let q = ChannelQuant4::new(load_i32x4(&multipliers), load_i32x4(&shifts), zero_point, act_min, act_max);
            q.apply(load_i32x4(&acc))
        }
        .to_le_bytes();
        for i in 0..4 {
            let want = requantize(acc[i], multipliers[i], shifts[i], zero_point, act_min, act_max);
            assert_eq!(
                got[i] as i8, want,
                "acc {} m {} s {} zp {zero_point} [{act_min}, {act_max}]",
                acc[i], multipliers[i], shifts[i]
            );
        }
    }

    #[test]
    fn ties_match_gemmlowp_in_both_signs() {
        // Multiplier 2^30 is 0.5: odd accumulators are exact ties of the high multiply, and
        // shifts of -1..-3 put ties into the rounding divide too.
        for shift in [0, -1, -2, -3] {
            for acc in -1030..=1030 {
                check([acc, -acc, acc + 1, -acc - 1], [1 << 30; 4], [shift; 4], 0, -128, 127);
            }
        }
    }

    #[test]
    fn extremes_and_every_shift_match_the_reference() {
        let accs = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30) - 1,
            -65537,
            -255,
            -2,
            -1,
            0,
            1,
            2,
            255,
            65537,
            1 << 30,
            i32::MAX - 1,
            i32::MAX,
        ];
        let multipliers = [0, 1, 1 << 30, (1 << 30) + 1, 0x5555_5555, i32::MAX];
        for shift in -31..=30 {
            for &m in &multipliers {
                for zp in [-128, -1, 0, 5, 127] {
                    for (lo, hi) in [(-128i8, 127i8), (zp.clamp(-128, 127) as i8, 127)] {
                        for a in accs.chunks(4) {
                            let mut acc = [0; 4];
                            acc[..a.len()].copy_from_slice(a);
                            check(acc, [m; 4], [shift; 4], zp, lo, hi);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn random_parameters_match_the_reference() {
        let mut rng = Rng::new(0xA64);
        for _ in 0..200_000 {
            let acc = [0; 4].map(|_| (rng.next_u64() as i32) >> rng.below(32));
            let multipliers = [0; 4].map(|_| (1 << 30) + (rng.next_u64() as u32 >> 2) as i32);
            let shifts = [0; 4].map(|_| rng.below(62) as i32 - 31);
            let zp = rng.below(256) as i32 - 128;
            check(acc, multipliers, shifts, zp, -128, 127);
        }
    }

    #[test]
    fn four_vectors_at_once_match_the_reference() {
        if !super::super::has_neon() {
            return;
        }
        let mut rng = Rng::new(0xA644);
        for case in 0..20_000 {
            let acc = [0; 16].map(|_| (rng.next_u64() as i32) >> rng.below(32));
            let multipliers = [0; 4].map(|_| (1 << 30) + (rng.next_u64() as u32 >> 2) as i32);
            // Every 16th case a shift the parser rejects: the scalar path for all four.
            let shifts = [0; 4].map(|_| if case % 16 == 0 { 31 } else { rng.below(62) as i32 - 31 });
            let zp = rng.below(256) as i32 - 128;
            let (lo, hi) = (-128 + rng.below(100) as i8, 127 - rng.below(100) as i8);
            let mut got = [0i8; 16];
            // SAFETY: NEON was detected above; the loads read the 16-byte arrays.
            unsafe {
                let q = ChannelQuant4::new(load_i32x4(&multipliers), load_i32x4(&shifts), zp, lo, hi);
                let v: [int32x4_t; 4] = core::array::from_fn(|j| vld1q_s32(acc[4 * j..].as_ptr()));
                vst1q_s8(got.as_mut_ptr(), q.apply4(v));
            }
            for (k, &g) in got.iter().enumerate() {
                let want = requantize(acc[k], multipliers[k % 4], shifts[k % 4], zp, lo, hi);
                assert_eq!(g, want, "case {case} lane {k}");
            }
        }
    }

    #[test]
    fn values_the_parser_rejects_still_match_the_reference() {
        // Shifts past 30, negative multipliers and inverted clamps take the scalar path or
        // stay exact in the vector one; either way the bytes are the reference's.
        let odd_shifts = [31, 32, 40, i32::MAX, i32::MIN, -32, -1000];
        for &s in &odd_shifts {
            for acc in [i32::MIN, -77777, -1, 0, 3, 99999, i32::MAX] {
                check([acc, acc, -acc, 1], [i32::MAX, 1 << 30, -5, i32::MIN], [s, 0, -3, s], 0, -128, 127);
            }
        }
        for acc in [i32::MIN, -300, -1, 0, 1, 300, i32::MAX] {
            check([acc; 4], [i32::MIN, -1, -(1 << 30), i32::MAX], [0, 1, -31, 30], i32::MIN, -128, 127);
            check([acc; 4], [1 << 30; 4], [0; 4], i32::MAX, 10, -10);
        }
    }
}
