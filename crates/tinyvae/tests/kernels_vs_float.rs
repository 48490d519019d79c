//! int8 and f16 kernels against plain float math, within bounds derived from the quantization
//! steps (not tuned to pass): the kernels compute what the quantized layer means.

use tinyvae::format::WeightLayout;
use tinyvae::kernels::{DenseFloat, DenseI8, REFERENCE};
use tinyvae::quant::{dequantize_i8, quantize_i8, quantize_multiplier};
use tinyvae::Rng;

struct Layer {
    rows: usize,
    cols: usize,
    w: Vec<f32>,
    b: Vec<f32>,
}

fn random_layer(rng: &mut Rng, rows: usize, cols: usize) -> Layer {
    let s = 1.0 / (cols as f32).sqrt();
    Layer {
        rows,
        cols,
        w: (0..rows * cols).map(|_| (rng.uniform() * 2.0 - 1.0) * s).collect(),
        b: (0..rows).map(|_| (rng.uniform() * 2.0 - 1.0) * 0.1).collect(),
    }
}

fn float_dense(l: &Layer, x: &[f32]) -> Vec<f32> {
    (0..l.rows).map(|o| l.b[o] + (0..l.cols).map(|k| l.w[o * l.cols + k] * x[k]).sum::<f32>()).collect()
}

#[test]
fn int8_dense_matches_float_within_quantization_error() {
    let mut rng = Rng::new(11);
    for &(rows, cols) in &[(1usize, 1usize), (7, 33), (64, 20), (400, 20), (784, 400), (20, 784)] {
        let l = random_layer(&mut rng, rows, cols);
        // Input quantization: asymmetric over [-2, 3].
        let (lo, hi) = (-2.0f32, 3.0f32);
        let s_in = (hi - lo) / 255.0;
        let zp_in = (-128.0 - lo / s_in).round() as i32;
        let x: Vec<f32> = (0..cols).map(|_| lo + rng.uniform() * (hi - lo)).collect();
        let xq: Vec<i8> = x.iter().map(|&v| quantize_i8(v, s_in, zp_in)).collect();
        let xd: Vec<f32> = xq.iter().map(|&q| dequantize_i8(q, s_in, zp_in)).collect();
        let want = float_dense(&l, &x);
        let (omin, omax) = want.iter().fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        let s_out = (omax - omin) / 255.0;
        let zp_out = (-128.0 - omin / s_out).round() as i32;
        let mut weights = Vec::new();
        let mut bias = Vec::new();
        let (mut mults, mut shifts, mut sums) = (Vec::new(), Vec::new(), Vec::new());
        let mut s_w = Vec::new();
        for o in 0..rows {
            let row = &l.w[o * cols..(o + 1) * cols];
            let s = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            let q: Vec<i8> = row.iter().map(|&v| (v / s).round().clamp(-127.0, 127.0) as i8).collect();
            let sum: i32 = q.iter().map(|&v| v as i32).sum();
            let b = (l.b[o] / (s * s_in)).round() as i32 - zp_in * sum;
            bias.extend_from_slice(&b.to_le_bytes());
            let (m, sh) = quantize_multiplier((s as f64 * s_in as f64) / s_out as f64).unwrap();
            mults.extend_from_slice(&m.to_le_bytes());
            shifts.extend_from_slice(&sh.to_le_bytes());
            sums.extend_from_slice(&sum.to_le_bytes());
            weights.extend(q.iter().map(|&v| v as u8));
            s_w.push(s);
        }
        let p = DenseI8 {
            rows,
            cols,
            layout: WeightLayout::RowMajor,
            weights: &weights,
            bias: &bias,
            multipliers: &mults,
            shifts: &shifts,
            weight_sums: &sums,
            out_zero_point: zp_out,
            act_min: -128,
            act_max: 127,
        };
        let mut out = vec![0i8; rows];
        (REFERENCE.dense_i8)(&p, &xq, 1, &mut out);
        for o in 0..rows {
            let got = dequantize_i8(out[o], s_out, zp_out);
            // Bound: half an output step, plus the input and weight rounding propagated through
            // the dot product, plus the bias rounding.
            let row = &l.w[o * cols..(o + 1) * cols];
            let prop: f32 = (0..cols).map(|k| row[k].abs() * s_in / 2.0 + xd[k].abs() * s_w[o] / 2.0).sum();
            let bound = s_out / 2.0 + prop + s_w[o] * s_in + 1e-5;
            assert!((got - want[o]).abs() <= bound, "{rows}x{cols} row {o}: {got} vs {} (bound {bound})", want[o]);
        }
    }
}

