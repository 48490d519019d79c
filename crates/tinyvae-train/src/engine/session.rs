//! A run in progress: the member's raw weights, the optimisers' state, the weight average and
//! the checkpoint sidecar, started fresh or resumed from a checkpoint, and written back as one.

use std::path::{Path, PathBuf};

use super::files::{checkpoint_tensors, load_run, member_with_values, TermSums, CHECKPOINT_FORMAT, MODEL_FORMAT};
use super::{fresh_optimizers, Member, ModelFile, OptimizerState, RunCheckpoint};
use crate::config::TrainConfig;
use crate::data::ImageSet;
use crate::error::TrainError;
use crate::io::{save_with_sidecar, write_bytes};
use crate::optim::Ema;

/// The mutable state of a run.
pub(super) struct Session<M: Member> {
    /// The optimised weights.
    pub raw: M,
    /// Each optimiser's Adam state.
    pub optimizers: Vec<OptimizerState>,
    /// The weight average, when on.
    pub ema: Option<Ema>,
    /// Where the run is, its history and the best epoch: the checkpoint's sidecar.
    pub info: RunCheckpoint<M::Config, M::Metrics>,
}

impl<M: Member> Session<M> {
    /// A run from freshly initialised weights.
    pub(super) fn fresh(config: &M::Config, cfg: &TrainConfig, train: &ImageSet) -> Result<Self, TrainError> {
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

    /// The run the checkpoint at `path` left, continued with the configuration `cfg`.
    pub(super) fn resume(
        config: &M::Config,
        cfg: &TrainConfig,
        path: &Path,
        train: &ImageSet,
    ) -> Result<Self, TrainError> {
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
                write_bytes(&to, &bytes)?;
            }
        }
        let mut info = ck.info;
        info.train = TrainConfig { resume: None, ..cfg.clone() };
        info.has_ema = ema.is_some();
        Ok(Session { raw: ck.raw, optimizers: ck.optimizers, ema, info })
    }

    /// The weights that are evaluated and exported.
    pub(super) fn eval_model(&self) -> Result<M, TrainError> {
        match &self.ema {
            Some(e) => member_with_values(&self.raw, self.info.input_len, &e.values),
            None => Ok(self.raw.clone()),
        }
    }

    /// The sidecar of a model file of these weights from `epoch`.
    pub(super) fn model_file(
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
    pub(super) fn save_checkpoint(&mut self, dir: &Path) -> Result<PathBuf, TrainError> {
        let tensors = checkpoint_tensors(&self.raw, &self.optimizers, self.ema.as_ref())?;
        let weights_file = format!("checkpoint-{:08}.safetensors", self.info.global_step);
        self.info.weights_file = weights_file.clone();
        self.info.has_ema = self.ema.is_some();
        let sidecar = save_with_sidecar(dir, &weights_file, &tensors, "checkpoint.json", &self.info)?;
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
