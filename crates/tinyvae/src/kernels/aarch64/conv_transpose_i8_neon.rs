//! int8 transposed convolution on plain NEON (Raspberry Pi 4): the direct window driver
//! ([`super::conv_transpose_i8_tiles`]) with the NEON Dense kernel's `smull`/`smlal2`/`sadalp`
//! loops, so the conv decoder's patches are read in place rather than gathered for a Dense
//! call.

use super::conv_transpose_i8_tiles::{run, Layer};
use super::dense_i8_neon::WideningMac;
use crate::kernels::{patches, reference, ConvI8};

/// See [`crate::kernels::ConvI8Fn`]; same bytes as the reference. A layer the direct driver
/// does not take goes to the generic one.
pub(super) fn conv_transpose_i8_neon(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !super::has_neon() {
        return reference::conv_transpose_i8(p, x, batch, out);
    }
    let Some(layer) = Layer::new(p) else {
        return patches::conv_transpose_i8::<super::Neon>(p, x, batch, out);
    };
    let n = p.samples(true, x, batch, out);
    if n > 0 {
        // SAFETY: NEON is present (checked above), `layer` is this layer's and `n` what
        // `samples` gives.
        unsafe { run::<WideningMac>(p, &layer, x, n, out) }
    }
}
