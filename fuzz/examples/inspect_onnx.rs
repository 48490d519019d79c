//! Prints what the `onnx` target does with one input (a debugging aid for crashes):
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example inspect_onnx -- FILE`.

use ndarray::Array2;
use tinyvae_compiler::{calibrate, onnx, prepare, quantize, Method};

fn main() {
    let path = std::env::args().nth(1).expect("usage: inspect_onnx FILE");
    let bytes = std::fs::read(&path).expect("read");
    let graph = match onnx::import_bytes(&bytes) {
        Ok(g) => g,
        Err(e) => return println!("import error: {e}"),
    };
    println!("role {:?}, inputs {:?}, outputs {:?}", graph.role, graph.inputs, graph.outputs);
    for n in &graph.nodes {
        let stats = |a: &[f32]| {
            let finite = a.iter().all(|v| v.is_finite());
            let max = a.iter().fold(0f32, |m, v| m.max(v.abs()));
            format!("finite {finite}, max |w| {max:e}")
        };
        let w = match &n.op {
            tinyvae_compiler::Op::Dense { weight, bias } => {
                format!("{} / bias {}", stats(weight.as_slice().unwrap_or(&[])), stats(bias.as_slice().unwrap_or(&[])))
            }
            tinyvae_compiler::Op::Conv { weight, bias, .. }
            | tinyvae_compiler::Op::ConvTranspose { weight, bias, .. } => {
                format!("{} / bias {}", stats(weight.as_slice().unwrap_or(&[])), stats(bias.as_slice().unwrap_or(&[])))
            }
            _ => String::new(),
        };
        println!("{} {} {:?} -> {} {w}", n.name, n.op.name(), n.inputs, n.output);
    }
    let prepared = prepare(&graph, true).expect("prepare");
    let inputs: Vec<Array2<f32>> = prepared
        .graph
        .inputs
        .iter()
        .map(|i| Array2::from_shape_fn((4, i.len), |(s, j)| ((s * 31 + j * 17) % 256) as f32 / 255.0))
        .collect();
    let ranges = calibrate(&prepared.graph, &inputs, Method::MinMax).expect("calibrate");
    let mut spans: Vec<_> = ranges.span.iter().collect();
    spans.sort_by(|a, b| a.0.cmp(b.0));
    for (v, s) in spans {
        println!("range {v}: {s:?}");
    }
    for p in [tinyvae::Precision::F32, tinyvae::Precision::Int8] {
        println!("{p}: {:?}", quantize(&prepared, Some(&ranges), p).map(|b| b.len()));
    }
}
