//! The adversarial autoencoder: a deterministic autoencoder whose codes are pushed towards a
//! prior p(z) by a discriminator `d(z)` on the latent space, which replaces the VAE's KL term.
//! Each step runs the lecture's three phases in turn, each with its own Adam optimiser:
//!
//! 1. **reconstruction**: encoder and decoder minimise `-log p(x | z = q(x))` (cross-entropy);
//! 2. **discriminator**: `d` minimises `-log d(z_prior) - log(1 - d(q(x)))` (the codes
//!    detached, so only `d` learns);
//! 3. **generator**: the encoder minimises `-log d(q(x))`, fooling the discriminator.
//!
//! With labels ([`AaeConfig::label_classes`] > 0) the discriminator also reads the one-hot
//! label: a prior sample drawn from component k comes with label k, an image's code with the
//! image's label. With the 2-D mixture prior (components on a circle) each class is then mapped
//! to its own component, as in the lecture's "incorporating label information" figure. The
//! decoder stays unconditional (z to pixels); the labels shape where codes go, nothing else.
//!
//! Evaluation adds to the autoencoder's reconstruction error two measures of how well q(z)
//! matches the prior: the squared maximum mean discrepancy between test codes and prior samples
//! ([`mmd2`]) and, for the labelled mixture, the fraction of codes nearest to their class's
//! component.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::autoencoder::{AeConfig, AeMetrics, Autoencoder, EVAL_BATCH};
use crate::data::{stream, ImageSet, Stream};
use crate::engine::{Batch, Member, OptimizerSpec, StepContext};
use crate::error::{TrainError, WeightsError};
use crate::loss::bce_with_logits;
use crate::nn::{one_hot, Mlp, Parameter};

/// Codes (and as many prior samples) compared by the MMD at evaluation.
const MMD_SAMPLES: usize = 2000;
/// Kernel bandwidths of the MMD (a sum of Gaussian kernels, so it sees every scale from a
/// component's width to the layout of the whole prior).
const MMD_BANDWIDTHS: [f64; 5] = [0.25, 0.5, 1.0, 2.0, 4.0];

/// The prior the codes are matched to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prior {
    /// N(0, I) in any dimension.
    Normal,
    /// A mixture of `components` isotropic 2-D Gaussians (standard deviation `std`) whose means
    /// sit evenly on a circle of `radius`: component k at angle `2 pi k / components`.
    Mixture {
        /// Number of components (one per class when labels are used).
        components: usize,
        /// Radius of the circle of means.
        radius: f32,
        /// Standard deviation of each component.
        std: f32,
    },
}

impl Prior {
    /// The lecture's 10-component 2-D mixture (radius 4, standard deviation 0.5: neighbouring
    /// means are 2.5 apart, five standard deviations).
    pub fn mixture10() -> Self {
        Prior::Mixture { components: 10, radius: 4.0, std: 0.5 }
    }

    /// Mean of mixture component `k`.
    pub fn component_mean(&self, k: usize) -> [f32; 2] {
        match *self {
            Prior::Normal => [0.0, 0.0],
            Prior::Mixture { components, radius, .. } => {
                let a = 2.0 * std::f32::consts::PI * k as f32 / components as f32;
                [radius * a.cos(), radius * a.sin()]
            }
        }
    }

    /// One sample of `latent` values into `out`: from component `component` of a mixture (a
    /// uniformly drawn one when `None`), or from N(0, I).
    pub fn sample(&self, component: Option<usize>, rng: &mut tinyvae::Rng, out: &mut [f32]) {
        match *self {
            Prior::Normal => rng.fill_gaussian(out),
            Prior::Mixture { components, std, .. } => {
                let k = component.unwrap_or_else(|| rng.below(components as u32) as usize);
                let m = self.component_mean(k);
                for (v, c) in out.iter_mut().zip(m) {
                    *v = c + std * rng.gaussian();
                }
            }
        }
    }

