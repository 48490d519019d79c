//! `tinyvae`: train, export, quantize, validate, sample, inspect and benchmark autoencoders
//! for microcontrollers and edge boards.

mod cmd;
mod datasets;
mod figures;
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
    /// Train a family member (ae, dae, cae, vae, cvae, aae) on an MNIST-style IDX directory and export its ONNX files.
    Train(cmd::train::Args),
    /// Quantize an ONNX decoder, encoder or autoencoder into a runtime blob (.tvae), and report its fidelity.
    Quantize(cmd::quantize::Args),
    /// Run MODEL.onnx in tract and BLOB.tvae in the runtime on the same inputs and compare.
    Validate(cmd::validate::Args),
    /// Draw samples from a decoder blob (in the runtime) into a PNG grid and/or raw pixels.
    Sample(cmd::sample::Args),
    /// Fit a learned latent prior (a Gaussian mixture over the encoder's codes of the training
    /// images) and store it in decoder blobs, which then sample z from it.
    FitPrior(cmd::fit_prior::Args),
    /// Join an encoder and a decoder into one whole autoencoder (ONNX), x to its reconstruction.
    Compose(cmd::compose::Args),
    /// Anomaly scores of feature vectors with an autoencoder blob: the alarm threshold for a
    /// false-positive rate, and the AUROC against anomalous vectors.
    Score(cmd::score::Args),
    /// Print a blob's header, graph, tensors and memory plan.
    Inspect(cmd::inspect::Args),
    /// Write a blob and a generated Rust module (arena size, shapes, aligned include_bytes!) for firmware.
    Deploy(cmd::deploy::Args),
    /// Per-sample latency of the runtime (int8, f16, f32) against tract f32 on the same ONNX.
    Bench(cmd::bench::Args),
    /// Draw the lecture's figures from quantized blobs (PNG).
    #[command(subcommand)]
    Figure(cmd::figure::Figure),
    /// Semi-supervised table: M2 with 100/600/1000/3000 labels over seeds, next to the paper.
    EvalSsl(cmd::eval_ssl::Args),
    /// One-class anomaly detection: per held-out class, train on the others and report the AUROC of f32 and int8.
    EvalAnomaly(cmd::eval_anomaly::Args),
    /// Train the MNIST classifier that judges generated digits (safetensors).
    TrainClassifier(cmd::classify::TrainArgs),
    /// Classify raw uint8 images (from `tinyvae sample --raw`) and report the fraction with the expected label.
    Classify(cmd::classify::Args),
    /// Download MNIST or Fashion-MNIST (checked against their SHA-256), list and locate cached sets.
    #[command(subcommand)]
    Data(cmd::data::Data),
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`tinyvae classify ... | head`)
    // panicked with a backtrace; with the default action the command ends quietly, as other
    // Unix tools do. Its outputs are files written atomically, so nothing is left half-done.
    #[cfg(unix)]
    // SAFETY: at the start of main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // The documentation's long commands (training for hours) are checked in CI by parsing
    // their arguments only: scripts/doc-commands.py sets this for them.
    if std::env::var_os("TINYVAE_CHECK_ARGS").is_some() {
        println!("tinyvae: arguments parsed, not run (TINYVAE_CHECK_ARGS is set)");
        return ExitCode::SUCCESS;
    }
    let result = match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Quantize(a) => cmd::quantize::run(a),
        Command::Validate(a) => cmd::validate::run(a),
        Command::Sample(a) => cmd::sample::run(a),
        Command::FitPrior(a) => cmd::fit_prior::run(a),
        Command::Score(a) => cmd::score::run(a),
        Command::Compose(a) => cmd::compose::run(a),
        Command::EvalAnomaly(a) => cmd::eval_anomaly::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Deploy(a) => cmd::deploy::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Figure(f) => cmd::figure::run(f),
        Command::EvalSsl(a) => cmd::eval_ssl::run(a),
        Command::TrainClassifier(a) => cmd::classify::run_train(a),
        Command::Classify(a) => cmd::classify::run(a),
        Command::Data(d) => cmd::data::run(d),
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
