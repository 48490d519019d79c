//! The weight-streaming floor with AVX-512: every weight byte read once, 256 bytes per
//! iteration in four independent 64-byte streams, so the loop runs at the speed the cache
//! hierarchy delivers bytes. It is what a batch-1 int8 Dense cannot beat.
//!
//! The sum (the reference's wrapping i32 sum of the bytes as i8) keeps the loads from being
//! optimized away: `vpsadbw` adds the bytes `w ^ 0x80` (= `w + 128` as u8) into 64-bit lanes,
//! and `128 * len` comes off at the end; the 64-bit total is exact, so truncating it to i32 is
//! the wrapping sum.

use core::arch::x86_64::*;

use super::{has, Level};
use crate::kernels::reference;

/// See [`crate::kernels::WeightStreamFn`].
pub fn weight_stream(weights: &[u8]) -> i32 {
    if !has(Level::Avx512Vnni) {
        return reference::weight_stream(weights);
    }
    // SAFETY: the CPU has AVX-512 F/BW (checked above).
    unsafe { stream(weights) }
}

#[target_feature(enable = "avx512f,avx512bw")]
fn stream(weights: &[u8]) -> i32 {
    let flip = _mm512_set1_epi8(-128);
    let zero = _mm512_setzero_si512();
    let mut acc = [zero; 4];
    let mut chunks = weights.chunks_exact(256);
    for chunk in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: bytes 64 i .. 64 i + 64 lie inside the 256-byte chunk.
            let v = unsafe { _mm512_loadu_si512(chunk.as_ptr().add(64 * i).cast()) };
            *a = _mm512_add_epi64(*a, _mm512_sad_epu8(_mm512_xor_si512(v, flip), zero));
        }
    }
    let rest = chunks.remainder();
    let mut k = 0;
    while k < rest.len() {
        let n = (rest.len() - k).min(64);
        let m: __mmask64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
        // SAFETY: the mask covers bytes k .. k + n of `rest`; masked-off bytes are not accessed.
        let v = unsafe { _mm512_maskz_loadu_epi8(m, rest.as_ptr().add(k).cast()) };
        // Masked-off lanes must add 0, not 0 ^ 0x80.
        let v = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(v, flip));
        acc[0] = _mm512_add_epi64(acc[0], _mm512_sad_epu8(v, zero));
        k += n;
    }
    let total = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
    let unsigned = _mm512_reduce_add_epi64(total);
    // Truncation to i32 is the reference's wrapping sum.
    unsigned.wrapping_sub(128 * weights.len() as i64) as i32
}
