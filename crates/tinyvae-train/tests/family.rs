//! The family members beyond the plain VAE, through the public API: the CAE penalty and its
//! gradient, exports of conditional and deterministic graphs (checked against candle and
//! re-imported from ONNX), a short end-to-end run of every member on the vendored MNIST slice,
//! and determinism and exact resume of the multi-optimiser AAE and of the DAE's noise.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use ndarray::Array2;
use tinyvae_compiler::ir::{Graph, Role};
use tinyvae_train::aae::{Aae, AaeConfig, Prior};
use tinyvae_train::autoencoder::{contractive_penalty, AeConfig, AeLoss, Autoencoder, CorruptionSpec};
use tinyvae_train::engine::{self, load_member, Member, RunData, SplitLabels};
use tinyvae_train::{ImageSet, Likelihood, TrainConfig, TrainingData, Vae, VaeConfig};

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-family-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn slice() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice")
}

fn f64_tensor(v: &[f64], shape: (usize, usize)) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.sum_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

fn random(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = tinyvae::Rng::new(seed);
    (0..n).map(|_| scale * rng.gaussian() as f64).collect()
}

/// The analytic penalty is the squared Frobenius norm of the Jacobian dh/dx (measured by
/// central differences of h = sigmoid(W x + b)), and candle's gradient of it with respect to
/// W and b matches central differences of the penalty itself (in f64).
#[test]
fn contractive_penalty_is_the_jacobian_norm_and_its_gradient_is_right() {
    let (n, d, k) = (3, 5, 4);
    let (xv, wv, bv) = (random(n * d, 1, 1.0), random(k * d, 2, 0.8), random(k, 3, 0.5));
    let x = f64_tensor(&xv, (n, d));
    let penalty = |w: &[f64], b: &[f64]| -> Tensor {
        contractive_penalty(&x, &f64_tensor(w, (k, d)), &Tensor::from_vec(b.to_vec(), k, &Device::Cpu).unwrap())
            .unwrap()
    };

    // Jacobian of h by central differences, per image.
    let code = |x: &[f64]| -> Vec<f64> {
        (0..k)
            .map(|j| {
                let a: f64 = (0..d).map(|i| wv[j * d + i] * x[i]).sum::<f64>() + bv[j];
                1.0 / (1.0 + (-a).exp())
            })
            .collect()
    };
    let analytic = penalty(&wv, &bv).to_vec1::<f64>().unwrap();
    for (row, want) in analytic.iter().enumerate() {
        let x0 = &xv[row * d..(row + 1) * d];
        let mut frob = 0.0;
        for i in 0..d {
            let (mut up, mut down) = (x0.to_vec(), x0.to_vec());
            up[i] += 1e-5;
            down[i] -= 1e-5;
            let (hu, hd) = (code(&up), code(&down));
            frob += (0..k).map(|j| ((hu[j] - hd[j]) / 2e-5).powi(2)).sum::<f64>();
        }
        assert!((frob - want).abs() < 1e-8 * want.max(1.0), "image {row}: Jacobian {frob}, penalty {want}");
    }

    // Autograd against finite differences of the summed penalty.
    let w = Var::from_tensor(&f64_tensor(&wv, (k, d))).unwrap();
    let b = Var::from_tensor(&Tensor::from_vec(bv.clone(), k, &Device::Cpu).unwrap()).unwrap();
    let total = contractive_penalty(&x, w.as_tensor(), b.as_tensor()).unwrap().sum_all().unwrap();
    let grads = total.backward().unwrap();
    let gw = grads.get(w.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f64>().unwrap();
    let h = 1e-6;
    let mut worst = 0f64;
    for (idx, g) in gw.iter().enumerate() {
        let (mut up, mut down) = (wv.clone(), wv.clone());
        up[idx] += h;
        down[idx] -= h;
        let fd = (scalar(&penalty(&up, &bv)) - scalar(&penalty(&down, &bv))) / (2.0 * h);
        worst = worst.max((fd - g).abs() / fd.abs().max(1e-3));
    }
    for (idx, g) in gb.iter().enumerate() {
        let (mut up, mut down) = (bv.clone(), bv.clone());
        up[idx] += h;
        down[idx] -= h;
        let fd = (scalar(&penalty(&wv, &up)) - scalar(&penalty(&wv, &down))) / (2.0 * h);
        worst = worst.max((fd - g).abs() / fd.abs().max(1e-3));
    }
    assert!(worst < 1e-6, "largest relative gradient error {worst}");
}

fn array(t: &Tensor) -> Array2<f32> {
    let (r, c) = t.dims2().unwrap();
    Array2::from_shape_vec((r, c), t.flatten_all().unwrap().to_vec1::<f32>().unwrap()).unwrap()
}

fn max_diff(a: &Array2<f32>, b: &Tensor) -> f32 {
    let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn uniform(n: usize, len: usize, seed: u64) -> Tensor {
    let mut rng = tinyvae::Rng::new(seed);
    Tensor::from_vec((0..n * len).map(|_| rng.uniform()).collect::<Vec<f32>>(), (n, len), &Device::Cpu).unwrap()
}

fn gaussian(n: usize, len: usize, seed: u64) -> Tensor {
    let mut rng = tinyvae::Rng::new(seed);
    Tensor::from_vec((0..n * len).map(|_| 2.0 * rng.gaussian()).collect::<Vec<f32>>(), (n, len), &Device::Cpu).unwrap()
}

fn one_hot(labels: &[u8], classes: usize) -> Tensor {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        v[i * classes + l as usize] = 1.0;
    }
    Tensor::from_vec(v, (labels.len(), classes), &Device::Cpu).unwrap()
}

/// Writes a member's ONNX files and reads them back.
fn exported<M: Member>(m: &M, name: &str) -> (Graph, Graph) {
    let dir = out_dir(name);
    let files = m.export(&dir).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["encoder.onnx", "decoder.onnx"]);
    let enc = tinyvae_compiler::onnx::import_file(&files[0]).unwrap();
    let dec = tinyvae_compiler::onnx::import_file(&files[1]).unwrap();
    (enc, dec)
}

