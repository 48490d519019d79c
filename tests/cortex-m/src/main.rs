//! The Cortex-M test program. It runs on a Cortex-M4 under QEMU (`mps2-an386`), started by
//! `scripts/test-cortex-m.sh`.
//!
//! 1. Checks that dispatch picks the DSP table on this target.
//! 2. Runs the generic kernel suite (`tinyvae::kernels::suite`) on it: the kernel contract
//!    against the scalar reference, as on x86_64 and aarch64 (short slices, misaligned arrays,
//!    extreme values, zero points, every tail), and the convolution, transposed-convolution,
//!    upsampling and addition kernels against the suite's own definitions.
//! 3. Checks what is specific to the DSP kernel on fixed shapes: the z20 decoder's 400x20 and
//!    784x400 layers and the encoder's 400x784, with weights in flash; every short row (1 to 40
//!    columns: every entry point of its unrolled loop) at several row counts; odd shapes around
//!    its block, chunk and tile sizes, with misaligned rows; and extreme values there, -128
//!    weights included (outside the contract, but this kernel is exact on them).
//! 4. Checks the kernel's requantization against `quant::requantize` on exact accumulators
//!    (zero weights, so the accumulator is the bias): extremes, rounding ties, every shift,
//!    multipliers across their range, and parameters outside it.
//! 5. Runs shapes whose weights end right before an MPU no-access region, so that a read past
//!    the weight slice faults instead of passing unnoticed. Last of all it checks that the
//!    region does fault.
//! 6. Checks the opt-in int16-weight kernel the same way.
//! 7. Counts instructions per MAC for the reference, the DSP kernel and the int16 variant.
//!
//! Instructions are counted with `-icount shift=0`. QEMU then advances the virtual clock by
//! exactly 1 ns per executed instruction, and SysTick, clocked by the core, reads that clock. A
//! SysTick tick is several instructions (40 on this board; calibrated below against a loop of
//! known length), so a layer runs several times per measurement, and the cost of an empty call
//! is subtracted.
//!
//! Everything is printed over semihosting. The program ends with `PASS` and exit status 0, or
//! reports the first failure and exits with status 1 (panics and HardFaults included).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;
use alloc::vec::Vec;
use core::hint::black_box;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;
use embedded_alloc::LlffHeap as Heap;
use tinyvae::format::{ConvGeometry, WeightLayout};
use tinyvae::kernels::armv7em::dense_i8_w16::dense_i8_w16;
use tinyvae::kernels::{self, suite, DenseI8, Kernels, REFERENCE};
use tinyvae::quant::{quantize_multiplier, requantize};
use tinyvae::Rng;

/// `hprintln!` with inline format arguments (its `concat!` hides the captured names).
macro_rules! say {
    ($($t:tt)*) => {
        cortex_m_semihosting::hprintln!("{}", format_args!($($t)*))
    };
}

#[global_allocator]
static HEAP: Heap = Heap::empty();
const HEAP_SIZE: usize = 2 << 20;

/// Flash-resident weights, aligned the way a blob aligns its tensors. Each array has 16 spare
/// bytes, so `[1..]` is the same matrix with misaligned rows.
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);
static W400X20: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/w400x20.bin")));
static W784X400: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/w784x400.bin")));
static W400X784: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/w400x784.bin")));
/// The same matrices widened to int16, for the opt-in int16-weight kernel.
static W784X400_I16: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/w784x400_i16.bin")));
static W400X784_I16: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/w400x784_i16.bin")));

