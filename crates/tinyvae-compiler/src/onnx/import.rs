//! ONNX -> float IR.
//!
//! The importer walks the ONNX nodes in order, keeping for every ONNX value either an
//! activation (an IR value plus its per-sample shape) or a constant folded at import time.
//! Constants cover weights and the small integer tensors exporters use to compute shapes
//! (`Shape -> Gather -> Unsqueeze -> Concat -> Reshape`, what `x.view(x.size(0), -1)` becomes),
//! where the batch size is carried as a symbol. Layout ops (Flatten, Reshape, Identity,
//! Dropout, ...) become aliases, so only arithmetic reaches the IR.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, IxDyn};
use prost::Message;
use super::proto as pb;
use super::proto::tensor_proto::{DataLocation, DataType};

use super::{META_CLASSES, META_LATENT, META_OUTPUT, META_ROLE};
use crate::ir::{Graph, Input, Node, Op, Role};

/// What the importer accepts, quoted in every unsupported-op error so the user sees the
/// whole menu at once.
pub const SUPPORTED_OPS: &str = "Gemm, MatMul, Add (a constant bias after Gemm/MatMul), Relu, \
LeakyRelu, Sigmoid, Tanh, Concat (features axis), Split/Slice (features of a Gemm/MatMul output), \
Flatten, Reshape/Squeeze/Unsqueeze (keeping the batch axis), Identity, Dropout (inference), Cast, \
Transpose (of constants), Constant, and Shape/Gather (batch-size arithmetic)";

/// Why a model could not be imported. Every variant names the model, and node-level problems
/// name the node and its op type.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read ONNX model `{path}`: {err}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        err: std::io::Error,
    },
    /// The bytes are not an ONNX protobuf.
    #[error("`{model}` is not an ONNX model (protobuf decoding failed: {err})")]
    Decode {
        /// File path or source name.
        model: String,
        /// Underlying error.
        err: prost::DecodeError,
    },
    /// An op the IR has no equivalent for.
    #[error("{model}: unsupported ONNX op `{op}` at node `{node}`: tinyvae imports {SUPPORTED_OPS}")]
    UnsupportedOp {
        /// File path or source name.
        model: String,
        /// ONNX op type (prefixed by its domain when not the default one).
        op: String,
        /// ONNX node name.
        node: String,
    },
    /// A supported op used in a way the IR cannot express (bad attribute, runtime weights,
    /// shape mismatch, ...).
    #[error("{model}: node `{node}` ({op}): {msg}")]
    Node {
        /// File path or source name.
        model: String,
        /// ONNX node name.
        node: String,
        /// ONNX op type.
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// A problem with the model as a whole (inputs, outputs, initializers, metadata).
    #[error("{model}: {msg}")]
    Model {
        /// File path or source name.
        model: String,
        /// What is wrong.
        msg: String,
    },
}

/// Reads and imports an ONNX file.
pub fn import_file(path: &Path) -> Result<Graph, ImportError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|err| ImportError::Io { path: name.clone(), err })?;
    import_bytes(&bytes, &name)
}

/// Imports a serialized ONNX model; `source` names it in error messages.
pub fn import_bytes(bytes: &[u8], source: &str) -> Result<Graph, ImportError> {
    let model = pb::ModelProto::decode(bytes).map_err(|err| ImportError::Decode { model: source.to_string(), err })?;
    import_proto(&model, source)
}

/// Imports a decoded ONNX model; `source` names it in error messages.
pub fn import_proto(model: &pb::ModelProto, source: &str) -> Result<Graph, ImportError> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| ImportError::Model { model: source.to_string(), msg: "the model has no graph".into() })?;
    let mut imp = Importer::new(source, graph)?;
    for (k, n) in graph.node.iter().enumerate() {
        imp.node(n, k)?;
    }
    imp.finish(model, graph)
}

/// One entry of an integer tensor; the batch size is symbolic because the exported model
/// must work for any batch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IntDim {
    Batch,
    Val(i64),
}

#[derive(Clone, Debug)]
enum Data {
    F32(Vec<f32>),
    Int(Vec<IntDim>),
}

/// A constant, folded at import time.
#[derive(Clone, Debug)]
struct Const {
    dims: Vec<usize>,
    data: Data,
}

impl Const {
    fn floats(&self) -> Result<&[f32], String> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::Int(_) => Err("holds integers where floats are needed".into()),
        }
    }

    fn ints(&self) -> Result<&[IntDim], String> {
        match &self.data {
            Data::Int(v) => Ok(v),
            Data::F32(_) => Err("holds floats where integers are needed".into()),
        }
    }

    /// Plain integers, for attributes-as-inputs (axes, split sizes, slice bounds).
    fn plain_ints(&self) -> Result<Vec<i64>, String> {
        self.ints()?
            .iter()
            .map(|d| match d {
                IntDim::Val(v) => Ok(*v),
                IntDim::Batch => Err("depends on the batch size".to_string()),
            })
            .collect()
    }

    fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    fn ints1(v: Vec<IntDim>) -> Const {
        Const { dims: vec![v.len()], data: Data::Int(v) }
    }
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

