//! The generic kernel test suite: the [kernel contract](super#the-contract) as checks that any
//! kernel table can be put through.
//!
//! Each family of cases runs a candidate table and [`REFERENCE`] on the same arguments, the
//! candidate's output buffer filled with one sentinel and the reference's with another. Where
//! the contract says a call writes, both must have written (the sentinels are gone) the same
//! int8 bytes, or floats within a tolerance; everywhere else both sentinels must still be there.
//! The families: random shapes and values ([`check_random`]), every short row and tail
//! ([`check_tails`]), slices too short or too long for their shapes ([`check_short_slices`]),
//! arrays at every alignment ([`check_unaligned`]), extreme values, zero points and parameters
//! no blob holds ([`check_extremes`]), elementwise kernels at every length
//! ([`check_elementwise`]), and the weight-streaming floor ([`check_weight_stream`]). The
//! format-version-2 kernels are checked against definitions written in the suite (a direct
//! convolution over every tap, a scattering transposed convolution) rather than against the
//! reference: random and grid geometries ([`check_conv`], cases from [`ConvCase`] through
//! [`check_conv_case`]), refused shapes and short slices ([`check_conv_short_slices`]),
//! upsampling ([`check_upsample`]) and additions ([`check_add`]).
//! [`check_kernels`] runs them all.
//!
//! Every implementation instantiates the suite, as tract-linalg's `frame` suites are: the unit
//! tests run it on every table usable on the host, `tests/x86_64_kernels.rs` on every x86
//! table, `tests/aarch64_kernels.rs` on the NEON and `sdot` tables under QEMU, and the Cortex-M
//! test program (`tests/cortex-m`) on the DSP table. The per-architecture files add only what
//! concerns one implementation (its block sizes, dispatch, instruction counts), with cases from
//! [`DenseI8Case`] checked by [`check_dense_i8`].
//!
//! It needs `alloc`. Its buffers stay within a microcontroller's heap (a few hundred KiB), except
//! those of [`check_large_layers`], which is for hosts.

#![cfg(feature = "alloc")]

mod conv;

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::{DenseFloat, DenseFloatFn, DenseI8, Kernels, REFERENCE};
use crate::format::{ActKind, WeightLayout};
use crate::quant::quantize_multiplier;
use crate::rng::Rng;
pub use conv::{
    check_add, check_conv, check_conv_case, check_conv_large, check_conv_short_slices, check_upsample, ConvCase,
};

/// The first disagreement found, with the case that shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Which kernel, e.g. `dense_i8`.
    pub kernel: &'static str,
    /// Which family of cases, e.g. `short slices`.
    pub family: &'static str,
    /// Case number within the family (replay with the same seed).
    pub case: usize,
    /// `(rows, cols, batch)` of the case (elementwise kernels: `(0, len, 1)`).
    pub shape: (usize, usize, usize),
    /// Index into the output slice (a write before it shows as an index wrapped past
    /// `usize::MAX`).
    pub index: usize,
    /// What the candidate left there, as f64.
    pub got: f64,
    /// What the reference left there (or, where nothing may be written, the sentinel), as f64.
    pub want: f64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rows, cols, batch) = self.shape;
        write!(
            f,
            "{} case {}: {} ({rows} x {cols}, batch {batch}): out[{}] is {} where {} was expected",
            self.family, self.case, self.kernel, self.index, self.got, self.want
        )
    }
}

/// Where a check belongs, for its [`Mismatch`].
#[derive(Clone, Copy)]
struct At {
    family: &'static str,
    case: usize,
}

impl At {
    fn mismatch(
        self,
        kernel: &'static str,
        shape: (usize, usize, usize),
        index: usize,
        got: f64,
        want: f64,
    ) -> Mismatch {
        Mismatch { kernel, family: self.family, case: self.case, shape, index, got, want }
    }

    /// Two different bytes, varying from case to case: the candidate's sentinel and the
    /// reference's. Different, so that an output that both should have written but neither
    /// did cannot look right.
    fn sentinel_bytes(self) -> (u8, u8) {
        let s = 0x5A ^ (self.case as u8).wrapping_mul(0x9D);
        (s, !s)
    }
}

/// An output element: how the suite fills buffers with sentinels and compares what kernels
/// leave in them.
trait Element: Copy {
    /// The candidate's and the reference's sentinels (see [`At::sentinel_bytes`]).
    fn sentinels(at: At) -> (Self, Self);
    /// The same value, bit for bit.
    fn same(self, other: Self) -> bool;
    /// For [`Mismatch`].
    fn as_f64(self) -> f64;
}

