//! `tinyvae fit-prior --encoder ENC --data DIR --decoder IN.tvae -o OUT.tvae`: encodes the
//! training images, fits a Gaussian mixture to their codes (`tinyvae_compiler::prior`), and
//! writes each decoder blob again with the mixture as its stored latent prior, which
//! `tinyvae sample`, the firmware and `Decoder::sample` then draw z from. The JSON report
//! holds the mixture too, so `tinyvae quantize --prior REPORT.json` can store it in a blob
//! it makes (how the shipped models are rebuilt).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ndarray::{Array2, Axis};
use tinyvae::format::ModelKind;
use tinyvae::{attach_prior, PriorSpec};
use tinyvae::{Encoder, Model, Prior, Rng};
use tinyvae_compiler::prior::{fit_prior, Candidate, Codes, FitSettings, PriorFit};
use tinyvae_data::idx::{Dataset, Split};

use crate::cmd::classify::Judge;
use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encoder: its ONNX file (the f32 codes the decoder was trained on) or an encoder blob
    /// (the codes the runtime computes).
    #[arg(long)]
    pub encoder: PathBuf,
    /// MNIST-style IDX directory, or a fetched data set (mnist, fashion-mnist): its training
    /// images are encoded.
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Encode only the first N training images (the images the model was trained on).
    #[arg(long)]
    pub images: Option<usize>,
    /// Decoder blob to give the prior (repeatable: int8 and f16 blobs of one model). Without
    /// one, only the report is written (for `tinyvae quantize --prior`).
    #[arg(long)]
    pub decoder: Vec<PathBuf>,
    /// Output blob, one per --decoder, in the same order.
    #[arg(short, long)]
    pub output: Vec<PathBuf>,
    /// Mixture components: a number, or a comma-separated list to choose from by the
    /// likelihood of held-out codes, or `auto` (1,2,5,10,15,20,30,40,50).
    #[arg(long, default_value = "auto")]
    pub components: String,
    /// Which code of each image: `mean` (μ of q(z|x)) or `sample` (one z ~ q(z|x)).
    #[arg(long, default_value = "mean", value_parser = ["mean", "sample"])]
    pub codes: String,
    /// Ridge added to every covariance's diagonal, relative to the codes' mean variance.
    #[arg(long, default_value_t = 1e-3)]
    pub ridge: f64,
    /// Seed of k-means++ (and of the z draws with --codes sample).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// For a conditional decoder: one mixture for every label instead of one per label.
    #[arg(long)]
    pub shared: bool,
    /// For a conditional decoder: take each training image's label from this classifier (a
    /// classifier blob or `train-classifier` weights) instead of the data set, e.g. a
    /// semi-supervised model's own q(y|x), which must not see the labels it was not given.
    /// The encoder then reads, and the per-label mixtures group, the predicted labels.
    #[arg(long, conflicts_with = "shared")]
    pub labels_from: Option<PathBuf>,
    /// JSON report with the fit's figures and the mixture itself (default: beside the first
    /// output, with extension `.prior.json`; required without --decoder).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

fn parse_components(s: &str) -> Result<Vec<usize>> {
    if s == "auto" {
        return Ok(FitSettings::default().candidates);
    }
    let list: Result<Vec<usize>, _> = s.split(',').map(|v| v.trim().parse::<usize>()).collect();
    match list {
        Ok(l) if !l.is_empty() => Ok(l),
        _ => bail!("--components `{s}`: give a number, a comma-separated list, or auto"),
    }
}

/// The decoders' shared latent size and classes, from their blobs.
fn decoder_shape(decoders: &[(PathBuf, tinyvae::AlignedBlob)]) -> Result<(usize, usize)> {
    let mut shape = None;
    for (path, blob) in decoders {
        let model = Model::parse(blob).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if model.kind() != ModelKind::Decoder {
            bail!("{}: is {} {}, not a decoder", path.display(), article(model.kind()), model.kind());
        }
        let this = (model.meta().latent, model.meta().classes);
        if shape.is_some_and(|s| s != this) {
            bail!("{}: the decoders differ in latent size or classes", path.display());
        }
        shape = Some(this);
    }
    shape.context("no --decoder given")
}

/// The latent size and classes of an encoder (ONNX file or blob), for a fit without a decoder.
fn encoder_shape(path: &Path) -> Result<(usize, usize)> {
    if path.extension().is_some_and(|e| e == "tvae") {
        let blob = util::read_blob(path)?;
        let model = Model::parse(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let encoder = Encoder::new(&model).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok((encoder.latent_dim(), encoder.classes()));
    }
    let graph = tinyvae_compiler::import_file(path).with_context(|| format!("cannot import {}", path.display()))?;
    match graph.role {
        tinyvae_compiler::Role::Encoder { latent, classes } => Ok((latent, classes)),
        _ => bail!("{}: cannot tell the encoder's latent size: give the --decoder whose prior this is", path.display()),
    }
}

fn article(kind: ModelKind) -> &'static str {
    if kind == ModelKind::Encoder {
        "an"
    } else {
        "a"
    }
}

