//! From trained weights to the float IR and ONNX: the decoder graph
//! `z -> (Dense -> Relu)* -> Dense -> Sigmoid -> x_mean` and the encoder graph
//! `x -> (Dense -> Relu)* -> {Dense -> mu, Dense -> logvar}`, checked against the candle
//! forward pass before anything is written.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ndarray::{Array1, Array2};
use tinyvae_compiler::ir::{Graph, Input, Node, Op, Role};

use crate::config::Likelihood;
use crate::data::stream;
use crate::data::Stream;
use crate::error::TrainError;
use crate::model::{Dense, Vae};

/// Largest absolute difference tolerated between the IR evaluation and candle.
pub const EXPORT_TOLERANCE: f32 = 1e-5;

fn dense_op(layer: &Dense) -> Result<Op, TrainError> {
    let w = layer.weight().to_vec2::<f32>()?;
    let (rows, cols) = (layer.outputs(), layer.inputs());
    let flat: Vec<f32> = w.into_iter().flatten().collect();
    let weight = Array2::from_shape_vec((rows, cols), flat).map_err(|e| TrainError::Export(e.to_string()))?;
    let bias = Array1::from_vec(layer.bias().to_vec1::<f32>()?);
    Ok(Op::Dense { weight, bias })
}

fn node(name: impl Into<String>, op: Op, input: &str, output: impl Into<String>) -> Node {
    Node { name: name.into(), op, inputs: vec![input.to_string()], output: output.into() }
}

/// The decoder as an IR graph: input `z` (latent), output `x_mean` (sigmoid means), role
/// `Decoder { latent, classes: 0, bernoulli }`.
pub fn decoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let mut nodes = Vec::new();
    let mut cur = "z".to_string();
    for (i, l) in model.decoder_layers().iter().enumerate() {
        nodes.push(node(format!("decoder_fc{i}"), dense_op(l)?, &cur, format!("decoder_h{i}")));
        nodes.push(node(format!("decoder_relu{i}"), Op::Relu, &format!("decoder_h{i}"), format!("decoder_a{i}")));
        cur = format!("decoder_a{i}");
    }
    nodes.push(node("decoder_out", dense_op(model.decoder_output())?, &cur, "logits"));
    nodes.push(node("decoder_sigmoid", Op::Sigmoid, "logits", "x_mean"));
    let graph = Graph {
        inputs: vec![Input { name: "z".into(), len: model.latent() }],
        nodes,
        outputs: vec!["x_mean".into()],
        role: Role::Decoder {
            latent: model.latent(),
            classes: 0,
            bernoulli: model.config().likelihood == Likelihood::Bernoulli,
        },
    };
    graph.value_lens().map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(graph)
}

/// The encoder as an IR graph: input `x` (pixels), outputs `mu` then `logvar`, role
/// `Encoder { latent, classes: 0 }`.
pub fn encoder_graph(model: &Vae) -> Result<Graph, TrainError> {
    let mut nodes = Vec::new();
    let mut cur = "x".to_string();
    for (i, l) in model.encoder_layers().iter().enumerate() {
        nodes.push(node(format!("encoder_fc{i}"), dense_op(l)?, &cur, format!("encoder_h{i}")));
        nodes.push(node(format!("encoder_relu{i}"), Op::Relu, &format!("encoder_h{i}"), format!("encoder_a{i}")));
        cur = format!("encoder_a{i}");
    }
    nodes.push(node("encoder_mu", dense_op(model.mu_head())?, &cur, "mu"));
    nodes.push(node("encoder_logvar", dense_op(model.logvar_head())?, &cur, "logvar"));
    let graph = Graph {
        inputs: vec![Input { name: "x".into(), len: model.input_len() }],
        nodes,
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: model.latent(), classes: 0 },
    };
    graph.value_lens().map_err(|e| TrainError::Export(e.to_string()))?;
    Ok(graph)
}

fn max_abs_diff(a: &Array2<f32>, b: &Tensor) -> Result<f32, TrainError> {
    let b: Vec<f32> = b.flatten_all()?.to_vec1()?;
    if a.len() != b.len() {
        return Err(TrainError::Export(format!("IR output has {} values, candle {}", a.len(), b.len())));
    }
    Ok(a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max))
}

/// Evaluates both IR graphs on `samples` random inputs (z from N(0, I); x uniform in [0, 1])
/// and returns the largest absolute difference to the candle forward pass over all outputs.
pub fn export_discrepancy(model: &Vae, samples: usize) -> Result<f32, TrainError> {
    let mut rng = stream(0xE4_907, Stream::Eval, 1);
    let graph_err = |e: tinyvae_compiler::ir::GraphError| TrainError::Export(e.to_string());

    let z: Vec<f32> = (0..samples * model.latent()).map(|_| rng.gaussian()).collect();
    let z_arr =
        Array2::from_shape_vec((samples, model.latent()), z.clone()).map_err(|e| TrainError::Export(e.to_string()))?;
    let ir = decoder_graph(model)?.eval(&[z_arr.view()]).map_err(graph_err)?;
    let candle = model.decode(&Tensor::from_vec(z, (samples, model.latent()), &Device::Cpu)?)?;
    let mut worst = max_abs_diff(&ir[0], &candle)?;

    let x: Vec<f32> = (0..samples * model.input_len()).map(|_| rng.uniform()).collect();
    let x_arr = Array2::from_shape_vec((samples, model.input_len()), x.clone())
        .map_err(|e| TrainError::Export(e.to_string()))?;
    let ir = encoder_graph(model)?.eval(&[x_arr.view()]).map_err(graph_err)?;
    let (mu, logvar) = model.encode(&Tensor::from_vec(x, (samples, model.input_len()), &Device::Cpu)?)?;
    worst = worst.max(max_abs_diff(&ir[0], &mu)?).max(max_abs_diff(&ir[1], &logvar)?);
    Ok(worst)
}

/// Checks the IR graphs against candle (within [`EXPORT_TOLERANCE`]) and writes
/// `out_dir/encoder.onnx` and `out_dir/decoder.onnx`; returns their paths.
pub fn export_onnx(model: &Vae, out_dir: &Path) -> Result<(PathBuf, PathBuf), TrainError> {
    let worst = export_discrepancy(model, 16)?;
    if worst.is_nan() || worst > EXPORT_TOLERANCE {
        return Err(TrainError::Export(format!(
            "the IR graphs differ from the candle model by {worst} (tolerance {EXPORT_TOLERANCE})"
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| TrainError::io(out_dir, e))?;
    let enc = out_dir.join("encoder.onnx");
    let dec = out_dir.join("decoder.onnx");
    tinyvae_compiler::onnx::export_file(&encoder_graph(model)?, &enc)
        .map_err(|e| TrainError::Export(format!("{}: {e}", enc.display())))?;
    tinyvae_compiler::onnx::export_file(&decoder_graph(model)?, &dec)
        .map_err(|e| TrainError::Export(format!("{}: {e}", dec.display())))?;
    Ok((enc, dec))
}
