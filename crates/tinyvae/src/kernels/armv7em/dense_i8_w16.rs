//! Opt-in int8 Dense with the weights widened to int16. This is a measurement, not a kernel
//! that anything dispatches to: it trades twice the weight flash for fewer instructions. The
//! blob format stays int8 and no [`crate::Kernels`] table holds this kernel. It shows how
//! much of the DSP kernel's cost is the `SXTB16` that int8 weights need.
//!
//! With int16 weights, every weight word is already the halfword pair that `SMLAD` takes. The
//! input is prepared in its natural pairs `(x0,x1) (x2,x3) ...`, and 8 columns of 2 rows cost
//! 1 `LDM` + 4 `LDRD` + 8 `SMLAD` = 13 instructions per 16 MACs (0.81, against 1.19 for int8),
//! 4 blocks to a loop iteration.
//!
//! The fast path covers what the measurement needs: `cols` a multiple of 8 and at most 1024,
//! and word-aligned weights. Other shapes take a scalar loop. The results equal the int8
//! reference's on the same weights.
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Columns per block.
const BLOCK: usize = 8;
/// Blocks the scratch holds.
const MAX_BLOCKS: usize = 128;
/// First word of the block that ends the loop (a halfword pair that int8 never gives).
const STOP: u32 = 0x8000_8000;

/// 8 columns of both rows: input in r0-r3, 16 weight bytes of each row through r4/r5.
macro_rules! block16 {
    () => {
        concat!(
            "ldrd r4, r5, [{pa}], #8\n",
            "smlad {a}, r4, r0, {a}\n",
            "smlad {a}, r5, r1, {a}\n",
            "ldrd r4, r5, [{pa}], #8\n",
            "smlad {a}, r4, r2, {a}\n",
            "smlad {a}, r5, r3, {a}\n",
            "ldrd r4, r5, [{pb}], #8\n",
            "smlad {b}, r4, r0, {b}\n",
            "smlad {b}, r5, r1, {b}\n",
            "ldrd r4, r5, [{pb}], #8\n",
            "smlad {b}, r4, r2, {b}\n",
            "smlad {b}, r5, r3, {b}\n",
        )
    };
}

/// Like [`crate::kernels::DenseI8Fn`], but `p.weights` holds `rows * cols` little-endian int16
/// weights (2 bytes each, values in `-127..=127`), row-major.
pub fn dense_i8_w16(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let (rows, cols) = (p.rows, p.cols);
    if rows == 0 || cols == 0 {
        return;
    }
    let (Some(n_w), Some(n_aux)) = (rows.checked_mul(cols).and_then(|n| n.checked_mul(2)), rows.checked_mul(4)) else {
        return;
    };
    let short = |b: &[u8]| b.len() < n_aux;
    if p.weights.len() < n_w || short(p.bias) || short(p.multipliers) || short(p.shifts) || short(p.weight_sums) {
        return;
    }
    let w = &p.weights[..n_w];
    let fast = cols % BLOCK == 0 && cols <= BLOCK * MAX_BLOCKS && (w.as_ptr() as usize) & 3 == 0;
    let mut scratch = [const { MaybeUninit::<u32>::uninit() }; 4 * (MAX_BLOCKS + 2)];
    let q = |acc: i32, m: i32, s: i32| {
        // As in the int8 kernel: a call where the compiler knows the shift is a right shift.
        #[allow(clippy::if_same_then_else)]
        if s <= 0 {
            requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max)
        } else {
            requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max)
        }
    };
    for (xs, ys) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rows)).take(batch) {
        if fast {
            // The input in natural pairs: [main blocks, a multiple of 4] [STOP] [0..=3
            // remainder blocks] [STOP], as in the int8 kernel.
            let main = 4 * (cols / BLOCK / 4);
            let pair = |c: &[i8]| (c[0] as i16 as u16 as u32) | (c[1] as i16 as u16 as u32) << 16;
            let (head, tail) = (xs.get(..main * BLOCK).unwrap_or(&[]), xs.get(main * BLOCK..).unwrap_or(&[]));
            let words = head.chunks_exact(2).map(pair);
            let rem = tail.chunks_exact(2).map(pair);
            let all = words.chain([STOP, 0, 0, 0]).chain(rem).chain([STOP, 0, 0, 0]);
            for (d, v) in scratch.iter_mut().zip(all) {
                d.write(v);
            }
        }
        let mut rows_w = w.chunks_exact(2 * cols);
        let mut aux = p.bias.chunks_exact(4).zip(p.multipliers.chunks_exact(4)).zip(p.shifts.chunks_exact(4));
        let mut aux = core::iter::from_fn(|| aux.next().map(|((b, m), s)| (le(b), le(m), le(s))));
        for y in ys.chunks_mut(2) {
            let (Some(wa), Some((ba, ma, sa))) = (rows_w.next(), aux.next()) else { break };
            let (fast_pair, wb, second) = match (y.len(), rows_w.next(), aux.next()) {
                (2, Some(wb), Some(second)) => (fast, wb, second),
                _ => (false, wa, (0, 0, 0)),
            };
            if !fast_pair {
                y[0] = q(dot(wa, xs, ba), ma, sa);
                if let Some(yb) = y.get_mut(1) {
                    let (bb, mb, sb) = second;
                    *yb = q(dot(wb, xs, bb), mb, sb);
                }
                continue;
            }
            let (bb, mb, sb) = second;
            let (mut a, mut b) = (ba, bb);
            // SAFETY: the scratch holds cols / 8 blocks of input split by two STOP blocks, which
            // end the two loops (prepared int8 never forms STOP). Each row pointer advances 16
            // bytes per block: 2 * cols bytes, exactly the rows `wa` and `wb`. Those are
            // word-aligned (`fast`: aligned weights, 2 * cols a multiple of 16), as LDRD
            // needs; the scratch is aligned for LDM. Nothing is written to memory; r0-r5 and
            // the flags are declared clobbered. SMLAD wraps like the reference.
            unsafe {
                asm!(
                    ".arch armv7e-m",
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    "cmp r0, #0x80008000",
                    "beq 2f",
                    "1:",
                    block16!(),
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    block16!(),
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    block16!(),
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    block16!(),
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    "cmp r0, #0x80008000",
                    "bne 1b",
                    "2:",
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    "cmp r0, #0x80008000",
                    "beq 4f",
                    "3:",
                    block16!(),
                    "ldm {x}!, {{r0, r1, r2, r3}}",
                    "cmp r0, #0x80008000",
                    "bne 3b",
                    "4:",
                    a = inout(reg) a,
                    b = inout(reg) b,
                    pa = inout(reg) wa.as_ptr() => _,
                    pb = inout(reg) wb.as_ptr() => _,
                    x = inout(reg) scratch.as_ptr() => _,
                    out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                    options(readonly, nostack),
                );
            }
            y[0] = q(a, ma, sa);
            y[1] = q(b, mb, sb);
        }
    }
}

/// `acc` plus one row of int16 weights times the input, in scalar code.
fn dot(w: &[u8], xs: &[i8], acc: i32) -> i32 {
    w.chunks_exact(2)
        .zip(xs)
        .fold(acc, |acc, (wk, &xk)| acc.wrapping_add(i16::from_le_bytes([wk[0], wk[1]]) as i32 * xk as i32))
}

/// Little-endian i32 from a 4-byte chunk (0 if shorter).
#[inline(always)]
fn le(b: &[u8]) -> i32 {
    match b {
        [a, b, c, d, ..] => i32::from_le_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}
