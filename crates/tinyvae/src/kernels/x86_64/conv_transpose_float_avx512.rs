//! f16 and f32 transposed convolution with AVX-512, straight from a padded HWC window: no
//! patch is gathered, no Dense call made per chunk of pixels.
//!
//! Through the generic driver ([`crate::kernels::patches`]) the conv VAE's f16 decoder ran no
//! faster than tract f32: every output pixel's patch was copied into a buffer, the Dense kernel
//! reduced each output channel's 16 lanes horizontally, and the results were scattered back.
//! Here, as in the int8 kernel ([`super::conv_transpose_i8_avx512vnni`]), each sample's input
//! goes once into a [`TransposeWindow`] (HWC, a border of zeros) and the kernels read a patch
//! row of the tap-major layout ([`crate::kernels::conv_layout`]) where it lies:
//! - **Many output channels** (16 or more): output channels in the lanes. A phase's weights
//!   are widened (f16, `vcvtph2ps`, exact) and turned once per sample and phase into a stack
//!   buffer, 16 output channels of one patch column to a vector; each input value, broadcast,
//!   multiplies two such vectors (32 channels) for up to 8 pixels of a phase row at once (16
//!   accumulators, started at the bias), so there is no horizontal sum and a pixel's
//!   channels-last outputs are whole vector stores. Border taps add nothing, so the runs
//!   multiply only the taps that read the input ([`TransposeWindow::phase_runs`]), as the
//!   reference visits only the valid ones.
//! - **One output channel** (an image's last layer): outputs in the lanes, from a planar
//!   window ([`super::conv_transpose_float_one_avx512`]).
//!
//! Turning per sample and phase keeps the buffer at 32 KiB (the 64 -> 32 layer's 4 phases
//! would take 128 KiB in f32); it is about a tenth of the multiplies' time per sample.
//!
//! **Values.** f32 accumulation with FMA, summed tap row by tap row where the reference sums
//! channel by channel: the reference's values up to rounding. Any other layer (row-major
//! weights, 2..=15 output channels, a window or a phase's weights too large for the stack
//! buffers, a phase without taps) goes to the generic driver.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::conv_transpose_float_one_avx512 as one;
use super::requantize_avx512::transpose16;
use super::{block_starts, has, Avx512, Level};
use crate::format::WeightLayout;
use crate::kernels::conv_layout::{OutputRun, TransposeWindow};
use crate::kernels::reference::le_f32;
use crate::kernels::{patches, reference, ConvDims, ConvFloat};

/// Window floats: the conv VAE's 32-channel 14 x 14 input with its border (16 x 16) exactly.
pub(super) const WINDOW: usize = 8 * 1024;
/// Turned weight floats of one phase: ConvTranspose(64, 32, 4, 2) takes all of it.
const TURNED: usize = 8 * 1024;
/// Output channels per lane block.
const ROWS: usize = 16;
/// Most pixels computed at once (with two blocks of output channels, 16 accumulators).
const PIXELS: usize = 8;

