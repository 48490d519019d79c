//! The training engine every member of the family runs on: minibatch Adam (one or several
//! optimisers over subsets of the parameters), the learning-rate schedule and KL warm-up,
//! translation augmentation, weight averaging, per-epoch evaluation, model selection on held-out
//! training images, a JSON-lines log, checkpoints and bit-exact resume, a progress bar, and an
//! error naming the epoch and step when a number stops being finite.
//!
//! A member ([`Member`]) says what its parameters are, what one training step does with a
//! batch (through [`StepContext::minimize`], once per optimiser it steps, in the order the
//! member's algorithm needs: the AAE's reconstruction, discriminator and generator phases are
//! three calls), how it is evaluated and what it exports. Everything else is here, once.
//!
//! Randomness follows [`crate::data`]: each step's generator is derived from `(seed, step)`,
//! so a run resumed at any step draws exactly the numbers the uninterrupted run would have.
//! The engine draws translations from it first; the member draws its own noise (dropout, eps,
//! corruption, prior samples) from what follows.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tinyvae_data::idx::Split;

use crate::checkpoint::{
    load_tensors, read_json, save_tensors_atomic, sidecar_path, strip, write_json_atomic, CHECKPOINT_FORMAT,
    MODEL_FORMAT,
};
use crate::classifier::mlp::{gradients, named_with_values, StepAt};
use crate::config::TrainConfig;
use crate::data::{epoch_order, gather_batch, stream, ImageSet, Stream, TrainingData};
use crate::error::TrainError;
use crate::model::Parameter;
use crate::optim::{values, Adam, Ema};

/// One optimiser of a member: Adam over some of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerSpec {
    /// Name, used in checkpoint tensor names and error messages ("" for a member's only one).
    pub name: String,
    /// Indices into [`Member::parameters`].
    pub params: Vec<usize>,
    /// Learning rate as a multiple of the run's (scheduled) learning rate.
    pub lr_scale: f64,
}

impl OptimizerSpec {
    /// The single optimiser over all `count` parameters.
    pub fn all(count: usize) -> Self {
        OptimizerSpec { name: String::new(), params: (0..count).collect(), lr_scale: 1.0 }
    }
}

/// A family member as the engine sees it.
pub trait Member: Sized + Clone {
    /// Shape and objective, stored in checkpoints and model files.
    type Config: Clone + PartialEq + Debug + Serialize + DeserializeOwned;
    /// Evaluation on one split (test or validation).
    type Metrics: Clone + PartialEq + Debug + Serialize + DeserializeOwned;

    /// Name written into the files (`vae`, `ae`, `aae`, ...); a file of another kind is refused.
    const KIND: &'static str;

    /// Checks the configuration, naming the bad field.
    fn check(config: &Self::Config) -> Result<(), TrainError>;
    /// A freshly initialised member for images of `input_len` pixels, weights from `seed`.
    fn new(config: &Self::Config, input_len: usize, seed: u64) -> Result<Self, TrainError>;
    /// The member from named tensors; the error names the first missing or misshapen one.
    fn from_weights(config: &Self::Config, input_len: usize, weights: &HashMap<String, Tensor>)
        -> Result<Self, String>;
    /// Its configuration.
    fn config(&self) -> &Self::Config;
    /// Parameters in canonical order (names are checkpoint tensor names).
    fn parameters(&self) -> Vec<Parameter>;
    /// Its optimisers; one over everything unless the algorithm alternates.
    fn optimizers(&self) -> Vec<OptimizerSpec> {
        vec![OptimizerSpec::all(self.parameters().len())]
    }
    /// True when training and evaluation need the images' labels.
    fn uses_labels(config: &Self::Config) -> bool;
    /// Names of the per-image training terms [`Member::train_step`] returns, the objective first.
    fn terms(config: &Self::Config) -> Vec<&'static str>;
    /// One step on `batch`: computes its losses, calls [`StepContext::minimize`] for each
    /// optimiser it updates, and returns the sums over the batch's images of [`Member::terms`].
    fn train_step(&self, batch: &Batch<'_>, ctx: &mut StepContext<'_>) -> Result<Vec<f64>, TrainError>;
    /// Evaluation on `images` (with their `labels` when [`Member::uses_labels`]), any noise
    /// drawn from `seed` so that two evaluations agree.
    fn evaluate(&self, images: &ImageSet, labels: Option<&[u8]>, seed: u64) -> Result<Self::Metrics, TrainError>;
    /// The number model selection minimises.
    fn selection(config: &Self::Config, metrics: &Self::Metrics) -> f64;
    /// One line for the progress output.
    fn describe(metrics: &Self::Metrics) -> String;
    /// Checks the exported graphs against candle and writes them (ONNX) into `dir`.
    fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, TrainError>;
}

