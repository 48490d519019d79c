//! The kernel interface: one table of function pointers per implementation, and the contract
//! every implementation keeps.
//!
//! [`REFERENCE`] (scalar, in `reference/`) defines every result. Optimized tables (SIMD, DSP)
//! replace entries of it and must give the reference's int8 bytes exactly. The generic suite,
//! `kernels::suite` (feature `alloc`), checks a table against the reference and against the
//! contract below, and every architecture instantiates it: the unit tests on the host,
//! `tests/x86_64_kernels.rs`, `tests/aarch64_kernels.rs` under QEMU, and the Cortex-M test
//! program (`tests/cortex-m`).
//!
//! # The contract
//!
//! The blob parser checks every shape before a kernel sees it, but kernels are safe functions
//! that anyone may call with anything. So whatever the arguments, a kernel never panics, never
//! fails, allocates nothing, and reads and writes only inside its slices. What it writes:
//!
//! - **Batched kernels** (`dense_i8`, `dense_f16`, `dense_f32`) compute
//!   `n = min(batch, x.len() / cols, out.len() / rows)` whole samples: sample `b < n` reads
//!   `x[b * cols..(b + 1) * cols]` and writes `out[b * rows..(b + 1) * rows]`. A short `x` or
//!   `out` shortens the batch to the whole samples it holds, as zipping them would; an `out`
//!   shorter than `rows` gets nothing.
//! - **A layer whose parameters do not hold its shape writes nothing**: a Dense layout other
//!   than row-major (tap-major is for convolutions), `rows` or `cols` zero,
//!   a size that overflows `usize`, `weights` shorter than `rows * cols` weights, or `bias`,
//!   `multipliers`, `shifts` or `weight_sums` shorter than `rows` entries. Some rows computed
//!   with a made-up bias would look like an answer without being one. [`DenseI8::samples`] and
//!   [`DenseFloat::samples`] give `n` (0 in these cases): every batched kernel starts with
//!   them, and their `n` is also the bound its pointer arithmetic relies on.
//! - **Convolutions and upsampling** (`conv_*`, `conv_transpose_*`, `upsample_*`) are batched
//!   the same way, with a sample's `cols` and `rows` replaced by the elements of its input and
//!   output shapes; a geometry or shape that [`ConvDims::new`] (or [`Upsample::dims`]) refuses,
//!   or a parameter array too short for it, writes nothing.
//! - **Elementwise kernels** (`lut_i8`, `activation_f32`, `quantize_i8`, `pixels_f32`) map
//!   `min(x.len(), out.len())` elements; the additions (`add_i8`, `add_f32`)
//!   `min(a.len(), b.len(), out.len())`. `lut_i8` with a table shorter than 256 bytes writes
//!   nothing, as a Dense layer with a short parameter does.
//! - **Every other element of `out` keeps its value**: no kernel uses its output as scratch.
//!
//! And the values: int8 results (`dense_i8`, `conv_i8`, `conv_transpose_i8`, `upsample_i8`,
//! `add_i8`, `lut_i8`, `quantize_i8`), `upsample_f32`, `add_f32`, `activation_f32`,
//! `pixels_f32` and `weight_stream` are the reference's, bit for bit. For `dense_i8` that holds
//! for any parameter values, also those no valid blob holds (shifts outside `-31..=30`, negative
//! multipliers, zero points outside int8, an empty clamp range), with one exception: a weight of
//! -128, which the format forbids, may give other bytes (x86 `vpmaddubsw` and the NEON kernel
//! sum products in int16 pairs, which only stay exact without it). Float Dense and float
//! convolutions may differ from the reference by rounding, as their summation orders do; the
//! suite bounds the difference.
//! In builds without the `f32` and `f16` features no blob that needs the float kernels parses,
//! and the reference leaves them empty to save flash; their results there are not part of the
//! contract (the suite checks them only in builds that carry them).

pub mod conv_layout;
pub mod patches;
pub mod reference;
pub mod suite;
pub mod taps;

use crate::format::{ActKind, ConvGeometry, WeightLayout};
pub use taps::{Axis, Taps};

