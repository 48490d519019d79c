//! The building blocks shared by the standalone classifier and M2: a fully connected layer
//! that can be built outside `model.rs`, a ReLU MLP made of them, dropout masks, and the step
//! plumbing (gradients with divergence errors, the progress bar, named-tensor files).
//!
//! Initialisation follows [`crate::model`]: PyTorch-like uniform(-1/sqrt(fan_in),
//! 1/sqrt(fan_in)) from a [`tinyvae::Rng`], weights `out x in` (the IR's `Dense` layout).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::TrainError;
use crate::model::{Dense, Parameter};
use crate::optim::values;

/// A weight-matrix parameter (decayed when the optimiser is given a weight decay).
pub(crate) fn matrix_parameter(name: String, var: &Var) -> Parameter {
    Parameter { name, var: var.clone(), in_encoder: false, is_matrix: true }
}

/// `tensors[name]` as an f32 variable of the given rank.
pub(crate) fn named_var(tensors: &HashMap<String, Tensor>, name: &str, rank: usize) -> Result<Var, String> {
    let t = tensors.get(name).ok_or_else(|| format!("tensor `{name}` is missing"))?;
    if t.rank() != rank {
        return Err(format!("tensor `{name}` has shape {:?}, expected rank {rank}", t.dims()));
    }
    let t = t.to_dtype(DType::F32).and_then(|t| t.contiguous()).map_err(|e| e.to_string())?;
    Var::from_tensor(&t).map_err(|e| e.to_string())
}

/// Layers `prefix.0 .. prefix.{n-1}` with ReLU between them and none after the last: the
/// output is logits.
#[derive(Debug, Clone)]
pub struct Mlp {
    layers: Vec<Dense>,
}

impl Mlp {
    /// An MLP `widths[0] -> widths[1] -> ... -> widths[last]` (at least two widths).
    pub(crate) fn init(prefix: &str, widths: &[usize], rng: &mut tinyvae::Rng) -> Result<Self, TrainError> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(TrainError::Config(format!(
                "{prefix}: layer widths {widths:?} need two or more non-zero sizes"
            )));
        }
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::init(format!("{prefix}.{i}"), w[0], w[1], rng))
            .collect::<Result<_, _>>()?;
        Ok(Mlp { layers })
    }

    /// The MLP stored as `prefix.0`, `prefix.1`, ... in `tensors`, its widths read from the
    /// tensors (each layer's inputs must match the previous layer's outputs).
    pub(crate) fn from_tensors(prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<Self, String> {
        let mut layers: Vec<Dense> = Vec::new();
        while tensors.contains_key(&format!("{prefix}.{}.weight", layers.len())) {
            let inputs = layers.last().map(Dense::outputs);
            layers.push(Dense::from_tensors(&format!("{prefix}.{}", layers.len()), tensors, inputs, None)?);
        }
        if layers.is_empty() {
            return Err(format!("no tensor `{prefix}.0.weight`: not a {prefix} MLP"));
        }
        Ok(Mlp { layers })
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs()
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs()
    }

    /// Widths of the hidden layers.
    pub fn hidden(&self) -> Vec<usize> {
        self.layers[..self.layers.len() - 1].iter().map(Dense::outputs).collect()
    }

    /// Logits for a `batch x in` input; `masks[i]` (already scaled by 1/keep) multiplies hidden
    /// layer i's activations when given.
    pub fn forward(&self, x: &Tensor, masks: Option<&[Tensor]>) -> Result<Tensor, TrainError> {
        let last = self.layers.len() - 1;
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            h = l.forward(&h)?;
            if i < last {
                h = h.relu()?;
                if let Some(m) = masks {
                    h = h.mul(&m[i])?;
                }
            }
        }
        Ok(h)
    }

    /// Dropout masks for every hidden layer of a batch, drawn from `rng` (`None` when `drop` is 0).
    pub(crate) fn dropout_masks(
        &self,
        batch: usize,
        drop: f64,
        rng: &mut tinyvae::Rng,
    ) -> Result<Option<Vec<Tensor>>, TrainError> {
        if drop <= 0.0 {
            return Ok(None);
        }
        let hidden = self.hidden();
        let masks = hidden.iter().map(|&h| dropout_mask(rng, batch, h, drop)).collect::<Result<_, _>>()?;
        Ok(Some(masks))
    }

    pub(crate) fn push_parameters(&self, out: &mut Vec<Parameter>) {
        for l in &self.layers {
            l.push_parameters(out);
        }
    }
}

