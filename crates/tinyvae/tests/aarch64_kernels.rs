//! Property tests of the aarch64 kernel tables against the scalar reference, beyond the generic
//! suite: many random shapes (tails in both dimensions, every batch size up to 9), the shipped
//! decoder's shapes, extreme values and zero points, unaligned weights, and short slices.
//!
//! int8 results must be byte-exact; every output buffer has a sentinel tail that must come back
//! untouched. Under QEMU `scripts/test-aarch64.sh` runs these with `-cpu max` (dotprod) and
//! `-cpu cortex-a72` (NEON only) and sets `TINYVAE_EXPECT_KERNELS` so that a detection that
//! silently fell back to fewer tables fails.
#![cfg(target_arch = "aarch64")]

use tinyvae::kernels::suite::DenseI8Case;
use tinyvae::kernels::{self, DenseFloat, Kernels, REFERENCE};
use tinyvae::Rng;

/// Extra output bytes past `batch * rows`, which no kernel may write.
const SENTINEL_LEN: usize = 7;

/// The optimized tables this CPU runs (what `usable()` returned).
fn native_tables() -> Vec<&'static Kernels> {
    kernels::available().filter(|k| k.name != REFERENCE.name).collect()
}

#[test]
fn detected_tables_are_the_expected_ones() {
    let names: Vec<&str> = kernels::available().map(|k| k.name).collect();
    // The test script greps these two lines.
    println!("tinyvae aarch64 best kernels: {}", kernels::best().name);
    println!("tinyvae aarch64 available kernels: {}", names.join(","));
    if let Ok(expected) = std::env::var("TINYVAE_EXPECT_KERNELS") {
        assert_eq!(names.join(","), expected, "kernel tables detected on this CPU");
    }
    // Every aarch64 Linux core has NEON: losing it would mean the detection broke.
    assert!(names.contains(&"aarch64-neon"), "{names:?}");
}

/// An int8 value drawn in one of the styles the bugs hide in.
fn draw(rng: &mut Rng, style: u32, weight: bool) -> i8 {
    let v = match style {
        0 => (rng.below(256) as i32 - 128) as i8,
        1 => [-128i8, -127, 127, 0, -1, 1][rng.below(6) as usize],
        2 => (rng.below(9) as i32 - 4) as i8,
        // All-extreme: the largest |accumulator| for the shape.
        _ => {
            if weight {
                [127i8, -127][rng.below(2) as usize]
            } else {
                -128
            }
        }
    };
    if weight {
        v.max(-127) // the format never has -128 weights
    } else {
        v
    }
}

/// A random int8 Dense case with the given shape; zero points often at either end of the range.
fn case(rng: &mut Rng, rows: usize, cols: usize, batch: usize) -> DenseI8Case {
    let style = rng.below(4);
    let weights: Vec<u8> = (0..rows * cols).map(|_| draw(rng, style, true) as u8).collect();
    let x: Vec<i8> = (0..batch * cols).map(|_| draw(rng, style, false)).collect();
    let pick_zero_point = |rng: &mut Rng| match rng.below(4) {
        0 => -128,
        1 => 127,
        _ => rng.below(256) as i32 - 128,
    };
    let zp_in = pick_zero_point(rng);
    let out_zero_point = pick_zero_point(rng);
    let (mut bias, mut mults, mut shifts, mut sums) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for o in 0..rows {
        let sum: i32 = weights[o * cols..(o + 1) * cols].iter().map(|&w| w as i8 as i32).sum();
        // The quantizer folds the input zero point into the bias.
        let b = ((rng.next_u64() as i32) >> (8 + rng.below(20))).wrapping_sub(zp_in.wrapping_mul(sum));
        let m = match rng.below(8) {
            0 => 1 << 30,
            1 => i32::MAX,
            _ => (1i32 << 30) + (rng.next_u64() as u32 >> 2) as i32,
        };
        let s = match rng.below(8) {
            0 => rng.below(62) as i32 - 31, // the whole legal range, saturation included
            _ => -(rng.below(20) as i32) + 1,
        };
        bias.extend_from_slice(&b.to_le_bytes());
        mults.extend_from_slice(&m.to_le_bytes());
        shifts.extend_from_slice(&s.to_le_bytes());
        sums.extend_from_slice(&sum.to_le_bytes());
    }
    let (act_min, act_max) = match rng.below(3) {
        0 => (-128, 127),
        1 => (out_zero_point as i8, 127), // fused ReLU
        _ => (-100, 90),
    };
    let requant = [mults, shifts, sums].concat();
    DenseI8Case { rows, cols, batch, weights, bias, requant, out_zero_point, act_min, act_max, x }
}

