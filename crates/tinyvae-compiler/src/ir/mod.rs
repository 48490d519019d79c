//! The float intermediate representation: a topologically ordered list of nodes over named
//! values, with a reference evaluator (ndarray, `eval`) used for calibration and fidelity checks.
//!
//! Every value is stored as a batch of flat vectors (`batch x len`); a value that a spatial op
//! (Conv, ConvTranspose, Upsample) writes also has a per-sample shape `[C, H, W]`, NCHW as ONNX
//! and PyTorch lay it out. A spatial op states the `[C, H, W]` it reads, so the reshapes torch
//! emits between dense and conv layers (`view(64, 7, 7)`, `Flatten`) are not nodes: a Dense
//! reads any value as its flat vector, and a Conv reads a flat vector of the right length as its
//! stated shape.

mod compose;
mod eval;

pub use compose::ComposeError;

use std::collections::HashMap;

use ndarray::{Array1, Array2, Array4};

/// The most values per sample any one value may have: what a blob's tensor may hold
/// ([`tinyvae::format::MAX_TENSOR_LEN`]), checked here so that no later size computation
/// (arena plans, calibration buffers, kernels' weight counts) sees a larger one.
pub const MAX_VALUE_LEN: usize = tinyvae::format::MAX_TENSOR_LEN;

/// What the graph is, which decides how it is calibrated, quantized and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// z (and optionally a one-hot label) to pixels.
    Decoder {
        /// Size of z.
        latent: usize,
        /// Label classes (0: unconditional).
        classes: usize,
        /// Output is Bernoulli means (sigmoid) or Gaussian means.
        bernoulli: bool,
    },
    /// Pixels (and optionally a label) to (mu, logvar).
    Encoder {
        /// Size of z.
        latent: usize,
        /// Label classes (0: unconditional).
        classes: usize,
    },
    /// A feature vector to its reconstruction (the same length): a whole autoencoder, scored
    /// by its reconstruction error as an anomaly detector.
    Autoencoder,
    /// An image (or any feature vector) to one logit per class.
    Classifier {
        /// Classes: the output's length.
        classes: usize,
    },
    /// Anything else.
    Generic,
}

/// A graph input: a vector of `len` features per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Value name.
    pub name: String,
    /// Features per sample.
    pub len: usize,
}

/// A node operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `y = x W^T + b`, `weight` being `out x in` (PyTorch's `nn.Linear` layout).
    Dense {
        /// `out x in`.
        weight: Array2<f32>,
        /// `out`.
        bias: Array1<f32>,
    },
    /// max(x, 0).
    Relu,
    /// x if x >= 0 else alpha x.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// tanh.
    Tanh,
    /// Concatenation of the inputs along features, in order.
    Concat,
    /// 2-D convolution (cross-correlation, as ONNX and PyTorch define it).
    Conv {
        /// `[out, in / groups, kh, kw]` (PyTorch's `Conv2d` and ONNX's layout).
        weight: Array4<f32>,
        /// `out`.
        bias: Array1<f32>,
        /// The `[C, H, W]` it reads.
        input: Chw,
        /// Strides, dilations, pads and groups.
        geometry: ConvGeometry,
    },
    /// 2-D transposed convolution (groups 1, dilation 1).
    ConvTranspose {
        /// `[in, out, kh, kw]` (PyTorch's `ConvTranspose2d` and ONNX's layout).
        weight: Array4<f32>,
        /// `out`.
        bias: Array1<f32>,
        /// The `[C, H, W]` it reads.
        input: Chw,
        /// `[h, w]`.
        stride: [usize; 2],
        /// Cropped from the full output: `[top, left, bottom, right]`.
        pads: [usize; 4],
        /// Rows and columns added at the bottom and right: `[h, w]`.
        output_padding: [usize; 2],
    },
    /// Nearest-neighbour upsampling by integer factors: `y[c][i][j] = x[c][i / fh][j / fw]`.
    Upsample {
        /// The `[C, H, W]` it reads.
        input: Chw,
        /// `[fh, fw]`.
        factor: [usize; 2],
    },
    /// Elementwise sum of two values of the same length (residual connections).
    Add,
    /// `x * sigmoid(x)` (PyTorch's SiLU, also called swish).
    Silu,
    /// `x * clamp(x + 3, 0, 6) / 6`.
    HardSwish,
}

/// A per-sample image shape: channels, height, width.
pub type Chw = [usize; 3];

