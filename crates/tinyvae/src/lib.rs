//! tinyvae: a `no_std` runtime for quantized autoencoders.
//!
//! A model is a *blob*: a versioned, checksummed byte string (see `docs/FORMAT.md`) made on
//! the host by `tinyvae quantize`. The runtime reads it in place from a `&[u8]` (flash on a
//! microcontroller), validates every field up front, and runs it in a caller-provided byte
//! arena whose size the blob states. Nothing on the inference path allocates.
//!
//! ```
//! use tinyvae::{Decoder, Model, Rng};
//! # let blob = tinyvae::doc_example_blob();
//! # let blob = &blob[..];
//! let model = Model::parse(blob)?;           // every offset, length and checksum checked here
//! let decoder = Decoder::new(&model)?;
//! let mut arena = vec![0u8; model.arena_size()];
//! let mut pixels = vec![0u8; decoder.output_len()];
//! decoder.sample(&mut Rng::new(7), &mut arena, &mut pixels)?; // z ~ N(0, I), then decode
//! # Ok::<(), tinyvae::Error>(())
//! ```
//!
//! Firmware sizes its arena at compile time from the blob itself:
//!
//! ```
//! # const BLOB: &[u8] = &[0u8; 0];
//! const ARENA: usize = match tinyvae::arena_size_of(BLOB) { Some(n) => n, None => 0 };
//! static mut ARENA_BUF: [u8; ARENA] = [0; ARENA];
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

#[cfg(feature = "alloc")]
mod aligned;
mod api;
mod cast;
mod error;
pub mod format;
pub mod kernels;
mod model;
pub mod quant;
pub mod rng;

#[cfg(feature = "alloc")]
pub use aligned::AlignedBlob;
pub use api::{Decoder, Encoder};
pub use error::Error;
pub use format::{arena_size_of, DType, ModelKind, Precision};
pub use kernels::Kernels;
pub use model::{to_pixel, Meta, Model, NodeView, Op, TensorInfo};
pub use rng::Rng;

/// Builds a small valid decoder blob for the documentation examples.
#[cfg(feature = "alloc")]
#[doc(hidden)]
pub fn doc_example_blob() -> alloc::vec::Vec<u8> {
    format::write::example_decoder()
}
