//! The suite's families for the format-version-2 kernels: convolutions, transposed
//! convolutions, upsampling and additions.
//!
//! Unlike the Dense families, which compare a table with the reference, these compare every
//! table (the reference included) with definitions written here the plainest way, by a
//! different algorithm from the reference's: a convolution over *every* tap with padding
//! reading the input zero point (the reference visits only the valid taps and folds the rest
//! into a row sum), and a transposed convolution by *scattering* each input pixel into the
//! outputs it reaches (the reference gathers, phase by phase). int8 results must be the
//! definition's bytes; float results lie within a bound of the definition's value computed in
//! f64, scaled by the sum of the magnitudes of the products. The contract's rules on short
//! slices and refused shapes are checked as for Dense.

use alloc::vec;
use alloc::vec::Vec;

use super::{draw_i8, draw_zero_point, At, Call, Element, Mismatch, TAIL};
use crate::format::{ConvGeometry, WeightLayout};
use crate::kernels::{
    conv_layout, AddI8, ConvDims, ConvFloat, ConvFloatFn, ConvI8, ConvI8Fn, Kernels, Shape, Upsample,
};
use crate::quant::{quantize_multiplier, requantize};
use crate::rng::Rng;

/// A random int8 convolution or transposed convolution problem.
#[derive(Debug, Clone)]
pub struct ConvCase {
    /// A transposed convolution.
    pub transposed: bool,
    /// Kernel, strides, dilations, padding, groups.
    pub geometry: ConvGeometry,
    /// Input shape.
    pub in_shape: Shape,
    /// Output shape.
    pub out_shape: Shape,
    /// Batch size.
    pub batch: usize,
    /// `rows * cols` weights in -127..=127.
    pub weights: Vec<u8>,
    /// int32 LE biases (a convolution's with the input zero point folded in).
    pub bias: Vec<u8>,
    /// Planar int32 LE multipliers, shifts and weight sums.
    pub requant: Vec<u8>,
    /// Input zero point.
    pub in_zero_point: i32,
    /// Output zero point.
    pub out_zero_point: i32,
    /// Clamp.
    pub act_min: i8,
    /// Clamp.
    pub act_max: i8,
    /// `batch * in_len` inputs.
    pub x: Vec<i8>,
}

/// An output extent for an input extent `input` on one axis: usually the one a framework
/// would compute (with a random trailing padding, and for a transposed convolution a random
/// `output_padding`), sometimes any size from 1 up.
fn output_extent(
    rng: &mut Rng,
    transposed: bool,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad: usize,
) -> usize {
    if rng.below(5) == 0 {
        return 1 + rng.below((input * stride + 3) as u32) as usize;
    }
    let trailing = rng.below(kernel as u32 + 1) as usize;
    let natural = if transposed {
        let output_padding = rng.below(stride as u32) as usize;
        ((input - 1) * stride + kernel + output_padding) as isize - (pad + trailing) as isize
    } else {
        let span = (input + pad + trailing) as isize - (dilation * (kernel - 1) + 1) as isize;
        if span < 0 {
            0
        } else {
            span / stride as isize + 1
        }
    };
    natural.max(1) as usize
}

impl ConvCase {
    /// Draws a case: kernels 1 to 5, strides 1 to 3, dilation 1 or 2 (convolutions), any
    /// padding up to the kernel size, one group, two, or depthwise (convolutions), inputs up to
    /// 6 x 6 and output sizes as frameworks make them or arbitrary, batches 1 to 3.
    pub fn random(rng: &mut Rng, transposed: bool) -> Self {
        let kh = 1 + rng.below(5) as u8;
        let kw = if rng.below(2) == 0 { kh } else { 1 + rng.below(5) as u8 };
        let (stride_h, stride_w) = (1 + rng.below(3) as u8, 1 + rng.below(3) as u8);
        let dilation = if transposed { 1 } else { 1 + rng.below(2) as u8 };
        let geometry = ConvGeometry {
            kh,
            kw,
            stride_h,
            stride_w,
            dilation_h: dilation,
            dilation_w: if rng.below(3) == 0 { 1 } else { dilation },
            pad_top: rng.below(kh as u32 + 1) as u8,
            pad_left: rng.below(kw as u32 + 1) as u8,
            groups: 1,
        };
        let batch = 1 + rng.below(3) as usize;
        Self::with_geometry(rng, transposed, geometry, batch)
    }

    /// Draws a case of this geometry (its `groups` replaced: one, two or depthwise for a
    /// convolution), random shapes and values, and `batch` samples.
    pub fn with_geometry(rng: &mut Rng, transposed: bool, mut geometry: ConvGeometry, batch: usize) -> Self {
        let (groups, in_per_group, out_per_group) = match if transposed { 0 } else { rng.below(3) } {
            0 => (1, 1 + rng.below(3) as usize, 1 + rng.below(3) as usize),
            1 => (2, 1 + rng.below(2) as usize, 1 + rng.below(2) as usize),
            _ => (1 + rng.below(4) as usize, 1, 1 + rng.below(2) as usize), // depthwise (x1 or x2)
        };
        geometry.groups = groups as u16;
        let g = geometry;
        let (h, w) = (1 + rng.below(6) as usize, 1 + rng.below(6) as usize);
        let oh = output_extent(
            rng,
            transposed,
            h,
            g.kh as usize,
            g.stride_h as usize,
            g.dilation_h as usize,
            g.pad_top as usize,
        );
        let ow = output_extent(
            rng,
            transposed,
            w,
            g.kw as usize,
            g.stride_w as usize,
            g.dilation_w as usize,
            g.pad_left as usize,
        );
        let in_shape = Shape::new(groups * in_per_group, h, w);
        let out_shape = Shape::new(groups * out_per_group, oh, ow);
        let rows = out_shape.channels;
        let cols = in_per_group * g.kh as usize * g.kw as usize;
        let style = rng.below(4);
        let weights = (0..rows * cols).map(|_| draw_i8(rng, style, true) as u8).collect();
        let x = (0..batch * in_shape.elements().unwrap_or(0)).map(|_| draw_i8(rng, style, false)).collect();
        let mut c = ConvCase {
            transposed,
            geometry,
            in_shape,
            out_shape,
            batch,
            weights,
            bias: vec![0; 4 * rows],
            requant: vec![0; 12 * rows],
            in_zero_point: 0,
            out_zero_point: 0,
            act_min: -128,
            act_max: 127,
            x,
        };
        c.draw_parameters(rng);
        c
    }

