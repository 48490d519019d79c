//! Checkpoints and model files: weights in safetensors, everything else in a JSON sidecar.
//!
//! * A **checkpoint** (`checkpoint.json` + `checkpoint-<step>.safetensors`) holds the raw
//!   weights (`param/<name>`), Adam's moments (`adam_m/<name>`, `adam_v/<name>`), the weight
//!   average (`ema/<name>`) and, in the sidecar, the configuration, the Adam step, the epoch and
//!   the position inside it, the partial-epoch sums and the loss history: enough to resume and
//!   get the same numbers as an uninterrupted run.
//! * A **model** (`model.json` + `model.safetensors`, or `best.*`) holds only the weights that
//!   are evaluated and exported (the average when EMA is on), under their plain names
//!   (`encoder.0.weight`, ..., `decoder.out.bias`; weights `out x in`).
//!
//! Every file is written to a temporary name and renamed into place; the sidecar is written
//! after the tensors it names, so a crash leaves the previous complete checkpoint readable.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::config::{TrainConfig, VaeConfig};
use crate::error::TrainError;
use crate::eval::Nelbo;
use crate::model::Vae;
use crate::optim::{Adam, Ema};
use crate::train::EpochRecord;

/// Sidecar format tag of checkpoints.
pub const CHECKPOINT_FORMAT: &str = "tinyvae-train-checkpoint/1";
/// Sidecar format tag of model files.
pub const MODEL_FORMAT: &str = "tinyvae-train-model/1";

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
    /// The raw optimised weights.
    pub(crate) raw: Vae,
    pub(crate) adam: Adam,
    pub(crate) ema: Option<Ema>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |e| TrainError::io(path, e)
}

/// Writes a JSON value atomically.
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| TrainError::checkpoint(path, e.to_string()))?;
    text.push('\n');
    tinyvae_compiler::write_atomic(path, text.as_bytes()).map_err(io(path))
}

/// Writes named tensors as safetensors, atomically (temporary file, fsync, rename).
pub(crate) fn save_tensors_atomic(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        candle_core::safetensors::save(tensors, &tmp).map_err(|e| TrainError::checkpoint(&tmp, e.to_string()))?;
        fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
        // The safetensors writer creates private (0600) files; make them as readable as the
        // JSON sidecars beside them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).map_err(io(&tmp))?;
        }
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TrainError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::checkpoint(path, format!("bad sidecar JSON: {e}")))
}

fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainError::checkpoint(path, e.to_string()))
}

/// Tensors whose names start with `prefix`, with the prefix removed.
fn strip(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone()))).collect()
}

/// A model with the same shape as `like` and the given flattened values (parameter order).
pub(crate) fn vae_with_values(like: &Vae, values: &[Vec<f32>]) -> Result<Vae, TrainError> {
    let mut map = HashMap::new();
    for (p, v) in like.parameters().iter().zip(values) {
        map.insert(p.name.clone(), Tensor::from_vec(v.clone(), p.var.shape(), &Device::Cpu)?);
    }
    Vae::from_weights(like.config(), like.input_len(), &map).map_err(TrainError::Config)
}

/// The training state handed to [`save_checkpoint`].
pub(crate) struct StateRef<'a> {
    pub raw: &'a Vae,
    pub adam: &'a Adam,
    pub ema: Option<&'a Ema>,
}

/// Writes `dir/checkpoint-<step>.safetensors`, then `dir/checkpoint.json`, then removes older
/// `checkpoint-*.safetensors` files. Returns the sidecar path.
pub(crate) fn save_checkpoint(
    dir: &Path,
    info: &mut CheckpointInfo,
    state: StateRef<'_>,
) -> Result<PathBuf, TrainError> {
    let mut tensors = HashMap::new();
    let params = state.raw.parameters();
    for (k, p) in params.iter().enumerate() {
        let shape = p.var.shape();
        tensors.insert(format!("param/{}", p.name), p.var.as_tensor().copy()?);
        tensors.insert(format!("adam_m/{}", p.name), Tensor::from_vec(state.adam.m[k].clone(), shape, &Device::Cpu)?);
        tensors.insert(format!("adam_v/{}", p.name), Tensor::from_vec(state.adam.v[k].clone(), shape, &Device::Cpu)?);
        if let Some(ema) = state.ema {
            tensors.insert(format!("ema/{}", p.name), Tensor::from_vec(ema.values[k].clone(), shape, &Device::Cpu)?);
        }
    }
    // The Adam step count as a tensor too, so the safetensors file alone is self-consistent.
    tensors.insert("adam_step".into(), Tensor::new(&[state.adam.step as i64], &Device::Cpu)?);
    let weights_file = format!("checkpoint-{:08}.safetensors", info.global_step);
    save_tensors_atomic(&dir.join(&weights_file), &tensors)?;
    info.weights_file = weights_file.clone();
    info.has_ema = state.ema.is_some();
    let sidecar = dir.join("checkpoint.json");
    write_json_atomic(&sidecar, info)?;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && name != weights_file {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    Ok(sidecar)
}

/// The sidecar a user path means: a `.json` file as is, a directory's `checkpoint.json`
/// (or `model.json`), or the `.json` beside a `.safetensors` file named like it.
fn sidecar_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        let c = path.join("checkpoint.json");
        if c.is_file() {
            return c;
        }
        return path.join("model.json");
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let base = stem.split('-').next().unwrap_or(&stem).to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        for cand in [format!("{stem}.json"), format!("{base}.json")] {
            let p = dir.join(cand);
            if p.is_file() {
                return p;
            }
        }
    }
    path.to_path_buf()
}

