//! int8 Dense with AVX2: `vpmaddubsw` + `vpmaddwd`, 32 multiply-accumulates per step.
//!
//! `vpmaddubsw` multiplies unsigned by signed bytes and adds pairs into saturating int16. The
//! sign trick feeds it `|x|` (exact as u8, 128 included) and `w` with `x`'s sign moved onto it
//! (`vpsignb`): since weights are never -128, `|w| <= 127`, a pair is at most 2 * 128 * 127 =
//! 32512 and never saturates, so every product and the int32 sums are exact.
//!
//! Three kernels:
//! - **One sample**: 8 rows per pass, sharing each activation load and its `|x|`.
//! - **Packed batches** (groups of 4 to 16 samples, on layers of 8 rows or more and at most
//!   1024 columns): the group's activations are transposed once into stack buffers where each
//!   32-byte vector holds 4 consecutive activations of 8 samples, one dword per sample. Four
//!   weight bytes, broadcast, then meet all 8 samples at once, so each accumulator lane is one
//!   sample of one row: no horizontal sums, one weight load per 32 (or, with two vectors of
//!   samples, 64) multiply-accumulates. Two ways to multiply, chosen per group:
//!   - *Unsigned* (the usual one after a ReLU): the activations go in as `u = x + 128`
//!     (`x ^ 0x80`), `vpmaddubsw(u, w)` straight, and the epilogue takes `128 * weight_sums[o]`
//!     off (the blob's sums, as the VNNI kernels use them; addition mod 2^32, like the
//!     reference's wrapping sum): `vpmaddubsw` + `vpmaddwd`
//!     by ones + `vpaddd`, 3 operations per 32 multiply-adds, of which 2 on the two ports
//!     that multiply. A pair `u1 * w1 + u2 * w2` is exact while `u1 + u2 <= 258`
//!     (`258 * 127 = 32766`); packing checks every pair of every sample (`vpmaddubsw` by ones,
//!     a compare) and, in a pair over the limit, keeps `min(u, 129)` of each activation and
//!     puts the rest (at most 126 each, so under the limit too) into an excess vector of that
//!     quad, which a second, short loop multiplies by the same weights. Two quads whose
//!     activations also sum to at most 258 at each int16 position (`u1 + u2 + u3 + u4`, one
//!     pair from each) share one `vpmaddwd`: their two `vpmaddubsw` results are added in int16
//!     first (exact: at most `258 * 127`), 5 operations per 64 multiply-adds, of which 3 on
//!     the multiplying ports (0.9 cycles per 32 in a register-only loop, against 1.1); the
//!     quads are sorted into such pairs and singles once per group (4 in 5 of the z20
//!     decoder's hidden quads pair up, in groups of 16 samples). The hidden activations
//!     of the shipped z20 decoder (ReLU outputs, x + 128 mostly small) have about one pair
//!     over the limit in 3,000 (z ~ N(0, I), 64 samples). A group with over-limit pairs in
//!     more than a quarter of its quads takes the sign trick instead: each such quad costs
//!     another 3 operations, and at a quarter, 3 * (1 + 1/4) = 3.75 per quad, the unsigned
//!     path has all but lost its lead over the sign trick's 4. On uniform random codes, where
//!     it falls back, the 400 -> 784 layer measured 4.53 us per sample at batch 64 against 4.49
//!     before this path (interleaved runs; the faster epilogue included).
//!   - *Sign trick*: the activations as `x` (for the signs) and `|x|` (`vpabsb`, done once
//!     here rather than per row), one `vpsignb` + `vpmaddubsw` + `vpmaddwd` per broadcast
//!     weight quad and sample vector: 4 operations per 32 multiply-adds, 3 of them on the
//!     multiplying ports, which is what bounds it (measured 1.5 cycles per 32 multiply-adds
//!     on Sapphire Rapids, against 1.1 for the unsigned step). Exactness is the sign trick's,
//!     lane by lane: `vpsignb(w, x)` gives each byte `w` negated where that sample's `x` is
//!     negative and 0 where it is 0 (whose `|x|` is 0 too), so byte products are
//!     `|x| * (sign(x) * w) = x * w` with `|sign(x) * w| <= 127`; pairs stay within 32512,
//!     the `vpmaddwd` by ones sums two pairs exactly into int32, and the int32 accumulation
//!     wraps like the reference's (addition mod 2^32 does not depend on order).
//!
//!   Padding (columns past `cols` in the last quad, lanes past the group's samples) multiplies
//!   zero weights or lands in lanes that are not stored. An 8 x 8 dword transpose then turns
//!   8 rows x 8 samples around, and the epilogue requantizes 8 rows of one sample per vector
//!   with the rows' parameters loaded once.
//! - **Small remainders** (fewer than 4 samples, narrow or wide layers): 4 rows x 2 samples
//!   per pass (the 16 ymm registers hold 8 accumulators, 4 weight vectors and the
//!   activations), or the one-sample kernel.
//!
//! Tails: in the unpacked kernels, the last `cols % 32` activations are copied into a
//! zero-padded buffer, and a row's tail is loaded in place when 32 bytes are available (the
//! next row's bytes meet zero activations) or copied when it ends the weights; in the packed
//! kernel, the last 1..=3 columns are assembled byte by byte. Rows use full-width blocks whose
//! last one is pulled back to end at the edge (a few outputs are computed twice, identically);
//! layers narrower than a block go one row at a time.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::param;
use super::requantize_avx2::{activation_tail, load32_or_pad, reduce8, Epilogue};
use super::{block_starts, has, partial_word, Level};
use crate::kernels::reference;
use crate::kernels::DenseI8;
use crate::quant::requantize;

