//! `tinyvae quantize` as a library call: prepare, calibrate, quantize, and measure the blob
//! against the float graph on held-out inputs (never the calibration inputs).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Axis};
use serde::Serialize;
use tinyvae::{Model, Precision};

use tinyvae_data::features::{Features, FeaturesError};
use tinyvae_data::idx::{Dataset, IdxError, Split};

use crate::calibrate::{self, Calibration, Method};
use crate::ir::{Graph, GraphError, Role};
use crate::metrics::{self, ClassAgreement, Fidelity, ScoreAgreement};
use crate::onnx::ImportError;
use crate::quantize::{self, Prepared, QuantizeError};
use crate::runner;
#[cfg(feature = "tract")]
use crate::tract_ref::TractRefError;

/// Where calibration and evaluation inputs come from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Target precision.
    pub precision: Precision,
    /// Range estimator for int8.
    pub method: Method,
    /// Calibration inputs (prior samples for decoders, training images for encoders).
    pub calib_samples: usize,
    /// Seed of the calibration prior samples; evaluation uses `seed + 1`.
    pub seed: u64,
    /// Evaluation inputs (prior samples, or test images).
    pub eval_samples: usize,
    /// IDX directory: required for encoders (calibrate on train, evaluate on test). For
    /// autoencoders also a feature file (`.npy`, or raw f32 with [`Settings::shape`]).
    pub data: Option<PathBuf>,
    /// A separate feature file for evaluation (otherwise a feature file's rows are split).
    pub eval_data: Option<PathBuf>,
    /// Dimensions of one sample of a raw f32 feature file.
    pub shape: Option<Vec<usize>>,
    /// Fuse encoder heads.
    pub fuse_heads: bool,
    /// After calibration, search each tensor's clipping range for the lowest output error on
    /// the calibration inputs (int8).
    pub refine: bool,
    /// Round weights with error compensation (GPTQ) instead of to nearest (int8).
    pub gptq: bool,
    /// For decoders whose codes do not follow N(0, I) (autoencoders, AAE with a mixture prior):
    /// the encoder whose codes (mu, for VAEs) of `data`'s images feed calibration and evaluation.
    pub encoder: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            precision: Precision::Int8,
            method: Method::MinMax,
            calib_samples: 2000,
            seed: 0,
            eval_samples: 1000,
            data: None,
            eval_data: None,
            shape: None,
            fuse_heads: true,
            refine: true,
            gptq: true,
            encoder: None,
        }
    }
}

/// What `tinyvae quantize` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// "decoder" or "encoder".
    pub kind: String,
    /// "int8", "f16" or "f32".
    pub precision: String,
    /// Whole blob.
    pub blob_bytes: usize,
    /// Weights, biases and tables.
    pub weight_bytes: usize,
    /// RAM to hand the runtime for one sample (`Model::arena_size`).
    pub arena_bytes: usize,
    /// Multiply-accumulates per sample.
    pub macs: usize,
    /// How the int8 ranges were found.
    pub calibration: String,
    /// What fidelity was measured on.
    pub evaluated_on: String,
    /// Blob against the f32 graph.
    pub fidelity: Fidelity,
    /// Classifiers: the blob's classes against the f32 graph's, and both against the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassAgreement>,
    /// Autoencoders: the blob's anomaly scores against the f32 graph's reconstruction errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<ScoreAgreement>,
}

