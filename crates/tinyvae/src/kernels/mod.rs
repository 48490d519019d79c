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
//! - **A layer whose parameters do not hold its shape writes nothing**: `rows` or `cols` zero,
//!   a size that overflows `usize`, `weights` shorter than `rows * cols` weights, or `bias`,
//!   `multipliers`, `shifts` or `weight_sums` shorter than `rows` entries. Some rows computed
//!   with a made-up bias would look like an answer without being one. [`DenseI8::samples`] and
//!   [`DenseFloat::samples`] give `n` (0 in these cases): every batched kernel starts with
//!   them, and their `n` is also the bound its pointer arithmetic relies on.
//! - **Elementwise kernels** (`lut_i8`, `activation_f32`, `quantize_i8`, `pixels_f32`) map
//!   `min(x.len(), out.len())` elements. `lut_i8` with a table shorter than 256 bytes writes
//!   nothing, as a Dense layer with a short parameter does.
//! - **Every other element of `out` keeps its value**: no kernel uses its output as scratch.
//!
//! And the values: int8 results (`dense_i8`, `lut_i8`, `quantize_i8`), `activation_f32`,
//! `pixels_f32` and `weight_stream` are the reference's, bit for bit. For `dense_i8` that holds
//! for any parameter values, also those no valid blob holds (shifts outside `-31..=30`, negative
//! multipliers, zero points outside int8, an empty clamp range), with one exception: a weight of
//! -128, which the format forbids, may give other bytes (x86 `vpmaddubsw` and the NEON kernel
//! sum products in int16 pairs, which only stay exact without it). Float Dense may differ from
//! the reference by rounding, as its summation order does; the suite bounds the difference.
//! In builds without the `f32` and `f16` features no blob that needs the float kernels parses,
//! and the reference leaves them empty to save flash; their results there are not part of the
//! contract (the suite checks them only in builds that carry them).

pub mod reference;
pub mod suite;

use crate::format::{ActKind, WeightLayout};

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
    /// take one unsigned operand (x86 `vpdpbusd`) feed `x + 128` and subtract `128 * sum`.
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
        match self.layout {
            WeightLayout::RowMajor => {}
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
};

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "arm")]
pub mod armv7em;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

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
