//! The files of a run, for every member: checkpoints (`checkpoint.json` +
//! `checkpoint-<step>.safetensors`) and model files (`model.json` + `model.safetensors`, or
//! `best.*`). The writer and the reader of each are side by side, so the tensor names
//! (`param/<name>`, `adam_m<.optimiser>/<name>`, `adam_v...`, `adam_step...`, `ema/<name>`) are
//! spelled in one place.
//!
//! A sidecar names the member (`model`, [`Member::KIND`]) and holds its configuration
//! (`config`); a file of another kind or format is refused with an error naming it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{EpochLog, Member, OptimizerState};
use crate::config::TrainConfig;
use crate::error::{TrainError, WeightsError};
use crate::io::{beside, load_tensors, read_json, save_with_sidecar, sidecar_path, strip_prefix};
use crate::nn::{named_copies, named_with_values, values, Parameter};
use crate::optim::{Adam, Ema};

/// Sidecar format tag of checkpoints (version 2: any family member, named in `model`).
pub const CHECKPOINT_FORMAT: &str = "tinyvae-train-checkpoint/2";
/// Sidecar format tag of model files (version 2: any family member, named in `model`).
pub const MODEL_FORMAT: &str = "tinyvae-train-model/2";

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

/// The model file of member `M`.
pub type MemberFile<M> = ModelFile<<M as Member>::Config, <M as Member>::Metrics>;

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
pub(super) fn member_with_values<M: Member>(like: &M, input_len: usize, values: &[Vec<f32>]) -> Result<M, TrainError> {
    let named = named_with_values(&like.parameters(), values)?;
    Ok(M::from_weights(like.config(), input_len, &named)?)
}

/// The tensors of a checkpoint: the raw weights, each optimiser's moments and step, and the
/// weight average.
pub(super) fn checkpoint_tensors<M: Member>(
    raw: &M,
    optimizers: &[OptimizerState],
    ema: Option<&Ema>,
) -> Result<HashMap<String, Tensor>, TrainError> {
    let mut tensors = HashMap::new();
    let params = raw.parameters();
    for p in &params {
        tensors.insert(format!("param/{}", p.name), p.var.as_tensor().copy()?);
    }
    for opt in optimizers {
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
    if let Some(ema) = ema {
        for (p, v) in params.iter().zip(&ema.values) {
            tensors.insert(format!("ema/{}", p.name), Tensor::from_vec(v.clone(), p.var.shape(), &Device::Cpu)?);
        }
    }
    Ok(tensors)
}

/// Writes a member's weights (`dir/<stem>.safetensors`, then the sidecar `dir/<stem>.json`);
/// returns the sidecar path.
pub fn save_member<M: Member>(
    dir: &Path,
    stem: &str,
    model: &M,
    mut info: ModelFile<M::Config, M::Metrics>,
) -> Result<PathBuf, TrainError> {
    info.weights_file = format!("{stem}.safetensors");
    info.format = MODEL_FORMAT.into();
    save_with_sidecar(dir, &info.weights_file, &named_copies(&model.parameters())?, &format!("{stem}.json"), &info)
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

/// A sidecar read as JSON, before it is known which kind of file it is.
struct Sidecar {
    path: PathBuf,
    value: serde_json::Value,
}

impl Sidecar {
    /// The sidecar a user path means (see [`sidecar_path`]).
    fn read(path: &Path) -> Result<Self, TrainError> {
        let path = sidecar_path(path);
        let value = read_json(&path)?;
        Ok(Sidecar { path, value })
    }

    /// A string field (`""` when absent).
    fn field(&self, key: &str) -> &str {
        self.value.get(key).and_then(|f| f.as_str()).unwrap_or("")
    }

    /// Fails unless this is a file of format `expected` holding a `want_kind` member.
    fn check(&self, expected: &str, want_kind: &str) -> Result<(), TrainError> {
        let (found, kind) = (self.field("format"), self.field("model"));
        if found != expected {
            return Err(TrainError::checkpoint(
                &self.path,
                format!("format is `{found}`, expected `{expected}` (a model file cannot be resumed, and files of older trainers are not read)"),
            ));
        }
        if kind != want_kind {
            return Err(TrainError::checkpoint(&self.path, format!("holds a `{kind}` model, not a `{want_kind}`")));
        }
        Ok(())
    }

    /// The whole sidecar as `T`.
    fn parse<T: DeserializeOwned>(self) -> Result<T, TrainError> {
        serde_json::from_value(self.value).map_err(|source| TrainError::Json { path: self.path, source })
    }
}

/// Loads a checkpoint (its sidecar `checkpoint.json`, the directory holding it, or its
/// `.safetensors` file) with the optimiser state needed to resume. A directory without
/// `checkpoint.json` (a run stopped before its first checkpoint) is an error saying so.
pub fn load_run<M: Member>(path: &Path) -> Result<LoadedRun<M>, TrainError> {
    if path.is_dir() && !path.join("checkpoint.json").is_file() {
        return Err(TrainError::checkpoint(
            path,
            "no checkpoint.json in this directory, nothing to resume (a run stopped before its first \
             checkpoint starts again from the beginning, not resumed)",
        ));
    }
    let sidecar = Sidecar::read(path)?;
    sidecar.check(CHECKPOINT_FORMAT, M::KIND)?;
    let dir = sidecar.path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let info: RunCheckpoint<M::Config, M::Metrics> = sidecar.parse()?;
    let wpath = dir.join(&info.weights_file);
    let all = load_tensors(&wpath)?;
    let bad = TrainError::weights_file;
    let raw = M::from_weights(&info.config, info.input_len, &strip_prefix(&all, "param/")).map_err(bad(&wpath))?;
    let params = raw.parameters();
    let tensor_values = |key: String, like: &Parameter| -> Result<Vec<f32>, TrainError> {
        let t = all.get(&key).ok_or_else(|| bad(&wpath)(WeightsError::Missing(key.clone())))?;
        if t.elem_count() != like.var.elem_count() {
            return Err(bad(&wpath)(WeightsError::Mismatch(format!("tensor `{key}` has the wrong size"))));
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
        let key = format!("adam_step{suffix}");
        let step = match all.get(&key) {
            Some(t) => {
                let steps = t
                    .to_vec1::<i64>()
                    .map_err(|source| bad(&wpath)(WeightsError::Tensor { name: key, source: Box::new(source) }))?;
                steps.first().copied().unwrap_or(0) as u64
            }
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
    Ok(LoadedRun { info, dir, model, raw, optimizers, ema })
}

/// Loads the evaluated/exported weights from a model file (`model.json`, `best.json`, their
/// `.safetensors`, or a directory) or from a checkpoint (its EMA weights when it has them).
pub fn load_member<M: Member>(path: &Path) -> Result<(M, MemberFile<M>), TrainError> {
    let sidecar = Sidecar::read(path)?;
    if sidecar.field("format") == CHECKPOINT_FORMAT {
        let ck = load_run::<M>(&sidecar.path)?;
        let last: Option<&EpochLog<M::Metrics>> = ck.info.history.last();
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
    sidecar.check(MODEL_FORMAT, M::KIND)?;
    let sidecar_file = sidecar.path.clone();
    let info: MemberFile<M> = sidecar.parse()?;
    let wpath = beside(&sidecar_file, &info.weights_file);
    let all = load_tensors(&wpath)?;
    let model = M::from_weights(&info.config, info.input_len, &all).map_err(TrainError::weights_file(&wpath))?;
    Ok((model, info))
}
