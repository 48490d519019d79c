//! The semi-supervised table of Kingma et al. 2014 (Table 1), measured: M2 trained with 100,
//! 600, 1000 and 3000 balanced labels (the rest of the training images unlabelled), test
//! error on the test split as mean ± standard deviation over seeds, next to the paper's M2,
//! M1+M2 and NN figures, and next to our own supervised-only baseline (the same q(y|x) network
//! trained on the labelled images alone, with the same shifts) so the gain from the
//! unlabelled images is measured rather than assumed.
//!
//! Each run gets its own directory (`n<labels>-seed<seed>/`: the M2 model, its log and
//! optionally ONNX); `table.json` and `table.md` are rewritten atomically after every run, so
//! a long evaluation can be watched and a crash loses at most the run in progress.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tinyvae_data::idx::Split;

use crate::classifier::{train_classifier_on, ClassifierConfig, LabelledImages};
use crate::error::TrainError;
use crate::io::{create_dir, write_bytes, write_json};
use crate::m2::{self, M2Config, SslData};

/// One row of the paper's Table 1 (test error, %): labels, NN, M2 (mean, std), M1+M2 (mean, std).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PaperRow {
    /// Labelled images.
    pub labelled: usize,
    /// Supervised neural network on the labelled images only.
    pub nn: f64,
    /// M2 mean.
    pub m2: f64,
    /// M2 standard deviation.
    pub m2_std: f64,
    /// M1+M2 mean.
    pub m1_m2: f64,
    /// M1+M2 standard deviation.
    pub m1_m2_std: f64,
}

/// Kingma et al. 2014, Table 1 (MNIST with 50,000 training images, N of them labelled).
pub const PAPER: [PaperRow; 4] = [
    PaperRow { labelled: 100, nn: 25.81, m2: 11.97, m2_std: 1.71, m1_m2: 3.33, m1_m2_std: 0.14 },
    PaperRow { labelled: 600, nn: 11.44, m2: 4.94, m2_std: 0.13, m1_m2: 2.59, m1_m2_std: 0.05 },
    PaperRow { labelled: 1000, nn: 10.7, m2: 3.60, m2_std: 0.56, m1_m2: 2.40, m1_m2_std: 0.02 },
    PaperRow { labelled: 3000, nn: 6.04, m2: 3.92, m2_std: 0.63, m1_m2: 2.18, m1_m2_std: 0.04 },
];

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SslEvalConfig {
    /// The M2 recipe; `labelled`, `seed`, `out_dir` and `log_path` are set per run.
    pub m2: M2Config,
    /// Labelled-image counts (each a multiple of the class count).
    pub label_counts: Vec<usize>,
    /// Seeds; each draws its own labelled subset and initialisation.
    pub seeds: Vec<u64>,
    /// Where the table and the runs go.
    pub out_dir: PathBuf,
    /// The supervised-only baseline's recipe (its data fields are not consulted), or `None`
    /// to skip it.
    pub baseline: Option<ClassifierConfig>,
    /// Adam steps of the baseline (its epochs are derived from the labelled count).
    pub baseline_steps: usize,
    /// Keep the runs that an interrupted evaluation into the same folder, with the same
    /// settings, finished (`out_dir/table.json`), and run only the others. A run is
    /// deterministic given its seed, so the table ends as an uninterrupted one would (wall-clock
    /// seconds aside). Not part of the recorded settings.
    #[serde(skip)]
    pub resume: bool,
}

impl SslEvalConfig {
    /// The paper's label counts and three seeds with the given M2 recipe, writing into `out_dir`.
    pub fn new(m2: M2Config, out_dir: impl Into<PathBuf>) -> Self {
        let baseline = ClassifierConfig {
            hidden: m2.classifier_hidden.clone(),
            translate_px: m2.translate_px,
            translate_prob: m2.translate_prob,
            ..ClassifierConfig::default()
        };
        SslEvalConfig {
            m2,
            label_counts: PAPER.iter().map(|r| r.labelled).collect(),
            seeds: vec![0, 1, 2],
            out_dir: out_dir.into(),
            baseline: Some(baseline),
            baseline_steps: 3000,
            resume: false,
        }
    }

