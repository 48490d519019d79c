//! The f32 reference evaluator of the IR: what calibration measures ranges on and what
//! fidelity is measured against when no ONNX file is at hand.
//!
//! Convolutions go through matrix products (ndarray's `dot`, which is blocked and vectorized):
//! a Conv gathers its input patches into a `cols x (OH*OW)` matrix per sample and group
//! (im2col); a ConvTranspose multiplies first and scatters the products into the output
//! (col2im). Calibrating on a thousand 28 x 28 images then takes seconds, not minutes.

use std::collections::HashMap;

use ndarray::{concatenate, s, Array1, Array2, Array4, ArrayView1, ArrayView2, Axis};

use super::{Chw, ConvGeometry, Graph, GraphError, Op};

impl Graph {
    /// Evaluates the graph in f32 and returns every value (inputs included), by name.
    /// `inputs[k]` is `batch x inputs[k].len`; every value is `batch x len`, images flattened
    /// channel-major (NCHW).
    pub fn eval_all(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<HashMap<String, Array2<f32>>, GraphError> {
        if inputs.len() != self.inputs.len() {
            return Err(GraphError::InputCount { expected: self.inputs.len(), given: inputs.len() });
        }
        let shapes = self.value_shapes()?;
        let mut values: HashMap<String, Array2<f32>> = HashMap::new();
        for (spec, x) in self.inputs.iter().zip(inputs) {
            if x.ncols() != spec.len {
                return Err(GraphError::InputWidth { input: spec.name.clone(), expected: spec.len, got: x.ncols() });
            }
            values.insert(spec.name.clone(), x.to_owned());
        }
        for n in &self.nodes {
            let get = |v: &String| {
                values.get(v).ok_or_else(|| GraphError::ReadBeforeWrite {
                    node: n.name.clone(),
                    op: n.op.name(),
                    value: v.clone(),
                })
            };
            let out_chw = || match shapes.get(&n.output) {
                Some(super::Shape::Image(chw)) => *chw,
                _ => [0; 3],
            };
            let y = match &n.op {
                Op::Dense { weight, bias } => get(&n.inputs[0])?.dot(&weight.t()) + bias,
                Op::Relu => get(&n.inputs[0])?.mapv(|v| v.max(0.0)),
                Op::LeakyRelu { alpha } => get(&n.inputs[0])?.mapv(|v| if v >= 0.0 { v } else { alpha * v }),
                Op::Sigmoid => get(&n.inputs[0])?.mapv(sigmoid),
                Op::Tanh => get(&n.inputs[0])?.mapv(f32::tanh),
                Op::Silu => get(&n.inputs[0])?.mapv(|v| v * sigmoid(v)),
                Op::HardSwish => get(&n.inputs[0])?.mapv(|v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
                Op::Concat => {
                    let parts: Vec<ArrayView2<f32>> =
                        n.inputs.iter().map(|v| get(v).map(|a| a.view())).collect::<Result<_, _>>()?;
                    concatenate(Axis(1), &parts)
                        .map_err(|source| GraphError::Concat { node: n.name.clone(), source })?
                }
                Op::Add => get(&n.inputs[0])? + get(&n.inputs[1])?,
                Op::Conv { weight, bias, input, geometry } => {
                    conv(get(&n.inputs[0])?.view(), weight, bias, *input, geometry, out_chw())
                }
                Op::ConvTranspose { weight, bias, input, stride, pads, .. } => {
                    conv_transpose(get(&n.inputs[0])?.view(), weight, bias, *input, *stride, *pads, out_chw())
                }
                Op::Upsample { input, factor } => upsample(get(&n.inputs[0])?.view(), *input, *factor),
            };
            values.insert(n.output.clone(), y);
        }
        Ok(values)
    }

    /// Evaluates the graph in f32 and returns its outputs in order.
    pub fn eval(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<Vec<Array2<f32>>, GraphError> {
        let mut all = self.eval_all(inputs)?;
        self.outputs
            .iter()
            .map(|o| all.remove(o).ok_or_else(|| GraphError::OutputNotComputed { output: o.clone() }))
            .collect()
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// `i * stride + k * dilation - pad`, when it lands in `0..n`.
fn tap(i: usize, stride: usize, k: usize, dilation: usize, pad: usize, n: usize) -> Option<usize> {
    (i * stride + k * dilation).checked_sub(pad).filter(|&v| v < n)
}

fn conv(
    x: ArrayView2<'_, f32>,
    weight: &Array4<f32>,
    bias: &Array1<f32>,
    [_, h, w]: Chw,
    g: &ConvGeometry,
    [co, oh, ow]: Chw,
) -> Array2<f32> {
    let (_, cig, kh, kw) = weight.dim();
    let cols = cig * kh * kw;
    let cog = co / g.groups;
    let wmat = weight.to_shape((co, cols)).expect("a 4-D weight reshapes to rows x cols");
    let mut y = Array2::<f32>::zeros((x.nrows(), co * oh * ow));
    let mut patches = Array2::<f32>::zeros((cols, oh * ow));
    for (xs, mut ys) in x.rows().into_iter().zip(y.rows_mut()) {
        for group in 0..g.groups {
            patches.fill(0.0);
            for c in 0..cig {
                let plane = xs.slice(s![(group * cig + c) * h * w..(group * cig + c + 1) * h * w]);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let mut row = patches.row_mut((c * kh + ky) * kw + kx);
                        for oy in 0..oh {
                            let Some(iy) = tap(oy, g.stride[0], ky, g.dilation[0], g.pads[0], h) else { continue };
                            for ox in 0..ow {
                                if let Some(ix) = tap(ox, g.stride[1], kx, g.dilation[1], g.pads[1], w) {
                                    row[oy * ow + ox] = plane[iy * w + ix];
                                }
                            }
                        }
                    }
                }
            }
            let out = wmat.slice(s![group * cog..(group + 1) * cog, ..]).dot(&patches);
            let dst = ys.slice_mut(s![group * cog * oh * ow..(group + 1) * cog * oh * ow]);
            add_bias_into(dst, out.view(), bias.slice(s![group * cog..(group + 1) * cog]));
        }
    }
    y
}

fn conv_transpose(
    x: ArrayView2<'_, f32>,
    weight: &Array4<f32>,
    bias: &Array1<f32>,
    [ci, h, w]: Chw,
    stride: [usize; 2],
    pads: [usize; 4],
    [co, oh, ow]: Chw,
) -> Array2<f32> {
    let (_, _, kh, kw) = weight.dim();
    let wmat = weight.to_shape((ci, co * kh * kw)).expect("a 4-D weight reshapes to in x (out kh kw)");
    let mut y = Array2::<f32>::zeros((x.nrows(), co * oh * ow));
    for (xs, mut ys) in x.rows().into_iter().zip(y.rows_mut()) {
        let xm = xs.to_shape((ci, h * w)).expect("an input row reshapes to channels x pixels");
        let cols = wmat.t().dot(&xm);
        for o in 0..co {
            for ky in 0..kh {
                for kx in 0..kw {
                    let products = cols.row((o * kh + ky) * kw + kx);
                    for iy in 0..h {
                        let Some(oy) = tap(iy, stride[0], ky, 1, pads[0], oh) else { continue };
                        for ix in 0..w {
                            if let Some(ox) = tap(ix, stride[1], kx, 1, pads[1], ow) {
                                ys[(o * oh + oy) * ow + ox] += products[iy * w + ix];
                            }
                        }
                    }
                }
            }
        }
        for o in 0..co {
            ys.slice_mut(s![o * oh * ow..(o + 1) * oh * ow]).mapv_inplace(|v| v + bias[o]);
        }
    }
    y
}

fn add_bias_into(mut dst: ndarray::ArrayViewMut1<'_, f32>, out: ArrayView2<'_, f32>, bias: ArrayView1<'_, f32>) {
    let pixels = out.ncols();
    for (o, row) in out.rows().into_iter().enumerate() {
        for (d, v) in dst.slice_mut(s![o * pixels..(o + 1) * pixels]).iter_mut().zip(row) {
            *d = v + bias[o];
        }
    }
}

fn upsample(x: ArrayView2<'_, f32>, [c, h, w]: Chw, [fh, fw]: [usize; 2]) -> Array2<f32> {
    let (oh, ow) = (h * fh, w * fw);
    Array2::from_shape_fn((x.nrows(), c * oh * ow), |(s, i)| {
        let (ch, rest) = (i / (oh * ow), i % (oh * ow));
        x[[s, (ch * h + (rest / ow) / fh) * w + (rest % ow) / fw]]
    })
}
