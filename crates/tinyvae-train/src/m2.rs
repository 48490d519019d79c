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
pub mod export;
pub mod model;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use tinyvae_data::idx::Split;

use crate::checkpoint::{save_tensors_atomic, write_json_atomic};
use crate::classifier::mlp::{
    argmax_rows, cross_entropy, gradients, load_tensors, named_with_values, progress_bar, StepAt,
};
use crate::classifier::{error_rate, LabelledImages, CLASSES};
use crate::config::{LrSchedule, TrainConfig};
use crate::data::{epoch_order, gather_batch, gaussian_tensor, stream, ImageSet, Stream};
use crate::error::TrainError;
use crate::optim::{Adam, Ema};

pub use export::{decoder_graph, encoder_graph, export_onnx, graph_discrepancy};
pub use model::{ElboTerms, M2Shape, UnlabelledLoss, M2};

/// Sidecar format tag of saved M2 models.
pub const M2_FORMAT: &str = "tinyvae-train-m2/1";

/// Salts that keep the labelled subset and the labelled visiting order independent of the
/// unlabelled order drawn from the same seed.
const SELECTION_SALT: u64 = 0x5E1E_C7ED;
const LABELLED_ORDER_SALT: u64 = 0x1ABE_11ED;

/// Images per forward pass when classifying (the result does not depend on it).
const EVAL_BATCH: usize = 1000;

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
    /// Write `encoder.onnx` (q(z|x,y)) and `decoder.onnx` (p(x|y,z)) into `out_dir`.
    pub export_onnx: bool,
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
        }
    }
}

/// The images of one semi-supervised run.
#[derive(Debug, Clone)]
pub struct SslData {
    /// The balanced labelled subset.
    pub labelled: LabelledImages,
    /// Every other training image, without its label.
    pub unlabelled: ImageSet,
    /// Held-out training images with labels (measured, never trained on).
    pub validation: Option<LabelledImages>,
    /// The test split (reported only).
    pub test: Option<LabelledImages>,
    /// Indices of the labelled images in the training pool (after the validation hold-out).
    pub labelled_indices: Vec<usize>,
}

impl SslData {
    /// Loads the splits `cfg` asks for and draws the labelled subset.
    pub fn load(cfg: &M2Config) -> Result<Self, TrainError> {
        let pool = LabelledImages::load(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let test = LabelledImages::load(&cfg.data_dir, Split::Test, cfg.test_limit)?;
        Self::from_pool(&pool, cfg.labelled, cfg.validation_images, cfg.seed, Some(test))
    }

    /// Holds out the last `validation_images` of `pool`, draws `labelled` balanced images from
    /// the rest with `seed`, and leaves the others unlabelled.
    pub fn from_pool(
        pool: &LabelledImages,
        labelled: usize,
        validation_images: usize,
        seed: u64,
        test: Option<LabelledImages>,
    ) -> Result<Self, TrainError> {
        let (train, validation) = pool.hold_out_last(validation_images)?;
        let labelled_indices = balanced_subset(&train.labels, labelled, CLASSES, seed)?;
        let mut is_labelled = vec![false; train.count()];
        for &i in &labelled_indices {
            is_labelled[i] = true;
        }
        let rest: Vec<usize> = (0..train.count()).filter(|&i| !is_labelled[i]).collect();
        if rest.is_empty() {
            return Err(TrainError::Config(format!(
                "m2: all {} training images are labelled; nothing is left unlabelled",
                train.count()
            )));
        }
        Ok(SslData {
            labelled: train.subset(&labelled_indices),
            unlabelled: train.subset(&rest).images,
            validation,
            test,
            labelled_indices,
        })
    }
}

/// `count` indices into `labels`, `count / classes` of each class, drawn with `seed` (a
/// seeded shuffle of each class's images, keeping the first ones), in increasing order.
pub fn balanced_subset(labels: &[u8], count: usize, classes: usize, seed: u64) -> Result<Vec<usize>, TrainError> {
    if classes == 0 || !count.is_multiple_of(classes) {
        return Err(TrainError::Config(format!(
            "{count} labelled images cannot be split evenly over {classes} classes"
        )));
    }
    let per_class = count / classes;
    let mut picked = Vec::with_capacity(count);
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == class).collect();
        if members.len() < per_class {
            return Err(TrainError::Data(format!(
                "class {class} has {} training images, {per_class} labelled ones are needed",
                members.len()
            )));
        }
        let mut rng = stream(seed ^ SELECTION_SALT, Stream::Shuffle, class as u64);
        for i in 0..per_class {
            let j = i + rng.below((members.len() - i) as u32) as usize;
            members.swap(i, j);
        }
        picked.extend_from_slice(&members[..per_class]);
    }
    picked.sort_unstable();
    Ok(picked)
}