    /// `n x latent` samples, row i from component `components[i]` when given.
    pub fn samples(
        &self,
        n: usize,
        latent: usize,
        components: Option<&[u8]>,
        rng: &mut tinyvae::Rng,
    ) -> Result<Tensor, TrainError> {
        let mut v = vec![0f32; n * latent];
        for (i, row) in v.chunks_mut(latent).enumerate() {
            self.sample(components.map(|c| c[i] as usize), rng, row);
        }
        Ok(Tensor::from_vec(v, (n, latent), &Device::Cpu)?)
    }
}

/// Shape and training of an adversarial autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AaeConfig {
    /// The deterministic autoencoder (cross-entropy; no corruption, no contractive penalty).
    pub autoencoder: AeConfig,
    /// Hidden widths of the discriminator (ReLU after each; one logit out).
    pub discriminator_hidden: Vec<usize>,
    /// The prior p(z).
    pub prior: Prior,
    /// Classes of the one-hot label fed to the discriminator with z (0: no labels). Needs a
    /// mixture prior with one component per class.
    pub label_classes: usize,
    /// Learning rate of the discriminator phase relative to the reconstruction phase's.
    pub discriminator_lr_scale: f64,
    /// Learning rate of the generator phase relative to the reconstruction phase's.
    pub generator_lr_scale: f64,
}

impl Default for AaeConfig {
    fn default() -> Self {
        AaeConfig::labelled_mixture(&[400], &[256, 256])
    }
}

impl AaeConfig {
    /// The lecture's labelled AAE: 2-D codes, the 10-component mixture prior, labels in the
    /// discriminator.
    pub fn labelled_mixture(hidden: &[usize], discriminator_hidden: &[usize]) -> Self {
        AaeConfig {
            autoencoder: AeConfig::mlp(hidden, 2),
            discriminator_hidden: discriminator_hidden.to_vec(),
            prior: Prior::mixture10(),
            label_classes: 10,
            discriminator_lr_scale: 0.03,
            generator_lr_scale: 1.0,
        }
    }

    /// Checks sizes and combinations, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        self.autoencoder.validate()?;
        if self.autoencoder.corruption.is_some() || self.autoencoder.contractive > 0.0 {
            return bad("the AAE's autoencoder takes no corruption and no contractive penalty".into());
        }
        if self.discriminator_hidden.contains(&0) {
            return bad("discriminator hidden layers must have at least one unit".into());
        }
        for (name, v) in [("discriminator", self.discriminator_lr_scale), ("generator", self.generator_lr_scale)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("the {name} learning-rate scale must be positive"));
            }
        }
        if let Prior::Mixture { components, radius, std } = self.prior {
            if self.autoencoder.latent != 2 {
                return bad(format!("the mixture prior is 2-D; the latent size is {}", self.autoencoder.latent));
            }
            if components == 0 || !(radius.is_finite() && std.is_finite() && std > 0.0) {
                return bad("the mixture needs components, a finite radius and a positive std".into());
            }
        }
        match (self.label_classes, self.prior) {
            (0, _) => Ok(()),
            (c, Prior::Mixture { components, .. }) if c == components => Ok(()),
            (c, _) => bad(format!("labels in the discriminator need a mixture prior with {c} components")),
        }
    }
}

/// An adversarial autoencoder: the autoencoder (`encoder.*`, `decoder.*`) and the
/// discriminator (`discriminator.*`).
#[derive(Debug, Clone)]
pub struct Aae {
    config: AaeConfig,
    ae: Autoencoder,
    discriminator: Mlp,
}

/// Results of an AAE on a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AaeMetrics {
    /// Reconstruction (cross-entropy and squared error per image).
    #[serde(flatten)]
    pub autoencoder: AeMetrics,
    /// Squared maximum mean discrepancy between the codes of (up to 2,000) images and as many
    /// prior samples (each drawn from its image's class component when labels are used); 0
    /// when q(z) equals the prior, up to sampling noise.
    pub prior_mmd: f64,
    /// For the labelled mixture: the fraction of codes whose nearest component mean is their
    /// class's.
    pub component_accuracy: Option<f64>,
}