/// How a Conv slides over its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// `[h, w]`.
    pub stride: [usize; 2],
    /// `[h, w]`.
    pub dilation: [usize; 2],
    /// Zero padding `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// Channel groups: 1 for an ordinary convolution, the channel count for a depthwise one.
    pub groups: usize,
}

impl ConvGeometry {
    /// Stride 1, no dilation, no padding, one group.
    pub const PLAIN: ConvGeometry = ConvGeometry { stride: [1, 1], dilation: [1, 1], pads: [0; 4], groups: 1 };
}

impl Op {
    /// ONNX-style name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Dense { .. } => "Dense",
            Op::Relu => "Relu",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::Concat => "Concat",
            Op::Conv { .. } => "Conv",
            Op::ConvTranspose { .. } => "ConvTranspose",
            Op::Upsample { .. } => "Upsample",
            Op::Add => "Add",
            Op::Silu => "Silu",
            Op::HardSwish => "HardSwish",
        }
    }

    /// True for one-input elementwise functions.
    pub fn is_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh | Op::Silu | Op::HardSwish)
    }

    /// The `[C, H, W]` a spatial op reads.
    pub fn spatial_input(&self) -> Option<Chw> {
        match self {
            Op::Conv { input, .. } | Op::ConvTranspose { input, .. } | Op::Upsample { input, .. } => Some(*input),
            _ => None,
        }
    }

    /// The `[C, H, W]` a spatial op writes, or why its geometry does not fit its input.
    pub fn spatial_output(&self) -> Option<Result<Chw, String>> {
        Some(match self {
            Op::Conv { weight, input, geometry: g, .. } => conv_output(weight.dim(), *input, g),
            Op::ConvTranspose { weight, input, stride, pads, output_padding, .. } => {
                conv_transpose_output(weight.dim(), *input, *stride, *pads, *output_padding)
            }
            Op::Upsample { input: [c, h, w], factor: [fh, fw] } => {
                if *fh == 0 || *fw == 0 {
                    Err(format!("upsampling factors {fh} x {fw} must be at least 1"))
                } else {
                    match (h.checked_mul(*fh), w.checked_mul(*fw)) {
                        (Some(oh), Some(ow)) => Ok([*c, oh, ow]),
                        _ => Err(format!("upsampling {h} x {w} by {fh} x {fw} overflows")),
                    }
                }
            }
            _ => return None,
        })
    }

    /// Multiply-accumulates per sample (Dense, Conv and ConvTranspose; 0 otherwise). A
    /// transposed convolution counts only the taps that land in its output, as the runtime
    /// executes them.
    pub fn macs(&self) -> usize {
        match self {
            Op::Dense { weight, .. } => weight.len(),
            Op::Conv { weight, .. } => match self.spatial_output() {
                Some(Ok([_, oh, ow])) => weight.len().saturating_mul(oh).saturating_mul(ow),
                _ => 0,
            },
            Op::ConvTranspose { weight, input: [_, h, w], stride, pads, .. } => match self.spatial_output() {
                Some(Ok([co, oh, ow])) => {
                    let (ci, _, kh, kw) = weight.dim();
                    let taps = |n: usize, k: usize, s: usize, pad: usize, out: usize| -> usize {
                        (0..n)
                            .map(|i| (0..k).filter(|&t| (i * s + t).checked_sub(pad).is_some_and(|o| o < out)).count())
                            .sum()
                    };
                    // Saturating: on a graph `value_shapes` refuses, the count is only reported.
                    let (th, tw) = (taps(*h, kh, stride[0], pads[0], oh), taps(*w, kw, stride[1], pads[1], ow));
                    ci.saturating_mul(co).saturating_mul(th).saturating_mul(tw)
                }
                _ => 0,
            },
            _ => 0,
        }
    }
}