#[entry]
fn main() -> ! {
    {
        use core::mem::MaybeUninit;
        static mut HEAP_MEM: [MaybeUninit<u8>; HEAP_SIZE] = [MaybeUninit::uninit(); HEAP_SIZE];
        // SAFETY: called once, before any allocation; the region is used by nothing else.
        unsafe { HEAP.init(&raw mut HEAP_MEM as usize, HEAP_SIZE) }
    }
    let p = cortex_m::Peripherals::take().unwrap();
    let counter = Counter::new(p.SYST);
    let mpu = p.MPU;

    let dsp: &Kernels = kernels::best();
    check(dsp.name == "dsp", "kernels::best() is the DSP table");
    check(kernels::by_name("dsp").is_some(), "kernels::by_name(\"dsp\")");

    let cases = 1000;
    let suite_checks = match suite::check_kernels(dsp, cases, 0x5EED) {
        Ok(n) => n,
        Err(m) => fail(format_args!("suite: {m}")),
    };
    say!("suite: {suite_checks} checks ({cases} random cases) keep the kernel contract");
    // The conv VAE's layers and wider ones: with the Cortex-M's small patch buffers these slide
    // the input window and split every row over several Dense calls.
    let conv_large = match suite::check_conv_large(dsp, 0x5EED) {
        Ok(n) => n,
        Err(m) => fail(format_args!("suite, large convolutions: {m}")),
    };
    say!("suite: {conv_large} large convolution layers (the conv VAE's among them) match the definition");

    let fixed = fixed_shapes(dsp);
    let rows_short = short_rows(dsp);
    let fuzz = fuzz(dsp, 400, 0xC0FFEE);
    let extremes = extremes(dsp);
    let (requant, requant_rows) = requantization(dsp);
    let guarded = guarded_reads(dsp, &mpu);
    say!("exact: {fixed} fixed-shape, {rows_short} short-row, {fuzz} random-shape, {extremes} extreme-value and {guarded} guarded-weights checks match");
    say!("exact: {requant} requantization checks ({requant_rows} rows) match quant::requantize");
    let wide = int16_weights();
    say!("exact: {wide} checks of the opt-in int16-weight kernel match");

    instruction_counts(&counter, dsp);
    conv_instruction_counts(&counter, dsp);

    let checks = 2 + suite_checks + conv_large + fixed + rows_short + fuzz + extremes + requant + guarded + wide;
    // SAFETY: single-threaded; the HardFault handler reads it only after the fault below.
    unsafe { (&raw mut PASSED_BEFORE_GUARD_CHECK).write_volatile(checks) };
    check_guard_faults();
}

/// Checks that passed before the last one, which ends in the HardFault handler.
static mut PASSED_BEFORE_GUARD_CHECK: usize = 0;
/// Set while a read of the guard is expected to fault.
static mut EXPECTING_GUARD_FAULT: bool = false;

/// The last check: a read of the guard region must fault, which shows that the guarded-weights
/// checks would have caught a kernel reading past its weights. The HardFault handler finishes
/// the run.
fn check_guard_faults() -> ! {
    // SAFETY: single-threaded; the guard address is mapped, only protected by the MPU. The
    // volatile write keeps the flag's store ahead of the faulting read.
    unsafe {
        (&raw mut EXPECTING_GUARD_FAULT).write_volatile(true);
        core::ptr::read_volatile(guard_start());
    }
    fail(format_args!("reading the MPU guard region did not fault"))
}