/// Unbiased squared MMD between the rows of `a` and `b` (`n x d` each, row-major) under a sum
/// of Gaussian kernels of widths 0.25, 0.5, 1, 2 and 4 (`MMD_BANDWIDTHS`).
pub fn mmd2(a: &[f32], b: &[f32], d: usize) -> f64 {
    let k = |x: &[f32], y: &[f32]| -> f64 {
        let dist: f64 = x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum();
        MMD_BANDWIDTHS.iter().map(|s| (-dist / (2.0 * s * s)).exp()).sum::<f64>() / MMD_BANDWIDTHS.len() as f64
    };
    let rows = |v: &[f32]| v.chunks(d).map(|r| r.to_vec()).collect::<Vec<_>>();
    let (a, b) = (rows(a), rows(b));
    let within = |s: &[Vec<f32>]| -> f64 {
        let n = s.len();
        let mut t = 0.0;
        for i in 0..n {
            for j in i + 1..n {
                t += k(&s[i], &s[j]);
            }
        }
        2.0 * t / (n * (n - 1)).max(1) as f64
    };
    let mut cross = 0.0;
    for x in &a {
        for y in &b {
            cross += k(x, y);
        }
    }
    within(&a) + within(&b) - 2.0 * cross / (a.len() * b.len()).max(1) as f64
}

impl Aae {
    fn widths(config: &AaeConfig) -> Vec<usize> {
        let input = config.autoencoder.latent + config.label_classes;
        [vec![input], config.discriminator_hidden.clone(), vec![1]].concat()
    }

    /// The autoencoder part.
    pub fn autoencoder(&self) -> &Autoencoder {
        &self.ae
    }

    /// The discriminator (logit of "drawn from the prior").
    pub fn discriminator(&self) -> &Mlp {
        &self.discriminator
    }