    /// A case of this geometry (groups included) and these `[C, H, W]` input and output
    /// shapes, with random values and `batch` samples.
    pub fn with_shapes(
        rng: &mut Rng,
        transposed: bool,
        geometry: ConvGeometry,
        (i, o): ([usize; 3], [usize; 3]),
        batch: usize,
    ) -> Self {
        let mut c = ConvCase::with_geometry(rng, transposed, geometry, batch);
        c.geometry.groups = geometry.groups;
        c.in_shape = Shape::new(i[0], i[1], i[2]);
        c.out_shape = Shape::new(o[0], o[1], o[2]);
        let (rows, cols) = c.rows_cols();
        let style = rng.below(4);
        c.weights = (0..rows * cols).map(|_| draw_i8(rng, style, true) as u8).collect();
        c.x = (0..batch * c.in_shape.elements().unwrap_or(0)).map(|_| draw_i8(rng, style, false)).collect();
        c.bias = vec![0; 4 * rows];
        c.requant = vec![0; 12 * rows];
        c.draw_parameters(rng);
        c
    }

    /// This case's arrays in the tap-major layout ([`conv_layout::to_tap_major_i8`]): weights,
    /// biases, and multipliers, shifts and weight sums, for [`ConvCase::tap_major_params`].
    pub fn tap_major_arrays(&self) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let d = self.params().dims(self.transposed).expect("a drawn case is valid");
        conv_layout::to_tap_major_i8(&d, self.transposed, self.in_zero_point, &self.weights, &self.bias, &self.requant)
            .expect("a drawn case holds its shape")
    }

    /// The kernel parameters of this case in the tap-major layout, borrowing `arrays` (from
    /// [`ConvCase::tap_major_arrays`]).
    pub fn tap_major_params<'a>(&'a self, (weights, bias, requant): &'a (Vec<u8>, Vec<u8>, Vec<u8>)) -> ConvI8<'a> {
        let r = 4 * self.out_shape.channels;
        ConvI8 {
            layout: WeightLayout::TapMajor,
            weights,
            bias,
            multipliers: &requant[..r],
            shifts: &requant[r..2 * r],
            weight_sums: &requant[2 * r..],
            ..self.params()
        }
    }

    /// Output channels and weights per channel.
    fn rows_cols(&self) -> (usize, usize) {
        let per_group = self.in_shape.channels / (self.geometry.groups.max(1) as usize);
        (self.out_shape.channels, per_group * self.geometry.kh as usize * self.geometry.kw as usize)
    }

    /// Zero points and clamps as `DenseI8Case` draws them; biases with the input zero point
    /// folded in (convolutions) or not (transposed); requantization scaled to this case's
    /// accumulators most of the time, else arbitrary; exact weight sums.
    pub fn draw_parameters(&mut self, rng: &mut Rng) {
        let (rows, cols) = self.rows_cols();
        self.in_zero_point = draw_zero_point(rng);
        self.out_zero_point = draw_zero_point(rng);
        (self.act_min, self.act_max) = match rng.below(3) {
            0 => (-128, 127),
            1 => (self.out_zero_point as i8, 127),
            _ => (-100, 90),
        };
        for o in 0..rows {
            let row = &self.weights[o * cols..(o + 1) * cols];
            let sum: i32 = row.iter().map(|&w| w as i8 as i32).sum();
            let b = (rng.next_u64() as i32) >> (12 + rng.below(16));
            let b = if self.transposed { b } else { b.wrapping_sub(self.in_zero_point.wrapping_mul(sum)) };
            self.bias[4 * o..4 * o + 4].copy_from_slice(&b.to_le_bytes());
            self.requant[4 * (2 * rows + o)..][..4].copy_from_slice(&sum.to_le_bytes());
        }
        let acc = self.accumulators();
        let scaled = rng.below(4) != 0;
        let out_plane = self.out_shape.height * self.out_shape.width;
        for o in 0..rows {
            let (m, s) = if scaled {
                let largest = acc
                    .chunks_exact(out_plane * rows)
                    .flat_map(|sample| &sample[o * out_plane..(o + 1) * out_plane])
                    .map(|&a| (a as i64).abs())
                    .max()
                    .unwrap_or(0);
                let target = 40.0 + rng.below(100) as f64;
                quantize_multiplier(target / largest.max(1) as f64).unwrap_or((1 << 30, -31))
            } else {
                ((1i32 << 30) + (rng.next_u64() as u32 >> 2) as i32, 1 - rng.below(20) as i32)
            };
            self.requant[4 * o..][..4].copy_from_slice(&m.to_le_bytes());
            self.requant[4 * (rows + o)..][..4].copy_from_slice(&s.to_le_bytes());
        }
    }

    /// The kernel parameters borrowing this case.
    pub fn params(&self) -> ConvI8<'_> {
        let r = 4 * self.out_shape.channels;
        ConvI8 {
            geometry: self.geometry,
            layout: WeightLayout::RowMajor,
            in_shape: self.in_shape,
            out_shape: self.out_shape,
            weights: &self.weights,
            bias: &self.bias,
            multipliers: self.requant.get(..r).unwrap_or(&[]),
            shifts: self.requant.get(r..2 * r).unwrap_or(&[]),
            weight_sums: self.requant.get(2 * r..).unwrap_or(&[]),
            in_zero_point: self.in_zero_point,
            out_zero_point: self.out_zero_point,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }

    /// The accumulators of every output of every sample, by the definitions (see the module
    /// documentation), in wrapping i32 arithmetic as the format defines them.
    fn accumulators(&self) -> Vec<i32> {
        let rows = self.out_shape.channels;
        let len = self.batch * self.out_shape.elements().unwrap_or(0);
        let plane = self.out_shape.height * self.out_shape.width;
        let mut acc: Vec<i32> = (0..len).map(|at| le(&self.bias, (at / plane) % rows)).collect();
        visit_definition(self, |at, (o, c, ky, kx, x)| {
            acc[at] = acc[at].wrapping_add((self.weight(o, c, ky, kx) as i32).wrapping_mul(x));
        });
        acc
    }

    /// Weight `[o][c][ky][kx]` (`c` within the group).
    fn weight(&self, o: usize, c: usize, ky: usize, kx: usize) -> i8 {
        let (_, cols) = self.rows_cols();
        let g = &self.geometry;
        self.weights[o * cols + (c * g.kh as usize + ky) * g.kw as usize + kx] as i8
    }

    /// The definition's int8 outputs.
    fn expected(&self) -> Vec<i8> {
        let rows = self.out_shape.channels;
        let plane = self.out_shape.height * self.out_shape.width;
        let p = self.params();
        self.accumulators()
            .iter()
            .enumerate()
            .map(|(i, &acc)| {
                let o = (i / plane) % rows;
                requantize(acc, le(p.multipliers, o), le(p.shifts, o), self.out_zero_point, self.act_min, self.act_max)
            })
            .collect()
    }
}

