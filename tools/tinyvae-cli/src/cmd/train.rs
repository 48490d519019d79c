//! `tinyvae train --model ae|dae|cae|vae|cvae|aae`: the candle trainer behind flags. Every
//! member writes its checkpoints, `train_log.jsonl`, `model.json` + `model.safetensors`, and
//! `decoder.onnx` (z [+ label] -> pixels) and `encoder.onnx` into `--out`.
//!
//! `--arch conv` (VAE and CVAE) trains the convolutional VAE of `tinyvae_train::Arch::Conv`
//! instead of the MLP: stride-2 convolutions of `--channels` (32,64 by default) in the
//! encoder, transposed convolutions back to the image in the decoder.
//!
//! The flags shared by every member (data, schedule, seed, checkpoints) are [`RunArgs`]; each
//! member reads its own group. A new member is one [`Model`] variant and one arm in [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use tinyvae_train::aae::{Aae, AaeConfig, Prior};
use tinyvae_train::autoencoder::{AeConfig, AeLoss, Autoencoder, CorruptionSpec};
use tinyvae_train::engine::{train_member, Member, RunReport};
use tinyvae_train::{Arch, Likelihood, LrSchedule, TrainConfig, Vae, VaeConfig};

/// The family members `tinyvae train` can train.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Autoencoder, linear (--linear) or MLP, squared error or cross-entropy (--loss).
    Ae,
    /// Denoising autoencoder: trained on corrupted inputs (--corruption, --noise) against clean targets.
    Dae,
    /// Contractive autoencoder: sigmoid code with the penalty --contractive * ||J_h(x)||_F^2.
    Cae,
    /// Variational autoencoder (Bernoulli or Gaussian decoder, --likelihood; MLP or --arch conv).
    Vae,
    /// Conditional VAE: encoder q(z|x,y) and decoder p(x|y,z) take the one-hot label (MLP or --arch conv).
    Cvae,
    /// Adversarial autoencoder: a discriminator on z (with the label, by default) against a prior.
    Aae,
}

/// Flags every member shares: data, schedule, seed, checkpoints, output.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// MNIST-style IDX directory (train-* and t10k-* files, gzipped or not), or a fetched data
    /// set (mnist, fashion-mnist).
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Output directory: checkpoints, train_log.jsonl, model.safetensors, encoder.onnx, decoder.onnx.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Passes over the training images.
    #[arg(long, default_value_t = 100)]
    pub epochs: usize,
    /// Images per optimiser step.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Cosine decay of the learning rate to this fraction of --lr (omit for a constant rate).
    #[arg(long)]
    pub cosine_to: Option<f64>,
    /// Seed: initialisation, shuffling, augmentation and every noise draw; same seed, same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many optimiser steps.
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Resume from a checkpoint (its .json sidecar, or the output directory).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Hold out the last N training images; the best epoch on them is the final model.
    #[arg(long, default_value_t = 0)]
    pub validation_images: usize,
    /// Evaluate the test split every N epochs and at the end (0: never).
    #[arg(long, default_value_t = 10)]
    pub test_every: usize,
    /// Warm-up of the regulariser weight (VAE KL, CAE penalty) over N epochs (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub kl_warmup: f64,
    /// Random translation of training images by up to N pixels (0: off).
    #[arg(long, default_value_t = 0)]
    pub translate: usize,
    /// Probability that a training image is translated.
    #[arg(long, default_value_t = 0.5)]
    pub translate_prob: f64,
    /// Exponential moving average of the weights (e.g. 0.999), used for evaluation and export.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Do not write encoder.onnx / decoder.onnx.
    #[arg(long)]
    pub no_export: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl RunArgs {
    fn config(&self, encoder_dropout: f64) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            lr_schedule: match self.cosine_to {
                Some(f) => LrSchedule::Cosine { final_fraction: f },
                None => LrSchedule::Constant,
            },
            seed: self.seed,
            max_steps: self.max_steps,
            resume: self.resume.clone(),
            progress: !self.quiet,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            validation_images: self.validation_images,
            test_every: self.test_every,
            kl_warmup_epochs: self.kl_warmup,
            translate_px: self.translate,
            translate_prob: self.translate_prob,
            ema_decay: self.ema,
            encoder_dropout,
            export_onnx: !self.no_export,
            ..TrainConfig::new(&self.data, &self.out)
        }
    }
}

