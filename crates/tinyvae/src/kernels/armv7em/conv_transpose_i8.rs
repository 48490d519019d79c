//! int8 transposed convolution for ARMv7E-M (Cortex-M4/M7) with the DSP extension, without the
//! patch buffer of [`crate::kernels::patches`]; gives the bytes of
//! [`crate::kernels::reference::conv_transpose_i8`] exactly.
//!
//! # Why it is hand-written
//! The generic driver gathers each output pixel's patch on the stack and runs the SMLAD Dense
//! kernel over it: one output pixel per Dense "sample", two output channels per pass. That costs
//! the conv VAE decoder 1.8 instructions per MAC on its 64-channel layer and 7.6 on its
//! one-channel last layer (a Dense row per pixel, whose parameters the driver spreads per
//! pixel), and about 4 KiB of stack. Here the four accumulators of one output channel hold
//! *four output pixels*: each weight word is sign-extended once (two `SXTB16`) and meets the
//! four pixels' inputs, which one `LDM` loads:
//!
//! ```text
//! per 4 input channels x 4 pixels: 1 LDR + 2 SXTB16 + 2 LDM + 8 SMLAD = 13 instructions / 16 MACs
//! ```
//!
//! plus a `CMP`/`BNE` per four such blocks: 0.84 instructions per MAC in the loop, and a layer
//! with one output channel runs as fast as one with many.
//!
//! # The prepared input
//! The inputs are laid out once per group of four pixels and run of taps, for every output
//! channel of a row tile: for each 4 input channels, the halfword pairs `(c, c + 2)` of the four
//! pixels, then `(c + 1, c + 3)`, the order in which `SXTB16` and `SXTB16 ROR #8` split a weight
//! word. Each value is stored minus the input zero point (int8 minus int8 fits a halfword), so a
//! tap outside the input would add nothing; none is visited anyway: the four pixels of a group
//! share the box of taps that reach the input (the pixels of a phase are grouped by it: the
//! interior, each border), and the loop runs over that box only, no padding and no inserted
//! zero multiplied. The accumulator starts from the phase's bias plus the input zero point times
//! the phase row's weight sum (which the tap-major bias folds out), the reference's integer. The
//! buffer holds [`CHUNK_QUADS`] blocks (1 KiB): the patch rows of a pixel group, not of a whole
//! output row ("no im2col buffer larger than one output row's patches").
//!
//! # The loop
//! No register is left for a counter (12 of the 12 that inline asm gets: 4 inputs for `LDM`,
//! 4 accumulators, a weight word, its halves, 2 pointers), so the loop ends on a block whose first
//! word is [`STOP`], the halfword pair (-32768, -32768) that no prepared value is, as in
//! [`super::dense_i8`]. The body holds 4 blocks and is entered `blocks % 4` blocks before its
//! end.
//!
//! # What it takes
//! Tap-major weights (format version 3), an input zero point inside int8, input channels a
//! multiple of 4 (a weight word never straddles two taps, and never reads past a row), and
//! phases that all have taps. Other layers go to the generic driver. Requantization is
//! [`crate::quant::requantize`] folded as in [`super::dense_i8`] (one multiply-long and shifts)
//! for the parameters a blob holds, the reference function otherwise.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::format::WeightLayout;
use crate::kernels::conv_layout::Phase;
use crate::kernels::{patches, Axis, ConvDims, ConvI8};
use crate::quant::requantize;

/// Output pixels per group: the four accumulators of one output channel.
const PIXELS: usize = 4;
/// Blocks of 4 input channels that the prepared buffer holds.
const CHUNK_QUADS: usize = 32;
/// Output channels whose accumulators wait on the stack while a group's taps are walked.
const ROW_TILE: usize = 32;
/// Blocks of 4 weights of one phase row that the one-channel path prepares (512 B).
const ONE_QUADS: usize = 64;
/// Words of the prepared buffer.
const PREPARED_WORDS: usize = 2 * PIXELS * CHUNK_QUADS + 2 * PIXELS;
/// First word of the block that ends the loop.
const STOP: u32 = 0x8000_8000;

