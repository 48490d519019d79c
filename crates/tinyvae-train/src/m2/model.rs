//! The three networks of M2 and its two losses.
//!
//! * classifier q(y|x): a ReLU MLP giving class logits (softmax probabilities);
//! * encoder q(z|x,y) = N(mu, diag exp(logvar)): a ReLU MLP on `[x, onehot(y)]`;
//! * decoder p(x|y,z): a ReLU MLP on `[z, onehot(y)]` giving Bernoulli logits (pixels), or the
//!   means of a unit-variance Gaussian (real-valued features: M1+M2's codes of an M1 VAE).
//!
//! The label enters through the first hidden layer only, so that layer is stored as a main
//! weight (`encoder.0.weight`, over x or z) plus a label weight (`encoder.0.label_weight`,
//! `hidden x classes`); the export concatenates them into one `Dense` over `[x, y]`. Splitting
//! the layer is what makes the unlabelled loss affordable: `W_x x` is computed once per image
//! and only the label column changes across the 10 classes.
//!
//! Losses (nats per image, Kingma et al. 2014, eq. 6-8):
//! * labelled: `L(x,y) = -log p(x|y,z) + beta * KL(q(z|x,y) || N(0,I)) - log p(y)` with one z
//!   sample and a uniform p(y) (`-log p(y) = ln classes`);
//! * unlabelled: `U(x) = sum_y q(y|x) L(x,y) - H(q(y|x))`, the sum over y exact (every class
//!   decoded), one z sample per (image, class).

use std::collections::HashMap;

use candle_core::{Tensor, Var, D};
use serde::{Deserialize, Serialize};

use super::bce::bernoulli_nll_rows;
use crate::data::{stream, Stream};
use crate::error::{TrainError, WeightsError};
use crate::loss::kl_to_standard_normal;
use crate::nn::{named_copies, named_var, one_hot, Dense, Mlp, Parameter};

/// Sizes of the three networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct M2Shape {
    /// Pixels per image.
    pub input_len: usize,
    /// Classes of y.
    pub classes: usize,
    /// Size of z.
    pub latent: usize,
    /// Hidden widths of q(y|x).
    pub classifier_hidden: Vec<usize>,
    /// Hidden widths of q(z|x,y) (at least one: the label enters the first).
    pub encoder_hidden: Vec<usize>,
    /// Hidden widths of p(x|y,z) (at least one: the label enters the first).
    pub decoder_hidden: Vec<usize>,
    /// q(y|x) reads the encoder's first hidden layer computed without the label,
    /// `relu(W_x x + b)`, instead of the pixels, so every image's ELBO trains the classifier's
    /// features (labelled or not).
    #[serde(default)]
    pub shared_trunk: bool,
    /// What p(x|y,z) is: Bernoulli pixels, or a unit-variance Gaussian over real features.
    #[serde(default)]
    pub likelihood: M2Likelihood,
}

/// The distribution of p(x|y,z).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum M2Likelihood {
    /// Pixels in [0, 1]: the decoder gives Bernoulli logits.
    #[default]
    Bernoulli,
    /// Real values (M1's codes): the decoder gives the means of N(mean, I).
    Gaussian,
}

/// `ln(2 pi) / 2`: the per-value constant of a unit-variance Gaussian's negative log-density.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// Per-row `-log N(x; mean, I)`: `means` is `rows x d`, row `r` compared with row `r / repeat`
/// of `targets`.
fn gaussian_nll_rows(means: &Tensor, targets: &Tensor, repeat: usize) -> Result<Tensor, TrainError> {
    let (rows, d) = means.dims2()?;
    let t = if repeat == 1 {
        targets.clone()
    } else {
        targets.unsqueeze(1)?.broadcast_as((rows / repeat, repeat, d))?.reshape((rows, d))?
    };
    let sq = (means - t)?.sqr()?.sum(D::Minus1)?;
    Ok(((sq * 0.5)? + HALF_LN_TWO_PI * d as f64)?)
}

impl M2Shape {
    /// Features q(y|x)'s MLP reads: the pixels, or the shared first encoder layer.
    pub fn classifier_inputs(&self) -> usize {
        if self.shared_trunk {
            self.encoder_hidden.first().copied().unwrap_or(0)
        } else {
            self.input_len
        }
    }

