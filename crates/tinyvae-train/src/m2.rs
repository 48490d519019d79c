//! Kingma et al. 2014's M2, the semi-supervised VAE: a classifier q(y|x), an encoder
//! q(z|x,y) and a decoder p(x|y,z) trained together on a few labelled images and many
//! unlabelled ones.
//!
//! The objective, per training image (`N = N_l + N_u` images), is
//!
//! ```text
//! J = (N_l / N) E_labelled[L(x,y)] + (N_u / N) E_unlabelled[U(x)] + alpha E_labelled[-log q(y|x)]
//! ```
//!
//! which is the paper's `J^alpha = sum_l L + sum_u U + alpha' E_l[-log q(y|x)]` divided by N,
//! with `alpha' = alpha * N` (the paper's choice is `alpha = 0.1`). `L` is the labelled
//! negative ELBO (with `-log p(y)` for a uniform prior) and `U` the unlabelled one, which
//! marginalizes y exactly over the classes (see [`model`]). Every step draws `batch_size`
//! unlabelled images (an epoch is one pass over them) and `labelled_batch_size` labelled
//! images from a separate, endlessly reshuffled stream, so a small labelled set is revisited
//! often; the weights above keep the estimate unbiased unless `labelled_share` asks for more
//! weight on the labelled ELBO.
//!
//! The labelled subset is balanced (the same number of images per class), drawn from the
//! training images with the seed; every other training image is unlabelled, except the last
//! `validation_images`, which are held out with their labels to measure (never to train on).
//! The test split is reported, never used to choose anything: the model is the last epoch's.
//!
//! ```no_run
//! use tinyvae_train::m2::{self, M2Config};
//! let cfg = M2Config { labelled: 100, progress: true, ..M2Config::new("data/mnist", "runs/m2") };
//! let report = m2::train(&cfg)?;
//! println!("test error {:.2} %", 100.0 * report.test_error.unwrap());
//! # Ok::<(), tinyvae_train::TrainError>(())
//! ```
//!
//! Deterministic given `seed`, like the VAE trainer: the labelled subset, initialisation,
//! visiting orders, shifts, dropout masks and z noise all come from [`tinyvae::Rng`] streams.
//! There are no checkpoints to resume from: a run is minutes long.

pub mod bce;
mod data;
pub mod export;
pub mod model;
mod predict;
mod training;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::classifier::CLASSES;
use crate::config::{LrSchedule, TrainConfig};
use crate::error::TrainError;

pub use data::{balanced_subset, codes_of, load_m1, SslData};
pub use export::{classifier_graph, decoder_graph, encoder_graph, export_onnx, graph_discrepancy};
pub use model::{ElboTerms, M2Likelihood, M2Shape, UnlabelledLoss, M2};
pub use predict::{error_on, generative_predict, predict};
pub use training::{load, train, train_on, M2Epoch, M2ModelInfo, M2Report};

/// Sidecar format tag of saved M2 models.
pub const M2_FORMAT: &str = "tinyvae-train-m2/1";

/// An M2 run. `M2Config::new(data, out)` gives the defaults; every field is public.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct M2Config {
    /// MNIST-style IDX directory (training split for learning, test split for reporting).
    pub data_dir: PathBuf,
    /// Where the model (`m2.safetensors` + `m2.json`), the log and the ONNX files go.
    pub out_dir: PathBuf,
    /// Labelled training images, balanced: `labelled / classes` per class.
    pub labelled: usize,
    /// Hold out the last N training images, with labels, for the validation error.
    pub validation_images: usize,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Size of z.
    pub latent: usize,
    /// Hidden widths of q(y|x).
    pub classifier_hidden: Vec<usize>,
    /// Hidden widths of q(z|x,y).
    pub encoder_hidden: Vec<usize>,
    /// Hidden widths of p(x|y,z).
    pub decoder_hidden: Vec<usize>,
    /// q(y|x) on the encoder's first (label-free) hidden layer instead of the pixels.
    pub shared_trunk: bool,
    /// Passes over the unlabelled images.
    pub epochs: usize,
    /// Unlabelled images per step.
    pub batch_size: usize,
    /// Labelled images per step (drawn from their own reshuffled stream).
    pub labelled_batch_size: usize,
    /// Adam learning rate (before the schedule).
    pub lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Weight of the classification term, as a fraction of the training images: the paper's
    /// alpha divided by N (the paper uses 0.1).
    pub alpha: f64,
    /// Weight of the labelled ELBO in the objective; `None` gives the unbiased N_l / N.
    pub labelled_share: Option<f64>,
    /// Linear KL warm-up: the KL weight rises from 0 to 1 over this many epochs (0: off).
    pub kl_warmup_epochs: f64,
    /// Weight of KL(q(z|x,y) || p(z)) after the warm-up (β; 1 is the ELBO). Above 1, z is
    /// squeezed, so that the decoder takes the class from y (the label comes for free).
    pub kl_weight: f64,
    /// Random shift of training images by up to this many pixels in x and y (0: off).
    pub translate_px: usize,
    /// Probability that a training image is shifted.
    pub translate_prob: f64,
    /// Dropout on q(y|x)'s hidden activations during training.
    pub classifier_dropout: f64,
    /// Exponential moving average of the weights (evaluated, saved and exported).
    pub ema_decay: Option<f64>,
    /// Seeds the labelled subset, initialisation, orders, shifts, dropout and z noise.
    pub seed: u64,
    /// Stop after this many steps (tests, quick looks).
    pub max_steps: Option<usize>,
    /// Evaluate the test error every N epochs and at the end (0: only at the end).
    pub test_every: usize,
    /// JSON-lines log of the epochs; `out_dir/train_log.jsonl` when `None`.
    pub log_path: Option<PathBuf>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Write `encoder.onnx` (q(z|x,y)), `decoder.onnx` (p(x|y,z)) and `classifier.onnx`
    /// (q(y|x)) into `out_dir`.
    pub export_onnx: bool,
    /// M1+M2 (Kingma et al.'s stacked model): M2 learns from the mean codes this VAE encoder
    /// (ONNX, M1 trained on all the images) gives the images, with a unit-variance Gaussian
    /// p(x|y,z) over them; `classifier.onnx` is then M1's encoder and q(y|x) in one image
    /// classifier.
    #[serde(default)]
    pub m1_encoder: Option<PathBuf>,
}

