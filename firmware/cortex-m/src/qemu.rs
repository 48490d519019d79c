//! The QEMU board (`mps2-an386`, Cortex-M4): draws [`SAMPLES`] digits into an in-RAM SSD1306
//! framebuffer, dumps them to host files and reports their cost over semihosting.
//!
//! Files written in QEMU's working directory:
//! - `samples.raw`: the decoded pixels, `SAMPLES` x 784 bytes, as `tinyvae sample --raw` writes.
//! - `frames.raw`: the panel frames, `SAMPLES` x 1024 bytes in the SSD1306's page layout
//!   (display builds only).
//!
//! Instructions are counted with SysTick under `-icount shift=0`: QEMU then advances its
//! virtual clock by exactly 1 ns per instruction, and SysTick counts that clock. A tick is
//! several instructions, calibrated at boot on a loop of known length, so a count is exact to
//! within one tick. Stack depth is measured by painting (see `stack.rs`).
//!
//! The program exits with status 0 after its `PASS` line, or prints `error: ...` and exits with
//! status 1 (panics and HardFaults included).

use core::fmt::{self, Write as _};
use core::hint::black_box;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::debug;
use tinyvae::{Decoder, Model, Rng};

use crate::semihosting::{Console, HostError, HostFile};
use crate::{model, stack, PIXELS, SEED};

mod anomaly;
#[cfg(classifier)]
mod classify;

/// Digits per run.
const SAMPLES: u32 = 8;

#[cfg(feature = "display")]
type Frame = tinyvae_display::MonoFramebuffer<128, 8>;

/// The panel's image (1 KiB), out of the stack like the other buffers.
#[cfg(feature = "display")]
static mut FRAME: Frame = Frame::new();

#[entry]
fn main() -> ! {
    // First thing: from here on, every stack word that loses the paint was used.
    stack::paint();
    let mut console = Console::open();
    let status = match run(&mut console) {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(failure) => {
            let _ = writeln!(console, "error: {failure}");
            debug::EXIT_FAILURE
        }
    };
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Why a run stopped.
enum Failure {
    Model(tinyvae::Error),
    Host(HostError),
    Setup(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Model(e) => write!(f, "model: {e}"),
            Failure::Host(e) => write!(f, "{e}"),
            Failure::Setup(what) => f.write_str(what),
        }
    }
}

impl From<tinyvae::Error> for Failure {
    fn from(e: tinyvae::Error) -> Self {
        Failure::Model(e)
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure::Host(e)
    }
}

/// Per-frame costs, instructions and bytes.
#[derive(Clone, Copy)]
struct FrameCost {
    z_draw: u64,
    decode: u64,
    decode_stack: usize,
    /// `None` in builds without the display code.
    render: Option<u64>,
    /// The class a deployed classifier gave the digit, and its instructions.
    class: Option<(u32, u64)>,
}

