//! M2 through its public API: the unlabelled loss against its definition, the balanced label
//! selection, determinism, divergence errors, and a few steps on the vendored MNIST slice
//! exported to ONNX and re-imported.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tinyvae_compiler::ir::Role;
use tinyvae_train::classifier::LabelledImages;
use tinyvae_train::m2::{self, balanced_subset, M2Config, M2Shape, SslData, M2};
use tinyvae_train::{ImageSet, TrainError};

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-m2-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn slice_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice")
}

/// `count` 8x8 images of 10 classes: class k < 8 lights row k, classes 8 and 9 light columns
/// 2 and 5; faint noise everywhere. Labels cycle through the classes.
fn synthetic(count: usize, seed: u64) -> LabelledImages {
    let mut rng = tinyvae::Rng::new(seed);
    let mut pixels = vec![0f32; count * 64];
    let labels: Vec<u8> = (0..count).map(|i| (i % 10) as u8).collect();
    for (img, &k) in pixels.chunks_mut(64).zip(&labels) {
        for (i, p) in img.iter_mut().enumerate() {
            let (r, c) = (i / 8, i % 8);
            let on = match k {
                0..=7 => r == k as usize,
                8 => c == 2,
                _ => c == 5,
            };
            *p = if on { 0.9 } else { 0.1 * rng.uniform() };
        }
    }
    LabelledImages { images: ImageSet { count, rows: 8, cols: 8, pixels }, labels }
}

fn tiny_shape() -> M2Shape {
    M2Shape {
        input_len: 64,
        classes: 10,
        latent: 3,
        classifier_hidden: vec![16],
        encoder_hidden: vec![12],
        decoder_hidden: vec![12, 10],
        shared_trunk: false,
        likelihood: m2::M2Likelihood::Bernoulli,
    }
}

fn tiny_cfg(out: &Path) -> M2Config {
    M2Config {
        labelled: 20,
        latent: 3,
        classifier_hidden: vec![16],
        encoder_hidden: vec![12],
        decoder_hidden: vec![12],
        epochs: 3,
        batch_size: 16,
        labelled_batch_size: 8,
        lr: 3e-3,
        alpha: 1.0,
        kl_warmup_epochs: 1.5,
        translate_px: 1,
        translate_prob: 0.5,
        classifier_dropout: 0.1,
        ema_decay: Some(0.9),
        seed: 5,
        ..M2Config::new("unused", out)
    }
}

