//! Crash safety of `tinyvae train` (issue 14), through the built binary: a run killed with
//! SIGKILL at random points and resumed with `--resume` ends with the same bytes as an
//! uninterrupted run (weights, best-validation weights, ONNX files, log); after every kill the
//! folder holds only complete files, so the latest checkpoint always loads; a folder killed
//! before its first checkpoint is refused by `--resume` with a clear error and starts again;
//! and a loss that stops being finite ends the run with an error naming the step, leaving the
//! last good checkpoint as it was.
//!
//! The kill points are a fixed, seeded list: a step the run must have checkpointed, then a
//! jitter of up to one and a half epochs' time, spread over the whole run. Exactly where each
//! kill lands still depends on the machine, but every landing point must end bit-identical.
//! Checkpoints are written at the end of every epoch (4 steps here), each with an fsync, so
//! many kills land in the middle of a write.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tinyvae_train::engine::{load_member, load_run};
use tinyvae_train::Vae;

/// Epochs of the kill/resume runs: 64 training images in batches of 16, so 4 steps and one
/// checkpoint per epoch, 160 steps in all.
const EPOCHS: usize = 40;
const STEPS_PER_EPOCH: usize = 4;

/// Kill/resume cases (each one kill, some two or three).
const CASES: usize = 24;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tinyvae-crash-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tiny VAE with everything that carries state across a resume switched on: translation
/// augmentation and the VAE's noise (the step's random stream), the weight average (`ema/*`
/// tensors), Adam's moments, a held-out validation set (`best.*`, model selection) and test
/// evaluations every 10 epochs.
fn train_args(out: &Path, epochs: usize, extra: &[&str]) -> Vec<String> {
    let data = data_dir();
    let mut args: Vec<String> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--latent",
        "4",
        "--hidden",
        "16",
        "--train-limit",
        "96",
        "--validation-images",
        "32",
        "--test-limit",
        "32",
        "--batch-size",
        "16",
        "--seed",
        "11",
        "--ema",
        "0.9",
        "--translate",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(["--epochs".to_string(), epochs.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn resume_args(out: &Path, epochs: usize, extra: &[&str]) -> Vec<String> {
    let mut args = train_args(out, epochs, extra);
    args.extend(["--resume".to_string(), out.to_str().unwrap().to_string()]);
    args
}

fn tinyvae(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinyvae")).args(args).output().expect("run tinyvae")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(args: &[String]) -> String {
    let out = tinyvae(args);
    let t = text(&out);
    assert!(out.status.success(), "tinyvae {args:?} failed:\n{t}");
    t
}

fn spawn(args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tinyvae"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tinyvae")
}

/// True when the process died of the kill (SIGKILL) rather than finishing first.
fn was_killed(status: ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(9)
    }
    #[cfg(not(unix))]
    {
        !status.success()
    }
}

/// FNV-1a, 64 bits: a short fingerprint of a file for the messages (equality is checked on the
/// bytes).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// SplitMix64: the seeded source of the kill delays.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The global step of the checkpoint in `dir` (0 without one).
fn checkpoint_step(dir: &Path) -> usize {
    std::fs::read(dir.join("checkpoint.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["global_step"].as_u64())
        .unwrap_or(0) as usize
}

/// Starts `args`, waits until the checkpoint in `dir` is at `target` steps or more (or the run
/// ends), then `jitter`, and kills it: its exit status and when the kill was sent.
fn kill_after(args: &[String], dir: &Path, target: usize, jitter: Duration) -> (ExitStatus, Duration) {
    let mut child = spawn(args);
    let started = Instant::now();
    while target > 0 && checkpoint_step(dir) < target && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(jitter);
    let at = started.elapsed();
    child.kill().expect("kill tinyvae");
    (child.wait().unwrap(), at)
}

/// What a finished run leaves that must not depend on how it got there.
#[derive(PartialEq)]
struct Outputs {
    files: Vec<(&'static str, Vec<u8>)>,
    /// The log records without their wall-clock seconds.
    log: Vec<serde_json::Value>,
}

impl Outputs {
    fn read(dir: &Path) -> Self {
        let files = ["model.safetensors", "best.safetensors", "encoder.onnx", "decoder.onnx"]
            .into_iter()
            .map(|name| {
                (name, std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display())))
            })
            .collect();
        let log = std::fs::read_to_string(dir.join("train_log.jsonl"))
            .unwrap()
            .lines()
            .map(|line| {
                let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
                v.as_object_mut().unwrap().remove("elapsed_seconds");
                v
            })
            .collect();
        Outputs { files, log }
    }

    fn describe(&self) -> String {
        let hashes: Vec<String> = self.files.iter().map(|(n, b)| format!("{n} {:016x}", fnv(b))).collect();
        format!("{} ({} log records)", hashes.join(", "), self.log.len())
    }
}

/// The state a kill left in `dir`.
#[derive(Debug)]
struct AfterKill {
    /// Global step of the checkpoint that `--resume` will load, if any.
    checkpoint_step: Option<usize>,
    /// The kill landed in the middle of saving a checkpoint or model file: a temporary file of
    /// the atomic writer was left, or a checkpoint's tensors other than those the sidecar names.
    mid_write: bool,
    /// The kill landed between a checkpoint and the log record written after it.
    log_behind: bool,
}

/// Checks that a killed run left only complete files: every name is one the trainer writes (or
/// a temporary file of its atomic writer), the checkpoint `checkpoint.json` names loads with its
/// optimiser state, the model files load, and the log is whole JSON lines that trail the
/// checkpoint by at most the one record written after it.
fn check_folder(dir: &Path) -> AfterKill {
    let mut mid_write = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let known = matches!(
            name.as_str(),
            "checkpoint.json"
                | "best.json"
                | "best.safetensors"
                | "model.json"
                | "model.safetensors"
                | "train_log.jsonl"
                | "encoder.onnx"
                | "decoder.onnx"
        ) || (name.starts_with("checkpoint-") && name.ends_with(".safetensors"));
        if name.starts_with(".tinyvae-") && name.ends_with(".tmp") {
            mid_write = true;
        } else {
            assert!(known, "{}: unexpected file {name}", dir.display());
        }
    }
    let log_lines = std::fs::read_to_string(dir.join("train_log.jsonl")).ok().map(|log| {
        for line in log.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("log line {line:?}: {e}"));
        }
        log.lines().count()
    });
    let mut log_behind = false;
    let checkpoint_step = if dir.join("checkpoint.json").is_file() {
        let run = load_run::<Vae>(dir)
            .unwrap_or_else(|e| panic!("{}: the latest checkpoint does not load: {e}", dir.display()));
        let step = run.info.global_step;
        assert!(
            step > 0 && step <= EPOCHS * STEPS_PER_EPOCH && step.is_multiple_of(STEPS_PER_EPOCH),
            "checkpoint at step {step}"
        );
        assert_eq!(run.info.step_in_epoch, 0);
        assert_eq!(run.info.history.len(), step / STEPS_PER_EPOCH);
        let records = run.info.history.len();
        mid_write |= std::fs::read_dir(dir).unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("checkpoint-") && name != run.info.weights_file
        });
        let lines = log_lines.unwrap_or(0);
        assert!(lines == records || lines + 1 == records, "log of {lines} records beside a checkpoint of {records}");
        log_behind = lines < records;
        Some(step)
    } else {
        assert_eq!(log_lines, None, "a log without a checkpoint");
        None
    };
    for name in ["best.json", "model.json"] {
        if dir.join(name).is_file() {
            load_member::<Vae>(&dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()));
        }
    }
    AfterKill { checkpoint_step, mid_write, log_behind }
}

