//! The VAE in candle: Gaussian encoder q(z|x) = N(mu, diag exp(logvar)), the
//! reparametrisation z = mu + exp(logvar / 2) * eps, a decoder giving logits, and a batch's
//! negative ELBO from the terms in [`crate::loss`] (closed-form KL to N(0, I), Bernoulli
//! cross-entropy from logits, Gaussian squared error, or the Gaussian likelihood with a learned
//! per-pixel variance).
//!
//! The encoder and decoder are MLPs, or for [`Arch::Conv`](crate::config::Arch::Conv) the
//! tutorial's convolutional networks: stride-2 convolutions, flatten, Dense heads; Dense, view
//! as `[C, h, w]`, stride-2 transposed convolutions back to the image. The layers and their
//! order are the plan of `model::plan`.
//!
//! The conditional VAE (CVAE) is the same network with `VaeConfig::classes > 0`: the one-hot
//! label is concatenated to x before the encoder's Dense layers (after the convolutions, for
//! the conv architecture), q(z|x,y), and to z before the decoder, p(x|y,z), so the first Dense
//! layer of each simply has `classes` more inputs.
//!
//! The layers are [`crate::nn::Dense`] (weights `out x in`, PyTorch `nn.Linear` layout, which is
//! also the IR's `Dense` layout) and [`crate::nn::Conv2d`] / [`crate::nn::ConvTranspose2d`]
//! (PyTorch's and the IR's kernel layouts), initialised from [`tinyvae::Rng`] like PyTorch.

use std::collections::HashMap;

use candle_core::Tensor;

use crate::config::{Likelihood, VaeConfig};
use crate::data::{stream, Stream};
use crate::error::{TrainError, WeightsError};
use crate::loss::soft_floor;
use crate::nn::{named_copies, Conv2d, ConvTranspose2d};
use plan::Layer;

mod plan;

// The layer type and the loss terms at the paths they had before `nn` and `loss` existed.
pub use crate::loss::{
    bce_with_logits, gaussian_nll, gaussian_nll_learned_variance, kl_to_standard_normal, reconstruction_nll,
};
pub use crate::nn::{Dense, Parameter};

/// Lower bound of the decoder's per-pixel log-variance under [`Likelihood::GaussianLearned`]
/// (a standard deviation of e^-3, about 0.05 on [0, 1] pixels). Background pixels of MNIST are
/// exactly 0, so an unbounded variance would shrink towards 0 there and drive the likelihood
/// to infinity; the soft floor keeps the objective bounded while leaving the variance free
/// everywhere it matters.
pub const DECODER_LOGVAR_FLOOR: f64 = -6.0;

/// The decoder's last layer (and the learned-variance head): Dense for the MLP, a transposed
/// convolution for the conv architecture. Its output is flat, `batch x input_len`.
#[derive(Debug, Clone)]
pub enum OutputLayer {
    /// `hidden -> pixels`.
    Dense(Dense),
    /// `[c1, H/2, W/2] -> [1, H, W]`.
    ConvTranspose(ConvTranspose2d),
}

impl OutputLayer {
    /// `batch x input_len` logits (or log-variances).
    pub fn forward(&self, h: &Tensor) -> Result<Tensor, TrainError> {
        match self {
            OutputLayer::Dense(l) => l.forward(h),
            OutputLayer::ConvTranspose(l) => Ok(l.forward(h)?.flatten_from(1)?),
        }
    }

    /// Parameter-name prefix.
    pub fn name(&self) -> &str {
        match self {
            OutputLayer::Dense(l) => l.name(),
            OutputLayer::ConvTranspose(l) => l.name(),
        }
    }

    fn parameters(&self) -> [Parameter; 2] {
        match self {
            OutputLayer::Dense(l) => l.parameters(false),
            OutputLayer::ConvTranspose(l) => l.parameters(false),
        }
    }
}

/// A VAE: the encoder's convolutions (conv architecture) and hidden layers, the `mu` and
/// `logvar` heads, the decoder's hidden layers and transposed convolutions (conv
/// architecture), the decoder output layer and, for a learned-variance Gaussian decoder, its
/// log-variance head.
#[derive(Debug, Clone)]
pub struct Vae {
    config: VaeConfig,
    input_len: usize,
    encoder_convs: Vec<Conv2d>,
    encoder: Vec<Dense>,
    mu_head: Dense,
    logvar_head: Dense,
    decoder: Vec<Dense>,
    decoder_convs: Vec<ConvTranspose2d>,
    decoder_out: OutputLayer,
    decoder_logvar: Option<OutputLayer>,
}

impl Vae {
    /// A freshly initialised VAE for images of `input_len` pixels; weights drawn from `seed`.
    pub fn new(config: &VaeConfig, input_len: usize, seed: u64) -> Result<Self, TrainError> {
        config.validate()?;
        if input_len == 0 {
            return Err(TrainError::Config("input length must be at least 1".into()));
        }
        let mut rng = stream(seed, Stream::Init, 0);
        let layers = plan::init(plan::plan(config, input_len).map_err(TrainError::Config)?, &mut rng)?;
        Ok(Self::assemble(config, input_len, layers))
    }