/// Labels of the splits in [`RunData`] (same order as the images).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitLabels {
    /// One per training image.
    pub train: Vec<u8>,
    /// One per validation image.
    pub validation: Option<Vec<u8>>,
    /// One per test image.
    pub test: Option<Vec<u8>>,
}

/// The images of a run and, for members that use them, their labels.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Training, validation and test images.
    pub images: TrainingData,
    /// Their labels.
    pub labels: Option<SplitLabels>,
}

impl RunData {
    /// Loads what `cfg` asks for, like [`TrainingData::load`], keeping the labels when `labels`.
    pub fn load(cfg: &TrainConfig, labels: bool) -> Result<Self, TrainError> {
        let (all, all_labels) = ImageSet::load_labelled(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let test = if cfg.test_every > 0 {
            Some(ImageSet::load_labelled(&cfg.data_dir, Split::Test, cfg.test_limit)?)
        } else {
            None
        };
        let cut = all.count.saturating_sub(cfg.validation_images);
        let split_labels = SplitLabels {
            train: all_labels[..cut].to_vec(),
            validation: (cfg.validation_images > 0).then(|| all_labels[cut..].to_vec()),
            test: test.as_ref().map(|t| t.1.clone()),
        };
        let images = TrainingData::split(all, test.map(|t| t.0), cfg.validation_images)?;
        Ok(RunData { images, labels: labels.then_some(split_labels) })
    }

    /// Images without labels.
    pub fn unlabelled(images: TrainingData) -> Self {
        RunData { images, labels: None }
    }
}

/// A training batch.
#[derive(Debug)]
pub struct Batch<'a> {
    /// `batch x pixels`, augmented.
    pub x: Tensor,
    /// The images' labels, for members that use them.
    pub labels: Option<Vec<u8>>,
    /// Indices of the images in the training set.
    pub indices: &'a [usize],
}

impl Batch<'_> {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The labels, or an error naming the member that needs them.
    pub fn labels(&self) -> Result<&[u8], TrainError> {
        self.labels.as_deref().ok_or_else(|| TrainError::Data("this model trains on labels; none were loaded".into()))
    }
}

/// An optimiser and its Adam state.
#[derive(Debug, Clone)]
pub(crate) struct OptimizerState {
    pub spec: OptimizerSpec,
    pub adam: Adam,
}

/// Zero-state Adam for each of `member`'s optimisers.
fn fresh_optimizers<M: Member>(member: &M, params: &[Parameter]) -> Vec<OptimizerState> {
    member
        .optimizers()
        .into_iter()
        .map(|spec| {
            let subset: Vec<Parameter> = spec.params.iter().map(|&i| params[i].clone()).collect();
            OptimizerState { adam: Adam::new(&subset), spec }
        })
        .collect()
}

/// What a member's step can use: its random stream, the schedule, and the optimisers.
pub struct StepContext<'a> {
    /// The step's generator (after the engine's translation draws).
    pub rng: &'a mut tinyvae::Rng,
    /// The run's configuration.
    pub train: &'a TrainConfig,
    /// Learning rate of this step.
    pub lr: f64,
    /// KL (regulariser) weight of this step, from the warm-up.
    pub kl_weight: f64,
    params: &'a [Parameter],
    optimizers: &'a mut [OptimizerState],
    decay: &'a [f64],
    at: StepAt,
}

impl StepContext<'_> {
    /// Backpropagates the scalar `objective` and applies one Adam update of optimiser
    /// `optimizer` (to its parameters only); returns the objective's value. Fails, naming the
    /// step, when the objective or a gradient is not finite.
    pub fn minimize(&mut self, optimizer: usize, objective: &Tensor) -> Result<f64, TrainError> {
        let state = &mut self.optimizers[optimizer];
        let params: Vec<Parameter> = state.spec.params.iter().map(|&i| self.params[i].clone()).collect();
        let (loss, grads) = gradients(objective, &params, self.at).map_err(|e| match e {
            TrainError::NonFinite { epoch, step_in_epoch, global_step, what, value } if !state.spec.name.is_empty() => {
                let what = what.replacen("the loss", &format!("the {} loss", state.spec.name), 1);
                TrainError::NonFinite { epoch, step_in_epoch, global_step, what, value }
            }
            other => other,
        })?;
        let decay: Vec<f64> = state.spec.params.iter().map(|&i| self.decay[i]).collect();
        state.adam.update(&params, &grads, self.lr * state.spec.lr_scale, &decay)?;
        Ok(loss)
    }
}

