//! int8 Dense with AVX-512 VNNI: `vpdpbusd` does 64 multiply-accumulates per instruction.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, so the activations go in as `x ^ 0x80`
//! (`x + 128` as u8) and the epilogue takes `128 * weight_sums[o]` (stored in the blob) off each
//! accumulator. Products and the 4-term sums are exact; the int32 accumulation wraps exactly
//! like the reference's.
//!
//! Two kernels, because batch 1 is bound by memory and batches by arithmetic:
//! - **One sample** (batch 1, and batches too small to pack): 16 rows per block, row by row.
//!   The activations sit in registers, so the weights are read front to back, one row
//!   after the other, the order the hardware prefetchers stream fastest (interleaving the 16
//!   rows column by column measured 40% slower). That pass is `asm!`, because the compiler
//!   does not keep the order. The 16 accumulators reduce together in one transposing tree,
//!   whose first two levels run in the row loop as the rows come, and the epilogue runs on 16
//!   rows at once. Up to 1024 activations stay in registers for the
//!   whole layer; wider layers go through 512 columns at a time; layers of at most 32 columns
//!   put two rows in each vector, except those of 4, 8, .. 20, whose 16 rows' quads are
//!   gathered into vectors by permutes (no horizontal sum).
//! - **Packed batches** (groups of up to 16 samples, two groups sharing each weight load while
//!   22 or more samples remain): the group's activations are transposed
//!   once into a stack buffer where each 64-byte vector holds 4 consecutive activations of
//!   every sample. Four weight bytes, broadcast, then multiply all 16 samples in one
//!   `vpdpbusd` (the broadcast folds into the instruction's memory operand), so each lane of
//!   an accumulator is one sample of one row: no horizontal sums, one load per 64
//!   multiply-accumulates. The epilogue requantizes each row's 16 samples with that row's
//!   parameters broadcast, and only then turns 16 rows x 16 samples around, as bytes.
//!
//! Tails: the last 1..=63 columns use masked loads (no byte outside the mask is touched); in the
//! packed kernel, the last 1..=3 columns are assembled byte by byte. Row blocks are full-width,
//! the last one pulled back to end at the edge (a few outputs are computed twice, identically);
//! layers with fewer than 16 rows go one row at a time; a partial sample group leaves its
//! unused lanes zero and stores only its samples.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::param;
use super::requantize_avx512::{reduce_quads, transpose16, Epilogue};
use super::{block_starts, has, partial_word, Level};
use crate::kernels::reference;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Rows per block.
const ROWS: usize = 16;
/// `x ^ 0x80` in each byte of a dword: int8 activations as `vpdpbusd`'s unsigned operand.
const FLIP: i32 = 0x8080_8080u32 as i32;
/// Widest layer whose rows go two to a vector, for one sample.
const SHORT_COLS: usize = 32;
/// Widest layer of whole quads whose rows are gathered by quad instead: from 24 columns on,
/// three or more permutes and blends per quad would cost about what the reduction they
/// replace does (estimated, not measured).
const QUAD_COLS: usize = 20;
/// Widest layer whose activations the one-sample kernel keeps in registers for the whole
/// layer: 16 vectors (with the tail, 17 of the 32).
const NARROW_COLS: usize = 1024;
/// Columns per pass for wider layers: 8 vectors.
const CHUNK: usize = 512;
/// Samples per packed group: one dword of each in a 64-byte vector.
const GROUP: usize = 16;
/// Smallest group worth packing: below it, running the samples one by one is faster (the
/// packed kernel's cost per group does not depend on how many lanes are used).
const MIN_GROUP: usize = 6;
/// Widest layer the packed kernel takes: its transposed activations (16 * cols bytes) live on
/// the stack. Wider layers run one sample at a time.
const PACK_MAX_COLS: usize = 1024;
/// Widest layer the paired kernel takes: its two groups' activations (32 * cols bytes) live on
/// the stack, and at 1024 columns fill 32 KiB of the L1 that they are read from 8 rows at a
/// time.
const PAIR_MAX_COLS: usize = 1024;
/// Rows per pass of the paired kernel: 8 rows x 2 groups = 16 accumulators.
const PAIR_ROWS: usize = 8;

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !has(Level::Avx512Vnni) {
        return reference::dense_i8(p, x, batch, out);
    }
    let batch = p.samples(x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (checked above); `samples` returned `batch` > 0,
    // so weights hold rows*cols bytes, every parameter array 4*rows, x batch*cols and out
    // batch*rows: the bounds every pointer below stays within.
    unsafe { run(p, x, batch, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let ep = Epilogue::new(p, true);
    let (rows, cols) = (p.rows, p.cols);
    let x = x.as_ptr().cast::<u8>();
    let out = out.as_mut_ptr();
    let mut b = 0;
    if cols <= PAIR_MAX_COLS && rows >= ROWS {
        while batch - b >= GROUP + MIN_GROUP {
            let n = (batch - b).min(2 * GROUP);
            // SAFETY: samples b..b+n < batch: their inputs and outputs are in bounds.
            unsafe { packed_pair(p, &ep, x.add(b * cols), n, out.add(b * rows)) };
            b += n;
        }
    }
    if cols <= PACK_MAX_COLS && rows >= ROWS {
        while batch - b >= MIN_GROUP {
            let n = (batch - b).min(GROUP);
            // SAFETY: samples b..b+n < batch: their inputs and outputs are in bounds.
            unsafe { packed_group(p, &ep, x.add(b * cols), n, out.add(b * rows)) };
            b += n;
        }
    }
    for b in b..batch {
        // SAFETY: b < batch: sample b's cols inputs and rows outputs are in bounds.
        unsafe { one_sample(p, x.add(b * cols), out.add(b * rows)) };
    }
}

/// Mask of the first `n` (< 64) bytes.
#[inline]
fn low_bytes(n: usize) -> __mmask64 {
    (1u64 << n) - 1
}

/// One sample: `x` points to its `cols` inputs, `out` to its `rows` outputs.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `x` and `out` as above, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn one_sample(p: &DenseI8<'_>, x: *const u8, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    if rows < ROWS {
        for o in 0..rows {
            // SAFETY: o < rows.
            unsafe { row1_sample1(p, x, out, o) };
        }
        return;
    }
    // SAFETY: every callee needs rows >= 16 (checked above), x's cols inputs, out's rows
    // outputs and p's buffers covering its shape (this function's own contract).
    unsafe {
        match cols / 64 {
            _ if cols > NARROW_COLS => wide_rows16(p, x, out),
            _ if cols <= QUAD_COLS && cols.is_multiple_of(4) => match cols / 4 {
                1 => quad_rows16::<1>(p, x, out),
                2 => quad_rows16::<2>(p, x, out),
                3 => quad_rows16::<3>(p, x, out),
                4 => quad_rows16::<4>(p, x, out),
                _ => quad_rows16::<5>(p, x, out),
            },
            _ if cols <= SHORT_COLS => short_rows16(p, x, out),
            0 => narrow_rows16::<0>(p, x, out),
            1 => narrow_rows16::<1>(p, x, out),
            2 => narrow_rows16::<2>(p, x, out),
            3 => narrow_rows16::<3>(p, x, out),
            4 => narrow_rows16::<4>(p, x, out),
            5 => narrow_rows16::<5>(p, x, out),
            6 => narrow_rows16::<6>(p, x, out),
            7 => narrow_rows16::<7>(p, x, out),
            8 => narrow_rows16::<8>(p, x, out),
            9 => narrow_rows16::<9>(p, x, out),
            10 => narrow_rows16::<10>(p, x, out),
            11 => narrow_rows16::<11>(p, x, out),
            12 => narrow_rows16::<12>(p, x, out),
            13 => narrow_rows16::<13>(p, x, out),
            14 => narrow_rows16::<14>(p, x, out),
            15 => narrow_rows16::<15>(p, x, out),
            _ => narrow_rows16::<16>(p, x, out),
        }
    }
}

