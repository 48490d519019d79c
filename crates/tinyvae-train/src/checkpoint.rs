//! Checkpoints and model files: weights in safetensors, everything else in a JSON sidecar.
//!
//! * A **checkpoint** (`checkpoint.json` + `checkpoint-<step>.safetensors`) holds the raw
//!   weights (`param/<name>`), Adam's moments (`adam_m/<name>`, `adam_v/<name>`; a member with
//!   several optimisers has `adam_m.<optimiser>/<name>` for each), the weight average
//!   (`ema/<name>`) and, in the sidecar, the configuration, the Adam step, the epoch and the
//!   position inside it, the partial-epoch sums and the loss history: enough to resume and get
//!   the same numbers as an uninterrupted run.
//! * A **model** (`model.json` + `model.safetensors`, or `best.*`) holds only the weights that
//!   are evaluated and exported (the average when EMA is on), under their plain names
//!   (`encoder.0.weight`, ..., `decoder.out.bias`; weights `out x in`).
//!
//! The files are written and read by the engine for every family member (the sidecar names
//! the member in `model` and holds its configuration in `config`; see [`crate::engine::load_run`]
//! and [`crate::engine::load_member`]). This module is the VAE's view of them: [`load_checkpoint`]
//! and [`load_model`] read a VAE's files into [`CheckpointInfo`] and [`ModelInfo`], the sidecars
//! of the first trainer with the VAE's loss terms by name.
//!
//! Every file is written to a temporary name and renamed into place; the sidecar is written
//! after the tensors it names, so a crash leaves the previous complete checkpoint readable.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, VaeConfig};
use crate::engine::{load_member, load_run};
use crate::error::TrainError;
use crate::eval::Nelbo;
use crate::model::Vae;
use crate::train::EpochRecord;

pub use crate::engine::{CHECKPOINT_FORMAT, MODEL_FORMAT};

/// Running sums of the epoch in progress (so a resume mid-epoch reports the same epoch loss).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochSums {
    /// Sum over images of the training objective (recon + beta * KL).
    pub loss: f64,
    /// Sum of the reconstruction term.
    pub reconstruction: f64,
    /// Sum of the KL term.
    pub kl: f64,
    /// Images seen.
    pub images: usize,
}

/// The best validation result so far.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Its validation negative ELBO.
    pub validation_nelbo: f64,
}

/// The JSON sidecar of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// [`CHECKPOINT_FORMAT`].
    pub format: String,
    /// The safetensors file beside this sidecar.
    pub weights_file: String,
    /// Network shape.
    pub vae: VaeConfig,
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
    /// Adam steps done in total.
    pub global_step: usize,
    /// Sums of the epoch in progress.
    pub epoch_sums: EpochSums,
    /// Best validation epoch so far.
    pub best: Option<BestEpoch>,
    /// Wall-clock seconds of training so far (all sessions).
    pub elapsed_seconds: f64,
    /// Whether `ema/*` tensors are present.
    pub has_ema: bool,
    /// Per-epoch records so far.
    pub history: Vec<EpochRecord>,
}

/// The JSON sidecar of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// [`MODEL_FORMAT`].
    pub format: String,
    /// The safetensors file beside this sidecar.
    pub weights_file: String,
    /// Network shape.
    pub vae: VaeConfig,
    /// Pixels per image.
    pub input_len: usize,
    /// Image height.
    pub image_rows: usize,
    /// Image width.
    pub image_cols: usize,
    /// Epoch the weights come from (1-based).
    pub epoch: usize,
    /// Adam steps behind the weights.
    pub global_step: usize,
    /// True when the weights are the exponential moving average.
    pub ema: bool,
    /// Validation negative ELBO, if there was a validation set.
    pub validation: Option<Nelbo>,
    /// Test negative ELBO, if measured.
    pub test: Option<Nelbo>,
    /// The run's configuration.
    pub train: TrainConfig,
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its sidecar.
    pub info: CheckpointInfo,
    /// The directory holding it (and the run's `best.*` model, if any).
    pub dir: PathBuf,
    /// The weights that are evaluated and exported (the average when EMA is on).
    pub model: Vae,
    /// The raw optimised weights (what training continues from).
    pub raw: Vae,
}

/// Loads a VAE checkpoint (its sidecar `checkpoint.json`, the directory holding it, or its
/// `.safetensors` file) with the optimiser state needed to resume.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, TrainError> {
    let run = load_run::<Vae>(path)?;
    let r = run.info;
    let sum = |k: usize| r.epoch_sums.sums.get(k).copied().unwrap_or(0.0);
    let info = CheckpointInfo {
        format: r.format,
        weights_file: r.weights_file,
        vae: r.config,
        input_len: r.input_len,
        image_rows: r.image_rows,
        image_cols: r.image_cols,
        train: r.train,
        epochs_completed: r.epochs_completed,
        step_in_epoch: r.step_in_epoch,
        global_step: r.global_step,
        epoch_sums: EpochSums { loss: sum(0), reconstruction: sum(1), kl: sum(2), images: r.epoch_sums.images },
        best: r.best.map(|b| BestEpoch { epoch: b.epoch, validation_nelbo: b.selection }),
        elapsed_seconds: r.elapsed_seconds,
        has_ema: r.has_ema,
        history: r.history.iter().map(EpochRecord::from_log).collect(),
    };
    Ok(Checkpoint { info, dir: run.dir, model: run.model, raw: run.raw })
}

/// Loads a VAE's evaluated/exported weights from a model file (`model.json`, `best.json`,
/// their `.safetensors`, or a directory) or from a checkpoint (its EMA weights when it has
/// them).
pub fn load_model(path: &Path) -> Result<(Vae, ModelInfo), TrainError> {
    let (model, f) = load_member::<Vae>(path)?;
    let info = ModelInfo {
        format: f.format,
        weights_file: f.weights_file,
        vae: f.config,
        input_len: f.input_len,
        image_rows: f.image_rows,
        image_cols: f.image_cols,
        epoch: f.epoch,
        global_step: f.global_step,
        ema: f.ema,
        validation: f.validation,
        test: f.test,
        train: f.train,
    };
    Ok((model, info))
}