    /// Checks the values, naming the bad field.
    pub fn validate(&self) -> Result<(), TrainError> {
        if self.label_counts.is_empty() || self.seeds.is_empty() {
            return Err(TrainError::Config("eval-ssl: give at least one label count and one seed".into()));
        }
        for &n in &self.label_counts {
            M2Config { labelled: n, ..self.m2.clone() }.validate()?;
        }
        if let Some(b) = &self.baseline {
            b.validate()?;
            if self.baseline_steps == 0 {
                return Err(TrainError::Config("eval-ssl: baseline_steps must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// One trained and evaluated model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SslRun {
    /// Labelled images.
    pub labelled: usize,
    /// Unlabelled images.
    pub unlabelled: usize,
    /// Seed.
    pub seed: u64,
    /// M2's test error (%).
    pub test_error: f64,
    /// M2's validation error (%), when images were held out.
    pub validation_error: Option<f64>,
    /// The supervised-only baseline's test error (%).
    pub baseline_test_error: Option<f64>,
    /// Steps of M2 training.
    pub steps: usize,
    /// Wall-clock seconds (M2 and baseline).
    pub seconds: f64,
    /// The run's directory.
    pub dir: PathBuf,
}

/// Mean and standard deviation of a label count's runs, with the paper's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SslRow {
    /// Labelled images.
    pub labelled: usize,
    /// Seeds done.
    pub seeds: Vec<u64>,
    /// M2 test error mean (%).
    pub mean: f64,
    /// Its sample standard deviation (n - 1; 0 for one run).
    pub std: f64,
    /// Baseline mean (%).
    pub baseline_mean: Option<f64>,
    /// Baseline standard deviation.
    pub baseline_std: Option<f64>,
    /// The paper's row, when it has one for this label count.
    pub paper: Option<PaperRow>,
}

/// The whole evaluation, as written to `table.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SslTable {
    /// False while runs are still pending.
    pub complete: bool,
    /// Training images (labelled + unlabelled) per run.
    pub training_images: usize,
    /// Test images.
    pub test_images: usize,
    /// Per-label-count summaries.
    pub rows: Vec<SslRow>,
    /// Every run.
    pub runs: Vec<SslRun>,
    /// Wall-clock seconds so far.
    pub seconds: f64,
    /// What was run.
    pub config: SslEvalConfig,
}

/// Mean and sample standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Trains and evaluates every (label count, seed) pair in order, calling `on_run` after each
/// and rewriting `table.json` / `table.md` in `cfg.out_dir`.
pub fn eval_ssl(cfg: &SslEvalConfig, mut on_run: impl FnMut(&SslRun, &SslTable)) -> Result<SslTable, TrainError> {
    cfg.validate()?;
    let started = Instant::now();
    create_dir(&cfg.out_dir)?;
    let mut pool = LabelledImages::load(&cfg.m2.data_dir, Split::Train, cfg.m2.train_limit)?;
    let mut test = LabelledImages::load(&cfg.m2.data_dir, Split::Test, cfg.m2.test_limit)?;
    // M1+M2: every model here, the baseline too, learns from M1's codes of the images.
    if let Some(path) = &cfg.m2.m1_encoder {
        let m1 = m2::load_m1(path)?;
        pool = m2::codes_of(&m1, &pool)?;
        test = m2::codes_of(&m1, &test)?;
    }
    let mut table = SslTable {
        complete: false,
        training_images: pool.count() - cfg.m2.validation_images.min(pool.count()),
        test_images: test.count(),
        rows: Vec::new(),
        runs: Vec::new(),
        seconds: 0.0,
        config: cfg.clone(),
    };
    let finished = if cfg.resume { finished_runs(cfg)? } else { Vec::new() };
    // A resumed table's total counts the kept runs' time too, not only this session's.
    let mut kept_seconds = 0.0;
    for &labelled in &cfg.label_counts {
        for &seed in &cfg.seeds {
            if let Some(run) = finished.iter().find(|r| (r.labelled, r.seed) == (labelled, seed)) {
                table.runs.push(run.clone());
                table.rows = summarize(&table.runs);
                kept_seconds += run.seconds;
                on_run(run, &table);
                continue;
            }
            let run_started = Instant::now();
            let dir = cfg.out_dir.join(format!("n{labelled}-seed{seed}"));
            let m2_cfg = M2Config { labelled, seed, out_dir: dir.clone(), log_path: None, ..cfg.m2.clone() };
            let data = SslData::from_pool(&pool, labelled, m2_cfg.validation_images, seed, Some(test.clone()))?;
            let report = m2::train_on(&m2_cfg, &data)?;
            let baseline_test_error = match &cfg.baseline {
                Some(b) => Some(100.0 * baseline(b, cfg.baseline_steps, seed, &data, &test)?),
                None => None,
            };
            let run = SslRun {
                labelled,
                unlabelled: report.unlabelled_images,
                seed,
                test_error: 100.0 * report.test_error.unwrap_or(f64::NAN),
                validation_error: report.validation_error.map(|v| 100.0 * v),
                baseline_test_error,
                steps: report.global_step,
                seconds: run_started.elapsed().as_secs_f64(),
                dir,
            };
            table.runs.push(run.clone());
            table.rows = summarize(&table.runs);
            table.seconds = kept_seconds + started.elapsed().as_secs_f64();
            write_table(&cfg.out_dir, &table)?;
            on_run(&run, &table);
        }
    }
    table.complete = true;
    table.seconds = kept_seconds + started.elapsed().as_secs_f64();
    write_table(&cfg.out_dir, &table)?;
    Ok(table)
}

/// The runs in `out_dir/table.json`, written by an earlier evaluation with the same settings
/// (none when there is no table yet: the earlier one was stopped before its first run ended).
fn finished_runs(cfg: &SslEvalConfig) -> Result<Vec<SslRun>, TrainError> {
    let path = cfg.out_dir.join("table.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::Checkpoint { path, reason: e.to_string() }),
    };
    let earlier: SslTable = serde_json::from_str(&text)
        .map_err(|e| TrainError::Checkpoint { path: path.clone(), reason: e.to_string() })?;
    // Where the folder is named from and whether a bar is drawn do not change the runs.
    let settings = |c: &SslEvalConfig| SslEvalConfig {
        out_dir: PathBuf::new(),
        resume: false,
        m2: M2Config { progress: false, ..c.m2.clone() },
        ..c.clone()
    };
    if settings(&earlier.config) != settings(cfg) {
        return Err(TrainError::Checkpoint {
            path,
            reason: "was written with other settings; --resume needs the same ones (or write to another --out)".into(),
        });
    }
    Ok(earlier.runs)
}

/// Test error of the supervised-only network trained on `data.labelled` for about `steps` steps.
fn baseline(
    recipe: &ClassifierConfig,
    steps: usize,
    seed: u64,
    data: &SslData,
    test: &LabelledImages,
) -> Result<f64, TrainError> {
    let n = data.labelled.count();
    let batch = recipe.batch_size.min(n);
    let cfg = ClassifierConfig {
        batch_size: batch,
        epochs: steps.div_ceil(n.div_ceil(batch)).max(1),
        seed,
        out: None,
        progress: false,
        ..recipe.clone()
    };
    let report = train_classifier_on(&cfg, &data.labelled, None, Some(test))?;
    report.test_error.ok_or_else(|| TrainError::Data("baseline: no test error".into()))
}

/// Groups runs by label count (in first-seen order).
pub fn summarize(runs: &[SslRun]) -> Vec<SslRow> {
    let mut counts: Vec<usize> = Vec::new();
    for r in runs {
        if !counts.contains(&r.labelled) {
            counts.push(r.labelled);
        }
    }
    counts
        .into_iter()
        .map(|labelled| {
            let mine: Vec<&SslRun> = runs.iter().filter(|r| r.labelled == labelled).collect();
            let (mean, std) = mean_std(&mine.iter().map(|r| r.test_error).collect::<Vec<_>>());
            let base: Vec<f64> = mine.iter().filter_map(|r| r.baseline_test_error).collect();
            // A baseline mean only when every run has one: a partial mean would mislead.
            let (baseline_mean, baseline_std) = if !base.is_empty() && base.len() == mine.len() {
                let (m, sd) = mean_std(&base);
                (Some(m), Some(sd))
            } else {
                (None, None)
            };
            SslRow {
                labelled,
                seeds: mine.iter().map(|r| r.seed).collect(),
                mean,
                std,
                baseline_mean,
                baseline_std,
                paper: PAPER.iter().find(|p| p.labelled == labelled).copied(),
            }
        })
        .collect()
}

/// The table as markdown.
pub fn render_markdown(table: &SslTable) -> String {
    let c = &table.config.m2;
    let ours = if c.m1_encoder.is_some() { "M1+M2" } else { "M2" };
    let mut s = String::new();
    s += &format!("# {ours} semi-supervised MNIST: test error (%)\n\n");
    if !table.complete {
        s += "**Partial: runs are still in progress.**\n\n";
    }
    s += &format!(
        "Labelled images are balanced per class and drawn from {} training images; the rest are \
         unlabelled. Test error on {} test images, mean ± sample std over seeds. The paper used \
         50,000 training images.\n\n",
        table.training_images, table.test_images
    );
    if let Some(m1) = &c.m1_encoder {
        s += &format!(
            "M1+M2: M2 and the labelled-only NN learn from the mean codes of M1, the VAE encoder `{}`, \
             with a unit-variance Gaussian p(x|y,z) over them.\n\n",
            m1.display()
        );
    }
    s += &format!(
        "| labels | {ours} (ours) | seeds | NN, labelled only (ours) | M2 (paper) | M1+M2 (paper) | NN (paper) |\n"
    );
    s += "|---:|---:|---|---:|---:|---:|---:|\n";
    for r in &table.rows {
        let seeds = r.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
        let base = match (r.baseline_mean, r.baseline_std) {
            (Some(m), Some(sd)) => format!("{m:.2} ± {sd:.2}"),
            _ => "–".into(),
        };
        let (pm2, pm1m2, pnn) = match r.paper {
            Some(p) => (
                format!("{:.2} ± {:.2}", p.m2, p.m2_std),
                format!("{:.2} ± {:.2}", p.m1_m2, p.m1_m2_std),
                format!("{:.2}", p.nn),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        s += &format!(
            "| {} | **{:.2} ± {:.2}** | {seeds} | {base} | {pm2} | {pm1m2} | {pnn} |\n",
            r.labelled, r.mean, r.std
        );
    }
    s += &format!(
        "\n## Runs\n\n| labels | seed | unlabelled | {ours} test error | validation error | NN baseline | steps | seconds |\n"
    );
    s += "|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for r in &table.runs {
        let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
        s += &format!(
            "| {} | {} | {} | {:.2} | {} | {} | {} | {:.0} |\n",
            r.labelled,
            r.seed,
            r.unlabelled,
            r.test_error,
            opt(r.validation_error),
            opt(r.baseline_test_error),
            r.steps,
            r.seconds
        );
    }
    s += &format!(
        "\n## Recipe\n\nM2: q(y|x) {}-{:?}-10, q(z|x,y) and p(x|y,z) with hidden {:?} / {:?}, z = {}; \
         {} epochs over the unlabelled images, {} unlabelled + {} labelled images per step, Adam lr {} ({:?}), \
         alpha = {} (x N), labelled share {}, KL warm-up {} epochs{}, shifts ±{} px (p = {}), q(y|x) dropout {}, \
         EMA {:?}. Fixed epoch count: no model selection on the test split. Total {:.0} s.\n",
        {
            // M1+M2's M2 reads M1's code instead of the 784 pixels.
            let input = if c.m1_encoder.is_some() { "code" } else { "784" };
            if c.shared_trunk {
                format!("{input}-{:?} (shared first encoder layer)", c.encoder_hidden.first().unwrap_or(&0))
            } else {
                input.to_string()
            }
        },
        c.classifier_hidden,
        c.encoder_hidden,
        c.decoder_hidden,
        c.latent,
        c.epochs,
        c.batch_size,
        c.labelled_batch_size,
        c.lr,
        c.lr_schedule,
        c.alpha,
        c.labelled_share.map_or("N_l/N (unbiased)".to_string(), |v| v.to_string()),
        c.kl_warmup_epochs,
        // Only when it is not the ELBO's 1, so that earlier tables render as they were.
        if c.kl_weight == 1.0 { String::new() } else { format!(", KL weight {}", c.kl_weight) },
        c.translate_px,
        c.translate_prob,
        c.classifier_dropout,
        c.ema_decay,
        table.seconds
    );
    s
}

fn write_table(dir: &Path, table: &SslTable) -> Result<(), TrainError> {
    write_json(&dir.join("table.json"), table)?;
    write_bytes(&dir.join("table.md"), render_markdown(table).as_bytes())
}
