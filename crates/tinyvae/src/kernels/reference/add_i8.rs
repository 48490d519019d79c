//! int8 residual addition, scalar reference: [`crate::quant::add_i8`] (TFLite's quantized Add,
//! the one definition of its roundings) on each pair of codes.

use crate::kernels::AddI8;

/// See [`crate::kernels::AddI8`].
pub fn add_i8(p: &AddI8, a: &[i8], b: &[i8], out: &mut [i8]) {
    // Without the `conv` feature no blob with this op parses, and the kernel is not linked.
    #[cfg(feature = "conv")]
    add_i8_body(p, a, b, out);
    #[cfg(not(feature = "conv"))]
    let _ = (p, a, b, out);
}

/// See [`crate::kernels::AddI8`].
#[cfg(feature = "conv")]
fn add_i8_body(p: &AddI8, a: &[i8], b: &[i8], out: &mut [i8]) {
    for ((y, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *y = crate::quant::add_i8(a, b, p.zero_points, p.multipliers, p.shifts, p.act_min, p.act_max);
    }
}