fn finish() -> ! {
    // SAFETY: single-threaded.
    let checks = unsafe { (&raw const PASSED_BEFORE_GUARD_CHECK).read_volatile() } + 1;
    say!("guard: reading past the guarded weights faults, so those checks would catch it");
    say!("{checks} passed, 0 failed");
    say!("PASS");
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

/// RAM whose last [`GUARD`] bytes the MPU makes inaccessible. Weights placed to end right
/// before them fault on any read past their end.
#[repr(C, align(1024))]
struct Guarded([u8; GUARDED]);
const GUARDED: usize = 80 * 1024;
const GUARD: usize = 32;
static mut GUARDED_BUF: Guarded = Guarded([0; GUARDED]);

fn guard_start() -> *const u8 {
    // SAFETY: in bounds of the static; only the address is taken.
    unsafe { (&raw const GUARDED_BUF).cast::<u8>().add(GUARDED - GUARD) }
}

/// Kernels on weights that end right before an MPU no-access region, for shapes whose rows
/// end off the block grid, odd row counts, every short row (1 to 40 columns), and inputs
/// around and past the scratch's chunk (512 columns). A read past the weights is a MemManage
/// fault, reported by the HardFault handler.
fn guarded_reads(dsp: &Kernels, mpu: &cortex_m::peripheral::MPU) -> usize {
    let guard = guard_start() as u32;
    // SAFETY: MPU region 0 (32 bytes, no access, never executed) covers the guard alone; the
    // default map stays on for everything else (PRIVDEFENA), and we run privileged.
    unsafe {
        mpu.rnr.write(0);
        mpu.rbar.write(guard);
        mpu.rasr.write((1 << 28) | (4 << 1) | 1); // XN, AP = no access, 2^(4+1) bytes, enabled
        mpu.ctrl.write(0b101); // ENABLE | PRIVDEFENA
    }
    cortex_m::asm::dsb();
    cortex_m::asm::isb();
    let mut rng = Rng::new(19);
    let fixed = [
        (1, 1),
        (1, 7),
        (2, 9),
        (3, 20),
        (5, 20),
        (7, 33),
        (4, 400),
        (3, 13),
        (2, 511),
        (3, 512),
        (5, 513),
        (2, 1024),
        (1, 1031),
        (9, 1100),
        (65, 1030),
        (67, 1027),
    ];
    let short = (1..=40).flat_map(|cols| [1, 2, 3, 5, 8].map(|rows| (rows, cols)));
    let mut n_shapes = 0;
    for (rows, cols) in fixed.into_iter().chain(short) {
        let n = rows * cols;
        check(n + GUARD <= GUARDED, "guarded weights fit their buffer");
        // SAFETY: single-threaded, and no other reference to the buffer exists; the `n` bytes
        // (n < GUARDED - GUARD) lie inside the static and end right before the guard.
        let w: &[u8] = unsafe {
            let w = core::slice::from_raw_parts_mut(guard_start().cast_mut().sub(n), n);
            for v in w.iter_mut() {
                *v = (rng.below(255) as i32 - 127) as u8;
            }
            w
        };
        let layer = Layer::new(rows, cols, w, &mut rng, true);
        let x = random_i8s(&mut rng, 2 * cols);
        same(dsp, &layer.params(), &x, 2, format_args!("guarded {rows}x{cols}"));
        n_shapes += 1;
    }
    n_shapes
}

/// An int8 Dense problem: the weights are borrowed (flash or heap), the rest is generated.
struct Layer<'w> {
    rows: usize,
    cols: usize,
    weights: &'w [u8],
    bias: Vec<u8>,
    multipliers: Vec<u8>,
    shifts: Vec<u8>,
    sums: Vec<u8>,
    zero_point: i32,
    act_min: i8,
}

impl<'w> Layer<'w> {
    /// Requantization that keeps typical outputs inside int8 (`realistic`), or the suite's
    /// arbitrary multipliers and shifts, which mostly saturate.
    fn new(rows: usize, cols: usize, weights: &'w [u8], rng: &mut Rng, realistic: bool) -> Self {
        let mut l = Layer {
            rows,
            cols,
            weights,
            bias: vec![],
            multipliers: vec![],
            shifts: vec![],
            sums: vec![],
            zero_point: rng.below(256) as i32 - 128,
            act_min: -128,
        };
        if rng.below(2) == 0 {
            l.act_min = l.zero_point as i8; // ReLU folded into the clamp
        }
        for o in 0..rows {
            let (m, s) = if realistic {
                // Accumulators of uniform int8 products spread about 5300 * sqrt(cols).
                let spread = 5300.0 * isqrt(cols) as f64 * (1.0 + rng.uniform() as f64);
                quantize_multiplier(40.0 / spread).unwrap()
            } else {
                ((1 << 30) + (rng.next_u64() as u32 >> 2) as i32, 1 - rng.below(20) as i32)
            };
            let b = (rng.next_u64() as i32) >> (8 + rng.below(16));
            let sum: i32 = weights.get(o * cols..(o + 1) * cols).unwrap_or(&[]).iter().map(|&w| w as i8 as i32).sum();
            l.bias.extend_from_slice(&b.to_le_bytes());
            l.multipliers.extend_from_slice(&m.to_le_bytes());
            l.shifts.extend_from_slice(&s.to_le_bytes());
            l.sums.extend_from_slice(&sum.to_le_bytes());
        }
        l
    }

