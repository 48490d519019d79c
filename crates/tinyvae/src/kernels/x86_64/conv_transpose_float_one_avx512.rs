//! The one-output-channel case of the AVX-512 float transposed convolution
//! ([`super::conv_transpose_float_avx512`]): an image decoder's last layer, with outputs in the
//! lanes and no horizontal sum.
//!
//! With one output channel there is nothing to put in the lanes but outputs. The window here is
//! *planar*: one padded plane per input channel (a border of zeros). The outputs of one output
//! row of a phase read consecutive input columns, so for each tap and input channel one
//! 16-float load holds that input of 16 consecutive outputs' patches, and one FMA
//! against the tap's weight, broadcast, adds the products of 16 outputs. Four output rows go at
//! once, each in two accumulators (even and odd input channels), so that eight FMA chains hide
//! its latency. Border taps are multiplied too (by the zeros of the border: they add nothing
//! for finite weights); their lanes are other outputs' inside taps. Filling the window turns a
//! channels-last input into planes, 16 pixels by 16 channels at a time.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::conv_transpose_float_avx512::{transpose_tile, Geometry, WINDOW};
use crate::kernels::conv_layout::{first_output, Phase};
use crate::kernels::reference::le_f32;
use crate::kernels::ConvFloat;

/// Outputs per vector.
const LANES: usize = 16;
/// Output rows computed at once.
const ROWS: usize = 4;
/// Most weights of a layer (every phase's): a 4 x 4 kernel over 256 channels.
pub(super) const WEIGHTS: usize = 4096;
/// Zeros after the window, which the last outputs' 16-float loads may reach: the loads need
/// no mask, so they fold into the FMAs (masked, the layer measured a quarter slower).
const SLACK: usize = LANES;

/// The layer over `n` samples.
///
/// # Safety
/// AVX-512 F/BW/VL; `p.samples` gave `n` > 0 (with `F16` telling the weights' width); `g` is
/// `p`'s, with one output channel, its `cols` within [`WEIGHTS`] and its window within
/// [`WINDOW`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn run<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
    let d = &g.d;
    let (sh, sw) = (d.h.stride(), d.w.stride());
    let mut weights = [0f32; WEIGHTS];
    // SAFETY: the weights hold `cols` of them (`samples`), the buffer at least that many.
    unsafe { widen::<F16>(p.weights.as_ptr(), d.cols, weights.as_mut_ptr()) };
    let mut window = MaybeUninit::<[f32; WINDOW + SLACK]>::uninit();
    let window = window.as_mut_ptr().cast::<f32>();
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds C_in * height * width <= WINDOW floats, and the slack.
        unsafe { fill(p, g, xs, window) };
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            let w = weights.get(phase.offset..phase.offset + phase.cols).unwrap_or(&[]);
            // SAFETY: the window is filled; `w` is the phase's row.
            unsafe { phase_outputs(p, g, &phase, w, window, ys) };
        }
    }
}

/// `out[i] = w[i]` for `i < n` as f32, `w` little-endian f16 when `F16`, else f32.
///
/// # Safety
/// AVX-512 F/BW/VL; `w` holds `n` weights, `out` room for `n` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn widen<const F16: bool>(w: *const u8, n: usize, out: *mut f32) {
    let mut i = 0;
    while i < n {
        let m = ((1u32 << (n - i).min(LANES)) - 1) as __mmask16;
        // SAFETY: weights i..i + 16 below n (caller's contract); masked-off ones are neither
        // read nor written.
        unsafe {
            let v = if F16 {
                _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w.add(2 * i).cast()))
            } else {
                _mm512_maskz_loadu_ps(m, w.add(4 * i).cast())
            };
            _mm512_mask_storeu_ps(out.add(i), m, v);
        }
        i += LANES;
    }
}

