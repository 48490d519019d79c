//! An autoencoder blob as an anomaly detector on the Pi: scores each feature vector of a raw
//! little-endian f32 file (as a sensor pipeline would hand them over), prints every score with
//! its alarm against the threshold, and writes the raw scores, byte for byte those of `tinyvae
//! score --raw` and of the Cortex-M firmware.

use std::time::Instant;

use tinyvae::{Autoencoder, Model};

use crate::args::Args;

pub fn run(a: &Args, model: &Model<'_>) -> Result<(), String> {
    let name = a.blob.display();
    let ae = Autoencoder::new(model).map_err(|e| format!("{name}: {e}"))?;
    let path = a.vectors.as_ref().ok_or_else(|| format!("{name} is an autoencoder: give --vectors FILE to score"))?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let n = ae.features();
    let per_vector = 4 * n;
    if bytes.is_empty() || bytes.len() % per_vector != 0 {
        return Err(format!(
            "{}: {} bytes is not a whole number of vectors of {n} f32 values ({per_vector} bytes)",
            path.display(),
            bytes.len()
        ));
    }
    let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let mut arena = vec![0u8; model.arena_size()];
    let mut raw = Vec::with_capacity(bytes.len() / per_vector * 8);
    let (mut alarms, count) = (0, values.len() / n);
    let start = Instant::now();
    for (i, x) in values.chunks_exact(n).enumerate() {
        let score = ae.score(x, &mut arena).map_err(|e| format!("{name}: {e}"))?;
        let alarm = score.exceeds(a.threshold);
        alarms += alarm as usize;
        raw.extend_from_slice(&score.raw.to_le_bytes());
        println!(
            "vector {i}: score raw {} (MSE {:.4e}){}",
            score.raw,
            score.value(),
            if alarm { " ALARM" } else { "" }
        );
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / count as f64;
    println!(
        "scored {count} vectors with {name} ({} {}, kernels {}): {us:.1} us per vector; {alarms} alarm{}",
        model.precision(),
        model.kind(),
        tinyvae::kernels::best().name,
        if alarms == 1 { "" } else { "s" }
    );
    if let Some(out) = &a.scores {
        crate::write_file(out, &raw)?;
        println!("wrote {count} raw scores to {}", out.display());
    }
    Ok(())
}
