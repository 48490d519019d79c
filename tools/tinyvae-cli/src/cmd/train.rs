//! `tinyvae train`: the candle trainer behind flags, exporting encoder.onnx and decoder.onnx.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use tinyvae_train::{Likelihood, LrSchedule, TrainConfig, VaeConfig};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MNIST-style IDX directory (train-* and t10k-* files, gzipped or not).
    #[arg(long)]
    pub data: PathBuf,
    /// Output directory: checkpoints, train_log.jsonl, model.safetensors, encoder.onnx, decoder.onnx.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Latent size.
    #[arg(long, default_value_t = 20)]
    pub latent: usize,
    /// Hidden layer widths of the encoder and (mirrored) the decoder, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "400")]
    pub hidden: Vec<usize>,
    /// Encoder hidden widths, when they differ from --hidden.
    #[arg(long, value_delimiter = ',')]
    pub encoder_hidden: Option<Vec<usize>>,
    /// Decoder likelihood: bernoulli (cross-entropy) or gaussian (squared error).
    #[arg(long, default_value = "bernoulli", value_parser = ["bernoulli", "gaussian"])]
    pub likelihood: String,
    /// Monte-Carlo samples of z per image (L).
    #[arg(long, default_value_t = 1)]
    pub mc_samples: usize,
    /// Passes over the training images.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Images per Adam step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Cosine decay of the learning rate to this fraction of --lr (omit for a constant rate).
    #[arg(long)]
    pub cosine_to: Option<f64>,
    /// Seed: initialisation, shuffling, augmentation and z noise; same seed, same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many Adam steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Resume from a checkpoint (its .json sidecar, or the output directory).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Hold out the last N training images; the best epoch on them is the final model.
    #[arg(long, default_value_t = 0)]
    pub validation_images: usize,
    /// Evaluate the test split every N epochs and at the end (0: never).
    #[arg(long, default_value_t = 10)]
    pub test_every: usize,
    /// KL warm-up length in epochs (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub kl_warmup: f64,
    /// Random translation of training images by up to N pixels (0: off).
    #[arg(long, default_value_t = 0)]
    pub translate: usize,
    /// Probability that a training image is translated.
    #[arg(long, default_value_t = 0.5)]
    pub translate_prob: f64,
    /// Exponential moving average of the weights (e.g. 0.999), used for evaluation and export.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Dropout on the encoder's hidden units during training.
    #[arg(long, default_value_t = 0.0)]
    pub encoder_dropout: f64,
    /// Do not write encoder.onnx / decoder.onnx.
    #[arg(long)]
    pub no_export: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut vae = VaeConfig::mlp(&a.hidden, a.latent);
    if let Some(h) = &a.encoder_hidden {
        vae.encoder_hidden = h.clone();
    }
    vae.likelihood = if a.likelihood == "gaussian" { Likelihood::Gaussian } else { Likelihood::Bernoulli };
    vae.mc_samples = a.mc_samples;
    let cfg = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        lr_schedule: match a.cosine_to {
            Some(f) => LrSchedule::Cosine { final_fraction: f },
            None => LrSchedule::Constant,
        },
        seed: a.seed,
        max_steps: a.max_steps,
        resume: a.resume.clone(),
        progress: !a.quiet,
        train_limit: a.train_limit,
        test_limit: a.test_limit,
        validation_images: a.validation_images,
        test_every: a.test_every,
        kl_warmup_epochs: a.kl_warmup,
        translate_px: a.translate,
        translate_prob: a.translate_prob,
        ema_decay: a.ema,
        encoder_dropout: a.encoder_dropout,
        export_onnx: !a.no_export,
        ..TrainConfig::new(&a.data, &a.out)
    };
    let report = tinyvae_train::train(&vae, &cfg)?;
    println!("trained {} epochs; final model from epoch {}", report.epochs_completed, report.model_epoch);
    if let Some(v) = &report.validation {
        println!("  validation negative ELBO {:.2} nats/image ({} images)", v.nelbo, v.images);
    }
    if let Some(t) = &report.test {
        println!(
            "  test negative ELBO {:.2} nats/image (reconstruction {:.2} + KL {:.2}, {} images)",
            t.nelbo, t.reconstruction, t.kl, t.images
        );
    }
    println!("  outputs in {} (log: {})", a.out.display(), cfg.log_file().display());
    Ok(ExitCode::SUCCESS)
}
