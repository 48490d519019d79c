//! The Cortex-M example: sampled digits from the shipped int8 decoder, drawn on a small panel.
//!
//! It embeds the model that `tinyvae deploy` wrote (blob and `model.rs`, see build.rs), sizes
//! a `static` arena from it at compile time, and loops: draw z from the runtime's PRNG (seed
//! [`SEED`]) through the blob's stored prior (N(0, I) without one), decode it to 28x28 pixels,
//! and draw the digit with its caption
//! through `tinyvae-display`. `tinyvae::Decoder::new` picks the fastest kernels for the
//! target, on a Cortex-M4F the DSP (`SMLAD`) ones.
//!
//! Two boards:
//! - default: QEMU's `mps2-an386` (Cortex-M4). The panel is an in-RAM SSD1306-layout
//!   framebuffer. Pixels and frames are dumped to host files and a per-frame report is printed
//!   over semihosting (see `qemu.rs`); `scripts/test-firmware.sh` checks the pixels against the
//!   host runtime byte for byte.
//! - `--features ssd1306`: an STM32F411 "BlackPill" driving a real 128x64 SSD1306 over I2C
//!   (see `blackpill.rs` and firmware/README.md for wiring and flashing).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

/// The deployed model: the module `tinyvae deploy` generated, next to the blob it embeds.
mod model {
    include!(concat!(env!("TINYVAE_MODEL_DIR"), "/model.rs"));
}

#[cfg(feature = "ssd1306")]
mod blackpill;
#[cfg(not(feature = "ssd1306"))]
mod qemu;
#[cfg(not(feature = "ssd1306"))]
mod semihosting;
#[cfg(not(feature = "ssd1306"))]
mod stack;

/// Seed of the runtime's PRNG. `tinyvae sample BLOB --seed 1` draws the same digits on a host.
pub const SEED: u64 = 1;

/// The digits a conditional decoder (CVAE, M2: deployed with `tinyvae deploy`) is asked for,
/// in turn; edit to request others. `tinyvae sample BLOB --seed 1` (no `--label`) cycles
/// 0..=9 the same way, so the default draws the same digits on a host. Unconditional
/// decoders ignore it.
pub const REQUESTED_DIGITS: &[u32] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/// Draws sample `index`: z from the blob's prior (its stored mixture, else N(0, I)) with `rng`,
/// decoded with the requested digit when the
/// decoder takes a label.
pub fn draw_sample(
    decoder: &tinyvae::Decoder<'_, '_>,
    index: u32,
    rng: &mut tinyvae::Rng,
    arena: &mut [u8],
    digit: &mut [u8],
) -> Result<(), tinyvae::Error> {
    if decoder.classes() == 0 {
        return decoder.sample(rng, arena, digit);
    }
    let label = REQUESTED_DIGITS[index as usize % REQUESTED_DIGITS.len()];
    decoder.sample_conditional(rng, label, arena, digit)
}

/// Pixels per decoded sample.
pub const PIXELS: usize = model::OUTPUT_LEN;

/// The runtime's working memory, sized from the blob at compile time.
static mut ARENA: [u8; model::ARENA_SIZE] = [0; model::ARENA_SIZE];

/// The decoded digit, kept out of the stack so that stack marks show the decoder's own use.
static mut DIGIT: [u8; PIXELS] = [0; PIXELS];

/// The arena and the digit buffer, handed out once (`None` afterwards).
pub fn take_buffers() -> Option<(&'static mut [u8], &'static mut [u8; PIXELS])> {
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the flag lets this run once, and the statics are reached nowhere else, so these
    // are the only references to them.
    Some(unsafe { (&mut *core::ptr::addr_of_mut!(ARENA), &mut *core::ptr::addr_of_mut!(DIGIT)) })
}
