//! A plain MNIST classifier (ReLU MLP, softmax cross-entropy) in candle, used to judge
//! generated digits: "are the conditional samples of label L classified as L?". It is trained
//! on the labelled training images with small random shifts, dropout and a weight average, and
//! saved as one safetensors file (`classifier.0.weight`, ..., the widths read back from the
//! tensor shapes), so `tinyvae classify --model FILE` needs nothing else.
//!
//! The same code trains the supervised-only "NN" baseline of the semi-supervised table on a
//! labelled subset ([`train_classifier_on`]).
//!
//! ```no_run
//! use tinyvae_train::classifier::{train_classifier, ClassifierConfig};
//! let cfg = ClassifierConfig { out: Some("runs/classifier/classifier.safetensors".into()), ..ClassifierConfig::new("data/mnist") };
//! let report = train_classifier(&cfg)?;
//! println!("test error {:.2} %", 100.0 * report.test_error.unwrap());
//! # Ok::<(), tinyvae_train::TrainError>(())
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tinyvae_data::idx::{Dataset, Split};

use crate::config::{LrSchedule, TrainConfig};
use crate::data::{epoch_order, gather_batch, stream, ImageSet, Stream};
use crate::error::TrainError;
use crate::io::{create_parent, load_tensors, save_tensors, write_json};
use crate::loss::cross_entropy;
use crate::nn::{argmax_rows, named_copies, Mlp, Parameter};
use crate::optim::{AveragedAdam, StepAt};

/// Digit classes of MNIST-style data (IDX labels are checked to be 0..=9 on load).
pub const CLASSES: usize = 10;

/// Parameter-name prefix of the classifier's layers in its safetensors file.
const PREFIX: &str = "classifier";

/// Images per forward pass when classifying (the result does not depend on it).
const EVAL_BATCH: usize = 1000;

/// Images with their class labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImages {
    /// The images, in [0, 1].
    pub images: ImageSet,
    /// One label in `0..CLASSES` per image.
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// Converts an IDX dataset (bytes / 255).
    pub fn from_dataset(d: &Dataset) -> Self {
        LabelledImages { images: ImageSet::from_dataset(d), labels: d.labels.clone() }
    }

    /// Reads one split of an IDX directory, keeping the first `limit` images if given.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self, TrainError> {
        let (images, labels) = ImageSet::load_labelled(dir, split, limit)?;
        Ok(LabelledImages { images, labels })
    }

    /// Number of images.
    pub fn count(&self) -> usize {
        self.images.count
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> LabelledImages {
        let n = self.images.len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        for &i in indices {
            pixels.extend_from_slice(self.images.image(i));
        }
        LabelledImages {
            images: ImageSet { count: indices.len(), rows: self.images.rows, cols: self.images.cols, pixels },
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Splits off the last `n` images (none when `n` is 0): `(first, last n)`.
    pub fn hold_out_last(&self, n: usize) -> Result<(LabelledImages, Option<LabelledImages>), TrainError> {
        if n >= self.count() {
            return Err(TrainError::Config(format!(
                "validation_images ({n}) leaves no training images out of {}",
                self.count()
            )));
        }
        let cut = self.count() - n;
        let first = self.subset(&(0..cut).collect::<Vec<_>>());
        let last = (n > 0).then(|| self.subset(&(cut..self.count()).collect::<Vec<_>>()));
        Ok((first, last))
    }
}

/// How to train the classifier. `ClassifierConfig::new(data)` gives the shipped recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassifierConfig {
    /// MNIST-style IDX directory (training split to learn from, test split to report).
    pub data_dir: PathBuf,
    /// Where the safetensors weights go (a `.json` report is written beside them); `None`
    /// keeps the model in memory only.
    pub out: Option<PathBuf>,
    /// Hidden layer widths (ReLU after each).
    pub hidden: Vec<usize>,
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per Adam step.
    pub batch_size: usize,
    /// Adam learning rate (before the schedule).
    pub lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Dropout on the hidden activations during training.
    pub dropout: f64,
    /// Random shift of training images by up to this many pixels in x and y (0: off).
    pub translate_px: usize,
    /// Probability that a training image is shifted.
    pub translate_prob: f64,
    /// Exponential moving average of the weights; the average is evaluated and saved.
    pub ema_decay: Option<f64>,
    /// Seeds initialisation, shuffling, shifts and dropout.
    pub seed: u64,
    /// Use only the first N training images.
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    pub test_limit: Option<usize>,
    /// Hold out the last N training images and report their error each epoch (the model is
    /// always the last epoch's: no selection).
    pub validation_images: usize,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl ClassifierConfig {
    /// The recipe of the shipped classifier: 784-800-800-10, dropout 0.3, shifts of up to 2
    /// pixels, Adam 1e-3 with cosine decay over 60 epochs of batch 100, weight average 0.999.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ClassifierConfig { data_dir: data_dir.into(), ..Self::default() }
    }

    /// Checks the values, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(format!("classifier: {m}")));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout must be in [0, 1)");
        }
        if !(0.0..=1.0).contains(&self.translate_prob) {
            return bad("translate_prob must be in [0, 1]");
        }
        if self.hidden.contains(&0) {
            return bad("hidden layer widths must be at least 1");
        }
        if self.ema_decay.is_some_and(|d| !(0.0..1.0).contains(&d)) {
            return bad("ema_decay must be in [0, 1)");
        }
        Ok(())
    }
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            data_dir: PathBuf::new(),
            out: None,
            hidden: vec![800, 800],
            epochs: 60,
            batch_size: 100,
            lr: 1e-3,
            lr_schedule: LrSchedule::Cosine { final_fraction: 0.02 },
            dropout: 0.3,
            translate_px: 2,
            translate_prob: 1.0,
            ema_decay: Some(0.999),
            seed: 0,
            train_limit: None,
            test_limit: None,
            validation_images: 0,
            progress: false,
        }
    }
}