impl Element for i8 {
    fn sentinels(at: At) -> (Self, Self) {
        let (a, b) = at.sentinel_bytes();
        (a as i8, b as i8)
    }
    fn same(self, other: Self) -> bool {
        self == other
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Element for u8 {
    fn sentinels(at: At) -> (Self, Self) {
        at.sentinel_bytes()
    }
    fn same(self, other: Self) -> bool {
        self == other
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Element for f32 {
    /// Quiet NaNs with payloads that no arithmetic produces.
    fn sentinels(at: At) -> (Self, Self) {
        let (a, b) = at.sentinel_bytes();
        (f32::from_bits(0x7FE0_0000 | a as u32), f32::from_bits(0x7FE0_0000 | (b as u32) << 8))
    }
    fn same(self, other: Self) -> bool {
        self.to_bits() == other.to_bits()
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

/// What one call of a kernel was, for checking its outputs.
#[derive(Clone, Copy)]
struct Call {
    at: At,
    kernel: &'static str,
    shape: (usize, usize, usize),
}

impl Call {
    /// Checks a call's outputs against the contract. `got` (the candidate's) and `want` (the
    /// reference's) started as `T::sentinels`; the output slice starts at `origin`. Inside
    /// `written`, the two must be `close`; everywhere else both must still hold their sentinel.
    fn check<T: Element>(
        self,
        got: &[T],
        want: &[T],
        origin: usize,
        written: core::ops::Range<usize>,
        close: impl Fn(T, T) -> bool,
    ) -> Result<(), Mismatch> {
        self.check_indexed(got, want, origin, written, |_, g, w| close(g, w))
    }

    /// As [`Call::check`], `close` also given the element's index in the buffers.
    fn check_indexed<T: Element>(
        self,
        got: &[T],
        want: &[T],
        origin: usize,
        written: core::ops::Range<usize>,
        close: impl Fn(usize, T, T) -> bool,
    ) -> Result<(), Mismatch> {
        let (s_got, s_want) = T::sentinels(self.at);
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            let index = i.wrapping_sub(origin);
            let bad = if written.contains(&i) {
                (!close(i, g, w)).then(|| self.at.mismatch(self.kernel, self.shape, index, g.as_f64(), w.as_f64()))
            } else if !g.same(s_got) {
                Some(self.at.mismatch(self.kernel, self.shape, index, g.as_f64(), s_got.as_f64()))
            } else if !w.same(s_want) {
                Some(self.at.mismatch("reference", self.shape, index, w.as_f64(), s_want.as_f64()))
            } else {
                None
            };
            if let Some(m) = bad {
                return Err(m);
            }
        }
        Ok(())
    }
}

/// An int8 value in one of the styles bugs hide in. Weights are never -128: the format forbids
/// it, and the contract only covers weights the format allows.
fn draw_i8(rng: &mut Rng, style: u32, weight: bool) -> i8 {
    let v = match style {
        0 => (rng.below(256) as i32 - 128) as i8,
        1 => [-128i8, -127, 127, 0, -1, 1][rng.below(6) as usize],
        2 => (rng.below(9) as i32 - 4) as i8,
        // The largest products: |accumulator| as large as the shape allows.
        _ if weight => [127i8, -127][rng.below(2) as usize],
        _ => -128,
    };
    if weight {
        v.max(-127)
    } else {
        v
    }
}

/// A zero point, at either end of the int8 range half the time.
fn draw_zero_point(rng: &mut Rng) -> i32 {
    match rng.below(4) {
        0 => -128,
        1 => 127,
        _ => rng.below(256) as i32 - 128,
    }
}

/// A random int8 Dense problem: weights, folded bias, requantization parameters and input.
#[derive(Debug, Clone)]
pub struct DenseI8Case {
    /// Output channels.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Batch size.
    pub batch: usize,
    /// Weights, row-major, in -127..=127.
    pub weights: Vec<u8>,
    /// int32 LE biases, the input zero point folded in.
    pub bias: Vec<u8>,
    /// Planar int32 LE multipliers, shifts and weight sums (the blob's aux array).
    pub requant: Vec<u8>,
    /// Output zero point.
    pub out_zero_point: i32,
    /// Clamp.
    pub act_min: i8,
    /// Clamp.
    pub act_max: i8,
    /// `batch * cols` inputs.
    pub x: Vec<i8>,
}

impl DenseI8Case {
    /// Draws a case with `rows` in `1..=max_rows`, `cols` in `1..=max_cols` and `batch` in
    /// `1..=max_batch`.
    pub fn random(rng: &mut Rng, max_rows: u32, max_cols: u32, max_batch: u32) -> Self {
        let rows = 1 + rng.below(max_rows) as usize;
        let cols = 1 + rng.below(max_cols) as usize;
        let batch = 1 + rng.below(max_batch) as usize;
        Self::with_shape(rng, rows, cols, batch)
    }

    /// Draws a case of this shape: weights and inputs in one of four styles (uniform, the
    /// int8 extremes, small, all largest products), then parameters as
    /// [`Self::draw_parameters`] does.
    pub fn with_shape(rng: &mut Rng, rows: usize, cols: usize, batch: usize) -> Self {
        let style = rng.below(4);
        let weights = (0..rows * cols).map(|_| draw_i8(rng, style, true) as u8).collect();
        let x = (0..batch * cols).map(|_| draw_i8(rng, style, false)).collect();
        let mut c = DenseI8Case {
            rows,
            cols,
            batch,
            weights,
            bias: vec![0; 4 * rows],
            requant: vec![0; 12 * rows],
            out_zero_point: 0,
            act_min: -128,
            act_max: 127,
            x,
        };
        c.draw_parameters(rng);
        c
    }

    /// Draws new parameters for the current weights and inputs: the bias with an input zero
    /// point folded in, as the quantizer does (`bias - zp_in * sum_k w[o][k]`); zero points
    /// often at either end of the range; a full, ReLU-folded or narrow clamp; and, half the
    /// time, requantization scaled to this case's accumulators (outputs spread over the int8
    /// range, so that rounding shows), else arbitrary multipliers and shifts, which mostly
    /// saturate. Also recomputes the weight sums.
    pub fn draw_parameters(&mut self, rng: &mut Rng) {
        let zp_in = draw_zero_point(rng);
        self.out_zero_point = draw_zero_point(rng);
        (self.act_min, self.act_max) = match rng.below(3) {
            0 => (-128, 127),
            1 => (self.out_zero_point as i8, 127),
            _ => (-100, 90),
        };
        self.resum();
        let scaled = rng.below(2) == 0;
        for o in 0..self.rows {
            let b =
                ((rng.next_u64() as i32) >> (8 + rng.below(20))).wrapping_sub(zp_in.wrapping_mul(self.weight_sum(o)));
            self.set_bias(o, b);
            let (m, s) = if scaled {
                let largest = self.largest_accumulator(o);
                let target = 40.0 + rng.below(100) as f64;
                quantize_multiplier(target / largest.max(1) as f64).unwrap_or((1 << 30, -31))
            } else {
                let m = match rng.below(8) {
                    0 => 1 << 30,
                    1 => i32::MAX,
                    _ => (1i32 << 30) + (rng.next_u64() as u32 >> 2) as i32,
                };
                let s = match rng.below(8) {
                    0 => rng.below(62) as i32 - 31, // the whole valid range, saturation included
                    _ => 1 - rng.below(20) as i32,
                };
                (m, s)
            };
            self.set_multiplier(o, m);
            self.set_shift(o, s);
        }
    }

    /// The largest `|bias + sum_k w x|` of row `o` over the batch.
    fn largest_accumulator(&self, o: usize) -> i64 {
        let w = self.weights.get(o * self.cols..(o + 1) * self.cols).unwrap_or(&[]);
        let bias = self.param(0, o) as i64;
        let dot = |xs: &[i8]| w.iter().zip(xs).map(|(&w, &x)| w as i8 as i64 * x as i64).sum::<i64>();
        self.x.chunks_exact(self.cols.max(1)).map(|xs| (bias + dot(xs)).abs()).max().unwrap_or(0)
    }

    /// Sum of row `o`'s weights.
    pub fn weight_sum(&self, o: usize) -> i32 {
        let w = self.weights.get(o * self.cols..(o + 1) * self.cols).unwrap_or(&[]);
        w.iter().map(|&w| w as i8 as i32).sum()
    }

    /// Recomputes every row's weight sum (after a test has changed the weights).
    pub fn resum(&mut self) {
        for o in 0..self.rows {
            let sum = self.weight_sum(o);
            self.set_param(3, o, sum);
        }
    }

    /// Sets row `o`'s bias.
    pub fn set_bias(&mut self, o: usize, bias: i32) {
        self.set_param(0, o, bias);
    }

    /// Sets row `o`'s fixed-point multiplier.
    pub fn set_multiplier(&mut self, o: usize, multiplier: i32) {
        self.set_param(1, o, multiplier);
    }

    /// Sets row `o`'s shift.
    pub fn set_shift(&mut self, o: usize, shift: i32) {
        self.set_param(2, o, shift);
    }

    /// Array `array` (0 bias, 1 multipliers, 2 shifts, 3 weight sums), entry `o`.
    fn param(&self, array: usize, o: usize) -> i32 {
        let (bytes, at) =
            if array == 0 { (&self.bias, 4 * o) } else { (&self.requant, 4 * ((array - 1) * self.rows + o)) };
        match bytes.get(at..at + 4) {
            Some(&[a, b, c, d]) => i32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    fn set_param(&mut self, array: usize, o: usize, v: i32) {
        let (bytes, at) =
            if array == 0 { (&mut self.bias, 4 * o) } else { (&mut self.requant, 4 * ((array - 1) * self.rows + o)) };
        if let Some(slot) = bytes.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    }

    /// The kernel parameters borrowing this case.
    pub fn params(&self) -> DenseI8<'_> {
        let r = 4 * self.rows;
        DenseI8 {
            rows: self.rows,
            cols: self.cols,
            layout: WeightLayout::RowMajor,
            weights: &self.weights,
            bias: &self.bias,
            multipliers: self.requant.get(..r).unwrap_or(&[]),
            shifts: self.requant.get(r..2 * r).unwrap_or(&[]),
            weight_sums: self.requant.get(2 * r..).unwrap_or(&[]),
            out_zero_point: self.out_zero_point,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// Output elements past `batch * rows` (or an elementwise kernel's length) in the suite's
/// buffers, which no kernel may write.
const TAIL: usize = 7;

/// Runs `k.dense_i8` on case `c` (weights read at byte offset `misalign` of a copy, the output
/// followed by a few elements no kernel may write) and the reference on the same arguments, and
/// returns the first difference.
pub fn check_dense_i8(
    k: &Kernels,
    c: &DenseI8Case,
    misalign: usize,
    family: &'static str,
    case: usize,
) -> Result<(), Mismatch> {
    let mut shifted = vec![0u8; misalign];
    shifted.extend_from_slice(&c.weights);
    let p = DenseI8 { weights: shifted.get(misalign..).unwrap_or(&[]), ..c.params() };
    dense_i8_call(k, &p, &c.x, c.batch, c.batch * c.rows + TAIL, At { family, case })
}

/// One int8 Dense call of `k` and of the reference into `out_len` outputs, checked against the
/// contract and against each other.
fn dense_i8_call(k: &Kernels, p: &DenseI8<'_>, x: &[i8], batch: usize, out_len: usize, at: At) -> Result<(), Mismatch> {
    dense_i8_call_at(k, p, x, batch, 0, out_len, at)
}

/// As [`dense_i8_call`], with the output slice starting `out_offset` bytes into its buffer
/// (whose bytes before it must stay untouched too).
fn dense_i8_call_at(
    k: &Kernels,
    p: &DenseI8<'_>,
    x: &[i8],
    batch: usize,
    out_offset: usize,
    out_len: usize,
    at: At,
) -> Result<(), Mismatch> {
    let (s_got, s_want) = i8::sentinels(at);
    let mut got = vec![s_got; out_offset + out_len];
    let mut want = vec![s_want; out_offset + out_len];
    (k.dense_i8)(p, x, batch, &mut got[out_offset..]);
    (REFERENCE.dense_i8)(p, x, batch, &mut want[out_offset..]);
    let written = out_offset..out_offset + p.samples(x, batch, &got[out_offset..]) * p.rows;
    let call = Call { at, kernel: "dense_i8", shape: (p.rows, p.cols, batch) };
    call.check(&got, &want, out_offset, written, i8::same)
}

/// Float weights as a blob stores them (f16 or f32, little-endian) from int8 codes: `code / 128`.
fn float_weights(codes: &[u8], f16: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(codes.len() * if f16 { 2 } else { 4 });
    for &w in codes {
        let v = w as i8 as f32 / 128.0;
        if f16 {
            out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
        } else {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The float Dense kernels this build carries: name, candidate, reference, bytes per weight.
fn float_denses(k: &Kernels) -> Vec<(&'static str, DenseFloatFn, DenseFloatFn, usize)> {
    let mut v = Vec::new();
    if cfg!(feature = "f32") {
        v.push(("dense_f32", k.dense_f32, REFERENCE.dense_f32, 4));
    }
    if cfg!(feature = "f16") {
        v.push(("dense_f16", k.dense_f16, REFERENCE.dense_f16, 2));
    }
    v
}

/// One float Dense call of a candidate and the reference into `out_len` outputs: written
/// outputs bit-equal (infinities) or within `tol` of each other (never NaN), the rest
/// untouched.
fn dense_float_call(
    (kernel, candidate, reference, weight_bytes): (&'static str, DenseFloatFn, DenseFloatFn, usize),
    p: &DenseFloat<'_>,
    x: &[f32],
    batch: usize,
    out_len: usize,
    tol: f32,
    at: At,
) -> Result<(), Mismatch> {
    let (s_got, s_want) = f32::sentinels(at);
    let mut got = vec![s_got; out_len];
    let mut want = vec![s_want; out_len];
    candidate(p, x, batch, &mut got);
    reference(p, x, batch, &mut want);
    let written = 0..p.samples(weight_bytes, x, batch, &got) * p.rows;
    let call = Call { at, kernel, shape: (p.rows, p.cols, batch) };
    call.check(&got, &want, 0, written, |g, w| g.same(w) || (g - w).abs() <= tol)
}

/// One call of an elementwise kernel over `len` inputs into `out_len` outputs: `run(false,
/// out)` runs the candidate, `run(true, out)` the reference. Unless `writes` is false (a
/// lookup table too short), the first `min(len, out_len)` outputs must be the same bits.
fn elementwise_call<T: Element>(
    kernel: &'static str,
    len: usize,
    out_len: usize,
    writes: bool,
    mut run: impl FnMut(bool, &mut [T]),
    at: At,
) -> Result<(), Mismatch> {
    let (s_got, s_want) = T::sentinels(at);
    let mut got = vec![s_got; out_len];
    let mut want = vec![s_want; out_len];
    run(false, &mut got);
    run(true, &mut want);
    let written = 0..if writes { len.min(out_len) } else { 0 };
    Call { at, kernel, shape: (0, len, 1) }.check(&got, &want, 0, written, T::same)
}

/// Runs every family of the suite on `k`, with `cases` random cases; returns the number of
/// checks made. Fits a microcontroller (a few hundred KiB of heap); hosts add
/// [`check_large_layers`].
pub fn check_kernels(k: &Kernels, cases: usize, seed: u64) -> Result<usize, Mismatch> {
    let mut n = check_random(k, cases, seed)?;
    n += check_tails(k, seed)?;
    n += check_short_slices(k, seed)?;
    n += check_unaligned(k, seed)?;
    n += check_extremes(k, seed)?;
    n += check_elementwise(k, seed)?;
    n += check_weight_stream(k, seed)?;
    n += check_conv(k, cases / 10, seed)?;
    n += check_conv_short_slices(k, seed)?;
    n += check_upsample(k, seed)?;
    n += check_add(k, seed)?;
    Ok(n)
}

/// `cases` random cases of every kernel: int8 Dense up to 48 x 300 x 5 (weights at every
/// alignment), the weight stream over its weights, the table lookup over its inputs, input
/// quantization, f32 activations and pixels over floats of every kind (NaN and infinities
/// included), and float Dense with the same shape.
pub fn check_random(k: &Kernels, cases: usize, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let at = At { family: "random", case };
        let c = DenseI8Case::random(&mut rng, 48, 300, 5);
        check_dense_i8(k, &c, case % 4, at.family, case)?;

        let (got_sum, want_sum) = ((k.weight_stream)(&c.weights), (REFERENCE.weight_stream)(&c.weights));
        if got_sum != want_sum {
            return Err(at.mismatch("weight_stream", (0, c.weights.len(), 1), 0, got_sum as f64, want_sum as f64));
        }

        let table: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
        lut_call(k, &table, &c.x, c.x.len() + TAIL, at)?;

        // Floats of every kind, and ones near the int8 grid.
        let xf: Vec<f32> = (0..c.x.len() + 17)
            .map(|i| match i % 7 {
                0 => f32::from_bits(rng.next_u64() as u32),
                1 => (c.x[i % c.x.len()] as f32 + 0.5) * 0.25,
                _ => (rng.next_u64() as i32 as f32) * 1e-9,
            })
            .collect();
        let scale = 0.01 + (case % 13) as f32 * 0.037;
        quantize_call(k, &xf, scale, c.out_zero_point, xf.len() + TAIL, at)?;
        if cfg!(any(feature = "f32", feature = "f16")) {
            let acts = [
                ActKind::None,
                ActKind::Relu,
                ActKind::LeakyRelu,
                ActKind::Sigmoid,
                ActKind::Tanh,
                ActKind::Silu,
                ActKind::HardSwish,
            ];
            activation_call(k, acts[case % acts.len()], &xf, xf.len() + TAIL, at)?;
            let probabilities: Vec<f32> = xf.iter().map(|v| v * 1e8).collect();
            pixels_call(k, &probabilities, xf.len() + TAIL, at)?;
        }

        let xf: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
        let bias: Vec<u8> = (0..c.rows).flat_map(|o| (o as f32 * 0.01).to_le_bytes()).collect();
        for dense in float_denses(k) {
            let w = float_weights(&c.weights, dense.3 == 2);
            let p = DenseFloat { rows: c.rows, cols: c.cols, weights: &w, bias: &bias, relu: case % 2 == 0 };
            // Summation orders differ by a few ulps of the sum of magnitudes (at most 2 cols).
            dense_float_call(dense, &p, &xf, c.batch, c.batch * c.rows + TAIL, 2e-5 * c.cols as f32, at)?;
        }
    }
    Ok(cases)
}

/// `k.lut_i8` against the reference with `out_len` outputs.
fn lut_call(k: &Kernels, table: &[u8], x: &[i8], out_len: usize, at: At) -> Result<(), Mismatch> {
    let run = |reference: bool, out: &mut [i8]| (if reference { REFERENCE.lut_i8 } else { k.lut_i8 })(table, x, out);
    elementwise_call("lut_i8", x.len(), out_len, table.len() >= 256, run, at)
}

/// `k.quantize_i8` against the reference with `out_len` outputs.
fn quantize_call(k: &Kernels, x: &[f32], scale: f32, zero_point: i32, out_len: usize, at: At) -> Result<(), Mismatch> {
    let run = |reference: bool, out: &mut [i8]| {
        (if reference { REFERENCE.quantize_i8 } else { k.quantize_i8 })(x, scale, zero_point, out)
    };
    elementwise_call("quantize_i8", x.len(), out_len, true, run, at)
}

/// `k.activation_f32` against the reference with `out_len` outputs.
fn activation_call(k: &Kernels, act: ActKind, x: &[f32], out_len: usize, at: At) -> Result<(), Mismatch> {
    let run = |reference: bool, out: &mut [f32]| {
        (if reference { REFERENCE.activation_f32 } else { k.activation_f32 })(act, 0.1, x, out)
    };
    elementwise_call("activation_f32", x.len(), out_len, true, run, at)
}

/// `k.pixels_f32` against the reference with `out_len` outputs.
fn pixels_call(k: &Kernels, x: &[f32], out_len: usize, at: At) -> Result<(), Mismatch> {
    let run = |reference: bool, out: &mut [u8]| (if reference { REFERENCE.pixels_f32 } else { k.pixels_f32 })(x, out);
    elementwise_call("pixels_f32", x.len(), out_len, true, run, at)
}

/// Every short row and tail: `cols` from 1 to 80 (every tail of 4-, 8-, 16-, 32- and 64-column
/// blocks, and the entry points of unrolled loops) at row counts around 2-, 4-, 8- and 16-row
/// blocks and batches around 2- and 4-sample blocks; then float rows whose next row starts with
/// an infinite weight, which a read past a row's end would turn into NaN.
pub fn check_tails(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x7A11);
    let mut case = 0;
    for cols in 1..=80 {
        for (i, &rows) in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17].iter().enumerate() {
            let batch = [1, 2, 3, 5, 4, 1, 9, 2, 3, 1][(i + cols) % 10];
            let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
            check_dense_i8(k, &c, case % 4, "tails", case)?;
            case += 1;
        }
    }
    for cols in 1..=40 {
        let (rows, batch) = (9, 3);
        let mut values = vec![0.25f32; rows * cols];
        for o in 1..rows {
            values[o * cols] = f32::INFINITY;
        }
        let x = vec![1.0f32; batch * cols];
        let bias = vec![0u8; 4 * rows];
        for (name, kernel, _, weight_bytes) in float_denses(k) {
            let w: Vec<u8> = if weight_bytes == 2 {
                values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
            } else {
                values.iter().flat_map(|&v| v.to_le_bytes()).collect()
            };
            let p = DenseFloat { rows, cols, weights: &w, bias: &bias, relu: false };
            let mut got = vec![0f32; batch * rows];
            kernel(&p, &x, batch, &mut got);
            for s in 0..batch {
                let want = 0.25 * cols as f32;
                if got[s * rows] != want {
                    let at = At { family: "tails (infinite next row)", case };
                    return Err(at.mismatch(name, (rows, cols, batch), s * rows, got[s * rows] as f64, want as f64));
                }
            }
            case += 1;
        }
    }
    Ok(case)
}

/// Slices that do not match their shapes, for every batched kernel. Short parameter arrays
/// (each one, by one byte or to nothing), zero and overflowing shapes, and a layout-sized call
/// with `batch` 0 must write nothing; short and long inputs and outputs and batches larger than
/// the slices hold must give exactly the whole samples that fit, and nothing past them.
pub fn check_short_slices(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x5407);
    let mut case = 0;
    // Shapes on both sides of every implementation's fast-path limits (16 columns, 8 and 16 rows).
    for &(rows, cols, batch) in &[(1, 1, 1), (3, 7, 2), (6, 37, 3), (20, 50, 3), (17, 16, 4), (16, 64, 5), (8, 15, 2)] {
        let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
        let full = c.params();
        let r = 4 * rows;
        let nothing: [(&str, DenseI8<'_>); 12] = [
            ("weights short by one", DenseI8 { weights: &c.weights[..c.weights.len() - 1], ..full }),
            ("no weights", DenseI8 { weights: &[], ..full }),
            ("bias short by one byte", DenseI8 { bias: &c.bias[..r - 1], ..full }),
            ("one multiplier", DenseI8 { multipliers: &full.multipliers[..4], ..full }),
            ("no shifts", DenseI8 { shifts: &[], ..full }),
            ("weight sums short by one byte", DenseI8 { weight_sums: &full.weight_sums[..r - 1], ..full }),
            ("rows 0", DenseI8 { rows: 0, ..full }),
            ("cols 0", DenseI8 { cols: 0, ..full }),
            ("rows * cols overflowing", DenseI8 { rows: usize::MAX / 2, cols: 3, ..full }),
            ("cols overflowing", DenseI8 { cols: usize::MAX, ..full }),
            ("4 * rows overflowing", DenseI8 { rows: usize::MAX / 4 + 1, cols: 1, ..full }),
            ("nothing", DenseI8 { rows: 0, cols: 0, weights: &[], bias: &[], ..full }),
        ];
        for (_, p) in &nothing {
            dense_i8_call(k, p, &c.x, batch, batch * rows + TAIL, At { family: "short slices", case })?;
            case += 1;
        }
        let out = batch * rows;
        let x = c.x.len();
        // (inputs, outputs, batch claimed)
        let calls = [
            (x - 1, out, batch),
            (x - cols, out, batch),
            (0, out, batch),
            (x, out - 1, batch),
            (x, rows - 1, batch),
            (x, 0, batch),
            (x, out + rows + TAIL, batch),
            (x, out, batch + 1 + rng.below(3) as usize),
            (x, out, usize::MAX),
            (x, out, 0),
            (x - 1, out - 1, batch + 1),
        ];
        for &(xn, on, claimed) in &calls {
            dense_i8_call(k, &full, &c.x[..xn], claimed, on, At { family: "short slices", case })?;
            case += 1;
        }
        // The same for float Dense.
        let xf: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
        let bias: Vec<u8> = (0..rows).flat_map(|o| (o as f32 * 0.01).to_le_bytes()).collect();
        for dense in float_denses(k) {
            let w = float_weights(&c.weights, dense.3 == 2);
            let full = DenseFloat { rows, cols, weights: &w, bias: &bias, relu: false };
            let nothing = [
                DenseFloat { weights: &w[..w.len() - 1], ..full },
                DenseFloat { bias: &bias[..r - 1], ..full },
                DenseFloat { rows: 0, ..full },
                DenseFloat { cols: 0, ..full },
                DenseFloat { rows: usize::MAX / 2, cols: 3, ..full },
            ];
            let tol = 2e-5 * cols as f32;
            for p in &nothing {
                dense_float_call(dense, p, &xf, batch, out + TAIL, tol, At { family: "short slices", case })?;
                case += 1;
            }
            for &(xn, on, claimed) in &calls {
                dense_float_call(dense, &full, &xf[..xn], claimed, on, tol, At { family: "short slices", case })?;
                case += 1;
            }
        }
    }
    Ok(case)
}

/// Every array at every alignment: int8 weights, bias, multipliers, shifts and weight sums at
/// byte offsets 1 to 7 (the blob aligns arrays, but kernels take any slice), outputs at odd
/// addresses, and f32 and f16 weights and f32 biases at every byte offset.
pub fn check_unaligned(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0xA119);
    let mut case = 0;
    for &(rows, cols, batch) in &[(37, 203, 5), (16, 64, 3), (5, 17, 1), (9, 33, 2), (20, 400, 1), (17, 513, 2)] {
        let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
        for offset in 1..=7 {
            let shifted = |b: &[u8]| {
                let mut v = vec![0u8; offset];
                v.extend_from_slice(b);
                v
            };
            let p = c.params();
            let (w, bias, m, s, sums) = (
                shifted(p.weights),
                shifted(p.bias),
                shifted(p.multipliers),
                shifted(p.shifts),
                shifted(p.weight_sums),
            );
            let q = DenseI8 {
                weights: &w[offset..],
                bias: &bias[offset..],
                multipliers: &m[offset..],
                shifts: &s[offset..],
                weight_sums: &sums[offset..],
                ..p
            };
            let mut x = vec![0i8; offset];
            x.extend_from_slice(&c.x);
            let at = At { family: "unaligned", case };
            dense_i8_call_at(k, &q, &x[offset..], batch, offset, batch * rows + TAIL, at)?;
            case += 1;
        }
        let xf: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
        for dense in float_denses(k) {
            let w = float_weights(&c.weights, dense.3 == 2);
            let bias: Vec<u8> = (0..rows).flat_map(|o| (o as f32 * 0.01 - 0.1).to_le_bytes()).collect();
            for offset in 1..=3 {
                let mut ws = vec![0u8; offset];
                ws.extend_from_slice(&w);
                let mut bs = vec![0u8; offset];
                bs.extend_from_slice(&bias);
                let p = DenseFloat { rows, cols, weights: &ws[offset..], bias: &bs[offset..], relu: offset == 2 };
                let at = At { family: "unaligned", case };
                dense_float_call(dense, &p, &xf, batch, batch * rows + TAIL, 2e-5 * cols as f32, at)?;
                case += 1;
            }
        }
    }
    Ok(case)
}

/// Extreme values, zero points and parameters. Inputs of -128 and 127 against weights of
/// +-127, their signs all agreeing (the accumulator's extreme) or alternating, on shapes at
/// the block boundaries of every implementation; biases at the ends of i32; every edge of the
/// valid multipliers and shifts; output zero points at both ends with full, ReLU and narrow
/// clamps; an accumulator that wraps past i32; and parameters no valid blob holds (negative
/// multipliers, shifts outside -31..=30, zero points outside int8, an empty clamp), whose
/// results the reference defines all the same.
pub fn check_extremes(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0xE7);
    let mut case = 0;
    let shapes =
        [(1, 1), (4, 16), (3, 7), (5, 8), (7, 31), (4, 32), (9, 33), (16, 64), (5, 65), (17, 400), (3, 513), (5, 1025)];
    type Fill = fn(usize) -> i8;
    let fills: [(Fill, Fill); 5] = [
        (|_| -128, |_| 127),
        (|_| -128, |_| -127),
        (|_| 127, |_| 127),
        (|_| 127, |_| -127),
        (|k| if k % 2 == 0 { -128 } else { 127 }, |k| if k % 3 == 0 { 127 } else { -127 }),
    ];
    for (round, &(rows, cols)) in shapes.iter().cycle().take(3 * shapes.len()).enumerate() {
        let batch = [1, 2, 3, 4, 9][round % 5];
        for &(xf, wf) in &fills {
            let mut c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
            c.x.iter_mut().enumerate().for_each(|(i, v)| *v = xf(i));
            c.weights.iter_mut().enumerate().for_each(|(i, w)| *w = wf(i) as u8);
            c.resum();
            c.out_zero_point = [-128, 127, 0, -1][case % 4];
            (c.act_min, c.act_max) = match case % 3 {
                0 => (-128, 127),
                1 => (c.out_zero_point as i8, 127),
                _ => (-5, 5),
            };
            let bias = [i32::MAX, i32::MIN, 0, -1, 1 << 24][case % 5];
            for o in 0..rows {
                c.set_bias(o, if o % 3 == 0 { bias } else { c.weight_sum(o).wrapping_mul(-128) });
                c.set_multiplier(o, [0, 1, 1 << 30, (1 << 30) + 1, i32::MAX][rng.below(5) as usize]);
                c.set_shift(o, [-31, -30, -20, -1, 0, 1, 29, 30][rng.below(8) as usize]);
            }
            check_dense_i8(k, &c, case % 2, "extremes", case)?;
            case += 1;
        }
    }
    // Parameters outside the parser's ranges, mixed with valid rows so that vector epilogues
    // hand single lanes to the scalar definition.
    for round in 0..120 {
        let rows = 1 + rng.below(40) as usize;
        let cols = 1 + rng.below(100) as usize;
        let batch = 1 + rng.below(9) as usize;
        let mut c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
        for o in 0..rows {
            if rng.below(3) == 0 {
                c.set_multiplier(o, [-1, i32::MIN, -(1 << 30), 2][rng.below(4) as usize]);
            }
            if rng.below(3) == 0 {
                c.set_shift(o, [31, 32, 40, -32, -40, i32::MIN, i32::MAX][rng.below(7) as usize]);
            }
        }
        match round % 3 {
            0 => c.out_zero_point = [1000, -1000, i32::MAX, i32::MIN][rng.below(4) as usize],
            1 => (c.act_min, c.act_max) = (10, -10),
            _ => {}
        }
        check_dense_i8(k, &c, round % 3, "odd parameters", case)?;
        case += 1;
    }
    // 140000 products of 127 * -128 sum past i32::MIN: every kernel must wrap the same way.
    let cols = 140_000;
    let mut c = DenseI8Case::with_shape(&mut rng, 2, 1, 1);
    c.cols = cols;
    c.weights = vec![127; 2 * cols];
    c.x = vec![-128; cols];
    c.resum();
    for (o, bias) in [0, -5].into_iter().enumerate() {
        c.set_bias(o, bias);
        c.set_multiplier(o, 1 << 30);
        c.set_shift(o, -24);
    }
    (c.out_zero_point, c.act_min, c.act_max) = (0, -128, 127);
    check_dense_i8(k, &c, 0, "wrapping accumulator", case)?;
    Ok(case + 1)
}

/// Elementwise kernels at every length from 0 to 140 and a few long ones (every tail of 16-,
/// 32- and 64-element vectors), with outputs shorter and longer than the inputs; the lookup
/// table also with every code in order and with tables too short to map (which write
/// nothing); input quantization with zero points at both ends of int8 and scales from tiny to
/// huge.
pub fn check_elementwise(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0xE1E);
    let mut case = 0;
    for n in (0..=140).chain([255, 1000, 4097]) {
        let x: Vec<i8> =
            (0..n).map(|i| if i < 256 && i % 2 == 0 { (i as i32 - 128) as i8 } else { rng.next_u64() as i8 }).collect();
        let table_len = [256, 256, 300, 255, 0][n % 5];
        let table: Vec<u8> = (0..table_len).map(|_| rng.next_u64() as u8).collect();
        let xf: Vec<f32> = (0..n)
            .map(|i| match i % 5 {
                0 => f32::from_bits(rng.next_u64() as u32),
                1 => [0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, f32::MIN_POSITIVE][rng.below(6) as usize],
                2 => (i as f32 - 70.0) * 0.5, // ties of the rounding
                _ => (rng.below(2001) as f32 - 1000.0) / 100.0,
            })
            .collect();
        let (scale, zero_point) = ([1.0, 0.5, 1e-30, 3e30, 1.0 / 255.0][n % 5], [-128, 127, 0, -1, 5][(n / 5) % 5]);
        for out_len in [n + TAIL, n.saturating_sub(3)] {
            let at = At { family: "elementwise lengths", case };
            lut_call(k, &table, &x, out_len, at)?;
            quantize_call(k, &xf, scale, zero_point, out_len, at)?;
            if cfg!(any(feature = "f32", feature = "f16")) {
                let acts = [
                    ActKind::None,
                    ActKind::Relu,
                    ActKind::LeakyRelu,
                    ActKind::Sigmoid,
                    ActKind::Tanh,
                    ActKind::Silu,
                    ActKind::HardSwish,
                ];
                activation_call(k, acts[n % acts.len()], &xf, out_len, at)?;
                pixels_call(k, &xf, out_len, at)?;
            }
            case += 1;
        }
    }
    // Every code in order, through a table that reverses them: each quarter and its edges.
    let table: Vec<u8> = (0..=255u8).rev().collect();
    let x: Vec<i8> = (-128..=127).collect();
    lut_call(k, &table, &x, 256, At { family: "elementwise every code", case })?;
    Ok(case + 1)
}

/// The weight stream over every length from 0 to 300 and a few around 8 KiB, at byte offsets
/// 0, 1 and 3, of random bytes, all -128 (which bounds int16 partial sums from below) and all
/// 127 (from above).
pub fn check_weight_stream(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x57);
    let mut case = 0;
    for n in (0..=300).chain([8191, 8192, 8257]) {
        let random: Vec<u8> = (0..n + 3).map(|_| rng.next_u64() as u8).collect();
        for bytes in [random, vec![0x80; n + 3], vec![0x7F; n + 3]] {
            for start in [0, 1, 3] {
                let s = &bytes[start..start + n];
                let (got, want) = ((k.weight_stream)(s), (REFERENCE.weight_stream)(s));
                if got != want {
                    let at = At { family: "weight stream", case };
                    return Err(at.mismatch("weight_stream", (0, n, 1), start, got as f64, want as f64));
                }
                case += 1;
            }
        }
    }
    Ok(case)
}

/// For hosts: the shipped models' layers (decoder 20-400-784, encoder 784-400-(20, 20)), odd
/// neighbours of them, and layers wider than kernels keep in registers or pack (up to 2049
/// columns), at batches 1, 4, 16, 17, 33, 64 and 67, in int8 and float; int8 layers of random
/// shapes at every batch from 1 to 70; and a weight stream of 32 MiB,
/// whose sum wraps past i32.
pub fn check_large_layers(k: &Kernels, seed: u64) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(seed ^ 0x1A26E);
    let mut case = 0;
    let shapes = [
        (400, 20),
        // The conv VAE decoder's first layer: many short rows (groups of 64 and a tail).
        (3136, 20),
        (3144, 20),
        (100, 20),
        (784, 400),
        (400, 784),
        (20, 400),
        (40, 400),
        (783, 401),
        (401, 785),
        (33, 1024),
        (17, 1025),
        (37, 2049),
    ];
    for &(rows, cols) in &shapes {
        for batch in [1, 4, 16, 17, 33, 64, 67] {
            let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
            check_dense_i8(k, &c, 0, "large layers", case)?;
            let xf: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
            let bias: Vec<u8> = (0..rows).flat_map(|o| (o as f32 * 0.01).to_le_bytes()).collect();
            if batch != 64 {
                for dense in float_denses(k) {
                    let w = float_weights(&c.weights, dense.3 == 2);
                    let p = DenseFloat { rows, cols, weights: &w, bias: &bias, relu: batch % 2 == 1 };
                    let at = At { family: "large layers", case };
                    dense_float_call(dense, &p, &xf, batch, batch * rows + TAIL, 2e-5 * cols as f32, at)?;
                }
            }
            case += 1;
        }
    }
    // Every batch from 1 to 70 (every sample-group size and remainder of batched kernels),
    // with column tails and rows on both sides of their row blocks.
    for batch in 1..=70 {
        let (rows, cols) = (1 + rng.below(40) as usize, 1 + rng.below(100) as usize);
        let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
        check_dense_i8(k, &c, batch % 4, "every batch", case)?;
        case += 1;
    }
    case += check_conv_large(k, seed)?;
    let big = vec![0x7Fu8; 1 << 25];
    let (got, want) = ((k.weight_stream)(&big), (REFERENCE.weight_stream)(&big));
    if got != want {
        return Err(At { family: "large layers", case }.mismatch(
            "weight_stream",
            (0, big.len(), 1),
            0,
            got as f64,
            want as f64,
        ));
    }
    Ok(case + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_available_table_keeps_the_contract() {
        for k in super::super::available() {
            match check_kernels(k, 300, 0x5EED) {
                // The 300 random cases and the 800 of `check_tails` at least: every family ran.
                Ok(n) => assert!(n > 300 + 800, "{}: only {n} checks", k.name),
                Err(m) => panic!("{}: {m}", k.name),
            }
        }
    }

    /// The suite can fail: a table that breaks the contract in each way is caught.
    #[test]
    fn the_suite_catches_broken_kernels() {
        fn off_by_one(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            (REFERENCE.dense_i8)(p, x, batch, out);
            if let Some(v) = out.get_mut(p.rows.saturating_sub(1)) {
                *v = v.wrapping_add(1);
            }
        }
        fn writes_past(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            (REFERENCE.dense_i8)(p, x, batch, out);
            if let Some(v) = out.get_mut(batch.saturating_mul(p.rows)) {
                *v = 0;
            }
        }
        fn all_or_nothing(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            if x.len() >= batch * p.cols && out.len() >= batch * p.rows {
                (REFERENCE.dense_i8)(p, x, batch, out);
            }
        }
        fn ignores_weight_sums(p: &DenseI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            (REFERENCE.dense_i8)(&DenseI8 { weight_sums: &[0; 1 << 12], ..*p }, x, batch, out);
        }
        fn maps_what_it_can(table: &[u8], x: &[i8], out: &mut [i8]) {
            for (y, &v) in out.iter_mut().zip(x) {
                if let Some(&t) = table.get((v as i32 + 128) as usize) {
                    *y = t as i8;
                }
            }
        }
        fn flips_a_bit(x: &[f32], out: &mut [u8]) {
            (REFERENCE.pixels_f32)(x, out);
            if let Some(y) = out.first_mut() {
                *y ^= 1;
            }
        }
        fn conv_pads_with_zero(p: &super::super::ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            (REFERENCE.conv_i8)(&super::super::ConvI8 { in_zero_point: 0, ..*p }, x, batch, out);
        }
        fn conv_transpose_flips(p: &super::super::ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
            // The textbook mistake: the flipped filter without the zero insertion it goes with.
            let taps = p.geometry.kh as usize * p.geometry.kw as usize;
            let flipped: Vec<u8> = p.weights.chunks(taps.max(1)).flat_map(|t| t.iter().rev().copied()).collect();
            (REFERENCE.conv_transpose_i8)(&super::super::ConvI8 { weights: &flipped, ..*p }, x, batch, out);
        }
        fn conv_f32_ignores_groups(p: &super::super::ConvFloat<'_>, x: &[f32], batch: usize, out: &mut [f32]) {
            // Every group reads the first group's input channels.
            let (groups, len) = (p.geometry.groups.max(1) as usize, p.in_shape.elements().unwrap_or(0));
            let mut copy = x.to_vec();
            for sample in copy.chunks_exact_mut(len.max(1)) {
                let per_group = len / groups;
                for g in 1..groups {
                    sample.copy_within(..per_group, g * per_group);
                }
            }
            (REFERENCE.conv_f32)(p, &copy, batch, out)
        }
        fn upsample_rounds(p: &super::super::Upsample, x: &[i8], batch: usize, out: &mut [i8]) {
            (REFERENCE.upsample_i8)(p, x, batch, out);
            if p.factor_h == 2 {
                if let Some(v) = out.get_mut(1) {
                    *v = v.wrapping_add(1);
                }
            }
        }
        fn add_wraps(p: &super::super::AddI8, a: &[i8], b: &[i8], out: &mut [i8]) {
            for ((y, &a), &b) in out.iter_mut().zip(a).zip(b) {
                let q = crate::quant::add_i8(a, b, p.zero_points, p.multipliers, p.shifts, -128, 127);
                *y = q.clamp(p.act_min, p.act_max.max(p.act_min)).wrapping_add((a == 127) as i8);
            }
        }
        let broken = [
            Kernels { name: "conv pads with zero", conv_i8: conv_pads_with_zero, ..REFERENCE },
            Kernels { name: "conv transpose flips", conv_transpose_i8: conv_transpose_flips, ..REFERENCE },
            Kernels { name: "conv f32 ignores groups", conv_f32: conv_f32_ignores_groups, ..REFERENCE },
            Kernels { name: "upsample rounds", upsample_i8: upsample_rounds, ..REFERENCE },
            Kernels { name: "add wraps", add_i8: add_wraps, ..REFERENCE },
            Kernels { name: "off by one", dense_i8: off_by_one, ..REFERENCE },
            Kernels { name: "writes past", dense_i8: writes_past, ..REFERENCE },
            Kernels { name: "all or nothing", dense_i8: all_or_nothing, ..REFERENCE },
            Kernels { name: "ignores weight sums", dense_i8: ignores_weight_sums, ..REFERENCE },
            Kernels { name: "maps what it can", lut_i8: maps_what_it_can, ..REFERENCE },
            Kernels { name: "flips a bit", pixels_f32: flips_a_bit, ..REFERENCE },
        ];
        for k in &broken {
            assert!(check_kernels(k, 20, 1).is_err(), "{} passed the suite", k.name);
        }
    }
}
