//! int8 transposed convolution with AVX-512 VNNI, straight from a padded HWC window: no patch
//! is gathered, no activation packed.
//!
//! The generic driver ([`crate::kernels::patches`]) copies every output pixel's patch into a
//! buffer and hands the buffer to the Dense kernel, which packs it again: on the conv VAE's
//! decoder those copies and the per-call set-up took as much time as the multiply-accumulates.
//! Here each sample's input goes once into a *window*: HWC, flipped to `x ^ 0x80` (the unsigned
//! operand of `vpdpbusd`), with a border of the input zero point wide enough that every tap of
//! every output reads inside it. A patch row of the tap-major layout
//! ([`crate::kernels::conv_layout`]) is then one run of the window, and the kernels read it in
//! place:
//! - **Many output channels** (16 or more, input channels a multiple of 4): output channels in
//!   the lanes. The phase's weights are turned once per call so that one vector holds 4 input
//!   channels of 16 output channels; each input dword of a pixel, broadcast, multiplies two
//!   such vectors (32 output channels) in two `vpdpbusd`, for up to 8 pixels of an output row
//!   at once (16 accumulators), and the accumulators are already the lanes the one-sample
//!   epilogue requantizes ([`Epilogue::apply16`]) and, channels-last, one 16-byte store.
//! - **One output channel** (an image's last layer): pixels in the lanes. Each pixel's patch
//!   rows are full vectors of the window against the phase's weights held in L1; 16 pixels'
//!   accumulators reduce together in one transposing tree and requantize as one vector.
//!
//! **Exactness.** The phase bias folds `-zp_in * sum` of the phase row, the border reads the
//! zero point, and the epilogue takes `128 * weight_sums` (per phase) off for the flip: each
//! accumulator is the reference's in wrapping i32 arithmetic, and [`Epilogue::apply16`] is
//! [`crate::quant::requantize`] bit for bit. Any other layer (row-major weights, 2..=15 output
//! channels, input channels not a multiple of 4, a window or weights too large for the stack
//! buffers, a phase without taps, a zero point outside int8) goes to the generic driver.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::requantize_avx512::{reduce_quads, transpose16, Epilogue, Rows16};
use super::{block_starts, has, Avx512, Level};
use crate::format::WeightLayout;
use crate::kernels::{patches, reference, ConvDims, ConvI8, DenseI8};

/// Window bytes: a 64-channel 14 x 14 input with its border.
const WINDOW: usize = 16 * 1024;
/// Bytes of turned weights, every phase's: ConvTranspose(64, 32, 4, 2) takes all of it.
const TURNED: usize = 32 * 1024;
/// Output channels per lane block.
const ROWS: usize = 16;
/// Most pixels the many-channel kernel computes at once (with two blocks of output channels,
/// 16 accumulators).
const PIXELS: usize = 8;
/// Longest patch row (`taps_x * C_in`) the one-channel kernel takes: 4 vectors.
const ONE_ROW_MAX: usize = 256;

/// See [`crate::kernels::ConvI8Fn`].
pub fn conv_transpose_i8(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !has(Level::Avx512Vnni) {
        return reference::conv_transpose_i8(p, x, batch, out);
    }
    let Some(g) = Geometry::new(p) else {
        return patches::conv_transpose_i8::<Avx512>(p, x, batch, out);
    };
    let n = p.samples(true, x, batch, out);
    if n == 0 {
        return;
    }
    // SAFETY: the CPU has AVX-512 F/BW/VL/VNNI (checked above); `samples` returned n > 0, so
    // the weights hold rows * cols bytes, the per-phase arrays 4 * rows * phases, the others
    // 4 * rows, x n samples and out n samples, and `Geometry::new` checked that the window and
    // the turned weights fit their buffers.
    unsafe { run(p, &g, x, n, out) }
}

/// The checked shape of a layer this kernel takes.
struct Geometry {
    d: ConvDims,
    /// Window rows and columns before the input's first (`top`, `left`), and in all (`height`,
    /// `width`).
    top: usize,
    left: usize,
    height: usize,
    width: usize,
    /// The input zero point, flipped: what the border holds.
    border: u8,
}

