//! Optimized kernels for aarch64: Raspberry Pi 4 (Cortex-A72: NEON, no dotprod) and Raspberry
//! Pi 5 (Cortex-A76: NEON and `sdot`).
//!
//! Two tables, fastest first:
//! - [`SDOT`] (`aarch64-sdot`): int8 Dense and transposed convolutions on `sdot`
//!   (FEAT_DotProd), 16 MACs per instruction into int32 lanes; everything else as [`NEON`].
//! - [`NEON`] (`aarch64-neon`): int8 Dense and transposed convolutions on `smull`/`smlal2`/
//!   `sadalp`, f16 and f32 Dense on `fmla` (f16 weights widened with `fcvtl`), the int8 lookup
//!   table on `tbl`/`tbx`, and the weight-streaming floor.
//!
//! int8 transposed convolutions read their patches in place from a padded window with each
//! table's Dense inner loops (`conv_transpose_i8_tiles`); other convolutions run on each
//! table's Dense kernel over gathered patches ([`crate::kernels::patches`]); upsampling and
//! additions are the scalar reference.
//!
//! Every function in these tables checks, on each call, that the CPU has what it executes
//! (a cached feature test) and that the slices hold the shapes it reads; otherwise it hands the
//! call on (`sdot` to NEON, NEON to the scalar reference). So the tables are sound to call from
//! anywhere, and short slices give the reference's bytes too. The one input on which an int8
//! result may differ is a weight of -128, which the format forbids (the parser rejects it): the
//! NEON kernel's int16 pair sums rely on that, as x86's `vpmaddubsw` does.
//!
//! Only little-endian aarch64 is served: the kernels reinterpret little-endian blob bytes as
//! vector lanes.

// Intrinsics and `asm!` need `unsafe`; each use states why it is sound.
#![allow(unsafe_code)]

mod conv_transpose_i8_neon;
mod conv_transpose_i8_sdot;
mod conv_transpose_i8_tiles;
mod dense_f16;
mod dense_f32;
mod dense_float_tiles;
mod dense_i8_neon;
mod dense_i8_sdot;
mod dense_i8_tiles;
mod lut_i8;
mod requantize;
mod weight_stream;

use crate::kernels::{patches, DenseFloatFn, DenseI8Fn, Kernels};

/// Plain NEON: what every aarch64 application core has (Raspberry Pi 4 and later).
pub static NEON: Kernels = Kernels {
    name: "aarch64-neon",
    dense_i8: dense_i8_neon::dense_i8_neon,
    dense_f16: dense_f16::dense_f16_neon,
    dense_f32: dense_f32::dense_f32_neon,
    lut_i8: lut_i8::lut_i8_neon,
    activation_f32: crate::kernels::reference::activation_f32,
    pixels_f32: crate::kernels::reference::pixels_f32,
    quantize_i8: crate::kernels::reference::quantize_i8,
    weight_stream: weight_stream::weight_stream_neon,
    // Other convolutions: Dense over gathered patches; upsampling and additions: the reference.
    conv_i8: patches::conv_i8::<Neon>,
    conv_f16: patches::conv_f16::<Neon>,
    conv_f32: patches::conv_f32::<Neon>,
    conv_transpose_i8: conv_transpose_i8_neon::conv_transpose_i8_neon,
    conv_transpose_f16: patches::conv_transpose_f16::<Neon>,
    conv_transpose_f32: patches::conv_transpose_f32::<Neon>,
    upsample_i8: crate::kernels::reference::upsample_i8,
    upsample_f32: crate::kernels::reference::upsample_f32,
    add_i8: crate::kernels::reference::add_i8,
    add_f32: crate::kernels::reference::add_f32,
};

/// NEON plus `sdot` (FEAT_DotProd: Raspberry Pi 5 and other Armv8.2+ cores).
pub static SDOT: Kernels = Kernels {
    name: "aarch64-sdot",
    dense_i8: dense_i8_sdot::dense_i8_sdot,
    conv_i8: patches::conv_i8::<Sdot>,
    conv_transpose_i8: conv_transpose_i8_sdot::conv_transpose_i8_sdot,
    ..NEON
};

/// The Dense kernels each table's convolutions run on ([`patches`]).
struct Neon;
impl patches::Dense for Neon {
    const I8: DenseI8Fn = dense_i8_neon::dense_i8_neon;
    const F16: DenseFloatFn = dense_f16::dense_f16_neon;
    const F32: DenseFloatFn = dense_f32::dense_f32_neon;
}
struct Sdot;
impl patches::Dense for Sdot {
    const I8: DenseI8Fn = dense_i8_sdot::dense_i8_sdot;
    const F16: DenseFloatFn = dense_f16::dense_f16_neon;
    const F32: DenseFloatFn = dense_f32::dense_f32_neon;
}

/// Tables usable on this CPU, fastest first.
///
/// With `std`, by runtime detection (computed once); without, by the target features the crate
/// was compiled with (`-C target-feature=+dotprod` or `-C target-cpu=cortex-a76` for a Pi 5).
pub fn usable() -> &'static [&'static Kernels] {
    #[cfg(feature = "std")]
    {
        static DETECTED: std::sync::OnceLock<&'static [&'static Kernels]> = std::sync::OnceLock::new();
        DETECTED.get_or_init(select)
    }
    #[cfg(not(feature = "std"))]
    select()
}

fn select() -> &'static [&'static Kernels] {
    static DOTPROD_CPU: [&Kernels; 2] = [&SDOT, &NEON];
    static NEON_CPU: [&Kernels; 1] = [&NEON];
    match (has_neon(), has_dotprod()) {
        (true, true) => &DOTPROD_CPU,
        (true, false) => &NEON_CPU,
        _ => &[],
    }
}

/// The CPU executes NEON (and the lanes are little-endian, which the kernels assume).
#[inline]
fn has_neon() -> bool {
    #[cfg(feature = "std")]
    let detected = std::arch::is_aarch64_feature_detected!("neon");
    #[cfg(not(feature = "std"))]
    let detected = cfg!(target_feature = "neon");
    cfg!(target_endian = "little") && detected
}

/// The CPU executes NEON and `sdot`.
#[inline]
fn has_dotprod() -> bool {
    #[cfg(feature = "std")]
    let detected = std::arch::is_aarch64_feature_detected!("dotprod");
    #[cfg(not(feature = "std"))]
    let detected = cfg!(target_feature = "dotprod");
    has_neon() && detected
}