    /// Discriminator logits for codes `z` (with one-hot labels `y` when labels are used).
    pub fn discriminate(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor, TrainError> {
        let input = match y {
            Some(y) => Tensor::cat(&[z, y], 1)?,
            None => z.clone(),
        };
        self.discriminator.forward(&input, None)
    }

    fn labels_one_hot(&self, labels: Option<&[u8]>) -> Result<Option<Tensor>, TrainError> {
        match (self.config.label_classes, labels) {
            (0, _) => Ok(None),
            (c, Some(l)) => Ok(Some(one_hot(l, c)?)),
            (_, None) => Err(TrainError::Data("this AAE feeds labels to its discriminator; none were given".into())),
        }
    }

    /// `-mean log sigmoid(logits)` (target 1) or `-mean log(1 - sigmoid(logits))` (target 0).
    fn mean_bce(logits: &Tensor, target: f64) -> Result<Tensor, TrainError> {
        let t = (logits.ones_like()? * target)?;
        Ok(bce_with_logits(logits, &t)?.mean_all()?)
    }

    /// Phase 1: encoder and decoder step on the reconstruction loss (mean per image).
    pub(crate) fn reconstruction_phase(&self, x: &Tensor, ctx: &mut StepContext<'_>) -> Result<f64, TrainError> {
        let logits = self.ae.logits(&self.ae.code(x)?)?;
        let recon = (self.ae.loss(&logits, x)?.sum_all()? / x.dims()[0] as f64)?;
        ctx.minimize(0, &recon)
    }

    /// Phase 2: the discriminator steps on telling prior samples (drawn from the step's stream,
    /// from each image's class component when labels are used) from the images' codes, which
    /// are detached so that no gradient reaches the encoder. Returns the loss and the number
    /// of correct decisions over both halves divided by 2 (per-image accuracy, summed).
    pub(crate) fn discriminator_phase(
        &self,
        x: &Tensor,
        labels: Option<&[u8]>,
        ctx: &mut StepContext<'_>,
    ) -> Result<(f64, f64), TrainError> {
        let y = self.labels_one_hot(labels)?;
        let fake = self.ae.code(x)?.detach();
        let real = self.config.prior.samples(x.dims()[0], self.config.autoencoder.latent, labels, ctx.rng)?;
        let (d_real, d_fake) = (self.discriminate(&real, y.as_ref())?, self.discriminate(&fake, y.as_ref())?);
        let count = |t: Tensor| -> Result<f64, TrainError> {
            Ok(t.to_dtype(candle_core::DType::F32)?.sum_all()?.to_scalar::<f32>()? as f64)
        };
        let right = count(d_real.ge(0.0)?)? + count(d_fake.lt(0.0)?)?;
        let loss = (Self::mean_bce(&d_real, 1.0)? + Self::mean_bce(&d_fake, 0.0)?)?;
        Ok((ctx.minimize(1, &loss)?, right / 2.0))
    }

    /// Phase 3: the encoder (generator) steps on making the discriminator take its codes for
    /// prior samples.
    pub(crate) fn generator_phase(
        &self,
        x: &Tensor,
        labels: Option<&[u8]>,
        ctx: &mut StepContext<'_>,
    ) -> Result<f64, TrainError> {
        let y = self.labels_one_hot(labels)?;
        let loss = Self::mean_bce(&self.discriminate(&self.ae.code(x)?, y.as_ref())?, 1.0)?;
        ctx.minimize(2, &loss)
    }

    /// Codes of all `images` (evaluation batches).
    pub fn codes(&self, images: &ImageSet) -> Result<Vec<f32>, TrainError> {
        let mut out = Vec::with_capacity(images.count * self.config.autoencoder.latent);
        for batch in images.batches(EVAL_BATCH) {
            out.extend(self.ae.code(&images.tensor(batch)?)?.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

impl Member for Aae {
    type Config = AaeConfig;
    type Metrics = AaeMetrics;
    const KIND: &'static str = "aae";

    fn check(config: &AaeConfig) -> Result<(), TrainError> {
        config.validate()
    }

    fn new(config: &AaeConfig, input_len: usize, seed: u64) -> Result<Self, TrainError> {
        config.validate()?;
        let mut rng = stream(seed, Stream::Init, 0);
        let ae = Autoencoder::init(&config.autoencoder, input_len, &mut rng)?;
        let discriminator = Mlp::init("discriminator", &Self::widths(config), &mut rng)?;
        Ok(Aae { config: config.clone(), ae, discriminator })
    }

    fn from_weights(
        config: &AaeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        config.validate().map_err(WeightsError::config)?;
        let ae = Autoencoder::ae_from_weights(&config.autoencoder, input_len, weights)?;
        let discriminator = Mlp::from_tensors("discriminator", weights)?;
        discriminator.expect_widths("discriminator", &Self::widths(config))?;
        Ok(Aae { config: config.clone(), ae, discriminator })
    }

    fn config(&self) -> &AaeConfig {
        &self.config
    }

    fn parameters(&self) -> Vec<Parameter> {
        let mut out = self.ae.ae_parameters();
        self.discriminator.push_parameters(&mut out);
        out
    }

    /// Reconstruction (encoder + decoder), discriminator, generator (encoder), in that order.
    fn optimizers(&self) -> Vec<OptimizerSpec> {
        let params = self.parameters();
        let pick = |f: &dyn Fn(&str) -> bool| -> Vec<usize> {
            params.iter().enumerate().filter(|(_, p)| f(&p.name)).map(|(i, _)| i).collect()
        };
        vec![
            OptimizerSpec {
                name: "reconstruction".into(),
                params: pick(&|n| n.starts_with("encoder.") || n.starts_with("decoder.")),
                lr_scale: 1.0,
            },
            OptimizerSpec {
                name: "discriminator".into(),
                params: pick(&|n| n.starts_with("discriminator.")),
                lr_scale: self.config.discriminator_lr_scale,
            },
            OptimizerSpec {
                name: "generator".into(),
                params: pick(&|n| n.starts_with("encoder.")),
                lr_scale: self.config.generator_lr_scale,
            },
        ]
    }

    fn uses_labels(config: &AaeConfig) -> bool {
        config.label_classes > 0
    }

    fn terms(_: &AaeConfig) -> Vec<&'static str> {
        vec!["reconstruction", "discriminator", "generator", "discriminator_accuracy"]
    }

    /// The three phases, each seeing the weights the previous one left.
    fn train_step(&self, batch: &Batch<'_>, ctx: &mut StepContext<'_>) -> Result<Vec<f64>, TrainError> {
        let n = batch.len() as f64;
        let labels = if self.config.label_classes > 0 { Some(batch.labels()?) } else { None };
        let recon = self.reconstruction_phase(&batch.x, ctx)?;
        let (d_loss, d_right) = self.discriminator_phase(&batch.x, labels, ctx)?;
        let g_loss = self.generator_phase(&batch.x, labels, ctx)?;
        Ok(vec![recon * n, d_loss * n, g_loss * n, d_right])
    }

    fn evaluate(&self, images: &ImageSet, labels: Option<&[u8]>, seed: u64) -> Result<AaeMetrics, TrainError> {
        let autoencoder = self.ae.ae_metrics(images, seed)?;
        let latent = self.config.autoencoder.latent;
        let labels = labels.filter(|_| self.config.label_classes > 0);
        let codes = self.codes(images)?;
        let n = images.count.min(MMD_SAMPLES);
        let mut rng = stream(seed, Stream::Prior, 0);
        let prior = self.config.prior.samples(n, latent, labels.map(|l| &l[..n]), &mut rng)?;
        let prior_mmd = mmd2(&codes[..n * latent], &prior.flatten_all()?.to_vec1::<f32>()?, latent);
        let component_accuracy = match (self.config.prior, labels) {
            (Prior::Mixture { components, .. }, Some(l)) => {
                let means: Vec<[f32; 2]> = (0..components).map(|k| self.config.prior.component_mean(k)).collect();
                let hits = codes
                    .chunks(2)
                    .zip(l)
                    .filter(|(z, &label)| {
                        let d = |m: &[f32; 2]| (z[0] - m[0]).powi(2) + (z[1] - m[1]).powi(2);
                        let nearest = (0..components).min_by(|&a, &b| d(&means[a]).total_cmp(&d(&means[b])));
                        nearest == Some(label as usize)
                    })
                    .count();
                Some(hits as f64 / images.count.max(1) as f64)
            }
            _ => None,
        };
        Ok(AaeMetrics { autoencoder, prior_mmd, component_accuracy })
    }

    fn selection(_: &AaeConfig, m: &AaeMetrics) -> f64 {
        m.autoencoder.reconstruction
    }

    fn describe(m: &AaeMetrics) -> String {
        let mut s = format!("{}, prior MMD^2 {:.4}", m.autoencoder.describe(), m.prior_mmd);
        if let Some(a) = m.component_accuracy {
            s += &format!(", codes at their class's component {:.1} %", 100.0 * a);
        }
        s
    }

    fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, TrainError> {
        self.ae.export_onnx(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::with_step_context;

    fn snapshot(m: &Aae) -> Vec<(String, Vec<f32>)> {
        m.parameters()
            .into_iter()
            .map(|p| (p.name.clone(), p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    }

    /// Names of the parameters that differ between two snapshots, by network prefix.
    fn changed(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> Vec<&'static str> {
        let mut nets = Vec::new();
        for ((name, x), (_, y)) in a.iter().zip(b) {
            if x != y {
                let net = ["encoder", "decoder", "discriminator"].into_iter().find(|n| name.starts_with(n)).unwrap();
                if !nets.contains(&net) {
                    nets.push(net);
                }
            }
        }
        nets.sort();
        nets
    }

    #[test]
    fn each_phase_steps_only_its_networks() {
        let config =
            AaeConfig { autoencoder: AeConfig::mlp(&[12], 2), discriminator_hidden: vec![8], ..AaeConfig::default() };
        let aae = Aae::new(&config, 16, 3).unwrap();
        let mut rng = tinyvae::Rng::new(5);
        let x: Vec<f32> = (0..6 * 16).map(|_| rng.uniform()).collect();
        let x = Tensor::from_vec(x, (6, 16), &Device::Cpu).unwrap();
        let labels = [0u8, 3, 9, 3, 1, 7];
        let s0 = snapshot(&aae);
        with_step_context(&aae, 1e-2, 1, |ctx| {
            aae.reconstruction_phase(&x, ctx).unwrap();
            let s1 = snapshot(&aae);
            assert_eq!(changed(&s0, &s1), ["decoder", "encoder"]);
            let (_, right) = aae.discriminator_phase(&x, Some(&labels), ctx).unwrap();
            assert!((0.0..=6.0).contains(&right));
            let s2 = snapshot(&aae);
            assert_eq!(changed(&s1, &s2), ["discriminator"]);
            aae.generator_phase(&x, Some(&labels), ctx).unwrap();
            assert_eq!(changed(&s2, &snapshot(&aae)), ["encoder"]);
        });
        // The optimisers partition the networks the same way.
        let names: Vec<String> = aae.parameters().into_iter().map(|p| p.name).collect();
        let nets = |k: usize| {
            let mut v: Vec<&str> =
                aae.optimizers()[k].params.iter().map(|&i| names[i].split('.').next().unwrap()).collect();
            v.dedup();
            v
        };
        assert_eq!((nets(0), nets(1), nets(2)), (vec!["encoder", "decoder"], vec!["discriminator"], vec!["encoder"]));
    }

    #[test]
    fn mixture_prior_components_and_mmd() {
        let prior = Prior::mixture10();
        let mut rng = tinyvae::Rng::new(1);
        let labels: Vec<u8> = (0..4000).map(|i| (i % 10) as u8).collect();
        let s = prior.samples(4000, 2, Some(&labels), &mut rng).unwrap().to_vec2::<f32>().unwrap();
        for k in [0usize, 3, 7] {
            let rows: Vec<&Vec<f32>> =
                s.iter().zip(&labels).filter(|(_, &l)| l as usize == k).map(|(r, _)| r).collect();
            let m = prior.component_mean(k);
            let mean = [0, 1].map(|d| rows.iter().map(|r| r[d]).sum::<f32>() / rows.len() as f32);
            let sd = (rows.iter().map(|r| (r[0] - m[0]).powi(2)).sum::<f32>() / rows.len() as f32).sqrt();
            assert!((mean[0] - m[0]).abs() < 0.06 && (mean[1] - m[1]).abs() < 0.06, "component {k}: {mean:?}");
            assert!((sd - 0.5).abs() < 0.04, "component {k}: sd {sd}");
            assert!(((m[0] * m[0] + m[1] * m[1]).sqrt() - 4.0).abs() < 1e-5);
        }
        let draw = |seed: u64, shift: f32| -> Vec<f32> {
            let mut r = tinyvae::Rng::new(seed);
            let t = prior.samples(500, 2, None, &mut r).unwrap();
            t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(|v| v + shift).collect()
        };
        let same = mmd2(&draw(2, 0.0), &draw(3, 0.0), 2);
        let shifted = mmd2(&draw(2, 0.0), &draw(3, 1.0), 2);
        assert!(same.abs() < 0.005 && shifted > 0.02, "same {same}, shifted {shifted}");
    }
}
