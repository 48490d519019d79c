//! Convolutions as Dense layers over gathered patches: how every optimized table turns its
//! Dense kernel (AVX-512 VNNI, AVX2, NEON, `sdot`, Cortex-M DSP) into its convolution and
//! transposed-convolution kernels, so there is one SIMD inner loop per ISA, not one per op.
//!
//! In the tap-major layout ([`crate::kernels::conv_layout`]) an output channel's weights (per
//! phase, for a transposed convolution) are a Dense row over a patch `[ty][tx][C_in]`. So this
//! driver:
//! 1. transposes the input rows that the outputs read from NCHW into HWC rows, in a *window*
//!    on the stack: a ring of rows, each transposed once per sample. When the whole input fits
//!    (hosts) the walk goes phase by phase, so that one Dense call takes pixels from many
//!    rows; when only a few rows fit (microcontrollers) it goes output row by output row;
//! 2. copies each output pixel's patch as runs of `C_in / groups` contiguous values, a tap
//!    outside the input padding with the input zero point (int8) or 0.0 (float);
//! 3. hands up to [`Budget::pixels`] patches to the table's Dense kernel as one batch, so its
//!    batched path (AVX-512's packed samples, NEON's several samples per pass) runs with pixels
//!    as samples;
//! 4. scatters the `[pixel][channel]` results into the NCHW output.
//!
//! A channels-last input or output ([`crate::kernels::Shape`]) skips the transpose of step 1 or
//! the scatter of step 4: its rows are already HWC, its results one run per pixel.
//!
//! **Exactness.** A convolution's bias folds `-zp_in * sum` of its row and a tap-major transposed
//! convolution's phase bias `-zp_in * sum` of its phase row, so with padding reading `zp_in`
//! the Dense kernel's `bias + sum W * patch` is the reference's accumulator in wrapping i32
//! arithmetic, requantized by the same [`crate::quant::requantize`]: int8 bytes are the
//! reference's for every table whose Dense kernel is exact (all are, weights of -128 aside,
//! which the format forbids). Float results sum in the Dense kernel's order. A table may run a
//! one-channel layer with the pixels as the Dense rows instead ([`Dense::PIXELS_AS_ROWS`]): the
//! same products, summed per pixel.
//!
//! **Memory.** Three stack buffers of fixed size ([`I8_BUDGET`], [`F32_BUDGET`]): on hosts, a
//! whole decoder layer's input and dozens of patches; on Cortex-M, a few input rows and a
//! couple of patches ("no im2col buffer larger than one output row's patches"). A layer that
//! does not fit (a window narrower than the kernel's rows, a patch larger than the patch
//! buffer), a row-major blob (format version 2), a phase without taps (kernel smaller than
//! stride) or an int8 zero point outside int8 goes to the scalar reference: same bytes, slower.

// Without the `conv` feature only the entry points' stubs remain.
#![cfg_attr(not(feature = "conv-transpose"), allow(dead_code, unused_imports))]

use super::conv_layout::Phase;
use super::{reference, ConvDims, ConvFloat, ConvI8, DenseFloat, DenseFloatFn, DenseI8, DenseI8Fn};
use crate::format::WeightLayout;

/// The Dense kernels of one table, which its convolutions run on.
pub trait Dense {
    /// int8 Dense.
    const I8: DenseI8Fn;
    /// Dense with f16 weights.
    const F16: DenseFloatFn;
    /// Dense with f32 weights.
    const F32: DenseFloatFn;
    /// Run a single output channel with the pixels as the Dense *rows* (the patches as its
    /// weights, the channel's weights as its input), for a kernel that works on row pairs and
    /// would otherwise compute one row in plain code. Only for an int8 kernel that is exact for
    /// weights of -128 (patches hold any code) and does not read `weight_sums`.
    const PIXELS_AS_ROWS: bool = false;
}

/// Stack buffer sizes, in elements.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Input rows in HWC.
    pub window: usize,
    /// Patches of the current batch of pixels.
    pub patches: usize,
    /// The Dense kernel's results for them.
    pub results: usize,
    /// Pixels per Dense call.
    pub pixels: usize,
}

