//! Optimized kernels for aarch64 (work in progress: none yet, so the scalar reference runs).

use crate::kernels::Kernels;

/// Tables usable on this CPU, fastest first.
pub fn usable() -> &'static [&'static Kernels] {
    &[]
}
