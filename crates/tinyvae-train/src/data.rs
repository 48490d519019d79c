//! Images as [0, 1] floats, the train/validation/test splits, and the deterministic random
//! streams (shuffling, translation augmentation, dropout masks, reparametrisation noise).
//!
//! Every random draw comes from [`tinyvae::Rng`] streams derived from `(seed, purpose, index)`,
//! never from a generator carried across steps, so a run resumed at any step draws exactly the
//! numbers the uninterrupted run would have.

use std::ops::Range;
use std::path::Path;

use candle_core::{Device, Tensor};
use tinyvae::Rng;
use tinyvae_data::idx::{Dataset, Split};

use crate::config::TrainConfig;
use crate::error::TrainError;

/// A set of greyscale images, `count x len` floats in [0, 1], row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count * rows * cols` pixels in [0, 1].
    pub pixels: Vec<f32>,
}

impl ImageSet {
    /// Converts 0..=255 bytes to [0, 1] (divides by 255).
    pub fn from_dataset(d: &Dataset) -> Self {
        ImageSet {
            count: d.count,
            rows: d.rows,
            cols: d.cols,
            pixels: d.pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        }
    }

    /// Reads one split of an IDX directory, keeping the first `limit` images if given.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self, TrainError> {
        Ok(Self::load_labelled(dir, split, limit)?.0)
    }

    /// [`ImageSet::load`] with the images' labels.
    pub fn load_labelled(dir: &Path, split: Split, limit: Option<usize>) -> Result<(Self, Vec<u8>), TrainError> {
        let d = Dataset::load(dir, split)?;
        let d = match limit {
            Some(n) => d.take(n),
            None => d,
        };
        if d.count == 0 {
            return Err(TrainError::Data(format!("{}: the {split:?} split has no images", dir.display())));
        }
        Ok((Self::from_dataset(&d), d.labels))
    }

    /// Pixels per image.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * self.len()..(i + 1) * self.len()]
    }

    /// Images `range` as a new set.
    pub fn slice(&self, range: Range<usize>) -> ImageSet {
        let n = self.len();
        ImageSet {
            count: range.len(),
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[range.start * n..range.end * n].to_vec(),
        }
    }

    /// Consecutive ranges of at most `size` images covering the set: the batches of an
    /// evaluation pass (whose results do not depend on `size`).
    pub(crate) fn batches(&self, size: usize) -> impl Iterator<Item = Range<usize>> {
        let (count, size) = (self.count, size.max(1));
        (0..count).step_by(size).map(move |start| start..(start + size).min(count))
    }

    /// Images `range` as a `count x len` tensor.
    pub fn tensor(&self, range: Range<usize>) -> Result<Tensor, TrainError> {
        let n = self.len();
        Ok(Tensor::from_vec(self.pixels[range.start * n..range.end * n].to_vec(), (range.len(), n), &Device::Cpu)?)
    }
}

/// The images one run uses.
#[derive(Debug, Clone)]
pub struct TrainingData {
    /// Images the optimiser sees.
    pub train: ImageSet,
    /// Held-out training images for model selection (may be empty).
    pub validation: Option<ImageSet>,
    /// The test split (reported, never used for selection).
    pub test: Option<ImageSet>,
}

