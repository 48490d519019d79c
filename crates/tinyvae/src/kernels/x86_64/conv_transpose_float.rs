//! f16 and f32 transposed convolution straight from a padded HWC window, with AVX-512 or
//! AVX2 + FMA + F16C ([`FloatLanes`]): no patch is gathered, no Dense call made per chunk of
//! pixels.
//!
//! Through the generic driver ([`crate::kernels::patches`]) the conv VAE's f16 decoder ran no
//! faster than tract f32: every output pixel's patch was copied into a buffer, the Dense kernel
//! reduced each output channel's lanes horizontally, and the results were scattered back.
//! Here, as in the int8 kernel ([`super::conv_transpose_i8_avx512vnni`]), each sample's input
//! goes once into a [`TransposeWindow`] (HWC, a border of zeros) and the kernels read a patch
//! row of the tap-major layout ([`crate::kernels::conv_layout`]) where it lies:
//! - **Many output channels** (at least a vector's lanes): output channels in the lanes. A
//!   phase's weights are widened (f16, `vcvtph2ps`, exact) and turned once per sample and
//!   phase into a stack buffer, a vector of output channels per patch column; each input
//!   value, broadcast, multiplies two such vectors for up to [`FloatLanes::PIXELS`] pixels of
//!   a phase row at once (the accumulators started at the bias), so there is no horizontal
//!   sum and a pixel's channels-last outputs are whole vector stores. Border taps add nothing,
//!   so the runs multiply only the taps that read the input
//!   ([`TransposeWindow::phase_runs`]), as the reference visits only the valid ones.
//! - **One output channel** (an image's last layer): outputs in the lanes, from a planar
//!   window ([`super::conv_transpose_float_one`]).
//!
//! Turning per sample and phase keeps the buffer at 32 KiB (the 64 -> 32 layer's 4 phases
//! would take 128 KiB in f32); on that layer it costs about a quarter of the multiplies' time
//! (with AVX-512, at batch 1: about 3.5 us of the decoder's 36).
//!
//! **Values.** f32 accumulation with FMA, summed tap row by tap row where the reference sums
//! channel by channel: the reference's values up to rounding. Any other layer (row-major
//! weights, fewer output channels than lanes but more than one, a window or a phase's weights
//! too large for the stack buffers, a phase without taps) goes to the generic driver.

use super::conv_transpose_float_one as one;
use super::float_lanes::FloatLanes;
use super::{block_starts, has};
use crate::format::WeightLayout;
use crate::kernels::conv_layout::{OutputRun, TransposeWindow};
use crate::kernels::reference::le_f32;
use crate::kernels::{patches, reference, ConvDims, ConvFloat};

/// Window floats: the conv VAE's 32-channel 14 x 14 input with its border (16 x 16) exactly.
pub(super) const WINDOW: usize = 8 * 1024;
/// Turned weight floats of one phase: ConvTranspose(64, 32, 4, 2) takes all of it.
const TURNED: usize = 8 * 1024;
/// Most lanes of a vector (AVX-512's).
const MAX_LANES: usize = 16;