/// Rows per pass of the one-sample kernel.
const ROWS: usize = 8;
/// Rows per pass of the batched kernel.
const ROW_BLOCK: usize = 4;
/// Samples per pass of the batched kernel.
const SAMPLE_BLOCK: usize = 2;
/// Activation bytes a sample group may occupy (half of a 32 KiB L1).
const GROUP_BYTES: usize = 16 * 1024;
/// Samples per packed vector: one dword of each in 32 bytes.
const GROUP: usize = 8;
/// Smallest group worth packing: its cost does not depend on how many lanes are used.
const MIN_GROUP: usize = 4;
/// Rows per pass of the packed kernel.
const PACK_ROWS: usize = 8;
/// `vpmaddubsw` on `u = x + 128` keeps a pair `u1 * w1 + u2 * w2` exact while
/// `u1 + u2 <= 258`: `258 * 127 = 32766` (weights are never -128).
const PAIR_LIMIT: i16 = 258;
/// What each activation of an over-limit pair keeps: `2 * 129 = 258`.
const CLIP: u8 = 129;
/// Most quads with an excess a group may have (a stack array).
const MAX_EXTRA: usize = 64;
/// A group takes the unsigned path while at most one quad in this many has an excess: each
/// excess quad costs a second step of 3 operations, and the sign trick's 4 per quad are the
/// alternative (3 (1 + 1/4) < 4).
const EXTRA_SHARE: usize = 4;
/// Widest layer the packed kernel takes: its activations (2 * 16 * cols bytes) live on the
/// stack.
const PACK_MAX_COLS: usize = 1024;

