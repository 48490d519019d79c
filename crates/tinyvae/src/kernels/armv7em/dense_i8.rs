//! int8 Dense for ARMv7E-M (Cortex-M4/M7) with the DSP extension; gives the bytes of
//! [`crate::kernels::reference::dense_i8`] exactly.
//!
//! # Where the instructions go
//! `SMLAD` multiplies two int16 pairs and adds both products to an int32 accumulator. `SXTB16`
//! sign-extends bytes 0 and 2 of a word into such a pair, and with `ROR #8` bytes 1 and 3. So four
//! int8 weights cost two `SXTB16` and two `SMLAD` plus a share of a load. The input is
//! sign-extended once per layer into a scratch laid out in the order `SXTB16` splits a weight
//! word: `(x0,x2) (x1,x3) (x4,x6) (x5,x7)` for each 8-column block. The inner loop therefore
//! never shuffles. Two rows share each input block, which one `LDM` of four words loads. Each row
//! loads its 8 weights with one `LDRD`:
//!
//! ```text
//! per 8 columns x 2 rows: 1 LDM + 2 LDRD + 8 SXTB16 + 8 SMLAD = 19 instructions / 16 MACs
//! per loop iteration (8 blocks): 8 x 19 + CMP + BNE          = 154 instructions / 128 MACs
//! ```
//!
//! That is 1.20 instructions per MAC in the loop. Each row then adds its epilogue, which is
//! [`crate::quant::requantize`] itself, about 50 instructions. Under QEMU's instruction count
//! the 784x400 layer comes to 1.38 per MAC in all; CMSIS-NN's DSP path is about 1.6. Two
//! `SXTB16` per weight word are the floor here: `SMLAD` only takes halfwords, and the raw
//! bytes of a word carry the low byte's sign into the high one.
//!
//! # A loop without a counter
//! The loop needs 12 registers: 4 for the input (fixed to r0-r3 by `LDM`), 3 weight
//! temporaries, 2 accumulators and 3 pointers. Thumb inline asm gets at most 13 general
//! registers (sp, pc and the frame pointer r7 are out), and a build may reserve one more: r6 as
//! LLVM's base pointer, or r9 as the static base under RWPI. So no register is left for a trip
//! count. The scratch ends its own loops instead. A block whose first word is [`STOP`] marks the
//! end. That halfword pair (-32768, -32768) is one that sign-extended int8 never produces. The
//! layout is `[main blocks, a multiple of 8] [STOP] [0..=7 remainder blocks] [STOP]`.
//!
//! # Misaligned rows
//! `LDRD` and `LDM` fault on unaligned addresses. Rows are word-aligned when the weights are and
//! `cols % 4 == 0`, and the blob aligns tensors to 16 bytes. For other rows the same loop loads
//! each weight word with `LDR`, which ARMv7-M allows unaligned, as the compiler itself assumes.
//! That costs one instruction more per row and block.
//!
//! # Tails and long inputs
//! The scratch is zero-padded to whole blocks, so a row may run into the next row's weights,
//! which are multiplied by zero. The rows that would run past the end of the weight slice
//! instead take the exact number of blocks, and scalar code finishes their last `cols % 8`
//! columns. The scratch holds [`CHUNK`] columns, about 2 KiB of stack. Longer inputs are walked
//! in chunks, which keeps [`TILE`] rows' partial sums (256 bytes) between chunks.
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use crate::format::WeightLayout;
use crate::kernels::{reference, DenseI8};
use crate::quant::requantize;

/// Columns per block: one `LDRD` of weights, one `LDM` of prepared input.
const BLOCK: usize = 8;
/// Blocks per main-loop iteration; the asm below has this many copies of the block.
const UNROLL: usize = 8;
/// Blocks the scratch holds.
const CHUNK_BLOCKS: usize = 128;
/// Input columns prepared at once.
const CHUNK: usize = CHUNK_BLOCKS * BLOCK;
/// Rows whose partial sums are kept while an input longer than [`CHUNK`] is walked.
const TILE: usize = 64;
/// First word of the block that ends a loop; see the module docs.
const STOP: u32 = 0x8000_8000;

/// The prepared input of one chunk: four words per block plus the two stop blocks.
#[repr(C, align(8))]
struct Scratch {
    words: [MaybeUninit<u32>; 4 * (CHUNK_BLOCKS + 2)],
    /// How many blocks the current layout holds; `None` until the first fill.
    blocks: Option<usize>,
}

impl Scratch {
    fn new() -> Self {
        // Left uninitialised: `fill` writes every word the asm will read, and zeroing 2 KiB per
        // call would cost as much as a small layer's whole epilogue.
        Scratch { words: [const { MaybeUninit::uninit() }; 4 * (CHUNK_BLOCKS + 2)], blocks: None }
    }