fn conv_output(dim: (usize, usize, usize, usize), [c, h, w]: Chw, g: &ConvGeometry) -> Result<Chw, String> {
    let (out, per_group, kh, kw) = dim;
    if g.groups == 0 || c % g.groups != 0 || out % g.groups != 0 || per_group * g.groups != c {
        return Err(format!(
            "weight {:?} with {} groups does not fit an input of {c} channels",
            [out, per_group, kh, kw],
            g.groups
        ));
    }
    if g.stride.contains(&0) || g.dilation.contains(&0) || kh == 0 || kw == 0 {
        return Err("kernel sizes, strides and dilations must be at least 1".into());
    }
    // The sizes come from the model file: every sum and product is checked.
    let overflow = || format!("input {c} x {h} x {w} with kernel {kh} x {kw} and {:?} overflows", g);
    let span = |k: usize, d: usize| d.checked_mul(k - 1).and_then(|s| s.checked_add(1));
    let padded = |n: usize, a: usize, b: usize| n.checked_add(a)?.checked_add(b);
    let (Some(ph), Some(pw), Some(sh), Some(sw)) = (
        padded(h, g.pads[0], g.pads[2]),
        padded(w, g.pads[1], g.pads[3]),
        span(kh, g.dilation[0]),
        span(kw, g.dilation[1]),
    ) else {
        return Err(overflow());
    };
    if ph < sh || pw < sw {
        return Err(format!("kernel {kh} x {kw} is larger than the padded input {ph} x {pw}"));
    }
    Ok([out, (ph - sh) / g.stride[0] + 1, (pw - sw) / g.stride[1] + 1])
}

fn conv_transpose_output(
    dim: (usize, usize, usize, usize),
    [c, h, w]: Chw,
    stride: [usize; 2],
    pads: [usize; 4],
    output_padding: [usize; 2],
) -> Result<Chw, String> {
    let (inp, out, kh, kw) = dim;
    if inp != c {
        return Err(format!("weight {:?} reads {inp} channels, but the input has {c}", [inp, out, kh, kw]));
    }
    if stride.contains(&0) || kh == 0 || kw == 0 {
        return Err("kernel sizes and strides must be at least 1".into());
    }
    // The sizes come from the model file: every sum and product is checked.
    let full =
        |n: usize, s: usize, k: usize, op: usize| n.checked_sub(1)?.checked_mul(s)?.checked_add(k)?.checked_add(op);
    let (Some(fh), Some(fw), Some(cut_h), Some(cut_w)) = (
        full(h, stride[0], kh, output_padding[0]),
        full(w, stride[1], kw, output_padding[1]),
        pads[0].checked_add(pads[2]),
        pads[1].checked_add(pads[3]),
    ) else {
        return Err(format!(
            "input {c} x {h} x {w} with kernel {kh} x {kw}, strides {stride:?} and pads {pads:?} overflows"
        ));
    };
    if fh <= cut_h || fw <= cut_w {
        return Err(format!("pads {pads:?} crop the whole {fh} x {fw} output"));
    }
    Ok([out, fh - cut_h, fw - cut_w])
}

/// One node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Node name (from ONNX, or made up), used in every error message.
    pub name: String,
    /// Operation.
    pub op: Op,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value name.
    pub output: String,
}

/// A float graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Graph inputs in order (z first, then the label, for conditional decoders).
    pub inputs: Vec<Input>,
    /// Nodes in execution order.
    pub nodes: Vec<Node>,
    /// Output value names in order (mu then logvar for encoders).
    pub outputs: Vec<String>,
    /// Role.
    pub role: Role,
}

