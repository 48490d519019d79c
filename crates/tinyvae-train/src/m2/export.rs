//! M2's generative half as conditional IR graphs and ONNX, in the layout the quantizer and
//! the runtime expect of conditional models: the one-hot label is the SECOND input and joins
//! the first through a `Concat` node.
//!
//! * decoder p(x|y,z): `[z, label] -> Concat -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean`,
//!   role `Decoder { latent, classes, bernoulli: true }`;
//! * encoder q(z|x,y): `[x, label] -> Concat -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`,
//!   role `Encoder { latent, classes }`.
//!
//! Both are checked against the candle forward pass (within [`EXPORT_TOLERANCE`]) before
//! anything is written.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::{Array1, Array2};
use tinyvae_compiler::ir::{Graph, Input, Node, Op, Role};

pub use crate::export::EXPORT_TOLERANCE;

use super::model::{LabelledStack, M2};
use crate::classifier::mlp::one_hot;
use crate::data::{stream, Stream};
use crate::error::TrainError;
use crate::model::Dense;

fn dense(weight: &Tensor, bias: &Tensor) -> Result<Op, TrainError> {
    let (rows, cols) = (weight.dims()[0], weight.dims()[1]);
    let flat: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let weight = Array2::from_shape_vec((rows, cols), flat).map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(Op::Dense { weight, bias: Array1::from_vec(bias.to_vec1::<f32>()?) })
}

fn linear(l: &Dense) -> Result<Op, TrainError> {
    dense(l.weight(), l.bias())
}

fn node(name: impl Into<String>, op: Op, inputs: &[&str], output: impl Into<String>) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), output: output.into() }
}

/// Nodes of a labelled stack reading `input` and `label`; returns the last activation's name.
fn stack_nodes(prefix: &str, stack: &LabelledStack, input: &str, nodes: &mut Vec<Node>) -> Result<String, TrainError> {
    let joined = format!("{prefix}_input_label");
    nodes.push(node(format!("{prefix}_concat"), Op::Concat, &[input, "label"], &joined));
    let first = dense(&stack.first_weight_over_concat()?, stack.first.bias())?;
    let layers = std::iter::once(Ok(first)).chain(stack.rest.iter().map(linear));
    let mut current = joined;
    for (i, op) in layers.enumerate() {
        let (h, a) = (format!("{prefix}_h{i}"), format!("{prefix}_a{i}"));
        nodes.push(node(format!("{prefix}_fc{i}"), op?, &[&current], &h));
        nodes.push(node(format!("{prefix}_relu{i}"), Op::Relu, &[&h], &a));
        current = a;
    }
    Ok(current)
}

fn checked(graph: Graph) -> Result<Graph, TrainError> {
    graph.value_lens().map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(graph)
}

/// p(x|y,z) as a conditional decoder graph: inputs `z` and `label` (one-hot), output `x_mean`.
pub fn decoder_graph(model: &M2) -> Result<Graph, TrainError> {
    let s = model.shape();
    let mut nodes = Vec::new();
    let top = stack_nodes("decoder", model.decoder_stack(), "z", &mut nodes)?;
    nodes.push(node("decoder_out", linear(model.decoder_output())?, &[&top], "logits"));
    nodes.push(node("decoder_sigmoid", Op::Sigmoid, &["logits"], "x_mean"));
    checked(Graph {
        inputs: vec![Input { name: "z".into(), len: s.latent }, Input { name: "label".into(), len: s.classes }],
        nodes,
        outputs: vec!["x_mean".into()],
        role: Role::Decoder { latent: s.latent, classes: s.classes, bernoulli: true },
    })
}

/// q(z|x,y) as a conditional encoder graph: inputs `x` and `label` (one-hot), outputs `mu`
/// then `logvar`.
pub fn encoder_graph(model: &M2) -> Result<Graph, TrainError> {
    let s = model.shape();
    let mut nodes = Vec::new();
    let top = stack_nodes("encoder", model.encoder_stack(), "x", &mut nodes)?;
    nodes.push(node("encoder_mu", linear(model.mu_head())?, &[&top], "mu"));
    nodes.push(node("encoder_logvar", linear(model.logvar_head())?, &[&top], "logvar"));
    checked(Graph {
        inputs: vec![Input { name: "x".into(), len: s.input_len }, Input { name: "label".into(), len: s.classes }],
        nodes,
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: s.latent, classes: s.classes },
    })
}