/// An int8 Dense layer (integer-only), borrowed from the blob.
///
/// `acc = bias[o] + sum_k w[o][k] * x[k]`, then [`crate::quant::requantize`]. The input zero
/// point is folded into `bias` at quantize time (`bias[o] -= zp_in * sum_k w[o][k]`), so the
/// inner loop is a plain int8 dot product.
#[derive(Debug, Clone, Copy)]
pub struct DenseI8<'a> {
    /// Output channels.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Weight layout.
    pub layout: WeightLayout,
    /// `rows * cols` int8 weights, as bytes.
    pub weights: &'a [u8],
    /// `rows` little-endian int32 biases with the input zero point folded in.
    pub bias: &'a [u8],
    /// `rows` little-endian int32 fixed-point multipliers.
    pub multipliers: &'a [u8],
    /// `rows` little-endian int32 shifts.
    pub shifts: &'a [u8],
    /// `rows` little-endian int32 sums of each row's weights: lets kernels whose instructions
    /// take one unsigned operand (x86 `vpdpbusd`, AVX2 `vpmaddubsw`) feed `x + 128` and
    /// subtract `128 * sum`.
    pub weight_sums: &'a [u8],
    /// Output zero point.
    pub out_zero_point: i32,
    /// Lower clamp (the output zero point when ReLU is folded in).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// A float Dense layer with f32 or f16 weights and f32 accumulation.
#[derive(Debug, Clone, Copy)]
pub struct DenseFloat<'a> {
    /// Output channels.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// `rows * cols` little-endian weights (f32 or f16, by the kernel).
    pub weights: &'a [u8],
    /// `rows` little-endian f32 biases.
    pub bias: &'a [u8],
    /// Apply ReLU to the output.
    pub relu: bool,
}

impl DenseI8<'_> {
    /// The number of whole samples a call with these slices computes under the
    /// [contract](crate::kernels#the-contract): `min(batch, x.len() / cols, out.len() / rows)`, or 0 when
    /// the layer's parameters do not hold its shape. When it is `n > 0`, `weights` holds
    /// `rows * cols` bytes, every parameter array `4 * rows` bytes, `x` at least `n * cols`
    /// values and `out` at least `n * rows`.
    pub fn samples(&self, x: &[i8], batch: usize, out: &[i8]) -> usize {
        // A new layout would change what `weights` must hold: this match makes it come here.
        if self.layout != WeightLayout::RowMajor {
            return 0;
        }
        let (Some(weights), Some(channel_bytes)) = (self.rows.checked_mul(self.cols), self.rows.checked_mul(4)) else {
            return 0;
        };
        let holds_rows = |a: &[u8]| a.len() >= channel_bytes;
        let layer_fits = self.rows > 0
            && self.cols > 0
            && self.weights.len() >= weights
            && holds_rows(self.bias)
            && holds_rows(self.multipliers)
            && holds_rows(self.shifts)
            && holds_rows(self.weight_sums);
        if !layer_fits {
            return 0;
        }
        batch.min(x.len() / self.cols).min(out.len() / self.rows)
    }
}

impl DenseFloat<'_> {
    /// As [`DenseI8::samples`], for weights of `weight_bytes` bytes each (4 for f32, 2 for
    /// f16): when it is `n > 0`, `weights` holds `rows * cols * weight_bytes` bytes, `bias`
    /// `4 * rows`, `x` at least `n * cols` values and `out` at least `n * rows`.
    pub fn samples(&self, weight_bytes: usize, x: &[f32], batch: usize, out: &[f32]) -> usize {
        let weights = self.rows.checked_mul(self.cols).and_then(|n| n.checked_mul(weight_bytes));
        let (Some(weights), Some(bias)) = (weights, self.rows.checked_mul(4)) else {
            return 0;
        };
        let layer_fits = self.rows > 0 && self.cols > 0 && self.weights.len() >= weights && self.bias.len() >= bias;
        if !layer_fits {
            return 0;
        }
        batch.min(x.len() / self.cols).min(out.len() / self.rows)
    }
}

/// The per-sample shape of an activation: `channels` planes of `height` rows of `width` values.
/// Stored NCHW (channel-major, row-major inside a channel: format version 2), or, for a tensor
/// that only convolutions read and write, channels-last (NHWC: a pixel's channels together),
/// which the runtime chooses by itself (see `Model::channels_last`): it saves a convolution
/// writing its results back to planes, and the next one transposing them to pixels again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Channels.
    pub channels: usize,
    /// Rows per channel.
    pub height: usize,
    /// Values per row.
    pub width: usize,
    /// Stored NHWC rather than NCHW.
    pub channels_last: bool,
}

