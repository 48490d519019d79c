//! `tinyvae sample BLOB.tvae --count N --seed S -o grid.png [--raw FILE]`: samples run in the
//! runtime (the same code as on a microcontroller), not in the trainer.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use tinyvae::{Decoder, Model, Rng};
use tinyvae_compiler::image::Grid;

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Decoder blob.
    pub blob: PathBuf,
    /// Number of samples.
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Seed of the runtime's PRNG; sample i continues the stream of sample i - 1.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Label for conditional decoders (0..classes).
    #[arg(long)]
    pub label: Option<u32>,
    /// PNG grid to write.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Also write count x pixels raw bytes (uint8, row-major).
    #[arg(long)]
    pub raw: Option<PathBuf>,
    /// Grid columns (default: square-ish).
    #[arg(long)]
    pub cols: Option<usize>,
    /// Upscaling of the PNG.
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
}

pub fn run(a: Args) -> Result<ExitCode> {
    if a.output.is_none() && a.raw.is_none() {
        bail!("nothing to write: give -o GRID.png and/or --raw FILE");
    }
    for out in a.output.iter().chain(&a.raw) {
        util::check_not_input(out, &[&a.blob])?;
    }
    if a.count == 0 || a.scale == 0 {
        bail!("--count and --scale must be at least 1");
    }
    let bytes = util::read_blob(&a.blob)?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let decoder = Decoder::new(&model).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let n = decoder.output_len();
    let mut arena = vec![0u8; model.arena_size()];
    let mut pixels = vec![0u8; a.count * n];
    let mut rng = Rng::new(a.seed);
    for out in pixels.chunks_exact_mut(n) {
        match a.label {
            Some(l) => decoder.sample_conditional(&mut rng, l, &mut arena, out),
            None => decoder.sample(&mut rng, &mut arena, out),
        }
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    }
    if let Some(raw) = &a.raw {
        util::write(raw, &pixels)?;
        println!("wrote {} x {n} pixels to {}", a.count, raw.display());
    }
    if let Some(png) = &a.output {
        let meta = model.meta();
        let (w, h) = if meta.width * meta.height == n { (meta.width, meta.height) } else { (n, 1) };
        let cols = a.cols.unwrap_or_else(|| (a.count as f64).sqrt().ceil() as usize).max(1);
        Grid { images: &pixels, w, h, cols, pad: 1, scale: a.scale }
            .write_png(png)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", png.display()))?;
        println!(
            "wrote {} samples ({} {}, seed {}) to {}",
            a.count,
            model.precision(),
            model.kind(),
            a.seed,
            png.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
