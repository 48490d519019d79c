//! Scalar reference kernels, one per file. They define the results that every optimized
//! kernel must match (bit for bit on int8).

mod activation;
mod add_f32;
mod add_i8;
mod conv_float;
mod conv_i8;
mod conv_transpose_float;
mod conv_transpose_i8;
mod dense_f16;
mod dense_f32;
mod dense_i8;
mod lut_i8;
mod quantize_i8;
mod upsample;
mod weight_stream;

pub use activation::activation_f32;
pub use activation::pixels_f32;
#[cfg(target_arch = "x86_64")]
pub(crate) use activation::{activation_f32_inline, pixels_f32_inline};
pub use add_f32::add_f32;
pub use add_i8::add_i8;
pub use conv_float::{conv_f16, conv_f32};
pub use conv_i8::conv_i8;
pub use conv_transpose_float::{conv_transpose_f16, conv_transpose_f32};
pub use conv_transpose_i8::conv_transpose_i8;
pub use dense_f16::dense_f16;
pub use dense_f32::dense_f32;
pub use dense_i8::dense_i8;
pub use lut_i8::lut_i8;
pub use quantize_i8::quantize_i8;
#[cfg(target_arch = "x86_64")]
pub(crate) use quantize_i8::quantize_i8_inline;
pub use upsample::{upsample_f32, upsample_i8};
pub use weight_stream::weight_stream;

/// Little-endian i32 at element `i` of a byte array (0 past the end; shapes are pre-validated).
#[inline]
pub(crate) fn le_i32(bytes: &[u8], i: usize) -> i32 {
    crate::format::read_i32(bytes, i * 4).unwrap_or(0)
}

/// Little-endian f32 at element `i` of a byte array (0 past the end).
#[cfg_attr(not(any(feature = "f32", feature = "f16")), allow(dead_code))]
#[inline]
pub(crate) fn le_f32(bytes: &[u8], i: usize) -> f32 {
    crate::format::read_f32(bytes, i * 4).unwrap_or(0.0)
}