    /// Checks the sizes, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(format!("m2: {m}")));
        for (field, v) in [("input_len", self.input_len), ("latent", self.latent)] {
            if v == 0 {
                return bad(format!("{field} must be at least 1"));
            }
        }
        if self.classes < 2 {
            return bad(format!("classes is {}, needs at least 2", self.classes));
        }
        for (field, widths) in [
            ("classifier_hidden", &self.classifier_hidden),
            ("encoder_hidden", &self.encoder_hidden),
            ("decoder_hidden", &self.decoder_hidden),
        ] {
            if widths.contains(&0) {
                return bad(format!("{field} has a layer of width 0"));
            }
        }
        if self.encoder_hidden.is_empty() || self.decoder_hidden.is_empty() {
            return bad("encoder_hidden and decoder_hidden need at least one layer (the label enters there)".into());
        }
        Ok(())
    }
}

/// Hidden ReLU layers whose first layer also sees a one-hot label.
#[derive(Debug, Clone)]
pub(crate) struct LabelledStack {
    pub first: Dense,
    /// `hidden x classes`: column c is added to the first layer's pre-activation for label c.
    pub label_weight: Var,
    pub rest: Vec<Dense>,
}

impl LabelledStack {
    fn init(
        prefix: &str,
        input: usize,
        hidden: &[usize],
        classes: usize,
        rng: &mut tinyvae::Rng,
    ) -> Result<Self, TrainError> {
        // One draw for the whole first layer over [input, label], so its scale matches a Dense
        // layer of input + classes features (what the exported graph is).
        let first_full = Dense::init(format!("{prefix}.0"), input + classes, hidden[0], rng)?;
        let w = first_full.weight();
        let first = Dense::from_tensors(
            &format!("{prefix}.0"),
            &HashMap::from([
                (format!("{prefix}.0.weight"), w.narrow(1, 0, input)?.contiguous()?),
                (format!("{prefix}.0.bias"), first_full.bias().copy()?),
            ]),
            Some(input),
            Some(hidden[0]),
        )?;
        let label_weight = Var::from_tensor(&w.narrow(1, input, classes)?.contiguous()?)?;
        let rest = hidden
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::init(format!("{prefix}.{}", i + 1), w[0], w[1], rng))
            .collect::<Result<_, _>>()?;
        Ok(LabelledStack { first, label_weight, rest })
    }

    fn from_tensors(
        prefix: &str,
        input: usize,
        hidden: &[usize],
        classes: usize,
        t: &HashMap<String, Tensor>,
    ) -> Result<Self, WeightsError> {
        let first = Dense::from_tensors(&format!("{prefix}.0"), t, Some(input), Some(hidden[0]))?;
        let name = format!("{prefix}.0.label_weight");
        let label_weight = named_var(t, &name, 2)?;
        if label_weight.dims() != [hidden[0], classes] {
            return Err(WeightsError::Mismatch(format!(
                "tensor `{name}` has shape {:?}, the configuration needs [{}, {classes}]",
                label_weight.dims(),
                hidden[0]
            )));
        }
        let rest = hidden
            .windows(2)
            .enumerate()
            .map(|(i, w)| Dense::from_tensors(&format!("{prefix}.{}", i + 1), t, Some(w[0]), Some(w[1])))
            .collect::<Result<_, _>>()?;
        Ok(LabelledStack { first, label_weight, rest })
    }

    fn finish(&self, pre: Tensor) -> Result<Tensor, TrainError> {
        let mut h = pre.relu()?;
        for l in &self.rest {
            h = l.forward(&h)?.relu()?;
        }
        Ok(h)
    }

    /// Last hidden activations for `input` (`batch x in`) with one-hot labels `y` (`batch x classes`).
    fn forward(&self, input: &Tensor, y: &Tensor) -> Result<Tensor, TrainError> {
        let pre = (self.first.forward(input)? + y.matmul(&self.label_weight.t()?)?)?;
        self.finish(pre)
    }

    /// Last hidden activations of every (row, class) pair: `(batch * classes) x hidden`, row
    /// `b * classes + c` for input row b with label c. The input's part of the first layer is
    /// computed once per row.
    fn forward_every_label(&self, input: &Tensor) -> Result<Tensor, TrainError> {
        let (batch, classes, hidden) = (input.dims()[0], self.label_weight.dims()[1], self.first.outputs());
        let pre_input = self.first.forward(input)?.unsqueeze(1)?;
        let label_rows = self.label_weight.t()?.unsqueeze(0)?;
        let pre = pre_input.broadcast_add(&label_rows)?.reshape((batch * classes, hidden))?;
        self.finish(pre)
    }

    /// Last hidden activations for `input` rows already laid out as `b * classes + c` with
    /// label c (the decoder of the unlabelled loss, whose z depends on the class).
    fn forward_cycling_labels(&self, input: &Tensor) -> Result<Tensor, TrainError> {
        let (rows, classes, hidden) = (input.dims()[0], self.label_weight.dims()[1], self.first.outputs());
        let pre = self.first.forward(input)?.reshape((rows / classes, classes, hidden))?;
        let pre = pre.broadcast_add(&self.label_weight.t()?.unsqueeze(0)?)?.reshape((rows, hidden))?;
        self.finish(pre)
    }

    fn push_parameters(&self, prefix: &str, out: &mut Vec<Parameter>) {
        self.first.push_parameters(out);
        out.push(Parameter::matrix(format!("{prefix}.0.label_weight"), &self.label_weight));
        for l in &self.rest {
            l.push_parameters(out);
        }
    }

    /// The first layer as one `hidden x (in + classes)` matrix over `[input, onehot(y)]`.
    pub fn first_weight_over_concat(&self) -> Result<Tensor, TrainError> {
        Ok(Tensor::cat(&[self.first.weight(), self.label_weight.as_tensor()], 1)?)
    }
}

