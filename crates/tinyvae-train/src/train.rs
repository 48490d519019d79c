//! The training loop: minibatch Adam on the negative ELBO with the reparametrisation trick,
//! optional KL warm-up, translation augmentation, encoder dropout, weight decay and weight
//! averaging; per-epoch evaluation, a JSON-lines log, checkpoints, resume, model selection on
//! held-out training images, and a clear error when the loss stops being finite.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    load_checkpoint, save_checkpoint, save_model, vae_with_values, write_json_atomic, BestEpoch, CheckpointInfo,
    EpochSums, ModelInfo, StateRef, CHECKPOINT_FORMAT, MODEL_FORMAT,
};
use crate::config::{TrainConfig, VaeConfig};
use crate::data::{epoch_order, gather_batch, gaussian_tensor, stream, ImageSet, Stream, TrainingData};
use crate::error::TrainError;
use crate::eval::{evaluate, Nelbo};
use crate::model::{Parameter, Vae};
use crate::optim::{values, Adam, Ema};

/// One line of the training log (one per epoch, plus one for a run stopped mid-epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// True when the run stopped (max_steps) before the epoch ended.
    pub partial: bool,
    /// Adam steps done in total at the end of this record.
    pub global_step: usize,
    /// Learning rate of the last step.
    pub lr: f64,
    /// KL weight of the last step.
    pub kl_weight: f64,
    /// Mean training objective over the epoch's images (recon + kl_weight * KL, with the
    /// augmentation and dropout of training), nats per image.
    pub train_loss: f64,
    /// Mean reconstruction term over the epoch.
    pub train_reconstruction: f64,
    /// Mean KL term over the epoch.
    pub train_kl: f64,
    /// Training negative ELBO (`train_reconstruction + train_kl`).
    pub train_nelbo: f64,
    /// Negative ELBO on the held-out training images.
    pub validation: Option<Nelbo>,
    /// Negative ELBO on the test split.
    pub test: Option<Nelbo>,
    /// Wall-clock seconds of training at the end of the record (all sessions).
    pub elapsed_seconds: f64,
}

/// What [`train`] returns.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The final model: the best-validation epoch when `validation_images > 0`, else the
    /// weights after the last step (averaged when EMA is on).
    pub model: Vae,
    /// Epoch the final model comes from (1-based).
    pub model_epoch: usize,
    /// Test negative ELBO of the final model (when the test split was loaded).
    pub test: Option<Nelbo>,
    /// Validation negative ELBO of the final model.
    pub validation: Option<Nelbo>,
    /// Epochs fully done.
    pub epochs_completed: usize,
    /// Adam steps done.
    pub global_step: usize,
    /// Every log record, including those of earlier sessions of a resumed run.
    pub history: Vec<EpochRecord>,
    /// `out_dir/model.json` (weights in `model.safetensors`).
    pub model_path: PathBuf,
    /// `out_dir/checkpoint.json`.
    pub checkpoint_path: PathBuf,
    /// The JSON-lines log.
    pub log_path: PathBuf,
    /// `(encoder.onnx, decoder.onnx)` when exported.
    pub onnx: Option<(PathBuf, PathBuf)>,
    /// Wall-clock seconds of training (all sessions).
    pub elapsed_seconds: f64,
}

/// Trains a VAE on `cfg.data_dir` (training split; test split for reporting) and writes
/// checkpoints, the log, the final model and optionally ONNX files into `cfg.out_dir`.
pub fn train(vae: &VaeConfig, cfg: &TrainConfig) -> Result<TrainReport, TrainError> {
    cfg.validate()?;
    vae.validate()?;
    let data = TrainingData::load(cfg)?;
    train_on(vae, cfg, &data)
}

