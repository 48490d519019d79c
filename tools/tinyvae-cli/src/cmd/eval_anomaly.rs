//! `tinyvae eval-anomaly --data mnist --model ae|vae --out DIR`: the one-class protocol on an
//! image data set. For each held-out class, trains the autoencoder on the training images of
//! every other class (the normal data), joins encoder and decoder into one autoencoder,
//! quantizes it to int8 (calibrated on the normal training images), and scores the test set by
//! reconstruction error: the held-out class is the anomaly. It reports the AUROC of the float
//! model (the IR evaluator) and of the int8 blob (the runtime's integer score), per class, and
//! writes `DIR/anomaly-<model>.json` (`-nll` added for `--score nll`; rewritten after every
//! class).
//!
//! Each class's run lives in `DIR/<model>-<class>/` (its filtered IDX files in `data/`, the
//! training outputs, `ae.onnx`, `ae.int8.tvae`); a class whose `encoder.onnx` and
//! `decoder.onnx` are already there is not trained again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ndarray::Array2;
use serde::Serialize;
use tinyvae_compiler::{anomaly, Graph, Settings};
use tinyvae_data::idx::{write_idx, Dataset, Split};

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// MNIST-style IDX directory, or a fetched data set (mnist, fashion-mnist).
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// The autoencoder: ae (MLP, sigmoid output, cross-entropy loss) or vae (Bernoulli; scored
    /// through its mean code).
    #[arg(long, default_value = "ae", value_parser = ["ae", "vae"])]
    pub model: String,
    /// Held-out (anomalous) classes, one run each.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2,3,4,5,6,7,8,9")]
    pub classes: Vec<u8>,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Passes over the normal training images.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Size of the code.
    #[arg(long, default_value_t = 16)]
    pub latent: usize,
    /// Hidden widths, comma separated (the decoder mirrors them).
    #[arg(long, default_value = "256")]
    pub hidden: String,
    /// Training seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The anomaly score: mse (mean squared reconstruction error) or nll (Bernoulli negative
    /// log-likelihood of the image under the reconstruction).
    #[arg(long, default_value = "mse", value_parser = anomaly::parse_score_kind)]
    pub score: tinyvae::ScoreKind,
}

/// One held-out class.
#[derive(Debug, Serialize)]
struct ClassResult {
    class: u8,
    normal_train_images: usize,
    test_normal: usize,
    test_anomalous: usize,
    auroc_f32: f64,
    auroc_int8: f64,
    blob_bytes: usize,
}

#[derive(Debug, Serialize)]
struct Report {
    data: String,
    model: String,
    epochs: usize,
    latent: usize,
    hidden: String,
    seed: u64,
    score: String,
    classes: Vec<ClassResult>,
    mean_auroc_f32: f64,
    mean_auroc_int8: f64,
    largest_int8_gap: f64,
}