    fn params(&self) -> DenseI8<'_> {
        DenseI8 {
            rows: self.rows,
            cols: self.cols,
            layout: WeightLayout::RowMajor,
            weights: self.weights,
            bias: &self.bias,
            multipliers: &self.multipliers,
            shifts: &self.shifts,
            weight_sums: &self.sums,
            out_zero_point: self.zero_point,
            act_min: self.act_min,
            act_max: 127,
        }
    }
}

fn isqrt(n: usize) -> usize {
    (0..=n).find(|r| (r + 1) * (r + 1) > n).unwrap_or(n)
}

fn random_i8s(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.below(256) as i32 as u8 as i8).collect()
}

/// Runs both kernels on `p` and fails on the first differing byte.
fn same(dsp: &Kernels, p: &DenseI8<'_>, x: &[i8], batch: usize, what: core::fmt::Arguments<'_>) {
    let mut got = vec![0x5Ai8; batch * p.rows];
    let mut want = got.clone();
    (dsp.dense_i8)(p, x, batch, &mut got);
    (REFERENCE.dense_i8)(p, x, batch, &mut want);
    if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
        fail(format_args!("{what}: output {i} is {} but the reference gives {}", got[i], want[i]));
    }
}

/// The decoder's and encoder's layers, weights in flash, aligned and misaligned, batch 1 and 3.
fn fixed_shapes(dsp: &Kernels) -> usize {
    let mut rng = Rng::new(7);
    let mut n = 0;
    for (name, rows, cols, w) in
        [("400x20", 400, 20, W400X20), ("784x400", 784, 400, W784X400), ("400x784", 400, 784, W400X784)]
    {
        for offset in [0, 1] {
            let layer = Layer::new(rows, cols, &w.0[offset..offset + rows * cols], &mut rng, true);
            for batch in [1, 3] {
                let x = random_i8s(&mut rng, batch * cols);
                same(dsp, &layer.params(), &x, batch, format_args!("{name} offset {offset} batch {batch}"));
                n += 1;
            }
        }
    }
    n
}

/// Every short row, 1 to 40 columns (one to five blocks, so every entry point into the
/// kernel's unrolled loop), at row counts around its pairs of rows, with weights at every
/// alignment, batches 1 and 2, realistic and saturating requantization.
fn short_rows(dsp: &Kernels) -> usize {
    let mut rng = Rng::new(29);
    let mut n = 0;
    for cols in 1..=40 {
        for rows in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 40] {
            let offset = n % 4;
            let w: Vec<u8> = (0..offset + rows * cols).map(|_| (rng.below(255) as i32 - 127) as u8).collect();
            let layer = Layer::new(rows, cols, &w[offset..], &mut rng, n % 3 != 0);
            let batch = 1 + n % 2;
            let x = random_i8s(&mut rng, batch * cols);
            same(
                dsp,
                &layer.params(),
                &x,
                batch,
                format_args!("short row {rows}x{cols} offset {offset} batch {batch}"),
            );
            n += 1;
        }
    }
    n
}