impl Geometry {
    fn new(p: &ConvI8<'_>) -> Option<Self> {
        let d = p.dims(true)?;
        let zp = i8::try_from(p.in_zero_point).ok()?;
        if p.layout != WeightLayout::TapMajor || d.groups != 1 {
            return None;
        }
        let cin = d.in_channels_per_group;
        let (sh, sw) = (d.h.stride(), d.w.stride());
        let mut turned = 0usize;
        for (ry, rx) in (0..sh).flat_map(|ry| (0..sw).map(move |rx| (ry, rx))) {
            let phase = d.phase(true, ry, rx);
            if phase.cols == 0 {
                return None;
            }
            turned = turned.checked_add(phase.cols.checked_mul(ROWS)?.checked_mul(d.rows.div_ceil(ROWS))?)?;
        }
        let many = d.rows >= ROWS && cin.is_multiple_of(4) && turned <= TURNED;
        let one = d.rows == 1 && (0..sw).all(|rx| d.phase(true, 0, rx).taps_x * cin <= ONE_ROW_MAX);
        if !many && !one {
            return None;
        }
        let taps_y = |r| d.phase(true, r, 0).taps_y;
        let taps_x = |r| d.phase(true, 0, r).taps_x;
        let (top, bottom) = border(&d.h, taps_y);
        let (left, right) = border(&d.w, taps_x);
        let (height, width) = (d.h.input() + top + bottom, d.w.input() + left + right);
        if height.checked_mul(width)?.checked_mul(cin)? > WINDOW {
            return None;
        }
        Some(Geometry { d, top, left, height, width, border: zp as u8 ^ 0x80 })
    }

    /// The window offset (in pixels) of the first tap of output `(oy, ox)`, whose phase is
    /// `(ry, rx)` with `taps_y x taps_x` taps: tap `t` of residue `r` reads input position
    /// `(o + pad - r) / s - (taps - 1) + t` ([`crate::kernels::conv_layout`]).
    fn first_tap(&self, (ry, rx): (usize, usize), (taps_y, taps_x): (usize, usize), (oy, ox): (usize, usize)) -> usize {
        let d = &self.d;
        let iy = (oy + d.h.pad() - ry) / d.h.stride() + self.top + 1 - taps_y;
        let ix = (ox + d.w.pad() - rx) / d.w.stride() + self.left + 1 - taps_x;
        iy * self.width + ix
    }
}

/// The border an axis needs before and after its input: every output's taps, `taps(r)` for
/// its residue `r`, read inside it.
fn border(a: &crate::kernels::Axis, taps: impl Fn(usize) -> usize) -> (usize, usize) {
    let (s, pad) = (a.stride(), a.pad());
    let (mut before, mut after) = (0, 0);
    for r in 0..s {
        let first = first_output(a, r);
        if first >= a.output() {
            continue;
        }
        let end = first + (a.output() - 1 - first) / s * s;
        // Residue r's taps end at input (o + pad - r) / s (whole) and start taps - 1 before;
        // that grows with o, so the first and last outputs bound it.
        let last_input = |o: usize| (o + pad - r) / s;
        before = before.max((taps(r) - 1).saturating_sub(last_input(first)));
        after = after.max((last_input(end) + 1).saturating_sub(a.input()));
    }
    (before, after)
}

/// `a[from..]`, empty past the end (which `samples` rules out).
fn tail(a: &[u8], from: usize) -> &[u8] {
    a.get(from..).unwrap_or(&[])
}

/// The first output of residue `r` on an axis (`(o + pad) ≡ r (mod s)`).
fn first_output(a: &crate::kernels::Axis, r: usize) -> usize {
    let s = a.stride();
    (r + s - a.pad() % s) % s
}

