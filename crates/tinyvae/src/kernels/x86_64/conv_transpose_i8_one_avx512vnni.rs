//! The one-output-channel case of the AVX-512 VNNI int8 transposed convolution
//! ([`super::conv_transpose_i8_avx512vnni`]): an image decoder's last layer, with outputs in
//! the lanes and no horizontal sum.
//!
//! The window here is *quad-major*: plane `q` holds input channels `4q..4q + 4` of every
//! pixel, one dword per pixel, rows of the padded input one after the other (channels past the
//! input's, when `C_in` is not a multiple of 4, hold anything: their weights are zero). The
//! outputs of one output row of a phase read consecutive input columns, so for each tap and
//! quad one 64-byte load holds that dword of 16 consecutive outputs' patches, and one
//! `vpdpbusd` against the tap's 4 weights (broadcast) adds their products to 16 accumulators,
//! one output per lane. Four output rows go at once, each in two accumulators, so that the
//! chains hide `vpdpbusd`'s latency. Against 16 pixels' patches in the lanes of a pixel-major
//! window (a 16-way horizontal sum and 16 pixel addresses per 16 outputs) this measured 8%
//! faster on the conv VAE's last layer (3.5 against 3.8 us a sample). Filling the window
//! turns the input from channels-last to quad-major: with 32 input channels (the conv VAE's)
//! by permutes, 16 pixels at a time, otherwise by gathers (a quarter of that layer's time).
//!
//! Exactness is the parent kernel's: a flipped window with a border of the input zero point,
//! the phase's bias and weight sum, [`Epilogue::apply16`] with the channel's parameters in
//! every lane.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::conv_transpose_i8_avx512vnni::{phase_dense, tail, Geometry, WINDOW};
use super::requantize_avx512::Epilogue;
use super::requantize_lanes_avx512::LaneTable;
use crate::kernels::conv_layout::first_output;
use crate::kernels::{ConvI8, DenseI8};

/// Outputs per vector.
const LANES: usize = 16;
/// Output rows computed at once.
const ROWS: usize = 4;
/// Most weight dwords (phases x taps x quads) of a layer: a 4 x 4 kernel over 256 channels.
pub(super) const TAP_QUADS: usize = 1024;
/// Bytes past the window that the last row's 16-dword loads may reach.
const SLACK: usize = 64;

/// Window bytes of a layer: `quads` planes of the padded input, and the slack.
pub(super) fn window_bytes(g: &Geometry) -> Option<usize> {
    g.window
        .height
        .checked_mul(g.window.width)?
        .checked_mul(4 * g.d.in_channels_per_group.div_ceil(4))?
        .checked_add(SLACK)
}

/// The layer over `n` samples.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `p.samples` gave `n` > 0; `g` is `p`'s, with one output channel,
/// [`window_bytes`] within [`WINDOW`] and the phases times [`tap_quads`] within
/// [`TAP_QUADS`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn run(p: &ConvI8<'_>, g: &Geometry, x: &[i8], n: usize, out: &mut [i8]) {
    let d = &g.d;
    let (sh, sw) = (d.h.stride(), d.w.stride());
    let mut window = MaybeUninit::<[u32; WINDOW / 4]>::uninit();
    let window = window.as_mut_ptr().cast::<u32>();
    let per_phase = tap_quads(g);
    let weights = tap_quad_weights(p, g);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds `window_bytes` <= WINDOW bytes.
        unsafe { fill(p, g, crate::cast::u8s(xs), window) };
        for index in 0..sh * sw {
            let (ry, rx) = (index / sw, index % sw);
            let phase = d.phase(true, ry, rx);
            let row = phase_dense(p, d, index);
            let w = &weights[index * per_phase..][..per_phase];
            // SAFETY: the window is filled.
            unsafe { phase_outputs(&row, w, g, window, (ry, rx), (phase.taps_y, phase.taps_x), ys) };
        }
    }
}