/// The negative ELBO parts of (image, label) pairs, one value per pair.
#[derive(Debug, Clone)]
pub struct ElboTerms {
    /// `-log p(x|y,z)` with one z ~ q(z|x,y) (Bernoulli cross-entropy summed over pixels).
    pub reconstruction: Tensor,
    /// `KL(q(z|x,y) || N(0, I))`.
    pub kl: Tensor,
}

impl ElboTerms {
    /// `L(x,y) = reconstruction + kl_weight * kl + ln classes` (the last term is `-log p(y)`
    /// for the uniform prior).
    pub fn loss(&self, kl_weight: f64, classes: usize) -> Result<Tensor, TrainError> {
        Ok(((&self.reconstruction + (&self.kl * kl_weight)?)? + (classes as f64).ln())?)
    }
}

/// Kingma et al.'s M2: q(y|x), q(z|x,y) and p(x|y,z).
#[derive(Debug, Clone)]
pub struct M2 {
    shape: M2Shape,
    classifier: Mlp,
    encoder: LabelledStack,
    mu: Dense,
    logvar: Dense,
    decoder: LabelledStack,
    decoder_out: Dense,
}

impl M2 {
    /// Fresh weights drawn from `seed`.
    pub fn new(shape: &M2Shape, seed: u64) -> Result<Self, TrainError> {
        shape.validate()?;
        let mut rng = stream(seed, Stream::Init, 0);
        let mut widths = vec![shape.classifier_inputs()];
        widths.extend_from_slice(&shape.classifier_hidden);
        widths.push(shape.classes);
        let classifier = Mlp::init("classifier", &widths, &mut rng)?;
        let encoder = LabelledStack::init("encoder", shape.input_len, &shape.encoder_hidden, shape.classes, &mut rng)?;
        let top = *shape.encoder_hidden.last().expect("validated non-empty");
        let mu = Dense::init("encoder.mu", top, shape.latent, &mut rng)?;
        let logvar = Dense::init("encoder.logvar", top, shape.latent, &mut rng)?;
        let decoder = LabelledStack::init("decoder", shape.latent, &shape.decoder_hidden, shape.classes, &mut rng)?;
        let top = *shape.decoder_hidden.last().expect("validated non-empty");
        let decoder_out = Dense::init("decoder.out", top, shape.input_len, &mut rng)?;
        Ok(M2 { shape: shape.clone(), classifier, encoder, mu, logvar, decoder, decoder_out })
    }