/// The kernel's requantization on exact accumulators: zero weights, so each row's accumulator
/// is its bias. Rows mix accumulator extremes and rounding ties with every shift from -31 to
/// 30, multipliers at and between the ends of their range, and parameters no valid blob holds
/// (shifts below -31, negative multipliers), so that pairs of rows mix the kernel's fast path
/// with its fallback. Each set runs with several zero points and clamps, empty ones included.
/// Returns the number of checks and of rows checked.
fn requantization(dsp: &Kernels) -> (usize, usize) {
    let mut rng = Rng::new(31);
    let mut shifts: Vec<i32> = (-31..=30).collect();
    shifts.extend([-32, -33, -40, 31, 40, i32::MIN, i32::MAX]);
    let mut mults =
        vec![0, 1, 2, 0x1234_5678, 1 << 30, (1 << 30) + 1, 0x5A5A_5A5A, i32::MAX - 1, i32::MAX, -1, i32::MIN];
    for _ in 0..4 {
        mults.push((1 << 30) + (rng.next_u64() as u32 >> 2) as i32);
    }
    let mut rows: Vec<(i32, i32, i32)> = Vec::new(); // (accumulator, multiplier, shift)
    for &shift in &shifts {
        for &m in &mults {
            let mut accs = vec![i32::MIN, i32::MIN + 1, -(1 << 30) - 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3];
            accs.extend([(1 << 30) - 1, 1 << 30, i32::MAX - 1, i32::MAX]);
            // Ties of the second rounding: with m = 2^30 the first gives acc / 4, so these put
            // y at +-(j + 1/2) * 2^e, and one off either side.
            let e = shift.clamp(-31, 0).unsigned_abs();
            for j in [0i64, 1, 5] {
                let tie = 4 * ((2 * j + 1) << e.saturating_sub(1));
                for d in [-4i64, -2, -1, 0, 1, 2, 4] {
                    for v in [tie + d, -tie + d] {
                        if let Ok(v) = i32::try_from(v) {
                            accs.push(v);
                        }
                    }
                }
            }
            for k in 0..6 {
                accs.push((rng.next_u64() as i32) >> (k * 5));
            }
            rows.extend(accs.into_iter().map(|acc| (acc, m, shift)));
        }
    }
    // Shuffled, so that pairs of rows mix parameters.
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i as u32 + 1) as usize);
    }
    let clamps = [(0, -128, 127), (-128, -128, 127), (5, 5, 127), (127, -128, 127), (-7, -20, 20), (3, 10, -10)];
    let extreme_zero_points = [(i32::MAX, -128, 127), (i32::MIN, -128, 127), (1000, -128, 127)];
    let (cols, chunk) = (8, 2000);
    // Zero weights, whose sums are zero too.
    let zeros = vec![0u8; chunk * cols];
    let x = random_i8s(&mut rng, cols);
    let mut n = 0;
    for part in rows.chunks(chunk) {
        let le = |f: fn(&(i32, i32, i32)) -> i32| -> Vec<u8> { part.iter().flat_map(|r| f(r).to_le_bytes()).collect() };
        let (bias, multipliers, shifts) = (le(|r| r.0), le(|r| r.1), le(|r| r.2));
        for &(zero_point, act_min, act_max) in clamps.iter().chain(&extreme_zero_points) {
            let p = DenseI8 {
                rows: part.len(),
                cols,
                layout: WeightLayout::RowMajor,
                weights: &zeros[..part.len() * cols],
                bias: &bias,
                multipliers: &multipliers,
                shifts: &shifts,
                weight_sums: &zeros[..4 * part.len()],
                out_zero_point: zero_point,
                act_min,
                act_max,
            };
            let mut got = vec![0x5Ai8; part.len()];
            (dsp.dense_i8)(&p, &x, 1, &mut got);
            for (&(acc, m, shift), &g) in part.iter().zip(&got) {
                let want = requantize(acc, m, shift, zero_point, act_min, act_max);
                if g != want {
                    fail(format_args!(
                        "requantize({acc}, {m}, {shift}, zp {zero_point}, [{act_min}, {act_max}]): kernel {g}, reference {want}"
                    ));
                }
            }
            n += 1;
        }
    }
    (n, rows.len())
}

/// Random shapes around the kernel's block (8 columns), unroll (64 columns), chunk (512
/// columns) and tile (64 rows) sizes, with weights at every alignment.
fn fuzz(dsp: &Kernels, cases: usize, seed: u64) -> usize {
    let mut rng = Rng::new(seed);
    for case in 0..cases {
        let rows = 1 + rng.below(if case % 10 == 0 { 140 } else { 40 }) as usize;
        let cols = match case % 4 {
            0 => 1 + rng.below(64) as usize,
            1 => 1 + rng.below(500) as usize,
            2 if case % 8 == 2 => 500 + rng.below(30) as usize,
            2 => 1000 + rng.below(60) as usize,
            _ => 1 + rng.below(2600) as usize,
        };
        let batch = 1 + rng.below(3) as usize;
        let offset = rng.below(4) as usize;
        let w: Vec<u8> = (0..offset + rows * cols).map(|_| (rng.below(255) as i32 - 127) as u8).collect();
        let layer = Layer::new(rows, cols, &w[offset..], &mut rng, case % 2 == 0);
        let x = random_i8s(&mut rng, batch * cols);
        same(
            dsp,
            &layer.params(),
            &x,
            batch,
            format_args!("fuzz case {case}: {rows}x{cols} batch {batch} offset {offset}"),
        );
    }
    cases
}

