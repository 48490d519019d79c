//! The int8 transposed-convolution driver shared by the NEON and `sdot` kernels: it reads each
//! output's patch in place from a padded HWC window instead of gathering it.
//!
//! Through the generic driver ([`crate::kernels::patches`]) the conv VAE's decoder spent about
//! as many instructions transposing, gathering and scattering as multiplying. Here each
//! sample's input goes once into a [`TransposeWindow`] (HWC, a border of the input zero point
//! around it), and a patch row of a phase is one run of a window row, which the Dense
//! kernels' own assembly loops ([`DotStep::wide_4x4`], [`DotStep::wide_4x1`]) read where it
//! lies:
//! - **Four or more output channels**: tiles of 4 channels by 4 output pixels of a phase, each
//!   weight vector shared by the 4 pixels and each input vector by the 4 channels, the lanes
//!   summed per channel (three `addp` per pixel), so the 4 codes of a pixel come out of one
//!   [`ChannelQuant4`] (and, channels-last, one 4-byte store).
//! - **One to three output channels** (an image's last layer): the 4 pixels' patches as the
//!   rows and the channel's weights as the shared input, so a pixel costs a quarter of the
//!   weight loads and the 4 codes of 4 pixels one epilogue.
//!
//! Patch rows of `taps_x * C_in` bytes that are not whole vectors read on into the next
//! pixels of the window; the weights are then copied once per call into rows padded with
//! zeros to whole vectors, which cancel those extra bytes (the window has a zeroed slack
//! after it, so the last run stays inside). A partial tile repeats its last pixel or, for
//! channels, overlaps the previous tile: the same values are written twice.
//!
//! **Exactness.** A tap-major phase bias folds `-zp_in * sum` of its phase row and the border
//! reads the zero point, so each accumulator is the reference's in wrapping i32 arithmetic;
//! [`DotStep`]s are exact and [`ChannelQuant4`] is [`crate::quant::requantize`] bit for bit.
//! Any other layer (row-major weights, a phase without taps, a zero point outside int8, a
//! window or padded weights too large for the stack buffers) goes to the generic driver.

use core::arch::aarch64::*;
use core::mem::MaybeUninit;

use super::dense_i8_tiles::{load_channels, row_totals, DotStep};
use super::requantize::ChannelQuant4;
use crate::format::WeightLayout;
use crate::kernels::conv_layout::{first_output, Phase, TransposeWindow};
use crate::kernels::reference::le_i32;
use crate::kernels::{ConvDims, ConvI8};

/// Window bytes: the conv VAE decoder's 32-channel 14 x 14 input with its border takes half.
const WINDOW: usize = 16 * 1024;
/// Zeroed bytes after the window, for the last padded run.
const SLACK: usize = 16;
/// Bytes of weights padded to whole vectors, every phase's.
const PADDED: usize = 32 * 1024;

/// The checked shape of a layer these kernels take.
pub(super) struct Layer {
    d: ConvDims,
    window: TransposeWindow,
    zero_point: i8,
    /// Some phase's patch rows are not whole vectors: the weights go padded into a buffer.
    padded: bool,
}

impl Layer {
    /// `None` for a layer the generic driver keeps.
    pub(super) fn new(p: &ConvI8<'_>) -> Option<Self> {
        let d = p.dims(true)?;
        let zero_point = i8::try_from(p.in_zero_point).ok()?;
        if p.layout != WeightLayout::TapMajor || d.groups != 1 {
            return None;
        }
        let window = TransposeWindow::new(&d)?;
        let cin = d.in_channels_per_group;
        if window.height.checked_mul(window.width)?.checked_mul(cin)? > WINDOW {
            return None;
        }
        let (mut padded, mut padded_bytes) = (false, 0usize);
        for (ry, rx) in phases(&d) {
            let phase = d.phase(true, ry, rx);
            let run = phase.taps_x.checked_mul(cin)?;
            padded |= !run.is_multiple_of(16);
            let bytes = run.checked_next_multiple_of(16)?.checked_mul(phase.taps_y)?.checked_mul(d.rows)?;
            padded_bytes = padded_bytes.checked_add(bytes)?;
        }
        if padded && padded_bytes > PADDED {
            return None;
        }
        Some(Layer { d, window, zero_point, padded })
    }
}

