//! The VAE in candle: MLP Gaussian encoder q(z|x) = N(mu, diag exp(logvar)), the
//! reparametrisation z = mu + exp(logvar / 2) * eps, an MLP decoder giving logits, and the loss
//! terms of the negative ELBO (closed-form KL to N(0, I), Bernoulli cross-entropy from logits,
//! Gaussian squared error, or the Gaussian likelihood with a learned per-pixel variance).
//!
//! The conditional VAE (CVAE) is the same network with `VaeConfig::classes > 0`: the one-hot
//! label is concatenated to x before the encoder, q(z|x,y), and to z before the decoder,
//! p(x|y,z), so the first layer of each simply has `classes` more inputs.
//!
//! Weights are `out x in` (PyTorch `nn.Linear` layout, which is also the IR's `Dense` layout),
//! initialised from [`tinyvae::Rng`] like PyTorch: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::config::{Likelihood, VaeConfig};
use crate::data::{stream, Stream};
use crate::error::TrainError;

/// One fully connected layer, `y = x W^T + b`.
#[derive(Debug, Clone)]
pub struct Dense {
    name: String,
    weight: Var,
    bias: Var,
}

impl Dense {
    /// A layer `inputs -> outputs` with PyTorch-like uniform(-1/sqrt(inputs), 1/sqrt(inputs))
    /// weights, then bias, drawn from `rng`.
    pub fn init(
        name: impl Into<String>,
        inputs: usize,
        outputs: usize,
        rng: &mut tinyvae::Rng,
    ) -> Result<Self, TrainError> {
        let bound = 1.0 / (inputs as f32).sqrt();
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect() };
        let w = draw(inputs * outputs);
        let b = draw(outputs);
        Ok(Dense {
            name: name.into(),
            weight: Var::from_vec(w, (outputs, inputs), &Device::Cpu)?,
            bias: Var::from_vec(b, outputs, &Device::Cpu)?,
        })
    }

    /// The layer stored as `name.weight` (`outputs x inputs`) and `name.bias` in `weights`; the
    /// error names the missing or misshapen tensor.
    pub fn from_weights(
        name: String,
        inputs: usize,
        outputs: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, String> {
        let get = |suffix: &str, shape: &[usize]| -> Result<Var, String> {
            let key = format!("{name}.{suffix}");
            let t = weights.get(&key).ok_or_else(|| format!("tensor `{key}` is missing"))?;
            if t.dims() != shape {
                return Err(format!("tensor `{key}` has shape {:?}, the configuration needs {shape:?}", t.dims()));
            }
            let t = t.to_dtype(DType::F32).and_then(|t| t.contiguous()).map_err(|e| e.to_string())?;
            Var::from_tensor(&t).map_err(|e| e.to_string())
        };
        Ok(Dense { weight: get("weight", &[outputs, inputs])?, bias: get("bias", &[outputs])?, name })
    }

    /// The layer stored under `name` in `tensors`; the error names the missing or misshapen
    /// tensor. `inputs`/`outputs` of `None` accept whatever the file holds.
    pub(crate) fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        inputs: Option<usize>,
        outputs: Option<usize>,
    ) -> Result<Self, String> {
        let weight = crate::classifier::mlp::named_var(tensors, &format!("{name}.weight"), 2)?;
        let (o, i) = (weight.dims()[0], weight.dims()[1]);
        if inputs.is_some_and(|want| want != i) || outputs.is_some_and(|want| want != o) {
            return Err(format!(
                "tensor `{name}.weight` is {o} x {i}, the configuration needs {} x {}",
                outputs.unwrap_or(o),
                inputs.unwrap_or(i)
            ));
        }
        let bias = crate::classifier::mlp::named_var(tensors, &format!("{name}.bias"), 1)?;
        if bias.dims()[0] != o {
            return Err(format!("tensor `{name}.bias` has {} values for {o} outputs", bias.dims()[0]));
        }
        Ok(Dense { name: name.to_string(), weight, bias })
    }

    /// `x W^T + b` for a `batch x in` input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(self.bias.as_tensor())?)
    }

    /// Parameter-name prefix (`encoder.0`, `decoder.out`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `out x in` weight.
    pub fn weight(&self) -> &Tensor {
        self.weight.as_tensor()
    }

    /// The bias.
    pub fn bias(&self) -> &Tensor {
        self.bias.as_tensor()
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.weight.dims()[1]
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Weight then bias, for the optimiser.
    pub(crate) fn push_parameters(&self, out: &mut Vec<Parameter>) {
        out.push(crate::classifier::mlp::matrix_parameter(format!("{}.weight", self.name), &self.weight));
        out.push(Parameter {
            name: format!("{}.bias", self.name),
            var: self.bias.clone(),
            in_encoder: false,
            is_matrix: false,
        });
    }

    /// Weight then bias as optimiser parameters (`in_encoder` picks the weight-decay group).
    pub fn parameters(&self, in_encoder: bool) -> [Parameter; 2] {
        [
            Parameter { name: format!("{}.weight", self.name), var: self.weight.clone(), in_encoder, is_matrix: true },
            Parameter { name: format!("{}.bias", self.name), var: self.bias.clone(), in_encoder, is_matrix: false },
        ]
    }
}

