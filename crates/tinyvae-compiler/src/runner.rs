//! Running blobs on the host in the `tinyvae` runtime, batched, with the same input and output
//! conventions as [`crate::ir::Graph::eval`], so a blob and its float graph compare directly.

use ndarray::{s, Array2};
use tinyvae::{Autoencoder, Classifier, Decoder, Encoder, Kernels, Model, ModelKind, Score, ScoreKind};

use crate::ir::{Graph, GraphError, Role};

/// Samples per runtime call: large enough to amortize per-call work, small enough for cache.
pub const CHUNK: usize = 64;

/// The index of the 1 in each one-hot row.
fn labels_of(one_hot: &Array2<f32>) -> Vec<u32> {
    one_hot
        .outer_iter()
        .map(|r| {
            r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32
        })
        .collect()
}

/// A classifier blob's class of every row of `x`, as the runtime answers on a device.
pub fn classify_blob(blob: &[u8], x: &Array2<f32>, kernels: &'static Kernels) -> Result<Vec<u32>, tinyvae::Error> {
    let model = Model::parse(blob)?;
    let c = Classifier::new(&model)?.with_kernels(kernels);
    let mut arena = vec![0u8; model.arena_size_for_batch(CHUNK).unwrap_or(0)];
    let mut classes = vec![0u32; x.nrows()];
    for start in (0..x.nrows()).step_by(CHUNK) {
        let end = (start + CHUNK).min(x.nrows());
        let rows = x.slice(s![start..end, ..]).to_owned();
        c.classify_batch(rows.as_slice().unwrap_or(&[]), end - start, &mut arena, &mut classes[start..end])?;
    }
    Ok(classes)
}

/// Runs a decoder or encoder blob. Decoders take `[z]` or `[z, one_hot_label]` and give
/// `[x]`; encoders take `[x]` or `[x, one_hot_label]` and give `[mu, logvar]`.
pub fn run_blob(
    blob: &[u8],
    inputs: &[Array2<f32>],
    kernels: &'static Kernels,
) -> Result<Vec<Array2<f32>>, tinyvae::Error> {
    let model = Model::parse(blob)?;
    let n = inputs.first().map(|a| a.nrows()).unwrap_or(0);
    let mut arena = vec![0u8; model.arena_size_for_batch(CHUNK).unwrap_or(0)];
    match model.kind() {
        ModelKind::Decoder => {
            let d = Decoder::new(&model)?.with_kernels(kernels);
            let labels = inputs.get(1).map(labels_of);
            let mut out = Array2::zeros((n, d.output_len()));
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                let z = inputs[0].slice(s![start..end, ..]).to_owned();
                let mut y = vec![0f32; (end - start) * d.output_len()];
                let lab = labels.as_ref().map(|l| &l[start..end]);
                d.decode_batch_f32(z.as_slice().unwrap_or(&[]), lab, end - start, &mut arena, &mut y)?;
                out.slice_mut(s![start..end, ..])
                    .assign(&Array2::from_shape_vec((end - start, d.output_len()), y).expect("shape"));
            }
            Ok(vec![out])
        }
        ModelKind::Classifier => {
            let c = Classifier::new(&model)?.with_kernels(kernels);
            let k = c.classes();
            let mut out = Array2::zeros((n, k));
            let mut classes = vec![0u32; CHUNK];
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                let x = inputs[0].slice(s![start..end, ..]).to_owned();
                let mut logits = vec![0f32; (end - start) * k];
                c.classify_batch(x.as_slice().unwrap_or(&[]), end - start, &mut arena, &mut classes[..end - start])?;
                c.logits(&mut arena, end - start, &mut logits)?;
                out.slice_mut(s![start..end, ..])
                    .assign(&Array2::from_shape_vec((end - start, k), logits).expect("shape"));
            }
            Ok(vec![out])
        }
        ModelKind::Autoencoder => {
            let ae = Autoencoder::new(&model)?.with_kernels(kernels);
            let f = ae.features();
            let mut out = Array2::zeros((n, f));
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                let x = inputs[0].slice(s![start..end, ..]).to_owned();
                let mut y = vec![0f32; (end - start) * f];
                ae.reconstruct_batch(x.as_slice().unwrap_or(&[]), end - start, &mut arena, &mut y)?;
                out.slice_mut(s![start..end, ..]).assign(&Array2::from_shape_vec((end - start, f), y).expect("shape"));
            }
            Ok(vec![out])
        }
        _ => {
            let e = Encoder::new(&model)?.with_kernels(kernels);
            let labels = inputs.get(1).map(labels_of);
            let l = e.latent_dim();
            let (mut mu, mut lv) = (Array2::zeros((n, l)), Array2::zeros((n, l)));
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                let x = inputs[0].slice(s![start..end, ..]).to_owned();
                let (mut m, mut v) = (vec![0f32; (end - start) * l], vec![0f32; (end - start) * l]);
                let lab = labels.as_ref().map(|l| &l[start..end]);
                e.encode_batch(x.as_slice().unwrap_or(&[]), lab, end - start, &mut arena, &mut m, &mut v)?;
                mu.slice_mut(s![start..end, ..]).assign(&Array2::from_shape_vec((end - start, l), m).expect("shape"));
                lv.slice_mut(s![start..end, ..]).assign(&Array2::from_shape_vec((end - start, l), v).expect("shape"));
            }
            // A deterministic encoder's logvar is -inf by definition: nothing to compare.
            Ok(if model.meta().head == tinyvae::format::EncoderHead::Deterministic { vec![mu] } else { vec![mu, lv] })
        }
    }
}

