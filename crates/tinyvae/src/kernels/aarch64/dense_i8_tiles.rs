//! The int8 Dense driver shared by the NEON and `sdot` kernels: tiling, tails, reduction and
//! epilogue. The two kernels differ only in how 16 int8 products reach the int32 lanes (a
//! [`DotStep`]) and in the instruction text of their wide column loops ([`wide_loops`]).
//!
//! A batch runs in tiles of 8 output rows by 2 samples (4 rows by up to 4 samples for the last
//! rows): each loaded weight vector feeds every sample of the tile, each loaded input vector
//! every row. Row tiles are the outer loop so that the `8 x cols` weight block stays in L1 while
//! the batch streams past it, and the requantization parameters are prepared once per row tile.
//! 8 x 2 rather than 4 x 4: both keep 16 accumulators, but 8 x 2 reads 64 columns per
//! iteration (one 4-register `ld1` per row and sample, 12 loads and loop instructions per 64
//! steps) where 4 x 4 fits only 32 (10 per 32 steps), and its 16-column steps keep the
//! columns short of a multiple of 64 inside the assembly too.
//!
//! Where the instructions go (counted under QEMU, `scripts/test-aarch64.sh --count`): the bulk
//! of the columns runs in assembly loops, 64 columns per iteration for one or two samples and
//! 32 for four, whose only non-arithmetic instructions are one multi-register `ld1` per row and
//! per sample and the loop's `subs`/`b.ne`. Batch 1 has its own function ([`single_sample_tiles`])
//! so that the batched loops' register appetite does not make the single-sample tiles spill; the
//! row sums are reduced with three `addp`. What is left per 4-row tile is a few dozen
//! instructions of setup and requantization.
//!
//! Exactness: every path adds the same int32 products (the `DotStep`s are exact, see their
//! modules), only in another order, and int32 addition is associative even when it wraps; the
//! epilogue is [`ChannelQuant4`], bit-exact with the scalar requantization.
//!
//! The last `cols % 16` columns are read as the row's last 16 bytes with the already-counted
//! lanes of the input zeroed, so every load stays inside its row (this needs `cols >= 16`;
//! narrower layers go to the reference).

use core::arch::aarch64::*;

