//! The one-output-channel int8 transposed convolution (an image decoder's last layer) with
//! AVX2, for the AVX2 and AVX-VNNI tables: [`super::conv_transpose_i8_one_avx512vnni`]'s
//! quad-major window and outputs in the lanes, 8 outputs per vector, with `vpmaddubsw`.
//!
//! The generic driver ran this layer as one Dense row per output pixel, each with an 8-way
//! horizontal sum: 26 us of the conv VAE decoder's 72 with AVX2. Here the window holds the
//! input's codes as they are (and the input zero point as the border), and each tap's quad
//! meets 8 consecutive outputs at once: the weights' dword, broadcast, takes each output's
//! signs (`vpsignb`), `vpmaddubsw` multiplies by `|x|` and `vpmaddwd` by ones sums the pairs
//! into int32, the sign trick of [`super::dense_i8_avx2`]: `|x| <= 128` and `|w| <= 127`
//! (weights are never -128) keep every pair within int16, so the sums are exact, and the bias
//! folds the zero point that the border reads as for every tap-major kernel.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::conv_transpose_i8_avx512vnni::{phase_dense, Geometry, WINDOW};
use super::conv_transpose_i8_one_avx512vnni::{tap_quad_weights, tap_quads, window_bytes};
use super::requantize_avx2::Epilogue;
use super::{has, Level};
use crate::kernels::conv_layout::first_output;
use crate::kernels::{patches, reference, ConvI8, DenseI8};

/// Outputs per vector.
const LANES: usize = 8;
/// Output rows computed at once.
const ROWS: usize = 4;

