//! The float intermediate representation: a topologically ordered list of nodes over named
//! vector values, with a reference evaluator (ndarray) used for calibration and fidelity checks.
//!
//! Every value is a batch of vectors (`batch x len`), which is all an MLP autoencoder needs;
//! ONNX import maps Gemm/MatMul+Add/activations/Concat onto this, and export maps it back.

use std::collections::HashMap;
use std::fmt;

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

/// A structural problem in a graph, naming the node or value at fault.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError(pub String);

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GraphError {}

impl Graph {
    /// Feature length of every value, checking shapes and order; the first problem found is
    /// returned naming its node.
    pub fn value_lens(&self) -> Result<HashMap<String, usize>, GraphError> {
        let mut lens: HashMap<String, usize> = HashMap::new();
        for i in &self.inputs {
            if i.len == 0 {
                return Err(GraphError(format!("graph input `{}` has no features", i.name)));
            }
            lens.insert(i.name.clone(), i.len);
        }
        for n in &self.nodes {
            let mut ins = Vec::new();
            for v in &n.inputs {
                let len = lens.get(v).copied().ok_or_else(|| {
                    GraphError(format!(
                        "node `{}` ({}) reads `{v}`, which is not computed before it",
                        n.name,
                        n.op.name()
                    ))
                })?;
                ins.push(len);
            }
            let out = match &n.op {
                Op::Dense { weight, bias } => {
                    if ins.len() != 1 {
                        return Err(GraphError(format!("node `{}` (Dense) needs one input", n.name)));
                    }
                    if weight.ncols() != ins[0] {
                        return Err(GraphError(format!(
                            "node `{}` (Dense): weight has {} inputs but `{}` has {} features",
                            n.name,
                            weight.ncols(),
                            n.inputs[0],
                            ins[0]
                        )));
                    }
                    if bias.len() != weight.nrows() {
                        return Err(GraphError(format!(
                            "node `{}` (Dense): bias has {} values for {} outputs",
                            n.name,
                            bias.len(),
                            weight.nrows()
                        )));
                    }
                    weight.nrows()
                }
                Op::Concat => {
                    if ins.is_empty() {
                        return Err(GraphError(format!("node `{}` (Concat) has no inputs", n.name)));
                    }
                    ins.iter().sum()
                }
                op => {
                    if ins.len() != 1 {
                        return Err(GraphError(format!("node `{}` ({}) needs one input", n.name, op.name())));
                    }
                    ins[0]
                }
            };
            if lens.insert(n.output.clone(), out).is_some() {
                return Err(GraphError(format!("node `{}` writes `{}`, which already has a value", n.name, n.output)));
            }
        }
        for o in &self.outputs {
            if !lens.contains_key(o) {
                return Err(GraphError(format!("graph output `{o}` is not computed by any node")));
            }
        }
        Ok(lens)
    }

    /// Features of graph output `k`.
    pub fn output_len(&self, k: usize) -> Result<usize, GraphError> {
        let lens = self.value_lens()?;
        let name = self.outputs.get(k).ok_or_else(|| GraphError(format!("graph has no output {k}")))?;
        Ok(lens[name])
    }

    /// Evaluates the graph in f32 and returns every value (inputs included), by name.
    /// `inputs[k]` is `batch x inputs[k].len`.
    pub fn eval_all(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<HashMap<String, Array2<f32>>, GraphError> {
        if inputs.len() != self.inputs.len() {
            return Err(GraphError(format!("graph takes {} inputs, {} given", self.inputs.len(), inputs.len())));
        }
        let mut values: HashMap<String, Array2<f32>> = HashMap::new();
        for (spec, x) in self.inputs.iter().zip(inputs) {
            if x.ncols() != spec.len {
                return Err(GraphError(format!(
                    "input `{}` needs {} features, got {}",
                    spec.name,
                    spec.len,
                    x.ncols()
                )));
            }
            values.insert(spec.name.clone(), x.to_owned());
        }
        for n in &self.nodes {
            let get = |v: &String| {
                values.get(v).ok_or_else(|| GraphError(format!("node `{}` reads unknown value `{v}`", n.name)))
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
                    concatenate(Axis(1), &parts).map_err(|e| GraphError(format!("node `{}` (Concat): {e}", n.name)))?
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
            .map(|o| all.remove(o).ok_or_else(|| GraphError(format!("graph output `{o}` was not computed"))))
            .collect()
    }
}