/// μ and log σ² (zeros for deterministic encoders) of every image, `n x latent` each.
fn encode(
    path: &Path,
    set: &Dataset,
    labels: &[u8],
    n: usize,
    latent: usize,
    classes: usize,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let len = set.rows * set.cols;
    let one_hot = |range: std::ops::Range<usize>| -> Array2<f32> {
        Array2::from_shape_fn((range.len(), classes), |(i, j)| (labels[range.start + i] as usize == j) as u8 as f32)
    };
    let (mut mu, mut logvar) = (Vec::with_capacity(n * latent), Vec::with_capacity(n * latent));
    if path.extension().is_some_and(|e| e == "tvae") {
        let blob = util::read_blob(path)?;
        let model = Model::parse(&blob).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let encoder = Encoder::new(&model).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if encoder.latent_dim() != latent || encoder.input_len() != len || encoder.classes() != classes {
            bail!(
                "{}: the encoder takes {} pixels and {} classes to z of {}; the decoder and data need {len}, {classes}, {latent}",
                path.display(),
                encoder.input_len(),
                encoder.classes(),
                encoder.latent_dim()
            );
        }
        let mut arena = vec![0u8; model.arena_size()];
        let (mut m, mut lv) = (vec![0f32; latent], vec![0f32; latent]);
        for (px, &label) in set.pixels.chunks_exact(len).zip(labels) {
            let r = if classes > 0 {
                encoder.encode_pixels_conditional(px, label as u32, &mut arena, &mut m, &mut lv)
            } else {
                encoder.encode_pixels(px, &mut arena, &mut m, &mut lv)
            };
            r.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            mu.extend_from_slice(&m);
            logvar.extend_from_slice(&lv);
        }
        return Ok((mu, logvar));
    }
    let graph = tinyvae_compiler::import_file(path).with_context(|| format!("cannot import {}", path.display()))?;
    if graph.inputs.first().map(|i| i.len) != Some(len) || graph.inputs.len() != 1 + (classes > 0) as usize {
        bail!(
            "{}: the encoder's inputs are not {len} pixels{}",
            path.display(),
            if classes > 0 { " and a label" } else { "" }
        );
    }
    for start in (0..n).step_by(1000) {
        let range = start..(start + 1000).min(n);
        let x: Vec<f32> = set.pixels[range.start * len..range.end * len].iter().map(|&p| p as f32 / 255.0).collect();
        let x = Array2::from_shape_vec((range.len(), len), x).expect("shape");
        let y = one_hot(range.clone());
        let views = if classes > 0 { vec![x.view(), y.view()] } else { vec![x.view()] };
        let outs = graph.eval(&views).with_context(|| format!("running {}", path.display()))?;
        let (m, lv) = match &outs[..] {
            [fused] if fused.ncols() == 2 * latent => {
                (fused.slice(ndarray::s![.., ..latent]).to_owned(), fused.slice(ndarray::s![.., latent..]).to_owned())
            }
            [z] if z.ncols() == latent => (z.clone(), Array2::zeros((range.len(), latent))),
            [m, lv, ..] if m.ncols() == latent && lv.ncols() == latent => (m.clone(), lv.clone()),
            _ => bail!(
                "{}: the encoder's outputs ({:?} values) are not z, [μ | log σ²] or μ and log σ² of {latent}",
                path.display(),
                outs.iter().map(|o| o.ncols()).collect::<Vec<_>>()
            ),
        };
        for (a, b) in m.axis_iter(Axis(0)).zip(lv.axis_iter(Axis(0))) {
            mu.extend(a.iter());
            logvar.extend(b.iter());
        }
    }
    Ok((mu, logvar))
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.decoder.len() != a.output.len() {
        bail!("{} --decoder and {} --output: give one output per decoder", a.decoder.len(), a.output.len());
    }
    let Some(report) = a.report.clone().or_else(|| a.output.first().map(|o| o.with_extension("prior.json"))) else {
        bail!("nothing to write: give --decoder IN.tvae -o OUT.tvae, or --report PRIOR.json");
    };
    let mut inputs: Vec<&Path> = a.decoder.iter().map(PathBuf::as_path).collect();
    inputs.push(&a.encoder);
    inputs.extend(a.labels_from.as_deref());
    for out in a.output.iter().chain(&a.report) {
        util::check_not_input(out, &inputs)?;
    }
    let candidates = parse_components(&a.components)?;
    let decoders: Vec<(PathBuf, tinyvae::AlignedBlob)> =
        a.decoder.iter().map(|p| Ok((p.clone(), util::read_blob(p)?))).collect::<Result<_>>()?;
    let (latent, classes) = if decoders.is_empty() { encoder_shape(&a.encoder)? } else { decoder_shape(&decoders)? };
    let set = Dataset::load(&a.data, Split::Train).with_context(|| format!("cannot load {}", a.data.display()))?;
    let n = a.images.unwrap_or(set.count);
    if n == 0 || n > set.count {
        bail!("--images {n}: {} has {} training images", a.data.display(), set.count);
    }

    let labels = match &a.labels_from {
        Some(path) => predicted_labels(path, &set, n, classes)?,
        None => set.labels[..n].to_vec(),
    };
    let (mu, logvar) = encode(&a.encoder, &set, &labels, n, latent, classes)?;
    let mut rng = Rng::new(a.seed);
    let values: Vec<f64> = if a.codes == "sample" {
        let mut z = vec![0f32; mu.len()];
        tinyvae::rng::reparametrize(&mu, &logvar, &mut rng, &mut z);
        z.iter().map(|&v| v as f64).collect()
    } else {
        mu.iter().map(|&m| m as f64).collect()
    };
    let codes = Codes { values, dim: latent };
    let per_label = classes > 0 && !a.shared;
    println!(
        "encoded {n} training images of {} with {} ({} codes{})",
        a.data.display(),
        a.encoder.display(),
        a.codes,
        if per_label { ", one mixture per label" } else { "" }
    );
    let started = std::time::Instant::now();
    // The codes of each group: every code, or (per label) the codes of that label's images.
    let groups: Vec<(Option<u8>, Codes)> = if per_label {
        (0..classes as u8)
            .map(|l| {
                let values = (0..n)
                    .filter(|&i| labels[i] == l)
                    .flat_map(|i| codes.values[i * latent..(i + 1) * latent].iter().copied());
                (Some(l), Codes { values: values.collect(), dim: latent })
            })
            .collect()
    } else {
        vec![(None, codes)]
    };
    let mut fits = Vec::new();
    for (label, codes) in &groups {
        if let Some(l) = label {
            println!("label {l}: {} codes", codes.len());
        }
        let settings = FitSettings {
            candidates: feasible(&candidates, codes, a.components == "auto"),
            ridge: a.ridge,
            seed: a.seed,
            ..FitSettings::default()
        };
        let show = |c: &Candidate| {
            println!(
                "  {:>3} components: log-likelihood {:9.3} nats per code (training part), {:9.3} (held out)",
                c.components, c.train_log_likelihood, c.held_out_log_likelihood
            )
        };
        let fit = fit_prior(codes, &settings, &show).with_context(|| match label {
            Some(l) => format!("fitting the mixture of label {l}"),
            None => "fitting the mixture".to_string(),
        })?;
        let standard = standard_normal_log_likelihood(codes);
        println!(
            "  chose {} components ({} EM iterations): {:.3} nats per code, N(0, I) gives them {standard:.3}",
            fit.mixture.components(),
            fit.mixture.iterations,
            fit.log_likelihood,
        );
        fits.push((*label, fit, standard, codes.len()));
    }
    let specs = fits.iter().map(|f| f.1.mixture.to_spec()).collect::<Result<Vec<_>, _>>()?;
    let spec =
        if per_label { PriorSpec::per_label(&specs)? } else { specs.into_iter().next().context("one mixture")? };
    let section = Prior::section_len(spec.components(), latent).unwrap_or(0);
    println!(
        "fitted in {:.1} s: {} components, {section} bytes in a blob",
        started.elapsed().as_secs_f64(),
        spec.components()
    );
    for ((path, blob), out) in decoders.iter().zip(&a.output) {
        let with = attach_prior(blob, &spec).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        util::write(out, &with)?;
        println!("wrote {} ({} bytes; the prior is {section} of them)", out.display(), with.len());
    }
    // No timings in the report: a rebuilt model must reproduce it byte for byte.
    let value = report_json(&a, n, &fits, section);
    util::write(&report, format!("{}\n", serde_json::to_string_pretty(&value)?).as_bytes())?;
    println!("report: {}", report.display());
    Ok(ExitCode::SUCCESS)
}

