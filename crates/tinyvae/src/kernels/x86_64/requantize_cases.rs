//! Test vectors for the vector requantizations (AVX2, 8 lanes; AVX-512, 16): accumulators
//! with extremes, multipliers at their edges, every shift in -31..=30, any zero point, with and
//! without a folded ReLU. One generator, so that both widths face the same kinds of case.

use crate::rng::Rng;

/// One case of `N` lanes: accumulators, multipliers, shifts, zero point and clamps.
pub(super) struct Case<const N: usize> {
    pub acc: [i32; N],
    pub multiplier: [i32; N],
    pub shift: [i32; N],
    pub zero_point: i32,
    pub lo: i8,
    pub hi: i8,
}

/// Draws case number `round`.
pub(super) fn draw<const N: usize>(rng: &mut Rng, round: usize) -> Case<N> {
    let specials = [0, 1, -1, i32::MAX, i32::MIN, 1 << 30, -(1 << 30), (1 << 30) + 1, 12345, -12345];
    let mut c = Case { acc: [0; N], multiplier: [0; N], shift: [0; N], zero_point: 0, lo: -128, hi: 127 };
    for i in 0..N {
        c.acc[i] = match rng.below(4) {
            0 => specials[rng.below(specials.len() as u32) as usize],
            1 => rng.next_u64() as i32,
            _ => (rng.next_u64() as i32) >> rng.below(31),
        };
        c.multiplier[i] = match rng.below(5) {
            0 => 0,
            1 => i32::MAX,
            2 => 1 << 30,
            _ => (1 << 30) + (rng.next_u64() as u32 >> 2) as i32,
        };
        c.shift[i] = rng.below(62) as i32 - 31;
    }
    c.zero_point = rng.below(256) as i32 - 128;
    if round % 2 == 1 {
        c.lo = c.zero_point as i8;
    }
    c
}
