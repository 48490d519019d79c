//! int8 transposed convolution on `sdot` (Raspberry Pi 5): the direct window driver
//! ([`super::conv_transpose_i8_tiles`]) with the `sdot` Dense kernel's inner loops, so the conv
//! decoder's patches are read in place rather than gathered for a Dense call.

use super::conv_transpose_i8_tiles::{run, Layer};
use super::dense_i8_sdot::SignedDot;
use crate::kernels::{patches, ConvI8};

/// See [`crate::kernels::ConvI8Fn`]; same bytes as the reference. On a CPU without dotprod it
/// runs the NEON kernel; a layer the direct driver does not take goes to the generic one.
pub(super) fn conv_transpose_i8_sdot(p: &ConvI8<'_>, x: &[i8], batch: usize, out: &mut [i8]) {
    if !super::has_dotprod() {
        return super::conv_transpose_i8_neon::conv_transpose_i8_neon(p, x, batch, out);
    }
    let Some(layer) = Layer::new(p) else {
        return patches::conv_transpose_i8::<super::Sdot>(p, x, batch, out);
    };
    let n = p.samples(true, x, batch, out);
    if n > 0 {
        // SAFETY: NEON and dotprod are present (checked above), `layer` is this layer's and
        // `n` what `samples` gives.
        unsafe { run::<SignedDot>(p, &layer, x, n, out) }
    }
}
