//! int8 table lookup with AVX-512 VBMI: 64 lookups per step from the 256-byte table held in
//! four registers.
//!
//! `vpermi2b` picks bytes from a 128-byte pair of registers by the low 7 bits of each index.
//! The table index is `x + 128`, whose low 7 bits are `x`'s own, and whose top bit is set
//! exactly when `x >= 0`: one permute looks `x` up in entries 0..128, one in 128..256, and
//! `x`'s sign picks between them.

use core::arch::x86_64::*;

use super::{has, Level};
use crate::kernels::reference;

/// See [`crate::kernels::LutI8Fn`].
pub fn lut_i8(table: &[u8], x: &[i8], out: &mut [i8]) {
    // CPUs without VBMI, and tables too short to load (the contract has them write nothing),
    // take the reference.
    if !has(Level::Avx512Vbmi) || table.len() < 256 {
        return reference::lut_i8(table, x, out);
    }
    // SAFETY: the CPU has AVX-512 F/BW/VBMI (checked above); the table has 256 bytes.
    unsafe { lookup(table, x, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn lookup(table: &[u8], x: &[i8], out: &mut [i8]) {
    // SAFETY: the caller checked table.len() >= 256: four 64-byte loads at 0, 64, 128, 192.
    let t: [__m512i; 4] = core::array::from_fn(|i| unsafe { _mm512_loadu_si512(table.as_ptr().add(64 * i).cast()) });
    let n = x.len().min(out.len());
    let mut k = 0;
    while k < n {
        let len = (n - k).min(64);
        let m: __mmask64 = if len == 64 { u64::MAX } else { (1u64 << len) - 1 };
        // SAFETY: the mask covers elements k .. k + len of x and out (len <= n - k); masked-off
        // bytes are neither read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(m, x.as_ptr().add(k));
            let low = _mm512_permutex2var_epi8(t[0], v, t[1]);
            let high = _mm512_permutex2var_epi8(t[2], v, t[3]);
            let y = _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), high, low);
            _mm512_mask_storeu_epi8(out.as_mut_ptr().add(k), m, y);
        }
        k += len;
    }
}
