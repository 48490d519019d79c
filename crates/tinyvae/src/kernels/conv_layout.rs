//! Where a convolution's weight `(o, c, ky, kx)` sits in the blob, for each [`WeightLayout`],
//! and the phase blocks of a tap-major transposed convolution.
//!
//! - **Row-major** (format version 2): `[C_out][C_in / groups][kh][kw]` for both directions
//!   (a transposed convolution's ONNX `[C_in][C_out][kh][kw]` transposed by the writer).
//! - **Tap-major** (format version 3), the layout optimized kernels run from flash:
//!   - a convolution stores `[C_out][kh][kw][C_in / groups]`: the weights that one kernel tap
//!     multiplies with the input channels sit together, in the order an input pixel's channels
//!     sit in an HWC row, so one output pixel is a Dense row over a patch gathered by whole
//!     channel runs (see [`crate::kernels::patches`]);
//!   - a transposed convolution stores one block per *phase*, a pair of tap residues
//!     `(ry, rx)` (`ry` major): the outputs with `(oy + pad_top) ≡ ry (mod stride_h)` and
//!     likewise for columns use exactly the `taps_y x taps_x` taps
//!     `ky = ry + (taps_y - 1 - ty) * stride_h`, `kx = rx + (taps_x - 1 - tx) * stride_w`
//!     (kernel indices decreasing, so that `(ty, tx)` increase with the input row and column
//!     they read, as in a convolution, and a patch row is one run of an HWC input row), and
//!     their block is `[C_out][ty][tx][C_in]`: an ordinary
//!     Dense row per output channel, without the flipped filter copy in RAM that the
//!     zero-insertion method needs. Its int8 biases and weight sums are stored per phase
//!     (phase-major, `C_out` each): a phase's bias folds `-zp_in * sum` of that phase's
//!     weights, because a gathered patch pads with the input zero point (real 0), which makes
//!     the sum over every tap of the phase equal the sum over the valid ones.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use super::{Axis, ConvDims};
use crate::format::WeightLayout;

/// One phase of a transposed convolution in the tap-major layout (a convolution has one phase
/// covering every tap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    /// `ry * stride_w + rx`: which bias and weight-sum block the phase uses.
    pub index: usize,
    /// Kernel rows `ry, ry + stride_h, ...` below `kh`.
    pub ry: usize,
    /// Kernel columns `rx, rx + stride_w, ...` below `kw`.
    pub rx: usize,
    /// How many kernel rows.
    pub taps_y: usize,
    /// How many kernel columns.
    pub taps_x: usize,
    /// Index of the block's first weight.
    pub offset: usize,
    /// Weights per output channel in the block: `C_in * taps_y * taps_x`.
    pub cols: usize,
}

/// Taps `k < kernel` with `k ≡ r (mod stride)`.
fn residue_taps(kernel: usize, stride: usize, r: usize) -> usize {
    if r < kernel {
        (kernel - r).div_ceil(stride)
    } else {
        0
    }
}

/// Taps `k < kernel` with `k mod stride < r`.
fn taps_below_residue(kernel: usize, stride: usize, r: usize) -> usize {
    (0..r.min(stride)).map(|q| residue_taps(kernel, stride, q)).sum()
}

impl ConvDims {
    /// Bias and weight-sum blocks of an int8 node: the phases of a tap-major transposed
    /// convolution (`stride_h * stride_w`), else 1.
    pub fn phases(&self, transposed: bool, layout: WeightLayout) -> usize {
        if transposed && layout == WeightLayout::TapMajor {
            self.h.stride() * self.w.stride()
        } else {
            1
        }
    }

    /// The tap-major transposed convolution's phase of tap residues `(ry, rx)` (each below its
    /// stride). A convolution's single phase is `(0, 0)` with every tap.
    pub fn phase(&self, transposed: bool, ry: usize, rx: usize) -> Phase {
        let (kh, kw) = (self.kh, self.kw);
        if !transposed {
            return Phase { index: 0, ry: 0, rx: 0, taps_y: kh, taps_x: kw, offset: 0, cols: self.cols };
        }
        let (sh, sw) = (self.h.stride(), self.w.stride());
        let (taps_y, taps_x) = (residue_taps(kh, sh, ry), residue_taps(kw, sw, rx));
        let before = taps_below_residue(kh, sh, ry) * kw + taps_y * taps_below_residue(kw, sw, rx);
        let c = self.in_channels_per_group;
        Phase { index: ry * sw + rx, ry, rx, taps_y, taps_x, offset: self.rows * c * before, cols: c * taps_y * taps_x }
    }

