//! Property tests of the x86_64 kernel tables against the scalar reference, beyond the generic
//! suite: many random small shapes (every tail length), the shipped models' large layers,
//! extreme values and parameters, unaligned weights, batches that leave partial blocks, and
//! buffers too short to run on. int8 must match byte for byte; floats within a tolerance.
//!
//! Tables this CPU lacks fall back to the reference inside each kernel, so their runs pass
//! trivially; the test prints which tables really ran.
#![cfg(target_arch = "x86_64")]

use tinyvae::format::WeightLayout;
use tinyvae::kernels::suite::{check_kernels, DenseI8Case};
use tinyvae::kernels::{self, x86_64, DenseFloat, DenseI8, Kernels, REFERENCE};
use tinyvae::Rng;

fn tables() -> [&'static Kernels; 4] {
    let usable: Vec<&str> = x86_64::usable().iter().map(|k| k.name).collect();
    eprintln!("x86_64 tables usable on this CPU: {usable:?}");
    x86_64::all()
}

fn assert_dense_i8_exact(k: &Kernels, c: &DenseI8Case, what: &str) {
    let p = c.params();
    let mut got = vec![0x55u8 as i8; c.batch * c.rows];
    let mut want = vec![0x55u8 as i8; c.batch * c.rows];
    (k.dense_i8)(&p, &c.x, c.batch, &mut got);
    (REFERENCE.dense_i8)(&p, &c.x, c.batch, &mut want);
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        panic!(
            "{}: {what}: rows {} cols {} batch {}: output {i} (sample {}, row {}) is {} but the reference gives {}",
            k.name,
            c.rows,
            c.cols,
            c.batch,
            i / c.rows,
            i % c.rows,
            got[i],
            want[i]
        );
    }
}

/// Recomputes the weight sums (after a test edits the weights).
fn resum(c: &mut DenseI8Case) {
    let r = c.rows;
    for o in 0..r {
        let sum: i32 = c.weights[o * c.cols..(o + 1) * c.cols].iter().map(|&w| w as i8 as i32).sum();
        c.requant[8 * r + 4 * o..8 * r + 4 * o + 4].copy_from_slice(&sum.to_le_bytes());
    }
}