/// The layer over `n` samples.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; as stated where [`conv_transpose_i8`] calls it.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn run(p: &ConvI8<'_>, g: &Geometry, x: &[i8], n: usize, out: &mut [i8]) {
    let d = &g.d;
    let (sh, sw) = (d.h.stride(), d.w.stride());
    let cin = d.in_channels_per_group;
    let mut window = MaybeUninit::<[u8; WINDOW]>::uninit();
    let window = window.as_mut_ptr().cast::<u8>();
    let mut turned = MaybeUninit::<[__m512i; TURNED / 64]>::uninit();
    let turned = turned.as_mut_ptr().cast::<__m512i>();
    if d.rows > 1 {
        let mut at = 0;
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            // SAFETY: the phase's rows are inside the weights; `Geometry::new` checked that
            // every phase's turned vectors fit the buffer.
            unsafe { turn(p.weights.as_ptr().add(phase.offset), d.rows, phase.cols, turned.add(at)) };
            at += phase.cols / 4 * d.rows.div_ceil(ROWS);
        }
    }
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds height * width * cin <= WINDOW bytes (`Geometry::new`).
        unsafe { fill(p, g, xs, window) };
        let mut at = 0;
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            let (ry, rx) = (index / sw, index % sw);
            let dense = DenseI8 {
                rows: d.rows,
                cols: phase.cols,
                layout: WeightLayout::RowMajor,
                weights: tail(p.weights, phase.offset),
                bias: tail(p.bias, 4 * index * d.rows),
                multipliers: p.multipliers,
                shifts: p.shifts,
                weight_sums: tail(p.weight_sums, 4 * index * d.rows),
                out_zero_point: p.out_zero_point,
                act_min: p.act_min,
                act_max: p.act_max,
            };
            let taps = (phase.taps_y, phase.taps_x);
            let (oy0, ox0) = (first_output(&d.h, ry), first_output(&d.w, rx));
            let ow = p.out_shape.width;
            if d.rows == 1 {
                // SAFETY: the window is filled; every pixel's patch lies inside it (`border`).
                unsafe { one_channel(&dense, g, window, (ry, rx), taps, ys) };
            } else {
                let ep = Epilogue::new(&dense, true);
                let pixels_per_row = (ox0..ow).step_by(sw).count();
                for oy in (oy0..d.h.output()).step_by(sh) {
                    let mut j = 0;
                    while j < pixels_per_row {
                        let count = (pixels_per_row - j).min(PIXELS);
                        let ox = ox0 + j * sw;
                        let first = g.first_tap((ry, rx), taps, (oy, ox));
                        let run = Run { x: window.wrapping_add(first * cin), count, out: (oy * ow + ox, sw) };
                        // SAFETY: the run's patches lie inside the filled window, the turned
                        // phase inside the buffer, its outputs inside the sample.
                        unsafe { many_channels(&ep, g, p.out_shape.channels_last, turned.add(at), taps, &run, ys) };
                        j += count;
                    }
                }
                at += phase.cols / 4 * d.rows.div_ceil(ROWS);
            }
        }
    }
}

/// Writes one sample's input into the window: HWC, flipped, inside a border of the zero point.
///
/// # Safety
/// AVX-512 F/BW; `window` has room for `height * width * C_in` bytes; `xs` is one sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn fill(p: &ConvI8<'_>, g: &Geometry, xs: &[i8], window: *mut u8) {
    let d = &g.d;
    let (ih, iw, cin) = (d.h.input(), d.w.input(), d.in_channels_per_group);
    // SAFETY: the window's height * width * cin bytes (caller's contract).
    let w = unsafe {
        window.write_bytes(g.border, g.height * g.width * cin);
        core::slice::from_raw_parts_mut(window, g.height * g.width * cin)
    };
    let xs = crate::cast::u8s(xs);
    let plane = ih * iw;
    if !p.in_shape.channels_last && cin.is_multiple_of(16) && plane >= 4 {
        // SAFETY: the window and `xs` as above.
        unsafe { transpose_into(xs, plane, cin, g, window) };
        return;
    }
    for iy in 0..ih {
        let row = &mut w[((iy + g.top) * g.width + g.left) * cin..][..iw * cin];
        if p.in_shape.channels_last {
            for (dst, &v) in row.iter_mut().zip(&xs[iy * iw * cin..][..iw * cin]) {
                *dst = v ^ 0x80;
            }
        } else {
            // Channel by channel: contiguous loads, stores `cin` apart.
            for (c, plane) in xs.chunks_exact(plane).take(cin).enumerate() {
                for (ix, &v) in plane[iy * iw..][..iw].iter().enumerate() {
                    row[ix * cin + c] = v ^ 0x80;
                }
            }
        }
    }
}