/// The tap residues `(ry, rx)` of every phase, in the order of their bias blocks.
fn phases(d: &ConvDims) -> impl Iterator<Item = (usize, usize)> {
    let (sh, sw) = (d.h.stride(), d.w.stride());
    (0..sh).flat_map(move |ry| (0..sw).map(move |rx| (ry, rx)))
}

/// Patch-row bytes of a phase rounded up to whole vectors: what a weight row's run takes.
fn run_bytes(d: &ConvDims, phase: &Phase) -> usize {
    (phase.taps_x * d.in_channels_per_group).next_multiple_of(16)
}

/// The layer over `n` samples.
///
/// # Safety
/// NEON and `D`'s instructions; `l` is [`Layer::new`]`(p)` and `n` is `p.samples(true, x, _,
/// out)` (so the weights hold `rows * cols` bytes, the per-phase arrays `4 * rows * phases`,
/// the others `4 * rows`, `x` and `out` `n` samples).
#[target_feature(enable = "neon")]
pub(super) unsafe fn run<D: DotStep>(p: &ConvI8<'_>, l: &Layer, x: &[i8], n: usize, out: &mut [i8]) {
    let d = &l.d;
    let mut padded = MaybeUninit::<[i8; PADDED]>::uninit();
    let padded = padded.as_mut_ptr().cast::<i8>();
    if l.padded {
        // SAFETY: `Layer::new` checked that every phase's padded rows fit the buffer.
        unsafe { pad_weights(p, d, padded) };
    }
    let mut window = MaybeUninit::<[i8; WINDOW + SLACK]>::uninit();
    let window = window.as_mut_ptr().cast::<i8>();
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window's bytes and slack are inside the buffer (`Layer::new`).
        unsafe { fill(p, l, xs, window) };
        let mut padded_at = 0;
        for (ry, rx) in phases(d) {
            let phase = d.phase(true, ry, rx);
            let run = run_bytes(d, &phase);
            let weights = if l.padded {
                padded.wrapping_add(padded_at)
            } else {
                p.weights.as_ptr().cast::<i8>().wrapping_add(phase.offset)
            };
            padded_at += d.rows * phase.taps_y * run;
            let (oy0, ox0) = (first_output(&d.h, ry), first_output(&d.w, rx));
            if oy0 >= d.h.output() || ox0 >= d.w.output() {
                continue;
            }
            let (iy, ix) = l.window.first_tap(d, &phase, (oy0, ox0));
            let cin = d.in_channels_per_group;
            let ph = PhaseRun {
                first: window.wrapping_add((iy * l.window.width + ix) * cin),
                pixel_step: cin,
                row_step: l.window.width * cin,
                weights,
                weight_row: phase.taps_y * run,
                run,
                taps_y: phase.taps_y,
                per_row: (d.w.output() - ox0).div_ceil(d.w.stride()),
                count: (d.h.output() - oy0).div_ceil(d.h.stride()) * (d.w.output() - ox0).div_ceil(d.w.stride()),
                out_first: (oy0, ox0),
                out_step: (d.h.stride(), d.w.stride()),
                out_width: d.w.output(),
                bias: phase.index * d.rows,
            };
            // SAFETY: every patch of the phase lies inside the filled window (plus the slack
            // for a padded run), every weight row inside the weights or the padded buffer.
            unsafe {
                if d.rows >= 4 {
                    many_channels::<D>(p, &ph, ys)
                } else {
                    few_channels::<D>(p, &ph, ys)
                }
            }
        }
    }
}

