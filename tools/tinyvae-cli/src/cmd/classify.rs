//! `tinyvae train-classifier --data DIR -o CLASSIFIER.safetensors` trains the MNIST classifier
//! that judges generated digits; `tinyvae classify --model CLASSIFIER --raw FILE
//! [--expect-label N]` classifies raw uint8 images (as `tinyvae sample --raw` writes them, K x
//! pixels) and reports how many it classifies confidently, the balance of the predicted
//! classes, and, given expected labels, the fraction classified as them. `CLASSIFIER` is
//! trained weights (safetensors) or a classifier blob (`.tvae`, e.g. M2's q(y|x) quantized),
//! which the runtime runs as a device would.

use std::path::{Path, PathBuf};
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
    /// Classifier weights written by `tinyvae train-classifier`, or a classifier blob (`.tvae`:
    /// `tinyvae quantize --role classifier`), run by the runtime.
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
    /// Only the first N images of --data.
    #[arg(long)]
    pub limit: Option<usize>,
    /// A classification counts as confident when its class has at least this probability.
    #[arg(long, default_value_t = 0.8)]
    pub confidence: f64,
    /// Exit with failure when the fraction classified as expected is below this.
    #[arg(long)]
    pub min_fraction: Option<f64>,
    /// Also write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the predicted class of every image, one byte each (as the Raspberry Pi program's
    /// `--classes` does).
    #[arg(long)]
    pub predicted: Option<PathBuf>,
}

/// What classifies: trained weights in candle, or a classifier blob in the runtime.
pub(crate) enum Judge {
    Weights(Classifier),
    Blob(tinyvae::AlignedBlob),
}

/// Images per runtime call.
const BLOB_BATCH: usize = 256;

impl Judge {
    /// A blob when the file is named `.tvae` or starts with the blob magic, else safetensors
    /// weights.
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let bytes = util::read(path)?;
        if bytes.starts_with(&tinyvae::format::MAGIC) || path.extension().is_some_and(|e| e == "tvae") {
            let blob = tinyvae::AlignedBlob::new(&bytes);
            let model =
                tinyvae::Model::parse(&blob).with_context(|| format!("{}: not a valid blob", path.display()))?;
            tinyvae::Classifier::new(&model).with_context(|| format!("{}: not a classifier", path.display()))?;
            return Ok(Judge::Blob(blob));
        }
        Ok(Judge::Weights(Classifier::load(path)?))
    }

    pub(crate) fn classes(&self) -> usize {
        match self {
            Judge::Weights(c) => c.classes(),
            Judge::Blob(b) => tinyvae::Model::parse(b).map_or(0, |m| m.meta().classes),
        }
    }

    pub(crate) fn input_len(&self) -> usize {
        match self {
            Judge::Weights(c) => c.input_len(),
            Judge::Blob(b) => tinyvae::Model::parse(b).ok().and_then(|m| m.input(0)).map_or(0, |t| t.len),
        }
    }

    /// Class probabilities of 0..=255 images (`K x input_len`): the softmax of the logits.
    fn probabilities_bytes(&self, raw: &[u8]) -> Result<Vec<f32>> {
        match self {
            Judge::Weights(c) => Ok(c.probabilities_bytes(raw)?),
            Judge::Blob(b) => {
                let model = tinyvae::Model::parse(b)?;
                let c = tinyvae::Classifier::new(&model)?;
                let (n, k) = (c.input_len(), c.classes());
                let mut arena = vec![0u8; model.arena_size_for_batch(BLOB_BATCH).context("arena size")?];
                let mut probs = vec![0f32; raw.len() / n * k];
                let mut classes = [0u32; BLOB_BATCH];
                for (images, out) in raw.chunks(BLOB_BATCH * n).zip(probs.chunks_mut(BLOB_BATCH * k)) {
                    let batch = images.len() / n;
                    c.classify_pixels_batch(images, batch, &mut arena, &mut classes[..batch])?;
                    c.logits(&mut arena, batch, out)?;
                    // The softmax keeps the order of the logits, so its argmax is the runtime's
                    // class (ties aside: the first of equal values wins in both).
                    out.chunks_mut(k).for_each(softmax);
                }
                Ok(probs)
            }
        }
    }

    /// The most probable class of each of 0..=255 images (`K x input_len`).
    pub(crate) fn predict_bytes(&self, raw: &[u8]) -> Result<Vec<u8>> {
        Ok(confidence(&self.probabilities_bytes(raw)?, self.classes(), 1.0).0)
    }

    /// Class probabilities of images given as [0, 1] values.
    fn probabilities(&self, pixels: &[f32]) -> Result<Vec<f32>> {
        match self {
            Judge::Weights(c) => Ok(c.probabilities(pixels)?),
            Judge::Blob(_) => {
                let raw: Vec<u8> = pixels.iter().map(|&p| (p * 255.0).round().clamp(0.0, 255.0) as u8).collect();
                self.probabilities_bytes(&raw)
            }
        }
    }
}