/// A structural problem in a graph, or inputs that do not fit it; names the node or value at
/// fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// A value larger than a blob can hold ([`MAX_VALUE_LEN`]).
    #[error("`{value}` has {len} values per sample; tinyvae takes at most {MAX_VALUE_LEN}")]
    TooLarge {
        /// Value name (a graph input or a node's output).
        value: String,
        /// Its values per sample (saturated at `usize::MAX`).
        len: usize,
    },
    /// A graph input declares no features.
    #[error("graph input `{input}` has no features")]
    EmptyInput {
        /// Input name.
        input: String,
    },
    /// A node reads a value that no graph input or earlier node computes.
    #[error("node `{node}` ({op}) reads `{value}`, which is not computed before it")]
    ReadBeforeWrite {
        /// Node name.
        node: String,
        /// Its op ([`Op::name`]).
        op: &'static str,
        /// The value read.
        value: String,
    },
    /// An elementwise or Dense node without exactly one input.
    #[error("node `{node}` ({op}) needs one input")]
    NeedsOneInput {
        /// Node name.
        node: String,
        /// Its op ([`Op::name`]).
        op: &'static str,
    },
    /// An Add node without exactly two inputs.
    #[error("node `{node}` ({op}) needs two inputs")]
    NeedsTwoInputs {
        /// Node name.
        node: String,
        /// Its op ([`Op::name`]).
        op: &'static str,
    },
    /// A Concat node without inputs.
    #[error("node `{node}` (Concat) has no inputs")]
    EmptyConcat {
        /// Node name.
        node: String,
    },
    /// A Dense weight whose columns do not match its input's features.
    #[error("node `{node}` (Dense): weight has {weight_inputs} inputs but `{input}` has {features} features")]
    WeightShape {
        /// Node name.
        node: String,
        /// Columns of the weight.
        weight_inputs: usize,
        /// The value read.
        input: String,
        /// Its features.
        features: usize,
    },
    /// A Dense bias whose length is not the weight's row count.
    #[error("node `{node}` (Dense): bias has {bias} values for {outputs} outputs")]
    BiasShape {
        /// Node name.
        node: String,
        /// Bias length.
        bias: usize,
        /// Rows of the weight.
        outputs: usize,
    },
    /// Two writers of one value.
    #[error("node `{node}` writes `{value}`, which already has a value")]
    Rewrite {
        /// Node name.
        node: String,
        /// The value written twice.
        value: String,
    },
    /// A graph output no node computes.
    #[error("graph output `{output}` is not computed by any node")]
    OutputNotComputed {
        /// Output name.
        output: String,
    },
    /// An output index past the graph's outputs.
    #[error("graph has no output {index}")]
    NoOutput {
        /// The index asked for.
        index: usize,
    },
    /// Evaluation given the wrong number of inputs.
    #[error("graph takes {expected} inputs, {given} given")]
    InputCount {
        /// Graph inputs.
        expected: usize,
        /// Arrays given.
        given: usize,
    },
    /// Evaluation given an input of the wrong width.
    #[error("input `{input}` needs {expected} features, got {got}")]
    InputWidth {
        /// Input name.
        input: String,
        /// Its features.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// An encoder's single output that is neither z nor `[mu | logvar]`.
    #[error("encoder output has {got} values, expected {latent} or 2 x {latent}")]
    EncoderOutput {
        /// Values per sample.
        got: usize,
        /// Latent size.
        latent: usize,
    },
    /// A spatial op whose stated `[C, H, W]` does not have its input's length.
    #[error("node `{node}` ({op}) reads `{input}` as {expected:?}, but it has {features} values")]
    SpatialInput {
        /// Node name.
        node: String,
        /// Its op ([`Op::name`]).
        op: &'static str,
        /// The shape the op states.
        expected: Chw,
        /// The value read.
        input: String,
        /// Its length.
        features: usize,
    },
    /// A Conv, ConvTranspose or Upsample whose parameters do not fit its input.
    #[error("node `{node}` ({op}): {problem}")]
    Geometry {
        /// Node name.
        node: String,
        /// Its op ([`Op::name`]).
        op: &'static str,
        /// What does not fit.
        problem: String,
    },
    /// An Add of two values of different lengths (the IR does not broadcast).
    #[error("node `{node}` (Add) adds values of {a} and {b} features")]
    AddLengths {
        /// Node name.
        node: String,
        /// Length of the first operand.
        a: usize,
        /// Length of the second.
        b: usize,
    },
    /// A Concat whose inputs do not join (different batch sizes).
    #[error("node `{node}` (Concat) cannot join its inputs")]
    Concat {
        /// Node name.
        node: String,
        /// ndarray's error.
        #[source]
        source: ndarray::ShapeError,
    },
}

/// A value's per-sample shape: a flat vector, or an image written by a spatial op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `len` features.
    Flat(usize),
    /// `[C, H, W]`.
    Image(Chw),
}

impl Shape {
    /// Values per sample.
    pub fn len(&self) -> usize {
        match *self {
            Shape::Flat(n) => n,
            // Saturating: an image too large to count is refused by `value_shapes` as such.
            Shape::Image([c, h, w]) => c.saturating_mul(h).saturating_mul(w),
        }
    }