/// The inside of the window from an NCHW sample `xs`, for `cin` a multiple of 16 and planes of
/// at least 4 pixels: one gather takes 4 pixels of 16 channels (a dword of each plane), a byte
/// shuffle and a dword permute turn them into 4 pixels' 16 channels (the scalar transpose
/// measured a tenth of the decoder).
///
/// # Safety
/// AVX-512 F/BW; `xs` holds `cin * plane` bytes; the window has room for the geometry's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn transpose_into(xs: &[u8], plane: usize, cin: usize, g: &Geometry, window: *mut u8) {
    let iw = g.d.w.input();
    let planes = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(plane as i32),
    );
    // In each 128-bit lane (4 channels x 4 pixels): pixel by pixel; then lane k gathers pixel
    // k's 16 channels.
    let by_pixel = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    let lanes = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    let flip = _mm512_set1_epi8(-128);
    for px in block_starts(plane, 4) {
        let at: [usize; 4] = core::array::from_fn(|k| {
            let (iy, ix) = ((px + k) / iw, (px + k) % iw);
            ((iy + g.top) * g.width + ix + g.left) * cin
        });
        for c in (0..cin).step_by(16) {
            // SAFETY: bytes px..px + 4 <= plane of planes c..c + 16 <= cin, inside `xs`.
            let v = unsafe { _mm512_i32gather_epi32::<1>(planes, xs.as_ptr().add(c * plane + px).cast()) };
            let v = _mm512_xor_si512(_mm512_permutexvar_epi32(lanes, _mm512_shuffle_epi8(v, by_pixel)), flip);
            // SAFETY: pixel px + k's channels c..c + 16 lie inside the window.
            unsafe {
                _mm_storeu_si128(window.add(at[0] + c).cast(), _mm512_castsi512_si128(v));
                _mm_storeu_si128(window.add(at[1] + c).cast(), _mm512_extracti32x4_epi32::<1>(v));
                _mm_storeu_si128(window.add(at[2] + c).cast(), _mm512_extracti32x4_epi32::<2>(v));
                _mm_storeu_si128(window.add(at[3] + c).cast(), _mm512_extracti32x4_epi32::<3>(v));
            }
        }
    }
}

/// Turns a phase's `rows x cols` weights (`cols` a multiple of 4) for [`many_channels`]:
/// vector `k * blocks + b` holds, in lane `i`, the 4 weights `4k..4k + 4` of row `o_b + i`,
/// `o_b` the `b`th of [`block_starts`]`(rows, 16)`.
///
/// # Safety
/// AVX-512 F; `rows >= 16`; `w` holds `rows * cols` bytes; `turned` has room for
/// `cols / 4 * rows.div_ceil(16)` vectors.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn turn(w: *const u8, rows: usize, cols: usize, turned: *mut __m512i) {
    let (quads, blocks) = (cols / 4, rows.div_ceil(ROWS));
    for (b, o) in block_starts(rows, ROWS).enumerate() {
        let mut k0 = 0;
        while k0 < quads {
            let count = (quads - k0).min(16);
            let words = ((1u32 << count) - 1) as __mmask16;
            // SAFETY: rows o..o+16 < rows, dwords k0..k0+count < quads of each; masked-off
            // dwords are not accessed.
            let by_row: [__m512i; 16] = core::array::from_fn(|i| unsafe {
                _mm512_maskz_loadu_epi32(words, w.add((o + i) * cols + 4 * k0).cast())
            });
            for (i, v) in transpose16(&by_row).iter().enumerate().take(count) {
                // SAFETY: (k0 + i) * blocks + b < quads * blocks.
                unsafe { turned.add((k0 + i) * blocks + b).write(*v) };
            }
            k0 += count;
        }
    }
}

/// Up to [`PIXELS`] consecutive outputs of one output row of a phase.
struct Run {
    /// The window at the first pixel's first tap; the next pixel's is `C_in` bytes on.
    x: *const u8,
    count: usize,
    /// The first pixel's offset in a channel plane, and the step to the next.
    out: (usize, usize),
}