/// Layers with `cols = N * 64 + tail <= 1024`: the whole input sits in registers, and each
/// block of 16 rows is one pass over 16 consecutive rows of weights, row after row, so the
/// weights stream in address order.
///
/// The pass over a block is `asm!` ([`rows16_dot`]) because its speed hinges on instruction
/// order, which the compiler does not keep: depending on unrelated code around it, it
/// unrolled the rows and interleaved their loads column by column, or reordered a row's loads,
/// costing 25-60% on a 784 x 400 layer from one build to the next.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `rows >= 16`; `x` points to `cols` inputs, `out` to `rows` outputs,
/// and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn narrow_rows16<const N: usize>(p: &DenseI8<'_>, x: *const u8, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    let ep = Epilogue::new(p, true);
    let flip = _mm512_set1_epi8(-128);
    let tail = cols - 64 * N;
    let m = low_bytes(tail);
    // SAFETY: x holds cols = 64 * N + tail bytes: the N full vectors lie inside them.
    let xs: [__m512i; N] =
        core::array::from_fn(|j| _mm512_xor_si512(unsafe { _mm512_loadu_si512(x.add(64 * j).cast()) }, flip));
    // Masked-off activations become 0x80 after the flip, but meet masked-off (zero) weights.
    // SAFETY: the mask limits the load to the `tail` bytes after them; masked-off bytes are
    // never accessed.
    let xt = _mm512_xor_si512(unsafe { _mm512_maskz_loadu_epi8(m, x.add(64 * N).cast()) }, flip);
    let mut partial = [_mm512_setzero_si512(); ROWS / 4];
    for o in block_starts(rows, ROWS) {
        // The parameters first: the weight stream has evicted them from L1, and loaded here
        // their latency hides behind the rows instead of stalling the epilogue (which measured
        // a third of its time waiting for them).
        // SAFETY: o + 16 <= rows: parameters o..o+16 are in bounds.
        let params = unsafe { ep.params16(o) };
        // SAFETY: o + 16 <= rows: rows o..o+16 are inside the weights, each N full vectors
        // and then the `m`-masked tail; `partial` has room for 16 vectors.
        unsafe { rows16_dot::<N, false>(&xs, xt, m, p.weights.as_ptr().add(o * cols), cols, &mut partial) };
        let y = ep.apply16(&params, reduce_quads(&partial));
        // SAFETY: outputs o..o+16 are in bounds.
        unsafe { _mm_storeu_si128(out.add(o).cast(), _mm512_cvtepi32_epi8(y)) };
    }
}