impl Shape {
    /// `[channels, height, width]`, NCHW.
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Shape { channels, height, width, channels_last: false }
    }

    /// Where element `(c, y, x)` of one sample sits: `(c * H + y) * W + x`, or
    /// `(y * W + x) * C + c` when channels-last.
    #[inline]
    pub fn index(&self, c: usize, y: usize, x: usize) -> usize {
        if self.channels_last {
            (y * self.width + x) * self.channels + c
        } else {
            (c * self.height + y) * self.width + x
        }
    }

    /// Elements of one sample, `None` when it overflows `usize`.
    pub fn elements(&self) -> Option<usize> {
        self.channels.checked_mul(self.height)?.checked_mul(self.width)
    }
}

/// The sizes a convolution's geometry and shapes imply, checked once: what [`ConvI8::samples`],
/// [`ConvFloat::samples`], the blob parser and the MAC count all rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Output channels: weight rows.
    pub rows: usize,
    /// Weights per output channel: `in_channels_per_group * kh * kw`.
    pub cols: usize,
    /// Groups (1 for a transposed convolution).
    pub groups: usize,
    /// Input channels each output channel reads.
    pub in_channels_per_group: usize,
    /// Output channels per group.
    pub out_channels_per_group: usize,
    /// Kernel height and width.
    pub kh: usize,
    /// See `kh`.
    pub kw: usize,
    /// Input elements per sample.
    pub in_len: usize,
    /// Output elements per sample.
    pub out_len: usize,
    /// The vertical axis: input height to output height.
    pub h: Axis,
    /// The horizontal axis.
    pub w: Axis,
}

impl ConvDims {
    /// Checks a convolution (`transposed`: a transposed one) from `input` to `output`: kernel
    /// sizes, strides and dilations at least 1, groups at least 1 and dividing both channel
    /// counts, every extent within [`taps::MAX_EXTENT`], and every size within `usize`; a
    /// transposed convolution also takes one group and dilation 1. `None` otherwise.
    pub fn new(geometry: &ConvGeometry, input: Shape, output: Shape, transposed: bool) -> Option<Self> {
        let g = geometry;
        let groups = g.groups as usize;
        if groups == 0
            || !input.channels.is_multiple_of(groups)
            || !output.channels.is_multiple_of(groups)
            || output.channels == 0
        {
            return None;
        }
        if transposed && (groups != 1 || g.dilation_h != 1 || g.dilation_w != 1) {
            return None;
        }
        let (kh, kw) = (g.kh as usize, g.kw as usize);
        let h =
            Axis::new(input.height, output.height, kh, g.stride_h as usize, g.dilation_h as usize, g.pad_top as usize)?;
        let w =
            Axis::new(input.width, output.width, kw, g.stride_w as usize, g.dilation_w as usize, g.pad_left as usize)?;
        let in_channels_per_group = input.channels / groups;
        let cols = in_channels_per_group.checked_mul(kh)?.checked_mul(kw)?;
        if cols == 0 {
            return None;
        }
        output.channels.checked_mul(cols)?;
        Some(ConvDims {
            rows: output.channels,
            cols,
            groups,
            in_channels_per_group,
            out_channels_per_group: output.channels / groups,
            kh,
            kw,
            in_len: input.elements()?,
            out_len: output.elements()?,
            h,
            w,
        })
    }

    /// Multiply-accumulates per sample: taps that reach the input only (a padded position of
    /// a convolution, an inserted zero of a transposed one, is not an operation), saturating.
    pub fn macs(&self, transposed: bool) -> u64 {
        (self.rows as u64)
            .saturating_mul(self.in_channels_per_group as u64)
            .saturating_mul(self.h.total_taps(transposed))
            .saturating_mul(self.w.total_taps(transposed))
    }

    /// `min(batch, x_len / in_len, out_len / out_len)`: the whole samples that fit.
    fn fit(&self, x_len: usize, batch: usize, out_len: usize) -> usize {
        batch.min(x_len / self.in_len).min(out_len / self.out_len)
    }
}