struct Importer<'a> {
    src: &'a str,
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
}

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

fn attr<'n>(n: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

/// Normalizes a possibly negative ONNX axis against `rank`.
fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

fn type_name(dt: i32) -> String {
    DataType::try_from(dt).map_or_else(|_| format!("type {dt}"), |t| t.as_str_name().to_string())
}

fn le_chunks<const N: usize, T>(raw: &[u8], count: usize, f: impl Fn([u8; N]) -> T) -> Result<Vec<T>, String> {
    if count.checked_mul(N) != Some(raw.len()) {
        return Err(format!("raw_data has {} bytes where its shape needs {count} values of {N} bytes", raw.len()));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect())
}

fn check_count<T>(v: Vec<T>, count: usize) -> Result<Vec<T>, String> {
    if v.len() != count {
        return Err(format!("{} values where its shape needs {count}", v.len()));
    }
    Ok(v)
}

/// Decodes an initializer or Constant value. Floating types all become f32 (the IR's type);
/// integer types are kept for shape arithmetic.
fn const_from_proto(t: &pb::TensorProto) -> Result<Const, String> {
    if t.data_location == DataLocation::External as i32 || !t.external_data.is_empty() {
        let loc = t.external_data.iter().find(|e| e.key == "location").map_or("?", |e| e.value.as_str());
        return Err(format!(
            "its data is stored outside the model file (external data `{loc}`); tinyvae needs a \
             self-contained model: re-save it with onnx.save_model(model, path, save_as_external_data=False)"
        ));
    }
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("too many elements")?;
    let raw = &t.raw_data;
    let data = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => Data::F32(if raw.is_empty() {
            check_count(t.float_data.clone(), count)?
        } else {
            le_chunks(raw, count, f32::from_le_bytes)?
        }),
        Ok(DataType::Double) => Data::F32(if raw.is_empty() {
            check_count(t.double_data.iter().map(|&v| v as f32).collect(), count)?
        } else {
            le_chunks(raw, count, |b| f64::from_le_bytes(b) as f32)?
        }),
        Ok(DataType::Float16) => Data::F32(if raw.is_empty() {
            // int32_data holds each half's bit pattern in its low 16 bits.
            check_count(t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16).to_f32()).collect(), count)?
        } else {
            le_chunks(raw, count, |b| half::f16::from_le_bytes(b).to_f32())?
        }),
        Ok(DataType::Bfloat16) => Data::F32(if raw.is_empty() {
            check_count(t.int32_data.iter().map(|&v| half::bf16::from_bits(v as u16).to_f32()).collect(), count)?
        } else {
            le_chunks(raw, count, |b| half::bf16::from_le_bytes(b).to_f32())?
        }),
        Ok(DataType::Int64) => Data::Int(if raw.is_empty() {
            check_count(t.int64_data.iter().map(|&v| IntDim::Val(v)).collect(), count)?
        } else {
            le_chunks(raw, count, |b| IntDim::Val(i64::from_le_bytes(b)))?
        }),
        Ok(DataType::Int32) => Data::Int(if raw.is_empty() {
            check_count(t.int32_data.iter().map(|&v| IntDim::Val(v.into())).collect(), count)?
        } else {
            le_chunks(raw, count, |b| IntDim::Val(i32::from_le_bytes(b).into()))?
        }),
        _ => {
            return Err(format!(
                "data type {} is not supported; tinyvae reads FLOAT, FLOAT16, BFLOAT16 and DOUBLE weights and INT64/INT32 shapes",
                type_name(t.data_type)
            ))
        }
    };
    Ok(Const { dims, data })
}

/// Broadcasts a bias constant to `n` values: `[n]`, `[1, n]`, or a single value.
fn bias_vector(c: &Const, n: usize) -> Result<Vec<f32>, String> {
    let v = c.floats()?;
    let trailing_n = c.dims.last() == Some(&n) && product(&c.dims) == n;
    if trailing_n {
        Ok(v.to_vec())
    } else if v.len() == 1 {
        Ok(vec![v[0]; n])
    } else {
        Err(format!("bias has shape {:?}; tinyvae needs [{n}], [1, {n}] or a single value", c.dims))
    }
}

/// Permutes a constant's axes.
fn transpose_const(c: &Const, perm: &[usize]) -> Result<Const, String> {
    fn permute<T: Clone>(dims: &[usize], v: &[T], perm: &[usize]) -> Result<Vec<T>, String> {
        let a = ArrayD::from_shape_vec(IxDyn(dims), v.to_vec()).map_err(|e| e.to_string())?;
        Ok(a.permuted_axes(IxDyn(perm)).iter().cloned().collect())
    }
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
    let data = match &c.data {
        Data::F32(v) => Data::F32(permute(&c.dims, v, perm)?),
        Data::Int(v) => Data::Int(permute(&c.dims, v, perm)?),
    };
    Ok(Const { dims, data })
}

