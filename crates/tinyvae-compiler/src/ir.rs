//! The float intermediate representation: a topologically ordered list of nodes over named
//! vector values, with a reference evaluator (ndarray) used for calibration and fidelity checks.
//!
//! Every value is a batch of vectors (`batch x len`), which is all an MLP autoencoder needs;
//! ONNX import maps Gemm/MatMul+Add/activations/Concat onto this, and export maps it back.

use std::collections::HashMap;

use ndarray::{concatenate, Array1, Array2, ArrayView2, Axis};

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
        }
    }

    /// True for one-input elementwise functions.
    pub fn is_activation(&self) -> bool {
        matches!(self, Op::Relu | Op::LeakyRelu { .. } | Op::Sigmoid | Op::Tanh)
    }
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

impl Graph {
    /// Feature length of every value, checking shapes and order; the first problem found is
    /// returned naming its node.
    pub fn value_lens(&self) -> Result<HashMap<String, usize>, GraphError> {
        let mut lens: HashMap<String, usize> = HashMap::new();
        for i in &self.inputs {
            if i.len == 0 {
                return Err(GraphError::EmptyInput { input: i.name.clone() });
            }
            lens.insert(i.name.clone(), i.len);
        }
        for n in &self.nodes {
            let mut ins = Vec::new();
            for v in &n.inputs {
                let len = lens.get(v).copied().ok_or_else(|| GraphError::ReadBeforeWrite {
                    node: n.name.clone(),
                    op: n.op.name(),
                    value: v.clone(),
                })?;
                ins.push(len);
            }
            let out = match &n.op {
                Op::Dense { weight, bias } => {
                    if ins.len() != 1 {
                        return Err(GraphError::NeedsOneInput { node: n.name.clone(), op: "Dense" });
                    }
                    if weight.ncols() != ins[0] {
                        return Err(GraphError::WeightShape {
                            node: n.name.clone(),
                            weight_inputs: weight.ncols(),
                            input: n.inputs[0].clone(),
                            features: ins[0],
                        });
                    }
                    if bias.len() != weight.nrows() {
                        return Err(GraphError::BiasShape {
                            node: n.name.clone(),
                            bias: bias.len(),
                            outputs: weight.nrows(),
                        });
                    }
                    weight.nrows()
                }
                Op::Concat => {
                    if ins.is_empty() {
                        return Err(GraphError::EmptyConcat { node: n.name.clone() });
                    }
                    ins.iter().sum()
                }
                op => {
                    if ins.len() != 1 {
                        return Err(GraphError::NeedsOneInput { node: n.name.clone(), op: op.name() });
                    }
                    ins[0]
                }
            };
            if lens.insert(n.output.clone(), out).is_some() {
                return Err(GraphError::Rewrite { node: n.name.clone(), value: n.output.clone() });
            }
        }
        for o in &self.outputs {
            if !lens.contains_key(o) {
                return Err(GraphError::OutputNotComputed { output: o.clone() });
            }
        }
        Ok(lens)
    }

    /// Features of graph output `k`.
    pub fn output_len(&self, k: usize) -> Result<usize, GraphError> {
        let lens = self.value_lens()?;
        let name = self.outputs.get(k).ok_or(GraphError::NoOutput { index: k })?;
        Ok(lens[name])
    }

    /// Evaluates the graph in f32 and returns every value (inputs included), by name.
    /// `inputs[k]` is `batch x inputs[k].len`.
    pub fn eval_all(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<HashMap<String, Array2<f32>>, GraphError> {
        if inputs.len() != self.inputs.len() {
            return Err(GraphError::InputCount { expected: self.inputs.len(), given: inputs.len() });
        }
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
            let y = match &n.op {
                Op::Dense { weight, bias } => get(&n.inputs[0])?.dot(&weight.t()) + bias,
                Op::Relu => get(&n.inputs[0])?.mapv(|v| v.max(0.0)),
                Op::LeakyRelu { alpha } => get(&n.inputs[0])?.mapv(|v| if v >= 0.0 { v } else { alpha * v }),
                Op::Sigmoid => get(&n.inputs[0])?.mapv(|v| 1.0 / (1.0 + (-v).exp())),
                Op::Tanh => get(&n.inputs[0])?.mapv(f32::tanh),
                Op::Concat => {
                    let parts: Vec<ArrayView2<f32>> =
                        n.inputs.iter().map(|v| get(v).map(|a| a.view())).collect::<Result<_, _>>()?;
                    concatenate(Axis(1), &parts)
                        .map_err(|source| GraphError::Concat { node: n.name.clone(), source })?
                }
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
