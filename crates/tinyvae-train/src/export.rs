//! The VAE's networks as float IR graphs and ONNX files: the decoder graph
//! `z -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean` and the encoder graph
//! `x -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`, checked against the candle
//! forward pass before anything is written.
//!
//! A conditional model (CVAE) takes the one-hot label as its second input, `[z, label]` or
//! `[x, label]`, joined to the first by a `Concat` node. The node-building and checking
//! helpers shared with the other members are in `graph`.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tinyvae_compiler::ir::{Graph, Op, Role};

use crate::data::{stream, Stream};
use crate::error::TrainError;
use crate::graph::{
    check_graph, checked, condition_nodes, dense_op, graph_inputs, hidden_nodes, node, one_hot_probe, probe,
    within_tolerance, write_graphs,
};
use crate::model::Vae;

pub use crate::graph::EXPORT_TOLERANCE;

/// The decoder as an IR graph: input `z` (latent) and, for a CVAE, `label` (one-hot); output
/// `x_mean` (sigmoid means); role `Decoder { latent, classes, bernoulli }`. A learned-variance
/// decoder exports its mean head only.
pub fn decoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let classes = model.classes();
    let mut nodes = Vec::new();
    let input = condition_nodes("decoder", "z", "decoder_input".into(), classes > 0, &mut nodes);
    let top = hidden_nodes("decoder", model.decoder_layers().iter().map(dense_op), &input, &mut nodes)?;
    nodes.push(node("decoder_out", dense_op(model.decoder_output())?, &[&top], "logits"));
    nodes.push(node("decoder_sigmoid", Op::Sigmoid, &["logits"], "x_mean"));
    checked(Graph {
        inputs: graph_inputs("z", model.latent(), classes),
        nodes,
        outputs: vec!["x_mean".into()],
        role: Role::Decoder { latent: model.latent(), classes, bernoulli: !model.config().likelihood.is_gaussian() },
    })
}

/// The encoder as an IR graph: input `x` (pixels) and, for a CVAE, `label`; outputs `mu` then
/// `logvar`; role `Encoder { latent, classes }`.
pub fn encoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let classes = model.classes();
    let mut nodes = Vec::new();
    let input = condition_nodes("encoder", "x", "encoder_input".into(), classes > 0, &mut nodes);
    let top = hidden_nodes("encoder", model.encoder_layers().iter().map(dense_op), &input, &mut nodes)?;
    nodes.push(node("encoder_mu", dense_op(model.mu_head())?, &[&top], "mu"));
    nodes.push(node("encoder_logvar", dense_op(model.logvar_head())?, &[&top], "logvar"));
    checked(Graph {
        inputs: graph_inputs("x", model.input_len(), classes),
        nodes,
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: model.latent(), classes },
    })
}

/// Evaluates both IR graphs on `samples` random inputs (z from N(0, I); x uniform in [0, 1];
/// random one-hot labels for a CVAE) and returns the largest absolute difference to the candle
/// forward pass over all outputs.
pub fn export_discrepancy(model: &Vae, samples: usize) -> Result<f32, TrainError> {
    let mut rng = stream(0xE4_907, Stream::Eval, 1);
    let (z_arr, z) = probe(&mut rng, samples, model.latent(), true)?;
    let labels = match model.classes() {
        0 => None,
        classes => {
            let labels: Vec<u8> = (0..samples).map(|_| rng.below(classes as u32) as u8).collect();
            Some(one_hot_probe(&labels, classes)?)
        }
    };
    let y = labels.as_ref().map(|l| &l.1);
    let with_label = |first: Array2<f32>| -> Vec<Array2<f32>> {
        std::iter::once(first).chain(labels.as_ref().map(|l| l.0.clone())).collect()
    };
    let candle = model.decode_labelled(&z, y)?;
    let mut worst = check_graph(&decoder_graph(model)?, &with_label(z_arr), &[candle])?;

    let (x_arr, x) = probe(&mut rng, samples, model.input_len(), false)?;
    let (mu, logvar) = model.encode_labelled(&x, y)?;
    worst = worst.max(check_graph(&encoder_graph(model)?, &with_label(x_arr), &[mu, logvar])?);
    Ok(worst)
}

/// Checks the IR graphs against candle (within [`EXPORT_TOLERANCE`]) and writes
/// `out_dir/encoder.onnx` and `out_dir/decoder.onnx`; returns their paths.
pub fn export_onnx(model: &Vae, out_dir: &Path) -> Result<(PathBuf, PathBuf), TrainError> {
    within_tolerance("the IR graphs", export_discrepancy(model, 16)?)?;
    let paths =
        write_graphs(out_dir, &[("encoder.onnx", encoder_graph(model)?), ("decoder.onnx", decoder_graph(model)?)])?;
    Ok((paths[0].clone(), paths[1].clone()))
}
