//! The training log: one [`EpochLog`] per epoch (plus one for a run stopped mid-epoch), kept in
//! the checkpoint and rewritten whole as `train_log.jsonl` after every checkpoint, and the line
//! the progress output prints for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Member;

/// One line of the training log (one per epoch, plus one for a run stopped mid-epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog<T> {
    /// 1-based epoch.
    pub epoch: usize,
    /// True when the run stopped (max_steps) before the epoch ended.
    pub partial: bool,
    /// Optimiser steps done in total at the end of this record.
    pub global_step: usize,
    /// Learning rate of the last step.
    pub lr: f64,
    /// KL (regulariser) weight of the last step.
    pub kl_weight: f64,
    /// Mean of each training term over the epoch's images (with the augmentation and noise
    /// of training).
    pub train: BTreeMap<String, f64>,
    /// Evaluation on the held-out training images.
    pub validation: Option<T>,
    /// Evaluation on the test split.
    pub test: Option<T>,
    /// Wall-clock seconds of training at the end of the record (all sessions).
    pub elapsed_seconds: f64,
}

/// The progress line of a record: its training terms, then validation and test results.
pub(super) fn summary_line<M: Member>(r: &EpochLog<M::Metrics>, epochs: usize) -> String {
    let terms: Vec<String> = r.train.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    let mut s = format!(
        "epoch {}/{}{}: train {}",
        r.epoch,
        epochs,
        if r.partial { " (partial)" } else { "" },
        terms.join(", ")
    );
    if let Some(v) = &r.validation {
        s += &format!(" | validation {}", M::describe(v));
    }
    if let Some(t) = &r.test {
        s += &format!(" | test {}", M::describe(t));
    }
    s
}