impl<'a> Importer<'a> {
    fn new(src: &'a str, graph: &pb::GraphProto) -> Result<Self, ImportError> {
        let model_err = |msg: String| ImportError::Model { model: src.to_string(), msg };
        if !graph.sparse_initializer.is_empty() {
            return Err(model_err("sparse initializers are not supported".into()));
        }
        let mut vals = HashMap::new();
        let mut bad = HashMap::new();
        for t in &graph.initializer {
            match const_from_proto(t) {
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
            let (dims, batch) = input_shape(vi).map_err(|m| model_err(format!("graph input `{}` {m}", vi.name)))?;
            if let Some(b) = batch {
                batches.insert(b);
            }
            inputs.push(Input { name: vi.name.clone(), len: product(&dims) });
            vals.insert(vi.name.clone(), Val::Act { ir: vi.name.clone(), dims });
        }
        if inputs.is_empty() {
            return Err(model_err("the graph has no inputs (every input is an initializer)".into()));
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
        Ok(Importer { src, vals, bad, nodes: Vec::new(), producer: HashMap::new(), uses, inputs, declared_batch })
    }

    fn node(&mut self, n: &pb::NodeProto, k: usize) -> Result<(), ImportError> {
        let name = node_name(n, k);
        let src = self.src;
        let unsupported = |op: String| ImportError::UnsupportedOp { model: src.to_string(), op, node: name.clone() };
        if !(n.domain.is_empty() || n.domain == "ai.onnx") {
            return Err(unsupported(format!("{}.{}", n.domain, n.op_type)));
        }
        let r = match n.op_type.as_str() {
            "Gemm" => self.gemm(n, &name),
            "MatMul" => self.matmul(n, &name),
            "Add" => self.add(n, &name),
            "Relu" => self.activation(n, &name, Op::Relu),
            "LeakyRelu" => self.activation(n, &name, Op::LeakyRelu { alpha: attr_f(n, "alpha", 0.01) }),
            "Sigmoid" => self.activation(n, &name, Op::Sigmoid),
            "Tanh" => self.activation(n, &name, Op::Tanh),
            "Concat" => self.concat(n, &name),
            "Split" => self.split(n, &name),
            "Slice" => self.slice(n, &name),
            "Flatten" => self.flatten(n),
            "Reshape" => self.reshape(n),
            "Squeeze" => self.squeeze(n),
            "Unsqueeze" => self.unsqueeze(n),
            "Identity" => self.identity(n),
            "Dropout" => self.dropout(n),
            "Cast" => self.cast(n),
            "Transpose" => self.transpose(n),
            "Constant" => self.constant(n),
            "Shape" => self.shape(n),
            "Gather" => self.gather(n),
            _ => return Err(unsupported(n.op_type.clone())),
        };
        r.map_err(|msg| ImportError::Node { model: src.to_string(), node: name.clone(), op: n.op_type.clone(), msg })
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

    // ---- arithmetic --------------------------------------------------------------------

    fn gemm(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        if attr_i(n, "transA", 0) != 0 {
            return Err("transA=1 is not supported: the activation must be the first, untransposed operand".into());
        }
        let trans_b = attr_i(n, "transB", 0);
        if trans_b != 0 && trans_b != 1 {
            return Err(format!("transB={trans_b} is not 0 or 1"));
        }
        let alpha = attr_f(n, "alpha", 1.0);
        let beta = attr_f(n, "beta", 1.0);
        let (x, features) = self.vec_act(n, 0)?;
        let b = self.need_konst(n, 1, "weight B")?;
        if b.dims.len() != 2 {
            return Err(format!("weight B has shape {:?}; Gemm needs a matrix", b.dims));
        }
        let bv = b.floats().map_err(|e| format!("weight B {e}"))?;
        let (rows, cols) = (b.dims[0], b.dims[1]);
        let (outs, ins) = if trans_b == 1 { (rows, cols) } else { (cols, rows) };
        if ins != features {
            return Err(format!(
                "weight B has shape {:?} (transB={trans_b}), so it takes {ins} features, but input `{}` has {features}",
                b.dims, n.input[0]
            ));
        }
        let weight = if trans_b == 1 {
            Array2::from_shape_fn((outs, ins), |(o, i)| alpha * bv[o * cols + i])
        } else {
            Array2::from_shape_fn((outs, ins), |(o, i)| alpha * bv[i * cols + o])
        };
        let bias = match self.konst(n, 2, "bias C")? {
            Some(c) => bias_vector(c, outs)?.into_iter().map(|v| beta * v).collect(),
            None => vec![0.0; outs],
        };
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Dense { weight, bias: Array1::from(bias) }, vec![x], &out, vec![outs]);
        Ok(())
    }

    fn matmul(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (x, features) = self.vec_act(n, 0)?;
        let b = self.need_konst(n, 1, "weight B")?;
        if b.dims.len() != 2 {
            return Err(format!("weight B has shape {:?}; tinyvae needs an [in, out] matrix", b.dims));
        }
        let bv = b.floats().map_err(|e| format!("weight B {e}"))?;
        let (ins, outs) = (b.dims[0], b.dims[1]);
        if ins != features {
            return Err(format!(
                "weight B has shape {:?}, so it takes {ins} features, but input `{}` has {features}",
                b.dims, n.input[0]
            ));
        }
        let weight = Array2::from_shape_fn((outs, ins), |(o, i)| bv[i * outs + o]);
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Dense { weight, bias: Array1::zeros(outs) }, vec![x], &out, vec![outs]);
        Ok(())
    }

    /// Only a constant bias after a Gemm/MatMul: folded into that Dense.
    fn add(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (a, b) = (self.need(n, 0)?, self.need(n, 1)?);
        let (k_act, c) = match (a, b) {
            (Val::Act { .. }, Val::Const(c)) => (0, c.clone()),
            (Val::Const(c), Val::Act { .. }) => (1, c.clone()),
            (Val::Act { .. }, Val::Act { .. }) => {
                return Err("adding two computed values (e.g. a residual connection) is not supported".into())
            }
            (Val::Const(_), Val::Const(_)) => return Err("adding two constants is not supported".into()),
        };
        let (ir, _) = self.vec_act(n, k_act)?;
        let onnx_in = n.input[k_act].clone();
        let Some((idx, weight, bias)) = self.dense_of(&ir).map(|(i, w, b)| (i, w.clone(), b.clone())) else {
            return Err(format!(
                "tinyvae only supports Add as the bias of the Gemm/MatMul that computes its other input, and `{onnx_in}` is not computed by one"
            ));
        };
        let c = bias_vector(&c, bias.len()).map_err(|e| format!("the constant operand: {e}"))?;
        let bias = bias + &Array1::from(c);
        let out = Self::out(n, 0)?.to_string();
        let dims = vec![bias.len()];
        if onnx_in == ir && self.uses(&onnx_in) == 1 {
            // The Dense output feeds nothing else, so fold in place and let the Dense take
            // the Add's output name.
            let node = &mut self.nodes[idx];
            node.op = Op::Dense { weight, bias };
            node.output = out.clone();
            self.producer.remove(&ir);
            self.producer.insert(out.clone(), idx);
            self.vals.insert(out.clone(), Val::Act { ir: out, dims });
        } else {
            // Something else also reads the bias-free product: keep it and add a biased copy.
            let input = self.nodes[idx].inputs.clone();
            self.emit(name, Op::Dense { weight, bias }, input, &out, dims);
        }
        Ok(())
    }

    fn activation(&mut self, n: &pb::NodeProto, name: &str, op: Op) -> NodeResult {
        let (x, dims) = self.act(n, 0)?;
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, op, vec![x], &out, dims);
        Ok(())
    }