/// The first `n` training images' labels as `classifier` predicts them.
fn predicted_labels(classifier: &Path, set: &Dataset, n: usize, classes: usize) -> Result<Vec<u8>> {
    if classes == 0 {
        bail!("--labels-from {}: the decoder is not conditional, so it needs no labels", classifier.display());
    }
    let judge = Judge::load(classifier)?;
    let len = set.rows * set.cols;
    if judge.input_len() != len || judge.classes() != classes {
        bail!(
            "{}: the classifier takes {} pixels to {} classes; the data and decoder need {len} and {classes}",
            classifier.display(),
            judge.input_len(),
            judge.classes()
        );
    }
    let labels = judge.predict_bytes(&set.pixels[..n * len])?;
    let agree = labels.iter().zip(&set.labels).filter(|(a, b)| a == b).count();
    // Shown, not used: how far the predicted labels are from the data set's.
    println!(
        "labelled {n} training images with {}: {agree} ({:.2} %) agree with the data set's labels",
        classifier.display(),
        100.0 * agree as f64 / n as f64
    );
    Ok(labels)
}

/// The candidate counts a group's codes can support (each needs twice `(dim + 1)` codes per
/// component, half of them held out): with `auto`, the others are dropped; a count the user
/// gave is kept, so that the fit says why it cannot be made.
fn feasible(candidates: &[usize], codes: &Codes, auto: bool) -> Vec<usize> {
    let fits = |&&k: &&usize| codes.len() >= 2 * k * (codes.dim + 1);
    let kept: Vec<usize> = candidates.iter().filter(fits).copied().collect();
    if auto && !kept.is_empty() {
        kept
    } else {
        candidates.to_vec()
    }
}