/// Every output channel of a run, 16 channels per lane block, two blocks at a time.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; the run's patches lie inside the window; `turned` holds the phase's
/// turned weights; the run's outputs lie inside `ys`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn many_channels(
    ep: &Epilogue<'_>,
    g: &Geometry,
    channels_last: bool,
    turned: *const __m512i,
    taps: (usize, usize),
    run: &Run,
    ys: &mut [i8],
) {
    let rows = g.d.rows;
    let starts = || block_starts(rows, ROWS);
    let blocks = rows.div_ceil(ROWS);
    let mut b = 0;
    while b < blocks {
        let pair = blocks - b >= 2;
        // SAFETY: forwarded (blocks b and b + 1 exist when `pair`).
        unsafe {
            macro_rules! go {
                ($p:literal) => {
                    widen(if pair {
                        dot::<$p, 2>(g, turned, taps, run.x, b, blocks)
                    } else {
                        let [a] = dot::<$p, 1>(g, turned, taps, run.x, b, blocks);
                        [a, [_mm512_setzero_si512(); $p]]
                    })
                };
            }
            let store = |acc: &[[__m512i; PIXELS]; 2], ys: &mut [i8]| {
                for (h, o) in starts().skip(b).take(if pair { 2 } else { 1 }).enumerate() {
                    let params = ep.params16(o);
                    for (j, &v) in acc[h].iter().enumerate().take(run.count) {
                        let y = _mm512_cvtepi32_epi8(ep.apply16(&params, v));
                        let at = run.out.0 + j * run.out.1;
                        if channels_last {
                            _mm_storeu_si128(ys.as_mut_ptr().add(at * rows + o).cast(), y);
                        } else {
                            let mut lanes = [0i8; 16];
                            _mm_storeu_si128(lanes.as_mut_ptr().cast(), y);
                            let plane = ys.len() / rows;
                            for (i, &v) in lanes.iter().enumerate() {
                                ys[(o + i) * plane + at] = v;
                            }
                        }
                    }
                }
            };
            let acc = match run.count {
                1 => go!(1),
                2 => go!(2),
                3 => go!(3),
                4 => go!(4),
                5 => go!(5),
                6 => go!(6),
                7 => go!(7),
                _ => go!(8),
            };
            store(&acc, ys);
        }
        b += if pair { 2 } else { 1 };
    }
}

/// `[[v; P]; 2]` padded to `[[v; PIXELS]; 2]` with zeros (never stored).
#[target_feature(enable = "avx512f")]
#[inline]
fn widen<const P: usize>(acc: [[__m512i; P]; 2]) -> [[__m512i; PIXELS]; 2] {
    core::array::from_fn(|h| core::array::from_fn(|j| if j < P { acc[h][j] } else { _mm512_setzero_si512() }))
}

/// The dot products of `P` pixels (the first tap at `x`, then `C_in` bytes apart) with lane
/// blocks `b..b + B` of the turned phase: `acc[h][j]` lane `i` is output channel `o + i` of
/// pixel `j`, `o` block `b + h`'s first row.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; the pixels' patches lie inside the window, blocks `b..b + B` exist.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn dot<const P: usize, const B: usize>(
    g: &Geometry,
    turned: *const __m512i,
    (taps_y, taps_x): (usize, usize),
    x: *const u8,
    b: usize,
    blocks: usize,
) -> [[__m512i; P]; B] {
    let cin = g.d.in_channels_per_group;
    let quads = taps_x * cin / 4;
    let mut acc = [[_mm512_setzero_si512(); P]; B];
    for ty in 0..taps_y {
        let row = x.wrapping_add(ty * g.width * cin);
        let w = turned.wrapping_add(ty * quads * blocks + b);
        for q in 0..quads {
            // SAFETY: quad q of patch row ty is turned vector (ty * quads + q) * blocks + b (+1).
            let wv: [__m512i; B] = core::array::from_fn(|h| unsafe { w.add(q * blocks + h).read() });
            for j in 0..P {
                // SAFETY: 4 bytes of pixel j's patch row ty, inside the window.
                let xv = _mm512_set1_epi32(unsafe { row.add(j * cin + 4 * q).cast::<i32>().read_unaligned() });
                for (a, &w) in acc.iter_mut().zip(&wv) {
                    a[j] = _mm512_dpbusd_epi32(a[j], xv, w);
                }
            }
        }
    }
    acc
}

