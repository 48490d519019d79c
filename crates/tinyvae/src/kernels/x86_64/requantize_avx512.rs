//! The int8 Dense epilogue, 16 outputs at a time with AVX-512: reduces 16 dot-product
//! accumulators together, adds the bias (and removes `vpdpbusd`'s `128 * weight_sum` offset),
//! and requantizes bit for bit like [`crate::quant::requantize`]. Two shapes: 16 rows of one
//! sample per vector ([`Epilogue::apply16`], the one-sample kernels), and one row of 16 samples
//! per vector ([`RowTable`], the packed kernels).
//!
//! The vector requantization relies on two identities of the scalar definition:
//! - gemmlowp's `SaturatingRoundingDoublingHighMul` (nudge, then divide truncating toward zero)
//!   equals `floor((a * b + 2^30) / 2^31)` for every product: for a negative product the nudge
//!   `1 - 2^30` and the truncation's `2^31 - 1` add up to the positive nudge `2^30`. So the high
//!   half needs no sign handling, and its low 32 bits are bits 31..62 of `a * b + 2^30`.
//! - With the output zero point in -128..=127 and `act_min <= act_max`, clamping the scaled
//!   value to +-2^16 before adding the zero point changes no clamped result and rules out the
//!   overflow that `saturating_add` guards against.
//!
//! Parameters outside the blob parser's ranges (negative multipliers, shifts outside -31..=30,
//! odd zero points or clamps) take the scalar [`crate::quant::requantize`] instead, so even a
//! hand-made `DenseI8` gets the reference's bytes.

use core::arch::x86_64::*;

use super::param;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Per-call epilogue state: the layer's parameters and whether the vector path applies.
pub(super) struct Epilogue<'a> {
    pub(super) p: &'a DenseI8<'a>,
    /// Subtract `128 * weight_sums[o]` (kernels that feed `x ^ 0x80` as unsigned bytes).
    unsigned_input: bool,
    /// Zero point and clamps are in the range the vector path handles exactly.
    vector_ok: bool,
}

impl<'a> Epilogue<'a> {
    pub(super) fn new(p: &'a DenseI8<'a>, unsigned_input: bool) -> Self {
        let vector_ok = (-128..=127).contains(&p.out_zero_point) && p.act_min <= p.act_max;
        Epilogue { p, unsigned_input, vector_ok }
    }

