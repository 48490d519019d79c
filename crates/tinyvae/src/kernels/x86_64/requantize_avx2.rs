//! The int8 Dense epilogue, 8 outputs at a time with AVX2, plus the helpers the 256-bit int8
//! kernels share (the 8-way horizontal sum and tail loads). Same arithmetic as
//! `requantize_avx512` (see its module documentation for why the vector path is exact), with
//! vector compares in place of mask registers; out-of-range parameters take the scalar
//! [`crate::quant::requantize`].

use core::arch::x86_64::*;

use super::param;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Per-call epilogue state: the layer's parameters and whether the vector path applies.
pub(super) struct Epilogue<'a> {
    p: &'a DenseI8<'a>,
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

    /// Requantizes `sums` for rows `o..o + 8` (lane `i` is row `o + i`).
    ///
    /// # Safety
    /// AVX2 must be available, and `o + 8 <= rows` with every parameter array holding `rows`
    /// entries (as [`DenseI8::samples`] checks).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn rows8(&self, sums: __m256i, o: usize) -> __m256i {
        let at = |bytes: &[u8]| {
            // SAFETY: bytes 4*o .. 4*(o+8) lie inside `bytes` (caller's contract).
            unsafe { _mm256_loadu_si256(bytes.as_ptr().add(4 * o).cast()) }
        };
        self.finish(sums, at(self.p.bias), at(self.p.weight_sums), at(self.p.multipliers), at(self.p.shifts), |i| o + i)
    }

    /// Requantizes `sums` for rows `o..o + 4` of 2 samples (lane `4 s + r` is row `o + r` of
    /// sample `s`).
    ///
    /// # Safety
    /// As [`Epilogue::rows8`], with `o + 4 <= rows`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn rows4x2(&self, sums: __m256i, o: usize) -> __m256i {
        let at = |bytes: &[u8]| {
            // SAFETY: bytes 4*o .. 4*(o+4) lie inside `bytes` (caller's contract).
            unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(bytes.as_ptr().add(4 * o).cast())) }
        };
        self.finish(sums, at(self.p.bias), at(self.p.weight_sums), at(self.p.multipliers), at(self.p.shifts), |i| {
            o + i % 4
        })
    }

    /// Loads and checks the parameters of rows `o..o + 8` once, for every sample that uses them
    /// ([`Epilogue::apply8`]).
    ///
    /// # Safety
    /// As [`Epilogue::rows8`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn params8(&self, o: usize) -> Rows8 {
        let at = |bytes: &[u8]| {
            // SAFETY: bytes 4*o .. 4*(o+8) lie inside `bytes` (caller's contract).
            unsafe { _mm256_loadu_si256(bytes.as_ptr().add(4 * o).cast()) }
        };
        let mut offset = at(self.p.bias);
        if self.unsigned_input {
            // (x + 128) . w = x . w + 128 * sum(w), all mod 2^32 like the reference's wrapping sum.
            offset = _mm256_sub_epi32(offset, _mm256_slli_epi32::<7>(at(self.p.weight_sums)));
        }
        let (multiplier, shift) = (at(self.p.multipliers), at(self.p.shifts));
        let zero = _mm256_setzero_si256();
        let out_of_range = _mm256_or_si256(
            _mm256_cmpgt_epi32(zero, multiplier),
            _mm256_or_si256(
                _mm256_cmpgt_epi32(shift, _mm256_set1_epi32(30)),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(-31), shift),
            ),
        );
        let left = _mm256_cmpgt_epi32(shift, zero);
        let path = if !self.vector_ok || _mm256_testz_si256(out_of_range, out_of_range) == 0 {
            Path::Scalar
        } else if _mm256_testz_si256(left, left) != 0 {
            Path::RightShifts
        } else {
            Path::AnyShifts
        };
        let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
        let mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), right), _mm256_set1_epi32(1));
        let zp = self.p.out_zero_point;
        // Clamping to [lo - zp, hi - zp] and then adding zp is clamping the sum to [lo, hi]
        // without its overflow: zp and the clamps are int8 values on this path.
        let (lo, hi) = ((self.p.act_min as i32).wrapping_sub(zp), (self.p.act_max as i32).wrapping_sub(zp));
        Rows8 {
            first_row: o,
            offset,
            multiplier,
            multiplier_odd: odd_lanes(multiplier),
            shift,
            right,
            mask,
            half: _mm256_srai_epi32::<1>(mask),
            lo: _mm256_set1_epi32(lo),
            hi: _mm256_set1_epi32(hi),
            path,
        }
    }

    /// Requantizes `sums` (lane `i` is row `first_row + i` of one sample) with parameters
    /// from [`Epilogue::params8`].
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn apply8(&self, r: &Rows8, sums: __m256i) -> __m256i {
        let acc = _mm256_add_epi32(sums, r.offset);
        let zp = _mm256_set1_epi32(self.p.out_zero_point);
        match r.path {
            Path::RightShifts => _mm256_add_epi32(requantize8_right(acc, r), zp),
            Path::AnyShifts => requantize8(
                acc,
                r.multiplier,
                r.shift,
                zp,
                _mm256_set1_epi32(self.p.act_min as i32),
                _mm256_set1_epi32(self.p.act_max as i32),
            ),
            Path::Scalar => {
                let mut lanes = [0i32; 8];
                // SAFETY: `lanes` is 32 writable, then readable bytes.
                unsafe {
                    _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc);
                    self.scalar_lanes(&mut lanes, |i| r.first_row + i);
                    _mm256_loadu_si256(lanes.as_ptr().cast())
                }
            }
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn finish(
        &self,
        sums: __m256i,
        bias: __m256i,
        weight_sums: __m256i,
        multipliers: __m256i,
        shifts: __m256i,
        row_of_lane: impl Fn(usize) -> usize,
    ) -> __m256i {
        let mut acc = _mm256_add_epi32(sums, bias);
        if self.unsigned_input {
            // (x + 128) . w = x . w + 128 * sum(w), all mod 2^32 like the reference's wrapping sum.
            acc = _mm256_sub_epi32(acc, _mm256_slli_epi32::<7>(weight_sums));
        }
        let out_of_range = _mm256_or_si256(
            _mm256_cmpgt_epi32(_mm256_setzero_si256(), multipliers),
            _mm256_or_si256(
                _mm256_cmpgt_epi32(shifts, _mm256_set1_epi32(30)),
                _mm256_cmpgt_epi32(_mm256_set1_epi32(-31), shifts),
            ),
        );
        if self.vector_ok && _mm256_testz_si256(out_of_range, out_of_range) != 0 {
            return requantize8(
                acc,
                multipliers,
                shifts,
                _mm256_set1_epi32(self.p.out_zero_point),
                _mm256_set1_epi32(self.p.act_min as i32),
                _mm256_set1_epi32(self.p.act_max as i32),
            );
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 writable, then readable bytes.
        unsafe {
            _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc);
            self.scalar_lanes(&mut lanes, row_of_lane);
            _mm256_loadu_si256(lanes.as_ptr().cast())
        }
    }

    /// The scalar definition on each lane (lane `i` is row `row_of_lane(i)`). Out of line and
    /// cold: inlined, its calls would make the vector path spill every register around it.
    #[cold]
    #[inline(never)]
    fn scalar_lanes(&self, lanes: &mut [i32; 8], row_of_lane: impl Fn(usize) -> usize) {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let o = row_of_lane(i);
            let (m, s) = (param(self.p.multipliers, o), param(self.p.shifts, o));
            *lane = requantize(*lane, m, s, self.p.out_zero_point, self.p.act_min, self.p.act_max) as i32;
        }
    }
}

