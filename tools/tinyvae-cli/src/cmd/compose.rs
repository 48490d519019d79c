//! `tinyvae compose ENCODER.onnx DECODER.onnx -o AE.onnx`: an encoder and a decoder (trained
//! by `tinyvae train`, or exported from PyTorch) joined into one whole autoencoder, x to its
//! reconstruction through the encoder's code (mu for a VAE), for anomaly detection: quantize it
//! with `--role autoencoder` (inferred) and score with `tinyvae score`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tinyvae_compiler::Graph;

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encoder (its first output is the code: mu, or z).
    pub encoder: PathBuf,
    /// The decoder (unconditional: z only).
    pub decoder: PathBuf,
    /// The whole autoencoder's ONNX file.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(a: Args) -> Result<ExitCode> {
    util::check_not_input(&a.output, &[&a.encoder, &a.decoder])?;
    let import =
        |p: &PathBuf| tinyvae_compiler::import_file(p).with_context(|| format!("cannot import {}", p.display()));
    let (encoder, decoder) = (import(&a.encoder)?, import(&a.decoder)?);
    let ae = Graph::autoencoder(&encoder, &decoder)
        .with_context(|| format!("cannot join {} and {}", a.encoder.display(), a.decoder.display()))?;
    let bytes = tinyvae_compiler::export(&ae).with_context(|| format!("cannot export {}", a.output.display()))?;
    util::write(&a.output, &bytes)?;
    println!(
        "wrote {}: {} -> {} -> {} values, {} nodes, {} MACs per sample",
        a.output.display(),
        ae.inputs[0].len,
        decoder.inputs[0].len,
        ae.output_len(0)?,
        ae.nodes.len(),
        ae.macs()
    );
    Ok(ExitCode::SUCCESS)
}
