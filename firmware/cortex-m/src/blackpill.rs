//! The real board: an STM32F411CEU6 "BlackPill" (Cortex-M4F, 100 MHz, 512 KiB flash, 128 KiB
//! RAM) with a 128x64 SSD1306 OLED on I2C1 (PB8 SCL, PB9 SDA, address 0x3C, 400 kHz).
//!
//! It shows a new digit every [`FRAME_PERIOD_MS`], forever: sample, draw into the driver's
//! frame buffer with the same `tinyvae-display` code as the QEMU build, flush. Below the
//! caption it shows the decode's cost in core cycles (DWT cycle counter). A failure is written
//! on the panel, and the program halts.

use core::fmt::{self, Write as _};

use cortex_m::peripheral::DWT;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};
use stm32f4xx_hal::rcc::Config;
use stm32f4xx_hal::{pac, prelude::*};
use tinyvae::{Decoder, Model, Rng};
use tinyvae_display::embedded_graphics::mono_font::{ascii::FONT_6X10, MonoTextStyle};
use tinyvae_display::embedded_graphics::pixelcolor::BinaryColor;
use tinyvae_display::embedded_graphics::prelude::*;
use tinyvae_display::embedded_graphics::text::{Baseline, Text};
use tinyvae_display::{Caption, DigitPanel};

use crate::{model, SEED};

/// Time each digit stays on the panel.
const FRAME_PERIOD_MS: u32 = 1500;

type Panel<I> = Ssd1306<I, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

#[entry]
fn main() -> ! {
    let (Some(dp), Some(mut cp)) = (pac::Peripherals::take(), cortex_m::Peripherals::take()) else { halt() };
    // The BlackPill's 25 MHz crystal, PLL to the F411's 100 MHz maximum.
    let mut rcc = dp.RCC.freeze(Config::hse(25.MHz()).sysclk(100.MHz()));
    let gpiob = dp.GPIOB.split(&mut rcc);
    // Most SSD1306 modules carry their own pull-ups; the internal ones cover those that don't.
    let scl = gpiob.pb8.internal_pull_up(true);
    let sda = gpiob.pb9.internal_pull_up(true);
    let i2c = dp.I2C1.i2c((scl, sda), 400.kHz(), &mut rcc);
    let mut panel = Ssd1306::new(I2CDisplayInterface::new(i2c), DisplaySize128x64, DisplayRotation::Rotate0)
        .into_buffered_graphics_mode();
    if panel.init().is_err() {
        // No panel answered: there is nowhere to report it.
        halt()
    }
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let mut delay = cp.SYST.delay(&rcc.clocks);

    let failure = run(&mut panel, &mut || delay.delay_ms(FRAME_PERIOD_MS));
    show_failure(&mut panel, &failure);
    halt()
}

/// Why the loop stopped.
enum Failure {
    Model(tinyvae::Error),
    Panel,
    Setup(&'static str),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Model(e) => write!(f, "model: {e}"),
            Failure::Panel => f.write_str("the SSD1306 stopped answering on I2C"),
            Failure::Setup(what) => f.write_str(what),
        }
    }
}

impl From<tinyvae::Error> for Failure {
    fn from(e: tinyvae::Error) -> Self {
        Failure::Model(e)
    }
}

/// Samples and shows digits until something fails; returns only then.
fn run<I: WriteOnlyDataCommand>(panel: &mut Panel<I>, wait: &mut dyn FnMut()) -> Failure {
    match show_digits(panel, wait) {
        Err(failure) => failure,
    }
}

fn show_digits<I: WriteOnlyDataCommand>(
    panel: &mut Panel<I>,
    wait: &mut dyn FnMut(),
) -> Result<core::convert::Infallible, Failure> {
    let (arena, digit) = crate::take_buffers().ok_or(Failure::Setup("buffers already taken"))?;
    let model = Model::parse(model::BLOB)?;
    let decoder = Decoder::new(&model)?;
    let (w, h) = (model.meta().width as u32, model.meta().height as u32);
    let mut rng = Rng::new(SEED);
    let ink = MonoTextStyle::new(&FONT_6X10, BinaryColor::On);
    let mut index = 0u32;
    loop {
        let start = DWT::cycle_count();
        crate::draw_sample(&decoder, index, &mut rng, arena, digit)?;
        let cycles = DWT::cycle_count().wrapping_sub(start);

        let caption = Caption::new(index, SEED);
        let drawing = DigitPanel::new(digit, w, h, caption);
        drawing.draw(panel).map_err(|_| Failure::Panel)?;
        let below = drawing.layout(panel.size()).caption + Point::new(0, 26);
        let text = TextLine::format(format_args!("{}k cyc", (cycles + 500) / 1000));
        Text::with_baseline(text.as_str(), below, ink, Baseline::Top).draw(panel).map_err(|_| Failure::Panel)?;
        panel.flush().map_err(|_| Failure::Panel)?;

        index = index.wrapping_add(1);
        wait();
    }
}

/// The failure's message, wrapped to the panel's 21 columns.
fn show_failure<I: WriteOnlyDataCommand>(panel: &mut Panel<I>, failure: &Failure) {
    let message = TextLine::format(format_args!("error: {failure}"));
    let ink = MonoTextStyle::new(&FONT_6X10, BinaryColor::On);
    let _ = panel.clear(BinaryColor::Off);
    for (row, chunk) in message.as_str().as_bytes().chunks(21).take(6).enumerate() {
        let line = core::str::from_utf8(chunk).unwrap_or("?");
        let _ = Text::with_baseline(line, Point::new(0, 10 * row as i32), ink, Baseline::Top).draw(panel);
    }
    let _ = panel.flush();
}

/// Text formatted without allocating; longer text is cut. ASCII only, so any byte split of
/// it is valid UTF-8.
struct TextLine {
    bytes: [u8; 126],
    len: usize,
}

impl TextLine {
    fn format(args: fmt::Arguments<'_>) -> Self {
        let mut line = TextLine { bytes: [0; 126], len: 0 };
        let _ = line.write_fmt(args);
        line
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl fmt::Write for TextLine {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let c = if c.is_ascii() { c as u8 } else { b'?' };
            if self.len < self.bytes.len() {
                self.bytes[self.len] = c;
                self.len += 1;
            }
        }
        Ok(())
    }
}

fn halt() -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    halt()
}

#[exception]
unsafe fn HardFault(_: &ExceptionFrame) -> ! {
    halt()
}