/// `partial[i] =` (or `+=`, with `ACCUMULATE`) the partial dot products of rows `4i..4i + 4`
/// (row `r` at `w + r * stride`) with the activations `xs` and `xt`, for 16 rows, one row
/// after the other, as [`reduce_quads`] takes them: each 128-bit lane holds one partial sum of
/// each of the four rows.
///
/// # Safety
/// AVX-512 F/BW/VNNI; each of the 16 rows is readable for `N * 64` bytes and then for the bytes
/// that `m` selects.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn rows16_dot<const N: usize, const ACCUMULATE: bool>(
    xs: &[__m512i; N],
    xt: __m512i,
    m: __mmask64,
    w: *const u8,
    stride: usize,
    partial: &mut [__m512i; ROWS / 4],
) {
    // One row as `asm!` text: its dot products into {a} and {b}, their sum into `$dst`, and
    // {w} on to the next row.
    macro_rules! row_asm {
        ($dst:literal; $($j:literal $acc:literal),*) => {
            concat!(
                "vpxord {a}, {a}, {a}\n",
                "vpxord {b}, {b}, {b}\n",
                $("vpdpbusd {", $acc, "}, {", $j, "}, zmmword ptr [{w} + ", $j, " * 64]\n",)*
                "vmovdqu8 {t} {{{m}}} {{z}}, zmmword ptr [{w} + {tail_at}]\n",
                "vpdpbusd {a}, {xt}, {t}\n",
                "vpaddd {", $dst, "}, {a}, {b}\n",
                "add {w}, {stride}\n",
            )
        };
    }
    // One variant per N: operand {j} is activation vector j, weights j*64 bytes into the row.
    // Two accumulator chains alternate to halve the wait on vpdpbusd's latency. Four rows per
    // iteration, their sums folded into one vector by the first two levels of a transposing
    // tree as they come: the tree's remaining work after the block is a third of it. Reads:
    // the rows' N*64 bytes and their masked tails (the mask may be empty: no access); reads
    // and writes: the 4 vectors of `partial`.
    macro_rules! pass {
        ($($j:literal $acc:literal),* ; $($add:literal)?) => {{
            // Typed scratch outputs: an untyped (`_`) one gets a type whose register class lacks
            // zmm16..31, and when register pressure puts it there LLVM prints a bogus register
            // name and the build fails ("invalid operand for instruction").
            let (scratch_a, scratch_b, scratch_t, scratch_r0, scratch_r1, scratch_r2):
                (__m512i, __m512i, __m512i, __m512i, __m512i, __m512i);
            // SAFETY: the caller's contract covers every read; `partial` holds 4 vectors.
            unsafe {
                core::arch::asm!(
                    "2:",
                    // Row 4i -> r0; row 4i + 1 -> r1, then r0 = pair(r0, r1).
                    row_asm!("r0"; $($j $acc),*),
                    row_asm!("r1"; $($j $acc),*),
                    "vpunpckldq {t}, {r0}, {r1}",
                    "vpunpckhdq {r0}, {r0}, {r1}",
                    "vpaddd {r0}, {t}, {r0}",
                    // Row 4i + 2 -> r1; row 4i + 3 -> r2, r1 = pair(r1, r2), r0 = quad(r0, r1).
                    row_asm!("r1"; $($j $acc),*),
                    row_asm!("r2"; $($j $acc),*),
                    "vpunpckldq {t}, {r1}, {r2}",
                    "vpunpckhdq {r1}, {r1}, {r2}",
                    "vpaddd {r1}, {t}, {r1}",
                    "vpunpcklqdq {t}, {r0}, {r1}",
                    "vpunpckhqdq {r0}, {r0}, {r1}",
                    "vpaddd {r0}, {t}, {r0}",
                    $($add,)?
                    "vmovdqu64 zmmword ptr [{out}], {r0}",
                    "add {out}, 64",
                    "dec {quads}",
                    "jnz 2b",
                    $(in(zmm_reg) xs[$j],)*
                    xt = in(zmm_reg) xt,
                    m = in(kreg) m,
                    stride = in(reg) stride,
                    tail_at = in(reg) 64 * N,
                    w = inout(reg) w => _,
                    out = inout(reg) partial.as_mut_ptr() => _,
                    quads = inout(reg) ROWS / 4 => _,
                    a = out(zmm_reg) scratch_a,
                    b = out(zmm_reg) scratch_b,
                    t = out(zmm_reg) scratch_t,
                    r0 = out(zmm_reg) scratch_r0,
                    r1 = out(zmm_reg) scratch_r1,
                    r2 = out(zmm_reg) scratch_r2,
                    options(nostack),
                )
            }
            let _ = (scratch_a, scratch_b, scratch_t, scratch_r0, scratch_r1, scratch_r2);
        }};
    }
    // The sum is added to `partial` or replaces it.
    if ACCUMULATE {
        match N {
            0 => pass!(; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            1 => pass!(0 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            2 => pass!(0 "a", 1 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            3 => pass!(0 "a", 1 "b", 2 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            4 => pass!(0 "a", 1 "b", 2 "a", 3 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            5 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            6 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            7 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]"),
            8 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            9 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            10 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            11 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            12 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            13 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            14 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            15 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b", 14 "a"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
            _ => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b", 14 "a", 15 "b"; "vpaddd {r0}, {r0}, zmmword ptr [{out}]")
            }
        }
    } else {
        match N {
            0 => pass!(;),
            1 => pass!(0 "a";),
            2 => pass!(0 "a", 1 "b";),
            3 => pass!(0 "a", 1 "b", 2 "a";),
            4 => pass!(0 "a", 1 "b", 2 "a", 3 "b";),
            5 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a";),
            6 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b";),
            7 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a";),
            8 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b";),
            9 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a";),
            10 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b";),
            11 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a";),
            12 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b";),
            13 => pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a";),
            14 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b";)
            }
            15 => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b", 14 "a";)
            }
            _ => {
                pass!(0 "a", 1 "b", 2 "a", 3 "b", 4 "a", 5 "b", 6 "a", 7 "b", 8 "a", 9 "b", 10 "a", 11 "b", 12 "a", 13 "b", 14 "a", 15 "b";)
            }
        }
    }
}

/// Layers with `cols > 1024`: the input goes through registers 512 columns at a time, each
/// chunk over the block's 16 rows with the same pass as [`narrow_rows16`].
///
/// # Safety
/// As [`narrow_rows16`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn wide_rows16(p: &DenseI8<'_>, x: *const u8, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    let ep = Epilogue::new(p, true);
    for o in block_starts(rows, ROWS) {
        let mut partial = [_mm512_setzero_si512(); ROWS / 4];
        let mut k = 0;
        while k < cols {
            let len = (cols - k).min(CHUNK);
            // SAFETY: columns k..k+len are inside x and inside each of the rows o..o+16 (o + 16
            // <= rows), as `activations` and `rows16_dot` require.
            unsafe {
                let (x, w) = (x.add(k), p.weights.as_ptr().add(o * cols + k));
                macro_rules! chunk {
                    ($n:literal) => {{
                        let (xs, xt, m) = activations::<$n>(x, len - 64 * $n);
                        rows16_dot::<$n, true>(&xs, xt, m, w, cols, &mut partial);
                    }};
                }
                match len / 64 {
                    0 => chunk!(0),
                    1 => chunk!(1),
                    2 => chunk!(2),
                    3 => chunk!(3),
                    4 => chunk!(4),
                    5 => chunk!(5),
                    6 => chunk!(6),
                    7 => chunk!(7),
                    _ => chunk!(8),
                }
            }
            k += len;
        }
        // SAFETY: o + 16 <= rows: parameters and outputs o..o+16 are in bounds.
        unsafe {
            let y = ep.apply16(&ep.params16(o), reduce_quads(&partial));
            _mm_storeu_si128(out.add(o).cast(), _mm512_cvtepi32_epi8(y));
        }
    }
}