/// Every phase's tap-major row as dwords, tap by tap (phase `index` from `index *`
/// [`tap_quads`]), zero past the input's channels: what both one-channel kernels multiply.
pub(super) fn tap_quad_weights(p: &ConvI8<'_>, g: &Geometry) -> [i32; TAP_QUADS] {
    let d = &g.d;
    let (quads, per_phase) = (d.in_channels_per_group.div_ceil(4), tap_quads(g));
    let mut weights = [0i32; TAP_QUADS];
    for index in 0..d.h.stride() * d.w.stride() {
        let phase = d.phase(true, index / d.w.stride(), index % d.w.stride());
        if d.in_channels_per_group.is_multiple_of(4) {
            // Whole dwords: the row as it is (byte by byte, this measured 1% of the decoder).
            let to = weights.iter_mut().skip(index * per_phase);
            let row = tail(p.weights, phase.offset).get(..phase.cols).unwrap_or(&[]);
            for (w, four) in to.zip(row.chunks_exact(4)) {
                *w = i32::from_le_bytes([four[0], four[1], four[2], four[3]]);
            }
            continue;
        }
        let row = tail(p.weights, phase.offset).chunks_exact(d.in_channels_per_group);
        for (t, tap) in row.take(phase.taps_y * phase.taps_x).enumerate() {
            let at = index * per_phase + t * quads;
            for (w, four) in weights[at..at + quads].iter_mut().zip(tap.chunks(4)) {
                *w = i32::from_le_bytes(core::array::from_fn(|k| four.get(k).copied().unwrap_or(0)));
            }
        }
    }
    weights
}

/// Weight dwords the kernel keeps per phase: the most taps of any phase times the quads.
pub(super) fn tap_quads(g: &Geometry) -> usize {
    let d = &g.d;
    let taps_y = (0..d.h.stride()).map(|r| d.phase(true, r, 0).taps_y).max().unwrap_or(0);
    let taps_x = (0..d.w.stride()).map(|r| d.phase(true, 0, r).taps_x).max().unwrap_or(0);
    taps_y.saturating_mul(taps_x).saturating_mul(d.in_channels_per_group.div_ceil(4))
}

