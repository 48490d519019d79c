//! The kernel interface: one table of function pointers per implementation.
//!
//! [`REFERENCE`] (scalar, in `reference/`) defines every result. Optimized tables (SIMD, DSP)
//! replace entries of it and must give the reference's int8 bytes exactly; the generic suite in
//! The `suite` module checks any table against the reference, and every architecture instantiates it.
//! Kernels never fail and never panic: the blob parser has checked every shape before a kernel
//! sees it, and kernels only walk slices with bounded iterators.

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

/// `out[b * rows + o]` for `b < batch` from `x[b * cols + k]`.
pub type DenseI8Fn = fn(&DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]);
/// Float Dense over a batch, same indexing as [`DenseI8Fn`].
pub type DenseFloatFn = fn(&DenseFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]);
/// `out[i] = table[x[i] + 128]`.
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
