//! Optimized kernels for 32-bit Arm microcontrollers. These are the ARMv7E-M DSP instructions
//! (`SMLAD`, `SXTB16`) of the Cortex-M4 and Cortex-M7.
//!
//! `DSP` is the table that dispatch picks: int8 Dense on `SMLAD` (one kernel per file), int8
//! transposed convolutions on `SMLAD` with four output pixels in the accumulators
//! (`conv_transpose_i8.rs`, no patch buffer), int8 convolutions on the Dense kernel over
//! gathered patches ([`crate::kernels::patches`]), the input quantization on the FPU's
//! conversions where there is one (`thumbv7em-none-eabihf`), and the scalar reference for the
//! rest. `dense_i8_w16` is an opt-in int16-weight variant kept
//! for measurements; no table uses it.
//!
//! # Which builds get them
//! Every `thumbv7em-*` target (Cortex-M4/M7, where the DSP extension is always present), as told
//! by the crate's build script: on stable Rust `cfg(target_feature = "dsp")` is never set.
//! Other Arm targets run the scalar reference.

use crate::kernels::Kernels;

#[cfg(tinyvae_armv7em_dsp)]
mod dense_i8;

#[cfg(all(tinyvae_armv7em_dsp, feature = "conv-transpose"))]
mod conv_transpose_i8;

#[cfg(tinyvae_armv7em_dsp)]
pub mod dense_i8_w16;

#[cfg(tinyvae_armv7em_fpu)]
mod quantize_i8;

/// The DSP table: int8 Dense on `SMLAD`, every other entry from the scalar reference.
#[cfg(tinyvae_armv7em_dsp)]
pub static DSP: Kernels = Kernels {
    name: "dsp",
    dense_i8: dense_i8::dense_i8,
    dense_f16: crate::kernels::reference::dense_f16,
    dense_f32: crate::kernels::reference::dense_f32,
    lut_i8: crate::kernels::reference::lut_i8,
    activation_f32: crate::kernels::reference::activation_f32,
    pixels_f32: crate::kernels::reference::pixels_f32,
    // With an FPU, rounding by two `VCVT` (`quantize_i8.rs`).
    #[cfg(tinyvae_armv7em_fpu)]
    quantize_i8: quantize_i8::quantize_i8,
    #[cfg(not(tinyvae_armv7em_fpu))]
    quantize_i8: crate::kernels::reference::quantize_i8,
    weight_stream: crate::kernels::reference::weight_stream,
    // Convolutions: `SMLAD` Dense over gathered patches, one output row's worth at most.
    conv_i8: crate::kernels::patches::conv_i8::<Dsp>,
    conv_f16: crate::kernels::reference::conv_f16,
    conv_f32: crate::kernels::reference::conv_f32,
    // Transposed convolutions: four output pixels per pass in `SMLAD`'s accumulators, without
    // a patch buffer (`conv_transpose_i8.rs`).
    #[cfg(feature = "conv-transpose")]
    conv_transpose_i8: conv_transpose_i8::conv_transpose_i8::<Dsp>,
    #[cfg(not(feature = "conv-transpose"))]
    conv_transpose_i8: crate::kernels::reference::conv_transpose_i8,
    conv_transpose_f16: crate::kernels::reference::conv_transpose_f16,
    conv_transpose_f32: crate::kernels::reference::conv_transpose_f32,
    upsample_i8: crate::kernels::reference::upsample_i8,
    upsample_f32: crate::kernels::reference::upsample_f32,
    add_i8: crate::kernels::reference::add_i8,
    add_f32: crate::kernels::reference::add_f32,
};

/// The Dense kernels the DSP table's convolutions run on.
#[cfg(tinyvae_armv7em_dsp)]
struct Dsp;
#[cfg(tinyvae_armv7em_dsp)]
impl crate::kernels::patches::Dense for Dsp {
    const I8: crate::kernels::DenseI8Fn = dense_i8::dense_i8;
    const F16: crate::kernels::DenseFloatFn = crate::kernels::reference::dense_f16;
    const F32: crate::kernels::DenseFloatFn = crate::kernels::reference::dense_f32;
    // `SMLAD` on sign-extended bytes is exact for -128, the kernel reads no weight sums, and it
    // runs rows in pairs (a lone row is plain code): a one-channel layer (a decoder's last
    // transposed convolution) runs its pixels as the rows.
    const PIXELS_AS_ROWS: bool = true;
}

/// Tables usable on this CPU, fastest first.
pub fn usable() -> &'static [&'static Kernels] {
    #[cfg(tinyvae_armv7em_dsp)]
    {
        static TABLES: [&Kernels; 1] = [&DSP];
        return &TABLES;
    }
    #[allow(unreachable_code)]
    &[]
}