/// Softmax in place (max-subtracted).
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    row.iter_mut().for_each(|v| *v /= sum);
}

/// Expected labels of `counts[i]` images per raw file (none when none were given).
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
        return Ok(Vec::new());
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

/// How confidently and how evenly the images were classified.
struct Confidence {
    /// Images whose top class has at least the threshold probability.
    confident: usize,
    /// Images per predicted class.
    histogram: Vec<usize>,
    /// Entropy of the predicted classes' distribution (nats).
    entropy: f64,
}

fn confidence(probs: &[f32], classes: usize, threshold: f64) -> (Vec<u8>, Confidence) {
    let mut histogram = vec![0usize; classes];
    let mut confident = 0;
    let predicted: Vec<u8> = probs
        .chunks_exact(classes)
        .map(|p| {
            let (best, top) = p.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            histogram[best] += 1;
            confident += (top as f64 >= threshold) as usize;
            best as u8
        })
        .collect();
    let n = predicted.len().max(1) as f64;
    let entropy = histogram.iter().filter(|&&c| c > 0).map(|&c| -(c as f64 / n) * (c as f64 / n).ln()).sum();
    (predicted, Confidence { confident, histogram, entropy })
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut inputs: Vec<&Path> = vec![a.model.as_path()];
    inputs.extend(a.raw.iter().map(PathBuf::as_path));
    inputs.extend(a.labels.as_deref());
    for out in a.json.iter().chain(&a.predicted) {
        util::check_not_input(out, &inputs)?;
    }
    if !(a.confidence > 0.0 && a.confidence <= 1.0) {
        bail!("--confidence {} must be in (0, 1]", a.confidence);
    }
    let classifier = Judge::load(&a.model)?;
    let n = classifier.input_len();
    let (probs, expected, source) = if let Some(dir) = &a.data {
        let split = if a.split == "train" { Split::Train } else { Split::Test };
        let set = LabelledImages::load(dir, split, a.limit)?;
        if set.images.len() != n {
            bail!("{}: images have {} pixels, {} takes {n}", dir.display(), set.images.len(), a.model.display());
        }
        let probs = classifier.probabilities(&set.images.pixels)?;
        let source = format!("{} ({} split, {} images)", dir.display(), a.split, set.count());
        (probs, set.labels, source)
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
        let probs = classifier.probabilities_bytes(&bytes)?;
        let names: Vec<String> = a.raw.iter().map(|p| p.display().to_string()).collect();
        (probs, expected, names.join(", "))
    };
    let (predicted, conf) = confidence(&probs, classifier.classes(), a.confidence);
    let total = predicted.len();
    let share = conf.confident as f64 / total.max(1) as f64;
    println!(
        "{source}: {} of {total} images classified with confidence >= {} ({:.2} %)",
        conf.confident,
        a.confidence,
        100.0 * share
    );
    let hist = conf.histogram.iter().map(|v| format!("{v:>5}")).collect::<Vec<_>>().join("");
    println!(
        "  predicted classes 0..{}:{hist}   entropy {:.3} nats (uniform {:.3})",
        classifier.classes() - 1,
        conf.entropy,
        (classifier.classes() as f64).ln()
    );
    let mut value = serde_json::json!({
        "model": a.model.display().to_string(),
        "source": source,
        "images": total,
        "confidence_threshold": a.confidence,
        "confident": conf.confident,
        "confident_fraction": share,
        "predicted_histogram": conf.histogram,
        "predicted_entropy_nats": conf.entropy,
    });
    let mut fraction = None;
    if !expected.is_empty() {
        fraction = Some(report_expected(&predicted, &expected, classifier.classes(), &mut value));
    }
    if let Some(path) = &a.predicted {
        util::write(path, &predicted)?;
    }
    if let Some(path) = &a.json {
        util::write(path, format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes())?;
    }
    if let Some(min) = a.min_fraction {
        let Some(fraction) = fraction else {
            bail!("--min-fraction needs expected labels (--expect-label or --labels)");
        };
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

/// Prints how many were classified as expected and the per-label table, adds them to `value`,
/// and returns the fraction.
fn report_expected(predicted: &[u8], expected: &[u8], classes: usize, value: &mut serde_json::Value) -> f64 {
    // Per expected label: images, how many were classified as it, and what they were classified as.
    let mut per_label = vec![(0usize, 0usize, [0usize; CLASSES]); classes.max(CLASSES)];
    for (&p, &e) in predicted.iter().zip(expected) {
        let row = &mut per_label[e as usize];
        row.0 += 1;
        row.1 += (p == e) as usize;
        if (p as usize) < CLASSES {
            row.2[p as usize] += 1;
        }
    }
    let hits: usize = per_label.iter().map(|r| r.1).sum();
    let fraction = hits as f64 / expected.len() as f64;
    println!("  {hits} of {} images classified as expected ({:.2} %)", expected.len(), 100.0 * fraction);
    for (label, (count, ok, hist)) in per_label.iter().enumerate().filter(|(_, r)| r.0 > 0) {
        let hist = hist.iter().map(|v| format!("{v:>5}")).collect::<Vec<_>>().join("");
        println!(
            "  label {label}: {ok:>5} / {count:<5} ({:6.2} %)  predicted 0..9:{hist}",
            100.0 * *ok as f64 / *count as f64
        );
    }
    let labels: Vec<serde_json::Value> = per_label
        .iter()
        .enumerate()
        .filter(|(_, r)| r.0 > 0)
        .map(|(l, r)| serde_json::json!({"label": l, "images": r.0, "correct": r.1, "predicted": r.2.to_vec()}))
        .collect();
    value["classified_as_expected"] = hits.into();
    value["fraction"] = fraction.into();
    value["per_label"] = labels.into();
    fraction
}

#[cfg(test)]
mod tests {
    use super::confidence;

    #[test]
    fn confidence_counts_sure_answers_and_measures_balance() {
        // Three images over two classes: sure 0, unsure 1, sure 1.
        let probs = [0.9, 0.1, 0.4, 0.6, 0.05, 0.95];
        let (predicted, c) = confidence(&probs, 2, 0.8);
        assert_eq!(predicted, [0, 1, 1]);
        assert_eq!((c.confident, c.histogram.clone()), (2, vec![1, 2]));
        let h = -(1.0f64 / 3.0) * (1.0f64 / 3.0).ln() - (2.0 / 3.0) * (2.0f64 / 3.0).ln();
        assert!((c.entropy - h).abs() < 1e-12);
        // One class only: no spread at all.
        assert_eq!(confidence(&[0.1, 0.9, 0.2, 0.8], 2, 0.8).1.entropy, 0.0);
    }
}
