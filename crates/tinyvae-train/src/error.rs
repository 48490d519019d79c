//! The one error type of the trainer. Every failure is a value naming what went wrong (file,
//! field, epoch and step); nothing in the training path panics on bad input.

use std::path::PathBuf;

/// Anything that stops training, evaluation, checkpointing or export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The dataset could not be read.
    #[error("dataset: {0}")]
    Data(String),
    /// The loss or a gradient stopped being a finite number.
    #[error(
        "training diverged at epoch {epoch}, step {step_in_epoch} of the epoch (global step {global_step}): \
         {what} is {value} (try a smaller learning rate)"
    )]
    NonFinite {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step within the epoch.
        step_in_epoch: usize,
        /// 1-based step since the start of training.
        global_step: usize,
        /// "the loss" or "the gradient of <parameter>".
        what: String,
        /// The offending value (NaN or +-inf).
        value: f32,
    },
    /// A checkpoint or model file is missing, malformed or does not match the configuration.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// File at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File at fault.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A tensor operation failed (shape bug or out of memory).
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// Building or checking the exported IR graph, or writing ONNX, failed.
    #[error("export: {0}")]
    Export(String),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { path: path.into(), source }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint { path: path.into(), reason: reason.into() }
    }
}