/// Layers with `cols <= 32`: a row fills at most half a vector, so each vector carries two
/// rows (row `2i` in the low 256 bits, row `2i + 1` in the high), halving the loads and
/// `vpdpbusd`s, and the reduction of 16 rows takes 22 instructions instead of 45.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `16 <= rows`, `cols <= 32`; `x` points to `cols` inputs, `out` to
/// `rows` outputs, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn short_rows16(p: &DenseI8<'_>, x: *const u8, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    let ep = Epilogue::new(p, true);
    let low = low_bytes(cols);
    let high = low << 32;
    // The activations in both halves, flipped to u8, zero past `cols` (a u8 zero, so the
    // weights loaded beside them, which are zero too, add nothing either way).
    // SAFETY: the mask covers x's cols bytes; masked-off bytes are not accessed.
    let xv = _mm256_maskz_mov_epi8(
        low as __mmask32,
        _mm256_xor_si256(unsafe { _mm256_maskz_loadu_epi8(low as __mmask32, x.cast()) }, _mm256_set1_epi8(-128)),
    );
    let x2 = _mm512_broadcast_i64x4(xv);
    let w = p.weights.as_ptr();
    for o in block_starts(rows, ROWS) {
        let pairs: [__m512i; ROWS / 2] = core::array::from_fn(|i| {
            let even = (o + 2 * i) * cols;
            // SAFETY: rows o..o+16 are inside the weights. The even row's cols bytes load into
            // the low half; the odd row's into the high half, through an address 32 bytes
            // before it (computed with wrapping arithmetic, as it may precede the weights)
            // under a mask that selects exactly the odd row's bytes; masked-off bytes are not
            // accessed.
            let v = unsafe {
                let lo = _mm512_maskz_loadu_epi8(low, w.add(even).cast());
                _mm512_mask_loadu_epi8(lo, high, w.wrapping_add(even + cols).wrapping_sub(32).cast())
            };
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), x2, v)
        });
        // SAFETY: o + 16 <= rows: parameters and outputs o..o+16 are in bounds.
        unsafe {
            let y = ep.apply16(&ep.params16(o), reduce_pairs(&pairs));
            _mm_storeu_si128(out.add(o).cast(), _mm512_cvtepi32_epi8(y));
        }
    }
}

