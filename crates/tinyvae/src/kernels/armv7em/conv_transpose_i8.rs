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
//! plus a `CMP`/`BNE` per eight such blocks: 0.83 instructions per MAC in the loop.
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
//! buffer holds [`CHUNK_QUADS`] blocks (528 B, which also hold a tile's requantization once its
//! inputs are spent): the patch rows of a pixel group, not of a whole
//! output row ("no im2col buffer larger than one output row's patches").
//!
//! # The loop
//! No register is left for a counter (12 of the 12 that inline asm gets: 4 inputs for `LDM`,
//! 4 accumulators, a weight word, its halves, 2 pointers), so the loop ends on a block whose first
//! word is [`STOP`], the halfword pair (-32768, -32768) that no prepared value is, as in
//! [`super::dense_i8`]. The body holds 8 blocks and is entered `blocks % 8` blocks before its
//! end (a jump through `ADD PC`). The row loop around it is in the same asm (15 instructions a
//! row), its state in a small frame.
//!
//! # One output channel
//! A decoder's last layer has a single output channel, so a prepared input would serve one
//! row only. There the phase's weight row is prepared instead (sign-extended once per sample
//! and phase, 512 B at most), and the input is read in place, channels-last: four neighbouring
//! outputs of a row read four neighbouring input pixels, 25 instructions per 16 MACs
//! (`dot4`); row ends go in pairs. A one-channel layer whose input is NCHW takes the general
//! path.
//!
//! # What it takes
//! Tap-major weights (format version 3), an input zero point inside int8, input channels a
//! multiple of 4 (a weight word never straddles two taps, and never reads past a row), and
//! phases that all have taps. Other layers go to the generic driver (or, in builds with
//! transposed convolutions only, to the reference). Requantization is
//! [`crate::quant::requantize`] folded as in [`super::dense_i8`] (one multiply-long and shifts)
//! for the parameters a blob holds, the reference function otherwise.
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use crate::format::WeightLayout;
use crate::kernels::conv_layout::Phase;
use crate::kernels::{patches, Axis, ConvDims, ConvI8};
use crate::quant::requantize;

/// Output pixels per group: the four accumulators of one output channel.
const PIXELS: usize = 4;
/// Blocks of 4 input channels that the prepared buffer holds.
const CHUNK_QUADS: usize = 16;
/// Output channels whose accumulators wait on the stack while a group's taps are walked.
const ROW_TILE: usize = 32;
/// Blocks of 4 weights of one phase row that the one-channel path prepares (512 B).
const ONE_QUADS: usize = 64;
/// Words of the prepared buffer.
const PREPARED_WORDS: usize = 2 * PIXELS * CHUNK_QUADS + PIXELS;
// The buffer also holds a tile's requantization (two words a row).
const _: () = assert!(PREPARED_WORDS >= 2 * ROW_TILE);
/// Blocks per pass of [`dot_rows`]' loop.
const UNROLL: usize = 8;
/// Bytes of one block's code: 13 instructions, all 32-bit.
const BLOCK_CODE: usize = 52;
/// First word of the block that ends the loop.
const STOP: u32 = 0x8000_8000;

/// The prepared input of one chunk: 8 words per block of 4 channels, then the stop block (the
/// 4 words of its `LDM`).
#[repr(C, align(4))]
struct Prepared([MaybeUninit<u32>; PREPARED_WORDS]);

/// See [`crate::kernels::ConvI8Fn`]: the direct kernel for the layers it takes, `D`'s generic
/// driver for the rest (or, in builds with transposed convolutions only, the reference: the
/// driver is the flash of a second kernel for layers that no image decoder has).
pub fn conv_transpose_i8<D: patches::Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    let n = p.samples(true, x, batch, out);
    let Some(layer) = Layer::new(p).filter(|_| n > 0) else {
        return fallback::<D>(p, x, batch, out);
    };
    if layer.one_channel() {
        layer.run_one_channel(x, n, out);
    } else {
        layer.run(x, n, out);
    }
}

/// The layers this kernel does not take. Out of line, so that its frame is not on the stack
/// of the ones it takes.
#[inline(never)]
#[cfg_attr(not(feature = "conv"), allow(clippy::extra_unused_type_parameters))]
fn fallback<D: patches::Dense>(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    #[cfg(feature = "conv")]
    patches::conv_transpose_i8::<D>(p, x, batch, out);
    #[cfg(not(feature = "conv"))]
    crate::kernels::reference::conv_transpose_i8(p, x, batch, out);
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
    /// Every output channel's requantization takes the folded form ([`Requantize`]).
    folded: bool,
}