/// Encoder and decoder family of the VAE and CVAE.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchChoice {
    /// Fully connected encoder and decoder (--hidden).
    Mlp,
    /// Convolutional: Conv2d(4, stride 2, pad 1) + ReLU per --channels entry, flatten, Dense
    /// heads; Dense, view, ConvTranspose2d(4, 2, 1) back to the image (sigmoid output).
    Conv,
}

/// Network shape flags.
#[derive(clap::Args, Debug)]
pub struct ShapeArgs {
    /// Latent size (default 20; 2 for the AAE's mixture prior).
    #[arg(long)]
    pub latent: Option<usize>,
    /// VAE/CVAE architecture: mlp, or conv (28x28 -> 14x14 -> 7x7 convolutions and transposed
    /// convolutions back; images must be square with a side divisible by 2^(channel count)).
    #[arg(long, value_enum, default_value = "mlp")]
    pub arch: ArchChoice,
    /// --arch conv: output channels of the encoder's stride-2 convolutions, input side first
    /// (the decoder mirrors them) [default: 32,64].
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<usize>>,
    /// --arch conv: 3x3 stride-1 transposed convolutions (+ ReLU) after the decoder's view, before
    /// the upsampling ones [default: 0].
    #[arg(long)]
    pub refine_layers: Option<usize>,
    /// Hidden layer widths of the encoder and (mirrored) the decoder, comma separated [default:
    /// 400; with --arch conv: none, the Dense layers between the convolutions and z].
    #[arg(long, value_delimiter = ',')]
    pub hidden: Option<Vec<usize>>,
    /// Encoder hidden widths, when they differ from --hidden.
    #[arg(long, value_delimiter = ',')]
    pub encoder_hidden: Option<Vec<usize>>,
    /// Decoder hidden widths, when they differ from --hidden (reversed).
    #[arg(long, value_delimiter = ',')]
    pub decoder_hidden: Option<Vec<usize>>,
}

impl ShapeArgs {
    fn latent_or(&self, default: usize) -> usize {
        self.latent.unwrap_or(default)
    }

    /// `--hidden`, or its default: 400 for MLPs, none for the conv architecture.
    fn hidden(&self) -> Vec<usize> {
        let default = if self.arch == ArchChoice::Conv { vec![] } else { vec![400] };
        self.hidden.clone().unwrap_or(default)
    }

    fn encoder(&self) -> Vec<usize> {
        self.encoder_hidden.clone().unwrap_or_else(|| self.hidden())
    }

    fn decoder(&self) -> Vec<usize> {
        self.decoder_hidden.clone().unwrap_or_else(|| self.hidden().iter().rev().copied().collect())
    }

    /// The architecture the flags ask for; conv-only flags without `--arch conv` are errors.
    fn arch(&self) -> Result<Arch> {
        match self.arch {
            ArchChoice::Mlp => {
                if self.channels.is_some() || self.refine_layers.is_some() {
                    bail!("--channels and --refine-layers need --arch conv");
                }
                Ok(Arch::Mlp)
            }
            ArchChoice::Conv => Ok(Arch::Conv {
                channels: self.channels.clone().unwrap_or_else(|| vec![32, 64]),
                refine: self.refine_layers.unwrap_or(0),
            }),
        }
    }
}

/// VAE and CVAE flags.
#[derive(clap::Args, Debug)]
pub struct VaeArgs {
    /// Decoder likelihood: bernoulli (cross-entropy), gaussian (squared error, identity
    /// covariance) or gaussian-learned (per-pixel learned variance; only the mean is exported).
    #[arg(long, default_value = "bernoulli", value_parser = ["bernoulli", "gaussian", "gaussian-learned"])]
    pub likelihood: String,
    /// Monte-Carlo samples of z per image (L).
    #[arg(long, default_value_t = 1)]
    pub mc_samples: usize,
    /// Dropout on the encoder's hidden units during training (for --arch conv: on its hidden
    /// Dense layers after the convolutions, --hidden).
    #[arg(long, default_value_t = 0.0)]
    pub encoder_dropout: f64,
    /// Label classes of the CVAE.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
}