/// The CVAE's graphs take the one-hot label as their second input (`[z, label]`, `[x, label]`)
/// and, re-imported from ONNX, compute what candle computes within 1e-5.
#[test]
fn cvae_exports_conditional_graphs_that_match_candle() {
    let cvae = Vae::new(&VaeConfig::conditional(&[24, 16], 3, 10), 64, 4).unwrap();
    assert!(tinyvae_train::export_discrepancy(&cvae, 32).unwrap() <= 1e-5);
    let (enc, dec) = exported(&cvae, "cvae-export");
    assert_eq!(dec.role, Role::Decoder { latent: 3, classes: 10, bernoulli: true });
    assert_eq!(enc.role, Role::Encoder { latent: 3, classes: 10 });
    let lens = |g: &Graph| g.inputs.iter().map(|i| (i.name.clone(), i.len)).collect::<Vec<_>>();
    assert_eq!(lens(&dec), [("z".to_string(), 3), ("label".to_string(), 10)]);
    assert_eq!(lens(&enc), [("x".to_string(), 64), ("label".to_string(), 10)]);

    let labels = [0u8, 9, 4, 4, 7, 1];
    let y = one_hot(&labels, 10);
    let (z, x) = (gaussian(6, 3, 1), uniform(6, 64, 2));
    let got = dec.eval(&[array(&z).view(), array(&y).view()]).unwrap();
    assert!(max_diff(&got[0], &cvae.decode_labelled(&z, Some(&y)).unwrap()) <= 1e-5);
    let got = enc.eval(&[array(&x).view(), array(&y).view()]).unwrap();
    let (mu, logvar) = cvae.encode_labelled(&x, Some(&y)).unwrap();
    assert!(max_diff(&got[0], &mu).max(max_diff(&got[1], &logvar)) <= 1e-5);
    // The label changes the image, and a conditional model refuses to run without one.
    let other = cvae.decode_labelled(&z, Some(&one_hot(&[3, 3, 3, 3, 3, 3], 10))).unwrap();
    assert!(max_diff(&got_decoder(&dec, &z, &y), &other) > 1e-3);
    assert!(cvae.decode(&z).is_err());
}