    /// Index of weight `(o, c, ky, kx)` (`c` within the group) in the weight array of a node
    /// stored in `layout`. `phase` must be [`ConvDims::phase`] of the tap's residues (any
    /// phase for the other layouts).
    #[inline]
    pub fn weight_index(
        &self,
        layout: WeightLayout,
        transposed: bool,
        phase: &Phase,
        (o, c, ky, kx): (usize, usize, usize, usize),
    ) -> usize {
        let cg = self.in_channels_per_group;
        match layout {
            WeightLayout::RowMajor => o * self.cols + (c * self.kh + ky) * self.kw + kx,
            WeightLayout::TapMajor if transposed => {
                // Taps in the order of the input positions they read (see the module docs).
                let ty = phase.taps_y - 1 - ky / self.h.stride();
                let tx = phase.taps_x - 1 - kx / self.w.stride();
                phase.offset + o * phase.cols + (ty * phase.taps_x + tx) * cg + c
            }
            WeightLayout::TapMajor => o * self.cols + (ky * self.kw + kx) * cg + c,
        }
    }
}

/// Where a direct transposed-convolution kernel reads its input in place: one sample in HWC,
/// inside a border of the input zero point wide enough that every tap of every output of
/// every phase reads inside it. A patch row `ty` of a phase is then one run of `taps_x * C_in`
/// bytes of a window row, and each next output of a phase's row reads one pixel further, so
/// kernels need no gathered patch and no bounds test per tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransposeWindow {
    /// Window rows before the input's first.
    pub top: usize,
    /// Window columns before the input's first.
    pub left: usize,
    /// Window rows in all.
    pub height: usize,
    /// Window columns in all.
    pub width: usize,
}

impl TransposeWindow {
    /// The window of a transposed convolution; `None` when a phase has no taps (a kernel
    /// smaller than its stride), which has no first tap to place.
    pub fn new(d: &ConvDims) -> Option<Self> {
        let (sh, sw) = (d.h.stride(), d.w.stride());
        if (0..sh).any(|ry| d.phase(true, ry, 0).taps_y == 0) || (0..sw).any(|rx| d.phase(true, 0, rx).taps_x == 0) {
            return None;
        }
        let (top, bottom) = Self::border(&d.h, |r| d.phase(true, r, 0).taps_y);
        let (left, right) = Self::border(&d.w, |r| d.phase(true, 0, r).taps_x);
        Some(TransposeWindow {
            top,
            left,
            height: d.h.input().checked_add(top + bottom)?,
            width: d.w.input().checked_add(left + right)?,
        })
    }

    /// The border an axis needs before and after its input: every output's taps, `taps(r)`
    /// for its residue `r`, read inside it.
    fn border(a: &Axis, taps: impl Fn(usize) -> usize) -> (usize, usize) {
        let (s, pad) = (a.stride(), a.pad());
        let (mut before, mut after) = (0, 0);
        for r in 0..s {
            let first = first_output(a, r);
            if first >= a.output() {
                continue;
            }
            let end = first + (a.output() - 1 - first) / s * s;
            // Residue r's taps end at input (o + pad - r) / s and start taps - 1 before; that
            // grows with o, so the first and last outputs bound it.
            let last_input = |o: usize| (o + pad - r) / s;
            before = before.max((taps(r) - 1).saturating_sub(last_input(first)));
            after = after.max((last_input(end) + 1).saturating_sub(a.input()));
        }
        (before, after)
    }

    /// The window row and column of the first tap of output `(oy, ox)` of `phase`: tap `t`
    /// of residue `r` reads input position `(o + pad - r) / s - (taps - 1) + t` (the order of
    /// the module docs). `(oy, ox)` must be an output of the phase.
    pub fn first_tap(&self, d: &ConvDims, phase: &Phase, (oy, ox): (usize, usize)) -> (usize, usize) {
        let iy = (oy + d.h.pad() - phase.ry) / d.h.stride() + self.top + 1 - phase.taps_y;
        let ix = (ox + d.w.pad() - phase.rx) / d.w.stride() + self.left + 1 - phase.taps_x;
        (iy, ix)
    }
}

/// A run of outputs of one phase that a direct kernel computes together: consecutive outputs
/// along a phase row (or down a phase column) whose taps step one window pixel (or row) apart,
/// multiplying the same tap rows and columns. See [`TransposeWindow::phase_runs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRun {
    /// The window pixel (`row * width + column`) of the first output's first tap.
    pub window: usize,
    /// Window pixels from one output's first tap to the next's: 1 along a row, the window
    /// width down a column.
    pub window_step: usize,
    /// The first output's position in a channel plane (`oy * out_width + ox`), and the step to
    /// the next.
    pub out: usize,
    /// See `out`.
    pub out_step: usize,
    /// Outputs in the run.
    pub count: usize,
    /// The tap rows `lo..hi` of the phase to multiply.
    pub taps_y: (usize, usize),
    /// The tap columns `lo..hi` to multiply.
    pub taps_x: (usize, usize),
}

