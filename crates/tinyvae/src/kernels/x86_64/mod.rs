//! Optimized kernels for x86_64, one kernel per file, grouped into tables by instruction set.
//!
//! | table              | int8 Dense            | f16 / f32 Dense          | LUT          | weight stream |
//! |--------------------|-----------------------|--------------------------|--------------|---------------|
//! | `avx512-vnni-vbmi` | zmm `vpdpbusd`        | zmm `vcvtph2ps` + FMA    | `vpermi2b`   | zmm `vpsadbw` |
//! | `avx512-vnni`      | zmm `vpdpbusd`        | zmm `vcvtph2ps` + FMA    | scalar       | zmm `vpsadbw` |
//! | `avx-vnni`         | ymm `vpdpbusd` (VEX)  | F16C + FMA (ymm)         | scalar       | ymm `vpsadbw` |
//! | `avx2`             | `vpmaddubsw`/`vpmaddwd` | F16C + FMA (ymm)       | scalar       | ymm `vpsadbw` |
//!
//! f32 activations, pixels and input quantization: the reference's loops compiled 16 lanes
//! wide (AVX-512) or 8 (AVX2); AVX-512 input quantization rounds its own (equal) way.
//! Convolutions and transposed convolutions (format version 2): the table's Dense kernel over
//! gathered patches ([`patches`]), except int8 transposed convolutions, which read a padded
//! window in place: every shape the AVX-512 kernels take (`conv_transpose_i8_avx512vnni`, and
//! `conv_transpose_i8_one_avx512vnni` for one output channel), one output channel with AVX2
//! (`conv_transpose_i8_one_avx2`, also in the AVX-VNNI table), and float transposed
//! convolutions in every table (`conv_transpose_float`, and `conv_transpose_float_one` for one
//! output channel, written once over the vector operations of `float_lanes`). Upsampling and
//! additions: the scalar reference.
//!
//! Dispatch: with `std`, the CPU is probed once at run time (`is_x86_feature_detected!`);
//! without, the target features the crate was compiled with decide (`-C target-cpu=...`).
//! Every kernel also re-checks its own features (one cached load) and falls back to the scalar
//! reference when they are missing, so calling a table directly on an older CPU is still safe.
//! The AVX-512 tables need Rust 1.89 or later (stable AVX-512 intrinsics).
#![allow(unsafe_code)]

mod conv_transpose_float;
mod conv_transpose_float_one;
mod conv_transpose_i8_avx512vnni;
mod conv_transpose_i8_one_avx2;
mod conv_transpose_i8_one_avx512vnni;
mod dense_float_avx512;
mod dense_float_fma;
mod dense_i8_avx2;
mod dense_i8_avx512vnni;
mod dense_i8_avxvnni;
mod elementwise_f32_simd;
mod float_lanes;
mod lut_i8_avx512vbmi;
mod requantize_avx2;
mod requantize_avx512;
mod requantize_lanes_avx512;
mod weight_stream_avx2;
mod weight_stream_avx512;

#[cfg(test)]
mod requantize_cases;

use crate::kernels::{patches, reference, DenseFloatFn, DenseI8Fn, Kernels, REFERENCE};
use float_lanes::{Ymm, Zmm};

/// AVX-512 F/BW/VL + VNNI int8 Dense, 16-wide float Dense and a VBMI byte-permute LUT
/// (Ice Lake, Sapphire Rapids, Zen 4 and later).
pub static AVX512_VNNI_VBMI: Kernels = Kernels {
    name: "avx512-vnni-vbmi",
    dense_i8: dense_i8_avx512vnni::dense_i8,
    dense_f16: dense_float_avx512::dense_f16,
    dense_f32: dense_float_avx512::dense_f32,
    lut_i8: lut_i8_avx512vbmi::lut_i8,
    activation_f32: elementwise_f32_simd::activation_f32_avx512,
    pixels_f32: elementwise_f32_simd::pixels_f32_avx512,
    quantize_i8: elementwise_f32_simd::quantize_i8_avx512,
    weight_stream: weight_stream_avx512::weight_stream,
    // Convolutions: Dense over gathered patches (transposed ones: straight from a padded
    // window); upsampling and additions: the reference.
    conv_i8: patches::conv_i8::<Avx512>,
    conv_f16: patches::conv_f16::<Avx512>,
    conv_f32: patches::conv_f32::<Avx512>,
    conv_transpose_i8: conv_transpose_i8_avx512vnni::conv_transpose_i8,
    conv_transpose_f16: conv_transpose_float::conv_transpose_f16::<Zmm, Avx512>,
    conv_transpose_f32: conv_transpose_float::conv_transpose_f32::<Zmm, Avx512>,
    upsample_i8: reference::upsample_i8,
    upsample_f32: reference::upsample_f32,
    add_i8: reference::add_i8,
    add_f32: reference::add_f32,
};