/// Runs `f` with a fresh step context over `member`'s optimisers (learning rate `lr`, random
/// stream from `seed`): how a member's phases are tested one at a time.
#[cfg(test)]
pub(crate) fn with_step_context<M: Member, R>(
    member: &M,
    lr: f64,
    seed: u64,
    f: impl FnOnce(&mut StepContext<'_>) -> R,
) -> R {
    let params = member.parameters();
    let mut optimizers = fresh_optimizers(member, &params);
    let decay = vec![0.0; params.len()];
    let train = TrainConfig { lr, ..TrainConfig::default() };
    let mut rng = stream(seed, Stream::Step, 0);
    let mut ctx = StepContext {
        rng: &mut rng,
        train: &train,
        lr,
        kl_weight: 1.0,
        params: &params,
        optimizers: &mut optimizers,
        decay: &decay,
        at: StepAt { epoch: 1, step_in_epoch: 1, global_step: 1 },
    };
    f(&mut ctx)
}

/// Running sums of the epoch in progress, one per [`Member::terms`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TermSums {
    /// Sums over images.
    pub sums: Vec<f64>,
    /// Images seen.
    pub images: usize,
}

/// The best validation result so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its [`Member::selection`] value.
    pub selection: f64,
}

/// One line of the training log (one per epoch, plus one for a run stopped mid-epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog<T> {
    /// 1-based epoch.
    pub epoch: usize,
    /// True when the run stopped (max_steps) before the epoch ended.
    pub partial: bool,
    /// Optimiser steps done in total at the end of this record.
    pub global_step: usize,
    /// Learning rate of the last step.
    pub lr: f64,
    /// KL (regulariser) weight of the last step.
    pub kl_weight: f64,
    /// Mean of each training term over the epoch's images (with the augmentation and noise
    /// of training).
    pub train: BTreeMap<String, f64>,
    /// Evaluation on the held-out training images.
    pub validation: Option<T>,
    /// Evaluation on the test split.
    pub test: Option<T>,
    /// Wall-clock seconds of training at the end of the record (all sessions).
    pub elapsed_seconds: f64,
}

/// The JSON sidecar of a checkpoint (`checkpoint.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCheckpoint<C, T> {
    /// [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// The safetensors file beside this sidecar.
    pub weights_file: String,
    /// [`Member::KIND`].
    pub model: String,
    /// The member's configuration.
    pub config: C,
    /// Pixels per image.
    pub input_len: usize,
    /// Image height.
    pub image_rows: usize,
    /// Image width.
    pub image_cols: usize,
    /// The run's configuration.
    pub train: TrainConfig,
    /// Epochs fully done.
    pub epochs_completed: usize,
    /// Steps done in the epoch in progress (0 at an epoch boundary).
    pub step_in_epoch: usize,
    /// Steps done in total.
    pub global_step: usize,
    /// Sums of the epoch in progress.
    pub epoch_sums: TermSums,
    /// Best validation epoch so far.
    pub best: Option<Best>,
    /// Wall-clock seconds of training so far (all sessions).
    pub elapsed_seconds: f64,
    /// Whether `ema/*` tensors are present.
    pub has_ema: bool,
    /// Per-epoch records so far.
    pub history: Vec<EpochLog<T>>,
}

/// The JSON sidecar of a model file (`model.json`, `best.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile<C, T> {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// The safetensors file beside this sidecar.
    pub weights_file: String,
    /// [`Member::KIND`].
    pub model: String,
    /// The member's configuration.
    pub config: C,
    /// Pixels per image.
    pub input_len: usize,
    /// Image height.
    pub image_rows: usize,
    /// Image width.
    pub image_cols: usize,
    /// Epoch the weights come from (1-based).
    pub epoch: usize,
    /// Steps behind the weights.
    pub global_step: usize,
    /// True when the weights are the exponential moving average.
    pub ema: bool,
    /// Validation result, if there was a validation set.
    pub validation: Option<T>,
    /// Test result, if measured.
    pub test: Option<T>,
    /// The run's configuration.
    pub train: TrainConfig,
}

/// What [`run`] returns.
#[derive(Debug, Clone)]
pub struct RunReport<M: Member> {
    /// The final model: the best-validation epoch when `validation_images > 0`, else the
    /// weights after the last step (averaged when EMA is on).
    pub model: M,
    /// Epoch the final model comes from (1-based).
    pub model_epoch: usize,
    /// Test result of the final model (when the test split was loaded).
    pub test: Option<M::Metrics>,
    /// Validation result of the final model.
    pub validation: Option<M::Metrics>,
    /// Epochs fully done.
    pub epochs_completed: usize,
    /// Steps done.
    pub global_step: usize,
    /// Every log record, including those of earlier sessions of a resumed run.
    pub history: Vec<EpochLog<M::Metrics>>,
    /// `out_dir/model.json` (weights in `model.safetensors`).
    pub model_path: PathBuf,
    /// `out_dir/checkpoint.json`.
    pub checkpoint_path: PathBuf,
    /// The JSON-lines log.
    pub log_path: PathBuf,
    /// The ONNX files written (when `export_onnx`).
    pub exported: Vec<PathBuf>,
    /// Wall-clock seconds of training (all sessions).
    pub elapsed_seconds: f64,
}

