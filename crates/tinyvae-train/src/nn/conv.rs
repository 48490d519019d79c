//! Convolution layers over square kernels: [`Conv2d`] (PyTorch's `nn.Conv2d`, weight
//! `[out, in, k, k]`) and [`ConvTranspose2d`] (`nn.ConvTranspose2d`, weight `[in, out, k, k]`),
//! each knowing the `[C, H, W]` it reads, so that it takes a flat `batch x C*H*W` tensor as
//! well as an image batch, exactly as the IR's spatial ops read their inputs.
//!
//! Both are initialised like PyTorch's defaults (kaiming-uniform with a = sqrt(5), which is
//! uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight and the bias), with PyTorch's
//! `fan_in`: `in * k * k` for a convolution and `out * k * k` for a transposed one (PyTorch
//! reads the fan from the weight's second dimension), weights then bias, from a
//! [`tinyvae::Rng`].

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use tinyvae_compiler::ir::Chw;

use super::{named_var, Parameter};
use crate::error::{TrainError, WeightsError};

/// How a square kernel slides: the same stride and zero padding on both axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Kernel height and width.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side (a transposed convolution crops it from its output).
    pub padding: usize,
}

impl ConvShape {
    /// Output side of a convolution over `n` pixels, if the kernel fits.
    fn conv_out(&self, n: usize) -> Option<usize> {
        (n + 2 * self.padding).checked_sub(self.kernel).map(|v| v / self.stride + 1)
    }

    /// Output side of a transposed convolution over `n` pixels, if the padding leaves any.
    fn transpose_out(&self, n: usize) -> Option<usize> {
        ((n.max(1) - 1) * self.stride + self.kernel).checked_sub(2 * self.padding).filter(|&v| v > 0)
    }
}

/// Uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) values: `n` weights then `m` biases.
fn pytorch_init(rng: &mut tinyvae::Rng, fan_in: usize, n: usize, m: usize) -> (Vec<f32>, Vec<f32>) {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| (2.0 * rng.uniform() - 1.0) * bound).collect() };
    let w = draw(n);
    (w, draw(m))
}

/// `x` as a `batch x C x H x W` image batch (a flat `batch x C*H*W` input is reshaped).
fn as_images(x: &Tensor, [c, h, w]: Chw) -> Result<Tensor, TrainError> {
    let batch = x.dims()[0];
    if x.elem_count() != batch * c * h * w {
        return Err(TrainError::Config(format!(
            "a layer reading {c} x {h} x {w} images was given a tensor of shape {:?}",
            x.dims()
        )));
    }
    Ok(if x.rank() == 4 { x.clone() } else { x.reshape((batch, c, h, w))? })
}

/// The weight and bias under `name` in `tensors`, checked against the expected shapes.
fn read(
    name: &str,
    tensors: &HashMap<String, Tensor>,
    weight_dims: [usize; 4],
    bias_len: usize,
) -> Result<(Var, Var), WeightsError> {
    let weight = named_var(tensors, &format!("{name}.weight"), 4)?;
    if weight.dims() != weight_dims {
        return Err(WeightsError::Mismatch(format!(
            "tensor `{name}.weight` has shape {:?}, the configuration needs {weight_dims:?}",
            weight.dims()
        )));
    }
    let bias = named_var(tensors, &format!("{name}.bias"), 1)?;
    if bias.dims()[0] != bias_len {
        return Err(WeightsError::Mismatch(format!(
            "tensor `{name}.bias` has {} values for {bias_len} channels",
            bias.dims()[0]
        )));
    }
    Ok((weight, bias))
}

/// Weight then bias as optimiser parameters.
fn parameters(name: &str, weight: &Var, bias: &Var, in_encoder: bool) -> [Parameter; 2] {
    [
        Parameter { in_encoder, ..Parameter::matrix(format!("{name}.weight"), weight) },
        Parameter { name: format!("{name}.bias"), var: bias.clone(), in_encoder, is_matrix: false },
    ]
}

/// A 2-D convolution (cross-correlation) with a square kernel, one group, no dilation.
#[derive(Debug, Clone)]
pub struct Conv2d {
    name: String,
    weight: Var,
    bias: Var,
    input: Chw,
    shape: ConvShape,
}

impl Conv2d {
    /// A convolution reading `input` and writing `outputs` channels, PyTorch-initialised from
    /// `rng`; an error when the kernel does not fit the padded input.
    pub fn init(
        name: impl Into<String>,
        input: Chw,
        outputs: usize,
        shape: ConvShape,
        rng: &mut tinyvae::Rng,
    ) -> Result<Self, TrainError> {
        let name = name.into();
        Self::check(&name, input, outputs, shape).map_err(TrainError::Config)?;
        let k = shape.kernel;
        let (w, b) = pytorch_init(rng, input[0] * k * k, outputs * input[0] * k * k, outputs);
        Ok(Conv2d {
            name,
            weight: Var::from_vec(w, (outputs, input[0], k, k), &Device::Cpu)?,
            bias: Var::from_vec(b, outputs, &Device::Cpu)?,
            input,
            shape,
        })
    }

    fn check(name: &str, [c, h, w]: Chw, outputs: usize, s: ConvShape) -> Result<(), String> {
        if c == 0 || outputs == 0 || s.kernel == 0 || s.stride == 0 {
            return Err(format!("{name}: channels, kernel and stride must be at least 1"));
        }
        if s.conv_out(h).is_none() || s.conv_out(w).is_none() {
            return Err(format!("{name}: a {0} x {0} kernel does not fit a padded {h} x {w} input", s.kernel));
        }
        Ok(())
    }