    /// The model stored in named tensors (what [`M2::weights`] gives); the error names the first
    /// missing or misshapen tensor.
    pub fn from_tensors(shape: &M2Shape, t: &HashMap<String, Tensor>) -> Result<Self, WeightsError> {
        shape.validate().map_err(WeightsError::config)?;
        let classifier = Mlp::from_tensors("classifier", t)?;
        if classifier.inputs() != shape.classifier_inputs()
            || classifier.outputs() != shape.classes
            || classifier.hidden() != shape.classifier_hidden
        {
            return Err(WeightsError::Mismatch(format!(
                "classifier tensors are {} -> {:?} -> {}, the configuration needs {} -> {:?} -> {}",
                classifier.inputs(),
                classifier.hidden(),
                classifier.outputs(),
                shape.classifier_inputs(),
                shape.classifier_hidden,
                shape.classes
            )));
        }
        let encoder = LabelledStack::from_tensors("encoder", shape.input_len, &shape.encoder_hidden, shape.classes, t)?;
        let top = *shape.encoder_hidden.last().expect("validated non-empty");
        let mu = Dense::from_tensors("encoder.mu", t, Some(top), Some(shape.latent))?;
        let logvar = Dense::from_tensors("encoder.logvar", t, Some(top), Some(shape.latent))?;
        let decoder = LabelledStack::from_tensors("decoder", shape.latent, &shape.decoder_hidden, shape.classes, t)?;
        let top = *shape.decoder_hidden.last().expect("validated non-empty");
        let decoder_out = Dense::from_tensors("decoder.out", t, Some(top), Some(shape.input_len))?;
        Ok(M2 { shape: shape.clone(), classifier, encoder, mu, logvar, decoder, decoder_out })
    }

    /// The sizes.
    pub fn shape(&self) -> &M2Shape {
        &self.shape
    }

    /// q(y|x).
    pub fn classifier(&self) -> &Mlp {
        &self.classifier
    }

    pub(crate) fn encoder_stack(&self) -> &LabelledStack {
        &self.encoder
    }

    pub(crate) fn decoder_stack(&self) -> &LabelledStack {
        &self.decoder
    }

    /// The `mu` head of q(z|x,y).
    pub fn mu_head(&self) -> &Dense {
        &self.mu
    }

    /// The `logvar` head of q(z|x,y).
    pub fn logvar_head(&self) -> &Dense {
        &self.logvar
    }

    /// The output layer of p(x|y,z) (logits).
    pub fn decoder_output(&self) -> &Dense {
        &self.decoder_out
    }

    /// Parameters in canonical order (classifier, encoder, decoder).
    pub(crate) fn parameters(&self) -> Vec<Parameter> {
        let mut out = Vec::new();
        self.classifier.push_parameters(&mut out);
        self.encoder.push_parameters("encoder", &mut out);
        self.mu.push_parameters(&mut out);
        self.logvar.push_parameters(&mut out);
        self.decoder.push_parameters("decoder", &mut out);
        self.decoder_out.push_parameters(&mut out);
        out
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.parameters().iter().map(|p| p.var.elem_count()).sum()
    }

    /// Copies of the weights by name.
    pub fn weights(&self) -> Result<HashMap<String, Tensor>, TrainError> {
        named_copies(&self.parameters())
    }

    /// Class logits of q(y|x), `batch x classes`; `masks` are dropout masks of its hidden layers.
    pub fn class_logits(&self, x: &Tensor, masks: Option<&[Tensor]>) -> Result<Tensor, TrainError> {
        if self.shape.shared_trunk {
            let features = self.encoder.first.forward(x)?.relu()?;
            return self.classifier.forward(&features, masks);
        }
        self.classifier.forward(x, masks)
    }

    /// log q(y|x), `batch x classes`.
    pub fn class_log_probs(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        Ok(candle_nn::ops::log_softmax(&self.class_logits(x, None)?, D::Minus1)?)
    }

    /// (mu, logvar) of q(z|x,y) for images `x` and one-hot labels `y`.
    pub fn encode(&self, x: &Tensor, y: &Tensor) -> Result<(Tensor, Tensor), TrainError> {
        let h = self.encoder.forward(x, y)?;
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }

    /// Bernoulli logits of p(x|y,z) for `z` and one-hot labels `y`.
    pub fn decode_logits(&self, z: &Tensor, y: &Tensor) -> Result<Tensor, TrainError> {
        self.decoder_out.forward(&self.decoder.forward(z, y)?)
    }

    /// The mean of p(x|y,z): pixel probabilities (Bernoulli) or feature means (Gaussian).
    pub fn decode(&self, z: &Tensor, y: &Tensor) -> Result<Tensor, TrainError> {
        let out = self.decode_logits(z, y)?;
        match self.shape.likelihood {
            M2Likelihood::Bernoulli => Ok(candle_nn::ops::sigmoid(&out)?),
            M2Likelihood::Gaussian => Ok(out),
        }
    }

    /// `-log p(x|y,z)` per row of the decoder's outputs `out`, row `r` against row `r / repeat`
    /// of `x`.
    fn reconstruction(&self, out: &Tensor, x: &Tensor, repeat: usize) -> Result<Tensor, TrainError> {
        match self.shape.likelihood {
            M2Likelihood::Bernoulli => bernoulli_nll_rows(out, x, repeat),
            M2Likelihood::Gaussian => gaussian_nll_rows(out, x, repeat),
        }
    }

    /// ELBO terms of images `x` with their `labels`; `eps` is `batch x latent` N(0, I) noise.
    pub fn labelled_terms(&self, x: &Tensor, labels: &[u8], eps: &Tensor) -> Result<ElboTerms, TrainError> {
        let y = one_hot(labels, self.shape.classes)?;
        let (mu, logvar) = self.encode(x, &y)?;
        let z = (&mu + (&logvar * 0.5)?.exp()?.mul(eps)?)?;
        let logits = self.decode_logits(&z, &y)?;
        Ok(ElboTerms { reconstruction: self.reconstruction(&logits, x, 1)?, kl: kl_to_standard_normal(&mu, &logvar)? })
    }

    /// ELBO terms of every (image, class) pair, each `batch x classes`; `eps` is
    /// `(batch * classes) x latent`, row `b * classes + c` being the noise of image b, class c.
    pub fn every_label_terms(&self, x: &Tensor, eps: &Tensor) -> Result<ElboTerms, TrainError> {
        let (batch, k) = (x.dims()[0], self.shape.classes);
        let h = self.encoder.forward_every_label(x)?;
        let (mu, logvar) = (self.mu.forward(&h)?, self.logvar.forward(&h)?);
        let z = (&mu + (&logvar * 0.5)?.exp()?.mul(eps)?)?;
        let logits = self.decoder_out.forward(&self.decoder.forward_cycling_labels(&z)?)?;
        Ok(ElboTerms {
            reconstruction: self.reconstruction(&logits, x, k)?.reshape((batch, k))?,
            kl: kl_to_standard_normal(&mu, &logvar)?.reshape((batch, k))?,
        })
    }

    /// The unlabelled loss `U(x) = sum_y q(y|x) L(x,y) - H(q(y|x))` per image, with the
    /// class logits of q(y|x) (computed with `masks` when given) and the per-class terms.
    pub fn unlabelled_loss(
        &self,
        x: &Tensor,
        eps: &Tensor,
        kl_weight: f64,
        masks: Option<&[Tensor]>,
    ) -> Result<UnlabelledLoss, TrainError> {
        let logits = self.class_logits(x, masks)?;
        let log_q = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let q = log_q.exp()?;
        let terms = self.every_label_terms(x, eps)?;
        let per_class = terms.loss(kl_weight, self.shape.classes)?;
        let expected = q.mul(&per_class)?.sum(D::Minus1)?;
        let entropy = q.mul(&log_q)?.sum(D::Minus1)?.neg()?;
        Ok(UnlabelledLoss { loss: (expected - &entropy)?, entropy, log_q, terms })
    }
}

/// [`M2::unlabelled_loss`]'s result.
#[derive(Debug, Clone)]
pub struct UnlabelledLoss {
    /// U(x) per image.
    pub loss: Tensor,
    /// H(q(y|x)) per image.
    pub entropy: Tensor,
    /// log q(y|x), `batch x classes`.
    pub log_q: Tensor,
    /// The per-class ELBO terms, `batch x classes`.
    pub terms: ElboTerms,
}
