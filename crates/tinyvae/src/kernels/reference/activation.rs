//! f32 elementwise activations (f32 and f16 graphs), with `libm` so results don't depend on
//! the platform's math library.

use crate::format::ActKind;

/// Applies `act` elementwise; `alpha` is the leaky-ReLU slope.
pub fn activation_f32(act: ActKind, alpha: f32, x: &[f32], out: &mut [f32]) {
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
}