/// `train`'s own flags, parsed by its own definition, so that this runs exactly what `tinyvae
/// train` with the same flags would.
#[derive(Parser)]
struct TrainCommand {
    #[command(flatten)]
    args: super::train::Args,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.classes.is_empty() || a.classes.iter().any(|&c| c > 9) {
        bail!("--classes takes class labels 0 to 9");
    }
    if a.epochs == 0 || a.latent == 0 {
        bail!("--epochs and --latent must be at least 1");
    }
    let train = Dataset::load(&a.data, Split::Train)?;
    let test = Dataset::load(&a.data, Split::Test)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let suffix = if a.score == tinyvae::ScoreKind::SquaredError { "" } else { "-nll" };
    let report_path = a.out.join(format!("anomaly-{}{suffix}.json", a.model));
    let mut report = Report {
        data: a.data.display().to_string(),
        model: a.model.clone(),
        epochs: a.epochs,
        latent: a.latent,
        hidden: a.hidden.clone(),
        seed: a.seed,
        score: format!(
            "{} of the reconstruction through the mean code; int8: the runtime's integer score",
            anomaly::score_kind_name(a.score)
        ),
        classes: Vec::new(),
        mean_auroc_f32: 0.0,
        mean_auroc_int8: 0.0,
        largest_int8_gap: 0.0,
    };
    println!("{:>5} {:>10} {:>10} {:>8}", "class", "AUROC f32", "AUROC int8", "gap");
    for &class in &a.classes {
        let r = run_class(&a, class, &train, &test)?;
        println!(
            "{:>5} {:>10.4} {:>10.4} {:>8.4}",
            class,
            r.auroc_f32,
            r.auroc_int8,
            (r.auroc_int8 - r.auroc_f32).abs()
        );
        report.classes.push(r);
        let n = report.classes.len() as f64;
        report.mean_auroc_f32 = report.classes.iter().map(|c| c.auroc_f32).sum::<f64>() / n;
        report.mean_auroc_int8 = report.classes.iter().map(|c| c.auroc_int8).sum::<f64>() / n;
        report.largest_int8_gap = report.classes.iter().map(|c| (c.auroc_int8 - c.auroc_f32).abs()).fold(0.0, f64::max);
        util::write(&report_path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    }
    println!(
        " mean {:>10.4} {:>10.4}   largest gap {:.4}",
        report.mean_auroc_f32, report.mean_auroc_int8, report.largest_int8_gap
    );
    println!("wrote {}", report_path.display());
    Ok(ExitCode::SUCCESS)
}

fn run_class(a: &Args, class: u8, train: &Dataset, test: &Dataset) -> Result<ClassResult> {
    let dir = a.out.join(format!("{}-{class}", a.model));
    let data = dir.join("data");
    let normal = write_normal_data(&data, class, train, test)?;
    let (encoder, decoder) = (dir.join("encoder.onnx"), dir.join("decoder.onnx"));
    if !(encoder.is_file() && decoder.is_file()) {
        let flags = train_flags(a, &data, &dir);
        let cmd = TrainCommand::try_parse_from(&flags).context("the training flags")?;
        eprintln!("== class {class}: tinyvae {}", flags[1..].join(" "));
        super::train::run(cmd.args)?;
    }
    let import = |p: &Path| tinyvae_compiler::import_file(p).with_context(|| format!("cannot import {}", p.display()));
    let graph = Graph::autoencoder(&import(&encoder)?, &import(&decoder)?)
        .with_context(|| format!("cannot join {} and {}", encoder.display(), decoder.display()))?;
    util::write(&dir.join("ae.onnx"), &tinyvae_compiler::export(&graph)?)?;

    // Calibrated on the normal training images, measured on the test images.
    let settings = Settings { data: Some(data.clone()), ..Settings::default() };
    let (blob, _) = tinyvae_compiler::quantize_and_measure(&graph, &settings)
        .with_context(|| format!("cannot quantize the class-{class} autoencoder"))?;
    util::write(&dir.join("ae.int8.tvae"), &blob)?;

    let len = test.image_len();
    let x = Array2::from_shape_vec((test.count, len), test.pixels.iter().map(|&p| p as f32 / 255.0).collect())
        .expect("shape");
    let x_hat = graph.eval(&[x.view()])?.remove(0);
    let f32_scores = anomaly::reference_scores(a.score, &x, &x_hat);
    let blob = tinyvae::AlignedBlob::new(&blob);
    let features = tinyvae_data::features::Features { rows: test.count, len, values: x.into_raw_vec_and_offset().0 };
    let int8_scores: Vec<f64> =
        anomaly::score_features(&blob, &features, a.score)?.iter().map(|s| s.value() as f64).collect();
    let split = |scores: &[f64]| -> (Vec<f64>, Vec<f64>) {
        let (mut n, mut an) = (Vec::new(), Vec::new());
        for (s, &l) in scores.iter().zip(&test.labels) {
            if l == class {
                an.push(*s)
            } else {
                n.push(*s)
            }
        }
        (n, an)
    };
    let ((n32, a32), (n8, a8)) = (split(&f32_scores), split(&int8_scores));
    Ok(ClassResult {
        class,
        normal_train_images: normal,
        test_normal: n32.len(),
        test_anomalous: a32.len(),
        auroc_f32: anomaly::auroc(&n32, &a32),
        auroc_int8: anomaly::auroc(&n8, &a8),
        blob_bytes: blob.len(),
    })
}

/// Writes the training images and labels of every class but `class`, and the whole test
/// split, as IDX files in `dir`; returns the number of normal training images.
fn write_normal_data(dir: &Path, class: u8, train: &Dataset, test: &Dataset) -> Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let keep: Vec<usize> = (0..train.count).filter(|&i| train.labels[i] != class).collect();
    let pixels: Vec<u8> = keep.iter().flat_map(|&i| train.image(i).iter().copied()).collect();
    let labels: Vec<u8> = keep.iter().map(|&i| train.labels[i]).collect();
    let (w, h) = (train.cols, train.rows);
    let files: [(&str, Vec<usize>, &[u8]); 4] = [
        ("train-images-idx3-ubyte", vec![keep.len(), h, w], &pixels),
        ("train-labels-idx1-ubyte", vec![keep.len()], &labels),
        ("t10k-images-idx3-ubyte", vec![test.count, h, w], &test.pixels),
        ("t10k-labels-idx1-ubyte", vec![test.count], &test.labels),
    ];
    for (name, dims, bytes) in files {
        let path = dir.join(name);
        write_idx(&path, &dims, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(keep.len())
}

/// `tinyvae train` flags for one class.
fn train_flags(a: &Args, data: &Path, out: &Path) -> Vec<String> {
    let mut flags: Vec<String> = ["tinyvae-train", "--model", &a.model, "--data"].map(String::from).to_vec();
    flags.push(data.display().to_string());
    flags.extend(["--out".to_string(), out.display().to_string()]);
    flags.extend(["--epochs".into(), a.epochs.to_string(), "--latent".into(), a.latent.to_string()]);
    flags.extend(["--hidden".into(), a.hidden.clone(), "--seed".into(), a.seed.to_string()]);
    flags.extend(["--test-every".into(), "0".into(), "--quiet".into()]);
    flags
}