/// The prepared input of one chunk: 8 words per block of 4 channels, then the stop block.
#[repr(C, align(4))]
struct Prepared([u32; PREPARED_WORDS]);

/// See [`crate::kernels::ConvI8Fn`]: the direct kernel for the layers it takes, `D`'s generic
/// driver for the rest.
pub fn conv_transpose_i8<D: patches::Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let n = p.samples(true, x, batch, out);
    let Some(layer) = Layer::new(p).filter(|_| n > 0) else {
        return patches::conv_transpose_i8::<D>(p, x, batch, out);
    };
    if layer.one_channel() {
        layer.run_one_channel(x, n, out);
    } else {
        layer.run(x, n, out);
    }
}

/// One output pixel of a group.
#[derive(Debug, Clone, Copy, Default)]
struct Pixel {
    /// Its element in the output sample, for output channel 0.
    at: usize,
    /// The input row and column that its tap `(0, 0)` reads (maybe outside the input).
    y0: isize,
    x0: isize,
}

/// A checked layer.
struct Layer<'a> {
    p: &'a ConvI8<'a>,
    d: ConvDims,
    /// The input zero point in both halfwords.
    zero_points: u32,
    /// Distance between output channels in the output sample, in elements.
    channel_step: usize,
}

/// The stack buffers of the general path.
struct Buffers {
    prepared: Prepared,
    acc: [[i32; PIXELS]; ROW_TILE],
}

impl<'a> Layer<'a> {
    /// The layer, if this kernel takes it (see the module documentation).
    fn new(p: &'a ConvI8<'a>) -> Option<Self> {
        let d = p.dims(true)?;
        let zp = i8::try_from(p.in_zero_point).ok()?;
        let (sh, sw) = (d.h.stride(), d.w.stride());
        let taps = (0..sh).all(|ry| (0..sw).all(|rx| d.phase(true, ry, rx).cols > 0));
        if p.layout != WeightLayout::TapMajor || !d.in_channels_per_group.is_multiple_of(4) || !taps {
            return None;
        }
        let o = p.out_shape;
        let channel_step = if o.channels_last { 1 } else { o.height * o.width };
        let zero_points = u32::from(zp as i16 as u16) * 0x0001_0001;
        Some(Layer { p, d, zero_points, channel_step })
    }

    /// Whether the one-channel path takes the layer: one output channel, a channels-last input
    /// (each tap's channels one run), and phase rows that its weight buffer holds.
    fn one_channel(&self) -> bool {
        let d = &self.d;
        let (sh, sw) = (d.h.stride(), d.w.stride());
        d.rows == 1
            && self.p.in_shape.channels_last
            && (0..sh).all(|ry| (0..sw).all(|rx| d.phase(true, ry, rx).cols <= 4 * ONE_QUADS))
    }

    /// Calls `f(phase, block)` for every block of every phase of a sample: the phase's outputs
    /// in maximal rectangles whose pixels read the same box of valid taps.
    fn blocks(&self, mut f: impl FnMut(&Phase, &Block)) {
        let d = &self.d;
        let (sh, sw) = (d.h.stride(), d.w.stride());
        for ry in 0..sh {
            for rx in 0..sw {
                let phase = d.phase(true, ry, rx);
                let (oy0, ox0) = (first_output(&d.h, ry), first_output(&d.w, rx));
                let ny = count(oy0, d.h.output(), sh);
                let nx = count(ox0, d.w.output(), sw);
                // Each next output of the phase reads one input further.
                let y_first = first_input(&d.h, ry, phase.taps_y, oy0);
                let x_first = first_input(&d.w, rx, phase.taps_x, ox0);
                for (rows, by) in runs(y_first, ny, phase.taps_y, d.h.input()) {
                    for (cols, bx) in runs(x_first, nx, phase.taps_x, d.w.input()) {
                        let block = Block {
                            rows: rows.clone(),
                            cols,
                            oy0,
                            ox0,
                            y_first,
                            x_first,
                            taps_y: by.clone(),
                            taps_x: bx,
                        };
                        f(&phase, &block);
                    }
                }
            }
        }
    }