    /// Lays out `blocks` blocks of `xs` (zero past its end) with their stop blocks.
    fn fill(&mut self, xs: &[i8], blocks: usize) {
        let blocks = blocks.min(CHUNK_BLOCKS);
        let main = blocks - blocks % UNROLL;
        let mut slots = self.words.chunks_exact_mut(4);
        let mut put = |block: [u32; 4]| {
            for (d, v) in slots.next().into_iter().flatten().zip(block) {
                d.write(v);
            }
        };
        let stop = [STOP, 0, 0, 0];
        let mut full = xs.chunks_exact(BLOCK);
        let mut partial = Some(full.remainder());
        for b in 0..blocks {
            if b == main {
                put(stop);
            }
            let block = match full.next() {
                Some(c) => [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]],
                None => {
                    let mut t = [0i8; BLOCK];
                    for (d, &v) in t.iter_mut().zip(partial.take().unwrap_or(&[])) {
                        *d = v;
                    }
                    t
                }
            };
            put(prepare_block(block));
        }
        if blocks == main {
            put(stop);
        }
        put(stop);
        self.blocks = Some(blocks);
    }
}

/// The four words of one input block, in the order `SXTB16` splits a weight word.
#[inline(always)]
fn prepare_block(x: [i8; BLOCK]) -> [u32; 4] {
    let lo = u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8]);
    let hi = u32::from_le_bytes([x[4] as u8, x[5] as u8, x[6] as u8, x[7] as u8]);
    [sxtb16(lo), sxtb16_ror8(lo), sxtb16(hi), sxtb16_ror8(hi)]
}

