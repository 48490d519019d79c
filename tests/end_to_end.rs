//! End to end through the `tinyvae` binary: train a tiny VAE on the vendored MNIST slice,
//! export ONNX, quantize to int8 and f16, validate against tract, sample, inspect; and the
//! failure paths a user meets (bad input, unsupported model) give one-line errors and write
//! nothing.

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

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-e2e-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn train_export_quantize_validate_sample() {
    let dir = scratch("pipeline");
    let data = data_dir();
    let out = ok(&[
        "train",
        "--data",
        s(&data),
        "--out",
        s(&dir),
        "--latent",
        "8",
        "--hidden",
        "128",
        "--max-steps",
        "300",
        "--epochs",
        "50",
        "--batch-size",
        "64",
        "--seed",
        "3",
        "--quiet",
    ]);
    assert!(out.contains("test negative ELBO"), "{out}");
    let nelbo: f64 = out
        .split("test negative ELBO ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a test NELBO figure");
    // An untrained model scores about 543 nats (784 ln 2); 300 steps must have learned something.
    assert!(nelbo < 250.0, "test NELBO {nelbo}");
    let (enc, dec) = (dir.join("encoder.onnx"), dir.join("decoder.onnx"));
    assert!(enc.is_file() && dec.is_file());

    let (d8, d16, d32, e8) = (dir.join("d8.tvae"), dir.join("d16.tvae"), dir.join("d32.tvae"), dir.join("e8.tvae"));
    let report = ok(&["quantize", s(&dec), "--precision", "int8", "-o", s(&d8), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&report).expect("quantize --json is JSON");
    assert_eq!(report["kind"], "decoder");
    assert!(report["fidelity"]["psnr_db"].as_f64().unwrap() > 40.0, "{report}");
    assert_eq!(report["macs"], 8 * 128 + 128 * 784);
    ok(&["quantize", s(&dec), "--precision", "f16", "-o", s(&d16)]);
    ok(&["quantize", s(&dec), "--precision", "f32", "-o", s(&d32)]);
    ok(&["quantize", s(&enc), "--precision", "int8", "-o", s(&e8), "--data", s(&data)]);

    // Each blob against the ONNX model in tract.
    ok(&["validate", s(&dec), s(&d8), "--min-psnr", "40"]);
    ok(&["validate", s(&dec), s(&d16), "--max-abs", "2e-3"]);
    ok(&["validate", s(&dec), s(&d32), "--max-abs", "1e-5"]);
    ok(&["validate", s(&enc), s(&e8), "--data", s(&data), "--min-psnr", "30"]);
    // A decoder can also be calibrated and checked on its encoder's codes of real images.
    let d8e = dir.join("d8e.tvae");
    let out = ok(&["quantize", s(&dec), "-o", s(&d8e), "--encoder", s(&enc), "--data", s(&data)]);
    assert!(out.contains("encoder codes of"), "{out}");
    ok(&["validate", s(&dec), s(&d8e), "--encoder", s(&enc), "--data", s(&data), "--min-psnr", "40"]);
    // A threshold that cannot be met fails the command.
    let strict = tinyvae(&["validate", s(&dec), s(&d8), "--max-abs", "1e-9"]);
    assert_eq!(strict.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&tinyvae(&["validate", s(&dec), s(&d8), "--max-abs", "1e-9", "--json"]).stdout).unwrap();
    assert_eq!(v["pass"], false);

    // Sampling runs the blob in the runtime; same seed, same bytes.
    let (png, raw, raw2) = (dir.join("grid.png"), dir.join("a.raw"), dir.join("b.raw"));
    ok(&["sample", s(&d8), "--count", "12", "--seed", "7", "-o", s(&png), "--raw", s(&raw)]);
    ok(&["sample", s(&d8), "--count", "12", "--seed", "7", "--raw", s(&raw2)]);
    let a = std::fs::read(&raw).unwrap();
    assert_eq!(a.len(), 12 * 784);
    assert_eq!(a, std::fs::read(&raw2).unwrap());
    assert!(a.iter().any(|&p| p > 128) && a.iter().any(|&p| p < 16), "samples look like digits on black");
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    ok(&["sample", s(&d8), "--count", "12", "--seed", "8", "--raw", s(&raw2)]);
    assert_ne!(a, std::fs::read(&raw2).unwrap(), "another seed, other samples");

    let inspect = ok(&["inspect", s(&d8)]);
    assert!(inspect.contains("dense 128x8") && inspect.contains("lut"), "{inspect}");
    assert!(inspect.contains("N(0, I) (none stored)"), "{inspect}");
    fit_prior_and_sample_from_it(&dir, &enc, &d8, &d16);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fit-prior` gives the int8 and f16 blobs of one decoder the same learned prior; sampling
/// then draws from it (and `--prior standard` still from N(0, I)), without touching the inputs.
fn fit_prior_and_sample_from_it(dir: &Path, enc: &Path, d8: &Path, d16: &Path) {
    let data = data_dir();
    let (p8, p16, report) = (dir.join("p8.tvae"), dir.join("p16.tvae"), dir.join("prior.json"));
    let before = std::fs::read(d8).unwrap();
    let out = ok(&[
        "fit-prior",
        "--encoder",
        s(enc),
        "--data",
        s(&data),
        "--decoder",
        s(d8),
        "--decoder",
        s(d16),
        "-o",
        s(&p8),
        "-o",
        s(&p16),
        "--components",
        "1,2,3",
        "--report",
        s(&report),
    ]);
    assert!(out.contains("chose") && out.contains("held out"), "{out}");
    assert_eq!(std::fs::read(d8).unwrap(), before, "the input blob is untouched");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let k = r["components"].as_u64().unwrap();
    let fit = &r["mixtures"][0];
    assert!((1..=3).contains(&k) && fit["candidates"].as_array().unwrap().len() == 3, "{r}");
    // A mixture fitted to the codes explains them better than N(0, I) does.
    assert!(fit["log_likelihood_per_code"].as_f64() > fit["standard_normal_log_likelihood_per_code"].as_f64(), "{r}");
    // The report holds the mixture: `quantize --prior` stores the same bytes in a blob it makes.
    let (dec, q8) = (dir.join("decoder.onnx"), dir.join("q8.tvae"));
    let out = ok(&["quantize", s(&dec), "-o", s(&q8), "--prior", s(&report)]);
    assert!(out.contains(&format!("prior       {k} components")), "{out}");
    assert_eq!(std::fs::read(&q8).unwrap(), std::fs::read(&p8).unwrap());
    // Without a decoder the encoder's metadata gives the latent size, and only the report is written.
    let report2 = dir.join("prior2.json");
    let fitted = ["fit-prior", "--encoder", s(enc), "--data", s(&data), "--components", "1,2,3"];
    ok(&[&fitted[..], &["--report", s(&report2)]].concat());
    let r2: serde_json::Value = serde_json::from_slice(&std::fs::read(&report2).unwrap()).unwrap();
    assert_eq!(r2["mixtures"], r["mixtures"], "the same fit");
    let inspect = ok(&["inspect", s(&p16)]);
    assert!(
        inspect.contains(&format!("stored Gaussian mixture: {k} components")) && inspect.contains("blob v4"),
        "{inspect}"
    );

    let sample = |blob: &Path, prior: &str, raw: &str| {
        let path = dir.join(raw);
        ok(&["sample", s(blob), "--count", "8", "--seed", "7", "--prior", prior, "--raw", s(&path)]);
        std::fs::read(path).unwrap()
    };
    // The graph is the same bytes: N(0, I) samples are the old blob's.
    assert_eq!(sample(&p8, "standard", "s.raw"), sample(d8, "auto", "o.raw"));
    let learned = sample(&p8, "auto", "l.raw");
    assert_eq!(learned, sample(&p8, "stored", "l2.raw"));
    assert_ne!(learned, sample(&p8, "standard", "s2.raw"));
    let png = dir.join("priors.png");
    let out = ok(&["figure", "priors", s(&p8), "-o", s(&png), "--side", "4"]);
    assert!(out.contains(&format!("stored {k}-component prior")), "{out}");
    assert_eq!(png_size(&std::fs::read(&png).unwrap()).0, 2 * (9 * 29 + 1));

    // Mistakes: no prior to sample from, an output over an input, an encoder as the decoder.
    let fail = |args: &[&str], says: &str| {
        let out = tinyvae(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && err.contains(says), "{args:?}: {err}");
    };
    fail(&["sample", s(d8), "--prior", "stored", "--raw", s(&dir.join("x.raw"))], "stores no prior");
    fail(
        &["fit-prior", "--encoder", s(enc), "--data", s(&data), "--decoder", s(d8), "-o", s(d8)],
        "refusing to overwrite",
    );
    fail(&fitted, "nothing to write");
    fail(&["quantize", s(&dec), "-o", s(&dir.join("w.tvae")), "--prior", s(&dir.join("a.raw"))], "not a JSON file");
    let e8 = dir.join("e8.tvae");
    fail(
        &["fit-prior", "--encoder", s(enc), "--data", s(&data), "--decoder", s(&e8), "-o", s(&dir.join("y.tvae"))],
        "not a decoder",
    );
    fail(
        &[
            "fit-prior",
            "--encoder",
            s(enc),
            "--data",
            s(&data),
            "--decoder",
            s(d8),
            "-o",
            s(&dir.join("z.tvae")),
            "--components",
            "500",
        ],
        "allows 1..=256",
    );
    assert!(!dir.join("y.tvae").exists() && !dir.join("z.tvae").exists() && !dir.join("w.tvae").exists());
}

/// Output into a pipe whose reader is gone (`tinyvae inspect ... | head -1` once `head` has
/// quit) ends the command quietly, as other Unix tools end, not with a panic and a backtrace.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let blob = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-conv-vae/decoder.int8.tvae");
    // The reader is gone before the command starts: closing it after the spawn raced with a
    // command fast enough to fit its whole output in the pipe's buffer first.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(["inspect", s(&blob)])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run tinyvae");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.signal(), Some(13), "ended by SIGPIPE: {:?}", out.status);
}

#[test]
fn bad_inputs_give_one_line_errors_and_write_nothing() {
    let dir = scratch("errors");
    // Not an ONNX file.
    let junk = dir.join("junk.onnx");
    std::fs::write(&junk, b"definitely not protobuf \xff\xff\xff").unwrap();
    let out_path = dir.join("out.tvae");
    let r = tinyvae(&["quantize", s(&junk), "-o", s(&out_path)]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("junk.onnx") && !err.contains("panicked"), "{err}");
    assert!(!out_path.exists());
    assert!(std::fs::read_dir(&dir).unwrap().count() == 1, "no temp files left behind");

    // A corrupt blob.
    let blob = dir.join("bad.tvae");
    let mut bytes = tinyvae::format::write::example_decoder();
    bytes[70] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    let r = tinyvae(&["sample", s(&blob), "--raw", s(&dir.join("x.raw"))]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(err.contains("bad.tvae") && err.contains("checksum"), "{err}");
    assert!(!dir.join("x.raw").exists());

    // Output over an input is refused, and the input is left as it was.
    let r = tinyvae(&["sample", s(&blob), "--raw", s(&blob)]);
    assert_eq!(r.status.code(), Some(1));
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);

    // Absurd counts, a label for an unconditional decoder, an encoder given to `sample`: one
    // line each, naming what is wrong, and no output.
    let z20 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z20/decoder.int8.tvae");
    let enc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z20/encoder.int8.tvae");
    let png = dir.join("x.png");
    for (args, says) in [
        (vec!["--count", "100000000"], "--count 100000000: 100000000 samples of 784 pixels need 78400000000 bytes"),
        (vec!["--count", "18446744073709551615"], "--count 18446744073709551615 is too large"),
        (vec!["--label", "3"], "label 3 given, but the model is not conditional"),
    ] {
        let r = tinyvae(&[&["sample", s(&z20), "-o", s(&png)], &args[..]].concat());
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says) && err.trim().lines().count() == 1, "{args:?}: {err}");
    }
    let r = tinyvae(&["sample", s(&enc), "-o", s(&png)]);
    assert!(String::from_utf8_lossy(&r.stderr).contains("model is an encoder, expected a decoder"));
    assert!(!png.exists());

    // Usage errors come from clap with exit code 2.
    assert_eq!(tinyvae(&["quantize"]).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The family's figure paths on tiny models trained on the slice: an AAE's codes coloured by
/// label (`figure latent`), its decoder over an even grid (`figure manifold --extent`) and its
/// mixture prior (`sample --mixture`); a CVAE's samples with the labels cycling.
#[test]
fn aae_and_cvae_figures_and_samples() {
    let dir = scratch("family");
    let data = data_dir();
    let small = ["--max-steps", "60", "--batch-size", "64", "--seed", "1", "--test-limit", "200", "--quiet"];
    let aae = dir.join("aae");
    let mut args = vec!["train", "--model", "aae", "--data", s(&data), "--out", s(&aae), "--latent", "2"];
    args.extend(["--encoder-hidden", "32", "--decoder-hidden", "32", "--disc-hidden", "16"]);
    args.extend(small);
    ok(&args);
    let (enc, dec) = (aae.join("encoder.onnx"), aae.join("decoder.onnx"));
    let (e8, d8) = (dir.join("aae-e8.tvae"), dir.join("aae-d8.tvae"));
    ok(&["quantize", s(&enc), "-o", s(&e8), "--data", s(&data)]);
    ok(&["quantize", s(&dec), "-o", s(&d8), "--encoder", s(&enc), "--data", s(&data)]);

    let latent = dir.join("latent.png");
    let out = ok(&["figure", "latent", "--encoder", s(&e8), "--data", s(&data), "--size", "200", "-o", s(&latent)]);
    assert!(out.contains("codes of 500 test images"), "{out}");
    let png = std::fs::read(&latent).unwrap();
    assert_eq!(png_size(&png), (200, 220), "the plot and a legend strip of 10 cells");
    assert_eq!(png[25], 2, "an RGB PNG (colour type 2)");
    // More test images than the slice has is an error, and nothing is written.
    let none = dir.join("none.png");
    let r = tinyvae(&["figure", "latent", "--encoder", s(&e8), "--data", s(&data), "--count", "501", "-o", s(&none)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(!none.exists());
    // A decoder is not an encoder with a 2-D code.
    assert_eq!(
        tinyvae(&["figure", "latent", "--encoder", s(&d8), "--data", s(&data), "-o", s(&none)]).status.code(),
        Some(1)
    );

    let manifold = dir.join("manifold.png");
    ok(&["figure", "manifold", s(&d8), "--extent", "5", "--steps", "4", "-o", s(&manifold)]);
    assert_eq!(png_size(&std::fs::read(&manifold).unwrap()), (4 * 28, 4 * 28));
    assert_eq!(tinyvae(&["figure", "manifold", s(&d8), "--extent", "0", "-o", s(&manifold)]).status.code(), Some(1));

    // Mixture samples: sample i from component i mod 10, or all from --label's component.
    let (all, one) = (dir.join("all.raw"), dir.join("one.raw"));
    ok(&["sample", s(&d8), "--mixture", "10,4,0.5", "--count", "20", "--seed", "5", "--raw", s(&all)]);
    ok(&["sample", s(&d8), "--mixture", "10,4,0.5", "--label", "0", "--count", "1", "--seed", "5", "--raw", s(&one)]);
    let all = std::fs::read(&all).unwrap();
    assert_eq!(all.len(), 20 * 784);
    assert_eq!(&all[..784], &std::fs::read(&one).unwrap()[..], "sample 0 comes from component 0");
    let r = tinyvae(&["sample", s(&d8), "--mixture", "10,4,0.5", "--label", "10", "--raw", s(&dir.join("x.raw"))]);
    assert_eq!(r.status.code(), Some(1), "component 10 of 10");
    assert_eq!(
        tinyvae(&["sample", s(&d8), "--mixture", "10,4", "--raw", s(&dir.join("x.raw"))]).status.code(),
        Some(2)
    );

    // A conditional decoder without --label: sample i gets label i mod 10.
    let cvae = dir.join("cvae");
    let mut args =
        vec!["train", "--model", "cvae", "--data", s(&data), "--out", s(&cvae), "--latent", "4", "--hidden", "32"];
    args.extend(small);
    ok(&args);
    let c8 = dir.join("cvae-d8.tvae");
    ok(&["quantize", s(&cvae.join("decoder.onnx")), "-o", s(&c8)]);
    let (cycled, three) = (dir.join("cycled.raw"), dir.join("three.raw"));
    ok(&["sample", s(&c8), "--count", "10", "--seed", "2", "--raw", s(&cycled)]);
    let cycled = std::fs::read(&cycled).unwrap();
    for label in [0u32, 3] {
        // Sample `label` of the cycled run continues the PRNG stream past `label` earlier draws,
        // so compare with the same position of a run with every sample at that label.
        ok(&["sample", s(&c8), "--label", &label.to_string(), "--count", "10", "--seed", "2", "--raw", s(&three)]);
        let fixed = std::fs::read(&three).unwrap();
        let k = label as usize;
        assert_eq!(&cycled[k * 784..(k + 1) * 784], &fixed[k * 784..(k + 1) * 784], "label {label}");
    }
    // A mixture needs an unconditional decoder.
    assert_eq!(
        tinyvae(&["sample", s(&c8), "--mixture", "10,4,0.5", "--raw", s(&dir.join("x.raw"))]).status.code(),
        Some(1)
    );
    // A learned prior for a conditional decoder: one mixture per label, fitted to the codes of
    // that label's images; samples of a label come from its mixture.
    let (c8p, report) = (dir.join("cvae-prior.tvae"), dir.join("cvae-prior.json"));
    let enc = cvae.join("encoder.onnx");
    let out = ok(&[
        "fit-prior",
        "--encoder",
        s(&enc),
        "--data",
        s(&data),
        "--decoder",
        s(&c8),
        "-o",
        s(&c8p),
        "--components",
        "1,2",
        "--report",
        s(&report),
    ]);
    assert!(out.contains("one mixture per label") && out.contains("label 9:"), "{out}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let mixtures = r["mixtures"].as_array().unwrap();
    assert_eq!(mixtures.len(), 10);
    assert!(mixtures.iter().enumerate().all(|(l, m)| m["label"] == l), "{r}");
    let (a, b) = (dir.join("pa.raw"), dir.join("pb.raw"));
    ok(&["sample", s(&c8p), "--label", "3", "--count", "4", "--seed", "2", "--raw", s(&a)]);
    ok(&["sample", s(&c8p), "--label", "3", "--count", "4", "--seed", "2", "--raw", s(&b), "--prior", "standard"]);
    assert_ne!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    ok(&["sample", s(&c8), "--label", "3", "--count", "4", "--seed", "2", "--raw", s(&a)]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "--prior standard is the old blob's N(0, I)");
    // --shared: one mixture for every label.
    let shared = dir.join("cvae-shared.json");
    ok(&[
        "fit-prior",
        "--encoder",
        s(&enc),
        "--data",
        s(&data),
        "--components",
        "2",
        "--shared",
        "--report",
        s(&shared),
    ]);
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&shared).unwrap()).unwrap();
    assert_eq!((r["mixtures"].as_array().unwrap().len(), &r["components"]), (1, &serde_json::json!(2)));
    assert!(r.get("labels_from").is_none(), "data-set labels leave the report as it was: {r}");
    // --labels-from: the labels come from a classifier blob (M2's shipped q(y|x)), not the data
    // set, so the mixtures group the codes by predicted label.
    let m2 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-m2/classifier.int8.tvae");
    let predicted = dir.join("cvae-predicted.json");
    let labelled_by = |classifier: &Path, report: &Path| {
        let fit = ["fit-prior", "--encoder", s(&enc), "--data", s(&data), "--components", "1"];
        tinyvae(&[&fit[..], &["--report", s(report), "--labels-from", s(classifier)]].concat())
    };
    let out = labelled_by(&m2, &predicted);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("agree with the data set's labels") && text.contains("one mixture per label"), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&predicted).unwrap()).unwrap();
    assert_eq!(r["labels_from"], s(&m2), "{r}");
    let own = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&report).unwrap()).unwrap();
    let counts = |r: &serde_json::Value| {
        r["mixtures"].as_array().unwrap().iter().map(|m| m["codes"].clone()).collect::<Vec<_>>()
    };
    assert_ne!(counts(&r), counts(&own), "the predicted labels group the codes differently");
    // A blob that is not a classifier: one error naming it, nothing written.
    let bad = dir.join("bad.json");
    let r = labelled_by(&c8, &bad);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert!(err.contains("cvae-d8.tvae") && err.contains("not a classifier"), "{err}");
    assert!(!bad.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A decoder whose weights sit in an external-data sidecar (the layout torch's default
/// exporter writes since torch 2.9) quantizes and validates as it is, from another working
/// folder; a sidecar that went missing is one error naming it, and nothing is written.
#[test]
fn external_data_models_quantize_and_validate_as_they_are() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/external-data/one-file");
    let dir = scratch("external-data");
    let blob = dir.join("decoder.int8.tvae");
    ok(&["quantize", s(&fixture.join("decoder.onnx")), "--precision", "int8", "-o", s(&blob)]);
    let report = ok(&["validate", s(&fixture.join("decoder.onnx")), s(&blob), "--min-psnr", "40"]);
    assert!(report.contains("PSNR"), "{report}");

    // The model without its sidecar.
    std::fs::copy(fixture.join("decoder.onnx"), dir.join("alone.onnx")).unwrap();
    let out = tinyvae(&["quantize", s(&dir.join("alone.onnx")), "-o", s(&dir.join("alone.tvae"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("decoder.onnx.data") && err.contains("alone.onnx"), "{err}");
    assert_eq!(err.matches("alone.onnx").count(), 1, "the model is named once: {err}");
    assert!(!dir.join("alone.tvae").exists());
}

/// The conditional conv VAE from `tinyvae train --arch conv`, through every command: its
/// encoder joins the label to computed conv features (an int8 Concat of a Conv output), its
/// decoder is Dense -> ConvTranspose x 2; both quantize, validate in tract, and run.
#[test]
fn conv_cvae_trains_quantizes_validates_and_samples() {
    let dir = scratch("conv-cvae");
    let data = data_dir();
    ok(&[
        "train",
        "--model",
        "cvae",
        "--arch",
        "conv",
        "--channels",
        "8,16",
        "--data",
        s(&data),
        "--out",
        s(&dir),
        "--latent",
        "8",
        "--max-steps",
        "40",
        "--epochs",
        "5",
        "--batch-size",
        "64",
        "--seed",
        "5",
        "--quiet",
    ]);
    let (enc, dec) = (dir.join("encoder.onnx"), dir.join("decoder.onnx"));
    let (e8, d8, d16) = (dir.join("e8.tvae"), dir.join("d8.tvae"), dir.join("d16.tvae"));
    ok(&["quantize", s(&enc), "-o", s(&e8), "--data", s(&data), "--no-refine"]);
    ok(&["validate", s(&enc), s(&e8), "--data", s(&data), "--min-psnr", "30"]);
    ok(&["quantize", s(&dec), "-o", s(&d8), "--no-refine"]);
    ok(&["validate", s(&dec), s(&d8), "--min-psnr", "40"]);
    ok(&["quantize", s(&dec), "--precision", "f16", "-o", s(&d16)]);
    ok(&["validate", s(&dec), s(&d16), "--max-abs", "2e-3"]);
    let inspect = ok(&["inspect", s(&d8)]);
    assert!(inspect.contains("blob v3") && inspect.contains("convT 4x4 s2 p1,1"), "{inspect}");
    assert!(inspect.contains("16x7x7") && inspect.contains("1x28x28"), "{inspect}");
    let png = dir.join("samples.png");
    ok(&["sample", s(&d8), "--count", "10", "--label", "3", "-o", s(&png)]);
    assert!(png.exists());
    let _ = std::fs::remove_dir_all(&dir);
}