    /// The general path over `n` samples.
    #[inline(never)]
    fn run(&self, x: &[i8], n: usize, out: &mut [i8]) {
        let d = &self.d;
        let mut bufs = Buffers { prepared: Prepared([0; PREPARED_WORDS]), acc: [[0; PIXELS]; ROW_TILE] };
        for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
            self.blocks(|phase, b| self.block(&mut bufs, phase, b, xs, ys));
        }
    }

    /// The pixels of one block, four at a time; a last group of fewer repeats its last pixel
    /// (computed and stored twice, the same bytes).
    fn block(&self, bufs: &mut Buffers, phase: &Phase, b: &Block, xs: &[i8], ys: &mut [i8]) {
        let mut px = [Pixel::default(); PIXELS];
        let mut len = 0;
        for i in b.rows.clone() {
            for j in b.cols.clone() {
                px[len % PIXELS] = self.pixel(b, i, j);
                len += 1;
                if len == PIXELS {
                    self.group(bufs, phase, &px, (b.taps_y.clone(), b.taps_x.clone()), xs, ys);
                    len = 0;
                }
            }
        }
        if len > 0 {
            let last = px[len - 1];
            px[len..].fill(last);
            self.group(bufs, phase, &px, (b.taps_y.clone(), b.taps_x.clone()), xs, ys);
        }
    }

    /// Output `(i, j)` of a block's phase.
    #[inline(always)]
    fn pixel(&self, b: &Block, i: usize, j: usize) -> Pixel {
        let d = &self.d;
        let (oy, ox) = (b.oy0 + i * d.h.stride(), b.ox0 + j * d.w.stride());
        let plane_at = oy * d.w.output() + ox;
        let at = if self.p.out_shape.channels_last { plane_at * d.rows } else { plane_at };
        Pixel { at, y0: b.y_first + i as isize, x0: b.x_first + j as isize }
    }

    /// Four pixels sharing the valid taps `(ty, tx)`: every output channel, a tile of
    /// [`ROW_TILE`] at a time.
    fn group(
        &self,
        bufs: &mut Buffers,
        phase: &Phase,
        px: &[Pixel; PIXELS],
        (ty, tx): (core::ops::Range<usize>, core::ops::Range<usize>),
        xs: &[i8],
        ys: &mut [i8],
    ) {
        let (d, p) = (&self.d, self.p);
        let c_in = d.in_channels_per_group;
        for o0 in (0..d.rows).step_by(ROW_TILE) {
            let tile = (d.rows - o0).min(ROW_TILE);
            for (o, a) in bufs.acc.iter_mut().enumerate().take(tile) {
                let r = phase.index * d.rows + o0 + o;
                // The tap-major bias folds -zp * (the phase row's sum): put it back, so that
                // the valid taps alone, on inputs minus zp, complete the reference's sum.
                let init = le(p.bias, r).wrapping_add(p.in_zero_point.wrapping_mul(le(p.weight_sums, r)));
                *a = [init; PIXELS];
            }
            for t in ty.clone() {
                // A run of valid taps of one tap row is one run of each weight row.
                let k_end = (t * phase.taps_x + tx.end) * c_in;
                let mut k0 = (t * phase.taps_x + tx.start) * c_in;
                let mut at = (tx.start, 0);
                while k0 < k_end {
                    let k1 = k_end.min(k0 + 4 * CHUNK_QUADS);
                    let quads = (k1 - k0) / 4;
                    at = self.prepare(&mut bufs.prepared, px, t, at, quads, xs);
                    let entry = (4 - quads % 4) % 4;
                    let row0 = phase.offset + o0 * phase.cols + k0;
                    for (o, a) in bufs.acc.iter_mut().enumerate().take(tile) {
                        // SAFETY: `samples` checked that `weights` holds the layer's rows *
                        // cols bytes, phase blocks included; the taps run `k0..k1` lies inside
                        // row o0 + o of the phase (4 * quads bytes, word loads allowed at any
                        // alignment on ARMv7-M). `prepared` holds `quads` blocks and the stop
                        // block.
                        unsafe { dot(a, p.weights.as_ptr().add(row0 + o * phase.cols), &bufs.prepared, entry) };
                    }
                    k0 = k1;
                }
            }
            self.store(o0, &bufs.acc[..tile], px, ys);
        }
    }

    /// Lays out the input of `quads` (at most [`CHUNK_QUADS`]) blocks of 4 channels for the
    /// four pixels, from tap row `t`, tap column and channel `(tx, c)` on (see the module
    /// documentation), then the stop block. Returns where the next chunk starts.
    #[inline(always)]
    fn prepare(
        &self,
        buf: &mut Prepared,
        px: &[Pixel; PIXELS],
        t: usize,
        (mut tx, mut c): (usize, usize),
        quads: usize,
        xs: &[i8],
    ) -> (usize, usize) {
        let d = &self.d;
        let (iw, c_in) = (d.w.input(), d.in_channels_per_group);
        let plane = d.h.input() * iw;
        let channels_last = self.p.in_shape.channels_last;
        let zp = self.zero_points;
        let zp1 = self.p.in_zero_point;
        let base = xs.as_ptr();
        let quads = quads.min(CHUNK_QUADS);
        let mut blocks = buf.0.chunks_exact_mut(2 * PIXELS).filter_map(|b| <&mut [u32; 2 * PIXELS]>::try_from(b).ok());
        for block in (&mut blocks).take(quads) {
            for (k, pixel) in px.iter().enumerate() {
                let (iy, ix) = ((pixel.y0 + t as isize) as usize, (pixel.x0 + tx as isize) as usize);
                let (a, b) = if channels_last {
                    // SAFETY: the group's taps reach the input only, so (iy, ix) is inside it, and
                    // c + 3 < c_in: 4 bytes of the sample (which `samples` checked `xs` holds).
                    let w = unsafe { base.add((iy * iw + ix) * c_in + c).cast::<u32>().read_unaligned() };
                    (ssub16(sxtb16::<0>(w), zp), ssub16(sxtb16::<8>(w), zp))
                } else {
                    let at = c * plane + iy * iw + ix;
                    // SAFETY: as above, channels c..c + 4 of pixel (iy, ix) in NCHW.
                    let v = |j: usize| unsafe { *base.add(at + j * plane) } as i32 - zp1;
                    let pair = |lo: i32, hi: i32| (lo as u32 & 0xFFFF) | ((hi as u32) << 16);
                    (pair(v(0), v(2)), pair(v(1), v(3)))
                };
                block[k] = a;
                block[PIXELS + k] = b;
            }
            c += 4;
            if c == c_in {
                c = 0;
                tx += 1;
            }
        }
        if let Some(stop) = blocks.next() {
            stop[0] = STOP;
        }
        (tx, c)
    }

    /// Requantizes a tile's accumulators into the output channels `o0..`.
    #[inline(always)]
    fn store(&self, o0: usize, acc: &[[i32; PIXELS]], px: &[Pixel; PIXELS], ys: &mut [i8]) {
        let p = self.p;
        for (o, a) in acc.iter().enumerate() {
            let (m, s) = (le(p.multipliers, o0 + o), le(p.shifts, o0 + o));
            let fast = m >= 0 && (-31..=-1).contains(&s);
            for (&v, pixel) in a.iter().zip(px) {
                let y = if fast {
                    requantize_fast(v, m, (-s - 1) as u32, p.out_zero_point, p.act_min, p.act_max)
                } else {
                    requantize(v, m, s, p.out_zero_point, p.act_min, p.act_max)
                };
                if let Some(dst) = ys.get_mut(pixel.at + (o0 + o) * self.channel_step) {
                    *dst = y;
                }
            }
        }
    }

    /// The one-channel path over `n` samples: each phase's weight row sign-extended once into
    /// halfword pairs (the order `SXTB16` splits an input word), then every output pixel alone,
    /// its taps' input runs read in place: a 1-channel layer has no second row to share the
    /// input with, so the input is what is not prepared.
    #[inline(never)]
    fn run_one_channel(&self, x: &[i8], n: usize, out: &mut [i8]) {
        let (d, p) = (&self.d, self.p);
        let mut weights = [0u32; 2 * ONE_QUADS];
        let c_in = d.in_channels_per_group;
        let iw = d.w.input();
        for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
            let mut prepared_phase = usize::MAX;
            self.blocks(|phase, b| {
                let row = p.weights.get(phase.offset..phase.offset + phase.cols).unwrap_or(&[]);
                if prepared_phase != phase.index {
                    for (pair, w) in weights.chunks_exact_mut(2).zip(row.chunks_exact(4)) {
                        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                        pair[0] = sxtb16::<0>(w);
                        pair[1] = sxtb16::<8>(w);
                    }
                    prepared_phase = phase.index;
                }
                // The reference's accumulator: the bias with the phase row's sum put back,
                // minus zp times the valid taps' weights (their products take x, not x - zp).
                let mut valid = 0i32;
                for t in b.taps_y.clone() {
                    let run = (t * phase.taps_x + b.taps_x.start) * c_in..(t * phase.taps_x + b.taps_x.end) * c_in;
                    for &w in row.get(run).unwrap_or(&[]) {
                        valid = valid.wrapping_add(w as i8 as i32);
                    }
                }
                let (r, zp) = (phase.index, p.in_zero_point);
                let init = le(p.bias, r)
                    .wrapping_add(zp.wrapping_mul(le(p.weight_sums, r)))
                    .wrapping_sub(zp.wrapping_mul(valid));
                let run_quads = (b.taps_x.end - b.taps_x.start) * c_in / 4;
                let (m, s) = (le(p.multipliers, 0), le(p.shifts, 0));
                let fast = m >= 0 && (-31..=-1).contains(&s);
                for i in b.rows.clone() {
                    for j in b.cols.clone() {
                        let px = self.pixel(b, i, j);
                        let mut acc = init;
                        for t in b.taps_y.clone() {
                            let (iy, ix) = ((px.y0 + t as isize) as usize, (px.x0 + b.taps_x.start as isize) as usize);
                            let q0 = (t * phase.taps_x + b.taps_x.start) * c_in / 4;
                            // SAFETY: the block's taps reach the input only: row iy, columns ix..
                            // for `run_quads * 4` bytes of channels are inside the sample; the
                            // weight pairs from q0 are inside the phase row, which `weights`
                            // holds (`one_channel`).
                            acc = unsafe {
                                dot1(
                                    acc,
                                    xs.as_ptr().add((iy * iw + ix) * c_in).cast(),
                                    weights.as_ptr().add(2 * q0),
                                    run_quads,
                                )
                            };
                        }
                        let y = if fast {
                            requantize_fast(acc, m, (-s - 1) as u32, p.out_zero_point, p.act_min, p.act_max)
                        } else {
                            requantize(acc, m, s, p.out_zero_point, p.act_min, p.act_max)
                        };
                        if let Some(dst) = ys.get_mut(px.at) {
                            *dst = y;
                        }
                    }
                }
            });
        }
    }
}

