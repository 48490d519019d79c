//! `tinyvae figure ...`: the lecture's figures, drawn from quantized blobs in the runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::figures;
use anyhow::{bail, Result};
use tinyvae::{Decoder, Model};
use tinyvae_data::corrupt::Corruption;
use tinyvae_data::image::Grid;

use crate::util;

/// Most grid points per axis of a manifold: 200 x 200 decodes, a 5,600-pixel-wide picture.
const MAX_MANIFOLD_STEPS: usize = 200;
#[derive(clap::Subcommand, Debug)]
pub enum Figure {
    /// The 2-D latent manifold of a z = 2 decoder: a grid of z over the prior's quantiles.
    Manifold(ManifoldArgs),
    /// Test images and their reconstructions through encoder/decoder blob pairs (e.g. z = 2, 5, 20).
    Reconstructions(ReconstructionArgs),
    /// CVAE analogies: a real digit's style (z from q(z|x,y)) held fixed while the label runs 0..9.
    Analogies(AnalogyArgs),
    /// Denoising: corrupted test images, the denoising autoencoder's outputs, the clean images.
    Denoising(DenoisingArgs),
    /// The 2-D codes of test images (from an encoder blob), one colour per label (RGB PNG).
    Latent(LatentArgs),
    /// Prior samples side by side: z ~ N(0, I) on the left, z from the blob's stored (learned)
    /// prior on the right, the same seed for both.
    Priors(PriorsArgs),
}

#[derive(clap::Args, Debug)]
pub struct PriorsArgs {
    /// Decoder blob with a stored prior (`tinyvae fit-prior`).
    pub blob: PathBuf,
    /// PNG to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Grid side: SIDE x SIDE samples in each half.
    #[arg(long, default_value_t = 8)]
    pub side: usize,
    /// Seed of the runtime's PRNG (each half starts from it).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Upscaling of the PNG.
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
}

/// Test images to draw from, and the PNG to write.
#[derive(clap::Args, Debug)]
pub struct ImageArgs {
    /// MNIST-style IDX directory, or a fetched data set (mnist, fashion-mnist); its test split is used.
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Number of test images.
    #[arg(long, default_value_t = 10)]
    pub count: usize,
    /// Index of the first test image.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// PNG to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Upscaling of the PNG.
    #[arg(long, default_value_t = 2)]
    pub scale: usize,
}

impl ImageArgs {
    /// The chosen test images and labels.
    fn load(&self) -> Result<tinyvae_data::idx::Dataset> {
        let set = tinyvae_data::idx::Dataset::load(&self.data, tinyvae_data::idx::Split::Test)?;
        if self.count == 0 || self.start + self.count > set.count || self.scale == 0 {
            bail!(
                "--start {} --count {} must pick images among the {} test images (and --scale >= 1)",
                self.start,
                self.count,
                set.count
            );
        }
        Ok(set)
    }

    fn pick<'d>(&self, set: &'d tinyvae_data::idx::Dataset) -> (Vec<&'d [u8]>, Vec<u32>) {
        let range = self.start..self.start + self.count;
        (range.clone().map(|i| set.image(i)).collect(), range.map(|i| set.labels[i] as u32).collect())
    }

    fn write(&self, cells: &[u8], cols: usize, what: &str) -> Result<ExitCode> {
        Grid { images: cells, w: 28, h: 28, cols, pad: 1, scale: self.scale }
            .write_png(&self.output)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.output.display()))?;
        println!("wrote {what} to {}", self.output.display());
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(clap::Args, Debug)]
pub struct ReconstructionArgs {
    /// An encoder and decoder blob, comma separated (repeat for each latent size).
    #[arg(long = "pair", required = true, value_delimiter = ';')]
    pub pairs: Vec<String>,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(clap::Args, Debug)]
pub struct AnalogyArgs {
    /// Conditional encoder blob q(z|x,y).
    #[arg(long)]
    pub encoder: PathBuf,
    /// Conditional decoder blob p(x|y,z).
    #[arg(long)]
    pub decoder: PathBuf,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(clap::Args, Debug)]
pub struct DenoisingArgs {
    /// Denoising autoencoder's encoder blob.
    #[arg(long)]
    pub encoder: PathBuf,
    /// Denoising autoencoder's decoder blob.
    #[arg(long)]
    pub decoder: PathBuf,
    /// Corruption: masking, gaussian or salt-pepper.
    #[arg(long, default_value = "masking")]
    pub corruption: String,
    /// Rate (masking, salt-pepper) or standard deviation (gaussian).
    #[arg(long, default_value_t = 0.25)]
    pub noise: f32,
    /// Seed of the corruption.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub images: ImageArgs,
}