/// Which requantization the lanes of a [`Rows8`] take.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    /// Every shift in -31..=0 (the usual case): no saturating left shift.
    RightShifts,
    /// Shifts in -31..=30: [`requantize8`].
    AnyShifts,
    /// Some parameter outside the vector path's ranges: the scalar definition, lane by lane.
    Scalar,
}

/// The parameters of 8 rows, one row's in every lane, with what the right-shift path derives
/// from them.
#[derive(Clone, Copy)]
pub(super) struct Rows8 {
    first_row: usize,
    /// Added to the dot products (the bias, less `128 * weight_sum` for unsigned inputs).
    offset: __m256i,
    multiplier: __m256i,
    /// The multipliers in the low dword of each qword, for the odd lanes' products.
    multiplier_odd: __m256i,
    shift: __m256i,
    /// `-shift` (right shifts only).
    right: __m256i,
    /// `2^right - 1`: the bits the rounding divide drops.
    mask: __m256i,
    /// `mask >> 1`: the remainder below which it rounds down (non-negative values).
    half: __m256i,
    /// `act_min - zero_point` and `act_max - zero_point`.
    lo: __m256i,
    hi: __m256i,
    path: Path,
}

/// The odd dwords moved into the low halves of the qwords, for `vpmuldq` (which reads only
/// those). A `vpshufd` rather than a 64-bit shift right: from the shift's zeroed upper halves
/// the compiler no longer sees a sign-extended 32-bit operand, and lowers the multiply as a
/// full 64-bit one (three `vpmuludq` and seven more operations per vector, measured in the
/// epilogue's code).
#[target_feature(enable = "avx2")]
#[inline]
fn odd_lanes(v: __m256i) -> __m256i {
    _mm256_shuffle_epi32::<0b11_11_01_01>(v)
}

