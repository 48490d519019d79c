//! The images of one semi-supervised run: a balanced labelled subset drawn with the seed, the
//! rest of the training images unlabelled, the held-out validation images and the test split;
//! for M1+M2, each image replaced by M1's mean code of it.

use std::path::Path;

use tinyvae_compiler::ir::{Graph, Role};
use tinyvae_data::idx::Split;

use super::M2Config;
use crate::classifier::{LabelledImages, CLASSES};
use crate::data::{stream, ImageSet, Stream};
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
        let mut pool = LabelledImages::load(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let mut test = LabelledImages::load(&cfg.data_dir, Split::Test, cfg.test_limit)?;
        if let Some(path) = &cfg.m1_encoder {
            let m1 = load_m1(path)?;
            pool = codes_of(&m1, &pool)?;
            test = codes_of(&m1, &test)?;
        }
        Self::from_pool(&pool, cfg.labelled, cfg.validation_images, cfg.seed, Some(test))
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

/// `set` with each image replaced by M1's mean code of it (`1 x latent` "images").
pub fn codes_of(m1: &Graph, set: &LabelledImages) -> Result<LabelledImages, TrainError> {
    let n = set.images.len();
    if m1.inputs[0].len != n {
        return Err(TrainError::Data(format!(
            "m2: the M1 encoder takes {} values, the images have {n} pixels",
            m1.inputs[0].len
        )));
    }
    let mut codes = Vec::new();
    let mut latent = 0;
    for chunk in set.images.pixels.chunks(CODE_BATCH * n) {
        let x = ndarray::Array2::from_shape_vec((chunk.len() / n, n), chunk.to_vec())?;
        let out = m1.eval(&[x.view()]).map_err(|source| TrainError::Graph { graph: "M1 encoder", source })?;
        let mu = out.into_iter().next().ok_or_else(|| TrainError::Data("m2: the M1 encoder has no output".into()))?;
        // A fused [mu | logvar] head: the code is its first half.
        latent = match m1.role {
            Role::Encoder { latent, .. } if mu.ncols() == 2 * latent => latent,
            _ => mu.ncols(),
        };
        codes.extend(mu.rows().into_iter().flat_map(|r| r.iter().take(latent).copied().collect::<Vec<_>>()));
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
