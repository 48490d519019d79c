//! The `onnx` fuzz target: arbitrary bytes through the ONNX importer of `tinyvae-compiler`
//! (`onnx::import_bytes`: protobuf decoding, initializers, every op family, shape folding).
//! What imports must export and import again; when the graph is small, it is also prepared,
//! calibrated on four made-up samples and quantized to f32, f16 and int8, and each blob must
//! parse and run once through the `blob` target's checks (with the fastest kernels).
//!
//! A malformed model must be an `ImportError`; a graph the importer accepts must either
//! quantize or give a `QuantizeError`, and a blob the quantizer writes must parse. Any panic is
//! a bug.
//!
//! This file (with `blob.rs` beside it) is also compiled into
//! `crates/tinyvae-compiler/tests/fuzz_regressions.rs`, which runs the seeds and the
//! regression inputs through it in the normal test suite.

use ndarray::Array2;
use tinyvae::Precision;
use tinyvae_compiler::ir::{Graph, Role};
use tinyvae_compiler::{calibrate, onnx, prepare, quantize, Method, QuantizeError};

/// The most multiply-accumulates per sample of a graph the harness quantizes and runs: the
/// generated seeds' graphs (a few thousand), not the MNIST-sized ones, which only import and
/// export (quantizing and running six blobs of those took seconds per input under ASan).
pub const MAX_MACS: usize = 20_000;
/// The most values (all of a sample's activations together) of a graph the harness evaluates.
pub const MAX_VALUES: usize = 1 << 13;

/// Runs one fuzz input. Panics exactly when the compiler misbehaves.
pub fn run(data: &[u8]) {
    let Ok(graph) = onnx::import_bytes(data) else { return };
    let _ = (graph.macs(), graph.value_shapes());
    let Ok(lens) = graph.value_lens() else { panic!("an imported graph has no value lengths") };
    let values = lens.values().try_fold(0usize, |n, &l| n.checked_add(l));
    // What the importer accepts, the exporter writes and the importer reads back.
    match onnx::export(&graph) {
        Ok(bytes) => {
            if let Err(e) = onnx::import_bytes(&bytes) {
                panic!("the export of an imported graph does not import: {e}");
            }
        }
        Err(e) => panic!("an imported graph does not export: {e}"),
    }
    if graph.macs() > MAX_MACS || values.is_none_or(|n| n > MAX_VALUES) {
        return;
    }
    // Fusing the heads only changes an encoder of two outputs.
    let fusions: &[bool] = if graph.outputs.len() == 2 { &[true, false] } else { &[true] };
    for &fuse_heads in fusions {
        let Ok(prepared) = prepare(&graph, fuse_heads) else { continue };
        let inputs = calibration_inputs(&prepared.graph, 4);
        let ranges = calibrate(&prepared.graph, &inputs, Method::MinMax).ok();
        for precision in [Precision::F32, Precision::F16, Precision::Int8] {
            match quantize(&prepared, ranges.as_ref(), precision) {
                Ok(blob) => crate::blob::run_valid(&blob),
                Err(QuantizeError::BlobRejected(e)) => panic!("the quantizer wrote a blob that does not parse: {e}"),
                Err(_) => {}
            }
        }
    }
}

/// `n` samples per graph input, like the pipeline's: N(0, 1)-ish latents for decoders, pixels in
/// [0, 1] for encoders and other graphs, one-hot labels for a label input.
fn calibration_inputs(graph: &Graph, n: usize) -> Vec<Array2<f32>> {
    let mut rng = tinyvae::Rng::new(11);
    let classes = match graph.role {
        Role::Decoder { classes, .. } | Role::Encoder { classes, .. } => classes,
        _ => 0,
    };
    graph
        .inputs
        .iter()
        .enumerate()
        .map(|(k, input)| {
            if k == 1 && classes > 0 {
                Array2::from_shape_fn((n, input.len), |(i, j)| f32::from(u8::from(i % classes == j)))
            } else if matches!(graph.role, Role::Decoder { .. }) {
                let mut z = vec![0f32; n * input.len];
                rng.fill_gaussian(&mut z);
                Array2::from_shape_vec((n, input.len), z).unwrap_or_default()
            } else {
                Array2::from_shape_fn((n, input.len), |(i, j)| ((i * 31 + j * 17) % 256) as f32 / 255.0)
            }
        })
        .collect()
}
