//! The bad-input matrix: every command that reads a blob, an ONNX model, a feature file or an
//! IDX folder, given each kind of bad input (a missing file, a folder, a file of another kind,
//! a truncated file), must fail with one line on stderr that names the file, exit with status
//! 1, write nothing, and leave every input as it was. Then the cases that are not about the
//! input's bytes: absurd sizes, a label out of range, an output into a missing folder or over
//! an input, and a write that fails (a file-size limit, as a full disk would).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tinyvae(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae")).args(args).output().expect("run tinyvae")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-bad-input-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// Files (not folders) under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir).into_keys().collect()
}

/// Runs `args` and checks the failure: status 1, one `error:` line mentioning `names`, no panic,
/// nothing written under `out`.
fn refused(args: &[String], names: &[&str], out: &Path) -> String {
    let r = tinyvae(args);
    let err = String::from_utf8_lossy(&r.stderr).trim().to_string();
    assert_eq!(r.status.code(), Some(1), "tinyvae {args:?}: status {:?}\n{err}", r.status);
    assert_eq!(err.lines().count(), 1, "tinyvae {args:?}: not one line:\n{err}");
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "tinyvae {args:?}: {err}");
    for name in names {
        assert!(err.contains(name), "tinyvae {args:?}: the error does not name {name}: {err}");
    }
    assert_eq!(files_under(out), Vec::<PathBuf>::new(), "tinyvae {args:?} wrote output");
    err
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The four bad forms of a `kind` file made from `good`: missing, a folder, a file of another
/// kind (a PNG), and the good file cut in half.
fn bad_forms(dir: &Path, kind: &str, good: &[u8]) -> Vec<PathBuf> {
    let picture = std::fs::read(root().join("docs/samples.png")).unwrap();
    let folder = dir.join(format!("folder.{kind}"));
    std::fs::create_dir_all(&folder).unwrap();
    let (other, half) = (dir.join(format!("picture.{kind}")), dir.join(format!("half.{kind}")));
    std::fs::write(&other, &picture).unwrap();
    std::fs::write(&half, &good[..good.len() / 2]).unwrap();
    vec![dir.join(format!("missing.{kind}")), folder, other, half]
}