/// Extreme values (-128 and 127 inputs, +-127 weights) on shapes at the kernel's chunk (512
/// columns) and tile (64 rows) boundaries, beyond the suite's generic shapes; and weights of
/// -128, which the format forbids and the kernel contract leaves open, but which this kernel
/// (sign-extending each weight to 16 bits before `SMLAD`) still gets exactly right.
fn extremes(dsp: &Kernels) -> usize {
    let mut rng = Rng::new(11);
    let shapes = [(2, 9), (2, 40), (4, 511), (6, 1023), (3, 1024), (3, 2051), (65, 600), (130, 1100)];
    type Pattern = fn(usize) -> i8;
    let patterns: [(&str, Pattern, Pattern); 3] = [
        ("x=-128 w=127", |_| -128, |_| 127),
        ("alternating", |k| if k % 2 == 0 { -128 } else { 127 }, |k| if k % 3 == 0 { 127 } else { -127 }),
        ("w=-128", |k| if k % 5 == 0 { 127 } else { -128 }, |_| -128),
    ];
    let mut n = 0;
    for &(rows, cols) in &shapes {
        for &(name, xf, wf) in &patterns {
            for offset in [0, 1] {
                let w: Vec<u8> = (0..offset + rows * cols).map(|k| wf(k) as u8).collect();
                let x: Vec<i8> = (0..2 * cols).map(xf).collect();
                for realistic in [false, true] {
                    let layer = Layer::new(rows, cols, &w[offset..], &mut rng, realistic);
                    same(dsp, &layer.params(), &x, 2, format_args!("{name} {rows}x{cols} offset {offset}"));
                    n += 1;
                }
            }
        }
    }
    n
}

/// The opt-in int16-weight kernel against the int8 reference on the same weights: the decoder's
/// and encoder's layers from flash (fast path), and random shapes (partly the scalar path).
fn int16_weights() -> usize {
    let mut rng = Rng::new(23);
    let mut n = 0;
    for (rows, cols, w8, w16) in [(784, 400, W784X400, W784X400_I16), (400, 784, W400X784, W400X784_I16)] {
        let layer = Layer::new(rows, cols, &w8.0[..rows * cols], &mut rng, true);
        let x = random_i8s(&mut rng, 2 * cols);
        let p = layer.params();
        same_as_reference(
            dense_i8_w16,
            &DenseI8 { weights: &w16.0[..2 * rows * cols], ..p },
            &p,
            &x,
            2,
            "int16 weights",
        );
        n += 1;
    }
    for case in 0..60 {
        let rows = 1 + rng.below(20) as usize;
        let cols = if case % 2 == 0 { 8 * (1 + rng.below(40) as usize) } else { 1 + rng.below(300) as usize };
        let w8: Vec<u8> = (0..rows * cols).map(|_| (rng.below(255) as i32 - 127) as u8).collect();
        let w16: Vec<u8> = w8.iter().flat_map(|&b| (b as i8 as i16).to_le_bytes()).collect();
        let layer = Layer::new(rows, cols, &w8, &mut rng, case % 4 < 2);
        let x = random_i8s(&mut rng, 3 * cols);
        let p = layer.params();
        same_as_reference(dense_i8_w16, &DenseI8 { weights: &w16, ..p }, &p, &x, 3, "int16 weights, random shape");
        n += 1;
    }
    n
}

/// `f` on `p` against the reference on `reference` (the same layer with int8 weights).
fn same_as_reference(
    f: kernels::DenseI8Fn,
    p: &DenseI8<'_>,
    reference: &DenseI8<'_>,
    x: &[i8],
    batch: usize,
    what: &str,
) {
    let mut got = vec![0x5Ai8; batch * p.rows];
    let mut want = got.clone();
    f(p, x, batch, &mut got);
    (REFERENCE.dense_i8)(reference, x, batch, &mut want);
    if got != want {
        fail(format_args!("{what} {}x{}: differs from the reference", p.rows, p.cols));
    }
}

/// SysTick on the core clock, free-running over its 24 bits.
struct Counter {
    /// Instructions per SysTick tick, measured on a loop of known length.
    per_tick: u64,
}