    /// Loads and checks the parameters of rows `o..o + 16`, once for every sample that uses
    /// them.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL must be available, and `o + 16 <= rows` with every parameter array
    /// holding `rows` entries (as [`DenseI8::samples`] checks).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn params16(&self, o: usize) -> Rows16 {
        let at = |bytes: &[u8]| {
            // SAFETY: bytes 4*o .. 4*(o+16) lie inside `bytes` (caller's contract); loadu has no
            // alignment requirement.
            unsafe { _mm512_loadu_si512(bytes.as_ptr().add(4 * o).cast()) }
        };
        let mut offset = at(self.p.bias);
        if self.unsigned_input {
            // (x + 128) . w = x . w + 128 * sum(w), all mod 2^32 like the reference's wrapping sum.
            offset = _mm512_sub_epi32(offset, _mm512_slli_epi32::<7>(at(self.p.weight_sums)));
        }
        let (multiplier, shift) = (at(self.p.multipliers), at(self.p.shifts));
        let out_of_range = _mm512_cmplt_epi32_mask(multiplier, _mm512_setzero_si512())
            | _mm512_cmpgt_epi32_mask(shift, _mm512_set1_epi32(30))
            | _mm512_cmplt_epi32_mask(shift, _mm512_set1_epi32(-31));
        let path = if !self.vector_ok || out_of_range != 0 {
            Path::Scalar
        } else if _mm512_cmpgt_epi32_mask(shift, _mm512_setzero_si512()) == 0 {
            Path::RightShifts
        } else {
            Path::AnyShifts
        };
        Rows16 { first_row: o, offset, multiplier, shift, path }
    }

    /// Requantizes `sums` (lane `i` is row `first_row + i` of one sample) with loaded
    /// parameters.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) fn apply16(&self, r: &Rows16, sums: __m512i) -> __m512i {
        let acc = _mm512_add_epi32(sums, r.offset);
        let (zp, lo, hi) = (
            _mm512_set1_epi32(self.p.out_zero_point),
            _mm512_set1_epi32(self.p.act_min as i32),
            _mm512_set1_epi32(self.p.act_max as i32),
        );
        match r.path {
            Path::RightShifts => {
                requantize16_right(acc, r.multiplier, _mm512_sub_epi32(_mm512_setzero_si512(), r.shift), zp, lo, hi)
            }
            Path::AnyShifts => requantize16(acc, r.multiplier, r.shift, zp, lo, hi),
            Path::Scalar => {
                let mut lanes = [0i32; 16];
                // SAFETY: `lanes` is 64 writable, then readable bytes.
                unsafe {
                    _mm512_storeu_si512(lanes.as_mut_ptr().cast(), acc);
                    self.scalar_lanes(&mut lanes, |i| r.first_row + i);
                    _mm512_loadu_si512(lanes.as_ptr().cast())
                }
            }
        }
    }

    /// The scalar definition on each lane (lane `i` is row `row_of_lane(i)`). Out of line and
    /// cold: inlined, its calls would make the vector path spill every register around it.
    #[cold]
    #[inline(never)]
    fn scalar_lanes(&self, lanes: &mut [i32; 16], row_of_lane: impl Fn(usize) -> usize) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let o = row_of_lane(i);
            let (m, s) = (param(self.p.multipliers, o), param(self.p.shifts, o));
            *lane = requantize(*lane, m, s, self.p.out_zero_point, self.p.act_min, self.p.act_max) as i32;
        }
    }

    /// The per-row table of a block whose rows all shift right (the usual case), for
    /// requantizing vectors that hold one row of 16 samples (the packed kernels'
    /// accumulators) with [`RowTable::scale`] and [`Self::store_scaled`]. `None` sends the
    /// block through [`Self::store_transposed`].
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) fn row_table(&self, r: &Rows16) -> Option<RowTable> {
        (r.path == Path::RightShifts).then(|| RowTable::new(r))
    }

    /// Requantizes a tile of 16 rows x 16 samples held one row per vector (lane `s` of
    /// `tile[r]` is row `first_row + r` of sample `s`) with the dword transpose and
    /// [`Self::apply16`], and writes the outputs of the first `samples` samples, 16 bytes each,
    /// sample `s` at `out + s * stride`.
    ///
    /// # Safety
    /// AVX-512 F/BW/VL must be available, `samples <= 16`, and `out + s * stride` must have 16
    /// writable bytes for every `s < samples`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn store_transposed(
        &self,
        r: &Rows16,
        tile: &[__m512i; 16],
        samples: usize,
        out: *mut i8,
        stride: usize,
    ) {
        for (s, &v) in transpose16(tile).iter().enumerate().take(samples) {
            // SAFETY: s < samples: the caller's contract.
            unsafe { _mm_storeu_si128(out.add(s * stride).cast(), _mm512_cvtepi32_epi8(self.apply16(r, v))) };
        }
    }

    /// Finishes a tile scaled by [`RowTable::scale`]: adds the zero point, clamps, and writes
    /// the first `samples` samples' 16 outputs as [`Self::store_transposed`] does. The 16 x 16
    /// transpose happens on bytes: saturating packs narrow the tile, and a byte shuffle and
    /// dword unpacks gather each sample's 16 bytes, 40 instructions a tile instead of a
    /// 64-instruction dword transpose, 16 two-uop narrowings and 48 clamps.
    ///
    /// # Safety
    /// As [`Self::store_transposed`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    pub(super) unsafe fn store_scaled(&self, tile: &[__m512i; 16], samples: usize, out: *mut i8, stride: usize) {
        let bytes = narrow_by_sample(tile, self.p.out_zero_point, self.p.act_min, self.p.act_max);
        // Sample 4L + j is 128-bit lane L of bytes[j].
        let store = |s: usize, v: __m128i| {
            // SAFETY: only called for s < samples: the caller's contract.
            unsafe { _mm_storeu_si128(out.add(s * stride).cast(), v) }
        };
        if samples == 16 {
            // Straight-line: a loop choosing the lane at run time measured a fifth of the
            // epilogue.
            for (j, &v) in bytes.iter().enumerate() {
                store(j, _mm512_castsi512_si128(v));
                store(4 + j, _mm512_extracti32x4_epi32::<1>(v));
                store(8 + j, _mm512_extracti32x4_epi32::<2>(v));
                store(12 + j, _mm512_extracti32x4_epi32::<3>(v));
            }
        } else {
            let mut lanes = [[0u8; 16]; 16];
            for (j, &v) in bytes.iter().enumerate() {
                // SAFETY: j < 4, so the 64 bytes stored are lanes[4j..4j + 4], inside `lanes`.
                unsafe { _mm512_storeu_si512(lanes[4 * j..].as_mut_ptr().cast(), v) };
            }
            for s in 0..samples {
                // lanes[4j + L] is sample 4L + j.
                // SAFETY: 16 readable bytes.
                store(s, unsafe { _mm_loadu_si128(lanes[4 * (s % 4) + s / 4].as_ptr().cast()) });
            }
        }
    }
}

