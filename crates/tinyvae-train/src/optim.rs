//! Adam with decoupled weight decay (AdamW, PyTorch's formulation) and an exponential moving
//! average of the weights, both on plain `Vec<f32>` state so a checkpoint can hold them
//! exactly and a resumed run continues bit for bit.

use candle_core::Tensor;

use crate::error::TrainError;
use crate::model::Parameter;

/// Adam's first-moment decay.
pub const BETA1: f64 = 0.9;
/// Adam's second-moment decay.
pub const BETA2: f64 = 0.999;
/// Adam's denominator epsilon.
pub const EPSILON: f64 = 1e-8;

/// Adam state for a list of parameters (same order as [`crate::model::Vae`]'s parameters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Adam {
    /// Updates applied so far.
    pub step: u64,
    /// First moments.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

/// Flattened values of a tensor.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>, TrainError> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

impl Adam {
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
    pub decay: f64,
    pub values: Vec<Vec<f32>>,
}

impl Ema {
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
