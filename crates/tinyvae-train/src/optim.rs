//! Gradients and updates: backpropagation that stops on the first non-finite number (naming
//! the epoch, step and parameter), Adam with decoupled weight decay (AdamW, PyTorch's
//! formulation) and an exponential moving average of the weights. The optimiser state is plain
//! `Vec<f32>`s, so a checkpoint holds it exactly and a resumed run continues bit for bit.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::error::TrainError;
use crate::nn::{named_with_values, values, Parameter};

/// Adam's first-moment decay.
pub const BETA1: f64 = 0.9;
/// Adam's second-moment decay.
pub const BETA2: f64 = 0.999;
/// Adam's denominator epsilon.
pub const EPSILON: f64 = 1e-8;

/// Adam state for a list of parameters (moments in the order of the parameters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adam {
    /// Updates applied so far.
    pub step: u64,
    /// First moments.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

impl Adam {
    /// Zero moments for `params`.
    pub fn new(params: &[Parameter]) -> Self {
        let zeros = || params.iter().map(|p| vec![0f32; p.var.elem_count()]).collect::<Vec<_>>();
        Adam { step: 0, m: zeros(), v: zeros() }
    }

    /// One update: `grads[k]` is the flattened gradient of `params[k]`, `decay[k]` its
    /// decoupled weight decay.
    pub fn update(
        &mut self,
        params: &[Parameter],
        grads: &[Vec<f32>],
        lr: f64,
        decay: &[f64],
    ) -> Result<(), TrainError> {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - BETA1.powi(t);
        let bc2 = 1.0 - BETA2.powi(t);
        let step_size = (lr / bc1) as f32;
        let inv_sqrt_bc2 = (1.0 / bc2.sqrt()) as f32;
        let (b1, b2, eps) = (BETA1 as f32, BETA2 as f32, EPSILON as f32);
        for (k, p) in params.iter().enumerate() {
            let mut w = values(p.var.as_tensor())?;
            let (m, v, g) = (&mut self.m[k], &mut self.v[k], &grads[k]);
            let shrink = (1.0 - lr * decay[k]) as f32;
            for i in 0..w.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let denom = v[i].sqrt() * inv_sqrt_bc2 + eps;
                w[i] = w[i] * shrink - step_size * m[i] / denom;
            }
            p.var.set(&Tensor::from_vec(w, p.var.shape(), p.var.device())?)?;
        }
        Ok(())
    }
}

/// Exponential moving average of the parameters, with the usual warm-up
/// `decay_t = min(decay, (1 + t) / (10 + t))` so that early averages do not remember the
/// random initialisation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ema {
    /// The decay after the warm-up.
    pub decay: f64,
    /// The averages, flattened, in parameter order.
    pub values: Vec<Vec<f32>>,
}

impl Ema {
    /// An average starting at the current values of `params`.
    pub fn new(decay: f64, params: &[Parameter]) -> Result<Self, TrainError> {
        Ok(Ema { decay, values: params.iter().map(|p| values(p.var.as_tensor())).collect::<Result<_, _>>()? })
    }

    /// Folds in the parameters after update number `step` (1-based).
    pub fn update(&mut self, params: &[Parameter], step: u64) -> Result<(), TrainError> {
        let d = self.decay.min((1.0 + step as f64) / (10.0 + step as f64)) as f32;
        for (k, p) in params.iter().enumerate() {
            let w = values(p.var.as_tensor())?;
            for (a, &x) in self.values[k].iter_mut().zip(&w) {
                *a = d * *a + (1.0 - d) * x;
            }
        }
        Ok(())
    }
}

/// Where a training step is, 1-based, for divergence errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepAt {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub global_step: usize,
}

impl StepAt {
    /// The error for a non-finite `value` of `what` at this step.
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

/// One Adam over all of a network's parameters, without weight decay, and its optional weight
/// average folded in after every update: the optimiser of the trainers that step one objective
/// per batch outside the engine (the classifier and M2).
#[derive(Debug, Clone)]
pub(crate) struct AveragedAdam {
    adam: Adam,
    ema: Option<Ema>,
    no_decay: Vec<f64>,
}

impl AveragedAdam {
    /// Fresh state for `params`; `ema_decay` turns the weight average on.
    pub fn new(params: &[Parameter], ema_decay: Option<f64>) -> Result<Self, TrainError> {
        let ema = ema_decay.map(|d| Ema::new(d, params)).transpose()?;
        Ok(AveragedAdam { adam: Adam::new(params), ema, no_decay: vec![0.0; params.len()] })
    }

    /// Backpropagates `objective`, updates `params` with learning rate `lr`, then the average;
    /// returns the objective's value.
    pub fn step(&mut self, params: &[Parameter], objective: &Tensor, lr: f64, at: StepAt) -> Result<f64, TrainError> {
        let (value, grads) = gradients(objective, params, at)?;
        self.adam.update(params, &grads, lr, &self.no_decay)?;
        if let Some(e) = self.ema.as_mut() {
            e.update(params, self.adam.step)?;
        }
        Ok(value)
    }

    /// True when the weights are averaged.
    pub fn averages(&self) -> bool {
        self.ema.is_some()
    }

    /// The averaged weights by name (in the shapes of `params`), or `None` without an average.
    pub fn averaged_weights(&self, params: &[Parameter]) -> Result<Option<HashMap<String, Tensor>>, TrainError> {
        self.ema.as_ref().map(|e| named_with_values(params, &e.values)).transpose()
    }
}