/// A trainable parameter with its checkpoint name.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub var: Var,
    /// True for encoder tensors (weight decay groups).
    pub in_encoder: bool,
    /// True for weight matrices (biases get no weight decay).
    pub is_matrix: bool,
}

/// Lower bound of the decoder's per-pixel log-variance under [`Likelihood::GaussianLearned`]
/// (a standard deviation of e^-3, about 0.05 on [0, 1] pixels). Background pixels of MNIST are
/// exactly 0, so an unbounded variance would shrink towards 0 there and drive the likelihood
/// to infinity; the soft floor keeps the objective bounded while leaving the variance free
/// everywhere it matters.
pub const DECODER_LOGVAR_FLOOR: f64 = -6.0;

/// A VAE: encoder hidden layers, the `mu` and `logvar` heads, decoder hidden layers, the
/// decoder output layer and, for a learned-variance Gaussian decoder, its log-variance head.
#[derive(Debug, Clone)]
pub struct Vae {
    config: VaeConfig,
    input_len: usize,
    encoder: Vec<Dense>,
    mu_head: Dense,
    logvar_head: Dense,
    decoder: Vec<Dense>,
    decoder_out: Dense,
    decoder_logvar: Option<Dense>,
}

/// Per-layer shapes and names, in canonical order.
fn layer_plan(config: &VaeConfig, input_len: usize) -> Vec<(String, usize, usize)> {
    let mut plan = Vec::new();
    let mut width = input_len + config.classes;
    for (i, &h) in config.encoder_hidden.iter().enumerate() {
        plan.push((format!("encoder.{i}"), width, h));
        width = h;
    }
    plan.push(("encoder.mu".into(), width, config.latent));
    plan.push(("encoder.logvar".into(), width, config.latent));
    width = config.latent + config.classes;
    for (i, &h) in config.decoder_hidden.iter().enumerate() {
        plan.push((format!("decoder.{i}"), width, h));
        width = h;
    }
    plan.push(("decoder.out".into(), width, input_len));
    if config.likelihood == Likelihood::GaussianLearned {
        plan.push(("decoder.logvar".into(), width, input_len));
    }
    plan
}