/// Fraction of `set` that q(y|x) of `model` classifies wrongly (argmax).
pub fn error_on(model: &M2, set: &LabelledImages) -> Result<f64, TrainError> {
    error_rate(&predict(model, &set.images)?, &set.labels)
}

/// argmax q(y|x) of every image of `images`.
pub fn predict(model: &M2, images: &ImageSet) -> Result<Vec<u8>, TrainError> {
    let mut out = Vec::with_capacity(images.count);
    let mut start = 0;
    while start < images.count {
        let end = (start + EVAL_BATCH).min(images.count);
        out.extend(argmax_rows(&model.class_logits(&images.tensor(start..end)?, None)?)?);
        start = end;
    }
    Ok(out)
}

/// The class whose conditional generative model explains each image best: argmin over y of
/// L(x,y) with z at the mean of q(z|x,y). A diagnostic of what the unlabelled loss teaches
/// q(y|x): where this is right and q(y|x) is wrong, U pulls q(y|x) towards the right class.
pub fn generative_predict(model: &M2, images: &ImageSet) -> Result<Vec<u8>, TrainError> {
    let classes = model.shape().classes;
    let batch = EVAL_BATCH / classes;
    let mut out = Vec::with_capacity(images.count);
    let mut start = 0;
    while start < images.count {
        let end = (start + batch).min(images.count);
        let zero = Tensor::zeros(
            ((end - start) * classes, model.shape().latent),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )?;
        let loss = model.every_label_terms(&images.tensor(start..end)?, &zero)?.loss(1.0, classes)?;
        out.extend(argmax_rows(&loss.neg()?)?);
        start = end;
    }
    Ok(out)
}

/// One line of the M2 log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct M2Epoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// True when `max_steps` stopped the run inside this epoch.
    pub partial: bool,
    /// Steps done in total.
    pub global_step: usize,
    /// Learning rate of the last step.
    pub lr: f64,
    /// KL weight of the last step.
    pub kl_weight: f64,
    /// Mean objective J per step (nats per training image).
    pub objective: f64,
    /// Mean labelled loss L(x,y) over the labelled images drawn.
    pub labelled_loss: f64,
    /// Mean unlabelled loss U(x).
    pub unlabelled_loss: f64,
    /// Mean entropy H(q(y|x)) of the unlabelled images.
    pub unlabelled_entropy: f64,
    /// Mean -log q(y|x) of the labelled images drawn.
    pub labelled_cross_entropy: f64,
    /// Error of q(y|x) on the labelled images drawn (with their shifts and dropout).
    pub labelled_error: f64,
    /// Error on the held-out training images.
    pub validation_error: Option<f64>,
    /// Error of [`generative_predict`] on the held-out training images.
    #[serde(default)]
    pub validation_generative_error: Option<f64>,
    /// Error on the test split (reported, never used to choose).
    pub test_error: Option<f64>,
    /// Wall-clock seconds since the start.
    pub elapsed_seconds: f64,
}

/// The JSON sidecar of a saved M2 (`m2.json` beside `m2.safetensors`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct M2ModelInfo {
    /// [`M2_FORMAT`].
    pub format: String,
    /// The safetensors file beside this sidecar.
    pub weights_file: String,
    /// Network sizes.
    pub shape: M2Shape,
    /// Image height.
    pub image_rows: usize,
    /// Image width.
    pub image_cols: usize,
    /// Epochs behind the weights (the last one may be partial).
    pub epoch: usize,
    /// Steps behind the weights.
    pub global_step: usize,
    /// True when the weights are the exponential moving average.
    pub ema: bool,
    /// Test error of these weights.
    pub test_error: Option<f64>,
    /// Validation error of these weights.
    pub validation_error: Option<f64>,
    /// Indices of the labelled images in the training pool.
    pub labelled_indices: Vec<usize>,
    /// The run's configuration.
    pub config: M2Config,
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct M2Report {
    /// The final model (the weight average when EMA is on).
    pub model: M2,
    /// Test error of the final model (fraction).
    pub test_error: Option<f64>,
    /// Test images evaluated.
    pub test_images: usize,
    /// Validation error of the final model.
    pub validation_error: Option<f64>,
    /// Labelled / unlabelled training images.
    pub labelled_images: usize,
    /// Unlabelled training images.
    pub unlabelled_images: usize,
    /// Steps done.
    pub global_step: usize,
    /// Per-epoch records.
    pub history: Vec<M2Epoch>,
    /// `out_dir/m2.json` (weights in `m2.safetensors`).
    pub model_path: PathBuf,
    /// The JSON-lines log.
    pub log_path: PathBuf,
    /// `(encoder.onnx, decoder.onnx)` when exported.
    pub onnx: Option<(PathBuf, PathBuf)>,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
}