/// A trained classifier: an MLP from pixels in [0, 1] to class logits.
#[derive(Debug, Clone)]
pub struct Classifier {
    mlp: Mlp,
}

impl Classifier {
    /// A freshly initialised classifier `input_len -> hidden.. -> classes`.
    pub fn new(input_len: usize, hidden: &[usize], classes: usize, seed: u64) -> Result<Self, TrainError> {
        let mut widths = vec![input_len];
        widths.extend_from_slice(hidden);
        widths.push(classes);
        let mut rng = stream(seed, Stream::Init, 0);
        Ok(Classifier { mlp: Mlp::init(PREFIX, &widths, &mut rng)? })
    }

    /// Reads a classifier saved by [`Classifier::save`]; the error names the file and the
    /// missing or misshapen tensor.
    pub fn load(path: &Path) -> Result<Self, TrainError> {
        let tensors = load_tensors(path)?;
        let mlp = Mlp::from_tensors(PREFIX, &tensors).map_err(TrainError::weights_file(path))?;
        Ok(Classifier { mlp })
    }

    /// Writes the weights as safetensors, atomically.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        create_parent(path)?;
        save_tensors(path, &named_copies(&self.parameters())?)
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// Pixels per image.
    pub fn input_len(&self) -> usize {
        self.mlp.inputs()
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.mlp.outputs()
    }

    pub(crate) fn parameters(&self) -> Vec<Parameter> {
        let mut p = Vec::new();
        self.mlp.push_parameters(&mut p);
        p
    }