/// Output pixels of one phase whose taps reach the same input rows (or columns).
struct Block {
    /// Phase rows and columns (indices into the phase's outputs).
    rows: core::ops::Range<usize>,
    cols: core::ops::Range<usize>,
    /// The phase's first output row and column.
    oy0: usize,
    ox0: usize,
    /// The input row and column that the phase's first output's tap 0 reads.
    y_first: isize,
    x_first: isize,
    /// The valid tap rows and columns.
    taps_y: core::ops::Range<usize>,
    taps_x: core::ops::Range<usize>,
}

/// The first output of residue `r` on an axis: `(o + pad) ≡ r (mod stride)`. (Strides are
/// at least 1; the checked forms keep a panic path out.)
fn first_output(axis: &Axis, r: usize) -> usize {
    let s = axis.stride();
    (r + s).wrapping_sub(axis.pad().checked_rem(s).unwrap_or(0)).checked_rem(s).unwrap_or(0)
}

/// Outputs `first, first + step, ...` below `end`.
fn count(first: usize, end: usize, step: usize) -> usize {
    (end.saturating_sub(first) + step - 1).checked_div(step).unwrap_or(0)
}

/// The input position that tap 0 of output `o` (of residue `r`, with `taps` taps) reads; see
/// [`crate::kernels::conv_layout`] for the tap order.
fn first_input(axis: &Axis, r: usize, taps: usize, o: usize) -> isize {
    let (s, pad) = (axis.stride() as isize, axis.pad() as isize);
    (o as isize + pad - r as isize).checked_div_euclid(s).unwrap_or(0) - (taps as isize - 1)
}

