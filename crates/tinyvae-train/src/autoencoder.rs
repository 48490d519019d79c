//! The deterministic autoencoders of the lecture, `L_AE = sum_x L(x, g(h(x)))`, as one member
//! of the training engine with three variants chosen by [`AeConfig`]:
//!
//! * **AE**: an encoder `h` and a decoder `g`. The *linear* AE has no hidden layer and no
//!   nonlinearity (`h(x) = W_e x + b_e`, `g(z) = W_d z + b_d`) but the optional output sigmoid;
//!   the *MLP* AE has ReLU hidden layers. `L` is the squared error or the cross-entropy.
//! * **DAE** (denoising): the encoder sees a corrupted input `x~ ~ q(x~|x)` (zero-masking,
//!   additive Gaussian or salt-and-pepper noise, one draw per image and step from the step's
//!   seeded stream) and the loss is taken against the *clean* `x`:
//!   `L_DAE = sum_x E_q(x~|x)[L(x, g(h(x~)))]`.
//! * **CAE** (contractive): the code is one sigmoid layer `h = sigmoid(W x + b)` and the loss adds
//!   `lambda ||J_h(x)||_F^2`, computed analytically as
//!   `sum_j (h_j (1 - h_j))^2 sum_i W_ji^2` ([`contractive_penalty`]).
//!
//! Evaluation reports the reconstruction error per image on the clean test images and, when a
//! corruption is configured (the DAE's own, or `eval_corruption` for a plain AE), on corrupted
//! test images against the clean ones, with the corruption drawn from the evaluation seed so two
//! models are compared on the very same corrupted images. Export writes `encoder.onnx` (one
//! output, z: a deterministic encoder) and `decoder.onnx` (z to pixels).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};
use tinyvae_compiler::ir::{Graph, Op, Role};
use tinyvae_data::corrupt::Corruption;

use crate::data::{stream, ImageSet, Stream};
use crate::engine::{Batch, Member, StepContext};
use crate::error::{TrainError, WeightsError};
use crate::graph::{check_graph, checked, graph_inputs, mlp_nodes, node, probe, within_tolerance, write_graphs};
use crate::loss::bce_with_logits;
use crate::nn::{Mlp, Parameter};

pub use crate::loss::squared_error;

/// Images per forward pass during evaluation (the result does not depend on it).
pub(crate) const EVAL_BATCH: usize = 500;

/// The reconstruction loss `L(x, x^)`, summed over pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AeLoss {
    /// Cross-entropy of sigmoid outputs against greyscale targets (computed from the logits).
    Bce,
    /// Squared error `||x - x^||^2`.
    Mse,
}

/// The corruption processes q(x~|x) of the lecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptionKind {
    /// Each pixel set to 0 with probability `level` ("zeroing pixels at random").
    Masking,
    /// `x + N(0, level^2)`, clipped to [0, 1].
    Gaussian,
    /// Each pixel set to 0 or 1 (even odds) with probability `level`.
    SaltPepper,
}

/// A corruption process and its strength (rate, or standard deviation for Gaussian noise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CorruptionSpec {
    /// Which process.
    pub kind: CorruptionKind,
    /// Its rate (masking, salt-and-pepper) or standard deviation (Gaussian).
    pub level: f32,
}

impl CorruptionSpec {
    /// Parses `masking`, `gaussian` or `salt-pepper` with a level, checking its range.
    pub fn parse(kind: &str, level: f32) -> Result<Self, TrainError> {
        let process = Corruption::new(kind, level).map_err(TrainError::Config)?;
        Ok(Self::from_process(process))
    }

    fn from_process(c: Corruption) -> Self {
        match c {
            Corruption::Masking { rate } => CorruptionSpec { kind: CorruptionKind::Masking, level: rate },
            Corruption::Gaussian { sigma } => CorruptionSpec { kind: CorruptionKind::Gaussian, level: sigma },
            Corruption::SaltPepper { rate } => CorruptionSpec { kind: CorruptionKind::SaltPepper, level: rate },
        }
    }