/// Trains M2 on `cfg.data_dir` and writes the model, the log and optionally ONNX into
/// `cfg.out_dir`.
pub fn train(cfg: &M2Config) -> Result<M2Report, TrainError> {
    cfg.validate()?;
    let data = SslData::load(cfg)?;
    train_on(cfg, &data)
}

/// Sums over an epoch, for its log line.
#[derive(Default)]
struct EpochSums {
    objective: f64,
    steps: usize,
    labelled_loss: f64,
    labelled_ce: f64,
    labelled_wrong: usize,
    labelled_seen: usize,
    unlabelled_loss: f64,
    unlabelled_entropy: f64,
    unlabelled_seen: usize,
}

/// The labelled images of step after step: an endless concatenation of seeded permutations.
struct LabelledStream {
    seed: u64,
    count: usize,
    cycle: usize,
    order: Vec<usize>,
}

impl LabelledStream {
    fn new(seed: u64, count: usize) -> Self {
        LabelledStream { seed, count, cycle: 0, order: epoch_order(seed ^ LABELLED_ORDER_SALT, 0, count) }
    }

    /// Indices for `step` (0-based) when each step takes `batch`.
    fn batch(&mut self, step: usize, batch: usize) -> Vec<usize> {
        (0..batch)
            .map(|j| {
                let g = step * batch + j;
                let cycle = g / self.count;
                if cycle != self.cycle {
                    self.cycle = cycle;
                    self.order = epoch_order(self.seed ^ LABELLED_ORDER_SALT, cycle, self.count);
                }
                self.order[g % self.count]
            })
            .collect()
    }
}

