//! The x86_64 kernel tables against the scalar reference: the generic suite (the kernel
//! contract: short slices, alignment, extreme values, zero points...) on every table, plus what
//! is specific to these kernels: every column tail of their 32- and 64-byte vectors at row
//! counts around their 4-, 8- and 16-row blocks, the AVX-512 kernel's paired sample groups,
//! and f16 weights of every magnitude through the F16C widening.
//!
//! Tables this CPU lacks fall back to the reference inside each kernel, so their runs pass
//! trivially; the test prints which tables really ran.
#![cfg(target_arch = "x86_64")]

use tinyvae::kernels::suite::{self, check_dense_i8, DenseI8Case};
use tinyvae::kernels::{self, x86_64, DenseFloat, Kernels, REFERENCE};
use tinyvae::Rng;

fn tables() -> [&'static Kernels; 4] {
    let usable: Vec<&str> = x86_64::usable().iter().map(|k| k.name).collect();
    eprintln!("x86_64 tables usable on this CPU: {usable:?}");
    x86_64::all()
}

#[test]
fn the_generic_suite_passes_for_every_table() {
    for k in tables() {
        for seed in [1, 2, 3] {
            if let Err(m) = suite::check_kernels(k, 1000, seed) {
                panic!("{}: {m}", k.name);
            }
        }
        if let Err(m) = suite::check_large_layers(k, 7) {
            panic!("{}: {m}", k.name);
        }
    }
}

#[test]
fn random_small_shapes() {
    for k in tables() {
        let mut rng = Rng::new(0x1234);
        for case in 0..4000 {
            let c = DenseI8Case::random(&mut rng, 70, 70, 9);
            if let Err(m) = check_dense_i8(k, &c, case % 4, "random small shapes", case) {
                panic!("{}: {m}", k.name);
            }
        }
    }
}

#[test]
fn every_cols_tail_and_row_remainder() {
    for k in tables() {
        let mut rng = Rng::new(99);
        let mut case = 0;
        for cols in 1..=130 {
            for &rows in &[1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33] {
                for &batch in &[1, 2, 3, 4, 5, 8, 9] {
                    let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
                    if let Err(m) = check_dense_i8(k, &c, 0, "x86 tails", case) {
                        panic!("{}: {m}", k.name);
                    }
                    case += 1;
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
        for case in 0..300 {
            let rows = 16 + rng.below(40) as usize;
            let cols = 1 + rng.below(if case % 10 == 0 { 1100 } else { 200 }) as usize;
            let batch = [21, 22, 23, 27, 31, 32, 33, 38, 47, 54, 64, 70][case % 12];
            let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
            if let Err(m) = check_dense_i8(k, &c, case % 2, "paired groups", case) {
                panic!("{}: {m}", k.name);
            }
        }
    }
}

/// ReLU-like inputs (mostly the zero point -128, the rest small) with a chosen number of quads
/// holding an over-limit pair (two activations whose `x + 128` sum past 258) in every sample
/// group: the AVX2 kernel's unsigned path with no excess, with excess quads up to their cap and
/// one past it (the sign-trick fallback), at column tails, one- and two-vector groups and
/// several groups, against weights of every style (the extremes +-127 included).
#[test]
fn relu_like_inputs_with_over_limit_pairs() {
    for k in tables() {
        let mut rng = Rng::new(0x5EED);
        let mut case = 0;
        for cols in [2usize, 3, 4, 5, 7, 8, 20, 33, 64, 101, 130, 400, 401, 1023, 1024] {
            for &rows in &[8, 9, 17] {
                for &batch in &[4, 5, 8, 9, 16, 17, 33] {
                    let quads = cols.div_ceil(4);
                    for over in [0, 1, quads / 4, quads / 4 + 1, quads] {
                        let mut c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
                        for v in c.x.iter_mut() {
                            // x + 128 <= 129: every pair under the limit.
                            *v = if rng.below(2) == 0 { -128 } else { (rng.below(130) as i32 - 128) as i8 };
                        }
                        for g in (0..batch).step_by(16) {
                            for q in 0..over.min(quads) {
                                // One sample of the group, one pair of the quad, inside cols.
                                let s = g + rng.below((batch - g).min(16) as u32) as usize;
                                let first = 4 * q + 2 * rng.below(2) as usize;
                                let first = if first + 1 < cols { first } else { 4 * q };
                                if first + 1 < cols {
                                    let big = (1 + rng.below(127)) as i8;
                                    c.x[s * cols + first] = 127;
                                    c.x[s * cols + first + 1] = big.max(2);
                                }
                            }
                        }
                        c.draw_parameters(&mut rng);
                        if let Err(m) = check_dense_i8(k, &c, case % 2, "over-limit pairs", case) {
                            panic!("{}: {m}", k.name);
                        }
                        case += 1;
                    }
                }
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
