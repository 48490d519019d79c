//! What convolutional nodes add to lowering: weights laid out one output channel per row (so
//! that the int8 per-channel quantization of Dense applies unchanged), then stored tap-major
//! (format version 3, what the optimized kernels run on), the blob's one-byte geometry fields,
//! and the `[C, H, W]` of every tensor the runtime runs a spatial op on.

use std::collections::HashMap;

use ndarray::Array2;
use tinyvae::format::{ConvGeometry, DType};
use tinyvae::kernels::{conv_layout, ConvDims};

use super::{Lowered, QuantizeError};
use crate::ir::{Chw, Graph, Op, Shape};

/// A Conv's or ConvTranspose's weights as the runtime stores them: one row per output channel
/// (`[out][in / groups][kh][kw]`; a ConvTranspose's `[in][out][kh][kw]` is transposed so that
/// each output channel's taps are one row).
pub(super) fn conv_rows(op: &Op) -> Array2<f32> {
    match op {
        Op::Conv { weight, .. } => {
            let (o, i, kh, kw) = weight.dim();
            Array2::from_shape_fn((o, i * kh * kw), |(r, c)| weight[[r, c / (kh * kw), (c / kw) % kh, c % kw]])
        }
        Op::ConvTranspose { weight, .. } => {
            let (i, o, kh, kw) = weight.dim();
            Array2::from_shape_fn((o, i * kh * kw), |(r, c)| weight[[c / (kh * kw), r, (c / kw) % kh, c % kw]])
        }
        _ => Array2::zeros((0, 0)),
    }
}

/// The blob's geometry record of a Conv or ConvTranspose; every field must fit a byte.
pub(super) fn conv_geometry(name: &str, op: &Op) -> Result<ConvGeometry, QuantizeError> {
    let (kh, kw, stride, dilation, pads, groups) = match op {
        Op::Conv { weight, geometry: g, .. } => {
            (weight.dim().2, weight.dim().3, g.stride, g.dilation, g.pads, g.groups)
        }
        Op::ConvTranspose { weight, stride, pads, .. } => (weight.dim().2, weight.dim().3, *stride, [1, 1], *pads, 1),
        _ => return Err(QuantizeError::NotAnActivation { node: name.to_string(), op: op.name() }),
    };
    let byte = |v: usize, what: &'static str| {
        u8::try_from(v).map_err(|_| QuantizeError::Geometry { node: name.to_string(), what, value: v })
    };
    Ok(ConvGeometry {
        kh: byte(kh, "kernel height")?,
        kw: byte(kw, "kernel width")?,
        stride_h: byte(stride[0], "stride")?,
        stride_w: byte(stride[1], "stride")?,
        dilation_h: byte(dilation[0], "dilation")?,
        dilation_w: byte(dilation[1], "dilation")?,
        pad_top: byte(pads[0], "top padding")?,
        pad_left: byte(pads[1], "left padding")?,
        groups: u16::try_from(groups).map_err(|_| QuantizeError::Geometry {
            node: name.to_string(),
            what: "groups",
            value: groups,
        })?,
    })
}

/// The `[C, H, W]` each tensor has in the blob: what a spatial op reads or writes, or what an
/// elementwise op passes on. A value read as two different images cannot be one tensor.
pub(super) fn tensor_shapes(g: &Graph, lowered: &[Lowered<'_>]) -> Result<HashMap<String, Chw>, QuantizeError> {
    let shapes = g.value_shapes()?;
    let mut chw: HashMap<String, Chw> = HashMap::new();
    let mut claim = |v: &str, s: Chw, node: &str| -> Result<(), QuantizeError> {
        match chw.insert(v.to_string(), s) {
            Some(old) if old != s => {
                Err(QuantizeError::ShapeConflict { node: node.to_string(), value: v.to_string(), a: old, b: s })
            }
            _ => Ok(()),
        }
    };
    for n in &g.nodes {
        if let Some(s) = n.op.spatial_input() {
            claim(&n.inputs[0], s, &n.name)?;
        }
    }
    for (v, s) in &shapes {
        if let Shape::Image(s) = s {
            claim(v, *s, v)?;
        }
    }
    // Fused ReLUs write the value their Conv wrote, under the ReLU's name.
    for n in lowered {
        if let Lowered::Conv { op, output, name, .. } = n {
            if let Some(Ok(s)) = op.spatial_output() {
                claim(output, s, name)?;
            }
        }
    }
    Ok(chw)
}

/// A convolution's quantized row-major arrays (weights, biases, requantization) as the blob
/// stores them, tap-major ([`conv_layout::tap_major_arrays`]): `conv` is the node's name, its
/// input and output `[C, H, W]`, geometry and direction; `in_zero_point` is given on int8
/// graphs.
#[allow(clippy::type_complexity)]
pub(super) fn tap_major(
    (name, shapes, geometry, transposed): (&str, Option<(&Chw, &Chw)>, ConvGeometry, bool),
    weight_dtype: DType,
    in_zero_point: Option<i32>,
    arrays: (&[u8], &[u8], &[u8]),
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), QuantizeError> {
    let shape = |&[c, h, w]: &Chw| tinyvae::kernels::Shape::new(c, h, w);
    let dims = shapes
        .and_then(|(i, o)| ConvDims::new(&geometry, shape(i), shape(o), transposed))
        .ok_or(QuantizeError::ConvShape { node: name.to_string(), what: "input/output shapes" })?;
    conv_layout::tap_major_arrays(&dims, transposed, weight_dtype.size(), in_zero_point, arrays)
        .ok_or(QuantizeError::ConvShape { node: name.to_string(), what: "weights" })
}
