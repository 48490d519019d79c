//! Evaluation: the negative ELBO (reconstruction negative log-likelihood plus KL to the prior)
//! in nats per image, with one z sample per image drawn from a fixed seed, so two evaluations
//! of one model on one split always agree.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tinyvae_data::idx::Split;

use crate::data::{gaussian_tensor, stream, ImageSet, Stream};
use crate::error::TrainError;
use crate::model::Vae;
use crate::nn::one_hot;

/// Images per forward pass during evaluation (the result does not depend on it).
const EVAL_BATCH: usize = 500;

/// A negative ELBO and its parts, averaged over images (nats per image).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Nelbo {
    /// `reconstruction + kl`.
    pub nelbo: f64,
    /// -log p(x|z) with one z ~ q(z|x) (greyscale BCE summed over pixels, for Bernoulli).
    pub reconstruction: f64,
    /// KL(q(z|x) || N(0, I)).
    pub kl: f64,
    /// Images averaged over.
    pub images: usize,
}

/// Negative ELBO of `model` on `images`, one z sample per image, the noise drawn from `seed`
/// image after image (so the batch size does not matter).
pub fn evaluate(model: &Vae, images: &ImageSet, seed: u64) -> Result<Nelbo, TrainError> {
    evaluate_labelled(model, images, None, seed)
}

/// [`evaluate`] for a conditional VAE, which needs the images' `labels` (one per image); an
/// unconditional model takes `None`.
pub fn evaluate_labelled(
    model: &Vae,
    images: &ImageSet,
    labels: Option<&[u8]>,
    seed: u64,
) -> Result<Nelbo, TrainError> {
    if labels.is_some_and(|l| l.len() != images.count) {
        return Err(TrainError::Data(format!("{} labels for {} images", labels.map_or(0, |l| l.len()), images.count)));
    }
    if images.len() != model.input_len() {
        return Err(TrainError::Data(format!(
            "images have {} pixels, the model takes {}",
            images.len(),
            model.input_len()
        )));
    }
    let mut rng = stream(seed, Stream::Eval, 0);
    let (mut recon_sum, mut kl_sum) = (0f64, 0f64);
    for batch in images.batches(EVAL_BATCH) {
        let x = images.tensor(batch.clone())?;
        let eps = gaussian_tensor(&mut rng, batch.len(), model.latent())?;
        let y = labels.map(|l| one_hot(&l[batch], model.classes())).transpose()?;
        let (recon, kl) = model.nelbo_parts_labelled(&x, y.as_ref(), &eps, None)?;
        recon_sum += recon.to_vec1::<f32>()?.iter().map(|&v| v as f64).sum::<f64>();
        kl_sum += kl.to_vec1::<f32>()?.iter().map(|&v| v as f64).sum::<f64>();
    }
    let n = images.count.max(1) as f64;
    Ok(Nelbo { nelbo: (recon_sum + kl_sum) / n, reconstruction: recon_sum / n, kl: kl_sum / n, images: images.count })
}

/// [`evaluate`] on a split of an IDX directory (first `limit` images if given).
pub fn evaluate_split(
    model: &Vae,
    data_dir: &Path,
    split: Split,
    limit: Option<usize>,
    seed: u64,
) -> Result<Nelbo, TrainError> {
    evaluate(model, &ImageSet::load(data_dir, split, limit)?, seed)
}