/// An int8 convolution (`conv_i8`) or transposed convolution (`conv_transpose_i8`), borrowed
/// from the blob: integer-only, with the Dense conventions.
///
/// Convolution: `acc = bias[o] + sum W[o][c][ky][kx] * x[...]` over every tap, a tap outside
/// the input reading the input zero point (real 0); `bias` holds the input zero point folded
/// in as for Dense (`- zp_in * sum_k W[o][k]`), which is exact because padding reads `zp_in`.
/// Transposed convolution, row-major: `acc = bias[o] + sum W * (x - zp_in)` over the valid taps
/// only (the bias does not fold the zero point: the taps per output vary); tap-major: `acc =
/// bias[phase][o] + sum W * x'` over every tap of the output's phase, `x'` the input zero point
/// where the tap falls outside the input, the phase's bias folding `-zp_in * sum` of the phase's
/// weights (the same integer as the row-major form when the biases are made that way). Then
/// [`crate::quant::requantize`].
#[derive(Debug, Clone, Copy)]
pub struct ConvI8<'a> {
    /// Kernel, strides, dilations, padding, groups.
    pub geometry: ConvGeometry,
    /// Where each weight sits, and whether biases and weight sums are per phase
    /// ([`conv_layout`]).
    pub layout: WeightLayout,
    /// Input shape `[C_in, H, W]`.
    pub in_shape: Shape,
    /// Output shape `[C_out, OH, OW]`.
    pub out_shape: Shape,
    /// `rows * cols` int8 weights in `layout`.
    pub weights: &'a [u8],
    /// `rows * phases` little-endian int32 biases (`phases`: [`ConvDims::phases`]).
    pub bias: &'a [u8],
    /// `rows` little-endian int32 fixed-point multipliers.
    pub multipliers: &'a [u8],
    /// `rows` little-endian int32 shifts.
    pub shifts: &'a [u8],
    /// `rows * phases` little-endian int32 sums of each row's weights (of each phase's row,
    /// for kernels that need them, as [`DenseI8::weight_sums`]).
    pub weight_sums: &'a [u8],
    /// Input zero point: the code that padding reads (convolution), subtracted from every
    /// input (transposed convolution).
    pub in_zero_point: i32,
    /// Output zero point.
    pub out_zero_point: i32,
    /// Lower clamp (the output zero point when ReLU is folded in).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

impl ConvI8<'_> {
    /// The checked sizes of this layer (see [`ConvDims::new`]).
    pub fn dims(&self, transposed: bool) -> Option<ConvDims> {
        ConvDims::new(&self.geometry, self.in_shape, self.out_shape, transposed)
    }

    /// The number of whole samples a call computes under the
    /// [contract](crate::kernels#the-contract), as [`DenseI8::samples`]: 0 unless the dims
    /// check, `weights` holds `rows * cols` bytes and every parameter array `4 * rows`.
    pub fn samples(&self, transposed: bool, x: &[i8], batch: usize, out: &[i8]) -> usize {
        let Some(d) = self.dims(transposed) else {
            return 0;
        };
        let phases = d.phases(transposed, self.layout);
        let (Some(channel_bytes), Some(phase_bytes)) =
            (d.rows.checked_mul(4), d.rows.checked_mul(4).and_then(|b| b.checked_mul(phases)))
        else {
            return 0;
        };
        let fits = self.weights.len() >= d.rows * d.cols
            && self.bias.len() >= phase_bytes
            && self.multipliers.len() >= channel_bytes
            && self.shifts.len() >= channel_bytes
            && self.weight_sums.len() >= phase_bytes;
        if fits {
            d.fit(x.len(), batch, out.len())
        } else {
            0
        }
    }
}

/// A float convolution or transposed convolution with f32 or f16 weights, f32 bias,
/// activations and accumulation; padding reads 0.
#[derive(Debug, Clone, Copy)]
pub struct ConvFloat<'a> {
    /// Kernel, strides, dilations, padding, groups.
    pub geometry: ConvGeometry,
    /// Where each weight sits ([`conv_layout`]; float biases are never per phase).
    pub layout: WeightLayout,
    /// Input shape `[C_in, H, W]`.
    pub in_shape: Shape,
    /// Output shape `[C_out, OH, OW]`.
    pub out_shape: Shape,
    /// `rows * cols` little-endian weights (f32 or f16, by the kernel).
    pub weights: &'a [u8],
    /// `rows` little-endian f32 biases.
    pub bias: &'a [u8],
    /// Apply ReLU to the output.
    pub relu: bool,
}

impl ConvFloat<'_> {
    /// The checked sizes of this layer (see [`ConvDims::new`]).
    pub fn dims(&self, transposed: bool) -> Option<ConvDims> {
        ConvDims::new(&self.geometry, self.in_shape, self.out_shape, transposed)
    }

    /// As [`ConvI8::samples`], for weights of `weight_bytes` bytes each.
    pub fn samples(&self, transposed: bool, weight_bytes: usize, x: &[f32], batch: usize, out: &[f32]) -> usize {
        let Some(d) = self.dims(transposed) else {
            return 0;
        };
        let weights = (d.rows * d.cols).checked_mul(weight_bytes);
        let (Some(weights), Some(bias)) = (weights, d.rows.checked_mul(4)) else {
            return 0;
        };
        if self.weights.len() >= weights && self.bias.len() >= bias {
            d.fit(x.len(), batch, out.len())
        } else {
            0
        }
    }
}

