//! `tinyvae deploy BLOB.tvae -o DIR`: what firmware needs to embed a model. It writes the blob
//! and a generated Rust module, `model.rs`, that embeds it with `include_bytes!` (16-byte
//! aligned) and states its arena size and shapes as constants, so a `static` arena and the
//! pixel buffers are sized at compile time. With `--lang c`, C sources instead (`deploy_c`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use tinyvae::Model;

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to deploy (any kind and precision).
    pub blob: PathBuf,
    /// Folder to write into (created if missing): the blob and model.rs, or with `--lang c`
    /// model.h and model.c.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Language of the generated sources: rust (model.rs, `include_bytes!`) or c (model.h and
    /// model.c, for the C API in crates/tinyvae-c).
    #[arg(long, default_value = "rust", value_parser = ["rust", "c"])]
    pub lang: String,
    /// Autoencoders: normal feature vectors (.npy, or raw f32 with --shape) to choose the alarm
    /// threshold on; it is written into the generated sources (THRESHOLD_RAW).
    #[arg(long)]
    pub threshold_data: Option<PathBuf>,
    /// The false-positive rate the threshold allows on --threshold-data.
    #[arg(long, default_value_t = 0.01, requires = "threshold_data")]
    pub fpr: f64,
    /// Dimensions of one sample of a raw f32 --threshold-data file.
    #[arg(long, value_delimiter = ',', requires = "threshold_data")]
    pub shape: Option<Vec<usize>>,
    /// Autoencoders: the score the threshold is for and the firmware computes (the module's
    /// `SCORE`): mse or nll (Bernoulli negative log-likelihood, inputs and outputs in [0, 1]).
    #[arg(long, default_value = "mse", value_parser = tinyvae_compiler::anomaly::parse_score_kind)]
    pub score: tinyvae::ScoreKind,
}

/// The alarm threshold of `--threshold-data`, for autoencoder blobs.
fn threshold(a: &Args, blob: &[u8]) -> Result<Option<tinyvae_compiler::anomaly::Threshold>> {
    let Some(path) = &a.threshold_data else { return Ok(None) };
    if !(0.0..=1.0).contains(&a.fpr) {
        anyhow::bail!("--fpr {} is not a rate between 0 and 1", a.fpr);
    }
    super::score::autoencoder_blob(blob, &a.blob)?;
    let scores = super::score::score_file(blob, path, a.shape.as_deref(), a.score)?;
    Ok(Some(tinyvae_compiler::anomaly::threshold_for_fpr(&scores, a.fpr)))
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = util::read_blob(&a.blob)?;
    let model = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let file_name = a
        .blob
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| {
            format!("{}: the blob's file name must be UTF-8 to be named in include_bytes!", a.blob.display())
        })?
        .to_string();
    let threshold = threshold(&a, &bytes)?;
    if a.lang == "c" && a.score != tinyvae::ScoreKind::SquaredError {
        anyhow::bail!("--score nll: the C API's tinyvae_anomaly_score computes the squared error only");
    }
    std::fs::create_dir_all(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    if a.lang == "c" {
        let (h, c) = super::deploy_c::c_sources(&model, &bytes, &a.blob.display().to_string(), threshold.as_ref());
        let (h_out, c_out) = (a.output.join("model.h"), a.output.join("model.c"));
        for out in [&h_out, &c_out] {
            util::check_not_input(out, &[&a.blob])?;
        }
        util::write(&h_out, h.as_bytes())?;
        util::write(&c_out, c.as_bytes())?;
        print_threshold(threshold.as_ref());
        println!(
            "wrote {} and {} ({} blob bytes, arena {} bytes)",
            h_out.display(),
            c_out.display(),
            bytes.len(),
            model.arena_size()
        );
        println!("  link crates/tinyvae-c's static library and include its include/tinyvae.h");
        return Ok(ExitCode::SUCCESS);
    }

    let blob_out = a.output.join(&file_name);
    let module_out = a.output.join("model.rs");
    util::check_not_input(&module_out, &[&a.blob])?;
    // Deploying into the blob's own folder is fine: the blob is already where model.rs looks.
    if !same_file(&blob_out, &a.blob) {
        util::write(&blob_out, &bytes)?;
    }
    util::write(
        &module_out,
        module_source(&model, bytes.len(), &file_name, &a.blob, threshold.as_ref(), a.score).as_bytes(),
    )?;

    let meta = model.meta();
    println!("wrote {} ({} bytes) and {}", blob_out.display(), bytes.len(), module_out.display());
    println!(
        "  {} {}: input {} values, output {} values, arena {} bytes, {} MACs per sample",
        model.precision(),
        model.kind(),
        model.input(0).map_or(0, |t| t.len),
        model.output(0).map_or(0, |t| t.len),
        model.arena_size(),
        model.macs()
    );
    if meta.width * meta.height > 0 {
        println!("  image {} x {}, latent {}", meta.width, meta.height, meta.latent);
    }
    if let Some(prior) = model.prior() {
        let bytes = tinyvae::Prior::section_len(prior.components(), prior.latent_dim()).unwrap_or(0);
        println!(
            "  samples z from its learned prior: {} components{}, {bytes} bytes of the blob",
            prior.components(),
            if prior.groups() > 1 { format!(" in {} per-label mixtures", prior.groups()) } else { String::new() }
        );
    }
    print_threshold(threshold.as_ref());
    println!("  use it with `mod model {{ include!(\"{}\"); }}`", module_out.display());
    Ok(ExitCode::SUCCESS)
}

