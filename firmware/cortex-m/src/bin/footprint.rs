//! The runtime's own flash and RAM footprint: the smallest program that does the firmware's
//! job without a display or reports. It parses the deployed model, decodes one sampled digit
//! into a static buffer (an autoencoder: scores one feature vector), and exits through
//! semihosting (status 0 when the decode succeeded),
//! so everything in its image but the model is the runtime plus the Cortex-M startup code.
//! `scripts/test-firmware.sh` builds it with `--no-default-features --bin footprint`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use tinyvae::{Autoencoder, Decoder, Model, ModelKind, Rng};

mod model {
    include!(concat!(env!("TINYVAE_MODEL_DIR"), "/model.rs"));
}

static mut ARENA: [u8; model::ARENA_SIZE] = [0; model::ARENA_SIZE];
static mut DIGIT: [u8; model::OUTPUT_LEN] = [0; model::OUTPUT_LEN];
/// An autoencoder's input vector.
static mut FEATURES: [f32; model::INPUT_LEN] = [0.0; model::INPUT_LEN];

fn decode_one() -> Result<(), tinyvae::Error> {
    // SAFETY: main runs once and nothing else touches these statics.
    let (arena, digit) = unsafe { (&mut *core::ptr::addr_of_mut!(ARENA), &mut *core::ptr::addr_of_mut!(DIGIT)) };
    let model = Model::parse(model::BLOB)?;
    if model::KIND == ModelKind::Autoencoder {
        // One feature vector, scored: all that firmware adds is where the vector comes from.
        // It lives in RAM, filled here, so that flash holds only the runtime and the model.
        // SAFETY: as for ARENA above.
        let x = unsafe { &mut *core::ptr::addr_of_mut!(FEATURES) };
        x.fill(0.5);
        let score = Autoencoder::new(&model)?.score(x, arena)?;
        return if score.raw == u64::MAX { Err(tinyvae::Error::BadBatch { batch: 0 }) } else { Ok(()) };
    }
    let decoder = Decoder::new(&model)?;
    if decoder.classes() > 0 {
        // Conditional decoders (CVAE, M2): a requested digit.
        return decoder.sample_conditional(&mut Rng::new(1), 0, arena, digit);
    }
    decoder.sample(&mut Rng::new(1), arena, digit)
}

// The loops after the semihosting exit never run (QEMU stops there). They stay empty rather than
// `wfi` so that this probe's flash is the runtime's and nothing else.
#[allow(clippy::empty_loop)]
#[entry]
fn main() -> ! {
    debug::exit(if decode_one().is_ok() { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {}
}

#[allow(clippy::empty_loop)]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    debug::exit(EXIT_FAILURE);
    loop {}
}
