//! `tinyvae quantize` on decoders laid out the way `torch.onnx.export` writes them (Gemm with
//! transB=1, and MatMul + Add with a transposed initializer), carrying the shipped z20
//! decoder's trained weights: the user's common case must go through without surgery and
//! validate against tract.

#[path = "../crates/tinyvae-compiler/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use prost::Message;
use tinyvae_compiler::ir::Op;
use tract_onnx::pb;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shipped decoder's (weight out x in, bias) pairs, in order.
fn shipped_layers() -> Vec<(Vec<f32>, Vec<f32>, usize, usize)> {
    let g = tinyvae_compiler::onnx::import_file(&repo().join("models/mnist-vae-z20/decoder.onnx"))
        .expect("shipped decoder");
    g.nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Dense { weight, bias } => {
                Some((weight.iter().copied().collect(), bias.to_vec(), weight.nrows(), weight.ncols()))
            }
            _ => None,
        })
        .collect()
}

/// `nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784), nn.Sigmoid())` exported
/// with `dynamic_axes={"z": {0: "batch"}}`.
fn torch_gemm(layers: &[(Vec<f32>, Vec<f32>, usize, usize)]) -> pb::ModelProto {
    let (w1, b1, o1, i1) = &layers[0];
    let (w2, b2, o2, i2) = &layers[1];
    torch_model(pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("Gemm", "/fc1/Gemm", &["z", "fc1.weight", "fc1.bias"], &["/fc1/Gemm_output_0"], torch_gemm_attrs()),
            pnode("Relu", "/relu/Relu", &["/fc1/Gemm_output_0"], &["/relu/Relu_output_0"], vec![]),
            pnode(
                "Gemm",
                "/fc2/Gemm",
                &["/relu/Relu_output_0", "onnx::Gemm_12", "fc2.bias"],
                &["/fc2/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode("Sigmoid", "/sigmoid/Sigmoid", &["/fc2/Gemm_output_0"], &["output"], vec![]),
        ],
        initializer: vec![
            init_f32("fc1.weight", &[*o1, *i1], w1),
            init_f32("fc1.bias", &[*o1], b1),
            init_f32("onnx::Gemm_12", &[*o2, *i2], w2),
            init_f32("fc2.bias", &[*o2], b2),
        ],
        input: vec![value_info("z", vec![dim_param("batch"), dim_value(*i1 as i64)])],
        output: vec![value_info("output", vec![dim_param("batch"), dim_value(*o2 as i64)])],
        ..Default::default()
    })
}

/// The same network as older exporters (or non-2-D inputs) write it: MatMul by the transposed
/// weight, then Add of the bias.
fn torch_matmul(layers: &[(Vec<f32>, Vec<f32>, usize, usize)]) -> pb::ModelProto {
    let (w1, b1, o1, i1) = &layers[0];
    let (w2, b2, o2, i2) = &layers[1];
    torch_model(pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("MatMul", "/0/MatMul", &["input.1", "onnx::MatMul_15"], &["/0/MatMul_output_0"], vec![]),
            pnode("Add", "/0/Add", &["0.bias", "/0/MatMul_output_0"], &["/0/Add_output_0"], vec![]),
            pnode("Relu", "/1/Relu", &["/0/Add_output_0"], &["/1/Relu_output_0"], vec![]),
            pnode("MatMul", "/2/MatMul", &["/1/Relu_output_0", "onnx::MatMul_16"], &["/2/MatMul_output_0"], vec![]),
            pnode("Add", "/2/Add", &["/2/MatMul_output_0", "2.bias"], &["/2/Add_output_0"], vec![]),
            pnode("Sigmoid", "/3/Sigmoid", &["/2/Add_output_0"], &["19"], vec![]),
        ],
        initializer: vec![
            init_f32("onnx::MatMul_15", &[*i1, *o1], &transposed(w1, *o1, *i1)),
            init_f32("0.bias", &[*o1], b1),
            init_f32("onnx::MatMul_16", &[*i2, *o2], &transposed(w2, *o2, *i2)),
            init_f32("2.bias", &[*o2], b2),
        ],
        input: vec![value_info("input.1", vec![dim_param("batch"), dim_value(*i1 as i64)])],
        output: vec![value_info("19", vec![dim_param("batch"), dim_value(*o2 as i64)])],
        ..Default::default()
    })
}

fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tinyvae")).args(args).output().expect("run tinyvae");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tinyvae {args:?} failed:\n{text}");
    text
}

#[test]
fn torch_exported_decoders_quantize_and_validate() {
    let layers = shipped_layers();
    assert_eq!(layers.len(), 2, "the shipped z20 decoder is 20-400-784");
    let dir = std::env::temp_dir().join(format!("tinyvae-torch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, model) in [("gemm", torch_gemm(&layers)), ("matmul", torch_matmul(&layers))] {
        let onnx = dir.join(format!("decoder-{name}.onnx"));
        std::fs::write(&onnx, model.encode_to_vec()).unwrap();
        let (b8, b16) = (dir.join(format!("{name}.int8.tvae")), dir.join(format!("{name}.f16.tvae")));
        let o = |p: &Path| p.to_str().unwrap().to_string();
        // No metadata in a torch export: the role comes from the graph's shape.
        let report = run(&["quantize", &o(&onnx), "--precision", "int8", "-o", &o(&b8)]);
        assert!(report.contains("int8 decoder"), "{report}");
        run(&["quantize", &o(&onnx), "--precision", "f16", "-o", &o(&b16)]);
        let v = run(&["validate", &o(&onnx), &o(&b8), "--min-psnr", "40", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&v).unwrap();
        assert_eq!(v["pass"], true, "{name}: {v}");
        run(&["validate", &o(&onnx), &o(&b16), "--max-abs", "2e-3"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
