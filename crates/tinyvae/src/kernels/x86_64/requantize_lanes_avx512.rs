//! The one-sample epilogue of [`super::requantize_avx512`] (16 rows of one sample per vector,
//! each lane its own row's parameters) in fewer instructions, for kernels that requantize many
//! vectors with the same 16 rows' parameters: the transposed convolutions' lane blocks, every
//! output pixel with the same 16 output channels.
//!
//! It is [`super::requantize_avx512::RowTable`]'s arithmetic, lane by lane: both roundings of
//! `requantize` (gemmlowp's doubling high multiply, then the rounding right shift) in one
//! 64-bit multiply, add and arithmetic shift, `(acc * m + c - adjust * [acc * m < -2^30]) >>
//! (31 + e)` with per-row constants (see there why that is exact), even rows and odd rows in
//! the two halves of each 64-bit lane. Then the zero point and the clamp in three
//! instructions: clamping to `[lo - zp, hi - zp]` and adding `zp` is `saturating_add(zp)`
//! then the clamp to `[lo, hi]` for a zero point in -128..=127 and `lo <= hi` (a value below
//! `lo - zp` ends at `lo` either way, one above `hi - zp` at `hi`, and one between adds
//! without saturating). 16 vector instructions a vector against 25 for
//! [`super::requantize_avx512::Epilogue::apply16`]; the table costs about as much as one
//! vector, once per block. On the conv VAE's 64 -> 32 transposed convolution (392 vectors a
//! sample, 1.5 us of its 10.5) it measured 3% of the layer; narrowing a pixel's two blocks
//! together ([`LaneTable::narrow_pair`]) instead of each with `vpmovdb` took another 6% off
//! the whole decoder.

use core::arch::x86_64::*;

use super::requantize_avx512::{Epilogue, Path, Rows16};

/// The per-row constants of 16 rows with right shifts only.
pub(super) struct LaneTable {
    offset: __m512i,
    /// Multipliers of the even rows (low dwords) and of the odd rows (moved there).
    multiplier: [__m512i; 2],
    /// `2^30`, plus `2^(30 + e)` for rows that shift right (`e > 0`), as i64.
    nudge: [__m512i; 2],
    /// `-2^31` for rows that shift right, else 0.
    adjust: [__m512i; 2],
    /// `31 + e`.
    shift: [__m512i; 2],
    /// `lo - zp`, `hi - zp`, `zp`.
    clamp: [__m512i; 3],
    /// `zp` in 16-bit lanes, `lo` and `hi` in bytes, for [`LaneTable::narrow_pair`].
    narrow: [__m512i; 3],
}

