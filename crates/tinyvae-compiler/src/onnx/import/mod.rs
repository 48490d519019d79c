//! ONNX -> float IR.
//!
//! The importer walks the ONNX nodes in order, keeping for every ONNX value either an
//! activation (an IR value plus its per-sample shape) or a constant folded at import time.
//! Constants cover weights and the small integer tensors exporters use to compute shapes
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, what `x.view(x.size(0), -1)` becomes),
//! where the batch size is carried as a symbol. Layout ops (Flatten, Reshape, Identity,
//! Dropout, ...) become aliases, so only arithmetic reaches the IR.
//!
//! Which function imports which op type is one registration table (`ops`, one module per op
//! family, as tract-onnx registers its ops); the walker here only looks handlers up in it. The
//! same table is the menu that the unsupported-op error quotes, so the two cannot disagree.

mod ops;
mod tensor;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ndarray::{Array1, Array2};
use prost::Message;

use self::tensor::{const_from_proto, product, type_name, Const, ExternalData};
use super::proto as pb;
use super::proto::tensor_proto::DataType;
use super::{META_CLASSES, META_LATENT, META_OUTPUT, META_ROLE};
use crate::ir::{Graph, GraphError, Input, Node, Op, Role};

pub use self::ops::SupportedOps;

/// Why a model could not be imported. Node-level problems name the node and its op type; the
/// model itself is for the caller to name (the CLI adds the file), so it is named once.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read the file")]
    Io(#[source] std::io::Error),
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model (protobuf decoding failed)")]
    Decode(#[source] prost::DecodeError),
    /// The model holds no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// Some weights are stored as sparse tensors.
    #[error("sparse initializers are not supported")]
    SparseInitializers,
    /// An initializer is stored as external data, and the model came without the folder its
    /// location is relative to (as bytes or a decoded proto).
    #[error(
        "initializer `{tensor}` is stored as external data in `{location}`, which is found relative to \
         the model file: import the model from its file"
    )]
    ExternalDataWithoutFolder {
        /// ONNX initializer name.
        tensor: String,
        /// The `location` entry, as the model spells it.
        location: String,
    },
    /// An external-data location that is not a relative path to a file inside the model's
    /// folder: absolute, through `..`, through a symbolic link that leads out, or missing.
    #[error("initializer `{tensor}`: external data location `{location}` {problem}")]
    ExternalDataLocation {
        /// ONNX initializer name.
        tensor: String,
        /// The `location` entry, as the model spells it.
        location: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// An external-data file that cannot be opened or read (a missing sidecar, permissions).
    #[error("initializer `{tensor}`: cannot read external data `{location}`")]
    ExternalDataRead {
        /// ONNX initializer name.
        tensor: String,
        /// The `location` entry, as the model spells it.
        location: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An external-data `offset` or `length` that does not fit the file or the tensor.
    #[error("initializer `{tensor}`: external data `{location}` {problem}")]
    ExternalDataLayout {
        /// ONNX initializer name.
        tensor: String,
        /// The `location` entry, as the model spells it.
        location: String,
        /// What does not fit.
        problem: String,
    },
    /// A graph input that is not a FLOAT tensor of shape `[batch, features...]`.
    #[error("graph input `{input}` {problem}")]
    Input {
        /// ONNX value name.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Every graph input is an initializer.
    #[error("the graph has no inputs (every input is an initializer)")]
    NoInputs,
    /// An op the IR has no equivalent for.
    #[error("unsupported ONNX op `{op}` at node `{node}`: tinyvae imports {SupportedOps}")]
    UnsupportedOp {
        /// ONNX op type (prefixed by its domain when not the default one).
        op: String,
        /// ONNX node name.
        node: String,
    },
    /// A supported op used in a way the IR cannot express (bad attribute, runtime weights,
    /// shape mismatch, ...).
    #[error("node `{node}` ({op}): {msg}")]
    Node {
        /// ONNX node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A graph output that is not a value computed from the inputs.
    #[error("graph output `{output}` {problem}")]
    Output {
        /// ONNX value name.
        output: String,
        /// What it is instead.
        problem: &'static str,
    },
    /// The graph has no outputs.
    #[error("the graph has no outputs")]
    NoOutputs,
    /// A tinyvae metadata entry holds a value it cannot hold.
    #[error("metadata `{key}` = `{value}` is not {expected}")]
    Metadata {
        /// Metadata key (one of the `META_*` keys).
        key: &'static str,
        /// The value found.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The metadata's latent size disagrees with the first graph input.
    #[error("metadata says latent {latent}, but the first input `{input}` has {features} features")]
    LatentMismatch {
        /// Latent size from the metadata.
        latent: usize,
        /// First graph input.
        input: String,
        /// Its features.
        features: usize,
    },
    /// The metadata's class count does not match the label input (the graph's second).
    #[error(
        "metadata says {classes} classes, but the label input (the graph's second) has {features} features (0: none)"
    )]
    ClassesMismatch {
        /// Class count from the metadata.
        classes: usize,
        /// Features of the second input (0 without one).
        features: usize,
    },
    /// The metadata say encoder, and the outputs do not have the latent size.
    #[error(
        "metadata says encoder of latent {latent}, which needs two outputs (mu, logvar) or one (z) of \
         {latent} features, but the outputs have {outputs:?}"
    )]
    EncoderOutputs {
        /// Latent size (from the metadata, or the first output).
        latent: usize,
        /// Features of each graph output.
        outputs: Vec<usize>,
    },
    /// The graph the importer built fails the IR's own checks.
    #[error("the imported graph is inconsistent")]
    Graph(#[source] GraphError),
}

/// Reads and imports an ONNX file. Initializers stored as external data (a sidecar such as
/// `decoder.onnx.data`, which `torch.onnx.export` writes since torch 2.9) are read from the
/// file's folder, which ONNX locations are relative to; a location that leads out of it is an
/// error.
pub fn import_file(path: &Path) -> Result<Graph, ImportError> {
    let bytes = std::fs::read(path).map_err(ImportError::Io)?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    import_bytes_in(&bytes, folder)
}

/// Imports a serialized ONNX model. Bytes have no folder, so initializers stored as external
/// data are an error ([`ImportError::ExternalDataWithoutFolder`]): import the file instead.
pub fn import_bytes(bytes: &[u8]) -> Result<Graph, ImportError> {
    import_proto(&decode(bytes)?)
}

/// Imports a serialized ONNX model whose external data, if any, is relative to `folder` (the
/// folder the model file was in).
pub fn import_bytes_in(bytes: &[u8], folder: &Path) -> Result<Graph, ImportError> {
    import_proto_in(&decode(bytes)?, folder)
}

/// Imports a decoded ONNX model; external data is an error, as for [`import_bytes`].
pub fn import_proto(model: &pb::ModelProto) -> Result<Graph, ImportError> {
    import_model(model, None)
}

/// Imports a decoded ONNX model whose external data, if any, is relative to `folder`.
pub fn import_proto_in(model: &pb::ModelProto, folder: &Path) -> Result<Graph, ImportError> {
    import_model(model, Some(folder))
}

fn decode(bytes: &[u8]) -> Result<pb::ModelProto, ImportError> {
    pb::ModelProto::decode(bytes).map_err(ImportError::Decode)
}

fn import_model(model: &pb::ModelProto, folder: Option<&Path>) -> Result<Graph, ImportError> {
    let graph = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    let mut imp = Importer::new(graph, folder)?;
    for (k, n) in graph.node.iter().enumerate() {
        imp.node(n, k)?;
    }
    imp.finish(model, graph)
}

/// What an ONNX value is during import.
#[derive(Clone, Debug)]
enum Val {
    /// Computed at run time: IR value `ir`, each sample of shape `dims` (batch axis excluded).
    Act {
        ir: String,
        dims: Vec<usize>,
    },
    Const(Const),
}

/// The value table and the IR built so far.
struct Importer {
    vals: HashMap<String, Val>,
    /// Initializers that failed to decode: only an error if something reads them.
    bad: HashMap<String, String>,
    nodes: Vec<Node>,
    /// IR value -> index of the node writing it.
    producer: HashMap<String, usize>,
    /// ONNX value -> number of readers (nodes and graph outputs).
    uses: HashMap<String, usize>,
    inputs: Vec<Input>,
    /// The numeric batch size the inputs declare, when they declare one: a Reshape to it keeps
    /// the batch axis.
    declared_batch: Option<i64>,
    /// ONNX outputs of `HardSigmoid(x; 1/6, 1/2)` nodes -> the IR value `x`: the gate of a hard
    /// swish `x * HardSigmoid(x)`, which a Mul completes.
    hard_gates: HashMap<String, String>,
}

/// What an op handler returns: the problem, which the walker attributes to the node.
type NodeResult = Result<(), String>;

fn node_name(n: &pb::NodeProto, k: usize) -> String {
    if !n.name.is_empty() {
        n.name.clone()
    } else if let Some(o) = n.output.first().filter(|o| !o.is_empty()) {
        o.clone()
    } else {
        format!("{}_{k}", n.op_type)
    }
}

impl Importer {
    fn new(graph: &pb::GraphProto, folder: Option<&Path>) -> Result<Self, ImportError> {
        if !graph.sparse_initializer.is_empty() {
            return Err(ImportError::SparseInitializers);
        }
        let mut vals = HashMap::new();
        let mut bad = HashMap::new();
        let mut external = ExternalData::new(folder);
        for t in &graph.initializer {
            let inlined = external.inline(t)?;
            match const_from_proto(inlined.as_ref().unwrap_or(t)) {
                Ok(c) => {
                    vals.insert(t.name.clone(), Val::Const(c));
                }
                Err(m) => {
                    bad.insert(t.name.clone(), format!("initializer `{}`: {m}", t.name));
                }
            }
        }
        let mut inputs = Vec::new();
        let mut batches = HashSet::new();
        for vi in &graph.input {
            // Older exporters also list the initializers as graph inputs.
            if vals.contains_key(&vi.name) || bad.contains_key(&vi.name) {
                continue;
            }
            let (dims, batch) =
                input_shape(vi).map_err(|problem| ImportError::Input { input: vi.name.clone(), problem })?;
            if let Some(b) = batch {
                batches.insert(b);
            }
            inputs.push(Input { name: vi.name.clone(), len: product(&dims) });
            vals.insert(vi.name.clone(), Val::Act { ir: vi.name.clone(), dims });
        }
        if inputs.is_empty() {
            return Err(ImportError::NoInputs);
        }
        let mut uses: HashMap<String, usize> = HashMap::new();
        for n in &graph.node {
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                *uses.entry(i.clone()).or_default() += 1;
            }
        }
        for o in &graph.output {
            *uses.entry(o.name.clone()).or_default() += 1;
        }
        let declared_batch = if batches.len() == 1 { batches.into_iter().next() } else { None };
        Ok(Importer {
            vals,
            bad,
            nodes: Vec::new(),
            producer: HashMap::new(),
            uses,
            inputs,
            declared_batch,
            hard_gates: HashMap::new(),
        })
    }

    fn node(&mut self, n: &pb::NodeProto, k: usize) -> Result<(), ImportError> {
        let name = node_name(n, k);
        let unsupported = |op: String| ImportError::UnsupportedOp { op, node: name.clone() };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(unsupported(format!("{}.{}", n.domain, n.op_type)));
        }
        let def = ops::find(&n.op_type).ok_or_else(|| unsupported(n.op_type.clone()))?;
        (def.import)(self, n, &name).map_err(|msg| ImportError::Node { node: name.clone(), op: n.op_type.clone(), msg })
    }

    // ---- value access ------------------------------------------------------------------

    fn input_name(n: &pb::NodeProto, k: usize) -> Option<&str> {
        n.input.get(k).map(String::as_str).filter(|s| !s.is_empty())
    }

    fn get(&self, n: &pb::NodeProto, k: usize) -> Result<Option<&Val>, String> {
        match Self::input_name(n, k) {
            None => Ok(None),
            Some(v) => match (self.vals.get(v), self.bad.get(v)) {
                (Some(val), _) => Ok(Some(val)),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err(format!("reads `{v}`, which no initializer, graph input or earlier node defines")),
            },
        }
    }

    fn need(&self, n: &pb::NodeProto, k: usize) -> Result<&Val, String> {
        self.get(n, k)?.ok_or_else(|| format!("input {k} is missing"))
    }

    /// Input `k` as an activation: (IR value, per-sample dims).
    fn act(&self, n: &pb::NodeProto, k: usize) -> Result<(String, Vec<usize>), String> {
        match self.need(n, k)? {
            Val::Act { ir, dims } => Ok((ir.clone(), dims.clone())),
            Val::Const(_) => Err(format!(
                "input `{}` is a constant; tinyvae needs this operand to be computed from the graph inputs",
                n.input[k]
            )),
        }
    }

    /// Input `k` as a per-sample vector, which is what the IR's ops work on.
    fn vec_act(&self, n: &pb::NodeProto, k: usize) -> Result<(String, usize), String> {
        let (ir, dims) = self.act(n, k)?;
        if dims.len() != 1 {
            return Err(format!(
                "input `{}` has per-sample shape {dims:?}; tinyvae needs [batch, features] here (add a Flatten before it)",
                n.input[k]
            ));
        }
        Ok((ir, dims[0]))
    }

    /// Input `k` as a constant; `what` says which operand, for the error.
    fn konst(&self, n: &pb::NodeProto, k: usize, what: &str) -> Result<Option<&Const>, String> {
        match self.get(n, k)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(Val::Act { .. }) => Err(format!(
                "{what} `{}` is computed at run time; tinyvae needs it to be an initializer or a Constant",
                n.input[k]
            )),
        }
    }

    fn need_konst(&self, n: &pb::NodeProto, k: usize, what: &str) -> Result<&Const, String> {
        self.konst(n, k, what)?.ok_or_else(|| format!("{what} (input {k}) is missing"))
    }

    fn out(n: &pb::NodeProto, k: usize) -> Result<&str, String> {
        n.output.get(k).map(String::as_str).filter(|s| !s.is_empty()).ok_or_else(|| format!("output {k} is missing"))
    }

    fn set(&mut self, n: &pb::NodeProto, val: Val) -> NodeResult {
        let o = Self::out(n, 0)?;
        self.vals.insert(o.to_string(), val);
        Ok(())
    }

    fn emit(&mut self, name: &str, op: Op, inputs: Vec<String>, out: &str, dims: Vec<usize>) {
        self.producer.insert(out.to_string(), self.nodes.len());
        self.nodes.push(Node { name: name.to_string(), op, inputs, output: out.to_string() });
        self.vals.insert(out.to_string(), Val::Act { ir: out.to_string(), dims });
    }

    fn uses(&self, v: &str) -> usize {
        self.uses.get(v).copied().unwrap_or(0)
    }

    /// The Dense node writing IR value `ir`, if that is what writes it.
    fn dense_of(&self, ir: &str) -> Option<(usize, &Array2<f32>, &Array1<f32>)> {
        let &idx = self.producer.get(ir)?;
        match &self.nodes[idx].op {
            Op::Dense { weight, bias } => Some((idx, weight, bias)),
            _ => None,
        }
    }

    // ---- graph outputs and role --------------------------------------------------------

    fn finish(mut self, model: &pb::ModelProto, graph: &pb::GraphProto) -> Result<Graph, ImportError> {
        let input_names: HashSet<String> = self.inputs.iter().map(|i| i.name.clone()).collect();
        let onnx_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let mut outputs = Vec::new();
        let mut out_lens = Vec::new();
        for vo in &graph.output {
            let output_err = |problem| ImportError::Output { output: vo.name.clone(), problem };
            let (ir, dims) =
                match self.vals.get(&vo.name) {
                    Some(Val::Act { ir, dims }) => (ir.clone(), dims.clone()),
                    Some(Val::Const(_)) => return Err(output_err("is a constant")),
                    None if self.hard_gates.contains_key(&vo.name) => return Err(output_err(
                        "is a HardSigmoid, which tinyvae imports only as the gate of x * HardSigmoid(x) (hard swish)",
                    )),
                    None => return Err(output_err("is not computed by any node")),
                };
            let mut name = ir.clone();
            // Outputs reached through aliases (Reshape, Identity, ...) keep their ONNX name by
            // renaming the IR value behind them, unless that value is itself visible.
            if ir != vo.name
                && !input_names.contains(&ir)
                && !onnx_outputs.contains(ir.as_str())
                && !outputs.contains(&ir)
                && self.producer.contains_key(&ir)
            {
                for node in &mut self.nodes {
                    for i in node.inputs.iter_mut().chain(std::iter::once(&mut node.output)) {
                        if *i == ir {
                            *i = vo.name.clone();
                        }
                    }
                }
                if let Some(idx) = self.producer.remove(&ir) {
                    self.producer.insert(vo.name.clone(), idx);
                }
                for v in self.vals.values_mut() {
                    if let Val::Act { ir: other, .. } = v {
                        if *other == ir {
                            *other = vo.name.clone();
                        }
                    }
                }
                name = vo.name.clone();
            }
            outputs.push(name);
            out_lens.push(product(&dims));
        }
        if outputs.is_empty() {
            return Err(ImportError::NoOutputs);
        }
        let nodes = dead_code_elimination(self.nodes, &outputs);
        let last_op = |k: usize| nodes.iter().find(|nd| nd.output == outputs[k]).map(|nd| &nd.op);
        let meta: HashMap<&str, &str> =
            model.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
        let bad_meta = |key: &'static str, value: &str, expected| ImportError::Metadata {
            key,
            value: value.to_string(),
            expected,
        };
        let number = |key: &'static str| -> Result<Option<usize>, ImportError> {
            meta.get(key).map(|v| v.trim().parse::<usize>().map_err(|_| bad_meta(key, v, "a number"))).transpose()
        };
        let inputs = self.inputs;
        let second_input = inputs.get(1).map_or(0, |i| i.len);
        let role = match meta.get(META_ROLE).copied() {
            Some("decoder") => {
                let bernoulli = match meta.get(META_OUTPUT).copied() {
                    Some("bernoulli") => true,
                    Some("gaussian") => false,
                    None => matches!(last_op(0), Some(Op::Sigmoid)),
                    Some(o) => return Err(bad_meta(META_OUTPUT, o, "bernoulli or gaussian")),
                };
                let latent = number(META_LATENT)?.unwrap_or(inputs[0].len);
                let classes = number(META_CLASSES)?.unwrap_or(second_input);
                if latent != inputs[0].len {
                    return Err(ImportError::LatentMismatch {
                        latent,
                        input: inputs[0].name.clone(),
                        features: inputs[0].len,
                    });
                }
                // A blob's label input has exactly `classes` values (none without classes).
                if classes != second_input {
                    return Err(ImportError::ClassesMismatch { classes, features: second_input });
                }
                if let Some(extra) = outputs.get(1) {
                    let problem = "is a second output, and a decoder has one (its image)";
                    return Err(ImportError::Output { output: extra.clone(), problem });
                }
                Role::Decoder { latent, classes, bernoulli }
            }
            Some("encoder") => {
                let latent = number(META_LATENT)?.unwrap_or(out_lens[0]);
                let classes = number(META_CLASSES)?.unwrap_or(second_input);
                // Two outputs are (mu, logvar); one is a deterministic (autoencoder) encoder's z.
                if !matches!(out_lens.len(), 1 | 2) || out_lens.iter().any(|&l| l != latent) {
                    return Err(ImportError::EncoderOutputs { latent, outputs: out_lens });
                }
                // As for a decoder.
                if classes != second_input {
                    return Err(ImportError::ClassesMismatch { classes, features: second_input });
                }
                Role::Encoder { latent, classes }
            }
            Some("generic") => Role::Generic,
            // As the runtime requires of an autoencoder blob.
            Some("autoencoder") if inputs.len() != 1 || out_lens.len() != 1 || out_lens[0] != inputs[0].len => {
                let expected = "possible for this graph: an autoencoder maps one input to one output of its length";
                return Err(bad_meta(META_ROLE, "autoencoder", expected));
            }
            Some("autoencoder") => Role::Autoencoder,
            // As the runtime requires of a classifier blob.
            Some("classifier") if inputs.len() != 1 || out_lens.len() != 1 || out_lens[0] < 2 => {
                let expected = "possible for this graph: a classifier maps one input to one output of 2 or more logits";
                return Err(bad_meta(META_ROLE, "classifier", expected));
            }
            Some("classifier") => {
                let classes = number(META_CLASSES)?.unwrap_or(out_lens[0]);
                if classes != out_lens[0] {
                    let value = classes.to_string();
                    return Err(bad_meta(META_CLASSES, &value, "the classifier output's length"));
                }
                Role::Classifier { classes }
            }
            Some(r) => return Err(bad_meta(META_ROLE, r, "decoder, encoder, autoencoder, classifier or generic")),
            None => {
                // One vector in, one of the same length out: a whole autoencoder (checked
                // first: an image autoencoder ends in a sigmoid too).
                if inputs.len() == 1 && out_lens.len() == 1 && out_lens[0] == inputs[0].len {
                    Role::Autoencoder
                } else if out_lens.len() == 2 && out_lens[0] == out_lens[1] {
                    Role::Encoder { latent: out_lens[0], classes: if inputs.len() == 2 { second_input } else { 0 } }
                } else if out_lens.len() == 1 && matches!(last_op(0), Some(Op::Sigmoid)) {
                    Role::Decoder { latent: inputs[0].len, classes: second_input, bernoulli: true }
                } else {
                    Role::Generic
                }
            }
        };
        // A decoder or encoder takes z or x, then at most a label (what a blob of either holds).
        if let (Role::Decoder { .. } | Role::Encoder { .. }, Some(extra)) = (role, inputs.get(2)) {
            let problem = "is a third input; a decoder or encoder takes z or x, then at most a label".to_string();
            return Err(ImportError::Input { input: extra.name.clone(), problem });
        }
        let g = Graph { inputs, nodes, outputs, role };
        g.value_lens().map_err(ImportError::Graph)?;
        Ok(g)
    }
}

