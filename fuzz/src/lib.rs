//! The code of the fuzz targets, one module per target, kept out of `fuzz_targets/` so that the
//! normal test suites can compile the same files (`#[path]` modules) and run the committed
//! seeds and regression inputs through them.

pub mod blob;
pub mod external;
pub mod idx;
pub mod onnx;