#[derive(clap::Args, Debug)]
pub struct ManifoldArgs {
    /// Decoder blob with a 2-D latent space.
    pub blob: PathBuf,
    /// PNG to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Grid points per axis.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Upscaling of the PNG.
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
    /// Lay the grid evenly over [-EXTENT, EXTENT]^2 instead of over the N(0, I) quantiles
    /// (for priors that are not N(0, I), e.g. the AAE's mixture on a circle of radius 4).
    #[arg(long)]
    pub extent: Option<f32>,
}

#[derive(clap::Args, Debug)]
pub struct LatentArgs {
    /// Encoder blob with a 2-D code (mu for Gaussian encoders).
    #[arg(long)]
    pub encoder: PathBuf,
    /// MNIST-style IDX directory, or a fetched data set (mnist, fashion-mnist); the first --count
    /// images of its test split are used.
    #[arg(long, value_parser = crate::datasets::data_arg)]
    pub data: PathBuf,
    /// Number of test images (default: all).
    #[arg(long)]
    pub count: Option<usize>,
    /// Plot [-EXTENT, EXTENT]^2 (default: the largest |code| plus 5 %).
    #[arg(long)]
    pub extent: Option<f32>,
    /// Side of the square plot in pixels.
    #[arg(long, default_value_t = 560)]
    pub size: usize,
    /// PNG to write.
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn run(f: Figure) -> Result<ExitCode> {
    match f {
        Figure::Manifold(a) => manifold(a),
        Figure::Reconstructions(a) => reconstructions(a),
        Figure::Analogies(a) => analogies(a),
        Figure::Denoising(a) => denoising(a),
        Figure::Latent(a) => latent(a),
        Figure::Priors(a) => priors(a),
    }
}

fn priors(a: PriorsArgs) -> Result<ExitCode> {
    util::check_not_input(&a.output, &[&a.blob])?;
    if a.side == 0 || a.side > 64 || a.scale == 0 || a.scale > 16 {
        bail!("--side must be in 1..=64 and --scale in 1..=16");
    }
    let bytes = util::read_blob(&a.blob)?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let learned = Decoder::new(&model).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let Some(prior) = learned.prior() else {
        bail!(
            "{}: the blob stores no prior to compare with N(0, I) (add one with `tinyvae fit-prior`)",
            a.blob.display()
        );
    };
    let meta = model.meta();
    let n = learned.output_len();
    if meta.width * meta.height != n {
        bail!("{}: the decoder's output is not an image", a.blob.display());
    }
    let halves = [learned.with_standard_prior(), learned];
    let samples: Vec<Vec<u8>> = halves
        .iter()
        .map(|d| {
            let mut rng = tinyvae::Rng::new(a.seed);
            let mut arena = vec![0u8; model.arena_size()];
            let mut px = vec![0u8; a.side * a.side * n];
            for (i, cell) in px.chunks_exact_mut(n).enumerate() {
                let label = (d.classes() > 0).then_some(i as u32 % d.classes().max(1) as u32);
                match label {
                    Some(l) => d.sample_conditional(&mut rng, l, &mut arena, cell),
                    None => d.sample(&mut rng, &mut arena, cell),
                }
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
            }
            Ok(px)
        })
        .collect::<Result<_>>()?;
    // Row r: SIDE standard samples, a blank cell, SIDE learned ones.
    let cols = 2 * a.side + 1;
    let mut cells = Vec::with_capacity(a.side * cols * n);
    for r in 0..a.side {
        cells.extend_from_slice(&samples[0][r * a.side * n..(r + 1) * a.side * n]);
        cells.extend(std::iter::repeat_n(0u8, n));
        cells.extend_from_slice(&samples[1][r * a.side * n..(r + 1) * a.side * n]);
    }
    Grid { images: &cells, w: meta.width, h: meta.height, cols, pad: 1, scale: a.scale }
        .write_png(&a.output)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.output.display()))?;
    println!(
        "wrote {0} x {0} samples from N(0, I) (left) and from the stored {1}-component prior (right), seed {2}, to {3}",
        a.side,
        prior.components(),
        a.seed,
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reads blobs, refusing to write the figure over any of them.
fn read_blobs(out: &std::path::Path, paths: &[PathBuf]) -> Result<Vec<impl std::ops::Deref<Target = [u8]>>> {
    let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    util::check_not_input(out, &refs)?;
    paths.iter().map(|p| util::read_blob(p)).collect()
}

fn parse_all<'a, B: std::ops::Deref<Target = [u8]>>(paths: &[PathBuf], blobs: &'a [B]) -> Result<Vec<Model<'a>>> {
    paths
        .iter()
        .zip(blobs)
        .map(|(p, b)| figures::parse(&p.display().to_string(), b).map_err(|e| anyhow::anyhow!(e)))
        .collect()
}