    /// The process (shared with the figures, so a seed corrupts the same way everywhere).
    pub fn process(&self) -> Corruption {
        match self.kind {
            CorruptionKind::Masking => Corruption::Masking { rate: self.level },
            CorruptionKind::Gaussian => Corruption::Gaussian { sigma: self.level },
            CorruptionKind::SaltPepper => Corruption::SaltPepper { rate: self.level },
        }
    }

    /// Checks the level.
    pub fn validate(&self) -> Result<(), TrainError> {
        let name = match self.kind {
            CorruptionKind::Masking => "masking",
            CorruptionKind::Gaussian => "gaussian",
            CorruptionKind::SaltPepper => "salt-pepper",
        };
        Corruption::new(name, self.level).map(|_| ()).map_err(TrainError::Config)
    }

    /// Corrupts a `batch x pixels` tensor, image after image, drawing from `rng`.
    pub fn corrupt(&self, x: &Tensor, rng: &mut tinyvae::Rng) -> Result<Tensor, TrainError> {
        let mut v: Vec<f32> = x.flatten_all()?.to_vec1()?;
        self.process().apply(&mut v, rng);
        Ok(Tensor::from_vec(v, x.shape(), &Device::Cpu)?)
    }
}

/// Shape and objective of an AE, DAE or CAE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AeConfig {
    /// Hidden widths of the encoder (ReLU after each); empty: `z = W_e x + b_e`.
    pub encoder_hidden: Vec<usize>,
    /// Hidden widths of the decoder (ReLU after each); empty: `x^ = W_d z + b_d` (+ sigmoid).
    pub decoder_hidden: Vec<usize>,
    /// Size of the code z.
    pub latent: usize,
    /// Reconstruction loss.
    pub loss: AeLoss,
    /// Sigmoid on the decoder's output (required by the cross-entropy loss).
    pub output_sigmoid: bool,
    /// Sigmoid on the code: `z = sigmoid(W x + b)` (the CAE's hidden layer).
    pub sigmoid_code: bool,
    /// Training corruption of a denoising AE.
    pub corruption: Option<CorruptionSpec>,
    /// The CAE's `lambda` on `||J_h(x)||_F^2` (0: off). Needs a single sigmoid encoder layer.
    pub contractive: f64,
    /// Also evaluate on inputs corrupted this way (a DAE evaluates on its own corruption when
    /// this is `None`).
    pub eval_corruption: Option<CorruptionSpec>,
}

impl Default for AeConfig {
    fn default() -> Self {
        AeConfig::mlp(&[400], 32)
    }
}

impl AeConfig {
    /// An MLP autoencoder `input-hidden..-latent-..hidden-input`, cross-entropy loss.
    pub fn mlp(hidden: &[usize], latent: usize) -> Self {
        AeConfig {
            encoder_hidden: hidden.to_vec(),
            decoder_hidden: hidden.iter().rev().copied().collect(),
            latent,
            loss: AeLoss::Bce,
            output_sigmoid: true,
            sigmoid_code: false,
            corruption: None,
            contractive: 0.0,
            eval_corruption: None,
        }
    }

    /// The linear autoencoder: one matrix each way, squared error, no output sigmoid.
    pub fn linear(latent: usize) -> Self {
        AeConfig { loss: AeLoss::Mse, output_sigmoid: false, ..Self::mlp(&[], latent) }
    }

    /// A denoising MLP autoencoder trained (and evaluated) on `corruption`.
    pub fn denoising(hidden: &[usize], latent: usize, corruption: CorruptionSpec) -> Self {
        AeConfig { corruption: Some(corruption), ..Self::mlp(hidden, latent) }
    }