impl Vae {
    /// A freshly initialised VAE for images of `input_len` pixels; weights drawn from `seed`.
    pub fn new(config: &VaeConfig, input_len: usize, seed: u64) -> Result<Self, TrainError> {
        config.validate()?;
        if input_len == 0 {
            return Err(TrainError::Config("input length must be at least 1".into()));
        }
        let mut rng = stream(seed, Stream::Init, 0);
        let layers = layer_plan(config, input_len)
            .into_iter()
            .map(|(name, i, o)| Dense::init(name, i, o, &mut rng))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::assemble(config, input_len, layers))
    }

    /// A VAE from named tensors (`encoder.0.weight`, ..., `decoder.out.bias`); the error names
    /// the first missing or misshapen tensor.
    pub fn from_weights(
        config: &VaeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, String> {
        config.validate().map_err(|e| e.to_string())?;
        let layers = layer_plan(config, input_len)
            .into_iter()
            .map(|(name, i, o)| Dense::from_weights(name, i, o, weights))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::assemble(config, input_len, layers))
    }

    fn assemble(config: &VaeConfig, input_len: usize, mut layers: Vec<Dense>) -> Self {
        let ne = config.encoder_hidden.len();
        let decoder_logvar = if config.likelihood == Likelihood::GaussianLearned { layers.pop() } else { None };
        let decoder_out = layers.pop().expect("plan has an output layer");
        let decoder = layers.split_off(ne + 2);
        let logvar_head = layers.pop().expect("plan has a logvar head");
        let mu_head = layers.pop().expect("plan has a mu head");
        Vae {
            config: config.clone(),
            input_len,
            encoder: layers,
            mu_head,
            logvar_head,
            decoder,
            decoder_out,
            decoder_logvar,
        }
    }

    /// The shape.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Pixels per image.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Size of z.
    pub fn latent(&self) -> usize {
        self.config.latent
    }

    /// Label classes (0: unconditional).
    pub fn classes(&self) -> usize {
        self.config.classes
    }

    /// Encoder hidden layers (ReLU after each).
    pub fn encoder_layers(&self) -> &[Dense] {
        &self.encoder
    }

    /// The `mu` head.
    pub fn mu_head(&self) -> &Dense {
        &self.mu_head
    }

    /// The `logvar` head.
    pub fn logvar_head(&self) -> &Dense {
        &self.logvar_head
    }

    /// Decoder hidden layers (ReLU after each).
    pub fn decoder_layers(&self) -> &[Dense] {
        &self.decoder
    }

    /// Decoder output layer (logits; the mean is their sigmoid).
    pub fn decoder_output(&self) -> &Dense {
        &self.decoder_out
    }

    /// The learned-variance decoder's log-variance head (before the floor), if any.
    pub fn decoder_logvar_head(&self) -> Option<&Dense> {
        self.decoder_logvar.as_ref()
    }

    fn all_layers(&self) -> impl Iterator<Item = &Dense> {
        self.encoder
            .iter()
            .chain([&self.mu_head, &self.logvar_head])
            .chain(self.decoder.iter())
            .chain([&self.decoder_out])
            .chain(self.decoder_logvar.as_ref())
    }

    /// Parameters in canonical order (each layer's weight, then bias).
    pub fn parameters(&self) -> Vec<Parameter> {
        self.all_layers().flat_map(|l| l.parameters(l.name.starts_with("encoder"))).collect()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.var.elem_count()).sum()
    }

    /// Copies of the weights by name (what [`Vae::from_weights`] reads back).
    pub fn weights(&self) -> Result<HashMap<String, Tensor>, TrainError> {
        self.parameters().into_iter().map(|p| Ok((p.name, p.var.as_tensor().copy()?))).collect()
    }

    /// An independent copy (new variables).
    pub fn deep_clone(&self) -> Result<Vae, TrainError> {
        let w = self.weights()?;
        Vae::from_weights(&self.config, self.input_len, &w).map_err(TrainError::Config)
    }

    /// (mu, logvar), each `batch x latent`, for a `batch x input_len` input.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor), TrainError> {
        self.encode_with_masks(x, None, None)
    }

    /// q(z|x,y) of a conditional VAE: (mu, logvar) for images `x` and their one-hot labels `y`
    /// (`batch x classes`). `y` must be given exactly when the model is conditional.
    pub fn encode_labelled(&self, x: &Tensor, y: Option<&Tensor>) -> Result<(Tensor, Tensor), TrainError> {
        self.encode_with_masks(x, y, None)
    }

    /// `[x, y]` for a conditional model, `x` otherwise; the error says which was expected.
    fn condition(&self, x: &Tensor, y: Option<&Tensor>) -> Result<Tensor, TrainError> {
        match (self.config.classes, y) {
            (0, None) => Ok(x.clone()),
            (0, Some(_)) => Err(TrainError::Config("this VAE is unconditional but a label was given".into())),
            (c, None) => Err(TrainError::Config(format!("this conditional VAE needs one-hot labels of {c} classes"))),
            (c, Some(y)) if y.dims() != [x.dims()[0], c] => Err(TrainError::Config(format!(
                "labels have shape {:?}, the model needs {} x {c} one-hot rows",
                y.dims(),
                x.dims()[0]
            ))),
            (_, Some(y)) => Ok(Tensor::cat(&[x, y], 1)?),
        }
    }

    /// `encode` with a dropout mask (already scaled by 1/keep) multiplied into each hidden layer.
    pub(crate) fn encode_with_masks(
        &self,
        x: &Tensor,
        y: Option<&Tensor>,
        masks: Option<&[Tensor]>,
    ) -> Result<(Tensor, Tensor), TrainError> {
        let mut h = self.condition(x, y)?;
        for (i, l) in self.encoder.iter().enumerate() {
            h = l.forward(&h)?.relu()?;
            if let Some(m) = masks {
                h = h.mul(&m[i])?;
            }
        }
        Ok((self.mu_head.forward(&h)?, self.logvar_head.forward(&h)?))
    }

    /// Decoder logits, `batch x input_len`, for a `batch x latent` z.
    pub fn decode_logits(&self, z: &Tensor) -> Result<Tensor, TrainError> {
        Ok(self.decode_heads(z, None)?.0)
    }

    /// Decoder logits of p(x|y,z) for a conditional VAE (`y` one-hot, `batch x classes`).
    pub fn decode_logits_labelled(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor, TrainError> {
        Ok(self.decode_heads(z, y)?.0)
    }

    /// Mean logits and, for a learned-variance decoder, the per-pixel log-variance (floored).
    pub fn decode_heads(&self, z: &Tensor, y: Option<&Tensor>) -> Result<(Tensor, Option<Tensor>), TrainError> {
        let mut h = self.condition(z, y)?;
        for l in &self.decoder {
            h = l.forward(&h)?.relu()?;
        }
        let logvar = match &self.decoder_logvar {
            Some(head) => Some(soft_floor(&head.forward(&h)?, DECODER_LOGVAR_FLOOR)?),
            None => None,
        };
        Ok((self.decoder_out.forward(&h)?, logvar))
    }

    /// Decoder mean (sigmoid of the logits): pixel probabilities, or the Gaussian mean.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor, TrainError> {
        Ok(candle_nn::ops::sigmoid(&self.decode_logits(z)?)?)
    }

    /// Decoder mean of p(x|y,z) for a conditional VAE.
    pub fn decode_labelled(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor, TrainError> {
        Ok(candle_nn::ops::sigmoid(&self.decode_logits_labelled(z, y)?)?)
    }

    /// The negative ELBO's parts for a batch: `x` is `batch x input_len`, `eps` is
    /// `(L * batch) x latent` standard normal noise (sample `l` of image `i` in row
    /// `l * batch + i`). Returns per-image `(reconstruction, kl)`, each `batch`, the
    /// reconstruction averaged over the L samples.
    ///
    /// `y` is the batch's one-hot labels for a conditional VAE (the CVAE's negative ELBO
    /// `-E_q(z|x,y)[log p(x|y,z)] + KL(q(z|x,y) || N(0, I))`), `None` otherwise.
    pub fn nelbo_parts_labelled(
        &self,
        x: &Tensor,
        y: Option<&Tensor>,
        eps: &Tensor,
        masks: Option<&[Tensor]>,
    ) -> Result<(Tensor, Tensor), TrainError> {
        let batch = x.dims()[0];
        let samples = eps.dims()[0] / batch.max(1);
        let (mu, logvar) = self.encode_with_masks(x, y, masks)?;
        let kl = kl_to_standard_normal(&mu, &logvar)?;
        let std = (&logvar * 0.5)?.exp()?;
        let rep = |t: &Tensor| if samples == 1 { Ok(t.clone()) } else { Tensor::cat(&vec![t; samples], 0) };
        let (mu_l, std_l, x_l) = (rep(&mu)?, rep(&std)?, rep(x)?);
        let y_l = y.map(rep).transpose()?;
        let z = (mu_l + std_l.mul(eps)?)?;
        let (logits, dec_logvar) = self.decode_heads(&z, y_l.as_ref())?;
        let mut recon = match &dec_logvar {
            Some(lv) => gaussian_nll_learned_variance(&logits, lv, &x_l)?,
            None => reconstruction_nll(self.config.likelihood, &logits, &x_l)?,
        };
        if samples > 1 {
            recon = (recon.reshape((samples, batch))?.sum(0)? / samples as f64)?;
        }
        Ok((recon, kl))
    }
}