/// Layers with `cols = 4 * Q <= 20` (the conv VAE's first layer): 16 rows are
/// `Q` whole vectors, row `r`'s quad `k` dword `Q r + k` of them. Two-source permutes gather
/// quad `k` of the 16 rows into one vector, which multiplies the broadcast quad `k` of the
/// input: the accumulator holds the 16 rows' sums, with no horizontal sum. On 3136 x 20 that
/// is 35 instructions a block against the 46 of [`short_rows16`]'s two rows per vector and
/// 22-instruction reduction (the layer measured 5% faster).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `16 <= rows`, `cols = 4 * Q`, `1 <= Q <= 5`; `x` points to `cols`
/// inputs, `out` to `rows` outputs, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)]
unsafe fn quad_rows16<const Q: usize>(p: &DenseI8<'_>, x: *const u8, out: *mut i8) {
    let rows = p.rows;
    let ep = Epilogue::new(p, true);
    // SAFETY: x holds 4 * Q bytes.
    let xq: [__m512i; Q] =
        core::array::from_fn(|k| _mm512_set1_epi32(unsafe { x.add(4 * k).cast::<i32>().read_unaligned() } ^ FLIP));
    // Dword Q r + k of the block is in vector pair (Q r + k) / 32, at (Q r + k) % 32 of it.
    let index: [__m512i; Q] = core::array::from_fn(|k| {
        let lanes: [i32; ROWS] = core::array::from_fn(|r| ((Q * r + k) % 32) as i32);
        // SAFETY: 64 readable bytes.
        unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
    });
    let pair_of = |k: usize, pair: usize| -> __mmask16 {
        (0..ROWS).filter(|r| (Q * r + k) / 32 == pair).fold(0, |m, r| m | 1 << r)
    };
    let masks: [[__mmask16; 4]; Q] = core::array::from_fn(|k| core::array::from_fn(|pair| pair_of(k, pair)));
    let w = p.weights.as_ptr();
    for o in block_starts(rows, ROWS) {
        // SAFETY: o + 16 <= rows: the block's 16 * 4 * Q bytes are inside the weights.
        let v: [__m512i; Q] = core::array::from_fn(|i| unsafe { _mm512_loadu_si512(w.add(o * 4 * Q + 64 * i).cast()) });
        let source = |i: usize| if i < Q { v[i] } else { _mm512_setzero_si512() };
        let mut acc = _mm512_setzero_si512();
        for k in 0..Q {
            let mut g = _mm512_permutex2var_epi32(v[0], index[k], source(1));
            for pair in 1..Q.div_ceil(2) {
                let from = _mm512_permutex2var_epi32(v[2 * pair], index[k], source(2 * pair + 1));
                g = _mm512_mask_mov_epi32(g, masks[k][pair], from);
            }
            acc = _mm512_dpbusd_epi32(acc, xq[k], g);
        }
        // SAFETY: o + 16 <= rows: parameters and outputs o..o+16 are in bounds.
        unsafe {
            let y = ep.apply16(&ep.params16(o), acc);
            _mm_storeu_si128(out.add(o).cast(), _mm512_cvtepi32_epi8(y));
        }
    }
}

/// Horizontal sums of 16 rows held two per vector (row `2i` in the low half of `v[i]`, row
/// `2i + 1` in the high half): lane `r` of the result is row `r`'s sum.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce_pairs(v: &[__m512i; ROWS / 2]) -> __m512i {
    let pair = |a: __m512i, b: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let quad = |a: __m512i, b: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    // q0 per 128-bit lane: rows 0, 2, 4, 6 in the low half, 1, 3, 5, 7 in the high; q1 the
    // same for rows 8..16.
    let q0 = quad(pair(v[0], v[1]), pair(v[2], v[3]));
    let q1 = quad(pair(v[4], v[5]), pair(v[6], v[7]));
    // [r0 r2 r4 r6 | r1 r3 r5 r7 | r8 r10 r12 r14 | r9 r11 r13 r15], complete sums.
    let sums =
        _mm512_add_epi32(_mm512_shuffle_i32x4::<0b10_00_10_00>(q0, q1), _mm512_shuffle_i32x4::<0b11_01_11_01>(q0, q1));
    _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15), sums)
}

/// `N` full vectors and a masked tail of `tail` (< 64) activations from `x`, flipped to u8,
/// with the tail's mask.
///
/// # Safety
/// AVX-512 F/BW; `x` points to `N * 64 + tail` readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn activations<const N: usize>(x: *const u8, tail: usize) -> ([__m512i; N], __m512i, __mmask64) {
    let flip = _mm512_set1_epi8(-128);
    let m = low_bytes(tail);
    // SAFETY: the N full vectors lie inside the N * 64 + tail readable bytes.
    let xs = core::array::from_fn(|j| _mm512_xor_si512(unsafe { _mm512_loadu_si512(x.add(64 * j).cast()) }, flip));
    // Masked-off activations become 0x80 after the flip, but meet masked-off (zero) weights.
    // SAFETY: the mask limits the load to the `tail` bytes after them; masked-off bytes are
    // never accessed.
    let xt = _mm512_xor_si512(unsafe { _mm512_maskz_loadu_epi8(m, x.add(64 * N).cast()) }, flip);
    (xs, xt, m)
}

/// Row `o` of one sample, for layers narrower than a 16-row block.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `x` points to `cols` inputs, `out` to `rows` outputs, `o < rows`, and
/// `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn row1_sample1(p: &DenseI8<'_>, x: *const u8, out: *mut i8, o: usize) {
    let cols = p.cols;
    let flip = _mm512_set1_epi8(-128);
    // SAFETY: row o < rows is inside the weights, so its start is too.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    let mut acc = _mm512_setzero_si512();
    let mut k = 0;
    while k + 64 <= cols {
        // SAFETY: the row and x hold cols bytes each, and k + 64 <= cols.
        let (xv, wv) = unsafe { (_mm512_loadu_si512(x.add(k).cast()), _mm512_loadu_si512(w.add(k).cast())) };
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(xv, flip), wv);
        k += 64;
    }
    if k < cols {
        let m = low_bytes(cols - k);
        // SAFETY: as above; the mask limits both loads to the cols - k bytes left, and masked-off
        // bytes are never accessed.
        let (xv, wv) =
            unsafe { (_mm512_maskz_loadu_epi8(m, x.add(k).cast()), _mm512_maskz_loadu_epi8(m, w.add(k).cast())) };
        acc = _mm512_dpbusd_epi32(acc, _mm512_xor_si512(xv, flip), wv);
    }
    let acc = _mm512_reduce_add_epi32(acc)
        .wrapping_add(param(p.bias, o))
        .wrapping_sub(param(p.weight_sums, o).wrapping_mul(128));
    let y = requantize(acc, param(p.multipliers, o), param(p.shifts, o), p.out_zero_point, p.act_min, p.act_max);
    // SAFETY: o < rows.
    unsafe { out.add(o).write(y) };
}