/// The parameters of 16 rows with right shifts only, one row's in every lane, for
/// [`RowTable::scale`]: `requantize` up to the zero point in 64-bit lanes,
/// `(acc * m + c - adjust * [acc * m < -2^30]) >> (31 + e)` with `e = -shift` and
/// `c = 2^30 + 2^(30 + e)`, `adjust = 2^31` when `e > 0` (`c = 2^30`, `adjust = 0` when
/// `e = 0`). That is gemmlowp's two roundings in one: for `e > 0` its rounding divide of `h`
/// by `2^e` is `(h + 2^(e-1) - [h < 0]) >> e`, and adding a whole number of `2^31`s before
/// `h = (acc * m + 2^30) >> 31` commutes with that floor division.
#[repr(C, align(64))]
pub(super) struct RowTable {
    /// Added to the dot products (`bias - 128 * weight_sum`), i32.
    offset: [i32; 16],
    multiplier: [i64; 16],
    nudge: [i64; 16],
    /// Added (as a negative number) when the product is below `-2^30`.
    adjust: [i64; 16],
    shift: [i64; 16],
}

// The byte offsets that `RowTable::scale` addresses.
const _: () = {
    assert!(core::mem::offset_of!(RowTable, multiplier) == 64);
    assert!(core::mem::offset_of!(RowTable, nudge) == 192);
    assert!(core::mem::offset_of!(RowTable, adjust) == 320);
    assert!(core::mem::offset_of!(RowTable, shift) == 448);
};

