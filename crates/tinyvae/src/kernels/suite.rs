//! The generic kernel test suite: random shapes (odd lengths, tails) and values (extremes, zero
//! points) run through a candidate kernel table and through [`super::REFERENCE`]. int8 outputs
//! must be identical; float outputs must agree within a relative tolerance.
//!
//! Every optimized implementation instantiates it (`check_kernels(&MY_TABLE, ...)`), on the host
//! and under QEMU. It needs `alloc` for its scratch buffers.

#![cfg(feature = "alloc")]

use alloc::vec;
use alloc::vec::Vec;

use super::{DenseFloat, DenseI8, Kernels, REFERENCE};
use crate::format::WeightLayout;
use crate::rng::Rng;

/// The first disagreement found, with the case that shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// Which kernel.
    pub kernel: &'static str,
    /// Case number (replay with the same seed).
    pub case: usize,
    /// `(rows, cols, batch)` of the case.
    pub shape: (usize, usize, usize),
    /// Flat output index.
    pub index: usize,
    /// What the candidate gave and what the reference gave, as f64.
    pub got: f64,
    /// See `got`.
    pub want: f64,
}

/// Value distributions the suite draws from; extremes matter for saturation and rounding.
fn draw_i8(rng: &mut Rng, style: u32) -> i8 {
    match style {
        0 => (rng.below(256) as i32 - 128) as i8,
        1 => [-128i8, -127, 127, 0, -1, 1][rng.below(6) as usize],
        _ => (rng.below(9) as i32 - 4) as i8,
    }
}

/// A random int8 Dense problem: weights, folded bias, requant parameters and input.
pub struct DenseI8Case {
    /// Output channels.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Batch size.
    pub batch: usize,
    /// Weights, row-major.
    pub weights: Vec<u8>,
    /// int32 LE biases.
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
    /// Draws a case with `rows` in 1..=max_rows and `cols` in 1..=max_cols.
    pub fn random(rng: &mut Rng, max_rows: u32, max_cols: u32, max_batch: u32) -> Self {
        let rows = 1 + rng.below(max_rows) as usize;
        let cols = 1 + rng.below(max_cols) as usize;
        let batch = 1 + rng.below(max_batch) as usize;
        let style = rng.below(3);
        let weights: Vec<u8> = (0..rows * cols).map(|_| draw_i8(rng, style).max(-127) as u8).collect();
        let x = (0..batch * cols).map(|_| draw_i8(rng, style)).collect();
        let mut bias = Vec::new();
        let (mut mults, mut shifts, mut sums) = (Vec::new(), Vec::new(), Vec::new());
        for o in 0..rows {
            let b = (rng.next_u64() as i32) >> (8 + rng.below(16));
            bias.extend_from_slice(&b.to_le_bytes());
            let m = (1i32 << 30) + (rng.next_u64() as u32 >> 2) as i32;
            let s = -(rng.below(20) as i32) + 1;
            let sum: i32 = weights[o * cols..(o + 1) * cols].iter().map(|&w: &u8| w as i8 as i32).sum();
            mults.extend_from_slice(&m.to_le_bytes());
            shifts.extend_from_slice(&s.to_le_bytes());
            sums.extend_from_slice(&sum.to_le_bytes());
        }
        let requant = [mults, shifts, sums].concat();
        let out_zero_point = rng.below(256) as i32 - 128;
        let (act_min, act_max) = if rng.below(2) == 0 { (-128, 127) } else { (out_zero_point as i8, 127) };
        DenseI8Case { rows, cols, batch, weights, bias, requant, out_zero_point, act_min, act_max, x }
    }

    /// The kernel parameters borrowing this case.
    pub fn params(&self) -> DenseI8<'_> {
        DenseI8 {
            rows: self.rows,
            cols: self.cols,
            layout: WeightLayout::RowMajor,
            weights: &self.weights,
            bias: &self.bias,
            multipliers: &self.requant[..4 * self.rows],
            shifts: &self.requant[4 * self.rows..8 * self.rows],
            weight_sums: &self.requant[8 * self.rows..],
            out_zero_point: self.out_zero_point,
            act_min: self.act_min,
            act_max: self.act_max,
        }
    }
}