/// See [`crate::kernels::DenseI8`].
pub fn dense_i8(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !has(Level::Avx2) {
        return reference::dense_i8(p, x, batch, out);
    }
    let batch = p.samples(x, batch, out);
    if batch == 0 {
        return;
    }
    // SAFETY: the CPU has AVX2 (checked above); `samples` returned `batch` > 0, so weights hold
    // rows*cols bytes, every parameter array 4*rows, x batch*cols and out batch*rows: the
    // bounds every pointer below stays within.
    unsafe { run(p, x, batch, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn run(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let ep = Epilogue::new(p, false);
    let ep_unsigned = Epilogue::new(p, true);
    let (rows, cols) = (p.rows, p.cols);
    // SAFETY: i8 and u8 have the same layout and validity.
    let x: &[u8] = unsafe { core::slice::from_raw_parts(x.as_ptr().cast(), x.len()) };
    let mut b = 0;
    if rows >= PACK_ROWS && cols <= PACK_MAX_COLS {
        while batch - b >= MIN_GROUP {
            let n = (batch - b).min(2 * GROUP);
            let xs = x.get(b * cols..(b + n) * cols).unwrap_or(&[]);
            // SAFETY: samples b..b+n < batch: xs holds their n * cols inputs, and their n * rows
            // outputs start at b * rows.
            unsafe { packed_group(p, &ep, &ep_unsigned, xs, n, out.as_mut_ptr().add(b * rows)) };
            b += n;
        }
    }
    let (x, out) = (x.get(b * cols..).unwrap_or(&[]), out.get_mut(b * rows..).unwrap_or(&mut []));
    // SAFETY: the samples left, batch - b of them: x and out hold their inputs and outputs.
    unsafe { unpacked(p, &ep, x, batch - b, out.as_mut_ptr()) }
}

/// `batch` samples without packing: the one-sample kernel, or 4 rows x 2 samples per pass.
///
/// # Safety
/// AVX2; `x` holds `batch * cols` inputs, `out` points to `batch * rows` outputs, and `p`'s
/// buffers cover its shape.
#[target_feature(enable = "avx2")]
unsafe fn unpacked(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: &[u8], batch: usize, out: *mut i8) {
    let (rows, cols) = (p.rows, p.cols);
    if batch >= SAMPLE_BLOCK && rows >= ROW_BLOCK {
        let blocks = batch.div_ceil(SAMPLE_BLOCK);
        let per_group = (GROUP_BYTES / (SAMPLE_BLOCK * cols)).max(1);
        let mut first = 0;
        while first < blocks {
            let group = first..(first + per_group).min(blocks);
            for o in block_starts(rows, ROW_BLOCK) {
                for b in block_starts(batch, SAMPLE_BLOCK).skip(group.start).take(group.len()) {
                    let xs = x.get(b * cols..(b + SAMPLE_BLOCK) * cols).unwrap_or(&[]);
                    // SAFETY: b + 2 <= batch and o + 4 <= rows (block_starts); xs holds the two
                    // samples' inputs (`samples`), and their outputs are in bounds.
                    unsafe { rows4_samples2(p, ep, xs, out.add(b * rows), o) };
                }
            }
            first = group.end;
        }
        return;
    }
    for b in 0..batch {
        let xb = x.get(b * cols..(b + 1) * cols).unwrap_or(&[]);
        // SAFETY: b < batch: sample b's rows outputs are in bounds.
        let yb = unsafe { out.add(b * rows) };
        if rows >= ROWS {
            for o in block_starts(rows, ROWS) {
                // SAFETY: o + 8 <= rows; xb holds cols inputs.
                unsafe { rows8_sample1(p, ep, xb, yb, o) };
            }
        } else {
            for o in 0..rows {
                // SAFETY: o < rows; xb holds cols inputs.
                unsafe { row1_sample1(p, xb, yb, o) };
            }
        }
    }
}

/// `n` (1..=16) samples at once: `x` holds their `n * cols` inputs, `out` points to their
/// `n * rows` outputs. Up to 8 samples take one vector per packed quad and 8 rows per pass;
/// more take two, and 4 rows per pass, so that every weight load feeds 16 samples.
///
/// # Safety
/// AVX2; `rows >= 8`, `cols <= PACK_MAX_COLS`, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx2")]
unsafe fn packed_group(
    p: &DenseI8<'_>,
    ep: &Epilogue<'_>,
    ep_unsigned: &Epilogue<'_>,
    x: &[u8],
    n: usize,
    out: *mut i8,
) {
    let (rows, cols) = (p.rows, p.cols);
    let mut magnitudes = MaybeUninit::<[__m256i; 2 * (PACK_MAX_COLS / 4)]>::uninit();
    let mut signs = MaybeUninit::<[__m256i; 2 * (PACK_MAX_COLS / 4)]>::uninit();
    let (magnitudes, signs) = (magnitudes.as_mut_ptr().cast::<__m256i>(), signs.as_mut_ptr().cast::<__m256i>());
    let vectors = if n > GROUP { 2 } else { 1 };
    // First the unsigned path: x + 128 in `magnitudes`, the over-limit pairs' excess in
    // `signs`, their quads in `extra`.
    let mut extra = [0u32; MAX_EXTRA];
    let cap = (cols.div_ceil(4) / EXTRA_SHARE).min(MAX_EXTRA);
    // SAFETY: `magnitudes` holds 2 * (PACK_MAX_COLS / 4) >= vectors * cols.div_ceil(4) vectors,
    // `signs` at least vectors * MAX_EXTRA; x holds n samples.
    let extras = unsafe { pack_unsigned(cols, x, n, vectors, magnitudes, signs, &mut extra, cap) };
    if let Some(count) = extras {
        let extra = extra.get(..count).unwrap_or(&[]);
        let mut order = [0u16; PACK_MAX_COLS / 4 + 1];
        // SAFETY: pack_unsigned wrote vectors * cols.div_ceil(4) vectors.
        let doubles = unsafe { pair_quads(cols, vectors, magnitudes, &mut order) };
        // `doubles` pairs cover 2 * doubles whole quads; the rest go one by one.
        let entries = cols / 4 - doubles;
        let (doubles, singles) = order.get(..entries).unwrap_or(&[]).split_at(doubles.min(entries));
        for o in block_starts(rows, PACK_ROWS) {
            // SAFETY: o + 8 <= rows; the buffers hold what pack_unsigned wrote (count extra
            // quads), `doubles` and `singles` name quads below cols.div_ceil(4) (the first of two
            // for `doubles`); the outputs of samples 0..n are in bounds (caller).
            unsafe {
                if vectors == 2 {
                    rows8_unsigned::<4, 2>(p, ep_unsigned, magnitudes, signs, doubles, singles, extra, n, out, o)
                } else {
                    rows8_unsigned::<8, 1>(p, ep_unsigned, magnitudes, signs, doubles, singles, extra, n, out, o)
                }
            }
        }
        return;
    }
    for v in 0..vectors {
        let samples = (n - GROUP * v).min(GROUP);
        let xv = x.get(GROUP * v * cols..).unwrap_or(&[]);
        // SAFETY: both buffers hold 2 * (PACK_MAX_COLS / 4) >= vectors * cols.div_ceil(4)
        // vectors; xv holds `samples` samples.
        unsafe { pack_group(cols, xv, samples, vectors, magnitudes.add(v), signs.add(v)) };
    }
    for o in block_starts(rows, PACK_ROWS) {
        // SAFETY: o + 8 <= rows; both buffers hold vectors * cols.div_ceil(4) written vectors;
        // the outputs of samples 0..n are in bounds (caller).
        unsafe {
            if vectors == 2 {
                rows8_of_group::<4, 2>(p, ep, magnitudes, signs, n, out, o)
            } else {
                rows8_of_group::<8, 1>(p, ep, magnitudes, signs, n, out, o)
            }
        }
    }
}

/// The group's `n` samples as unsigned bytes `u = x + 128`, packed as [`pack_group`] packs
/// them (quad `q` of sample vector `v` at `vectors * q + v` of `unsigned`), ready for
/// `vpmaddubsw` without the sign trick. Its int16 pairs `u1 * w1 + u2 * w2` are exact while
/// `u1 + u2 <= 258` (`258 * 127 = 32766`); a pair over that keeps `min(u, 129)` of each
/// activation, and the rest goes into the quad's excess vectors (at most `255 - 129 = 126`
/// each, whose pairs are exact too): quad number `extra[k]`, vectors `vectors * k + v` of
/// `excess`. Returns how many quads have an excess, or `None` when more than `cap` do (the
/// sign-trick kernel is then the faster one).
///
/// # Safety
/// AVX2; `x` holds `n * cols` inputs; `unsigned` has room for `vectors * cols.div_ceil(4)`
/// vectors, `excess` for `vectors * cap`; `cap <= MAX_EXTRA`; `vectors` is 1 or 2 and
/// `n <= 8 * vectors`.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn pack_unsigned(
    cols: usize,
    x: &[u8],
    n: usize,
    vectors: usize,
    unsigned: *mut __m256i,
    excess: *mut __m256i,
    extra: &mut [u32; MAX_EXTRA],
    cap: usize,
) -> Option<usize> {
    let quads = cols / 4;
    let flip = _mm256_set1_epi8(i8::MIN);
    let ones = _mm256_set1_epi8(1);
    let limit = _mm256_set1_epi16(PAIR_LIMIT);
    let clip = _mm256_set1_epi8(CLIP as i8);
    let mut count = 0;
    // Quad q of every sample vector, as x.
    let mut put = |q: usize, xs: [__m256i; 2]| -> bool {
        let mut over = [_mm256_setzero_si256(); 2];
        let mut any = false;
        for (v, &xv) in xs.iter().enumerate().take(vectors) {
            let mut u = _mm256_xor_si256(xv, flip);
            // Pair sums u1 + u2 (<= 510: exact in int16) over the limit.
            let big = _mm256_cmpgt_epi16(_mm256_maddubs_epi16(u, ones), limit);
            if _mm256_testz_si256(big, big) == 0 {
                let kept = _mm256_blendv_epi8(u, _mm256_min_epu8(u, clip), big);
                over[v] = _mm256_sub_epi8(u, kept);
                u = kept;
                any = true;
            }
            // SAFETY: q < cols.div_ceil(4): inside `unsigned` (caller's contract).
            unsafe { unsigned.add(vectors * q + v).write(u) };
        }
        if any {
            if count == cap {
                return false;
            }
            extra[count] = q as u32;
            for (v, &e) in over.iter().enumerate().take(vectors) {
                // SAFETY: count < cap: inside `excess` (caller's contract).
                unsafe { excess.add(vectors * count + v).write(e) };
            }
            count += 1;
        }
        true
    };
    // 8 quads at a time: 32 bytes of each sample, then an 8 x 8 dword transpose.
    let mut q0 = 0;
    while q0 < quads {
        let span = (quads - q0).min(GROUP);
        let words = _mm256_cmpgt_epi32(_mm256_set1_epi32(span as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let mut by_vector = [[_mm256_setzero_si256(); GROUP]; 2];
        for (v, by_quad) in by_vector.iter_mut().enumerate().take(vectors) {
            let by_sample: [__m256i; GROUP] = core::array::from_fn(|s| {
                let sample = GROUP * v + s;
                match x.get(sample * cols + 4 * q0..) {
                    // SAFETY: sample < n: bytes 4*q0 .. 4*(q0 + span) <= cols of it are inside
                    // x; masked-off dwords are not accessed.
                    Some(from) if sample < n => unsafe { _mm256_maskload_epi32(from.as_ptr().cast(), words) },
                    _ => _mm256_setzero_si256(),
                }
            });
            *by_quad = transpose8(&by_sample);
        }
        for (i, (&first, &second)) in by_vector[0].iter().zip(&by_vector[1]).enumerate().take(span) {
            if !put(q0 + i, [first, second]) {
                return None;
            }
        }
        q0 += span;
    }
    let rest = cols % 4;
    if rest > 0 {
        // The last 1..=3 columns; the bytes past them are u = 0 (x = -128), which keeps their
        // pairs under the limit (their weights are zero-padded anyway).
        let xs: [__m256i; 2] = core::array::from_fn(|v| {
            let dwords: [i32; GROUP] = core::array::from_fn(|s| {
                let sample = GROUP * v + s;
                match x.get(sample * cols + 4 * quads..(sample + 1) * cols) {
                    // SAFETY: the `rest` bytes are inside x.
                    Some(tail) if sample < n && v < vectors => unsafe {
                        (partial_word(tail.as_ptr(), rest, |v| v) | (0x8080_8080u32 << (8 * rest))) as i32
                    },
                    _ => 0,
                }
            });
            // SAFETY: `dwords` is 32 readable bytes.
            unsafe { _mm256_loadu_si256(dwords.as_ptr().cast()) }
        });
        if !put(quads, xs) {
            return None;
        }
    }
    Some(count)
}

/// Sorts the quads of a group packed by [`pack_unsigned`] for [`rows8_unsigned`]: into
/// `order`, first the even quads `q` whose pair of quads `q, q + 1` can share one `vpmaddwd`
/// (two `vpmaddubsw` results added in int16 first), then every other whole quad one by one (the
/// last 1..=3 columns, if any, are not in `order`). The
/// int16 sum of a lane is `u1 w1 + u2 w2 + u3 w3 + u4 w4` over the two quads' pairs at that
/// position, exact while `u1 + u2 + u3 + u4 <= 258` (`258 * 127 = 32766`); with the two pairs
/// under the limit on their own (`pack_unsigned`), the four-sums are at most 516, in int16.
/// Returns how many pairs come first, `d`; `order` then holds `cols / 4 - d` entries in all.
///
/// # Safety
/// AVX2; `unsigned` holds `vectors * cols.div_ceil(4)` vectors as [`pack_unsigned`] wrote them.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pair_quads(
    cols: usize,
    vectors: usize,
    unsigned: *const __m256i,
    order: &mut [u16; PACK_MAX_COLS / 4 + 1],
) -> usize {
    let quads = cols / 4;
    let ones = _mm256_set1_epi8(1);
    let limit = _mm256_set1_epi16(PAIR_LIMIT);
    let mut doubles = 0;
    // Singles are written from the back, then moved behind the doubles.
    let mut singles = [0u16; PACK_MAX_COLS / 4 + 1];
    let mut single = 0;
    for q in (0..quads - quads % 2).step_by(2) {
        let mut over = _mm256_setzero_si256();
        for v in 0..vectors {
            // SAFETY: quads q and q + 1 < total were written for every vector.
            let (a, b) = unsafe { (unsigned.add(vectors * q + v).read(), unsigned.add(vectors * (q + 1) + v).read()) };
            let sums = _mm256_add_epi16(_mm256_maddubs_epi16(a, ones), _mm256_maddubs_epi16(b, ones));
            over = _mm256_or_si256(over, _mm256_cmpgt_epi16(sums, limit));
        }
        if _mm256_testz_si256(over, over) != 0 {
            order[doubles] = q as u16;
            doubles += 1;
        } else {
            singles[single] = q as u16;
            singles[single + 1] = (q + 1) as u16;
            single += 2;
        }
    }
    if quads % 2 == 1 {
        singles[single] = (quads - 1) as u16;
        single += 1;
    }
    for (slot, &q) in order.iter_mut().skip(doubles).zip(singles.iter().take(single)) {
        *slot = q;
    }
    doubles
}

/// Rows `o..o+8` of a group packed by [`pack_unsigned`]: as [`rows8_of_group`], with
/// `vpmaddubsw` straight on `u = x + 128` (no sign trick: one operation less per 32
/// multiply-adds), then the excess of the `extra` quads, and the epilogue taking off
/// `128 * weight_sums`.
///
/// # Safety
/// AVX2; `o + 8 <= rows`; `unsigned` holds `V * cols.div_ceil(4)` vectors and `excess`
/// `V * extra.len()` as [`pack_unsigned`] wrote them; `out` points to `n` samples' outputs,
/// and `p`'s buffers cover its shape.
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows8_unsigned<const R: usize, const V: usize>(
    p: &DenseI8<'_>,
    ep: &Epilogue<'_>,
    unsigned: *const __m256i,
    excess: *const __m256i,
    doubles: &[u16],
    singles: &[u16],
    extra: &[u32],
    n: usize,
    out: *mut i8,
    o: usize,
) {
    let (rows, cols) = (p.rows, p.cols);
    let quads = cols / 4;
    let rest = cols % 4;
    let ones = _mm256_set1_epi16(1);
    // tile[v][r] lane s: row o + r of sample 8 v + s.
    let mut tile = [[_mm256_setzero_si256(); PACK_ROWS]; V];
    for r0 in (0..PACK_ROWS).step_by(R) {
        // SAFETY: rows o + r0 .. o + r0 + R are inside the weights.
        let w = unsafe { p.weights.as_ptr().add((o + r0) * cols) };
        let mut acc = [[_mm256_setzero_si256(); V]; R];
        let step = |acc: &mut [[__m256i; V]; R], u: [__m256i; V], word: &dyn Fn(usize) -> i32| {
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv = _mm256_set1_epi32(word(r));
                for v in 0..V {
                    acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(_mm256_maddubs_epi16(u[v], wv), ones));
                }
            }
        };
        // The weight word of quad q of row r0 + r (the last 1..=3 weights assembled so as not
        // to read past the weights).
        let word = |q: usize, r: usize| -> i32 {
            // SAFETY: row o + r0 + r < rows, and 4q + 4 <= cols keeps the read inside it;
            // for q == quads, bytes 4*quads .. cols are.
            unsafe {
                if q < quads {
                    w.add(r * cols + 4 * q).cast::<i32>().read_unaligned()
                } else {
                    partial_word(w.add(r * cols + 4 * quads), rest, |v| v) as i32
                }
            }
        };
        for &q in doubles {
            let q = q as usize;
            // SAFETY: q + 1 < quads (pair_quads): both quads' V vectors were written, and their
            // 8 weight bytes of each row are inside it.
            let (a, b): ([__m256i; V], [__m256i; V]) = unsafe {
                (
                    core::array::from_fn(|v| unsigned.add(V * q + v).read()),
                    core::array::from_fn(|v| unsigned.add(V * (q + 1) + v).read()),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as above.
                let (wa, wb) = unsafe {
                    let at = w.add(r * cols + 4 * q).cast::<i32>();
                    (_mm256_set1_epi32(at.read_unaligned()), _mm256_set1_epi32(at.add(1).read_unaligned()))
                };
                for v in 0..V {
                    // Exact in int16: the four-sums of u are at most 258 (pair_quads).
                    let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(a[v], wa), _mm256_maddubs_epi16(b[v], wb));
                    acc[v] = _mm256_add_epi32(acc[v], _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        for &q in singles {
            let q = q as usize;
            // SAFETY: q < quads: the group's V vectors of quad q were written, and its 4 weight
            // bytes of each row are inside it.
            let u = core::array::from_fn(|v| unsafe { unsigned.add(V * q + v).read() });
            // SAFETY: as above, q < quads.
            step(&mut acc, u, &|r| unsafe { w.add(r * cols + 4 * q).cast::<i32>().read_unaligned() });
        }
        if rest > 0 {
            // SAFETY: quad `quads` was written.
            let u = core::array::from_fn(|v| unsafe { unsigned.add(V * quads + v).read() });
            step(&mut acc, u, &|r| word(quads, r));
        }
        for (k, &q) in extra.iter().enumerate() {
            // SAFETY: k < extra.len(): its V excess vectors were written.
            let e = core::array::from_fn(|v| unsafe { excess.add(V * k + v).read() });
            step(&mut acc, e, &|r| word(q as usize, r));
        }
        for (r, acc) in acc.iter().enumerate() {
            for (by_row, &a) in tile.iter_mut().zip(acc) {
                by_row[r0 + r] = a;
            }
        }
    }
    // SAFETY: the caller's bounds.
    unsafe { store_tile(ep, &tile, n, out, rows, o) };
}

/// Requantizes a packed kernel's tile (`tile[v][r]` lane `s`: row `o + r` of sample `8 v + s`)
/// and stores the rows `o..o + 8` of its first `n` samples.
///
/// # Safety
/// AVX2; `o + 8 <= rows`; `out` may be written `n * rows` bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn store_tile<const V: usize>(
    ep: &Epilogue<'_>,
    tile: &[[__m256i; PACK_ROWS]; V],
    n: usize,
    out: *mut i8,
    rows: usize,
    o: usize,
) {
    // SAFETY: o + 8 <= rows.
    let params = unsafe { ep.params8(o) };
    for (v, by_row) in tile.iter().enumerate() {
        for (s, &y) in transpose8(by_row).iter().enumerate().take(n.saturating_sub(GROUP * v)) {
            // SAFETY: sample 8 v + s < n: its outputs o..o+8 are in bounds.
            unsafe { out.add((GROUP * v + s) * rows + o).cast::<u64>().write_unaligned(pack8(ep.apply8(&params, y))) };
        }
    }
}

/// Writes `n` (1..=8) samples' activations from `x` (`cols` apart) packed, one vector per quad
/// of columns, `stride` vectors apart: vector `q` of `signs` holds activations `4q..4q+4` of
/// sample `s` in dword `s`, and the same vector of `magnitudes` their absolute values (as u8:
/// 128 fits). Dwords past the group are zero, so that they add nothing. Writes
/// `cols.div_ceil(4)` vectors into each.
///
/// # Safety
/// AVX2; `x` holds `n * cols` inputs; each buffer has room for `stride * cols.div_ceil(4)`
/// vectors.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn pack_group(cols: usize, x: &[u8], n: usize, stride: usize, magnitudes: *mut __m256i, signs: *mut __m256i) {
    let quads = cols / 4;
    let put = |q: usize, v: __m256i| {
        // SAFETY: q < cols.div_ceil(4): inside both buffers (caller's contract).
        unsafe {
            signs.add(stride * q).write(v);
            magnitudes.add(stride * q).write(_mm256_abs_epi8(v));
        }
    };
    // 8 quads at a time: 32 bytes of each sample, then an 8 x 8 dword transpose.
    let mut q0 = 0;
    while q0 < quads {
        let count = (quads - q0).min(GROUP);
        let words = _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        let by_sample: [__m256i; GROUP] = core::array::from_fn(|s| match x.get(s * cols + 4 * q0..) {
            // SAFETY: s < n: bytes 4*q0 .. 4*(q0 + count) <= cols of sample s are inside x;
            // masked-off dwords are not accessed.
            Some(from) if s < n => unsafe { _mm256_maskload_epi32(from.as_ptr().cast(), words) },
            _ => _mm256_setzero_si256(),
        });
        for (i, &v) in transpose8(&by_sample).iter().enumerate().take(count) {
            put(q0 + i, v);
        }
        q0 += count;
    }
    let rest = cols % 4;
    if rest > 0 {
        let dwords: [i32; GROUP] = core::array::from_fn(|s| match x.get(s * cols + 4 * quads..(s + 1) * cols) {
            // SAFETY: the `rest` bytes are inside x.
            Some(tail) if s < n => unsafe { partial_word(tail.as_ptr(), rest, |v| v) as i32 },
            _ => 0,
        });
        // SAFETY: `dwords` is 32 readable bytes.
        put(quads, unsafe { _mm256_loadu_si256(dwords.as_ptr().cast()) });
    }
}

/// The transpose of an 8 x 8 matrix of dwords, one row per vector.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn transpose8(v: &[__m256i; 8]) -> [__m256i; 8] {
    // Within each 128-bit lane, 4 x 4 transposes of rows 0..4 and 4..8: u[j] (j < 4) holds
    // column j of rows 0..4 in its low lane and column 4 + j in its high lane; u[4 + j] the
    // same for rows 4..8.
    let t: [__m256i; 8] = core::array::from_fn(|i| {
        let (a, b) = (v[i & !1], v[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_epi32(a, b)
        } else {
            _mm256_unpackhi_epi32(a, b)
        }
    });
    let u: [__m256i; 8] = core::array::from_fn(|i| {
        let (g, j) = (i / 4, i % 4);
        let (a, b) = (t[4 * g + (j / 2)], t[4 * g + 2 + (j / 2)]);
        if j % 2 == 0 {
            _mm256_unpacklo_epi64(a, b)
        } else {
            _mm256_unpackhi_epi64(a, b)
        }
    });
    core::array::from_fn(|c| {
        if c < 4 {
            _mm256_permute2x128_si256::<0x20>(u[c], u[4 + c])
        } else {
            _mm256_permute2x128_si256::<0x31>(u[c - 4], u[c])
        }
    })
}

/// Rows `o..o+8` of a packed group of `n <= 8 * V` samples, `R` rows (`R * V = 8`) per
/// pass over the packed activations.
///
/// # Safety
/// AVX2; `o + 8 <= rows`; `magnitudes` and `signs` hold `V * cols.div_ceil(4)` vectors as
/// written by [`pack_group`] (vector `V q + v` for quad `q` of sample vector `v`); `out`
/// points to `n` samples' outputs, and `p`'s buffers cover its shape.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn rows8_of_group<const R: usize, const V: usize>(
    p: &DenseI8<'_>,
    ep: &Epilogue<'_>,
    magnitudes: *const __m256i,
    signs: *const __m256i,
    n: usize,
    out: *mut i8,
    o: usize,
) {
    let (rows, cols) = (p.rows, p.cols);
    let quads = cols / 4;
    let rest = cols % 4;
    let ones = _mm256_set1_epi16(1);
    // tile[v][r] lane s: row o + r of sample 8 v + s.
    let mut tile = [[_mm256_setzero_si256(); PACK_ROWS]; V];
    for r0 in (0..PACK_ROWS).step_by(R) {
        // SAFETY: rows o + r0 .. o + r0 + R are inside the weights.
        let w = unsafe { p.weights.as_ptr().add((o + r0) * cols) };
        let mut acc = [[_mm256_setzero_si256(); V]; R];
        let mut step = |q: usize, word: &dyn Fn(usize) -> i32| {
            // SAFETY: q < cols.div_ceil(4): the group's V vectors of quad q were written.
            let (xa, xs): ([__m256i; V], [__m256i; V]) = unsafe {
                (
                    core::array::from_fn(|v| magnitudes.add(V * q + v).read()),
                    core::array::from_fn(|v| signs.add(V * q + v).read()),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                let wv = _mm256_set1_epi32(word(r));
                for v in 0..V {
                    acc[v] = dot4(acc[v], xa[v], xs[v], wv, ones);
                }
            }
        };
        for q in 0..quads {
            // SAFETY: row o + r0 + r < rows, and 4q + 4 <= cols keeps the read inside it.
            step(q, &|r| unsafe { w.add(r * cols + 4 * q).cast::<i32>().read_unaligned() });
        }
        if rest > 0 {
            // The last 1..=3 weights of each row, assembled so as not to read past the weights.
            // SAFETY: bytes 4*quads .. cols are inside row o + r0 + r.
            step(quads, &|r| unsafe { partial_word(w.add(r * cols + 4 * quads), rest, |v| v) as i32 });
        }
        for (r, acc) in acc.iter().enumerate() {
            for (by_row, &a) in tile.iter_mut().zip(acc) {
                by_row[r0 + r] = a;
            }
        }
    }
    // SAFETY: the caller's bounds.
    unsafe { store_tile(ep, &tile, n, out, rows, o) };
}

/// `acc +` the products of 8 samples' 4 activations (`|x|` in `xa`, `x` in `xs`, one dword
/// per sample) with the same 4 weights (`w`, broadcast), each sample's 4 in its own lane.
#[target_feature(enable = "avx2")]
#[inline]
fn dot4(acc: __m256i, xa: __m256i, xs: __m256i, w: __m256i, ones: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w, xs));
    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones))
}

