//! An owned copy of a blob at a cache-line aligned address, for hosts that load blobs from
//! files or build them in memory. The writer puts weight arrays on 64-byte boundaries of the
//! blob; placing the blob itself on one keeps them there, so kernel loads split no more cache
//! lines than the layer shape forces (a `Vec<u8>` only promises byte alignment).

#![allow(unsafe_code)]

use alloc::vec::Vec;
use core::ops::Deref;

/// One cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Bytes starting at a 64-byte aligned address; dereferences to `[u8]`.
///
/// ```
/// let blob = tinyvae::AlignedBlob::new(&tinyvae::doc_example_blob());
/// assert_eq!(blob.as_ptr() as usize % 64, 0);
/// let model = tinyvae::Model::parse(&blob)?;
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Clone)]
pub struct AlignedBlob {
    lines: Vec<Line>,
    len: usize,
}

impl AlignedBlob {
    /// Copies `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let mut lines = alloc::vec![Line([0; 64]); bytes.len().div_ceil(64)];
        for (line, chunk) in lines.iter_mut().zip(bytes.chunks(64)) {
            line.0[..chunk.len()].copy_from_slice(chunk);
        }
        AlignedBlob { lines, len: bytes.len() }
    }
}

impl Deref for AlignedBlob {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `lines` is `lines.len() * 64` initialized bytes (Line is repr(C) over a byte
        // array, no padding), and `len <= lines.len() * 64`.
        unsafe { core::slice::from_raw_parts(self.lines.as_ptr().cast::<u8>(), self.len) }
    }
}

impl core::fmt::Debug for AlignedBlob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AlignedBlob({} bytes)", self.len)
    }
}
