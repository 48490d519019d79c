//! Runs one training from a JSON file `{"vae": VaeConfig, "train": TrainConfig}` (missing
//! fields take their defaults) and prints the report; used for the recipe experiments.
//!
//! `cargo run --release -p tinyvae-train --example train_vae -- run.json`

use tinyvae_train::{train, TrainConfig, VaeConfig};

#[derive(serde::Deserialize)]
struct Run {
    #[serde(default)]
    vae: VaeConfig,
    train: TrainConfig,
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: train_vae RUN.json");
    let text = std::fs::read_to_string(&path).expect("read run file");
    let run: Run = serde_json::from_str(&text).expect("parse run file");
    match train(&run.vae, &run.train) {
        Ok(r) => {
            let best_test = r
                .history
                .iter()
                .filter_map(|h| h.test.map(|t| (h.epoch, t.nelbo)))
                .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            println!(
                "final model: epoch {} test {:?} validation {:?}\nsteps {} seconds {:.1} (lowest test in log: epoch {} {:.3})",
                r.model_epoch, r.test, r.validation, r.global_step, r.elapsed_seconds, best_test.0, best_test.1
            );
        }
        Err(e) => {
            eprintln!("error: {}", e.chain());
            std::process::exit(1);
        }
    }
}
