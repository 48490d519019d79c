//! One fully connected layer, `y = x W^T + b`, and how it is read back from named tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};

use super::Parameter;
use crate::error::{TrainError, WeightsError};

/// One fully connected layer, `y = x W^T + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    name: String,
    weight: Var,
    bias: Var,
}

/// `tensors[name]` as an f32 variable of the given rank.
pub(crate) fn named_var(tensors: &HashMap<String, Tensor>, name: &str, rank: usize) -> Result<Var, WeightsError> {
    let t = tensors.get(name).ok_or_else(|| WeightsError::Missing(name.to_string()))?;
    if t.rank() != rank {
        return Err(WeightsError::Mismatch(format!("tensor `{name}` has shape {:?}, expected rank {rank}", t.dims())));
    }
    let tensor = |source| WeightsError::Tensor { name: name.to_string(), source: Box::new(source) };
    let t = t.to_dtype(DType::F32).and_then(|t| t.contiguous()).map_err(tensor)?;
    Var::from_tensor(&t).map_err(tensor)
}

impl Dense {
    /// A layer `inputs -> outputs` with PyTorch-like uniform(-1/sqrt(inputs), 1/sqrt(inputs))
    /// weights, then bias, drawn from `rng`.
    pub fn init(
        name: impl Into<String>,
        inputs: usize,
        outputs: usize,
        rng: &mut tinyvae::Rng,
    ) -> Result<Self, TrainError> {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect() };
        let w = draw(inputs * outputs);
        let b = draw(outputs);
        Ok(Dense {
            name: name.into(),
            weight: Var::from_vec(w, (outputs, inputs), &Device::Cpu)?,
            bias: Var::from_vec(b, outputs, &Device::Cpu)?,
        })
    }

    /// The layer stored as `name.weight` (`outputs x inputs`) and `name.bias` in `weights`; the
    /// error names the missing or misshapen tensor.
    pub fn from_weights(
        name: String,
        inputs: usize,
        outputs: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        Self::from_tensors(&name, weights, Some(inputs), Some(outputs))
    }

    /// The layer stored under `name` in `tensors`; the error names the missing or misshapen
    /// tensor. `inputs`/`outputs` of `None` accept whatever the file holds.
    pub(crate) fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        inputs: Option<usize>,
        outputs: Option<usize>,
    ) -> Result<Self, WeightsError> {
        let weight = named_var(tensors, &format!("{name}.weight"), 2)?;
        let (o, i) = (weight.dims()[0], weight.dims()[1]);
        if inputs.is_some_and(|want| want != i) || outputs.is_some_and(|want| want != o) {
            return Err(WeightsError::Mismatch(format!(
                "tensor `{name}.weight` is {o} x {i}, the configuration needs {} x {}",
                outputs.unwrap_or(o),
                inputs.unwrap_or(i)
            )));
        }
        let bias = named_var(tensors, &format!("{name}.bias"), 1)?;
        if bias.dims()[0] != o {
            return Err(WeightsError::Mismatch(format!(
                "tensor `{name}.bias` has {} values for {o} outputs",
                bias.dims()[0]
            )));
        }
        Ok(Dense { name: name.to_string(), weight, bias })
    }

    /// `x W^T + b` for a `batch x in` input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(self.bias.as_tensor())?)
    }

    /// Parameter-name prefix (`encoder.0`, `decoder.out`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `out x in` weight.
    pub fn weight(&self) -> &Tensor {
        self.weight.as_tensor()
    }

    /// The bias.
    pub fn bias(&self) -> &Tensor {
        self.bias.as_tensor()
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Weight then bias, outside the encoder's decay group, appended to `out`.
    pub(crate) fn push_parameters(&self, out: &mut Vec<Parameter>) {
        out.extend(self.parameters(false));
    }

    /// Weight then bias as optimiser parameters (`in_encoder` picks the weight-decay group).
    pub fn parameters(&self, in_encoder: bool) -> [Parameter; 2] {
        [
            Parameter { in_encoder, ..Parameter::matrix(format!("{}.weight", self.name), &self.weight) },
            Parameter { name: format!("{}.bias", self.name), var: self.bias.clone(), in_encoder, is_matrix: false },
        ]
    }
}
