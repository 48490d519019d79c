//! The `onnx` fuzz target's inputs in the normal test suite: its committed seeds
//! (`fuzz/seeds/onnx`) and the crashes it found (`fuzz/regressions/onnx`, each fixed), each
//! run through the target's own code (`fuzz/src/onnx.rs`): import, then prepare, calibrate,
//! quantize and run what imports.

use std::panic;
use std::path::{Path, PathBuf};

// The `onnx` target runs what it quantizes through part of the `blob` target.
#[allow(dead_code)]
#[path = "../../../fuzz/src/blob.rs"]
mod blob;
#[path = "../../../fuzz/src/external.rs"]
mod external;
#[path = "../../../fuzz/src/onnx.rs"]
mod onnx;

/// The inputs in `dir` (a folder of the repository), sorted; dot files are not inputs.
fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    out.sort();
    out
}

fn run_all(paths: &[PathBuf]) {
    run_all_through("onnx", onnx::run, paths)
}

fn run_all_through(target: &str, run: fn(&[u8]), paths: &[PathBuf]) {
    let failed: Vec<String> = paths
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            panic::catch_unwind(|| run(&bytes)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "the {target} fuzz target panics on {failed:#?}");
}

#[test]
fn onnx_seeds_run_clean() {
    let seeds = files("fuzz/seeds/onnx");
    assert!(seeds.len() >= 100, "only {} seeds", seeds.len());
    run_all(&seeds);
}

#[test]
fn onnx_regressions_run_clean() {
    run_all(&files("fuzz/regressions/onnx"));
}

#[test]
fn external_seeds_run_clean() {
    let seeds = files("fuzz/seeds/external");
    assert!(seeds.len() >= 10, "only {} seeds", seeds.len());
    run_all_through("external", external::run, &seeds);
}

#[test]
fn external_regressions_run_clean() {
    run_all_through("external", external::run, &files("fuzz/regressions/external"));
}

/// The seeds reach what they are named for: each hostile location is refused as such (the
/// target itself only checks that nothing panics or reads outside the folder).
#[test]
fn external_seeds_are_refused_for_their_reason() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/external");
    for (seed, says) in [
        ("parent", ".."),
        ("absolute", "absolute"),
        ("link-out", "symbolic link"),
        ("folder-link", "symbolic link"),
        ("parent-inside", ".."),
        ("folder", "regular file"),
        ("max-offset", "past the end"),
        // No offset or length: the whole file, which is more than the first tensor.
        ("dot-slash-no-ranges", "to the end"),
    ] {
        let bytes = std::fs::read(dir.join(seed)).unwrap();
        let e = external::import(&bytes).expect_err(seed).to_string();
        assert!(e.contains(says), "{seed}: {e}");
    }
    for seed in ["all-inside", "all-sidecar-sane", "decoy"] {
        let bytes = std::fs::read(dir.join(seed)).unwrap();
        external::import(&bytes).unwrap_or_else(|e| panic!("{seed}: {e}"));
    }
}

/// Found by the seeds: an ONNX model of only a Flatten imports as a graph with no node (its
/// output is its input), which the quantizer wrote as a blob of no node, which the runtime
/// rejects; now it is `QuantizeError::NoNodes`.
#[test]
fn a_graph_with_no_node_is_a_quantize_error() {
    let bytes = std::fs::read(
        files("fuzz/regressions/onnx").iter().find(|p| p.ends_with("no-nodes-flatten-only.onnx")).expect("input"),
    )
    .expect("read");
    let graph = tinyvae_compiler::import_bytes(&bytes).expect("imports");
    assert!(graph.nodes.is_empty());
    let prepared = tinyvae_compiler::prepare(&graph, true).expect("prepare");
    let blob = tinyvae_compiler::quantize(&prepared, None, tinyvae::Precision::F32);
    assert_eq!(blob, Err(tinyvae_compiler::QuantizeError::NoNodes));
}

/// Found by the fuzzer: a Reshape whose target dimensions multiply past `usize::MAX` overflowed
/// in the importer's element count (a panic with overflow checks, a wrapped count without).
#[test]
fn a_reshape_past_usize_is_an_import_error() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("reshape-target-overflows-usize.onnx"));
    let bytes = std::fs::read(path.expect("input")).expect("read");
    let e = tinyvae_compiler::import_bytes(&bytes).expect_err("imports");
    assert!(matches!(&e, tinyvae_compiler::ImportError::Node { op, .. } if op == "Reshape"), "{e}");
}

/// Found by the fuzzer: weights near f32::MAX (a mutated conv encoder) overflow the calibration
/// to an infinite range, from which the quantizer chose an infinite int8 scale and wrote a blob
/// the runtime rejects; now the range is a `QuantizeError`.
#[test]
fn an_infinite_calibration_range_is_a_quantize_error() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("huge-weights-infinite-range.onnx"));
    let graph = tinyvae_compiler::import_bytes(&std::fs::read(path.expect("input")).expect("read")).expect("imports");
    let prepared = tinyvae_compiler::prepare(&graph, true).expect("prepare");
    let x = ndarray::Array2::from_shape_fn((4, 64), |(s, j)| ((s * 31 + j * 17) % 256) as f32 / 255.0);
    let ranges = tinyvae_compiler::calibrate(&prepared.graph, &[x], tinyvae_compiler::Method::MinMax).expect("ranges");
    let blob = tinyvae_compiler::quantize(&prepared, Some(&ranges), tinyvae::Precision::Int8);
    assert!(matches!(blob, Err(tinyvae_compiler::QuantizeError::NonFiniteRange { .. })), "{blob:?}");
}