/// Runs `k` and the reference on `c` (weights read at byte offset `misalign` of a copy) and
/// panics with the first difference.
fn assert_dense_i8_exact(k: &Kernels, c: &DenseI8Case, misalign: usize, what: &str) {
    let mut shifted = vec![0u8; misalign];
    shifted.extend_from_slice(&c.weights);
    let mut p = c.params();
    p.weights = &shifted[misalign..];
    let len = c.batch * c.rows + SENTINEL_LEN;
    let (mut got, mut want) = (vec![0x5Ai8; len], vec![0x5Ai8; len]);
    (k.dense_i8)(&p, &c.x, c.batch, &mut got);
    (REFERENCE.dense_i8)(&p, &c.x, c.batch, &mut want);
    if let Some(i) = (0..len).find(|&i| got[i] != want[i]) {
        panic!(
            "{} dense_i8 {what}: rows {} cols {} batch {}: out[{i}] = {} but the reference gives {}",
            k.name, c.rows, c.cols, c.batch, got[i], want[i]
        );
    }
}

#[test]
fn dense_i8_random_shapes_are_byte_exact() {
    for k in native_tables() {
        let mut rng = Rng::new(0xD15E);
        let cases = 3000;
        for n in 0..cases {
            let (rows, cols, batch) =
                (1 + rng.below(70) as usize, 1 + rng.below(70) as usize, 1 + rng.below(9) as usize);
            let c = case(&mut rng, rows, cols, batch);
            assert_dense_i8_exact(k, &c, n % 3, &format!("case {n}"));
        }
        println!("{}: dense_i8 byte-exact on {cases} random shapes", k.name);
    }
}

#[test]
fn dense_i8_decoder_shapes_are_byte_exact_at_every_batch() {
    // The 20-400-784 decoder and its encoder mirror, then tails just around 16-column steps.
    let shapes = [(400, 20), (784, 400), (400, 784), (20, 400), (5, 16), (7, 17), (3, 31), (9, 33), (6, 15)];
    for k in native_tables() {
        let mut rng = Rng::new(0xDEC0);
        for &(rows, cols) in &shapes {
            for batch in 1..=9 {
                let c = case(&mut rng, rows, cols, batch);
                assert_dense_i8_exact(k, &c, batch % 2, &format!("decoder shape batch {batch}"));
            }
        }
        println!("{}: dense_i8 byte-exact on decoder shapes, batch 1..=9", k.name);
    }
}

#[test]
fn dense_i8_extremes_are_byte_exact() {
    for k in native_tables() {
        let mut rng = Rng::new(0xE7);
        for &(rows, cols) in &[(4usize, 16usize), (5, 784), (13, 400), (8, 4096)] {
            for batch in [1, 3, 4, 9] {
                for (w, xv) in [(127i8, -128i8), (-127, -128), (127, 127), (-127, 127)] {
                    let mut c = case(&mut rng, rows, cols, batch);
                    c.weights.fill(w as u8);
                    c.x.fill(xv);
                    let sum = (w as i32 * cols as i32).to_le_bytes();
                    for o in 0..rows {
                        c.requant[8 * rows + 4 * o..8 * rows + 4 * o + 4].copy_from_slice(&sum);
                    }
                    assert_dense_i8_exact(k, &c, 1, &format!("all weights {w}, all inputs {xv}"));
                }
            }
        }
        println!("{}: dense_i8 byte-exact on extreme values", k.name);
    }
}

#[test]
fn dense_i8_short_slices_match_the_reference_without_panicking() {
    for k in native_tables() {
        let mut rng = Rng::new(0x5407);
        for n in 0..400 {
            let (rows, cols, batch) =
                (1 + rng.below(40) as usize, 1 + rng.below(70) as usize, 1 + rng.below(5) as usize);
            let c = case(&mut rng, rows, cols, batch);
            let mut p = c.params();
            let cut = |rng: &mut Rng, len: usize| len - rng.below(len as u32 + 1) as usize;
            let which = n % 6;
            if which == 0 {
                p.weights = &c.weights[..cut(&mut rng, c.weights.len())];
            }
            if which == 1 {
                p.bias = &c.bias[..cut(&mut rng, c.bias.len())];
            }
            if which == 2 {
                p.shifts = &p.shifts[..cut(&mut rng, p.shifts.len())];
            }
            let x = if which == 3 { &c.x[..cut(&mut rng, c.x.len())] } else { &c.x[..] };
            let out_len = if which == 4 { cut(&mut rng, batch * rows) } else { batch * rows };
            // which == 5: a batch larger than the slices hold.
            let claimed_batch = if which == 5 { batch + 1 + rng.below(3) as usize } else { batch };
            let (mut got, mut want) = (vec![0x33i8; out_len], vec![0x33i8; out_len]);
            (k.dense_i8)(&p, x, claimed_batch, &mut got);
            (REFERENCE.dense_i8)(&p, x, claimed_batch, &mut want);
            assert_eq!(got, want, "{} short-slice case {n} ({rows}x{cols}, batch {batch}, kind {which})", k.name);
        }
    }
}