/// Loads the data `cfg` names (with labels when the member uses them) and [`run`]s.
pub fn train_member<M: Member>(config: &M::Config, cfg: &TrainConfig) -> Result<RunReport<M>, TrainError> {
    cfg.validate()?;
    M::check(config)?;
    let data = RunData::load(cfg, M::uses_labels(config))?;
    run::<M>(config, cfg, &data)
}

/// Trains a member on images in memory (`cfg.data_dir`, `train_limit`, `test_limit` and
/// `validation_images` are not consulted) and writes checkpoints, the log, the final model and
/// optionally its ONNX files into `cfg.out_dir`.
pub fn run<M: Member>(config: &M::Config, cfg: &TrainConfig, data: &RunData) -> Result<RunReport<M>, TrainError> {
    cfg.validate()?;
    M::check(config)?;
    let out = cfg.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
    let log_path = cfg.log_file();
    let train_set = &data.images.train;
    let n_train = train_set.count;
    if n_train == 0 {
        return Err(TrainError::Data("no training images".into()));
    }
    let labels = if M::uses_labels(config) {
        let l = data.labels.as_ref().ok_or_else(|| {
            TrainError::Data(format!("the {} model trains on labels, and the data has none", M::KIND))
        })?;
        check_label_counts(l, &data.images)?;
        Some(l)
    } else {
        None
    };

    let mut session = match &cfg.resume {
        Some(path) => Session::<M>::resume(config, cfg, path, train_set)?,
        None => Session::<M>::fresh(config, cfg, train_set)?,
    };
    let params = session.raw.parameters();
    let decay: Vec<f64> = params
        .iter()
        .map(|p| match (p.is_matrix, p.in_encoder) {
            (false, _) => 0.0,
            (true, true) => cfg.encoder_weight_decay,
            (true, false) => cfg.decoder_weight_decay,
        })
        .collect();
    let terms = M::terms(config);

    let steps_per_epoch = n_train.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let limit = cfg.max_steps.map_or(total_steps, |m| m.min(total_steps));
    if session.info.step_in_epoch >= steps_per_epoch {
        // Resumed with fewer images per epoch than the checkpoint's run: that epoch is over.
        session.info.epochs_completed += 1;
        session.info.step_in_epoch = 0;
        session.info.epoch_sums = TermSums::default();
    }
    let bar = progress_bar(cfg.progress, limit as u64, session.info.global_step as u64);
    let started = Instant::now();
    let elapsed_before = session.info.elapsed_seconds;
    let elapsed = |started: &Instant| elapsed_before + started.elapsed().as_secs_f64();

    let mut last_lr = cfg.lr;
    let mut last_beta = 1.0;
    while session.info.global_step < limit {
        let epoch = session.info.epochs_completed; // 0-based index of the epoch in progress
        let order = epoch_order(cfg.seed, epoch, n_train);
        while session.info.step_in_epoch < steps_per_epoch && session.info.global_step < limit {
            let step = session.info.global_step;
            let b = session.info.step_in_epoch;
            let idx = &order[b * cfg.batch_size..((b + 1) * cfg.batch_size).min(n_train)];
            let lr = cfg.lr_at(step, total_steps, steps_per_epoch);
            let beta = cfg.kl_weight_at(step, steps_per_epoch);
            let mut rng = stream(cfg.seed, Stream::Step, step as u64);
            let x = gather_batch(train_set, idx, cfg.translate_px, cfg.translate_prob, &mut rng)?;
            let batch = Batch { x, labels: labels.map(|l| idx.iter().map(|&i| l.train[i]).collect()), indices: idx };
            let mut ctx = StepContext {
                rng: &mut rng,
                train: cfg,
                lr,
                kl_weight: beta,
                params: &params,
                optimizers: &mut session.optimizers,
                decay: &decay,
                at: StepAt { epoch: epoch + 1, step_in_epoch: b + 1, global_step: step + 1 },
            };
            let step_sums = session.raw.train_step(&batch, &mut ctx)?;
            if let Some(ema) = session.ema.as_mut() {
                ema.update(&params, step as u64 + 1)?;
            }
            let sums = &mut session.info.epoch_sums;
            sums.sums.resize(terms.len(), 0.0);
            for (acc, v) in sums.sums.iter_mut().zip(&step_sums) {
                *acc += v;
            }
            sums.images += idx.len();
            session.info.step_in_epoch += 1;
            session.info.global_step += 1;
            last_lr = lr;
            last_beta = beta;
            bar.set_message(format!(
                "epoch {}/{} step {}/{} {} {:.2}",
                epoch + 1,
                cfg.epochs,
                b + 1,
                steps_per_epoch,
                terms.first().copied().unwrap_or("loss"),
                sums.sums.first().copied().unwrap_or(0.0) / sums.images as f64
            ));
            bar.inc(1);
        }

        // End of an epoch, or of the run in the middle of one.
        let finished = session.info.step_in_epoch == steps_per_epoch;
        let sums = session.info.epoch_sums.clone();
        let eval_model = session.eval_model()?;
        let validation = match &data.images.validation {
            Some(v) => Some(eval_model.evaluate(v, labels.and_then(|l| l.validation.as_deref()), cfg.eval_seed)?),
            None => None,
        };
        let is_last = session.info.global_step >= limit;
        let test_due = cfg.test_every > 0 && ((epoch + 1) % cfg.test_every == 0 || is_last);
        let test = match (&data.images.test, test_due) {
            (Some(t), true) => Some(eval_model.evaluate(t, labels.and_then(|l| l.test.as_deref()), cfg.eval_seed)?),
            _ => None,
        };
        let images = sums.images.max(1) as f64;
        let record = EpochLog {
            epoch: epoch + 1,
            partial: !finished,
            global_step: session.info.global_step,
            lr: last_lr,
            kl_weight: last_beta,
            train: terms.iter().zip(&sums.sums).map(|(n, s)| (n.to_string(), s / images)).collect(),
            validation: validation.clone(),
            test: test.clone(),
            elapsed_seconds: elapsed(&started),
        };
        if finished {
            session.info.epochs_completed += 1;
            session.info.step_in_epoch = 0;
            session.info.epoch_sums = TermSums::default();
        }
        if let Some(v) = &validation {
            let score = M::selection(config, v);
            if session.info.best.is_none_or(|b| score < b.selection) {
                session.info.best = Some(Best { epoch: epoch + 1, selection: score });
                let info = session.model_file(cfg, epoch + 1, validation.clone(), test.clone(), train_set);
                save_member(&out, "best", &eval_model, info)?;
            }
        }
        bar.println(summary_line::<M>(&record, cfg.epochs));
        session.info.history.push(record);
        session.info.elapsed_seconds = elapsed(&started);
        session.save_checkpoint(&out)?;
        write_log(&log_path, &session.info.history)?;
    }
    bar.finish_and_clear();

    // The final model.
    let (model, model_epoch, validation) = match session.info.best {
        Some(best) if data.images.validation.is_some() => {
            let (m, info) = load_member::<M>(&out.join("best.json"))?;
            (m, best.epoch, info.validation)
        }
        _ => {
            let last = session.info.history.last();
            (session.eval_model()?, session.info.epochs_completed.max(1), last.and_then(|r| r.validation.clone()))
        }
    };
    let test = match &data.images.test {
        Some(t) => Some(model.evaluate(t, labels.and_then(|l| l.test.as_deref()), cfg.eval_seed)?),
        None => None,
    };
    let info = session.model_file(cfg, model_epoch, validation.clone(), test.clone(), train_set);
    let model_path = save_member(&out, "model", &model, info)?;
    let exported = if cfg.export_onnx { model.export(&out)? } else { Vec::new() };
    Ok(RunReport {
        model,
        model_epoch,
        test,
        validation,
        epochs_completed: session.info.epochs_completed,
        global_step: session.info.global_step,
        history: session.info.history.clone(),
        model_path,
        checkpoint_path: out.join("checkpoint.json"),
        log_path,
        exported,
        elapsed_seconds: session.info.elapsed_seconds,
    })
}

