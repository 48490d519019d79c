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
//!   After a ReLU (input zero point -128) the border holds 0 and its taps add nothing, so
//!   outputs at the edges multiply only the taps that read the input: runs along output rows
//!   whose tap rows are cut, and runs down the few edge columns whose tap columns are (on the
//!   conv VAE's 64 -> 32 layer, 14% of the `vpdpbusd`s were border taps).
//! - **One output channel** (an image's last layer): outputs in the lanes, from a window of
//!   its own layout ([`super::conv_transpose_i8_one_avx512vnni`]).
//!
//! **Exactness.** The phase bias folds `-zp_in * sum` of the phase row, the border reads the
//! zero point, and the epilogue takes `128 * weight_sums` (per phase) off for the flip: each
//! accumulator is the reference's in wrapping i32 arithmetic, and [`Epilogue::apply16`] is
//! [`crate::quant::requantize`] bit for bit. Any other layer (row-major weights, 2..=15 output
//! channels, input channels not a multiple of 4, a window or weights too large for the stack
//! buffers, a phase without taps, a zero point outside int8) goes to the generic driver.

use core::arch::x86_64::*;
use core::mem::MaybeUninit;

use super::conv_transpose_i8_one_avx512vnni as one;
use super::requantize_avx512::{transpose16, Epilogue, Rows16};
use super::requantize_lanes_avx512::LaneTable;
use super::{block_starts, has, Avx512, Level};
use crate::format::WeightLayout;
use crate::kernels::conv_layout::TransposeWindow;
use crate::kernels::{patches, reference, ConvDims, ConvI8, DenseI8};

/// Window bytes: a 64-channel 14 x 14 input with its border.
pub(super) const WINDOW: usize = 16 * 1024;
/// Bytes of turned weights, every phase's: ConvTranspose(64, 32, 4, 2) takes all of it.
const TURNED: usize = 32 * 1024;
/// Output channels per lane block.
const ROWS: usize = 16;
/// Most pixels the many-channel kernel computes at once (with two blocks of output channels,
/// 16 accumulators).
const PIXELS: usize = 8;

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
    // the turned weights (or the phases' weight dwords) fit their buffers.
    unsafe {
        if g.d.rows == 1 {
            one::run(p, &g, x, n, out)
        } else {
            run(p, &g, x, n, out)
        }
    }
}

/// The checked shape of a layer this kernel takes.
pub(super) struct Geometry {
    pub(super) d: ConvDims,
    /// Where the input sits in the window.
    pub(super) window: TransposeWindow,
    /// The input zero point, flipped: what the border holds.
    pub(super) border: u8,
}

impl Geometry {
    pub(super) fn new(p: &ConvI8<'_>) -> Option<Self> {
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
        let window = TransposeWindow::new(&d)?;
        let TransposeWindow { height, width, .. } = window;
        let g = Geometry { d, window, border: zp as u8 ^ 0x80 };
        let fits = if d.rows == 1 {
            one::window_bytes(&g)? <= WINDOW && one::tap_quads(&g).checked_mul(sh * sw)? <= one::TAP_QUADS
        } else {
            d.rows >= ROWS
                && cin.is_multiple_of(4)
                && turned <= TURNED
                && height.checked_mul(width)?.checked_mul(cin)? <= WINDOW
        };
        fits.then_some(g)
    }

    /// The window row and column of the first tap of output `(oy, ox)` of phase `(ry, rx)`
    /// ([`TransposeWindow::first_tap`]).
    pub(super) fn first_tap_at(&self, (ry, rx): (usize, usize), (oy, ox): (usize, usize)) -> (usize, usize) {
        self.window.first_tap(&self.d, &self.d.phase(true, ry, rx), (oy, ox))
    }
}