fn run(console: &mut Console) -> Result<(), Failure> {
    let core = cortex_m::Peripherals::take().ok_or(Failure::Setup("core peripherals already taken"))?;
    let counter = Counter::new(core.SYST)?;
    let (arena, digit) = crate::take_buffers().ok_or(Failure::Setup("buffers already taken"))?;

    let (model, parse) = counter.count(|| Model::parse(model::BLOB));
    let model = model?;
    // An autoencoder scores feature vectors instead (the comparison of constants folds, so a
    // decoder's image links none of it, and the reverse).
    if model::KIND == tinyvae::ModelKind::Autoencoder {
        return anomaly::run(console, &counter, &model, arena);
    }
    let decoder = Decoder::new(&model)?;
    if decoder.output_len() != PIXELS || model.meta().width * model.meta().height != PIXELS {
        return Err(Failure::Setup("the decoder's output is not the deployed image size"));
    }
    let macs = model.macs() as u64;
    let _ = writeln!(
        console,
        "config: seed={SEED} samples={SAMPLES} pixels={PIXELS} kernels={}",
        tinyvae::kernels::best().name
    );
    let _ =
        writeln!(console, "timer: SysTick, {} instructions per tick (counts are exact to one tick)", counter.per_tick);
    let _ = writeln!(
        console,
        "model: {} {}, latent {}, blob {} B in flash, arena {} B, {macs} MACs per decode; parse+validate {parse} instructions",
        model.precision(),
        model.kind(),
        decoder.latent_dim(),
        model::BLOB.len(),
        arena.len(),
    );
    let _ = match model.prior() {
        Some(p) => writeln!(console, "prior: stored, {} components over z of {}", p.components(), p.latent_dim()),
        None => writeln!(console, "prior: N(0, I)"),
    };

    // A classifier deployed beside the decoder (build.rs): none of its code is linked otherwise.
    #[cfg(classifier)]
    let classifier = classify::model()?;
    #[cfg(classifier)]
    let mut reader = classify::Reader::new(&classifier, console)?;

    let mut samples = HostFile::create(c"samples.raw")?;
    #[cfg(feature = "display")]
    let mut frames = HostFile::create(c"frames.raw")?;
    #[cfg(feature = "display")]
    let frame = take_frame().ok_or(Failure::Setup("frame already taken"))?;

    let mut rng = Rng::new(SEED);
    let mut boot_peak = 0;
    let (mut fewest, mut most) = (u64::MAX, 0);
    let mut deepest = 0;
    for index in 0..SAMPLES {
        // The z draw alone (from the blob's stored prior, or N(0, I) without one), on a copy of
        // the generator so the stream is left as it was.
        // The digit a conditional decoder is asked for.
        let requested =
            (decoder.classes() > 0).then(|| crate::REQUESTED_DIGITS[index as usize % crate::REQUESTED_DIGITS.len()]);
        let (drawn, z_draw) = counter.count(|| {
            let mut z = [0f32; model::LATENT];
            let drawn = decoder.draw_latent(requested, &mut rng.clone(), &mut z);
            black_box(z);
            drawn
        });
        drawn?;
        if index == 0 {
            // Reset, setup and parsing, before anything was printed: the firmware's own depth.
            boot_peak = stack::top() - stack::lowest_touched();
        }
        let sp = stack::pointer();
        stack::paint();
        let (sampled, total) = counter.count(|| crate::draw_sample(&decoder, index, &mut rng, arena, digit));
        let decode_stack = sp - stack::lowest_touched();
        sampled?;
        #[cfg(classifier)]
        let class = Some(reader.read(&counter, digit, requested)?);
        #[cfg(not(classifier))]
        let class = None;
        #[cfg(feature = "display")]
        let render = {
            use tinyvae_display::embedded_graphics::Drawable as _;
            use tinyvae_display::{Caption, DigitPanel};
            let (w, h) = (model.meta().width as u32, model.meta().height as u32);
            let caption = match class {
                Some((c, _)) => Caption::new(index, SEED).with_class(c),
                None => Caption::new(index, SEED),
            };
            let (Ok(()), render) = counter.count(|| DigitPanel::new(digit, w, h, caption).draw(frame));
            frames.write_all(frame.as_bytes())?;
            if index == 0 {
                print_frame(console, frame);
            }
            Some(render)
        };
        #[cfg(not(feature = "display"))]
        let render = None;
        let cost = FrameCost { z_draw, decode: total.saturating_sub(z_draw), decode_stack, render, class };
        samples.write_all(digit)?;

        fewest = fewest.min(cost.decode);
        most = most.max(cost.decode);
        deepest = deepest.max(cost.decode_stack);
        report(console, index, &cost, macs, arena.len());
    }
    // The last frame's whole iteration: decode, drawing, dumping and printing.
    let loop_peak = stack::top() - stack::lowest_touched();

    let (per_mac, per_mac_frac) = hundredths(most, macs);
    let _ = writeln!(
        console,
        "summary: {SAMPLES} frames; decode {fewest}..{most} instructions, {per_mac}.{per_mac_frac:02} per MAC ({macs} MACs, kernels {})",
        tinyvae::kernels::best().name
    );
    let _ = writeln!(
        console,
        "summary: RAM for one decode: arena {} B + decode stack {deepest} B = {} B; firmware stack peak {} B (setup {boot_peak} B, loop {loop_peak} B)",
        arena.len(),
        arena.len() + deepest,
        boot_peak.max(loop_peak),
    );
    #[cfg(classifier)]
    reader.summary(console, decoder.classes() > 0);
    let _ = write!(console, "summary: wrote samples.raw ({SAMPLES} x {PIXELS} B)");
    #[cfg(feature = "display")]
    let _ = write!(console, " and frames.raw ({SAMPLES} x {} B, SSD1306 pages)", frame.as_bytes().len());
    let _ = writeln!(console);
    let _ = writeln!(console, "PASS");
    Ok(())
}