fn set_param(c: &mut DenseI8Case, array: usize, o: usize, v: i32) {
    let at = array * 4 * c.rows + 4 * o;
    c.requant[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn case(rng: &mut Rng, rows: usize, cols: usize, batch: usize) -> DenseI8Case {
    // Draw with the suite's generator, then force the shape.
    let mut c = DenseI8Case::random(rng, 1, 1, 1);
    let style = rng.below(3);
    let draw = |rng: &mut Rng| -> i8 {
        match style {
            0 => rng.below(256) as i32 as u8 as i8,
            1 => [-128i8, -127, 127, 0, -1, 1][rng.below(6) as usize],
            _ => (rng.below(9) as i32 - 4) as i8,
        }
    };
    c.rows = rows;
    c.cols = cols;
    c.batch = batch;
    c.weights = (0..rows * cols).map(|_| draw(rng).max(-127) as u8).collect();
    c.x = (0..batch * cols).map(|_| draw(rng)).collect();
    c.bias = (0..rows).flat_map(|_| ((rng.next_u64() as i32) >> (8 + rng.below(16))).to_le_bytes()).collect();
    c.requant = vec![0; 12 * rows];
    for o in 0..rows {
        set_param(&mut c, 0, o, (1 << 30) + (rng.next_u64() as u32 >> 2) as i32);
        set_param(&mut c, 1, o, 1 - rng.below(20) as i32);
    }
    resum(&mut c);
    c
}

#[test]
fn random_small_shapes_every_tail() {
    for k in tables() {
        let mut rng = Rng::new(0x1234);
        for i in 0..4000 {
            let c = DenseI8Case::random(&mut rng, 70, 70, 9);
            assert_dense_i8_exact(k, &c, &format!("random case {i}"));
        }
    }
}

#[test]
fn every_cols_tail_and_row_remainder() {
    for k in tables() {
        let mut rng = Rng::new(99);
        for cols in 1..=130 {
            for &rows in &[1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33] {
                for &batch in &[1, 2, 3, 4, 5, 8, 9] {
                    let c = case(&mut rng, rows, cols, batch);
                    assert_dense_i8_exact(k, &c, "sweep");
                }
            }
        }
    }
}

/// Batches that reach the kernels' multi-group paths (AVX-512 pairs two 16-sample groups from
/// 22 samples on), with every column tail, partial second groups and widths on both sides of
/// the pairing limit (512 columns).
#[test]
fn batches_that_pair_sample_groups() {
    for k in tables() {
        let mut rng = Rng::new(0xBA7C4);
        for i in 0..300 {
            let rows = 16 + rng.below(40) as usize;
            let cols = 1 + rng.below(if i % 10 == 0 { 1100 } else { 200 }) as usize;
            let batch = [21, 22, 23, 27, 31, 32, 33, 38, 47, 54, 64, 70][i % 12];
            let c = case(&mut rng, rows, cols, batch);
            assert_dense_i8_exact(k, &c, &format!("paired case {i}"));
        }
    }
}

#[test]
fn shipped_model_layers_at_batch_1_4_and_64() {
    for k in tables() {
        let mut rng = Rng::new(7);
        // Decoder 20-400-784, encoder 784-400-(20, 20), odd neighbours, and layers wider than
        // the kernels keep in registers (1024 columns) or pack (1024).
        for &(rows, cols) in &[
            (400, 20),
            (784, 400),
            (400, 784),
            (20, 400),
            (40, 400),
            (783, 401),
            (401, 785),
            (33, 1024),
            (17, 1025),
            (37, 2049),
        ] {
            for &batch in &[1, 4, 64, 67] {
                let c = case(&mut rng, rows, cols, batch);
                assert_dense_i8_exact(k, &c, "large layer");
            }
        }
    }
}

#[test]
fn extreme_values_and_zero_points() {
    for k in tables() {
        let mut rng = Rng::new(3);
        for round in 0..400 {
            let rows = 1 + rng.below(40) as usize;
            let cols = 1 + rng.below(300) as usize;
            let batch = 1 + rng.below(9) as usize;
            let mut c = case(&mut rng, rows, cols, batch);
            // All inputs -128 against weights of +-127: the largest products, with signs that
            // either all agree (the accumulator's extreme) or alternate.
            c.x.iter_mut().for_each(|v| *v = if round % 3 == 0 { -128 } else { [-128, 127][rng.below(2) as usize] });
            let agree = round % 2 == 0;
            for (i, w) in c.weights.iter_mut().enumerate() {
                *w = if agree || i % 2 == 0 { 127u8 } else { (-127i8) as u8 };
            }
            resum(&mut c);
            c.out_zero_point = [-128, 127, 0, -1][round % 4];
            (c.act_min, c.act_max) = match round % 3 {
                0 => (-128, 127),
                1 => (c.out_zero_point as i8, 127),
                _ => (-5, 5),
            };
            for o in 0..rows {
                let m = [0, 1 << 30, i32::MAX, (1 << 30) + 1][rng.below(4) as usize];
                let s = [-31, -20, -1, 0, 1, 30][rng.below(6) as usize];
                set_param(&mut c, 0, o, m);
                set_param(&mut c, 1, o, s);
            }
            let bias = [i32::MAX, i32::MIN, 0, -1][round % 4];
            c.bias = (0..rows).flat_map(|_| bias.to_le_bytes()).collect();
            assert_dense_i8_exact(k, &c, &format!("extremes round {round}"));
        }
    }
}

#[test]
fn parameters_outside_the_parser_ranges_still_match_the_reference() {
    // The blob parser never lets these through, but kernels take any DenseI8: the vector
    // epilogue must hand them to the scalar definition rather than compute something else.
    for k in tables() {
        let mut rng = Rng::new(5);
        for round in 0..300 {
            let rows = 1 + rng.below(40) as usize;
            let cols = 1 + rng.below(100) as usize;
            let batch = 1 + rng.below(9) as usize;
            let mut c = case(&mut rng, rows, cols, batch);
            for o in 0..rows {
                if rng.below(3) == 0 {
                    set_param(&mut c, 0, o, [-1, i32::MIN, -(1 << 30)][rng.below(3) as usize]);
                }
                if rng.below(3) == 0 {
                    set_param(&mut c, 1, o, [31, -32, -40, 31][rng.below(4) as usize]);
                }
            }
            match round % 3 {
                0 => c.out_zero_point = [1000, -1000, i32::MAX, i32::MIN][rng.below(4) as usize],
                1 => (c.act_min, c.act_max) = (10, -10),
                _ => {}
            }
            assert_dense_i8_exact(k, &c, &format!("odd parameters round {round}"));
        }
    }
}

#[test]
fn unaligned_weights_and_parameters() {
    for k in tables() {
        let mut rng = Rng::new(11);
        for offset in 1..=7 {
            let c = case(&mut rng, 37, 203, 5);
            let p = c.params();
            let shifted = |b: &[u8]| {
                let mut v = vec![0u8; offset];
                v.extend_from_slice(b);
                v
            };
            let (w, bias, m, s, ws) = (
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
                weight_sums: &ws[offset..],
                ..p
            };
            let mut got = vec![0i8; c.batch * c.rows];
            let mut want = vec![0i8; c.batch * c.rows];
            (k.dense_i8)(&q, &c.x[..], c.batch, &mut got);
            (REFERENCE.dense_i8)(&p, &c.x, c.batch, &mut want);
            assert_eq!(got, want, "{} offset {offset}", k.name);
        }
    }
}

#[test]
fn short_buffers_leave_the_output_alone() {
    // Only tables that really run: a fallback to the reference computes what it can instead.
    for &k in x86_64::usable() {
        let mut rng = Rng::new(13);
        let c = case(&mut rng, 20, 50, 3);
        let p = c.params();
        let untouched = vec![7i8; c.batch * c.rows];
        let mut out = untouched.clone();
        let short_x = &c.x[..c.x.len() - 1];
        (k.dense_i8)(&p, short_x, c.batch, &mut out);
        assert_eq!(out, untouched, "{}: short input", k.name);
        let mut short_out = vec![7i8; c.batch * c.rows - 1];
        (k.dense_i8)(&p, &c.x, c.batch, &mut short_out);
        assert!(short_out.iter().all(|&v| v == 7), "{}: short output", k.name);
        for cut in 0..5 {
            let mut q = p;
            match cut {
                0 => q.weights = &p.weights[..p.weights.len() - 1],
                1 => q.bias = &p.bias[..p.bias.len() - 4],
                2 => q.multipliers = &p.multipliers[..4],
                3 => q.shifts = &[],
                _ => q.weight_sums = &p.weight_sums[..p.weight_sums.len() - 1],
            }
            let mut out = untouched.clone();
            (k.dense_i8)(&q, &c.x, c.batch, &mut out);
            assert_eq!(out, untouched, "{}: short parameter array {cut}", k.name);
        }
        // Shapes whose products overflow usize.
        let huge = DenseI8 { rows: usize::MAX / 2, cols: 3, ..p };
        (k.dense_i8)(&huge, &c.x, c.batch, &mut out);
        (k.dense_i8)(&p, &c.x, usize::MAX, &mut out);
        assert_eq!(out, untouched, "{}: overflowing shapes", k.name);
        // Empty everything.
        let empty = DenseI8 { rows: 0, cols: 0, ..p };
        (k.dense_i8)(&empty, &[], 0, &mut []);

        let mut f = vec![1.5f32; 10];
        let weights = vec![0u8; 4 * 10 * 10];
        let bias = vec![0u8; 40];
        let fp = DenseFloat { rows: 10, cols: 10, weights: &weights, bias: &bias, relu: false };
        (k.dense_f32)(&fp, &[0.0; 9], 1, &mut f);
        (k.dense_f16)(&DenseFloat { weights: &weights[..199], ..fp }, &[0.0; 10], 1, &mut f);
        assert!(f.iter().all(|&v| v == 1.5), "{}: short float buffers", k.name);
    }
}

#[test]
fn lut_matches_for_every_length_and_short_tables() {
    for k in tables() {
        let mut rng = Rng::new(17);
        for n in (0..300).chain([1000, 4096, 4097]) {
            let table: Vec<u8> = (0..256).map(|_| rng.next_u64() as u8).collect();
            let x: Vec<i8> =
                (0..n).map(|i| if i < 256 { (i as i32 - 128) as i8 } else { rng.next_u64() as i8 }).collect();
            let (mut got, mut want) = (vec![3i8; n], vec![3i8; n]);
            (k.lut_i8)(&table, &x, &mut got);
            (REFERENCE.lut_i8)(&table, &x, &mut want);
            assert_eq!(got, want, "{} n {n}", k.name);
            // Output shorter than the input, and a table too short to map everything.
            let (mut got, mut want) = (vec![3i8; n / 2], vec![3i8; n / 2]);
            (k.lut_i8)(&table[..200], &x, &mut got);
            (REFERENCE.lut_i8)(&table[..200], &x, &mut want);
            assert_eq!(got, want, "{} n {n}, short table", k.name);
        }
    }
}

#[test]
fn weight_stream_sums_every_byte() {
    for k in tables() {
        let mut rng = Rng::new(19);
        for n in (0..600).chain([313_600, 321_600 + 13]) {
            let w: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            for start in [0, 1, 3] {
                let s = &w[start.min(n)..];
                assert_eq!((k.weight_stream)(s), (REFERENCE.weight_stream)(s), "{} n {n} start {start}", k.name);
            }
        }
        // Sums that wrap i32: 2^25 bytes of -128.
        let big = vec![0x80u8; 1 << 25];
        assert_eq!((k.weight_stream)(&big), (REFERENCE.weight_stream)(&big), "{} wrapping", k.name);
    }
}

fn float_case(rng: &mut Rng, rows: usize, cols: usize, batch: usize, f16: bool) -> (Vec<u8>, Vec<u8>, Vec<f32>) {
    let weights: Vec<u8> = (0..rows * cols)
        .flat_map(|_| {
            let v = (rng.below(2001) as f32 - 1000.0) / 1000.0;
            if f16 {
                half::f16::from_f32(v).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        })
        .collect();
    let bias: Vec<u8> = (0..rows).flat_map(|_| ((rng.below(201) as f32 - 100.0) / 100.0).to_le_bytes()).collect();
    let x: Vec<f32> = (0..batch * cols).map(|_| (rng.below(2001) as f32 - 1000.0) / 500.0).collect();
    (weights, bias, x)
}

#[test]
fn float_dense_random_and_large_shapes() {
    for k in tables() {
        let mut rng = Rng::new(23);
        let shapes = (0..1500)
            .map(|_| (1 + rng.below(70) as usize, 1 + rng.below(70) as usize, 1 + rng.below(9) as usize))
            .chain([(400, 20, 1), (784, 400, 1), (784, 400, 64), (400, 784, 5), (20, 400, 67)])
            .collect::<Vec<_>>();
        for (i, &(rows, cols, batch)) in shapes.iter().enumerate() {
            for f16 in [false, true] {
                let (w, b, x) = float_case(&mut rng, rows, cols, batch, f16);
                let p = DenseFloat { rows, cols, weights: &w, bias: &b, relu: i % 2 == 0 };
                let (mut got, mut want) = (vec![0f32; batch * rows], vec![0f32; batch * rows]);
                let (kernel, reference) =
                    if f16 { (k.dense_f16, REFERENCE.dense_f16) } else { (k.dense_f32, REFERENCE.dense_f32) };
                kernel(&p, &x, batch, &mut got);
                reference(&p, &x, batch, &mut want);
                // Summation order differs: allow a few ulps of the sum of |w x|.
                let tol = 4.0 * f32::EPSILON * (cols as f32) * 2.0;
                for j in 0..got.len() {
                    assert!(
                        (got[j] - want[j]).abs() <= tol,
                        "{} f16={f16} rows {rows} cols {cols} batch {batch}: output {j}: {} vs {}",
                        k.name,
                        got[j],
                        want[j]
                    );
                }
            }
        }
    }
}

#[test]
fn float_tails_never_read_the_next_row() {
    // An infinite weight right after a row's end: an over-read times a zero-padded activation
    // would make that row NaN where the reference gives a finite value.
    for k in tables() {
        for cols in 1..=40 {
            for f16 in [false, true] {
                let rows = 9;
                let batch = 3;
                let mut vals = vec![0.25f32; rows * cols];
                for o in 1..rows {
                    vals[o * cols] = f32::INFINITY;
                }
                let w: Vec<u8> = vals
                    .iter()
                    .flat_map(|&v| {
                        if f16 {
                            half::f16::from_f32(v).to_le_bytes().to_vec()
                        } else {
                            v.to_le_bytes().to_vec()
                        }
                    })
                    .collect();
                let b = vec![0u8; 4 * rows];
                let x = vec![1.0f32; batch * cols];
                let p = DenseFloat { rows, cols, weights: &w, bias: &b, relu: false };
                let mut got = vec![0f32; batch * rows];
                (if f16 { k.dense_f16 } else { k.dense_f32 })(&p, &x, batch, &mut got);
                for s in 0..batch {
                    let row0 = got[s * rows];
                    assert_eq!(row0, 0.25 * cols as f32, "{} f16={f16} cols {cols}", k.name);
                }
            }
        }
    }
}

#[test]
fn the_generic_suite_passes_for_every_table_with_other_seeds() {
    for k in tables() {
        for seed in [1, 2, 3] {
            if let Err(m) = check_kernels(k, 300, seed) {
                panic!("{}: {m:?}", k.name);
            }
        }
    }
}

#[test]
fn best_is_an_x86_64_table_when_one_is_usable() {
    if let Some(first) = x86_64::usable().first() {
        assert!(std::ptr::eq(kernels::best(), *first));
    }
    assert!(kernels::available().any(|k| k.name == "scalar"));
    assert_eq!(WeightLayout::RowMajor, DenseI8Case::random(&mut Rng::new(1), 2, 2, 1).params().layout);
}

/// f16 weights of every finite magnitude (subnormals, zeros of both signs, 65504) and inputs on
/// both sides of the integer-widening path's limit (|x| < 2^15), one sample at a time (that
/// path's batch) and in blocks: within a tolerance of the reference's sum of magnitudes.
#[test]
fn f16_weights_of_every_magnitude() {
    for k in tables() {
        let mut rng = Rng::new(0xF16);
        for i in 0..400 {
            let rows = 16 + rng.below(40) as usize;
            let cols = 1 + rng.below(if i % 8 == 0 { 2300 } else { 300 }) as usize;
            let batch = [1, 1, 2, 5][i % 4];
            let big_inputs = i % 5 == 0;
            let weights: Vec<half::f16> = (0..rows * cols)
                .map(|_| loop {
                    let w = half::f16::from_bits(rng.next_u64() as u16);
                    if w.is_finite() {
                        break w;
                    }
                })
                .collect();
            let x: Vec<f32> = (0..batch * cols)
                .map(|_| {
                    let v = (rng.below(2001) as f32 - 1000.0) / 500.0;
                    if big_inputs && rng.below(50) == 0 {
                        v * 40_000.0
                    } else {
                        v
                    }
                })
                .collect();
            let w: Vec<u8> = weights.iter().flat_map(|w| w.to_le_bytes()).collect();
            let b: Vec<u8> = (0..rows).flat_map(|o| (o as f32 - 7.5).to_le_bytes()).collect();
            let p = DenseFloat { rows, cols, weights: &w, bias: &b, relu: i % 3 == 0 };
            let mut got = vec![0f32; batch * rows];
            let mut want = vec![0f32; batch * rows];
            (k.dense_f16)(&p, &x, batch, &mut got);
            (REFERENCE.dense_f16)(&p, &x, batch, &mut want);
            for s in 0..batch {
                for o in 0..rows {
                    let magnitude: f32 =
                        (0..cols).map(|c| (weights[o * cols + c].to_f32() * x[s * cols + c]).abs()).sum::<f32>() + 8.0;
                    let (g, e) = (got[s * rows + o], want[s * rows + o]);
                    assert!(
                        (g - e).abs() <= 1e-6 * cols as f32 * magnitude,
                        "{} case {i}: rows {rows} cols {cols} batch {batch}: out[{s}][{o}] = {g}, reference {e}",
                        k.name
                    );
                }
            }
        }
    }
}
