//! `tinyvae eval-ssl --data DIR --out DIR`: the semi-supervised table. Trains M2 for every
//! (label count, seed) pair, reports the test error as mean ± std per label count next to
//! Kingma et al.'s figures, and writes `table.md` / `table.json` (rewritten after every run).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tinyvae_train::m2::M2Config;
use tinyvae_train::ssl::{eval_ssl, SslEvalConfig};
use tinyvae_train::LrSchedule;

/// The M2 recipe, shared with anything else that trains M2 from flags.
#[derive(clap::Args, Debug, Clone)]
pub struct M2Args {
    /// MNIST-style IDX directory (train-* and t10k-* files), or a fetched data set (mnist, fashion-mnist).
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Size of z.
    #[arg(long, default_value_t = 50)]
    pub latent: usize,
    /// Hidden widths of q(y|x), q(z|x,y) and p(x|y,z), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "500")]
    pub hidden: Vec<usize>,
    /// Hidden widths of q(y|x) when they differ from --hidden.
    #[arg(long, value_delimiter = ',')]
    pub classifier_hidden: Option<Vec<usize>>,
    /// q(y|x) reads the encoder's first hidden layer (computed without the label) instead of the pixels.
    #[arg(long)]
    pub shared_trunk: bool,
    /// Passes over the unlabelled images.
    #[arg(long, default_value_t = 50)]
    pub epochs: usize,
    /// Unlabelled images per step.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Labelled images per step (oversampled from their own stream).
    #[arg(long, default_value_t = 100)]
    pub labelled_batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Cosine decay of the learning rate to this fraction of --lr (0 or omitted with --constant-lr: constant).
    #[arg(long, default_value_t = 0.05)]
    pub cosine_to: f64,
    /// Keep the learning rate constant.
    #[arg(long)]
    pub constant_lr: bool,
    /// Classification weight: the paper's alpha / N (the paper: 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub alpha: f64,
    /// Weight of the labelled ELBO (default: the unbiased N_l / N).
    #[arg(long)]
    pub labelled_share: Option<f64>,
    /// KL warm-up length in epochs (0: off).
    #[arg(long, default_value_t = 0.0)]
    pub kl_warmup: f64,
    /// Weight of M2's KL term after the warm-up (β; 1: the ELBO, above 1: a smaller z budget,
    /// so that the decoder takes the class from y).
    #[arg(long, default_value_t = 1.0)]
    pub kl_weight: f64,
    /// Random shifts of training images by up to N pixels (0: off).
    #[arg(long, default_value_t = 0)]
    pub translate: usize,
    /// Probability that a training image is shifted.
    #[arg(long, default_value_t = 1.0)]
    pub translate_prob: f64,
    /// Dropout on q(y|x)'s hidden units during training.
    #[arg(long, default_value_t = 0.0)]
    pub classifier_dropout: f64,
    /// Exponential moving average of the weights (e.g. 0.999), used for evaluation and export.
    #[arg(long)]
    pub ema: Option<f64>,
    /// Hold out the last N training images (with labels) and log their error.
    #[arg(long, default_value_t = 0)]
    pub validation_images: usize,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Stop each run after this many steps (quick looks).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Measure the test error every N epochs (0: only at the end).
    #[arg(long, default_value_t = 5)]
    pub test_every: usize,
    /// Write encoder.onnx (q(z|x,y)), decoder.onnx (p(x|y,z)) and classifier.onnx (q(y|x)) of
    /// every run.
    #[arg(long)]
    pub export: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// M1+M2: M2 (and the baseline) learn from the mean codes this VAE encoder (ONNX) gives the
    /// images, with a Gaussian p(x|y,z); `--export` then writes M1's encoder and q(y|x) as one
    /// image classifier. Train M1 on all the images first, e.g. `tinyvae train --model vae
    /// --latent 50 --hidden 500`. Shifts (--translate) do not apply to codes.
    #[arg(long)]
    pub m1: Option<PathBuf>,
}

impl M2Args {
    /// The M2 configuration these flags describe (labels, seed and output set by the caller).
    pub fn config(&self) -> M2Config {
        M2Config {
            latent: self.latent,
            classifier_hidden: self.classifier_hidden.clone().unwrap_or_else(|| self.hidden.clone()),
            encoder_hidden: self.hidden.clone(),
            decoder_hidden: self.hidden.clone(),
            shared_trunk: self.shared_trunk,
            epochs: self.epochs,
            batch_size: self.batch_size,
            labelled_batch_size: self.labelled_batch_size,
            lr: self.lr,
            lr_schedule: if self.constant_lr || self.cosine_to <= 0.0 {
                LrSchedule::Constant
            } else {
                LrSchedule::Cosine { final_fraction: self.cosine_to }
            },
            alpha: self.alpha,
            labelled_share: self.labelled_share,
            kl_warmup_epochs: self.kl_warmup,
            kl_weight: self.kl_weight,
            translate_px: self.translate,
            translate_prob: self.translate_prob,
            classifier_dropout: self.classifier_dropout,
            ema_decay: self.ema,
            validation_images: self.validation_images,
            train_limit: self.train_limit,
            test_limit: self.test_limit,
            max_steps: self.max_steps,
            test_every: self.test_every,
            progress: !self.quiet,
            export_onnx: self.export,
            m1_encoder: self.m1.clone(),
            ..M2Config::new(&self.data, PathBuf::new())
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output directory: table.md, table.json and one nLABELS-seedSEED/ directory per run (e.g. n100-seed0/).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Labelled-image counts (balanced per class), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,600,1000,3000")]
    pub labels: Vec<usize>,
    /// Seeds, comma separated (each draws its own labelled subset).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Skip the supervised-only baseline (q(y|x) trained on the labelled images alone).
    #[arg(long)]
    pub no_baseline: bool,
    /// Adam steps of the baseline.
    #[arg(long, default_value_t = 3000)]
    pub baseline_steps: usize,
    /// Continue an interrupted evaluation in --out: keep the runs its table.json records (same
    /// settings required) and run the rest; the table ends as an uninterrupted one would.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub m2: M2Args,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut cfg = SslEvalConfig::new(a.m2.config(), &a.out);
    cfg.label_counts = a.labels.clone();
    cfg.seeds = a.seeds.clone();
    cfg.baseline_steps = a.baseline_steps;
    cfg.resume = a.resume;
    if a.no_baseline {
        cfg.baseline = None;
    }
    let table = eval_ssl(&cfg, |run, _| {
        let base = run.baseline_test_error.map_or(String::new(), |b| format!(", labelled-only NN {b:.2} %"));
        let val = run.validation_error.map_or(String::new(), |v| format!(", validation {v:.2} %"));
        println!(
            "labels {:>4} seed {}: M2 test error {:.2} %{val}{base} ({:.0} s, {})",
            run.labelled,
            run.seed,
            run.test_error,
            run.seconds,
            run.dir.display()
        );
    })
    .with_context(|| format!("eval-ssl into {}", a.out.display()))?;
    println!("\n{}", tinyvae_train::ssl::render_markdown(&table));
    println!("wrote {} and {}", a.out.join("table.md").display(), a.out.join("table.json").display());
    Ok(ExitCode::SUCCESS)
}
