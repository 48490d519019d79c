//! What to train and how: the network shape ([`VaeConfig`], its architecture [`Arch`]) and the
//! optimisation run ([`TrainConfig`]), all serialisable so that a checkpoint records exactly
//! what made it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The decoder's likelihood p(x|z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Independent Bernoulli pixels: sigmoid output, binary cross-entropy against the
    /// greyscale targets (computed from the logits).
    Bernoulli,
    /// Gaussian with identity covariance around a sigmoid mean: squared error / 2 plus the
    /// constant `D/2 ln(2 pi)`, so the reported numbers are true nats.
    Gaussian,
    /// Gaussian with a learned diagonal covariance: the decoder has a second head giving each
    /// pixel's log-variance (bounded below by [`crate::model::DECODER_LOGVAR_FLOOR`]). Only the
    /// mean head is exported: deployment wants the image, not its uncertainty.
    #[serde(rename = "gaussian-learned")]
    GaussianLearned,
}

impl Likelihood {
    /// True for the two Gaussian likelihoods (whose exported output is a mean, not a
    /// probability).
    pub fn is_gaussian(self) -> bool {
        matches!(self, Likelihood::Gaussian | Likelihood::GaussianLearned)
    }
}

/// The network family of a VAE's encoder and decoder.
///
/// Serialised as `{"kind": "mlp"}` or `{"kind": "conv", "channels": [32, 64], "refine": 0}`;
/// a configuration written before the field existed reads as [`Arch::Mlp`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Arch {
    /// Fully connected: the encoder reads the flat image, the decoder writes it (the shipped
    /// models).
    #[default]
    Mlp,
    /// The convolutional VAE of the PyTorch tutorials, for square greyscale images whose side
    /// is divisible by `2^channels.len()`. Encoder: one `Conv2d(c_prev, c_i, 4, stride 2,
    /// pad 1)` + ReLU per entry of `channels` (28 x 28 -> 14 x 14 -> 7 x 7 for two), flatten,
    /// the Dense `encoder_hidden` layers, the `mu`/`logvar` heads. Decoder: the Dense
    /// `decoder_hidden` layers, `Dense(.., c_last * h * w)` + ReLU viewed as `[c_last, h, w]`,
    /// `refine` stages of `ConvTranspose2d(c_last, c_last, 3, 1, 1)` + ReLU, then one
    /// `ConvTranspose2d(c_i, c_{i-1}, 4, 2, 1)` per entry back to one channel (ReLU between,
    /// the last one giving logits). A CVAE's one-hot label joins the flattened features before
    /// the encoder's Dense layers and z at the decoder's input.
    Conv {
        /// Output channels of the encoder's stride-2 convolutions, input side first (the
        /// decoder mirrors them); `[32, 64]` by default.
        channels: Vec<usize>,
        /// Stride-1 3 x 3 transposed convolutions right after the decoder's view (the larger
        /// decoder `Linear(32, 80*7*7) -> ConvT(80, 80, 3, 1, 1) -> ConvT(80, 64, 4, 2, 1) ->
        /// ConvT(64, 1, 4, 2, 1)` is `channels: [64, 80], refine: 1`).
        #[serde(default)]
        refine: usize,
    },
}

impl Arch {
    /// The tutorial's convolutional VAE: channels 32 and 64, no refinement stage.
    pub fn conv() -> Self {
        Arch::Conv { channels: vec![32, 64], refine: 0 }
    }

    /// Checks the channel counts, naming the bad one.
    pub fn validate(&self) -> Result<(), TrainError> {
        if let Arch::Conv { channels, .. } = self {
            if channels.is_empty() {
                return Err(TrainError::Config("the conv architecture needs at least one channel count".into()));
            }
            if let Some(i) = channels.iter().position(|&c| c == 0) {
                return Err(TrainError::Config(format!("conv layer {i} has 0 channels")));
            }
        }
        Ok(())
    }
}

/// Shape of the VAE: Gaussian encoder q(z|x) = N(mu, diag exp(logvar)) and decoder, MLPs or
/// convolutional ([`Arch`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VaeConfig {
    /// Encoder and decoder family: MLP (the default) or convolutional.
    pub arch: Arch,
    /// Hidden layer widths of the encoder (ReLU after each), before the `mu`/`logvar` heads
    /// (for the conv architecture: Dense layers after the flattened convolutions).
    pub encoder_hidden: Vec<usize>,
    /// Hidden layer widths of the decoder (ReLU after each), before the output layer (for the
    /// conv architecture: Dense layers before the one the convolutions' input is viewed from).
    pub decoder_hidden: Vec<usize>,
    /// Size of z.
    pub latent: usize,
    /// Decoder likelihood.
    pub likelihood: Likelihood,
    /// Monte-Carlo samples L of z per image in the training objective (the lecture's L; 1 by
    /// default). Evaluation always uses one sample.
    pub mc_samples: usize,
    /// Label classes of a conditional VAE (CVAE): the one-hot label is concatenated to x at the
    /// encoder's input, q(z|x,y), and to z at the decoder's input, p(x|y,z). 0: unconditional.
    pub classes: usize,
}

