//! Behaviour of the trainer through its public API, on tiny synthetic image sets (fast and
//! hermetic) and once on the vendored MNIST slice: determinism, checkpoint resume, divergence
//! errors, evaluation and export.

use std::path::{Path, PathBuf};

use tinyvae_train::{
    evaluate, export_discrepancy, export_onnx, load_checkpoint, load_model, train, train_on, ImageSet, Likelihood,
    TrainConfig, TrainError, TrainingData, VaeConfig,
};

/// `count` 8x8 images: a bright bar at a random row or column plus faint noise.
fn synthetic(count: usize, seed: u64) -> ImageSet {
    let mut rng = tinyvae::Rng::new(seed);
    let mut pixels = vec![0f32; count * 64];
    for img in pixels.chunks_mut(64) {
        let k = rng.below(8) as usize;
        let vertical = rng.below(2) == 1;
        for (i, p) in img.iter_mut().enumerate() {
            let (r, c) = (i / 8, i % 8);
            let on = if vertical { c == k } else { r == k };
            *p = if on { 0.9 } else { 0.05 * rng.uniform() };
        }
    }
    ImageSet { count, rows: 8, cols: 8, pixels }
}

fn data() -> TrainingData {
    TrainingData { train: synthetic(96, 1), validation: Some(synthetic(32, 2)), test: Some(synthetic(40, 3)) }
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn small_vae() -> VaeConfig {
    VaeConfig::mlp(&[16], 3)
}

fn small_cfg(out: &Path) -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 20, // 96 images: 5 steps per epoch, the last one short
        lr: 3e-3,
        seed: 7,
        kl_warmup_epochs: 1.5,
        translate_px: 1,
        translate_prob: 0.5,
        encoder_dropout: 0.1,
        encoder_weight_decay: 1e-4,
        ema_decay: Some(0.9),
        ..TrainConfig::new("unused", out)
    }
}

fn losses(r: &tinyvae_train::TrainReport) -> Vec<(u64, u64, u64)> {
    r.history
        .iter()
        .map(|h| (h.train_loss.to_bits(), h.validation.unwrap().nelbo.to_bits(), h.test.unwrap().nelbo.to_bits()))
        .collect()
}

#[test]
fn same_seed_gives_bit_identical_losses_and_weights() {
    let (a_dir, b_dir) = (out_dir("det-a"), out_dir("det-b"));
    let a = train_on(&small_vae(), &small_cfg(&a_dir), &data()).unwrap();
    let b = train_on(&small_vae(), &small_cfg(&b_dir), &data()).unwrap();
    assert_eq!(a.history.len(), 4);
    assert_eq!(losses(&a), losses(&b));
    assert_eq!(
        std::fs::read(a_dir.join("model.safetensors")).unwrap(),
        std::fs::read(b_dir.join("model.safetensors")).unwrap()
    );
    // Another seed gives other numbers.
    let c = train_on(&small_vae(), &TrainConfig { seed: 8, ..small_cfg(&out_dir("det-c")) }, &data()).unwrap();
    assert_ne!(losses(&a), losses(&c));
    // Training made progress, and the loss parts add up.
    let (first, last) = (&a.history[0], a.history.last().unwrap());
    assert!(last.train_nelbo < first.train_nelbo, "{} -> {}", first.train_nelbo, last.train_nelbo);
    let t = last.test.unwrap();
    assert!((t.nelbo - t.reconstruction - t.kl).abs() < 1e-9 && t.kl > 0.0);
}