/// The taps `t < taps` with `0 <= first + t < input`.
fn valid(first: isize, taps: usize, input: usize) -> core::ops::Range<usize> {
    let lo = (-first).clamp(0, taps as isize) as usize;
    let hi = (input as isize - first).clamp(lo as isize, taps as isize) as usize;
    lo..hi
}

/// The `n` outputs of a phase on an axis (output `i` reading from `first + i`) in maximal runs
/// with the same valid taps.
fn runs(
    first: isize,
    n: usize,
    taps: usize,
    input: usize,
) -> impl Iterator<Item = (core::ops::Range<usize>, core::ops::Range<usize>)> {
    let mut i = 0;
    core::iter::from_fn(move || {
        if i >= n {
            return None;
        }
        let start = i;
        let box_ = valid(first + i as isize, taps, input);
        while i < n && valid(first + i as isize, taps, input) == box_ {
            i += 1;
        }
        Some((start..i, box_))
    })
}

/// Little-endian i32 number `i` of `bytes` (0 past the end, which `samples` rules out).
#[inline(always)]
fn le(bytes: &[u8], i: usize) -> i32 {
    bytes.get(4 * i..).and_then(|s| s.first_chunk()).map_or(0, |&b| i32::from_le_bytes(b))
}

/// [`requantize`] for `multiplier >= 0` and `shift = -(e1 + 1)`, `e1 < 31`: the derivation at
/// [`super::dense_i8`]'s `run`, in Rust (a multiply-long, shifts, no overflow).
#[inline(always)]
fn requantize_fast(acc: i32, multiplier: i32, e1: u32, zero_point: i32, min: i8, max: i8) -> i8 {
    let z = acc as i64 * multiplier as i64 + (1 << 30) - (((acc < 0) as i64) << 31);
    let w = (z >> 31) as i32;
    let q = w >> e1;
    let v = ((q >> 1) + (q & 1)).saturating_add(zero_point);
    if v < min as i32 {
        min
    } else if v > max as i32 {
        max
    } else {
        v as i8
    }
}