/// See [`crate::kernels::ConvFloatFn`]; weights are little-endian IEEE binary16. `D` is the
/// table's Dense kernels, for the layers this kernel leaves to the generic driver.
pub fn conv_transpose_f16<L: FloatLanes, D: patches::Dense>(
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    // Without the features no blob of this op and precision parses: nothing to link.
    if !cfg!(all(feature = "conv-transpose", feature = "f16")) || !has(L::LEVEL) {
        return reference::conv_transpose_f16(p, x, batch, out);
    }
    let Some(g) = Geometry::new::<L>(p) else {
        return patches::conv_transpose_f16::<D>(p, x, batch, out);
    };
    let n = p.samples(true, 2, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: the CPU has `L`'s instructions (checked above); `samples` returned n > 0, so the
    // weights hold rows * cols f16, the bias rows f32, x and out n samples; `Geometry::new`
    // checked that the window and the turned weights fit their buffers.
    unsafe {
        if g.d.rows == 1 {
            L::run_one::<true>(p, &g, x, n, out)
        } else {
            L::run_many::<true>(p, &g, x, n, out)
        }
    }
}

/// See [`crate::kernels::ConvFloatFn`]; weights are little-endian f32.
pub fn conv_transpose_f32<L: FloatLanes, D: patches::Dense>(
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out: &mut [f32],
) {
    if !cfg!(all(feature = "conv-transpose", feature = "f32")) || !has(L::LEVEL) {
        return reference::conv_transpose_f32(p, x, batch, out);
    }
    let Some(g) = Geometry::new::<L>(p) else {
        return patches::conv_transpose_f32::<D>(p, x, batch, out);
    };
    let n = p.samples(true, 4, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: as in `conv_transpose_f16`, with 4-byte weights.
    unsafe {
        if g.d.rows == 1 {
            L::run_one::<false>(p, &g, x, n, out)
        } else {
            L::run_many::<false>(p, &g, x, n, out)
        }
    }
}

/// The checked shape of a layer these kernels take.
pub(super) struct Geometry {
    pub(super) d: ConvDims,
    /// Where the input sits in the window.
    pub(super) window: TransposeWindow,
}

impl Geometry {
    fn new<L: FloatLanes>(p: &ConvFloat<'_>) -> Option<Self> {
        let d = p.dims(true)?;
        if p.layout != WeightLayout::TapMajor || d.groups != 1 {
            return None;
        }
        let window = TransposeWindow::new(&d)?;
        // Both windows (HWC, and planar for one channel) hold height * width * C_in floats.
        let floats = window.height.checked_mul(window.width)?.checked_mul(d.in_channels_per_group)?;
        let fits = if d.rows == 1 {
            d.cols <= one::WEIGHTS
        } else {
            let mut widest = 0;
            for index in 0..d.h.stride() * d.w.stride() {
                let phase = d.phase(true, index / d.w.stride(), index % d.w.stride());
                widest = widest.max(phase.cols.checked_mul(d.rows.div_ceil(L::N) * L::N)?);
            }
            d.rows >= L::N && widest <= TURNED
        };
        (fits && floats <= WINDOW).then_some(Geometry { d, window })
    }
}

/// A buffer aligned to the widest vector, so that turned weights load aligned.
#[repr(C, align(64))]
pub(super) struct Aligned<const N: usize>(pub(super) [f32; N]);

/// The layer over `n` samples, with at least `L::N` output channels.
///
/// # Safety
/// `L`'s instructions; as stated where [`conv_transpose_f16`] calls it, with `F16` telling the
/// weights' width.
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
    let cin = d.in_channels_per_group;
    let weight_bytes = if F16 { 2 } else { 4 };
    let mut window = core::mem::MaybeUninit::<[f32; WINDOW]>::uninit();
    let window = window.as_mut_ptr().cast::<f32>();
    let mut turned = core::mem::MaybeUninit::<Aligned<TURNED>>::uninit();
    let turned = turned.as_mut_ptr().cast::<f32>();
    let blocks = d.rows.div_ceil(L::N);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds height * width * cin <= WINDOW floats (`Geometry::new`).
        unsafe { fill::<L>(p, g, xs, window) };
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            // SAFETY: the phase's rows * cols weights are inside the weights; `Geometry::new`
            // checked that its turned vectors fit the buffer.
            unsafe { turn::<L, F16>(p.weights.as_ptr().add(phase.offset * weight_bytes), d.rows, phase.cols, turned) };
            let mut starts = block_starts(d.rows, L::N);
            let mut b = 0;
            while b < blocks {
                let pair = blocks - b >= 2;
                let o = starts.next().unwrap_or(0);
                let o = (o, if pair { starts.next().unwrap_or(o) } else { o });
                // SAFETY: `L`'s instructions (the caller's).
                let mut bias = unsafe { [L::zero(); 2] };
                for (v, o) in bias.iter_mut().zip([o.0, o.1]) {
                    let mut lanes = [0f32; MAX_LANES];
                    for (i, b) in lanes.iter_mut().enumerate().take(L::N) {
                        *b = le_f32(p.bias, o + i);
                    }
                    // SAFETY: `L::N` readable floats.
                    *v = unsafe { L::loadu(lanes.as_ptr()) };
                }
                let patch_row = phase.taps_x * cin;
                let lanes = Lanes::<L> { o, b, blocks, pair, bias, relu: p.relu };
                g.window.phase_runs(d, &phase, true, L::PIXELS, |r| {
                    // SAFETY: the run's patches lie inside the filled window, the turned phase
                    // inside the buffer, its outputs inside the sample.
                    unsafe {
                        L::many_channels(&lanes, g, p.out_shape.channels_last, window, turned, (&r, patch_row), ys)
                    };
                });
                b += if pair { 2 } else { 1 };
            }
        }
    }
}