/// One phase of one sample, as the tiles walk it.
struct PhaseRun {
    /// The window at the first tap of the phase's first output.
    first: *const i8,
    /// Window bytes from one output of a phase row to the next, and from one row to the next.
    pixel_step: usize,
    row_step: usize,
    /// The phase's first weight row; rows are `weight_row` bytes apart, each `taps_y` runs of
    /// `run` bytes.
    weights: *const i8,
    weight_row: usize,
    run: usize,
    taps_y: usize,
    /// Outputs per phase row, and in all.
    per_row: usize,
    count: usize,
    /// The first output's row and column, the steps to the next, the output width.
    out_first: (usize, usize),
    out_step: (usize, usize),
    out_width: usize,
    /// The phase's first bias and weight-sum entry.
    bias: usize,
}

impl PhaseRun {
    /// Calls `f` with each chunk of the phase's outputs as [`PhaseRun::list`] lists them: the
    /// window at each one's first tap and its position in a channel plane, a multiple of 4.
    #[inline(always)]
    fn for_each_chunk(&self, mut f: impl FnMut(&[*const i8], &[usize])) {
        let (mut at, mut out) = ([core::ptr::null::<i8>(); CHUNK], [0usize; CHUNK]);
        let mut base = 0;
        while base < self.count {
            let listed = self.list(base, &mut at, &mut out);
            base += CHUNK;
            // (`list` returns at most CHUNK: the gets never fail.)
            if let (Some(at), Some(out)) = (at.get(..listed), out.get(..listed)) {
                f(at, out);
            }
        }
    }

    /// Lists the phase's outputs `base..base + len` (`len <= CHUNK`): the window at each one's
    /// first tap and its position in a channel plane, the last repeated up to a multiple of 4
    /// (so a partial tile writes its last output again). Returns the listed length.
    fn list(&self, base: usize, at: &mut [*const i8; CHUNK], out: &mut [usize; CHUNK]) -> usize {
        let len = (self.count - base).min(CHUNK);
        let (mut k, mut j) = (base / self.per_row, base % self.per_row);
        let (mut last_at, mut last_out) = (self.first, 0);
        for (i, (at, out)) in at.iter_mut().zip(out.iter_mut()).enumerate().take(len.next_multiple_of(4)) {
            if i < len {
                last_at = self.first.wrapping_add(k * self.row_step + j * self.pixel_step);
                last_out =
                    (self.out_first.0 + k * self.out_step.0) * self.out_width + self.out_first.1 + j * self.out_step.1;
                j += 1;
                if j == self.per_row {
                    (k, j) = (k + 1, 0);
                }
            }
            (*at, *out) = (last_at, last_out);
        }
        len.next_multiple_of(4)
    }
}

/// Outputs of a phase listed at once (a multiple of 4): their offsets are worked out once,
/// not again for every tile of channels.
const CHUNK: usize = 64;

/// Tiles of 4 output channels by 4 outputs.
///
/// # Safety
/// As [`run`], with `rows >= 4`.
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn many_channels<D: DotStep>(p: &ConvI8<'_>, ph: &PhaseRun, ys: &mut [i8]) {
    let rows = p.out_shape.channels;
    let plane = p.out_shape.height * p.out_shape.width;
    ph.for_each_chunk(|at, out| {
        let mut next = 0;
        while next < rows {
            // The last tile overlaps the one before rather than running past the channels.
            let o = next.min(rows - 4);
            next += 4;
            // SAFETY: o + 4 <= rows, and the per-phase arrays hold the phase's rows (`run`).
            let (bias, quant) = unsafe {
                let quant = ChannelQuant4::new(
                    load_channels(p.multipliers, o),
                    load_channels(p.shifts, o),
                    p.out_zero_point,
                    p.act_min,
                    p.act_max,
                );
                (load_channels(p.bias, ph.bias + o), quant)
            };
            let w: [*const i8; 4] = core::array::from_fn(|r| ph.weights.wrapping_add((o + r) * ph.weight_row));
            for (x, at) in at.chunks_exact(4).zip(out.chunks_exact(4)) {
                let x: [*const i8; 4] = [x[0], x[1], x[2], x[3]];
                let mut acc = [[vdupq_n_s32(0); 4]; 4];
                for ty in 0..ph.taps_y {
                    let w = w.map(|w| w.wrapping_add(ty * ph.run));
                    let x = x.map(|x| x.wrapping_add(ty * ph.row_step));
                    // SAFETY: `run` bytes of each weight row and each patch row are readable.
                    unsafe { dot_4x4::<D>(&mut acc, &w, &x, ph.run) };
                }
                // SAFETY: NEON.
                let codes = unsafe {
                    let sums: [int32x4_t; 4] = core::array::from_fn(|s| {
                        vaddq_s32(row_totals([acc[0][s], acc[1][s], acc[2][s], acc[3][s]]), bias)
                    });
                    quant.apply4(sums)
                };
                // SAFETY: NEON; `store` writes inside `ys` only.
                unsafe {
                    store_tile(codes, &[at[0], at[1], at[2], at[3]], o, rows, plane, p.out_shape.channels_last, ys)
                };
            }
        }
    });
}