/// Phase `index` of a tap-major transposed convolution as the Dense layer its kernels
/// requantize with: its weight rows, its per-phase bias and weight sums.
pub(super) fn phase_dense<'a>(p: &ConvI8<'a>, d: &ConvDims, index: usize) -> DenseI8<'a> {
    let phase = d.phase(true, index / d.w.stride(), index % d.w.stride());
    DenseI8 {
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
    }
}

/// `a[from..]`, empty past the end (which `samples` rules out).
pub(super) fn tail(a: &[u8], from: usize) -> &[u8] {
    a.get(from..).unwrap_or(&[])
}

/// The layer over `n` samples, with 16 or more output channels.
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
    let mut at = 0;
    for index in 0..sh * sw {
        let phase = d.phase(true, index / sw, index % sw);
        // SAFETY: the phase's rows are inside the weights; `Geometry::new` checked that every
        // phase's turned vectors fit the buffer.
        unsafe { turn(p.weights.as_ptr().add(phase.offset), d.rows, phase.cols, turned.add(at)) };
        at += phase.cols / 4 * d.rows.div_ceil(ROWS);
    }
    for (xs, ys) in x.chunks_exact(d.in_len).zip(out.chunks_exact_mut(d.out_len)).take(n) {
        // SAFETY: the window holds height * width * cin <= WINDOW bytes (`Geometry::new`).
        unsafe { fill(p, g, xs, window) };
        let mut at = 0;
        for index in 0..sh * sw {
            let phase = d.phase(true, index / sw, index % sw);
            let dense = phase_dense(p, d, index);
            let ep = Epilogue::new(&dense, true);
            let quads = phase.taps_x * cin / 4;
            let blocks = d.rows.div_ceil(ROWS);
            let mut starts = block_starts(d.rows, ROWS);
            let mut b = 0;
            // Lane blocks outside, pixels inside: each block's parameters load once a phase.
            while b < blocks {
                let pair = blocks - b >= 2;
                let o = starts.next().unwrap_or(0);
                let o = (o, if pair { starts.next().unwrap_or(o) } else { o });
                // SAFETY: o.0 + 16 and o.1 + 16 <= rows.
                let params = unsafe { [ep.params16(o.0), ep.params16(o.1)] };
                let tables = [LaneTable::new(&ep, &params[0]), LaneTable::new(&ep, &params[1])];
                let lanes = Lanes { ep: &ep, params: &params, tables: &tables, o, b, pair };
                // After a ReLU (input zero point -128) the border holds 0 and its taps add
                // nothing: runs multiply only the taps that read the input.
                g.window.phase_runs(d, &phase, g.border == 0, PIXELS, |r| {
                    let run = Run {
                        x: window.wrapping_add(r.window * cin),
                        step: r.window_step * cin,
                        count: r.count,
                        taps: (r.taps_y, (r.taps_x.0 * cin / 4, r.taps_x.1 * cin / 4)),
                        out: (r.out, r.out_step),
                    };
                    // SAFETY: the run's patches lie inside the filled window, the turned
                    // phase inside the buffer, its outputs inside the sample.
                    unsafe { many_channels(&lanes, g, p.out_shape.channels_last, turned.add(at), quads, &run, ys) };
                });
                b += if pair { 2 } else { 1 };
            }
            at += phase.cols / 4 * d.rows.div_ceil(ROWS);
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
        window.write_bytes(g.border, g.window.height * g.window.width * cin);
        core::slice::from_raw_parts_mut(window, g.window.height * g.window.width * cin)
    };
    let xs = crate::cast::u8s(xs);
    let plane = ih * iw;
    if !p.in_shape.channels_last && cin.is_multiple_of(16) && plane >= 4 {
        // SAFETY: the window and `xs` as above.
        unsafe { transpose_into(xs, plane, cin, g, window) };
        return;
    }
    for iy in 0..ih {
        let row = &mut w[((iy + g.window.top) * g.window.width + g.window.left) * cin..][..iw * cin];
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
            ((iy + g.window.top) * g.window.width + ix + g.window.left) * cin
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
        // Four quads at a time: 16 rows' 16 bytes (4 rows to a vector, one per 128-bit lane,
        // in 4 vectors) and a 4 x 4 dword transpose in each lane, 8 unpacks for 4 vectors
        // where the 16 x 16 transpose takes 16 shuffles, half of them across lanes (1.5% of
        // the conv VAE's decoder).
        while k0 + 4 <= quads {
            // SAFETY: rows o..o+16 < rows, dwords k0..k0+4 < quads of each.
            let lanes: [__m512i; 4] = core::array::from_fn(|i| unsafe {
                let row = |a: usize| _mm_loadu_si128(w.add((o + 4 * a + i) * cols + 4 * k0).cast());
                let v = _mm512_castsi128_si512(row(0));
                let v = _mm512_inserti32x4::<1>(v, row(1));
                let v = _mm512_inserti32x4::<2>(v, row(2));
                _mm512_inserti32x4::<3>(v, row(3))
            });
            let (t0, t1) = (_mm512_unpacklo_epi32(lanes[0], lanes[1]), _mm512_unpackhi_epi32(lanes[0], lanes[1]));
            let (t2, t3) = (_mm512_unpacklo_epi32(lanes[2], lanes[3]), _mm512_unpackhi_epi32(lanes[2], lanes[3]));
            let quad = [
                _mm512_unpacklo_epi64(t0, t2),
                _mm512_unpackhi_epi64(t0, t2),
                _mm512_unpacklo_epi64(t1, t3),
                _mm512_unpackhi_epi64(t1, t3),
            ];
            // Lane 4a + i of quad d is row o + 4a + i's dword k0 + d.
            for (d, v) in quad.into_iter().enumerate() {
                // SAFETY: (k0 + d) * blocks + b < quads * blocks.
                unsafe { turned.add((k0 + d) * blocks + b).write(v) };
            }
            k0 += 4;
        }
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

/// Up to [`PIXELS`] outputs of a phase along one of its output rows or columns.
struct Run {
    /// The window at the first pixel's first tap.
    x: *const u8,
    /// Window bytes from one pixel's first tap to the next's: `C_in` along a row.
    step: usize,
    count: usize,
    /// The tap rows and the quads of a patch row (tap columns times `C_in / 4`) to multiply.
    taps: ((usize, usize), (usize, usize)),
    /// The first pixel's offset in a channel plane, and the step to the next.
    out: (usize, usize),
}

/// One or two lane blocks of output channels and their parameters.
struct Lanes<'a> {
    ep: &'a Epilogue<'a>,
    params: &'a [Rows16; 2],
    /// Their faster form, when they have one.
    tables: &'a [Option<LaneTable>; 2],
    /// The blocks' first output channels (the same twice without `pair`).
    o: (usize, usize),
    /// The first block's index.
    b: usize,
    pair: bool,
}

/// The output channels of `lanes` for a run.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; the run's patches lie inside the window; `turned` holds the phase's
/// turned weights, blocks `lanes.b` (and the next with `pair`) among them; the run's outputs
/// lie inside `ys`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn many_channels(
    lanes: &Lanes<'_>,
    g: &Geometry,
    channels_last: bool,
    turned: *const __m512i,
    quads: usize,
    run: &Run,
    ys: &mut [i8],
) {
    let rows = g.d.rows;
    let (b, blocks, pair) = (lanes.b, rows.div_ceil(ROWS), lanes.pair);
    // SAFETY: forwarded (blocks b and b + 1 exist when `pair`).
    let acc = unsafe {
        macro_rules! go {
            ($p:literal) => {
                widen(if pair {
                    dot::<$p, 2>(g, turned, quads, run, b, blocks)
                } else {
                    let [a] = dot::<$p, 1>(g, turned, quads, run, b, blocks);
                    [a, [_mm512_setzero_si512(); $p]]
                })
            };
        }
        match run.count {
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
    if let (true, true, Some(t0), Some(t1)) = (pair, channels_last, &lanes.tables[0], &lanes.tables[1]) {
        if lanes.o.1 == lanes.o.0 + ROWS {
            // Both blocks of a pixel are 32 adjacent channels: narrowed together, one store.
            for (j, (&a, &b)) in acc[0].iter().zip(&acc[1]).enumerate().take(run.count) {
                let y = t0.narrow_pair(t0.scale(a), t1.scale(b));
                let at = run.out.0 + j * run.out.1;
                // SAFETY: pixel `at`'s channels o..o + 32, inside the sample.
                unsafe { _mm256_storeu_si256(ys.as_mut_ptr().add(at * rows + lanes.o.0).cast(), y) };
            }
            return;
        }
    }
    for (h, o) in [lanes.o.0, lanes.o.1].into_iter().enumerate().take(if pair { 2 } else { 1 }) {
        for (j, &v) in acc[h].iter().enumerate().take(run.count) {
            let y = match &lanes.tables[h] {
                Some(table) => table.apply(v),
                None => lanes.ep.apply16(&lanes.params[h], v),
            };
            let y = _mm512_cvtepi32_epi8(y);
            let at = run.out.0 + j * run.out.1;
            if channels_last {
                // SAFETY: pixel `at`'s channels o..o + 16, inside the sample.
                unsafe { _mm_storeu_si128(ys.as_mut_ptr().add(at * rows + o).cast(), y) };
            } else {
                let mut bytes = [0i8; 16];
                // SAFETY: 16 writable bytes.
                unsafe { _mm_storeu_si128(bytes.as_mut_ptr().cast(), y) };
                let plane = ys.len() / rows;
                for (i, &v) in bytes.iter().enumerate() {
                    ys[(o + i) * plane + at] = v;
                }
            }
        }
    }
}

/// `[[v; P]; 2]` padded to `[[v; PIXELS]; 2]` with zeros (never stored).
#[target_feature(enable = "avx512f")]
#[inline]
fn widen<const P: usize>(acc: [[__m512i; P]; 2]) -> [[__m512i; PIXELS]; 2] {
    core::array::from_fn(|h| core::array::from_fn(|j| if j < P { acc[h][j] } else { _mm512_setzero_si512() }))
}

/// The dot products of `P` pixels (the run's) with lane blocks `b..b + B` of the turned phase
/// (`quads` per patch row): `acc[h][j]` lane `i` is output channel `o + i` of pixel `j`, `o`
/// block `b + h`'s first row.
///
/// # Safety
/// AVX-512 F/BW/VL/VNNI; the pixels' patches lie inside the window, blocks `b..b + B` exist,
/// the run's taps are the phase's.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn dot<const P: usize, const B: usize>(
    g: &Geometry,
    turned: *const __m512i,
    quads: usize,
    run: &Run,
    b: usize,
    blocks: usize,
) -> [[__m512i; P]; B] {
    let cin = g.d.in_channels_per_group;
    let ((ty0, ty1), (q0, q1)) = run.taps;
    let mut acc = [[_mm512_setzero_si512(); P]; B];
    for ty in ty0..ty1 {
        let row = run.x.wrapping_add(ty * g.window.width * cin);
        let w = turned.wrapping_add(ty * quads * blocks + b);
        for q in q0..q1 {
            // SAFETY: quad q of patch row ty is turned vector (ty * quads + q) * blocks + b (+1).
            let wv: [__m512i; B] = core::array::from_fn(|h| unsafe { w.add(q * blocks + h).read() });
            for j in 0..P {
                // SAFETY: 4 bytes of pixel j's patch row ty, inside the window.
                let xv = _mm512_set1_epi32(unsafe { row.add(j * run.step + 4 * q).cast::<i32>().read_unaligned() });
                for (a, &w) in acc.iter_mut().zip(&wv) {
                    a[j] = _mm512_dpbusd_epi32(a[j], xv, w);
                }
            }
        }
    }
    acc
}