/// See [`crate::kernels::ConvFloatFn`]; weights are little-endian IEEE binary16.
pub fn conv_transpose_f16(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    // Without the features no blob of this op and precision parses: nothing to link.
    if !cfg!(all(feature = "conv-transpose", feature = "f16")) || !has(Level::Avx512Vnni) {
        return reference::conv_transpose_f16(p, x, batch, out);
    }
    let Some(g) = Geometry::new(p) else {
        return patches::conv_transpose_f16::<Avx512>(p, x, batch, out);
    };
    let n = p.samples(true, 2, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: the CPU has AVX-512 F/BW/VL (checked above); `samples` returned n > 0, so the
    // weights hold rows * cols f16, the bias rows f32, x and out n samples; `Geometry::new`
    // checked that the window and the turned weights fit their buffers.
    unsafe {
        if g.d.rows == 1 {
            one::run::<true>(p, &g, x, n, out)
        } else {
            run::<true>(p, &g, x, n, out)
        }
    }
}

/// See [`crate::kernels::ConvFloatFn`]; weights are little-endian f32.
pub fn conv_transpose_f32(p: &ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
    if !cfg!(all(feature = "conv-transpose", feature = "f32")) || !has(Level::Avx512Vnni) {
        return reference::conv_transpose_f32(p, x, batch, out);
    }
    let Some(g) = Geometry::new(p) else {
        return patches::conv_transpose_f32::<Avx512>(p, x, batch, out);
    };
    let n = p.samples(true, 4, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: as in `conv_transpose_f16`, with 4-byte weights.
    unsafe {
        if g.d.rows == 1 {
            one::run::<false>(p, &g, x, n, out)
        } else {
            run::<false>(p, &g, x, n, out)
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
    fn new(p: &ConvFloat<'_>) -> Option<Self> {
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
                widest = widest.max(phase.cols.checked_mul(d.rows.div_ceil(ROWS) * ROWS)?);
            }
            d.rows >= ROWS && widest <= TURNED
        };
        (fits && floats <= WINDOW).then_some(Geometry { d, window })
    }
}

/// The layer over `n` samples, with 16 or more output channels.
///
/// # Safety
/// AVX-512 F/BW/VL; as stated where [`conv_transpose_f16`] calls it, with `F16` telling the
/// weights' width.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn run<const F16: bool>(p: &ConvFloat<'_>, g: &Geometry, x: &[f32], n: usize, out: &mut [f32]) {
    let d = &g.d;
    let (sh, sw) = (d.h.stride(), d.w.stride());
    let cin = d.in_channels_per_group;
    let weight_bytes = if F16 { 2 } else { 4 };
    let mut window = MaybeUninit::<[f32; WINDOW]>::uninit();
    let window = window.as_mut_ptr().cast::<f32>();
    // Vectors, so that the turned weights load aligned.
    let mut turned = MaybeUninit::<[__m512; TURNED / ROWS]>::uninit();
    let turned = turned.as_mut_ptr().cast::<f32>();
    let blocks = d.rows.div_ceil(ROWS);
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds height * width * cin <= WINDOW floats (`Geometry::new`).
        unsafe { fill(p, g, xs, window) };
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            // SAFETY: the phase's rows * cols weights are inside the weights; `Geometry::new`
            // checked that its turned vectors fit the buffer.
            unsafe { turn::<F16>(p.weights.as_ptr().add(phase.offset * weight_bytes), d.rows, phase.cols, turned) };
            let mut starts = block_starts(d.rows, ROWS);
            let mut b = 0;
            while b < blocks {
                let pair = blocks - b >= 2;
                let o = starts.next().unwrap_or(0);
                let o = (o, if pair { starts.next().unwrap_or(o) } else { o });
                let bias = [o.0, o.1].map(|o| {
                    let lanes: [f32; ROWS] = core::array::from_fn(|i| le_f32(p.bias, o + i));
                    // SAFETY: 16 readable floats.
                    unsafe { _mm512_loadu_ps(lanes.as_ptr()) }
                });
                let patch_row = phase.taps_x * cin;
                let lanes = Lanes { o, b, blocks, pair, bias, relu: p.relu };
                g.window.phase_runs(d, &phase, true, PIXELS, |r| {
                    // SAFETY: the run's patches lie inside the filled window, the turned phase
                    // inside the buffer, its outputs inside the sample.
                    unsafe { many_channels(&lanes, g, p.out_shape.channels_last, window, turned, (&r, patch_row), ys) };
                });
                b += if pair { 2 } else { 1 };
            }
        }
    }
}

