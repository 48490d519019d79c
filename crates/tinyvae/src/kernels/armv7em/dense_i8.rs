//! int8 Dense for ARMv7E-M (Cortex-M4/M7) with the DSP extension; gives the bytes of
//! [`crate::kernels::reference::dense_i8`] exactly.
//!
//! # Where the instructions go
//! `SMLAD` multiplies two int16 pairs and adds both products to an int32 accumulator. `SXTB16`
//! sign-extends bytes 0 and 2 of a word into such a pair, and with `ROR #8` bytes 1 and 3. So four
//! int8 weights cost two `SXTB16` and two `SMLAD` plus a share of a load. The input is
//! sign-extended once per sample into a scratch laid out in the order `SXTB16` splits a weight
//! word: `(x0,x2) (x1,x3) (x4,x6) (x5,x7)` for each 8-column block. The inner loop therefore
//! never shuffles. Two rows share each input block, which one `LDM` of four words loads. Each row
//! loads its 8 weights with one `LDRD`:
//!
//! ```text
//! per 8 columns x 2 rows: 1 LDM + 2 LDRD + 8 SXTB16 + 8 SMLAD = 19 instructions / 16 MACs
//! per loop iteration (8 blocks): 8 x 19 + CMP + BNE          = 154 instructions / 128 MACs
//! ```
//!
//! That is 1.20 instructions per MAC in the loop. Two `SXTB16` per weight word are the floor
//! here: `SMLAD` only takes halfwords, and the raw bytes of a word carry the low byte's sign into
//! the high one.
//!
//! # One asm block for the whole row loop
//! The dot-product loop needs 12 registers: 4 for the input (fixed to r0-r3 by `LDM`), 3 weight
//! temporaries, 2 accumulators and 3 pointers. That is every general register inline asm gets
//! (sp, pc, the frame pointer r7 and LLVM's base pointer r6 are out). With the loop alone in
//! asm, the compiler had to spill and reload all of its own state around it, about 100
//! instructions per row pair. So [`run`] is the whole loop over row pairs: bias, dot products,
//! requantization, clamp and store. Its state lives in a small frame on its own stack and comes
//! back with one `LDM` or `LDRD` per group of values; each pair costs about 50 instructions
//! besides its dot products.
//!
//! # A loop without a counter, entered in the middle
//! No register is left for a trip count, so the scratch ends the loop: after the last block
//! comes a block whose first word is [`STOP`], the halfword pair (-32768, -32768) that
//! sign-extended int8 never produces. A row of `n` blocks starts with `n % 8` of them, so the
//! loop is entered that many blocks before the end of its body (a jump through `ADD PC`, Duff's
//! device) and every later pass is whole. Short rows (the 20 columns of a z20 decoder's first
//! layer) thus pay no remainder loop: two instructions to enter, two to leave.
//!
//! # Requantization
//! The epilogue is [`crate::quant::requantize`] folded into one 64-bit multiply-accumulate, six
//! instructions a row (derivation at [`run`]), then the zero point (`QADD`), and the clamp for
//! both rows of a pair at once on bytes (`SSAT`, `SSUB8`/`SEL`), and one `STRH`. A pair whose
//! parameters no valid blob holds (shift >= 0 or below -31, negative multiplier) leaves the asm,
//! is finished by the reference function, and the asm resumes after it. So every input gives
//! the reference's bytes.
//!
//! # Misaligned rows
//! `LDRD` and `LDM` fault on unaligned addresses. Rows are word-aligned when the weights are and
//! `cols % 4 == 0`, and the blob aligns tensors to 16 bytes. For other rows a second body loads
//! each weight word with `LDR`, which ARMv7-M allows unaligned, as the compiler itself assumes.
//! It is not unrolled (one block per pass, 1.44 instructions per MAC): it only runs for odd
//! shapes, so it is kept small.
//!
//! # Tails and long inputs
//! The scratch is zero-padded to whole blocks, so a row may run into the next row's weights,
//! which are multiplied by zero. Rows whose padded reads would leave the weight slice (the last
//! one at most, unless `cols < 8`) are computed by plain scalar code. An odd last row runs
//! paired with the row before it, whose byte is then written twice, the same both times. The
//! scratch holds [`CHUNK`] columns (1 KiB of stack). Longer inputs are walked in chunks, each
//! prepared once per tile of [`TILE`] rows, whose partial sums wait on the stack between chunks
//! (the same asm, storing instead of requantizing; an odd last row is left to scalar code there,
//! as a pair run twice would count it twice).
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use crate::format::WeightLayout;
use crate::kernels::{reference, DenseI8};
use crate::quant::requantize;