/// An autoencoder blob's anomaly scores (of `kind`) of the rows of `x`, as the runtime computes
/// them on a device (integer arithmetic on int8 blobs).
pub fn score_blob(
    blob: &[u8],
    x: &Array2<f32>,
    kind: ScoreKind,
    kernels: &'static Kernels,
) -> Result<Vec<Score>, tinyvae::Error> {
    let model = Model::parse(blob)?;
    let ae = Autoencoder::new(&model)?.with_kernels(kernels).with_score(kind)?;
    let mut arena = vec![0u8; model.arena_size_for_batch(CHUNK).unwrap_or(0)];
    let mut scores = vec![Score { raw: 0, unit: 0.0 }; x.nrows()];
    for start in (0..x.nrows()).step_by(CHUNK) {
        let end = (start + CHUNK).min(x.nrows());
        let rows = x.slice(s![start..end, ..]).to_owned();
        ae.score_batch(rows.as_slice().unwrap_or(&[]), end - start, &mut arena, &mut scores[start..end])?;
    }
    Ok(scores)
}

/// The float graph's outputs in [`run_blob`]'s convention: an encoder with one fused
/// `[mu | logvar]` output is split in two.
pub fn reference_outputs(graph: &Graph, inputs: &[Array2<f32>]) -> Result<Vec<Array2<f32>>, GraphError> {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let outs = graph.eval(&views)?;
    if let Role::Encoder { latent, .. } = graph.role {
        return split_fused(outs, latent);
    }
    Ok(outs)
}

/// An encoder's outputs in [`run_blob`]'s convention: a fused `[mu | logvar]` output is split
/// in two; a deterministic encoder's single z output, and separate heads, stay as they are.
pub fn split_fused(mut outs: Vec<Array2<f32>>, latent: usize) -> Result<Vec<Array2<f32>>, GraphError> {
    if outs.len() != 1 || outs[0].ncols() == latent {
        return Ok(outs);
    }
    let both = outs.remove(0);
    if both.ncols() != 2 * latent {
        return Err(GraphError::EncoderOutput { got: both.ncols(), latent });
    }
    Ok(vec![both.slice(s![.., ..latent]).to_owned(), both.slice(s![.., latent..]).to_owned()])
}

/// Flattens a list of outputs sample-major into one vector (for metrics).
pub fn flatten(outputs: &[Array2<f32>]) -> Vec<f32> {
    outputs.iter().flat_map(|a| a.iter().copied()).collect()
}
