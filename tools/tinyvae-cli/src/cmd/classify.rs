//! `tinyvae train-classifier --data DIR -o CLASSIFIER.safetensors` trains the MNIST classifier
//! that judges generated digits; `tinyvae classify --model CLASSIFIER.safetensors --raw FILE
//! --expect-label N` classifies raw uint8 images (as `tinyvae sample --raw` writes them, K x
//! pixels) and reports the fraction classified as the expected label(s).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tinyvae_data::idx::Split;
use tinyvae_train::classifier::{train_classifier, Classifier, ClassifierConfig, LabelledImages, CLASSES};
use tinyvae_train::LrSchedule;

use crate::util;

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    /// MNIST-style IDX directory, or a fetched data set (mnist, fashion-mnist): trains on its
    /// training split, reports its test split.
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Output weights (safetensors); a JSON report is written beside them.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Hidden layer widths, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "800,800")]
    pub hidden: Vec<usize>,
    /// Passes over the training images.
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// Images per Adam step.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Adam learning rate (cosine decay to 2 % of it).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Dropout on the hidden units.
    #[arg(long, default_value_t = 0.3)]
    pub dropout: f64,
    /// Random shifts of training images by up to N pixels (0: off).
    #[arg(long, default_value_t = 2)]
    pub translate: usize,
    /// Exponential moving average of the weights (0: off).
    #[arg(long, default_value_t = 0.999)]
    pub ema: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Hold out the last N training images and report their error each epoch.
    #[arg(long, default_value_t = 0)]
    pub validation_images: usize,
    /// Use only the first N training images.
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run_train(a: TrainArgs) -> Result<ExitCode> {
    let cfg = ClassifierConfig {
        out: Some(a.output.clone()),
        hidden: a.hidden.clone(),
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        lr_schedule: LrSchedule::Cosine { final_fraction: 0.02 },
        dropout: a.dropout,
        translate_px: a.translate,
        translate_prob: 1.0,
        ema_decay: (a.ema > 0.0).then_some(a.ema),
        seed: a.seed,
        validation_images: a.validation_images,
        train_limit: a.train_limit,
        test_limit: a.test_limit,
        progress: !a.quiet,
        ..ClassifierConfig::new(&a.data)
    };
    let report = train_classifier(&cfg).with_context(|| format!("training a classifier on {}", a.data.display()))?;
    println!(
        "trained {} epochs on {} images in {:.0} s",
        report.history.len(),
        report.train_images,
        report.elapsed_seconds
    );
    if let Some(v) = report.validation_error {
        println!("  validation accuracy {:.2} %", 100.0 * (1.0 - v));
    }
    if let Some(t) = report.test_error {
        println!("  test accuracy {:.2} % ({} test images)", 100.0 * (1.0 - t), report.test_images);
    }
    println!("  wrote {} (report {})", a.output.display(), a.output.with_extension("json").display());
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Classifier weights written by `tinyvae train-classifier`.
    #[arg(long)]
    pub model: PathBuf,
    /// Raw uint8 images, K x pixels (repeatable; read in order).
    #[arg(long)]
    pub raw: Vec<PathBuf>,
    /// Expected label(s), comma separated: one for every image; or one per --raw file; or
    /// one per equal consecutive block of the images.
    #[arg(long, value_delimiter = ',')]
    pub expect_label: Vec<u8>,
    /// Expected labels as a file of one byte per image (instead of --expect-label).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Instead of raw files: classify a split of an MNIST-style IDX directory (or a fetched data
    /// set: mnist, fashion-mnist) against its labels.
    #[arg(long, conflicts_with_all = ["raw", "expect_label", "labels"], value_parser = crate::datasets::data_arg)]
    pub data: Option<PathBuf>,
    /// Split of --data: test or train.
    #[arg(long, default_value = "test", value_parser = ["test", "train"])]
    pub split: String,
    /// Exit with failure when the fraction classified as expected is below this.
    #[arg(long)]
    pub min_fraction: Option<f64>,
    /// Also write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Expected labels of `counts[i]` images per raw file.
fn expected_labels(a: &Args, counts: &[usize]) -> Result<Vec<u8>> {
    let total: usize = counts.iter().sum();
    if let Some(path) = &a.labels {
        if !a.expect_label.is_empty() {
            bail!("give --labels or --expect-label, not both");
        }
        let labels = util::read(path)?;
        if labels.len() != total {
            bail!("{}: {} labels for {total} images", path.display(), labels.len());
        }
        return Ok(labels);
    }
    let e = &a.expect_label;
    if e.is_empty() {
        bail!("give the expected label(s) with --expect-label or --labels");
    }
    if e.len() == 1 {
        return Ok(vec![e[0]; total]);
    }
    if e.len() == counts.len() {
        return Ok(counts.iter().zip(e).flat_map(|(&n, &l)| std::iter::repeat_n(l, n)).collect());
    }
    if !total.is_multiple_of(e.len()) {
        bail!("{total} images do not split into {} equal blocks, one per --expect-label value", e.len());
    }
    let block = total / e.len();
    Ok(e.iter().flat_map(|&l| std::iter::repeat_n(l, block)).collect())
}

pub fn run(a: Args) -> Result<ExitCode> {
    let classifier = Classifier::load(&a.model)?;
    let n = classifier.input_len();
    let (predicted, expected, source) = if let Some(dir) = &a.data {
        let split = if a.split == "train" { Split::Train } else { Split::Test };
        let set = LabelledImages::load(dir, split, None)?;
        if set.images.len() != n {
            bail!("{}: images have {} pixels, {} takes {n}", dir.display(), set.images.len(), a.model.display());
        }
        let predicted = classifier.predict(&set.images.pixels)?;
        (predicted, set.labels, format!("{} ({} split)", dir.display(), a.split))
    } else {
        if a.raw.is_empty() {
            bail!("nothing to classify: give --raw FILE (or --data DIR)");
        }
        let mut bytes = Vec::new();
        let mut counts = Vec::new();
        for path in &a.raw {
            let b = util::read(path)?;
            if b.is_empty() || b.len() % n != 0 {
                bail!("{}: {} bytes is not a whole number of {n}-pixel images", path.display(), b.len());
            }
            counts.push(b.len() / n);
            bytes.extend_from_slice(&b);
        }
        let expected = expected_labels(&a, &counts)?;
        if let Some(&bad) = expected.iter().find(|&&l| l as usize >= classifier.classes()) {
            bail!("expected label {bad} is outside 0..{}", classifier.classes());
        }
        let predicted = classifier.predict_bytes(&bytes)?;
        let names: Vec<String> = a.raw.iter().map(|p| p.display().to_string()).collect();
        (predicted, expected, names.join(", "))
    };

    // Per expected label: images, how many were classified as it, and what they were classified as.
    let mut per_label = vec![(0usize, 0usize, [0usize; CLASSES]); classifier.classes().max(CLASSES)];
    for (&p, &e) in predicted.iter().zip(&expected) {
        let row = &mut per_label[e as usize];
        row.0 += 1;
        row.1 += (p == e) as usize;
        if (p as usize) < CLASSES {
            row.2[p as usize] += 1;
        }
    }
    let hits: usize = per_label.iter().map(|r| r.1).sum();
    let fraction = hits as f64 / expected.len() as f64;
    println!("{source}: {hits} of {} images classified as expected ({:.2} %)", expected.len(), 100.0 * fraction);
    for (label, (count, ok, hist)) in per_label.iter().enumerate().filter(|(_, r)| r.0 > 0) {
        let hist = hist.iter().map(|v| format!("{v:>4}")).collect::<Vec<_>>().join("");
        println!(
            "  label {label}: {ok:>5} / {count:<5} ({:6.2} %)  predicted 0..9:{hist}",
            100.0 * *ok as f64 / *count as f64
        );
    }
    if let Some(path) = &a.json {
        let labels: Vec<serde_json::Value> = per_label
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 > 0)
            .map(|(l, r)| serde_json::json!({"label": l, "images": r.0, "correct": r.1, "predicted": r.2.to_vec()}))
            .collect();
        let value = serde_json::json!({
            "model": a.model.display().to_string(),
            "source": source,
            "images": expected.len(),
            "classified_as_expected": hits,
            "fraction": fraction,
            "per_label": labels,
        });
        util::write(path, format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes())?;
    }
    if let Some(min) = a.min_fraction {
        if fraction < min {
            eprintln!(
                "error: {:.2} % classified as expected, below the required {:.2} %",
                100.0 * fraction,
                100.0 * min
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}