    /// The convolution stored as `name.weight` (`[outputs, C, k, k]`) and `name.bias`.
    pub(crate) fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        input: Chw,
        outputs: usize,
        shape: ConvShape,
    ) -> Result<Self, WeightsError> {
        Self::check(name, input, outputs, shape).map_err(WeightsError::Mismatch)?;
        let (weight, bias) = read(name, tensors, [outputs, input[0], shape.kernel, shape.kernel], outputs)?;
        Ok(Conv2d { name: name.to_string(), weight, bias, input, shape })
    }

    /// `batch x out x OH x OW` for a `batch x C*H*W` (or `batch x C x H x W`) input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let s = self.shape;
        let y = as_images(x, self.input)?.conv2d(self.weight.as_tensor(), s.padding, s.stride, 1, 1)?;
        Ok(y.broadcast_add(&self.bias.as_tensor().reshape((1, self.outputs(), 1, 1))?)?)
    }

    /// Parameter-name prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        self.weight.as_tensor()
    }

    /// One bias per output channel.
    pub fn bias(&self) -> &Tensor {
        self.bias.as_tensor()
    }

    /// The `[C, H, W]` it reads.
    pub fn input(&self) -> Chw {
        self.input
    }

    /// Kernel, stride and padding.
    pub fn shape(&self) -> ConvShape {
        self.shape
    }

    /// Output channels.
    pub fn outputs(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The `[C, H, W]` it writes.
    pub fn output(&self) -> Chw {
        let [_, h, w] = self.input;
        let side = |n| self.shape.conv_out(n).expect("checked when built");
        [self.outputs(), side(h), side(w)]
    }

    /// Weight then bias as optimiser parameters (`in_encoder` picks the weight-decay group).
    pub fn parameters(&self, in_encoder: bool) -> [Parameter; 2] {
        parameters(&self.name, &self.weight, &self.bias, in_encoder)
    }
}

/// A 2-D transposed convolution with a square kernel, one group, no dilation and no output
/// padding (PyTorch's `ConvTranspose2d` with those defaults).
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    name: String,
    weight: Var,
    bias: Var,
    input: Chw,
    shape: ConvShape,
}

impl ConvTranspose2d {
    /// A transposed convolution reading `input` and writing `outputs` channels,
    /// PyTorch-initialised from `rng`; an error when the padding crops the whole output.
    pub fn init(
        name: impl Into<String>,
        input: Chw,
        outputs: usize,
        shape: ConvShape,
        rng: &mut tinyvae::Rng,
    ) -> Result<Self, TrainError> {
        let name = name.into();
        Self::check(&name, input, outputs, shape).map_err(TrainError::Config)?;
        let k = shape.kernel;
        let (w, b) = pytorch_init(rng, outputs * k * k, input[0] * outputs * k * k, outputs);
        Ok(ConvTranspose2d {
            name,
            weight: Var::from_vec(w, (input[0], outputs, k, k), &Device::Cpu)?,
            bias: Var::from_vec(b, outputs, &Device::Cpu)?,
            input,
            shape,
        })
    }

    fn check(name: &str, [c, h, w]: Chw, outputs: usize, s: ConvShape) -> Result<(), String> {
        if c == 0 || h == 0 || w == 0 || outputs == 0 || s.kernel == 0 || s.stride == 0 {
            return Err(format!("{name}: channels, sizes, kernel and stride must be at least 1"));
        }
        if s.transpose_out(h).is_none() || s.transpose_out(w).is_none() {
            return Err(format!("{name}: padding {} crops the whole output of a {h} x {w} input", s.padding));
        }
        Ok(())
    }

    /// The transposed convolution stored as `name.weight` (`[C, outputs, k, k]`) and
    /// `name.bias`.
    pub(crate) fn from_tensors(
        name: &str,
        tensors: &HashMap<String, Tensor>,
        input: Chw,
        outputs: usize,
        shape: ConvShape,
    ) -> Result<Self, WeightsError> {
        Self::check(name, input, outputs, shape).map_err(WeightsError::Mismatch)?;
        let (weight, bias) = read(name, tensors, [input[0], outputs, shape.kernel, shape.kernel], outputs)?;
        Ok(ConvTranspose2d { name: name.to_string(), weight, bias, input, shape })
    }

    /// `batch x out x OH x OW` for a `batch x C*H*W` (or `batch x C x H x W`) input.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let s = self.shape;
        let y = as_images(x, self.input)?.conv_transpose2d(self.weight.as_tensor(), s.padding, 0, s.stride, 1)?;
        Ok(y.broadcast_add(&self.bias.as_tensor().reshape((1, self.outputs(), 1, 1))?)?)
    }

    /// Parameter-name prefix.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `[in, out, k, k]`.
    pub fn weight(&self) -> &Tensor {
        self.weight.as_tensor()
    }

    /// One bias per output channel.
    pub fn bias(&self) -> &Tensor {
        self.bias.as_tensor()
    }

    /// The `[C, H, W]` it reads.
    pub fn input(&self) -> Chw {
        self.input
    }

    /// Kernel, stride and padding.
    pub fn shape(&self) -> ConvShape {
        self.shape
    }

    /// Output channels.
    pub fn outputs(&self) -> usize {
        self.weight.dims()[1]
    }

    /// The `[C, H, W]` it writes.
    pub fn output(&self) -> Chw {
        let [_, h, w] = self.input;
        let side = |n| self.shape.transpose_out(n).expect("checked when built");
        [self.outputs(), side(h), side(w)]
    }

    /// Weight then bias as optimiser parameters (`in_encoder` picks the weight-decay group).
    pub fn parameters(&self, in_encoder: bool) -> [Parameter; 2] {
        parameters(&self.name, &self.weight, &self.bias, in_encoder)
    }
}