/// Runs the training in `dir` to its end: `--resume` when a checkpoint is there, else (after
/// checking that `--resume` refuses the folder with a clear error) from the beginning.
fn finish(dir: &Path) {
    if dir.join("checkpoint.json").is_file() {
        ok(&resume_args(dir, EPOCHS, &[]));
    } else {
        let refused = tinyvae(&resume_args(dir, EPOCHS, &[]));
        let t = text(&refused);
        assert_eq!(refused.status.code(), Some(1), "{t}");
        assert!(t.contains("no checkpoint.json in this directory, nothing to resume"), "{t}");
        assert_eq!(t.lines().count(), 1, "one line: {t}");
        ok(&train_args(dir, EPOCHS, &[]));
    }
}

#[test]
fn killed_anywhere_and_resumed_ends_bit_identical() {
    let started = Instant::now();
    let reference_dir = scratch("reference");
    let t0 = Instant::now();
    ok(&train_args(&reference_dir, EPOCHS, &[]));
    let run_time = t0.elapsed();
    let reference = Outputs::read(&reference_dir);
    assert_eq!(reference.log.len(), EPOCHS);

    // The kill plan, seeded: each kill waits until the run has checkpointed a target step (0:
    // none), then a jitter of up to one and a half epochs' time, so that kills land anywhere
    // between and inside checkpoint writes whatever the machine's speed. The first kills'
    // targets are stratified over the run, except that two cases are killed 1 and 8 ms after
    // the start, before any checkpoint, and two after the last checkpoint (while the log, the
    // final model and the ONNX files are written). Every fourth case is killed again while resuming and
    // the last one three times, each at a seeded fraction of what the resumed run has left.
    let total_steps = EPOCHS * STEPS_PER_EPOCH;
    let epoch_time = run_time / EPOCHS as u32;
    let mut rng = SplitMix(14);
    let plan: Vec<Vec<(f64, Duration)>> = (0..CASES)
        .map(|case| {
            let first = match case {
                0 => (0.0, Duration::from_millis(1)),
                1 => (0.0, Duration::from_millis(8)),
                c if c == CASES - 3 => (1.0, Duration::from_micros((20_000.0 * rng.unit()) as u64)),
                c if c == CASES - 2 => (1.0, Duration::from_micros((2_000.0 * rng.unit()) as u64)),
                _ => (((case - 2) as f64 + rng.unit()) / (CASES - 2) as f64, epoch_time.mul_f64(1.5 * rng.unit())),
            };
            let again = if case == CASES - 1 {
                2
            } else if case % 4 == 3 {
                1
            } else {
                0
            };
            let mut kills = vec![first];
            kills.extend((0..again).map(|_| (rng.unit(), epoch_time.mul_f64(1.5 * rng.unit()))));
            kills
        })
        .collect();

    let (mut kills, mut before_first, mut mid_run, mut mid_write, mut finished_first) = (0, 0, 0, 0, 0);
    let mut landed = Vec::new();
    for (case, case_kills) in plan.iter().enumerate() {
        let dir = scratch(&format!("kill{case}"));
        let mut trail = Vec::new();
        let mut step = 0;
        for &(fraction, jitter) in case_kills {
            // A step at an epoch's end between the checkpoint there is and the run's end.
            let left = (total_steps - step) / STEPS_PER_EPOCH;
            let target = step + (fraction * left as f64) as usize * STEPS_PER_EPOCH;
            let args = if dir.join("checkpoint.json").is_file() {
                resume_args(&dir, EPOCHS, &[])
            } else {
                train_args(&dir, EPOCHS, &[])
            };
            let (status, at) = kill_after(&args, &dir, target, jitter);
            let after = check_folder(&dir);
            kills += 1;
            if !was_killed(status) {
                assert!(status.success(), "case {case}: {status}");
                finished_first += 1;
            } else {
                match after.checkpoint_step {
                    None => before_first += 1,
                    Some(s) if s < total_steps => mid_run += 1,
                    Some(_) => {}
                }
                mid_write += after.mid_write as usize;
            }
            if let Some(s) = after.checkpoint_step {
                landed.push(s);
                step = s;
            }
            trail.push(format!(
                "after step {target} + {} ms (at {} ms) -> {}{}{}{}",
                jitter.as_millis(),
                at.as_millis(),
                after.checkpoint_step.map_or("no checkpoint".to_string(), |s| format!("checkpoint at step {s}")),
                if after.mid_write { ", mid-write" } else { "" },
                if after.log_behind { ", log a record behind" } else { "" },
                if was_killed(status) { "" } else { ", had finished" }
            ));
        }
        finish(&dir);
        let got = Outputs::read(&dir);
        assert!(
            got == reference,
            "case {case} ({}): {}\nuninterrupted: {}",
            trail.join("; "),
            got.describe(),
            reference.describe()
        );
        eprintln!("case {case:2}: {} => identical", trail.join("; "));
        let _ = std::fs::remove_dir_all(&dir);
    }
    landed.sort_unstable();
    landed.dedup();
    eprintln!(
        "{kills} kills in {CASES} runs: {before_first} before the first checkpoint, {mid_run} mid-run, \
         {mid_write} in the middle of a write, {finished_first} after the run had finished; {} distinct \
         checkpoint steps; every run ended identical to the uninterrupted one ({}; one run {:.2} s, all {:.1} s)",
        landed.len(),
        reference.describe(),
        run_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(kills - finished_first >= 20, "only {} kills stopped a running training", kills - finished_first);
    assert!(before_first >= 1, "no kill landed before the first checkpoint");
    assert!(mid_run >= 10, "only {mid_run} kills landed between checkpoints");
    let _ = std::fs::remove_dir_all(&reference_dir);
}

#[test]
fn divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint() {
    // 12 epochs uninterrupted; the same run stopped after 6 epochs (a checkpoint at step 24).
    let epochs = 12;
    let reference_dir = scratch("nan-reference");
    ok(&train_args(&reference_dir, epochs, &[]));
    let dir = scratch("nan");
    ok(&train_args(&dir, epochs, &["--max-steps", "24"]));
    let snapshot = |dir: &Path| {
        ["checkpoint.json", "checkpoint-00000024.safetensors", "train_log.jsonl", "best.json", "best.safetensors"]
            .map(|name| std::fs::read(dir.join(name)).unwrap())
    };
    let before = snapshot(&dir);

    // Resumed with a learning rate that blows the weights up: the next step's loss is not
    // finite, the run stops with one line naming where, and nothing on disk changes.
    let out = tinyvae(&resume_args(&dir, epochs, &["--lr", "1e12"]));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.starts_with("error: training diverged at epoch 7, step "), "{t}");
    assert!(t.contains("the loss is") && t.contains("try a smaller learning rate"), "{t}");
    assert_eq!(t.lines().count(), 1, "{t}");
    assert!(snapshot(&dir) == before, "the last good checkpoint, log or best model changed");
    assert_eq!(load_run::<Vae>(&dir).unwrap().info.global_step, 24);

    // That checkpoint is good: resumed with the run's own learning rate, it ends exactly where
    // the uninterrupted run did.
    ok(&resume_args(&dir, epochs, &[]));
    assert!(
        std::fs::read(dir.join("model.safetensors")).unwrap()
            == std::fs::read(reference_dir.join("model.safetensors")).unwrap(),
        "resumed after the divergence, the weights differ from the uninterrupted run's"
    );

    // A held-out evaluation that stops being finite while the training loss still is (here
    // the validation negative ELBO overflows after one epoch at lr 1): JSON has no infinity,
    // so such a number must stop the run before it reaches best.json or a checkpoint, never
    // leave a file that does not read back.
    let eval_dir = scratch("nan-eval");
    let data = data_dir();
    let args: Vec<String> = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        eval_dir.to_str().unwrap(),
        "--latent",
        "4",
        "--hidden",
        "16",
        "--train-limit",
        "96",
        "--validation-images",
        "32",
        "--test-limit",
        "32",
        "--test-every",
        "1",
        "--batch-size",
        "16",
        "--epochs",
        "6",
        "--seed",
        "4",
        "--lr",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tinyvae(&args);
    let t = text(&out);
    assert!(!t.contains("JSON"), "{t}");
    eprintln!("diverging evaluation: {}", t.lines().next().unwrap_or(""));
    check_folder(&eval_dir);

    for d in [reference_dir, dir, eval_dir] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// `tinyvae eval-ssl` killed at random points and continued with `--resume` ends with the same
/// table as an uninterrupted evaluation: the runs its table recorded are kept, the one the
/// kill interrupted runs again from its seed, and the rest run as before. Only the wall-clock
/// seconds may differ. A resume with other settings is refused, naming the table.
#[test]
fn eval_ssl_killed_anywhere_and_resumed_ends_with_the_same_table() {
    let base = scratch("eval-ssl");
    let args = |out: &Path, extra: &[&str]| -> Vec<String> {
        let data = data_dir();
        let mut a: Vec<String> = [
            "eval-ssl",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--labels",
            "10,20",
            "--seeds",
            "0,1",
            "--latent",
            "4",
            "--hidden",
            "16",
            "--train-limit",
            "96",
            "--test-limit",
            "40",
            "--max-steps",
            "12",
            "--batch-size",
            "16",
            "--labelled-batch-size",
            "10",
            "--baseline-steps",
            "6",
            "--test-every",
            "0",
            "--quiet",
        ]
        .map(String::from)
        .to_vec();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    // The runs of a table, without their wall-clock seconds and folders.
    let runs = |dir: &Path| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(dir.join("table.json")).unwrap();
        let table: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(table["complete"], serde_json::Value::Bool(true), "{}", dir.display());
        let mut runs = table["runs"].as_array().unwrap().clone();
        for r in &mut runs {
            let r = r.as_object_mut().unwrap();
            r.remove("seconds");
            r.remove("dir");
        }
        runs
    };
    let clean = base.join("clean");
    let started = Instant::now();
    ok(&args(&clean, &[]));
    let whole = started.elapsed();
    let want = runs(&clean);
    assert_eq!(want.len(), 4);

    // Kill points spread over the whole evaluation (a seeded list), each resumed until done.
    let mut state = 0x5eed_u64;
    let mut landed = Vec::new();
    for case in 0..6 {
        let dir = base.join(format!("killed-{case}"));
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = whole.mul_f64((state >> 11) as f64 / (1u64 << 53) as f64);
        let (status, _) = kill_after(&args(&dir, &[]), &dir, 0, at);
        let kept = std::fs::read_to_string(dir.join("table.json"))
            .map(|t| serde_json::from_str::<serde_json::Value>(&t).unwrap()["runs"].as_array().unwrap().len())
            .unwrap_or(0);
        landed.push((was_killed(status), kept));
        ok(&args(&dir, &["--resume"]));
        assert_eq!(runs(&dir), want, "case {case}: killed after {at:?} with {kept} runs recorded");
    }
    eprintln!("eval-ssl kills (killed, runs recorded): {landed:?}; uninterrupted {whole:?}");
    assert!(landed.iter().any(|&(killed, _)| killed), "no kill landed before the end: {landed:?}");

    // Other settings: refused, naming the table, which stays as it was.
    let table = std::fs::read(clean.join("table.json")).unwrap();
    let mut other = args(&clean, &["--resume"]);
    let at = other.iter().position(|a| a == "12").unwrap();
    other[at] = "13".into();
    let out = tinyvae(&other);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("table.json") && t.contains("other settings"), "{t}");
    assert_eq!(std::fs::read(clean.join("table.json")).unwrap(), table);
    let _ = std::fs::remove_dir_all(&base);
}
