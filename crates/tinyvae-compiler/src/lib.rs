//! Host side of tinyvae: the float IR that ONNX models are imported into and exported from,
//! calibration, int8/f16 quantization into runtime blobs, fidelity metrics, and (with the
//! default `tract` feature) the tract reference used to validate every blob against full
//! precision.

pub mod calibrate;
pub mod ir;
pub mod metrics;
pub mod onnx;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod rounding;
pub mod runner;

#[cfg(feature = "tract")]
pub mod bench;
#[cfg(feature = "tract")]
pub mod tract_ref;
#[cfg(feature = "tract")]
pub mod validate;