/// Stores a tile's codes (byte `4 * s + r`: channel `o + r` of output `at[s]`).
///
/// # Safety
/// NEON.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store_tile(
    codes: int8x16_t,
    at: &[usize; 4],
    o: usize,
    rows: usize,
    plane: usize,
    channels_last: bool,
    ys: &mut [i8],
) {
    if channels_last {
        // One 4-byte store per output, all four checked at once.
        let index = at.map(|at| at * rows + o);
        if index.iter().all(|&i| i + 4 <= ys.len()) {
            let words = vreinterpretq_u32_s8(codes);
            let y = ys.as_mut_ptr();
            // SAFETY: each 4-byte run is inside `ys` (checked above); unaligned writes.
            unsafe {
                y.add(index[0]).cast::<u32>().write_unaligned(vgetq_lane_u32::<0>(words));
                y.add(index[1]).cast::<u32>().write_unaligned(vgetq_lane_u32::<1>(words));
                y.add(index[2]).cast::<u32>().write_unaligned(vgetq_lane_u32::<2>(words));
                y.add(index[3]).cast::<u32>().write_unaligned(vgetq_lane_u32::<3>(words));
            }
            return;
        }
    }
    let mut bytes = [0i8; 16];
    // SAFETY: 16 writable bytes.
    unsafe { vst1q_s8(bytes.as_mut_ptr(), codes) };
    for (codes, &at) in bytes.chunks_exact(4).zip(at) {
        for (r, &c) in codes.iter().enumerate() {
            let index = if channels_last { at * rows + o + r } else { (o + r) * plane + at };
            if let Some(y) = ys.get_mut(index) {
                *y = c;
            }
        }
    }
}

/// One to three output channels, one at a time, 4 outputs in the lanes.
///
/// # Safety
/// As [`run`].
#[inline(never)]
#[target_feature(enable = "neon")]
unsafe fn few_channels<D: DotStep>(p: &ConvI8<'_>, ph: &PhaseRun, ys: &mut [i8]) {
    let rows = p.out_shape.channels;
    let plane = p.out_shape.height * p.out_shape.width;
    ph.for_each_chunk(|at, out| {
        for o in 0..rows {
            let quant = ChannelQuant4::new(
                vdupq_n_s32(le_i32(p.multipliers, o)),
                vdupq_n_s32(le_i32(p.shifts, o)),
                p.out_zero_point,
                p.act_min,
                p.act_max,
            );
            let bias = vdupq_n_s32(le_i32(p.bias, ph.bias + o));
            let w = ph.weights.wrapping_add(o * ph.weight_row);
            for (x, at) in at.chunks_exact(4).zip(out.chunks_exact(4)) {
                let x: [*const i8; 4] = [x[0], x[1], x[2], x[3]];
                let mut acc = [vdupq_n_s32(0); 4];
                for ty in 0..ph.taps_y {
                    let x = x.map(|x| x.wrapping_add(ty * ph.row_step));
                    // SAFETY: `run` bytes of the weight row and of each patch row are readable.
                    unsafe { dot_4x1::<D>(&mut acc, &x, w.wrapping_add(ty * ph.run), ph.run) };
                }
                // SAFETY: NEON.
                let codes = unsafe { quant.apply(vaddq_s32(row_totals(acc), bias)).to_le_bytes() };
                for (&at, &c) in at.iter().zip(&codes) {
                    let index = if p.out_shape.channels_last { at * rows + o } else { o * plane + at };
                    if let Some(y) = ys.get_mut(index) {
                        *y = c as i8;
                    }
                }
            }
        }
    });
}