/// AE, DAE and CAE flags.
#[derive(clap::Args, Debug)]
pub struct AeArgs {
    /// Reconstruction loss: bce (cross-entropy; default) or mse (squared error; default of --linear).
    #[arg(long, value_parser = ["bce", "mse"])]
    pub loss: Option<String>,
    /// Linear autoencoder: no hidden layers, no nonlinearity (but --output-sigmoid).
    #[arg(long)]
    pub linear: bool,
    /// Sigmoid on a linear autoencoder's output (always on for MLPs and for --loss bce).
    #[arg(long)]
    pub output_sigmoid: bool,
    /// DAE corruption: masking (zeroing pixels), gaussian (additive noise) or salt-pepper.
    #[arg(long, default_value = "masking", value_parser = ["masking", "gaussian", "salt-pepper"])]
    pub corruption: String,
    /// DAE corruption rate (masking, salt-pepper) or standard deviation (gaussian).
    #[arg(long, default_value_t = 0.25)]
    pub noise: f32,
    /// Also evaluate on test inputs corrupted this way (masking, gaussian, salt-pepper), against
    /// the clean images: how a plain AE is compared with a DAE. A DAE uses its own by default.
    #[arg(long, value_parser = ["masking", "gaussian", "salt-pepper"])]
    pub eval_corruption: Option<String>,
    /// Level of --eval-corruption.
    #[arg(long, default_value_t = 0.25)]
    pub eval_noise: f32,
    /// CAE penalty weight lambda on ||J_h(x)||_F^2.
    #[arg(long, default_value_t = 1.0)]
    pub contractive: f64,
}

/// AAE flags.
#[derive(clap::Args, Debug)]
pub struct AaeArgs {
    /// Hidden widths of the discriminator on z.
    #[arg(long, value_delimiter = ',', default_value = "256,256")]
    pub disc_hidden: Vec<usize>,
    /// Prior p(z): mixture (10 2-D Gaussians on a circle, needs --latent 2) or normal (N(0, I)).
    #[arg(long, default_value = "mixture", value_parser = ["mixture", "normal"])]
    pub prior: String,
    /// Keep labels out of the discriminator (with the mixture prior, labels map each class to
    /// its component; they are used by default).
    #[arg(long)]
    pub no_labels: bool,
    /// Learning rate of the discriminator phase relative to --lr (a slower discriminator keeps
    /// the generator's gradient useful).
    #[arg(long, default_value_t = 0.03)]
    pub disc_lr_scale: f64,
    /// Learning rate of the generator phase (the encoder fooling the discriminator) relative to --lr.
    #[arg(long, default_value_t = 1.0)]
    pub gen_lr_scale: f64,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which member of the family to train.
    #[arg(long, value_enum, default_value = "vae")]
    pub model: Model,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub vae: VaeArgs,
    // Boxed: keeps `Command::Train` near the size of the other commands (clippy's
    // large_enum_variant).
    #[command(flatten)]
    pub ae: Box<AeArgs>,
    #[command(flatten)]
    pub aae: AaeArgs,
}

impl Args {
    fn vae_config(&self) -> Result<VaeConfig> {
        Ok(VaeConfig {
            arch: self.shape.arch()?,
            encoder_hidden: self.shape.encoder(),
            decoder_hidden: self.shape.decoder(),
            likelihood: match self.vae.likelihood.as_str() {
                "gaussian" => Likelihood::Gaussian,
                "gaussian-learned" => Likelihood::GaussianLearned,
                _ => Likelihood::Bernoulli,
            },
            mc_samples: self.vae.mc_samples,
            classes: if self.model == Model::Cvae { self.vae.classes } else { 0 },
            ..VaeConfig::mlp(&[], self.shape.latent_or(20))
        })
    }

