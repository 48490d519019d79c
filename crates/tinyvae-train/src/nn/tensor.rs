//! Small tensor conversions shared by every member: one-hot labels, argmax, dropout masks, and
//! the weights as flat `Vec<f32>`s (what the optimiser and the weight average work on) or as
//! named copies (what files and `from_weights` take).

use std::collections::HashMap;

use candle_core::{Device, Tensor, D};

use super::Parameter;
use crate::error::TrainError;

/// Flattened values of a tensor.
pub(crate) fn values(t: &Tensor) -> Result<Vec<f32>, TrainError> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
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

/// Row-wise argmax of a `batch x classes` tensor.
pub(crate) fn argmax_rows(scores: &Tensor) -> Result<Vec<u8>, TrainError> {
    Ok(scores.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|c| c as u8).collect())
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