/// Mean log-density of the codes under N(0, I): what the standard prior makes of them.
fn standard_normal_log_likelihood(codes: &Codes) -> f64 {
    let d = codes.dim as f64;
    let sq: f64 = codes.values.iter().map(|v| v * v).sum();
    -0.5 * sq / codes.len().max(1) as f64 - 0.5 * d * (2.0 * std::f64::consts::PI).ln()
}

fn report_json(a: &Args, n: usize, fits: &[(Option<u8>, PriorFit, f64, usize)], section: usize) -> serde_json::Value {
    let groups: Vec<serde_json::Value> = fits
        .iter()
        .map(|(label, fit, standard, count)| {
            let m = &fit.mixture;
            serde_json::json!({
                "label": label,
                "codes": count,
                "components": m.components(),
                "em_iterations": m.iterations,
                "log_likelihood_per_code": fit.log_likelihood,
                "standard_normal_log_likelihood_per_code": standard,
                "candidates": fit.candidates.iter().map(|c| serde_json::json!({
                    "components": c.components,
                    "train_log_likelihood": c.train_log_likelihood,
                    "held_out_log_likelihood": c.held_out_log_likelihood,
                })).collect::<Vec<_>>(),
                "weights": m.weights,
                "means": m.means.iter().map(|&v| v as f32).collect::<Vec<_>>(),
                "cholesky": m.cholesky.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut report = serde_json::json!({
        "encoder": a.encoder.display().to_string(),
        "data": a.data.display().to_string(),
        "images": n,
        "codes": a.codes,
        "latent": fits.first().map_or(0, |f| f.1.mixture.dim),
        "components": fits.iter().map(|f| f.1.mixture.components()).sum::<usize>(),
        "ridge_relative": a.ridge,
        "seed": a.seed,
        "prior_section_bytes": section,
        "outputs": a.output.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "mixtures": groups,
    });
    // Only when given, so that the reports of data-set labels stay as they were.
    if let Some(path) = &a.labels_from {
        report["labels_from"] = path.display().to_string().into();
    }
    report
}

/// The prior a `fit-prior` report holds, as a blob stores it (`tinyvae quantize --prior`).
pub fn read_report(path: &Path) -> Result<PriorSpec> {
    let value: serde_json::Value =
        serde_json::from_slice(&util::read(path)?).with_context(|| format!("{}: not a JSON file", path.display()))?;
    let not_a_report = || format!("{}: no `mixtures` (not a `tinyvae fit-prior` report?)", path.display());
    let mixtures = value["mixtures"].as_array().with_context(not_a_report)?;
    let specs = mixtures
        .iter()
        .map(|m| {
            let numbers = |key: &str| -> Result<Vec<f64>> {
                m[key]
                    .as_array()
                    .and_then(|a| a.iter().map(serde_json::Value::as_f64).collect::<Option<Vec<f64>>>())
                    .with_context(|| format!("{}: a mixture has no `{key}` list of numbers", path.display()))
            };
            let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
            PriorSpec::from_weights(&numbers("weights")?, f32s(numbers("means")?), f32s(numbers("cholesky")?))
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    match &specs[..] {
        [] => bail!(not_a_report()),
        [one] => Ok(one.clone()),
        _ => PriorSpec::per_label(&specs).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
    }
}