/// Bytes 0 and 2 of `w`, sign-extended into the two halfwords.
#[inline(always)]
fn sxtb16(w: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; no memory, stack or flags touched. `.arch` lets the
    // thumbv8m.main targets (which share this module's cfg) assemble it.
    unsafe {
        asm!(".arch armv7e-m", "sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// Bytes 1 and 3 of `w`, sign-extended into the two halfwords.
#[inline(always)]
fn sxtb16_ror8(w: u32) -> u32 {
    let r;
    // SAFETY: as in `sxtb16`.
    unsafe {
        asm!(".arch armv7e-m", "sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w,
             options(pure, nomem, nostack, preserves_flags));
    }
    r
}

/// One row's share of a block: weights in r4/r5, input in r0..r3.
#[rustfmt::skip]
macro_rules! row {
    ($acc:literal) => {
        concat!(
            "sxtb16 {t}, r4\n",
            "smlad ", $acc, ", {t}, r0, ", $acc, "\n",
            "sxtb16 r4, r4, ror #8\n",
            "smlad ", $acc, ", r4, r1, ", $acc, "\n",
            "sxtb16 {t}, r5\n",
            "smlad ", $acc, ", {t}, r2, ", $acc, "\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad ", $acc, ", r5, r3, ", $acc, "\n",
        )
    };
}

/// One block for both rows, given how each row loads its 8 weights into r4/r5.
macro_rules! block {
    ($load_a:literal, $load_b:literal) => {
        concat!($load_a, "\n", row!("{a}"), $load_b, "\n", row!("{b}"))
    };
}

/// The whole two-row loop (see the module docs for the scratch layout it walks).
macro_rules! dot2_asm {
    ($a:ident, $b:ident, $pa:expr, $pb:expr, $x:expr, $load_a:literal, $load_b:literal) => {
        asm!(
            ".arch armv7e-m",
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "cmp r0, #0x80008000",
            "beq 2f",
            "1:",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "cmp r0, #0x80008000",
            "bne 1b",
            "2:",
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "cmp r0, #0x80008000",
            "beq 4f",
            "3:",
            block!($load_a, $load_b),
            "ldm {x}!, {{r0, r1, r2, r3}}",
            "cmp r0, #0x80008000",
            "bne 3b",
            "4:",
            a = inout(reg) $a,
            b = inout(reg) $b,
            pa = inout(reg) $pa => _,
            pb = inout(reg) $pb => _,
            x = inout(reg) $x => _,
            t = out(reg) _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
            options(readonly, nostack),
        )
    };
}

/// `acc` plus the dot products of the rows at `pa` and `pb` with the scratch's input blocks.
///
/// # Safety
/// `x` was filled (`x.blocks` is `Some(n)`), and `pa` and `pb` are each valid for reads of
/// `8 * n` bytes. With `ALIGNED`, both are also 4-byte aligned.
#[inline(always)]
unsafe fn dot2<const ALIGNED: bool>(x: &Scratch, pa: *const u8, pb: *const u8, acc: [i32; 2]) -> [i32; 2] {
    let (mut a, mut b) = acc.into();
    let xp = x.words.as_ptr();
    // SAFETY: the asm reads `x.words` from the start until the second STOP block. `fill` wrote
    // exactly `n + 2` blocks, the last of them that STOP. Sign-extended int8 never forms STOP,
    // so the loops end there: the main loop stops at the first STOP, which `fill` put after a
    // multiple of UNROLL blocks, and the remainder loop at the second. Each row pointer advances 8
    // bytes per input block, so `8 * n` bytes, which the caller guarantees readable. LDM needs
    // word alignment, which `Scratch`'s `align(8)` gives. LDRD needs it too, which the caller
    // guarantees with `ALIGNED`. LDR is allowed unaligned on ARMv7-M. Nothing is written to
    // memory or the stack. r0-r5 and `t` are declared clobbered, and so are the flags (CMP,
    // and SMLAD's sticky Q) by not promising to preserve them. SMLAD wraps modulo 2^32 like
    // the reference's `wrapping_add`.
    unsafe {
        if ALIGNED {
            dot2_asm!(a, b, pa, pb, xp, "ldrd r4, r5, [{pa}], #8", "ldrd r4, r5, [{pb}], #8");
        } else {
            dot2_asm!(
                a,
                b,
                pa,
                pb,
                xp,
                "ldr r4, [{pa}], #4\nldr r5, [{pa}], #4",
                "ldr r4, [{pb}], #4\nldr r5, [{pb}], #4"
            );
        }
    }
    [a, b]
}

/// Dot products of the two rows at byte offsets `oa` and `ob` of `w` with the input chunk
/// `xs`, for any pair, even one at the very end of `w`. `s` holds `xs` prepared with the padded
/// or the exact block count, and is refilled with the other count when this pair needs it.
fn pair(s: &mut Scratch, xs: &[i8], w: &[u8], oa: usize, ob: usize, acc: [i32; 2]) -> [i32; 2] {
    let (wa, wb) = (w.get(oa..).unwrap_or(&[]), w.get(ob..).unwrap_or(&[]));
    let room = wa.len().min(wb.len());
    let padded = xs.len().div_ceil(BLOCK);
    // Running into the next row's weights is fine: they meet the zero padding. Otherwise whole
    // blocks only (all of them for any real row), and the scalar loop below does the rest.
    let blocks = if room >= padded * BLOCK { padded } else { (room / BLOCK).min(xs.len() / BLOCK) };
    if s.blocks != Some(blocks) {
        s.fill(xs, blocks);
    }
    let aligned = (wa.as_ptr() as usize | wb.as_ptr() as usize) & 3 == 0;
    // SAFETY: `s` holds `blocks` blocks, and both rows hold at least `8 * blocks` bytes by the
    // choice of `blocks` above.
    let mut acc = unsafe {
        if aligned {
            dot2::<true>(s, wa.as_ptr(), wb.as_ptr(), acc)
        } else {
            dot2::<false>(s, wa.as_ptr(), wb.as_ptr(), acc)
        }
    };
    for (k, &xk) in xs.iter().enumerate().skip(blocks * BLOCK) {
        let xk = xk as i32;
        acc[0] = acc[0].wrapping_add(wa.get(k).map_or(0, |&v| v as i8 as i32) * xk);
        acc[1] = acc[1].wrapping_add(wb.get(k).map_or(0, |&v| v as i8 as i32) * xk);
    }
    acc
}

/// Little-endian i32 at byte `at` (0 past the end; lengths are checked up front).
#[inline(always)]
fn le(bytes: &[u8], at: usize) -> i32 {
    bytes.get(at..at + 4).map_or(0, |s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The reference's epilogue for one output.
#[inline(always)]
#[allow(clippy::if_same_then_else)]
fn requant(p: &DenseI8<'_>, acc: i32, multiplier: i32, shift: i32) -> i8 {
    // Two calls of the same function: in the first the compiler knows the shift is a right
    // shift (as in every layer whose scale is below 1) and drops the saturating left shift.
    if shift <= 0 {
        requantize(acc, multiplier, shift, p.out_zero_point, p.act_min, p.act_max)
    } else {
        requantize(acc, multiplier, shift, p.out_zero_point, p.act_min, p.act_max)
    }
}

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !matches!(p.layout, WeightLayout::RowMajor) {
        return reference::dense_i8(p, x, batch, out);
    }
    let (rows, cols) = (p.rows, p.cols);
    if rows == 0 || cols == 0 {
        return;
    }
    let (Some(n_w), Some(n_aux)) = (rows.checked_mul(cols), rows.checked_mul(4)) else { return };
    let short = |b: &[u8]| b.len() < n_aux;
    if p.weights.len() < n_w || short(p.bias) || short(p.multipliers) || short(p.shifts) {
        return;
    }
    let w = &p.weights[..n_w];
    let aligned = (w.as_ptr() as usize | cols) & 3 == 0;
    let mut s = Scratch::new();
    for (xs, ys) in x.chunks_exact(cols).zip(out.chunks_exact_mut(rows)).take(batch) {
        if cols > CHUNK {
            long_input(p, w, xs, ys, &mut s);
        } else if aligned {
            short_input::<true>(p, w, xs, ys, &mut s);
        } else {
            short_input::<false>(p, w, xs, ys, &mut s);
        }
    }
}

/// One sample whose input fits the scratch: prepared once, then every row pair runs on it.
/// `ALIGNED`: `w` and `cols` are multiples of 4, so every row is word-aligned.
#[inline(always)]
fn short_input<const ALIGNED: bool>(p: &DenseI8<'_>, w: &[u8], xs: &[i8], ys: &mut [i8], s: &mut Scratch) {
    let (rows, cols) = (p.rows, p.cols);
    let blocks = cols.div_ceil(BLOCK);
    s.fill(xs, blocks);
    // Row r may read its 8 * blocks bytes when r * cols + 8 * blocks <= w.len(). The fast loop
    // takes the pairs whose second row may.
    let readable_rows = match w.len().checked_sub(blocks * BLOCK) {
        Some(room) => room / cols + 1,
        None => 0,
    };
    let fast_pairs = (readable_rows / 2).min(rows / 2);
    let mut pa = w.as_ptr();
    let aux = p.bias.chunks_exact(8).zip(p.multipliers.chunks_exact(8)).zip(p.shifts.chunks_exact(8));
    for (y, ((b, m), sh)) in ys.chunks_exact_mut(2).zip(aux).take(fast_pairs) {
        // SAFETY: this is pair i < fast_pairs, so `pa` is row 2i, and both it and row 2i + 1
        // are below `readable_rows`: both may read 8 * blocks bytes inside `w`, which `s` was
        // filled for. With ALIGNED, `w` and `cols` are multiples of 4, so both rows are too.
        let acc = unsafe { dot2::<ALIGNED>(s, pa, pa.add(cols), [le(b, 0), le(b, 4)]) };
        y[0] = requant(p, acc[0], le(m, 0), le(sh, 0));
        y[1] = requant(p, acc[1], le(m, 4), le(sh, 4));
        pa = pa.wrapping_add(2 * cols);
    }
    // The last rows, whose reads must stop at the end of `w`.
    for ra in (2 * fast_pairs..rows).step_by(2) {
        let rb = if ra + 1 < rows { ra + 1 } else { ra };
        let acc = pair(s, xs, w, ra * cols, rb * cols, [le(p.bias, 4 * ra), le(p.bias, 4 * rb)]);
        for (r, a) in [(ra, acc[0]), (rb, acc[1])] {
            if let Some(y) = ys.get_mut(r) {
                *y = requant(p, a, le(p.multipliers, 4 * r), le(p.shifts, 4 * r));
            }
        }
    }
}

/// One sample whose input is longer than the scratch: every chunk is prepared once per tile of
/// rows, whose partial sums wait in `acc` between chunks.
fn long_input(p: &DenseI8<'_>, w: &[u8], xs: &[i8], ys: &mut [i8], s: &mut Scratch) {
    let (rows, cols) = (p.rows, p.cols);
    let mut acc = [0i32; TILE];
    for t0 in (0..rows).step_by(TILE) {
        let tile = &mut acc[..(rows - t0).min(TILE)];
        for (i, a) in tile.iter_mut().enumerate() {
            *a = le(p.bias, 4 * (t0 + i));
        }
        for c0 in (0..cols).step_by(CHUNK) {
            let xc = xs.get(c0..(c0 + CHUNK).min(cols)).unwrap_or(&[]);
            s.fill(xc, xc.len().div_ceil(BLOCK));
            for i in (0..tile.len()).step_by(2) {
                let j = if i + 1 < tile.len() { i + 1 } else { i };
                let (oa, ob) = ((t0 + i) * cols + c0, (t0 + j) * cols + c0);
                let r = pair(s, xc, w, oa, ob, [tile[i], tile[j]]);
                tile[j] = r[1];
                tile[i] = r[0];
            }
        }
        for (i, &a) in tile.iter().enumerate() {
            let r = t0 + i;
            if let Some(y) = ys.get_mut(r) {
                *y = requant(p, a, le(p.multipliers, 4 * r), le(p.shifts, 4 * r));
            }
        }
    }
}
