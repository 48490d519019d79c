//! Trains a shipped MNIST model with [`TrainConfig::mnist_recipe`] and writes its files
//! (checkpoint, `model.*`, `train_log.jsonl`, `encoder.onnx`, `decoder.onnx`) into OUT_DIR.
//!
//! `cargo run --release -p tinyvae-train --example mnist_recipe -- DATA_DIR OUT_DIR [LATENT]`
//! (LATENT 20 by default; 2 for the manifold model).

use tinyvae_train::{train, TrainConfig, VaeConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: mnist_recipe DATA_DIR OUT_DIR [LATENT]");
        std::process::exit(2);
    }
    let latent: usize = args.get(3).map(|s| s.parse().expect("LATENT is a number")).unwrap_or(20);
    let vae = VaeConfig::mlp(&[400], latent);
    let cfg = TrainConfig { progress: true, export_onnx: true, ..TrainConfig::mnist_recipe(&args[1], &args[2]) };
    match train(&vae, &cfg) {
        Ok(r) => {
            let t = r.test.expect("test split evaluated");
            println!(
                "z{latent}: test negative ELBO {:.3} nats/image (reconstruction {:.3}, KL {:.3}) after {} epochs, {} steps, {:.0} s",
                t.nelbo, t.reconstruction, t.kl, r.epochs_completed, r.global_step, r.elapsed_seconds
            );
        }
        Err(e) => {
            eprintln!("error: {}", e.chain());
            std::process::exit(1);
        }
    }
}
