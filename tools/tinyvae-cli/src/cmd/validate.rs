//! `tinyvae validate MODEL.onnx BLOB.tvae`: exits non-zero when the blob strays from the ONNX
//! model (run in tract) beyond the given thresholds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model the blob was made from.
    pub model: PathBuf,
    /// The blob.
    pub blob: PathBuf,
    /// Inputs to compare on: prior samples (decoders) or test images (encoders, classifiers).
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Seed of the prior samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub data: super::quantize::DataArgs,
    /// Feed a decoder this encoder's codes of --data's test images instead of prior samples.
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Fail when the PSNR is below this (dB).
    #[arg(long)]
    pub min_psnr: Option<f64>,
    /// Fail when the largest absolute error exceeds this.
    #[arg(long)]
    pub max_abs: Option<f64>,
    /// Fail when the mean absolute error exceeds this.
    #[arg(long)]
    pub max_mean_abs: Option<f64>,
    /// Autoencoders: fail when the blob's mean anomaly score is further than this fraction
    /// from the ONNX model's mean reconstruction error (0.005: 0.5 %).
    #[arg(long)]
    pub max_score_error: Option<f64>,
    /// Classifiers: fail when the blob's class differs from the ONNX model's on more than
    /// this fraction of 1 (0.995: at least 99.5 % agree).
    #[arg(long)]
    pub min_agreement: Option<f64>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let blob = util::read_blob(&a.blob)?;
    let v = tinyvae_compiler::validate(&a.model, &blob, a.samples, a.seed, a.data.data(), a.encoder.as_deref())
        .with_context(|| format!("cannot validate {} against {}", a.blob.display(), a.model.display()))?;
    let f = &v.fidelity;
    let mut failures = Vec::new();
    if let Some(min) = a.min_psnr {
        if f.psnr_db < min {
            failures.push(format!("PSNR {:.2} dB < {min} dB", f.psnr_db));
        }
    }
    if let Some(max) = a.max_abs {
        if f.max_abs > max {
            failures.push(format!("max abs error {:.3e} > {max:.3e}", f.max_abs));
        }
    }
    if let Some(max) = a.max_mean_abs {
        if f.mean_abs > max {
            failures.push(format!("mean abs error {:.3e} > {max:.3e}", f.mean_abs));
        }
    }
    if let Some(max) = a.max_score_error {
        match &v.scores {
            Some(s) if s.relative_error_of_mean > max => failures.push(format!(
                "mean anomaly score {:.3}% from the reference, above {:.3}%",
                100.0 * s.relative_error_of_mean,
                100.0 * max
            )),
            Some(_) => {}
            None => anyhow::bail!("--max-score-error applies to autoencoders; {} is a {}", a.blob.display(), v.kind),
        }
    }
    if let Some(min) = a.min_agreement {
        match &v.classes {
            Some(c) if c.agreement < min => failures.push(format!(
                "the blob and the ONNX model agree on {:.2} % of the inputs, below {:.2} %",
                100.0 * c.agreement,
                100.0 * min
            )),
            Some(_) => {}
            None => anyhow::bail!("--min-agreement applies to classifiers; {} is a {}", a.blob.display(), v.kind),
        }
    }
    if a.json {
        let mut j = serde_json::to_value(&v)?;
        j["pass"] = serde_json::Value::Bool(failures.is_empty());
        j["failures"] = serde_json::to_value(&failures)?;
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        println!(
            "{} ({} {}) vs {} in tract f32, on {}:",
            a.blob.display(),
            v.precision,
            v.kind,
            a.model.display(),
            v.inputs
        );
        println!(
            "  max abs {:.3e}   mean abs {:.3e}   PSNR {:.2} dB (peak {})",
            f.max_abs, f.mean_abs, f.psnr_db, f.peak
        );
        if let Some(s) = &v.scores {
            super::quantize::print_scores(s);
        }
        if let Some(c) = &v.classes {
            super::quantize::print_classes(c, "ONNX");
        }
        for msg in &failures {
            println!("  FAIL: {msg}");
        }
        if failures.is_empty() {
            println!("  ok");
        }
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