fn got_decoder(dec: &Graph, z: &Tensor, y: &Tensor) -> Array2<f32> {
    dec.eval(&[array(z).view(), array(y).view()]).unwrap().remove(0)
}

/// Deterministic encoders (AE, CAE, AAE) export ONE output, z; decoders z -> pixels. Both match
/// candle within 1e-5 after the ONNX round trip, including the AAE whose discriminator reads
/// labels (the exported networks do not).
#[test]
fn deterministic_encoders_export_one_output_that_matches_candle() {
    let aae_cfg = AaeConfig {
        autoencoder: AeConfig::mlp(&[16], 2),
        discriminator_hidden: vec![8],
        prior: Prior::mixture10(),
        ..AaeConfig::default()
    };
    let aae = Aae::new(&aae_cfg, 64, 5).unwrap();
    let cases: Vec<(&str, Autoencoder, bool)> = vec![
        ("mlp", Autoencoder::new(&AeConfig::mlp(&[24], 6), 64, 1).unwrap(), true),
        ("linear", Autoencoder::new(&AeConfig::linear(6), 64, 2).unwrap(), false),
        ("cae", Autoencoder::new(&AeConfig::contractive(&[20], 6, 0.1), 64, 3).unwrap(), true),
        ("aae", aae.autoencoder().clone(), true),
    ];
    for (name, ae, bernoulli) in cases {
        let latent = ae.config().latent;
        assert!(ae.export_discrepancy(32).unwrap() <= 1e-5, "{name}");
        let (enc, dec) = if name == "aae" { exported(&aae, name) } else { exported(&ae, name) };
        assert_eq!(enc.role, Role::Encoder { latent, classes: 0 }, "{name}");
        assert_eq!(enc.outputs.len(), 1, "{name}: a deterministic encoder has one output");
        assert_eq!(dec.role, Role::Decoder { latent, classes: 0, bernoulli }, "{name}");
        let (x, z) = (uniform(5, 64, 7), gaussian(5, latent, 8));
        let got = enc.eval(&[array(&x).view()]).unwrap();
        assert!(max_diff(&got[0], &ae.code(&x).unwrap()) <= 1e-5, "{name} encoder");
        let got = dec.eval(&[array(&z).view()]).unwrap();
        assert!(max_diff(&got[0], &ae.decode(&z).unwrap()) <= 1e-5, "{name} decoder");
    }
}

/// The learned-variance Gaussian decoder trains (its NLL in true nats, finite) and exports only
/// its mean head, as a Gaussian (not Bernoulli) decoder.
#[test]
fn learned_variance_vae_trains_and_exports_its_mean() {
    let cfg = VaeConfig { likelihood: Likelihood::GaussianLearned, ..VaeConfig::mlp(&[32], 4) };
    let dir = out_dir("learned-variance");
    let train = TrainConfig {
        data_dir: slice(),
        epochs: 3,
        batch_size: 50,
        max_steps: Some(60),
        test_limit: Some(200),
        export_onnx: true,
        ..TrainConfig::new("", &dir)
    };
    let r = tinyvae_train::train(&cfg, &train).unwrap();
    let t = r.test.unwrap();
    assert!(t.nelbo.is_finite() && t.kl > 0.0, "{t:?}");
    // The identity-covariance NLL of a [0, 1] image is at least 784/2 ln(2 pi) = 720 nats; a
    // learned variance can go far below by being confident about the background.
    assert!(t.reconstruction < 720.0, "{t:?}");
    assert!(r.model.decoder_logvar_head().is_some());
    let dec = tinyvae_compiler::onnx::import_file(&r.onnx.unwrap().1).unwrap();
    assert_eq!(dec.role, Role::Decoder { latent: 4, classes: 0, bernoulli: false });
    assert_eq!(dec.outputs.len(), 1);
}

