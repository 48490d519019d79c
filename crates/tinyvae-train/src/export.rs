//! The VAE's networks as float IR graphs and ONNX files: the decoder graph
//! `z -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean` and the encoder graph
//! `x -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`, checked against the candle
//! forward pass before anything is written.
//!
//! The conv architecture adds the IR's spatial ops: the encoder is
//! `x -> (Conv -> Relu)* -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`, its first Conv
//! reading the 784 values of `x` as `[1, 28, 28]` and the first Dense the last Conv's output as
//! its flat NCHW vector; the decoder is
//! `z -> (Dense -> Relu)+ -> (ConvTranspose -> Relu)* -> ConvTranspose -> Sigmoid -> x_mean`,
//! the first ConvTranspose reading the last Dense output as `[C, h, w]` (no reshape node: the
//! ONNX writer adds the `Reshape` and `Flatten` that ONNX needs).
//!
//! A conditional model (CVAE) takes the one-hot label as its second input, `[z, label]` or
//! `[x, label]`, joined to the first by a `Concat` node (for the conv encoder, to the
//! flattened convolution features). The node-building and checking
//! helpers shared with the other members are in `graph`.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tinyvae_compiler::ir::{Graph, Op, Role};

use crate::data::{stream, Stream};
use crate::error::TrainError;
use crate::graph::{
    check_graph, checked, condition_nodes, conv_op, conv_transpose_op, dense_op, graph_inputs, hidden_nodes, node,
    one_hot_probe, probe, relu_chain, within_tolerance, write_graphs,
};
use crate::model::{OutputLayer, Vae};

pub use crate::graph::EXPORT_TOLERANCE;

/// The decoder as an IR graph: input `z` (latent) and, for a CVAE, `label` (one-hot); output
/// `x_mean` (sigmoid means; for the conv architecture an image `[1, H, W]`, which the ONNX
/// file declares as `[N, 1, H, W]`); role `Decoder { latent, classes, bernoulli }`. A
/// learned-variance decoder exports its mean head only.
pub fn decoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let classes = model.classes();
    let mut nodes = Vec::new();
    let input = condition_nodes("decoder", "z", "decoder_input".into(), classes > 0, &mut nodes);
    let top = hidden_nodes("decoder", model.decoder_layers().iter().map(dense_op), &input, &mut nodes)?;
    let convs = model.decoder_convs().iter().map(|l| Ok((l.name().to_string(), conv_transpose_op(l)?)));
    let top = relu_chain(convs, &top, &mut nodes)?;
    let out = match model.decoder_output() {
        OutputLayer::Dense(l) => dense_op(l)?,
        OutputLayer::ConvTranspose(l) => conv_transpose_op(l)?,
    };
    nodes.push(node("decoder_out", out, &[&top], "logits"));
    nodes.push(node("decoder_sigmoid", Op::Sigmoid, &["logits"], "x_mean"));
    checked(Graph {
        inputs: graph_inputs("z", model.latent(), classes),
        nodes,
        outputs: vec!["x_mean".into()],
        role: Role::Decoder { latent: model.latent(), classes, bernoulli: !model.config().likelihood.is_gaussian() },
    })
}

/// The encoder as an IR graph: input `x` (pixels, a flat vector also for the conv
/// architecture, whose first Conv reads it as `[1, H, W]`) and, for a CVAE, `label`; outputs
/// `mu` then `logvar`; role `Encoder { latent, classes }`.
pub fn encoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let classes = model.classes();
    let mut nodes = Vec::new();
    let convs = model.encoder_convs().iter().map(|l| Ok((l.name().to_string(), conv_op(l)?)));
    let features = relu_chain(convs, "x", &mut nodes)?;
    let input = condition_nodes("encoder", &features, "encoder_input".into(), classes > 0, &mut nodes);
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
