//! Graph inputs (f32) to int8 on a Cortex-M4F/M7 FPU; gives the bytes of
//! [`crate::kernels::reference::quantize_i8`] exactly.
//!
//! The reference rounds half away from zero with float tricks that cost a Cortex-M4 about 55
//! instructions an element (an anomaly detector's 640 features: 35k instructions, a tenth of
//! its whole inference). The FPU's `VCVTR` rounds to nearest in one instruction, ties to even;
//! a tie is then seen exactly (`v - round(v)` is ±0.5, computed without error) and moved away
//! from zero. `VCVTR` saturates out-of-range values and maps NaN to 0, so the reference's
//! clamp to ±300 and its NaN rule (the zero point) come out the same after the saturating add
//! of the zero point and the clamp to int8 (`SSAT`).
//!
//! `VCVTR` uses the FPSCR rounding mode, round-to-nearest after reset; firmware that changes it
//! would change these bytes.
#![allow(unsafe_code)]

use core::arch::asm;

/// `out[i] = quant::quantize_i8(x[i], scale, zero_point)`.
pub fn quantize_i8(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]) {
    for (q, &v) in out.iter_mut().zip(x) {
        let v = v / scale;
        let r: i32;
        // SAFETY: works in s14, whose value it saves in a core register and puts back (stable
        // Rust cannot name FPU registers as asm operands on this target); touches no memory.
        unsafe {
            asm!(
                "vmov {saved}, s14",
                "vmov s14, {v}",
                "vcvtr.s32.f32 s14, s14",
                "vmov {r}, s14",
                "vmov s14, {saved}",
                v = in(reg) v.to_bits(),
                r = lateout(reg) r,
                saved = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        let frac = v - r as f32;
        let r = if frac == 0.5 && v > 0.0 {
            r + 1
        } else if frac == -0.5 && v < 0.0 {
            r - 1
        } else {
            r
        };
        *q = r.saturating_add(zero_point).clamp(-128, 127) as i8;
    }
}
