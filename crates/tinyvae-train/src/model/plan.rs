//! The VAE's layers in canonical order, as a plan of shapes and names: what
//! [`super::Vae::new`] initialises (one random stream, in this order, so a network depends
//! only on its seed) and what [`super::Vae::from_weights`] reads back.
//!
//! MLP: `encoder.{i}`, `encoder.mu`, `encoder.logvar`, `decoder.{i}`, `decoder.out`
//! [, `decoder.logvar`]. Conv: `encoder.conv{i}` first, then the same Dense names (the last
//! `decoder.{i}` is the layer the convolutions' input is viewed from), then
//! `decoder.refine{j}`, `decoder.deconv{i}` and the transposed-convolution `decoder.out`
//! [, `decoder.logvar`].

use std::collections::HashMap;

use candle_core::Tensor;
use tinyvae_compiler::ir::Chw;

use crate::config::{Arch, Likelihood, VaeConfig};
use crate::error::{TrainError, WeightsError};
use crate::nn::{Conv2d, ConvShape, ConvTranspose2d, Dense};

/// The encoder's stride-2 downsampling convolutions and the decoder's upsampling ones.
const DOWN: ConvShape = ConvShape { kernel: 4, stride: 2, padding: 1 };
/// The decoder's size-preserving refinement stages.
const REFINE: ConvShape = ConvShape { kernel: 3, stride: 1, padding: 1 };

/// One layer to make.
pub(super) enum Spec {
    Dense { name: String, inputs: usize, outputs: usize },
    Conv { name: String, input: Chw, outputs: usize, shape: ConvShape },
    ConvTranspose { name: String, input: Chw, outputs: usize, shape: ConvShape },
}

/// One layer made.
pub(super) enum Layer {
    Dense(Dense),
    Conv(Conv2d),
    ConvTranspose(ConvTranspose2d),
}

/// The image side of a conv VAE's `input_len`-pixel square images, checked divisible by
/// `2^stages`.
fn square_side(input_len: usize, stages: usize) -> Result<usize, String> {
    let side = (input_len as f64).sqrt().round() as usize;
    let step = 1usize.checked_shl(stages as u32).unwrap_or(0);
    if side * side != input_len || step == 0 || side == 0 || !side.is_multiple_of(step) {
        return Err(format!(
            "the conv architecture with {stages} stride-2 layers needs square images whose side is divisible by \
             {step}; these have {input_len} pixels"
        ));
    }
    Ok(side)
}

/// The layers of `config` for images of `input_len` pixels, in canonical order.
pub(super) fn plan(config: &VaeConfig, input_len: usize) -> Result<Vec<Spec>, String> {
    let mut plan = Vec::new();
    let dense = |name: String, inputs, outputs| Spec::Dense { name, inputs, outputs };
    // The encoder's convolutions and the flat width after them.
    let (mut width, view) = match &config.arch {
        Arch::Mlp => (input_len, None),
        Arch::Conv { channels, .. } => {
            let side = square_side(input_len, channels.len())?;
            let mut shape = [1, side, side];
            for (i, &c) in channels.iter().enumerate() {
                plan.push(Spec::Conv { name: format!("encoder.conv{i}"), input: shape, outputs: c, shape: DOWN });
                shape = [c, shape[1] / 2, shape[2] / 2];
            }
            (shape.iter().product(), Some(shape))
        }
    };
    width += config.classes;
    for (i, &h) in config.encoder_hidden.iter().enumerate() {
        plan.push(dense(format!("encoder.{i}"), width, h));
        width = h;
    }
    plan.push(dense("encoder.mu".into(), width, config.latent));
    plan.push(dense("encoder.logvar".into(), width, config.latent));
    width = config.latent + config.classes;
    let mut hidden = config.decoder_hidden.clone();
    hidden.extend(view.map(|v| v.iter().product::<usize>()));
    for (i, &h) in hidden.iter().enumerate() {
        plan.push(dense(format!("decoder.{i}"), width, h));
        width = h;
    }
    let head = |name: &str| match (&config.arch, view) {
        (Arch::Conv { channels, .. }, Some([_, h, w])) => {
            let scale = 1 << (channels.len() - 1);
            let input = [channels[0], h * scale, w * scale];
            Spec::ConvTranspose { name: name.into(), input, outputs: 1, shape: DOWN }
        }
        _ => dense(name.into(), width, input_len),
    };
    if let (Arch::Conv { channels, refine }, Some(mut shape)) = (&config.arch, view) {
        for j in 0..*refine {
            plan.push(Spec::ConvTranspose {
                name: format!("decoder.refine{j}"),
                input: shape,
                outputs: shape[0],
                shape: REFINE,
            });
        }
        for (i, &c) in channels.iter().rev().skip(1).enumerate() {
            plan.push(Spec::ConvTranspose {
                name: format!("decoder.deconv{i}"),
                input: shape,
                outputs: c,
                shape: DOWN,
            });
            shape = [c, shape[1] * 2, shape[2] * 2];
        }
    }
    plan.push(head("decoder.out"));
    if config.likelihood == Likelihood::GaussianLearned {
        plan.push(head("decoder.logvar"));
    }
    Ok(plan)
}

/// The planned layers, freshly initialised from `rng` in plan order.
pub(super) fn init(plan: Vec<Spec>, rng: &mut tinyvae::Rng) -> Result<Vec<Layer>, TrainError> {
    plan.into_iter()
        .map(|spec| {
            Ok(match spec {
                Spec::Dense { name, inputs, outputs } => Layer::Dense(Dense::init(name, inputs, outputs, rng)?),
                Spec::Conv { name, input, outputs, shape } => {
                    Layer::Conv(Conv2d::init(name, input, outputs, shape, rng)?)
                }
                Spec::ConvTranspose { name, input, outputs, shape } => {
                    Layer::ConvTranspose(ConvTranspose2d::init(name, input, outputs, shape, rng)?)
                }
            })
        })
        .collect()
}

/// The planned layers read from `weights`; the error names the first missing or misshapen
/// tensor.
pub(super) fn read(plan: Vec<Spec>, weights: &HashMap<String, Tensor>) -> Result<Vec<Layer>, WeightsError> {
    plan.into_iter()
        .map(|spec| {
            Ok(match spec {
                Spec::Dense { name, inputs, outputs } => {
                    Layer::Dense(Dense::from_weights(name, inputs, outputs, weights)?)
                }
                Spec::Conv { name, input, outputs, shape } => {
                    Layer::Conv(Conv2d::from_tensors(&name, weights, input, outputs, shape)?)
                }
                Spec::ConvTranspose { name, input, outputs, shape } => {
                    Layer::ConvTranspose(ConvTranspose2d::from_tensors(&name, weights, input, outputs, shape)?)
                }
            })
        })
        .collect()
}
