//! From trained layers to the compiler's float IR, and from there to ONNX: the node-building
//! helpers every member's export uses, the check of a graph against the candle forward pass on
//! random inputs, and the ONNX writer.
//!
//! Graphs follow one naming scheme (`{prefix}_fc{i}` writing `{prefix}_h{i}`, `{prefix}_relu{i}`
//! writing `{prefix}_a{i}`), and a conditional graph takes the one-hot label as its second
//! input, `label`, joined to the first by a `Concat` node: the layout the quantizer and the
//! runtime expect of conditional models. Nothing is written before the graphs agree with
//! candle within [`EXPORT_TOLERANCE`].

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::{Array1, Array2, Array4};
use tinyvae_compiler::ir::{ConvGeometry, Graph, Input, Node, Op, Role};

use crate::error::TrainError;
use crate::io::{create_dir, write_bytes};
use crate::nn::{one_hot, Conv2d, ConvTranspose2d, Dense, Mlp};

/// Largest absolute difference tolerated between the IR evaluation and candle.
pub const EXPORT_TOLERANCE: f32 = 1e-5;

/// The IR `Dense` op of an `out x in` weight and its bias.
pub(crate) fn dense_op_from(weight: &Tensor, bias: &Tensor) -> Result<Op, TrainError> {
    let (rows, cols) = (weight.dims()[0], weight.dims()[1]);
    let flat: Vec<f32> = weight.flatten_all()?.to_vec1()?;
    let weight = Array2::from_shape_vec((rows, cols), flat)?;
    Ok(Op::Dense { weight, bias: Array1::from_vec(bias.to_vec1::<f32>()?) })
}

/// The IR `Dense` op of a layer.
pub(crate) fn dense_op(layer: &Dense) -> Result<Op, TrainError> {
    dense_op_from(layer.weight(), layer.bias())
}

/// A 4-D weight as an array.
fn array4(weight: &Tensor) -> Result<Array4<f32>, TrainError> {
    let (a, b, c, d) = weight.dims4()?;
    Ok(Array4::from_shape_vec((a, b, c, d), weight.flatten_all()?.to_vec1()?)?)
}

/// The IR `Conv` op of a convolution (it reads its stated `[C, H, W]`).
pub(crate) fn conv_op(layer: &Conv2d) -> Result<Op, TrainError> {
    let s = layer.shape();
    Ok(Op::Conv {
        weight: array4(layer.weight())?,
        bias: Array1::from_vec(layer.bias().to_vec1::<f32>()?),
        input: layer.input(),
        geometry: ConvGeometry { stride: [s.stride; 2], pads: [s.padding; 4], ..ConvGeometry::PLAIN },
    })
}

/// The IR `ConvTranspose` op of a transposed convolution.
pub(crate) fn conv_transpose_op(layer: &ConvTranspose2d) -> Result<Op, TrainError> {
    let s = layer.shape();
    Ok(Op::ConvTranspose {
        weight: array4(layer.weight())?,
        bias: Array1::from_vec(layer.bias().to_vec1::<f32>()?),
        input: layer.input(),
        stride: [s.stride; 2],
        pads: [s.padding; 4],
        output_padding: [0; 2],
    })
}

/// A node reading `inputs` and writing `output`.
pub(crate) fn node(name: impl Into<String>, op: Op, inputs: &[&str], output: impl Into<String>) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), output: output.into() }
}

/// For a conditional graph, a `Concat` of `input` and `label` (written to `joined`); otherwise
/// `input` itself. Returns the value the first layer reads.
pub(crate) fn condition_nodes(
    prefix: &str,
    input: &str,
    joined: String,
    conditional: bool,
    nodes: &mut Vec<Node>,
) -> String {
    if !conditional {
        return input.to_string();
    }
    nodes.push(node(format!("{prefix}_concat"), Op::Concat, &[input, "label"], &joined));
    joined
}