/// Writes one sample's input into the window: HWC inside a border of zeros.
///
/// # Safety
/// `L`'s instructions; `window` has room for `height * width * C_in` floats; `xs` is one
/// sample.
#[inline(always)]
unsafe fn fill<L: FloatLanes>(p: &ConvFloat<'_>, g: &Geometry, xs: &[f32], window: *mut f32) {
    let (d, wd) = (&g.d, &g.window);
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    // SAFETY: the window's height * width * cin floats (caller's contract); zero bits are 0.0.
    let w = unsafe {
        window.write_bytes(0, wd.height * wd.width * cin);
        core::slice::from_raw_parts_mut(window, wd.height * wd.width * cin)
    };
    let plane = ih * iw;
    for iy in 0..ih {
        let row = &mut w[((iy + wd.top) * wd.width + wd.left) * cin..][..iw * cin];
        if p.in_shape.channels_last {
            row.copy_from_slice(&xs[iy * iw * cin..][..iw * cin]);
        } else if cin.is_multiple_of(L::N) {
            // A vector of channels of up to a vector of pixels at a time (the scalar transpose
            // stores one float per pixel and channel).
            for ix in (0..iw).step_by(L::N) {
                for c in (0..cin).step_by(L::N) {
                    let count = (iw - ix).min(L::N);
                    // SAFETY: channels c..c + N of pixels ix..ix + count of row iy, inside `xs`;
                    // the same pixels' channels in the window row.
                    unsafe {
                        L::transpose_tile(
                            xs.as_ptr().add(c * plane + iy * iw + ix),
                            plane,
                            L::N,
                            count,
                            row.as_mut_ptr().add(ix * cin + c),
                            cin,
                        )
                    };
                }
            }
        } else {
            // Channel by channel: contiguous loads, stores `cin` apart.
            for (c, plane) in xs.chunks_exact(plane).take(cin).enumerate() {
                for (ix, &v) in plane[iy * iw..][..iw].iter().enumerate() {
                    row[ix * cin + c] = v;
                }
            }
        }
    }
}

/// Turns a phase's `rows x cols` weights (f16 when `F16`, else f32) for [`many_channels`], in
/// f32: vector `k * blocks + b` holds, in lane `i`, weight `k` of row `o_b + i`, `o_b` the
/// `b`th of [`block_starts`]`(rows, L::N)`.
///
/// # Safety
/// `L`'s instructions; `rows >= L::N`; `w` holds `rows * cols` weights; `turned` has room for
/// `cols * rows.div_ceil(L::N)` vectors, aligned.
#[inline(always)]
unsafe fn turn<L: FloatLanes, const F16: bool>(w: *const u8, rows: usize, cols: usize, turned: *mut f32) {
    let blocks = rows.div_ceil(L::N);
    let weight_bytes = if F16 { 2 } else { 4 };
    let row_bytes = cols * weight_bytes;
    for (b, o) in block_starts(rows, L::N).enumerate() {
        let mut k0 = 0;
        while k0 < cols {
            let count = (cols - k0).min(L::N);
            let from = w.wrapping_add(o * row_bytes + k0 * weight_bytes);
            let to = turned.wrapping_add((k0 * blocks + b) * L::N);
            // SAFETY: rows o..o + N <= rows, weights k0..k0 + count <= cols of each; vectors
            // (k0 + i) * blocks + b < cols * blocks (caller's contract).
            unsafe { L::turn_tile::<F16>(from, row_bytes, count, to, blocks * L::N) };
            k0 += count;
        }
    }
}

/// One or two lane blocks of output channels.
pub(super) struct Lanes<L: FloatLanes> {
    /// The blocks' first output channels (the same twice without `pair`).
    o: (usize, usize),
    /// The first block's index, and the blocks in all.
    b: usize,
    blocks: usize,
    pair: bool,
    /// The blocks' biases.
    bias: [L::V; 2],
    relu: bool,
}

