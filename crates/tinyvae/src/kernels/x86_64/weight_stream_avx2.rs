//! The weight-streaming floor with AVX2: every weight byte read once, 128 bytes per iteration
//! in four independent 32-byte streams. The sum is built as in `weight_stream_avx512`
//! (`vpsadbw` over `w ^ 0x80`, then `128 * len` off), with a scalar tail.

use core::arch::x86_64::*;

use super::{has, Level};
use crate::kernels::reference;

/// See [`crate::kernels::WeightStreamFn`].
pub fn weight_stream(weights: &[u8]) -> i32 {
    if !has(Level::Avx2) {
        return reference::weight_stream(weights);
    }
    // SAFETY: the CPU has AVX2 (checked above).
    unsafe { stream(weights) }
}

#[target_feature(enable = "avx2")]
fn stream(weights: &[u8]) -> i32 {
    let flip = _mm256_set1_epi8(-128);
    let zero = _mm256_setzero_si256();
    let mut acc = [zero; 4];
    let mut chunks = weights.chunks_exact(128);
    for chunk in &mut chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: bytes 32 i .. 32 i + 32 lie inside the 128-byte chunk.
            let v = unsafe { _mm256_loadu_si256(chunk.as_ptr().add(32 * i).cast()) };
            *a = _mm256_add_epi64(*a, _mm256_sad_epu8(_mm256_xor_si256(v, flip), zero));
        }
    }
    let total = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
    let mut lanes = [0i64; 4];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), total) };
    let simd = lanes.iter().sum::<i64>().wrapping_sub(128 * (weights.len() - chunks.remainder().len()) as i64);
    // Truncation to i32 is the reference's wrapping sum.
    (simd as i32).wrapping_add(reference::weight_stream(chunks.remainder()))
}
