//! `tinyvae`: train, export, quantize, validate, sample, inspect and benchmark autoencoders
//! for microcontrollers and edge boards.

mod cmd;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tinyvae", version, about = "Generative autoencoders on microcontrollers and edge boards", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a VAE on an MNIST-style IDX directory and export encoder.onnx / decoder.onnx.
    Train(cmd::train::Args),
    /// Quantize an ONNX encoder or decoder into a runtime blob (.tvae), and report its fidelity.
    Quantize(cmd::quantize::Args),
    /// Run MODEL.onnx in tract and BLOB.tvae in the runtime on the same inputs and compare.
    Validate(cmd::validate::Args),
    /// Draw samples from a decoder blob (in the runtime) into a PNG grid and/or raw pixels.
    Sample(cmd::sample::Args),
    /// Print a blob's header, graph, tensors and memory plan.
    Inspect(cmd::inspect::Args),
    /// Write a blob and a generated Rust module (arena size, shapes, aligned include_bytes!) for firmware.
    Deploy(cmd::deploy::Args),
    /// Per-sample latency of the runtime (int8, f16, f32) against tract f32 on the same ONNX.
    Bench(cmd::bench::Args),
    /// Draw the lecture's figures from quantized blobs (PNG).
    #[command(subcommand)]
    Figure(cmd::figure::Figure),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Sample(a) => cmd::sample::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Deploy(a) => cmd::deploy::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Figure(f) => cmd::figure::run(f),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the chain of contexts, outermost first.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