    /// A VAE from named tensors (`encoder.0.weight`, ..., `decoder.out.bias`); the error names
    /// the first missing or misshapen tensor.
    pub fn from_weights(
        config: &VaeConfig,
        input_len: usize,
        weights: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        config.validate().map_err(WeightsError::config)?;
        let specs = plan::plan(config, input_len).map_err(WeightsError::Mismatch)?;
        Ok(Self::assemble(config, input_len, plan::read(specs, weights)?))
    }

    /// Distributes the planned layers (in plan order) over the fields.
    fn assemble(config: &VaeConfig, input_len: usize, layers: Vec<Layer>) -> Self {
        let mut layers = layers.into_iter().peekable();
        let mut encoder_convs = Vec::new();
        while let Some(Layer::Conv(l)) = layers.next_if(|l| matches!(l, Layer::Conv(_))) {
            encoder_convs.push(l);
        }
        let mut dense = |n: usize| -> Vec<Dense> {
            (0..n)
                .map(|_| match layers.next() {
                    Some(Layer::Dense(l)) => l,
                    _ => unreachable!("the plan has Dense layers here"),
                })
                .collect()
        };
        let encoder = dense(config.encoder_hidden.len());
        let [mu_head, logvar_head]: [Dense; 2] = dense(2).try_into().expect("two heads");
        let decoder = dense(config.decoder_hidden.len() + usize::from(!encoder_convs.is_empty()));
        let mut rest: Vec<Layer> = layers.collect();
        let head = |l: Layer| match l {
            Layer::Dense(l) => OutputLayer::Dense(l),
            Layer::ConvTranspose(l) => OutputLayer::ConvTranspose(l),
            Layer::Conv(_) => unreachable!("the plan has no convolution after the encoder"),
        };
        let decoder_logvar = if config.likelihood == Likelihood::GaussianLearned { rest.pop().map(head) } else { None };
        let decoder_out = head(rest.pop().expect("plan has an output layer"));
        let decoder_convs = rest
            .into_iter()
            .map(|l| match l {
                Layer::ConvTranspose(l) => l,
                _ => unreachable!("the plan has transposed convolutions here"),
            })
            .collect();
        Vae {
            config: config.clone(),
            input_len,
            encoder_convs,
            encoder,
            mu_head,
            logvar_head,
            decoder,
            decoder_convs,
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

    /// The encoder's convolutions (ReLU after each; empty for the MLP architecture).
    pub fn encoder_convs(&self) -> &[Conv2d] {
        &self.encoder_convs
    }

    /// Encoder hidden Dense layers (ReLU after each).
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

    /// Decoder hidden Dense layers (ReLU after each; for the conv architecture the last one is
    /// viewed as the first transposed convolution's input).
    pub fn decoder_layers(&self) -> &[Dense] {
        &self.decoder
    }

    /// The decoder's transposed convolutions before the output layer (ReLU after each; empty
    /// for the MLP architecture).
    pub fn decoder_convs(&self) -> &[ConvTranspose2d] {
        &self.decoder_convs
    }

    /// Decoder output layer (logits; the mean is their sigmoid).
    pub fn decoder_output(&self) -> &OutputLayer {
        &self.decoder_out
    }

    /// The learned-variance decoder's log-variance head (before the floor), if any.
    pub fn decoder_logvar_head(&self) -> Option<&OutputLayer> {
        self.decoder_logvar.as_ref()
    }

    /// Parameters in canonical order (the plan's: each layer's weight, then bias).
    pub fn parameters(&self) -> Vec<Parameter> {
        let encoder = self
            .encoder_convs
            .iter()
            .flat_map(|l| l.parameters(true))
            .chain(self.encoder.iter().chain([&self.mu_head, &self.logvar_head]).flat_map(|l| l.parameters(true)));
        let decoder = self
            .decoder
            .iter()
            .flat_map(|l| l.parameters(false))
            .chain(self.decoder_convs.iter().flat_map(|l| l.parameters(false)))
            .chain(self.decoder_out.parameters())
            .chain(self.decoder_logvar.iter().flat_map(OutputLayer::parameters));
        encoder.chain(decoder).collect()
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.var.elem_count()).sum()
    }

    /// Copies of the weights by name (what [`Vae::from_weights`] reads back).
    pub fn weights(&self) -> Result<HashMap<String, Tensor>, TrainError> {
        named_copies(&self.parameters())
    }

    /// An independent copy (new variables).
    pub fn deep_clone(&self) -> Result<Vae, TrainError> {
        let w = self.weights()?;
        Ok(Vae::from_weights(&self.config, self.input_len, &w)?)
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
        let mut h = x.clone();
        for l in &self.encoder_convs {
            h = l.forward(&h)?.relu()?;
        }
        if !self.encoder_convs.is_empty() {
            h = h.flatten_from(1)?;
        }
        let mut h = self.condition(&h, y)?;
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
        for l in &self.decoder_convs {
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

#[cfg(test)]
mod tests {
    use super::*;

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
