//! `tinyvae validate`: a blob in the runtime against its ONNX model in tract (an independent
//! f32 engine), on the same inputs.

use std::path::{Path, PathBuf};

use serde::Serialize;
use tinyvae::format::OutputKind;
use tinyvae::{Model, ModelKind};

use crate::ir::Role;
use crate::metrics::Fidelity;
use crate::pipeline::{self, Purpose};
use crate::quantize::QuantizeError;
use crate::runner;
use crate::tract_ref::TractModel;

/// What was compared, and how close.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// Blob kind.
    pub kind: String,
    /// Blob precision.
    pub precision: String,
    /// The inputs used.
    pub inputs: String,
    /// Blob (runtime) against ONNX (tract f32).
    pub fidelity: Fidelity,
}

fn qerr(e: impl std::fmt::Display) -> QuantizeError {
    QuantizeError(e.to_string())
}

/// Runs `onnx` in tract and `blob` in the runtime on `samples` inputs: prior samples from
/// `seed` for decoders, the first test images of `data` for encoders. With `encoder`, a
/// decoder is fed the encoder's codes of `data`'s test images instead.
pub fn validate(
    onnx: &Path,
    blob: &[u8],
    samples: usize,
    seed: u64,
    data: Option<PathBuf>,
    encoder: Option<&Path>,
) -> Result<Validation, QuantizeError> {
    let model = Model::parse(blob).map_err(qerr)?;
    let meta = model.meta();
    let mut graph = crate::onnx::import_file(onnx).map_err(qerr)?;
    // The blob says what it is; the ONNX file may carry no metadata at all.
    graph.role = match model.kind() {
        ModelKind::Decoder => Role::Decoder {
            latent: meta.latent,
            classes: meta.classes,
            bernoulli: meta.output_kind == OutputKind::Bernoulli,
        },
        ModelKind::Encoder => Role::Encoder { latent: meta.latent, classes: meta.classes },
        ModelKind::Generic => {
            return Err(QuantizeError("generic blobs have no input generator to validate with".into()))
        }
    };
    let encoder = match encoder {
        Some(p) => Some(crate::onnx::import_file(p).map_err(qerr)?),
        None => None,
    };
    let (inputs, desc) =
        pipeline::inputs_for(&graph, encoder.as_ref(), Purpose::Evaluation, samples, seed, data.as_deref())?;

    let tract = TractModel::load(onnx).map_err(qerr)?;
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let mut reference = tract.run(&views).map_err(qerr)?;
    if let Role::Encoder { latent, .. } = graph.role {
        reference =
            runner::split_fused(reference, latent).map_err(|e| QuantizeError(format!("{}: {e}", onnx.display())))?;
    }
    let got = runner::run_blob(blob, &inputs, tinyvae::kernels::best()).map_err(qerr)?;
    if reference.len() != got.len() || reference.iter().zip(&got).any(|(r, g)| r.dim() != g.dim()) {
        return Err(QuantizeError(format!(
            "{}: outputs of the ONNX model ({:?}) and the blob ({:?}) have different shapes",
            onnx.display(),
            reference.iter().map(|a| a.dim()).collect::<Vec<_>>(),
            got.iter().map(|a| a.dim()).collect::<Vec<_>>()
        )));
    }
    let peak = (meta.output_kind == OutputKind::Bernoulli && model.kind() == ModelKind::Decoder).then_some(1.0);
    Ok(Validation {
        kind: model.kind().to_string(),
        precision: model.precision().to_string(),
        inputs: desc,
        fidelity: Fidelity::compare(&runner::flatten(&reference), &runner::flatten(&got), samples, peak),
    })
}
