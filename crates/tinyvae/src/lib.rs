//! tinyvae: a `no_std` runtime for quantized autoencoders.
//!
//! A model is a *blob*: a versioned, checksummed byte string (specified in
//! [`format`](mod@format)) made on the host by `tinyvae quantize`. The runtime reads it in
//! place from a `&[u8]` (flash on a microcontroller), validates every field up front, and runs
//! it in a caller-provided byte arena whose size the blob states. Nothing on the inference
//! path allocates.
//!
//! On a host, a blob read from a file goes into an `AlignedBlob` (feature `alloc`), which puts
//! it on a cache-line boundary: the blob aligns its weight arrays relative to its start, and
//! the SIMD kernels load them fastest that way.
//!
//! ```
//! use tinyvae::{AlignedBlob, Decoder, Model, Rng};
//!
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/mnist-vae-z20/decoder.int8.tvae");
//! // path: e.g. "models/mnist-vae-z20/decoder.int8.tvae", shipped in the repository
//! let blob = AlignedBlob::new(&std::fs::read(path)?);
//! let model = Model::parse(&blob)?; // every offset, length and checksum checked here
//! let decoder = Decoder::new(&model)?;
//! let mut arena = vec![0u8; model.arena_size()];
//! let mut pixels = vec![0u8; decoder.output_len()];
//! decoder.sample(&mut Rng::new(7), &mut arena, &mut pixels)?; // z ~ N(0, I), then decode
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Firmware embeds the blob in flash and sizes its arena at compile time from the blob
//! itself, with [`arena_size_of`]: [`Decoder`] and [`Encoder`] show how.
//!
//! # Features
//!
//! - `f32`, `f16` (default): run float blobs. Without them, such blobs are rejected at parse
//!   time and the float code is left out of the binary (int8-only firmware saves flash).
//! - `conv` (default): run convolutional blobs (Conv, ConvTranspose, Upsample, Add). Without
//!   it they are rejected at parse time ([`Error::OpNotBuilt`]) and the conv kernels are left
//!   out (firmware for MLP models saves about 11 KB of flash).
//! - `conv-transpose` (part of `conv`): ConvTranspose alone, what an image decoder uses; Conv,
//!   Upsample and Add are then rejected at parse time and their kernels (and, on Cortex-M, the
//!   patch driver forward convolutions run on) stay out of flash.
//! - `alloc`: `AlignedBlob`, the blob writer (`format::write`) and the kernel test suite
//!   (`kernels::suite`).
//! - `std` (implies `alloc`): run-time CPU feature detection for the SIMD kernels, and
//!   `std::error::Error` for [`Error`].
//!
//! # Where things are
//!
//! [`Model`] parses and checks a blob; [`Decoder`], [`Encoder`], [`Autoencoder`] and
//! [`Classifier`] run it; [`kernels`] holds
//! the kernel tables and the contract every implementation keeps; [`quant`] the fixed-point
//! arithmetic that defines every int8 result; [`rng`] the sampler that makes a seed draw the
//! same digit on every target.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

#[cfg(feature = "alloc")]
mod aligned;
mod anomaly;
mod api;
#[cfg(feature = "alloc")]
pub mod attach;
mod cast;
mod classifier;
mod error;
pub mod format;
pub mod kernels;
mod model;
mod prior;
pub mod quant;
pub mod rng;

#[cfg(feature = "alloc")]
pub use aligned::AlignedBlob;
pub use anomaly::{Autoencoder, Score, ScoreKind};
pub use api::{Decoder, Encoder};
#[cfg(feature = "alloc")]
pub use attach::{attach_prior, PriorSpec};
pub use classifier::{first_max, Classifier};
pub use error::Error;
pub use format::{arena_size_of, DType, ModelKind, Precision};
pub use kernels::Kernels;
pub use model::{Meta, Model, NodeView, Op, TensorInfo};
pub use prior::Prior;
pub use quant::to_pixel;
pub use rng::Rng;

/// Builds a small valid decoder blob for the documentation examples.
#[cfg(feature = "alloc")]
#[doc(hidden)]
pub fn doc_example_blob() -> Vec<u8> {
    format::write::example_decoder()
}

#[cfg(feature = "alloc")]
#[doc(hidden)]
pub fn doc_example_autoencoder() -> Vec<u8> {
    format::write::example_autoencoder()
}