/// Columns per block: one `LDRD` of weights per row, one `LDM` of prepared input.
const BLOCK: usize = 8;
/// Blocks per pass of the aligned body; the asm has this many copies of the block.
const UNROLL: usize = 8;
/// Bytes of one aligned block's code: 19 instructions, all 32-bit.
const BLOCK_CODE: usize = 76;
/// Bytes of one misaligned block's code: 21 instructions, all 32-bit.
const BLOCK_CODE_MISALIGNED: usize = 84;
/// Where the aligned body starts, from the misaligned one (a single block): its block,
/// `CMP.W`, `BNE.W` and `LDR.W PC` (the asm checks the sizes).
const ALIGNED_BODY: usize = BLOCK_CODE_MISALIGNED + 12;
/// From `MOV r0, PC`'s value to the requantizing epilogue, plus the Thumb bit (asm-checked).
const TO_REQUANT: usize = 757;
/// From the requantizing epilogue to the partial-sum one (asm-checked).
const TO_PARTIAL: usize = 152;
/// Blocks the scratch holds: a z20 decoder's 400-column layer in one chunk, on 1 KiB of stack.
const CHUNK_BLOCKS: usize = 64;
/// Input columns prepared at once.
const CHUNK: usize = CHUNK_BLOCKS * BLOCK;
/// Rows whose partial sums are kept while an input longer than [`CHUNK`] is walked.
const TILE: usize = 64;
/// First word of the block that ends the loop; see the module docs.
const STOP: u32 = 0x8000_8000;

/// The prepared input of one chunk: four words per block, then the stop block.
#[repr(C, align(8))]
struct Scratch([MaybeUninit<u32>; 4 * (CHUNK_BLOCKS + 1)]);

impl Scratch {
    fn new() -> Self {
        // Left uninitialised: `fill` writes every word the asm reads, and zeroing 1 KiB per
        // call would cost as much as a small layer's whole epilogue.
        Scratch([const { MaybeUninit::uninit() }; 4 * (CHUNK_BLOCKS + 1)])
    }

