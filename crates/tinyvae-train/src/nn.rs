//! The candle building blocks every network of the family is made of: trainable
//! [`Parameter`]s, fully connected layers ([`Dense`]), ReLU MLPs of them ([`Mlp`]),
//! convolutions ([`Conv2d`], [`ConvTranspose2d`]), and the tensor helpers around them (one-hot
//! labels, dropout masks, argmax, flattened values and named copies of the weights).
//!
//! Layers are initialised like PyTorch's `nn.Linear`, uniform(-1/sqrt(fan_in),
//! 1/sqrt(fan_in)) from a [`tinyvae::Rng`], weights before biases, and stored `out x in` (the
//! IR's `Dense` layout), so a network's weights depend only on its seed.

mod conv;
mod dense;
mod mlp;
mod tensor;

use candle_core::Var;

pub use conv::{Conv2d, ConvShape, ConvTranspose2d};
pub(crate) use dense::named_var;
pub use dense::Dense;
pub use mlp::Mlp;
pub(crate) use tensor::{argmax_rows, dropout_mask, named_copies, named_with_values, one_hot, values};

/// A trainable tensor with its checkpoint name.
#[derive(Debug, Clone)]
pub struct Parameter {
    /// Name in checkpoints and model files (`encoder.0.weight`, ...).
    pub name: String,
    /// The variable the optimiser updates.
    pub var: Var,
    /// True for encoder tensors (weight decay groups).
    pub in_encoder: bool,
    /// True for weight matrices (biases get no weight decay).
    pub is_matrix: bool,
}

impl Parameter {
    /// A weight matrix outside the encoder's decay group (decayed when the optimiser is given a
    /// weight decay).
    pub(crate) fn matrix(name: String, var: &Var) -> Self {
        Parameter { name, var: var.clone(), in_encoder: false, is_matrix: true }
    }
}