/// The output channels of `l` for the outputs of run `r` (`patch_row`: floats of a whole
/// patch row of the phase, `taps_x * C_in`).
///
/// # Safety
/// `L`'s instructions; the run's patches lie inside the filled window; `turned` holds the
/// phase's turned weights; the run's outputs lie inside `ys`; `r.count <= L::PIXELS`.
#[inline(always)]
pub(super) unsafe fn many_channels<L: FloatLanes>(
    l: &Lanes<L>,
    g: &Geometry,
    channels_last: bool,
    window: *const f32,
    turned: *const f32,
    (r, patch_row): (&OutputRun, usize),
    ys: &mut [f32],
) {
    let d = &g.d;
    let (cin, rows) = (d.in_channels_per_group, d.rows);
    let at = Dot {
        x: window.wrapping_add(r.window * cin),
        step: r.window_step * cin,
        row_step: g.window.width * cin,
        taps_y: r.taps_y,
        cols: (r.taps_x.0 * cin, r.taps_x.1 * cin),
        patch_row,
        turned,
        blocks: l.blocks,
        b: l.b,
    };
    // SAFETY: forwarded (block b + 1 exists when `pair`).
    let acc: [[L::V; 8]; 2] = unsafe {
        macro_rules! go {
            ($p:literal) => {
                widen::<L, $p>(if l.pair {
                    dot::<L, $p, 2>(&at, l.bias)
                } else {
                    let [a] = dot::<L, $p, 1>(&at, [l.bias[0]]);
                    [a, [L::zero(); $p]]
                })
            };
        }
        match r.count {
            1 => go!(1),
            2 => go!(2),
            3 => go!(3),
            4 => go!(4),
            5 => go!(5),
            6 => go!(6),
            7 => go!(7),
            _ => go!(8),
        }
    };
    let plane = ys.len() / rows;
    for (h, o) in [l.o.0, l.o.1].into_iter().enumerate().take(if l.pair { 2 } else { 1 }) {
        for (j, &v) in acc[h].iter().enumerate().take(r.count) {
            // SAFETY: `L`'s instructions.
            let y = if l.relu { unsafe { L::relu(v) } } else { v };
            let at = r.out + j * r.out_step;
            if channels_last {
                // SAFETY: pixel `at`'s channels o..o + N, inside the sample.
                unsafe { L::storeu(ys.as_mut_ptr().add(at * rows + o), y) };
            } else {
                let mut lanes = [0f32; MAX_LANES];
                // SAFETY: N writable floats.
                unsafe { L::storeu(lanes.as_mut_ptr(), y) };
                for (i, &v) in lanes.iter().enumerate().take(L::N) {
                    ys[(o + i) * plane + at] = v;
                }
            }
        }
    }
}

/// What [`dot`] multiplies: the run's patches in the window and the turned phase.
struct Dot {
    /// The window at the first pixel's first tap.
    x: *const f32,
    /// Window floats from one pixel's first tap to the next's, and from one tap row to the
    /// next.
    step: usize,
    row_step: usize,
    /// The tap rows, and the floats of a patch row (tap columns times `C_in`), to multiply.
    taps_y: (usize, usize),
    cols: (usize, usize),
    /// Floats of a whole patch row of the phase: `taps_x * C_in`.
    patch_row: usize,
    /// The turned phase, its blocks, and the first block of the run's.
    turned: *const f32,
    blocks: usize,
    b: usize,
}

/// `[[v; P]; 2]` padded to `[[v; 8]; 2]` (the most pixels of any [`FloatLanes`]) with the
/// first pixel's (never stored).
#[inline(always)]
fn widen<L: FloatLanes, const P: usize>(acc: [[L::V; P]; 2]) -> [[L::V; 8]; 2] {
    let mut wide = [[acc[0][0]; 8]; 2];
    for (w, a) in wide.iter_mut().zip(&acc) {
        w[..P].copy_from_slice(a);
    }
    wide
}

/// The sums of `P` pixels with lane blocks `b..b + B`: `acc[h][j]` lane `i` is output channel
/// `o + i` of pixel `j`, `o` block `b + h`'s first row, started at `bias[h]`.
///
/// # Safety
/// `L`'s instructions; the pixels' patches lie inside the window, blocks `b..b + B` exist, the
/// taps are the phase's.
#[inline(always)]
unsafe fn dot<L: FloatLanes, const P: usize, const B: usize>(at: &Dot, bias: [L::V; B]) -> [[L::V; P]; B] {
    let mut acc = [[bias[0]; P]; B];
    for (a, &b) in acc.iter_mut().zip(&bias) {
        *a = [b; P];
    }
    let stride = at.blocks * L::N;
    for ty in at.taps_y.0..at.taps_y.1 {
        let row = at.x.wrapping_add(ty * at.row_step);
        // Patch column ty * patch_row + k is turned vector (ty * patch_row + k) * blocks + b.
        let w = at.turned.wrapping_add((ty * at.patch_row * at.blocks + at.b) * L::N);
        for k in at.cols.0..at.cols.1 {
            let mut wv = [bias[0]; B];
            for (h, v) in wv.iter_mut().enumerate() {
                // SAFETY: turned vector of column ty * patch_row + k, block b + h, aligned.
                *v = unsafe { L::load(w.add(k * stride + h * L::N)) };
            }
            for j in 0..P {
                // SAFETY: float k of pixel j's patch row ty, inside the window.
                let xv = unsafe { L::splat(row.add(j * at.step + k).read()) };
                for (a, &w) in acc.iter_mut().zip(&wv) {
                    // SAFETY: `L`'s instructions.
                    a[j] = unsafe { L::fmadd(xv, w, a[j]) };
                }
            }
        }
    }
    acc
}
