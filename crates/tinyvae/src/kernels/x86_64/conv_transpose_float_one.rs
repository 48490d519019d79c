//! The one-output-channel case of the direct float transposed convolution
//! ([`super::conv_transpose_float`]): an image decoder's last layer, with outputs in the lanes
//! and no horizontal sum.
//!
//! With one output channel there is nothing to put in the lanes but outputs. The window here is
//! *planar*: one padded plane per input channel (a border of zeros). The outputs of one output
//! row of a phase read consecutive input columns, so for each tap and input channel one vector
//! load holds that input of a vector of consecutive outputs' patches, and one FMA against the
//! tap's weight, broadcast, adds their products. Four output rows go at once, each in two
//! accumulators (even and odd input channels), so that eight FMA chains hide its latency.
//! Border taps are multiplied too (by the zeros of the border: they add nothing for finite
//! weights); their lanes are other outputs' inside taps. Filling the window turns a
//! channels-last input into planes, a vector of pixels by a vector of channels at a time.

use core::mem::MaybeUninit;

use super::conv_transpose_float::{Geometry, WINDOW};
use super::float_lanes::FloatLanes;
use crate::kernels::conv_layout::{first_output, Phase};
use crate::kernels::reference::le_f32;
use crate::kernels::ConvFloat;

/// Output rows computed at once.
const ROWS: usize = 4;
/// Most weights of a layer (every phase's): a 4 x 4 kernel over 256 channels.
pub(super) const WEIGHTS: usize = 4096;
/// Zeros after the window, which the last outputs' vector loads may reach (a vector's lanes at
/// most): the loads need no mask, so they fold into the FMAs (masked, the AVX-512 layer
/// measured a quarter slower).
const SLACK: usize = 16;

/// The layer over `n` samples.
///
/// # Safety
/// `L`'s instructions; `p.samples` gave `n` > 0 (with `F16` telling the weights' width); `g`
/// is `p`'s, with one output channel, its `cols` within [`WEIGHTS`] and its window within
/// [`WINDOW`].
#[inline(always)]
pub(super) unsafe fn run<L: FloatLanes, const F16: bool>(
    p: &ConvFloat<'_>,
    g: &Geometry,
    x: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let d = &g.d;
    let (sh, sw) = (d.h.stride(), d.w.stride());
    // Not zeroed first (16 KiB of stores per call): only the `cols` written are read.
    let mut weights = MaybeUninit::<[f32; WEIGHTS]>::uninit();
    // SAFETY: the weights hold `cols` of them (`samples`), the buffer at least that many
    // (`Geometry::new`), and `widen` writes all `cols`.
    let weights = unsafe {
        let to = weights.as_mut_ptr().cast::<f32>();
        L::widen::<F16>(p.weights.as_ptr(), d.cols, to);
        core::slice::from_raw_parts(to, d.cols)
    };
    let mut window = MaybeUninit::<[f32; WINDOW + SLACK]>::uninit();
    let window = window.as_mut_ptr().cast::<f32>();
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds C_in * height * width <= WINDOW floats, and the slack.
        unsafe { fill::<L>(p, g, xs, window) };
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            let w = weights.get(phase.offset..phase.offset + phase.cols).unwrap_or(&[]);
            // SAFETY: the window is filled; `w` is the phase's row.
            unsafe { phase_outputs::<L>(p, g, &phase, w, window, ys) };
        }
    }
}