#[test]
fn every_command_refuses_every_bad_input_in_one_line() {
    let base = scratch("matrix");
    let (fx, out) = (base.join("inputs"), base.join("out"));
    std::fs::create_dir_all(&fx).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    let copy = |from: &str, to: &str| {
        let p = fx.join(to);
        std::fs::copy(root().join(from), &p).unwrap();
        p.to_str().unwrap().to_string()
    };
    let z20 = copy("models/mnist-vae-z20/decoder.int8.tvae", "z20.tvae");
    let dec = copy("models/mnist-vae-z20/decoder.onnx", "dec.onnx");
    let ad = copy("models/mlperf-tiny-ad/ad.int8.tvae", "ad.tvae");
    let ad_onnx = copy("models/mlperf-tiny-ad/ad.onnx", "ad.onnx");
    let normal = copy("models/mlperf-tiny-ad/normal.npy", "normal.npy");
    // IDX folders: missing, a file, and one whose training images are cut short.
    let slice = root().join("tests/data/mnist-slice");
    let half_idx = fx.join("half-idx");
    std::fs::create_dir_all(&half_idx).unwrap();
    for f in std::fs::read_dir(&slice).unwrap() {
        let f = f.unwrap().path();
        let bytes = std::fs::read(&f).unwrap();
        let name = f.file_name().unwrap();
        let keep = if name.to_string_lossy().starts_with("train-images") { bytes.len() / 2 } else { bytes.len() };
        std::fs::write(half_idx.join(name), &bytes[..keep]).unwrap();
    }
    let file_idx = fx.join("picture-idx");
    std::fs::write(&file_idx, std::fs::read(root().join("docs/samples.png")).unwrap()).unwrap();
    let idx_forms = vec![fx.join("missing-idx"), file_idx, half_idx];

    let blobs = bad_forms(&fx, "tvae", &std::fs::read(&z20).unwrap());
    let onnxs = bad_forms(&fx, "onnx", &std::fs::read(&dec).unwrap());
    let npys = bad_forms(&fx, "npy", &std::fs::read(&normal).unwrap());
    let before = snapshot(&fx);
    let o = |name: &str| out.join(name).to_str().unwrap().to_string();

    // (command with `{}` where the bad input goes, the inputs to try)
    let matrix: Vec<(Vec<String>, &Vec<PathBuf>)> = vec![
        (strings(&["inspect", "{}"]), &blobs),
        (strings(&["sample", "{}", "--count", "2", "-o", &o("s.png")]), &blobs),
        (strings(&["deploy", "{}", "-o", &o("deployed")]), &blobs),
        (strings(&["validate", &dec, "{}", "--samples", "4"]), &blobs),
        (strings(&["figure", "priors", "{}", "-o", &o("p.png")]), &blobs),
        (strings(&["score", "{}", "--data", &normal]), &blobs),
        (strings(&["classify", "--model", "{}", "--data", slice.to_str().unwrap()]), &blobs),
        (strings(&["quantize", "{}", "-o", &o("q.tvae")]), &onnxs),
        (strings(&["bench", "{}", "--batch", "1", "--time-ms", "1"]), &onnxs),
        (strings(&["compose", "{}", &dec, "-o", &o("c.onnx")]), &onnxs),
        (strings(&["validate", "{}", &z20, "--samples", "4"]), &onnxs),
        (strings(&["quantize", &ad_onnx, "-o", &o("q.tvae"), "--data", "{}"]), &npys),
        (strings(&["score", &ad, "--data", "{}"]), &npys),
        (strings(&["score", &ad, "--data", &normal, "--anomalous", "{}"]), &npys),
        (strings(&["deploy", &ad, "-o", &o("deployed"), "--threshold-data", "{}"]), &npys),
        (strings(&["validate", &ad_onnx, &ad, "--data", "{}", "--samples", "8"]), &npys),
        (strings(&["train", "--data", "{}", "--out", &o("trained"), "--max-steps", "1", "--quiet"]), &idx_forms),
        (
            strings(&["eval-anomaly", "--data", "{}", "--out", &o("oneclass"), "--classes", "1", "--epochs", "1"]),
            &idx_forms,
        ),
    ];
    let mut cells = 0;
    for (template, inputs) in &matrix {
        for bad in inputs.iter() {
            let bad_s = bad.to_str().unwrap();
            let args: Vec<String> =
                template.iter().map(|a| if a == "{}" { bad_s.to_string() } else { a.clone() }).collect();
            let name = bad.file_name().unwrap().to_str().unwrap();
            refused(&args, &[name], &out);
            let _ = std::fs::remove_dir_all(&out);
            std::fs::create_dir_all(&out).unwrap();
            cells += 1;
        }
    }
    assert_eq!(cells, 18 * 4 - 2, "commands x bad inputs");
    assert_eq!(snapshot(&fx), before, "an input changed");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn sizes_labels_and_outputs_are_refused_in_one_line() {
    let base = scratch("requests");
    let out = base.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let p = |rel: &str| root().join(rel).to_str().unwrap().to_string();
    let (z20, z2, cvae) = (
        p("models/mnist-vae-z20/decoder.int8.tvae"),
        p("models/mnist-vae-z2/decoder.int8.tvae"),
        p("models/mnist-cvae/decoder.int8.tvae"),
    );
    let png = out.join("x.png").to_str().unwrap().to_string();
    // Copies, for the outputs aimed at inputs (outside `out`, which must stay empty).
    let copy = |from: &str, to: &str| {
        let dst = base.join(to);
        std::fs::copy(root().join(from), &dst).unwrap();
        dst.to_str().unwrap().to_string()
    };
    let onnx = copy("models/mnist-vae-z20/decoder.onnx", "dec.onnx");
    let npy = copy("models/mlperf-tiny-ad/calib.npy", "calib.npy");
    let ad_onnx = p("models/mlperf-tiny-ad/ad.onnx");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (strings(&["sample", &z20, "--count", "100000000", "-o", &png]), "--count 100000000"),
        (strings(&["sample", &z20, "--count", "4", "--scale", "100000", "-o", &png]), "scale 100000"),
        (strings(&["sample", &z20, "--count", "100000", "--scale", "3", "-o", &png]), "limit"),
        (strings(&["sample", &cvae, "--label", "12", "-o", &png]), "12"),
        (strings(&["figure", "manifold", &z2, "--steps", "100000", "-o", &png]), "--steps"),
        (strings(&["figure", "priors", &z20, "--side", "100000", "-o", &png]), "--side"),
        (strings(&["bench", &p("models/mnist-vae-z20/decoder.onnx"), "--batch", "100000000"]), "--batch 100000000"),
        (
            strings(&[
                "score",
                &p("models/mlperf-tiny-ad/ad.int8.tvae"),
                "--data",
                &p("models/mlperf-tiny-ad/normal.npy"),
                "--fpr",
                "7",
            ]),
            "--fpr 7",
        ),
        (
            strings(&["sample", &z20, "--count", "2", "-o", &out.join("missing/x.png").to_string_lossy()]),
            "missing/x.png",
        ),
        (strings(&["quantize", &onnx, "-o", &onnx]), "dec.onnx"),
        // A decoder is not a classifier.
        (strings(&["classify", "--model", &z20, "--data", &p("tests/data/mnist-slice")]), "not a classifier"),
        (strings(&["quantize", &ad_onnx, "-o", &npy, "--data", &npy]), "calib.npy"),
    ];
    let before = (std::fs::read(&onnx).unwrap(), std::fs::read(&npy).unwrap());
    for (args, says) in &cases {
        refused(args, &[says], &out);
    }
    let after = (std::fs::read(&onnx).unwrap(), std::fs::read(&npy).unwrap());
    assert!(after == before, "an output overwrote its input");
    let _ = std::fs::remove_dir_all(&base);
}

/// A write that fails half-way (here a file-size limit of 64 KiB, with SIGXFSZ ignored so that
/// the write returns EFBIG, as a full disk returns ENOSPC): one line naming the output, and no
/// partial file left, neither the output nor its temporary.
#[cfg(unix)]
#[test]
fn a_failed_write_leaves_nothing_behind() {
    use std::os::unix::process::CommandExt;
    let base = scratch("fsize");
    let out = base.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let blob = out.join("q.tvae");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinyvae"));
    cmd.args(["quantize", &root().join("models/mnist-vae-z20/decoder.onnx").to_string_lossy(), "-o"]).arg(&blob);
    // SAFETY: between fork and exec only async-signal-safe calls (setrlimit, signal).
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 64 * 1024, rlim_max: 64 * 1024 };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let r = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&r.stderr).trim().to_string();
    assert_eq!(r.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("q.tvae") && err.contains("File too large"), "{err}");
    assert_eq!(files_under(&out), Vec::<PathBuf>::new(), "a partial file was left");
    let _ = std::fs::remove_dir_all(&base);
}