/// Writes one sample's input into the planar window: plane `c` holds channel `c` of the
/// padded input, inside a border of zeros.
///
/// # Safety
/// AVX-512 F/BW/VL; `window` has room for `C_in * height * width` floats and [`SLACK`];
/// `xs` is one sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fill(p: &ConvFloat<'_>, g: &Geometry, xs: &[f32], window: *mut f32) {
    let (d, wd) = (&g.d, &g.window);
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    let plane = wd.height * wd.width;
    // SAFETY: the window's floats and the slack (caller's contract); zero bits are 0.0.
    let w = unsafe {
        window.write_bytes(0, cin * plane + SLACK);
        core::slice::from_raw_parts_mut(window, cin * plane)
    };
    let at = |c: usize, iy: usize, ix: usize| c * plane + (iy + wd.top) * wd.width + ix + wd.left;
    if p.in_shape.channels_last {
        for iy in 0..ih {
            for ix in (0..iw).step_by(LANES) {
                for c in (0..cin).step_by(LANES) {
                    let (pixels, channels) = ((iw - ix).min(LANES), (cin - c).min(LANES));
                    // SAFETY: channels c..c + channels of pixels ix..ix + pixels of row iy,
                    // inside `xs`; the same in planes c.., row iy, inside the window.
                    unsafe {
                        transpose_tile(
                            xs.as_ptr().add((iy * iw + ix) * cin + c),
                            (cin, pixels, channels),
                            window.add(at(c, iy, ix)),
                            plane,
                        )
                    };
                }
            }
        }
    } else {
        for (c, channel) in xs.chunks_exact(ih * iw).take(cin).enumerate() {
            for (iy, row) in channel.chunks_exact(iw).enumerate() {
                w[at(c, iy, 0)..][..iw].copy_from_slice(row);
            }
        }
    }
}

/// Every output of `phase`, 16 outputs of an output row at a time.
///
/// # Safety
/// AVX-512 F/BW/VL; the window is filled; `w` is the phase's row of weights; `ys` is one output
/// sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn phase_outputs(p: &ConvFloat<'_>, g: &Geometry, phase: &Phase, w: &[f32], window: *const f32, ys: &mut [f32]) {
    let d = &g.d;
    let (oy0, ox0) = (first_output(&d.h, phase.ry), first_output(&d.w, phase.rx));
    let (ow, sh, sw) = (d.w.output(), d.h.stride(), d.w.stride());
    let per_row = (ox0..ow).step_by(sw).count();
    let rows = (oy0..d.h.output()).step_by(sh).count();
    if per_row == 0 || rows == 0 {
        return;
    }
    // Each next output row of the phase reads one input row further, each next output of a
    // row one input column further: one division for the phase.
    let (iy0, ix0) = g.window.first_tap(d, phase, (oy0, ox0));
    let tile = Tile {
        window,
        plane: g.window.height * g.window.width,
        width: g.window.width,
        cin: d.in_channels_per_group,
        taps: (phase.taps_y, phase.taps_x),
        bias: le_f32(p.bias, 0),
    };
    let mut j = 0;
    while j < per_row {
        let count = (per_row - j).min(LANES);
        let mut k = 0;
        while k < rows {
            let live = (rows - k).min(ROWS);
            let first = (iy0 + k) * g.window.width + ix0 + j;
            // SAFETY: the first lane of rows k..k + live reads inside the window, the others at
            // most 15 floats further, inside the slack.
            let acc = unsafe {
                match live {
                    1 => pad(tile.rows::<1>(first, w)),
                    2 => pad(tile.rows::<2>(first, w)),
                    3 => pad(tile.rows::<3>(first, w)),
                    _ => tile.rows::<4>(first, w),
                }
            };
            for (r, &v) in acc.iter().enumerate().take(live) {
                // `max(0, v)` returns v when v is NaN, as the reference keeps it.
                let v = if p.relu { _mm512_max_ps(_mm512_setzero_ps(), v) } else { v };
                store(v, count, ys, (oy0 + (k + r) * sh) * ow + ox0 + j * sw, sw);
            }
            k += live;
        }
        j += count;
    }
}