/// [`train`] on images already in memory (`cfg.data_dir`, `train_limit`, `test_limit` and
/// `validation_images` are not consulted).
pub fn train_on(vae_cfg: &VaeConfig, cfg: &TrainConfig, data: &TrainingData) -> Result<TrainReport, TrainError> {
    cfg.validate()?;
    vae_cfg.validate()?;
    let out = cfg.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(|e| TrainError::io(&out, e))?;
    let log_path = cfg.log_file();
    let n_train = data.train.count;
    if n_train == 0 {
        return Err(TrainError::Data("no training images".into()));
    }

    // Fresh or resumed state.
    let mut session = match &cfg.resume {
        Some(path) => Session::resume(vae_cfg, cfg, path, &data.train)?,
        None => Session::fresh(vae_cfg, cfg, &data.train)?,
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

    let steps_per_epoch = n_train.div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let limit = cfg.max_steps.map_or(total_steps, |m| m.min(total_steps));
    if session.info.step_in_epoch >= steps_per_epoch {
        // Resumed with fewer images per epoch than the checkpoint's run: that epoch is over.
        session.info.epochs_completed += 1;
        session.info.step_in_epoch = 0;
        session.info.epoch_sums = EpochSums::default();
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
            let x = gather_batch(&data.train, idx, cfg.translate_px, cfg.translate_prob, &mut rng)?;
            let where_ = Where { epoch: epoch + 1, step_in_epoch: b + 1, global_step: step + 1 };
            let outcome = train_step(&session.raw, &params, &x, &mut rng, cfg, beta, where_)?;
            session.adam.update(&params, &outcome.grads, lr, &decay)?;
            if let Some(ema) = session.ema.as_mut() {
                ema.update(&params, session.adam.step)?;
            }
            let n = idx.len() as f64;
            let sums = &mut session.info.epoch_sums;
            sums.loss += outcome.loss * n;
            sums.reconstruction += outcome.reconstruction_sum;
            sums.kl += outcome.kl_sum;
            sums.images += idx.len();
            session.info.step_in_epoch += 1;
            session.info.global_step += 1;
            last_lr = lr;
            last_beta = beta;
            bar.set_message(format!(
                "epoch {}/{} step {}/{} loss {:.2}",
                epoch + 1,
                cfg.epochs,
                b + 1,
                steps_per_epoch,
                sums.loss / sums.images as f64
            ));
            bar.inc(1);
        }

        // End of an epoch, or of the run in the middle of one.
        let finished = session.info.step_in_epoch == steps_per_epoch;
        let sums = session.info.epoch_sums;
        let eval_model = session.eval_model()?;
        let validation = match &data.validation {
            Some(v) => Some(evaluate(&eval_model, v, cfg.eval_seed)?),
            None => None,
        };
        let is_last = session.info.global_step >= limit;
        let test_due = cfg.test_every > 0 && ((epoch + 1) % cfg.test_every == 0 || is_last);
        let test = match (&data.test, test_due) {
            (Some(t), true) => Some(evaluate(&eval_model, t, cfg.eval_seed)?),
            _ => None,
        };
        let images = sums.images.max(1) as f64;
        let record = EpochRecord {
            epoch: epoch + 1,
            partial: !finished,
            global_step: session.info.global_step,
            lr: last_lr,
            kl_weight: last_beta,
            train_loss: sums.loss / images,
            train_reconstruction: sums.reconstruction / images,
            train_kl: sums.kl / images,
            train_nelbo: (sums.reconstruction + sums.kl) / images,
            validation,
            test,
            elapsed_seconds: elapsed(&started),
        };
        if finished {
            session.info.epochs_completed += 1;
            session.info.step_in_epoch = 0;
            session.info.epoch_sums = EpochSums::default();
        }
        if let Some(v) = validation {
            if session.info.best.is_none_or(|b| v.nelbo < b.validation_nelbo) {
                session.info.best = Some(BestEpoch { epoch: epoch + 1, validation_nelbo: v.nelbo });
                let mut info = session.model_info(cfg, epoch + 1, validation, test, &data.train);
                save_model(&out, "best", &eval_model, &mut info)?;
            }
        }
        bar.println(summary_line(&record, cfg.epochs));
        session.info.history.push(record);
        session.info.elapsed_seconds = elapsed(&started);
        let state = StateRef { raw: &session.raw, adam: &session.adam, ema: session.ema.as_ref() };
        save_checkpoint(&out, &mut session.info, state)?;
        write_log(&log_path, &session.info.history)?;
    }
    bar.finish_and_clear();

    // The final model.
    let (model, model_epoch, validation) = match session.info.best {
        Some(best) if data.validation.is_some() => {
            let (m, info) = crate::checkpoint::load_model(&out.join("best.json"))?;
            (m, best.epoch, info.validation)
        }
        _ => {
            let last = session.info.history.last();
            (session.eval_model()?, session.info.epochs_completed.max(1), last.and_then(|r| r.validation))
        }
    };
    let test = match &data.test {
        Some(t) => Some(evaluate(&model, t, cfg.eval_seed)?),
        None => None,
    };
    let mut info = session.model_info(cfg, model_epoch, validation, test, &data.train);
    let model_path = save_model(&out, "model", &model, &mut info)?;
    let onnx = if cfg.export_onnx { Some(crate::export::export_onnx(&model, &out)?) } else { None };
    Ok(TrainReport {
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
        onnx,
        elapsed_seconds: session.info.elapsed_seconds,
    })
}