impl VaeConfig {
    /// A symmetric MLP VAE: encoder `input-hidden..-latent`, decoder `latent-..hidden-input`,
    /// Bernoulli likelihood, L = 1.
    pub fn mlp(hidden: &[usize], latent: usize) -> Self {
        VaeConfig {
            arch: Arch::Mlp,
            encoder_hidden: hidden.to_vec(),
            decoder_hidden: hidden.iter().rev().copied().collect(),
            latent,
            likelihood: Likelihood::Bernoulli,
            mc_samples: 1,
            classes: 0,
        }
    }

    /// The conditional VAE of the lecture: the same MLPs with the one-hot label of one of
    /// `classes` classes joining x at the encoder's input and z at the decoder's.
    pub fn conditional(hidden: &[usize], latent: usize, classes: usize) -> Self {
        VaeConfig { classes, ..Self::mlp(hidden, latent) }
    }

    /// The convolutional VAE of [`Arch::Conv`] with the given channels (the tutorial's are
    /// `[32, 64]`), no Dense hidden layers, Bernoulli likelihood, L = 1.
    pub fn conv(channels: &[usize], latent: usize) -> Self {
        VaeConfig { arch: Arch::Conv { channels: channels.to_vec(), refine: 0 }, ..Self::mlp(&[], latent) }
    }

    /// The shipped microcontroller model: 784-400-20 encoder, 20-400-784 Bernoulli decoder.
    pub fn mnist_z20() -> Self {
        Self::mlp(&[400], 20)
    }

    /// The 2-D latent model for the manifold figure: 784-400-2 encoder, 2-400-784 decoder.
    pub fn mnist_z2() -> Self {
        Self::mlp(&[400], 2)
    }

    /// Checks the sizes, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        self.arch.validate()?;
        if self.latent == 0 {
            return bad("latent size must be at least 1".into());
        }
        if self.mc_samples == 0 {
            return bad("mc_samples (L) must be at least 1".into());
        }
        if let Some(i) = self.encoder_hidden.iter().position(|&h| h == 0) {
            return bad(format!("encoder hidden layer {i} has width 0"));
        }
        if let Some(i) = self.decoder_hidden.iter().position(|&h| h == 0) {
            return bad(format!("decoder hidden layer {i} has width 0"));
        }
        Ok(())
    }
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self::mnist_z20()
    }
}

/// How the learning rate moves over the run (a function of the step, so a resumed run follows
/// the same curve).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LrSchedule {
    /// `lr` throughout.
    Constant,
    /// Half-cosine from `lr` down to `lr * final_fraction` at the last step of `epochs`.
    Cosine {
        /// Final learning rate as a fraction of the initial one.
        final_fraction: f64,
    },
    /// `lr * factor^(floor(epoch / every))`.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Multiplier per decay.
        factor: f64,
    },
}

/// An optimisation run. `TrainConfig::new(data, out)` gives the defaults; every field is public.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Directory with the MNIST-style IDX files (`train-*` and `t10k-*`).
    pub data_dir: PathBuf,
    /// Where checkpoints, the final model, the log and the ONNX files go (created if missing).
    pub out_dir: PathBuf,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per Adam step.
    pub batch_size: usize,
    /// Adam learning rate (before the schedule).
    pub lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Seeds initialisation, shuffling, augmentation, dropout and the reparametrisation noise.
    pub seed: u64,
    /// Stop after this many Adam steps in total (counting those before a resume).
    pub max_steps: Option<usize>,
    /// Continue from this checkpoint (its `.json` sidecar, or the directory holding
    /// `checkpoint.json`).
    pub resume: Option<PathBuf>,
    /// JSON-lines log of per-epoch losses; `out_dir/train_log.jsonl` when `None`.
    pub log_path: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Use only the first N training images (tests, quick experiments).
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Hold out the last N training images for validation; the epoch with the best validation
    /// negative ELBO becomes the final model (the test split is never used for selection).
    pub validation_images: usize,
    /// Evaluate the test split every N epochs (and at the end); 0 never.
    pub test_every: usize,
    /// Linear KL warm-up: the KL weight rises from 0 to 1 over this many epochs (0: off).
    pub kl_warmup_epochs: f64,
    /// Random translation of training images by up to this many pixels in x and y (0: off).
    pub translate_px: usize,
    /// Probability that a training image is translated (when `translate_px > 0`).
    pub translate_prob: f64,
    /// Dropout probability on the encoder's hidden activations during training.
    pub encoder_dropout: f64,
    /// Decoupled (AdamW) weight decay on encoder weight matrices.
    pub encoder_weight_decay: f64,
    /// Decoupled (AdamW) weight decay on decoder weight matrices.
    pub decoder_weight_decay: f64,
    /// Exponential moving average of the weights (e.g. 0.999); the average is what is
    /// evaluated, selected, saved as the model and exported. `None`: the raw weights.
    pub ema_decay: Option<f64>,
    /// Seed of the fixed z noise used by every evaluation.
    pub eval_seed: u64,
    /// Write `encoder.onnx` and `decoder.onnx` of the final model into `out_dir`.
    pub export_onnx: bool,
}