/// AVX-512 VNNI without VBMI (Cascade Lake): everything of [`AVX512_VNNI_VBMI`] but the LUT.
pub static AVX512_VNNI: Kernels = Kernels { name: "avx512-vnni", lut_i8: REFERENCE.lut_i8, ..AVX512_VNNI_VBMI };

/// 256-bit VEX `vpdpbusd` (Alder Lake and later, Zen 4 and later) with F16C/FMA floats.
pub static AVX_VNNI: Kernels = Kernels {
    name: "avx-vnni",
    dense_i8: dense_i8_avxvnni::dense_i8,
    conv_i8: patches::conv_i8::<AvxVnni>,
    conv_transpose_i8: conv_transpose_i8_one_avx2::conv_transpose_i8::<AvxVnni>,
    ..AVX2
};

/// The Dense kernels each table's convolutions run on ([`patches`]).
struct Avx512;
impl patches::Dense for Avx512 {
    const I8: DenseI8Fn = dense_i8_avx512vnni::dense_i8;
    const F16: DenseFloatFn = dense_float_avx512::dense_f16;
    const F32: DenseFloatFn = dense_float_avx512::dense_f32;
}
struct AvxVnni;
impl patches::Dense for AvxVnni {
    const I8: DenseI8Fn = dense_i8_avxvnni::dense_i8;
    const F16: DenseFloatFn = dense_float_fma::dense_f16;
    const F32: DenseFloatFn = dense_float_fma::dense_f32;
}
struct Avx2;
impl patches::Dense for Avx2 {
    const I8: DenseI8Fn = dense_i8_avx2::dense_i8;
    const F16: DenseFloatFn = dense_float_fma::dense_f16;
    const F32: DenseFloatFn = dense_float_fma::dense_f32;
}

/// AVX2 + FMA + F16C (Haswell / Zen 1 and later).
pub static AVX2: Kernels = Kernels {
    name: "avx2",
    dense_i8: dense_i8_avx2::dense_i8,
    dense_f16: dense_float_fma::dense_f16,
    dense_f32: dense_float_fma::dense_f32,
    lut_i8: REFERENCE.lut_i8,
    activation_f32: elementwise_f32_simd::activation_f32_avx2,
    pixels_f32: elementwise_f32_simd::pixels_f32_avx2,
    quantize_i8: elementwise_f32_simd::quantize_i8_avx2,
    weight_stream: weight_stream_avx2::weight_stream,
    // Convolutions: Dense over gathered patches (float transposed ones, and int8 ones to one
    // channel: straight from a window); upsampling and additions: the reference.
    conv_i8: patches::conv_i8::<Avx2>,
    conv_f16: patches::conv_f16::<Avx2>,
    conv_f32: patches::conv_f32::<Avx2>,
    conv_transpose_i8: conv_transpose_i8_one_avx2::conv_transpose_i8::<Avx2>,
    conv_transpose_f16: conv_transpose_float::conv_transpose_f16::<Ymm, Avx2>,
    conv_transpose_f32: conv_transpose_float::conv_transpose_f32::<Ymm, Avx2>,
    upsample_i8: reference::upsample_i8,
    upsample_f32: reference::upsample_f32,
    add_i8: reference::add_i8,
    add_f32: reference::add_f32,
};

/// Instruction-set levels the tables need, as bits of one detection word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Level {
    /// AVX2, FMA and F16C.
    Avx2 = 1,
    /// [`Level::Avx2`] plus AVX-VNNI.
    AvxVnni = 2,
    /// AVX-512 F, BW, VL and VNNI (plus AVX2, FMA, F16C, which every such CPU has).
    Avx512Vnni = 4,
    /// AVX-512 VBMI (byte permutes).
    Avx512Vbmi = 8,
}

/// The levels fixed at compile time (the only source of truth without `std`).
const COMPILED: u8 = {
    let avx2 = cfg!(all(target_feature = "avx2", target_feature = "fma", target_feature = "f16c"));
    let avxvnni = avx2 && cfg!(target_feature = "avxvnni");
    let avx512 = avx2
        && cfg!(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vl",
            target_feature = "avx512vnni"
        ));
    let vbmi = avx512 && cfg!(target_feature = "avx512vbmi");
    levels(avx2, avxvnni, avx512, vbmi)
};

/// The detection word for these answers.
const fn levels(avx2: bool, avxvnni: bool, avx512: bool, vbmi: bool) -> u8 {
    const fn bit(yes: bool, level: Level) -> u8 {
        if yes {
            level as u8
        } else {
            0
        }
    }
    bit(avx2, Level::Avx2)
        | bit(avxvnni, Level::AvxVnni)
        | bit(avx512, Level::Avx512Vnni)
        | bit(vbmi, Level::Avx512Vbmi)
}

/// The levels this CPU supports, probed once. Out of line, so that no other crate's inlined
/// copy of [`has`] refers to the cache directly.
#[cfg(feature = "std")]
#[inline(never)]
fn detected() -> u8 {
    static LEVELS: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *LEVELS.get_or_init(|| {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avxvnni = avx2 && has!("avxvnni");
        let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni");
        let vbmi = avx512 && has!("avx512vbmi");
        // Whatever the compiler was told to assume is there too.
        COMPILED | levels(avx2, avxvnni, avx512, vbmi)
    })
}