    /// Lays out `xs` (at most [`CHUNK`] columns, zero-padded to whole blocks) and the stop
    /// block; returns the number of blocks.
    #[inline(never)]
    fn fill(&mut self, xs: &[i8]) -> usize {
        // Each slot written through one destructuring pattern: the firmware builds the runtime
        // for size, where a zip over the slot's words took 4,358 instructions a z20 decode
        // instead of 953 at opt-level 3.
        let mut slots = self.0.chunks_exact_mut(4);
        let mut put = |block: [u32; 4]| {
            if let Some([a, b, c, d]) = slots.next() {
                a.write(block[0]);
                b.write(block[1]);
                c.write(block[2]);
                d.write(block[3]);
            }
        };
        let mut full = xs.chunks_exact(BLOCK);
        for c in &mut full {
            put(prepare_block([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        let tail = full.remainder();
        if !tail.is_empty() {
            let mut t = [0i8; BLOCK];
            for (d, &v) in t.iter_mut().zip(tail) {
                *d = v;
            }
            put(prepare_block(t));
        }
        put([STOP; 4]);
        xs.len().div_ceil(BLOCK)
    }
}

/// The four words of one input block, in the order `SXTB16` splits a weight word.
#[inline(always)]
fn prepare_block(x: [i8; BLOCK]) -> [u32; 4] {
    let lo = u32::from_le_bytes([x[0] as u8, x[1] as u8, x[2] as u8, x[3] as u8]);
    let hi = u32::from_le_bytes([x[4] as u8, x[5] as u8, x[6] as u8, x[7] as u8]);
    [sxtb16::<0>(lo), sxtb16::<8>(lo), sxtb16::<0>(hi), sxtb16::<8>(hi)]
}

/// Bytes 0 and 2 (`ROR == 0`) or 1 and 3 (`ROR == 8`) of `w`, sign-extended into halfwords.
#[inline(always)]
fn sxtb16<const ROR: u32>(w: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; no memory, stack or flags touched.
    unsafe {
        if ROR == 0 {
            asm!("sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w,
                 options(pure, nomem, nostack, preserves_flags));
        } else {
            asm!("sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w,
                 options(pure, nomem, nostack, preserves_flags));
        }
    }
    r
}

/// One row's share of a block: weights in r4/r5, input in r0..r3, r12 as the temporary.
#[rustfmt::skip]
macro_rules! row {
    ($acc:literal) => {
        concat!(
            "sxtb16 r12, r4\n",
            "smlad ", $acc, ", r12, r0, ", $acc, "\n",
            "sxtb16 r4, r4, ror #8\n",
            "smlad ", $acc, ", r4, r1, ", $acc, "\n",
            "sxtb16 r12, r5\n",
            "smlad ", $acc, ", r12, r2, ", $acc, "\n",
            "sxtb16 r5, r5, ror #8\n",
            "smlad ", $acc, ", r5, r3, ", $acc, "\n",
        )
    };
}

/// One block for both rows (r8 from the weights at r10, r9 from r11), given how each row loads
/// its 8 weights into r4/r5, ending with the next block's input loaded from lr. `.w` keeps
/// every instruction 32-bit, so that blocks have the fixed size the entry jump assumes.
macro_rules! block {
    ($load_a:literal, $load_b:literal) => {
        concat!($load_a, "\n", row!("r8"), $load_b, "\n", row!("r9"), "ldm.w lr!, {{r0, r1, r2, r3}}\n")
    };
}

/// Aligned block: 8 weights of each row with one `LDRD`.
macro_rules! block_aligned {
    () => {
        block!("ldrd r4, r5, [r10], #8", "ldrd r4, r5, [r11], #8")
    };
}

/// Misaligned block: two `LDR`s per row, which ARMv7-M allows at any address.
macro_rules! block_misaligned {
    () => {
        block!("ldr.w r4, [r10], #4\nldr.w r5, [r10], #4", "ldr.w r4, [r11], #4\nldr.w r5, [r11], #4")
    };
}

/// What [`run`] needs for a run of row pairs over one prepared chunk. The asm copies it to its
/// own frame; the field order is the frame's, grouped for `LDM`.
#[repr(C)]
struct Pass {
    /// Entry jump into the bodies, in bytes (see [`entry_offset`]).
    off: usize,
    /// Second row of a pair, from the first, in bytes: `cols`.
    pair_gap: usize,
    /// Start values of the accumulators, an i32 (little-endian, any alignment) per row: the bias,
    /// or partial sums.
    init: *const u8,
    /// The prepared chunk.
    x: *const u32,
    /// Multipliers of the rows, i32 (little-endian, any alignment).
    mult: *const u8,
    /// Shifts of the rows, i32 (little-endian, any alignment).
    shift: *const u8,
    /// Output zero point.
    zero_point: i32,
    /// `act_min` in every byte.
    mins: u32,
    /// `act_max` in every byte.
    maxs: u32,
    /// Where the first pair's results go: two bytes, or with `partial` two aligned i32.
    out: *mut u8,
    /// `out` after the last pair.
    out_end: *mut u8,
    /// From the first row's weights after a dot product to the next pair's first row.
    step: usize,
    /// Store the accumulators instead of requantizing (chunks before an input's last).
    partial: usize,
    /// The first pair's first row's weights at the chunk's first column.
    weights: *const u8,
}

/// How [`run`] stopped.
struct Stop {
    /// Where the pair that stopped it would have written, or null when all pairs are done.
    out: *mut u8,
    /// That pair's accumulators.
    acc: [i32; 2],
}

/// Runs the row pairs of `p`: for each, the accumulators start from two `init` values, take the
/// dot products of the two rows with the prepared chunk, and are requantized into two output
/// bytes, or stored as two i32 with `partial`. It stops early at a pair whose requantization
/// parameters the fast path does not cover.
///
/// # Requantization
/// The reference rounds twice: `y = floor((acc * m + 2^30) / 2^31)`, then `y / 2^e` (`e =
/// -shift`, 1..=31 here) to nearest with ties away from zero, which is
/// `floor((y + 2^(e-1) - [y < 0]) / 2^e)`.
/// - With `m >= 0`, `[acc < 0]` can stand for `[y < 0]`: they differ only when `y == 0`, where
///   both give 0 (`2^(e-1) - 1 < 2^e`).
/// - So with `W = y - [acc < 0] = floor(Z / 2^31)`, `Z = acc * m + 2^30 - 2^31 [acc < 0]`, the
///   result is `floor((W + 2^(e-1)) / 2^e) = (W >> e) + bit (e-1) of W`: no addition that
///   could overflow.
/// - `W >> e` is the high word of `Z` shifted by `e - 1`, and bit `e - 1` of `W` is bit `30 + e`
///   of `Z`: the carry out of that shift, or for `e == 1` (a shift by 0 keeps the carry) bit 31
///   of the low word, which `LSLS #1` puts in the carry first.
/// - `Z` starts as `2^30 - 2^31 [acc < 0]`: high word `s = acc >> 31`, low word
///   `2^30 ^ (s << 31)`. `SMLAL` adds the product.
///
/// Then `QADD` adds the zero point saturating as the reference's `saturating_add` does, `SSAT`
/// brings both values into int8 (so the bytes compare as the i32 would), and byte-wise
/// `SSUB8`/`SEL` apply `act_min` then `act_max`, the reference's clamp when
/// `act_min <= act_max` (checked by the caller).
///
/// # Safety
/// `p.x` holds a chunk `fill`ed with `b` blocks, and `p.off` is `entry_offset(b, aligned)`.
/// For each of the `n = (out_end - out) / (2 or 8)` pairs (`n >= 1`), pair `i`'s first row is
/// at `weights + i * (2 * cols)`, where `step = 2 * cols - 8 * b`, and both rows (the second
/// `pair_gap` further) may read `8 * b` bytes; with `aligned` both are word-aligned. `init`,
/// `mult` and `shift` hold `2 * n` i32; `out` may be written `2 * n` bytes, or with `partial`
/// is word-aligned and may be written `2 * n` i32.
#[inline(never)]
unsafe fn run(p: &Pass) -> Stop {
    let (out, a, b): (*mut u8, i32, i32);
    // SAFETY: see the function's contract. The asm reserves a 56-byte frame below the stack
    // pointer (the compiler leaves the stack aligned and usable, as `nostack` is not given) and
    // frees it on every exit. It reads `p` (14 words), the scratch up to its stop block (which
    // ends every loop, as the entry offset makes each loop's test fall after all `b` blocks and
    // then every 8 or 1), the row weights and the init, mult and shift arrays within the
    // contract's bounds, and writes only `out` within them. `ADD PC` and `LDR PC` jump only to
    // labels inside the asm (the offset is below the body's size; `LDR PC` loads an address
    // made from `MOV r0, PC` and an assembler-checked distance, with the Thumb bit set). Unaligned `LDR` (init, mult, shift) and `STRH`
    // (out) are allowed on ARMv7-M. Every register it writes is declared, as are the flags.
    unsafe {
        asm!(
            // The frame: `p` copied to sp (words 0-13), word 12 turned into the epilogue's
            // address. Not with `ADR`: LLVM resolves it as if the function started word-aligned,
            // which it need not (it was off by 2 in the LTO firmware build); `MOV r0, PC` reads
            // its own address plus 4 wherever it lies.
            "sub sp, sp, #56",
            "ldm r12!, {{r0, r1, r2, r3, r4, r5, r8}}",
            "stm sp, {{r0, r1, r2, r3, r4, r5, r8}}",
            "ldm r12, {{r0, r1, r2, r3, r4, r5, r10}}",
            "add r8, sp, #28",
            "stm r8, {{r0, r1, r2, r3, r4}}",
            "24:",
            "mov r0, pc",
            "addw r0, r0, #{to_requant}",
            "cmp r5, #0",
            "it ne",
            "addwne r0, r0, #{to_partial}",
            "str r0, [sp, #48]",
            // A pair: accumulators from init, second row's pointer, first input block, and
            // into the body.
            "2:",
            "ldm sp, {{r4, r5, r12, lr}}",
            "ldr r8, [r12], #4",
            "ldr r9, [r12], #4",
            "str r12, [sp, #8]",
            "add r11, r10, r5",
            "ldm.w lr!, {{r0, r1, r2, r3}}",
            "3:",
            "add pc, r4",
            "nop",
            "4:",
            block_misaligned!(),
            "cmp.w r0, #0x80008000",
            "bne.w 4b",
            "ldr.w pc, [sp, #48]",
            "5:",
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            block_aligned!(),
            "23:",
            "cmp.w r0, #0x80008000",
            "bne.w 5b",
            "ldr.w pc, [sp, #48]",
            // Requantize: multipliers r2/r3, e - 1 = !shift in r4/r5, both checked.
            "6:",
            "ldrd r0, r1, [sp, #16]",
            "ldr r2, [r0], #4",
            "ldr r3, [r0], #4",
            "ldr r4, [r1], #4",
            "ldr r5, [r1], #4",
            "strd r0, r1, [sp, #16]",
            "mvn r4, r4",
            "mvn r5, r5",
            "cmp r4, #31",
            "ittt lo",
            "cmplo r5, #31",
            "cmplo r2, #0x80000000",
            "cmplo r3, #0x80000000",
            "bhs.w 8f",
            "mov lr, #0x40000000",
            "asr r0, r8, #31",
            "eor r1, lr, r0, lsl #31",
            "smlal r1, r0, r8, r2",
            "lsls r1, r1, #1",
            "asrs r0, r0, r4",
            "adc r8, r0, #0",
            "asr r0, r9, #31",
            "eor r1, lr, r0, lsl #31",
            "smlal r1, r0, r9, r3",
            "lsls r1, r1, #1",
            "asrs r0, r0, r5",
            "adc r9, r0, #0",
            // Zero point, clamp, store; r0-r5 = words 6-11.
            "add r0, sp, #24",
            "ldm r0, {{r0, r1, r2, r3, r4, r5}}",
            "qadd r8, r8, r0",
            "qadd r9, r9, r0",
            "ssat r8, #8, r8",
            "ssat r9, #8, r9",
            "bfi r8, r9, #8, #8",
            "ssub8 r0, r8, r1",
            "sel r8, r8, r1",
            "ssub8 r0, r2, r8",
            "sel r8, r8, r2",
            "strh r8, [r3], #2",
            "str r3, [sp, #36]",
            "add r10, r10, r5",
            "cmp r3, r4",
            "bne.w 2b",
            "b.w 22f",
            // Partial sums: store both accumulators.
            "7:",
            "ldr r3, [sp, #36]",
            "strd r8, r9, [r3], #8",
            "str r3, [sp, #36]",
            "ldrd r4, r5, [sp, #40]",
            "add r10, r10, r5",
            "cmp r3, r4",
            "bne.w 2b",
            "b.w 22f",
            // A pair for the reference: its output address and raw accumulators go back.
            "8:",
            "ldr r3, [sp, #36]",
            "b 9f",
            "22:",
            "movs r3, #0",
            "9:",
            "add sp, sp, #56",
            // The sizes the entry offsets rely on.
            ".if (4b - 3b) != 4",
            ".error \"dot product entry: ADD PC and NOP must take 4 bytes\"",
            ".endif",
            ".if (5b - 4b) != 96",
            ".error \"misaligned body: unexpected size\"",
            ".endif",
            ".if (23b - 5b) != 608",
            ".error \"aligned body: unexpected size\"",
            ".endif",
            ".if (6b - 24b - 4 + 1) != {to_requant}",
            ".error \"requantizing epilogue: unexpected distance\"",
            ".endif",
            ".if (7b - 6b) != {to_partial}",
            ".error \"partial-sum epilogue: unexpected distance\"",
            ".endif",
            to_requant = const TO_REQUANT,
            to_partial = const TO_PARTIAL,
            inout("r12") p as *const Pass => _,
            out("r0") _, out("r1") _, out("r2") _, lateout("r3") out, out("r4") _, out("r5") _,
            lateout("r8") a, lateout("r9") b, out("r10") _, out("r11") _, out("lr") _,
        );
    }
    Stop { out, acc: [a, b] }
}

/// The entry jump for a chunk of `blocks` blocks: the aligned body is entered `blocks % 8`
/// blocks before its end (see the module docs), the one-block misaligned body at its start.
fn entry_offset(blocks: usize, aligned: bool) -> usize {
    if aligned {
        ALIGNED_BODY + (UNROLL - blocks % UNROLL) % UNROLL * BLOCK_CODE
    } else {
        0
    }
}

/// Little-endian i32 number `i` of `bytes` (0 past the end, which checked lengths rule out).
#[inline(always)]
fn le(bytes: &[u8], i: usize) -> i32 {
    bytes.get(4 * i..).and_then(|s| s.first_chunk()).map_or(0, |&b| i32::from_le_bytes(b))
}

/// The reference epilogue for row `r`, for the rows the asm leaves to it.
#[inline(never)]
fn requantize_row(p: &DenseI8<'_>, acc: i32, r: usize) -> i8 {
    requantize(acc, le(p.multipliers, r), le(p.shifts, r), p.out_zero_point, p.act_min, p.act_max)
}

/// Rows `from..` of one sample in plain code: those whose padded reads would leave the weights
/// (at most one unless `cols < 8`), the odd last row of a long input or of a one-row layer, or
/// every row when the clamp range is empty.
#[inline(never)]
fn scalar_rows(p: &DenseI8<'_>, xs: &[i8], ys: &mut [i8], from: usize) {
    for (r, y) in ys.iter_mut().enumerate().skip(from) {
        let w = p.weights.get(r * p.cols..).unwrap_or(&[]);
        let mut acc = le(p.bias, r);
        for (&w, &x) in w.iter().zip(xs) {
            // SAFETY: register-only arithmetic; it may set the sticky Q flag, so flags are not
            // promised preserved. It wraps like `wrapping_add`. As asm, the compiler leaves this
            // rarely run loop as it is instead of unrolling it (190 bytes less flash).
            unsafe {
                asm!("smlabb {acc}, {w}, {x}, {acc}", acc = inout(reg) acc, w = in(reg) w as i8 as i32,
                     x = in(reg) x as i32, options(pure, nomem, nostack));
            }
        }
        *y = requantize_row(p, acc, r);
    }
}

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !matches!(p.layout, WeightLayout::RowMajor) {
        return reference::dense_i8(p, x, batch, out);
    }
    let (rows, cols) = (p.rows, p.cols);
    // From here on weights hold rows * cols bytes and bias, multipliers and shifts 4 * rows
    // (what the asm's pointers rely on), and x and out `batch` samples.
    let batch = p.samples(x, batch, out);
    if batch == 0 || cols == 0 {
        return reference::dense_i8(p, x, batch, out);
    }
    // Row r's padded reads end at r * cols + padded_end: the last chunk's start plus its
    // whole blocks. The rows below `fast` stay inside the weights. The byte-wise clamp is the
    // reference's only when its range is not empty; otherwise plain code does every row.
    let last_chunk = (cols - 1) / CHUNK * CHUNK;
    let padded_end = last_chunk + (cols - last_chunk).div_ceil(BLOCK) * BLOCK;
    let mut fast = match p.weights.len().checked_sub(padded_end) {
        Some(room) if p.act_min <= p.act_max => (room / cols + 1).min(rows),
        _ => 0,
    };
    // An odd last row shares a pass with the row before it (see `pass_rows`), unless there is
    // none, or partial sums would count that row twice.
    if fast % 2 == 1 && (fast == 1 || cols > CHUNK) {
        fast -= 1;
    }
    let mut s = Scratch::new();
    // Checked slices rather than `chunks_exact`, whose zero-size check and division would keep
    // a panic path linked (the C API links none).
    for b in 0..batch {
        let (Some(xs), Some(ys)) = (x.get(b * cols..(b + 1) * cols), out.get_mut(b * rows..(b + 1) * rows)) else {
            return;
        };
        sample(p, xs, ys, &mut s, fast);
    }
}

/// One sample (`xs` of `cols`, `ys` of `rows`): rows below `fast` (0, or at least 2, and even
/// for inputs longer than the scratch) through the asm, the rest in plain code. Out of line so
/// that the compiler keeps one copy of it.
#[inline(never)]
fn sample(p: &DenseI8<'_>, xs: &[i8], ys: &mut [i8], s: &mut Scratch, fast: usize) {
    if fast > 0 && p.cols <= CHUNK {
        let blocks = s.fill(xs);
        // SAFETY: `s` holds `xs` in `blocks` blocks; rows below `fast` may read their padded
        // blocks; bias, multipliers and shifts hold `rows` entries, and `ys` is `rows` long.
        unsafe { pass_rows(p, s, blocks, 0, 0..fast, p.bias.as_ptr(), ys.as_mut_ptr().cast(), false) };
    } else if fast > 0 {
        long_input(p, xs, ys, s, fast);
    }
    if fast < p.rows {
        scalar_rows(p, xs, ys, fast);
    }
}

/// One sample whose input is longer than the scratch: every chunk is prepared once per tile of
/// rows (`fast` of them, even), whose partial sums wait in `tile` between chunks. Out of line,
/// so that only inputs this long put `tile` on the stack.
#[inline(never)]
fn long_input(p: &DenseI8<'_>, xs: &[i8], ys: &mut [i8], s: &mut Scratch, fast: usize) {
    let mut tile = [0i32; TILE];
    for t0 in (0..fast).step_by(TILE) {
        let t1 = (t0 + TILE).min(fast);
        for c0 in (0..p.cols).step_by(CHUNK) {
            let blocks = s.fill(xs.get(c0..(c0 + CHUNK).min(p.cols)).unwrap_or(&[]));
            let first = c0 == 0;
            let last = c0 + CHUNK >= p.cols;
            let init = if first { p.bias.as_ptr().wrapping_add(4 * t0) } else { tile.as_ptr().cast() };
            let (dst, partial) =
                if last { (ys.as_mut_ptr().wrapping_add(t0).cast(), false) } else { (tile.as_mut_ptr().cast(), true) };
            // SAFETY: `s` holds the chunk from c0 in `blocks` blocks; rows t0..t1 (an even
            // number) are below `fast`, so their padded reads of the last chunk stay in the
            // weights, and earlier chunks are whole blocks inside each row. `init` holds
            // t1 - t0 entries (bias from t0, or the tile), as does `dst` (ys from t0, or the
            // aligned tile).
            unsafe { pass_rows(p, s, blocks, c0, t0..t1, init, dst, partial) };
        }
    }
}

/// Rows `rows` of one prepared chunk (`blocks` blocks from column `c0`), two at a time through
/// [`run`]. `init` and `dst` are indexed from `rows.start`: i32 start values, and output bytes
/// (or with `partial`, i32 partial sums). An odd last row runs with the row before it, which
/// writes that row's byte a second time, the same byte.
///
/// # Safety
/// `s` holds the chunk from `c0` in `blocks` blocks; every row in `rows` may read its `8 *
/// blocks` bytes from column `c0`; `init` holds an i32 per row; `dst` may be written a byte
/// per row, or with `partial` is word-aligned and may be written an i32 per row; multipliers
/// and shifts hold every row in `rows`. There are at least two rows, and with `partial` an even
/// number.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
unsafe fn pass_rows(
    p: &DenseI8<'_>,
    s: &Scratch,
    blocks: usize,
    c0: usize,
    rows: core::ops::Range<usize>,
    init: *const u8,
    dst: *mut u8,
    partial: bool,
) {
    let cols = p.cols;
    let aligned = (p.weights.as_ptr() as usize | cols) & 3 == 0;
    let unit = if partial { 8 } else { 2 };
    let bytes = |b: u8| u32::from_ne_bytes([b; 4]);
    // Pairs start at even offsets from rows.start; with an odd count the last starts at n - 2.
    let last = rows.len() - 2;
    let mut first = 0;
    loop {
        // A regular run of pairs from `first`, every second row, as far as the grid goes.
        let end = last - (last - first) % 2;
        // SAFETY: rows `rows.start + first ..= rows.start + end + 1` are in `rows`, so every
        // pointer below stays inside the arrays the caller vouches for.
        let pass = unsafe {
            Pass {
                off: entry_offset(blocks, aligned),
                pair_gap: cols,
                init: init.add(4 * first),
                x: s.0.as_ptr().cast(),
                mult: p.multipliers.as_ptr().add(4 * (rows.start + first)),
                shift: p.shifts.as_ptr().add(4 * (rows.start + first)),
                zero_point: p.out_zero_point,
                mins: bytes(p.act_min as u8),
                maxs: bytes(p.act_max as u8),
                out: dst.add(unit / 2 * first),
                out_end: dst.add(unit / 2 * (end + 2)),
                step: (2 * cols).wrapping_sub(BLOCK * blocks),
                partial: partial as usize,
                weights: p.weights.as_ptr().add((rows.start + first) * cols + c0),
            }
        };
        // SAFETY: the pairs from `first` to `end` satisfy `run`'s contract by the caller's.
        let stop = unsafe { run(&pass) };
        let done = if stop.out.is_null() {
            end
        } else {
            // Only requantization stops early: finish that pair with the reference.
            let i = stop.out as usize - dst as usize;
            for (k, acc) in stop.acc.into_iter().enumerate() {
                // SAFETY: row `i + k` is in `rows`, so `dst` takes its byte.
                unsafe { *dst.add(i + k) = requantize_row(p, acc, rows.start + i + k) as u8 };
            }
            i
        };
        if done == last {
            return;
        }
        first = (done + 2).min(last);
    }
}