/// `n` (1..=16) samples at once: inputs from `x` (`cols` apart), outputs from `out` (`rows`
/// apart).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `cols <= PACK_MAX_COLS`; `n` samples of inputs and outputs from `x`
/// and `out`, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn packed_group(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: *const u8, n: usize, out: *mut i8) {
    let rows = p.rows;
    let mut packed = MaybeUninit::<[__m512i; PACK_MAX_COLS / 4]>::uninit();
    let packed = packed.as_mut_ptr().cast::<__m512i>();
    // SAFETY: the caller's contract; the buffer holds PACK_MAX_COLS / 4 >= cols.div_ceil(4)
    // vectors.
    unsafe { pack_group(p.cols, x, n, packed) };
    for o in block_starts(rows, ROWS) {
        // SAFETY: o + 16 <= rows (rows >= 16 for packed groups); the packed buffer holds
        // cols.div_ceil(4) vectors.
        unsafe { rows16_of_group(p, ep, packed, n, out, o) };
    }
}

/// Writes `n` (1..=16) samples' activations from `x` (`cols` apart) into `packed`: vector `q`
/// holds activations 4q..4q+4 (flipped to u8) of sample s in dword s; lanes past the group are
/// zero so that they add nothing. Writes the first `cols.div_ceil(4)` vectors.
///
/// # Safety
/// AVX-512 F/BW/VL; `cols <= PACK_MAX_COLS`; `n` samples of `cols` inputs from `x`; `packed`
/// has room for `cols.div_ceil(4)` vectors.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pack_group(cols: usize, x: *const u8, n: usize, packed: *mut __m512i) {
    let quads = cols / 4;
    let lanes: __mmask16 = ((1u32 << n) - 1) as __mmask16;
    let flip = _mm512_set1_epi8(-128);
    // 16 quads at a time: each sample's 64 bytes in one load, then a 16 x 16 dword transpose
    // (a gather per quad measured 3% of a batch-64 decode, twice this).
    let mut q0 = 0;
    while q0 < quads {
        let count = (quads - q0).min(16);
        let words: __mmask16 = ((1u32 << count) - 1) as __mmask16;
        let by_sample: [__m512i; GROUP] = core::array::from_fn(|s| {
            if s < n {
                // SAFETY: bytes 4*q0 .. 4*(q0 + count) <= cols of sample s < n; masked-off
                // dwords are not accessed.
                unsafe { _mm512_maskz_loadu_epi32(words, x.add(s * cols + 4 * q0).cast()) }
            } else {
                _mm512_setzero_si512()
            }
        });
        for (i, v) in transpose16(&by_sample).iter().enumerate().take(count) {
            // SAFETY: q0 + i < quads <= cols.div_ceil(4): inside the packed buffer.
            unsafe { packed.add(q0 + i).write(_mm512_maskz_xor_epi32(lanes, *v, flip)) };
        }
        q0 += count;
    }
    let rest = cols % 4;
    if rest > 0 {
        let mut dwords = [0u32; GROUP];
        for (s, d) in dwords.iter_mut().enumerate().take(n) {
            // SAFETY: s < n, and bytes 4*quads .. cols are inside sample s's inputs.
            *d = unsafe { partial_word(x.add(s * cols + 4 * quads), rest, |v| v ^ 0x80) };
        }
        // SAFETY: `dwords` is 64 readable bytes; entry `quads` < cols.div_ceil(4) <= 256.
        unsafe { packed.add(quads).write(_mm512_loadu_si512(dwords.as_ptr().cast())) };
    }
}