/// f32 or f16 weights (as the blob stores them) from int8 codes, like the generic suite.
fn float_weights(codes: &[u8], f16: bool) -> Vec<u8> {
    codes
        .iter()
        .flat_map(|&w| {
            let v = w as i8 as f32 / 128.0;
            if f16 {
                half::f16::from_f32(v).to_le_bytes().to_vec()
            } else {
                v.to_le_bytes().to_vec()
            }
        })
        .collect()
}

#[test]
fn dense_float_stays_within_tolerance_on_random_and_decoder_shapes() {
    for k in native_tables() {
        let mut rng = Rng::new(0xF1);
        let mut shapes: Vec<(usize, usize, usize)> = (0..400)
            .map(|_| (1 + rng.below(70) as usize, 1 + rng.below(70) as usize, 1 + rng.below(9) as usize))
            .collect();
        for batch in [1, 2, 3, 8] {
            shapes.extend([(400, 20, batch), (784, 400, batch)]);
        }
        for (n, &(rows, cols, batch)) in shapes.iter().enumerate() {
            let c = case(&mut rng, rows, cols, batch);
            let x: Vec<f32> = c.x.iter().map(|&v| v as f32 / 64.0).collect();
            let bias: Vec<u8> = (0..rows).flat_map(|o| (o as f32 * 0.01 - 0.2).to_le_bytes()).collect();
            for (name, f16, kernel, reference) in [
                ("dense_f32", false, k.dense_f32, REFERENCE.dense_f32),
                ("dense_f16", true, k.dense_f16, REFERENCE.dense_f16),
            ] {
                // Misaligned weights: the blob gives no alignment guarantee to f32 arrays read in place.
                let mut weights = vec![0u8; n % 3];
                weights.extend(float_weights(&c.weights, f16));
                let p = DenseFloat { rows, cols, weights: &weights[n % 3..], bias: &bias, relu: n % 2 == 0 };
                let len = batch * rows + SENTINEL_LEN;
                let (mut got, mut want) = (vec![7.5f32; len], vec![7.5f32; len]);
                kernel(&p, &x, batch, &mut got);
                reference(&p, &x, batch, &mut want);
                let tol = 2e-5 * cols as f32;
                for i in 0..len {
                    let ok = if i < batch * rows { (got[i] - want[i]).abs() <= tol } else { got[i] == 7.5 };
                    assert!(ok, "{} {name} {rows}x{cols} batch {batch}: out[{i}] = {} vs {}", k.name, got[i], want[i]);
                }
            }
        }
        println!("{}: dense_f32/dense_f16 within tolerance on {} shapes", k.name, shapes.len());
    }
}

#[test]
fn lut_i8_is_byte_exact_for_every_length() {
    for k in native_tables() {
        let mut rng = Rng::new(0x1u64);
        for table_len in [256usize, 300, 255, 0] {
            let table: Vec<u8> = (0..table_len).map(|_| rng.next_u64() as u8).collect();
            for n in (0..=70).chain([784, 1000]) {
                let x: Vec<i8> = (0..n).map(|i| if i % 5 == 0 { -128 } else { rng.next_u64() as i8 }).collect();
                for out_len in [n, n + SENTINEL_LEN, n.saturating_sub(3)] {
                    let (mut got, mut want) = (vec![0x11i8; out_len], vec![0x11i8; out_len]);
                    (k.lut_i8)(&table, &x, &mut got);
                    (REFERENCE.lut_i8)(&table, &x, &mut want);
                    assert_eq!(got, want, "{} lut_i8: table {table_len}, {n} inputs, {out_len} outputs", k.name);
                }
            }
        }
        // Every code, in order: the four table quarters and their boundaries.
        let table: Vec<u8> = (0..=255u8).rev().collect();
        let x: Vec<i8> = (-128..=127).collect();
        let mut got = vec![0i8; 256];
        (k.lut_i8)(&table, &x, &mut got);
        assert!(got.iter().enumerate().all(|(i, &y)| y as u8 == 255 - i as u8), "{} lut_i8 all codes", k.name);
    }
}