/// int8 buffers: 36 KiB on hosts (a 64-channel 14x14 input and 64 patches of 256), about
/// 2.5 KiB on Cortex-M: the 4 input rows a kernel-4 convolution over a 32-channel 14-wide input
/// reads (1,792 B: the M1+M2 classifier's second layer, which with a 1 KiB window fell to the
/// scalar reference at 35 instructions per MAC) and one patch of 512.
#[cfg(not(target_arch = "arm"))]
pub const I8_BUDGET: Budget = Budget { window: 16 * 1024, patches: 16 * 1024, results: 4 * 1024, pixels: 128 };
/// See the host figure.
#[cfg(target_arch = "arm")]
pub const I8_BUDGET: Budget = Budget { window: 2048, patches: 512, results: 64, pixels: 8 };
/// f32 buffers, 72 KiB (Cortex-M firmware carries no float convolutions; a host thread's stack
/// takes these): a 32-channel 14x14 input and 64 patches of 128.
pub const F32_BUDGET: Budget = Budget { window: 8 * 1024, patches: 8 * 1024, results: 2 * 1024, pixels: 64 };

const I8_WINDOW: usize = I8_BUDGET.window;
const I8_PATCHES: usize = I8_BUDGET.patches;
const I8_RESULTS: usize = I8_BUDGET.results;
const I8_PIXELS: usize = I8_BUDGET.pixels;
const F32_WINDOW: usize = F32_BUDGET.window;
const F32_PATCHES: usize = F32_BUDGET.patches;
const F32_RESULTS: usize = F32_BUDGET.results;
const F32_PIXELS: usize = F32_BUDGET.pixels;

/// int8 convolution on `D`'s Dense kernel. See [`crate::kernels::ConvI8Fn`].
pub fn conv_i8<D: Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    // Without the `conv` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv")]
    if !conv_i8_lowered((D::I8, D::PIXELS_AS_ROWS), false, p, x, batch, out) {
        reference::conv_i8(p, x, batch, out);
    }
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

/// int8 transposed convolution on `D`'s Dense kernel.
pub fn conv_transpose_i8<D: Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    // Without the `conv-transpose` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv-transpose")]
    if !conv_i8_lowered((D::I8, D::PIXELS_AS_ROWS), true, p, x, batch, out) {
        reference::conv_transpose_i8(p, x, batch, out);
    }
    #[cfg(not(feature = "conv-transpose"))]
    let _ = (p, x, batch, out);
}