fn reconstructions(a: ReconstructionArgs) -> Result<ExitCode> {
    let mut paths = Vec::new();
    for pair in &a.pairs {
        let parts: Vec<&str> = pair.split(',').collect();
        let [enc, dec] = parts[..] else { bail!("--pair takes ENCODER.tvae,DECODER.tvae, got `{pair}`") };
        paths.push(PathBuf::from(enc));
        paths.push(PathBuf::from(dec));
    }
    let blobs = read_blobs(&a.images.output, &paths)?;
    let models = parse_all(&paths, &blobs)?;
    let pairs: Vec<_> = models.chunks(2).map(|m| (m[0], m[1])).collect();
    let set = a.images.load()?;
    let (images, labels) = a.images.pick(&set);
    let cells = figures::reconstructions(&images, &labels, &pairs).map_err(|e| anyhow::anyhow!(e))?;
    a.images.write(
        &cells,
        a.images.count,
        &format!("{} test images and {} reconstruction rows", a.images.count, pairs.len()),
    )
}

fn analogies(a: AnalogyArgs) -> Result<ExitCode> {
    let paths = [a.encoder.clone(), a.decoder.clone()];
    let blobs = read_blobs(&a.images.output, &paths)?;
    let m = parse_all(&paths, &blobs)?;
    let set = a.images.load()?;
    let (images, labels) = a.images.pick(&set);
    let cells = figures::analogies(&m[0], &m[1], &images, &labels).map_err(|e| anyhow::anyhow!(e))?;
    let cols = 1 + m[1].meta().classes;
    a.images.write(&cells, cols, &format!("analogies of {} test digits", a.images.count))
}

fn denoising(a: DenoisingArgs) -> Result<ExitCode> {
    let corruption = Corruption::new(&a.corruption, a.noise).map_err(|e| anyhow::anyhow!(e))?;
    let paths = [a.encoder.clone(), a.decoder.clone()];
    let blobs = read_blobs(&a.images.output, &paths)?;
    let m = parse_all(&paths, &blobs)?;
    let set = a.images.load()?;
    let (images, _) = a.images.pick(&set);
    let cells = figures::denoising(&m[0], &m[1], &images, corruption, a.seed).map_err(|e| anyhow::anyhow!(e))?;
    a.images.write(&cells, a.images.count, &format!("{} corrupted / denoised / clean test images", a.images.count))
}

fn manifold(a: ManifoldArgs) -> Result<ExitCode> {
    util::check_not_input(&a.output, &[&a.blob])?;
    if a.steps < 2 || a.steps > MAX_MANIFOLD_STEPS || a.scale == 0 {
        bail!("--steps must be in 2..={MAX_MANIFOLD_STEPS} and --scale at least 1");
    }
    let bytes = util::read_blob(&a.blob)?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let d = Decoder::new(&model).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    if d.latent_dim() != 2 {
        bail!(
            "{}: the manifold figure needs a 2-D latent space, this decoder has {}",
            a.blob.display(),
            d.latent_dim()
        );
    }
    let meta = model.meta();
    if meta.width * meta.height != d.output_len() {
        bail!("{}: the decoder's output is not an image", a.blob.display());
    }
    // As in Kingma & Welling (2014), figure 4: z on the unit square mapped through the inverse
    // Gaussian CDF, so the grid covers the prior evenly in probability; or an even grid.
    let q: Vec<f32> = match a.extent {
        Some(r) if !(r.is_finite() && r > 0.0) => bail!("--extent must be a positive number"),
        Some(r) => (0..a.steps).map(|i| -r + 2.0 * r * i as f32 / (a.steps - 1) as f32).collect(),
        None => (0..a.steps).map(|i| inverse_normal_cdf((i as f64 + 0.5) / a.steps as f64) as f32).collect(),
    };
    let mut arena = vec![0u8; model.arena_size()];
    let mut pixels = vec![0u8; a.steps * a.steps * d.output_len()];
    let mut cells = pixels.chunks_exact_mut(d.output_len());
    for row in 0..a.steps {
        for col in 0..a.steps {
            // z1 grows to the right, z2 upwards.
            let z = [q[col], q[a.steps - 1 - row]];
            d.decode(&z, &mut arena, cells.next().expect("one cell per grid point"))
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
        }
    }
    Grid { images: &pixels, w: meta.width, h: meta.height, cols: a.steps, pad: 0, scale: a.scale }
        .write_png(&a.output)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", a.output.display()))?;
    println!("wrote the {0}x{0} latent manifold of {1} to {2}", a.steps, a.blob.display(), a.output.display());
    Ok(ExitCode::SUCCESS)
}

