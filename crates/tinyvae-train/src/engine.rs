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
//! The run's files are in `files` (checkpoints and model files, written and read back),
//! its state between steps in `session`, the log records in [`EpochLog`], and the images and
//! labels in [`RunData`].
//!
//! Randomness follows [`crate::data`]: each step's generator is derived from `(seed, step)`,
//! so a run resumed at any step draws exactly the numbers the uninterrupted run would have.
//! The engine draws translations from it first; the member draws its own noise (dropout, eps,
//! corruption, prior samples) from what follows.

mod files;
mod log;
mod run_data;
mod session;

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::TrainConfig;
use crate::data::{epoch_order, gather_batch, stream, ImageSet, Stream};
use crate::error::{TrainError, WeightsError};
use crate::io::{create_dir, write_json_lines};
use crate::nn::Parameter;
use crate::optim::{gradients, Adam, StepAt};
use log::summary_line;
use run_data::check_label_counts;
use session::Session;

pub use files::{
    load_member, load_run, save_member, Best, LoadedRun, MemberFile, ModelFile, RunCheckpoint, TermSums,
    CHECKPOINT_FORMAT, MODEL_FORMAT,
};
pub use log::EpochLog;
pub use run_data::{RunData, SplitLabels};

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
    fn from_weights(
        config: &Self::Config,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError>;
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
    create_dir(&out)?;
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
        Some(path) => {
            let session = Session::<M>::resume(config, cfg, path, train_set)?;
            // The log as the checkpoint has it: a run killed between its checkpoint and its log
            // left it a record short, which a run with no steps left would never rewrite.
            write_json_lines(&log_path, &session.info.history)?;
            session
        }
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
    let bar = tinyvae_data::progress::steps(cfg.progress, limit as u64, session.info.global_step as u64);
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
        // Before anything is written: JSON has no NaN or infinity, so a diverged evaluation
        // would make `best.json`, the checkpoint and the log unreadable (the last good
        // checkpoint stays).
        let at = StepAt {
            epoch: epoch + 1,
            step_in_epoch: session.info.step_in_epoch,
            global_step: session.info.global_step,
        };
        for (split, metrics) in [("validation", &validation), ("test", &test)] {
            if let Some(value) = metrics.as_ref().map(|m| M::selection(config, m)).filter(|v| !v.is_finite()) {
                return Err(at.non_finite(format!("the {split} loss"), value as f32));
            }
        }
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
        write_json_lines(&log_path, &session.info.history)?;
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
