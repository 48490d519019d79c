//! The one error type of the runtime: every failure is a value, never a panic.

use core::fmt;

use crate::format::ModelKind;

/// Why a blob was rejected or a call could not run.
///
/// Parsing errors name the section, tensor or node and the field at fault, so a user can tell
/// a truncated download from a blob made by an incompatible quantizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The blob is shorter than its fixed header.
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The first four bytes are not `TVAE`.
    BadMagic,
    /// The blob's format version is not one this runtime reads.
    UnsupportedVersion {
        /// Version found in the header.
        found: u16,
    },
    /// The header's total length disagrees with the bytes given (truncated or padded file).
    LengthMismatch {
        /// Length stated in the header.
        header: u32,
        /// Bytes actually given.
        actual: usize,
    },
    /// The CRC-32 over the blob body does not match the header.
    ChecksumMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the bytes given.
        computed: u32,
    },
    /// A header field holds an impossible value.
    BadHeader {
        /// The field at fault.
        field: &'static str,
    },
    /// A section or data array lies (partly) outside the blob, overlaps another, or is misaligned.
    BadSection {
        /// The section at fault.
        section: &'static str,
    },
    /// A tensor record is invalid.
    BadTensor {
        /// Index in the tensor table.
        index: u16,
        /// The field at fault.
        field: &'static str,
    },
    /// A node record is invalid.
    BadNode {
        /// Index in the node table.
        index: u16,
        /// The field at fault.
        field: &'static str,
    },
    /// The graph as a whole is inconsistent (order, inputs, outputs).
    BadGraph {
        /// What is wrong.
        reason: &'static str,
    },
    /// The arena handed in is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes needed for this batch size.
        needed: usize,
        /// Bytes given.
        given: usize,
    },
    /// A caller's buffer has the wrong length.
    BufferLength {
        /// Which buffer.
        what: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// The model is not of the kind this API needs (e.g. an encoder given to `Decoder`).
    WrongKind {
        /// Kind the API needs.
        expected: ModelKind,
        /// Kind in the blob.
        found: ModelKind,
    },
    /// A label is outside `0..classes`, or a conditional call was made on an unconditional model.
    BadLabel {
        /// Label given.
        label: u32,
        /// Number of classes the model takes (0 when unconditional).
        classes: u32,
    },
    /// An unconditional call was made on a conditional model.
    MissingLabel {
        /// Number of classes the model takes.
        classes: u32,
    },
    /// The blob's precision was left out of this build (cargo features `f32`, `f16`).
    PrecisionNotBuilt {
        /// The blob's precision.
        precision: crate::Precision,
    },
    /// The blob uses a convolutional op, left out of this build (cargo feature `conv`, or
    /// `conv-transpose` for ConvTranspose alone).
    OpNotBuilt {
        /// Node index.
        index: u16,
        /// The op.
        op: &'static str,
    },
    /// A stored latent prior (format version 4) is invalid, or a prior given to the writer
    /// does not fit the decoder.
    BadPrior {
        /// The field at fault.
        field: &'static str,
    },
    /// A batch of zero, or one whose arena would not fit in `usize`.
    BadBatch {
        /// Batch size given.
        batch: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::TooShort { len } => {
                write!(f, "blob is {len} bytes, shorter than the 64-byte header")
            }
            Error::BadMagic => write!(f, "not a tinyvae blob (magic is not \"TVAE\")"),
            Error::UnsupportedVersion { found } => write!(
                f,
                "blob format version {found} is not supported (this runtime reads versions {} to {})",
                crate::format::VERSION_1,
                crate::format::VERSION
            ),
            Error::LengthMismatch { header, actual } => {
                write!(f, "blob length mismatch: header says {header} bytes, got {actual} (truncated or padded?)")
            }
            Error::ChecksumMismatch { stored, computed } => {
                write!(f, "blob checksum mismatch: stored {stored:#010x}, computed {computed:#010x} (corrupted?)")
            }
            Error::BadHeader { field } => write!(f, "invalid blob header field `{field}`"),
            Error::BadSection { section } => {
                write!(f, "blob section `{section}` is out of bounds, overlapping or misaligned")
            }
            Error::BadTensor { index, field } => {
                write!(f, "tensor {index}: invalid field `{field}`")
            }
            Error::BadNode { index, field } => write!(f, "node {index}: invalid field `{field}`"),
            Error::BadGraph { reason } => write!(f, "invalid graph: {reason}"),
            Error::ArenaTooSmall { needed, given } => {
                write!(f, "arena too small: need {needed} bytes, got {given}")
            }
            Error::BufferLength { what, expected, got } => {
                write!(f, "`{what}` has {got} elements, expected {expected}")
            }
            Error::WrongKind { expected, found } => {
                write!(f, "model is {} {found}, expected {} {expected}", article(found), article(expected))
            }
            Error::BadLabel { label, classes } => {
                if classes == 0 {
                    write!(f, "label {label} given, but the model is not conditional")
                } else {
                    write!(f, "label {label} is out of range 0..{classes}")
                }
            }
            Error::MissingLabel { classes } => {
                write!(f, "the model is conditional on {classes} classes: give a label")
            }
            Error::BadBatch { batch } => write!(f, "invalid batch size {batch}"),
            Error::BadPrior { field } => write!(f, "latent prior: invalid field `{field}`"),
            Error::OpNotBuilt { index, op } => write!(
                f,
                "node {index} is a {op}, and this runtime was built without convolutional ops (enable the tinyvae \
                 cargo feature `conv`)"
            ),
            Error::PrecisionNotBuilt { precision } => write!(
                f,
                "this runtime was built without {precision} support (enable the tinyvae cargo feature `{precision}`)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// "a" or "an" before a model kind's name, so messages read as English.
fn article(kind: ModelKind) -> &'static str {
    match kind.name().as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o' | b'u') => "an",
        _ => "a",
    }
}