fn check_label_counts(labels: &SplitLabels, images: &TrainingData) -> Result<(), TrainError> {
    let check = |what: &str, l: Option<&Vec<u8>>, i: Option<&ImageSet>| match (l, i) {
        (Some(l), Some(i)) if l.len() != i.count => {
            Err(TrainError::Data(format!("{} {what} labels for {} images", l.len(), i.count)))
        }
        (None, Some(_)) => Err(TrainError::Data(format!("the {what} images have no labels"))),
        _ => Ok(()),
    };
    check("training", Some(&labels.train), Some(&images.train))?;
    check("validation", labels.validation.as_ref(), images.validation.as_ref())?;
    check("test", labels.test.as_ref(), images.test.as_ref())
}

/// The mutable state of a run.
struct Session<M: Member> {
    raw: M,
    optimizers: Vec<OptimizerState>,
    ema: Option<Ema>,
    info: RunCheckpoint<M::Config, M::Metrics>,
}

impl<M: Member> Session<M> {
    fn fresh(config: &M::Config, cfg: &TrainConfig, train: &ImageSet) -> Result<Self, TrainError> {
        let raw = M::new(config, train.len(), cfg.seed)?;
        let params = raw.parameters();
        let optimizers = fresh_optimizers(&raw, &params);
        let ema = cfg.ema_decay.map(|d| Ema::new(d, &params)).transpose()?;
        let info = RunCheckpoint {
            format: CHECKPOINT_FORMAT.into(),
            weights_file: String::new(),
            model: M::KIND.into(),
            config: config.clone(),
            input_len: train.len(),
            image_rows: train.rows,
            image_cols: train.cols,
            train: cfg.clone(),
            epochs_completed: 0,
            step_in_epoch: 0,
            global_step: 0,
            epoch_sums: TermSums::default(),
            best: None,
            elapsed_seconds: 0.0,
            has_ema: ema.is_some(),
            history: Vec::new(),
        };
        Ok(Session { raw, optimizers, ema, info })
    }