impl TrainingData {
    /// Loads the splits `cfg` asks for: the training split (first `train_limit` images), its
    /// last `validation_images` held out, and the test split (first `test_limit`) unless
    /// `test_every` is 0.
    pub fn load(cfg: &TrainConfig) -> Result<Self, TrainError> {
        let all = ImageSet::load(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let test =
            if cfg.test_every > 0 { Some(ImageSet::load(&cfg.data_dir, Split::Test, cfg.test_limit)?) } else { None };
        Self::split(all, test, cfg.validation_images)
    }

    /// Holds out the last `validation_images` of `all`.
    pub fn split(all: ImageSet, test: Option<ImageSet>, validation_images: usize) -> Result<Self, TrainError> {
        if validation_images >= all.count {
            return Err(TrainError::Config(format!(
                "validation_images ({validation_images}) leaves no training images out of {}",
                all.count
            )));
        }
        let cut = all.count - validation_images;
        let validation = (validation_images > 0).then(|| all.slice(cut..all.count));
        let train = if validation_images > 0 { all.slice(0..cut) } else { all };
        Ok(TrainingData { train, validation, test })
    }
}

/// What a random stream is for; part of its derivation so streams never overlap.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(crate) enum Stream {
    Init = 1,
    Shuffle = 2,
    Step = 3,
    Eval = 4,
    /// Corrupted evaluation inputs of the denoising autoencoder.
    Corrupt = 5,
    /// Prior samples drawn to measure how well an AAE's codes match its prior.
    Prior = 6,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for `(seed, purpose, index)`.
pub(crate) fn stream(seed: u64, purpose: Stream, index: u64) -> Rng {
    let a = mix(seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
    let b = mix(a ^ (purpose as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    Rng::new(mix(b ^ index.wrapping_mul(0xA24B_AED4_963E_E407)))
}

/// The visiting order of the training images in `epoch` (0-based): Fisher-Yates.
pub(crate) fn epoch_order(seed: u64, epoch: usize, count: usize) -> Vec<usize> {
    let mut rng = stream(seed, Stream::Shuffle, epoch as u64);
    let mut order: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        let j = rng.below(i as u32 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Copies `src` (rows x cols) into `dst` shifted by (dx, dy) pixels, filling with 0.
pub(crate) fn translate(src: &[f32], rows: usize, cols: usize, dx: isize, dy: isize, dst: &mut [f32]) {
    dst.fill(0.0);
    for r in 0..rows as isize {
        let sr = r - dy;
        if sr < 0 || sr >= rows as isize {
            continue;
        }
        for c in 0..cols as isize {
            let sc = c - dx;
            if sc < 0 || sc >= cols as isize {
                continue;
            }
            dst[(r as usize) * cols + c as usize] = src[(sr as usize) * cols + sc as usize];
        }
    }
}

/// Gathers `indices` of `set` into one batch, translating each image with probability `prob`
/// by a uniform shift in `[-max_px, max_px]^2` drawn from `rng`.
pub(crate) fn gather_batch(
    set: &ImageSet,
    indices: &[usize],
    max_px: usize,
    prob: f64,
    rng: &mut Rng,
) -> Result<Tensor, TrainError> {
    let n = set.len();
    let mut out = vec![0f32; indices.len() * n];
    for (k, &i) in indices.iter().enumerate() {
        let dst = &mut out[k * n..(k + 1) * n];
        if max_px > 0 && (prob >= 1.0 || (rng.uniform() as f64) <= prob) {
            let span = 2 * max_px as u32 + 1;
            let dx = rng.below(span) as isize - max_px as isize;
            let dy = rng.below(span) as isize - max_px as isize;
            translate(set.image(i), set.rows, set.cols, dx, dy, dst);
        } else {
            dst.copy_from_slice(set.image(i));
        }
    }
    Ok(Tensor::from_vec(out, (indices.len(), n), &Device::Cpu)?)
}

/// `rows x cols` standard normal draws from `rng`, as a tensor.
pub(crate) fn gaussian_tensor(rng: &mut Rng, rows: usize, cols: usize) -> Result<Tensor, TrainError> {
    let mut v = vec![0f32; rows * cols];
    rng.fill_gaussian(&mut v);
    Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translate_shifts_and_zero_fills() {
        let src: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut dst = vec![0f32; 9];
        translate(&src, 3, 3, 1, 0, &mut dst);
        assert_eq!(dst, vec![0., 1., 2., 0., 4., 5., 0., 7., 8.]);
        translate(&src, 3, 3, 0, -1, &mut dst);
        assert_eq!(dst, vec![4., 5., 6., 7., 8., 9., 0., 0., 0.]);
    }

    #[test]
    fn epoch_order_is_a_permutation_fixed_by_seed() {
        let a = epoch_order(3, 5, 100);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(3, 5, 100));
        assert_ne!(a, epoch_order(3, 6, 100));
    }
}