fn tiny_data(seed: u64) -> SslData {
    let pool = synthetic(120, 1);
    SslData::from_pool(&pool, 20, 20, seed, Some(synthetic(50, 2))).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn unlabelled_loss_is_the_explicit_sum_over_labels_minus_entropy() {
    for (shared_trunk, likelihood) in
        [(false, m2::M2Likelihood::Bernoulli), (true, m2::M2Likelihood::Bernoulli), (true, m2::M2Likelihood::Gaussian)]
    {
        let model = M2::new(&M2Shape { shared_trunk, likelihood, ..tiny_shape() }, 3).unwrap();
        check_unlabelled_loss(&model);
        // q(y|x) exports as a graph with the model's logits, with or without the shared trunk.
        let g = m2::classifier_graph(&model).unwrap();
        assert!(m2::graph_discrepancy(&model, &g, 20).unwrap() <= 1e-5);
    }
}

fn check_unlabelled_loss(model: &M2) {
    let (batch, k, latent) = (4, 10, 3);
    let data = synthetic(batch, 9);
    let x = Tensor::from_vec(data.images.pixels.clone(), (batch, 64), &Device::Cpu).unwrap();
    let mut rng = tinyvae::Rng::new(11);
    let eps: Vec<f32> = (0..batch * k * latent).map(|_| rng.gaussian()).collect();
    let eps_all = Tensor::from_vec(eps.clone(), (batch * k, latent), &Device::Cpu).unwrap();
    let beta = 0.7;
    let u = model.unlabelled_loss(&x, &eps_all, beta, None).unwrap();
    let got = values(&u.loss);

    // The definition, one class at a time through the labelled path with the same noise.
    let q: Vec<f32> = values(&model.class_log_probs(&x).unwrap().exp().unwrap());
    let mut want = vec![0f64; batch];
    for c in 0..k {
        let rows: Vec<f32> =
            (0..batch).flat_map(|b| eps[(b * k + c) * latent..(b * k + c + 1) * latent].to_vec()).collect();
        let eps_c = Tensor::from_vec(rows, (batch, latent), &Device::Cpu).unwrap();
        let terms = model.labelled_terms(&x, &vec![c as u8; batch], &eps_c).unwrap();
        let l = values(&terms.loss(beta, k).unwrap());
        let (recon, kl) = (values(&terms.reconstruction), values(&terms.kl));
        if model.shape().likelihood == m2::M2Likelihood::Gaussian {
            // -log N(x; mean, I) with the decoder's mean at the same z.
            let one_hot: Vec<f32> = (0..batch * k).map(|i| (i % k == c) as u8 as f32).collect();
            let y = Tensor::from_vec(one_hot, (batch, k), &Device::Cpu).unwrap();
            let (mu, logvar) = model.encode(&x, &y).unwrap();
            let z = (&mu + (&logvar * 0.5).unwrap().exp().unwrap().mul(&eps_c).unwrap()).unwrap();
            let mean = values(&model.decode(&z, &y).unwrap());
            for b in 0..batch {
                let sq: f64 =
                    (0..64).map(|i| (data.images.pixels[b * 64 + i] as f64 - mean[b * 64 + i] as f64).powi(2)).sum();
                let nll = 0.5 * sq + 32.0 * (2.0 * std::f64::consts::PI).ln();
                assert!((recon[b] as f64 - nll).abs() < 1e-4 * nll.abs().max(1.0), "{} vs {nll}", recon[b]);
            }
        }
        for b in 0..batch {
            let qb = q[b * k + c] as f64;
            // L(x,y) = -log p(x|y,z) + beta KL - log p(y), uniform p(y).
            let l_def = recon[b] as f64 + beta * kl[b] as f64 + (k as f64).ln();
            assert!((l[b] as f64 - l_def).abs() < 1e-4 * l_def.abs().max(1.0));
            want[b] += qb * l[b] as f64 + qb * qb.ln(); // sum_y q L - H(q)
        }
    }
    for b in 0..batch {
        assert!(
            (got[b] as f64 - want[b]).abs() < 1e-4 * want[b].abs().max(1.0),
            "image {b}: {} vs {}",
            got[b],
            want[b]
        );
    }
    // The reported entropy is H(q), between 0 and ln 10.
    for h in values(&u.entropy) {
        assert!(h > 0.0 && (h as f64) <= (k as f64).ln() + 1e-5);
    }
}

#[test]
fn fused_reconstruction_term_matches_bce_with_logits_in_value_and_gradient() {
    let (images, repeat, pixels) = (3, 4, 7);
    let mut rng = tinyvae::Rng::new(21);
    let logits: Vec<f32> = (0..images * repeat * pixels).map(|_| 6.0 * rng.gaussian()).collect();
    let targets: Vec<f32> = (0..images * pixels).map(|_| rng.uniform()).collect();
    let weights: Vec<f32> = (0..images * repeat).map(|_| rng.uniform()).collect();
    let var = candle_core::Var::from_vec(logits, (images * repeat, pixels), &Device::Cpu).unwrap();
    let t = Tensor::from_vec(targets, (images, pixels), &Device::Cpu).unwrap();
    let w = Tensor::from_vec(weights, images * repeat, &Device::Cpu).unwrap();

    let fused = m2::bce::bernoulli_nll_rows(var.as_tensor(), &t, repeat).unwrap();
    let repeated = t.unsqueeze(1).unwrap().broadcast_as((images, repeat, pixels)).unwrap();
    let repeated = repeated.reshape((images * repeat, pixels)).unwrap();
    let reference = tinyvae_train::loss::bce_with_logits(var.as_tensor(), &repeated).unwrap();
    for (a, b) in values(&fused).iter().zip(values(&reference)) {
        assert!((a - b).abs() < 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }
    // A weighted sum, so every row's upstream gradient differs.
    let g_fused = fused.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let g_ref = reference.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    let (a, b) = (values(g_fused.get(var.as_tensor()).unwrap()), values(g_ref.get(var.as_tensor()).unwrap()));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
    // Shapes that do not line up are an error, not a wrong answer.
    assert!(m2::bce::bernoulli_nll_rows(var.as_tensor(), &t, 3).is_err());
}

#[test]
fn balanced_subset_is_balanced_disjoint_and_seeded() {
    let pool = LabelledImages::load(&slice_dir(), tinyvae_data::idx::Split::Train, None).unwrap();
    let a = balanced_subset(&pool.labels, 100, 10, 0).unwrap();
    assert_eq!(a.len(), 100);
    let mut per_class = [0; 10];
    for &i in &a {
        per_class[pool.labels[i] as usize] += 1;
    }
    assert_eq!(per_class, [10; 10]);
    assert!(a.windows(2).all(|w| w[0] < w[1]), "indices are sorted and distinct");
    assert_eq!(a, balanced_subset(&pool.labels, 100, 10, 0).unwrap());
    assert_ne!(a, balanced_subset(&pool.labels, 100, 10, 1).unwrap());
    // Unbalanceable requests are errors naming the problem.
    assert!(balanced_subset(&pool.labels, 105, 10, 0).is_err());
    let err = balanced_subset(&pool.labels, 2000, 10, 0).unwrap_err().to_string();
    assert!(err.contains("class"), "{err}");

    // The split: labelled + unlabelled = pool - validation, the labelled images are those
    // indices, and no labelled image is also unlabelled.
    let data = SslData::from_pool(&pool, 100, 300, 4, None).unwrap();
    assert_eq!(data.labelled.count(), 100);
    assert_eq!(data.unlabelled.count, 2000 - 300 - 100);
    assert_eq!(data.validation.as_ref().unwrap().count(), 300);
    assert!(data.labelled_indices.iter().all(|&i| i < 1700));
    let first = data.labelled_indices[0];
    assert_eq!(data.labelled.images.image(0), pool.images.image(first));
    assert_eq!(data.labelled.labels[0], pool.labels[first]);
    let labelled: std::collections::HashSet<Vec<u32>> =
        (0..100).map(|i| data.labelled.images.image(i).iter().map(|v| v.to_bits()).collect()).collect();
    let overlap = (0..data.unlabelled.count)
        .filter(|&i| labelled.contains(&data.unlabelled.image(i).iter().map(|v| v.to_bits()).collect::<Vec<_>>()))
        .count();
    assert_eq!(overlap, 0);
}

#[test]
fn same_seed_gives_identical_runs_and_weights() {
    let (a_dir, b_dir) = (out_dir("det-a"), out_dir("det-b"));
    let a = m2::train_on(&tiny_cfg(&a_dir), &tiny_data(5)).unwrap();
    let b = m2::train_on(&tiny_cfg(&b_dir), &tiny_data(5)).unwrap();
    assert_eq!(a.history.len(), 3);
    assert_eq!(
        a.history.iter().map(|h| h.objective.to_bits()).collect::<Vec<_>>(),
        b.history.iter().map(|h| h.objective.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(a.test_error, b.test_error);
    assert_eq!(
        std::fs::read(a_dir.join("m2.safetensors")).unwrap(),
        std::fs::read(b_dir.join("m2.safetensors")).unwrap()
    );
    // Every epoch is logged, with the test and validation errors.
    let log = std::fs::read_to_string(&a.log_path).unwrap();
    assert_eq!(log.lines().count(), 3);
    assert!(a.history.iter().all(|h| h.test_error.is_some() && h.validation_error.is_some()));
    // Another seed: another labelled subset and other numbers.
    let c_cfg = M2Config { seed: 6, ..tiny_cfg(&out_dir("det-c")) };
    let c = m2::train_on(&c_cfg, &tiny_data(6)).unwrap();
    assert_ne!(a.history[0].objective.to_bits(), c.history[0].objective.to_bits());
    // The saved model reloads to the same classifier.
    let (loaded, info) = m2::load(&a_dir).unwrap();
    assert_eq!(info.shape, a.model.shape().clone());
    let test = &tiny_data(5).test.unwrap();
    assert_eq!(m2::predict(&loaded, &test.images).unwrap(), m2::predict(&a.model, &test.images).unwrap());
}

#[test]
fn divergence_is_reported_with_its_step() {
    let cfg = M2Config { lr: 1e6, epochs: 20, kl_warmup_epochs: 0.0, ..tiny_cfg(&out_dir("nan")) };
    match m2::train_on(&cfg, &tiny_data(5)) {
        Err(TrainError::NonFinite { global_step, what, .. }) => {
            assert!(global_step >= 1);
            assert!(what.contains("loss") || what.contains("gradient"), "{what}");
        }
        other => panic!("expected a divergence error, got {:?}", other.map(|r| r.history.len())),
    }
}

#[test]
fn bad_configurations_name_the_field() {
    let data = tiny_data(5);
    for (cfg, field) in [
        (M2Config { labelled: 15, ..tiny_cfg(&out_dir("bad")) }, "labelled"),
        (M2Config { alpha: -1.0, ..tiny_cfg(&out_dir("bad")) }, "alpha"),
        (M2Config { decoder_hidden: vec![], ..tiny_cfg(&out_dir("bad")) }, "decoder_hidden"),
        (M2Config { labelled_share: Some(2.0), ..tiny_cfg(&out_dir("bad")) }, "labelled_share"),
    ] {
        let err = m2::train_on(&cfg, &data).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn a_few_steps_on_the_mnist_slice_export_onnx_matching_candle_and_an_int8_classifier() {
    let dir = out_dir("slice");
    let cfg = M2Config {
        labelled: 100,
        validation_images: 200,
        latent: 4,
        classifier_hidden: vec![32],
        encoder_hidden: vec![32],
        decoder_hidden: vec![32],
        epochs: 1,
        max_steps: Some(6),
        batch_size: 50,
        labelled_batch_size: 20,
        export_onnx: true,
        shared_trunk: true,
        ..M2Config::new(slice_dir(), &dir)
    };
    let report = m2::train(&cfg).unwrap();
    assert_eq!(report.global_step, 6);
    assert_eq!(report.history.len(), 1);
    assert!(report.history[0].partial);
    assert_eq!((report.labelled_images, report.unlabelled_images, report.test_images), (100, 1700, 500));
    let err = report.test_error.unwrap();
    assert!((0.0..=1.0).contains(&err));

    let paths = report.onnx.clone().unwrap();
    let names: Vec<_> = paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names, ["encoder.onnx", "decoder.onnx", "classifier.onnx"]);
    let [enc, dec, cls] = [0, 1, 2].map(|i| tinyvae_compiler::onnx::import_file(&paths[i]).unwrap());
    assert_eq!(dec.role, Role::Decoder { latent: 4, classes: 10, bernoulli: true });
    assert_eq!(enc.role, Role::Encoder { latent: 4, classes: 10 });
    assert_eq!(dec.inputs.iter().map(|i| (i.name.as_str(), i.len)).collect::<Vec<_>>(), [("z", 4), ("label", 10)]);
    assert_eq!(enc.inputs.iter().map(|i| (i.name.as_str(), i.len)).collect::<Vec<_>>(), [("x", 784), ("label", 10)]);
    assert_eq!(cls.role, Role::Classifier { classes: 10 });
    assert_eq!(cls.inputs.iter().map(|i| (i.name.as_str(), i.len)).collect::<Vec<_>>(), [("x", 784)]);
    for g in [&dec, &enc, &cls] {
        let worst = m2::graph_discrepancy(&report.model, g, 30).unwrap();
        assert!(worst <= 1e-5, "re-imported {:?} differs by {worst}", g.role);
    }
    // q(y|x) as a deployable int8 classifier: its classes of the slice's test images agree with
    // the f32 graph's, and its error is the f32 graph's within a point.
    let settings = tinyvae_compiler::Settings {
        data: Some(slice_dir()),
        eval_samples: 500,
        calib_samples: 500,
        ..tinyvae_compiler::Settings::default()
    };
    let (blob, q) = tinyvae_compiler::quantize_and_measure(&cls, &settings).unwrap();
    assert_eq!(tinyvae::Model::parse(&blob).unwrap().kind(), tinyvae::ModelKind::Classifier);
    let c = q.classes.unwrap();
    assert_eq!(c.inputs, 500);
    assert!(c.agreement >= 0.95, "{c:?}");
    let (f32_error, int8_error) = (c.reference_error.unwrap(), c.blob_error.unwrap());
    assert!((f32_error - err).abs() < 1e-9, "the exported graph's error is the trained model's: {c:?} vs {err}");
    assert!((int8_error - f32_error).abs() <= 0.01, "{c:?}");
    // The sidecar records what made the model.
    let info: HashMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&report.model_path).unwrap()).unwrap();
    assert_eq!(info["labelled_indices"].as_array().unwrap().len(), 100);
    assert_eq!(info["format"], m2::M2_FORMAT);
}

#[test]
fn eval_ssl_writes_a_table_with_mean_and_std_over_seeds() {
    use tinyvae_train::ssl::{eval_ssl, mean_std, SslEvalConfig, SslTable};
    let dir = out_dir("ssl");
    let m2 = M2Config {
        latent: 4,
        classifier_hidden: vec![16],
        encoder_hidden: vec![16],
        decoder_hidden: vec![16],
        epochs: 1,
        max_steps: Some(3),
        batch_size: 50,
        labelled_batch_size: 10,
        train_limit: Some(600),
        test_limit: Some(200),
        ..M2Config::new(slice_dir(), "unused")
    };
    let mut cfg = SslEvalConfig::new(m2, &dir);
    cfg.label_counts = vec![20, 50];
    cfg.seeds = vec![3, 4];
    cfg.baseline_steps = 5;
    let mut seen = Vec::new();
    let table = eval_ssl(&cfg, |run, partial| {
        seen.push((run.labelled, run.seed));
        assert!(!partial.complete);
    })
    .unwrap();
    assert_eq!(seen, [(20, 3), (20, 4), (50, 3), (50, 4)]);
    assert!(table.complete);
    assert_eq!((table.training_images, table.test_images), (600, 200));
    assert_eq!(table.rows.len(), 2);
    for row in &table.rows {
        let errors: Vec<f64> = table.runs.iter().filter(|r| r.labelled == row.labelled).map(|r| r.test_error).collect();
        assert_eq!((row.mean, row.std), mean_std(&errors));
        assert!(row.baseline_mean.is_some());
        assert_eq!(row.paper, None, "the paper has no row for {} labels", row.labelled);
    }
    assert_eq!(table.runs[0].unlabelled, 580);
    // The files on disk are the returned table.
    let on_disk: SslTable = serde_json::from_str(&std::fs::read_to_string(dir.join("table.json")).unwrap()).unwrap();
    assert_eq!(on_disk, table);
    let md = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(md.contains("| 20 |") && md.contains("| 50 |") && !md.contains("Partial"), "{md}");
    assert!(dir.join("n20-seed3/m2.json").is_file());
    // Sample standard deviation (n - 1) and the one-run case.
    assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 2f64.sqrt()));
    assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    // The paper's rows are where the table looks for them.
    assert_eq!(tinyvae_train::ssl::PAPER[0].m2, 11.97);
}

#[test]
fn m1_plus_m2_learns_from_codes_and_exports_one_image_classifier() {
    // M1: the shipped z20 VAE's encoder (a real VAE trained on MNIST); M2 on its 20-D codes.
    let m1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z20/encoder.onnx");
    let dir = out_dir("m1m2");
    let cfg = M2Config {
        labelled: 100,
        latent: 4,
        classifier_hidden: vec![32],
        encoder_hidden: vec![32],
        decoder_hidden: vec![32],
        shared_trunk: true,
        epochs: 1,
        max_steps: Some(6),
        batch_size: 50,
        labelled_batch_size: 20,
        export_onnx: true,
        m1_encoder: Some(m1.clone()),
        ..M2Config::new(slice_dir(), &dir)
    };
    let report = m2::train(&cfg).unwrap();
    assert_eq!(report.model.shape().input_len, 20);
    assert_eq!(report.model.shape().likelihood, m2::M2Likelihood::Gaussian);
    let paths = report.onnx.clone().unwrap();
    let [enc, dec, cls] = [0, 1, 2].map(|i| tinyvae_compiler::onnx::import_file(&paths[i]).unwrap());
    // The generative half works on codes: a Gaussian decoder of 20 values.
    assert_eq!(dec.role, Role::Decoder { latent: 4, classes: 10, bernoulli: false });
    assert_eq!((enc.inputs[0].len, dec.output_len(0).unwrap()), (20, 20));
    for g in [&dec, &enc] {
        assert!(m2::graph_discrepancy(&report.model, g, 30).unwrap() <= 1e-5, "{:?}", g.role);
    }
    // The classifier takes pixels: M1's encoder, then q(y|x). On the slice's test images it
    // gives the trained model's logits of their codes.
    assert_eq!(cls.role, Role::Classifier { classes: 10 });
    assert_eq!(cls.inputs[0].len, 784);
    let test = LabelledImages::load(&slice_dir(), tinyvae_data::idx::Split::Test, Some(50)).unwrap();
    let x = ndarray::Array2::from_shape_vec((50, 784), test.images.pixels.clone()).unwrap();
    let got = cls.eval(&[x.view()]).unwrap().remove(0);
    let codes = m2::codes_of(&m2::load_m1(&m1).unwrap(), &test).unwrap();
    let want = report.model.class_logits(&codes.images.tensor(0..50).unwrap(), None).unwrap();
    let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4, "composed classifier differs from M2 on M1's codes by {worst}");
    // Shifts are for images, not codes.
    let shifted = M2Config { translate_px: 2, ..cfg };
    assert!(m2::train(&shifted).unwrap_err().to_string().contains("translate_px"));
}