#[test]
fn weight_stream_equals_the_wrapping_reference_sum() {
    for k in native_tables() {
        let mut rng = Rng::new(0x57);
        for n in (0..=300).chain([64 * 128 - 1, 64 * 128, 64 * 128 + 65, 313_600]) {
            let random: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            // All -128 reaches the int16 partial sums' bound exactly; all 127 the positive one.
            for bytes in [random, vec![0x80; n], vec![0x7F; n]] {
                let off = n % 3;
                let slice = &bytes[off.min(bytes.len())..];
                assert_eq!(
                    (k.weight_stream)(slice),
                    (REFERENCE.weight_stream)(slice),
                    "{} weight_stream, {} bytes",
                    k.name,
                    slice.len()
                );
            }
        }
        // Wrapping past i32: 2^25 bytes of 127 sum to 127 * 2^25 > 2^31.
        let big = vec![0x7Fu8; 1 << 25];
        assert_eq!((k.weight_stream)(&big), (REFERENCE.weight_stream)(&big), "{} weight_stream wrap", k.name);
    }
}

/// A Dense layer quantized the way the quantizer does it (multipliers in `[2^30, 2^31)`,
/// right shifts of a few bits), so that no channel takes an exceptional path.
fn realistic_case(rng: &mut Rng, rows: usize, cols: usize, batch: usize) -> DenseI8Case {
    let mut c = case(rng, rows, cols, batch);
    for o in 0..rows {
        let m = (1i32 << 30) + (rng.next_u64() as u32 >> 2) as i32;
        let s = -5 - rng.below(6) as i32;
        c.requant[4 * o..4 * o + 4].copy_from_slice(&m.to_le_bytes());
        c.requant[4 * (rows + o)..4 * (rows + o) + 4].copy_from_slice(&s.to_le_bytes());
    }
    (c.act_min, c.act_max) = (c.out_zero_point as i8, 127); // ReLU folded in, as the decoder's hidden layer
    c
}

/// Marks a boundary between measured regions with a `getpid` system call, which an
/// instruction-counting QEMU plugin (`scripts/test-aarch64.sh --count`) watches for.
#[inline(never)]
fn count_marker() {
    std::hint::black_box(std::process::id());
}

/// Not a check: one int8 pass of the 20-400-784 decoder (Dense 20->400 with ReLU, Dense
/// 400->784, sigmoid table), then the weight-streaming floor over the same 321,600 weight bytes,
/// with [`count_marker`] around each part (and once around nothing, to measure the marker
/// itself), for instruction counting under QEMU. Table and batch come from
/// `TINYVAE_COUNT_KERNELS` and `TINYVAE_COUNT_BATCH`.
#[test]
#[ignore = "instruction-count probe, run by scripts/test-aarch64.sh --count"]
fn decoder_pass_for_instruction_counting() {
    let name = std::env::var("TINYVAE_COUNT_KERNELS").unwrap_or_else(|_| kernels::best().name.to_string());
    let batch: usize = std::env::var("TINYVAE_COUNT_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1);
    let k = kernels::by_name(&name).unwrap_or_else(|| panic!("no usable kernel table {name}"));
    let mut rng = Rng::new(20_400_784);
    let (hidden, output) = (realistic_case(&mut rng, 400, 20, batch), realistic_case(&mut rng, 784, 400, batch));
    let sigmoid: Vec<u8> = (0..256).map(|i| (i as u8).wrapping_mul(3)).collect();
    let weights = [hidden.weights.clone(), output.weights.clone()].concat();
    let (mut h, mut y, mut pixels) = (vec![0i8; batch * 400], vec![0i8; batch * 784], vec![0i8; batch * 784]);
    let mut floor = 0;
    for measured in [false, true] {
        // The first pass warms caches and lazy initialisation; only the second is marked.
        let mark = || {
            if measured {
                count_marker()
            }
        };
        mark();
        mark();
        (k.dense_i8)(&hidden.params(), &hidden.x, batch, &mut h);
        mark();
        (k.dense_i8)(&output.params(), &h, batch, &mut y);
        mark();
        (k.lut_i8)(&sigmoid, &y, &mut pixels);
        mark();
        floor = (k.weight_stream)(std::hint::black_box(&weights));
        mark();
    }
    println!("{name} batch {batch}: pixels[0] {} floor {floor}", pixels[0]);
}