/// `acc_a[r] += ` row `r`'s weights (at `w + r * stride`) times group A's packed activations
/// (`a`), `acc_b[r]` the same with group B (`b_at` bytes after `a`), over `quads` (>= 1) steps
/// of 4 columns.
///
/// `asm!` because the compiler, short of general registers for 8 row pointers, assembled the
/// weight words with inserts and shuffles and reloaded pointers from the stack; here each
/// weight dword is one broadcast load feeding two `vpdpbusd`, rows addressed from three bases.
///
/// # Safety
/// AVX-512 F/VNNI; each of the 8 rows is readable for `4 * quads` bytes; `a` and `a + b_at`
/// (bytes) hold `quads` written vectors each.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn pair_rows8_dot(
    w: *const u8,
    stride: usize,
    a: *const __m512i,
    b_at: usize,
    quads: usize,
    acc_a: &mut [__m512i; PAIR_ROWS],
    acc_b: &mut [__m512i; PAIR_ROWS],
) {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc_a;
    let [b0, b1, b2, b3, b4, b5, b6, b7] = acc_b;
    // Rows 0, 1, 2, 4 from w; 3 and 7 from w + 3 * stride; 5 and 6 from w + 4 * stride.
    // Scratch outputs typed, as in `rows16_dot`.
    let (scratch_xa, scratch_xb, scratch_t, scratch_u): (__m512i, __m512i, __m512i, __m512i);
    // SAFETY: the caller's contract covers every read; the bases move 4 bytes per step.
    unsafe {
        core::arch::asm!(
            "2:",
            "vmovdqa64 {xa}, zmmword ptr [{a}]",
            "vmovdqa64 {xb}, zmmword ptr [{a} + {b_at}]",
            "vpbroadcastd {t}, dword ptr [{w}]",
            "vpdpbusd {a0}, {xa}, {t}",
            "vpdpbusd {b0}, {xb}, {t}",
            "vpbroadcastd {u}, dword ptr [{w} + {s}]",
            "vpdpbusd {a1}, {xa}, {u}",
            "vpdpbusd {b1}, {xb}, {u}",
            "vpbroadcastd {t}, dword ptr [{w} + {s} * 2]",
            "vpdpbusd {a2}, {xa}, {t}",
            "vpdpbusd {b2}, {xb}, {t}",
            "vpbroadcastd {u}, dword ptr [{w3}]",
            "vpdpbusd {a3}, {xa}, {u}",
            "vpdpbusd {b3}, {xb}, {u}",
            "vpbroadcastd {t}, dword ptr [{w} + {s} * 4]",
            "vpdpbusd {a4}, {xa}, {t}",
            "vpdpbusd {b4}, {xb}, {t}",
            "vpbroadcastd {u}, dword ptr [{w4} + {s}]",
            "vpdpbusd {a5}, {xa}, {u}",
            "vpdpbusd {b5}, {xb}, {u}",
            "vpbroadcastd {t}, dword ptr [{w4} + {s} * 2]",
            "vpdpbusd {a6}, {xa}, {t}",
            "vpdpbusd {b6}, {xb}, {t}",
            "vpbroadcastd {u}, dword ptr [{w3} + {s} * 4]",
            "vpdpbusd {a7}, {xa}, {u}",
            "vpdpbusd {b7}, {xb}, {u}",
            "add {w}, 4",
            "add {w3}, 4",
            "add {w4}, 4",
            "add {a}, 64",
            "dec {n}",
            "jnz 2b",
            a0 = inout(zmm_reg) *a0, a1 = inout(zmm_reg) *a1, a2 = inout(zmm_reg) *a2, a3 = inout(zmm_reg) *a3,
            a4 = inout(zmm_reg) *a4, a5 = inout(zmm_reg) *a5, a6 = inout(zmm_reg) *a6, a7 = inout(zmm_reg) *a7,
            b0 = inout(zmm_reg) *b0, b1 = inout(zmm_reg) *b1, b2 = inout(zmm_reg) *b2, b3 = inout(zmm_reg) *b3,
            b4 = inout(zmm_reg) *b4, b5 = inout(zmm_reg) *b5, b6 = inout(zmm_reg) *b6, b7 = inout(zmm_reg) *b7,
            xa = out(zmm_reg) scratch_xa,
            xb = out(zmm_reg) scratch_xb,
            t = out(zmm_reg) scratch_t,
            u = out(zmm_reg) scratch_u,
            w = inout(reg) w => _,
            w3 = inout(reg) w.wrapping_add(3 * stride) => _,
            w4 = inout(reg) w.wrapping_add(4 * stride) => _,
            s = in(reg) stride,
            a = inout(reg) a => _,
            b_at = in(reg) b_at,
            n = inout(reg) quads => _,
            options(nostack, readonly),
        )
    }
    let _ = (scratch_xa, scratch_xb, scratch_t, scratch_u);
}

