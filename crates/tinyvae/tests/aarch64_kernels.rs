//! The aarch64 kernel tables against the scalar reference: the generic suite (the kernel
//! contract: short slices, alignment, extreme values, zero points...) on every table this CPU
//! runs, plus what is specific to these kernels: random shapes around their 16-column vectors
//! and 4-row by 4-sample tiles, and the shipped decoder's shapes at every batch up to 9.
//!
//! Under QEMU `scripts/test-aarch64.sh` runs these with `-cpu max` (dotprod) and
//! `-cpu cortex-a72` (NEON only), sets `TINYVAE_EXPECT_KERNELS` so that a detection that
//! silently fell back to fewer tables fails, and checks that each table printed the lines
//! saying it was tested.
#![cfg(target_arch = "aarch64")]

use tinyvae::kernels::suite::{self, check_dense_i8, DenseI8Case};
use tinyvae::kernels::{self, Kernels, REFERENCE};
use tinyvae::Rng;

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

#[test]
fn the_generic_suite_passes_for_every_table() {
    for k in native_tables() {
        let mut checks = 0;
        for seed in [1, 2] {
            checks += suite::check_kernels(k, 1000, seed).unwrap_or_else(|m| panic!("{}: {m}", k.name));
        }
        checks += suite::check_large_layers(k, 7).unwrap_or_else(|m| panic!("{}: {m}", k.name));
        // The test script greps this line for each table.
        println!("{}: kernel suite passed", k.name);
        println!("{}: {checks} checks", k.name);
    }
}

#[test]
fn dense_i8_random_shapes_are_byte_exact() {
    for k in native_tables() {
        let mut rng = Rng::new(0xD15E);
        let cases = 3000;
        for case in 0..cases {
            let c = DenseI8Case::random(&mut rng, 70, 70, 9);
            check_dense_i8(k, &c, case % 3, "aarch64 random shapes", case)
                .unwrap_or_else(|m| panic!("{}: {m}", k.name));
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
        let mut case = 0;
        for &(rows, cols) in &shapes {
            for batch in 1..=9 {
                let c = DenseI8Case::with_shape(&mut rng, rows, cols, batch);
                check_dense_i8(k, &c, batch % 2, "decoder shapes", case).unwrap_or_else(|m| panic!("{}: {m}", k.name));
                case += 1;
            }
        }
        println!("{}: dense_i8 byte-exact on decoder shapes, batch 1..=9", k.name);
    }
}

#[test]
fn dense_i8_extremes_are_byte_exact() {
    for k in native_tables() {
        for seed in [3, 4, 5] {
            suite::check_extremes(k, seed).unwrap_or_else(|m| panic!("{}: {m}", k.name));
        }
        println!("{}: dense_i8 byte-exact on extreme values", k.name);
    }
}

/// Marks a boundary between measured regions with a `getpid` system call, which an
/// instruction-counting QEMU plugin (`scripts/test-aarch64.sh --count`) watches for.
#[inline(never)]
fn count_marker() {
    std::hint::black_box(std::process::id());
}

/// Not a check: one whole decode (input staging, every layer, pixels) of a decoder blob through
/// one kernel table, between [`count_marker`] calls (also once around nothing, to measure the
/// marker itself), for instruction counting under QEMU. The blob comes from
/// `TINYVAE_COUNT_BLOB` (default: the shipped z20 decoder), table and batch from
/// `TINYVAE_COUNT_KERNELS` and `TINYVAE_COUNT_BATCH`. Prints the blob's MACs per sample, which
/// the script divides by.
#[test]
#[ignore = "instruction-count probe, run by scripts/test-aarch64.sh --count"]
fn decoder_pass_for_instruction_counting() {
    let name = std::env::var("TINYVAE_COUNT_KERNELS").unwrap_or_else(|_| kernels::best().name.to_string());
    let batch: usize = std::env::var("TINYVAE_COUNT_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1);
    let path = std::env::var("TINYVAE_COUNT_BLOB").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/mnist-vae-z20/decoder.int8.tvae").to_string()
    });
    let k = kernels::by_name(&name).unwrap_or_else(|| panic!("no usable kernel table {name}"));
    let blob = tinyvae::AlignedBlob::new(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")));
    let model = tinyvae::Model::parse(&blob).unwrap_or_else(|e| panic!("{path}: {e}"));
    let decoder = tinyvae::Decoder::new(&model).unwrap_or_else(|e| panic!("{path}: {e}")).with_kernels(k);
    let mut z = vec![0f32; batch * decoder.latent_dim()];
    Rng::new(20_400_784).fill_gaussian(&mut z);
    let labels: Vec<u32> = (0..batch).map(|i| (i % decoder.classes().max(1)) as u32).collect();
    let labels = (decoder.classes() > 0).then_some(&labels[..]);
    let mut arena = vec![0u8; model.arena_size_for_batch(batch).expect("arena size")];
    let mut pixels = vec![0u8; batch * decoder.output_len()];
    for measured in [false, true] {
        // The first pass warms caches and lazy initialisation; only the second is marked.
        let mark = || {
            if measured {
                count_marker()
            }
        };
        mark();
        mark();
        decoder.decode_batch(&z, labels, batch, &mut arena, &mut pixels).expect("decode");
        mark();
    }
    let checksum: u64 = pixels.iter().map(|&p| p as u64).sum();
    println!("{name} batch {batch}: {} MACs per sample, pixel sum {checksum}", model.macs());
}