/// Writes one sample's input into the window: HWC inside a border of zeros.
///
/// # Safety
/// AVX-512 F/BW/VL; `window` has room for `height * width * C_in` floats; `xs` is one sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn fill(p: &ConvFloat<'_>, g: &Geometry, xs: &[f32], window: *mut f32) {
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
        } else if cin.is_multiple_of(ROWS) {
            // 16 channels of up to 16 pixels at a time (the scalar transpose stores one float
            // per pixel and channel).
            for ix in (0..iw).step_by(ROWS) {
                for c in (0..cin).step_by(ROWS) {
                    let count = (iw - ix).min(ROWS);
                    // SAFETY: channels c..c + 16 of pixels ix..ix + count of row iy, inside `xs`;
                    // the same pixels' channels in the window row.
                    unsafe {
                        transpose_tile(
                            xs.as_ptr().add(c * plane + iy * iw + ix),
                            (plane, ROWS, count),
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

/// Transposes a tile of `rows` (at most 16) source rows `src_step` floats apart, each of
/// `cols` (at most 16) floats, into `cols` rows `dst_step` apart of `rows` floats each. Both
/// window fills turn layouts with it: planar to pixels here, pixels to planar for one channel.
///
/// # Safety
/// AVX-512 F/BW/VL; the tile's source and destination floats are inside their buffers.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
pub(super) unsafe fn transpose_tile(
    src: *const f32,
    (src_step, rows, cols): (usize, usize, usize),
    dst: *mut f32,
    dst_step: usize,
) {
    let (col_mask, row_mask) = (((1u32 << cols) - 1) as __mmask16, ((1u32 << rows) - 1) as __mmask16);
    let v: [__m512i; 16] = core::array::from_fn(|i| {
        if i < rows {
            // SAFETY: row i's `cols` floats (caller's contract); masked-off lanes are not read.
            unsafe { _mm512_maskz_loadu_epi32(col_mask, src.wrapping_add(i * src_step).cast()) }
        } else {
            _mm512_setzero_si512()
        }
    });
    for (j, t) in transpose16(&v).iter().enumerate().take(cols) {
        // SAFETY: destination row j's `rows` floats (caller's contract).
        unsafe { _mm512_mask_storeu_epi32(dst.wrapping_add(j * dst_step).cast(), row_mask, *t) };
    }
}

/// Turns a phase's `rows x cols` weights (f16 when `F16`, else f32) for [`many_channels`], in
/// f32: vector `k * blocks + b` holds, in lane `i`, weight `k` of row `o_b + i`, `o_b` the
/// `b`th of [`block_starts`]`(rows, 16)`.
///
/// # Safety
/// AVX-512 F/BW/VL; `rows >= 16`; `w` holds `rows * cols` weights; `turned` has room for
/// `cols * rows.div_ceil(16)` vectors, 64-byte aligned.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn turn<const F16: bool>(w: *const u8, rows: usize, cols: usize, turned: *mut f32) {
    let blocks = rows.div_ceil(ROWS);
    let weight_bytes = if F16 { 2 } else { 4 };
    let row_bytes = cols * weight_bytes;
    for (b, o) in block_starts(rows, ROWS).enumerate() {
        let mut k0 = 0;
        while k0 < cols {
            let count = (cols - k0).min(ROWS);
            let m = ((1u32 << count) - 1) as __mmask16;
            // Row by row from one pointer: 16 addresses computed from the index apart were
            // vectorized and extracted one by one (the turning measured 15% slower).
            let mut by_row = [_mm512_setzero_si512(); 16];
            let mut from = w.wrapping_add(o * row_bytes + k0 * weight_bytes);
            for v in by_row.iter_mut() {
                // SAFETY: row o + i < rows, weights k0..k0 + count < cols of it; masked-off
                // weights are not read.
                *v = unsafe {
                    if F16 {
                        _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, from.cast())))
                    } else {
                        _mm512_maskz_loadu_epi32(m, from.cast())
                    }
                };
                from = from.wrapping_add(row_bytes);
            }
            let mut to = turned.wrapping_add((k0 * blocks + b) * ROWS);
            for v in transpose16(&by_row).iter().take(count) {
                // SAFETY: vector (k0 + i) * blocks + b < cols * blocks, aligned (caller's
                // contract).
                unsafe { _mm512_store_si512(to.cast(), *v) };
                to = to.wrapping_add(blocks * ROWS);
            }
            k0 += count;
        }
    }
}

/// One or two lane blocks of output channels.
struct Lanes {
    /// The blocks' first output channels (the same twice without `pair`).
    o: (usize, usize),
    /// The first block's index, and the blocks in all.
    b: usize,
    blocks: usize,
    pair: bool,
    /// The blocks' biases.
    bias: [__m512; 2],
    relu: bool,
}

/// The output channels of `l` for the outputs of run `r`.
///
/// # Safety
/// AVX-512 F/BW/VL; the run's patches lie inside the filled window; `turned` holds the phase's
/// turned weights; the run's outputs lie inside `ys`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn many_channels(
    l: &Lanes,
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
    let acc = unsafe {
        macro_rules! go {
            ($p:literal) => {
                widen(if l.pair {
                    dot::<$p, 2>(&at, l.bias)
                } else {
                    let [a] = dot::<$p, 1>(&at, [l.bias[0]]);
                    [a, [_mm512_setzero_ps(); $p]]
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
            // `max(0, v)` returns v when v is NaN, as the reference keeps it.
            let y = if l.relu { _mm512_max_ps(_mm512_setzero_ps(), v) } else { v };
            let at = r.out + j * r.out_step;
            if channels_last {
                // SAFETY: pixel `at`'s channels o..o + 16, inside the sample.
                unsafe { _mm512_storeu_ps(ys.as_mut_ptr().add(at * rows + o), y) };
            } else {
                let mut lanes = [0f32; ROWS];
                // SAFETY: 16 writable floats.
                unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), y) };
                for (i, &v) in lanes.iter().enumerate() {
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

/// `[[v; P]; 2]` padded to `[[v; PIXELS]; 2]` with zeros (never stored).
#[target_feature(enable = "avx512f")]
#[inline]
fn widen<const P: usize>(acc: [[__m512; P]; 2]) -> [[__m512; PIXELS]; 2] {
    core::array::from_fn(|h| core::array::from_fn(|j| if j < P { acc[h][j] } else { _mm512_setzero_ps() }))
}

/// The sums of `P` pixels with lane blocks `b..b + B`: `acc[h][j]` lane `i` is output channel
/// `o + i` of pixel `j`, `o` block `b + h`'s first row, started at `bias[h]`.
///
/// # Safety
/// AVX-512 F; the pixels' patches lie inside the window, blocks `b..b + B` exist, the taps are
/// the phase's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn dot<const P: usize, const B: usize>(at: &Dot, bias: [__m512; B]) -> [[__m512; P]; B] {
    let mut acc = bias.map(|b| [b; P]);
    for ty in at.taps_y.0..at.taps_y.1 {
        let row = at.x.wrapping_add(ty * at.row_step);
        // Patch column ty * patch_row + k is turned vector (ty * patch_row + k) * blocks + b.
        let w = at.turned.wrapping_add((ty * at.patch_row * at.blocks + at.b) * ROWS);
        for k in at.cols.0..at.cols.1 {
            // SAFETY: turned vectors of column ty * patch_row + k, blocks b..b + B, aligned.
            let wv: [__m512; B] =
                core::array::from_fn(|h| unsafe { _mm512_load_ps(w.add((k * at.blocks + h) * ROWS)) });
            for j in 0..P {
                // SAFETY: float k of pixel j's patch row ty, inside the window.
                let xv = _mm512_set1_ps(unsafe { row.add(j * at.step + k).read() });
                for (a, &w) in acc.iter_mut().zip(&wv) {
                    a[j] = _mm512_fmadd_ps(xv, w, a[j]);
                }
            }
        }
    }
    acc
}