#[cfg(not(feature = "std"))]
fn detected() -> u8 {
    COMPILED
}

/// True when this CPU has every instruction of `level`. Kernels call it before running their
/// `#[target_feature]` code: that check is what makes them safe functions.
#[inline]
pub(crate) fn has(level: Level) -> bool {
    detected() & level as u8 != 0
}

/// The usable tables, fastest first, for a detection word.
struct Usable {
    tables: [&'static Kernels; 3],
    len: usize,
}

impl Usable {
    const fn for_levels(levels: u8) -> Usable {
        let mut tables = [&REFERENCE; 3];
        let mut len = 0;
        if levels & Level::Avx512Vnni as u8 != 0 {
            tables[len] = if levels & Level::Avx512Vbmi as u8 != 0 { &AVX512_VNNI_VBMI } else { &AVX512_VNNI };
            len += 1;
        }
        if levels & Level::AvxVnni as u8 != 0 {
            tables[len] = &AVX_VNNI;
            len += 1;
        }
        if levels & Level::Avx2 as u8 != 0 {
            tables[len] = &AVX2;
            len += 1;
        }
        Usable { tables, len }
    }

    fn as_slice(&'static self) -> &'static [&'static Kernels] {
        self.tables.get(..self.len).unwrap_or(&[])
    }
}

/// Tables usable on this CPU, fastest first.
pub fn usable() -> &'static [&'static Kernels] {
    #[cfg(feature = "std")]
    {
        static USABLE: std::sync::OnceLock<Usable> = std::sync::OnceLock::new();
        USABLE.get_or_init(|| Usable::for_levels(detected())).as_slice()
    }
    #[cfg(not(feature = "std"))]
    {
        static USABLE: Usable = Usable::for_levels(COMPILED);
        USABLE.as_slice()
    }
}

/// Every x86_64 table, usable here or not (their kernels fall back to the reference on a CPU
/// that lacks their instructions), for tests that want to name one.
pub fn all() -> [&'static Kernels; 4] {
    [&AVX512_VNNI_VBMI, &AVX512_VNNI, &AVX_VNNI, &AVX2]
}

/// Little-endian i32 number `i` of a parameter array, 0 past its end. `reference::le_i32`
/// does the same, but is not inlined into the large `#[target_feature]` kernels, and a call
/// there costs a `vzeroupper` and spills every vector register.
#[inline(always)]
fn param(bytes: &[u8], i: usize) -> i32 {
    match bytes.get(4 * i..4 * i + 4) {
        Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The `n` (< 4) bytes at `p` as the low bytes of a little-endian word, upper bytes zero,
/// each passed through `map`. Spelled out because a variable-length copy becomes a `memcpy`
/// call.
///
/// # Safety
/// `p .. p + n` is readable.
#[inline(always)]
unsafe fn partial_word(p: *const u8, n: usize, map: impl Fn(u8) -> u8) -> u32 {
    // SAFETY: each read is at an offset below n (caller's contract).
    let byte = |i: usize| if i < n { map(unsafe { p.add(i).read() }) as u32 } else { 0 };
    byte(0) | byte(1) << 8 | byte(2) << 16
}

/// Where the blocks of a blocked loop over `0..n` start: every `step`, the last one pulled
/// back to `n - step` so that no block runs past the end. Blocks may overlap (outputs in the
/// overlap are computed twice, identically), which keeps every block full-width and its
/// addressing regular. Needs `n >= step`.
fn block_starts(n: usize, step: usize) -> impl Iterator<Item = usize> {
    (0..n.div_ceil(step)).map(move |i| (i * step).min(n - step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_starts_cover_everything_without_running_past_the_end() {
        for n in 4..40 {
            let starts: Vec<usize> = block_starts(n, 4).collect();
            let mut seen = alloc::vec![false; n];
            for &s in &starts {
                assert!(s + 4 <= n);
                seen[s..s + 4].iter_mut().for_each(|b| *b = true);
            }
            assert!(seen.iter().all(|&b| b), "{n}: {starts:?}");
        }
    }

    #[test]
    fn every_table_matches_the_reference_even_when_not_usable_here() {
        for k in all() {
            if let Err(m) = crate::kernels::suite::check_kernels(k, 200, 0xC0FFEE) {
                panic!("{}: {m}", k.name);
            }
        }
    }

    #[test]
    fn usable_tables_are_ordered_fastest_first() {
        let names: Vec<&str> = usable().iter().map(|k| k.name).collect();
        let rank = |n: &str| ["avx512-vnni-vbmi", "avx512-vnni", "avx-vnni", "avx2"].iter().position(|&x| x == n);
        assert!(names.windows(2).all(|w| rank(w[0]) < rank(w[1])), "{names:?}");
        if has(Level::Avx512Vnni) {
            assert!(names[0].starts_with("avx512"), "{names:?}");
        }
    }
}