impl Counter {
    fn new(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        let mut c = Counter { per_tick: 1 };
        // 2 instructions (SUBS, BNE) per iteration.
        let iterations: u32 = 1_000_000;
        let ticks = c.ticks(|| {
            // SAFETY: a register-only countdown loop.
            unsafe {
                core::arch::asm!("1:", "subs {n}, #1", "bne 1b", n = inout(reg) iterations => _, options(nomem, nostack));
            }
        });
        let per_tick = (2 * iterations as u64 + ticks / 2) / ticks.max(1);
        say!(
            "timer: SysTick, {ticks} ticks for {} loop instructions: {per_tick} instructions per tick",
            2 * iterations
        );
        check(
            per_tick >= 1 && (ticks * per_tick).abs_diff(2 * iterations as u64) <= 2 * per_tick,
            "SysTick counts instructions (run under -icount shift=0)",
        );
        c.per_tick = per_tick;
        c
    }

    fn ticks(&self, f: impl FnOnce()) -> u64 {
        let t0 = SYST::get_current();
        f();
        let t1 = SYST::get_current();
        (t0.wrapping_sub(t1) & 0x00FF_FFFF) as u64
    }

    /// Instructions of `reps` runs of `f`, to within one tick.
    fn instructions(&self, reps: u32, mut f: impl FnMut()) -> u64 {
        self.ticks(|| {
            for _ in 0..reps {
                f();
            }
        }) * self.per_tick
    }
}

/// A table whose Dense kernels do nothing, to count what the conv lowering costs by itself.
struct NoDense;
impl kernels::patches::Dense for NoDense {
    const I8: kernels::DenseI8Fn = empty_dense;
    const F16: kernels::DenseFloatFn = kernels::reference::dense_f16;
    const F32: kernels::DenseFloatFn = kernels::reference::dense_f32;
    const PIXELS_AS_ROWS: bool = true;
}

