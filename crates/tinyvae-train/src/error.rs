//! The one error type of the trainer. Every failure is a value naming what went wrong (file,
//! field, epoch and step); nothing in the training path panics on bad input.
//!
//! A variant's message says what failed and where, once; the cause, when there is one (an I/O,
//! candle, JSON, IDX, graph or ONNX error), is its [`std::error::Error::source`], not part of
//! the message. Print the whole chain (anyhow's `{:#}`, as the `tinyvae` command does) to see
//! both.

use std::path::PathBuf;

/// Anything that stops training, evaluation, checkpointing or export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The images or labels do not fit the run (counts, sizes, missing labels).
    #[error("dataset: {0}")]
    Data(String),
    /// An IDX data set could not be read (the source names the file).
    #[error("dataset")]
    Idx(#[from] tinyvae_data::idx::IdxError),
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
        /// `the loss` or `the gradient of <parameter>`.
        what: String,
        /// The offending value (NaN or +-inf).
        value: f32,
    },
    /// A checkpoint or model file does not match what it is loaded as (format, member kind,
    /// configuration, image size, optimiser state).
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// File at fault.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tensors of a file do not make the network its sidecar describes.
    #[error("weights in {path}")]
    WeightsFile {
        /// The safetensors file.
        path: PathBuf,
        /// The missing or misshapen tensor.
        #[source]
        source: WeightsError,
    },
    /// Tensors in memory do not make the network (a weight average copied into a model).
    #[error("weights")]
    Weights(#[from] WeightsError),
    /// A file is not valid safetensors, or tensors could not be serialised.
    #[error("safetensors file {path}")]
    Safetensors {
        /// File at fault.
        path: PathBuf,
        /// What candle (or the safetensors format) reported.
        #[source]
        source: candle_core::Error,
    },
    /// A JSON file (sidecar, log, report) could not be parsed or written.
    #[error("JSON file {path}")]
    Json {
        /// File at fault.
        path: PathBuf,
        /// The parser's or serialiser's error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// File at fault.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed (shape bug or out of memory).
    #[error("tensor operation")]
    Candle(#[from] candle_core::Error),
    /// An exported IR graph is inconsistent, or could not be evaluated.
    #[error("the exported {graph} graph")]
    Graph {
        /// Which graph (`encoder`, `decoder`).
        graph: &'static str,
        /// The IR's error, naming the node.
        #[source]
        source: tinyvae_compiler::ir::GraphError,
    },
    /// Weights or probe inputs did not fit an array's shape while building or checking a graph.
    #[error("export: array shape")]
    Shape(#[from] ndarray::ShapeError),
    /// A graph could not be serialised as ONNX.
    #[error("ONNX model {path}")]
    Onnx {
        /// The file that was to be written.
        path: PathBuf,
        /// The exporter's error.
        #[source]
        source: tinyvae_compiler::onnx::ExportError,
    },
    /// The exported graphs do not compute what the candle model computes.
    #[error("export: {0}")]
    Export(String),
}

/// Why named tensors do not make the requested network.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// No tensor of this name.
    #[error("tensor `{0}` is missing")]
    Missing(String),
    /// A tensor or a layer stack has the wrong shape, or the configuration the weights are read
    /// for is invalid (the message names the tensor or field and both shapes).
    #[error("{0}")]
    Mismatch(String),
    /// The tensor could not be made an f32 variable.
    #[error("tensor `{name}`")]
    Tensor {
        /// Its name.
        name: String,
        /// candle's error (boxed: it is large, and this path is cold).
        #[source]
        source: Box<candle_core::Error>,
    },
}

impl TrainError {
    /// The message followed by each cause, `what: why: why`, the one line anyhow's `{:#}`
    /// prints; for callers that do not use anyhow.
    pub fn chain(&self) -> String {
        let mut line = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            line += &format!(": {c}");
            cause = c.source();
        }
        line
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io { path: path.into(), source }
    }

    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TrainError::Checkpoint { path: path.into(), reason: reason.into() }
    }

    pub(crate) fn weights_file(path: impl Into<PathBuf>) -> impl FnOnce(WeightsError) -> Self {
        let path = path.into();
        move |source| TrainError::WeightsFile { path, source }
    }
}

impl WeightsError {
    /// The configuration the weights were to be read for is invalid (its message says why).
    pub(crate) fn config(e: TrainError) -> Self {
        WeightsError::Mismatch(e.to_string())
    }
}