impl TransposeWindow {
    /// The taps `lo..hi` of `taps` from window position `first` on (along an axis whose input
    /// starts `before` positions into the window and is `len` long) that read the input.
    pub fn inside(first: usize, taps: usize, before: usize, len: usize) -> (usize, usize) {
        let lo = before.saturating_sub(first).min(taps);
        (lo, (before + len).saturating_sub(first).clamp(lo, taps))
    }

    /// Calls `f` with runs of at most `max` (at least 1) outputs that cover every output of
    /// `phase` once. With `skip_border`, for a kernel whose border taps add nothing (a border
    /// of zeros), each run multiplies only taps that read the input: the phase rows go in runs
    /// along the row over the columns whose tap columns all read the input, with the tap rows
    /// of that row; the few columns at each edge whose tap columns are cut go in runs down the
    /// column, with the tap columns of that column (and every tap row). Without it, runs along
    /// the rows with every tap. On the conv VAE's 64 -> 32 layer the border taps are 14% of
    /// the products.
    pub fn phase_runs(&self, d: &ConvDims, phase: &Phase, skip_border: bool, max: usize, mut f: impl FnMut(OutputRun)) {
        let (sh, sw, ow) = (d.h.stride(), d.w.stride(), d.w.output());
        let (oy0, ox0) = (first_output(&d.h, phase.ry), first_output(&d.w, phase.rx));
        let per_row = (ox0..ow).step_by(sw).count();
        let rows = (oy0..d.h.output()).step_by(sh).count();
        if per_row == 0 || rows == 0 || max == 0 {
            return;
        }
        // Each next output row of the phase reads one input row further, each next output of
        // a row one input column further: one division for the phase.
        let (iy0, ix0) = self.first_tap(d, phase, (oy0, ox0));
        let all = |taps: usize| (0, taps);
        let tap_rows = |k: usize| {
            if skip_border {
                Self::inside(iy0 + k, phase.taps_y, self.top, d.h.input())
            } else {
                all(phase.taps_y)
            }
        };
        let tap_cols = |j: usize| {
            if skip_border {
                Self::inside(ix0 + j, phase.taps_x, self.left, d.w.input())
            } else {
                all(phase.taps_x)
            }
        };
        let full = |j: usize| tap_cols(j) == all(phase.taps_x);
        let cols_from = (0..per_row).find(|&j| full(j)).unwrap_or(per_row);
        let cols_to = (cols_from..per_row).find(|&j| !full(j)).unwrap_or(per_row);
        let mut runs = |(k, j): (usize, usize), count: usize, along: (usize, usize), taps_y, taps_x| {
            let mut i = 0;
            while i < count {
                let n = (count - i).min(max);
                let (k, j) = (k + i * along.0, j + i * along.1);
                f(OutputRun {
                    window: (iy0 + k) * self.width + ix0 + j,
                    window_step: along.0 * self.width + along.1,
                    out: (oy0 + k * sh) * ow + ox0 + j * sw,
                    out_step: along.0 * sh * ow + along.1 * sw,
                    count: n,
                    taps_y,
                    taps_x,
                });
                i += n;
            }
        };
        for k in 0..rows {
            runs((k, cols_from), cols_to - cols_from, (0, 1), tap_rows(k), all(phase.taps_x));
        }
        for j in (0..cols_from).chain(cols_to..per_row) {
            runs((0, j), rows, (1, 0), all(phase.taps_y), tap_cols(j));
        }
    }
}

/// The first output of tap residue `r` on a transposed convolution's axis: the first `o`
/// with `(o + pad) ≡ r (mod stride)`; the phase's next outputs follow `stride` apart.
pub fn first_output(a: &Axis, r: usize) -> usize {
    let s = a.stride();
    (r + s - a.pad() % s) % s
}

/// Reorders a row-major weight array of `weight_bytes`-byte weights into the tap-major layout
/// (the blob writer's half of this module).
#[cfg(feature = "alloc")]
pub fn to_tap_major(d: &ConvDims, transposed: bool, weight_bytes: usize, row_major: &[u8]) -> Vec<u8> {
    let mut out = alloc::vec![0u8; d.rows * d.cols * weight_bytes];
    let row_phase = d.phase(false, 0, 0);
    let (sh, sw) = if transposed { (d.h.stride(), d.w.stride()) } else { (1, 1) };
    for ky in 0..d.kh {
        for kx in 0..d.kw {
            let phase = d.phase(transposed, ky % sh, kx % sw);
            for o in 0..d.rows {
                for c in 0..d.in_channels_per_group {
                    let at = (o, c, ky, kx);
                    let from = d.weight_index(WeightLayout::RowMajor, transposed, &row_phase, at) * weight_bytes;
                    let to = d.weight_index(WeightLayout::TapMajor, transposed, &phase, at) * weight_bytes;
                    if let (Some(src), Some(dst)) =
                        (row_major.get(from..from + weight_bytes), out.get_mut(to..to + weight_bytes))
                    {
                        dst.copy_from_slice(src);
                    }
                }
            }
        }
    }
    out
}