/// `batch` samples of `from`'s layout in `to`'s (the same shape, NCHW or channels-last).
fn relayout<T: Copy + Default>(x: &[T], from: Shape, to: Shape, batch: usize) -> Vec<T> {
    let len = from.elements().unwrap_or(0);
    let mut out = vec![T::default(); x.len()];
    for b in 0..batch.min(x.len() / len.max(1)) {
        for c in 0..from.channels {
            for y in 0..from.height {
                for xx in 0..from.width {
                    out[b * len + to.index(c, y, xx)] = x[b * len + from.index(c, y, xx)];
                }
            }
        }
    }
    out
}

/// Little-endian i32 number `i` of an array.
fn le(a: &[u8], i: usize) -> i32 {
    i32::from_le_bytes([a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]])
}

/// One term of a definition's sum: output channel, input channel within the group, kernel
/// row and column, and the input value it multiplies.
type Term = (usize, usize, usize, usize, i32);

/// Calls `f(at, term)` for every term of every output's sum by the definition (`at` indexes
/// the batch's outputs, sample-major): for a convolution every tap, padding reading the input
/// zero point; for a transposed convolution the taps that each input pixel scatters into the
/// output, with `x - zp_in`. In int8 codes; the float checks reuse it with the same codes as
/// values (and zero point 0).
fn visit_definition(c: &ConvCase, mut f: impl FnMut(usize, Term)) {
    let g = &c.geometry;
    let (kh, kw) = (g.kh as usize, g.kw as usize);
    let (i, o) = (c.in_shape, c.out_shape);
    let groups = g.groups.max(1) as usize;
    let (in_per_group, out_per_group) = (i.channels / groups, o.channels / groups);
    let (in_len, out_len) = (i.channels * i.height * i.width, o.channels * o.height * o.width);
    let out_plane = o.height * o.width;
    let zp = c.in_zero_point;
    for s in 0..c.batch {
        let x = |ch: usize, y: usize, xx: usize| c.x[s * in_len + (ch * i.height + y) * i.width + xx] as i32;
        if c.transposed {
            // Scatter: input (c, iy, ix) through tap (ky, kx) lands on (iy * s - pad + ky, ...).
            for ch in 0..i.channels {
                for iy in 0..i.height {
                    for ix in 0..i.width {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let oy = (iy * g.stride_h as usize + ky) as isize - g.pad_top as isize;
                                let ox = (ix * g.stride_w as usize + kx) as isize - g.pad_left as isize;
                                if oy < 0 || ox < 0 || oy as usize >= o.height || ox as usize >= o.width {
                                    continue;
                                }
                                for oc in 0..o.channels {
                                    let at = s * out_len + oc * out_plane + oy as usize * o.width + ox as usize;
                                    f(at, (oc, ch, ky, kx, x(ch, iy, ix).wrapping_sub(zp)));
                                }
                            }
                        }
                    }
                }
            }
        } else {
            for oc in 0..o.channels {
                let group = oc / out_per_group;
                for oy in 0..o.height {
                    for ox in 0..o.width {
                        let at = s * out_len + oc * out_plane + oy * o.width + ox;
                        for ch in 0..in_per_group {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * g.stride_h as usize + ky * g.dilation_h as usize) as isize
                                        - g.pad_top as isize;
                                    let ix = (ox * g.stride_w as usize + kx * g.dilation_w as usize) as isize
                                        - g.pad_left as isize;
                                    let inside =
                                        iy >= 0 && ix >= 0 && (iy as usize) < i.height && (ix as usize) < i.width;
                                    let v = if inside {
                                        x(group * in_per_group + ch, iy as usize, ix as usize)
                                    } else {
                                        zp
                                    };
                                    f(at, (oc, ch, ky, kx, v));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One int8 call of `f` on `p`, checked against `want` (the definition's outputs for the
/// samples that fit) and the contract: `n = p.samples(..)` samples written, nothing else.
fn conv_i8_call(
    (kernel, f, transposed): (&'static str, ConvI8Fn, bool),
    p: &ConvI8<'_>,
    x: &[i8],
    batch: usize,
    out_len: usize,
    want: &[i8],
    at: At,
) -> Result<(), Mismatch> {
    let (s_got, s_want) = i8::sentinels(at);
    let mut got = vec![s_got; out_len];
    f(p, x, batch, &mut got);
    let n = p.samples(transposed, x, batch, &got);
    let written = n * p.dims(transposed).map_or(0, |d| d.out_len);
    // Past the definition's outputs (a refused call that wrote anyway) the sentinel stays
    // expected, so the write shows as a mismatch.
    let expect: Vec<i8> =
        (0..out_len).map(|i| if i < written { want.get(i).copied().unwrap_or(s_want) } else { s_want }).collect();
    let rows = p.out_shape.channels;
    let cols = p.dims(transposed).map_or(0, |d| d.cols);
    Call { at, kernel, shape: (rows, cols, batch) }.check(&got, &expect, 0, 0..written, i8::same)
}

/// The int8 kernel of `k` for the case's direction.
fn int8_kernel(k: &Kernels, transposed: bool) -> (&'static str, ConvI8Fn, bool) {
    if transposed {
        ("conv_transpose_i8", k.conv_transpose_i8, true)
    } else {
        ("conv_i8", k.conv_i8, false)
    }
}

/// The float kernels this build carries for the case's direction: name, kernel, bytes per
/// weight.
fn float_kernels(k: &Kernels, transposed: bool) -> Vec<(&'static str, ConvFloatFn, usize)> {
    let mut v = Vec::new();
    if cfg!(feature = "f32") {
        v.push(if transposed { ("conv_transpose_f32", k.conv_transpose_f32, 4) } else { ("conv_f32", k.conv_f32, 4) });
    }
    if cfg!(feature = "f16") {
        v.push(if transposed { ("conv_transpose_f16", k.conv_transpose_f16, 2) } else { ("conv_f16", k.conv_f16, 2) });
    }
    v
}

/// Checks `k`'s int8 and float kernels for the case's direction on `c` (full slices, so every
/// sample is written). Float weights are `code / 128` (exact in f16 too), inputs `code / 32`,
/// biases `bias / 2^20`; padding reads 0 there.
///
/// Both weight layouts: the case's row-major arrays, and the tap-major ones the blob writer
/// makes from them ([`conv_layout::to_tap_major_i8`]), against the one definition.
pub fn check_conv_case(k: &Kernels, c: &ConvCase, family: &'static str, case: usize) -> Result<(), Mismatch> {
    let at = At { family, case };
    let out_len = c.batch * c.out_shape.elements().unwrap_or(0);
    let p = c.params();
    let want = c.expected();
    conv_i8_call(int8_kernel(k, c.transposed), &p, &c.x, c.batch, out_len + TAIL, &want, at)?;
    let d = p.dims(c.transposed).expect("a drawn case is valid");
    let arrays = c.tap_major_arrays();
    let tap_major = c.tap_major_params(&arrays);
    let family_tap = At { family: "conv tap-major", case };
    conv_i8_call(int8_kernel(k, c.transposed), &tap_major, &c.x, c.batch, out_len + TAIL, &want, family_tap)?;
    // Channels-last input, output or both: the same values in the other order.
    for (in_last, out_last) in [(true, false), (false, true), (true, true)] {
        let p = ConvI8 {
            in_shape: Shape { channels_last: in_last, ..c.in_shape },
            out_shape: Shape { channels_last: out_last, ..c.out_shape },
            ..tap_major
        };
        let x = relayout(&c.x, c.in_shape, p.in_shape, c.batch);
        let want = relayout(&want, c.out_shape, p.out_shape, c.batch);
        let at = At { family: "conv channels-last", case };
        conv_i8_call(int8_kernel(k, c.transposed), &p, &x, c.batch, out_len + TAIL, &want, at)?;
    }
    if float_kernels(k, c.transposed).is_empty() {
        return Ok(());
    }
    // Both activations, both weight layouts, and in the tap-major one (which direct kernels
    // take) every combination of channels-last input and output.
    for relu in [false, true] {
        let def = FloatDefinition::new(c, relu);
        for (kernel, f, weight_bytes) in float_kernels(k, c.transposed) {
            for layout in [WeightLayout::RowMajor, WeightLayout::TapMajor] {
                let weights = def.weights(c, &d, weight_bytes, layout);
                let orders: &[(bool, bool)] = match layout {
                    WeightLayout::TapMajor => &[(false, false), (true, false), (false, true), (true, true)],
                    WeightLayout::RowMajor => &[(false, false)],
                };
                for &(in_last, out_last) in orders {
                    let p = ConvFloat {
                        in_shape: Shape { channels_last: in_last, ..c.in_shape },
                        out_shape: Shape { channels_last: out_last, ..c.out_shape },
                        ..def.params(c, layout, &weights)
                    };
                    let x = relayout(&def.x, c.in_shape, p.in_shape, c.batch);
                    let value = relayout(&def.value, c.out_shape, p.out_shape, c.batch);
                    let magnitude = relayout(&def.magnitude, c.out_shape, p.out_shape, c.batch);
                    let call = (kernel, f, weight_bytes, c.transposed);
                    conv_float_call(call, &p, &x, c.batch, out_len + TAIL, (&value, &magnitude), at)?;
                }
            }
        }
    }
    Ok(())
}

/// A case's float form: weights `code / 128` (exact in f16 too), inputs `code / 32`, biases
/// `(o - 2) * 0.3`, padding reading 0; and the definition's outputs computed in f64 (after a
/// ReLU when `relu`) with the sums of the magnitudes of their terms, NCHW, sample-major.
struct FloatDefinition {
    x: Vec<f32>,
    bias: Vec<u8>,
    relu: bool,
    value: Vec<f64>,
    magnitude: Vec<f64>,
}

impl FloatDefinition {
    fn new(c: &ConvCase, relu: bool) -> Self {
        let out_len = c.batch * c.out_shape.elements().unwrap_or(0);
        // The same terms as values (padding now reads 0, the zero point 0).
        let float_case = ConvCase { in_zero_point: 0, ..c.clone() };
        let (rows, _) = c.rows_cols();
        let bias_f: Vec<f32> = (0..rows).map(|o| ((o as f32) - 2.0) * 0.3).collect();
        let plane = c.out_shape.height * c.out_shape.width;
        let mut value: Vec<f64> = (0..out_len).map(|at| bias_f[(at / plane) % rows] as f64).collect();
        let mut magnitude: Vec<f64> = value.iter().map(|v| v.abs()).collect();
        visit_definition(&float_case, |at, (o, ch, ky, kx, x)| {
            let term = c.weight(o, ch, ky, kx) as f64 / 128.0 * (x as f64 / 32.0);
            value[at] += term;
            magnitude[at] += term.abs();
        });
        if relu {
            value.iter_mut().for_each(|v| *v = v.max(0.0));
        }
        FloatDefinition {
            x: c.x.iter().map(|&v| v as f32 / 32.0).collect(),
            bias: bias_f.iter().flat_map(|b| b.to_le_bytes()).collect(),
            relu,
            value,
            magnitude,
        }
    }

    /// The case's weights as a blob of `weight_bytes`-byte floats stores them in `layout`.
    fn weights(&self, c: &ConvCase, d: &ConvDims, weight_bytes: usize, layout: WeightLayout) -> Vec<u8> {
        let weights = super::float_weights(&c.weights, weight_bytes == 2);
        match layout {
            WeightLayout::TapMajor => conv_layout::to_tap_major(d, c.transposed, weight_bytes, &weights),
            WeightLayout::RowMajor => weights,
        }
    }

    /// The kernel parameters (NCHW), borrowing `weights` from [`FloatDefinition::weights`].
    fn params<'a>(&'a self, c: &ConvCase, layout: WeightLayout, weights: &'a [u8]) -> ConvFloat<'a> {
        ConvFloat {
            geometry: c.geometry,
            layout,
            in_shape: c.in_shape,
            out_shape: c.out_shape,
            weights,
            bias: &self.bias,
            relu: self.relu,
        }
    }
}

/// One float call of `f` on `p`, checked against the definition's `(value, magnitude)` (in
/// `p`'s output layout) for the samples that fit, and the contract: `n = p.samples(..)`
/// samples written, nothing else. Written values lie within a few roundings per term of the
/// sum of magnitudes.
fn conv_float_call(
    (kernel, f, weight_bytes, transposed): (&'static str, ConvFloatFn, usize, bool),
    p: &ConvFloat<'_>,
    x: &[f32],
    batch: usize,
    out_len: usize,
    (value, magnitude): (&[f64], &[f64]),
    at: At,
) -> Result<(), Mismatch> {
    let (s_got, s_want) = f32::sentinels(at);
    let mut got = vec![s_got; out_len];
    f(p, x, batch, &mut got);
    let n = p.samples(transposed, weight_bytes, x, batch, &got);
    let dims = p.dims(transposed);
    let written = n * dims.map_or(0, |d| d.out_len);
    let want: Vec<f32> =
        (0..out_len).map(|i| if i < written { value.get(i).map_or(s_want, |&v| v as f32) } else { s_want }).collect();
    let cols = dims.map_or(0, |d| d.cols);
    let close = |i: usize, g: f32, w: f32| {
        g.same(w)
            || value
                .get(i)
                .zip(magnitude.get(i))
                .is_some_and(|(&v, &m)| (g as f64 - v).abs() <= 1e-6 * (cols as f64 + 1.0) * m + 1e-30)
    };
    let call = Call { at, kernel, shape: (p.out_shape.channels, cols, batch) };
    call.check_indexed(&got, &want, 0, 0..written, close)
}

/// `cases` random convolutions and as many transposed ones, then a grid over every kernel
/// size 1 to 5, stride 1 to 3 and a spread of paddings (odd ones included), in both
/// directions, with dilation 2 for convolutions, at batches 1 and 3; then that grid for
/// transposed convolutions with 4, 8 and 12 input channels.
pub fn check_conv(k: &Kernels, cases: usize, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0xC0217);
    let mut case = 0;
    for _ in 0..cases {
        for transposed in [false, true] {
            let c = ConvCase::random(&mut rng, transposed);
            check_conv_case(k, &c, "conv random", case)?;
            case += 1;
        }
    }
    for kernel in 1..=5u8 {
        for stride in 1..=3u8 {
            for pad in [0, 1, kernel / 2, kernel - 1, kernel] {
                for (transposed, dilation) in [(false, 1), (false, 2), (true, 1)] {
                    let geometry = ConvGeometry {
                        dilation_h: dilation,
                        dilation_w: dilation,
                        ..ConvGeometry::square(kernel, stride, pad)
                    };
                    let batch = [1, 3][case % 2];
                    let c = ConvCase::with_geometry(&mut rng, transposed, geometry, batch);
                    check_conv_case(k, &c, "conv grid", case)?;
                    case += 1;
                }
            }
        }
    }
    // Transposed convolutions whose input channels fill words (4, 8 and 12: the ones direct
    // kernels take, such as the Cortex-M DSP one, which groups output pixels by the taps that
    // reach the input), on the same grid, with 1, 3 and 34 output channels (one channel, a
    // short tile, and more than a 32-channel tile).
    for kernel in 1..=5u8 {
        for stride in 1..=3u8 {
            for pad in [0, 1, kernel / 2, kernel - 1, kernel] {
                let geometry = ConvGeometry::square(kernel, stride, pad);
                let shape = ConvCase::with_geometry(&mut rng, true, geometry, 1);
                let channels = 4 * (1 + case % 3);
                let rows = [1, 3, 34][case % 3];
                let (i, o) = (shape.in_shape, shape.out_shape);
                let c = ConvCase::with_shapes(
                    &mut rng,
                    true,
                    geometry,
                    ([channels, i.height, i.width], [rows, o.height, o.width]),
                    [1, 3][case % 2],
                );
                check_conv_case(k, &c, "conv transposed grid, word-filling channels", case)?;
                case += 1;
            }
        }
    }
    Ok(case)
}

/// Layers of the sizes real models have, which the small random cases do not reach: the conv
/// VAE decoder's two transposed convolutions (64x7x7 -> 32x14x14 -> 1x28x28, kernel 4, stride
/// 2, padding 1) and its encoder's convolutions, a depthwise layer, and a few wide inputs that
/// make optimized kernels slide their input window and split pixels over several calls.
pub fn check_conv_large(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x1A46E);
    // (transposed, geometry, in [C, H, W], out [C, H, W], groups)
    type Layer = (bool, ConvGeometry, [usize; 3], [usize; 3], usize);
    let layers: [Layer; 14] = [
        (true, ConvGeometry::square(4, 2, 1), [64, 7, 7], [32, 14, 14], 1),
        (true, ConvGeometry::square(4, 2, 1), [32, 14, 14], [1, 28, 28], 1),
        // Transposed ones around the direct kernels' cases: 16, 17 and 48 output channels
        // (lane blocks pulled back, a pair and a single), rows of 9 and more pixels, strides 1
        // to 3; one output channel with patch rows of a vector and a tail, of 4 vectors, and
        // of more (which go to the generic driver).
        (true, ConvGeometry::square(3, 1, 1), [8, 5, 6], [16, 5, 6], 1),
        (true, ConvGeometry::square(4, 2, 1), [12, 6, 5], [17, 12, 10], 1),
        (true, ConvGeometry::square(5, 3, 2), [4, 4, 7], [48, 10, 19], 1),
        (true, ConvGeometry::square(3, 2, 1), [40, 5, 7], [1, 9, 13], 1),
        (true, ConvGeometry::square(4, 1, 0), [64, 3, 4], [1, 6, 7], 1),
        // 32 input channels (turned by permutes, 16 pixels at a time) over rows of 21 pixels.
        (true, ConvGeometry::square(4, 2, 1), [32, 3, 21], [1, 6, 42], 1),
        (true, ConvGeometry::square(5, 1, 2), [60, 3, 3], [1, 3, 3], 1),
        (false, ConvGeometry::square(4, 2, 1), [1, 28, 28], [32, 14, 14], 1),
        (false, ConvGeometry::square(4, 2, 1), [32, 14, 14], [64, 7, 7], 1),
        (false, ConvGeometry::square(3, 1, 1), [48, 24, 24], [20, 24, 24], 1),
        (false, ConvGeometry::square(3, 2, 1), [40, 21, 19], [40, 11, 10], 40),
        (true, ConvGeometry::square(3, 3, 0), [72, 10, 9], [5, 30, 27], 1),
    ];
    for (case, (transposed, mut geometry, i, o, groups)) in layers.into_iter().enumerate() {
        geometry.groups = groups as u16;
        let mut c = ConvCase::with_shapes(&mut rng, transposed, geometry, (i, o), 1 + case % 2);
        check_conv_case(k, &c, "conv large", case)?;
        // Again after a ReLU (input zero point -128), whose border taps kernels may skip.
        if transposed {
            c.in_zero_point = -128;
            check_conv_case(k, &c, "conv large, input zero point -128", case)?;
        }
    }
    Ok(layers.len())
}

/// Convolution calls whose slices do not match their shapes, and geometries the contract
/// refuses: every parameter array short by one byte, zero kernel sizes, strides and
/// dilations, groups that do not divide the channels, a transposed convolution with two groups
/// or dilation 2, extents past a blob's, must write nothing; short and long inputs and outputs
/// and batches larger than the slices give exactly the whole samples that fit.
pub fn check_conv_short_slices(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x5C0);
    let mut case = 0;
    // Random layers, then transposed ones of the shapes direct kernels take (many output
    // channels with a pulled-back lane block, one output channel, and the conv VAE decoder's
    // two layers), each in every order of channels below.
    let fixed: [([usize; 3], [usize; 3]); 4] =
        [([8, 3, 4], [17, 6, 8]), ([12, 4, 3], [1, 8, 6]), ([64, 7, 7], [32, 14, 14]), ([32, 14, 14], [1, 28, 28])];
    for round in 0..12 + 4 * fixed.len() {
        let c = match round {
            0..12 => ConvCase::random(&mut rng, round % 2 == 1),
            _ => ConvCase::with_shapes(&mut rng, true, ConvGeometry::square(4, 2, 1), fixed[round % 4], 2),
        };
        let transposed = c.transposed;
        let want = c.expected();
        let full = c.params();
        let d = full.dims(transposed).expect("a drawn case is valid");
        let (rows, in_len, out_len) = (d.rows, d.in_len, d.out_len);
        let r = 4 * rows;
        let g = c.geometry;
        let nothing: [ConvI8<'_>; 13] = [
            ConvI8 { weights: &c.weights[..c.weights.len() - 1], ..full },
            ConvI8 { bias: &c.bias[..r - 1], ..full },
            ConvI8 { multipliers: &full.multipliers[..r - 1], ..full },
            ConvI8 { shifts: &[], ..full },
            ConvI8 { weight_sums: &full.weight_sums[..r - 1], ..full },
            ConvI8 { geometry: ConvGeometry { kh: 0, ..g }, ..full },
            ConvI8 { geometry: ConvGeometry { stride_w: 0, ..g }, ..full },
            ConvI8 { geometry: ConvGeometry { dilation_h: 0, ..g }, ..full },
            ConvI8 { geometry: ConvGeometry { groups: 0, ..g }, ..full },
            ConvI8 { geometry: ConvGeometry { groups: 1 + c.in_shape.channels as u16, ..g }, ..full },
            ConvI8 {
                geometry: ConvGeometry { groups: 2, dilation_h: 2, ..g },
                in_shape: Shape { channels: 2 * c.in_shape.channels, ..c.in_shape },
                out_shape: Shape { channels: 2 * rows, ..c.out_shape },
                ..full
            },
            ConvI8 { in_shape: Shape { height: 70_000, ..c.in_shape }, ..full },
            ConvI8 { out_shape: Shape { channels: usize::MAX, ..c.out_shape }, ..full },
        ];
        for p in &nothing {
            let at = At { family: "conv short slices", case };
            // A transposed convolution refuses two groups and dilation 2 (the 11th case); a
            // convolution with them is a different, valid layer, so it is not tried there.
            if !transposed && p.geometry.groups == 2 && p.geometry.dilation_h == 2 {
                continue;
            }
            conv_i8_call(int8_kernel(k, transposed), p, &c.x, c.batch, c.batch * out_len + TAIL, &[], at)?;
            case += 1;
        }
        let x = c.x.len();
        let out = c.batch * out_len;
        let calls = [
            (x - 1, out, c.batch),
            (x - in_len, out, c.batch),
            (0, out, c.batch),
            (x, out - 1, c.batch),
            (x, 0, c.batch),
            (x, out + out_len + TAIL, c.batch),
            (x, out, c.batch + 1 + rng.below(3) as usize),
            (x, out, usize::MAX),
            (x, out, 0),
        ];
        for &(xn, on, claimed) in &calls {
            let at = At { family: "conv short slices", case };
            let mut padded = want.clone();
            padded.resize(on.max(want.len()), 0);
            conv_i8_call(int8_kernel(k, transposed), &full, &c.x[..xn], claimed, on, &padded, at)?;
            case += 1;
        }
        // The same for the float kernels, tap-major (what direct kernels take), in each order
        // of channels in turn.
        let (in_last, out_last) = [(false, false), (true, true), (true, false), (false, true)][round / 4 % 4];
        let def = FloatDefinition::new(&c, round % 3 == 0);
        for (kernel, f, weight_bytes) in float_kernels(k, transposed) {
            let weights = def.weights(&c, &d, weight_bytes, WeightLayout::TapMajor);
            let full = ConvFloat {
                in_shape: Shape { channels_last: in_last, ..c.in_shape },
                out_shape: Shape { channels_last: out_last, ..c.out_shape },
                ..def.params(&c, WeightLayout::TapMajor, &weights)
            };
            let xf = relayout(&def.x, c.in_shape, full.in_shape, c.batch);
            let value = relayout(&def.value, c.out_shape, full.out_shape, c.batch);
            let magnitude = relayout(&def.magnitude, c.out_shape, full.out_shape, c.batch);
            let call = (kernel, f, weight_bytes, transposed);
            let nothing: [ConvFloat<'_>; 4] = [
                ConvFloat { weights: &weights[..weights.len() - 1], ..full },
                ConvFloat { bias: &def.bias[..r - 1], ..full },
                ConvFloat { geometry: ConvGeometry { kh: 0, ..g }, ..full },
                ConvFloat { out_shape: Shape { channels: usize::MAX, ..full.out_shape }, ..full },
            ];
            for p in &nothing {
                let at = At { family: "conv float short slices", case };
                conv_float_call(call, p, &xf, c.batch, c.batch * out_len + TAIL, (&[], &[]), at)?;
                case += 1;
            }
            for &(xn, on, claimed) in &calls {
                let at = At { family: "conv float short slices", case };
                conv_float_call(call, &full, &xf[..xn], claimed, on, (&value, &magnitude), at)?;
                case += 1;
            }
        }
    }
    Ok(case)
}

/// Upsampling of int8 codes and f32 values: every factor 1 to 3 on both axes over random
/// shapes and batches, with short slices (whole samples only) and zero factors (nothing).
pub fn check_upsample(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x0B5);
    let mut case = 0;
    for fh in 0..=3 {
        for fw in 0..=3 {
            for round in 0..4 {
                let in_shape =
                    Shape::new(1 + rng.below(3) as usize, 1 + rng.below(5) as usize, 1 + rng.below(5) as usize);
                let p = Upsample { in_shape, factor_h: fh, factor_w: fw };
                let batch = 1 + rng.below(3) as usize;
                let in_len = in_shape.elements().unwrap_or(0);
                let x: Vec<i8> = (0..batch * in_len).map(|_| rng.next_u64() as i8).collect();
                let xf: Vec<f32> = x.iter().map(|&v| v as f32 * 0.37 - 1.5).collect();
                let out_len = batch * in_len * fh * fw;
                let (xn, on) = match round {
                    0 => (x.len(), out_len + TAIL),
                    1 => (x.len().saturating_sub(1), out_len + TAIL),
                    2 => (x.len(), out_len.saturating_sub(1)),
                    _ => (x.len(), out_len),
                };
                let at = At { family: "upsample", case };
                let written = p.samples(xn, batch, on) * in_len * fh * fw;
                // The definition: y[c][oy][ox] = x[c][oy / fh][ox / fw], sample by sample.
                let (w, oh, ow) = (in_shape.width, in_shape.height * fh, in_shape.width * fw);
                let source = |i: usize| {
                    let (s, rest) = (i / (in_len * fh * fw).max(1), i % (in_len * fh * fw).max(1));
                    let (ch, oy, ox) = (rest / (oh * ow), (rest / ow.max(1)) % oh.max(1), rest % ow.max(1));
                    s * in_len + (ch * in_shape.height + oy / fh.max(1)) * w + ox / fw.max(1)
                };
                let shape = (in_shape.channels, in_len, batch);
                let (s_got, s_want) = i8::sentinels(at);
                let mut got = vec![s_got; on];
                (k.upsample_i8)(&p, &x[..xn], batch, &mut got);
                let want: Vec<i8> = (0..on).map(|i| if i < written { x[source(i)] } else { s_want }).collect();
                Call { at, kernel: "upsample_i8", shape }.check(&got, &want, 0, 0..written, i8::same)?;
                let (s_got, s_want) = f32::sentinels(at);
                let mut got = vec![s_got; on];
                (k.upsample_f32)(&p, &xf[..xn], batch, &mut got);
                let want: Vec<f32> = (0..on).map(|i| if i < written { xf[source(i)] } else { s_want }).collect();
                Call { at, kernel: "upsample_f32", shape }.check(&got, &want, 0, 0..written, f32::same)?;
                case += 1;
            }
        }
    }
    Ok(case)
}

/// Additions: int8 with parameters as the quantizer makes them (zero points across the range,
/// ReLU and narrow clamps) and arbitrary ones, f32 with and without ReLU, over lengths 0 to
/// 70 with each of the three slices the shortest in turn.
pub fn check_add(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0xADD);
    let mut case = 0;
    for n in 0..=70usize {
        let scale = |rng: &mut Rng| 0.002 + rng.uniform() as f64 * 0.1;
        let (s_a, s_b, s_out) = (scale(&mut rng), scale(&mut rng), scale(&mut rng) * 1.5);
        let shared = 2.0 * s_a.max(s_b);
        let real = [s_a / shared, s_b / shared, shared / ((1u64 << 20) as f64 * s_out)];
        let mut multipliers = [0; 3];
        let mut shifts = [0; 3];
        for (j, r) in real.iter().enumerate() {
            (multipliers[j], shifts[j]) = quantize_multiplier(*r).unwrap_or((1 << 30, 0));
            if n % 7 == 6 {
                (multipliers[j], shifts[j]) = (rng.next_u64() as i32, rng.below(80) as i32 - 40);
            }
        }
        let zero_points = [draw_zero_point(&mut rng), draw_zero_point(&mut rng), draw_zero_point(&mut rng)];
        let (act_min, act_max) = match n % 3 {
            0 => (-128, 127),
            1 => (zero_points[2] as i8, 127),
            _ => (-20, 30),
        };
        let p = AddI8 { zero_points, multipliers, shifts, act_min, act_max };
        let a: Vec<i8> = (0..n + 2).map(|_| rng.next_u64() as i8).collect();
        let b: Vec<i8> = (0..n + 2).map(|_| rng.next_u64() as i8).collect();
        let af: Vec<f32> = a.iter().map(|&v| v as f32 * 0.25 + 0.125).collect();
        let bf: Vec<f32> = b.iter().map(|&v| v as f32 * -0.5).collect();
        let (an, bn, on) = [(n, n + 2, n + TAIL), (n + 2, n, n + TAIL), (n + 2, n + 1, n)][n % 3];
        let written = an.min(bn).min(on);
        let at = At { family: "add", case };
        let (s_got, s_want) = i8::sentinels(at);
        let mut got = vec![s_got; on];
        (k.add_i8)(&p, &a[..an], &b[..bn], &mut got);
        let want: Vec<i8> = (0..on)
            .map(|i| {
                if i < written {
                    crate::quant::add_i8(a[i], b[i], zero_points, multipliers, shifts, act_min, act_max)
                } else {
                    s_want
                }
            })
            .collect();
        Call { at, kernel: "add_i8", shape: (0, n, 1) }.check(&got, &want, 0, 0..written, i8::same)?;
        if cfg!(any(feature = "f32", feature = "f16")) {
            let relu = n % 2 == 0;
            let (s_got, s_want) = f32::sentinels(at);
            let mut got = vec![s_got; on];
            (k.add_f32)(relu, &af[..an], &bf[..bn], &mut got);
            let want: Vec<f32> = (0..on)
                .map(|i| match i < written {
                    false => s_want,
                    true if relu && af[i] + bf[i] < 0.0 => 0.0,
                    true => af[i] + bf[i],
                })
                .collect();
            Call { at, kernel: "add_f32", shape: (0, n, 1) }.check(&got, &want, 0, 0..written, f32::same)?;
        }
        case += 1;
    }
    Ok(case)
}