/// [`requantize8`] for right shifts only (`Path::RightShifts`), up to the zero point, which
/// the caller adds: `acc.saturating_mul(1)` is `acc`, so only the high multiply and the
/// rounding divide remain, with their per-row constants from [`Rows8`].
#[target_feature(enable = "avx2")]
#[inline]
fn requantize8_right(acc: __m256i, r: &Rows8) -> __m256i {
    let half = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(acc, r.multiplier), half);
    let odd = _mm256_add_epi64(_mm256_mul_epi32(odd_lanes(acc), r.multiplier_odd), half);
    let high = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<31>(even), _mm256_slli_epi64::<1>(odd));
    let remainder = _mm256_and_si256(high, r.mask);
    let threshold = _mm256_add_epi32(r.half, _mm256_srli_epi32::<31>(high));
    let scaled = _mm256_sub_epi32(_mm256_srav_epi32(high, r.right), _mm256_cmpgt_epi32(remainder, threshold));
    _mm256_min_epi32(_mm256_max_epi32(scaled, r.lo), r.hi)
}

/// `quant::requantize` on 8 lanes, for multipliers >= 0, shifts in -31..=30, a zero point in
/// -128..=127 and `lo <= hi`.
#[target_feature(enable = "avx2")]
#[inline]
fn requantize8(
    acc: __m256i,
    multiplier: __m256i,
    shift: __m256i,
    zero_point: __m256i,
    lo: __m256i,
    hi: __m256i,
) -> __m256i {
    let zero = _mm256_setzero_si256();
    let one = _mm256_set1_epi32(1);
    let left = _mm256_max_epi32(shift, zero);
    let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);

    // acc.saturating_mul(1 << left): the shift overflowed iff shifting back loses bits.
    let shifted = _mm256_sllv_epi32(acc, left);
    let kept = _mm256_cmpeq_epi32(_mm256_srav_epi32(shifted, left), acc);
    let saturated = _mm256_xor_si256(_mm256_srai_epi32::<31>(acc), _mm256_set1_epi32(i32::MAX));
    let scaled = _mm256_blendv_epi8(saturated, shifted, kept);

    // High half: floor((a * b + 2^30) / 2^31), even and odd lanes through 64-bit products.
    let half = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(scaled, multiplier), half);
    let odd = _mm256_add_epi64(_mm256_mul_epi32(odd_lanes(scaled), odd_lanes(multiplier)), half);
    let high = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<31>(even), _mm256_slli_epi64::<1>(odd));

    // Rounding divide by 2^right, ties away from zero.
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let remainder = _mm256_and_si256(high, mask);
    let threshold = _mm256_add_epi32(_mm256_srai_epi32::<1>(mask), _mm256_srli_epi32::<31>(high));
    // A true compare is -1: subtracting it rounds up.
    let scaled = _mm256_sub_epi32(_mm256_srav_epi32(high, right), _mm256_cmpgt_epi32(remainder, threshold));

    let bounded = _mm256_max_epi32(_mm256_min_epi32(scaled, _mm256_set1_epi32(1 << 16)), _mm256_set1_epi32(-(1 << 16)));
    let v = _mm256_add_epi32(bounded, zero_point);
    _mm256_min_epi32(_mm256_max_epi32(v, lo), hi)
}

