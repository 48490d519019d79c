//! Reinterpreting arena bytes as the element types kernels work on.
//!
//! This is the only `unsafe` in the runtime's portable code. The arena is aligned to
//! [`ALIGN`](crate::format::ALIGN) by `Model::working_arena` and every tensor offset is a
//! multiple of it (checked at parse), so f32 views are aligned; i8 and u8 share a layout; and
//! every bit pattern is a valid i8 or f32. A misaligned slice yields an empty view instead of UB.
#![allow(unsafe_code)]

use crate::format::ALIGN;

/// Bytes to skip from the start of `buf` to reach an [`ALIGN`]-aligned address.
pub(crate) fn align_offset(buf: &[u8]) -> usize {
    let addr = buf.as_ptr() as usize;
    (ALIGN - addr % ALIGN) % ALIGN
}

pub(crate) fn i8s(b: &[u8]) -> &[i8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

#[cfg_attr(not(feature = "conv-transpose"), allow(dead_code))]
pub(crate) fn u8s(b: &[i8]) -> &[u8] {
    // SAFETY: as above.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<u8>(), b.len()) }
}

pub(crate) fn i8s_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: as above; the borrow is unique and carried over.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}

pub(crate) fn f32s(b: &[u8]) -> &[f32] {
    if !(b.as_ptr() as usize).is_multiple_of(align_of::<f32>()) {
        return &[];
    }
    // SAFETY: aligned (checked), in bounds (len / 4 elements), any bits are a valid f32.
    unsafe { core::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len() / 4) }
}

pub(crate) fn f32s_mut(b: &mut [u8]) -> &mut [f32] {
    if !(b.as_ptr() as usize).is_multiple_of(align_of::<f32>()) {
        return &mut [];
    }
    // SAFETY: as above; the borrow is unique and carried over.
    unsafe { core::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<f32>(), b.len() / 4) }
}
