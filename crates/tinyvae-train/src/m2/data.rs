//! The images of one semi-supervised run: a balanced labelled subset drawn with the seed, the
//! rest of the training images unlabelled, the held-out validation images and the test split;
//! for M1+M2, each image replaced by M1's code of it: the mean code, or for the training images
//! several codes drawn from q(z1|x) of shifted copies (the paper samples z1; shifting first is
//! the augmentation M2 on pixels uses, which a fixed code cannot otherwise have).

use std::path::Path;

use ndarray::{Array2, Axis};

use tinyvae_compiler::ir::{Graph, Role};
use tinyvae_data::idx::Split;

use super::M2Config;
use crate::classifier::{LabelledImages, CLASSES};
use crate::data::{gather_batch, stream, ImageSet, Stream};
use crate::error::TrainError;

/// Keeps the labelled subset independent of the visiting orders drawn from the same seed.
const SELECTION_SALT: u64 = 0x5E1E_C7ED;

/// The images of one semi-supervised run.
#[derive(Debug, Clone)]
pub struct SslData {
    /// The balanced labelled subset.
    pub labelled: LabelledImages,
    /// Every other training image, without its label.
    pub unlabelled: ImageSet,
    /// Held-out training images with labels (measured, never trained on).
    pub validation: Option<LabelledImages>,
    /// The test split (reported only).
    pub test: Option<LabelledImages>,
    /// Indices of the labelled images in the training pool (after the validation hold-out).
    pub labelled_indices: Vec<usize>,
}

impl SslData {
    /// Loads the splits `cfg` asks for and draws the labelled subset.
    pub fn load(cfg: &M2Config) -> Result<Self, TrainError> {
        let pool = LabelledImages::load(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let test = LabelledImages::load(&cfg.data_dir, Split::Test, cfg.test_limit)?;
        let data = Self::from_pool(&pool, cfg.labelled, cfg.validation_images, cfg.seed, Some(test))?;
        match &cfg.m1_encoder {
            Some(path) => data.into_codes(&load_m1(path)?, &CodeVariants::of(cfg)),
            None => Ok(data),
        }
    }

    /// M1+M2: the same split with every image replaced by M1's codes of it. The labelled and
    /// unlabelled images each become `variants.count` codes (variant `v` of image `i` at
    /// `v * count + i`); the validation and test images their mean codes.
    pub fn into_codes(self, m1: &Graph, variants: &CodeVariants) -> Result<SslData, TrainError> {
        let unlabelled = LabelledImages { labels: vec![0; self.unlabelled.count], images: self.unlabelled };
        Ok(SslData {
            labelled: code_variants(m1, &self.labelled, variants, 0)?,
            unlabelled: code_variants(m1, &unlabelled, variants, 1)?.images,
            validation: self.validation.map(|v| codes_of(m1, &v)).transpose()?,
            test: self.test.map(|t| codes_of(m1, &t)).transpose()?,
            labelled_indices: self.labelled_indices,
        })
    }

    /// Holds out the last `validation_images` of `pool`, draws `labelled` balanced images from
    /// the rest with `seed`, and leaves the others unlabelled.
    pub fn from_pool(
        pool: &LabelledImages,
        labelled: usize,
        validation_images: usize,
        seed: u64,
        test: Option<LabelledImages>,
    ) -> Result<Self, TrainError> {
        let (train, validation) = pool.hold_out_last(validation_images)?;
        let labelled_indices = balanced_subset(&train.labels, labelled, CLASSES, seed)?;
        let mut is_labelled = vec![false; train.count()];
        for &i in &labelled_indices {
            is_labelled[i] = true;
        }
        let rest: Vec<usize> = (0..train.count()).filter(|&i| !is_labelled[i]).collect();
        if rest.is_empty() {
            return Err(TrainError::Config(format!(
                "m2: all {} training images are labelled; nothing is left unlabelled",
                train.count()
            )));
        }
        Ok(SslData {
            labelled: train.subset(&labelled_indices),
            unlabelled: train.subset(&rest).images,
            validation,
            test,
            labelled_indices,
        })
    }
}

/// M1's encoder, from ONNX: a graph whose first output is the mean code of its one input.
pub fn load_m1(path: &Path) -> Result<Graph, TrainError> {
    let g = tinyvae_compiler::onnx::import_file(path)
        .map_err(|e| TrainError::Config(format!("m2: the M1 encoder {}: {e}", path.display())))?;
    if g.inputs.len() != 1 {
        return Err(TrainError::Config(format!(
            "m2: the M1 encoder {} takes {} inputs; it must take the image alone",
            path.display(),
            g.inputs.len()
        )));
    }
    Ok(g)
}

/// Images per evaluation of M1 (the codes do not depend on it).
const CODE_BATCH: usize = 1000;

/// How many codes of each training image M1+M2 learns from, and how they are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeVariants {
    /// Codes per image; 1 is the mean code of the image itself (nothing is drawn).
    pub count: usize,
    /// Each variant's image is shifted by up to this many pixels first (0: not shifted).
    pub translate_px: usize,
    /// Probability that a variant's image is shifted.
    pub translate_prob: f64,
    /// Seeds the shifts and the draws.
    pub seed: u64,
}

