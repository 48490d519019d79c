//! From trained weights to the float IR and ONNX: the decoder graph
//! `z -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean` and the encoder graph
//! `x -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`, checked against the candle
//! forward pass before anything is written.
//!
//! A conditional model (CVAE) takes the one-hot label as its second input, `[z, label]` or
//! `[x, label]`, joined to the first by a `Concat` node: the layout the quantizer and the
//! runtime expect of conditional models. The helpers here ([`dense_op_from`], [`mlp_nodes`],
//! [`check_graph`], [`write_graphs`]) are shared by every family member's export.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::{Array1, Array2};
use tinyvae_compiler::ir::{Graph, Input, Node, Op, Role};

use crate::classifier::mlp::{one_hot, Mlp};
use crate::data::stream;
use crate::data::Stream;
use crate::error::TrainError;
use crate::model::{Dense, Vae};

/// Largest absolute difference tolerated between the IR evaluation and candle.
pub const EXPORT_TOLERANCE: f32 = 1e-5;

/// The IR `Dense` op of an `out x in` weight and its bias.
pub(crate) fn dense_op_from(weight: &Tensor, bias: &Tensor) -> Result<Op, TrainError> {
    let (rows, cols) = (weight.dims()[0], weight.dims()[1]);
    let flat: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let weight = Array2::from_shape_vec((rows, cols), flat).map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(Op::Dense { weight, bias: Array1::from_vec(bias.to_vec1::<f32>()?) })
}

fn dense_op(layer: &Dense) -> Result<Op, TrainError> {
    dense_op_from(layer.weight(), layer.bias())
}

/// A node reading `inputs` and writing `output`.
pub(crate) fn node(name: impl Into<String>, op: Op, inputs: &[&str], output: impl Into<String>) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), output: output.into() }
}

/// For a conditional graph, a `Concat` of `input` and `label` (named `{prefix}_input`);
/// otherwise `input` itself. Returns the value the first layer reads.
pub(crate) fn condition_nodes(prefix: &str, input: &str, conditional: bool, nodes: &mut Vec<Node>) -> String {
    if !conditional {
        return input.to_string();
    }
    let joined = format!("{prefix}_input");
    nodes.push(node(format!("{prefix}_concat"), Op::Concat, &[input, "label"], &joined));
    joined
}

/// `(Dense -> Relu)*` over `layers`, reading `input`; returns the last activation's name.
fn hidden_nodes(prefix: &str, layers: &[Dense], input: &str, nodes: &mut Vec<Node>) -> Result<String, TrainError> {
    let mut cur = input.to_string();
    for (i, l) in layers.iter().enumerate() {
        let (h, a) = (format!("{prefix}_h{i}"), format!("{prefix}_a{i}"));
        nodes.push(node(format!("{prefix}_fc{i}"), dense_op(l)?, &[&cur], &h));
        nodes.push(node(format!("{prefix}_relu{i}"), Op::Relu, &[&h], &a));
        cur = a;
    }
    Ok(cur)
}

/// The nodes of an [`Mlp`] (ReLU between layers, none after the last) reading `input`; the
/// last layer writes `output`.
pub(crate) fn mlp_nodes(
    prefix: &str,
    mlp: &Mlp,
    input: &str,
    output: &str,
    nodes: &mut Vec<Node>,
) -> Result<(), TrainError> {
    let last = mlp.layers().len() - 1;
    let mut cur = input.to_string();
    for (i, l) in mlp.layers().iter().enumerate() {
        let op = dense_op_from(l.weight(), l.bias())?;
        if i == last {
            nodes.push(node(format!("{prefix}_fc{i}"), op, &[&cur], output));
        } else {
            let (h, a) = (format!("{prefix}_h{i}"), format!("{prefix}_a{i}"));
            nodes.push(node(format!("{prefix}_fc{i}"), op, &[&cur], &h));
            nodes.push(node(format!("{prefix}_relu{i}"), Op::Relu, &[&h], &a));
            cur = a;
        }
    }
    Ok(())
}

/// Graph inputs: `first` of `len` features, then `label` when `classes > 0`.
pub(crate) fn graph_inputs(first: &str, len: usize, classes: usize) -> Vec<Input> {
    let mut inputs = vec![Input { name: first.into(), len }];
    if classes > 0 {
        inputs.push(Input { name: "label".into(), len: classes });
    }
    inputs
}

/// Checks a graph's structure (shapes and order), naming the problem.
pub(crate) fn checked(graph: Graph) -> Result<Graph, TrainError> {
    graph.value_lens().map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(graph)
}