/// Bytes 0 and 2 (`ROR == 0`) or 1 and 3 (`ROR == 8`) of `w`, sign-extended into halfwords.
#[inline(always)]
fn sxtb16<const ROR: u32>(w: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; no memory, stack or flags touched.
    unsafe {
        if ROR == 0 {
            asm!("sxtb16 {r}, {w}", r = lateout(reg) r, w = in(reg) w, options(pure, nomem, nostack, preserves_flags));
        } else {
            asm!("sxtb16 {r}, {w}, ror #8", r = lateout(reg) r, w = in(reg) w,
                 options(pure, nomem, nostack, preserves_flags));
        }
    }
    r
}

/// `acc + lo(a) * lo(b) + hi(a) * hi(b)` on halfwords, wrapping.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r;
    // SAFETY: register-only arithmetic; it may set the sticky Q flag, so flags are not promised
    // kept. The sum wraps, as the reference's wrapping adds do.
    unsafe {
        asm!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc,
             options(pure, nomem, nostack));
    }
    r
}

/// `acc` plus the dot product of `quads` words of int8 inputs at `x` with the prepared weight
/// pairs at `w`.
///
/// # Safety
/// `x` may be read `4 * quads` bytes, `w` `2 * quads` words.
#[inline(always)]
unsafe fn dot1(mut acc: i32, x: *const u8, w: *const u32, quads: usize) -> i32 {
    for q in 0..quads {
        // SAFETY: within the contract's bounds.
        let (v, lo, hi) = unsafe { (x.add(4 * q).cast::<u32>().read_unaligned(), *w.add(2 * q), *w.add(2 * q + 1)) };
        acc = smlad(sxtb16::<0>(v), lo, acc);
        acc = smlad(sxtb16::<8>(v), hi, acc);
    }
    acc
}