/// Loads a checkpoint (its sidecar `checkpoint.json`, the directory holding it, or its
/// `.safetensors` file) with the optimiser state needed to resume.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, TrainError> {
    let sidecar = sidecar_path(path);
    let info: CheckpointInfo = read_json(&sidecar)?;
    if info.format != CHECKPOINT_FORMAT {
        return Err(TrainError::checkpoint(
            &sidecar,
            format!("format is `{}`, expected `{CHECKPOINT_FORMAT}` (a model file cannot be resumed)", info.format),
        ));
    }
    let wpath = sidecar.parent().unwrap_or(Path::new(".")).join(&info.weights_file);
    let all = load_tensors(&wpath)?;
    let bad = |r: String| TrainError::checkpoint(&wpath, r);
    let raw = Vae::from_weights(&info.vae, info.input_len, &strip(&all, "param/")).map_err(bad)?;
    let params = raw.parameters();
    let moments = |prefix: &str| -> Result<Vec<Vec<f32>>, TrainError> {
        params
            .iter()
            .map(|p| {
                let key = format!("{prefix}{}", p.name);
                let t = all
                    .get(&key)
                    .ok_or_else(|| TrainError::checkpoint(&wpath, format!("tensor `{key}` is missing")))?;
                if t.elem_count() != p.var.elem_count() {
                    return Err(TrainError::checkpoint(&wpath, format!("tensor `{key}` has the wrong size")));
                }
                crate::optim::values(t)
            })
            .collect()
    };
    let adam_step = match all.get("adam_step") {
        Some(t) => t.to_vec1::<i64>().map_err(|e| bad(e.to_string()))?.first().copied().unwrap_or(0) as u64,
        None => info.global_step as u64,
    };
    let adam = Adam { step: adam_step, m: moments("adam_m/")?, v: moments("adam_v/")? };
    let ema = if info.has_ema {
        Some(Ema { decay: info.train.ema_decay.unwrap_or(0.999), values: moments("ema/")? })
    } else {
        None
    };
    let model = match &ema {
        Some(e) => vae_with_values(&raw, &e.values)?,
        None => raw.deep_clone()?,
    };
    let dir = sidecar.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(Checkpoint { info, dir, model, raw, adam, ema })
}

/// Writes a model (`dir/<stem>.safetensors` then `dir/<stem>.json`); returns the sidecar path.
pub(crate) fn save_model(dir: &Path, stem: &str, model: &Vae, info: &mut ModelInfo) -> Result<PathBuf, TrainError> {
    let weights_file = format!("{stem}.safetensors");
    save_tensors_atomic(&dir.join(&weights_file), &model.weights()?)?;
    info.weights_file = weights_file;
    info.format = MODEL_FORMAT.into();
    let sidecar = dir.join(format!("{stem}.json"));
    write_json_atomic(&sidecar, info)?;
    Ok(sidecar)
}

/// Loads the evaluated/exported weights from a model file (`model.json`, `best.json`, their
/// `.safetensors`, or a directory) or from a checkpoint (its EMA weights when it has them).
pub fn load_model(path: &Path) -> Result<(Vae, ModelInfo), TrainError> {
    let sidecar = sidecar_path(path);
    let value: serde_json::Value = read_json(&sidecar)?;
    match value.get("format").and_then(|f| f.as_str()) {
        Some(CHECKPOINT_FORMAT) => {
            let ck = load_checkpoint(&sidecar)?;
            let last = ck.info.history.last();
            let info = ModelInfo {
                format: MODEL_FORMAT.into(),
                weights_file: ck.info.weights_file.clone(),
                vae: ck.info.vae.clone(),
                input_len: ck.info.input_len,
                image_rows: ck.info.image_rows,
                image_cols: ck.info.image_cols,
                epoch: ck.info.epochs_completed,
                global_step: ck.info.global_step,
                ema: ck.info.has_ema,
                validation: last.and_then(|r| r.validation),
                test: last.and_then(|r| r.test),
                train: ck.info.train.clone(),
            };
            Ok((ck.model, info))
        }
        Some(MODEL_FORMAT) => {
            let info: ModelInfo = serde_json::from_value(value)
                .map_err(|e| TrainError::checkpoint(&sidecar, format!("bad sidecar JSON: {e}")))?;
            let wpath = sidecar.parent().unwrap_or(Path::new(".")).join(&info.weights_file);
            let all = load_tensors(&wpath)?;
            let model =
                Vae::from_weights(&info.vae, info.input_len, &all).map_err(|r| TrainError::checkpoint(&wpath, r))?;
            Ok((model, info))
        }
        other => Err(TrainError::checkpoint(&sidecar, format!("unknown format {other:?}"))),
    }
}