/// `[v; R]` padded to `[v; ROWS]` with zeros (never stored).
#[target_feature(enable = "avx512f")]
#[inline]
fn pad<const R: usize>(acc: [__m512; R]) -> [__m512; ROWS] {
    core::array::from_fn(|r| if r < R { acc[r] } else { _mm512_setzero_ps() })
}

/// A phase's outputs as [`Tile::rows`] computes them.
struct Tile {
    window: *const f32,
    /// Floats per plane, and per window row.
    plane: usize,
    width: usize,
    cin: usize,
    /// The phase's tap rows and columns.
    taps: (usize, usize),
    bias: f32,
}

impl Tile {
    /// 16 outputs of `R` consecutive output rows of the phase (those past the row's end are
    /// garbage), the first output's first tap at window pixel `first` of each plane, `w` the
    /// phase's row of weights (`[ty][tx][C_in]`).
    ///
    /// # Safety
    /// AVX-512 F; the first output's taps lie inside the window, followed by [`SLACK`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn rows<const R: usize>(&self, first: usize, w: &[f32]) -> [__m512; R] {
        let cin = self.cin;
        let mut acc = [[_mm512_set1_ps(self.bias), _mm512_setzero_ps()]; R];
        let load = |at: *const f32| {
            // SAFETY: 16 floats inside the window and its slack (caller's contract).
            unsafe { _mm512_loadu_ps(at) }
        };
        for ty in 0..self.taps.0 {
            for tx in 0..self.taps.1 {
                let tap = self.window.wrapping_add(first + ty * self.width + tx);
                let wt = w.get((ty * self.taps.1 + tx) * cin..).unwrap_or(&[]);
                // Even and odd channels in two accumulators: eight FMA chains for four rows.
                let mut pairs = wt.chunks_exact(2).take(cin / 2);
                for (c, pair) in (&mut pairs).enumerate() {
                    let (w0, w1) = (_mm512_set1_ps(pair[0]), _mm512_set1_ps(pair[1]));
                    let at = tap.wrapping_add(2 * c * self.plane);
                    for (r, a) in acc.iter_mut().enumerate() {
                        let row = at.wrapping_add(r * self.width);
                        a[0] = _mm512_fmadd_ps(load(row), w0, a[0]);
                        a[1] = _mm512_fmadd_ps(load(row.wrapping_add(self.plane)), w1, a[1]);
                    }
                }
                if cin % 2 == 1 {
                    let w0 = _mm512_set1_ps(wt.get(cin - 1).copied().unwrap_or(0.0));
                    let at = tap.wrapping_add((cin - 1) * self.plane);
                    for (r, a) in acc.iter_mut().enumerate() {
                        a[0] = _mm512_fmadd_ps(load(at.wrapping_add(r * self.width)), w0, a[0]);
                    }
                }
            }
        }
        acc.map(|[a, b]| _mm512_add_ps(a, b))
    }
}

/// Writes the first `count` lanes of `y` to `ys` at `at`, `at + step`, `at + 2 * step`, ..:
/// one masked store for step 1, a masked scatter otherwise; nothing if the last is past the
/// end (which the geometry rules out).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn store(y: __m512, count: usize, ys: &mut [f32], at: usize, step: usize) {
    let last = at + (count.max(1) - 1) * step;
    if count == 0 || count > LANES || last >= ys.len() {
        return;
    }
    let m = ((1u32 << count) - 1) as __mmask16;
    let to = ys[at..].as_mut_ptr();
    if step == 1 {
        // SAFETY: the mask selects floats at..=last < ys.len(); masked-off ones are not touched.
        unsafe { _mm512_mask_storeu_ps(to, m, y) };
    } else {
        let index = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(step as i32),
        );
        // SAFETY: the mask selects floats at, at + step, .., last < ys.len(); masked-off lanes
        // are not written.
        unsafe { _mm512_mask_i32scatter_ps::<4>(to.cast(), m, index, y) };
    }
}