/// KL(N(mu, diag exp(logvar)) || N(0, I)) per row, closed form:
/// `0.5 * sum_j (mu_j^2 + exp(logvar_j) - logvar_j - 1)`.
pub fn kl_to_standard_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor, TrainError> {
    let t = ((mu.sqr()? + logvar.exp()?)? - logvar)?;
    Ok(((t - 1.0)?.sum(D::Minus1)? * 0.5)?)
}

/// Binary cross-entropy of sigmoid(`logits`) against targets in [0, 1], summed per row,
/// computed stably as `max(l, 0) - l x + ln(1 + e^-|l|)`.
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    let softplus = (logits.relu()? + (logits.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus - logits.mul(target)?)?.sum(D::Minus1)?)
}

/// Negative log-likelihood of `target` under N(sigmoid(`logits`), I), summed per row:
/// `0.5 * ||x - mean||^2 + D/2 ln(2 pi)`.
pub fn gaussian_nll(logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    let d = logits.dims()[logits.rank() - 1] as f64;
    let mean = candle_nn::ops::sigmoid(logits)?;
    let half_sq = ((mean - target)?.sqr()?.sum(D::Minus1)? * 0.5)?;
    Ok((half_sq + 0.5 * d * (2.0 * std::f64::consts::PI).ln())?)
}