/// An int8 node's row-major arrays (weights; `rows` biases, a convolution's folding the input
/// zero point and a transposed one's not; `rows` multipliers, shifts and weight sums) in the
/// tap-major layout: weights reordered, and for a transposed convolution the biases and weight
/// sums made per phase, each bias folding `-zp_in * sum` of its phase row. `None` when an
/// array is shorter than the shape needs.
#[cfg(feature = "alloc")]
#[allow(clippy::type_complexity)]
pub fn to_tap_major_i8(
    d: &ConvDims,
    transposed: bool,
    in_zero_point: i32,
    weights: &[u8],
    bias: &[u8],
    requant: &[u8],
) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    if weights.len() < d.rows * d.cols || bias.len() < 4 * d.rows || requant.len() < 12 * d.rows {
        return None;
    }
    let packed = to_tap_major(d, transposed, 1, weights);
    let phases = d.phases(transposed, WeightLayout::TapMajor);
    if !transposed {
        return Some((packed, bias[..4 * d.rows].into(), requant[..12 * d.rows].into()));
    }
    let (mut phase_bias, mut aux) = (Vec::new(), requant[..8 * d.rows].to_vec());
    for index in 0..phases {
        let phase = d.phase(true, index / d.w.stride(), index % d.w.stride());
        for o in 0..d.rows {
            let row = &packed[phase.offset + o * phase.cols..][..phase.cols];
            let sum = row.iter().fold(0i32, |s, &v| s.wrapping_add(v as i8 as i32));
            let b = i32::from_le_bytes([bias[4 * o], bias[4 * o + 1], bias[4 * o + 2], bias[4 * o + 3]]);
            phase_bias.extend_from_slice(&b.wrapping_sub(in_zero_point.wrapping_mul(sum)).to_le_bytes());
            aux.extend_from_slice(&sum.to_le_bytes());
        }
    }
    Some((packed, phase_bias, aux))
}

/// A convolution's row-major arrays (weights of `weight_bytes` bytes, biases, and for int8 the
/// requantization arrays) as the blob stores them in the tap-major layout: int8 (`in_zero_point`
/// given) through [`to_tap_major_i8`], float weights through [`to_tap_major`] with the biases
/// unchanged. `None` when an array is shorter than the shape needs.
#[cfg(feature = "alloc")]
#[allow(clippy::type_complexity)]
pub fn tap_major_arrays(
    d: &ConvDims,
    transposed: bool,
    weight_bytes: usize,
    in_zero_point: Option<i32>,
    (weights, bias, requant): (&[u8], &[u8], &[u8]),
) -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    match in_zero_point {
        Some(zp) => to_tap_major_i8(d, transposed, zp, weights, bias, requant),
        None if weights.len() >= d.rows * d.cols * weight_bytes => {
            Some((to_tap_major(d, transposed, weight_bytes, weights), bias.to_vec(), requant.to_vec()))
        }
        None => None,
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::format::ConvGeometry;
    use crate::kernels::Shape;
    use alloc::vec;

    #[test]
    fn tap_major_indices_cover_every_weight_once() {
        for (kh, kw, sh, sw) in [(4, 4, 2, 2), (3, 5, 2, 3), (1, 2, 3, 1), (5, 5, 1, 1), (2, 2, 3, 3)] {
            let g = ConvGeometry {
                kh,
                kw,
                stride_h: sh,
                stride_w: sw,
                dilation_h: 1,
                dilation_w: 1,
                groups: 1,
                ..Default::default()
            };
            let d = ConvDims::new(&g, Shape::new(3, 4, 5), Shape::new(2, 6, 7), true).unwrap();
            let mut seen = vec![0u8; d.rows * d.cols];
            for o in 0..d.rows {
                for c in 0..3 {
                    for ky in 0..kh as usize {
                        for kx in 0..kw as usize {
                            let ph = d.phase(true, ky % sh as usize, kx % sw as usize);
                            seen[d.weight_index(WeightLayout::TapMajor, true, &ph, (o, c, ky, kx))] += 1;
                        }
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{kh}x{kw} s{sh},{sw}");
            let per_channel: usize = (0..sh as usize)
                .flat_map(|ry| (0..sw as usize).map(move |rx| (ry, rx)))
                .map(|(ry, rx)| d.phase(true, ry, rx).cols)
                .sum();
            assert_eq!(per_channel, d.cols);
        }
    }
}