/// Convolution with f16 weights on `D`'s Dense kernel.
pub fn conv_f16<D: Dense>(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the `conv` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv")]
    if !conv_float_lowered(D::F16, 2, false, p, x, batch, out) {
        reference::conv_f16(p, x, batch, out);
    }
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

/// Transposed convolution with f16 weights on `D`'s Dense kernel.
pub fn conv_transpose_f16<D: Dense>(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the `conv-transpose` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv-transpose")]
    if !conv_float_lowered(D::F16, 2, true, p, x, batch, out) {
        reference::conv_transpose_f16(p, x, batch, out);
    }
    #[cfg(not(feature = "conv-transpose"))]
    let _ = (p, x, batch, out);
}

/// Convolution with f32 weights on `D`'s Dense kernel.
pub fn conv_f32<D: Dense>(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the `conv` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv")]
    if !conv_float_lowered(D::F32, 4, false, p, x, batch, out) {
        reference::conv_f32(p, x, batch, out);
    }
    #[cfg(not(feature = "conv"))]
    let _ = (p, x, batch, out);
}

/// Transposed convolution with f32 weights on `D`'s Dense kernel.
pub fn conv_transpose_f32<D: Dense>(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the `conv-transpose` feature no blob with this op parses, and nothing is linked.
    #[cfg(feature = "conv-transpose")]
    if !conv_float_lowered(D::F32, 4, true, p, x, batch, out) {
        reference::conv_transpose_f32(p, x, batch, out);
    }
    #[cfg(not(feature = "conv-transpose"))]
    let _ = (p, x, batch, out);
}

/// Runs an int8 layer through `dense`; `false` when it must go to the reference instead (see
/// the module documentation). Writes only the samples [`ConvI8::samples`] allows.
fn conv_i8_lowered(
    (dense, pixels_as_rows): (DenseI8Fn, bool),
    transposed: bool,
    p: &ConvI8<'_>,
    x: &[i8],
    batch: usize,
    out: &mut [i8],
) -> bool {
    let n = p.samples(transposed, x, batch, out);
    let (Some(d), Ok(pad)) = (p.dims(transposed), i8::try_from(p.in_zero_point)) else {
        return false;
    };
    if p.layout != WeightLayout::TapMajor || n == 0 {
        return false;
    }
    let mut window = [0i8; I8_WINDOW];
    // Word-aligned: Dense kernels read weights (here: patches, see `PIXELS_AS_ROWS`) by words.
    let mut patches = WordAligned([0i8; I8_PATCHES]);
    let mut results = [0i8; I8_RESULTS];
    let bufs = Buffers { window: &mut window, patches: &mut patches.0, results: &mut results };
    let channels_last = (p.in_shape.channels_last, p.out_shape.channels_last);
    let layer = Layer { d, transposed, out_w: p.out_shape.width, channels_last, pad };
    layer.run::<_, I8_PIXELS>(bufs, x, n, out, |phase, g, patches, pixels, results| {
        let rows = d.out_channels_per_group;
        let first = phase.index * d.rows + g * rows;
        if rows == 1 && pixels_as_rows {
            let channel = tail(p.weights, phase.offset + g * phase.cols);
            let channel = crate::cast::i8s(channel.get(..phase.cols).unwrap_or(&[]));
            let pick = |a: &[u8], i: usize| -> [u8; 4] {
                a.get(4 * i..4 * i + 4).map_or([0; 4], |b| [b[0], b[1], b[2], b[3]])
            };
            let (b, m, s) = (pick(p.bias, first), pick(p.multipliers, g), pick(p.shifts, g));
            let mut per_pixel = [[0u8; 4 * I8_PIXELS]; 4];
            for i in 0..pixels {
                per_pixel[0][4 * i..4 * i + 4].copy_from_slice(&b);
                per_pixel[1][4 * i..4 * i + 4].copy_from_slice(&m);
                per_pixel[2][4 * i..4 * i + 4].copy_from_slice(&s);
            }
            let [bias, multipliers, shifts, weight_sums] = &per_pixel;
            let params = DenseI8 {
                rows: pixels,
                cols: phase.cols,
                layout: WeightLayout::RowMajor,
                weights: crate::cast::u8s(patches),
                bias,
                multipliers,
                shifts,
                // Not read by the kernels that take this path.
                weight_sums,
                out_zero_point: p.out_zero_point,
                act_min: p.act_min,
                act_max: p.act_max,
            };
            dense(&params, channel, 1, results);
            return;
        }
        let params = DenseI8 {
            rows,
            cols: phase.cols,
            layout: WeightLayout::RowMajor,
            weights: tail(p.weights, phase.offset + g * rows * phase.cols),
            bias: tail(p.bias, 4 * first),
            multipliers: tail(p.multipliers, 4 * g * rows),
            shifts: tail(p.shifts, 4 * g * rows),
            weight_sums: tail(p.weight_sums, 4 * first),
            out_zero_point: p.out_zero_point,
            act_min: p.act_min,
            act_max: p.act_max,
        };
        dense(&params, patches, pixels, results);
    })
}

/// As [`conv_i8_lowered`], for float layers with `weight_bytes`-byte weights.
fn conv_float_lowered(
    dense: DenseFloatFn,
    weight_bytes: usize,
    transposed: bool,
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) -> bool {
    let n = p.samples(transposed, weight_bytes, x, batch, out);
    let Some(d) = p.dims(transposed) else {
        return false;
    };
    if p.layout != WeightLayout::TapMajor || n == 0 {
        return false;
    }
    let mut window = [0f32; F32_WINDOW];
    let mut patches = [0f32; F32_PATCHES];
    let mut results = [0f32; F32_RESULTS];
    let bufs = Buffers { window: &mut window, patches: &mut patches, results: &mut results };
    let channels_last = (p.in_shape.channels_last, p.out_shape.channels_last);
    let layer = Layer { d, transposed, out_w: p.out_shape.width, channels_last, pad: 0.0 };
    layer.run::<_, F32_PIXELS>(bufs, x, n, out, |phase, g, patches, pixels, results| {
        let rows = d.out_channels_per_group;
        let params = DenseFloat {
            rows,
            cols: phase.cols,
            weights: tail(p.weights, weight_bytes * (phase.offset + g * rows * phase.cols)),
            bias: tail(p.bias, 4 * g * rows),
            relu: p.relu,
        };
        dense(&params, patches, pixels, results);
    })
}

/// `a[from..]`, empty past the end (the Dense kernel then refuses the call, and the size
/// checks in `samples` make that unreachable).
fn tail(a: &[u8], from: usize) -> &[u8] {
    a.get(from..).unwrap_or(&[])
}

/// A buffer on a word boundary.
#[repr(C, align(4))]
struct WordAligned<T>(T);

/// The stack buffers of one call.
struct Buffers<'a, T> {
    window: &'a mut [T],
    patches: &'a mut [T],
    results: &'a mut [T],
}