use super::requantize::ChannelQuant4;
use crate::kernels::reference::le_i32;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// How one kernel adds 16 int8 products into four int32 lanes, and its wide column loops.
pub(super) trait DotStep {
    /// `acc` plus the 16 products `w[i] * x[i]`, spread over the four lanes in any way (the
    /// lanes are summed at the end).
    ///
    /// # Safety
    /// The CPU must support the instructions of the implementation.
    unsafe fn step(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;

    /// Adds to `acc[r]` the products of the first `64 * n` columns of row `w[r]` with `x`, in
    /// any lane arrangement (see [`wide_loops`]).
    ///
    /// # Safety
    /// The CPU must support the instructions of the implementation; `n >= 1`; `64 * n` bytes
    /// readable from `x` and from every `w[r]`.
    unsafe fn wide_4x1(acc: &mut [int32x4_t; 4], w: &[*const i8; 4], x: *const i8, n: usize);

    /// Adds to `acc[r][s]` the products of the first `32 * n` columns of row `w[r]` with sample
    /// `x[s]`, in any lane arrangement.
    ///
    /// # Safety
    /// As [`DotStep::wide_4x1`], with `32 * n` bytes readable from every `x[s]` and `w[r]`.
    unsafe fn wide_4x4(acc: &mut [[int32x4_t; 4]; 4], w: &[*const i8; 4], x: &[*const i8; 4], n: usize);

    /// Adds to `acc[r][s]` the products of the first `c = 64 * n + 16 * m` columns of row `w[r]`
    /// with sample `x[s]`, in any lane arrangement; then, if `back > 0`, those of the 16 columns
    /// from `c - back` with the inputs ANDed with `tail_mask` (the masked last step of
    /// [`dot_tile`]). Any count may be zero: the whole row stays in assembly, out of the
    /// intrinsic path, which spills around this loop's 30 vector registers.
    ///
    /// # Safety
    /// As [`DotStep::wide_4x1`] but without `n >= 1`: `c` bytes readable from every `x[s]` and
    /// `w[r]`, and `back <= c`.
    unsafe fn wide_8x2(
        acc: &mut [[int32x4_t; 2]; 8],
        w: &[*const i8; 8],
        x: &[*const i8; 2],
        columns: (usize, usize),
        back: usize,
        tail_mask: int8x16_t,
    );
}

/// The bodies of [`DotStep::wide_4x1`] and [`DotStep::wide_4x4`] for an impl whose 16-product
/// step is the assembly `$step!(acc, w, x, tmp)` gives (register names with their `v` prefix;
/// `tmp` is a scratch vector, `v28` or `v29`), after the assembler directive `$prelude`.
///
/// These loops are the bulk of every Dense layer, and are written in assembly so that each
/// instruction is one we chose: multi-register `ld1` with post-increment loads 64 (or 32)
/// bytes of a row in one instruction and advances its pointer for free, the loaded inputs
/// serve all four rows, and `subs`/`b.ne` are the only loop overhead. From intrinsics LLVM
/// split the loads into `ldp` pairs with a separate `add` per pointer.
///
/// One sample: each iteration reads 64 columns of the input (`v16..v19`) and of each row
/// (`v20..v23`, `v24..v27`), 16 steps. Four samples: 32 columns of each input (`v16..v23`),
/// shared by every row (`v24..v27`), 32 steps into 16 accumulators. Two samples by eight rows:
/// 64 columns of each input (`v16..v23`), then of each row in turn (`v24..v27`), 64 steps into
/// 16 accumulators, then 16-column steps for the rest.
macro_rules! wide_loops {
    ($step:ident, $prelude:literal) => {
        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn wide_4x1(acc: &mut [int32x4_t; 4], w: &[*const i8; 4], x: *const i8, n: usize) {
            let [mut a0, mut a1, mut a2, mut a3] = *acc;
            // SAFETY: the caller guarantees the instructions, `n >= 1` and `64 * n` readable
            // bytes from each pointer, which is all the loop reads; it writes only registers
            // (all declared) and flags.
            core::arch::asm!(
                $prelude,
                "2:",
                "ld1 {{v16.16b, v17.16b, v18.16b, v19.16b}}, [{x}], #64",
                "ld1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{w0}], #64",
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w1}], #64",
                $step!("{a0:v}", "v20", "v16", "v28"),
                $step!("{a0:v}", "v21", "v17", "v29"),
                $step!("{a0:v}", "v22", "v18", "v28"),
                $step!("{a0:v}", "v23", "v19", "v29"),
                "ld1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{w2}], #64",
                $step!("{a1:v}", "v24", "v16", "v28"),
                $step!("{a1:v}", "v25", "v17", "v29"),
                $step!("{a1:v}", "v26", "v18", "v28"),
                $step!("{a1:v}", "v27", "v19", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w3}], #64",
                $step!("{a2:v}", "v20", "v16", "v28"),
                $step!("{a2:v}", "v21", "v17", "v29"),
                $step!("{a2:v}", "v22", "v18", "v28"),
                $step!("{a2:v}", "v23", "v19", "v29"),
                $step!("{a3:v}", "v24", "v16", "v28"),
                $step!("{a3:v}", "v25", "v17", "v29"),
                $step!("{a3:v}", "v26", "v18", "v28"),
                $step!("{a3:v}", "v27", "v19", "v29"),
                "subs {n}, {n}, #1",
                "b.ne 2b",
                x = inout(reg) x => _,
                w0 = inout(reg) w[0] => _,
                w1 = inout(reg) w[1] => _,
                w2 = inout(reg) w[2] => _,
                w3 = inout(reg) w[3] => _,
                n = inout(reg) n => _,
                a0 = inout(vreg) a0,
                a1 = inout(vreg) a1,
                a2 = inout(vreg) a2,
                a3 = inout(vreg) a3,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _,
                options(nostack, readonly),
            );
            *acc = [a0, a1, a2, a3];
        }

        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn wide_4x4(acc: &mut [[int32x4_t; 4]; 4], w: &[*const i8; 4], x: &[*const i8; 4], n: usize) {
            let [[mut a00, mut a01, mut a02, mut a03], [mut a10, mut a11, mut a12, mut a13], [mut a20, mut a21, mut a22, mut a23], [mut a30, mut a31, mut a32, mut a33]] =
                *acc;
            // SAFETY: as in `wide_4x1`, with `32 * n` bytes read from each pointer.
            core::arch::asm!(
                $prelude,
                "2:",
                "ld1 {{v16.16b, v17.16b}}, [{x0}], #32",
                "ld1 {{v18.16b, v19.16b}}, [{x1}], #32",
                "ld1 {{v20.16b, v21.16b}}, [{x2}], #32",
                "ld1 {{v22.16b, v23.16b}}, [{x3}], #32",
                "ld1 {{v24.16b, v25.16b}}, [{w0}], #32",
                "ld1 {{v26.16b, v27.16b}}, [{w1}], #32",
                $step!("{a00:v}", "v24", "v16", "v28"),
                $step!("{a01:v}", "v24", "v18", "v29"),
                $step!("{a02:v}", "v24", "v20", "v28"),
                $step!("{a03:v}", "v24", "v22", "v29"),
                $step!("{a00:v}", "v25", "v17", "v28"),
                $step!("{a01:v}", "v25", "v19", "v29"),
                $step!("{a02:v}", "v25", "v21", "v28"),
                $step!("{a03:v}", "v25", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b}}, [{w2}], #32",
                $step!("{a10:v}", "v26", "v16", "v28"),
                $step!("{a11:v}", "v26", "v18", "v29"),
                $step!("{a12:v}", "v26", "v20", "v28"),
                $step!("{a13:v}", "v26", "v22", "v29"),
                $step!("{a10:v}", "v27", "v17", "v28"),
                $step!("{a11:v}", "v27", "v19", "v29"),
                $step!("{a12:v}", "v27", "v21", "v28"),
                $step!("{a13:v}", "v27", "v23", "v29"),
                "ld1 {{v26.16b, v27.16b}}, [{w3}], #32",
                $step!("{a20:v}", "v24", "v16", "v28"),
                $step!("{a21:v}", "v24", "v18", "v29"),
                $step!("{a22:v}", "v24", "v20", "v28"),
                $step!("{a23:v}", "v24", "v22", "v29"),
                $step!("{a20:v}", "v25", "v17", "v28"),
                $step!("{a21:v}", "v25", "v19", "v29"),
                $step!("{a22:v}", "v25", "v21", "v28"),
                $step!("{a23:v}", "v25", "v23", "v29"),
                $step!("{a30:v}", "v26", "v16", "v28"),
                $step!("{a31:v}", "v26", "v18", "v29"),
                $step!("{a32:v}", "v26", "v20", "v28"),
                $step!("{a33:v}", "v26", "v22", "v29"),
                $step!("{a30:v}", "v27", "v17", "v28"),
                $step!("{a31:v}", "v27", "v19", "v29"),
                $step!("{a32:v}", "v27", "v21", "v28"),
                $step!("{a33:v}", "v27", "v23", "v29"),
                "subs {n}, {n}, #1",
                "b.ne 2b",
                x0 = inout(reg) x[0] => _,
                x1 = inout(reg) x[1] => _,
                x2 = inout(reg) x[2] => _,
                x3 = inout(reg) x[3] => _,
                w0 = inout(reg) w[0] => _,
                w1 = inout(reg) w[1] => _,
                w2 = inout(reg) w[2] => _,
                w3 = inout(reg) w[3] => _,
                n = inout(reg) n => _,
                a00 = inout(vreg) a00, a01 = inout(vreg) a01, a02 = inout(vreg) a02, a03 = inout(vreg) a03,
                a10 = inout(vreg) a10, a11 = inout(vreg) a11, a12 = inout(vreg) a12, a13 = inout(vreg) a13,
                a20 = inout(vreg) a20, a21 = inout(vreg) a21, a22 = inout(vreg) a22, a23 = inout(vreg) a23,
                a30 = inout(vreg) a30, a31 = inout(vreg) a31, a32 = inout(vreg) a32, a33 = inout(vreg) a33,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _,
                options(nostack, readonly),
            );
            *acc = [[a00, a01, a02, a03], [a10, a11, a12, a13], [a20, a21, a22, a23], [a30, a31, a32, a33]];
        }

        #[inline]
        #[target_feature(enable = "neon")]
        unsafe fn wide_8x2(
            acc: &mut [[int32x4_t; 2]; 8],
            w: &[*const i8; 8],
            x: &[*const i8; 2],
            (n, m): (usize, usize),
            back: usize,
            tail_mask: int8x16_t,
        ) {
            let [[mut a00, mut a01], [mut a10, mut a11], [mut a20, mut a21], [mut a30, mut a31], [mut a40, mut a41], [mut a50, mut a51], [mut a60, mut a61], [mut a70, mut a71]] = *acc;
            // SAFETY: as in `wide_4x1`, with `64 * n + 16 * m` bytes read from each pointer, the
            // masked step's 16 ending `16 - back` bytes past there (so inside what was read).
            core::arch::asm!(
                $prelude,
                "cbz {n}, 3f",
                "2:",
                "ld1 {{v16.16b, v17.16b, v18.16b, v19.16b}}, [{x0}], #64",
                "ld1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{x1}], #64",
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w0}], #64",
                $step!("{a00:v}", "v24", "v16", "v28"),
                $step!("{a01:v}", "v24", "v20", "v29"),
                $step!("{a00:v}", "v25", "v17", "v28"),
                $step!("{a01:v}", "v25", "v21", "v29"),
                $step!("{a00:v}", "v26", "v18", "v28"),
                $step!("{a01:v}", "v26", "v22", "v29"),
                $step!("{a00:v}", "v27", "v19", "v28"),
                $step!("{a01:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w1}], #64",
                $step!("{a10:v}", "v24", "v16", "v28"),
                $step!("{a11:v}", "v24", "v20", "v29"),
                $step!("{a10:v}", "v25", "v17", "v28"),
                $step!("{a11:v}", "v25", "v21", "v29"),
                $step!("{a10:v}", "v26", "v18", "v28"),
                $step!("{a11:v}", "v26", "v22", "v29"),
                $step!("{a10:v}", "v27", "v19", "v28"),
                $step!("{a11:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w2}], #64",
                $step!("{a20:v}", "v24", "v16", "v28"),
                $step!("{a21:v}", "v24", "v20", "v29"),
                $step!("{a20:v}", "v25", "v17", "v28"),
                $step!("{a21:v}", "v25", "v21", "v29"),
                $step!("{a20:v}", "v26", "v18", "v28"),
                $step!("{a21:v}", "v26", "v22", "v29"),
                $step!("{a20:v}", "v27", "v19", "v28"),
                $step!("{a21:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w3}], #64",
                $step!("{a30:v}", "v24", "v16", "v28"),
                $step!("{a31:v}", "v24", "v20", "v29"),
                $step!("{a30:v}", "v25", "v17", "v28"),
                $step!("{a31:v}", "v25", "v21", "v29"),
                $step!("{a30:v}", "v26", "v18", "v28"),
                $step!("{a31:v}", "v26", "v22", "v29"),
                $step!("{a30:v}", "v27", "v19", "v28"),
                $step!("{a31:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w4}], #64",
                $step!("{a40:v}", "v24", "v16", "v28"),
                $step!("{a41:v}", "v24", "v20", "v29"),
                $step!("{a40:v}", "v25", "v17", "v28"),
                $step!("{a41:v}", "v25", "v21", "v29"),
                $step!("{a40:v}", "v26", "v18", "v28"),
                $step!("{a41:v}", "v26", "v22", "v29"),
                $step!("{a40:v}", "v27", "v19", "v28"),
                $step!("{a41:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w5}], #64",
                $step!("{a50:v}", "v24", "v16", "v28"),
                $step!("{a51:v}", "v24", "v20", "v29"),
                $step!("{a50:v}", "v25", "v17", "v28"),
                $step!("{a51:v}", "v25", "v21", "v29"),
                $step!("{a50:v}", "v26", "v18", "v28"),
                $step!("{a51:v}", "v26", "v22", "v29"),
                $step!("{a50:v}", "v27", "v19", "v28"),
                $step!("{a51:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w6}], #64",
                $step!("{a60:v}", "v24", "v16", "v28"),
                $step!("{a61:v}", "v24", "v20", "v29"),
                $step!("{a60:v}", "v25", "v17", "v28"),
                $step!("{a61:v}", "v25", "v21", "v29"),
                $step!("{a60:v}", "v26", "v18", "v28"),
                $step!("{a61:v}", "v26", "v22", "v29"),
                $step!("{a60:v}", "v27", "v19", "v28"),
                $step!("{a61:v}", "v27", "v23", "v29"),
                "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{w7}], #64",
                $step!("{a70:v}", "v24", "v16", "v28"),
                $step!("{a71:v}", "v24", "v20", "v29"),
                $step!("{a70:v}", "v25", "v17", "v28"),
                $step!("{a71:v}", "v25", "v21", "v29"),
                $step!("{a70:v}", "v26", "v18", "v28"),
                $step!("{a71:v}", "v26", "v22", "v29"),
                $step!("{a70:v}", "v27", "v19", "v28"),
                $step!("{a71:v}", "v27", "v23", "v29"),
                "subs {n}, {n}, #1",
                "b.ne 2b",
                "3:",
                "cbz {m}, 5f",
                "4:",
                "ld1 {{v16.16b}}, [{x0}], #16",
                "ld1 {{v20.16b}}, [{x1}], #16",
                "ld1 {{v24.16b}}, [{w0}], #16",
                $step!("{a00:v}", "v24", "v16", "v28"),
                $step!("{a01:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w1}], #16",
                $step!("{a10:v}", "v24", "v16", "v28"),
                $step!("{a11:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w2}], #16",
                $step!("{a20:v}", "v24", "v16", "v28"),
                $step!("{a21:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w3}], #16",
                $step!("{a30:v}", "v24", "v16", "v28"),
                $step!("{a31:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w4}], #16",
                $step!("{a40:v}", "v24", "v16", "v28"),
                $step!("{a41:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w5}], #16",
                $step!("{a50:v}", "v24", "v16", "v28"),
                $step!("{a51:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w6}], #16",
                $step!("{a60:v}", "v24", "v16", "v28"),
                $step!("{a61:v}", "v24", "v20", "v29"),
                "ld1 {{v24.16b}}, [{w7}], #16",
                $step!("{a70:v}", "v24", "v16", "v28"),
                $step!("{a71:v}", "v24", "v20", "v29"),
                "subs {m}, {m}, #1",
                "b.ne 4b",
                "5:",
                "cbz {back}, 7f",
                // Register-offset loads from the advanced pointers, back to the 16 columns.
                "neg {back}, {back}",
                "ldr q16, [{x0}, {back}]",
                "and v16.16b, v16.16b, {mask:v}.16b",
                "ldr q20, [{x1}, {back}]",
                "and v20.16b, v20.16b, {mask:v}.16b",
                "ldr q24, [{w0}, {back}]",
                $step!("{a00:v}", "v24", "v16", "v28"),
                $step!("{a01:v}", "v24", "v20", "v29"),
                "ldr q24, [{w1}, {back}]",
                $step!("{a10:v}", "v24", "v16", "v28"),
                $step!("{a11:v}", "v24", "v20", "v29"),
                "ldr q24, [{w2}, {back}]",
                $step!("{a20:v}", "v24", "v16", "v28"),
                $step!("{a21:v}", "v24", "v20", "v29"),
                "ldr q24, [{w3}, {back}]",
                $step!("{a30:v}", "v24", "v16", "v28"),
                $step!("{a31:v}", "v24", "v20", "v29"),
                "ldr q24, [{w4}, {back}]",
                $step!("{a40:v}", "v24", "v16", "v28"),
                $step!("{a41:v}", "v24", "v20", "v29"),
                "ldr q24, [{w5}, {back}]",
                $step!("{a50:v}", "v24", "v16", "v28"),
                $step!("{a51:v}", "v24", "v20", "v29"),
                "ldr q24, [{w6}, {back}]",
                $step!("{a60:v}", "v24", "v16", "v28"),
                $step!("{a61:v}", "v24", "v20", "v29"),
                "ldr q24, [{w7}, {back}]",
                $step!("{a70:v}", "v24", "v16", "v28"),
                $step!("{a71:v}", "v24", "v20", "v29"),
                "7:",
                x0 = inout(reg) x[0] => _,
                x1 = inout(reg) x[1] => _,
                w0 = inout(reg) w[0] => _,
                w1 = inout(reg) w[1] => _,
                w2 = inout(reg) w[2] => _,
                w3 = inout(reg) w[3] => _,
                w4 = inout(reg) w[4] => _,
                w5 = inout(reg) w[5] => _,
                w6 = inout(reg) w[6] => _,
                w7 = inout(reg) w[7] => _,
                n = inout(reg) n => _,
                m = inout(reg) m => _,
                back = inout(reg) back => _,
                mask = in(vreg) tail_mask,
                a00 = inout(vreg) a00, a01 = inout(vreg) a01,
                a10 = inout(vreg) a10, a11 = inout(vreg) a11,
                a20 = inout(vreg) a20, a21 = inout(vreg) a21,
                a30 = inout(vreg) a30, a31 = inout(vreg) a31,
                a40 = inout(vreg) a40, a41 = inout(vreg) a41,
                a50 = inout(vreg) a50, a51 = inout(vreg) a51,
                a60 = inout(vreg) a60, a61 = inout(vreg) a61,
                a70 = inout(vreg) a70, a71 = inout(vreg) a71,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _,
                options(nostack, readonly),
            );
            *acc = [[a00, a01], [a10, a11], [a20, a21], [a30, a31], [a40, a41], [a50, a51], [a60, a61], [a70, a71]];
        }
    };
}
pub(super) use wide_loops;

/// True when the vector driver may run: `cols >= 16`, and the slices hold the whole batch
/// ([`DenseI8::samples`] gives all of it). Anything else goes to the scalar reference, which
/// keeps the kernel contract for short slices too.
pub(super) fn fits(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &[i8]) -> bool {
    p.cols >= 16 && batch > 0 && p.samples(x, batch, out) == batch
}

/// int8 Dense over the batch with `D` as the inner product.
///
/// # Safety
/// The CPU must support NEON and `D`'s instructions, and [`fits`]`(p, x, batch, out)` must hold:
/// every pointer below is derived from those checked lengths.
#[target_feature(enable = "neon")]
pub(super) unsafe fn dense_i8_tiled<D: DotStep>(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let (rows, cols) = (p.rows, p.cols);
    let tail_mask = tail_mask(cols);
    if batch == 1 {
        single_sample_tiles::<D>(p, x, out, tail_mask);
    } else {
        batch_tiles::<D>(p, x, batch, out, tail_mask);
    }
    let mut o = rows / 4 * 4;
    // The last rows % 4 channels, one at a time, with the scalar epilogue.
    while o < rows {
        let (bias, m, s) = (le_i32(p.bias, o), le_i32(p.multipliers, o), le_i32(p.shifts, o));
        let row = (p.weights.as_ptr() as *const i8).add(o * cols);
        let mut b = 0;
        while b < batch {
            let emitted = if batch - b >= 4 { 4 } else { 1 };
            let mut sums = [0i32; 4];
            if emitted == 4 {
                let acc = dot_tile::<D, 1, 4>(row, cols, x.as_ptr().add(b * cols), tail_mask);
                for (sum, lanes) in sums.iter_mut().zip(acc[0]) {
                    *sum = vaddvq_s32(lanes);
                }
            } else {
                sums[0] = vaddvq_s32(dot_tile::<D, 1, 1>(row, cols, x.as_ptr().add(b * cols), tail_mask)[0][0]);
            }
            for (s_off, &sum) in sums.iter().enumerate().take(emitted) {
                let q = requantize(sum.wrapping_add(bias), m, s, p.out_zero_point, p.act_min, p.act_max);
                if let Some(y) = out.get_mut((b + s_off) * rows + o) {
                    *y = q;
                }
            }
            b += emitted;
        }
        o += 1;
    }
}

/// The 4-row tiles of one sample. Apart from [`batch_tiles`] so that LLVM allocates its
/// registers alone: the 4 x 4 loop takes 30 vector registers, and sharing a function with it
/// made every row tile spill and reload its requantization parameters (about 60 instructions
/// per 4 channels, a fifth of a 400-column tile).
///
/// # Safety
/// As [`dense_i8_tiled`], with `batch == 1`.
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn single_sample_tiles<D: DotStep>(p: &DenseI8<'_>, x: &[i8], out: &mut [i8], tail_mask: int8x16_t) {
    let (rows, cols) = (p.rows, p.cols);
    let x = x.as_ptr();
    let mut o = 0;
    while o + 4 <= rows {
        let tile = RowTile::new(p, o, tail_mask);
        let w: [*const i8; 4] = core::array::from_fn(|r| tile.weights.add(r * cols));
        let mut acc = [vdupq_n_s32(0); 4];
        if cols >= 64 {
            D::wide_4x1(&mut acc, &w, x, cols / 64);
        }
        // The rest as in `dot_tile`: whole 16-column steps, then the masked last 16 bytes.
        let mut k = cols / 64 * 64;
        while k + 16 <= cols {
            let xv = vld1q_s8(x.add(k));
            for (a, &row) in acc.iter_mut().zip(&w) {
                *a = D::step(*a, vld1q_s8(row.add(k)), xv);
            }
            k += 16;
        }
        if k < cols {
            let xv = vandq_s8(vld1q_s8(x.add(cols - 16)), tail_mask);
            for (a, &row) in acc.iter_mut().zip(&w) {
                *a = D::step(*a, vld1q_s8(row.add(cols - 16)), xv);
            }
        }
        tile.finish(acc, o, out);
        o += 4;
    }
}

/// The 4-row tiles of a batch of two or more, each row tile over the whole batch (4 samples
/// at a time, then 2 or 1) while its weights stay in L1.
///
/// # Safety
/// As [`dense_i8_tiled`].
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn batch_tiles<D: DotStep>(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8], tail_mask: int8x16_t) {
    let mut o = 0;
    while o + 8 <= p.rows {
        let tiles = [RowTile::new(p, o, tail_mask), RowTile::new(p, o + 4, tail_mask)];
        let paired = tiles[0].quant.is_vector_exact() && tiles[1].quant.is_vector_exact();
        let mut b = 0;
        while b + 2 <= batch {
            let acc = dot_tile::<D, 8, 2>(tiles[0].weights, p.cols, x.as_ptr().add(b * p.cols), tail_mask);
            let at = b * p.rows + o;
            if paired {
                // The sixteen codes requantized and narrowed together: four-code `finish`es
                // cost about 13 instructions a code here (constants reloaded for each, four
                // narrowings and stores), a third of the batch-64 decode's non-MAC work.
                let sums = |s: usize, r: usize| {
                    let lanes = [acc[r][s], acc[r + 1][s], acc[r + 2][s], acc[r + 3][s]];
                    vaddq_s32(row_totals(lanes), tiles[r / 4].bias)
                };
                let codes =
                    tiles[0].quant.apply_pair(&tiles[1].quant, [sums(0, 0), sums(0, 4), sums(1, 0), sums(1, 4)]);
                // SAFETY: channels `o..o + 8 <= rows` of samples `b` and `b + 1 < batch`:
                // [`fits`] checked `batch * rows` bytes of `out`.
                vst1_s8(out.as_mut_ptr().add(at), vget_low_s8(codes));
                vst1_s8(out.as_mut_ptr().add(at + p.rows), vget_high_s8(codes));
            } else {
                // `acc` is row-major; this walks its sample columns.
                #[allow(clippy::needless_range_loop)]
                for s in 0..2 {
                    let at = at + s * p.rows;
                    tiles[0].finish([acc[0][s], acc[1][s], acc[2][s], acc[3][s]], at, out);
                    tiles[1].finish([acc[4][s], acc[5][s], acc[6][s], acc[7][s]], at + 4, out);
                }
            }
            b += 2;
        }
        if b < batch {
            tiles[0].emit::<D, 1>(x, b, p.rows, o, out);
            tiles[1].emit::<D, 1>(x, b, p.rows, o + 4, out);
        }
        o += 8;
    }
    while o + 4 <= p.rows {
        let tile = RowTile::new(p, o, tail_mask);
        let mut b = 0;
        while b < batch {
            b += match batch - b {
                4.. => tile.emit::<D, 4>(x, b, p.rows, o, out),
                2 | 3 => tile.emit::<D, 2>(x, b, p.rows, o, out),
                _ => tile.emit::<D, 1>(x, b, p.rows, o, out),
            };
        }
        o += 4;
    }
}

/// Four consecutive output channels and what they share across the batch.
struct RowTile {
    /// First weight of the tile's first row.
    weights: *const i8,
    cols: usize,
    tail_mask: int8x16_t,
    bias: int32x4_t,
    quant: ChannelQuant4,
}

impl RowTile {
    /// Channels `o..o + 4`.
    ///
    /// # Safety
    /// As [`dense_i8_tiled`], with `o + 4 <= rows`.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn new(p: &DenseI8<'_>, o: usize, tail_mask: int8x16_t) -> Self {
        RowTile {
            weights: (p.weights.as_ptr() as *const i8).add(o * p.cols),
            cols: p.cols,
            tail_mask,
            bias: load_channels(p.bias, o),
            quant: ChannelQuant4::new(
                load_channels(p.multipliers, o),
                load_channels(p.shifts, o),
                p.out_zero_point,
                p.act_min,
                p.act_max,
            ),
        }
    }

    /// Computes the tile's 4 channels for samples `b..b + S` and stores them; returns `S`.
    ///
    /// # Safety
    /// As [`dense_i8_tiled`], with `b + S <= batch` and `o + 4 <= rows`.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn emit<D: DotStep, const S: usize>(
        &self,
        x: &[i8],
        b: usize,
        rows: usize,
        o: usize,
        out: &mut [i8],
    ) -> usize {
        let acc = dot_tile::<D, 4, S>(self.weights, self.cols, x.as_ptr().add(b * self.cols), self.tail_mask);
        // `acc` is row-major; this walks its sample columns.
        #[allow(clippy::needless_range_loop)]
        for s in 0..S {
            self.finish([acc[0][s], acc[1][s], acc[2][s], acc[3][s]], (b + s) * rows + o, out);
        }
        S
    }

    /// Sums each row's lanes, adds the bias, requantizes and stores the 4 codes at `out[at..]`.
    ///
    /// # Safety
    /// NEON; `at + 4 <= out.len()` (every caller stores channels `o..o + 4 <= rows` of a sample
    /// below `batch`, and [`fits`] checked `batch * rows` bytes).
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn finish(&self, row_lanes: [int32x4_t; 4], at: usize, out: &mut [i8]) {
        let sums = row_totals(row_lanes);
        let codes = self.quant.apply(vaddq_s32(sums, self.bias));
        // One unchecked store: a range check here cost 6 of the epilogue's ~30 instructions
        // per 4 codes. SAFETY: the caller guarantees the 4 bytes; no alignment is needed.
        out.as_mut_ptr().add(at).cast::<u32>().write_unaligned(codes.to_le());
    }
}

/// Lane r of the result is the sum of the lanes of `rows[r]`: three `addp`. (From
/// `vpaddq_s32` LLVM rewrote the outer pairwise add into `uzp1`, `uzp2` and `add`.)
///
/// # Safety
/// NEON.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn row_totals(rows: [int32x4_t; 4]) -> int32x4_t {
    let [r0, r1, r2, r3] = rows;
    let totals;
    // SAFETY: register-only arithmetic on NEON, which the caller guarantees.
    core::arch::asm!(
        "addp {r0:v}.4s, {r0:v}.4s, {r1:v}.4s",
        "addp {r2:v}.4s, {r2:v}.4s, {r3:v}.4s",
        "addp {t:v}.4s, {r0:v}.4s, {r2:v}.4s",
        r0 = inout(vreg) r0 => _,
        r1 = in(vreg) r1,
        r2 = inout(vreg) r2 => _,
        r3 = in(vreg) r3,
        t = lateout(vreg) totals,
        options(pure, nomem, nostack, preserves_flags),
    );
    totals
}

/// Partial dot products of `R` weight rows (starting at `w`, `cols` apart) with `S` samples
/// (starting at `x`, `cols` apart), each as four int32 lanes still to be summed.
///
/// # Safety
/// The CPU must support NEON and `D`'s instructions; `cols >= 16`; `R` rows of `cols` bytes
/// from `w` and `S` rows of `cols` bytes from `x` must be readable.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_tile<D: DotStep, const R: usize, const S: usize>(
    w: *const i8,
    cols: usize,
    x: *const i8,
    tail_mask: int8x16_t,
) -> [[int32x4_t; S]; R] {
    let mut acc = [[vdupq_n_s32(0); S]; R];
    // One base per row and sample, all indexed by the same column.
    let w_rows: [*const i8; R] = core::array::from_fn(|r| w.add(r * cols));
    let x_rows: [*const i8; S] = core::array::from_fn(|s| x.add(s * cols));
    let keep_all = vdupq_n_s8(-1);
    let mut k = 0;
    // The assembly loops take the columns they can (the indexing closures see R == 4 and the
    // right S, so after inlining they are plain register moves).
    if R == 4 && S == 1 && cols >= 64 {
        let mut a: [int32x4_t; 4] = core::array::from_fn(|r| acc[r][0]);
        D::wide_4x1(&mut a, &core::array::from_fn(|r| w_rows[r]), x_rows[0], cols / 64);
        for (acc_r, a) in acc.iter_mut().zip(a) {
            acc_r[0] = a;
        }
        k = cols / 64 * 64;
    } else if R == 4 && S == 4 && cols >= 32 {
        let mut a: [[int32x4_t; 4]; 4] = core::array::from_fn(|r| core::array::from_fn(|s| acc[r][s]));
        let (w4, x4) = (core::array::from_fn(|r| w_rows[r]), core::array::from_fn(|s| x_rows[s]));
        D::wide_4x4(&mut a, &w4, &x4, cols / 32);
        for (acc_r, a_r) in acc.iter_mut().zip(a) {
            for (acc, a) in acc_r.iter_mut().zip(a_r) {
                *acc = a;
            }
        }
        k = cols / 32 * 32;
    } else if R == 8 && S == 2 {
        let mut a: [[int32x4_t; 2]; 8] = core::array::from_fn(|r| core::array::from_fn(|s| acc[r][s]));
        let (w8, x2) = (core::array::from_fn(|r| w_rows[r]), core::array::from_fn(|s| x_rows[s]));
        let back = (16 - cols % 16) % 16;
        D::wide_8x2(&mut a, &w8, &x2, (cols / 64, cols % 64 / 16), back, tail_mask);
        for (acc_r, a_r) in acc.iter_mut().zip(a) {
            for (acc, a) in acc_r.iter_mut().zip(a_r) {
                *acc = a;
            }
        }
        k = cols;
    }
    // Every step reads bytes k..k+16 of each row with k + 16 <= cols.
    if S == 1 {
        // A single sample has few instructions per step, so the loop's own three weigh more:
        // two steps per iteration.
        while k + 32 <= cols {
            accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k, keep_all);
            accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k + 16, keep_all);
            k += 32;
        }
    }
    while k + 16 <= cols {
        accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, k, keep_all);
        k += 16;
    }
    if k < cols {
        // The row's last 16 bytes (cols >= 16, so they start inside the row); the lanes before
        // k were counted above, and zeroing their inputs drops them.
        accumulate::<D, R, S>(&mut acc, &w_rows, &x_rows, cols - 16, tail_mask);
    }
    acc
}