/// `acc[r][s]` plus the products of `len` bytes (a multiple of 16) of `w[r]` and `x[s]`.
///
/// # Safety
/// NEON and `D`'s instructions; `len` bytes readable from every pointer.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_4x4<D: DotStep>(acc: &mut [[int32x4_t; 4]; 4], w: &[*const i8; 4], x: &[*const i8; 4], len: usize) {
    let wide = len / 32;
    if wide > 0 {
        D::wide_4x4(acc, w, x, wide);
    }
    if !len.is_multiple_of(32) {
        let k = wide * 32;
        let xv = x.map(|x| vld1q_s8(x.add(k)));
        for (acc, &w) in acc.iter_mut().zip(w) {
            let wv = vld1q_s8(w.add(k));
            for (a, &xv) in acc.iter_mut().zip(&xv) {
                *a = D::step(*a, wv, xv);
            }
        }
    }
}

/// `acc[s]` plus the products of `len` bytes (a multiple of 16) of `x[s]` and `w`.
///
/// # Safety
/// NEON and `D`'s instructions; `len` bytes readable from every pointer.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn dot_4x1<D: DotStep>(acc: &mut [int32x4_t; 4], x: &[*const i8; 4], w: *const i8, len: usize) {
    let wide = len / 64;
    if wide > 0 {
        D::wide_4x1(acc, x, w, wide);
    }
    let mut k = wide * 64;
    while k < len {
        let wv = vld1q_s8(w.add(k));
        for (a, &x) in acc.iter_mut().zip(x) {
            *a = D::step(*a, vld1q_s8(x.add(k)), wv);
        }
        k += 16;
    }
}

/// Copies every phase's weight rows into `padded`, each run of `taps_x * C_in` bytes followed
/// by zeros up to whole vectors.
///
/// # Safety
/// `padded` has room for every phase's `rows * taps_y * run_bytes` bytes; the weights hold
/// `rows * cols` bytes.
#[target_feature(enable = "neon")]
unsafe fn pad_weights(p: &ConvI8<'_>, d: &ConvDims, padded: *mut i8) {
    let mut at = 0;
    for (ry, rx) in phases(d) {
        let phase = d.phase(true, ry, rx);
        let (len, run) = (phase.taps_x * d.in_channels_per_group, run_bytes(d, &phase));
        for o in 0..d.rows {
            for ty in 0..phase.taps_y {
                let from = p.weights.as_ptr().cast::<i8>().add(phase.offset + o * phase.cols + ty * len);
                // SAFETY: inside the phase's rows and the buffer (caller's contract).
                unsafe {
                    padded.add(at).copy_from_nonoverlapping(from, len);
                    padded.add(at + len).write_bytes(0, run - len);
                }
                at += run;
            }
        }
    }
}

/// Writes one sample's input into the window (HWC, a border of the zero point) and zeroes
/// the slack after it.
///
/// # Safety
/// The window buffer has room for the layer's window and [`SLACK`]; `xs` is one sample.
#[target_feature(enable = "neon")]
unsafe fn fill(p: &ConvI8<'_>, l: &Layer, xs: &[i8], window: *mut i8) {
    let d = &l.d;
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    let (g, bytes) = (&l.window, l.window.height * l.window.width * cin);
    // SAFETY: `bytes + SLACK` bytes of the buffer (caller's contract).
    let w = unsafe {
        window.write_bytes(l.zero_point as u8, bytes);
        window.add(bytes).write_bytes(0, SLACK);
        core::slice::from_raw_parts_mut(window, bytes)
    };
    let plane = ih * iw;
    if !p.in_shape.channels_last && cin.is_multiple_of(16) && plane >= 16 && xs.len() >= cin * plane {
        // SAFETY: `xs` holds `cin` planes, the window the geometry's bytes.
        unsafe { transpose_into(xs.as_ptr(), plane, cin, iw, g, window) };
        return;
    }
    for iy in 0..ih {
        let start = ((iy + g.top) * g.width + g.left) * cin;
        let Some(row) = w.get_mut(start..start + iw * cin) else {
            return;
        };
        if p.in_shape.channels_last {
            if let Some(src) = xs.get(iy * iw * cin..(iy + 1) * iw * cin) {
                row.copy_from_slice(src);
            }
        } else {
            // Channel by channel: contiguous loads, stores `cin` apart.
            for (c, plane) in xs.chunks_exact(plane).take(cin).enumerate() {
                for (dst, &v) in row.iter_mut().skip(c).step_by(cin).zip(plane.iter().skip(iy * iw).take(iw)) {
                    *dst = v;
                }
            }
        }
    }
}