/// A `rows x cols` inverted-dropout mask: 0 with probability `drop`, else 1 / (1 - drop).
pub(crate) fn dropout_mask(rng: &mut tinyvae::Rng, rows: usize, cols: usize, drop: f64) -> Result<Tensor, TrainError> {
    let keep = 1.0 - drop;
    let scale = (1.0 / keep) as f32;
    let m: Vec<f32> = (0..rows * cols).map(|_| if (rng.uniform() as f64) < keep { scale } else { 0.0 }).collect();
    Ok(Tensor::from_vec(m, (rows, cols), &Device::Cpu)?)
}

/// `batch x classes` one-hot rows for `labels`.
pub(crate) fn one_hot(labels: &[u8], classes: usize) -> Result<Tensor, TrainError> {
    let mut v = vec![0f32; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        v[row * classes + l as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (labels.len(), classes), &Device::Cpu)?)
}

/// Per-row cross-entropy `-log softmax(logits)[label]`, computed from log-softmax.
pub(crate) fn cross_entropy(logits: &Tensor, labels: &[u8]) -> Result<Tensor, TrainError> {
    let classes = logits.dims()[1];
    let log_q = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(log_q.mul(&one_hot(labels, classes)?)?.sum(D::Minus1)?.neg()?)
}

/// Row-wise argmax of a `batch x classes` tensor.
pub(crate) fn argmax_rows(scores: &Tensor) -> Result<Vec<u8>, TrainError> {
    Ok(scores.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|c| c as u8).collect())
}

/// Where a training step is, 1-based, for divergence errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepAt {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub global_step: usize,
}

impl StepAt {
    pub fn non_finite(self, what: String, value: f32) -> TrainError {
        TrainError::NonFinite {
            epoch: self.epoch,
            step_in_epoch: self.step_in_epoch,
            global_step: self.global_step,
            what,
            value,
        }
    }
}

/// Backpropagates `objective` (a scalar) and returns its value and the flattened gradient of
/// every parameter, failing with [`TrainError::NonFinite`] as soon as a number is not finite.
pub(crate) fn gradients(
    objective: &Tensor,
    params: &[Parameter],
    at: StepAt,
) -> Result<(f64, Vec<Vec<f32>>), TrainError> {
    let loss = objective.to_scalar::<f32>()?;
    if !loss.is_finite() {
        return Err(at.non_finite("the loss".into(), loss));
    }
    let store = objective.backward()?;
    let mut grads = Vec::with_capacity(params.len());
    for p in params {
        let g = match store.get(p.var.as_tensor()) {
            Some(g) => values(g)?,
            None => vec![0f32; p.var.elem_count()],
        };
        if let Some(&bad) = g.iter().find(|v| !v.is_finite()) {
            return Err(at.non_finite(format!("the gradient of {}", p.name), bad));
        }
        grads.push(g);
    }
    Ok((loss as f64, grads))
}

/// A step counter on stderr (hidden when `show` is false).
pub(crate) fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} ({eta} left)") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Named tensors from a safetensors file; the error names the file.
pub(crate) fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| TrainError::checkpoint(path, e.to_string()))
}

/// Copies of the parameters' values by name.
pub(crate) fn named_copies(params: &[Parameter]) -> Result<HashMap<String, Tensor>, TrainError> {
    params.iter().map(|p| Ok((p.name.clone(), p.var.as_tensor().copy()?))).collect()
}

/// Named tensors holding `values` (flattened, parameter order) in the shapes of `params`: how
/// a weight average becomes a model.
pub(crate) fn named_with_values(
    params: &[Parameter],
    values: &[Vec<f32>],
) -> Result<HashMap<String, Tensor>, TrainError> {
    params
        .iter()
        .zip(values)
        .map(|(p, v)| Ok((p.name.clone(), Tensor::from_vec(v.clone(), p.var.shape(), &Device::Cpu)?)))
        .collect()
}