/// `(Dense -> Relu)*` over `ops`, reading `input`; returns the last activation's name.
pub(crate) fn hidden_nodes(
    prefix: &str,
    ops: impl IntoIterator<Item = Result<Op, TrainError>>,
    input: &str,
    nodes: &mut Vec<Node>,
) -> Result<String, TrainError> {
    let mut cur = input.to_string();
    for (i, op) in ops.into_iter().enumerate() {
        let (h, a) = (format!("{prefix}_h{i}"), format!("{prefix}_a{i}"));
        nodes.push(node(format!("{prefix}_fc{i}"), op?, &[&cur], &h));
        nodes.push(node(format!("{prefix}_relu{i}"), Op::Relu, &[&h], &a));
        cur = a;
    }
    Ok(cur)
}

/// `(op -> Relu)*` over named layers (convolutions): the layer `a.b` is node `a_b` writing
/// `a_b_out`, then `a_b_relu` writing `a_b_act`. Reads `input`; returns the last activation's
/// name.
pub(crate) fn relu_chain(
    layers: impl IntoIterator<Item = Result<(String, Op), TrainError>>,
    input: &str,
    nodes: &mut Vec<Node>,
) -> Result<String, TrainError> {
    let mut cur = input.to_string();
    for layer in layers {
        let (name, op) = layer?;
        let name = name.replace('.', "_");
        let (out, act) = (format!("{name}_out"), format!("{name}_act"));
        nodes.push(node(&name, op, &[&cur], &out));
        nodes.push(node(format!("{name}_relu"), Op::Relu, &[&out], &act));
        cur = act;
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
    let (last, hidden) = mlp.layers().split_last().expect("an MLP has at least one layer");
    let top = hidden_nodes(prefix, hidden.iter().map(dense_op), input, nodes)?;
    nodes.push(node(format!("{prefix}_fc{}", hidden.len()), dense_op(last)?, &[&top], output));
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

/// What a graph is, for error messages.
fn role_name(role: &Role) -> &'static str {
    match role {
        Role::Encoder { .. } => "encoder",
        Role::Decoder { .. } => "decoder",
        Role::Autoencoder => "autoencoder",
        Role::Classifier { .. } => "classifier",
        Role::Generic => "generic",
    }
}

/// Checks a graph's structure (shapes and order), naming the problem.
pub(crate) fn checked(graph: Graph) -> Result<Graph, TrainError> {
    graph.value_lens().map_err(|source| TrainError::Graph { graph: role_name(&graph.role), source })?;
    Ok(graph)
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
    let arr = Array2::from_shape_vec((samples, len), v.clone())?;
    Ok((arr, Tensor::from_vec(v, (samples, len), &Device::Cpu)?))
}

/// One-hot `labels` as an array and a tensor.
pub(crate) fn one_hot_probe(labels: &[u8], classes: usize) -> Result<(Array2<f32>, Tensor), TrainError> {
    let t = one_hot(labels, classes)?;
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Ok((Array2::from_shape_vec((labels.len(), classes), v)?, t))
}

/// Largest absolute difference between the graph's outputs on `inputs` and `expected` (the
/// candle outputs, same order).
pub(crate) fn check_graph(graph: &Graph, inputs: &[Array2<f32>], expected: &[Tensor]) -> Result<f32, TrainError> {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let got = graph.eval(&views).map_err(|source| TrainError::Graph { graph: role_name(&graph.role), source })?;
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

/// Fails when `worst` (from [`check_graph`]) exceeds [`EXPORT_TOLERANCE`]; `what` names the
/// graphs compared.
pub(crate) fn within_tolerance(what: &str, worst: f32) -> Result<(), TrainError> {
    if worst.is_nan() || worst > EXPORT_TOLERANCE {
        return Err(TrainError::Export(format!(
            "{what} and the candle model differ by {worst} (tolerance {EXPORT_TOLERANCE})"
        )));
    }
    Ok(())
}

/// Writes each `(file name, graph)` as ONNX into `dir`; returns the paths in order.
pub(crate) fn write_graphs(dir: &Path, graphs: &[(&str, Graph)]) -> Result<Vec<PathBuf>, TrainError> {
    create_dir(dir)?;
    graphs
        .iter()
        .map(|(name, g)| {
            let path = dir.join(name);
            let bytes =
                tinyvae_compiler::onnx::export(g).map_err(|source| TrainError::Onnx { path: path.clone(), source })?;
            write_bytes(&path, &bytes)?;
            Ok(path)
        })
        .collect()
}