fn report(console: &mut Console, index: u32, cost: &FrameCost, macs: u64, arena: usize) {
    let (per_mac, frac) = hundredths(cost.decode, macs);
    let _ = write!(
        console,
        "frame {index}: z draw {} + decode {} instructions ({per_mac}.{frac:02} per MAC); decode stack {} B + arena {arena} B = {} B",
        cost.z_draw,
        cost.decode,
        cost.decode_stack,
        cost.decode_stack + arena,
    );
    if let Some(render) = cost.render {
        let _ = write!(console, "; render {render} instructions");
    }
    if let Some((class, instructions)) = cost.class {
        let _ = write!(console, "; class {class} ({instructions} instructions)");
    }
    let _ = writeln!(console);
}

/// `n / d` as whole and hundredths, rounded; integer-only so no float formatting is linked.
fn hundredths(n: u64, d: u64) -> (u64, u64) {
    let h = (n * 100 + d / 2) / d.max(1);
    (h / 100, h % 100)
}

#[cfg(feature = "display")]
fn take_frame() -> Option<&'static mut Frame> {
    use core::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the flag lets this run once, and FRAME is reached nowhere else.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(FRAME) })
}

/// The frame as text, two panel pixels per character across and down.
#[cfg(feature = "display")]
fn print_frame(console: &mut Console, frame: &Frame) {
    use tinyvae_display::embedded_graphics::prelude::{OriginDimensions, Point};
    let size = frame.size();
    let _ = writeln!(console, "frame 0 as drawn ({}x{}, 2x2 pixels per character):", size.width, size.height);
    for y in (0..size.height as i32).step_by(2) {
        let mut line = [b' '; 64];
        for (x, c) in (0..size.width as i32).step_by(2).zip(line.iter_mut()) {
            let lit = [(0, 0), (1, 0), (0, 1), (1, 1)]
                .iter()
                .filter(|&&(dx, dy)| frame.pixel(Point::new(x + dx, y + dy)).is_some_and(|c| c.is_on()))
                .count();
            *c = b" .:##"[lit];
        }
        let _ = writeln!(console, "|{}|", core::str::from_utf8(&line).unwrap_or(""));
    }
}

/// SysTick on the core clock, free-running over its 24 bits.
struct Counter {
    /// Instructions per tick, measured at boot.
    per_tick: u64,
}

impl Counter {
    fn new(mut syst: SYST) -> Result<Self, Failure> {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(0x00FF_FFFF);
        syst.clear_current();
        syst.enable_counter();
        let mut counter = Counter { per_tick: 1 };
        // Two instructions (SUBS, BNE) per iteration.
        let iterations: u32 = 1_000_000;
        let ((), ticks) = counter.count(|| {
            // SAFETY: a register-only countdown loop.
            unsafe {
                core::arch::asm!("2:", "subs {n}, #1", "bne 2b", n = inout(reg) iterations => _, options(nomem, nostack));
            }
        });
        let expected = 2 * iterations as u64;
        let per_tick = (expected + ticks / 2) / ticks.max(1);
        if per_tick == 0 || (ticks * per_tick).abs_diff(expected) > 2 * per_tick {
            return Err(Failure::Setup("SysTick does not count instructions: run QEMU with -icount shift=0"));
        }
        counter.per_tick = per_tick;
        Ok(counter)
    }

    /// Runs `f` and returns its result and its instruction count (to within one tick). The
    /// code measured must take less than 2^24 ticks.
    fn count<R>(&self, f: impl FnOnce() -> R) -> (R, u64) {
        let t0 = SYST::get_current();
        let r = f();
        let t1 = SYST::get_current();
        (r, (t0.wrapping_sub(t1) & 0x00FF_FFFF) as u64 * self.per_tick)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let _ = writeln!(Console::open(), "error: panic: {info}");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    let _ = writeln!(Console::open(), "error: HardFault: {frame:?}");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