    fn concat(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let axis = attr(n, "axis").map(|a| a.i).ok_or("the axis attribute is missing")?;
        let ins: Vec<&Val> = (0..n.input.len()).map(|k| self.need(n, k)).collect::<Result<_, _>>()?;
        if ins.iter().all(|v| matches!(v, Val::Const(_))) {
            // Shape arithmetic: 1-D integer (or float) constants joined end to end.
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            for v in &ins {
                let Val::Const(c) = v else { continue };
                if c.dims.len() != 1 || norm_axis(axis, 1)? != 0 {
                    return Err("joining constants is only supported for 1-D constants".into());
                }
                match &c.data {
                    Data::Int(v) => ints.extend_from_slice(v),
                    Data::F32(v) => floats.extend_from_slice(v),
                }
            }
            let c = match (ints.is_empty(), floats.is_empty()) {
                (_, true) => Const::ints1(ints),
                (true, false) => Const { dims: vec![floats.len()], data: Data::F32(floats) },
                (false, false) => return Err("joins integer and float constants".into()),
            };
            return self.set(n, Val::Const(c));
        }
        let mut parts = Vec::new();
        let mut total = 0;
        for (k, v) in ins.iter().enumerate() {
            let (ir, len) = self.vec_act(n, k).map_err(|e| {
                if matches!(v, Val::Const(_)) {
                    format!("joining a constant to computed values is not supported (input `{}`)", n.input[k])
                } else {
                    e
                }
            })?;
            parts.push(ir);
            total += len;
        }
        if norm_axis(axis, 2)? != 1 {
            return Err(format!(
                "axis {axis} would join along the batch; tinyvae concatenates features (axis 1 or -1)"
            ));
        }
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Concat, parts, &out, vec![total]);
        Ok(())
    }

    /// Picks features `range` of a Dense output as a new Dense over the same input. The IR has
    /// no slicing op, but slicing a linear layer's output is the same as slicing its rows,
    /// which is how `mu, logvar = h.chunk(2, dim=1)` encoders are imported.
    fn dense_rows(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        ir: &str,
        range: std::ops::Range<usize>,
        out: &str,
    ) -> NodeResult {
        let Some((idx, weight, bias)) = self.dense_of(ir) else {
            return Err(format!(
                "tinyvae can only split the output of a Gemm/MatMul (+ bias), and `{}` is not one",
                n.input[0]
            ));
        };
        let rows = ndarray::s![range.clone(), ..];
        let op = Op::Dense {
            weight: weight.slice(rows).to_owned(),
            bias: bias.slice(ndarray::s![range.clone()]).to_owned(),
        };
        let input = self.nodes[idx].inputs.clone();
        self.emit(name, op, input, out, vec![range.len()]);
        Ok(())
    }

    fn split(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (ir, features) = self.vec_act(n, 0)?;
        if norm_axis(attr_i(n, "axis", 0), 2)? != 1 {
            return Err("only splitting along features (axis 1 or -1) is supported".into());
        }
        let outs = n.output.len();
        let sizes: Vec<i64> = if let Some(c) = self.konst(n, 1, "split sizes")? {
            c.plain_ints().map_err(|e| format!("split sizes {e}"))?
        } else if let Some(s) = attr_ints(n, "split") {
            s
        } else {
            // Equal parts, the last one smaller if needed (opset 18 `num_outputs`).
            let parts = attr(n, "num_outputs").map_or(outs as i64, |a| a.i).max(1) as usize;
            let each = features.div_ceil(parts);
            (0..parts).map(|k| each.min(features.saturating_sub(k * each)) as i64).collect()
        };
        if sizes.len() != outs || sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != features as i64 {
            return Err(format!("split sizes {sizes:?} do not divide {features} features into {outs} outputs"));
        }
        let mut start = 0;
        for (k, &s) in sizes.iter().enumerate() {
            let end = start + s as usize;
            if let Some(o) = n.output.get(k).filter(|o| !o.is_empty()) {
                self.dense_rows(n, &format!("{name}:{k}"), &ir, start..end, &o.clone())?;
            }
            start = end;
        }
        Ok(())
    }

    fn slice(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let ints = |imp: &Self, k: usize, attr_name: &str| -> Result<Option<Vec<i64>>, String> {
            match imp.konst(n, k, attr_name)? {
                Some(c) => c.plain_ints().map(Some).map_err(|e| format!("{attr_name} {e}")),
                None => Ok(attr_ints(n, attr_name)),
            }
        };
        if let Some(Val::Const(_)) = self.get(n, 0)? {
            return Err("slicing constants is not supported".into());
        }
        let (ir, features) = self.vec_act(n, 0)?;
        let starts = ints(self, 1, "starts")?.ok_or("starts are missing")?;
        let ends = ints(self, 2, "ends")?.ok_or("ends are missing")?;
        let axes = ints(self, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(self, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err("starts, ends, axes and steps differ in length".into());
        }
        let mut range = 0..features;
        for k in 0..starts.len() {
            let axis = norm_axis(axes[k], 2)?;
            let clamp = |v: i64| -> usize {
                let f = features as i64;
                (if v < 0 { v + f } else { v }).clamp(0, f) as usize
            };
            if axis == 0 {
                if starts[k] == 0 && ends[k] >= i32::MAX as i64 && steps[k] == 1 {
                    continue; // The whole batch, as `h[:, a:b]` spells it.
                }
                return Err("slicing the batch axis is not supported".into());
            }
            if steps[k] != 1 {
                return Err(format!("step {} is not supported (only contiguous feature ranges)", steps[k]));
            }
            range = clamp(starts[k])..clamp(ends[k]).max(clamp(starts[k]));
        }
        if range.is_empty() {
            return Err("the slice is empty".into());
        }
        let out = Self::out(n, 0)?.to_string();
        self.dense_rows(n, name, &ir, range, &out)
    }

    // ---- layout (aliases) --------------------------------------------------------------

    fn alias(&mut self, n: &pb::NodeProto, from: &Val, dims: Vec<usize>) -> NodeResult {
        let v = match from {
            Val::Act { ir, .. } => Val::Act { ir: ir.clone(), dims },
            Val::Const(c) => Val::Const(Const { dims, data: c.data.clone() }),
        };
        self.set(n, v)
    }

    fn flatten(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axis = attr_i(n, "axis", 1);
        // Flatten's axis may also equal the rank, unlike most ops.
        let norm = |rank: usize| -> Result<usize, String> {
            let a = if axis < 0 { axis + rank as i64 } else { axis };
            usize::try_from(a)
                .ok()
                .filter(|&a| a <= rank)
                .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
        };
        match &v {
            Val::Const(c) => {
                let a = norm(c.dims.len())?;
                let dims = vec![product(&c.dims[..a]), product(&c.dims[a..])];
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let a = norm(dims.len() + 1)?;
                if a == 0 || product(&dims[..a - 1]) != 1 {
                    return Err(format!(
                        "axis {axis} on per-sample shape {dims:?} would fold the batch into the features; use axis 1"
                    ));
                }
                let dims = vec![product(&dims[a - 1..])];
                self.alias(n, &v, dims)
            }
        }
    }

    fn reshape(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let target: Vec<IntDim> = match self.konst(n, 1, "target shape")? {
            Some(c) => c.ints().map_err(|e| format!("target shape {e}"))?.to_vec(),
            None => attr_ints(n, "shape").ok_or("the target shape is missing")?.into_iter().map(IntDim::Val).collect(),
        };
        let allow_zero = attr_i(n, "allowzero", 0) != 0;
        match &v {
            Val::Const(c) => {
                let mut dims = Vec::new();
                let mut infer = None;
                for (k, d) in target.iter().enumerate() {
                    match *d {
                        IntDim::Val(-1) => infer = Some(k),
                        IntDim::Val(0) if !allow_zero => dims.push(*c.dims.get(k).ok_or("copies a missing axis")?),
                        IntDim::Val(v) if v >= 0 => dims.push(v as usize),
                        _ => return Err(format!("target shape {target:?} is not supported for a constant")),
                    }
                    if infer == Some(k) {
                        dims.push(1);
                    }
                }
                if let Some(k) = infer {
                    let rest = product(&dims).max(1);
                    dims[k] = c.len() / rest;
                }
                if product(&dims) != c.len() {
                    return Err(format!("cannot reshape a constant of shape {:?} to {target:?}", c.dims));
                }
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let features = product(dims);
                let first = *target.first().ok_or("the target shape is empty")?;
                let keeps_batch = match first {
                    IntDim::Batch => true,
                    IntDim::Val(0) => !allow_zero,
                    IntDim::Val(b) => Some(b) == self.declared_batch && b > 0,
                };
                let mut rest = Vec::new();
                let mut infer = None;
                for (k, d) in target.iter().enumerate().skip(1) {
                    match *d {
                        IntDim::Val(-1) if infer.is_none() => {
                            infer = Some(rest.len());
                            rest.push(1);
                        }
                        IntDim::Val(0) if !allow_zero => rest.push(*dims.get(k - 1).ok_or("copies a missing axis")?),
                        IntDim::Val(v) if v > 0 => rest.push(v as usize),
                        _ => {
                            return Err(format!(
                            "target shape {} is not supported: tinyvae needs [batch, features...] with fixed features",
                            show_shape(&target)
                        ))
                        }
                    }
                }
                let ok = match (first, infer) {
                    (IntDim::Val(-1), None) => product(&rest) == features,
                    (_, None) => keeps_batch && product(&rest) == features,
                    (_, Some(k)) => {
                        let known = product(&rest);
                        // (`is_multiple_of` needs a newer Rust than the workspace's 1.85.)
                        #[allow(clippy::manual_is_multiple_of)]
                        let divides = known > 0 && features % known == 0;
                        if keeps_batch && divides {
                            rest[k] = features / known;
                            true
                        } else {
                            false
                        }
                    }
                };
                if !ok {
                    return Err(format!(
                        "reshaping per-sample shape {dims:?} to {} does not keep the batch axis; tinyvae needs [batch, features...]",
                        show_shape(&target)
                    ));
                }
                self.alias(n, &v, rest)
            }
        }
    }

    /// Axes from the `axes` input (opset 13+) or attribute (older opsets).
    fn axes(&self, n: &pb::NodeProto) -> Result<Option<Vec<i64>>, String> {
        match self.konst(n, 1, "axes")? {
            Some(c) => c.plain_ints().map(Some).map_err(|e| format!("axes {e}")),
            None => Ok(attr_ints(n, "axes")),
        }
    }

    fn unsqueeze(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axes = self.axes(n)?.ok_or("the axes are missing")?;
        // Full shape, batch axis included for activations (kept as a 0 placeholder).
        let (mut full, batch) = match &v {
            Val::Const(c) => (c.dims.clone(), false),
            Val::Act { dims, .. } => (std::iter::once(0).chain(dims.iter().copied()).collect::<Vec<_>>(), true),
        };
        let rank = full.len() + axes.len();
        let mut norm = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
        norm.sort_unstable();
        for &a in &norm {
            if batch && a == 0 {
                return Err("inserting an axis before the batch axis is not supported".into());
            }
            full.insert(a.min(full.len()), 1);
        }
        let dims = if batch { full[1..].to_vec() } else { full };
        self.alias(n, &v, dims)
    }

    fn squeeze(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axes = self.axes(n)?;
        match &v {
            Val::Const(c) => {
                let dims = match axes {
                    None => c.dims.iter().copied().filter(|&d| d != 1).collect(),
                    Some(axes) => {
                        let norm = axes.iter().map(|&a| norm_axis(a, c.dims.len())).collect::<Result<Vec<_>, _>>()?;
                        c.dims.iter().enumerate().filter(|(k, _)| !norm.contains(k)).map(|(_, &d)| d).collect()
                    }
                };
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let axes = axes.ok_or("squeezing without explicit axes could drop the batch axis; give axes")?;
                let mut drop = Vec::new();
                for a in axes {
                    let a = norm_axis(a, dims.len() + 1)?;
                    if a == 0 || dims[a - 1] != 1 {
                        return Err(format!("axis {a} of per-sample shape {dims:?} cannot be squeezed"));
                    }
                    drop.push(a - 1);
                }
                let dims = dims.iter().enumerate().filter(|(k, _)| !drop.contains(k)).map(|(_, &d)| d).collect();
                self.alias(n, &v, dims)
            }
        }
    }

    fn identity(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        self.set(n, v)
    }

    /// Dropout is the identity at inference, which is what an exported model is for.
    fn dropout(&mut self, n: &pb::NodeProto) -> NodeResult {
        if let Some(mask) = n.output.get(1).filter(|m| !m.is_empty()) {
            if self.uses(mask) > 0 {
                return Err(format!("its mask output `{mask}` is used; tinyvae runs Dropout as the identity"));
            }
        }
        if let Some(c) = self.konst(n, 2, "training_mode")? {
            if c.plain_ints().map_or(true, |v| v.iter().any(|&x| x != 0)) {
                return Err("training_mode is set; export the model in eval mode".into());
            }
        }
        self.identity(n)
    }

    fn cast(&mut self, n: &pb::NodeProto) -> NodeResult {
        let to = attr(n, "to").map(|a| a.i as i32).ok_or("the `to` attribute is missing")?;
        let v = self.need(n, 0)?.clone();
        let float = [DataType::Float, DataType::Double, DataType::Float16, DataType::Bfloat16].map(|t| t as i32);
        let int = [DataType::Int64, DataType::Int32].map(|t| t as i32);
        let out = match v {
            Val::Act { .. } if to == DataType::Float as i32 => v,
            Val::Act { .. } => {
                return Err(format!("casts a computed value to {}; tinyvae computes in FLOAT", type_name(to)))
            }
            Val::Const(c) if float.contains(&to) => {
                let data = match &c.data {
                    Data::F32(v) => Data::F32(v.clone()),
                    Data::Int(_) => Data::F32(c.plain_ints()?.iter().map(|&x| x as f32).collect()),
                };
                Val::Const(Const { dims: c.dims.clone(), data })
            }
            Val::Const(c) if int.contains(&to) => {
                let data = match &c.data {
                    Data::F32(v) => Data::Int(v.iter().map(|&x| IntDim::Val(x as i64)).collect()),
                    Data::Int(v) => Data::Int(v.clone()),
                };
                Val::Const(Const { dims: c.dims.clone(), data })
            }
            Val::Const(_) => return Err(format!("casting constants to {} is not supported", type_name(to))),
        };
        self.set(n, out)
    }

    fn transpose(&mut self, n: &pb::NodeProto) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let rank = match &v {
            Val::Const(c) => c.dims.len(),
            Val::Act { dims, .. } => dims.len() + 1,
        };
        let perm: Vec<usize> = match attr_ints(n, "perm") {
            Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..rank).collect::<Vec<_>>() {
            return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
        }
        match &v {
            Val::Const(c) => {
                let t = transpose_const(c, &perm)?;
                self.set(n, Val::Const(t))
            }
            Val::Act { dims, .. } => {
                if perm.iter().enumerate().any(|(k, &p)| k != p) {
                    return Err(format!(
                        "transposing a computed value of per-sample shape {dims:?} with perm {perm:?} is not supported"
                    ));
                }
                self.set(n, v.clone())
            }
        }
    }

    fn constant(&mut self, n: &pb::NodeProto) -> NodeResult {
        let a = n.attribute.first().ok_or("it has no value attribute")?;
        let c = match a.name.as_str() {
            "value" => const_from_proto(a.t.as_ref().ok_or("the value attribute holds no tensor")?)?,
            "value_float" => Const { dims: vec![], data: Data::F32(vec![a.f]) },
            "value_floats" => Const { dims: vec![a.floats.len()], data: Data::F32(a.floats.clone()) },
            "value_int" => Const { dims: vec![], data: Data::Int(vec![IntDim::Val(a.i)]) },
            "value_ints" => Const::ints1(a.ints.iter().map(|&v| IntDim::Val(v)).collect()),
            other => return Err(format!("constant attribute `{other}` is not supported")),
        };
        self.set(n, Val::Const(c))
    }

    fn shape(&mut self, n: &pb::NodeProto) -> NodeResult {
        let full: Vec<IntDim> = match self.need(n, 0)? {
            Val::Act { dims, .. } => {
                std::iter::once(IntDim::Batch).chain(dims.iter().map(|&d| IntDim::Val(d as i64))).collect()
            }
            Val::Const(c) => c.dims.iter().map(|&d| IntDim::Val(d as i64)).collect(),
        };
        let r = full.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(attr_i(n, "start", 0));
        let end = clamp(attr_i(n, "end", r)).max(start);
        self.set(n, Val::Const(Const::ints1(full[start..end].to_vec())))
    }

    fn gather(&mut self, n: &pb::NodeProto) -> NodeResult {
        let data = self.need_konst(n, 0, "data")?;
        let idx = self.need_konst(n, 1, "indices")?;
        if data.dims.len() != 1 || norm_axis(attr_i(n, "axis", 0), 1)? != 0 {
            return Err("only gathering from 1-D constants (shape vectors) is supported".into());
        }
        let len = data.len() as i64;
        let pick = idx
            .plain_ints()
            .map_err(|e| format!("indices {e}"))?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + len } else { i };
                if (0..len).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(format!("index {i} is out of range for {len} values"))
                }
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let out = match &data.data {
            Data::Int(v) => Data::Int(pick.iter().map(|&j| v[j]).collect()),
            Data::F32(v) => Data::F32(pick.iter().map(|&j| v[j]).collect()),
        };
        let c = Const { dims: idx.dims.clone(), data: out };
        self.set(n, Val::Const(c))
    }

    // ---- graph outputs and role --------------------------------------------------------

    fn finish(mut self, model: &pb::ModelProto, graph: &pb::GraphProto) -> Result<Graph, ImportError> {
        let src = self.src;
        let model_err = |msg: String| ImportError::Model { model: src.to_string(), msg };
        let input_names: HashSet<String> = self.inputs.iter().map(|i| i.name.clone()).collect();
        let onnx_outputs: HashSet<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        let mut outputs = Vec::new();
        let mut out_lens = Vec::new();
        for vo in &graph.output {
            let (ir, dims) = match self.vals.get(&vo.name) {
                Some(Val::Act { ir, dims }) => (ir.clone(), dims.clone()),
                Some(Val::Const(_)) => return Err(model_err(format!("graph output `{}` is a constant", vo.name))),
                None => return Err(model_err(format!("graph output `{}` is not computed by any node", vo.name))),
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
            return Err(model_err("the graph has no outputs".into()));
        }
        let nodes = dead_code_elimination(self.nodes, &outputs);
        let last_op = |k: usize| nodes.iter().find(|nd| nd.output == outputs[k]).map(|nd| &nd.op);
        let meta: HashMap<&str, &str> =
            model.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
        let number = |key: &str| -> Result<Option<usize>, ImportError> {
            meta.get(key)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| model_err(format!("metadata `{key}` = `{v}` is not a number")))
                })
                .transpose()
        };
        let inputs = self.inputs;
        let second_input = inputs.get(1).map_or(0, |i| i.len);
        let role = match meta.get(META_ROLE).copied() {
            Some("decoder") => {
                let bernoulli = match meta.get(META_OUTPUT).copied() {
                    Some("bernoulli") => true,
                    Some("gaussian") => false,
                    None => matches!(last_op(0), Some(Op::Sigmoid)),
                    Some(o) => {
                        return Err(model_err(format!("metadata `{META_OUTPUT}` = `{o}` is not bernoulli or gaussian")))
                    }
                };
                let latent = number(META_LATENT)?.unwrap_or(inputs[0].len);
                let classes = number(META_CLASSES)?.unwrap_or(second_input);
                if latent != inputs[0].len {
                    return Err(model_err(format!(
                        "metadata says latent {latent}, but the first input `{}` has {} features",
                        inputs[0].name, inputs[0].len
                    )));
                }
                if classes > 0 && second_input != classes {
                    return Err(model_err(format!(
                        "metadata says {classes} classes, but there is no second input of {classes} features"
                    )));
                }
                Role::Decoder { latent, classes, bernoulli }
            }
            Some("encoder") => {
                let latent = number(META_LATENT)?.unwrap_or(out_lens[0]);
                let classes = number(META_CLASSES)?.unwrap_or(second_input);
                // Two outputs are (mu, logvar); one is a deterministic (autoencoder) encoder's z.
                if !matches!(out_lens.len(), 1 | 2) || out_lens.iter().any(|&l| l != latent) {
                    return Err(model_err(format!(
                        "metadata says encoder of latent {latent}, which needs two outputs (mu, logvar) or one (z) of \
                         {latent} features, but the outputs have {out_lens:?}"
                    )));
                }
                Role::Encoder { latent, classes }
            }
            Some("generic") => Role::Generic,
            Some(r) => {
                return Err(model_err(format!("metadata `{META_ROLE}` = `{r}` is not decoder, encoder or generic")))
            }
            None => {
                if out_lens.len() == 2 && out_lens[0] == out_lens[1] {
                    Role::Encoder { latent: out_lens[0], classes: if inputs.len() == 2 { second_input } else { 0 } }
                } else if out_lens.len() == 1 && matches!(last_op(0), Some(Op::Sigmoid)) {
                    Role::Decoder { latent: inputs[0].len, classes: second_input, bernoulli: true }
                } else {
                    Role::Generic
                }
            }
        };
        let g = Graph { inputs, nodes, outputs, role };
        g.value_lens().map_err(|e| model_err(format!("the imported graph is inconsistent: {e}")))?;
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

fn show_shape(t: &[IntDim]) -> String {
    let parts: Vec<String> = t
        .iter()
        .map(|d| match d {
            IntDim::Batch => "batch".to_string(),
            IntDim::Val(v) => v.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
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
    Ok((dims, batch))
}
