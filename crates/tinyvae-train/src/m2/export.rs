//! M2's generative half as conditional IR graphs and ONNX, in the layout the quantizer and
//! the runtime expect of conditional models: the one-hot label is the SECOND input and joins
//! the first through a `Concat` node.
//!
//! * decoder p(x|y,z): `[z, label] -> Concat -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean`,
//!   role `Decoder { latent, classes, bernoulli: true }`;
//! * encoder q(z|x,y): `[x, label] -> Concat -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`,
//!   role `Encoder { latent, classes }`;
//! * classifier q(y|x): `x -> [Dense -> Relu] -> (Dense -> Relu)* -> Dense -> class_logits`,
//!   role `Classifier { classes }` (the bracketed layer is the encoder's first over the image
//!   alone, with `shared_trunk`): the deployable half of a semi-supervised model.
//!
//! Both are checked against the candle forward pass (within [`EXPORT_TOLERANCE`]) before
//! anything is written.

use std::path::{Path, PathBuf};

use tinyvae_compiler::ir::{Graph, Node, Op, Role};

use super::model::{LabelledStack, M2Likelihood, M2};
use crate::data::{stream, Stream};
use crate::error::TrainError;
use crate::graph::{
    check_graph, checked, condition_nodes, dense_op, dense_op_from, graph_inputs, hidden_nodes, mlp_nodes, node,
    one_hot_probe, probe, within_tolerance, write_graphs,
};

pub use crate::graph::EXPORT_TOLERANCE;

/// Nodes of a labelled stack reading `input` and `label`; returns the last activation's name.
fn stack_nodes(prefix: &str, stack: &LabelledStack, input: &str, nodes: &mut Vec<Node>) -> Result<String, TrainError> {
    let joined = condition_nodes(prefix, input, format!("{prefix}_input_label"), true, nodes);
    let first = dense_op_from(&stack.first_weight_over_concat()?, stack.first.bias());
    hidden_nodes(prefix, std::iter::once(first).chain(stack.rest.iter().map(dense_op)), &joined, nodes)
}

/// p(x|y,z) as a conditional decoder graph: inputs `z` and `label` (one-hot), output `x_mean`.
pub fn decoder_graph(model: &M2) -> Result<Graph, TrainError> {
    let s = model.shape();
    let mut nodes = Vec::new();
    let top = stack_nodes("decoder", model.decoder_stack(), "z", &mut nodes)?;
    nodes.push(node("decoder_out", dense_op(model.decoder_output())?, &[&top], "logits"));
    let bernoulli = s.likelihood == M2Likelihood::Bernoulli;
    if bernoulli {
        nodes.push(node("decoder_sigmoid", Op::Sigmoid, &["logits"], "x_mean"));
    }
    checked(Graph {
        inputs: graph_inputs("z", s.latent, s.classes),
        nodes,
        outputs: vec![if bernoulli { "x_mean" } else { "logits" }.into()],
        role: Role::Decoder { latent: s.latent, classes: s.classes, bernoulli },
    })
}

/// q(z|x,y) as a conditional encoder graph: inputs `x` and `label` (one-hot), outputs `mu`
/// then `logvar`.
pub fn encoder_graph(model: &M2) -> Result<Graph, TrainError> {
    let s = model.shape();
    let mut nodes = Vec::new();
    let top = stack_nodes("encoder", model.encoder_stack(), "x", &mut nodes)?;
    nodes.push(node("encoder_mu", dense_op(model.mu_head())?, &[&top], "mu"));
    nodes.push(node("encoder_logvar", dense_op(model.logvar_head())?, &[&top], "logvar"));
    checked(Graph {
        inputs: graph_inputs("x", s.input_len, s.classes),
        nodes,
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: s.latent, classes: s.classes },
    })
}

/// q(y|x) as a classifier graph: input `x`, output `class_logits` (softmax gives q(y|x)).
pub fn classifier_graph(model: &M2) -> Result<Graph, TrainError> {
    let s = model.shape();
    let mut nodes = Vec::new();
    let input = if s.shared_trunk {
        hidden_nodes("trunk", std::iter::once(dense_op(&model.encoder_stack().first)), "x", &mut nodes)?
    } else {
        "x".to_string()
    };
    mlp_nodes("classifier", model.classifier(), &input, "class_logits", &mut nodes)?;
    checked(Graph {
        inputs: graph_inputs("x", s.input_len, 0),
        nodes,
        outputs: vec!["class_logits".into()],
        role: Role::Classifier { classes: s.classes },
    })
}

/// Largest absolute difference between `graph` (an M2 decoder, encoder or classifier graph,
/// e.g. as re-imported from ONNX; for the classifier, relative to its largest logit) and the
/// candle model, on `samples` random inputs per class cycle
/// (z ~ N(0, I) or x uniform in [0, 1], labels cycling through the classes).
pub fn graph_discrepancy(model: &M2, graph: &Graph, samples: usize) -> Result<f32, TrainError> {
    let s = model.shape();
    let mut rng = stream(0xE4_907, Stream::Eval, 2);
    let labels: Vec<u8> = (0..samples).map(|i| (i % s.classes) as u8).collect();
    let (y_arr, y) = one_hot_probe(&labels, s.classes)?;
    match graph.role {
        Role::Decoder { .. } => {
            let (z_arr, z) = probe(&mut rng, samples, s.latent, true)?;
            check_graph(graph, &[z_arr, y_arr], &[model.decode(&z, &y)?])
        }
        Role::Encoder { .. } => {
            let (x_arr, x) = probe(&mut rng, samples, s.input_len, false)?;
            let (mu, logvar) = model.encode(&x, &y)?;
            check_graph(graph, &[x_arr, y_arr], &[mu, logvar])
        }
        Role::Classifier { .. } => {
            // Logits reach tens, where f32 sums in another order differ by more than the
            // absolute tolerance: the difference counts relative to the largest logit (at
            // least 1).
            let (x_arr, x) = probe(&mut rng, samples, s.input_len, false)?;
            let logits = model.class_logits(&x, None)?;
            let largest = logits.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            Ok(check_graph(graph, &[x_arr], &[logits])? / largest)
        }
        Role::Autoencoder | Role::Generic => {
            Err(TrainError::Export("graph has no decoder, encoder or classifier role".into()))
        }
    }
}

/// Checks the three graphs against candle and writes `out_dir/encoder.onnx` (q(z|x,y)),
/// `out_dir/decoder.onnx` (p(x|y,z)) and `out_dir/classifier.onnx` (q(y|x)); returns their
/// paths in that order. With `m1` (M1+M2: M2 learnt from M1's codes), the classifier written
/// is M1's encoder and q(y|x) joined: images in, class logits out.
pub fn export_onnx(model: &M2, out_dir: &Path, m1: Option<&Graph>) -> Result<Vec<PathBuf>, TrainError> {
    let mut graphs = [
        ("encoder.onnx", encoder_graph(model)?),
        ("decoder.onnx", decoder_graph(model)?),
        ("classifier.onnx", classifier_graph(model)?),
    ];
    for (name, g) in &graphs {
        let what = format!("the M2 graph of {name}");
        within_tolerance(&what, graph_discrepancy(model, g, 2 * model.shape().classes)?)?;
    }
    if let Some(m1) = m1 {
        graphs[2].1 = Graph::classifier_of_codes(m1, &graphs[2].1)
            .map_err(|e| TrainError::Export(format!("M1's encoder and q(y|x) do not join: {e}")))?;
    }
    write_graphs(out_dir, &graphs)
}
