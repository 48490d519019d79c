//! `tinyvae sample BLOB.tvae --count N --seed S -o grid.png [--raw FILE]`: samples run in the
//! runtime (the same code as on a microcontroller), not in the trainer.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tinyvae::{Decoder, Model, Rng};
use tinyvae_data::image::Grid;
use tinyvae_train::aae::Prior;

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
    /// Label for conditional decoders (0..classes); with --mixture, the mixture component.
    /// Without it, sample i of a conditional decoder gets label i mod classes (so a grid with
    /// `classes` columns has one label per column).
    #[arg(long)]
    pub label: Option<u32>,
    /// Draw z from the adversarial autoencoder's 2-D mixture prior instead of N(0, I):
    /// COMPONENTS,RADIUS,STD (the lecture's AAE: 10,4,0.5). Sample i comes from component
    /// i mod COMPONENTS (so a grid with COMPONENTS columns has one class per column), or from
    /// component --label.
    #[arg(long, value_parser = parse_mixture)]
    pub mixture: Option<Prior>,
    /// Where z comes from: `auto` (the blob's stored prior when it has one, written by
    /// `tinyvae fit-prior`, else N(0, I)), `stored` (the stored prior; an error without one),
    /// or `standard` (N(0, I)).
    #[arg(long, default_value = "auto", value_parser = ["auto", "stored", "standard"])]
    pub prior: String,
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
    let decoder = match a.prior.as_str() {
        "standard" => decoder.with_standard_prior(),
        "stored" if model.prior().is_none() => {
            bail!(
                "{}: --prior stored, but the blob stores no prior (add one with `tinyvae fit-prior`)",
                a.blob.display()
            )
        }
        _ => decoder,
    };
    if a.mixture.is_some() && decoder.prior().is_some() && a.prior != "standard" {
        bail!(
            "{}: the blob stores a prior; --mixture would replace it (add --prior standard to mean that)",
            a.blob.display()
        );
    }
    let n = decoder.output_len();
    let mut arena = vec![0u8; model.arena_size()];
    // An absurd --count is an error, not an allocation abort.
    let total = a.count.checked_mul(n).with_context(|| format!("--count {} is too large", a.count))?;
    let mut pixels = Vec::new();
    pixels.try_reserve_exact(total).map_err(|_| {
        anyhow::anyhow!(
            "--count {}: {} samples of {n} pixels need {total} bytes, more than this machine can allocate",
            a.count,
            a.count
        )
    })?;
    pixels.resize(total, 0);
    let mut rng = Rng::new(a.seed);
    if let Some(prior @ Prior::Mixture { components, .. }) = a.mixture {
        if decoder.latent_dim() != 2 || decoder.classes() != 0 {
            bail!(
                "{}: --mixture needs an unconditional decoder with a 2-D latent space (this one: z of {}, {} classes)",
                a.blob.display(),
                decoder.latent_dim(),
                decoder.classes()
            );
        }
        if a.label.is_some_and(|l| l as usize >= components) {
            bail!("--label {} is not a component of the {components}-component mixture", a.label.unwrap_or(0));
        }
        let mut z = [0f32; 2];
        for (i, out) in pixels.chunks_exact_mut(n).enumerate() {
            prior.sample(Some(a.label.map_or(i % components, |l| l as usize)), &mut rng, &mut z);
            decoder.decode(&z, &mut arena, out).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
        }
    } else {
        let classes = decoder.classes() as u32;
        for (i, out) in pixels.chunks_exact_mut(n).enumerate() {
            match a.label {
                Some(l) => decoder.sample_conditional(&mut rng, l, &mut arena, out),
                None if classes > 0 => decoder.sample_conditional(&mut rng, i as u32 % classes, &mut arena, out),
                None => decoder.sample(&mut rng, &mut arena, out),
            }
            .map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
        }
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
        let from = match (&a.mixture, decoder.prior()) {
            (Some(_), _) => "the --mixture prior".to_string(),
            (None, Some(p)) => format!("the stored {}-component prior", p.components()),
            (None, None) => "N(0, I)".to_string(),
        };
        println!(
            "wrote {} samples ({} {}, z from {from}, seed {}) to {}",
            a.count,
            model.precision(),
            model.kind(),
            a.seed,
            png.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `COMPONENTS,RADIUS,STD` of a 2-D mixture prior.
fn parse_mixture(s: &str) -> Result<Prior, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [k, r, sd] = parts[..] else {
        return Err(format!("expected COMPONENTS,RADIUS,STD (e.g. 10,4,0.5), got `{s}`"));
    };
    let components: usize = k.parse().map_err(|_| format!("bad component count `{k}`"))?;
    let radius: f32 = r.parse().map_err(|_| format!("bad radius `{r}`"))?;
    let std: f32 = sd.parse().map_err(|_| format!("bad standard deviation `{sd}`"))?;
    if components == 0 || !radius.is_finite() || !(std.is_finite() && std > 0.0) {
        return Err(format!("the mixture needs components >= 1, a finite radius and std > 0, got `{s}`"));
    }
    Ok(Prior::Mixture { components, radius, std })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixture_parses_and_rejects_nonsense() {
        assert_eq!(parse_mixture("10,4,0.5"), Ok(Prior::Mixture { components: 10, radius: 4.0, std: 0.5 }));
        for bad in ["10,4", "0,4,0.5", "10,4,0", "10,x,0.5", "10,4,-1", "10,4,0.5,1"] {
            assert!(parse_mixture(bad).is_err(), "{bad}");
        }
    }
}
