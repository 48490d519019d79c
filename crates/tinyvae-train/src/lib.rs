//! The candle trainer of tinyvae's variational autoencoders.
//!
//! A VAE here is a Gaussian encoder q(z|x) = N(mu, diag exp(logvar)) and a decoder p(x|z), MLPs
//! or convolutional networks (Bernoulli: sigmoid means and binary cross-entropy against
//! greyscale targets, or Gaussian with identity covariance), trained by minimising the negative ELBO
//! `-E_q[log p(x|z)] + KL(q(z|x) || N(0, I))` with the reparametrisation trick, L Monte-Carlo
//! samples of z and the closed-form KL.
//!
//! ```no_run
//! use tinyvae_train::{train, TrainConfig, VaeConfig};
//! let vae = VaeConfig::mnist_z20(); // 784-400-20 encoder, 20-400-784 Bernoulli decoder
//! let cfg = TrainConfig { progress: true, export_onnx: true, ..TrainConfig::mnist_recipe("data/mnist", "models/vae-z20") };
//! let report = train(&vae, &cfg)?;
//! println!("test negative ELBO {:.2} nats", report.test.unwrap().nelbo);
//! # Ok::<(), tinyvae_train::TrainError>(())
//! ```
//!
//! # The convolutional VAE
//!
//! `VaeConfig::arch` picks the network family: [`Arch::Mlp`] (the default, and what a
//! configuration written before the field existed reads as) or [`Arch::Conv`], the
//! convolutional VAE of the PyTorch tutorials, for square greyscale images such as MNIST's:
//!
//! ```text
//! encoder  x [1,28,28] -> Conv2d(1, c1, 4, s2, p1) -> ReLU -> Conv2d(c1, c2, 4, s2, p1) -> ReLU
//!          -> flatten (c2*7*7) [-> concat label] -> Dense -> mu, Dense -> logvar
//! decoder  z [+ label] -> Dense(c2*7*7) -> ReLU -> view [c2,7,7]
//!          -> ConvTranspose2d(c2, c1, 4, s2, p1) -> ReLU -> ConvTranspose2d(c1, 1, 4, s2, p1) -> Sigmoid
//! ```
//!
//! with `channels: [c1, c2]` (`[32, 64]` by default, `VaeConfig::conv`; any number of stride-2
//! stages), optional `refine` stages `ConvTranspose2d(c2, c2, 3, 1, 1)` + ReLU after the view,
//! and optional Dense hidden layers (`encoder_hidden`, `decoder_hidden`) between the flattened
//! features and z. It trains, checkpoints and exports like the MLP; its ONNX files hold
//! `Conv`/`ConvTranspose` nodes (the IR's spatial ops). From the command line:
//! `tinyvae train --model vae --arch conv [--channels 32,64] [--refine-layers 1]`, and
//! `--model cvae` for the conditional one.
//!
//! ```no_run
//! use tinyvae_train::{train, TrainConfig, VaeConfig};
//! let conv = VaeConfig::conv(&[32, 64], 20);
//! let report = train(&conv, &TrainConfig { epochs: 20, export_onnx: true, ..TrainConfig::new("data/mnist", "runs/conv") })?;
//! # Ok::<(), tinyvae_train::TrainError>(())
//! ```
//!
//! Everything is deterministic given `TrainConfig::seed`: weights are initialised, images
//! shuffled and translated, dropout masks and z noise drawn from [`tinyvae::Rng`] streams, and
//! the candle CPU matrix products are reproducible, so two runs give bit-identical losses and a
//! resumed run continues exactly where the checkpoint left off.
//!
//! The whole family trains on one loop, [`engine`] (a member implements [`engine::Member`]):
//! the VAE above, the conditional VAE (a [`Vae`] with `VaeConfig::classes > 0`), the
//! deterministic autoencoders (AE, denoising, contractive) in [`autoencoder`], and the
//! adversarial autoencoder in [`aae`]. M2, the classifier and the semi-supervised table train
//! on loops of their own.
//!
//! # Layout
//!
//! The modules are layered: each one uses only modules above it in this list (checked by
//! `scripts/check-module-cycles.py`), so the crate can be read from the top.
//!
//! | layer | module | what |
//! |---|---|---|
//! | foundations | [`error`] | [`TrainError`], the one error type |
//! | | [`config`] | what to train: [`VaeConfig`], [`TrainConfig`] |
//! | | [`data`] | images in [0, 1], splits, augmentation, the seeded random streams |
//! | | `io` | safetensors, JSON sidecars and logs, all written atomically |
//! | building blocks | [`nn`] | parameters, dense layers, MLPs, convolutions, tensor helpers |
//! | | [`loss`] | KL, cross-entropies, Gaussian likelihoods, squared error |
//! | | `optim` | gradients with divergence errors, Adam, the weight average |
//! | | `graph` | IR graphs of trained layers, their check against candle, ONNX files |
//! | the VAE's network | [`model`] | [`Vae`] (MLP or conv): encoder, reparametrisation, decoder, negative ELBO |
//! | | [`eval`] | test negative ELBO |
//! | | [`export`] | the VAE's encoder and decoder graphs and ONNX files |
//! | the loop | [`engine`] | training, evaluation, model selection, log, checkpoints and resume |
//! | members | [`mod@train`] | the VAE and CVAE as an engine member, [`train()`] |
//! | | [`checkpoint`] | the VAE's view of checkpoint and model files |
//! | | [`autoencoder`] | AE, denoising AE, contractive AE |
//! | | [`aae`] | adversarial autoencoder |
//! | | [`classifier`] | the MNIST classifier that judges generated digits |
//! | | [`m2`] | Kingma et al.'s semi-supervised M2 |
//! | | [`ssl`] | the semi-supervised table (M2 against a supervised baseline) |

pub mod error;

pub mod config;
pub mod data;
mod io;

pub mod loss;
pub mod nn;
mod optim;

mod graph;

pub mod eval;
pub mod export;
pub mod model;

pub mod engine;

pub mod aae;
pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod m2;
pub mod ssl;
pub mod train;

pub use aae::{Aae, AaeConfig};
pub use autoencoder::{AeConfig, Autoencoder};
pub use checkpoint::{load_checkpoint, load_model, Checkpoint, CheckpointInfo, ModelInfo};
pub use config::{Arch, Likelihood, LrSchedule, TrainConfig, VaeConfig};
pub use data::{ImageSet, TrainingData};
pub use engine::{train_member, Member, RunReport};
pub use error::{TrainError, WeightsError};
pub use eval::{evaluate, evaluate_split, Nelbo};
pub use export::{decoder_graph, encoder_graph, export_discrepancy, export_onnx};
pub use model::Vae;
pub use train::{train, train_on, EpochRecord, TrainReport};