/// Writes one sample's input into the quad-major window, flipped, inside a border of the zero
/// point.
///
/// # Safety
/// `window` has room for [`window_bytes`]; `xs` is one sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn fill(p: &ConvI8<'_>, g: &Geometry, xs: &[u8], window: *mut u32) {
    let d = &g.d;
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    let quads = cin.div_ceil(4);
    let plane = g.window.height * g.window.width;
    // SAFETY: the window's quads * plane dwords, then the slack (caller's contract).
    let w = unsafe {
        let w = core::slice::from_raw_parts_mut(window, quads * plane + SLACK / 4);
        w.fill(u32::from_ne_bytes([g.border; 4]));
        w
    };
    let at = |q: usize, iy: usize, ix: usize| q * plane + (iy + g.window.top) * g.window.width + ix + g.window.left;
    if p.in_shape.channels_last && cin == 32 {
        // The conv VAE's last layer: 16 pixels' 8 dwords each, turned by permutes.
        let t = Transpose8x16::new();
        let flip = _mm512_set1_epi8(-128);
        for iy in 0..ih {
            let mut ix = 0;
            while ix < iw {
                let count = (iw - ix).min(LANES);
                let from = xs.as_ptr().wrapping_add((iy * iw + ix) * cin);
                let v: [__m512i; 8] = core::array::from_fn(|i| {
                    // Pixels 2i and 2i + 1, those of them below `count`.
                    let m = ((1u32 << (8 * count.saturating_sub(2 * i).min(2))) - 1) as __mmask16;
                    // SAFETY: the mask selects the quads of pixels ix + 2i.. < ix + count of row
                    // iy, inside `xs` (ih * iw * 32 bytes); masked-off lanes are not accessed.
                    unsafe { _mm512_maskz_loadu_epi32(m, from.wrapping_add(64 * i).cast()) }
                });
                let m = ((1u32 << count) - 1) as __mmask16;
                for (q, quad) in t.apply(&v).into_iter().enumerate() {
                    // SAFETY: row iy of plane q, columns ix..ix + count, inside the window.
                    unsafe {
                        _mm512_mask_storeu_epi32(window.add(at(q, iy, ix)).cast(), m, _mm512_xor_si512(quad, flip))
                    };
                }
                ix += count;
            }
        }
    } else if p.in_shape.channels_last && cin.is_multiple_of(4) {
        // Whole dwords: for each input row and quad, one gather takes the quad of 16 pixels
        // (scalar copies measured 10% slower on the layer).
        let step = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(cin as i32),
        );
        let flip = _mm512_set1_epi8(-128);
        for iy in 0..ih {
            let mut ix = 0;
            while ix < iw {
                let count = (iw - ix).min(LANES);
                let m = ((1u32 << count) - 1) as __mmask16;
                for q in 0..quads {
                    // SAFETY: the first `count` lanes read quad q of pixels ix..ix + count of
                    // row iy, inside `xs` (ih * iw * cin bytes); the others are not accessed.
                    // They go to row iy of plane q, columns ix..ix + count, inside the window.
                    unsafe {
                        let from = xs.as_ptr().add((iy * iw + ix) * cin + 4 * q);
                        let v = _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), m, step, from.cast());
                        _mm512_mask_storeu_epi32(window.add(at(q, iy, ix)).cast(), m, _mm512_xor_si512(v, flip));
                    }
                }
                ix += count;
            }
        }
    } else if p.in_shape.channels_last {
        for (i, pixel) in xs.chunks_exact(cin).take(ih * iw).enumerate() {
            let (iy, ix) = (i / iw, i % iw);
            let mut quads_of = pixel.chunks(4);
            for q in 0..quads {
                let bytes = quads_of.next().unwrap_or(&[]);
                let word: [u8; 4] = core::array::from_fn(|k| bytes.get(k).copied().unwrap_or(0));
                w[at(q, iy, ix)] = u32::from_le_bytes(word) ^ 0x8080_8080;
            }
        }
    } else {
        // One byte at a time.
        for (c, channel) in xs.chunks_exact(ih * iw).take(cin).enumerate() {
            for (i, &v) in channel.iter().enumerate() {
                let word = &mut w[at(c / 4, i / iw, i % iw)];
                let shift = 8 * (c % 4);
                *word = (*word & !(0xFF << shift)) | (((v ^ 0x80) as u32) << shift);
            }
        }
    }
}

/// The permutes that turn 16 pixels' 8 dwords (vector `i` holding pixels `2i` and `2i + 1`)
/// into 8 vectors of one dword of every pixel: three levels of two-source permutes, 24 in all
/// (8 gathers of 16 dwords measured a quarter of the conv VAE's last layer).
struct Transpose8x16 {
    /// Level 1: two vectors of 4 pixels into quads `4h..4h + 4` of them, quad-major.
    one: [__m512i; 2],
    /// Level 2: two such (8 pixels) into quads `2s, 2s + 1` of them, quad-major.
    two: [__m512i; 2],
    /// Level 3: two such (16 pixels) into quad `u` of them.
    three: [__m512i; 2],
}

impl Transpose8x16 {
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn new() -> Self {
        let index = |f: &dyn Fn(usize) -> usize| {
            let lanes: [i32; 16] = core::array::from_fn(|t| f(t) as i32);
            // SAFETY: 64 readable bytes.
            unsafe { _mm512_loadu_si512(lanes.as_ptr().cast()) }
        };
        // Source lanes count through both sources (16 + lane for the second).
        Transpose8x16 {
            // Lane 4 * quad + pixel; a source lane is 8 * pixel + quad.
            one: [0, 1].map(|h| index(&|t| (4 * h + t / 4) + 8 * (t % 4))),
            // Lane 8 * quad + pixel; a source lane is 4 * quad + pixel % 4.
            two: [0, 1].map(|s| index(&|t| 16 * (t % 8 / 4) + 4 * (2 * s + t / 8) + t % 4)),
            // Lane pixel; a source lane is 8 * quad + pixel % 8.
            three: [0, 1].map(|u| index(&|t| 16 * (t / 8) + 8 * u + t % 8)),
        }
    }