impl RowTable {
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn new(r: &Rows16) -> RowTable {
        let mut t = RowTable { offset: [0; 16], multiplier: [0; 16], nudge: [0; 16], adjust: [0; 16], shift: [0; 16] };
        let right = _mm512_sub_epi32(_mm512_setzero_si512(), r.shift);
        let halves = |v: __m512i| {
            [_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v))]
        };
        let (e, m) = (halves(right), halves(r.multiplier));
        let base = _mm512_set1_epi64(1 << 30);
        for h in 0..2 {
            let rounds = _mm512_cmpgt_epi64_mask(e[h], _mm512_setzero_si512());
            let nudge = _mm512_mask_add_epi64(base, rounds, base, _mm512_sllv_epi64(base, e[h]));
            let adjust = _mm512_maskz_mov_epi64(rounds, _mm512_set1_epi64(-(1 << 31)));
            let shift = _mm512_add_epi64(e[h], _mm512_set1_epi64(31));
            // SAFETY: 8 of 16 entries from entry 8h, inside each array.
            unsafe {
                _mm512_storeu_si512(t.multiplier[8 * h..].as_mut_ptr().cast(), m[h]);
                _mm512_storeu_si512(t.nudge[8 * h..].as_mut_ptr().cast(), nudge);
                _mm512_storeu_si512(t.adjust[8 * h..].as_mut_ptr().cast(), adjust);
                _mm512_storeu_si512(t.shift[8 * h..].as_mut_ptr().cast(), shift);
            }
        }
        // SAFETY: 64 writable bytes.
        unsafe { _mm512_storeu_si512(t.offset.as_mut_ptr().cast(), r.offset) };
        t
    }

    /// Replaces each vector of `rows` (16 samples of row `first + i`) by its requantized
    /// value before the zero point.
    ///
    /// `asm!` so that every row parameter stays a broadcast memory operand: from intrinsics,
    /// LLVM kept the table in registers and spent two shuffles on each broadcast, 23
    /// instructions a row against these 13 vector operations.
    ///
    /// # Safety
    /// AVX-512 F; `first + rows.len() <= 16`, and `rows` is not empty.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub(super) unsafe fn scale(&self, rows: &mut [__m512i], first: usize) {
        let limit = _mm512_set1_epi64(-(1 << 30));
        let (scratch_e, scratch_o, scratch_n): (__m512i, __m512i, __m128i);
        // SAFETY: reads entries first..first + rows.len() <= 16 of each of the table's arrays,
        // reads and writes the aligned vectors of `rows`.
        unsafe {
            core::arch::asm!(
                "2:",
                "vmovdqa64 {e}, zmmword ptr [{t}]",
                "vpaddd {e}, {e}, dword ptr [{b} + {i} * 4]{{1to16}}",
                "vpsrlq {o}, {e}, 32",
                "vpmuldq {e}, {e}, qword ptr [{b} + {i} * 8 + 64]{{1to8}}",
                "vpmuldq {o}, {o}, qword ptr [{b} + {i} * 8 + 64]{{1to8}}",
                "vpcmpq {ke}, {e}, {limit}, 1",
                "vpcmpq {ko}, {o}, {limit}, 1",
                "vpaddq {e}, {e}, qword ptr [{b} + {i} * 8 + 192]{{1to8}}",
                "vpaddq {o}, {o}, qword ptr [{b} + {i} * 8 + 192]{{1to8}}",
                "vpaddq {e} {{{ke}}}, {e}, qword ptr [{b} + {i} * 8 + 320]{{1to8}}",
                "vpaddq {o} {{{ko}}}, {o}, qword ptr [{b} + {i} * 8 + 320]{{1to8}}",
                "vmovq {n}, qword ptr [{b} + {i} * 8 + 448]",
                "vpsraq {e}, {e}, {n}",
                "vpsraq {o}, {o}, {n}",
                // The odd samples' low dwords into the odd lanes.
                "vpshufd {e} {{{kodd}}}, {o}, 0xB1",
                "vmovdqa64 zmmword ptr [{t}], {e}",
                "add {t}, 64",
                "inc {i}",
                "cmp {i}, {end}",
                "jne 2b",
                b = in(reg) self as *const RowTable,
                t = inout(reg) rows.as_mut_ptr() => _,
                i = inout(reg) first => _,
                end = in(reg) first + rows.len(),
                limit = in(zmm_reg) limit,
                kodd = in(kreg) 0xAAAAu16,
                ke = out(kreg) _,
                ko = out(kreg) _,
                e = out(zmm_reg) scratch_e,
                o = out(zmm_reg) scratch_o,
                n = out(xmm_reg) scratch_n,
                options(nostack),
            )
        }
        let _ = (scratch_e, scratch_o, scratch_n);
    }
}

/// Adds the zero point to 16 rows x 16 samples of scaled values (`scaled[r]` lane `s`),
/// clamps, and regroups them by sample: 128-bit lane `L` of result `j` holds the 16 rows of
/// sample `4L + j`.
///
/// Exact like [`clamp`] for a zero point in -128..=127 and `lo <= hi`: the saturating packs to
/// i16 and the saturating i16 addition keep every value's side of the clamp range, and the
/// pack to i8 saturates only values that the clamp would cut anyway.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn narrow_by_sample(scaled: &[__m512i; 16], zero_point: i32, lo: i8, hi: i8) -> [__m512i; 4] {
    let zp = _mm512_set1_epi16(zero_point as i16);
    // words[k] per 128-bit lane L: rows 2k, 2k+1 of samples 4L..4L+4, as i16.
    let words: [__m512i; 8] =
        core::array::from_fn(|k| _mm512_adds_epi16(_mm512_packs_epi32(scaled[2 * k], scaled[2 * k + 1]), zp));
    // Per 128-bit lane L, byte 4i + j is row 4g + i of sample 4L + j after the pack, and row
    // 4g + j of sample 4L + i after the shuffle: each dword one sample's four rows.
    let transpose4x4 = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    let quads: [__m512i; 4] = core::array::from_fn(|g| {
        let b = _mm512_packs_epi16(words[2 * g], words[2 * g + 1]);
        let b = _mm512_min_epi8(_mm512_max_epi8(b, _mm512_set1_epi8(lo)), _mm512_set1_epi8(hi));
        _mm512_shuffle_epi8(b, transpose4x4)
    });
    // A 4 x 4 dword transpose in each 128-bit lane puts sample 4L + j's four dwords together.
    let t0 = _mm512_unpacklo_epi32(quads[0], quads[1]);
    let t1 = _mm512_unpackhi_epi32(quads[0], quads[1]);
    let t2 = _mm512_unpacklo_epi32(quads[2], quads[3]);
    let t3 = _mm512_unpackhi_epi32(quads[2], quads[3]);
    [
        _mm512_unpacklo_epi64(t0, t2),
        _mm512_unpackhi_epi64(t0, t2),
        _mm512_unpacklo_epi64(t1, t3),
        _mm512_unpackhi_epi64(t1, t3),
    ]
}