/// Writes one sample's input into the planar window: plane `c` holds channel `c` of the
/// padded input, inside a border of zeros.
///
/// # Safety
/// `L`'s instructions; `window` has room for `C_in * height * width` floats and [`SLACK`];
/// `xs` is one sample.
#[inline(always)]
unsafe fn fill<L: FloatLanes>(p: &ConvFloat<'_>, g: &Geometry, xs: &[f32], window: *mut f32) {
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
            for ix in (0..iw).step_by(L::N) {
                for c in (0..cin).step_by(L::N) {
                    let (pixels, channels) = ((iw - ix).min(L::N), (cin - c).min(L::N));
                    // SAFETY: channels c..c + channels of pixels ix..ix + pixels of row iy,
                    // inside `xs`; the same in planes c.., row iy, inside the window.
                    unsafe {
                        L::transpose_tile(
                            xs.as_ptr().add((iy * iw + ix) * cin + c),
                            cin,
                            pixels,
                            channels,
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

/// Every output of `phase`, a vector of outputs of an output row at a time.
///
/// # Safety
/// `L`'s instructions; the window is filled; `w` is the phase's row of weights; `ys` is one
/// output sample.
#[inline(always)]
unsafe fn phase_outputs<L: FloatLanes>(
    p: &ConvFloat<'_>,
    g: &Geometry,
    phase: &Phase,
    w: &[f32],
    window: *const f32,
    ys: &mut [f32],
) {
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
        let count = (per_row - j).min(L::N);
        let mut k = 0;
        while k < rows {
            let live = (rows - k).min(ROWS);
            let first = (iy0 + k) * g.window.width + ix0 + j;
            // SAFETY: the first lane of rows k..k + live reads inside the window, the others at
            // most 15 floats further, inside the slack.
            let acc = unsafe {
                match live {
                    1 => pad::<L, 1>(tile.rows::<L, 1>(first, w)),
                    2 => pad::<L, 2>(tile.rows::<L, 2>(first, w)),
                    3 => pad::<L, 3>(tile.rows::<L, 3>(first, w)),
                    _ => tile.rows::<L, 4>(first, w),
                }
            };
            for (r, &v) in acc.iter().enumerate().take(live) {
                // SAFETY: `L`'s instructions.
                unsafe {
                    let v = if p.relu { L::relu(v) } else { v };
                    L::store_strided(v, count, ys, (oy0 + (k + r) * sh) * ow + ox0 + j * sw, sw);
                }
            }
            k += live;
        }
        j += count;
    }
}

/// `[v; R]` padded to `[v; ROWS]` with the first (never stored).
#[inline(always)]
fn pad<L: FloatLanes, const R: usize>(acc: [L::V; R]) -> [L::V; ROWS] {
    let mut wide = [acc[0]; ROWS];
    wide[..R].copy_from_slice(&acc);
    wide
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
    /// A vector of outputs of `R` consecutive output rows of the phase (those past the row's
    /// end are garbage), the first output's first tap at window pixel `first` of each plane,
    /// `w` the phase's row of weights (`[ty][tx][C_in]`).
    ///
    /// # Safety
    /// `L`'s instructions; the first output's taps lie inside the window, followed by
    /// [`SLACK`].
    #[inline(always)]
    unsafe fn rows<L: FloatLanes, const R: usize>(&self, first: usize, w: &[f32]) -> [L::V; R] {
        let cin = self.cin;
        // SAFETY: `L`'s instructions.
        let mut acc = unsafe { [[L::splat(self.bias), L::zero()]; R] };
        if w.len() < self.taps.0 * self.taps.1 * cin {
            // Not the phase's row (which `Geometry::new` rules out): nothing to read.
            return core::array::from_fn(|r| acc[r][0]);
        }
        for ty in 0..self.taps.0 {
            for tx in 0..self.taps.1 {
                // Pointers stepped along the channels: indexing the pairs of weights cost a
                // bounds test and a multiplication per pair (a third of the loop's instructions).
                let mut at = self.window.wrapping_add(first + ty * self.width + tx);
                let mut wt = w[(ty * self.taps.1 + tx) * cin..].as_ptr();
                // Even and odd channels in two accumulators: eight FMA chains for four rows.
                for _ in 0..cin / 2 {
                    // SAFETY: `L`'s instructions; weights c, c + 1 of the tap, inside `w`
                    // (checked above); every load reads a vector inside the window and its
                    // slack (caller's contract).
                    unsafe {
                        let (w0, w1) = (L::splat(wt.read()), L::splat(wt.add(1).read()));
                        for (r, a) in acc.iter_mut().enumerate() {
                            let row = at.wrapping_add(r * self.width);
                            a[0] = L::fmadd(L::loadu(row), w0, a[0]);
                            a[1] = L::fmadd(L::loadu(row.wrapping_add(self.plane)), w1, a[1]);
                        }
                    }
                    at = at.wrapping_add(2 * self.plane);
                    wt = wt.wrapping_add(2);
                }
                if cin % 2 == 1 {
                    // SAFETY: as above, for the last channel.
                    unsafe {
                        let w0 = L::splat(wt.read());
                        for (r, a) in acc.iter_mut().enumerate() {
                            a[0] = L::fmadd(L::loadu(at.wrapping_add(r * self.width)), w0, a[0]);
                        }
                    }
                }
            }
        }
        let mut sums = [acc[0][0]; R];
        for (s, [a, b]) in sums.iter_mut().zip(acc) {
            // SAFETY: `L`'s instructions.
            *s = unsafe { L::add(a, b) };
        }
        sums
    }
}