impl CodeVariants {
    /// The variants an M2 configuration asks for.
    pub fn of(cfg: &M2Config) -> Self {
        CodeVariants {
            count: cfg.m1_variants,
            translate_px: cfg.translate_px,
            translate_prob: cfg.translate_prob,
            seed: cfg.seed,
        }
    }
}

/// Keeps the labelled and unlabelled draws apart (`part` 0 and 1).
const VARIANT_SALT: u64 = 0xC0DE_5EED;

/// `set` as `variants.count` codes per image, variant-major; the mean codes when one.
fn code_variants(
    m1: &Graph,
    set: &LabelledImages,
    variants: &CodeVariants,
    part: u64,
) -> Result<LabelledImages, TrainError> {
    if variants.count <= 1 {
        return codes_of(m1, set);
    }
    check_input(m1, set.images.len())?;
    let mut codes = Vec::new();
    let mut latent = 0;
    let all: Vec<usize> = (0..set.count()).collect();
    for v in 0..variants.count {
        for (c, chunk) in all.chunks(CODE_BATCH).enumerate() {
            let index = ((v * all.len().div_ceil(CODE_BATCH) + c) as u64) << 1 | part;
            let mut rng = stream(variants.seed ^ VARIANT_SALT, Stream::Step, index);
            let x = gather_batch(&set.images, chunk, variants.translate_px, variants.translate_prob, &mut rng)?;
            let x = Array2::from_shape_vec((chunk.len(), set.images.len()), x.flatten_all()?.to_vec1()?)?;
            let (mu, logvar) = posterior(m1, x)?;
            let logvar = logvar.ok_or_else(|| {
                TrainError::Data("m2: the M1 encoder gives no log-variance of its codes to draw variants from".into())
            })?;
            latent = mu.ncols();
            let mut eps = vec![0f32; mu.len()];
            rng.fill_gaussian(&mut eps);
            let drawn = mu.iter().zip(logvar.iter()).zip(&eps).map(|((m, lv), e)| m + (0.5 * lv).exp() * e);
            codes.extend(drawn);
        }
    }
    let count = set.count() * variants.count;
    Ok(LabelledImages {
        images: ImageSet { count, rows: 1, cols: latent, pixels: codes },
        labels: set.labels.repeat(variants.count),
    })
}

fn check_input(m1: &Graph, n: usize) -> Result<(), TrainError> {
    if m1.inputs[0].len != n {
        return Err(TrainError::Data(format!(
            "m2: the M1 encoder takes {} values, the images have {n} pixels",
            m1.inputs[0].len
        )));
    }
    Ok(())
}

/// M1's q(z1|x) of a batch of images: its mean, one row per image, and its log-variance when
/// the encoder gives one (a fused `[mu | logvar]` head, or a second output).
fn posterior(m1: &Graph, x: Array2<f32>) -> Result<(Array2<f32>, Option<Array2<f32>>), TrainError> {
    let out = m1.eval(&[x.view()]).map_err(|source| TrainError::Graph { graph: "M1 encoder", source })?;
    let mut out = out.into_iter();
    let first = out.next().ok_or_else(|| TrainError::Data("m2: the M1 encoder has no output".into()))?;
    match m1.role {
        Role::Encoder { latent, .. } if first.ncols() == 2 * latent => {
            let (mu, logvar) = first.view().split_at(Axis(1), latent);
            Ok((mu.to_owned(), Some(logvar.to_owned())))
        }
        _ => {
            let logvar = out.next().filter(|l| l.dim() == first.dim());
            Ok((first, logvar))
        }
    }
}

/// `set` with each image replaced by M1's mean code of it (`1 x latent` "images").
pub fn codes_of(m1: &Graph, set: &LabelledImages) -> Result<LabelledImages, TrainError> {
    let n = set.images.len();
    check_input(m1, n)?;
    let mut codes = Vec::new();
    let mut latent = 0;
    for chunk in set.images.pixels.chunks(CODE_BATCH * n) {
        let x = Array2::from_shape_vec((chunk.len() / n, n), chunk.to_vec())?;
        let (mu, _) = posterior(m1, x)?;
        latent = mu.ncols();
        codes.extend(mu.iter().copied());
    }
    Ok(LabelledImages {
        images: ImageSet { count: set.count(), rows: 1, cols: latent, pixels: codes },
        labels: set.labels.clone(),
    })
}

/// `count` indices into `labels`, `count / classes` of each class, drawn with `seed` (a
/// seeded shuffle of each class's images, keeping the first ones), in increasing order.
pub fn balanced_subset(labels: &[u8], count: usize, classes: usize, seed: u64) -> Result<Vec<usize>, TrainError> {
    if classes == 0 || !count.is_multiple_of(classes) {
        return Err(TrainError::Config(format!(
            "{count} labelled images cannot be split evenly over {classes} classes"
        )));
    }
    let per_class = count / classes;
    let mut picked = Vec::with_capacity(count);
    for class in 0..classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] as usize == class).collect();
        if members.len() < per_class {
            return Err(TrainError::Data(format!(
                "class {class} has {} training images, {per_class} labelled ones are needed",
                members.len()
            )));
        }
        let mut rng = stream(seed ^ SELECTION_SALT, Stream::Shuffle, class as u64);
        for i in 0..per_class {
            let j = i + rng.below((members.len() - i) as u32) as usize;
            members.swap(i, j);
        }
        picked.extend_from_slice(&members[..per_class]);
    }
    picked.sort_unstable();
    Ok(picked)
}