/// Horizontal sums of 8 vectors at once: lane `i` of the result is the sum of `v[i]`'s lanes.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn reduce8(v: &[__m256i; 8]) -> __m256i {
    let h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    let h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    // Each 128-bit half of h0 holds partial sums of v[0..4]; of h1, of v[4..8].
    _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(h0, h1), _mm256_permute2x128_si256::<0x31>(h0, h1))
}

/// 32 bytes of `bytes` from `start`, zero-filled past its end: a plain load when all 32 are
/// inside (the usual case: a row's tail followed by the next row's bytes, which the caller
/// multiplies by zero activations), a copy otherwise. Never reads outside `bytes`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn load32_or_pad(bytes: &[u8], start: usize) -> __m256i {
    match bytes.get(start..start.saturating_add(32)) {
        // SAFETY: the 32 bytes are inside `bytes`.
        Some(b) => unsafe { _mm256_loadu_si256(b.as_ptr().cast()) },
        None => {
            let mut buf = [0u8; 32];
            let rest = bytes.get(start..).unwrap_or(&[]);
            let n = rest.len().min(32);
            buf[..n].copy_from_slice(&rest[..n]);
            // SAFETY: `buf` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(buf.as_ptr().cast()) }
        }
    }
}

/// The last `cols % 32` activations of a sample from `x[start..]`, each passed through
/// `map`, zero-padded to 32 bytes, so that padding multiplies whatever weights sit beside it
/// by zero.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn activation_tail(x: &[u8], map: impl Fn(u8) -> u8) -> __m256i {
    let mut buf = [0u8; 32];
    for (b, &v) in buf.iter_mut().zip(x) {
        *b = map(v);
    }
    // SAFETY: `buf` is 32 readable bytes.
    unsafe { _mm256_loadu_si256(buf.as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::requantize;
    use crate::rng::Rng;

    #[test]
    fn vector_requantize_is_the_scalar_one() {
        if !super::super::has(super::super::Level::Avx2) {
            return;
        }
        let mut rng = Rng::new(12);
        for round in 0..20_000 {
            let super::super::requantize_cases::Case { acc, multiplier: m, shift: s, zero_point: zp, lo, hi } =
                super::super::requantize_cases::draw::<8>(&mut rng, round);
            let mut got = [0i32; 8];
            // SAFETY: AVX2 checked above; all pointers are to 32-byte local arrays.
            unsafe {
                let load = |a: &[i32; 8]| _mm256_loadu_si256(a.as_ptr().cast());
                let r = requantize8(
                    load(&acc),
                    load(&m),
                    load(&s),
                    _mm256_set1_epi32(zp),
                    _mm256_set1_epi32(lo as i32),
                    _mm256_set1_epi32(hi as i32),
                );
                _mm256_storeu_si256(got.as_mut_ptr().cast(), r);
            }
            for i in 0..8 {
                let want = requantize(acc[i], m[i], s[i], zp, lo, hi) as i32;
                assert_eq!(got[i], want, "acc {} m {} s {} zp {zp}", acc[i], m[i], s[i]);
            }
        }
    }
}