fn print_threshold(t: Option<&tinyvae_compiler::anomaly::Threshold>) {
    if let Some(t) = t {
        println!(
            "  alarm threshold: raw score {} (score {:.4e}), {:.2}% of {} normal vectors above it (target {:.2}%)",
            t.raw,
            t.value,
            100.0 * t.normal_fpr,
            t.normal_vectors,
            100.0 * t.target_fpr
        );
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// The generated module. Numbers are written as literals so that they show in the source and
/// in rustdoc. Compile-time assertions then tie them to the embedded bytes, so a blob replaced
/// without running `deploy` again fails the build instead of running with stale sizes.
fn module_source(
    model: &Model<'_>,
    blob_len: usize,
    file_name: &str,
    source: &Path,
    threshold: Option<&tinyvae_compiler::anomaly::Threshold>,
    score: tinyvae::ScoreKind,
) -> String {
    let meta = model.meta();
    let input_len = model.input(0).map_or(0, |t| t.len);
    let output_len = model.output(0).map_or(0, |t| t.len);
    let file = format!("{file_name:?}"); // a Rust string literal, escapes included
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        s,
        r#"// The model `{source}`, as deployed by `tinyvae deploy`: {precision} {kind}, {blob_len}-byte
// blob, {arena}-byte arena, {macs} MACs per sample. Generated: run `tinyvae deploy` again
// rather than editing, whenever the blob changes. Plain comments (no inner doc comments), so
// that the file works both as a module (`mod model;`) and through
// `mod model {{ include!(".../model.rs"); }}`.
//
//     static mut ARENA: [u8; model::ARENA_SIZE] = [0; model::ARENA_SIZE];
//     let parsed = tinyvae::Model::parse(model::BLOB)?;

/// The blob's bytes, as `include_bytes!` embeds them (a `const` for compile-time checks).
const BLOB_BYTES: &[u8; {blob_len}] = include_bytes!({file});

/// Keeps the blob on a 16-byte boundary: the runtime reads weights in place (zero-copy) and
/// its fast kernels load them by the word.
#[repr(C, align(16))]
struct Aligned<B: ?Sized>(B);

static ALIGNED: &Aligned<[u8]> = &Aligned(*BLOB_BYTES);

/// The blob, 16-byte aligned, in flash: pass it to `tinyvae::Model::parse`.
pub static BLOB: &[u8] = &ALIGNED.0;

/// Bytes of the blob (flash).
#[allow(dead_code)]
pub const BLOB_LEN: usize = {blob_len};

/// Bytes of arena for one sample, alignment slack included: the size of the caller's buffer.
pub const ARENA_SIZE: usize = {arena};

/// Values per sample of graph input 0 (z for a decoder, pixels for an encoder).
#[allow(dead_code)]
pub const INPUT_LEN: usize = {input_len};

/// Values per sample of graph output 0 (pixels for a decoder, mu for an encoder).
#[allow(dead_code)]
pub const OUTPUT_LEN: usize = {output_len};

/// Latent size (z).
#[allow(dead_code)]
pub const LATENT: usize = {latent};

/// Label classes of a conditional model (0 when unconditional).
#[allow(dead_code)]
pub const CLASSES: usize = {classes};

/// Image width in pixels (0 when the model's data is not an image).
#[allow(dead_code)]
pub const IMAGE_WIDTH: usize = {width};

/// Image height in pixels (0 when the model's data is not an image).
#[allow(dead_code)]
pub const IMAGE_HEIGHT: usize = {height};

/// Multiply-accumulates per sample.
#[allow(dead_code)]
pub const MACS: usize = {macs};

/// Precision of the weights and activations.
#[allow(dead_code)]
pub const PRECISION: tinyvae::Precision = tinyvae::Precision::{precision_variant:?};

/// What the model computes (decides whether `tinyvae::Decoder` or `tinyvae::Encoder` runs it).
#[allow(dead_code)]
pub const KIND: tinyvae::ModelKind = tinyvae::ModelKind::{kind_variant:?};

const _: () = assert!(
    matches!(tinyvae::arena_size_of(BLOB_BYTES), Some(ARENA_SIZE)),
    "the embedded blob's arena size differs from ARENA_SIZE: run `tinyvae deploy` again"
);
"#,
        source = source.display(),
        precision = model.precision(),
        kind = model.kind(),
        arena = model.arena_size(),
        macs = model.macs(),
        latent = meta.latent,
        classes = meta.classes,
        width = meta.width,
        height = meta.height,
        precision_variant = model.precision(),
        kind_variant = model.kind(),
    );
    let _ = match threshold {
        Some(t) => write!(
            s,
            r#"
/// An autoencoder's alarm threshold: alarm when an anomaly score's `raw` is above it
/// (`tinyvae::Score::exceeds`). Chosen by `tinyvae deploy --threshold-data` so that
/// {fpr:.2}% of {n} normal vectors alarm (target {target:.2}%); as a score, {value:.4e}.
#[allow(dead_code)]
pub const THRESHOLD_RAW: u64 = {raw};
"#,
            fpr = 100.0 * t.normal_fpr,
            n = t.normal_vectors,
            target = 100.0 * t.target_fpr,
            raw = t.raw,
            value = t.value,
        ),
        None => write!(
            s,
            r#"
/// An autoencoder's alarm threshold (`tinyvae::Score::exceeds`): none was chosen (`tinyvae
/// deploy --threshold-data` chooses one), so nothing alarms.
#[allow(dead_code)]
pub const THRESHOLD_RAW: u64 = u64::MAX;
"#
        ),
    };
    let _ = write!(
        s,
        r#"
/// An autoencoder's score, the one the threshold is for: `Autoencoder::with_score(SCORE)`.
#[allow(dead_code)]
pub const SCORE: tinyvae::ScoreKind = tinyvae::ScoreKind::{score:?};
"#
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_states_the_blob_and_escapes_its_name() {
        let blob = tinyvae::doc_example_blob();
        let model = Model::parse(&blob).unwrap();
        let src = module_source(
            &model,
            blob.len(),
            "odd \"name\\.tvae",
            Path::new("in/odd.tvae"),
            None,
            tinyvae::ScoreKind::SquaredError,
        );
        assert!(src.contains(r#"include_bytes!("odd \"name\\.tvae")"#), "{src}");
        assert!(src.contains(&format!("pub const ARENA_SIZE: usize = {};", model.arena_size())));
        assert!(src.contains(&format!("pub const BLOB_LEN: usize = {};", blob.len())));
        assert!(src.contains(&format!("const BLOB_BYTES: &[u8; {}]", blob.len())));
        assert!(src.contains("pub const KIND: tinyvae::ModelKind = tinyvae::ModelKind::Decoder;"));
        assert!(src.contains("#[repr(C, align(16))]"));
        // Plain comments only: `include!` rejects inner attributes such as `//!`.
        assert!(!src.contains("//!"));
    }
}