#[test]
fn f16_dense_matches_f32_within_half_precision() {
    let mut rng = Rng::new(12);
    for &(rows, cols) in &[(3usize, 5usize), (400, 20), (784, 400)] {
        let l = random_layer(&mut rng, rows, cols);
        let x: Vec<f32> = (0..cols).map(|_| rng.gaussian()).collect();
        let w16: Vec<u8> = l.w.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        let w32: Vec<u8> = l.w.iter().flat_map(|&v| v.to_le_bytes()).collect();
        let b: Vec<u8> = l.b.iter().flat_map(|&v| v.to_le_bytes()).collect();
        let mut out16 = vec![0f32; rows];
        let mut out32 = vec![0f32; rows];
        let p16 = DenseFloat { rows, cols, weights: &w16, bias: &b, relu: false };
        let p32 = DenseFloat { rows, cols, weights: &w32, bias: &b, relu: false };
        (REFERENCE.dense_f16)(&p16, &x, 1, &mut out16);
        (REFERENCE.dense_f32)(&p32, &x, 1, &mut out32);
        let want = float_dense(&l, &x);
        for o in 0..rows {
            // f16 keeps 11 significant bits: each weight moves by at most 2^-11 of itself.
            let mag: f32 = (0..cols).map(|k| (l.w[o * cols + k] * x[k]).abs()).sum();
            let bound16 = mag * 2f32.powi(-11) + mag * 1e-6 * cols as f32;
            assert!((out16[o] - want[o]).abs() <= bound16, "f16 {rows}x{cols} row {o}");
            assert!((out32[o] - want[o]).abs() <= mag * 1e-6 * cols as f32 + 1e-6, "f32 row {o}");
        }
    }
}

#[test]
fn relu_fold_and_lut_behave_as_documented() {
    // act_min at the output zero point is ReLU: nothing below the code for 0.0.
    let weights = [0x81u8, 0x7F]; // -127, 127
    let bias = 0i32.to_le_bytes();
    let (mults, shifts, sums) = ((1i32 << 30).to_le_bytes(), 0i32.to_le_bytes(), 0i32.to_le_bytes());
    let p = DenseI8 {
        rows: 1,
        cols: 2,
        layout: WeightLayout::RowMajor,
        weights: &weights,
        bias: &bias,
        multipliers: &mults,
        shifts: &shifts,
        weight_sums: &sums,
        out_zero_point: -10,
        act_min: -10,
        act_max: 127,
    };
    let mut out = [0i8; 1];
    (REFERENCE.dense_i8)(&p, &[100, 0], 1, &mut out); // acc = -12700 -> * 0.5 -> clamp
    assert_eq!(out[0], -10);
    (REFERENCE.dense_i8)(&p, &[0, 1], 1, &mut out); // acc = 127 -> 63.5 -> 64 - 10
    assert_eq!(out[0], 54);
    let table: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(3)).collect();
    let x = [-128i8, -1, 0, 127];
    let mut y = [0i8; 4];
    (REFERENCE.lut_i8)(&table, &x, &mut y);
    assert_eq!(y, [0, (127u8.wrapping_mul(3)) as i8, (128u8.wrapping_mul(3)) as i8, (255u8.wrapping_mul(3)) as i8]);
}