/// How a block of rows requantizes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    /// Every shift in -31..=0 (scales below 1, the usual case): no saturating left shift.
    RightShifts,
    /// Shifts in -31..=30.
    AnyShifts,
    /// Parameters outside the parser's ranges: the scalar definition, lane by lane.
    Scalar,
}

/// The parameters of 16 consecutive rows, loaded and checked once.
pub(super) struct Rows16 {
    first_row: usize,
    /// `bias - 128 * weight_sum` (or just the bias).
    pub(super) offset: __m512i,
    pub(super) multiplier: __m512i,
    pub(super) shift: __m512i,
    pub(super) path: Path,
}

/// `quant::requantize` on 16 lanes, for multipliers >= 0, shifts in -31..=30, a zero point in
/// -128..=127 and `lo <= hi` (see the module documentation for why it is exact).
#[target_feature(enable = "avx512f")]
#[inline]
fn requantize16(
    acc: __m512i,
    multiplier: __m512i,
    shift: __m512i,
    zero_point: __m512i,
    lo: __m512i,
    hi: __m512i,
) -> __m512i {
    let zero = _mm512_setzero_si512();
    let one = _mm512_set1_epi32(1);
    let left = _mm512_max_epi32(shift, zero);
    let right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);

    // acc.saturating_mul(1 << left): the shift overflowed iff shifting back loses bits.
    let shifted = _mm512_sllv_epi32(acc, left);
    let overflowed = _mm512_cmpneq_epi32_mask(_mm512_srav_epi32(shifted, left), acc);
    let saturated = _mm512_xor_si512(_mm512_srai_epi32::<31>(acc), _mm512_set1_epi32(i32::MAX));
    let scaled = _mm512_mask_mov_epi32(shifted, overflowed, saturated);

    let high = high_mul(scaled, multiplier);

    // Rounding divide by 2^right, ties away from zero (gemmlowp's RoundingDivideByPOT).
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
    let remainder = _mm512_and_si512(high, mask);
    let threshold = _mm512_add_epi32(_mm512_srai_epi32::<1>(mask), _mm512_srli_epi32::<31>(high));
    let quotient = _mm512_srav_epi32(high, right);
    let round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    clamp(_mm512_mask_add_epi32(quotient, round_up, quotient, one), zero_point, lo, hi)
}

/// [`requantize16`] when every shift is <= 0 (`right = -shift`, the usual case: scales below
/// 1), which needs no saturating left shift.
#[target_feature(enable = "avx512f")]
#[inline]
fn requantize16_right(
    acc: __m512i,
    multiplier: __m512i,
    right: __m512i,
    zero_point: __m512i,
    lo: __m512i,
    hi: __m512i,
) -> __m512i {
    let one = _mm512_set1_epi32(1);
    let high = high_mul(acc, multiplier);
    let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, right), one);
    let remainder = _mm512_and_si512(high, mask);
    let threshold = _mm512_add_epi32(_mm512_srai_epi32::<1>(mask), _mm512_srli_epi32::<31>(high));
    let quotient = _mm512_srav_epi32(high, right);
    let round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
    clamp(_mm512_mask_add_epi32(quotient, round_up, quotient, one), zero_point, lo, hi)
}

/// gemmlowp's `SaturatingRoundingDoublingHighMul` for multipliers >= 0: `floor((a b + 2^30) /
/// 2^31)`, even and odd lanes through 64-bit products.
#[target_feature(enable = "avx512f")]
#[inline]
fn high_mul(a: __m512i, multiplier: __m512i) -> __m512i {
    let half = _mm512_set1_epi64(1 << 30);
    let even = _mm512_add_epi64(_mm512_mul_epi32(a, multiplier), half);
    let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(multiplier)), half);
    _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<31>(even), _mm512_slli_epi64::<1>(odd))
}