/// One layer's geometry, as the driver walks it.
struct Layer<T> {
    d: ConvDims,
    transposed: bool,
    out_w: usize,
    /// The input, and the output, are stored channels-last ([`crate::kernels::Shape`]).
    channels_last: (bool, bool),
    /// What a tap outside the input reads.
    pad: T,
}

/// The pixels of one Dense call.
struct Chunk<const N: usize> {
    at: [Pixel; N],
    len: usize,
    /// Pixels per Dense call (at most `N`).
    capacity: usize,
}

/// Where one sample's walk is: which input row each ring slot holds, and the phase of the
/// pixels in the chunk.
struct Walk {
    slots: [usize; MAX_RING],
    capacity: usize,
    phase: Option<Phase>,
}

/// Most rows the window's ring tracks: on hosts a whole input of up to 64 rows (taller ones
/// are walked a ring of 64 at a time); on Cortex-M the few rows its window holds.
#[cfg(not(target_arch = "arm"))]
const MAX_RING: usize = 64;
/// See the host figure.
#[cfg(target_arch = "arm")]
const MAX_RING: usize = 16;

/// One output pixel: its offset in a channel plane, and the input row and column its first
/// tap reads (maybe outside the input), computed as the walk steps so that no pixel costs a
/// division. Extents are at most [`crate::kernels::taps::MAX_EXTENT`], so `u32`/`i32` hold
/// them and the chunk stays small on the stack.
#[derive(Debug, Clone, Copy, Default)]
struct Pixel {
    at: u32,
    y0: i32,
    x0: i32,
}

impl<T: Copy> Layer<T> {
    /// The input row that tap row `t` reads for an output row whose first tap reads row `y0`
    /// ([`Layer::first_input`]), if inside the input.
    #[inline]
    fn input_row(&self, y0: isize, t: usize) -> Option<usize> {
        let i = y0 + (t * self.d.h.dilation()) as isize;
        (i >= 0 && (i as usize) < self.d.h.input()).then_some(i as usize)
    }

    /// The input position that tap 0 of output `o` reads on `axis` (maybe outside the input);
    /// tap `t` reads `t * dilation` further. A convolution's tap `t` is kernel index `t`,
    /// reading `o * s - pad + t * dil`. A transposed one's patch orders its taps by the input
    /// position they read ([`crate::kernels::conv_layout`]): tap `t` of residue `r` is kernel
    /// index `k = r + (taps - 1 - t) * s`, reading `(o + pad - k) / s` (whole, because `o`
    /// belongs to the residue's phase), so consecutive taps read consecutive positions and a
    /// patch row is one run of the HWC window.
    fn first_input(&self, axis: crate::kernels::Axis, r: usize, taps: usize, o: usize) -> isize {
        let (s, pad) = (axis.stride() as isize, axis.pad() as isize);
        let o = o as isize;
        if self.transposed {
            (o + pad - r as isize).div_euclid(s) - (taps as isize - 1)
        } else {
            o * s - pad
        }
    }