/// [`train`] on images already in memory (`data_dir`, the limits, `labelled` and
/// `validation_images` are not consulted: `data` says what is labelled).
pub fn train_on(cfg: &M2Config, data: &SslData) -> Result<M2Report, TrainError> {
    cfg.validate()?;
    let (n_l, n_u) = (data.labelled.count(), data.unlabelled.count);
    if n_l == 0 || n_u == 0 {
        return Err(TrainError::Data(format!("m2 needs labelled and unlabelled images ({n_l} and {n_u} given)")));
    }
    if let Some(&bad) = data.labelled.labels.iter().find(|&&l| l as usize >= CLASSES) {
        return Err(TrainError::Data(format!("m2: labelled image with label {bad}, outside 0..{CLASSES}")));
    }
    let n = (n_l + n_u) as f64;
    let shape = cfg.shape(data.unlabelled.len());
    let out = cfg.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
    let log_path = cfg.log_file();
    let started = Instant::now();

    let model = M2::new(&shape, cfg.seed)?;
    let params = model.parameters();
    let mut adam = Adam::new(&params);
    let mut ema = cfg.ema_decay.map(|d| Ema::new(d, &params)).transpose()?;
    let no_decay = vec![0.0; params.len()];
    let schedule = cfg.schedule();
    let evaluated = |ema: &Option<Ema>| -> Result<M2, TrainError> {
        match ema {
            Some(e) => M2::from_tensors(&shape, &named_with_values(&params, &e.values)?).map_err(TrainError::Config),
            None => Ok(model.clone()),
        }
    };

    // The unbiased weights of the two ELBO terms, unless more weight on the labelled images
    // is asked for; the classification term is alpha * mean cross-entropy either way.
    let (labelled_weight, unlabelled_weight) = match cfg.labelled_share {
        Some(s) => (s, 1.0 - s),
        None => (n_l as f64 / n, n_u as f64 / n),
    };
    let (b_u, b_l) = (cfg.batch_size, cfg.labelled_batch_size);
    let steps_per_epoch = n_u.div_ceil(b_u);
    let total_steps = cfg.epochs * steps_per_epoch;
    let limit = cfg.max_steps.map_or(total_steps, |m| m.min(total_steps));
    let bar = progress_bar(cfg.progress, limit as u64);
    let mut labelled_stream = LabelledStream::new(cfg.seed, n_l);
    let mut history: Vec<M2Epoch> = Vec::new();
    let (mut step, mut lr, mut beta) = (0usize, cfg.lr, 1.0);

    'epochs: for epoch in 0..cfg.epochs {
        let order = epoch_order(cfg.seed, epoch, n_u);
        let mut sums = EpochSums::default();
        for (b, u_idx) in order.chunks(b_u).enumerate() {
            if step >= limit {
                break;
            }
            lr = schedule.lr_at(step, total_steps, steps_per_epoch);
            beta = schedule.kl_weight_at(step, steps_per_epoch);
            let mut rng = stream(cfg.seed, Stream::Step, step as u64);
            let l_idx = labelled_stream.batch(step, b_l);
            let xl = gather_batch(&data.labelled.images, &l_idx, cfg.translate_px, cfg.translate_prob, &mut rng)?;
            let yl: Vec<u8> = l_idx.iter().map(|&i| data.labelled.labels[i]).collect();
            let xu = gather_batch(&data.unlabelled, u_idx, cfg.translate_px, cfg.translate_prob, &mut rng)?;
            let masks_l = model.classifier().dropout_masks(b_l, cfg.classifier_dropout, &mut rng)?;
            let masks_u = model.classifier().dropout_masks(u_idx.len(), cfg.classifier_dropout, &mut rng)?;
            let eps_l = gaussian_tensor(&mut rng, b_l, shape.latent)?;
            let eps_u = gaussian_tensor(&mut rng, u_idx.len() * shape.classes, shape.latent)?;

            let labelled_loss = model.labelled_terms(&xl, &yl, &eps_l)?.loss(beta, shape.classes)?;
            let logits_l = model.class_logits(&xl, masks_l.as_deref())?;
            let ce = cross_entropy(&logits_l, &yl)?;
            let unlabelled = model.unlabelled_loss(&xu, &eps_u, beta, masks_u.as_deref())?;
            let objective = (((labelled_loss.mean_all()? * labelled_weight)?
                + (unlabelled.loss.mean_all()? * unlabelled_weight)?)?
                + (ce.mean_all()? * cfg.alpha)?)?;
            let at = StepAt { epoch: epoch + 1, step_in_epoch: b + 1, global_step: step + 1 };
            let (value, grads) = gradients(&objective, &params, at)?;
            adam.update(&params, &grads, lr, &no_decay)?;
            if let Some(e) = ema.as_mut() {
                e.update(&params, adam.step)?;
            }

            let sum = |t: &Tensor| -> Result<f64, TrainError> { Ok(t.sum_all()?.to_scalar::<f32>()? as f64) };
            sums.objective += value;
            sums.steps += 1;
            sums.labelled_loss += sum(&labelled_loss)?;
            sums.labelled_ce += sum(&ce)?;
            sums.labelled_wrong += argmax_rows(&logits_l)?.iter().zip(&yl).filter(|(p, t)| p != t).count();
            sums.labelled_seen += b_l;
            sums.unlabelled_loss += sum(&unlabelled.loss)?;
            sums.unlabelled_entropy += sum(&unlabelled.entropy)?;
            sums.unlabelled_seen += u_idx.len();
            step += 1;
            bar.inc(1);
        }
        let partial = sums.steps < steps_per_epoch;
        let last = partial || epoch + 1 == cfg.epochs || step >= limit;
        let current = evaluated(&ema)?;
        let measure_test = last || (cfg.test_every > 0 && (epoch + 1) % cfg.test_every == 0);
        let (l_seen, u_seen) = (sums.labelled_seen.max(1) as f64, sums.unlabelled_seen.max(1) as f64);
        let record = M2Epoch {
            epoch: epoch + 1,
            partial,
            global_step: step,
            lr,
            kl_weight: beta,
            objective: sums.objective / sums.steps.max(1) as f64,
            labelled_loss: sums.labelled_loss / l_seen,
            unlabelled_loss: sums.unlabelled_loss / u_seen,
            unlabelled_entropy: sums.unlabelled_entropy / u_seen,
            labelled_cross_entropy: sums.labelled_ce / l_seen,
            labelled_error: sums.labelled_wrong as f64 / l_seen,
            validation_error: data.validation.as_ref().map(|v| error_on(&current, v)).transpose()?,
            validation_generative_error: data
                .validation
                .as_ref()
                .map(|v| error_rate(&generative_predict(&current, &v.images)?, &v.labels))
                .transpose()?,
            test_error: if measure_test {
                data.test.as_ref().map(|t| error_on(&current, t)).transpose()?
            } else {
                None
            },
            elapsed_seconds: started.elapsed().as_secs_f64(),
        };
        let line = summary_line(&record, cfg.epochs);
        if cfg.progress {
            bar.println(&line);
        }
        bar.set_message(line);
        history.push(record);
        write_log(&log_path, &history)?;
        if last {
            break 'epochs;
        }
    }
    bar.finish_and_clear();

    let model = evaluated(&ema)?;
    let final_record = history.last().cloned();
    let test_error = final_record.as_ref().and_then(|r| r.test_error);
    let validation_error = final_record.as_ref().and_then(|r| r.validation_error);
    let info = M2ModelInfo {
        format: M2_FORMAT.into(),
        weights_file: "m2.safetensors".into(),
        shape: shape.clone(),
        image_rows: data.unlabelled.rows,
        image_cols: data.unlabelled.cols,
        epoch: final_record.as_ref().map_or(0, |r| r.epoch),
        global_step: step,
        ema: ema.is_some(),
        test_error,
        validation_error,
        labelled_indices: data.labelled_indices.clone(),
        config: cfg.clone(),
    };
    save_tensors_atomic(&out.join(&info.weights_file), &model.weights()?)?;
    let model_path = out.join("m2.json");
    write_json_atomic(&model_path, &info)?;
    let onnx = if cfg.export_onnx { Some(export_onnx(&model, &out)?) } else { None };
    Ok(M2Report {
        model,
        test_error,
        test_images: data.test.as_ref().map_or(0, |t| t.count()),
        validation_error,
        labelled_images: n_l,
        unlabelled_images: n_u,
        global_step: step,
        history,
        model_path,
        log_path,
        onnx,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Loads a model written by [`train`] (`m2.json`, or the directory holding it).
pub fn load(path: &Path) -> Result<(M2, M2ModelInfo), TrainError> {
    let sidecar = if path.is_dir() { path.join("m2.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&sidecar).map_err(|e| TrainError::io(&sidecar, e))?;
    let info: M2ModelInfo = serde_json::from_str(&text)
        .map_err(|e| TrainError::checkpoint(&sidecar, format!("bad M2 sidecar JSON: {e}")))?;
    if info.format != M2_FORMAT {
        return Err(TrainError::checkpoint(&sidecar, format!("format is `{}`, expected `{M2_FORMAT}`", info.format)));
    }
    let weights = sidecar.parent().unwrap_or(Path::new(".")).join(&info.weights_file);
    let tensors = load_tensors(&weights)?;
    let model = M2::from_tensors(&info.shape, &tensors).map_err(|r| TrainError::checkpoint(&weights, r))?;
    Ok((model, info))
}

fn summary_line(r: &M2Epoch, epochs: usize) -> String {
    let mut s = format!(
        "epoch {}/{}{}: J {:.2} | L {:.2} U {:.2} H(q) {:.3} | labelled CE {:.3} err {:.1} %",
        r.epoch,
        epochs,
        if r.partial { " (partial)" } else { "" },
        r.objective,
        r.labelled_loss,
        r.unlabelled_loss,
        r.unlabelled_entropy,
        r.labelled_cross_entropy,
        100.0 * r.labelled_error
    );
    if let Some(v) = r.validation_error {
        s += &format!(" | validation error {:.2} %", 100.0 * v);
    }
    if let Some(v) = r.validation_generative_error {
        s += &format!(" (generative {:.2} %)", 100.0 * v);
    }
    if let Some(t) = r.test_error {
        s += &format!(" | test error {:.2} %", 100.0 * t);
    }
    s
}

/// Rewrites the whole JSON-lines log atomically, so it is always a valid prefix of the run.
fn write_log(path: &Path, history: &[M2Epoch]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in history {
        text += &serde_json::to_string(r).map_err(|e| TrainError::Export(e.to_string()))?;
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    tinyvae_data::write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}
