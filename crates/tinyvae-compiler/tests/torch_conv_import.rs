//! Conv VAEs written by PyTorch's two real exporters (tests/data/torch-export, made by
//! tests/python/make_torch_fixtures.py): ConvTranspose decoders (kernel 4 and kernel 3 with
//! output_padding), Upsample + Conv + BatchNorm + LeakyReLU/SiLU, a residual Add, and a
//! strided-Conv encoder with two Linear heads. Each imports to an IR that computes what torch
//! computed, and the IR exported back to ONNX computes the same in tract (an independent
//! implementation of every op) and imports back to the same graph.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use tinyvae_compiler::ir::{Graph, Op};
use tinyvae_compiler::onnx::{export, import_bytes, import_file};
use tinyvae_compiler::TractModel;

const MODELS: [&str; 6] =
    ["mlp_decoder", "conv_decoder", "convt_k3_decoder", "upsample_decoder", "residual_decoder", "conv_encoder"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/torch-export")
}

fn rows(v: &serde_json::Value) -> Array2<f32> {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).expect("a list of rows");
    Array2::from_shape_fn((rows.len(), rows[0].len()), |(i, j)| rows[i][j])
}

fn max_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check(what: &str, got: &[Array2<f32>], want: &[Array2<f32>], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: outputs");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let g = g.to_shape(w.dim()).expect("same length").to_owned();
        let d = max_diff(&g, w);
        assert!(d <= tol, "{what}: output {k} differs by {d} (tolerance {tol})");
    }
}

#[test]
fn torch_conv_models_import_as_torch_computes_them() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let (z, x) = (rows(&expected["z"]), rows(&expected["x"]));
    for exporter in ["legacy", "dynamo"] {
        for name in MODELS {
            let what = format!("{exporter}/{name}");
            let path = fixtures().join(format!("{what}.onnx"));
            let g: Graph = import_file(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let input = if name.ends_with("encoder") { &x } else { &z };
            let want: Vec<Array2<f32>> = expected[name].as_array().unwrap().iter().map(rows).collect();
            check(&format!("{what} (IR)"), &g.eval(&[input.view()]).unwrap(), &want, 2e-5);

            // BatchNorm is folded, SiLU recognized, reshapes gone: only computing nodes remain.
            assert!(
                g.nodes.iter().all(|n| !matches!(n.op, Op::Concat)),
                "{what}: {:?}",
                g.nodes.iter().map(|n| n.op.name()).collect::<Vec<_>>()
            );
            if name == "upsample_decoder" {
                assert!(g.nodes.iter().any(|n| n.op == Op::Silu), "{what}: SiLU not recognized");
            }

            // Export: tract runs it and gets torch's numbers; import gives the same graph back.
            let bytes = export(&g).unwrap_or_else(|e| panic!("{what}: export: {e}"));
            let again = import_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: re-import: {e}"));
            check(&format!("{what} (re-imported)"), &again.eval(&[input.view()]).unwrap(), &want, 2e-5);
            assert_eq!(again.macs(), g.macs(), "{what}");
            let tract = TractModel::from_bytes(&bytes).unwrap_or_else(|e| panic!("{what}: tract: {e}"));
            check(&format!("{what} (tract on the export)"), &tract.run(&[input.view()]).unwrap(), &want, 2e-5);
        }
    }
}

/// Taps of a transposed convolution along one axis, counted from the output side: output `o`
/// takes kernel tap `k` when `o + pad - k` is a multiple of the stride landing on an input.
fn taps_by_output(out: usize, n: usize, k: usize, stride: usize, pad: usize) -> usize {
    (0..out)
        .map(|o| {
            (0..k)
                .filter(|&t| {
                    let v = o as i64 + pad as i64 - t as i64;
                    v >= 0 && v % stride as i64 == 0 && ((v / stride as i64) as usize) < n
                })
                .count()
        })
        .sum()
}

/// A stride-2 transposed convolution's true multiply-accumulates: only taps that land on an
/// input count. Kernel 4, stride 2, pad 1 from 7 x 7 to 14 x 14: each interior output row takes
/// 2 of the 4 kernel rows and the border rows 1, so 26 row taps (not 4 x 14 = 56) per axis.
#[test]
fn conv_transpose_macs_count_only_real_taps() {
    let g = import_file(&fixtures().join("legacy/conv_decoder.onnx")).unwrap();
    let ct: Vec<&Op> = g.nodes.iter().map(|n| &n.op).filter(|op| matches!(op, Op::ConvTranspose { .. })).collect();
    // ConvTranspose2d(16, 8, 4, 2, 1): 7x7 -> 14x14; ConvTranspose2d(8, 1, 4, 2, 1): 14x14 -> 28x28.
    assert_eq!(taps_by_output(14, 7, 4, 2, 1), 26);
    assert_eq!(ct[0].macs(), 16 * 8 * 26 * 26);
    assert_eq!(ct[1].macs(), 8 * taps_by_output(28, 14, 4, 2, 1).pow(2));
    // Kernel 3, stride 2, pad 1, output_padding 1, and odd strides and pads.
    let g = import_file(&fixtures().join("dynamo/convt_k3_decoder.onnx")).unwrap();
    let ct: Vec<&Op> = g.nodes.iter().map(|n| &n.op).filter(|op| matches!(op, Op::ConvTranspose { .. })).collect();
    assert_eq!(ct[0].macs(), 16 * 8 * taps_by_output(14, 7, 3, 2, 1).pow(2));
}
