//! `tinyvae validate`: a blob in the runtime against its ONNX model in tract (an independent
//! f32 engine), on the same inputs.

use std::path::Path;

use serde::Serialize;
use tinyvae::format::OutputKind;
use tinyvae::{Model, ModelKind};

use crate::ir::Role;
use crate::metrics::{ClassAgreement, Fidelity, ScoreAgreement};
use crate::pipeline::{self, PipelineError, Purpose};
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
    /// Classifiers: the blob's classes against the ONNX model's in tract, and both against
    /// the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassAgreement>,
    /// Autoencoders: the blob's anomaly scores against the reconstruction errors of the ONNX
    /// model in tract.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreAgreement>,
}

/// Runs `onnx` in tract and `blob` in the runtime on `samples` inputs: prior samples from
/// `seed` for decoders, the first test images of `data` for encoders, feature vectors of
/// `data` for autoencoders and generic models. With `encoder`, a
/// decoder is fed the encoder's codes of `data`'s test images instead. Errors about `onnx` or
/// `blob` are the caller's to attribute (the CLI names both files).
pub fn validate(
    onnx: &Path,
    blob: &[u8],
    samples: usize,
    seed: u64,
    data: pipeline::Data<'_>,
    encoder: Option<&Path>,
) -> Result<Validation, PipelineError> {
    let model = Model::parse(blob)?;
    let meta = model.meta();
    let mut graph = crate::onnx::import_file(onnx)?;
    // The blob says what it is; the ONNX file may carry no metadata at all.
    graph.role = match model.kind() {
        ModelKind::Decoder => Role::Decoder {
            latent: meta.latent,
            classes: meta.classes,
            bernoulli: meta.output_kind == OutputKind::Bernoulli,
        },
        ModelKind::Encoder => Role::Encoder { latent: meta.latent, classes: meta.classes },
        ModelKind::Autoencoder => Role::Autoencoder,
        ModelKind::Classifier => Role::Classifier { classes: meta.classes },
        ModelKind::Generic => Role::Generic,
    };
    let encoder = encoder.map(pipeline::import_encoder).transpose()?;
    let (inputs, desc) = pipeline::inputs_for(&graph, encoder.as_ref(), Purpose::Evaluation, samples, seed, data)?;
    let samples = inputs.first().map_or(0, |a| a.nrows());

    let tract = TractModel::load(onnx)?;
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let mut reference = tract.run(&views)?;
    if let Role::Encoder { latent, .. } = graph.role {
        reference = runner::split_fused(reference, latent)?;
    }
    let got = runner::run_blob(blob, &inputs, tinyvae::kernels::best())?;
    if reference.len() != got.len() || reference.iter().zip(&got).any(|(r, g)| r.dim() != g.dim()) {
        return Err(PipelineError::OutputShapes {
            onnx: reference.iter().map(|a| a.dim()).collect(),
            blob: got.iter().map(|a| a.dim()).collect(),
        });
    }
    let scores = match graph.role {
        Role::Autoencoder => Some(pipeline::score_agreement(&reference[0], blob, &inputs[0])?),
        _ => None,
    };
    let classes = match graph.role {
        Role::Classifier { .. } => Some(pipeline::class_agreement(&reference[0], blob, &inputs[0], data)?),
        _ => None,
    };
    let peak = (meta.output_kind == OutputKind::Bernoulli && model.kind() == ModelKind::Decoder).then_some(1.0);
    Ok(Validation {
        kind: model.kind().to_string(),
        precision: model.precision().to_string(),
        inputs: desc,
        fidelity: Fidelity::compare(&runner::flatten(&reference), &runner::flatten(&got), samples, peak),
        classes,
        scores,
    })
}