/// Found by the fuzzer: a Dense bias of 4e26 (a mutated encoder) saturates the folded int32 bias
/// at i64::MAX before the input zero point's term is subtracted, which overflowed (a panic with
/// overflow checks); now the subtraction is checked and the channel a `BiasOverflow`.
#[test]
fn a_huge_bias_is_a_bias_overflow() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("huge-bias-overflows-fold.onnx"));
    let graph = tinyvae_compiler::import_bytes(&std::fs::read(path.expect("input")).expect("read")).expect("imports");
    let prepared = tinyvae_compiler::prepare(&graph, true).expect("prepare");
    let x = ndarray::Array2::from_shape_fn((4, 16), |(s, j)| ((s * 31 + j * 17) % 256) as f32 / 255.0);
    let ranges = tinyvae_compiler::calibrate(&prepared.graph, &[x], tinyvae_compiler::Method::MinMax).expect("ranges");
    let blob = tinyvae_compiler::quantize(&prepared, Some(&ranges), tinyvae::Precision::Int8);
    assert!(matches!(blob, Err(tinyvae_compiler::QuantizeError::BiasOverflow { .. })), "{blob:?}");
}

/// Found by the fuzzer: an encoder whose metadata says 2 classes but whose label input has 3
/// values imported (the decoder branch checked this, the encoder's did not), and the quantizer
/// wrote a blob the runtime rejects; now it is `ImportError::ClassesMismatch`.
#[test]
fn an_encoder_with_the_wrong_class_count_is_an_import_error() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("encoder-classes-mismatch.onnx"));
    let e = tinyvae_compiler::import_bytes(&std::fs::read(path.expect("input")).expect("read")).expect_err("imports");
    assert!(matches!(e, tinyvae_compiler::ImportError::ClassesMismatch { classes: 2, features: 3 }), "{e}");
}

/// Found by the fuzzer next: a conditional decoder whose metadata says 0 classes (the check
/// above only ran for a nonzero count), so the blob had a label input and no classes.
#[test]
fn a_decoder_with_a_label_and_no_classes_is_an_import_error() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("decoder-label-without-classes.onnx"));
    let e = tinyvae_compiler::import_bytes(&std::fs::read(path.expect("input")).expect("read")).expect_err("imports");
    assert!(matches!(e, tinyvae_compiler::ImportError::ClassesMismatch { classes: 0, features: 3 }), "{e}");
}

/// Found by the fuzzer: an encoder-shaped graph (outputs mu and logvar) whose metadata says
/// decoder imported as a decoder of two outputs, and the quantizer wrote a blob the runtime
/// rejects; now the second output is an `ImportError::Output`.
#[test]
fn a_decoder_with_two_outputs_is_an_import_error() {
    let path = files("fuzz/regressions/onnx").into_iter().find(|p| p.ends_with("decoder-with-two-outputs.onnx"));
    let e = tinyvae_compiler::import_bytes(&std::fs::read(path.expect("input")).expect("read")).expect_err("imports");
    assert!(matches!(&e, tinyvae_compiler::ImportError::Output { output, .. } if output == "logvar"), "{e}");
}

/// A decoder graph (z 2 -> 4) of the given role and extra inputs, exported to ONNX.
fn exported(role: tinyvae_compiler::Role, extra_inputs: &[(&str, usize)]) -> Vec<u8> {
    use tinyvae_compiler::{Graph, Input, Node, Op};
    let mut inputs = vec![Input { name: "z".into(), len: 2 }];
    inputs.extend(extra_inputs.iter().map(|&(name, len)| Input { name: name.into(), len }));
    let names: Vec<String> = inputs.iter().map(|i| i.name.clone()).collect();
    let mut nodes = Vec::new();
    let mut last = "z".to_string();
    if names.len() > 1 {
        // Concatenate every input, two at a time.
        for (k, name) in names.iter().enumerate().skip(1) {
            let out = format!("cat{k}");
            nodes.push(Node {
                name: out.clone(),
                op: Op::Concat,
                inputs: vec![last, name.clone()],
                output: out.clone(),
            });
            last = out;
        }
    }
    let width: usize = inputs.iter().map(|i| i.len).sum();
    let dense = Op::Dense { weight: ndarray::Array2::from_elem((4, width), 0.1), bias: ndarray::Array1::zeros(4) };
    nodes.push(Node { name: "fc".into(), op: dense, inputs: vec![last], output: "x".into() });
    let graph = Graph { inputs, nodes, outputs: vec!["x".into()], role };
    tinyvae_compiler::export(&graph).expect("export")
}

/// Checked with the finds above: a blob's decoder or encoder has at most two inputs (z or x,
/// then a label), so a third is an import error rather than a blob the runtime rejects.
#[test]
fn a_decoder_with_three_inputs_is_an_import_error() {
    let role = tinyvae_compiler::Role::Decoder { latent: 2, classes: 3, bernoulli: false };
    let e = tinyvae_compiler::import_bytes(&exported(role, &[("y", 3), ("w", 1)])).expect_err("imports");
    assert!(matches!(&e, tinyvae_compiler::ImportError::Input { input, .. } if input == "w"), "{e}");
}

/// Likewise, the `autoencoder` role in metadata on a graph that does not map one input to one
/// output of its length.
#[test]
fn an_autoencoder_role_on_a_decoder_is_an_import_error() {
    let e = tinyvae_compiler::import_bytes(&exported(tinyvae_compiler::Role::Autoencoder, &[])).expect_err("imports");
    assert!(matches!(e, tinyvae_compiler::ImportError::Metadata { .. }), "{e}");
}
