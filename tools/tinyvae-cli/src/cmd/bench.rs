//! `tinyvae bench MODEL.onnx`: quantizes in memory and prints per-sample latency of the
//! runtime at int8, f16 and f32 against tract f32 on the same ONNX, at batch 1 and 64.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::quantize::RoleArgs;

/// Largest batch timed: 4096 samples of a 784-pixel model's inputs and outputs already leave
/// every cache, so larger ones only measure memory.
const MAX_BATCH: usize = 4096;
#[derive(clap::Args, Debug)]
pub struct Args {
    /// ONNX encoder or decoder.
    pub model: PathBuf,
    /// Batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub batch: Vec<usize>,
    /// Time spent per engine and batch size, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub time_ms: u64,
    #[command(flatten)]
    pub data: super::quantize::DataArgs,
    #[command(flatten)]
    pub role: RoleArgs,
    /// Print the table as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if let Some(&b) = a.batch.iter().find(|&&b| b == 0 || b > MAX_BATCH) {
        anyhow::bail!("--batch {b}: batch sizes must be in 1..={MAX_BATCH}");
    }
    let graph = a.role.load(&a.model)?;
    let timings =
        tinyvae_compiler::bench::compare(&a.model, &graph, a.data.data(), &a.batch, Duration::from_millis(a.time_ms))
            .with_context(|| format!("cannot benchmark {}", a.model.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&timings)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: per-sample latency, one thread, median of 31 groups (p10..p90)", a.model.display());
    let width = timings.iter().map(|t| t.engine.len()).max().unwrap_or(0).max(6);
    println!("{:<width$} {:>5} {:>11} {:>20} {:>13}", "engine", "batch", "us/sample", "p10..p90", "vs tract f32");
    for t in &timings {
        println!(
            "{:<width$} {:>5} {:>11.3} {:>20} {:>12.2}x",
            t.engine,
            t.batch,
            t.us_per_sample,
            format!("{:.3}..{:.3}", t.p10_p90.0, t.p10_p90.1),
            t.speedup_vs_tract
        );
    }
    // The ratios the runtime is judged by, from the rows above.
    let find = |name: &str, batch: usize| timings.iter().find(|t| t.engine == name && t.batch == batch);
    let best_int8 = format!("runtime int8 ({})", tinyvae::kernels::best().name);
    if let (Some(floor), Some(int8)) = (find(tinyvae_compiler::bench::FLOOR_ENGINE, 1), find(&best_int8, 1)) {
        println!(
            "batch 1: {best_int8} takes {:.2}x the weight-stream floor (the memory-bound limit)",
            int8.us_per_sample / floor.us_per_sample
        );
    }
    Ok(ExitCode::SUCCESS)
}
