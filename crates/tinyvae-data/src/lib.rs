//! Host-side data for tinyvae, shared by the trainer, the compiler and the CLI: MNIST-style IDX
//! data sets ([`idx`]), feature vectors from `.npy` and raw f32 files ([`features`]), the
//! denoising autoencoder's corruption processes ([`corrupt`]), PNG grids of images ([`image`]),
//! atomic file output ([`fs`]) and the progress bars of long jobs ([`progress`]).
//!
//! It is a leaf of the host crates: it depends on the runtime (for its portable PRNG) and on
//! small I/O crates only, so the trainer can read data without building the ONNX or tract
//! stack.

pub mod corrupt;
pub mod features;
pub mod fs;
pub mod idx;
pub mod image;
pub mod progress;

pub use fs::write_atomic;