/// Checks every kernel of `k` against the reference over `cases` random cases.
pub fn check_kernels(k: &Kernels, cases: usize, seed: u64) -> Result<(), Mismatch> {
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let c = DenseI8Case::random(&mut rng, 48, 300, 5);
        let p = c.params();
        let mut got = vec![0i8; c.batch * c.rows];
        let mut want = vec![0i8; c.batch * c.rows];
        (k.dense_i8)(&p, &c.x, c.batch, &mut got);
        (REFERENCE.dense_i8)(&p, &c.x, c.batch, &mut want);
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            return Err(Mismatch {
                kernel: "dense_i8",
                case,
                shape: (c.rows, c.cols, c.batch),
                index: i,
                got: got[i] as f64,
                want: want[i] as f64,
            });
        }

        let (got_sum, want_sum) = ((k.weight_stream)(&c.weights), (REFERENCE.weight_stream)(&c.weights));
        if got_sum != want_sum {
            return Err(Mismatch {
                kernel: "weight_stream",
                case,
                shape: (c.rows, c.cols, 1),
                index: 0,
                got: got_sum as f64,
                want: want_sum as f64,
            });
        }

        let table: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
        let mut lut_got = vec![0i8; c.x.len()];
        let mut lut_want = vec![0i8; c.x.len()];
        (k.lut_i8)(&table, &c.x, &mut lut_got);
        (REFERENCE.lut_i8)(&table, &c.x, &mut lut_want);
        if let Some(i) = (0..lut_got.len()).find(|&i| lut_got[i] != lut_want[i]) {
            return Err(Mismatch {
                kernel: "lut_i8",
                case,
                shape: (0, c.x.len(), 1),
                index: i,
                got: lut_got[i] as f64,
                want: lut_want[i] as f64,
            });
        }

        // Input quantization: the same bytes (a correctly rounded division everywhere).
        let xf: Vec<f32> = (0..c.x.len() + 17)
            .map(|i| match i % 7 {
                0 => f32::from_bits(rng.next_u64() as u32),
                1 => (c.x[i % c.x.len()] as f32 + 0.5) * 0.25,
                _ => (rng.next_u64() as i32 as f32) * 1e-9,
            })
            .collect();
        let (scale, zero_point) = (0.01 + (case % 13) as f32 * 0.037, c.out_zero_point);
        let mut q_got = vec![0i8; xf.len()];
        let mut q_want = vec![0i8; xf.len()];
        (k.quantize_i8)(&xf, scale, zero_point, &mut q_got);
        (REFERENCE.quantize_i8)(&xf, scale, zero_point, &mut q_want);
        if let Some(i) = (0..xf.len()).find(|&i| q_got[i] != q_want[i]) {
            return Err(Mismatch {
                kernel: "quantize_i8",
                case,
                shape: (0, xf.len(), 1),
                index: i,
                got: q_got[i] as f64,
                want: q_want[i] as f64,
            });
        }

        // f32 activations and pixels: the reference's loops in wider vectors, the same values.
        if cfg!(any(feature = "f32", feature = "f16")) {
            use crate::format::ActKind;
            let acts = [ActKind::None, ActKind::Relu, ActKind::LeakyRelu, ActKind::Sigmoid, ActKind::Tanh];
            let act = acts[case % acts.len()];
            let mut a_got = vec![0f32; xf.len()];
            let mut a_want = vec![0f32; xf.len()];
            (k.activation_f32)(act, 0.1, &xf, &mut a_got);
            (REFERENCE.activation_f32)(act, 0.1, &xf, &mut a_want);
            if let Some(i) = (0..xf.len()).find(|&i| a_got[i].to_bits() != a_want[i].to_bits()) {
                return Err(Mismatch {
                    kernel: "activation_f32",
                    case,
                    shape: (0, xf.len(), 1),
                    index: i,
                    got: a_got[i] as f64,
                    want: a_want[i] as f64,
                });
            }
            let probabilities: Vec<f32> = xf.iter().map(|v| v * 1e8).collect();
            let mut p_got = vec![0u8; xf.len()];
            let mut p_want = vec![0u8; xf.len()];
            (k.pixels_f32)(&probabilities, &mut p_got);
            (REFERENCE.pixels_f32)(&probabilities, &mut p_want);
            if let Some(i) = (0..xf.len()).find(|&i| p_got[i] != p_want[i]) {
                return Err(Mismatch {
                    kernel: "pixels_f32",
                    case,
                    shape: (0, xf.len(), 1),
                    index: i,
                    got: p_got[i] as f64,
                    want: p_want[i] as f64,
                });
            }
        }

        // Float kernels of the precisions this build carries.
        let floats = [
            ("dense_f32", k.dense_f32, REFERENCE.dense_f32, 4usize, cfg!(feature = "f32")),
            ("dense_f16", k.dense_f16, REFERENCE.dense_f16, 2usize, cfg!(feature = "f16")),
        ];
        for (name, kernel, reference, wsize, _) in floats.into_iter().filter(|f| f.4) {
            let xf: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
            let wf: Vec<u8> = c
                .weights
                .iter()
                .flat_map(|&w| {
                    let v = w as i8 as f32 / 128.0;
                    if wsize == 4 {
                        v.to_le_bytes().to_vec()
                    } else {
                        half::f16::from_f32(v).to_le_bytes().to_vec()
                    }
                })
                .collect();
            let bf: Vec<u8> = (0..c.rows).flat_map(|o| (o as f32 * 0.01).to_le_bytes()).collect();
            let p = DenseFloat { rows: c.rows, cols: c.cols, weights: &wf, bias: &bf, relu: case % 2 == 0 };
            let mut got = vec![0f32; c.batch * c.rows];
            let mut want = vec![0f32; c.batch * c.rows];
            kernel(&p, &xf, c.batch, &mut got);
            reference(&p, &xf, c.batch, &mut want);
            // Different summation orders differ by a few ulps of the sum of magnitudes.
            let tol = 1e-5 * c.cols as f32 * 2.0;
            if let Some(i) = (0..got.len()).find(|&i| (got[i] - want[i]).abs() > tol) {
                return Err(Mismatch {
                    kernel: name,
                    case,
                    shape: (c.rows, c.cols, c.batch),
                    index: i,
                    got: got[i] as f64,
                    want: want[i] as f64,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_available_table_matches_the_reference() {
        for k in super::super::available() {
            if let Err(m) = super::check_kernels(k, 300, 0x5EED) {
                panic!("{}: {m:?}", k.name);
            }
        }
    }
}
