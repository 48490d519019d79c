//! The QEMU board's run for an autoencoder blob (an anomaly detector, e.g. the MLPerf Tiny
//! anomaly-detection model): it scores a stream of feature vectors and raises alarms.
//!
//! The vectors come from the host file `vectors.f32` (raw little-endian f32, `model::INPUT_LEN`
//! values per vector, read one vector at a time through semihosting, as a sensor would deliver
//! frames). Each vector's score (`tinyvae::Score::raw`, integer arithmetic on an int8 blob) is
//! written to `scores.raw` as a little-endian u64, and compared with `model::THRESHOLD_RAW`,
//! the threshold `tinyvae deploy --threshold-data` chose on the host. `scripts/test-firmware.sh`
//! checks `scores.raw` against `tinyvae score --raw` byte for byte.

use core::fmt::Write as _;

use tinyvae::{Autoencoder, Model};

use super::{hundredths, Counter, Failure};
use crate::semihosting::{Console, HostFile};
use crate::{model, stack};

/// One feature vector, out of the stack like the arena (the caller's input buffer).
static mut VECTOR: [f32; model::INPUT_LEN] = [0.0; model::INPUT_LEN];

/// Most vectors a run scores (the file may hold fewer).
const MAX_VECTORS: u32 = 64;

pub(super) fn run(
    console: &mut Console,
    counter: &Counter,
    model: &Model<'_>,
    arena: &mut [u8],
) -> Result<(), Failure> {
    let ae = Autoencoder::new(model)?.with_score(model::SCORE)?;
    let macs = model.macs() as u64;
    // SAFETY: this runs once (`take_buffers` guards the caller), and VECTOR is reached nowhere
    // else, so this is its only reference.
    let vector = unsafe { &mut *core::ptr::addr_of_mut!(VECTOR) };
    // SAFETY: any bit pattern is a valid f32, and the byte view covers exactly the array.
    let bytes = unsafe { core::slice::from_raw_parts_mut(vector.as_mut_ptr().cast::<u8>(), size_of_val(vector)) };
    let _ = writeln!(
        console,
        "config: anomaly features={} vectors<={MAX_VECTORS} kernels={}",
        model::INPUT_LEN,
        tinyvae::kernels::best().name
    );
    let _ = writeln!(
        console,
        "model: {} {}, blob {} B in flash, arena {} B, {macs} MACs per inference; alarm above raw score {}",
        model.precision(),
        model.kind(),
        model::BLOB.len(),
        arena.len(),
        model::THRESHOLD_RAW
    );
    let mut input = HostFile::open(c"vectors.f32")?;
    let mut output = HostFile::create(c"scores.raw")?;
    let (mut fewest, mut most, mut deepest, mut alarms, mut count) = (u64::MAX, 0, 0, 0, 0u32);
    while count < MAX_VECTORS && input.read_exact(bytes)? {
        let sp = stack::pointer();
        stack::paint();
        let (score, instructions) = counter.count(|| ae.score(vector, arena));
        let inference_stack = sp - stack::lowest_touched();
        let score = score?;
        output.write_all(&score.raw.to_le_bytes())?;
        let alarm = score.exceeds(model::THRESHOLD_RAW);
        alarms += alarm as u32;
        fewest = fewest.min(instructions);
        most = most.max(instructions);
        deepest = deepest.max(inference_stack);
        let (per_mac, frac) = hundredths(instructions, macs);
        let _ = writeln!(
            console,
            "vector {count}: score raw {}{}; inference {instructions} instructions ({per_mac}.{frac:02} per MAC), stack {inference_stack} B",
            score.raw,
            if alarm { " ALARM" } else { "" },
        );
        count += 1;
    }
    if count == 0 {
        return Err(Failure::Setup("vectors.f32 holds no whole vector"));
    }
    let peak = stack::top() - stack::lowest_touched();
    let (per_mac, frac) = hundredths(most, macs);
    let _ = writeln!(
        console,
        "summary: {count} vectors; inference {fewest}..{most} instructions, {per_mac}.{frac:02} per MAC ({macs} MACs, kernels {})",
        tinyvae::kernels::best().name
    );
    let _ = writeln!(
        console,
        "summary: RAM for one inference: arena {} B + inference stack {deepest} B = {} B; firmware stack peak {peak} B; input vector {} B (f32)",
        arena.len(),
        arena.len() + deepest,
        size_of_val(vector),
    );
    let _ = writeln!(console, "summary: {alarms} of {count} vectors alarm; wrote scores.raw ({count} x 8 B)");
    let _ = writeln!(console, "PASS");
    Ok(())
}