/// Nearest-neighbour upsampling by integer factors: `y[c][oy][ox] = x[c][oy / factor_h][ox /
/// factor_w]`, from `[C, H, W]` to `[C, H * factor_h, W * factor_w]`. The same for int8 codes
/// (input and output share their quantization) and f32 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upsample {
    /// Input shape.
    pub in_shape: Shape,
    /// Vertical factor (at least 1).
    pub factor_h: usize,
    /// Horizontal factor (at least 1).
    pub factor_w: usize,
}

impl Upsample {
    /// The output shape and the input and output elements per sample; `None` for a zero
    /// factor or extent, or a size past `usize`.
    pub fn dims(&self) -> Option<(Shape, usize, usize)> {
        let i = self.in_shape;
        if self.factor_h == 0 || self.factor_w == 0 || i.channels == 0 || i.height == 0 || i.width == 0 {
            return None;
        }
        let out = Shape::new(i.channels, i.height.checked_mul(self.factor_h)?, i.width.checked_mul(self.factor_w)?);
        Some((out, i.elements()?, out.elements()?))
    }

    /// The whole samples a call computes, as [`DenseI8::samples`].
    pub fn samples(&self, x_len: usize, batch: usize, out_len: usize) -> usize {
        match self.dims() {
            Some((_, in_len, o_len)) => batch.min(x_len / in_len).min(out_len / o_len),
            None => 0,
        }
    }
}

/// An int8 residual addition: [`crate::quant::add_i8`] elementwise. Arrays are indexed
/// `[a, b, out]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddI8 {
    /// Zero points of `a`, `b` and the output.
    pub zero_points: [i32; 3],
    /// Fixed-point multipliers rescaling `a`, `b` and the sum.
    pub multipliers: [i32; 3],
    /// Their shifts.
    pub shifts: [i32; 3],
    /// Lower clamp (the output zero point when ReLU is folded in).
    pub act_min: i8,
    /// Upper clamp.
    pub act_max: i8,
}

/// `out[b * rows + o]` for `b < batch` from `x[b * cols + k]`; short slices as the
/// [contract](crate::kernels#the-contract) says.
pub type DenseI8Fn = fn(&DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]);
/// Float Dense over a batch, same indexing as [`DenseI8Fn`].
pub type DenseFloatFn = fn(&DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]);
/// `out[i] = table[x[i] + 128]` for `i < min(x.len(), out.len())`; nothing when the table has
/// fewer than 256 entries.
pub type LutI8Fn = fn(table: &[u8], x: &[i8], out: &mut [i8]);
/// `out[i] = act(x[i])` for float graphs (`alpha`: the leaky-ReLU slope).
pub type ActivationF32Fn = fn(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]);
/// `out[i] = quant::quantize_i8(x[i], scale, zero_point)`: graph inputs to int8.
pub type QuantizeI8Fn = fn(x: &[f32], scale: f32, zero_point: i32, out: &mut [i8]);
/// `out[i] = to_pixel(x[i])`: probabilities to uint8 pixels (float decoders' outputs).
pub type PixelsF32Fn = fn(x: &[f32], out: &mut [u8]);
/// Reads every byte once and returns their sum as int8 values (wrapping): the memory-bound
/// floor of a batch-1 int8 Dense, for benchmarks.
pub type WeightStreamFn = fn(weights: &[u8]) -> i32;

/// A convolution or transposed convolution over a batch: sample `b` reads
/// `x[b * in_len..(b + 1) * in_len]` and writes `out[b * out_len..(b + 1) * out_len]` (see
/// [`ConvDims`]); short slices as the [contract](crate::kernels#the-contract) says.
pub type ConvI8Fn = fn(&ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]);
/// Float convolution over a batch, same indexing as [`ConvI8Fn`].
pub type ConvFloatFn = fn(&ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]);
/// int8 nearest-neighbour upsampling over a batch.
pub type UpsampleI8Fn = fn(&Upsample, x: &[i8], batch: usize, out: &mut [i8]);
/// f32 nearest-neighbour upsampling over a batch.
pub type UpsampleF32Fn = fn(&Upsample, x: &[f32], batch: usize, out: &mut [f32]);
/// `out[i] = add_i8(a[i], b[i])` for `i < min(a.len(), b.len(), out.len())`.
pub type AddI8Fn = fn(&AddI8, a: &[i8], b: &[i8], out: &mut [i8]);
/// `out[i] = a[i] + b[i]`, then ReLU when `relu`, for `i < min(a.len(), b.len(), out.len())`.
pub type AddF32Fn = fn(relu: bool, a: &[f32], b: &[f32], out: &mut [f32]);