    /// Logits, `batch x classes`, for a `batch x input_len` tensor of pixels in [0, 1].
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        self.mlp.forward(x, None)
    }

    /// `per_batch` of the logits of `pixels` (`count x input_len` floats in [0, 1]), batch by
    /// batch, concatenated.
    fn over_logits<T>(
        &self,
        pixels: &[f32],
        per_batch: impl Fn(Tensor) -> Result<Vec<T>, TrainError>,
    ) -> Result<Vec<T>, TrainError> {
        let n = self.input_len();
        if !pixels.len().is_multiple_of(n) {
            return Err(TrainError::Data(format!(
                "{} pixels are not a whole number of {n}-pixel images",
                pixels.len()
            )));
        }
        let mut out = Vec::new();
        for chunk in pixels.chunks(EVAL_BATCH * n) {
            let x = Tensor::from_vec(chunk.to_vec(), (chunk.len() / n, n), &Device::Cpu)?;
            out.extend(per_batch(self.logits(&x)?)?);
        }
        Ok(out)
    }

    /// The most probable class of each image in `pixels` (`count x input_len` floats in [0, 1]).
    pub fn predict(&self, pixels: &[f32]) -> Result<Vec<u8>, TrainError> {
        self.over_logits(pixels, |logits| argmax_rows(&logits))
    }

    /// [`Classifier::predict`] for raw 0..=255 bytes (as `tinyvae sample --raw` writes them).
    pub fn predict_bytes(&self, raw: &[u8]) -> Result<Vec<u8>, TrainError> {
        self.predict(&bytes_to_pixels(raw))
    }

    /// Class probabilities (softmax of the logits), `count x classes`, for `count x input_len`
    /// pixels in [0, 1].
    pub fn probabilities(&self, pixels: &[f32]) -> Result<Vec<f32>, TrainError> {
        self.over_logits(pixels, |logits| {
            Ok(candle_nn::ops::softmax_last_dim(&logits)?.flatten_all()?.to_vec1::<f32>()?)
        })
    }

    /// [`Classifier::probabilities`] for raw 0..=255 bytes.
    pub fn probabilities_bytes(&self, raw: &[u8]) -> Result<Vec<f32>, TrainError> {
        self.probabilities(&bytes_to_pixels(raw))
    }

    /// Fraction of `set` classified wrongly.
    pub fn error_rate(&self, set: &LabelledImages) -> Result<f64, TrainError> {
        error_rate(&self.predict(&set.images.pixels)?, &set.labels)
    }
}

fn bytes_to_pixels(raw: &[u8]) -> Vec<f32> {
    raw.iter().map(|&b| b as f32 / 255.0).collect()
}

/// Fraction of `predicted` that differs from `truth`.
pub(crate) fn error_rate(predicted: &[u8], truth: &[u8]) -> Result<f64, TrainError> {
    if predicted.len() != truth.len() || truth.is_empty() {
        return Err(TrainError::Data(format!("{} predictions for {} labels", predicted.len(), truth.len())));
    }
    Ok(predicted.iter().zip(truth).filter(|(p, t)| p != t).count() as f64 / truth.len() as f64)
}

/// One line of the classifier's training log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Mean cross-entropy over the epoch's (shifted, dropped-out) training batches.
    pub train_cross_entropy: f64,
    /// Error on those batches.
    pub train_error: f64,
    /// Error on the held-out training images.
    pub validation_error: Option<f64>,
    /// Error on the test split.
    pub test_error: Option<f64>,
    /// Wall-clock seconds since the start.
    pub elapsed_seconds: f64,
}

/// What training a classifier returns (and writes, as JSON, beside the weights).
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierReport {
    /// The final model (the weight average when EMA is on).
    #[serde(skip)]
    pub classifier: Classifier,
    /// The configuration used.
    pub config: ClassifierConfig,
    /// Training images.
    pub train_images: usize,
    /// Test error of the final model (fraction), when a test split was given.
    pub test_error: Option<f64>,
    /// Test images evaluated.
    pub test_images: usize,
    /// Validation error of the final model.
    pub validation_error: Option<f64>,
    /// Per-epoch records.
    pub history: Vec<ClassifierEpoch>,
    /// The safetensors file written, if any.
    pub weights_path: Option<PathBuf>,
    /// Wall-clock seconds.
    pub elapsed_seconds: f64,
}

/// Trains on the training split of `cfg.data_dir` (last `validation_images` held out) and
/// reports the error on its test split.
pub fn train_classifier(cfg: &ClassifierConfig) -> Result<ClassifierReport, TrainError> {
    cfg.validate()?;
    let all = LabelledImages::load(&cfg.data_dir, Split::Train, cfg.train_limit)?;
    let (train, validation) = all.hold_out_last(cfg.validation_images)?;
    let test = LabelledImages::load(&cfg.data_dir, Split::Test, cfg.test_limit)?;
    train_classifier_on(cfg, &train, validation.as_ref(), Some(&test))
}

