//! Host side of tinyvae: the float IR that ONNX models are imported into and exported from,
//! calibration, int8/f16 quantization into runtime blobs, fidelity metrics, and (with the
//! default `tract` feature) the tract reference used to validate every blob against full
//! precision.
//!
//! What `tinyvae quantize` does, as a library call:
//!
//! ```no_run
//! use std::path::Path;
//!
//! use tinyvae_compiler::{import_file, quantize_and_measure, Settings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let graph = import_file(Path::new("models/mnist-vae-z20/decoder.onnx"))?;
//! // int8, calibrated on prior samples z ~ N(0, I): a decoder needs no data set.
//! let (blob, report) = quantize_and_measure(&graph, &Settings::default())?;
//! std::fs::write("decoder.int8.tvae", &blob)?;
//! println!("{} bytes, PSNR {:.1} dB", report.blob_bytes, report.fidelity.psnr_db);
//! # Ok(())
//! # }
//! ```
//!
//! The steps behind it are public too: [`prepare`] (fuse an encoder's heads),
//! [`calibrate`](fn@calibrate) (value ranges over [`model_inputs`]), [`quantize`](fn@quantize)
//! (lower to a blob) and [`measure`] (fidelity against the float graph). With the `tract`
//! feature, `validate` compares a blob with tract running the ONNX file (`TractModel`), and the
//! `bench` module times the runtime against it. Graphs can also be built by hand ([`Graph`],
//! [`Node`], [`Op`]) and written with [`export_file`], which is what the trainer does.
//!
//! Errors name the node, value or field at fault and carry their cause as
//! [`source`](std::error::Error::source). The file a call was given is the caller's to name
//! (the CLI adds it with `anyhow::Context`), so that a message names it once; files met on the
//! way, such as [`Settings::encoder`], are named by the error.
//!
//! The modules that stay public hold what does not belong at the top: [`ir`], the graph types;
//! [`onnx`], the protobuf types, the metadata keys and the list of supported ops; [`anomaly`],
//! an autoencoder blob's scores, alarm thresholds and AUROC; and, with the `tract` feature,
//! `bench`, the latency comparison behind `tinyvae bench`.

pub mod anomaly;
pub mod ir;
pub mod onnx;

#[cfg(feature = "tract")]
pub mod bench;

mod calibrate;
mod metrics;
mod pipeline;
mod plan;
pub mod prior;
mod quantize;
mod rounding;
mod runner;
#[cfg(feature = "tract")]
mod tract_ref;
#[cfg(feature = "tract")]
mod validate;

pub use calibrate::{calibrate, Calibration, Method, ParseMethodError};
pub use ir::{Graph, GraphError, Input, Node, Op, Role};
pub use metrics::{ClassAgreement, Fidelity, ScoreAgreement};
pub use onnx::{export, export_file, import_bytes, import_bytes_in, import_file, ExportError, ImportError};
pub use pipeline::{
    inputs_for, measure, model_inputs, quantize_and_measure, Data, PipelineError, Purpose, Report, Settings,
};
pub use quantize::{prepare, quantize, Prepared, QuantizeError};
#[cfg(feature = "tract")]
pub use tract_ref::{PreparedRun, TractModel, TractRefError};
#[cfg(feature = "tract")]
pub use validate::{validate, Validation};
