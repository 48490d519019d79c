//! onnxruntime as an independent judge: tinyvae's exports must compute in onnxruntime what
//! `Graph::eval` computes, and the PyTorch-shaped test models must mean in onnxruntime what
//! tinyvae imports them as (which also checks that those hand-built models are valid ONNX).
//!
//! Runs `tests/python/check_onnxruntime.py`. Without onnxruntime the test is skipped with a
//! message, unless `TINYVAE_REQUIRE_ORT=1` (set in CI), where that is a failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use ndarray::{Array2, ArrayView2};
use prost::Message;
use tinyvae_compiler::{export, import_bytes, Graph};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/check_onnxruntime.py")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// True if onnxruntime can be imported; panics when it cannot and CI requires it.
fn onnxruntime_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        if std::env::var("TINYVAE_REQUIRE_ORT").is_ok_and(|v| v == "1") {
            panic!("TINYVAE_REQUIRE_ORT=1 but `{} -c \"import onnxruntime\"` fails; pip install onnxruntime", python());
        }
        println!(
            "skipped: onnxruntime not installed (pip install onnxruntime; TINYVAE_REQUIRE_ORT=1 makes this a failure)"
        );
    }
    ok
}

fn write_f32(path: &Path, a: &Array2<f32>) {
    let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &Path, rows: usize, cols: usize) -> Array2<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Array2::from_shape_vec((rows, cols), v).unwrap()
}

/// Runs `model_bytes` in onnxruntime on `inputs` and returns its outputs as `batch x features`.
fn run_onnxruntime(name: &str, model_bytes: &[u8], inputs: &[Array2<f32>]) -> Vec<Array2<f32>> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnxruntime").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("model.onnx");
    std::fs::write(&model, model_bytes).unwrap();
    let mut cmd = Command::new(python());
    cmd.arg(script()).arg(&model).arg(dir.join("out"));
    for (k, x) in inputs.iter().enumerate() {
        let p = dir.join(format!("in{k}.f32"));
        write_f32(&p, x);
        cmd.arg(format!("{}:{}x{}", p.display(), x.nrows(), x.ncols()));
    }
    let out = cmd.output().expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{name}: onnxruntime failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (rows, cols) = (f[2].parse().unwrap(), f[3].parse().unwrap());
            read_f32(&dir.join("out").join(format!("{}.f32", f[0])), rows, cols)
        })
        .collect()
}

fn check(name: &str, bytes: &[u8], g: &Graph, rng: &mut Rng) {
    check_within(name, bytes, g, rng, false);
}

/// As [`check`]; with `relative`, the 1e-5 tolerance scales with the largest output magnitude
/// (at least 1): trained classifiers' logits reach tens, where summing in another order moves
/// the last bits by more than 1e-5.
fn check_within(name: &str, bytes: &[u8], g: &Graph, rng: &mut Rng, relative: bool) {
    for batch in [1, 64] {
        let x = inputs_for(g, batch, rng);
        let views: Vec<ArrayView2<f32>> = x.iter().map(|a| a.view()).collect();
        let want = g.eval(&views).unwrap();
        let got = run_onnxruntime(&format!("{name}_b{batch}"), bytes, &x);
        let scale = if relative { want.iter().flat_map(|a| a.iter()).fold(1f32, |m, v| m.max(v.abs())) } else { 1.0 };
        assert_close(&format!("onnxruntime {name} batch {batch}"), &got, &want, 1e-5 * scale);
    }
}

#[test]
fn onnxruntime_agrees_with_eval() {
    if !onnxruntime_available() {
        return;
    }
    let mut rng = Rng(100);
    for (name, g) in [
        ("decoder", mlp_decoder(&mut rng)),
        ("encoder", mlp_encoder(&mut rng)),
        ("conditional_decoder", conditional_decoder(&mut rng)),
    ] {
        check(name, &export(&g).unwrap(), &g, &mut rng);
    }
    for (name, m) in [
        ("torch_gemm_decoder", torch_gemm_decoder(&mut rng)),
        ("torch_matmul_decoder", torch_matmul_decoder(&mut rng)),
        ("torch_flatten_encoder", torch_flatten_encoder(&mut rng)),
        ("torch_idioms_encoder", torch_idioms_encoder(&mut rng)),
        ("torch_image_decoder", torch_image_decoder(&mut rng)),
        ("dynamo_style_encoder", dynamo_style_encoder(&mut rng)),
    ] {
        let bytes = m.encode_to_vec();
        let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        check(name, &bytes, &g, &mut rng);
    }
    // Shipped exports of every kind the trainer writes, M2's q(y|x) classifier among them.
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    for file in ["mnist-m2/classifier.onnx", "mnist-m2/encoder.onnx"] {
        let bytes = std::fs::read(models.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        check_within(&file.replace(['/', '.'], "_"), &bytes, &g, &mut rng, true);
    }
}