/// Adds columns `k..k + 16` (inputs masked by `x_mask`) of every row and sample into `acc`.
///
/// # Safety
/// NEON and `D`'s instructions; bytes `k..k + 16` readable from every row and sample base.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn accumulate<D: DotStep, const R: usize, const S: usize>(
    acc: &mut [[int32x4_t; S]; R],
    w_rows: &[*const i8; R],
    x_rows: &[*const i8; S],
    k: usize,
    x_mask: int8x16_t,
) {
    let mut xv = [vdupq_n_s8(0); S];
    for (v, &x_row) in xv.iter_mut().zip(x_rows) {
        *v = vandq_s8(vld1q_s8(x_row.add(k)), x_mask);
    }
    for (acc_r, &w_row) in acc.iter_mut().zip(w_rows) {
        let wv = vld1q_s8(w_row.add(k));
        for (a, &xs) in acc_r.iter_mut().zip(&xv) {
            *a = D::step(*a, wv, xs);
        }
    }
}

/// The little-endian int32 values of channels `o..o + 4` from a per-channel byte array.
///
/// # Safety
/// NEON; `bytes.len() >= 4 * (o + 4)` ([`fits`] checks `4 * rows` bytes).
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn load_channels(bytes: &[u8], o: usize) -> int32x4_t {
    // A byte load has no alignment requirement (blob arrays are only 16-aligned as a whole).
    vreinterpretq_s32_u8(vld1q_u8(bytes.as_ptr().add(4 * o)))
}

/// All-ones in the last `cols % 16` lanes: the lanes of the final overlapping load that the
/// full 16-column steps haven't counted.
///
/// # Safety
/// The CPU must support NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn tail_mask(cols: usize) -> int8x16_t {
    const LANE: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    let first_new_lane = (16 - cols % 16) as u8;
    // LANE is a 16-byte constant: the load reads exactly it.
    vreinterpretq_s8_u8(vcgeq_u8(vld1q_u8(LANE.as_ptr()), vdupq_n_u8(first_new_lane)))
}
