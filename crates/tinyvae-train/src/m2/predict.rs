//! What q(y|x) of a trained M2 says: its predictions and error, and the diagnostic prediction
//! of the generative half (the class whose decoder explains an image best).

use candle_core::{DType, Device, Tensor};

use super::M2;
use crate::classifier::{error_rate, LabelledImages};
use crate::data::ImageSet;
use crate::error::TrainError;
use crate::nn::argmax_rows;

/// Images per forward pass when classifying (the result does not depend on it).
const EVAL_BATCH: usize = 1000;

/// Fraction of `set` that q(y|x) of `model` classifies wrongly (argmax).
pub fn error_on(model: &M2, set: &LabelledImages) -> Result<f64, TrainError> {
    error_rate(&predict(model, &set.images)?, &set.labels)
}

/// argmax q(y|x) of every image of `images`.
pub fn predict(model: &M2, images: &ImageSet) -> Result<Vec<u8>, TrainError> {
    let mut out = Vec::with_capacity(images.count);
    for batch in images.batches(EVAL_BATCH) {
        out.extend(argmax_rows(&model.class_logits(&images.tensor(batch)?, None)?)?);
    }
    Ok(out)
}

/// The class whose conditional generative model explains each image best: argmin over y of
/// L(x,y) with z at the mean of q(z|x,y). A diagnostic of what the unlabelled loss teaches
/// q(y|x): where this is right and q(y|x) is wrong, U pulls q(y|x) towards the right class.
pub fn generative_predict(model: &M2, images: &ImageSet) -> Result<Vec<u8>, TrainError> {
    let classes = model.shape().classes;
    let mut out = Vec::with_capacity(images.count);
    for batch in images.batches(EVAL_BATCH / classes) {
        let zero = Tensor::zeros((batch.len() * classes, model.shape().latent), DType::F32, &Device::Cpu)?;
        let loss = model.every_label_terms(&images.tensor(batch)?, &zero)?.loss(1.0, classes)?;
        out.extend(argmax_rows(&loss.neg()?)?);
    }
    Ok(out)
}
