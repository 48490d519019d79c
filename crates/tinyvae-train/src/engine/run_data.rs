//! The images of a run and, for members trained on labels (CVAE, labelled AAE), the labels of
//! every split, checked to match the images one for one.

use tinyvae_data::idx::Split;

use crate::config::TrainConfig;
use crate::data::{ImageSet, TrainingData};
use crate::error::TrainError;

/// Labels of the splits in [`RunData`] (same order as the images).
#[derive(Debug, Clone, PartialEq)]
pub struct SplitLabels {
    /// One per training image.
    pub train: Vec<u8>,
    /// One per validation image.
    pub validation: Option<Vec<u8>>,
    /// One per test image.
    pub test: Option<Vec<u8>>,
}

/// The images of a run and, for members that use them, their labels.
#[derive(Debug, Clone)]
pub struct RunData {
    /// Training, validation and test images.
    pub images: TrainingData,
    /// Their labels.
    pub labels: Option<SplitLabels>,
}

impl RunData {
    /// Loads what `cfg` asks for, like [`TrainingData::load`], keeping the labels when `labels`.
    pub fn load(cfg: &TrainConfig, labels: bool) -> Result<Self, TrainError> {
        let (all, all_labels) = ImageSet::load_labelled(&cfg.data_dir, Split::Train, cfg.train_limit)?;
        let test = if cfg.test_every > 0 {
            Some(ImageSet::load_labelled(&cfg.data_dir, Split::Test, cfg.test_limit)?)
        } else {
            None
        };
        let cut = all.count.saturating_sub(cfg.validation_images);
        let split_labels = SplitLabels {
            train: all_labels[..cut].to_vec(),
            validation: (cfg.validation_images > 0).then(|| all_labels[cut..].to_vec()),
            test: test.as_ref().map(|t| t.1.clone()),
        };
        let images = TrainingData::split(all, test.map(|t| t.0), cfg.validation_images)?;
        Ok(RunData { images, labels: labels.then_some(split_labels) })
    }

    /// Images without labels.
    pub fn unlabelled(images: TrainingData) -> Self {
        RunData { images, labels: None }
    }
}

/// Fails unless every split that has images has one label per image.
pub(super) fn check_label_counts(labels: &SplitLabels, images: &TrainingData) -> Result<(), TrainError> {
    let check = |what: &str, l: Option<&Vec<u8>>, i: Option<&ImageSet>| match (l, i) {
        (Some(l), Some(i)) if l.len() != i.count => {
            Err(TrainError::Data(format!("{} {what} labels for {} images", l.len(), i.count)))
        }
        (None, Some(_)) => Err(TrainError::Data(format!("the {what} images have no labels"))),
        _ => Ok(()),
    };
    check("training", Some(&labels.train), Some(&images.train))?;
    check("validation", labels.validation.as_ref(), images.validation.as_ref())?;
    check("test", labels.test.as_ref(), images.test.as_ref())
}