/// `acc + x . w` over 32 byte pairs, `xa` being `|x|`.
#[target_feature(enable = "avx2")]
#[inline]
fn dot32(acc: __m256i, xa: __m256i, x: __m256i, w: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(xa, _mm256_sign_epi8(w, x));
    _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// The 8 requantized int32 lanes of `y` as 8 bytes (little-endian: lane 0 first).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn pack8(y: __m256i) -> u64 {
    let bytes = _mm256_packs_epi16(_mm256_packs_epi32(y, y), _mm256_setzero_si256());
    let both = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 0, 0, 0, 0, 0, 0));
    _mm_cvtsi128_si64(_mm256_castsi256_si128(both)) as u64
}

/// Rows `o..o+8` of one sample.
///
/// # Safety
/// AVX2; `x` holds `cols` inputs, `out` points to `rows` outputs, `o + 8 <= rows`, and `p`'s
/// buffers cover its shape.
#[target_feature(enable = "avx2")]
unsafe fn rows8_sample1(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: &[u8], out: *mut i8, o: usize) {
    let cols = p.cols;
    let full = cols / 32 * 32;
    // SAFETY: rows o..o+8 are inside the weights (o + 8 <= rows), so their start is too.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    let mut acc = [_mm256_setzero_si256(); ROWS];
    let mut k = 0;
    while k < full {
        // SAFETY: x holds cols bytes, and k + 32 <= full <= cols.
        let xv = unsafe { _mm256_loadu_si256(x.as_ptr().add(k).cast()) };
        let xa = _mm256_sign_epi8(xv, xv);
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: row o + r < rows, and k + 32 <= cols keeps the load inside it.
            let wv = unsafe { _mm256_loadu_si256(w.add(r * cols + k).cast()) };
            *a = dot32(*a, xa, xv, wv);
        }
        k += 32;
    }
    if full < cols {
        let xv = activation_tail(x.get(full..).unwrap_or(&[]), |v| v);
        let xa = _mm256_sign_epi8(xv, xv);
        for (r, a) in acc.iter_mut().enumerate() {
            *a = dot32(*a, xa, xv, load32_or_pad(p.weights, (o + r) * cols + full));
        }
    }
    // SAFETY: o + 8 <= rows (caller); the 8 outputs are in bounds.
    unsafe {
        let y = ep.rows8(reduce8(&acc), o);
        out.add(o).cast::<u64>().write_unaligned(pack8(y));
    }
}

