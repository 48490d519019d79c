//! Optimized kernels for armv7em (work in progress: none yet, so the scalar reference runs).

use crate::kernels::Kernels;

/// Tables usable on this CPU, fastest first.
pub fn usable() -> &'static [&'static Kernels] {
    &[]
}
