//! A ReLU MLP: the classifier, the autoencoders' encoders and decoders, M2's q(y|x) and the
//! AAE's discriminator are all one of these.

use std::collections::HashMap;

use candle_core::Tensor;

use super::{dropout_mask, Dense, Parameter};
use crate::error::{TrainError, WeightsError};

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
    pub(crate) fn from_tensors(prefix: &str, tensors: &HashMap<String, Tensor>) -> Result<Self, WeightsError> {
        let mut layers: Vec<Dense> = Vec::new();
        while tensors.contains_key(&format!("{prefix}.{}.weight", layers.len())) {
            let inputs = layers.last().map(Dense::outputs);
            layers.push(Dense::from_tensors(&format!("{prefix}.{}", layers.len()), tensors, inputs, None)?);
        }
        if layers.is_empty() {
            return Err(WeightsError::Mismatch(format!("no tensor `{prefix}.0.weight`: not a {prefix} MLP")));
        }
        Ok(Mlp { layers })
    }

    /// Fails unless the layer widths, input first, are `widths` (what a configuration asks for).
    pub(crate) fn expect_widths(&self, what: &str, widths: &[usize]) -> Result<(), WeightsError> {
        let got: Vec<usize> = std::iter::once(self.inputs()).chain(self.layers.iter().map(Dense::outputs)).collect();
        if got != widths {
            return Err(WeightsError::Mismatch(format!(
                "the {what} has layer widths {got:?}, the configuration needs {widths:?}"
            )));
        }
        Ok(())
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

    /// Every layer's weight then bias, input layer first, appended to `out`.
    pub(crate) fn push_parameters(&self, out: &mut Vec<Parameter>) {
        for l in &self.layers {
            l.push_parameters(out);
        }
    }
}