/// See [`crate::kernels::ConvI8Fn`]: this kernel for one output channel, `D`'s generic driver
/// for the rest.
pub fn conv_transpose_i8<D: patches::Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !has(Level::Avx2) {
        return reference::conv_transpose_i8(p, x, batch, out);
    }
    let Some(g) = Geometry::new(p).filter(|g| g.d.rows == 1) else {
        return patches::conv_transpose_i8::<D>(p, x, batch, out);
    };
    let n = p.samples(true, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: the CPU has AVX2 (checked above); `samples` returned n > 0 (the weights and
    // parameter arrays hold the layer, x and out n samples); `Geometry::new` checked that the
    // window and the phases' weight dwords fit their buffers.
    unsafe { run(p, &g, x, n, out) }
}

/// The layer over `n` samples.
///
/// # Safety
/// AVX2; as stated where [`conv_transpose_i8`] calls it.
#[target_feature(enable = "avx2")]
unsafe fn run(p: &ConvI8<'_>, g: &Geometry, x: &[i8], n: usize, out: &mut [i8]) {
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

/// Writes one sample's input into the quad-major window, as codes, inside a border of the
/// zero point.
///
/// # Safety
/// `window` has room for [`window_bytes`]; `xs` is one sample.
#[target_feature(enable = "avx2")]
unsafe fn fill(p: &ConvI8<'_>, g: &Geometry, xs: &[u8], window: *mut u32) {
    let d = &g.d;
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    let plane = g.window.height * g.window.width;
    let words = window_bytes(g).unwrap_or(0) / 4;
    // SAFETY: the window's `window_bytes` (caller's contract).
    let w = unsafe { core::slice::from_raw_parts_mut(window, words) };
    // `Geometry` holds the border flipped, for the unsigned kernels.
    w.fill(u32::from_ne_bytes([g.border ^ 0x80; 4]));
    let at = |q: usize, iy: usize, ix: usize| q * plane + (iy + g.window.top) * g.window.width + ix + g.window.left;
    let put = |w: &mut [u32], c: usize, iy: usize, ix: usize, v: u8| {
        let word = &mut w[at(c / 4, iy, ix)];
        let shift = 8 * (c % 4);
        *word = (*word & !(0xFF << shift)) | ((v as u32) << shift);
    };
    if !p.in_shape.channels_last {
        for (c, channel) in xs.chunks_exact(ih * iw).take(cin).enumerate() {
            for (iy, row) in channel.chunks_exact(iw).enumerate() {
                for (ix, &v) in row.iter().enumerate() {
                    put(w, c, iy, ix, v);
                }
            }
        }
        return;
    }
    for (i, pixel) in xs.chunks_exact(cin).take(ih * iw).enumerate() {
        let (iy, ix) = (i / iw, i % iw);
        if cin.is_multiple_of(4) {
            // Whole dwords (the conv VAE's last layer).
            let first = at(0, iy, ix);
            for (q, four) in pixel.chunks_exact(4).enumerate() {
                w[first + q * plane] = u32::from_le_bytes([four[0], four[1], four[2], four[3]]);
            }
        } else {
            for (c, &v) in pixel.iter().enumerate() {
                put(w, c, iy, ix, v);
            }
        }
    }
}

/// Every output of phase `(ry, rx)`, 8 outputs of 4 output rows at a time.
///
/// # Safety
/// AVX2; `row` is the phase's parameters and `weights` its row as dwords, `quads` per tap; the
/// window is filled; `ys` is one output sample.
#[target_feature(enable = "avx2")]
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
    let quads = d.in_channels_per_group.div_ceil(4);
    let plane = g.window.height * g.window.width;
    // The channel's parameters in every lane, so that the 8-row epilogue applies.
    let spread = |a: &[u8]| -> [u8; 4 * LANES] {
        let first = a.get(..4).map_or([0; 4], |b| [b[0], b[1], b[2], b[3]]);
        // SAFETY: 8 words and 32 bytes are the same bits; every bit pattern is a byte.
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
    let ep = Epilogue::new(&lanes, false);
    // SAFETY: the parameter arrays hold 8 entries.
    let params = unsafe { ep.params8(0) };
    let ones = _mm256_set1_epi16(1);
    let (ow, sw) = (d.w.output(), d.w.stride());
    let ox0 = first_output(&d.w, rx);
    let row_outputs = (ox0..ow).step_by(sw).count();
    let oy0 = first_output(&d.h, ry);
    let row_count = (oy0..d.h.output()).step_by(d.h.stride()).count();
    if row_outputs == 0 || row_count == 0 {
        return;
    }
    // Each next output row of the phase reads one input row further, each next output of a
    // row one input column further: one division for the phase.
    let (iy0, ix0) = g.first_tap_at((ry, rx), (oy0, ox0));
    let mut j = 0;
    while j < row_outputs {
        let count = (row_outputs - j).min(LANES);
        for group in (0..row_count).step_by(ROWS) {
            // Rows past the phase's repeat its first one, and are not stored.
            let first: [usize; ROWS] = core::array::from_fn(|r| {
                let k = group + if group + r < row_count { r } else { 0 };
                (iy0 + k) * g.window.width + ix0 + j
            });
            let mut acc = [_mm256_setzero_si256(); ROWS];
            for ty in 0..taps_y {
                for tx in 0..taps_x {
                    let w = &weights[(ty * taps_x + tx) * quads..][..quads];
                    let tap = ty * g.window.width + tx;
                    for (q, &wq) in w.iter().enumerate() {
                        let wv = _mm256_set1_epi32(wq);
                        for (a, &f) in acc.iter_mut().zip(&first) {
                            // SAFETY: 8 dwords from a pixel of the window: a row's outputs
                            // read inside it, those past the row's end at most 7 dwords
                            // further, into the next rows or the slack; their lanes are not
                            // stored.
                            let xv = unsafe { _mm256_loadu_si256(window.add(q * plane + f + tap).cast()) };
                            let pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(wv, xv));
                            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(pairs, ones));
                        }
                    }
                }
            }
            for (r, &a) in acc.iter().enumerate().take(row_count - group) {
                let oy = oy0 + (group + r) * d.h.stride();
                let mut y = [0i32; LANES];
                // SAFETY: 32 writable bytes.
                unsafe { _mm256_storeu_si256(y.as_mut_ptr().cast(), ep.apply8(&params, a)) };
                for (k, &v) in y.iter().enumerate().take(count) {
                    ys[oy * ow + ox0 + (j + k) * sw] = v as i8;
                }
            }
        }
        j += count;
    }
}
