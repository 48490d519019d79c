//! f32 elementwise activations (f32 and f16 graphs), with `libm` so results don't depend on
//! the platform's math library.

use crate::format::ActKind;

/// Applies `act` elementwise; `alpha` is the leaky-ReLU slope.
pub fn activation_f32(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
    // Only float graphs have Activation nodes; see `dense_f32` on leaving bodies out.
    #[cfg(any(feature = "f32", feature = "f16"))]
    for (y, &v) in out.iter_mut().zip(x) {
        *y = match act {
            ActKind::None => v,
            ActKind::Relu => v.max(0.0),
            ActKind::LeakyRelu => {
                if v >= 0.0 {
                    v
                } else {
                    alpha * v
                }
            }
            ActKind::Sigmoid => 1.0 / (1.0 + libm::expf(-v)),
            ActKind::Tanh => libm::tanhf(v),
        };
    }
    #[cfg(not(any(feature = "f32", feature = "f16")))]
    let _ = (act, alpha, x, out);
}