#[inline(never)]
fn empty_dense(_: &DenseI8<'_>, _: &[i8], _: usize, _: &mut [i8]) {}

/// Instructions per MAC of the reference and the DSP kernel on the flash-resident layers.
fn instruction_counts(counter: &Counter, dsp: &Kernels) {
    let mut rng = Rng::new(17);
    for (name, rows, cols, w, reps) in
        [("400x20", 400, 20, W400X20, 40u32), ("784x400", 784, 400, W784X400, 4), ("400x784", 400, 784, W400X784, 4)]
    {
        for (kernel, f, offset) in
            [("scalar", REFERENCE.dense_i8, 0), ("dsp", dsp.dense_i8, 0), ("dsp", dsp.dense_i8, 1)]
        {
            let layer = Layer::new(rows, cols, &w.0[offset..offset + rows * cols], &mut rng, true);
            let p = layer.params();
            let x = random_i8s(&mut rng, cols);
            let mut out = vec![0i8; rows];
            let mut run = |f: kernels::DenseI8Fn| {
                counter.instructions(reps, || black_box(f)(black_box(&p), black_box(&x), 1, black_box(&mut out)))
            };
            let overhead = run(empty_dense);
            let total = run(f);
            let per_call = total.saturating_sub(overhead) as f64 / reps as f64;
            let per_mac = per_call / (rows * cols) as f64;
            let note = if offset == 0 { "" } else { " (misaligned rows)" };
            say!("dense_i8 {kernel} {name}{note}: {per_call:.0} instructions, {per_mac:.2} per MAC");
        }
    }
    // The opt-in int16-weight kernel, for comparison: twice the weight flash.
    for (name, rows, cols, w16, reps) in
        [("784x400", 784, 400, W784X400_I16, 4u32), ("400x784", 400, 784, W400X784_I16, 4)]
    {
        let layer = Layer::new(rows, cols, &[], &mut rng, true);
        let p = DenseI8 { weights: &w16.0[..2 * rows * cols], ..layer.params() };
        let x = random_i8s(&mut rng, cols);
        let mut out = vec![0i8; rows];
        let mut run = |f: kernels::DenseI8Fn| {
            counter.instructions(reps, || black_box(f)(black_box(&p), black_box(&x), 1, black_box(&mut out)))
        };
        let overhead = run(empty_dense);
        let per_call = run(dense_i8_w16).saturating_sub(overhead) as f64 / reps as f64;
        let per_mac = per_call / (rows * cols) as f64;
        say!("dense_i8 dsp-int16-weights {name} (opt-in, 2x flash): {per_call:.0} instructions, {per_mac:.2} per MAC");
    }
}

/// The conv VAE decoder's two transposed convolutions (kernel 4, stride 2, padding 1), tap-major
/// as the quantizer writes them, through the DSP table's direct kernel: the whole call per true
/// MAC. Random requantization parameters do not always take the kernel's folded asm epilogue,
/// which the shipped blob's do: the firmware's decode count is the one the targets are for.
fn conv_instruction_counts(counter: &Counter, dsp: &Kernels) {
    let mut rng = Rng::new(23);
    // With the conv VAE's layouts: the Dense output feeding the first layer is NCHW, the
    // tensor between the two channels-last (`Model::channels_last`), the image NCHW.
    let layers = [
        ("64x7x7 -> 32x14x14", [64, 7, 7], [32, 14, 14], (false, true)),
        ("32x14x14 -> 1x28x28", [32, 14, 14], [1, 28, 28], (true, false)),
    ];
    for (name, i, o, (in_last, out_last)) in layers {
        let c = suite::ConvCase::with_shapes(&mut rng, true, ConvGeometry::square(4, 2, 1), (i, o), 1);
        let arrays = c.tap_major_arrays();
        let p = c.tap_major_params(&arrays);
        // (The values are random: reading them in the other order changes no count.)
        let p = kernels::ConvI8 {
            in_shape: kernels::Shape { channels_last: in_last, ..p.in_shape },
            out_shape: kernels::Shape { channels_last: out_last, ..p.out_shape },
            ..p
        };
        let macs = p.dims(true).map_or(1, |d| d.macs(true));
        let mut out = vec![0i8; o.iter().product()];
        let n =
            counter.instructions(1, || black_box(dsp.conv_transpose_i8)(black_box(&p), black_box(&c.x), 1, &mut out));
        say!("conv_transpose_i8 dsp {name}: {n} instructions, {:.2} per MAC ({macs} MACs)", n as f64 / macs as f64);
        // The generic patch driver (the DSP table's fallback for transposed convolutions, and
        // its forward convolutions) with a Dense kernel that does nothing: the lowering's own
        // cost, for comparison with the direct kernel above.
        let f = kernels::patches::conv_transpose_i8::<NoDense>;
        let n = counter.instructions(1, || black_box(f)(black_box(&p), black_box(&c.x), 1, &mut out));
        say!(
            "  the patch driver's lowering alone (window, patches, scatter): {n} instructions, {:.2} per MAC",
            n as f64 / macs as f64
        );
    }
    // What the Dense kernel alone costs on the patch driver's calls for the first layer: 32
    // rows of one phase's 256 weights, two pixels per call.
    let weights: Vec<u8> = (0..32 * 256).map(|_| (rng.below(255) as i32 - 127) as i8 as u8).collect();
    let layer = Layer::new(32, 256, &weights, &mut rng, true);
    let p = layer.params();
    let x = random_i8s(&mut rng, 2 * 256);
    let mut out = vec![0i8; 2 * 32];
    let n = counter.instructions(8, || black_box(dsp.dense_i8)(black_box(&p), black_box(&x), 2, black_box(&mut out)));
    say!(
        "dense_i8 dsp 32x256, batch 2 (the patch driver's Dense calls on that layer): {:.2} per MAC",
        n as f64 / (8 * 2 * 32 * 256) as f64
    );
}

fn check(ok: bool, what: &str) {
    if !ok {
        fail(format_args!("{what}"));
    }
}

fn fail(what: core::fmt::Arguments<'_>) -> ! {
    say!("FAIL: {what}");
    say!("0 passed, 1 failed");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: single-threaded; set only by `check_guard_faults`.
    if unsafe { (&raw const EXPECTING_GUARD_FAULT).read_volatile() } {
        finish();
    }
    fail(format_args!("HardFault: {frame:?}"))
}