/// `n` (17..=32) samples at once as two packed groups (samples 0..16 and 16..n) that share
/// every weight load: each broadcast weight dword feeds both groups' `vpdpbusd`, halving the
/// loads per multiply-accumulate of [`packed_group`] (8 rows x 2 groups per pass keep 16
/// accumulators in registers).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `cols <= PAIR_MAX_COLS`, `rows >= 16`; `n` samples of inputs and
/// outputs from `x` and `out`, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn packed_pair(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: *const u8, n: usize, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    let mut buffer = MaybeUninit::<[__m512i; 2 * (PAIR_MAX_COLS / 4)]>::uninit();
    let a = buffer.as_mut_ptr().cast::<__m512i>();
    // Group B right after group A, so that the two share as few cache sets as they can.
    let vectors = cols.div_ceil(4);
    // SAFETY: each group writes cols.div_ceil(4) <= PAIR_MAX_COLS / 4 vectors, so group B,
    // starting that many vectors in, stays inside the buffer.
    let b = unsafe { a.add(vectors) };
    // SAFETY: A and B each have room for their vectors (above); samples 0..16 and 16..n are
    // inside x (caller).
    unsafe {
        pack_group(cols, x, GROUP, a);
        pack_group(cols, x.add(GROUP * cols), n - GROUP, b);
    }
    let quads = cols / 4;
    let rest = cols % 4;
    for o in block_starts(rows, ROWS) {
        // SAFETY: o + 16 <= rows.
        let params = unsafe { ep.params16(o) };
        let table = ep.row_table(&params);
        // tiles[g][r] lane s: row o + r of sample s of group g. Left uninitialized until the
        // two halves fill it: zeroing it first was a 2 KB memset (2% of a batch) per block.
        let mut tiles = MaybeUninit::<[[__m512i; ROWS]; 2]>::uninit();
        let tile_rows = tiles.as_mut_ptr().cast::<[__m512i; ROWS]>();
        for half in 0..ROWS / PAIR_ROWS {
            let r0 = half * PAIR_ROWS;
            // SAFETY: rows o..o+16 are inside the weights (o + 16 <= rows).
            let w = unsafe { p.weights.as_ptr().add((o + r0) * cols) };
            let mut acc_a = [_mm512_setzero_si512(); PAIR_ROWS];
            let mut acc_b = [_mm512_setzero_si512(); PAIR_ROWS];
            if quads > 0 {
                // SAFETY: rows o+r0..o+r0+8 hold quads*4 <= cols bytes each from w; both groups'
                // vectors 0..quads were written, group B `vectors` vectors after A.
                unsafe { pair_rows8_dot(w, cols, a, 64 * vectors, quads, &mut acc_a, &mut acc_b) };
            }
            let mut step = |q: usize, words: [i32; PAIR_ROWS]| {
                // SAFETY: q < cols.div_ceil(4): both groups' vector q was written.
                let (xa, xb) = unsafe { (a.add(q).read(), b.add(q).read()) };
                for r in 0..PAIR_ROWS {
                    let wv = _mm512_set1_epi32(words[r]);
                    acc_a[r] = _mm512_dpbusd_epi32(acc_a[r], xa, wv);
                    acc_b[r] = _mm512_dpbusd_epi32(acc_b[r], xb, wv);
                }
            };
            if rest > 0 {
                // The last 1..=3 weights of each row, assembled so as not to read past the weights.
                // SAFETY: bytes 4*quads .. cols are inside each row.
                step(
                    quads,
                    core::array::from_fn(|r| unsafe { partial_word(w.add(r * cols + 4 * quads), rest, |v| v) as i32 }),
                );
            }
            // SAFETY: rows r0..r0 + 8 of each group's 16 in `tiles`.
            unsafe {
                tile_rows.cast::<__m512i>().add(r0).cast::<[__m512i; PAIR_ROWS]>().write(acc_a);
                tile_rows.add(1).cast::<__m512i>().add(r0).cast::<[__m512i; PAIR_ROWS]>().write(acc_b);
            }
        }
        // SAFETY: both halves of both groups were written above.
        let mut tiles = unsafe { tiles.assume_init() };
        if let Some(table) = &table {
            // After the block rather than after each half, whose accumulators would then
            // round-trip through memory: measured 10% slower on a batch of 64.
            // SAFETY: 16 rows from row 0.
            unsafe {
                table.scale(&mut tiles[0], 0);
                table.scale(&mut tiles[1], 0);
            }
        }
        for (g, tile) in tiles.iter().enumerate() {
            let samples = if g == 0 { GROUP } else { n - GROUP };
            // SAFETY: samples g*16 .. g*16 + samples <= n, outputs o..o+16 < rows.
            unsafe {
                let out = out.add(g * GROUP * rows + o);
                match table {
                    Some(_) => ep.store_scaled(tile, samples, out, rows),
                    None => ep.store_transposed(&params, tile, samples, out, rows),
                }
            }
        }
    }
}

/// Rows `o..o+16` of a packed group of `n` samples.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `o + 16 <= rows`; `packed` holds `cols.div_ceil(4)` vectors as written
/// by [`packed_group`]; `out` points to `n` samples' outputs, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn rows16_of_group(
    p: &DenseI8<'_>,
    ep: &Epilogue<'_>,
    packed: *const __m512i,
    n: usize,
    out: *mut i8,
    o: usize,
) {
    let (rows, cols) = (p.rows, p.cols);
    let quads = cols / 4;
    // SAFETY: rows o..o+16 are inside the weights.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    // acc[r] lane s: row o + r of sample s.
    let mut acc = [_mm512_setzero_si512(); ROWS];
    for q in 0..quads {
        // SAFETY: q < quads: the packed vector was written; bytes 4q..4q+4 <= cols of each row.
        let xv = unsafe { packed.add(q).read() };
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: row o + r < rows, and 4q + 4 <= cols keeps the read inside it.
            let four = unsafe { w.add(r * cols + 4 * q).cast::<i32>().read_unaligned() };
            *a = _mm512_dpbusd_epi32(*a, xv, _mm512_set1_epi32(four));
        }
    }
    let rest = cols % 4;
    if rest > 0 {
        // The last 1..=3 weights of each row, assembled so as not to read past the weights.
        // SAFETY: bytes 4*quads .. cols are inside row o + r.
        let words: [u32; ROWS] =
            core::array::from_fn(|r| unsafe { partial_word(w.add(r * cols + 4 * quads), rest, |v| v) });
        // SAFETY: the packed vector `quads` was written (rest > 0).
        let xv = unsafe { packed.add(quads).read() };
        for (a, &word) in acc.iter_mut().zip(&words) {
            *a = _mm512_dpbusd_epi32(*a, xv, _mm512_set1_epi32(word as i32));
        }
    }
    // SAFETY: o + 16 <= rows; samples 0..n, outputs o..o+16 < rows.
    unsafe {
        let params = ep.params16(o);
        match ep.row_table(&params) {
            Some(table) => {
                table.scale(&mut acc, 0);
                ep.store_scaled(&acc, n, out.add(o), rows);
            }
            None => ep.store_transposed(&params, &acc, n, out.add(o), rows),
        }
    }
}