    /// True for a shape with no values (never produced by a valid graph).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Graph {
    /// Per-sample shape of every value, checking shapes and order; the first problem found is
    /// returned naming its node.
    pub fn value_shapes(&self) -> Result<HashMap<String, Shape>, GraphError> {
        let mut shapes: HashMap<String, Shape> = HashMap::new();
        for i in &self.inputs {
            if i.len == 0 {
                return Err(GraphError::EmptyInput { input: i.name.clone() });
            }
            if i.len > MAX_VALUE_LEN {
                return Err(GraphError::TooLarge { value: i.name.clone(), len: i.len });
            }
            shapes.insert(i.name.clone(), Shape::Flat(i.len));
        }
        for n in &self.nodes {
            let mut ins = Vec::new();
            for v in &n.inputs {
                let shape = shapes.get(v).copied().ok_or_else(|| GraphError::ReadBeforeWrite {
                    node: n.name.clone(),
                    op: n.op.name(),
                    value: v.clone(),
                })?;
                ins.push(shape);
            }
            let one_input = || {
                if ins.len() == 1 {
                    Ok(ins[0])
                } else {
                    Err(GraphError::NeedsOneInput { node: n.name.clone(), op: n.op.name() })
                }
            };
            let out = match &n.op {
                Op::Dense { weight, bias } => {
                    let features = one_input()?.len();
                    if weight.ncols() != features {
                        return Err(GraphError::WeightShape {
                            node: n.name.clone(),
                            weight_inputs: weight.ncols(),
                            input: n.inputs[0].clone(),
                            features,
                        });
                    }
                    if bias.len() != weight.nrows() {
                        return Err(GraphError::BiasShape {
                            node: n.name.clone(),
                            bias: bias.len(),
                            outputs: weight.nrows(),
                        });
                    }
                    Shape::Flat(weight.nrows())
                }
                Op::Concat => {
                    if ins.is_empty() {
                        return Err(GraphError::EmptyConcat { node: n.name.clone() });
                    }
                    Shape::Flat(ins.iter().fold(0, |sum, s| sum.saturating_add(s.len())))
                }
                Op::Add => {
                    let (a, b) = match ins[..] {
                        [a, b] => (a, b),
                        _ => return Err(GraphError::NeedsTwoInputs { node: n.name.clone(), op: "Add" }),
                    };
                    if a.len() != b.len() {
                        return Err(GraphError::AddLengths { node: n.name.clone(), a: a.len(), b: b.len() });
                    }
                    if matches!(a, Shape::Image(_)) {
                        a
                    } else {
                        b
                    }
                }
                op @ (Op::Conv { .. } | Op::ConvTranspose { .. } | Op::Upsample { .. }) => {
                    let features = one_input()?.len();
                    let expected = op.spatial_input().unwrap_or_default();
                    if expected.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(features) {
                        return Err(GraphError::SpatialInput {
                            node: n.name.clone(),
                            op: op.name(),
                            expected,
                            input: n.inputs[0].clone(),
                            features,
                        });
                    }
                    let geometry = |problem| GraphError::Geometry { node: n.name.clone(), op: op.name(), problem };
                    let chw = op.spatial_output().unwrap_or(Err(String::new())).map_err(geometry)?;
                    if let Op::Conv { bias, .. } | Op::ConvTranspose { bias, .. } = op {
                        if bias.len() != chw[0] {
                            return Err(GraphError::BiasShape {
                                node: n.name.clone(),
                                bias: bias.len(),
                                outputs: chw[0],
                            });
                        }
                    }
                    Shape::Image(chw)
                }
                _ => one_input()?,
            };
            if out.len() > MAX_VALUE_LEN {
                return Err(GraphError::TooLarge { value: n.output.clone(), len: out.len() });
            }
            if shapes.insert(n.output.clone(), out).is_some() {
                return Err(GraphError::Rewrite { node: n.name.clone(), value: n.output.clone() });
            }
        }
        for o in &self.outputs {
            if !shapes.contains_key(o) {
                return Err(GraphError::OutputNotComputed { output: o.clone() });
            }
        }
        Ok(shapes)
    }

    /// Values per sample of every value ([`Self::value_shapes`], flattened).
    pub fn value_lens(&self) -> Result<HashMap<String, usize>, GraphError> {
        Ok(self.value_shapes()?.into_iter().map(|(k, s)| (k, s.len())).collect())
    }

    /// Features of graph output `k`.
    pub fn output_len(&self, k: usize) -> Result<usize, GraphError> {
        let lens = self.value_lens()?;
        let name = self.outputs.get(k).ok_or(GraphError::NoOutput { index: k })?;
        Ok(lens[name])
    }

    /// Multiply-accumulates per sample ([`Op::macs`] summed).
    pub fn macs(&self) -> usize {
        self.nodes.iter().fold(0, |sum, n| sum.saturating_add(n.op.macs()))
    }
}