/// Rows `o..o+4` of two samples (`x` holds both samples' inputs, outputs at `out` and
/// `out + rows`).
///
/// # Safety
/// AVX2; `x` holds `2 * cols` inputs, `out` points to `2 * rows` outputs, `o + 4 <= rows`, and
/// `p`'s buffers cover its shape.
#[target_feature(enable = "avx2")]
unsafe fn rows4_samples2(p: &DenseI8<'_>, ep: &Epilogue<'_>, x: &[u8], out: *mut i8, o: usize) {
    let (rows, cols) = (p.rows, p.cols);
    let full = cols / 32 * 32;
    // SAFETY: rows o..o+4 are inside the weights (o + 4 <= rows), so their start is too.
    let w = unsafe { p.weights.as_ptr().add(o * cols) };
    // acc[4 s + r]: row o+r of sample s.
    let mut acc = [_mm256_setzero_si256(); ROW_BLOCK * SAMPLE_BLOCK];
    let mut k = 0;
    while k < full {
        // SAFETY: rows o..o+4 < rows, and k + 32 <= full <= cols keeps each load inside its row.
        let wv: [__m256i; ROW_BLOCK] =
            core::array::from_fn(|r| unsafe { _mm256_loadu_si256(w.add(r * cols + k).cast()) });
        for s in 0..SAMPLE_BLOCK {
            // SAFETY: x holds both samples' cols bytes, and k + 32 <= cols.
            let xv = unsafe { _mm256_loadu_si256(x.as_ptr().add(s * cols + k).cast()) };
            let xa = _mm256_sign_epi8(xv, xv);
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = dot32(acc[ROW_BLOCK * s + r], xa, xv, wv[r]);
            }
        }
        k += 32;
    }
    if full < cols {
        let wv: [__m256i; ROW_BLOCK] = core::array::from_fn(|r| load32_or_pad(p.weights, (o + r) * cols + full));
        for s in 0..SAMPLE_BLOCK {
            let xv = activation_tail(x.get(s * cols + full..(s + 1) * cols).unwrap_or(&[]), |v| v);
            let xa = _mm256_sign_epi8(xv, xv);
            for r in 0..ROW_BLOCK {
                acc[ROW_BLOCK * s + r] = dot32(acc[ROW_BLOCK * s + r], xa, xv, wv[r]);
            }
        }
    }
    // SAFETY: o + 4 <= rows (caller); outputs o..o+4 of both samples are in bounds.
    unsafe {
        let bytes = pack8(ep.rows4x2(reduce8(&acc), o));
        out.add(o).cast::<u32>().write_unaligned(bytes as u32);
        out.add(rows + o).cast::<u32>().write_unaligned((bytes >> 32) as u32);
    }
}