/// Adds the zero point and clamps; bounding to +-2^16 first stands in for `saturating_add`.
#[target_feature(enable = "avx512f")]
#[inline]
fn clamp(scaled: __m512i, zero_point: __m512i, lo: __m512i, hi: __m512i) -> __m512i {
    let bounded = _mm512_max_epi32(_mm512_min_epi32(scaled, _mm512_set1_epi32(1 << 16)), _mm512_set1_epi32(-(1 << 16)));
    _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(bounded, zero_point), lo), hi)
}

/// Horizontal sums of 16 rows handed over as four vectors, `q[i]` for rows `4i..4i + 4`, each
/// 128-bit lane holding one partial sum of each of the four rows (row `4i + k` in dword `k`):
/// lane `r` of the result is row `r`'s sum. The last two levels of a transposing reduction
/// tree; the one-sample kernels run its first two (unpack and add dwords of row pairs, then
/// qwords of pair pairs) as their rows come.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn reduce_quads(q: &[__m512i; 4]) -> __m512i {
    // Adds 128-bit lanes 0+1 and 2+3 of `a`, then of `b`.
    let lanes = |a: __m512i, b: __m512i| {
        _mm512_add_epi32(_mm512_shuffle_i32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b))
    };
    lanes(lanes(q[0], q[1]), lanes(q[2], q[3]))
}