/// One implementation of every kernel.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// Name shown by `tinyvae bench` and `inspect`.
    pub name: &'static str,
    /// int8 Dense.
    pub dense_i8: DenseI8Fn,
    /// Dense with f16 weights.
    pub dense_f16: DenseFloatFn,
    /// Dense with f32 weights.
    pub dense_f32: DenseFloatFn,
    /// int8 lookup-table activation.
    pub lut_i8: LutI8Fn,
    /// f32 elementwise activation.
    pub activation_f32: ActivationF32Fn,
    /// f32 probabilities to pixels.
    pub pixels_f32: PixelsF32Fn,
    /// f32 inputs to int8.
    pub quantize_i8: QuantizeI8Fn,
    /// Weight-streaming floor (benchmarks only).
    pub weight_stream: WeightStreamFn,
    /// int8 convolution.
    pub conv_i8: ConvI8Fn,
    /// Convolution with f16 weights.
    pub conv_f16: ConvFloatFn,
    /// Convolution with f32 weights.
    pub conv_f32: ConvFloatFn,
    /// int8 transposed convolution.
    pub conv_transpose_i8: ConvI8Fn,
    /// Transposed convolution with f16 weights.
    pub conv_transpose_f16: ConvFloatFn,
    /// Transposed convolution with f32 weights.
    pub conv_transpose_f32: ConvFloatFn,
    /// int8 nearest-neighbour upsampling.
    pub upsample_i8: UpsampleI8Fn,
    /// f32 nearest-neighbour upsampling.
    pub upsample_f32: UpsampleF32Fn,
    /// int8 residual addition.
    pub add_i8: AddI8Fn,
    /// f32 residual addition.
    pub add_f32: AddF32Fn,
}

/// The scalar reference: portable, always available, and the definition of every result.
pub static REFERENCE: Kernels = Kernels {
    name: "scalar",
    dense_i8: reference::dense_i8,
    dense_f16: reference::dense_f16,
    dense_f32: reference::dense_f32,
    lut_i8: reference::lut_i8,
    activation_f32: reference::activation_f32,
    pixels_f32: reference::pixels_f32,
    quantize_i8: reference::quantize_i8,
    weight_stream: reference::weight_stream,
    conv_i8: reference::conv_i8,
    conv_f16: reference::conv_f16,
    conv_f32: reference::conv_f32,
    conv_transpose_i8: reference::conv_transpose_i8,
    conv_transpose_f16: reference::conv_transpose_f16,
    conv_transpose_f32: reference::conv_transpose_f32,
    upsample_i8: reference::upsample_i8,
    upsample_f32: reference::upsample_f32,
    add_i8: reference::add_i8,
    add_f32: reference::add_f32,
};

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "arm")]
pub mod armv7em;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
// The Cortex-M4F input quantization is plain Rust: its exactness test runs on every host too.
#[cfg(all(test, not(target_arch = "arm")))]
#[path = "armv7em/quantize_i8.rs"]
mod armv7em_quantize_i8;

/// Optimized tables usable on this CPU, fastest first. With `std`, found by runtime feature
/// detection; without, by the target features the crate was compiled with.
fn native() -> &'static [&'static Kernels] {
    #[cfg(target_arch = "x86_64")]
    return x86_64::usable();
    #[cfg(target_arch = "aarch64")]
    return aarch64::usable();
    #[cfg(target_arch = "arm")]
    return armv7em::usable();
    #[allow(unreachable_code)]
    &[]
}

/// The fastest kernels for this CPU; the scalar reference when nothing better applies.
pub fn best() -> &'static Kernels {
    native().first().copied().unwrap_or(&REFERENCE)
}

/// Every kernel table usable on this CPU, the reference first (for benchmarks and tests).
pub fn available() -> impl Iterator<Item = &'static Kernels> {
    core::iter::once(&REFERENCE).chain(native().iter().copied())
}

/// Finds a usable table by name (`tinyvae bench --kernels`, tests).
pub fn by_name(name: &str) -> Option<&'static Kernels> {
    available().find(|k| k.name == name)
}
