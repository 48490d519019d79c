//! `tinyvae score BLOB.tvae --data NORMAL.npy [--anomalous ANOMALOUS.npy] [--fpr 0.01]`: an
//! autoencoder blob's anomaly scores of feature vectors, computed as a device computes them,
//! the alarm threshold for a false-positive rate on the normal vectors, and with labelled
//! anomalies the AUROC and the detection rate at that threshold.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;
use tinyvae::{Model, ModelKind, Score, ScoreKind};
use tinyvae_compiler::anomaly::{self, Threshold};
use tinyvae_data::features::Features;

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Autoencoder blob (`tinyvae quantize --role autoencoder`).
    pub blob: PathBuf,
    /// Normal feature vectors: .npy (float32 or float64, [N, features]) or raw little-endian
    /// f32 with --shape. The threshold is chosen on these.
    #[arg(long)]
    pub data: PathBuf,
    /// Anomalous feature vectors, for the AUROC and the detection rate.
    #[arg(long)]
    pub anomalous: Option<PathBuf>,
    /// Dimensions of one sample of a raw f32 file, e.g. 640.
    #[arg(long, value_delimiter = ',')]
    pub shape: Option<Vec<usize>>,
    /// The score: mse (mean squared reconstruction error) or nll (Bernoulli negative
    /// log-likelihood in nats, for inputs and outputs in [0, 1]).
    #[arg(long, default_value = "mse", value_parser = anomaly::parse_score_kind)]
    pub score: ScoreKind,
    /// False-positive rate the threshold allows on the normal vectors.
    #[arg(long, default_value_t = 0.01)]
    pub fpr: f64,
    /// Write the report (and every score) as JSON to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write the normal vectors' raw scores (`Score::raw`) to this file, little-endian u64 each,
    /// as the firmware writes them.
    #[arg(long)]
    pub raw: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Summary of one set's scores.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    vectors: usize,
    mean: f64,
    median: f64,
    p99: f64,
    /// Fraction above the threshold.
    alarms: f64,
    /// Every vector's integer score.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    raw: Vec<u64>,
}

#[derive(Debug, Serialize)]
struct Report {
    blob: String,
    precision: String,
    score: &'static str,
    score_unit: f32,
    threshold: Threshold,
    normal: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    anomalous: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auroc: Option<f64>,
}

/// The blob's scores of a feature file, naming the file in errors.
pub fn score_file(blob: &[u8], path: &Path, shape: Option<&[usize]>, kind: ScoreKind) -> Result<Vec<Score>> {
    let features = Features::load(path, shape)?;
    anomaly::score_features(blob, &features, kind).with_context(|| format!("cannot score {}", path.display()))
}

/// Parses `blob` and checks that it is an autoencoder, naming `path`.
pub fn autoencoder_blob(bytes: &[u8], path: &Path) -> Result<()> {
    let model = Model::parse(bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if model.kind() != ModelKind::Autoencoder {
        anyhow::bail!(
            "{} is a {}, not an autoencoder: quantize the ONNX model with --role autoencoder",
            path.display(),
            model.kind()
        );
    }
    Ok(())
}

fn summary(path: &Path, scores: &[Score], threshold: u64, keep: bool) -> Summary {
    let mut values: Vec<f64> = scores.iter().map(|s| s.value() as f64).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len().max(1);
    Summary {
        file: path.display().to_string(),
        vectors: scores.len(),
        mean: values.iter().sum::<f64>() / n as f64,
        median: values.get(values.len() / 2).copied().unwrap_or(0.0),
        p99: values.get((values.len() * 99 / 100).min(values.len().saturating_sub(1))).copied().unwrap_or(0.0),
        alarms: scores.iter().filter(|s| s.exceeds(threshold)).count() as f64 / n as f64,
        raw: if keep { scores.iter().map(|s| s.raw).collect() } else { Vec::new() },
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.fpr) {
        anyhow::bail!("--fpr {} is not a rate between 0 and 1", a.fpr);
    }
    let mut inputs = vec![a.blob.as_path(), a.data.as_path()];
    inputs.extend(a.anomalous.as_deref());
    for out in a.output.iter().chain(&a.raw) {
        util::check_not_input(out, &inputs)?;
    }
    let blob = util::read_blob(&a.blob)?;
    autoencoder_blob(&blob, &a.blob)?;
    let model = Model::parse(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let normal = score_file(&blob, &a.data, a.shape.as_deref(), a.score)?;
    let threshold = anomaly::threshold_for_fpr(&normal, a.fpr);
    let anomalous = a.anomalous.as_deref().map(|p| score_file(&blob, p, a.shape.as_deref(), a.score)).transpose()?;
    let values = |s: &[Score]| s.iter().map(|s| s.value() as f64).collect::<Vec<_>>();
    let keep = a.output.is_some();
    let report = Report {
        blob: a.blob.display().to_string(),
        precision: model.precision().to_string(),
        score: anomaly::score_kind_name(a.score),
        score_unit: normal.first().map_or(0.0, |s| s.unit),
        threshold,
        normal: summary(&a.data, &normal, threshold.raw, keep),
        auroc: anomalous.as_ref().map(|an| anomaly::auroc(&values(&normal), &values(an))),
        anomalous: a.anomalous.as_deref().zip(anomalous.as_ref()).map(|(p, s)| summary(p, s, threshold.raw, keep)),
    };
    if let Some(out) = &a.output {
        util::write(out, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    if let Some(out) = &a.raw {
        util::write(out, &normal.iter().flat_map(|s| s.raw.to_le_bytes()).collect::<Vec<u8>>())?;
    }
    if a.json {
        let mut short = serde_json::to_value(&report)?;
        for set in ["normal", "anomalous"] {
            if let Some(s) = short.get_mut(set).and_then(|s| s.as_object_mut()) {
                s.remove("raw");
            }
        }
        println!("{}", serde_json::to_string_pretty(&short)?);
        return Ok(ExitCode::SUCCESS);
    }
    let what = match a.score {
        ScoreKind::SquaredError => "reconstruction MSE",
        ScoreKind::BernoulliNll => "Bernoulli negative log-likelihood, nats",
    };
    println!("{} ({} autoencoder): anomaly score = {what}", a.blob.display(), report.precision);
    let line = |name: &str, s: &Summary| {
        println!(
            "  {name:<9} {:>6} vectors  mean {:.4e}  median {:.4e}  p99 {:.4e}  alarms {:.2}%  ({})",
            s.vectors,
            s.mean,
            s.median,
            s.p99,
            100.0 * s.alarms,
            s.file
        );
    };
    line("normal", &report.normal);
    if let Some(s) = &report.anomalous {
        line("anomalous", s);
    }
    println!(
        "  threshold raw {} ({} {:.4e}): {:.2}% of the normal vectors alarm, target {:.2}%",
        threshold.raw,
        report.score,
        threshold.value,
        100.0 * threshold.normal_fpr,
        100.0 * threshold.target_fpr
    );
    if let Some(auroc) = report.auroc {
        println!("  AUROC {auroc:.4}");
    }
    for out in a.output.iter().chain(&a.raw) {
        println!("  wrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