fn max_abs_diff(a: &Array2<f32>, b: &Tensor) -> Result<f32, TrainError> {
    let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
    if a.len() != b.len() {
        return Err(TrainError::Export(format!("IR output has {} values, candle {}", a.len(), b.len())));
    }
    Ok(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max))
}

fn array(values: Vec<f32>, rows: usize, cols: usize) -> Result<Array2<f32>, TrainError> {
    Array2::from_shape_vec((rows, cols), values).map_err(|e| TrainError::Export(e.to_string()))
}

/// Largest absolute difference between `graph` (an M2 decoder or encoder graph, e.g. as
/// re-imported from ONNX) and the candle model, on `samples` random inputs per class cycle
/// (z ~ N(0, I) or x uniform in [0, 1], labels cycling through the classes).
pub fn graph_discrepancy(model: &M2, graph: &Graph, samples: usize) -> Result<f32, TrainError> {
    let s = model.shape();
    let mut rng = stream(0xE4_907, Stream::Eval, 2);
    let labels: Vec<u8> = (0..samples).map(|i| (i % s.classes) as u8).collect();
    let y = one_hot(&labels, s.classes)?;
    let y_arr = array(y.flatten_all()?.to_vec1()?, samples, s.classes)?;
    let graph_err = |e: tinyvae_compiler::ir::GraphError| TrainError::Export(e.to_string());
    match graph.role {
        Role::Decoder { .. } => {
            let z: Vec<f32> = (0..samples * s.latent).map(|_| rng.gaussian()).collect();
            let ir = graph.eval(&[array(z.clone(), samples, s.latent)?.view(), y_arr.view()]).map_err(graph_err)?;
            let candle = model.decode(&Tensor::from_vec(z, (samples, s.latent), &Device::Cpu)?, &y)?;
            max_abs_diff(&ir[0], &candle)
        }
        Role::Encoder { .. } => {
            let x: Vec<f32> = (0..samples * s.input_len).map(|_| rng.uniform()).collect();
            let ir = graph.eval(&[array(x.clone(), samples, s.input_len)?.view(), y_arr.view()]).map_err(graph_err)?;
            let (mu, logvar) = model.encode(&Tensor::from_vec(x, (samples, s.input_len), &Device::Cpu)?, &y)?;
            Ok(max_abs_diff(&ir[0], &mu)?.max(max_abs_diff(&ir[1], &logvar)?))
        }
        Role::Generic => Err(TrainError::Export("graph has no decoder or encoder role".into())),
    }
}

/// Checks both graphs against candle and writes `out_dir/encoder.onnx` (q(z|x,y)) and
/// `out_dir/decoder.onnx` (p(x|y,z)); returns their paths.
pub fn export_onnx(model: &M2, out_dir: &Path) -> Result<(PathBuf, PathBuf), TrainError> {
    let encoder = encoder_graph(model)?;
    let decoder = decoder_graph(model)?;
    for (what, g) in [("encoder", &encoder), ("decoder", &decoder)] {
        let worst = graph_discrepancy(model, g, 2 * model.shape().classes)?;
        if worst.is_nan() || worst > EXPORT_TOLERANCE {
            return Err(TrainError::Export(format!(
                "the M2 {what} graph differs from the candle model by {worst} (tolerance {EXPORT_TOLERANCE})"
            )));
        }
    }
    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
    let enc = out_dir.join("encoder.onnx");
    let dec = out_dir.join("decoder.onnx");
    for (g, path) in [(&encoder, &enc), (&decoder, &dec)] {
        tinyvae_compiler::onnx::export_file(g, path)
            .map_err(|e| TrainError::Export(format!("{}: {e}", path.display())))?;
    }
    Ok((enc, dec))
}
