//! The VAE (and conditional VAE) as a member of the training engine: one step is minibatch Adam
//! on the negative ELBO with the reparametrisation trick and L Monte-Carlo samples, optional
//! KL warm-up and encoder dropout; evaluation is the test negative ELBO. [`train`] and
//! [`train_on`] keep the VAE-specific report and log records ([`TrainReport`],
//! [`EpochRecord`]) on top of [`crate::engine`], which does the loop, checkpoints, resume,
//! model selection and the divergence errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, VaeConfig};
use crate::data::{gaussian_tensor, ImageSet, TrainingData};
use crate::engine::{self, Batch, EpochLog, Member, RunData, StepContext};
use crate::error::{TrainError, WeightsError};
use crate::eval::{evaluate_labelled, Nelbo};
use crate::io::write_json;
use crate::model::Vae;
use crate::nn::{one_hot, Parameter};

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

impl EpochRecord {
    /// The VAE's view of an engine log record (terms of [`Vae`]'s [`Member::terms`]).
    pub fn from_log(r: &EpochLog<Nelbo>) -> Self {
        let term = |k: &str| r.train.get(k).copied().unwrap_or(0.0);
        EpochRecord {
            epoch: r.epoch,
            partial: r.partial,
            global_step: r.global_step,
            lr: r.lr,
            kl_weight: r.kl_weight,
            train_loss: term("loss"),
            train_reconstruction: term("reconstruction"),
            train_kl: term("kl"),
            train_nelbo: term("nelbo"),
            validation: r.validation,
            test: r.test,
            elapsed_seconds: r.elapsed_seconds,
        }
    }
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

impl From<engine::RunReport<Vae>> for TrainReport {
    fn from(r: engine::RunReport<Vae>) -> Self {
        let onnx = match r.exported.as_slice() {
            [enc, dec] => Some((enc.clone(), dec.clone())),
            _ => None,
        };
        TrainReport {
            model: r.model,
            model_epoch: r.model_epoch,
            test: r.test,
            validation: r.validation,
            epochs_completed: r.epochs_completed,
            global_step: r.global_step,
            history: r.history.iter().map(EpochRecord::from_log).collect(),
            model_path: r.model_path,
            checkpoint_path: r.checkpoint_path,
            log_path: r.log_path,
            onnx,
            elapsed_seconds: r.elapsed_seconds,
        }
    }
}

/// Trains a VAE (a CVAE when `vae.classes > 0`, with the labels of `cfg.data_dir`) on
/// `cfg.data_dir` (training split; test split for reporting) and writes checkpoints, the log,
/// the final model and optionally ONNX files into `cfg.out_dir`.
pub fn train(vae: &VaeConfig, cfg: &TrainConfig) -> Result<TrainReport, TrainError> {
    Ok(engine::train_member::<Vae>(vae, cfg)?.into())
}

/// [`train`] on unlabelled images already in memory (`cfg.data_dir`, `train_limit`,
/// `test_limit` and `validation_images` are not consulted). A CVAE needs labels: use
/// [`engine::run`] with a [`RunData`] that has them.
pub fn train_on(vae_cfg: &VaeConfig, cfg: &TrainConfig, data: &TrainingData) -> Result<TrainReport, TrainError> {
    Ok(engine::run::<Vae>(vae_cfg, cfg, &RunData::unlabelled(data.clone()))?.into())
}

impl Member for Vae {
    type Config = VaeConfig;
    type Metrics = Nelbo;
    const KIND: &'static str = "vae";

    fn check(config: &VaeConfig) -> Result<(), TrainError> {
        config.validate()
    }

    fn new(config: &VaeConfig, input_len: usize, seed: u64) -> Result<Self, TrainError> {
        Vae::new(config, input_len, seed)
    }

    fn from_weights(
        config: &VaeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        Vae::from_weights(config, input_len, weights)
    }

    fn config(&self) -> &VaeConfig {
        Vae::config(self)
    }

    fn parameters(&self) -> Vec<Parameter> {
        Vae::parameters(self)
    }

    fn uses_labels(config: &VaeConfig) -> bool {
        config.classes > 0
    }

    fn terms(_: &VaeConfig) -> Vec<&'static str> {
        vec!["loss", "reconstruction", "kl", "nelbo"]
    }

    /// Draws the dropout masks, then eps, from the step's stream.
    fn train_step(&self, batch: &Batch<'_>, ctx: &mut StepContext<'_>) -> Result<Vec<f64>, TrainError> {
        let n = batch.len();
        // Not `nn::dropout_mask`: this one keeps a unit when `uniform <= keep` (that one when
        // `<`), and the VAE's recorded runs were drawn this way.
        let masks = if ctx.train.encoder_dropout > 0.0 {
            let keep = 1.0 - ctx.train.encoder_dropout;
            let scale = (1.0 / keep) as f32;
            let mut masks = Vec::new();
            for l in self.encoder_layers() {
                let m: Vec<f32> = (0..n * l.outputs())
                    .map(|_| if (ctx.rng.uniform() as f64) <= keep { scale } else { 0.0 })
                    .collect();
                masks.push(Tensor::from_vec(m, (n, l.outputs()), &Device::Cpu)?);
            }
            Some(masks)
        } else {
            None
        };
        let eps = gaussian_tensor(ctx.rng, self.config().mc_samples * n, self.latent())?;
        let y = match self.classes() {
            0 => None,
            c => Some(one_hot(batch.labels()?, c)?),
        };
        let (recon, kl) = self.nelbo_parts_labelled(&batch.x, y.as_ref(), &eps, masks.as_deref())?;
        let recon_sum = recon.sum_all()?;
        let kl_sum = kl.sum_all()?;
        let objective = ((&recon_sum + (&kl_sum * ctx.kl_weight)?)? / n as f64)?;
        let loss = ctx.minimize(0, &objective)?;
        let (r, k) = (recon_sum.to_scalar::<f32>()? as f64, kl_sum.to_scalar::<f32>()? as f64);
        Ok(vec![loss * n as f64, r, k, r + k])
    }

    fn evaluate(&self, images: &ImageSet, labels: Option<&[u8]>, seed: u64) -> Result<Nelbo, TrainError> {
        evaluate_labelled(self, images, labels.filter(|_| self.classes() > 0), seed)
    }

    fn selection(_: &VaeConfig, m: &Nelbo) -> f64 {
        m.nelbo
    }

    fn describe(m: &Nelbo) -> String {
        format!(
            "negative ELBO {:.2} nats/image (reconstruction {:.2} + KL {:.2}, {} images)",
            m.nelbo, m.reconstruction, m.kl, m.images
        )
    }

    fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
        let (enc, dec) = crate::export::export_onnx(self, dir)?;
        Ok(vec![enc, dec])
    }
}

/// Writes `value` as pretty JSON, atomically (used for reports next to the model).
pub fn write_report_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    write_json(path, value)
}