#[test]
fn resume_mid_epoch_continues_exactly() {
    let full_dir = out_dir("resume-full");
    let full = train_on(&small_vae(), &small_cfg(&full_dir), &data()).unwrap();

    // Stop after 7 steps (in the middle of epoch 2), then resume to the end.
    let part_dir = out_dir("resume-part");
    let first = train_on(&small_vae(), &TrainConfig { max_steps: Some(7), ..small_cfg(&part_dir) }, &data()).unwrap();
    assert_eq!(first.global_step, 7);
    assert_eq!(first.epochs_completed, 1);
    assert!(first.history.last().unwrap().partial);
    let ck = load_checkpoint(&part_dir).unwrap();
    assert_eq!((ck.info.global_step, ck.info.step_in_epoch, ck.info.epochs_completed), (7, 2, 1));

    // Resume into another directory (the best-validation model so far comes along).
    let next_dir = out_dir("resume-next");
    let resumed = train_on(
        &small_vae(),
        &TrainConfig { resume: Some(part_dir.join("checkpoint.json")), ..small_cfg(&next_dir) },
        &data(),
    )
    .unwrap();
    assert_eq!(resumed.global_step, full.global_step);
    // Same complete-epoch losses (the partial record of the first session is kept in the log).
    let complete: Vec<_> = resumed.history.iter().filter(|h| !h.partial).cloned().collect();
    assert_eq!(complete.len(), 4);
    let strip = |h: &tinyvae_train::EpochRecord| (h.epoch, h.train_loss.to_bits(), h.test.map(|t| t.nelbo.to_bits()));
    assert_eq!(complete.iter().map(strip).collect::<Vec<_>>(), full.history.iter().map(strip).collect::<Vec<_>>());
    assert_eq!(
        std::fs::read(full_dir.join("model.safetensors")).unwrap(),
        std::fs::read(next_dir.join("model.safetensors")).unwrap()
    );
    // The log on disk is the whole history, one JSON object per line.
    let log = std::fs::read_to_string(next_dir.join("train_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 5);
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    // A wrong shape is refused with a message, not a panic.
    let err = train_on(
        &VaeConfig::mlp(&[8], 3),
        &TrainConfig { resume: Some(part_dir.clone()), ..small_cfg(&out_dir("resume-bad")) },
        &data(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Checkpoint { .. }), "{err}");
}

#[test]
fn checkpoint_and_model_files_round_trip() {
    let dir = out_dir("roundtrip");
    let r = train_on(&small_vae(), &TrainConfig { epochs: 2, ..small_cfg(&dir) }, &data()).unwrap();
    let (model, info) = load_model(&r.model_path).unwrap();
    assert!(info.ema && info.test.is_some());
    let d = data();
    let seed = small_cfg(&dir).eval_seed;
    assert_eq!(evaluate(&model, d.test.as_ref().unwrap(), seed).unwrap(), r.test.unwrap());
    // The best-validation model is the final one; the checkpoint's averaged weights are the last epoch's.
    let best =
        r.history.iter().min_by(|a, b| a.validation.unwrap().nelbo.total_cmp(&b.validation.unwrap().nelbo)).unwrap();
    assert_eq!(r.model_epoch, best.epoch);
    let (from_ck, _) = load_model(&r.checkpoint_path).unwrap();
    assert_eq!(
        evaluate(&from_ck, d.validation.as_ref().unwrap(), seed).unwrap().nelbo,
        r.history.last().unwrap().validation.unwrap().nelbo
    );
    // A model file is not a resumable checkpoint.
    assert!(matches!(load_checkpoint(&r.model_path), Err(TrainError::Checkpoint { .. })));
}

#[test]
fn divergence_is_an_error_naming_epoch_and_step() {
    // A NaN pixel in the 3rd batch of epoch 1 (batch order is shuffled, so put it everywhere
    // from one image on and find which step the error names).
    let mut d = data();
    d.train.pixels[50 * 64 + 10] = f32::NAN;
    let err = train_on(&small_vae(), &small_cfg(&out_dir("nan")), &d).unwrap_err();
    match &err {
        TrainError::NonFinite { epoch, step_in_epoch, global_step, what, .. } => {
            assert_eq!(*epoch, 1);
            assert!((1..=5).contains(step_in_epoch));
            assert_eq!(global_step, step_in_epoch);
            assert_eq!(what, "the loss");
        }
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("epoch 1, step"), "{err}");

    // A huge learning rate blows the weights up within a few steps.
    let err = train_on(
        &small_vae(),
        &TrainConfig { lr: 1e12, kl_warmup_epochs: 0.0, ema_decay: None, ..small_cfg(&out_dir("lr")) },
        &data(),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::NonFinite { .. }), "{err}");
}

#[test]
fn ir_graphs_match_candle_and_export_to_onnx() {
    for (cfg, likelihood) in [
        (VaeConfig::mlp(&[16], 3), Likelihood::Bernoulli),
        (
            VaeConfig { encoder_hidden: vec![24, 12], decoder_hidden: vec![10], ..VaeConfig::mlp(&[], 2) },
            Likelihood::Gaussian,
        ),
    ] {
        let cfg = VaeConfig { likelihood, mc_samples: 2, ..cfg };
        let dir = out_dir(&format!("export-{likelihood:?}"));
        let r = train_on(&cfg, &TrainConfig { epochs: 1, ..small_cfg(&dir) }, &data()).unwrap();
        assert!(export_discrepancy(&r.model, 32).unwrap() <= 1e-5);
        let (enc, dec) = export_onnx(&r.model, &dir).unwrap();
        let enc_g = tinyvae_compiler::onnx::import_file(&enc).unwrap();
        let dec_g = tinyvae_compiler::onnx::import_file(&dec).unwrap();
        assert_eq!(enc_g.outputs.len(), 2);
        assert_eq!(
            dec_g.role,
            tinyvae_compiler::ir::Role::Decoder {
                latent: cfg.latent,
                classes: 0,
                bernoulli: likelihood == Likelihood::Bernoulli
            }
        );
        // The re-imported decoder computes what the model computes.
        let z = ndarray::Array2::from_shape_fn((4, cfg.latent), |(i, j)| (i as f32 - 1.5) * 0.7 + j as f32 * 0.3);
        let got = dec_g.eval(&[z.view()]).unwrap().remove(0);
        let zt = candle_core::Tensor::from_vec(
            z.iter().copied().collect::<Vec<f32>>(),
            (4, cfg.latent),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let want: Vec<f32> = r.model.decode(&zt).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-5, "{worst}");
    }
}

#[test]
fn bad_configurations_are_errors() {
    let d = data();
    let dir = out_dir("bad");
    for cfg in [
        TrainConfig { batch_size: 0, ..small_cfg(&dir) },
        TrainConfig { lr: f64::NAN, ..small_cfg(&dir) },
        TrainConfig { encoder_dropout: 1.0, ..small_cfg(&dir) },
    ] {
        assert!(matches!(train_on(&small_vae(), &cfg, &d), Err(TrainError::Config(_))));
    }
    assert!(matches!(train_on(&VaeConfig::mlp(&[16], 0), &small_cfg(&dir), &d), Err(TrainError::Config(_))));
    let missing = TrainConfig { data_dir: dir.join("nowhere"), ..small_cfg(&dir) };
    assert!(matches!(train(&small_vae(), &missing), Err(TrainError::Idx(_))));
}

/// End to end on the vendored MNIST slice: load from IDX, hold out validation images, train a
/// few hundred steps, write ONNX. The negative ELBO must fall well below its starting value.
#[test]
fn trains_on_vendored_mnist_slice() {
    let slice = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice");
    let dir = out_dir("mnist");
    let cfg = TrainConfig {
        data_dir: slice,
        epochs: 25,
        batch_size: 100,
        max_steps: Some(300),
        validation_images: 500,
        test_every: 5,
        export_onnx: true,
        ..TrainConfig::new("", &dir)
    };
    let r = train(&VaeConfig::mlp(&[64], 5), &cfg).unwrap();
    assert_eq!(r.global_step, 300);
    let test = r.test.unwrap();
    assert_eq!(test.images, 500);
    assert!(test.nelbo < 200.0, "test negative ELBO {}", test.nelbo);
    assert!(r.onnx.as_ref().unwrap().0.is_file() && r.onnx.as_ref().unwrap().1.is_file());
}