/// [`train_classifier`] on labelled images already in memory (`data_dir`, the limits and
/// `validation_images` are not consulted). The test set is only reported, never used to choose.
pub fn train_classifier_on(
    cfg: &ClassifierConfig,
    train: &LabelledImages,
    validation: Option<&LabelledImages>,
    test: Option<&LabelledImages>,
) -> Result<ClassifierReport, TrainError> {
    cfg.validate()?;
    let n = train.count();
    if n == 0 {
        return Err(TrainError::Data("classifier: no training images".into()));
    }
    if let Some(&bad) = train.labels.iter().find(|&&l| l as usize >= CLASSES) {
        return Err(TrainError::Data(format!("classifier: training label {bad} is outside 0..{CLASSES}")));
    }
    let started = Instant::now();
    let model = Classifier::new(train.images.len(), &cfg.hidden, CLASSES, cfg.seed)?;
    let params = model.parameters();
    let mut optimizer = AveragedAdam::new(&params, cfg.ema_decay)?;
    let schedule = TrainConfig { lr: cfg.lr, lr_schedule: cfg.lr_schedule, ..TrainConfig::default() };
    let steps_per_epoch = n.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let bar = tinyvae_data::progress::steps(cfg.progress, total_steps as u64, 0);
    let evaluated = |optimizer: &AveragedAdam| -> Result<Classifier, TrainError> {
        match optimizer.averaged_weights(&params)? {
            Some(tensors) => Ok(Classifier { mlp: Mlp::from_tensors(PREFIX, &tensors)? }),
            None => Ok(model.clone()),
        }
    };

    let mut history = Vec::new();
    let mut lr = cfg.lr;
    for epoch in 0..cfg.epochs {
        let order = epoch_order(cfg.seed, epoch, n);
        let (mut ce_sum, mut wrong) = (0.0, 0usize);
        for (b, idx) in order.chunks(cfg.batch_size).enumerate() {
            let step = epoch * steps_per_epoch + b;
            lr = schedule.lr_at(step, total_steps, steps_per_epoch);
            let mut rng = stream(cfg.seed, Stream::Step, step as u64);
            let x = gather_batch(&train.images, idx, cfg.translate_px, cfg.translate_prob, &mut rng)?;
            let labels: Vec<u8> = idx.iter().map(|&i| train.labels[i]).collect();
            let masks = model.mlp.dropout_masks(idx.len(), cfg.dropout, &mut rng)?;
            let logits = model.mlp.forward(&x, masks.as_deref())?;
            let ce = cross_entropy(&logits, &labels)?;
            let objective = ce.mean_all()?;
            let at = StepAt { epoch: epoch + 1, step_in_epoch: b + 1, global_step: step + 1 };
            let loss = optimizer.step(&params, &objective, lr, at)?;
            ce_sum += loss * idx.len() as f64;
            wrong += argmax_rows(&logits)?.iter().zip(&labels).filter(|(p, t)| p != t).count();
            bar.inc(1);
        }
        let last = epoch + 1 == cfg.epochs;
        let current = evaluated(&optimizer)?;
        let record = ClassifierEpoch {
            epoch: epoch + 1,
            lr,
            train_cross_entropy: ce_sum / n as f64,
            train_error: wrong as f64 / n as f64,
            validation_error: validation.map(|v| current.error_rate(v)).transpose()?,
            test_error: if last { test.map(|t| current.error_rate(t)).transpose()? } else { None },
            elapsed_seconds: started.elapsed().as_secs_f64(),
        };
        bar.set_message(format!("train error {:.2} %", 100.0 * record.train_error));
        history.push(record);
    }
    bar.finish_and_clear();

    let classifier = evaluated(&optimizer)?;
    let last = history.last().cloned();
    let mut report = ClassifierReport {
        classifier,
        config: cfg.clone(),
        train_images: n,
        test_error: last.as_ref().and_then(|r| r.test_error),
        test_images: test.map_or(0, |t| t.count()),
        validation_error: last.and_then(|r| r.validation_error),
        history,
        weights_path: None,
        elapsed_seconds: started.elapsed().as_secs_f64(),
    };
    if let Some(path) = &cfg.out {
        report.classifier.save(path)?;
        report.weights_path = Some(path.clone());
        write_json(&path.with_extension("json"), &report)?;
    }
    Ok(report)
}