    /// A contractive autoencoder: code `sigmoid(W x + b)` of `latent` units, penalty `lambda`,
    /// an MLP decoder with `decoder_hidden` ReLU layers.
    pub fn contractive(decoder_hidden: &[usize], latent: usize, lambda: f64) -> Self {
        AeConfig {
            encoder_hidden: Vec::new(),
            decoder_hidden: decoder_hidden.to_vec(),
            sigmoid_code: true,
            contractive: lambda,
            ..Self::mlp(&[], latent)
        }
    }

    /// The corruption evaluated on: `eval_corruption`, else the training corruption.
    pub fn evaluation_corruption(&self) -> Option<CorruptionSpec> {
        self.eval_corruption.or(self.corruption)
    }

    /// Checks the sizes and combinations, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: &str| Err(TrainError::Config(m.to_string()));
        if self.latent == 0 {
            return bad("latent size must be at least 1");
        }
        if self.encoder_hidden.contains(&0) || self.decoder_hidden.contains(&0) {
            return bad("hidden layers must have at least one unit");
        }
        if self.loss == AeLoss::Bce && !self.output_sigmoid {
            return bad("the cross-entropy loss needs the output sigmoid (or use the squared error)");
        }
        if !(self.contractive.is_finite() && self.contractive >= 0.0) {
            return bad("the contractive penalty weight must be >= 0");
        }
        if self.contractive > 0.0 && !(self.sigmoid_code && self.encoder_hidden.is_empty()) {
            return bad("the contractive penalty is the Jacobian of a single sigmoid layer h = sigmoid(W x + b): \
                 use no encoder hidden layers and a sigmoid code");
        }
        for c in self.corruption.iter().chain(&self.eval_corruption) {
            c.validate()?;
        }
        Ok(())
    }
}