/// Drops nodes nothing reads: a Dense whose output was only split or re-biased into copies.
fn dead_code_elimination(mut nodes: Vec<Node>, outputs: &[String]) -> Vec<Node> {
    loop {
        let read: HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.inputs.iter().map(String::as_str))
            .chain(outputs.iter().map(String::as_str))
            .collect();
        let keep: Vec<bool> = nodes.iter().map(|n| read.contains(n.output.as_str())).collect();
        if keep.iter().all(|&k| k) {
            return nodes;
        }
        let mut k = keep.into_iter();
        nodes.retain(|_| k.next().unwrap_or(true));
    }
}

/// Per-sample dims of a graph input (everything after the batch axis), and the numeric batch
/// size if the input declares one.
fn input_shape(vi: &pb::ValueInfoProto) -> Result<(Vec<usize>, Option<i64>), String> {
    use pb::tensor_shape_proto::dimension::Value as D;
    let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &vi.r#type else {
        return Err("is not a tensor".into());
    };
    if t.elem_type != DataType::Float as i32 {
        return Err(format!("has element type {}; tinyvae models take FLOAT inputs", type_name(t.elem_type)));
    }
    let shape = t.shape.as_ref().ok_or("has no shape; tinyvae needs [batch, features...]")?;
    if shape.dim.len() < 2 {
        return Err(format!("has rank {}; tinyvae needs [batch, features...]", shape.dim.len()));
    }
    let batch = match &shape.dim[0].value {
        Some(D::DimValue(v)) => Some(*v),
        _ => None,
    };
    let dims = shape.dim[1..]
        .iter()
        .enumerate()
        .map(|(k, d)| match &d.value {
            Some(D::DimValue(v)) if *v > 0 => Ok(*v as usize),
            Some(D::DimParam(p)) => {
                Err(format!("has a symbolic dimension `{p}` at axis {}; only the batch axis may be symbolic", k + 1))
            }
            _ => Err(format!("has an unknown or empty dimension at axis {}", k + 1)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let len = product(&dims);
    if len > crate::ir::MAX_VALUE_LEN {
        return Err(format!(
            "has {dims:?} = {len} values per sample; tinyvae takes at most {}",
            crate::ir::MAX_VALUE_LEN
        ));
    }
    Ok((dims, batch))
}
