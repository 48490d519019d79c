//! `tinyvae quantize MODEL.onnx --precision int8|f16|f32 -o OUT.tvae`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use tinyvae::Precision;
use tinyvae_compiler::{Graph, Method, Report, Role, Settings};

use crate::util;

/// Role override for models whose ONNX carries no tinyvae metadata.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RoleArgs {
    /// What the model is: decoder (z -> pixels), encoder (pixels -> mu, logvar),
    /// autoencoder (feature vector -> its reconstruction, scored as an anomaly detector), or
    /// classifier (pixels -> class logits). Inferred from tinyvae metadata, or from the
    /// graph's shape (not for classifiers), when omitted.
    #[arg(long, value_parser = ["decoder", "encoder", "autoencoder", "classifier"])]
    pub role: Option<String>,
    /// Decoder with a Gaussian output (means) rather than Bernoulli (sigmoid probabilities).
    #[arg(long)]
    pub gaussian: bool,
}

impl RoleArgs {
    /// Imports an ONNX file and applies the override.
    pub fn load(&self, path: &Path) -> Result<Graph> {
        let mut g =
            tinyvae_compiler::onnx::import_file(path).with_context(|| format!("cannot import {}", path.display()))?;
        let len = |k: usize| g.inputs.get(k).map(|i| i.len).unwrap_or(0);
        match self.role.as_deref() {
            Some("decoder") => g.role = Role::Decoder { latent: len(0), classes: len(1), bernoulli: !self.gaussian },
            Some("encoder") => {
                let out = g.output_len(0).with_context(|| path.display().to_string())?;
                let latent = if g.outputs.len() == 2 { out } else { out / 2 };
                g.role = Role::Encoder { latent, classes: len(1) };
            }
            Some("autoencoder") => {
                let out = g.output_len(0).with_context(|| path.display().to_string())?;
                if g.inputs.len() != 1 || g.outputs.len() != 1 || out != len(0) {
                    anyhow::bail!(
                        "{}: an autoencoder maps one input to one output of the same length; this model has \
                         {} input(s) of {:?} values and {} output(s), the first of {out}",
                        path.display(),
                        g.inputs.len(),
                        g.inputs.iter().map(|i| i.len).collect::<Vec<_>>(),
                        g.outputs.len()
                    );
                }
                g.role = Role::Autoencoder;
            }
            Some("classifier") => {
                let out = g.output_len(0).with_context(|| path.display().to_string())?;
                if g.inputs.len() != 1 || g.outputs.len() != 1 || out < 2 {
                    anyhow::bail!(
                        "{}: a classifier maps one input to one output of 2 or more logits; this model has {} \
                         input(s) and {} output(s), the first of {out} values",
                        path.display(),
                        g.inputs.len(),
                        g.outputs.len()
                    );
                }
                g.role = Role::Classifier { classes: out };
            }
            _ => {}
        }
        Ok(g)
    }
}

/// The data a command runs a model on, beyond prior samples.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// IDX directory with train and t10k files, or a fetched data set (mnist, fashion-mnist):
    /// required for encoders. For autoencoders also a file of feature
    /// vectors: .npy (float32 or float64, [N, features] or [N, C, H, W]), or raw
    /// little-endian f32 with --shape; its first half calibrates and its second half evaluates
    /// unless --eval-data is given.
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: Option<PathBuf>,
    /// A separate feature file to evaluate on (autoencoders).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Dimensions of one sample of a raw f32 feature file, e.g. 640 or 1,28,28.
    #[arg(long, value_delimiter = ',')]
    pub shape: Option<Vec<usize>>,
}