/// The decoder as an IR graph: input `z` (latent) and, for a CVAE, `label` (one-hot); output
/// `x_mean` (sigmoid means); role `Decoder { latent, classes, bernoulli }`. A learned-variance
/// decoder exports its mean head only.
pub fn decoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let classes = model.classes();
    let mut nodes = Vec::new();
    let input = condition_nodes("decoder", "z", classes > 0, &mut nodes);
    let top = hidden_nodes("decoder", model.decoder_layers(), &input, &mut nodes)?;
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
    let input = condition_nodes("encoder", "x", classes > 0, &mut nodes);
    let top = hidden_nodes("encoder", model.encoder_layers(), &input, &mut nodes)?;
    nodes.push(node("encoder_mu", dense_op(model.mu_head())?, &[&top], "mu"));
    nodes.push(node("encoder_logvar", dense_op(model.logvar_head())?, &[&top], "logvar"));
    checked(Graph {
        inputs: graph_inputs("x", model.input_len(), classes),
        nodes,
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: model.latent(), classes },
    })
}

/// Random test inputs for a graph check: `samples x len` standard normal (`gaussian`) or
/// uniform [0, 1] values as an array and the same numbers as a tensor.
pub(crate) fn probe(
    rng: &mut tinyvae::Rng,
    samples: usize,
    len: usize,
    gaussian: bool,
) -> Result<(Array2<f32>, Tensor), TrainError> {
    let v: Vec<f32> = (0..samples * len).map(|_| if gaussian { rng.gaussian() } else { rng.uniform() }).collect();
    let arr = Array2::from_shape_vec((samples, len), v.clone()).map_err(|e| TrainError::Export(e.to_string()))?;
    Ok((arr, Tensor::from_vec(v, (samples, len), &Device::Cpu)?))
}

/// Random one-hot labels as an array and a tensor (`None` when `classes` is 0).
pub(crate) fn probe_labels(
    rng: &mut tinyvae::Rng,
    samples: usize,
    classes: usize,
) -> Result<Option<(Array2<f32>, Tensor)>, TrainError> {
    if classes == 0 {
        return Ok(None);
    }
    let labels: Vec<u8> = (0..samples).map(|_| rng.below(classes as u32) as u8).collect();
    let t = one_hot(&labels, classes)?;
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    let arr = Array2::from_shape_vec((samples, classes), v).map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(Some((arr, t)))
}

/// Largest absolute difference between the graph's outputs on `inputs` and `expected` (the
/// candle outputs, same order).
pub(crate) fn check_graph(graph: &Graph, inputs: &[Array2<f32>], expected: &[Tensor]) -> Result<f32, TrainError> {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let got = graph.eval(&views).map_err(|e| TrainError::Export(e.to_string()))?;
    if got.len() != expected.len() {
        return Err(TrainError::Export(format!("IR graph has {} outputs, candle {}", got.len(), expected.len())));
    }
    let mut worst = 0f32;
    for (a, b) in got.iter().zip(expected) {
        let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
        if a.len() != b.len() {
            return Err(TrainError::Export(format!("IR output has {} values, candle {}", a.len(), b.len())));
        }
        worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(worst, f32::max);
    }
    Ok(worst)
}

/// Fails when `worst` (from [`check_graph`]) exceeds [`EXPORT_TOLERANCE`].
pub(crate) fn within_tolerance(worst: f32) -> Result<(), TrainError> {
    if worst.is_nan() || worst > EXPORT_TOLERANCE {
        return Err(TrainError::Export(format!(
            "the IR graphs differ from the candle model by {worst} (tolerance {EXPORT_TOLERANCE})"
        )));
    }
    Ok(())
}

/// Writes each `(file name, graph)` as ONNX into `dir`; returns the paths in order.
pub(crate) fn write_graphs(dir: &Path, graphs: &[(&str, Graph)]) -> Result<Vec<PathBuf>, TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    graphs
        .iter()
        .map(|(name, g)| {
            let path = dir.join(name);
            tinyvae_compiler::onnx::export_file(g, &path)
                .map_err(|e| TrainError::Export(format!("{}: {e}", path.display())))?;
            Ok(path)
        })
        .collect()
}

/// Evaluates both IR graphs on `samples` random inputs (z from N(0, I); x uniform in [0, 1];
/// random one-hot labels for a CVAE) and returns the largest absolute difference to the candle
/// forward pass over all outputs.
pub fn export_discrepancy(model: &Vae, samples: usize) -> Result<f32, TrainError> {
    let mut rng = stream(0xE4_907, Stream::Eval, 1);
    let (z_arr, z) = probe(&mut rng, samples, model.latent(), true)?;
    let labels = probe_labels(&mut rng, samples, model.classes())?;
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
    within_tolerance(export_discrepancy(model, 16)?)?;
    let paths =
        write_graphs(out_dir, &[("encoder.onnx", encoder_graph(model)?), ("decoder.onnx", decoder_graph(model)?)])?;
    Ok((paths[0].clone(), paths[1].clone()))
}