/// The inside of the window from an NCHW sample, for `cin` a multiple of 16 and planes of at
/// least 16 pixels: 16 channels of 16 pixels in 16 loads, transposed by four rounds of
/// `trn1`/`trn2` (bytes, halfwords, words, doublewords), then each pixel's 16 channels in one
/// store. The scalar loop above took a tenth of the conv decoder's instructions.
///
/// # Safety
/// NEON; `xs` holds `cin * plane` bytes; the window has room for the geometry's bytes.
#[target_feature(enable = "neon")]
unsafe fn transpose_into(xs: *const i8, plane: usize, cin: usize, iw: usize, g: &TransposeWindow, window: *mut i8) {
    let mut q = 0;
    loop {
        // The last block overlaps the one before rather than running past the plane.
        let q0 = q.min(plane - 16);
        let dst: [usize; 16] = core::array::from_fn(|k| {
            let (iy, ix) = ((q0 + k) / iw, (q0 + k) % iw);
            ((iy + g.top) * g.width + ix + g.left) * cin
        });
        for c0 in (0..cin).step_by(16) {
            // SAFETY: pixels q0..q0 + 16 <= plane of planes c0..c0 + 16 <= cin.
            let mut v: [uint8x16_t; 16] =
                core::array::from_fn(|r| unsafe { vld1q_u8(xs.add((c0 + r) * plane + q0).cast()) });
            for i in (0..16).step_by(2) {
                (v[i], v[i + 1]) = (vtrn1q_u8(v[i], v[i + 1]), vtrn2q_u8(v[i], v[i + 1]));
            }
            for i in [0, 1, 4, 5, 8, 9, 12, 13] {
                let (a, b) = (vreinterpretq_u16_u8(v[i]), vreinterpretq_u16_u8(v[i + 2]));
                (v[i], v[i + 2]) = (vreinterpretq_u8_u16(vtrn1q_u16(a, b)), vreinterpretq_u8_u16(vtrn2q_u16(a, b)));
            }
            for i in [0, 1, 2, 3, 8, 9, 10, 11] {
                let (a, b) = (vreinterpretq_u32_u8(v[i]), vreinterpretq_u32_u8(v[i + 4]));
                (v[i], v[i + 4]) = (vreinterpretq_u8_u32(vtrn1q_u32(a, b)), vreinterpretq_u8_u32(vtrn2q_u32(a, b)));
            }
            for i in 0..8 {
                let (a, b) = (vreinterpretq_u64_u8(v[i]), vreinterpretq_u64_u8(v[i + 8]));
                (v[i], v[i + 8]) = (vreinterpretq_u8_u64(vtrn1q_u64(a, b)), vreinterpretq_u8_u64(vtrn2q_u64(a, b)));
            }
            // Vector k now holds pixel q0 + k's channels c0..c0 + 16.
            for (&at, &v) in dst.iter().zip(&v) {
                // SAFETY: inside the window's interior (the pixel is an input position).
                unsafe { vst1q_u8(window.add(at + c0).cast(), v) };
            }
        }
        if q0 == plane - 16 {
            return;
        }
        q += 16;
    }
}