impl M2Config {
    /// Defaults for the given directories.
    pub fn new(data_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> Self {
        M2Config { data_dir: data_dir.into(), out_dir: out_dir.into(), ..Self::default() }
    }

    /// The log file in use.
    pub fn log_file(&self) -> PathBuf {
        self.log_path.clone().unwrap_or_else(|| self.out_dir.join("train_log.jsonl"))
    }

    /// The network sizes for images of `input_len` pixels.
    pub fn shape(&self, input_len: usize) -> M2Shape {
        M2Shape {
            input_len,
            classes: CLASSES,
            latent: self.latent,
            classifier_hidden: self.classifier_hidden.clone(),
            encoder_hidden: self.encoder_hidden.clone(),
            decoder_hidden: self.decoder_hidden.clone(),
            shared_trunk: self.shared_trunk,
            likelihood: if self.m1_encoder.is_some() { M2Likelihood::Gaussian } else { M2Likelihood::Bernoulli },
        }
    }

    /// Checks the values, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(format!("m2: {m}")));
        if self.labelled == 0 || !self.labelled.is_multiple_of(CLASSES) {
            return bad(format!(
                "labelled ({}) must be a positive multiple of {CLASSES} (balanced classes)",
                self.labelled
            ));
        }
        for (field, v) in [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("labelled_batch_size", self.labelled_batch_size),
        ] {
            if v == 0 {
                return bad(format!("{field} must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number".into());
        }
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad("alpha must be >= 0".into());
        }
        if self.labelled_share.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return bad("labelled_share must be in [0, 1]".into());
        }
        if self.kl_warmup_epochs.is_nan() || self.kl_warmup_epochs < 0.0 {
            return bad("kl_warmup_epochs must be >= 0".into());
        }
        if !(self.kl_weight.is_finite() && self.kl_weight >= 0.0) {
            return bad("kl_weight must be a number >= 0".into());
        }
        if self.m1_encoder.is_some() && self.translate_px > 0 {
            return bad("translate_px must be 0 with m1_encoder: M2 then reads codes, not images".into());
        }
        if !(0.0..=1.0).contains(&self.translate_prob) {
            return bad("translate_prob must be in [0, 1]".into());
        }
        if !(0.0..1.0).contains(&self.classifier_dropout) {
            return bad("classifier_dropout must be in [0, 1)".into());
        }
        if self.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d)) {
            return bad("ema_decay must be in [0, 1)".into());
        }
        if let LrSchedule::Step { every: 0, .. } = self.lr_schedule {
            return bad("lr_schedule step: `every` must be at least 1".into());
        }
        self.shape(1).validate()
    }

    /// The learning-rate and KL-weight schedule, as the engine's configuration computes it.
    fn schedule(&self) -> TrainConfig {
        TrainConfig {
            lr: self.lr,
            lr_schedule: self.lr_schedule,
            kl_warmup_epochs: self.kl_warmup_epochs,
            ..TrainConfig::default()
        }
    }
}

impl Default for M2Config {
    fn default() -> Self {
        M2Config {
            data_dir: PathBuf::new(),
            out_dir: PathBuf::new(),
            labelled: 100,
            validation_images: 0,
            train_limit: None,
            test_limit: None,
            latent: 50,
            classifier_hidden: vec![500],
            encoder_hidden: vec![500],
            decoder_hidden: vec![500],
            shared_trunk: false,
            epochs: 50,
            batch_size: 100,
            labelled_batch_size: 100,
            lr: 1e-3,
            lr_schedule: LrSchedule::Cosine { final_fraction: 0.05 },
            alpha: 0.1,
            labelled_share: None,
            kl_warmup_epochs: 0.0,
            kl_weight: 1.0,
            translate_px: 0,
            translate_prob: 1.0,
            classifier_dropout: 0.0,
            ema_decay: None,
            seed: 0,
            max_steps: None,
            test_every: 1,
            log_path: None,
            progress: false,
            export_onnx: false,
            m1_encoder: None,
        }
    }
}
