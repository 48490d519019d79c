//! Anomaly detection through the `tinyvae` binary, on the shipped MLPerf Tiny anomaly-detection
//! autoencoder (`models/mlperf-tiny-ad`: exported by PyTorch's `torch.onnx.export` with its
//! BatchNorm1d layers as BatchNormalization nodes) and its `.npy` feature files: quantize with
//! `.npy` calibration, validate against tract, score with a threshold and an AUROC, deploy
//! the threshold; and the errors a user meets on the way.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tinyvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae")).args(args).output().expect("run tinyvae")
}

fn ok(args: &[&str]) -> String {
    let out = tinyvae(args);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "tinyvae {args:?} failed:\n{text}");
    text
}

/// The one-line error of a command that must fail.
fn fails(args: &[&str]) -> String {
    let out = tinyvae(args);
    assert!(!out.status.success(), "tinyvae {args:?} succeeded");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(err.lines().count(), 1, "tinyvae {args:?}: not one line:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mlperf-tiny-ad")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-anomaly-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_torch_exported_ad_model_quantizes_validates_scores_and_deploys() {
    let dir = scratch("pipeline");
    let m = model_dir();
    let (onnx, calib, normal, anomalous) =
        (m.join("ad.onnx"), m.join("calib.npy"), m.join("normal.npy"), m.join("anomalous.npy"));
    let blob = dir.join("ad.int8.tvae");
    // No --role: one input and one output of the same length is an autoencoder.
    let report = ok(&["quantize", s(&onnx), "-o", s(&blob), "--data", s(&calib), "--eval-data", s(&normal), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["kind"], "autoencoder");
    assert_eq!(report["macs"], 264_192);
    assert!(report["calibration"].as_str().unwrap().contains("calib.npy"), "{report}");
    let agreement = report["scores"]["relative_error_of_mean"].as_f64().unwrap();
    assert!(agreement < 0.005, "{report}");

    // tract runs the ONNX file itself.
    let v = ok(&[
        "validate",
        s(&onnx),
        s(&blob),
        "--data",
        s(&normal),
        "--eval-data",
        s(&normal),
        "--max-score-error",
        "0.005",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["pass"], true, "{v}");
    assert_eq!(v["scores"]["vectors"], 512);

    let (json, raw) = (dir.join("scores.json"), dir.join("scores.raw"));
    let out = ok(&[
        "score",
        s(&blob),
        "--data",
        s(&normal),
        "--anomalous",
        s(&anomalous),
        "--fpr",
        "0.05",
        "-o",
        s(&json),
        "--raw",
        s(&raw),
    ]);
    assert!(out.contains("AUROC"), "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let auroc = r["auroc"].as_f64().unwrap();
    // The digit 9 among 0-8 (make.json: 0.72 with the f32 model in PyTorch).
    assert!(auroc > 0.65, "{r}");
    assert!(r["threshold"]["normal_fpr"].as_f64().unwrap() <= 0.05);
    let raws: Vec<u64> = r["normal"]["raw"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let bytes = std::fs::read(&raw).unwrap();
    assert_eq!(bytes.len(), 8 * 512);
    let from_file: Vec<u64> = bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(from_file, raws);
    let threshold = r["threshold"]["raw"].as_u64().unwrap();
    assert_eq!(
        raws.iter().filter(|&&x| x > threshold).count(),
        (r["normal"]["alarms"].as_f64().unwrap() * 512.0).round() as usize
    );

    // deploy writes the same threshold into the Rust module and the C header.
    let rust = dir.join("rust");
    ok(&["deploy", s(&blob), "-o", s(&rust), "--threshold-data", s(&normal), "--fpr", "0.05"]);
    let module = std::fs::read_to_string(rust.join("model.rs")).unwrap();
    assert!(module.contains(&format!("pub const THRESHOLD_RAW: u64 = {threshold};")), "{module}");
    assert!(module.contains("tinyvae::ModelKind::Autoencoder"));
    let c = dir.join("c");
    ok(&["deploy", s(&blob), "-o", s(&c), "--lang", "c", "--threshold-data", s(&normal), "--fpr", "0.05"]);
    let header = std::fs::read_to_string(c.join("model.h")).unwrap();
    assert!(header.contains(&format!("#define TINYVAE_MODEL_THRESHOLD_RAW {threshold}ull")), "{header}");
    assert!(header.contains("#define TINYVAE_MODEL_KIND 3"));

    // Raw little-endian f32 with a stated shape reads like the .npy it came from.
    let npy = std::fs::read(&normal).unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let raw_f32 = dir.join("normal.f32");
    std::fs::write(&raw_f32, &npy[10 + header_len..]).unwrap();
    let again = dir.join("again.raw");
    ok(&["score", s(&blob), "--data", s(&raw_f32), "--shape", "640", "--raw", s(&again)]);
    assert_eq!(std::fs::read(&again).unwrap(), bytes);
}

#[test]
fn anomaly_commands_refuse_bad_input_in_one_line() {
    let dir = scratch("errors");
    let m = model_dir();
    let (onnx, calib, normal) = (m.join("ad.onnx"), m.join("calib.npy"), m.join("normal.npy"));
    let blob = dir.join("ad.tvae");
    let e = fails(&["quantize", s(&onnx), "-o", s(&blob)]);
    assert!(e.contains("feature vectors") && e.contains("--data FILE.npy"), "{e}");
    // A data file of the wrong width names itself and both widths.
    let narrow = dir.join("narrow.npy");
    let npy = std::fs::read(&calib).unwrap();
    let at = npy.windows(10).position(|w| w == b"(256, 640)").unwrap();
    let mut edited = npy.clone();
    edited[at..at + 10].copy_from_slice(b"(512, 320)");
    std::fs::write(&narrow, edited).unwrap();
    let e = fails(&["quantize", s(&onnx), "-o", s(&blob), "--data", s(&narrow)]);
    assert!(e.contains("narrow.npy") && e.contains("640") && e.contains("320"), "{e}");
    // Raw f32 needs its shape.
    let raw = dir.join("calib.f32");
    std::fs::write(&raw, &npy[128..]).unwrap();
    let e = fails(&["quantize", s(&onnx), "-o", s(&blob), "--data", s(&raw)]);
    assert!(e.contains("calib.f32") && e.contains("--shape"), "{e}");
    assert!(!blob.exists(), "a failed quantize wrote its output");
    // The output may not overwrite an input.
    let e = fails(&["quantize", s(&onnx), "-o", s(&raw), "--data", s(&raw), "--shape", "640"]);
    assert!(e.contains("calib.f32"), "{e}");
    assert_eq!(std::fs::read(&raw).unwrap(), &npy[128..]);

    ok(&["quantize", s(&onnx), "-o", s(&blob), "--data", s(&calib), "--calib-samples", "64", "--eval-samples", "8"]);
    let e = fails(&["score", s(&blob), "--data", s(&normal), "--fpr", "2"]);
    assert!(e.contains("--fpr 2"), "{e}");
    let decoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z20/decoder.int8.tvae");
    let e = fails(&["score", s(&decoder), "--data", s(&normal)]);
    assert!(e.contains("not an autoencoder"), "{e}");
    let dec_onnx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z20/decoder.onnx");
    let e = fails(&["quantize", s(&dec_onnx), "-o", s(&blob), "--role", "autoencoder"]);
    assert!(e.contains("same length"), "{e}");
    let e = fails(&["deploy", s(&decoder), "-o", s(&dir.join("d")), "--threshold-data", s(&normal)]);
    assert!(e.contains("not an autoencoder"), "{e}");
}

#[test]
fn a_composed_image_autoencoder_scores_by_likelihood() {
    let dir = scratch("compose");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../");
    let (enc, dec) = (root.join("models/mnist-ae/encoder.onnx"), root.join("models/mnist-ae/decoder.onnx"));
    let ae = dir.join("ae.onnx");
    let out = ok(&["compose", s(&enc), s(&dec), "-o", s(&ae)]);
    assert!(out.contains("784 ->"), "{out}");
    let slice = root.join("tests/data/mnist-slice");
    let blob = dir.join("ae.tvae");
    let report = ok(&["quantize", s(&ae), "-o", s(&blob), "--data", s(&slice), "--calib-samples", "200", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["kind"], "autoencoder");
    // Test images of the slice as a .npy file, [0, 1] values.
    let test = tinyvae_data::idx::Dataset::load(&slice, tinyvae_data::idx::Split::Test).unwrap();
    let n = test.count.min(100);
    let values: Vec<f32> = test.pixels[..n * 784].iter().map(|&p| p as f32 / 255.0).collect();
    let npy = dir.join("test.npy");
    let features = tinyvae_data::features::Features { rows: n, len: 784, values };
    std::fs::write(&npy, tinyvae_data::features::npy_bytes(&features)).unwrap();
    let r = ok(&["score", s(&blob), "--data", s(&npy), "--score", "nll", "--json"]);
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(r["score"], "nll");
    // Nats per image: an untrained model would give about 543 (784 ln 2).
    let mean = r["normal"]["mean"].as_f64().unwrap();
    assert!(mean > 10.0 && mean < 300.0, "{r}");
    let module = dir.join("module");
    ok(&["deploy", s(&blob), "-o", s(&module), "--threshold-data", s(&npy), "--score", "nll"]);
    let src = std::fs::read_to_string(module.join("model.rs")).unwrap();
    assert!(src.contains("pub const SCORE: tinyvae::ScoreKind = tinyvae::ScoreKind::BernoulliNll;"), "{src}");
    // A model whose output is not a probability has no likelihood.
    let m = model_dir();
    let ad = dir.join("ad.tvae");
    ok(&["quantize", s(&m.join("ad.onnx")), "-o", s(&ad), "--data", s(&m.join("calib.npy")), "--calib-samples", "64"]);
    let e = fails(&["score", s(&ad), "--data", s(&m.join("normal.npy")), "--score", "nll"]);
    assert!(e.contains("pixel-quantized"), "{e}");
}