impl DataArgs {
    /// The compiler's view of these arguments.
    pub fn data(&self) -> tinyvae_compiler::Data<'_> {
        tinyvae_compiler::Data {
            path: self.data.as_deref(),
            eval: self.eval_data.as_deref(),
            shape: self.shape.as_deref(),
        }
    }

    /// Every file these arguments read (outputs must not land on them).
    pub fn inputs(&self) -> Vec<&Path> {
        self.data.iter().chain(&self.eval_data).map(PathBuf::as_path).filter(|p| p.is_file()).collect()
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// ONNX model (tinyvae export, or e.g. torch.onnx.export of an MLP decoder/encoder).
    pub model: PathBuf,
    /// Output blob.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Precision of the blob.
    #[arg(long, default_value = "int8", value_parser = util::parse_precision)]
    pub precision: Precision,
    /// int8 range estimator: minmax, or percentile:P for the P-th percentile (percentile alone: P = 99.99).
    #[arg(long, default_value = "minmax")]
    pub calibration: Method,
    /// Calibration inputs: prior samples (decoders) or training images (encoders).
    #[arg(long, default_value_t = 2000)]
    pub calib_samples: usize,
    /// Inputs for the fidelity report (held out from calibration).
    #[arg(long, default_value_t = 1000)]
    pub eval_samples: usize,
    /// Seed of the prior samples (evaluation uses seed + 1).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Calibrate and evaluate a decoder on this encoder's codes of --data images instead of
    /// prior samples (for autoencoder and AAE decoders, whose codes are not N(0, I)).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Skip the search for the clipping ranges with the lowest output error (int8).
    #[arg(long)]
    pub no_refine: bool,
    /// Round int8 weights to nearest instead of with error compensation (GPTQ).
    #[arg(long)]
    pub no_gptq: bool,
    /// Store a learned latent prior in the decoder blob: the report `tinyvae fit-prior` wrote.
    #[arg(long)]
    pub prior: Option<PathBuf>,
    /// Keep an encoder's mu and logvar heads as two Dense nodes.
    #[arg(long)]
    pub no_fuse_heads: bool,
    #[command(flatten)]
    pub role: RoleArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut inputs = vec![a.model.as_path()];
    inputs.extend(a.prior.as_deref());
    inputs.extend(a.data.inputs());
    util::check_not_input(&a.output, &inputs)?;
    let prior = a.prior.as_deref().map(super::fit_prior::read_report).transpose()?;
    let graph = a.role.load(&a.model)?;
    let settings = Settings {
        precision: a.precision,
        method: a.calibration,
        calib_samples: a.calib_samples,
        seed: a.seed,
        eval_samples: a.eval_samples,
        data: a.data.data.clone(),
        eval_data: a.data.eval_data.clone(),
        shape: a.data.shape.clone(),
        fuse_heads: !a.no_fuse_heads,
        encoder: a.encoder.clone(),
        refine: !a.no_refine,
        gptq: !a.no_gptq,
    };
    let (mut blob, mut report) = tinyvae_compiler::quantize_and_measure(&graph, &settings)
        .with_context(|| format!("cannot quantize {}", a.model.display()))?;
    if let (Some(prior), Some(path)) = (&prior, &a.prior) {
        blob = tinyvae::attach_prior(&blob, prior)
            .map_err(|e| anyhow::anyhow!("cannot store the prior of {} in the blob: {e}", path.display()))?;
        report.blob_bytes = blob.len();
    }
    util::write(&a.output, &blob)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&a.model, &a.output, &report);
        if let (Some(prior), Some(path)) = (&prior, &a.prior) {
            println!("  prior       {} components, stored from {}", prior.components(), path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(model: &Path, out: &Path, r: &Report) {
    println!("{} -> {} ({} {})", model.display(), out.display(), r.precision, r.kind);
    println!("  blob        {:>9} bytes ({} of weights, biases and tables)", r.blob_bytes, r.weight_bytes);
    println!("  arena       {:>9} bytes per sample", r.arena_bytes);
    println!("  MACs        {:>9} per sample", r.macs);
    println!("  calibration {}", r.calibration);
    println!("  fidelity vs f32 on {}:", r.evaluated_on);
    println!(
        "    max abs {:.3e}   mean abs {:.3e}   PSNR {:.2} dB (peak {})",
        r.fidelity.max_abs, r.fidelity.mean_abs, r.fidelity.psnr_db, r.fidelity.peak
    );
    if let Some(s) = &r.scores {
        print_scores(s);
    }
    if let Some(c) = &r.classes {
        print_classes(c, "f32 graph");
    }
}

/// A classifier blob's classes against the reference's (`reference` names it), and both
/// against the labels.
pub fn print_classes(c: &tinyvae_compiler::ClassAgreement, reference: &str) {
    println!("  classes on {} inputs: the blob agrees with the {reference} on {:.2} %", c.inputs, 100.0 * c.agreement);
    if let (Some(r), Some(b)) = (c.reference_error, c.blob_error) {
        println!(
            "  error against the labels: {reference} {:.2} %, blob {:.2} % ({:+.2} points)",
            100.0 * r,
            100.0 * b,
            100.0 * (b - r)
        );
    }
}

/// An autoencoder's anomaly scores against the reference reconstruction errors.
pub fn print_scores(s: &tinyvae_compiler::ScoreAgreement) {
    println!(
        "  anomaly score (reconstruction MSE) on {} vectors: reference {:.5e}, blob {:.5e} ({:.3}% apart); \
         per vector median {:.3}%, max {:.3}%",
        s.vectors,
        s.reference_mse,
        s.blob_mse,
        100.0 * s.relative_error_of_mean,
        100.0 * s.median_relative_error,
        100.0 * s.max_relative_error
    );
}
