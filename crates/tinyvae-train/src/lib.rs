//! The candle trainer of tinyvae's variational autoencoders.
//!
//! A VAE here is an MLP Gaussian encoder q(z|x) = N(mu, diag exp(logvar)) and an MLP decoder
//! p(x|z) (Bernoulli: sigmoid means and binary cross-entropy against greyscale targets, or
//! Gaussian with identity covariance), trained by minimising the negative ELBO
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
//! Everything is deterministic given `TrainConfig::seed`: weights are initialised, images
//! shuffled and translated, dropout masks and z noise drawn from [`tinyvae::Rng`] streams, and
//! the candle CPU matrix products are reproducible, so two runs give bit-identical losses and a
//! resumed run continues exactly where the checkpoint left off.
//!
//! Modules: [`config`] (what to train), [`data`] (images and random streams), [`model`] (the
//! network and loss terms), [`train`] (the loop), [`eval`] (negative ELBO), [`checkpoint`]
//! (safetensors + JSON sidecars), [`export`] (IR graphs and ONNX).
//!
//! The whole family trains on one loop, [`engine`] (a member implements [`engine::Member`]):
//! the VAE above, the conditional VAE (a [`Vae`] with `VaeConfig::classes > 0`), the
//! deterministic autoencoders (AE, denoising, contractive) in [`autoencoder`], and the
//! adversarial autoencoder in [`aae`].

pub mod aae;
pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod data;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod m2;
pub mod model;
mod optim;
pub mod ssl;
pub mod train;

pub use aae::{Aae, AaeConfig};
pub use autoencoder::{AeConfig, Autoencoder};
pub use checkpoint::{load_checkpoint, load_model, Checkpoint, CheckpointInfo, ModelInfo};
pub use config::{Likelihood, LrSchedule, TrainConfig, VaeConfig};
pub use data::{ImageSet, TrainingData};
pub use engine::{train_member, Member, RunReport};
pub use error::TrainError;
pub use eval::{evaluate, evaluate_split, Nelbo};
pub use export::{decoder_graph, encoder_graph, export_discrepancy, export_onnx};
pub use model::Vae;
pub use train::{train, train_on, EpochRecord, TrainReport};