impl LaneTable {
    /// The table of a block whose rows all shift right (the usual case), `None` otherwise
    /// (then [`Epilogue::apply16`] applies).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) fn new(ep: &Epilogue<'_>, r: &Rows16) -> Option<LaneTable> {
        if r.path != Path::RightShifts {
            return None;
        }
        let right = _mm512_sub_epi32(_mm512_setzero_si512(), r.shift);
        // Even rows' values sign-extended from the low dwords, odd rows' from the high ones.
        let halves = |v: __m512i| [_mm512_srai_epi64::<32>(_mm512_slli_epi64::<32>(v)), _mm512_srai_epi64::<32>(v)];
        let e = halves(right);
        let base = _mm512_set1_epi64(1 << 30);
        let per_half = |h: usize| {
            let rounds = _mm512_cmpgt_epi64_mask(e[h], _mm512_setzero_si512());
            (
                _mm512_mask_add_epi64(base, rounds, base, _mm512_sllv_epi64(base, e[h])),
                _mm512_maskz_mov_epi64(rounds, _mm512_set1_epi64(-(1 << 31))),
                _mm512_add_epi64(e[h], _mm512_set1_epi64(31)),
            )
        };
        let ((n0, a0, s0), (n1, a1, s1)) = (per_half(0), per_half(1));
        let p = ep.p;
        let zp = p.out_zero_point;
        Some(LaneTable {
            offset: r.offset,
            multiplier: [r.multiplier, _mm512_srli_epi64::<32>(r.multiplier)],
            nudge: [n0, n1],
            adjust: [a0, a1],
            shift: [s0, s1],
            clamp: [
                _mm512_set1_epi32(p.act_min as i32 - zp),
                _mm512_set1_epi32(p.act_max as i32 - zp),
                _mm512_set1_epi32(zp),
            ],
            // zp is in -128..=127 (the `Path::RightShifts` condition).
            narrow: [_mm512_set1_epi16(zp as i16), _mm512_set1_epi8(p.act_min), _mm512_set1_epi8(p.act_max)],
        })
    }

    /// Requantizes `sums` (lane `i` is row `first_row + i` of one sample), as
    /// [`Epilogue::apply16`] does.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) fn apply(&self, sums: __m512i) -> __m512i {
        let [lo, hi, zp] = self.clamp;
        _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(self.scale(sums), lo), hi), zp)
    }

    /// [`LaneTable::apply`] before the zero point and the clamp.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) fn scale(&self, sums: __m512i) -> __m512i {
        let limit = _mm512_set1_epi64(-(1 << 30));
        let acc = _mm512_add_epi32(sums, self.offset);
        let scale = |h: usize, a: __m512i| {
            let product = _mm512_mul_epi32(a, self.multiplier[h]);
            let below = _mm512_cmplt_epi64_mask(product, limit);
            let nudged = _mm512_add_epi64(product, self.nudge[h]);
            _mm512_srav_epi64(_mm512_mask_add_epi64(nudged, below, nudged, self.adjust[h]), self.shift[h])
        };
        let (even, odd) = (scale(0, acc), scale(1, _mm512_srli_epi64::<32>(acc)));
        // The odd rows' low dwords into the odd lanes.
        _mm512_mask_shuffle_epi32::<0xB1>(even, 0xAAAA, odd)
    }

    /// The outputs of two vectors [`LaneTable::scale`]d (by this table and one of the same
    /// layer), as 32 bytes, `a`'s 16 first: the zero point and the clamp on 16- and 8-bit
    /// lanes of both at once, and one permute instead of two narrowing `vpmovdb`s. Exact: the
    /// saturating packs and the saturating 16-bit addition keep every value on its side of
    /// the clamp range, and the pack to bytes saturates only values the clamp would cut.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) fn narrow_pair(&self, a: __m512i, b: __m512i) -> __m256i {
        let [zp, lo, hi] = self.narrow;
        let words = _mm512_adds_epi16(_mm512_packs_epi32(a, b), zp);
        let bytes = _mm512_min_epi8(_mm512_max_epi8(_mm512_packs_epi16(words, words), lo), hi);
        // 128-bit lane L: a's lanes 4L..4L + 4 in dword 0, b's in dword 1.
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
        _mm512_castsi512_si256(_mm512_permutexvar_epi32(order, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::DenseI8;
    use crate::quant::requantize;
    use crate::rng::Rng;

    #[test]
    fn lane_tables_requantize_as_the_scalar_definition() {
        if !super::super::has(super::super::Level::Avx512Vnni) {
            return;
        }
        let mut rng = Rng::new(13);
        let le = |v: &[i32; 16]| -> [u8; 64] { core::array::from_fn(|i| v[i / 4].to_le_bytes()[i % 4]) };
        for round in 0..20_000 {
            let c = super::super::requantize_cases::draw::<16>(&mut rng, round);
            // Right shifts only, except in some rounds (which must get no table).
            let mut shift: [i32; 16] = core::array::from_fn(|i| c.shift[i].min(0));
            if round % 9 == 4 {
                shift[round % 16] = 1 + (round % 30) as i32;
            }
            let bias: [i32; 16] = core::array::from_fn(|_| rng.next_u64() as i32 >> rng.below(32));
            let sums: [i32; 16] = core::array::from_fn(|_| rng.next_u64() as i32 >> (8 + rng.below(24)));
            let (bias_b, mult_b, shift_b, sums_b) = (le(&bias), le(&c.multiplier), le(&shift), le(&sums));
            let p = DenseI8 {
                rows: 16,
                cols: 1,
                layout: crate::format::WeightLayout::RowMajor,
                weights: &[0; 16],
                bias: &bias_b,
                multipliers: &mult_b,
                shifts: &shift_b,
                weight_sums: &sums_b,
                out_zero_point: c.zero_point,
                act_min: c.lo,
                act_max: c.hi,
            };
            let ep = Epilogue::new(&p, true);
            let mut got = [0i32; 16];
            // The same accumulators in the other order, through `narrow_pair`.
            let reversed: [i32; 16] = core::array::from_fn(|r| c.acc[15 - r]);
            let mut pair = [0i8; 32];
            // SAFETY: AVX-512 checked above; 16 rows of parameters; 64- and 32-byte local arrays.
            let table = unsafe {
                let table = LaneTable::new(&ep, &ep.params16(0));
                if let Some(t) = &table {
                    let acc = _mm512_loadu_si512(c.acc.as_ptr().cast());
                    _mm512_storeu_si512(got.as_mut_ptr().cast(), t.apply(acc));
                    let y = t.narrow_pair(t.scale(acc), t.scale(_mm512_loadu_si512(reversed.as_ptr().cast())));
                    _mm256_storeu_si256(pair.as_mut_ptr().cast(), y);
                }
                table
            };
            assert_eq!(table.is_some(), round % 9 != 4, "round {round}");
            if table.is_none() {
                continue;
            }
            let want = |r: usize, acc: i32| {
                let acc = acc.wrapping_add(bias[r]).wrapping_sub(sums[r].wrapping_mul(128));
                requantize(acc, c.multiplier[r], shift[r], c.zero_point, c.lo, c.hi)
            };
            for r in 0..16 {
                assert_eq!(got[r], want(r, c.acc[r]) as i32, "round {round}: row {r}");
                assert_eq!(pair[r], want(r, c.acc[r]), "round {round}: row {r}, narrow_pair");
                assert_eq!(pair[16 + r], want(r, reversed[r]), "round {round}: row {r}, narrow_pair (b)");
            }
        }
    }
}