/// Negative log-likelihood of `target` under N(sigmoid(`logits`), diag exp(`logvar`)), summed
/// per row: `0.5 * sum_j (logvar_j + (x_j - mean_j)^2 exp(-logvar_j) + ln(2 pi))`.
pub fn gaussian_nll_learned_variance(logits: &Tensor, logvar: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    let mean = candle_nn::ops::sigmoid(logits)?;
    let scaled = (mean - target)?.sqr()?.mul(&logvar.neg()?.exp()?)?;
    let per_pixel = ((scaled + logvar)? + (2.0 * std::f64::consts::PI).ln())?;
    Ok((per_pixel.sum(D::Minus1)? * 0.5)?)
}

/// `floor + softplus(x - floor)`: a smooth lower bound at `floor` that is the identity well
/// above it (softplus computed stably as `max(a, 0) + ln(1 + e^-|a|)`).
pub(crate) fn soft_floor(x: &Tensor, floor: f64) -> Result<Tensor, TrainError> {
    let a = (x - floor)?;
    let softplus = (a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus + floor)?)
}

/// -log p(x|z) per row for the given likelihood. The learned-variance Gaussian needs its
/// log-variance head: use [`gaussian_nll_learned_variance`] (here it is taken as unit variance,
/// which is [`gaussian_nll`]).
pub fn reconstruction_nll(likelihood: Likelihood, logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    match likelihood {
        Likelihood::Bernoulli => bce_with_logits(logits, target),
        Likelihood::Gaussian | Likelihood::GaussianLearned => gaussian_nll(logits, target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn kl_closed_form_matches_numeric_integration() {
        // KL(q || p) = E_q[ln q(z) - ln p(z)], integrated on a fine grid per dimension
        // (the KL of a diagonal Gaussian is the sum over dimensions).
        let mu = [0.7f32, -1.3, 0.0, 2.0];
        let logvar = [-0.5f32, 0.8, 0.0, -2.0];
        let closed = kl_to_standard_normal(&t(&mu, (1, 4)), &t(&logvar, (1, 4))).unwrap();
        let closed = closed.to_vec1::<f32>().unwrap()[0] as f64;
        let mut numeric = 0.0f64;
        for (&m, &lv) in mu.iter().zip(&logvar) {
            let (m, s) = (m as f64, (0.5 * lv as f64).exp());
            let (lo, hi, n) = (m - 12.0 * s, m + 12.0 * s, 200_000);
            let h = (hi - lo) / n as f64;
            for k in 0..=n {
                let z = lo + k as f64 * h;
                let lq = -0.5 * ((z - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
                let lp = -0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln();
                let w = if k == 0 || k == n { 0.5 } else { 1.0 };
                numeric += w * h * lq.exp() * (lq - lp);
            }
        }
        assert!((closed - numeric).abs() < 1e-4, "closed {closed} numeric {numeric}");
        // And a zero KL at the prior.
        let zero = kl_to_standard_normal(&t(&[0.0; 3], (1, 3)), &t(&[0.0; 3], (1, 3))).unwrap();
        assert_eq!(zero.to_vec1::<f32>().unwrap()[0], 0.0);
    }

    #[test]
    fn bce_from_logits_matches_direct_formula_and_stays_finite() {
        let logits = [-30.0f32, -4.0, -0.5, 0.0, 0.3, 2.5, 9.0, 30.0];
        let target = [0.0f32, 0.2, 1.0, 0.5, 0.0, 0.9, 1.0, 0.3];
        let got = bce_with_logits(&t(&logits, (2, 4)), &t(&target, (2, 4))).unwrap().to_vec1::<f32>().unwrap();
        for row in 0..2 {
            let mut want = 0.0f64;
            for j in 0..4 {
                let (l, x) = (logits[row * 4 + j] as f64, target[row * 4 + j] as f64);
                let p = 1.0 / (1.0 + (-l).exp());
                // Direct formula (f64 keeps ln(1-p) meaningful except at the saturated ends).
                let (lp, l1p) =
                    if l.abs() > 20.0 { (-(-l).exp().ln_1p(), -l.exp().ln_1p()) } else { (p.ln(), (1.0 - p).ln()) };
                want -= x * lp + (1.0 - x) * l1p;
            }
            assert!((got[row] as f64 - want).abs() < 1e-4 * want.max(1.0), "row {row}: {} vs {want}", got[row]);
        }
        // Saturated logits that a naive sigmoid-then-log would turn into inf.
        let huge = bce_with_logits(&t(&[200.0, -200.0], (1, 2)), &t(&[0.0, 1.0], (1, 2))).unwrap();
        assert!((huge.to_vec1::<f32>().unwrap()[0] - 400.0).abs() < 1e-3);
    }

    #[test]
    fn gaussian_nll_is_half_squared_error_plus_constant() {
        let got = gaussian_nll(&t(&[0.0, 0.0], (1, 2)), &t(&[1.0, 0.0], (1, 2))).unwrap().to_vec1::<f32>().unwrap()[0];
        let want = 0.5 * (0.25 + 0.25) + (2.0 * std::f32::consts::PI).ln();
        assert!((got - want).abs() < 1e-5);
    }

    #[test]
    fn learned_variance_nll_matches_the_gaussian_density() {
        let logits = [-1.0f32, 0.0, 2.0, 0.5];
        let logvar = [-2.0f32, 0.0, 1.0, -5.5];
        let x = [0.1f32, 0.9, 0.5, 0.62];
        let got = gaussian_nll_learned_variance(&t(&logits, (1, 4)), &t(&logvar, (1, 4)), &t(&x, (1, 4))).unwrap();
        let want: f64 = (0..4)
            .map(|j| {
                let mean = 1.0 / (1.0 + (-(logits[j] as f64)).exp());
                let var = (logvar[j] as f64).exp();
                // -ln N(x; mean, var)
                0.5 * (2.0 * std::f64::consts::PI * var).ln() + (x[j] as f64 - mean).powi(2) / (2.0 * var)
            })
            .sum();
        assert!((got.to_vec1::<f32>().unwrap()[0] as f64 - want).abs() < 1e-4);
        // Unit variance is the identity-covariance Gaussian.
        let unit = gaussian_nll_learned_variance(&t(&logits, (1, 4)), &t(&[0.0; 4], (1, 4)), &t(&x, (1, 4))).unwrap();
        let identity = gaussian_nll(&t(&logits, (1, 4)), &t(&x, (1, 4))).unwrap();
        assert!((unit.to_vec1::<f32>().unwrap()[0] - identity.to_vec1::<f32>().unwrap()[0]).abs() < 1e-5);
    }

    #[test]
    fn learned_variance_is_optimal_at_the_squared_residual() {
        // d/dlogvar [logvar + r^2 exp(-logvar)] = 1 - r^2 exp(-logvar): zero at exp(logvar) = r^2.
        let (logits, x) = (t(&[0.0, 0.0], (1, 2)), t(&[0.8, 0.3], (1, 2)));
        let r2 = [0.09f64, 0.04];
        let logvar =
            candle_core::Var::from_vec(vec![r2[0].ln() as f32, r2[1].ln() as f32], (1, 2), &Device::Cpu).unwrap();
        let nll = gaussian_nll_learned_variance(&logits, logvar.as_tensor(), &x).unwrap().sum_all().unwrap();
        let g =
            nll.backward().unwrap().get(logvar.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-5), "{g:?}");
    }

    #[test]
    fn soft_floor_bounds_the_log_variance() {
        let raw = t(&[-100.0, -6.0, 0.0, 3.0], (1, 4));
        let v = soft_floor(&raw, DECODER_LOGVAR_FLOOR).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&l| l as f64 >= DECODER_LOGVAR_FLOOR));
        assert!((v[0] as f64 - DECODER_LOGVAR_FLOOR).abs() < 1e-6 && (v[1] as f64 + 6.0 - 2f64.ln()).abs() < 1e-5);
        assert!((v[3] - 3.0).abs() < 1e-3, "the identity well above the floor: {}", v[3]);
    }

    #[test]
    fn init_is_pytorch_like_and_seeded() {
        let cfg = VaeConfig::mlp(&[16], 3);
        let a = Vae::new(&cfg, 10, 1).unwrap();
        let b = Vae::new(&cfg, 10, 1).unwrap();
        let w = a.encoder_layers()[0].weight().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(w, b.encoder_layers()[0].weight().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        let bound = 1.0 / 10f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.8 * bound));
        assert_eq!(a.parameter_count(), 10 * 16 + 16 + 2 * (16 * 3 + 3) + 3 * 16 + 16 + 16 * 10 + 10);
    }
}