    /// The first output position of a phase's residue `r` on an axis, and the step: a
    /// transposed convolution's outputs `o` with `(o + pad) ≡ r (mod s)`; a convolution's all.
    fn phase_outputs(&self, s: usize, pad: usize, r: usize) -> (usize, usize) {
        if self.transposed {
            ((r + s - pad % s) % s, s)
        } else {
            (0, 1)
        }
    }

    /// Rows of input a window must hold at once: the span of one output row's taps.
    fn span(&self) -> usize {
        let (kh, sh, dh) = (self.d.kh, self.d.h.stride(), self.d.h.dilation());
        let span = if self.transposed { kh.div_ceil(sh) } else { (kh - 1) * dh + 1 };
        span.min(self.d.h.input())
    }

    /// The walk described in the module documentation, over the `n` samples of `x` and `out`
    /// (checked by the caller's `samples`). `dense(phase, group, patches, pixels, results)`
    /// computes `pixels` patches of `phase.cols` values into `[pixel][channel]` results for
    /// the group's output channels. `false`, before writing anything, when the layer does not
    /// fit the buffers or has a phase without taps.
    fn run<F, const PIXELS: usize>(
        &self,
        mut bufs: Buffers<'_, T>,
        x: &[T],
        n: usize,
        out: &mut [T],
        mut dense: F,
    ) -> bool
    where
        F: FnMut(&Phase, usize, &[T], usize, &mut [T]),
    {
        let d = &self.d;
        let (ih, iw) = (d.h.input(), d.w.input());
        let cin = d.in_channels_per_group * d.groups;
        let row_len = iw * cin;
        // The window is a ring of `capacity` HWC rows, input row `iy` in slot `iy % capacity`.
        let capacity = (bufs.window.len() / row_len.max(1)).min(ih).min(MAX_RING);
        let (sh, sw) = if self.transposed { (d.h.stride(), d.w.stride()) } else { (1, 1) };
        let phases = || (0..sh).flat_map(move |ry| (0..sw).map(move |rx| (ry, rx)));
        let rows = d.out_channels_per_group;
        // Every phase must have taps and fit; the widest decides the pixels per call.
        let mut pixels = PIXELS.min(bufs.results.len() / rows);
        for (ry, rx) in phases() {
            let cols = d.phase(self.transposed, ry, rx).cols;
            if cols == 0 {
                return false;
            }
            pixels = pixels.min(bufs.patches.len() / cols);
        }
        if capacity < self.span() || pixels == 0 {
            return false;
        }
        let mut chunk = Chunk::<PIXELS> { at: [Pixel::default(); PIXELS], len: 0, capacity: pixels };
        for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
            let mut walk = Walk { slots: [usize::MAX; MAX_RING], capacity, phase: None };
            if capacity == ih {
                // The whole input fits: phase by phase, so that a Dense call takes pixels from
                // many rows (each input row is transposed once all the same).
                for (ry, rx) in phases() {
                    let (oy0, step_y) = self.phase_outputs(sh, d.h.pad(), ry);
                    for oy in (oy0..d.h.output()).step_by(step_y) {
                        self.row_segment((ry, rx, oy), &mut walk, &mut bufs, &mut chunk, (xs, &mut *ys), &mut dense);
                    }
                }
            } else {
                // A few rows at a time (microcontrollers): output rows in order, so that each
                // input row enters the ring once.
                for oy in 0..d.h.output() {
                    let ry = if self.transposed { (oy + d.h.pad()) % sh } else { 0 };
                    for rx in 0..sw {
                        self.row_segment((ry, rx, oy), &mut walk, &mut bufs, &mut chunk, (xs, &mut *ys), &mut dense);
                    }
                }
            }
            if let Some(phase) = walk.phase {
                self.flush(&phase, &mut bufs, &walk, &mut chunk, ys, &mut dense);
            }
        }
        true
    }

    /// Adds the outputs of row `oy` in phase `(ry, rx)` to the chunk: first flushing it if it
    /// holds another phase or the ring must take rows its pixels read, then loading the rows
    /// this output row reads, then flushing whenever the chunk is full.
    fn row_segment<F, const PIXELS: usize>(
        &self,
        (ry, rx, oy): (usize, usize, usize),
        walk: &mut Walk,
        bufs: &mut Buffers<'_, T>,
        chunk: &mut Chunk<PIXELS>,
        (xs, ys): (&[T], &mut [T]),
        dense: &mut F,
    ) where
        F: FnMut(&Phase, usize, &[T], usize, &mut [T]),
    {
        let d = &self.d;
        let (sw, pixels) = (if self.transposed { d.w.stride() } else { 1 }, chunk.capacity);
        let phase = match walk.phase {
            Some(p) if (p.ry, p.rx) == (ry, rx) => p,
            previous => {
                if let Some(p) = previous {
                    self.flush(&p, bufs, walk, chunk, ys, dense);
                }
                let p = d.phase(self.transposed, ry, rx);
                walk.phase = Some(p);
                p
            }
        };
        let y0 = self.first_input(d.h, ry, phase.taps_y, oy);
        let missing = |walk: &Walk, iy: usize| walk.slots[iy % walk.capacity] != iy;
        if (0..phase.taps_y).filter_map(|t| self.input_row(y0, t)).any(|iy| missing(walk, iy)) {
            // The chunk's pixels may read a row about to be replaced; an empty slot holds none.
            let evicts = (0..phase.taps_y)
                .filter_map(|t| self.input_row(y0, t))
                .any(|iy| missing(walk, iy) && walk.slots[iy % walk.capacity] != usize::MAX);
            if evicts {
                self.flush(&phase, bufs, walk, chunk, ys, dense);
            }
            let (cin, ih, iw) = (d.in_channels_per_group * d.groups, d.h.input(), d.w.input());
            for iy in (0..phase.taps_y).filter_map(|t| self.input_row(y0, t)) {
                if missing(walk, iy) {
                    let slot = iy % walk.capacity;
                    let row = &mut bufs.window[slot * iw * cin..][..iw * cin];
                    if self.channels_last.0 {
                        row.copy_from_slice(&xs[iy * iw * cin..][..iw * cin]);
                    } else {
                        transpose_row(xs, row, (cin, ih, iw), iy);
                    }
                    walk.slots[slot] = iy;
                }
            }
        }
        let (ox0, step_x) = self.phase_outputs(sw, d.w.pad(), rx);
        let x_first = self.first_input(d.w, rx, phase.taps_x, ox0);
        // A transposed convolution's next output of the phase reads one input further; a
        // convolution's, one stride further.
        let x_step = if self.transposed { 1 } else { d.w.stride() as isize };
        for (j, ox) in (ox0..self.out_w).step_by(step_x).enumerate() {
            let x0 = x_first + j as isize * x_step;
            let at = oy * self.out_w + ox;
            chunk.at[chunk.len] = Pixel { at: at as u32, y0: y0 as i32, x0: x0 as i32 };
            chunk.len += 1;
            if chunk.len == pixels {
                self.flush(&phase, bufs, walk, chunk, ys, dense);
            }
        }
    }

    /// Computes the chunk's pixels, group by group: gathers their patches from the window's
    /// ring (which holds every row the chunk's pixels read),
    /// runs `dense`, scatters the results into the sample's NCHW output `ys`.
    fn flush<F, const PIXELS: usize>(
        &self,
        phase: &Phase,
        bufs: &mut Buffers<'_, T>,
        walk: &Walk,
        chunk: &mut Chunk<PIXELS>,
        ys: &mut [T],
        dense: &mut F,
    ) where
        F: FnMut(&Phase, usize, &[T], usize, &mut [T]),
    {
        let count = core::mem::take(&mut chunk.len);
        if count == 0 {
            return;
        }
        let d = &self.d;
        let (cg, rows, k) = (d.in_channels_per_group, d.out_channels_per_group, phase.cols);
        let (cin, dil_w) = (cg * d.groups, d.w.dilation());
        let row_len = d.w.input() * cin;
        let plane = d.h.output() * self.out_w;
        let pixels = &chunk.at[..count];
        for g in 0..d.groups {
            for (patch, px) in bufs.patches.chunks_exact_mut(k).zip(pixels) {
                let (y0, x0) = (px.y0 as isize, px.x0 as isize);
                // Whole patch rows are single runs of the window when no tap pads, the taps are
                // adjacent and the group is every channel.
                let inside = x0 >= 0 && x0 as usize + (phase.taps_x - 1) * dil_w < d.w.input();
                let whole_rows = inside && dil_w == 1 && d.groups == 1;
                for (ty, run) in patch.chunks_exact_mut(phase.taps_x * cg).enumerate() {
                    let Some(iy) = self.input_row(y0, ty) else {
                        run.fill(self.pad);
                        continue;
                    };
                    let row = &bufs.window[(iy % walk.capacity) * row_len..][..row_len];
                    if whole_rows {
                        copy(run, &row[x0 as usize * cin..][..run.len()]);
                        continue;
                    }
                    for (tx, tap) in run.chunks_exact_mut(cg).enumerate() {
                        let ix = x0 + (tx * dil_w) as isize;
                        if ix >= 0 && (ix as usize) < d.w.input() {
                            copy(tap, &row[ix as usize * cin + g * cg..][..cg]);
                        } else {
                            tap.fill(self.pad);
                        }
                    }
                }
            }
            dense(phase, g, &bufs.patches[..count * k], count, &mut bufs.results[..count * rows]);
            if self.channels_last.1 {
                // A pixel's channels sit together: one run per pixel.
                for (result, px) in bufs.results.chunks_exact(rows).zip(pixels) {
                    copy(&mut ys[px.at as usize * d.rows + g * rows..][..rows], result);
                }
                continue;
            }
            let group = &mut ys[g * rows * plane..];
            if count >= rows {
                // Channel by channel: each plane's stores stay together (many pixels per call).
                for (o, plane) in group.chunks_exact_mut(plane).take(rows).enumerate() {
                    for (&v, px) in bufs.results[o..].iter().step_by(rows).zip(pixels) {
                        plane[px.at as usize] = v;
                    }
                }
            } else {
                // Pixel by pixel, down the planes with a fixed stride (few pixels per call).
                for (result, px) in bufs.results.chunks_exact(rows).zip(pixels) {
                    for (dst, &v) in group[px.at as usize..].iter_mut().step_by(plane).zip(result) {
                        *dst = v;
                    }
                }
            }
        }
    }
}

/// Transposes input row `iy` of one NCHW sample into an HWC `row`.
fn transpose_row<T: Copy>(xs: &[T], row: &mut [T], (cin, ih, iw): (usize, usize, usize), iy: usize) {
    let plane = ih * iw;
    // Contiguous stores, strided loads: loads issue twice as fast as stores.
    for (ix, pixel) in row.chunks_exact_mut(cin).take(iw).enumerate() {
        for (dst, &v) in pixel.iter_mut().zip(xs[iy * iw + ix..].iter().step_by(plane)) {
            *dst = v;
        }
    }
}

/// `dst = src` for short runs (a patch row, one tap's channels), inline: these are tens to a
/// few hundred bytes, too short for a `memcpy` call to pay off.
#[inline(always)]
fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    const CHUNK: usize = 16;
    let mut d = dst.chunks_exact_mut(CHUNK);
    let mut s = src.chunks_exact(CHUNK);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[T; CHUNK] = s.try_into().unwrap_or_else(|_| unreachable!());
        d.copy_from_slice(s);
    }
    for (d, &s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = s;
    }
}