/// Why quantizing, validating or benchmarking a model failed. The model the caller passed is
/// the caller's to name (the CLI adds the file); files met on the way (the encoder, the data
/// set's files) are named here.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The float graph is inconsistent, or does not take the inputs made for it.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The graph could not be lowered to a blob.
    #[error(transparent)]
    Quantize(#[from] QuantizeError),
    /// The ONNX model could not be imported.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The encoder of [`Settings::encoder`] could not be imported.
    #[error("cannot import the encoder {}", path.display())]
    Encoder {
        /// The encoder's ONNX file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ImportError,
    },
    /// An encoder needs images and none were given.
    #[error("an encoder runs on images: pass --data DIR (an MNIST-style IDX directory)")]
    NeedsData,
    /// An autoencoder needs feature vectors and none were given.
    #[error(
        "an autoencoder runs on feature vectors: pass --data FILE.npy (float32, [N, features]), raw \
         little-endian f32 with --shape, or an MNIST-style IDX directory"
    )]
    NeedsFeatures,
    /// A feature file is missing or malformed (the error names the file).
    #[error(transparent)]
    Features(#[from] FeaturesError),
    /// The feature vectors do not have the model's input width.
    #[error("the model's input `{input}` takes {features} values but the vectors of {} have {got}", path.display())]
    FeatureSize {
        /// The model's first input.
        input: String,
        /// Its features.
        features: usize,
        /// Values per vector in the file.
        got: usize,
        /// The file.
        path: PathBuf,
    },
    /// A data set file is missing or malformed (the error names the file).
    #[error(transparent)]
    Data(#[from] IdxError),
    /// The images do not have the encoder's input width.
    #[error("the model's input `{input}` takes {features} values but the dataset's images have {pixels} pixels")]
    ImageSize {
        /// The encoder's first input.
        input: String,
        /// Its features.
        features: usize,
        /// Pixels per image.
        pixels: usize,
    },
    /// The graph's role is [`Role::Generic`]: the runtime has no API that runs it.
    #[error("cannot tell what this model is: pass --role decoder|encoder|autoencoder")]
    UnknownRole,
    /// An encoder was given to make the inputs of a graph that is not a decoder.
    #[error("--encoder applies to decoders")]
    EncoderForNonDecoder,
    /// The encoder's codes do not have the decoder's latent size.
    #[error("the encoder gives {codes} values per image but the decoder takes z of {latent}")]
    EncoderWidth {
        /// Values per image of the encoder's first output.
        codes: usize,
        /// The decoder's latent size.
        latent: usize,
    },
    /// The runtime rejected the blob or could not run it.
    #[error("the runtime could not run the blob")]
    Runtime(#[from] tinyvae::Error),
    /// The ONNX model (in tract) and the blob give outputs of different shapes.
    #[error("outputs of the ONNX model ({onnx:?}) and the blob ({blob:?}) have different shapes")]
    OutputShapes {
        /// `(batch, features)` of each ONNX output.
        onnx: Vec<(usize, usize)>,
        /// `(batch, features)` of each blob output.
        blob: Vec<(usize, usize)>,
    },
    /// The tract reference failed.
    #[cfg(feature = "tract")]
    #[error(transparent)]
    Tract(#[from] TractRefError),
}

/// Imports the encoder that feeds a decoder's calibration or evaluation, naming its file.
pub(crate) fn import_encoder(path: &Path) -> Result<Graph, PipelineError> {
    crate::onnx::import_file(path).map_err(|source| PipelineError::Encoder { path: path.to_path_buf(), source })
}

/// What a set of inputs is for: encoders calibrate on training images and are evaluated on
/// test images; decoders use prior samples for both (with different seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Range estimation.
    Calibration,
    /// Fidelity measurement.
    Evaluation,
}

/// Where a model's inputs come from, when they are not prior samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Data<'p> {
    /// An MNIST-style IDX directory (training images calibrate, test images evaluate), or a
    /// feature file (`.npy`, or raw f32 with `shape`).
    pub path: Option<&'p Path>,
    /// A feature file for evaluation; without it, a feature file's rows are split in two:
    /// calibration reads the first half, evaluation the second.
    pub eval: Option<&'p Path>,
    /// Dimensions of one sample of a raw f32 file.
    pub shape: Option<&'p [usize]>,
}

impl<'p> Data<'p> {
    /// Just a path (an IDX directory, or a `.npy` file).
    pub fn path(path: Option<&'p Path>) -> Self {
        Data { path, ..Data::default() }
    }

    /// The data `settings` names.
    pub fn of(settings: &'p Settings) -> Self {
        Data { path: settings.data.as_deref(), eval: settings.eval_data.as_deref(), shape: settings.shape.as_deref() }
    }
}

/// `n` inputs for `graph` and a description of them.
pub fn model_inputs(
    graph: &Graph,
    purpose: Purpose,
    n: usize,
    seed: u64,
    data: Data<'_>,
) -> Result<(Vec<Array2<f32>>, String), PipelineError> {
    match graph.role {
        Role::Decoder { latent, classes, .. } => {
            Ok((prior_inputs(latent, classes, n, seed), format!("{n} prior samples z ~ N(0, I), seed {seed}")))
        }
        Role::Encoder { .. } | Role::Classifier { .. } => {
            let dir = data.path.ok_or(PipelineError::NeedsData)?;
            let what = if purpose == Purpose::Calibration { "training" } else { "test" };
            let set = Dataset::load(dir, split_for(purpose))?;
            Ok((image_inputs(graph, &set, n)?, format!("{} {what} images of {}", n.min(set.count), dir.display())))
        }
        Role::Generic => Err(PipelineError::UnknownRole),
        Role::Autoencoder => match data.path {
            None => Err(PipelineError::NeedsFeatures),
            Some(dir) if dir.is_dir() => {
                let what = if purpose == Purpose::Calibration { "training" } else { "test" };
                let set = Dataset::load(dir, split_for(purpose))?;
                let x = image_inputs(graph, &set, n)?;
                Ok((x, format!("{} {what} images of {} as [0, 1] features", n.min(set.count), dir.display())))
            }
            Some(file) => feature_inputs(graph, purpose, n, file, data),
        },
    }
}

/// `n` feature vectors from a file: from `data.eval` for evaluation when given; otherwise the
/// file's first half calibrates and its second half evaluates, so the two never share a row.
fn feature_inputs(
    graph: &Graph,
    purpose: Purpose,
    n: usize,
    file: &Path,
    data: Data<'_>,
) -> Result<(Vec<Array2<f32>>, String), PipelineError> {
    let (path, separate) = match (purpose, data.eval) {
        (Purpose::Evaluation, Some(eval)) => (eval, true),
        _ => (file, data.eval.is_some()),
    };
    let all = Features::load(path, data.shape)?;
    let input = graph.inputs.first().map_or(("?", 0), |i| (i.name.as_str(), i.len));
    if all.len != input.1 || graph.inputs.len() != 1 {
        return Err(PipelineError::FeatureSize {
            input: input.0.to_string(),
            features: input.1,
            got: all.len,
            path: path.to_path_buf(),
        });
    }
    let half = all.rows.div_ceil(2);
    let (start, end) = match (purpose, separate) {
        (_, true) => (0, n.min(all.rows)),
        (Purpose::Calibration, false) => (0, n.min(half)),
        (Purpose::Evaluation, false) => (half, (half + n).min(all.rows)),
    };
    let rows = all.slice(start, end);
    let desc = format!("{} vectors (rows {start}..{end}) of {}", rows.rows, path.display());
    Ok((vec![Array2::from_shape_vec((rows.rows, rows.len), rows.values).expect("shape")], desc))
}

/// `n` prior samples for a decoder of `latent` and `classes`: z ~ N(0, I) from the runtime's
/// sampler (and, for conditional decoders, one-hot labels cycling through the classes).
fn prior_inputs(latent: usize, classes: usize, n: usize, seed: u64) -> Vec<Array2<f32>> {
    let mut rng = tinyvae::Rng::new(seed);
    let mut z = vec![0f32; n * latent];
    rng.fill_gaussian(&mut z);
    let mut inputs = vec![Array2::from_shape_vec((n, latent), z).expect("shape")];
    if classes > 0 {
        let mut y = Array2::zeros((n, classes));
        for (i, mut row) in y.axis_iter_mut(Axis(0)).enumerate() {
            row[i % classes] = 1.0;
        }
        inputs.push(y);
    }
    inputs
}

/// Images (and one-hot labels for conditional encoders) as encoder inputs: the first `n`.
fn image_inputs(graph: &Graph, data: &Dataset, n: usize) -> Result<Vec<Array2<f32>>, PipelineError> {
    let n = n.min(data.count);
    let len = data.image_len();
    if graph.inputs.first().map(|i| i.len) != Some(len) {
        return Err(PipelineError::ImageSize {
            input: graph.inputs.first().map_or("?", |i| i.name.as_str()).to_string(),
            features: graph.inputs.first().map_or(0, |i| i.len),
            pixels: len,
        });
    }
    let x: Vec<f32> = data.pixels[..n * len].iter().map(|&p| p as f32 / 255.0).collect();
    let mut inputs = vec![Array2::from_shape_vec((n, len), x).expect("shape")];
    if let Role::Encoder { classes, .. } = graph.role {
        if classes > 0 {
            let mut y = Array2::zeros((n, classes));
            for i in 0..n {
                y[[i, data.labels[i] as usize % classes]] = 1.0;
            }
            inputs.push(y);
        }
    }
    Ok(inputs)
}

/// Decoder inputs made by an encoder: the codes (mu for VAEs, z for autoencoders) of the first
/// `n` images of `data` (training images for calibration, test images for evaluation), with
/// the images' one-hot labels for conditional decoders.
pub fn encoded_inputs(
    decoder: &Graph,
    encoder: &Graph,
    purpose: Purpose,
    n: usize,
    data: Data<'_>,
) -> Result<(Vec<Array2<f32>>, String), PipelineError> {
    let Role::Decoder { latent, classes, .. } = decoder.role else {
        return Err(PipelineError::EncoderForNonDecoder);
    };
    let mut encoder = encoder.clone();
    if !matches!(encoder.role, Role::Encoder { .. }) {
        encoder.role = Role::Encoder { latent, classes: encoder.inputs.get(1).map(|i| i.len).unwrap_or(0) };
    }
    let (images, desc) = model_inputs(&encoder, purpose, n, 0, data)?;
    let views: Vec<_> = images.iter().map(|a| a.view()).collect();
    let codes = encoder.eval(&views)?.remove(0);
    if codes.ncols() != latent && codes.ncols() != 2 * latent {
        return Err(PipelineError::EncoderWidth { codes: codes.ncols(), latent });
    }
    let z = codes.slice(ndarray::s![.., ..latent]).to_owned();
    let mut inputs = vec![z];
    if classes > 0 {
        let set = Dataset::load(data.path.unwrap_or(Path::new(".")), split_for(purpose))?;
        let rows = inputs[0].nrows();
        inputs.push(Array2::from_shape_fn((rows, classes), |(i, j)| (set.labels[i] as usize == j) as u8 as f32));
    }
    Ok((inputs, format!("encoder codes of {desc}")))
}

fn split_for(purpose: Purpose) -> Split {
    match purpose {
        Purpose::Calibration => Split::Train,
        Purpose::Evaluation => Split::Test,
    }
}

/// Inputs for `graph` from prior samples or images, or through `encoder` when given.
pub fn inputs_for(
    graph: &Graph,
    encoder: Option<&Graph>,
    purpose: Purpose,
    n: usize,
    seed: u64,
    data: Data<'_>,
) -> Result<(Vec<Array2<f32>>, String), PipelineError> {
    match encoder {
        Some(e) => encoded_inputs(graph, e, purpose, n, data),
        None => model_inputs(graph, purpose, n, seed, data),
    }
}

/// Quantizes `graph` and measures the blob against it.
pub fn quantize_and_measure(graph: &Graph, s: &Settings) -> Result<(Vec<u8>, Report), PipelineError> {
    let prepared = quantize::prepare(graph, s.fuse_heads)?;
    let data = Data::of(s);
    let encoder = s.encoder.as_deref().map(import_encoder).transpose()?;
    let (calib, calib_desc) = inputs_for(graph, encoder.as_ref(), Purpose::Calibration, s.calib_samples, s.seed, data)?;
    let (eval, eval_desc) = inputs_for(graph, encoder.as_ref(), Purpose::Evaluation, s.eval_samples, s.seed + 1, data)?;
    let ranges = if s.precision == Precision::Int8 {
        let mut ranges = calibrate::calibrate(&prepared.graph, &calib, s.method)?;
        if s.gptq {
            quantize::round_weights(&prepared, &mut ranges);
        }
        let mut ranges = if s.refine { refine_ranges(&prepared, ranges, &calib)? } else { ranges };
        if let Role::Classifier { .. } = graph.role {
            calibrate::narrow_for_argmax(&prepared.graph, &mut ranges, &calib)?;
        }
        Some(ranges)
    } else {
        None
    };
    let blob = quantize::quantize(&prepared, ranges.as_ref(), s.precision)?;
    let fidelity = measure(graph, &blob, &eval)?;
    let scores = match graph.role {
        Role::Autoencoder => Some(score_agreement(&runner::reference_outputs(graph, &eval)?[0], &blob, &eval[0])?),
        _ => None,
    };
    let classes = match graph.role {
        Role::Classifier { .. } => {
            Some(class_agreement(&runner::reference_outputs(graph, &eval)?[0], &blob, &eval[0], data)?)
        }
        _ => None,
    };
    let model = Model::parse(&blob)?;
    let report = Report {
        kind: model.kind().to_string(),
        precision: s.precision.to_string(),
        blob_bytes: blob.len(),
        weight_bytes: model.weight_bytes(),
        arena_bytes: model.arena_size(),
        macs: model.macs(),
        calibration: match s.precision {
            Precision::Int8 => format!(
                "{:?} over {calib_desc}{}{}",
                s.method,
                if s.gptq { "; weights rounded with error compensation (GPTQ)" } else { "" },
                if s.refine { "; clipping searched for the lowest output error" } else { "" }
            ),
            _ => "none (float)".into(),
        },
        evaluated_on: eval_desc,
        fidelity,
        classes,
        scores,
    };
    Ok((blob, report))
}

/// A classifier blob's classes of `x` (as a device computes them) against the reference's
/// `logits` of it, and both against the labels of the evaluation images (the first rows of
/// `data`'s test split) when `data` is an image directory.
pub fn class_agreement(
    logits: &Array2<f32>,
    blob: &[u8],
    x: &Array2<f32>,
    data: Data<'_>,
) -> Result<ClassAgreement, PipelineError> {
    let got = runner::classify_blob(blob, x, tinyvae::kernels::best())?;
    let labels = match data.path {
        Some(dir) if dir.is_dir() => {
            let set = Dataset::load(dir, Split::Test)?;
            Some(set.labels[..x.nrows().min(set.labels.len())].to_vec())
        }
        _ => None,
    };
    let labels = labels.filter(|l| l.len() == x.nrows());
    Ok(ClassAgreement::compare(logits, &got, labels.as_deref()))
}

/// An autoencoder blob's scores of `x` (as a device computes them) against a reference
/// reconstruction `x_hat` of it.
pub fn score_agreement(x_hat: &Array2<f32>, blob: &[u8], x: &Array2<f32>) -> Result<ScoreAgreement, PipelineError> {
    let reference = metrics::reconstruction_errors(x, x_hat);
    let got: Vec<f64> = runner::score_blob(blob, x, tinyvae::ScoreKind::SquaredError, tinyvae::kernels::best())?
        .iter()
        .map(|s| s.value() as f64)
        .collect();
    Ok(ScoreAgreement::compare(&reference, &got))
}

/// Multiply-accumulates per candidate evaluation of the clipping search, for convolutional
/// models.
const REFINE_MACS: usize = 50_000_000;

/// Fractions of a calibrated bound tried when searching a tensor's clipping range.
const CLIP_FRACTIONS: [f32; 12] = [1.0, 0.97, 0.94, 0.91, 0.88, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.5];

/// Output-aware calibration: coordinate descent over the activation tensors' lower and upper
/// bounds, shrinking each by the fraction (of [`CLIP_FRACTIONS`]) that gives the lowest mean
/// squared error of the blob's outputs against the float graph on the calibration inputs.
/// Min/max ranges spend codes on rare outliers; what is worth clipping depends on how errors
/// propagate to the output, which only the whole network shows. Runs the runtime itself, so it
/// is cheap (about a millisecond per candidate) and measures exactly what will ship.
pub fn refine_ranges(
    prepared: &Prepared,
    mut ranges: Calibration,
    calib: &[Array2<f32>],
) -> Result<Calibration, PipelineError> {
    quantize::clip_to_saturation(prepared, &mut ranges)?;
    // A subset keeps the search fast: 1000 samples for dense models (the MLPs, on the SIMD
    // kernels), and for convolutional ones (on the scalar conv kernels) as many as REFINE_MACS
    // allows per candidate, at least 16 (12,544 pixels). The held-out evaluation set judges the
    // result.
    let spatial = prepared.graph.nodes.iter().any(|n| n.op.spatial_input().is_some());
    let budget = if spatial { (REFINE_MACS / prepared.graph.macs().max(1)).clamp(16, 1000) } else { 1000 };
    let n = calib.first().map(|a| a.nrows()).unwrap_or(0).min(budget);
    let subset: Vec<Array2<f32>> = calib.iter().map(|a| a.slice(ndarray::s![..n, ..]).to_owned()).collect();
    let reference = runner::flatten(&runner::reference_outputs(&prepared.graph, &subset)?);
    let error = |r: &Calibration| -> Result<(f64, Vec<u8>), PipelineError> {
        let blob = quantize::quantize(prepared, Some(r), Precision::Int8)?;
        let got = runner::flatten(&runner::run_blob(&blob, &subset, tinyvae::kernels::best())?);
        let mse = reference.iter().zip(&got).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
        Ok((mse, blob))
    };
    let (mut best, _) = error(&ranges)?;
    let mut names: Vec<String> = ranges.span.keys().cloned().collect();
    names.sort();
    for _pass in 0..2 {
        for name in &names {
            for upper in [true, false] {
                let (lo, hi) = ranges.span[name];
                let mut chosen = (lo, hi);
                let mut seen = Vec::new();
                for f in CLIP_FRACTIONS {
                    let candidate = if upper { (lo, hi * f) } else { (lo * f, hi) };
                    ranges.span.insert(name.clone(), candidate);
                    let (mse, blob) = error(&ranges)?;
                    // Tensors whose parameters are fixed (pixels, sigmoid outputs) give the same blob.
                    if seen.contains(&blob) {
                        continue;
                    }
                    seen.push(blob);
                    if mse < best {
                        best = mse;
                        chosen = candidate;
                    }
                }
                ranges.span.insert(name.clone(), chosen);
            }
        }
    }
    Ok(ranges)
}

/// Blob outputs against the float graph's on `inputs`. Bernoulli decoders use a peak of 1.0
/// (pixel intensities); anything else the reference's own range.
pub fn measure(graph: &Graph, blob: &[u8], inputs: &[Array2<f32>]) -> Result<Fidelity, PipelineError> {
    let reference = runner::reference_outputs(graph, inputs)?;
    let got = runner::run_blob(blob, inputs, tinyvae::kernels::best())?;
    let peak = match graph.role {
        Role::Decoder { bernoulli: true, .. } => Some(1.0),
        _ => None,
    };
    let n = inputs.first().map(|a| a.nrows()).unwrap_or(0);
    Ok(Fidelity::compare(&runner::flatten(&reference), &runner::flatten(&got), n, peak))
}