/// `||J_h(x)||_F^2` per row for the code `h = sigmoid(x W^T + b)` of `x` (`batch x in`), weight
/// `W` (`latent x in`) and bias `b`: `sum_j (h_j (1 - h_j))^2 sum_i W_ji^2`, since
/// `dh_j/dx_i = h_j (1 - h_j) W_ji`.
pub fn contractive_penalty(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor, TrainError> {
    let h = candle_nn::ops::sigmoid(&x.matmul(&weight.t()?)?.broadcast_add(bias)?)?;
    contractive_penalty_of_code(&h, weight)
}

/// [`contractive_penalty`] from the code `h` already computed.
pub fn contractive_penalty_of_code(h: &Tensor, weight: &Tensor) -> Result<Tensor, TrainError> {
    let slope = (h * (1.0 - h)?)?.sqr()?;
    let row_norms = weight.sqr()?.sum(D::Minus1)?;
    Ok(slope.broadcast_mul(&row_norms)?.sum(D::Minus1)?)
}

/// An autoencoder: encoder and decoder MLPs (`encoder.<i>`, `decoder.<i>`).
#[derive(Debug, Clone)]
pub struct Autoencoder {
    config: AeConfig,
    input_len: usize,
    encoder: Mlp,
    decoder: Mlp,
}

impl Autoencoder {
    fn widths(config: &AeConfig, input_len: usize) -> (Vec<usize>, Vec<usize>) {
        let enc = [vec![input_len], config.encoder_hidden.clone(), vec![config.latent]].concat();
        let dec = [vec![config.latent], config.decoder_hidden.clone(), vec![input_len]].concat();
        (enc, dec)
    }

    /// A freshly initialised autoencoder, encoder then decoder drawn from `rng`.
    pub(crate) fn init(config: &AeConfig, input_len: usize, rng: &mut tinyvae::Rng) -> Result<Self, TrainError> {
        config.validate()?;
        let (enc, dec) = Self::widths(config, input_len);
        Ok(Autoencoder {
            config: config.clone(),
            input_len,
            encoder: Mlp::init("encoder", &enc, rng)?,
            decoder: Mlp::init("decoder", &dec, rng)?,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AeConfig {
        &self.config
    }

    /// Pixels per image.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// The encoder (its output, through a sigmoid for a CAE, is z).
    pub fn encoder(&self) -> &Mlp {
        &self.encoder
    }

    /// The decoder (its output, through the output sigmoid when configured, is the image).
    pub fn decoder(&self) -> &Mlp {
        &self.decoder
    }

    /// The code z of `x`.
    pub fn code(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let pre = self.encoder.forward(x, None)?;
        Ok(if self.config.sigmoid_code { candle_nn::ops::sigmoid(&pre)? } else { pre })
    }

    /// Decoder pre-activations for the code `z`.
    pub fn logits(&self, z: &Tensor) -> Result<Tensor, TrainError> {
        self.decoder.forward(z, None)
    }

    /// The reconstruction of the code `z`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor, TrainError> {
        let logits = self.logits(z)?;
        Ok(if self.config.output_sigmoid { candle_nn::ops::sigmoid(&logits)? } else { logits })
    }

    /// The configured loss per row between the decoder's `logits` and `target`.
    pub fn loss(&self, logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
        match self.config.loss {
            AeLoss::Bce => bce_with_logits(logits, target),
            AeLoss::Mse => squared_error(&self.output(logits)?, target),
        }
    }

    fn output(&self, logits: &Tensor) -> Result<Tensor, TrainError> {
        Ok(if self.config.output_sigmoid { candle_nn::ops::sigmoid(logits)? } else { logits.clone() })
    }

    /// Reconstruction errors of `inputs` against `targets` (the clean images), summed over
    /// images: (configured loss, squared error, CAE penalty).
    fn errors(&self, inputs: &Tensor, targets: &Tensor) -> Result<(f64, f64, f64), TrainError> {
        let z = self.code(inputs)?;
        let logits = self.logits(&z)?;
        let sum = |t: Tensor| -> Result<f64, TrainError> {
            Ok(t.to_dtype(candle_core::DType::F64)?.sum_all()?.to_scalar::<f64>()?)
        };
        let loss = sum(self.loss(&logits, targets)?)?;
        let se = sum(squared_error(&self.output(&logits)?, targets)?)?;
        let pen = if self.config.sigmoid_code {
            sum(contractive_penalty_of_code(&z, self.encoder.layers()[0].weight())?)?
        } else {
            0.0
        };
        Ok((loss, se, pen))
    }

    /// The metrics of [`Member::evaluate`] (reused by the AAE).
    pub(crate) fn ae_metrics(&self, images: &ImageSet, seed: u64) -> Result<AeMetrics, TrainError> {
        let corruption = self.config.evaluation_corruption();
        let mut rng = stream(seed, Stream::Corrupt, 0);
        let (mut loss, mut se, mut pen, mut c_loss, mut c_se) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for batch in images.batches(EVAL_BATCH) {
            let x = images.tensor(batch)?;
            let (l, s, p) = self.errors(&x, &x)?;
            (loss, se, pen) = (loss + l, se + s, pen + p);
            if let Some(c) = corruption {
                let (l, s, _) = self.errors(&c.corrupt(&x, &mut rng)?, &x)?;
                (c_loss, c_se) = (c_loss + l, c_se + s);
            }
        }
        let n = images.count.max(1) as f64;
        Ok(AeMetrics {
            reconstruction: loss / n,
            squared_error: se / n,
            corrupted_reconstruction: corruption.map(|_| c_loss / n),
            corrupted_squared_error: corruption.map(|_| c_se / n),
            contractive: self.config.sigmoid_code.then_some(pen / n),
            images: images.count,
        })
    }

    /// The encoder graph: `x -> MLP [-> Sigmoid] -> z`, one output (a deterministic encoder).
    pub fn encoder_graph(&self) -> Result<Graph, TrainError> {
        let mut nodes = Vec::new();
        if self.config.sigmoid_code {
            mlp_nodes("encoder", &self.encoder, "x", "z_pre", &mut nodes)?;
            nodes.push(node("encoder_sigmoid", Op::Sigmoid, &["z_pre"], "z"));
        } else {
            mlp_nodes("encoder", &self.encoder, "x", "z", &mut nodes)?;
        }
        checked(Graph {
            inputs: graph_inputs("x", self.input_len, 0),
            nodes,
            outputs: vec!["z".into()],
            role: Role::Encoder { latent: self.config.latent, classes: 0 },
        })
    }

    /// The decoder graph: `z -> MLP [-> Sigmoid] -> x_mean`.
    pub fn decoder_graph(&self) -> Result<Graph, TrainError> {
        let mut nodes = Vec::new();
        if self.config.output_sigmoid {
            mlp_nodes("decoder", &self.decoder, "z", "logits", &mut nodes)?;
            nodes.push(node("decoder_sigmoid", Op::Sigmoid, &["logits"], "x_mean"));
        } else {
            mlp_nodes("decoder", &self.decoder, "z", "x_mean", &mut nodes)?;
        }
        checked(Graph {
            inputs: graph_inputs("z", self.config.latent, 0),
            nodes,
            outputs: vec!["x_mean".into()],
            role: Role::Decoder { latent: self.config.latent, classes: 0, bernoulli: self.config.loss == AeLoss::Bce },
        })
    }

    /// Largest difference between the IR graphs and candle on random inputs (x uniform in
    /// [0, 1], z standard normal).
    pub fn export_discrepancy(&self, samples: usize) -> Result<f32, TrainError> {
        let mut rng = stream(0xE4_907, Stream::Eval, 2);
        let (x_arr, x) = probe(&mut rng, samples, self.input_len, false)?;
        let (z_arr, z) = probe(&mut rng, samples, self.config.latent, true)?;
        let enc = check_graph(&self.encoder_graph()?, &[x_arr], &[self.code(&x)?])?;
        let dec = check_graph(&self.decoder_graph()?, &[z_arr], &[self.decode(&z)?])?;
        Ok(enc.max(dec))
    }

    /// Checks the graphs (within the export tolerance) and writes `encoder.onnx` and
    /// `decoder.onnx` into `dir`.
    pub fn export_onnx(&self, dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
        within_tolerance("the IR graphs", self.export_discrepancy(16)?)?;
        write_graphs(dir, &[("encoder.onnx", self.encoder_graph()?), ("decoder.onnx", self.decoder_graph()?)])
    }

    /// Parameters: encoder then decoder, each layer's weight then bias.
    pub(crate) fn ae_parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.encoder.push_parameters(&mut out);
        let ne = out.len();
        self.decoder.push_parameters(&mut out);
        // Weight decay is configured per network.
        for (k, p) in out.iter_mut().enumerate() {
            p.in_encoder = k < ne;
        }
        out
    }

    /// The autoencoder stored under `encoder.*` and `decoder.*` in `weights`.
    pub(crate) fn ae_from_weights(
        config: &AeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        config.validate().map_err(WeightsError::config)?;
        let (enc, dec) = Self::widths(config, input_len);
        let encoder = Mlp::from_tensors("encoder", weights)?;
        encoder.expect_widths("encoder", &enc)?;
        let decoder = Mlp::from_tensors("decoder", weights)?;
        decoder.expect_widths("decoder", &dec)?;
        Ok(Autoencoder { config: config.clone(), input_len, encoder, decoder })
    }
}

/// Test (or validation) results of an autoencoder, per image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AeMetrics {
    /// The configured loss on clean inputs (cross-entropy or squared error, summed over pixels).
    pub reconstruction: f64,
    /// Squared error `||g(h(x)) - x||^2` on clean inputs (comparable across losses).
    pub squared_error: f64,
    /// The configured loss of corrupted inputs' reconstructions against the clean images.
    pub corrupted_reconstruction: Option<f64>,
    /// Their squared error against the clean images.
    pub corrupted_squared_error: Option<f64>,
    /// `||J_h(x)||_F^2` of a sigmoid code.
    pub contractive: Option<f64>,
    /// Images averaged over.
    pub images: usize,
}

impl AeMetrics {
    pub(crate) fn describe(&self) -> String {
        let mut s = format!("reconstruction {:.2} (squared error {:.2})", self.reconstruction, self.squared_error);
        if let (Some(c), Some(se)) = (self.corrupted_reconstruction, self.corrupted_squared_error) {
            s += &format!(", on corrupted inputs {c:.2} (squared error {se:.2})");
        }
        if let Some(p) = self.contractive {
            s += &format!(", ||J||_F^2 {p:.3}");
        }
        s
    }
}

impl Member for Autoencoder {
    type Config = AeConfig;
    type Metrics = AeMetrics;
    const KIND: &'static str = "ae";

    fn check(config: &AeConfig) -> Result<(), TrainError> {
        config.validate()
    }

    fn new(config: &AeConfig, input_len: usize, seed: u64) -> Result<Self, TrainError> {
        Self::init(config, input_len, &mut stream(seed, Stream::Init, 0))
    }

    fn from_weights(
        config: &AeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        Self::ae_from_weights(config, input_len, weights)
    }

    fn config(&self) -> &AeConfig {
        &self.config
    }

    fn parameters(&self) -> Vec<Parameter> {
        self.ae_parameters()
    }

    fn uses_labels(_: &AeConfig) -> bool {
        false
    }

    fn terms(config: &AeConfig) -> Vec<&'static str> {
        if config.contractive > 0.0 {
            vec!["loss", "reconstruction", "contractive"]
        } else {
            vec!["loss", "reconstruction"]
        }
    }

    /// Draws the corruption (for a DAE) from the step's stream; the loss compares the
    /// reconstruction of the corrupted input with the clean one.
    fn train_step(&self, batch: &Batch<'_>, ctx: &mut StepContext<'_>) -> Result<Vec<f64>, TrainError> {
        let n = batch.len() as f64;
        let clean = &batch.x;
        let input = match &self.config.corruption {
            Some(c) => c.corrupt(clean, ctx.rng)?,
            None => clean.clone(),
        };
        let z = self.code(&input)?;
        let recon = self.loss(&self.logits(&z)?, clean)?.sum_all()?;
        let mut terms = vec![0.0, recon.to_scalar::<f32>()? as f64];
        let objective = if self.config.contractive > 0.0 {
            let pen = contractive_penalty_of_code(&z, self.encoder.layers()[0].weight())?.sum_all()?;
            terms.push(pen.to_scalar::<f32>()? as f64);
            ((&recon + (pen * (self.config.contractive * ctx.kl_weight))?)? / n)?
        } else {
            (recon / n)?
        };
        terms[0] = ctx.minimize(0, &objective)? * n;
        Ok(terms)
    }

    fn evaluate(&self, images: &ImageSet, _: Option<&[u8]>, seed: u64) -> Result<AeMetrics, TrainError> {
        self.ae_metrics(images, seed)
    }

    /// A DAE is chosen on corrupted inputs (what it is trained for); any other on clean ones.
    fn selection(config: &AeConfig, m: &AeMetrics) -> f64 {
        match (config.corruption, m.corrupted_reconstruction) {
            (Some(_), Some(c)) => c,
            _ => m.reconstruction,
        }
    }

    fn describe(m: &AeMetrics) -> String {
        m.describe()
    }

    fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
        self.export_onnx(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use crate::data::{epoch_order, gather_batch, TrainingData};
    use crate::engine::{run, RunData};

    fn flat(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn corruption_rates_levels_and_determinism() {
        let x = Tensor::full(0.5f32, (100, 1000), &Device::Cpu).unwrap();
        let run = |spec: CorruptionSpec, seed: u64| flat(&spec.corrupt(&x, &mut tinyvae::Rng::new(seed)).unwrap());
        for (kind, rate) in [("masking", 0.25), ("salt-pepper", 0.25), ("masking", 0.5), ("salt-pepper", 0.1)] {
            let spec = CorruptionSpec::parse(kind, rate).unwrap();
            let v = run(spec, 1);
            let changed = v.iter().filter(|&&p| p != 0.5).count() as f64 / v.len() as f64;
            assert!((changed - rate as f64).abs() < 0.01, "{kind} {rate}: {changed} of the pixels changed");
            let allowed: &[f32] = if kind == "masking" { &[0.0, 0.5] } else { &[0.0, 0.5, 1.0] };
            assert!(v.iter().all(|p| allowed.contains(p)), "{kind}: unexpected values");
            if kind == "salt-pepper" {
                let salt = v.iter().filter(|&&p| p == 1.0).count() as f64 / v.len() as f64;
                assert!((salt - rate as f64 / 2.0).abs() < 0.01, "salt {salt}");
            }
            assert_eq!(v, run(spec, 1), "{kind}: same seed, same corruption");
            assert_ne!(v, run(spec, 2), "{kind}: another seed, another corruption");
        }
        let g = run(CorruptionSpec::parse("gaussian", 0.1).unwrap(), 3);
        let sd = (g.iter().map(|p| ((p - 0.5) as f64).powi(2)).sum::<f64>() / g.len() as f64).sqrt();
        assert!((sd - 0.1).abs() < 0.003, "gaussian sd {sd}");
        assert!(CorruptionSpec::parse("blur", 0.1).is_err() && CorruptionSpec::parse("masking", 1.5).is_err());
    }

    /// 8x8 images: a bright bar at a random row or column.
    fn bars(count: usize, seed: u64) -> ImageSet {
        let mut rng = tinyvae::Rng::new(seed);
        let mut pixels = vec![0f32; count * 64];
        for img in pixels.chunks_mut(64) {
            let (k, vertical) = (rng.below(8) as usize, rng.below(2) == 1);
            for (i, p) in img.iter_mut().enumerate() {
                let on = if vertical { i % 8 == k } else { i / 8 == k };
                *p = if on { 0.9 } else { 0.05 * rng.uniform() };
            }
        }
        ImageSet { count, rows: 8, cols: 8, pixels }
    }

    /// The DAE's first training step, recomputed by hand: the batch the engine draws, the
    /// corruption drawn from the step's seeded stream, and the loss against the CLEAN batch.
    #[test]
    fn denoising_loss_is_against_the_clean_input() {
        let data = RunData::unlabelled(TrainingData { train: bars(40, 1), validation: None, test: None });
        let config = AeConfig::denoising(&[16], 4, CorruptionSpec::parse("masking", 0.25).unwrap());
        let dir = std::env::temp_dir().join(format!("tinyvae-dae-unit-{}", std::process::id()));
        let cfg = TrainConfig { epochs: 1, batch_size: 40, seed: 9, test_every: 0, ..TrainConfig::new("", &dir) };
        let report = run::<Autoencoder>(&config, &cfg, &data).unwrap();
        let logged = report.history[0].train["reconstruction"];

        let initial = Autoencoder::new(&config, 64, cfg.seed).unwrap();
        let mut rng = stream(cfg.seed, Stream::Step, 0);
        let order = epoch_order(cfg.seed, 0, 40);
        let clean = gather_batch(&data.images.train, &order, 0, 1.0, &mut rng).unwrap();
        let corrupted = config.corruption.unwrap().corrupt(&clean, &mut rng).unwrap();
        let logits = initial.logits(&initial.code(&corrupted).unwrap()).unwrap();
        let mean = |t: Tensor| t.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64 / 40.0;
        let against_clean = mean(initial.loss(&logits, &clean).unwrap());
        let against_corrupted = mean(initial.loss(&logits, &corrupted).unwrap());
        assert_eq!(logged, against_clean);
        assert_ne!(logged, against_corrupted);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