impl TrainConfig {
    /// Defaults (Adam 1e-3, batch 128, 100 epochs, constant lr, seed 0, no regularisers) for
    /// the given directories.
    pub fn new(data_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        TrainConfig { data_dir: data_dir.into(), out_dir: out_dir.into(), ..Self::default() }
    }

    /// The recipe of the shipped MNIST models (z20 and z2), chosen on 1,000 held-out training
    /// images and then trained on all 10,000: Adam 2e-3, batch 128, 300 epochs, cosine decay to
    /// 2 % of the learning rate, weight average 0.999, and half the images shifted by up to one
    /// pixel. The z20 model reaches about 103 nats on the MNIST test split (see the crate
    /// README for the measurements).
    pub fn mnist_recipe(data_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        TrainConfig {
            epochs: 300,
            batch_size: 128,
            lr: 2e-3,
            lr_schedule: LrSchedule::Cosine { final_fraction: 0.02 },
            translate_px: 1,
            translate_prob: 0.5,
            ema_decay: Some(0.999),
            ..Self::new(data_dir, out_dir)
        }
    }

    /// The log file in use.
    pub fn log_file(&self) -> PathBuf {
        self.log_path.clone().unwrap_or_else(|| self.out_dir.join("train_log.jsonl"))
    }

    /// Checks the values, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.encoder_dropout) {
            return bad("encoder_dropout must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.translate_prob) {
            return bad("translate_prob must be in [0, 1]");
        }
        if self.kl_warmup_epochs.is_nan() || self.kl_warmup_epochs < 0.0 {
            return bad("kl_warmup_epochs must be >= 0");
        }
        if self.encoder_weight_decay < 0.0 || self.decoder_weight_decay < 0.0 {
            return bad("weight decay must be >= 0");
        }
        if let Some(d) = self.ema_decay {
            if !(0.0..1.0).contains(&d) {
                return bad("ema_decay must be in [0, 1)");
            }
        }
        if let LrSchedule::Step { every: 0, .. } = self.lr_schedule {
            return bad("lr_schedule step: `every` must be at least 1");
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) of a run of `total_steps`, `steps_per_epoch` a pass.
    pub fn lr_at(&self, step: usize, total_steps: usize, steps_per_epoch: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine { final_fraction } => {
                let t = if total_steps <= 1 { 0.0 } else { step as f64 / (total_steps - 1) as f64 };
                let c = 0.5 * (1.0 + (std::f64::consts::PI * t.min(1.0)).cos());
                self.lr * (final_fraction + (1.0 - final_fraction) * c)
            }
            LrSchedule::Step { every, factor } => {
                self.lr * factor.powi((step / steps_per_epoch.max(1) / every.max(1)) as i32)
            }
        }
    }

    /// KL weight (beta) at `step`.
    pub fn kl_weight_at(&self, step: usize, steps_per_epoch: usize) -> f64 {
        if self.kl_warmup_epochs <= 0.0 {
            return 1.0;
        }
        ((step + 1) as f64 / (self.kl_warmup_epochs * steps_per_epoch as f64)).min(1.0)
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data_dir: PathBuf::new(),
            out_dir: PathBuf::new(),
            epochs: 100,
            batch_size: 128,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            seed: 0,
            max_steps: None,
            resume: None,
            log_path: None,
            progress: false,
            train_limit: None,
            test_limit: None,
            validation_images: 0,
            test_every: 1,
            kl_warmup_epochs: 0.0,
            translate_px: 0,
            translate_prob: 1.0,
            encoder_dropout: 0.0,
            encoder_weight_decay: 0.0,
            decoder_weight_decay: 0.0,
            ema_decay: None,
            eval_seed: 0x5EED,
            export_onnx: false,
        }
    }
}