/// Row `o` of one sample, for layers narrower than an 8-row block.
///
/// # Safety
/// AVX2; `x` holds `cols` inputs, `out` points to `rows` outputs, `o < rows`, and `p`'s buffers
/// cover its shape.
#[target_feature(enable = "avx2")]
unsafe fn row1_sample1(p: &DenseI8<'_>, x: &[u8], out: *mut i8, o: usize) {
    let cols = p.cols;
    let full = cols / 32 * 32;
    let mut acc = _mm256_setzero_si256();
    let mut k = 0;
    while k < full {
        // SAFETY: k + 32 <= cols: inside x and inside row o.
        let (xv, wv) = unsafe {
            (
                _mm256_loadu_si256(x.as_ptr().add(k).cast()),
                _mm256_loadu_si256(p.weights.as_ptr().add(o * cols + k).cast()),
            )
        };
        acc = dot32(acc, _mm256_sign_epi8(xv, xv), xv, wv);
        k += 32;
    }
    if full < cols {
        let xv = activation_tail(x.get(full..).unwrap_or(&[]), |v| v);
        acc = dot32(acc, _mm256_sign_epi8(xv, xv), xv, load32_or_pad(p.weights, o * cols + full));
    }
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 writable bytes.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
    let acc = lanes.iter().fold(param(p.bias, o), |a, &l| a.wrapping_add(l));
    let y = requantize(acc, param(p.multipliers, o), param(p.shifts, o), p.out_zero_point, p.act_min, p.act_max);
    // SAFETY: o < rows.
    unsafe { out.add(o).write(y) };
}