    /// Vector `q` of the result holds dword `q` of the 16 pixels of `v`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn apply(&self, v: &[__m512i; 8]) -> [__m512i; 8] {
        let level = |a: __m512i, b: __m512i, idx: &[__m512i; 2]| {
            [_mm512_permutex2var_epi32(a, idx[0], b), _mm512_permutex2var_epi32(a, idx[1], b)]
        };
        // l1[k][h]: pixels 4k..4k + 4, quads 4h..4h + 4.
        let l1: [[__m512i; 2]; 4] = core::array::from_fn(|k| level(v[2 * k], v[2 * k + 1], &self.one));
        // l2[g][h][s]: pixels 8g..8g + 8, quads 4h + 2s, 4h + 2s + 1.
        let l2: [[[__m512i; 2]; 2]; 2] =
            core::array::from_fn(|g| core::array::from_fn(|h| level(l1[2 * g][h], l1[2 * g + 1][h], &self.two)));
        core::array::from_fn(|q| {
            let (h, s) = (q / 4, q / 2 % 2);
            _mm512_permutex2var_epi32(l2[0][h][s], self.three[q % 2], l2[1][h][s])
        })
    }
}

/// Every output of phase `(ry, rx)`, 16 outputs of an output row at a time.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `row` is the phase's parameters and `weights` its row as dwords,
/// `quads` per tap; the window is filled; `ys` is one output sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn phase_outputs(
    row: &DenseI8<'_>,
    weights: &[i32],
    g: &Geometry,
    window: *const u32,
    (ry, rx): (usize, usize),
    (taps_y, taps_x): (usize, usize),
    ys: &mut [i8],
) {
    let d = &g.d;
    let cin = d.in_channels_per_group;
    let quads = cin.div_ceil(4);
    let plane = g.window.height * g.window.width;
    // The channel's parameters in every lane, so that the 16-row epilogue applies.
    let spread = |a: &[u8]| -> [u8; 4 * LANES] {
        let first = a.get(..4).map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]);
        // SAFETY: 16 words and 64 bytes are the same bits; every bit pattern is a byte.
        unsafe { core::mem::transmute([u32::from_ne_bytes(first); LANES]) }
    };
    let (bias, multipliers, shifts, weight_sums) =
        (spread(row.bias), spread(row.multipliers), spread(row.shifts), spread(row.weight_sums));
    let lanes = DenseI8 {
        rows: LANES,
        bias: &bias,
        multipliers: &multipliers,
        shifts: &shifts,
        weight_sums: &weight_sums,
        ..*row
    };
    let ep = Epilogue::new(&lanes, true);
    // SAFETY: the parameter arrays hold 16 entries.
    let params = unsafe { ep.params16(0) };
    let table = LaneTable::new(&ep, &params);
    let (ow, sw) = (d.w.output(), d.w.stride());
    let ox0 = first_output(&d.w, rx);
    let row_outputs = (ox0..ow).step_by(sw).count();
    let rows: [usize; ROWS] = core::array::from_fn(|r| r);
    let oys = (first_output(&d.h, ry)..d.h.output()).step_by(d.h.stride());
    let row_count = oys.clone().count();
    if row_outputs == 0 || row_count == 0 {
        return;
    }
    // Each next output row of the phase reads one input row further, each next output of a
    // row one input column further: one division for the phase.
    let (iy0, ix0) = g.first_tap_at((ry, rx), (first_output(&d.h, ry), ox0));
    let mut j = 0;
    while j < row_outputs {
        let count = (row_outputs - j).min(LANES);
        for group in (0..row_count).step_by(ROWS) {
            // ROWS output rows at once, each in two accumulators (even and odd quads): one
            // chain per output row waits on `vpdpbusd`'s latency.
            let first: [usize; ROWS] = rows.map(|r| {
                // Rows past the phase's repeat its first one, and are not stored.
                let k = group + if group + r < row_count { r } else { 0 };
                (iy0 + k) * g.window.width + ix0 + j
            });
            let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
            for ty in 0..taps_y {
                for tx in 0..taps_x {
                    let w = &weights[(ty * taps_x + tx) * quads..][..quads];
                    let tap = ty * g.window.width + tx;
                    // SAFETY: 16 dwords from a pixel of the window: a row's outputs read
                    // inside it, those past the row's end at most 15 dwords further, into the
                    // next rows or the slack; their lanes are not stored.
                    let load = |r: usize, q: usize| unsafe {
                        _mm512_loadu_si512(window.add(q * plane + first[r] + tap).cast())
                    };
                    let mut q = 0;
                    while q + 2 <= quads {
                        let (w0, w1) = (_mm512_set1_epi32(w[q]), _mm512_set1_epi32(w[q + 1]));
                        for (r, [a0, a1]) in acc.iter_mut().enumerate() {
                            *a0 = _mm512_dpbusd_epi32(*a0, load(r, q), w0);
                            *a1 = _mm512_dpbusd_epi32(*a1, load(r, q + 1), w1);
                        }
                        q += 2;
                    }
                    if q < quads {
                        let w0 = _mm512_set1_epi32(w[q]);
                        for (r, [a0, _]) in acc.iter_mut().enumerate() {
                            *a0 = _mm512_dpbusd_epi32(*a0, load(r, q), w0);
                        }
                    }
                }
            }
            for (r, [a0, a1]) in acc.iter().enumerate().take(row_count - group) {
                let oy = first_output(&d.h, ry) + (group + r) * d.h.stride();
                let sums = _mm512_add_epi32(*a0, *a1);
                let v = match &table {
                    Some(table) => table.apply(sums),
                    None => ep.apply16(&params, sums),
                };
                store(_mm512_cvtepi32_epi8(v), count, ys, oy * ow + ox0 + j * sw, sw);
            }
        }
        j += count;
    }
}