/// Colours of labels 0..9 (matplotlib's tab10), then grey.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

fn colour(label: u32) -> [u8; 3] {
    PALETTE.get(label as usize).copied().unwrap_or([0, 0, 0])
}

fn latent(a: LatentArgs) -> Result<ExitCode> {
    util::check_not_input(&a.output, &[&a.encoder])?;
    if a.size < 64 || a.size > 8192 {
        bail!("--size must be between 64 and 8192 pixels");
    }
    let bytes = util::read_blob(&a.encoder)?;
    let model = figures::parse(&a.encoder.display().to_string(), &bytes).map_err(|e| anyhow::anyhow!(e))?;
    let set = tinyvae_data::idx::Dataset::load(&a.data, tinyvae_data::idx::Split::Test)?;
    let count = a.count.unwrap_or(set.count);
    if count == 0 || count > set.count {
        bail!("--count must be between 1 and the {} test images", set.count);
    }
    let mut codes = Vec::with_capacity(2 * count);
    for i in 0..count {
        let z = figures::encode(&model, set.image(i), set.labels[i] as u32).map_err(|e| anyhow::anyhow!(e))?;
        if z.len() != 2 {
            bail!("{}: the latent figure needs a 2-D code, this encoder gives {}", a.encoder.display(), z.len());
        }
        codes.extend(z);
    }
    let extent = match a.extent {
        Some(r) if !(r.is_finite() && r > 0.0) => bail!("--extent must be a positive number"),
        Some(r) => r,
        None => 1.05 * codes.iter().fold(1e-3f32, |m, v| m.max(v.abs())),
    };
    // The plot, then a legend strip: the first test image of each label, drawn in its colour.
    let (side, cell) = (a.size, a.size / 10);
    let (width, height) = (side, side + cell);
    let mut rgb = vec![255u8; width * height * 3];
    let mut put = |x: usize, y: usize, c: [u8; 3]| {
        if x < width && y < height {
            rgb[(y * width + x) * 3..][..3].copy_from_slice(&c);
        }
    };
    for t in 0..side {
        put(t, side / 2, [210, 210, 210]);
        put(side / 2, t, [210, 210, 210]);
    }
    let to_px = |v: f32| ((v / extent + 1.0) * 0.5 * (side - 1) as f32).round();
    let mut outside = 0;
    for (z, &label) in codes.chunks_exact(2).zip(&set.labels) {
        let (px, py) = (to_px(z[0]), to_px(-z[1]));
        if !(0.0..side as f32).contains(&px) || !(0.0..side as f32).contains(&py) {
            outside += 1;
            continue;
        }
        for dy in 0..2 {
            for dx in 0..2 {
                put(px as usize + dx, py as usize + dy, colour(label as u32));
            }
        }
    }
    for label in 0..10u32 {
        let Some(i) = set.labels.iter().position(|&l| l as u32 == label) else { continue };
        let img = set.image(i);
        let c = colour(label);
        for y in 0..cell {
            for x in 0..cell {
                let ink = img[(y * 28 / cell) * 28 + x * 28 / cell] as u32;
                let mix = |k: usize| ((255 * (255 - ink) + c[k] as u32 * ink) / 255) as u8;
                put(label as usize * cell + x, side + y, [mix(0), mix(1), mix(2)]);
            }
        }
    }
    let png = encode_rgb_png(width, height, &rgb)?;
    util::write(&a.output, &png)?;
    println!(
        "wrote the codes of {} test images ({} outside [-{extent:.2}, {extent:.2}]^2) to {}",
        count,
        outside,
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Encodes an 8-bit RGB raster as PNG bytes.
fn encode_rgb_png(width: usize, height: usize, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
    }
    Ok(out)
}

/// Inverse of the standard normal CDF (Acklam's rational approximation, relative error
/// below 1.2e-9 over (0, 1)).
pub fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.38357751867269e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn inverse_cdf_hits_known_quantiles() {
        let f = super::inverse_normal_cdf;
        assert!(f(0.5).abs() < 1e-12);
        assert!((f(0.975) - 1.959963984540054).abs() < 1e-8);
        assert!((f(0.01) + 2.326347874040841).abs() < 1e-8);
        assert!((f(0.999) - 3.090232306167814).abs() < 1e-8);
    }
}
