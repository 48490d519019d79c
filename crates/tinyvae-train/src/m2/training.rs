//! M2's training loop: every step draws a batch of unlabelled images (an epoch is one pass over
//! them) and a batch of labelled ones from their own endlessly reshuffled stream, minimises J,
//! and logs the epoch; the model file (`m2.json` + `m2.safetensors`) is written at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::{error_on, export_onnx, generative_predict, M2Config, M2Shape, SslData, M2, M2_FORMAT};
use crate::classifier::{error_rate, CLASSES};
use crate::data::{epoch_order, gather_batch, gaussian_tensor, stream, Stream};
use crate::error::TrainError;
use crate::io::{beside, create_dir, load_tensors, read_json, save_with_sidecar, write_json_lines};
use crate::loss::cross_entropy;
use crate::nn::argmax_rows;
use crate::optim::{AveragedAdam, StepAt};

/// Keeps the labelled visiting order independent of the unlabelled one drawn from the same
/// seed.
const LABELLED_ORDER_SALT: u64 = 0x1ABE_11ED;

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
    /// `encoder.onnx`, `decoder.onnx` and `classifier.onnx` when exported.
    pub onnx: Option<Vec<PathBuf>>,
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
    create_dir(&out)?;
    let log_path = cfg.log_file();
    let started = Instant::now();

    let model = M2::new(&shape, cfg.seed)?;
    let params = model.parameters();
    let mut optimizer = AveragedAdam::new(&params, cfg.ema_decay)?;
    let schedule = cfg.schedule();
    let evaluated = |optimizer: &AveragedAdam| -> Result<M2, TrainError> {
        match optimizer.averaged_weights(&params)? {
            Some(tensors) => Ok(M2::from_tensors(&shape, &tensors)?),
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
    let bar = tinyvae_data::progress::steps(cfg.progress, limit as u64, 0);
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
            beta = schedule.kl_weight_at(step, steps_per_epoch) * cfg.kl_weight;
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
            let value = optimizer.step(&params, &objective, lr, at)?;

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
        let current = evaluated(&optimizer)?;
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
        write_json_lines(&log_path, &history)?;
        if last {
            break 'epochs;
        }
    }
    bar.finish_and_clear();

    let model = evaluated(&optimizer)?;
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
        ema: optimizer.averages(),
        test_error,
        validation_error,
        labelled_indices: data.labelled_indices.clone(),
        config: cfg.clone(),
    };
    let model_path = save_with_sidecar(&out, &info.weights_file, &model.weights()?, "m2.json", &info)?;
    let onnx = if cfg.export_onnx {
        let m1 = cfg.m1_encoder.as_deref().map(super::data::load_m1).transpose()?;
        Some(export_onnx(&model, &out, m1.as_ref())?)
    } else {
        None
    };
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
    let info: M2ModelInfo = read_json(&sidecar)?;
    if info.format != M2_FORMAT {
        return Err(TrainError::checkpoint(&sidecar, format!("format is `{}`, expected `{M2_FORMAT}`", info.format)));
    }
    let weights = beside(&sidecar, &info.weights_file);
    let tensors = load_tensors(&weights)?;
    let model = M2::from_tensors(&info.shape, &tensors).map_err(TrainError::weights_file(&weights))?;
    Ok((model, info))
}

/// The progress line of an epoch's record.
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