/// Trains `config` for a few steps on the vendored slice, then checks the log, the exported
/// ONNX roles, and that the saved model evaluates to the reported test numbers.
fn run_on_slice<M: Member>(config: &M::Config, name: &str, roles: [Role; 2]) -> engine::RunReport<M>
where
    M::Metrics: std::fmt::Debug,
{
    let dir = out_dir(name);
    let cfg = TrainConfig {
        data_dir: slice(),
        epochs: 2,
        batch_size: 50,
        max_steps: Some(25),
        test_limit: Some(200),
        export_onnx: true,
        ..TrainConfig::new("", &dir)
    };
    let r = engine::train_member::<M>(config, &cfg).unwrap();
    assert_eq!(r.global_step, 25, "{name}");
    assert_eq!(std::fs::read_to_string(&r.log_path).unwrap().lines().count(), r.history.len(), "{name}");
    for (file, role) in r.exported.iter().zip(roles) {
        assert_eq!(tinyvae_compiler::onnx::import_file(file).unwrap().role, role, "{name}: {}", file.display());
    }
    assert_eq!(r.exported.len(), 2, "{name}");
    let (loaded, info) = load_member::<M>(&r.model_path).unwrap();
    assert_eq!(info.model, M::KIND);
    let data = RunData::load(&cfg, M::uses_labels(config)).unwrap();
    let labels = data.labels.as_ref().and_then(|l| l.test.as_deref());
    let again = loaded.evaluate(data.images.test.as_ref().unwrap(), labels, cfg.eval_seed).unwrap();
    assert_eq!(Some(again), r.test, "{name}: the saved model evaluates to the reported numbers");
    r
}

#[test]
fn every_member_trains_end_to_end_on_the_slice() {
    let dec = |latent, classes, bernoulli| Role::Decoder { latent, classes, bernoulli };
    let enc = |latent, classes| Role::Encoder { latent, classes };

    let linear =
        AeConfig { eval_corruption: Some(CorruptionSpec::parse("masking", 0.25).unwrap()), ..AeConfig::linear(8) };
    let r = run_on_slice::<Autoencoder>(&linear, "ae-linear", [enc(8, 0), dec(8, 0, false)]);
    let t = r.test.unwrap();
    assert!(t.corrupted_squared_error.unwrap() > 0.0 && t.reconstruction == t.squared_error, "{t:?}");

    let mlp = AeConfig { loss: AeLoss::Bce, ..AeConfig::mlp(&[32], 8) };
    let plain = run_on_slice::<Autoencoder>(&mlp, "ae-mlp", [enc(8, 0), dec(8, 0, true)]).test.unwrap();
    assert!(plain.corrupted_reconstruction.is_none() && plain.reconstruction < 543.0, "{plain:?}");

    for kind in ["masking", "gaussian", "salt-pepper"] {
        let dae = AeConfig::denoising(&[32], 8, CorruptionSpec::parse(kind, 0.25).unwrap());
        let t = run_on_slice::<Autoencoder>(&dae, &format!("dae-{kind}"), [enc(8, 0), dec(8, 0, true)]).test.unwrap();
        assert!(t.corrupted_reconstruction.unwrap() > 0.0, "{kind}: {t:?}");
    }

    let cae = AeConfig::contractive(&[32], 16, 0.5);
    let t = run_on_slice::<Autoencoder>(&cae, "cae", [enc(16, 0), dec(16, 0, true)]).test.unwrap();
    assert!(t.contractive.unwrap() > 0.0, "{t:?}");
    assert_eq!(Autoencoder::terms(&cae), ["loss", "reconstruction", "contractive"]);

    let gaussian = VaeConfig { likelihood: Likelihood::Gaussian, ..VaeConfig::mlp(&[32], 4) };
    run_on_slice::<Vae>(&gaussian, "vae-gaussian", [enc(4, 0), dec(4, 0, false)]);
    let cvae = VaeConfig::conditional(&[32], 4, 10);
    run_on_slice::<Vae>(&cvae, "cvae", [enc(4, 10), dec(4, 10, true)]);

    let aae =
        AaeConfig { autoencoder: AeConfig::mlp(&[32], 2), discriminator_hidden: vec![16], ..AaeConfig::default() };
    let r = run_on_slice::<Aae>(&aae, "aae", [enc(2, 0), dec(2, 0, true)]);
    let t = r.test.unwrap();
    assert!(t.prior_mmd.is_finite() && t.component_accuracy.is_some(), "{t:?}");
    let last = r.history.last().unwrap();
    for term in ["reconstruction", "discriminator", "generator", "discriminator_accuracy"] {
        assert!(last.train[term].is_finite(), "{term}");
    }
    assert!((0.0..=1.0).contains(&last.train["discriminator_accuracy"]));
}