    fn resume(config: &M::Config, cfg: &TrainConfig, path: &Path, train: &ImageSet) -> Result<Self, TrainError> {
        let ck = load_run::<M>(path)?;
        if ck.info.config != *config {
            return Err(TrainError::checkpoint(
                path,
                format!("was trained with {:?}, not the requested {:?}", ck.info.config, config),
            ));
        }
        if ck.info.input_len != train.len() {
            return Err(TrainError::checkpoint(
                path,
                format!("takes {}-pixel images, the data has {}", ck.info.input_len, train.len()),
            ));
        }
        let ema = match (cfg.ema_decay, ck.ema) {
            (Some(d), Some(mut e)) => {
                e.decay = d;
                Some(e)
            }
            (Some(d), None) => Some(Ema::new(d, &ck.raw.parameters())?),
            (None, _) => None,
        };
        // Keep the best-validation model of the earlier sessions next to the new checkpoints.
        let same_dir = match (ck.dir.canonicalize(), cfg.out_dir.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if ck.info.best.is_some() && !same_dir {
            for name in ["best.safetensors", "best.json"] {
                let (from, to) = (ck.dir.join(name), cfg.out_dir.join(name));
                let bytes = std::fs::read(&from).map_err(|e| TrainError::io(&from, e))?;
                tinyvae_data::write_atomic(&to, &bytes).map_err(|e| TrainError::io(&to, e))?;
            }
        }
        let mut info = ck.info;
        info.train = TrainConfig { resume: None, ..cfg.clone() };
        info.has_ema = ema.is_some();
        Ok(Session { raw: ck.raw, optimizers: ck.optimizers, ema, info })
    }

    /// The weights that are evaluated and exported.
    fn eval_model(&self) -> Result<M, TrainError> {
        match &self.ema {
            Some(e) => member_with_values(&self.raw, self.info.input_len, &e.values),
            None => Ok(self.raw.clone()),
        }
    }

    fn model_file(
        &self,
        cfg: &TrainConfig,
        epoch: usize,
        validation: Option<M::Metrics>,
        test: Option<M::Metrics>,
        train: &ImageSet,
    ) -> ModelFile<M::Config, M::Metrics> {
        ModelFile {
            format: MODEL_FORMAT.into(),
            weights_file: String::new(),
            model: M::KIND.into(),
            config: self.info.config.clone(),
            input_len: train.len(),
            image_rows: train.rows,
            image_cols: train.cols,
            epoch,
            global_step: self.info.global_step,
            ema: self.ema.is_some(),
            validation,
            test,
            train: TrainConfig { resume: None, ..cfg.clone() },
        }
    }

    /// Writes `dir/checkpoint-<step>.safetensors`, then `dir/checkpoint.json`, then removes
    /// older `checkpoint-*.safetensors` files.
    fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf, TrainError> {
        let mut tensors = HashMap::new();
        let params = self.raw.parameters();
        for p in &params {
            tensors.insert(format!("param/{}", p.name), p.var.as_tensor().copy()?);
        }
        for opt in &self.optimizers {
            let suffix = optimizer_suffix(&opt.spec.name);
            for (k, &i) in opt.spec.params.iter().enumerate() {
                let (name, shape) = (&params[i].name, params[i].var.shape());
                tensors.insert(
                    format!("adam_m{suffix}/{name}"),
                    Tensor::from_vec(opt.adam.m[k].clone(), shape, &Device::Cpu)?,
                );
                tensors.insert(
                    format!("adam_v{suffix}/{name}"),
                    Tensor::from_vec(opt.adam.v[k].clone(), shape, &Device::Cpu)?,
                );
            }
            tensors.insert(format!("adam_step{suffix}"), Tensor::new(&[opt.adam.step as i64], &Device::Cpu)?);
        }
        if let Some(ema) = &self.ema {
            for (p, v) in params.iter().zip(&ema.values) {
                tensors.insert(format!("ema/{}", p.name), Tensor::from_vec(v.clone(), p.var.shape(), &Device::Cpu)?);
            }
        }
        let weights_file = format!("checkpoint-{:08}.safetensors", self.info.global_step);
        save_tensors_atomic(&dir.join(&weights_file), &tensors)?;
        self.info.weights_file = weights_file.clone();
        self.info.has_ema = self.ema.is_some();
        let sidecar = dir.join("checkpoint.json");
        write_json_atomic(&sidecar, &self.info)?;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && name != weights_file {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(sidecar)
    }
}

/// `""` for a member's only optimiser (so a VAE's tensors are `adam_m/<param>`), else
/// `.<name>`.
fn optimizer_suffix(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!(".{name}")
    }
}

/// The member with the parameters of `like` set to `values` (flattened, parameter order).
fn member_with_values<M: Member>(like: &M, input_len: usize, values: &[Vec<f32>]) -> Result<M, TrainError> {
    let named = named_with_values(&like.parameters(), values)?;
    M::from_weights(like.config(), input_len, &named).map_err(TrainError::Config)
}

/// Writes a member's weights (`dir/<stem>.safetensors`, then the sidecar `dir/<stem>.json`);
/// returns the sidecar path.
pub fn save_member<M: Member>(
    dir: &Path,
    stem: &str,
    model: &M,
    mut info: ModelFile<M::Config, M::Metrics>,
) -> Result<PathBuf, TrainError> {
    let weights_file = format!("{stem}.safetensors");
    let tensors: HashMap<String, Tensor> = model
        .parameters()
        .into_iter()
        .map(|p| Ok((p.name, p.var.as_tensor().copy()?)))
        .collect::<Result<_, TrainError>>()?;
    save_tensors_atomic(&dir.join(&weights_file), &tensors)?;
    info.weights_file = weights_file;
    info.format = MODEL_FORMAT.into();
    let sidecar = dir.join(format!("{stem}.json"));
    write_json_atomic(&sidecar, &info)?;
    Ok(sidecar)
}

/// A checkpoint read back: everything needed to resume.
pub struct LoadedRun<M: Member> {
    /// Its sidecar.
    pub info: RunCheckpoint<M::Config, M::Metrics>,
    /// The directory holding it (and the run's `best.*` model, if any).
    pub dir: PathBuf,
    /// The weights that are evaluated and exported (the average when EMA is on).
    pub model: M,
    /// The raw optimised weights.
    pub raw: M,
    pub(crate) optimizers: Vec<OptimizerState>,
    pub(crate) ema: Option<Ema>,
}

fn check_format(path: &Path, found: &str, expected: &str, kind: &str, want_kind: &str) -> Result<(), TrainError> {
    if found != expected {
        return Err(TrainError::checkpoint(
            path,
            format!("format is `{found}`, expected `{expected}` (a model file cannot be resumed, and files of older trainers are not read)"),
        ));
    }
    if kind != want_kind {
        return Err(TrainError::checkpoint(path, format!("holds a `{kind}` model, not a `{want_kind}`")));
    }
    Ok(())
}

/// Loads a checkpoint (its sidecar `checkpoint.json`, the directory holding it, or its
/// `.safetensors` file) with the optimiser state needed to resume.
pub fn load_run<M: Member>(path: &Path) -> Result<LoadedRun<M>, TrainError> {
    let sidecar = sidecar_path(path);
    let value: serde_json::Value = read_json(&sidecar)?;
    let field = |k: &str| value.get(k).and_then(|f| f.as_str()).unwrap_or("").to_string();
    check_format(&sidecar, &field("format"), CHECKPOINT_FORMAT, &field("model"), M::KIND)?;
    let info: RunCheckpoint<M::Config, M::Metrics> = serde_json::from_value(value)
        .map_err(|e| TrainError::checkpoint(&sidecar, format!("bad sidecar JSON: {e}")))?;
    let wpath = sidecar.parent().unwrap_or(Path::new(".")).join(&info.weights_file);
    let all = load_tensors(&wpath)?;
    let bad = |r: String| TrainError::checkpoint(&wpath, r);
    let raw = M::from_weights(&info.config, info.input_len, &strip(&all, "param/")).map_err(bad)?;
    let params = raw.parameters();
    let tensor_values = |key: String, like: &Parameter| -> Result<Vec<f32>, TrainError> {
        let t = all.get(&key).ok_or_else(|| TrainError::checkpoint(&wpath, format!("tensor `{key}` is missing")))?;
        if t.elem_count() != like.var.elem_count() {
            return Err(TrainError::checkpoint(&wpath, format!("tensor `{key}` has the wrong size")));
        }
        values(t)
    };
    let mut optimizers = Vec::new();
    for spec in raw.optimizers() {
        let suffix = optimizer_suffix(&spec.name);
        let moments = |prefix: &str| -> Result<Vec<Vec<f32>>, TrainError> {
            spec.params
                .iter()
                .map(|&i| tensor_values(format!("{prefix}{suffix}/{}", params[i].name), &params[i]))
                .collect()
        };
        let (m, v) = (moments("adam_m")?, moments("adam_v")?);
        let step = match all.get(&format!("adam_step{suffix}")) {
            Some(t) => t.to_vec1::<i64>().map_err(|e| bad(e.to_string()))?.first().copied().unwrap_or(0) as u64,
            None => info.global_step as u64,
        };
        optimizers.push(OptimizerState { spec, adam: Adam { step, m, v } });
    }
    let ema = if info.has_ema {
        let values = params.iter().map(|p| tensor_values(format!("ema/{}", p.name), p)).collect::<Result<_, _>>()?;
        Some(Ema { decay: info.train.ema_decay.unwrap_or(0.999), values })
    } else {
        None
    };
    let model = match &ema {
        Some(e) => member_with_values(&raw, info.input_len, &e.values)?,
        None => {
            let current: Vec<Vec<f32>> = params.iter().map(|p| values(p.var.as_tensor())).collect::<Result<_, _>>()?;
            member_with_values(&raw, info.input_len, &current)?
        }
    };
    let dir = sidecar.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(LoadedRun { info, dir, model, raw, optimizers, ema })
}

/// The model file of member `M`.
pub type MemberFile<M> = ModelFile<<M as Member>::Config, <M as Member>::Metrics>;

/// Loads the evaluated/exported weights from a model file (`model.json`, `best.json`, their
/// `.safetensors`, or a directory) or from a checkpoint (its EMA weights when it has them).
pub fn load_member<M: Member>(path: &Path) -> Result<(M, MemberFile<M>), TrainError> {
    let sidecar = sidecar_path(path);
    let value: serde_json::Value = read_json(&sidecar)?;
    let field = |k: &str| value.get(k).and_then(|f| f.as_str()).unwrap_or("").to_string();
    if field("format") == CHECKPOINT_FORMAT {
        let ck = load_run::<M>(&sidecar)?;
        let last = ck.info.history.last();
        let info = ModelFile {
            format: MODEL_FORMAT.into(),
            weights_file: ck.info.weights_file.clone(),
            model: ck.info.model.clone(),
            config: ck.info.config.clone(),
            input_len: ck.info.input_len,
            image_rows: ck.info.image_rows,
            image_cols: ck.info.image_cols,
            epoch: ck.info.epochs_completed,
            global_step: ck.info.global_step,
            ema: ck.info.has_ema,
            validation: last.and_then(|r| r.validation.clone()),
            test: last.and_then(|r| r.test.clone()),
            train: ck.info.train.clone(),
        };
        return Ok((ck.model, info));
    }
    check_format(&sidecar, &field("format"), MODEL_FORMAT, &field("model"), M::KIND)?;
    let info: ModelFile<M::Config, M::Metrics> = serde_json::from_value(value)
        .map_err(|e| TrainError::checkpoint(&sidecar, format!("bad sidecar JSON: {e}")))?;
    let wpath = sidecar.parent().unwrap_or(Path::new(".")).join(&info.weights_file);
    let all = load_tensors(&wpath)?;
    let model = M::from_weights(&info.config, info.input_len, &all).map_err(|r| TrainError::checkpoint(&wpath, r))?;
    Ok((model, info))
}

fn progress_bar(show: bool, total: u64, done: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done);
    bar
}

fn summary_line<M: Member>(r: &EpochLog<M::Metrics>, epochs: usize) -> String {
    let terms: Vec<String> = r.train.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    let mut s = format!(
        "epoch {}/{}{}: train {}",
        r.epoch,
        epochs,
        if r.partial { " (partial)" } else { "" },
        terms.join(", ")
    );
    if let Some(v) = &r.validation {
        s += &format!(" | validation {}", M::describe(v));
    }
    if let Some(t) = &r.test {
        s += &format!(" | test {}", M::describe(t));
    }
    s
}

/// Rewrites the whole JSON-lines log atomically, so the file is always a valid prefix of the
/// run's history, consistent with the checkpoint written just before it.
fn write_log<T: Serialize>(path: &Path, history: &[EpochLog<T>]) -> Result<(), TrainError> {
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
