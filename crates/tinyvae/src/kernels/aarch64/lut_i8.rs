//! int8 lookup-table activation on NEON: the 256-byte table sits in four 64-byte register
//! quads, and `tbl` + three `tbx` map 16 codes at once. `tbl`/`tbx` give 0 / keep the lane for
//! out-of-range indices, so each quad fills exactly the lanes whose index falls in its quarter.

use core::arch::aarch64::*;

use crate::kernels::reference;

/// See [`crate::kernels::LutI8Fn`]; same bytes as the reference.
pub(super) fn lut_i8_neon(table: &[u8], x: &[i8], out: &mut [i8]) {
    if super::has_neon() && table.len() >= 256 {
        // SAFETY: NEON is present and the table holds 256 bytes (checked above).
        unsafe { lut_i8_tbl(table, x, out) }
    } else {
        // No NEON, or a short table (which writes nothing, as the kernel contract says).
        reference::lut_i8(table, x, out)
    }
}

/// # Safety
/// NEON; `table.len() >= 256`.
#[target_feature(enable = "neon")]
unsafe fn lut_i8_tbl(table: &[u8], x: &[i8], out: &mut [i8]) {
    let t = table.as_ptr();
    // Bytes 0..256 of the table (checked by the caller).
    let quads = [0, 64, 128, 192].map(|q| {
        uint8x16x4_t(vld1q_u8(t.add(q)), vld1q_u8(t.add(q + 16)), vld1q_u8(t.add(q + 32)), vld1q_u8(t.add(q + 48)))
    });
    let n = x.len().min(out.len());
    let mut i = 0;
    // Loads and stores touch elements i..i+16 with i + 16 <= n.
    while i + 16 <= n {
        // x + 128 as an unsigned index is x with its sign bit flipped.
        let index = veorq_u8(vld1q_u8(x.as_ptr().add(i) as *const u8), vdupq_n_u8(0x80));
        let mut y = vqtbl4q_u8(quads[0], index);
        y = vqtbx4q_u8(y, quads[1], vsubq_u8(index, vdupq_n_u8(64)));
        y = vqtbx4q_u8(y, quads[2], vsubq_u8(index, vdupq_n_u8(128)));
        y = vqtbx4q_u8(y, quads[3], vsubq_u8(index, vdupq_n_u8(192)));
        vst1q_u8(out.as_mut_ptr().add(i) as *mut u8, y);
        i += 16;
    }
    for (y, &v) in out[i..n].iter_mut().zip(&x[i..n]) {
        *y = table[(v as i32 + 128) as usize] as i8;
    }
}