/// Halfword-wise `a - b` (values within int16 here: int8 minus int8).
#[inline(always)]
fn ssub16(a: u32, b: u32) -> u32 {
    let r;
    // SAFETY: register-only arithmetic; it sets the GE flags, so flags are not promised kept.
    unsafe {
        asm!("ssub16 {r}, {a}, {b}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
    };
    r
}

/// One block of 4 input channels for the four pixels; input halves in r0-r3, accumulators in
/// r4, r5, r8, r9, the weight word in r10, its halves in r11, weights at r12, input at lr.
/// 13 instructions, all 32-bit.
macro_rules! block {
    () => {
        concat!(
            "ldr.w r10, [r12], #4\n",
            "sxtb16 r11, r10\n",
            "smlad r4, r11, r0, r4\n",
            "smlad r5, r11, r1, r5\n",
            "smlad r8, r11, r2, r8\n",
            "smlad r9, r11, r3, r9\n",
            "ldm.w lr!, {{r0, r1, r2, r3}}\n",
            "sxtb16 r11, r10, ror #8\n",
            "smlad r4, r11, r0, r4\n",
            "smlad r5, r11, r1, r5\n",
            "smlad r8, r11, r2, r8\n",
            "smlad r9, r11, r3, r9\n",
            "ldm.w lr!, {{r0, r1, r2, r3}}\n",
        )
    };
}

/// Adds the dot products of one weight row run (from `w`) with the four pixels' prepared
/// inputs to `acc`, block by block until the stop block; `entry` is `(4 - blocks % 4) % 4`.
///
/// # Safety
/// `x` holds `blocks >= 1` blocks and then the stop block; `w` may be read `4 * blocks` bytes.
#[inline(always)]
unsafe fn dot(acc: &mut [i32; PIXELS], w: *const u8, x: &Prepared, entry: usize) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: see the contract. The loop reads the blocks in order and stops at the first whose
    // first word is STOP, which only the stop block's is (prepared halfwords lie in -255..=255);
    // entering `entry` blocks into the body makes the test fall after all blocks. The weights
    // are read one word per block. SMLAD wraps as the reference's wrapping adds do (it only
    // sets the sticky Q flag).
    unsafe {
        asm!(
            "ldm.w lr!, {{r0, r1, r2, r3}}",
            "cmp r10, #1",
            "beq 3f",
            "cmp r10, #2",
            "beq 4f",
            "cmp r10, #3",
            "beq 5f",
            "2:",
            block!(),
            "3:",
            block!(),
            "4:",
            block!(),
            "5:",
            block!(),
            "cmp.w r0, #0x80008000",
            "bne 2b",
            inout("r4") a0, inout("r5") a1, inout("r8") a2, inout("r9") a3,
            inout("r10") entry => _, out("r11") _, inout("r12") w => _, inout("lr") x.0.as_ptr() => _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _,
            options(readonly, nostack),
        );
    }
    *acc = [a0, a1, a2, a3];
}