/// The mutable state of a run.
struct Session {
    raw: Vae,
    adam: Adam,
    ema: Option<Ema>,
    info: CheckpointInfo,
}

impl Session {
    fn fresh(vae_cfg: &VaeConfig, cfg: &TrainConfig, train: &ImageSet) -> Result<Self, TrainError> {
        let raw = Vae::new(vae_cfg, train.len(), cfg.seed)?;
        let params = raw.parameters();
        let adam = Adam::new(&params);
        let ema = cfg.ema_decay.map(|d| Ema::new(d, &params)).transpose()?;
        let info = CheckpointInfo {
            format: CHECKPOINT_FORMAT.into(),
            weights_file: String::new(),
            vae: vae_cfg.clone(),
            input_len: train.len(),
            image_rows: train.rows,
            image_cols: train.cols,
            train: cfg.clone(),
            epochs_completed: 0,
            step_in_epoch: 0,
            global_step: 0,
            epoch_sums: EpochSums::default(),
            best: None,
            elapsed_seconds: 0.0,
            has_ema: ema.is_some(),
            history: Vec::new(),
        };
        Ok(Session { raw, adam, ema, info })
    }

    fn resume(vae_cfg: &VaeConfig, cfg: &TrainConfig, path: &Path, train: &ImageSet) -> Result<Self, TrainError> {
        let ck = load_checkpoint(path)?;
        if ck.info.vae != *vae_cfg {
            return Err(TrainError::checkpoint(
                path,
                format!("was trained with {:?}, not the requested {:?}", ck.info.vae, vae_cfg),
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
                tinyvae_compiler::write_atomic(&to, &bytes).map_err(|e| TrainError::io(&to, e))?;
            }
        }
        let mut info = ck.info;
        info.train = TrainConfig { resume: None, ..cfg.clone() };
        info.has_ema = ema.is_some();
        Ok(Session { raw: ck.raw, adam: ck.adam, ema, info })
    }

    /// The weights that are evaluated and exported.
    fn eval_model(&self) -> Result<Vae, TrainError> {
        match &self.ema {
            Some(e) => vae_with_values(&self.raw, &e.values),
            None => Ok(self.raw.clone()),
        }
    }

    fn model_info(
        &self,
        cfg: &TrainConfig,
        epoch: usize,
        validation: Option<Nelbo>,
        test: Option<Nelbo>,
        train: &ImageSet,
    ) -> ModelInfo {
        ModelInfo {
            format: MODEL_FORMAT.into(),
            weights_file: String::new(),
            vae: self.info.vae.clone(),
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
}

/// Where in the run a step is (for error messages), all 1-based.
#[derive(Debug, Clone, Copy)]
struct Where {
    epoch: usize,
    step_in_epoch: usize,
    global_step: usize,
}

impl Where {
    fn non_finite(self, what: String, value: f32) -> TrainError {
        TrainError::NonFinite {
            epoch: self.epoch,
            step_in_epoch: self.step_in_epoch,
            global_step: self.global_step,
            what,
            value,
        }
    }
}

struct StepOutcome {
    /// Mean objective per image.
    loss: f64,
    reconstruction_sum: f64,
    kl_sum: f64,
    grads: Vec<Vec<f32>>,
}

/// Forward and backward pass on one batch; draws dropout masks then eps from `rng`.
fn train_step(
    model: &Vae,
    params: &[Parameter],
    x: &Tensor,
    rng: &mut tinyvae::Rng,
    cfg: &TrainConfig,
    beta: f64,
    at: Where,
) -> Result<StepOutcome, TrainError> {
    let batch = x.dims()[0];
    let masks = if cfg.encoder_dropout > 0.0 {
        let keep = 1.0 - cfg.encoder_dropout;
        let scale = (1.0 / keep) as f32;
        let mut masks = Vec::new();
        for l in model.encoder_layers() {
            let m: Vec<f32> =
                (0..batch * l.outputs()).map(|_| if (rng.uniform() as f64) <= keep { scale } else { 0.0 }).collect();
            masks.push(Tensor::from_vec(m, (batch, l.outputs()), &Device::Cpu)?);
        }
        Some(masks)
    } else {
        None
    };
    let eps = gaussian_tensor(rng, model.config().mc_samples * batch, model.latent())?;
    let (recon, kl) = model.nelbo_parts(x, &eps, masks.as_deref())?;
    let recon_sum = recon.sum_all()?;
    let kl_sum = kl.sum_all()?;
    let objective = ((&recon_sum + (&kl_sum * beta)?)? / batch as f64)?;
    let loss = objective.to_scalar::<f32>()?;
    if !loss.is_finite() {
        return Err(at.non_finite("the loss".into(), loss));
    }
    let grad_store = objective.backward()?;
    let mut grads = Vec::with_capacity(params.len());
    for p in params {
        let g = match grad_store.get(p.var.as_tensor()) {
            Some(g) => values(g)?,
            None => vec![0f32; p.var.elem_count()],
        };
        if let Some(&bad) = g.iter().find(|v| !v.is_finite()) {
            return Err(at.non_finite(format!("the gradient of {}", p.name), bad));
        }
        grads.push(g);
    }
    Ok(StepOutcome {
        loss: loss as f64,
        reconstruction_sum: recon_sum.to_scalar::<f32>()? as f64,
        kl_sum: kl_sum.to_scalar::<f32>()? as f64,
        grads,
    })
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

fn summary_line(r: &EpochRecord, epochs: usize) -> String {
    let mut s = format!(
        "epoch {}/{}{}: train {:.2} (recon {:.2}, kl {:.2})",
        r.epoch,
        epochs,
        if r.partial { " (partial)" } else { "" },
        r.train_nelbo,
        r.train_reconstruction,
        r.train_kl
    );
    if let Some(v) = r.validation {
        s += &format!(" | validation {:.2}", v.nelbo);
    }
    if let Some(t) = r.test {
        s += &format!(" | test {:.2} (recon {:.2}, kl {:.2})", t.nelbo, t.reconstruction, t.kl);
    }
    s
}

/// Rewrites the whole JSON-lines log atomically, so the file is always a valid prefix of the
/// run's history, consistent with the checkpoint written just before it.
fn write_log(path: &Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in history {
        text += &serde_json::to_string(r).map_err(|e| TrainError::Export(e.to_string()))?;
        text.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    }
    tinyvae_compiler::write_atomic(path, text.as_bytes()).map_err(|e| TrainError::io(path, e))
}

/// Writes `value` as pretty JSON, atomically (used for reports next to the model).
pub fn write_report_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    write_json_atomic(path, value)
}