    fn corruption(kind: &str, level: f32) -> Result<CorruptionSpec> {
        Ok(CorruptionSpec::parse(kind, level)?)
    }

    fn ae_config(&self) -> Result<AeConfig> {
        let latent = self.shape.latent_or(20);
        let a = &self.ae;
        let mut c = match self.model {
            Model::Cae => AeConfig::contractive(&self.shape.decoder(), latent, a.contractive),
            _ if a.linear => AeConfig::linear(latent),
            _ => AeConfig {
                encoder_hidden: self.shape.encoder(),
                decoder_hidden: self.shape.decoder(),
                ..AeConfig::mlp(&[], latent)
            },
        };
        match a.loss.as_deref() {
            Some("mse") => c.loss = AeLoss::Mse,
            Some(_) => c.loss = AeLoss::Bce,
            None => {}
        }
        c.output_sigmoid = c.output_sigmoid || a.output_sigmoid || c.loss == AeLoss::Bce;
        if self.model == Model::Dae {
            c.corruption = Some(Self::corruption(&a.corruption, a.noise)?);
        }
        if let Some(kind) = &a.eval_corruption {
            c.eval_corruption = Some(Self::corruption(kind, a.eval_noise)?);
        }
        if a.linear && self.model == Model::Cae {
            bail!("--linear does not apply to the contractive AE (its code is one sigmoid layer)");
        }
        Ok(c)
    }

    fn aae_config(&self) -> Result<AaeConfig> {
        let mixture = self.aae.prior == "mixture";
        let autoencoder = AeConfig {
            encoder_hidden: self.shape.encoder(),
            decoder_hidden: self.shape.decoder(),
            ..AeConfig::mlp(&[], self.shape.latent_or(if mixture { 2 } else { 20 }))
        };
        let prior = if mixture { Prior::mixture10() } else { Prior::Normal };
        Ok(AaeConfig {
            autoencoder,
            discriminator_hidden: self.aae.disc_hidden.clone(),
            prior,
            label_classes: if mixture && !self.aae.no_labels { 10 } else { 0 },
            discriminator_lr_scale: self.aae.disc_lr_scale,
            generator_lr_scale: self.aae.gen_lr_scale,
        })
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.shape.arch != ArchChoice::Mlp && !matches!(a.model, Model::Vae | Model::Cvae) {
        bail!("--arch conv is for --model vae and cvae");
    }
    if a.shape.arch == ArchChoice::Conv && a.vae.encoder_dropout > 0.0 && a.shape.encoder().is_empty() {
        bail!("--encoder-dropout drops hidden Dense units; --arch conv has none unless --hidden gives some");
    }
    let dropout = if matches!(a.model, Model::Vae | Model::Cvae) { a.vae.encoder_dropout } else { 0.0 };
    let cfg = a.run.config(dropout);
    match a.model {
        Model::Ae | Model::Dae | Model::Cae => finish(train_member::<Autoencoder>(&a.ae_config()?, &cfg)?, &cfg),
        Model::Vae | Model::Cvae => finish(train_member::<Vae>(&a.vae_config()?, &cfg)?, &cfg),
        Model::Aae => finish(train_member::<Aae>(&a.aae_config()?, &cfg)?, &cfg),
    }
}

/// Prints the final model's numbers (the same ones `model.json` and the log hold).
fn finish<M: Member>(report: RunReport<M>, cfg: &TrainConfig) -> Result<ExitCode> {
    println!(
        "trained {} epochs ({} steps, {:.0} s); final model from epoch {}",
        report.epochs_completed, report.global_step, report.elapsed_seconds, report.model_epoch
    );
    if let Some(v) = &report.validation {
        println!("  validation {}", M::describe(v));
    }
    if let Some(t) = &report.test {
        println!("  test {}", M::describe(t));
    }
    println!("  outputs in {} (log: {})", cfg.out_dir.display(), cfg.log_file().display());
    for f in &report.exported {
        println!("  wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}