/// The single output channel of a phase, 16 pixels at a time in the lanes.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; `dense` is the phase's row (its `cols` weights and its parameters);
/// the window is filled; `ys` is one output sample.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn one_channel(
    dense: &DenseI8<'_>,
    g: &Geometry,
    window: *const u8,
    (ry, rx): (usize, usize),
    taps: (usize, usize),
    ys: &mut [i8],
) {
    let d = &g.d;
    let cin = d.in_channels_per_group;
    // The channel's parameters in every lane, so that the 16-row epilogue applies.
    let spread = |a: &[u8]| -> [u8; 64] { core::array::from_fn(|i| a.get(i % 4).copied().unwrap_or(0)) };
    let (bias, multipliers, shifts, weight_sums) =
        (spread(dense.bias), spread(dense.multipliers), spread(dense.shifts), spread(dense.weight_sums));
    let lanes = DenseI8 {
        rows: ROWS,
        bias: &bias,
        multipliers: &multipliers,
        shifts: &shifts,
        weight_sums: &weight_sums,
        ..*dense
    };
    let ep = Epilogue::new(&lanes, true);
    // SAFETY: the parameter arrays hold 16 entries.
    let params = unsafe { ep.params16(0) };
    let (ow, sw) = (d.w.output(), d.w.stride());
    let (ox0, oy0) = (first_output(&d.w, rx), first_output(&d.h, ry));
    let row_pixels = (ox0..ow).step_by(sw).count();
    let mut block = Pixels { x: [window; ROWS], at: [0; ROWS], len: 0 };
    for oy in (oy0..d.h.output()).step_by(d.h.stride()) {
        if row_pixels == 0 {
            break;
        }
        // Consecutive outputs of the phase read consecutive input columns.
        let first = g.first_tap((ry, rx), taps, (oy, ox0));
        for j in 0..row_pixels {
            block.x[block.len] = window.wrapping_add((first + j) * cin);
            block.at[block.len] = oy * ow + ox0 + j * sw;
            block.len += 1;
            if block.len == ROWS {
                // SAFETY: every pixel's patch lies inside the window (caller).
                unsafe { one_channel_block(dense, &ep, &params, g, taps, &block, ys) };
                block.len = 0;
            }
        }
    }
    if block.len > 0 {
        // Lanes past `len` repeat pixel 0 and are not stored.
        for i in block.len..ROWS {
            block.x[i] = block.x[0];
        }
        // SAFETY: as above.
        unsafe { one_channel_block(dense, &ep, &params, g, taps, &block, ys) };
    }
}

/// Up to 16 pixels of the one-channel kernel: where each one's patch starts in the window, and
/// its output.
struct Pixels {
    x: [*const u8; ROWS],
    at: [usize; ROWS],
    len: usize,
}

/// Computes and stores the first `len` pixels of `block` (its other lanes hold patches too).
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; each of the 16 patches lies inside the window; the weights hold
/// `dense.cols` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn one_channel_block(
    dense: &DenseI8<'_>,
    ep: &Epilogue<'_>,
    params: &Rows16,
    g: &Geometry,
    (taps_y, taps_x): (usize, usize),
    block: &Pixels,
    ys: &mut [i8],
) {
    let cin = g.d.in_channels_per_group;
    let (len, stride) = (taps_x * cin, g.width * cin);
    let (full, m) = (len / 64, (1u64 << (len % 64)) - 1);
    let w = dense.weights.as_ptr();
    let mut acc = [_mm512_setzero_si512(); ROWS];
    for ty in 0..taps_y {
        let wr = w.wrapping_add(ty * len);
        for v in 0..full {
            // SAFETY: 64 bytes of weight row ty.
            let wv = unsafe { _mm512_loadu_si512(wr.add(64 * v).cast()) };
            for (a, x) in acc.iter_mut().zip(&block.x) {
                // SAFETY: 64 bytes of the pixel's patch row ty.
                let xv = unsafe { _mm512_loadu_si512(x.add(ty * stride + 64 * v).cast()) };
                *a = _mm512_dpbusd_epi32(*a, xv, wv);
            }
        }
        if m != 0 {
            // SAFETY: the mask selects the rows' last len % 64 bytes; the others are not
            // accessed.
            let wv = unsafe { _mm512_maskz_loadu_epi8(m, wr.add(64 * full).cast()) };
            for (a, x) in acc.iter_mut().zip(&block.x) {
                // SAFETY: as above, for the pixel's patch row ty.
                let xv = unsafe { _mm512_maskz_loadu_epi8(m, x.add(ty * stride + 64 * full).cast()) };
                *a = _mm512_dpbusd_epi32(*a, xv, wv);
            }
        }
    }
    let pair = |a: __m512i, b: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let quad = |a: __m512i, b: __m512i| _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    let q: [__m512i; 4] =
        core::array::from_fn(|i| quad(pair(acc[4 * i], acc[4 * i + 1]), pair(acc[4 * i + 2], acc[4 * i + 3])));
    let mut y = [0i8; ROWS];
    // SAFETY: 16 writable bytes.
    unsafe { _mm_storeu_si128(y.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(ep.apply16(params, reduce_quads(&q)))) };
    for (&a, &v) in block.at.iter().zip(&y).take(block.len) {
        ys[a] = v;
    }
}