/// The stack buffers of the general path (borrowed, so that they are made in place).
struct Buffers<'b> {
    /// Left uninitialised: `prepare` writes every word that `dot` reads.
    prepared: &'b mut Prepared,
    acc: &'b mut [[i32; PIXELS]; ROW_TILE],
}

impl<'a> Layer<'a> {
    /// The layer, if this kernel takes it (see the module documentation). Out of line: its
    /// temporaries stay off the stack of the run.
    #[inline(never)]
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
        let folded = (0..d.rows).all(|o| Requantize::new(p, o).e1 < 31);
        Some(Layer { p, d, zero_points, channel_step, folded })
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
        let mut prepared = Prepared([MaybeUninit::uninit(); PREPARED_WORDS]);
        let mut acc = [[0; PIXELS]; ROW_TILE];
        let mut bufs = Buffers { prepared: &mut prepared, acc: &mut acc };
        if d.in_len == 0 || d.out_len == 0 {
            return;
        }
        for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
            self.blocks(|phase, b| self.block(&mut bufs, phase, b, xs, ys));
        }
    }

    /// The pixels of one block, four at a time; a last group of fewer repeats its last pixel
    /// (computed and stored twice, the same bytes).
    fn block(&self, bufs: &mut Buffers<'_>, phase: &Phase, b: &Block, xs: &[i8], ys: &mut [i8]) {
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
            let last = px[(len - 1) % PIXELS];
            px.iter_mut().skip(len).for_each(|q| *q = last);
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
    #[inline(never)]
    fn group(
        &self,
        bufs: &mut Buffers<'_>,
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
            self.start_tile(bufs, phase.index * d.rows + o0, tile);
            for t in ty.clone() {
                // A run of valid taps of one tap row is one run of each weight row.
                let k_end = (t * phase.taps_x + tx.end) * c_in;
                let mut k0 = (t * phase.taps_x + tx.start) * c_in;
                let mut at = (tx.start, 0);
                while k0 < k_end {
                    let k1 = k_end.min(k0 + 4 * CHUNK_QUADS);
                    let quads = (k1 - k0) / 4;
                    at = self.prepare(bufs.prepared, px, t, at, quads, xs);
                    let entry = (UNROLL - quads % UNROLL) % UNROLL * BLOCK_CODE;
                    let row0 = phase.offset + o0 * phase.cols + k0;
                    if quads > 0 {
                        // SAFETY: `samples` checked that `weights` holds the layer's rows *
                        // cols bytes, phase blocks included; the taps run `k0..k1` lies inside
                        // each row o0..o0 + tile of the phase (4 * quads bytes, word loads
                        // allowed at any alignment on ARMv7-M). `prepared` holds `quads >= 1`
                        // blocks and the stop block; `acc` holds `tile` rows.
                        unsafe {
                            let w = p.weights.as_ptr().add(row0);
                            dot_rows(&mut bufs.acc[..tile], w, phase.cols, bufs.prepared, entry);
                        }
                    }
                    k0 = k1;
                }
            }
            self.requantization(bufs, o0, tile);
            self.store(o0, bufs, tile, px, ys);
        }
    }

    /// Sets the accumulators of the tile's `tile` rows to their phase biases (from bias row
    /// `first`) with the phase row's sum put back. Out of line, as the next two: fewer values
    /// live in [`Layer::group`], whose frame is on the decode stack.
    #[inline(never)]
    fn start_tile(&self, bufs: &mut Buffers<'_>, first: usize, tile: usize) {
        let p = self.p;
        let (bias, sums) = (p.bias.as_ptr().cast::<i32>(), p.weight_sums.as_ptr().cast::<i32>());
        let rows = tile.min(self.d.rows);
        for (o, a) in bufs.acc.iter_mut().enumerate().take(rows) {
            // SAFETY: `samples` checked that both arrays hold `rows * phases` little-endian i32
            // (unaligned loads are allowed on ARMv7-M), and `first + o` is one of them.
            let (b, sum) = unsafe {
                (i32::from_le(bias.add(first + o).read_unaligned()), i32::from_le(sums.add(first + o).read_unaligned()))
            };
            // The tap-major bias folds -zp * (the phase row's sum): put it back, so that the
            // valid taps alone, on inputs minus zp, complete the reference's sum.
            *a = [b.wrapping_add(p.in_zero_point.wrapping_mul(sum)); PIXELS];
        }
    }

    /// Writes the requantization of output channels `o0..o0 + tile` into the prepared buffer,
    /// two words a row, once the tile's inputs are spent (in the stack the decode needs, the
    /// bytes are what counts). Whether every row takes the folded form.
    #[inline(never)]
    fn requantization(&self, bufs: &mut Buffers<'_>, o0: usize, tile: usize) {
        let p = self.p;
        let (mults, shifts) = (p.multipliers.as_ptr().cast::<i32>(), p.shifts.as_ptr().cast::<i32>());
        for (o, pair) in bufs.prepared.0.chunks_exact_mut(2).take(tile.min(self.d.rows - o0)).enumerate() {
            // SAFETY: `samples` checked that both arrays hold `rows` little-endian i32 (unaligned
            // loads are allowed on ARMv7-M), and o0 + o < rows.
            let (m, shift) = unsafe {
                (i32::from_le(mults.add(o0 + o).read_unaligned()), i32::from_le(shifts.add(o0 + o).read_unaligned()))
            };
            // `Layer::new` checked every row's form once; `!shift` is `-shift - 1`.
            pair[0].write(m as u32);
            pair[1].write(if self.folded { !shift as u32 } else { Requantize::new(p, o0 + o).e1 });
        }
    }

    /// Lays out the input of `quads` (at most [`CHUNK_QUADS`]) blocks of 4 channels for the
    /// four pixels, from tap row `t`, tap column and channel `(tx, c)` on (see the module
    /// documentation), then the stop block. Returns where the next chunk starts. Run by run of
    /// channels within a tap, the four pixels each: a pixel's run starts a fixed distance from
    /// the run's, so the per-pixel work is one add. Out of line: its registers and spills stay
    /// off the frame of [`Layer::group`] (the decode stack).
    #[inline(never)]
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
        let channels_last = self.p.in_shape.channels_last;
        // Element (c, y, x) of the sample is at (y * iw + x) * pixel + c * channel.
        let (pixel, channel) = if channels_last { (c_in, 1) } else { (1, d.h.input() * iw) };
        let starts = px.map(|p| (p.y0 * iw as isize + p.x0) * pixel as isize);
        let zp = self.zero_points;
        let quads = quads.min(CHUNK_QUADS);
        let mut q = 0;
        while q < quads {
            // The blocks left in this tap.
            let n = ((c_in - c) / 4).min(quads - q);
            let run = ((t * iw + tx) * pixel + c * channel) as isize;
            let dst = buf.0.as_mut_ptr().cast::<u32>().wrapping_add(2 * PIXELS * q);
            for (k, &start) in starts.iter().enumerate() {
                let src = xs.as_ptr().wrapping_offset(run + start);
                // SAFETY: the group's taps reach the input only, so pixel k's tap (t, tx) is
                // inside it and its channels c..c + 4n are in the sample (which `samples`
                // checked `xs` holds): 4n bytes channels-last, 4n bytes `channel` apart in NCHW;
                // `dst + k` is lane k of blocks q..q + n <= CHUNK_QUADS of `buf`.
                unsafe {
                    if channels_last {
                        prepare_packed(src, dst.add(k), n, zp);
                    } else {
                        prepare_planar(src, channel, dst.add(k), n, zp);
                    }
                }
            }
            q += n;
            c += 4 * n;
            if c == c_in {
                (c, tx) = (0, tx + 1);
            }
        }
        if let Some(stop) = buf.0.get_mut(2 * PIXELS * quads) {
            stop.write(STOP);
        }
        (tx, c)
    }

    /// Requantizes a tile's accumulators into the output channels `o0..o0 + tile` of the
    /// pixels `px`, pixel by pixel (a channels-last pixel's channels are one run). Out of
    /// line: fewer values live than in [`Layer::group`].
    #[inline(never)]
    fn store(&self, o0: usize, bufs: &Buffers<'_>, tile: usize, px: &[Pixel; PIXELS], ys: &mut [i8]) {
        let p = self.p;
        let step = self.channel_step.max(1);
        let tile = tile.min(ROW_TILE);
        let clamp = (p.out_zero_point, p.act_min as i32, p.act_max as i32);
        for (k, pixel) in px.iter().enumerate() {
            let first = pixel.at + o0 * step;
            let Some(dst) = ys.get_mut(first..first + (tile - 1) * step + 1) else {
                continue;
            };
            if self.folded && step == 1 && tile > 0 {
                // A channels-last pixel's channels, every row folded: the asm loop.
                // SAFETY: `dst` holds `tile` bytes; the buffer holds the tile's pairs (written
                // by `requantization`, 2 * tile words), `acc` its rows, lane k < 4.
                unsafe {
                    store_run(
                        dst.as_mut_ptr(),
                        bufs.prepared.0.as_ptr().cast(),
                        bufs.acc.as_ptr().cast::<i32>().add(k),
                        tile,
                        clamp,
                    )
                };
                continue;
            }
            let rows = bufs.prepared.0.chunks_exact(2).zip(&bufs.acc[..tile]);
            for (o, (y, (pair, a))) in dst.iter_mut().step_by(step).zip(rows).enumerate() {
                // SAFETY: `group` wrote the tile's pairs (2 * tile <= 2 * ROW_TILE words, which
                // the buffer holds) before calling this.
                let r = unsafe { Requantize { multiplier: pair[0].assume_init() as i32, e1: pair[1].assume_init() } };
                *y = if r.e1 < 31 { r.apply(a[k], clamp) } else { requantize_other(p, a[k], o0 + o) };
            }
        }
    }

    /// The one-channel path over `n` samples: each phase's weight row sign-extended once into
    /// halfword pairs (the order `SXTB16` splits an input word), then the output pixels two at
    /// a time, their taps' input runs read in place: a one-channel layer has no second output
    /// channel to share a prepared input with, so the weights are what is prepared.
    #[inline(never)]
    fn run_one_channel(&self, x: &[i8], n: usize, out: &mut [i8]) {
        let (d, p) = (&self.d, self.p);
        let mut weights = [0u32; 2 * ONE_QUADS];
        if d.in_len == 0 || d.out_len == 0 {
            return;
        }
        for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
            let mut prepared_phase = usize::MAX;
            self.blocks(|phase, b| {
                if prepared_phase != phase.index {
                    let row = p.weights.get(phase.offset..phase.offset + phase.cols).unwrap_or(&[]);
                    for (pair, w) in weights.chunks_exact_mut(2).zip(row.chunks_exact(4)) {
                        let w = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                        pair[0] = sxtb16::<0>(w);
                        pair[1] = sxtb16::<8>(w);
                    }
                    prepared_phase = phase.index;
                }
                self.one_channel_block(&weights, phase, b, xs, ys);
            });
        }
    }

    /// One block of the one-channel path, with the phase's prepared `weights`.
    #[inline(never)]
    fn one_channel_block(&self, weights: &[u32; 2 * ONE_QUADS], phase: &Phase, b: &Block, xs: &[i8], ys: &mut [i8]) {
        let (d, p) = (&self.d, self.p);
        let (c_in, iw) = (d.in_channels_per_group, d.w.input());
        // The reference's accumulator: the bias with the phase row's sum put back, minus zp
        // times the valid taps' weights (their products take x, not x - zp).
        let mut valid = 0i32;
        for t in b.taps_y.clone() {
            let q = (t * phase.taps_x + b.taps_x.start) * c_in / 4..(t * phase.taps_x + b.taps_x.end) * c_in / 4;
            for &w in weights.get(2 * q.start..2 * q.end).unwrap_or(&[]) {
                // Each word holds two sign-extended weights.
                valid = valid.wrapping_add((w as i32) >> 16).wrapping_add(w as i16 as i32);
            }
        }
        let (r, zp) = (phase.index, p.in_zero_point);
        let init =
            le(p.bias, r).wrapping_add(zp.wrapping_mul(le(p.weight_sums, r))).wrapping_sub(zp.wrapping_mul(valid));
        let quads = (b.taps_x.end - b.taps_x.start) * c_in / 4;
        let requant = Requantize::new(p, 0);
        let clamp = (p.out_zero_point, p.act_min as i32, p.act_max as i32);
        let (ow, sh, sw) = (d.w.output(), d.h.stride(), d.w.stride());
        // Input element of tap (t, tx_start) of phase output (i, j), and the step to the next j.
        let row_step = iw * c_in;
        let first_in = (b.y_first + b.taps_y.start as isize) * row_step as isize
            + (b.x_first + b.taps_x.start as isize) * c_in as isize;
        let w0 = (b.taps_y.start * phase.taps_x + b.taps_x.start) * c_in / 4;
        let w_step = phase.taps_x * c_in / 4;
        for i in b.rows.clone() {
            let out_row = (b.oy0 + i * sh) * ow + b.ox0;
            let in_row = first_in + (i * row_step) as isize;
            let mut j = b.cols.start;
            // Four neighbouring outputs of the row read four neighbouring input pixels.
            while j + PIXELS <= b.cols.end && quads > 0 {
                let mut acc = [init; PIXELS];
                let mut a = in_row + (j * c_in) as isize;
                let mut w = w0;
                for _ in b.taps_y.clone() {
                    // SAFETY: the block's taps reach the input only: from tap (t, tx_start) of
                    // outputs j..j + 4, `4 * quads` bytes of channels are inside the sample,
                    // each output's `c_in` bytes after the previous one's; the weight pairs
                    // from w are inside the phase row, which `weights` holds (`one_channel`).
                    acc = unsafe { dot4(acc, xs.as_ptr().offset(a), c_in, weights.as_ptr().add(2 * w), quads) };
                    (a, w) = (a + row_step as isize, w + w_step);
                }
                for (k, &v) in acc.iter().enumerate() {
                    if let Some(dst) = ys.get_mut(out_row + (j + k) * sw) {
                        *dst = if requant.e1 < 31 { requant.apply(v, clamp) } else { requantize_other(p, v, 0) };
                    }
                }
                j += PIXELS;
            }
            while j < b.cols.end {
                // Two outputs of the row, or the last one twice.
                let k = if j + 1 < b.cols.end { j + 1 } else { j };
                let mut acc = [init; 2];
                let (mut a, mut z) = (in_row + (j * c_in) as isize, in_row + (k * c_in) as isize);
                let mut w = w0;
                for _ in b.taps_y.clone() {
                    // SAFETY: the block's taps reach the input only: from tap (t, tx_start) of
                    // outputs j and k, `4 * quads` bytes of channels are inside the sample; the
                    // weight pairs from w are inside the phase row, which `weights` holds
                    // (`one_channel`).
                    acc = unsafe {
                        dot2(acc, (xs.as_ptr().offset(a), xs.as_ptr().offset(z)), weights.as_ptr().add(2 * w), quads)
                    };
                    (a, z, w) = (a + row_step as isize, z + row_step as isize, w + w_step);
                }
                for (&v, at) in acc.iter().zip([out_row + j * sw, out_row + k * sw]) {
                    if let Some(dst) = ys.get_mut(at) {
                        *dst = if requant.e1 < 31 { requant.apply(v, clamp) } else { requantize_other(p, v, 0) };
                    }
                }
                j = k + 1;
            }
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

/// One output channel's requantization: [`requantize`] folded into a multiply-long and a
/// shift, as [`super::dense_i8`]'s `run` derives it, for the parameters a blob holds
/// (`multiplier >= 0`, `shift` in `-31..=-1`, `act_min <= act_max`); `e1` is 31 or more
/// for the others, which [`requantize_other`] takes.
#[derive(Clone, Copy)]
struct Requantize {
    multiplier: i32,
    /// `-shift - 1`.
    e1: u32,
}

impl Requantize {
    #[inline(always)]
    fn new(p: &ConvI8<'_>, o: usize) -> Self {
        let (multiplier, shift) = (le(p.multipliers, o), le(p.shifts, o));
        let folded = multiplier >= 0 && (-31..=-1).contains(&shift) && p.act_min <= p.act_max;
        Requantize { multiplier, e1: if folded { (-shift - 1) as u32 } else { u32::MAX } }
    }

    /// The output byte of `acc`, with `(zero point, act_min, act_max)`; `e1 < 31`.
    #[inline(always)]
    fn apply(self, acc: i32, (zero_point, min, max): (i32, i32, i32)) -> i8 {
        let y: i32;
        // SAFETY: register-only arithmetic (flags written). Z = acc * m + 2^30 - 2^31 [acc < 0]
        // in hi:lo; the result is hi >> (e - 1) plus the last bit shifted out (for e = 1, bit
        // 31 of lo, which LSLS puts in the carry and a shift by 0 keeps); then the zero point,
        // saturating, and the clamp (min <= max).
        unsafe {
            asm!(
                "asr {hi}, {acc}, #31",
                "eor {lo}, {half}, {hi}, lsl #31",
                "smlal {lo}, {hi}, {acc}, {m}",
                "lsls {lo}, {lo}, #1",
                "asrs {hi}, {hi}, {e1}",
                "adc {hi}, {hi}, #0",
                "qadd {hi}, {hi}, {zp}",
                "cmp {hi}, {min}",
                "it lt",
                "movlt {hi}, {min}",
                "cmp {hi}, {max}",
                "it gt",
                "movgt {hi}, {max}",
                acc = in(reg) acc, m = in(reg) self.multiplier, e1 = in(reg) self.e1, half = in(reg) 0x4000_0000u32,
                zp = in(reg) zero_point, min = in(reg) min, max = in(reg) max, hi = out(reg) y, lo = out(reg) _,
                options(pure, nomem, nostack),
            );
        }
        y as i8
    }
}

/// Requantizes `n >= 1` accumulators (`acc`, 4 words apart) with the row pairs at `table`
/// (multiplier, `e1 < 31`) into `n` consecutive bytes at `dst`: [`Requantize::apply`] in one
/// loop, 20 instructions a byte (the compiled loop reloaded its constants from the stack).
///
/// # Safety
/// `dst` may be written `n` bytes; `table` read `2n` words, `acc` `n` words 16 bytes apart.
#[inline(always)]
unsafe fn store_run(
    dst: *mut i8,
    table: *const u32,
    acc: *const i32,
    n: usize,
    (zero_point, min, max): (i32, i32, i32),
) {
    // SAFETY: see the contract; register arithmetic besides those loads and stores.
    unsafe {
        asm!(
            "2:",
            "ldrd {m}, {e1}, [{tab}], #8",
            "ldr {acc}, [{accp}], #16",
            "asr {hi}, {acc}, #31",
            "mov {lo}, #0x40000000",
            "eor {lo}, {lo}, {hi}, lsl #31",
            "smlal {lo}, {hi}, {acc}, {m}",
            "lsls {lo}, {lo}, #1",
            "asrs {hi}, {hi}, {e1}",
            "adc {hi}, {hi}, #0",
            "qadd {hi}, {hi}, {zp}",
            "cmp {hi}, {min}",
            "it lt",
            "movlt {hi}, {min}",
            "cmp {hi}, {max}",
            "it gt",
            "movgt {hi}, {max}",
            "strb {hi}, [{dst}], #1",
            "subs {n}, {n}, #1",
            "bne 2b",
            dst = inout(reg) dst => _, tab = inout(reg) table => _, accp = inout(reg) acc => _,
            n = inout(reg) n => _, zp = in(reg) zero_point, min = in(reg) min, max = in(reg) max,
            m = out(reg) _, e1 = out(reg) _, acc = out(reg) _, hi = out(reg) _, lo = out(reg) _,
            options(nostack),
        );
    }
}

/// [`requantize`] of output channel `o`, for the parameters no blob holds (kernels take any).
#[cold]
#[inline(never)]
fn requantize_other(p: &ConvI8<'_>, acc: i32, o: usize) -> i8 {
    requantize(acc, le(p.multipliers, o), le(p.shifts, o), p.out_zero_point, p.act_min, p.act_max)
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

/// `acc` plus the dot products of `quads` words of int8 inputs at each of `x` with the prepared
/// weight pairs at `w`.
///
/// # Safety
/// Both `x` may be read `4 * quads` bytes, `w` `2 * quads` words.
#[inline(always)]
unsafe fn dot2(mut acc: [i32; 2], x: (*const i8, *const i8), w: *const u32, quads: usize) -> [i32; 2] {
    for q in 0..quads {
        // SAFETY: within the contract's bounds.
        let (lo, hi, a, b) = unsafe {
            (
                *w.add(2 * q),
                *w.add(2 * q + 1),
                x.0.add(4 * q).cast::<u32>().read_unaligned(),
                x.1.add(4 * q).cast::<u32>().read_unaligned(),
            )
        };
        acc[0] = smlad(sxtb16::<8>(a), hi, smlad(sxtb16::<0>(a), lo, acc[0]));
        acc[1] = smlad(sxtb16::<8>(b), hi, smlad(sxtb16::<0>(b), lo, acc[1]));
    }
    acc
}

/// `acc` plus the dot products of `quads` words of int8 inputs at `x`, `x + step`, `x + 2 step`
/// and `x + 3 step` with the prepared weight pairs at `w`: 25 instructions per 16 MACs (the
/// compiled form of the same loop kept spilling).
///
/// # Safety
/// `quads >= 1`; each of the four inputs may be read `4 * quads` bytes, `w` `2 * quads` words
/// (word-aligned).
#[inline(always)]
unsafe fn dot4(acc: [i32; PIXELS], x: *const i8, step: usize, w: *const u32, quads: usize) -> [i32; PIXELS] {
    let [mut a0, mut a1, mut a2, mut a3] = acc;
    // SAFETY: see the contract; SMLAD wraps as the reference's wrapping adds do.
    unsafe {
        asm!(
            "2:",
            "ldrd {lo}, {hi}, [{w}], #8",
            "ldr {x}, [{a}]",
            "sxtb16 {t}, {x}",
            "smlad {a0}, {t}, {lo}, {a0}",
            "sxtb16 {x}, {x}, ror #8",
            "smlad {a0}, {x}, {hi}, {a0}",
            "ldr {x}, [{a}, {c}]",
            "sxtb16 {t}, {x}",
            "smlad {a1}, {t}, {lo}, {a1}",
            "sxtb16 {x}, {x}, ror #8",
            "smlad {a1}, {x}, {hi}, {a1}",
            "ldr {x}, [{a}, {c}, lsl #1]",
            "sxtb16 {t}, {x}",
            "smlad {a2}, {t}, {lo}, {a2}",
            "sxtb16 {x}, {x}, ror #8",
            "smlad {a2}, {x}, {hi}, {a2}",
            "add {t}, {a}, {c}, lsl #1",
            "ldr {x}, [{t}, {c}]",
            "sxtb16 {t}, {x}",
            "smlad {a3}, {t}, {lo}, {a3}",
            "sxtb16 {x}, {x}, ror #8",
            "smlad {a3}, {x}, {hi}, {a3}",
            "add {a}, {a}, #4",
            "subs {n}, {n}, #1",
            "bne 2b",
            a0 = inout(reg) a0, a1 = inout(reg) a1, a2 = inout(reg) a2, a3 = inout(reg) a3,
            a = inout(reg) x => _, c = in(reg) step, w = inout(reg) w => _, n = inout(reg) quads => _,
            lo = out(reg) _, hi = out(reg) _, x = out(reg) _, t = out(reg) _,
            options(readonly, nostack),
        );
    }
    [a0, a1, a2, a3]
}

/// Lays out `n` blocks of 4 channels of one pixel of a channels-last input (`4n` bytes from
/// `src`) into lane `dst` of `n` prepared blocks, minus the zero points `zp`: 9 instructions a
/// block. In asm so that the loop stays this tight in a build of the runtime optimized for size
/// (the compiled loop took 11, with indexed stores).
///
/// # Safety
/// `src` may be read `4n` bytes (any alignment); `dst` written at `8i` and `8i + 4` words for
/// `i < n`.
#[inline(always)]
unsafe fn prepare_packed(src: *const i8, dst: *mut u32, n: usize, zp: u32) {
    if n == 0 {
        return;
    }
    // SAFETY: see the contract; register arithmetic besides those loads and stores.
    unsafe {
        asm!(
            "2:",
            "ldr {a}, [{src}], #4",
            "sxtb16 {b}, {a}, ror #8",
            "sxtb16 {a}, {a}",
            "ssub16 {a}, {a}, {zp}",
            "ssub16 {b}, {b}, {zp}",
            "str {b}, [{dst}, #16]",
            "str {a}, [{dst}], #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            src = inout(reg) src => _, dst = inout(reg) dst => _, n = inout(reg) n => _,
            zp = in(reg) zp, a = out(reg) _, b = out(reg) _,
            options(nostack),
        );
    }
}

/// Lays out `n` blocks of 4 channels of one pixel of an NCHW input (channel planes `plane`
/// bytes apart, from `src`) into lane `dst` of `n` prepared blocks, minus the zero points `zp`.
/// In asm: the compiler's version kept the plane offsets on the stack.
///
/// # Safety
/// `src` may be read at `j * plane` for `j < 4n`; `dst` written at `8i` and `8i + 4` words for
/// `i < n`.
#[inline(always)]
unsafe fn prepare_planar(src: *const i8, plane: usize, dst: *mut u32, n: usize, zp: u32) {
    if n == 0 {
        return;
    }
    // SAFETY: see the contract; register arithmetic besides those loads and stores.
    unsafe {
        asm!(
            "2:",
            "ldrsb {a}, [{src}]",
            "ldrsb {b}, [{src}, {p1}]",
            "ldrsb {c}, [{src}, {p2}]",
            "ldrsb {d}, [{src}, {p3}]",
            "add {src}, {src}, {p2}, lsl #1",
            "pkhbt {a}, {a}, {c}, lsl #16",
            "pkhbt {b}, {b}, {d}, lsl #16",
            "ssub16 {a}, {a}, {zp}",
            "ssub16 {b}, {b}, {zp}",
            "str {b}, [{dst}, #16]",
            "str {a}, [{dst}], #32",
            "subs {n}, {n}, #1",
            "bne 2b",
            src = inout(reg) src => _, dst = inout(reg) dst => _, n = inout(reg) n => _,
            p1 = in(reg) plane, p2 = in(reg) 2 * plane, p3 = in(reg) 3 * plane,
            zp = in(reg) zp, a = out(reg) _, b = out(reg) _, c = out(reg) _, d = out(reg) _,
            options(nostack),
        );
    }
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

/// For each row of `acc` (its weight row run starting `stride` bytes after the previous one,
/// from `w`), adds the dot products with the four pixels' prepared inputs, block by block until
/// the stop block; `entry` is `(8 - blocks % 8) % 8` blocks of code, in bytes (the loop is
/// entered that far into its body, so that its test falls after the last block). One asm block
/// for all rows: the row loop's state waits in a 24-byte frame while the 12 registers run the
/// blocks.
///
/// # Safety
/// `x` holds `blocks >= 1` blocks and then the stop block; from `w`, each of the `acc.len()`
/// rows may read `4 * blocks` bytes.
#[inline(always)]
unsafe fn dot_rows(acc: &mut [[i32; PIXELS]], w: *const u8, stride: usize, x: &Prepared, entry: usize) {
    let rows = acc.as_mut_ptr();
    let end = rows.wrapping_add(acc.len());
    if acc.is_empty() {
        return;
    }
    // SAFETY: see the contract. Each row's loop reads the blocks in order and stops at the first
    // whose first word is STOP, which only the stop block's is (prepared halfwords lie in
    // -255..=255); entering `entry` bytes into the body makes the test fall after all blocks
    // (`ADD PC` jumps only inside the body: the offset is below its size, as the asm checks).
    // The weights are read one word per block. SMLAD wraps as the reference's wrapping adds do
    // (it only sets the sticky Q flag). The frame below sp is freed on exit; `acc` is written
    // within its rows only.
    unsafe {
        asm!(
            "sub sp, sp, #24",
            "stm sp, {{r0, r1, r2, r3, r4, r5}}",
            "2:",
            "ldr r10, [sp]",
            "ldm r10, {{r4, r5, r8, r9}}",
            "ldrd r12, r11, [sp, #8]",
            "add r11, r12, r11",
            "str r11, [sp, #8]",
            "ldrd lr, r10, [sp, #16]",
            "ldm lr!, {{r0, r1, r2, r3}}",
            // Into the body `entry` blocks late: PC reads 4 bytes ahead, at the first block.
            "3:",
            "add pc, r10",
            "nop",
            "4:",
            block!(),
            block!(),
            block!(),
            block!(),
            block!(),
            block!(),
            block!(),
            block!(),
            "5:",
            "cmp.w r0, #0x80008000",
            "bne 4b",
            "ldr r10, [sp]",
            "stm r10!, {{r4, r5, r8, r9}}",
            "str r10, [sp]",
            "ldr r11, [sp, #4]",
            "cmp r10, r11",
            "bne 2b",
            "add sp, sp, #24",
            // The sizes the entry offsets rely on.
            ".if (4b - 3b) != 4",
            ".error \"dot_rows entry: ADD PC and NOP must take 4 bytes\"",
            ".endif",
            ".if (5b - 4b) != {body}",
            ".error \"dot_rows body: unexpected size\"",
            ".endif",
            body = const UNROLL * BLOCK_CODE,
            inout("r0") rows => _, inout("r1") end => _, inout("r2") w => _, inout("r3") stride => _,
            inout("r4") x.0.as_ptr().cast::<u32>() => _, inout("r5") entry => _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("lr") _,
        );
    }
}