/// 8x8 images of a bar at row or column k, labelled k.
fn bars(count: usize, seed: u64) -> (ImageSet, Vec<u8>) {
    let mut rng = tinyvae::Rng::new(seed);
    let mut pixels = vec![0f32; count * 64];
    let mut labels = Vec::new();
    for img in pixels.chunks_mut(64) {
        let (k, vertical) = (rng.below(8) as usize, rng.below(2) == 1);
        labels.push(k as u8);
        for (i, p) in img.iter_mut().enumerate() {
            let on = if vertical { i % 8 == k } else { i / 8 == k };
            *p = if on { 0.9 } else { 0.05 * rng.uniform() };
        }
    }
    (ImageSet { count, rows: 8, cols: 8, pixels }, labels)
}

fn labelled_bars() -> RunData {
    let (train, train_labels) = bars(90, 1);
    let (test, test_labels) = bars(30, 2);
    RunData {
        images: TrainingData { train, validation: None, test: Some(test) },
        labels: Some(SplitLabels { train: train_labels, validation: None, test: Some(test_labels) }),
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

fn small_run(dir: &Path) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 20,
        lr: 3e-3,
        seed: 11,
        ema_decay: Some(0.9),
        translate_px: 1,
        ..TrainConfig::new("", dir)
    }
}

/// The AAE's three optimisers (and the prior draws) are checkpointed and replayed exactly: a
/// run stopped mid-epoch and resumed ends bit-identical to an uninterrupted one, which is
/// itself identical across two runs with the same seed.
#[test]
fn aae_is_deterministic_and_resumes_exactly() {
    let config =
        AaeConfig { autoencoder: AeConfig::mlp(&[16], 2), discriminator_hidden: vec![8], ..AaeConfig::default() };
    let data = labelled_bars();
    let (a, b) = (out_dir("aae-a"), out_dir("aae-b"));
    let full = engine::run::<Aae>(&config, &small_run(&a), &data).unwrap();
    engine::run::<Aae>(&config, &small_run(&b), &data).unwrap();
    assert_eq!(weights(&a), weights(&b));

    let part = out_dir("aae-part");
    let stopped = engine::run::<Aae>(&config, &TrainConfig { max_steps: Some(7), ..small_run(&part) }, &data).unwrap();
    assert_eq!(stopped.global_step, 7);
    let ck: HashMap<String, Tensor> =
        candle_core::safetensors::load(part.join("checkpoint-00000007.safetensors"), &Device::Cpu).unwrap();
    for opt in ["reconstruction", "discriminator", "generator"] {
        let step = ck[&format!("adam_step.{opt}")].to_vec1::<i64>().unwrap()[0];
        assert_eq!(step, 7, "{opt}");
    }
    assert!(
        ck.contains_key("adam_m.generator/encoder.0.weight") && !ck.contains_key("adam_m.generator/decoder.0.weight")
    );
    let resumed = out_dir("aae-resumed");
    let r =
        engine::run::<Aae>(&config, &TrainConfig { resume: Some(part.clone()), ..small_run(&resumed) }, &data).unwrap();
    assert_eq!(r.global_step, full.global_step);
    assert_eq!(weights(&resumed), weights(&a));
    assert_eq!(r.test, full.test);

    // The DAE's corruption comes from the seed: same seed, same model; another seed, another.
    let dae = AeConfig::denoising(&[16], 4, CorruptionSpec::parse("salt-pepper", 0.3).unwrap());
    let unlabelled = RunData::unlabelled(data.images.clone());
    let (c, d, e) = (out_dir("dae-c"), out_dir("dae-d"), out_dir("dae-e"));
    engine::run::<Autoencoder>(&dae, &small_run(&c), &unlabelled).unwrap();
    engine::run::<Autoencoder>(&dae, &small_run(&d), &unlabelled).unwrap();
    engine::run::<Autoencoder>(&dae, &TrainConfig { seed: 12, ..small_run(&e) }, &unlabelled).unwrap();
    assert_eq!(weights(&c), weights(&d));
    assert_ne!(weights(&c), weights(&e));
}