/// Writes the first `count` bytes of `y` to `ys` at `at`, `at + step`, `at + 2 * step`, ..:
/// one masked store for steps 1 and 2 (a stride-2 phase's outputs widened to words, the low
/// byte of each), byte by byte otherwise. The byte-by-byte stores of the stride-2 outputs
/// measured a fifth of the conv VAE's last layer.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn store(y: __m128i, count: usize, ys: &mut [i8], at: usize, step: usize) {
    let last = at + (count.max(1) - 1) * step;
    if count == 0 || count > LANES || last >= ys.len() {
        return;
    }
    let to = ys[at..].as_mut_ptr();
    // In both masked stores the mask selects bytes at, at + step, .., last (< ys.len(),
    // checked above); masked-off bytes are not accessed.
    match step {
        // SAFETY: see above.
        1 => unsafe { _mm_mask_storeu_epi8(to, ((1u32 << count) - 1) as __mmask16, y) },
        // SAFETY: see above.
        2 => unsafe {
            let m = 0x5555_5555u32 & ((1u64 << (2 * count)) - 1) as u32;
            _mm256_mask_storeu_epi8(to, m, _mm256_cvtepu8_epi16(y))
        },
        _ => {
            let mut bytes = [0i8; LANES];
            // SAFETY: 16 writable bytes.
            unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), y) };
            for (k, &v) in bytes.iter().enumerate().take(count) {
                if let Some(out) = ys.get_mut(at + k * step) {
                    *out = v;
                }
            }
        }
    }
}