/// Transposes a 16 x 16 matrix of dwords held one row per vector: lane `j` of result `i` is
/// lane `i` of `v[j]` (64 shuffles).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn transpose16(v: &[__m512i; 16]) -> [__m512i; 16] {
    // Within each 128-bit lane: 4 x 4 transposes of rows 4g..4g+4, by unpacking dwords then
    // qwords. u[4g + j] lane L then holds column 4L + j of rows 4g..4g+4.
    let t: [__m512i; 16] = core::array::from_fn(|i| {
        let (a, b) = (v[i & !1], v[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    let u: [__m512i; 16] = core::array::from_fn(|i| {
        let (g, j) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + (j / 2)], t[4 * g + 2 + (j / 2)]);
        if j % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    // Then a 4 x 4 transpose of 128-bit lanes across the row groups, for each j.
    let mut out = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let w0 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[j], u[4 + j]);
        let w1 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[j], u[4 + j]);
        let w2 = _mm512_shuffle_i32x4::<0b01_00_01_00>(u[8 + j], u[12 + j]);
        let w3 = _mm512_shuffle_i32x4::<0b11_10_11_10>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(w0, w2);
        out[4 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(w0, w2);
        out[8 + j] = _mm512_shuffle_i32x4::<0b10_00_10_00>(w1, w3);
        out[12 + j] = _mm512_shuffle_i32x4::<0b11_01_11_01>(w1, w3);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::requantize;
    use crate::rng::Rng;

    #[test]
    fn transpose16_transposes() {
        if !super::super::has(super::super::Level::Avx512Vnni) {
            return;
        }
        let m: [[i32; 16]; 16] = core::array::from_fn(|i| core::array::from_fn(|j| (16 * i + j) as i32));
        // SAFETY: AVX-512 checked above; 64-byte local arrays.
        let t = unsafe {
            let v: [__m512i; 16] = core::array::from_fn(|i| _mm512_loadu_si512(m[i].as_ptr().cast()));
            let t = transpose16(&v);
            let mut back = [[0i32; 16]; 16];
            for i in 0..16 {
                _mm512_storeu_si512(back[i].as_mut_ptr().cast(), t[i]);
            }
            back
        };
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(t[i][j], m[j][i], "({i}, {j})");
            }
        }
    }

    #[test]
    fn requantizing_by_sample_is_the_scalar_one() {
        if !super::super::has(super::super::Level::Avx512Vnni) {
            return;
        }
        let mut rng = Rng::new(12);
        let le = |v: &[i32; 16]| -> [u8; 64] { core::array::from_fn(|i| v[i / 4].to_le_bytes()[i % 4]) };
        for round in 0..4_000 {
            // Row r: its parameters from one case, its 16 samples' accumulators from another.
            let cases: [super::super::requantize_cases::Case<16>; 16] =
                core::array::from_fn(|_| super::super::requantize_cases::draw::<16>(&mut rng, round));
            let multiplier: [i32; 16] = core::array::from_fn(|r| cases[r].multiplier[r]);
            // Every shift of a row table is a right shift; one positive shift in some rounds
            // sends the block down the transposing path.
            let mut shift: [i32; 16] = core::array::from_fn(|r| cases[r].shift[r].min(0));
            if round % 7 == 3 {
                shift[round % 16] = 1 + (round % 30) as i32;
            }
            let bias: [i32; 16] = core::array::from_fn(|_| rng.next_u64() as i32 >> rng.below(32));
            let sums: [i32; 16] = core::array::from_fn(|_| rng.next_u64() as i32 >> (8 + rng.below(24)));
            let (bias_b, mult_b, shift_b, sums_b) = (le(&bias), le(&multiplier), le(&shift), le(&sums));
            let c = &cases[round % 16];
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
            let samples = if round % 5 == 0 { 1 + round / 5 % 16 } else { 16 };
            let ep = Epilogue::new(&p, true);
            let mut got = [[0i8; 16]; 16];
            // SAFETY: AVX-512 checked above; `got` has 16 rows of 16 writable bytes.
            unsafe {
                let params = ep.params16(0);
                let mut tile: [__m512i; 16] =
                    core::array::from_fn(|r| _mm512_loadu_si512(cases[r].acc.as_ptr().cast()));
                match ep.row_table(&params) {
                    Some(table) => {
                        assert!(round % 7 != 3);
                        table.scale(&mut tile[..5], 0);
                        table.scale(&mut tile[5..], 5);
                        ep.store_scaled(&tile, samples, got.as_mut_ptr().cast(), 16);
                    }
                    None => {
                        assert!(round % 7 == 3);
                        ep.store_transposed(&params, &tile, samples, got.as_mut_ptr().cast(), 16);
                    }
                }
            }
            for (s, row) in got.iter().enumerate() {
                for (r, &y) in row.iter().enumerate() {
                    let want = if s < samples {
                        let acc = cases[r].acc[s].wrapping_add(bias[r]).wrapping_sub(sums[r].wrapping_mul(128));
                        requantize(acc, multiplier[r], shift[r], c.zero_point, c.lo, c.hi)
                    } else {
                        0
                    };
                    assert_eq!(y, want, "round {round}: row {r} sample {s} of {samples}");
                }
            }
        }
    }

    #[test]
    fn vector_requantize_is_the_scalar_one() {
        if !super::super::has(super::super::Level::Avx512Vnni) {
            return;
        }
        let mut rng = Rng::new(11);
        for round in 0..20_000 {
            let super::super::requantize_cases::Case { acc, multiplier: m, shift: s, zero_point: zp, lo, hi } =
                super::super::requantize_cases::draw::<16>(&mut rng, round);
            let mut got = [0i32; 16];
            // SAFETY: AVX-512 checked above; all pointers are to 64-byte local arrays.
            unsafe {
                let load = |a: &[i32; 16]| _mm512_loadu_si512(a.as_ptr().cast());
                let r = requantize16(
                    load(&acc),
                    load(&m),
                    load(&s),
                    _mm512_set1_epi32(zp),
                    _mm512_set1_epi32(lo as i32),
                    _mm512_set1_epi32(hi as i32),
                );
                _mm512_storeu_si512(got.as_mut_ptr().cast(), r);
            }
            for i in 0..16 {
                let want = requantize(acc[i], m[i], s[i], zp, lo, hi) as i32;
                assert_eq!(got[i], want, "acc {} m {} s {} zp {zp}", acc[i], m[i], s[i]);
            }
            // The path for shifts that are all <= 0.
            let right: [i32; 16] = core::array::from_fn(|i| s[i].min(0));
            let mut right_only = [0i32; 16];
            // SAFETY: as above.
            unsafe {
                let load = |a: &[i32; 16]| _mm512_loadu_si512(a.as_ptr().cast());
                let neg = _mm512_sub_epi32(_mm512_setzero_si512(), load(&right));
                let (zp, lo, hi) = (_mm512_set1_epi32(zp), _mm512_set1_epi32(lo as i32), _mm512_set1_epi32(hi as i32));
                let r = requantize16_right(load(&acc), load(&m), neg, zp, lo, hi);
                _mm512_storeu_si512(right_only.as_mut_ptr().cast(), r);
            }
            for i in 0..16 {
                let want = requantize(acc[i], m[i], right[i], zp, lo, hi) as i32;
                assert_eq!(right_only[i], want, "right: acc {} m {} s {}", acc[i], m[i], right[i]);
            }
        }
    }
}
