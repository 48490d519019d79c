//! Float IR -> ONNX.
//!
//! The output is the most conservative spelling of an MLP: opset 13, IR version 8, one `Gemm`
//! (transB=1, weights `out x in` as PyTorch stores them) per Dense, plain activations, and a
//! symbolic batch axis, so that tract, onnxruntime and Netron all read it, and so that
//! [`super::import_bytes`] gives back exactly the same graph.

use std::collections::HashSet;
use std::path::Path;

use super::proto as pb;
use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use prost::Message;

use super::{META_CLASSES, META_LATENT, META_OUTPUT, META_ROLE};
use crate::ir::{Graph, GraphError, Op, Role};

/// Why a graph could not be exported. The file, for [`export_file`], is for the caller to name.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The graph is inconsistent (see [`Graph::value_lens`]).
    #[error("the graph is inconsistent")]
    Graph(#[source] GraphError),
    /// A value listed twice among the graph outputs: ONNX names each output once.
    #[error("graph output `{output}` is listed twice")]
    DuplicateOutput {
        /// The value.
        output: String,
    },
    /// Writing the file failed.
    #[error("cannot write the file")]
    Io(#[source] std::io::Error),
}

/// Serializes `graph` as an ONNX model.
pub fn export(graph: &Graph) -> Result<Vec<u8>, ExportError> {
    Ok(to_model_proto(graph)?.encode_to_vec())
}

/// Writes `graph` as an ONNX file, atomically (a reader never sees half a model).
pub fn export_file(graph: &Graph, path: &Path) -> Result<(), ExportError> {
    let bytes = export(graph)?;
    tinyvae_data::write_atomic(path, &bytes).map_err(ExportError::Io)
}

fn tensor_value_info(name: &str, len: usize) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = |v: D| Dimension { denotation: String::new(), value: Some(v) };
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(D::DimParam("batch".into())), dim(D::DimValue(len as i64))],
                }),
            })),
        }),
        doc_string: String::new(),
        metadata_props: Vec::new(),
    }
}

fn float_tensor(name: &str, dims: &[usize], values: impl Iterator<Item = f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: values.flat_map(f32::to_le_bytes).collect(),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

fn attr_int(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

/// Builds the ONNX model for `graph` (what [`export`] serializes).
pub fn to_model_proto(graph: &Graph) -> Result<pb::ModelProto, ExportError> {
    let lens = graph.value_lens().map_err(ExportError::Graph)?;
    // Initializer names must not collide with value names or each other.
    let mut taken: HashSet<String> = lens.keys().cloned().collect();
    let mut unique = |base: String| {
        let mut name = base.clone();
        let mut k = 1;
        while !taken.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    };
    let mut nodes = Vec::new();
    let mut initializers = Vec::new();
    for (k, n) in graph.nodes.iter().enumerate() {
        let name = if n.name.is_empty() { format!("{}_{k}", n.op.name()) } else { n.name.clone() };
        let mut inputs = n.inputs.clone();
        let mut attribute = Vec::new();
        let op_type = match &n.op {
            Op::Dense { weight, bias } => {
                let w = unique(format!("{name}.weight"));
                let b = unique(format!("{name}.bias"));
                // `iter()` walks in logical (row-major) order whatever the memory layout.
                initializers.push(float_tensor(&w, &[weight.nrows(), weight.ncols()], weight.iter().copied()));
                initializers.push(float_tensor(&b, &[bias.len()], bias.iter().copied()));
                inputs.push(w);
                inputs.push(b);
                attribute.extend([attr_float("alpha", 1.0), attr_float("beta", 1.0), attr_int("transB", 1)]);
                "Gemm"
            }
            Op::Relu => "Relu",
            Op::LeakyRelu { alpha } => {
                attribute.push(attr_float("alpha", *alpha));
                "LeakyRelu"
            }
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::Concat => {
                attribute.push(attr_int("axis", 1));
                "Concat"
            }
        };
        nodes.push(pb::NodeProto {
            input: inputs,
            output: vec![n.output.clone()],
            name,
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
    }
    // ONNX names each graph output once; a second listing would need an Identity node.
    let mut seen = HashSet::new();
    for o in &graph.outputs {
        if !seen.insert(o.as_str()) {
            return Err(ExportError::DuplicateOutput { output: o.clone() });
        }
    }
    let gp = pb::GraphProto {
        node: nodes,
        name: "tinyvae".into(),
        initializer: initializers,
        input: graph.inputs.iter().map(|i| tensor_value_info(&i.name, i.len)).collect(),
        output: graph.outputs.iter().map(|o| tensor_value_info(o, lens[o])).collect(),
        ..Default::default()
    };
    let meta = |key: &str, value: String| pb::StringStringEntryProto { key: key.into(), value };
    let metadata_props = match graph.role {
        Role::Decoder { latent, classes, bernoulli } => vec![
            meta(META_ROLE, "decoder".into()),
            meta(META_LATENT, latent.to_string()),
            meta(META_CLASSES, classes.to_string()),
            meta(META_OUTPUT, if bernoulli { "bernoulli" } else { "gaussian" }.into()),
        ],
        Role::Encoder { latent, classes } => vec![
            meta(META_ROLE, "encoder".into()),
            meta(META_LATENT, latent.to_string()),
            meta(META_CLASSES, classes.to_string()),
        ],
        Role::Generic => vec![meta(META_ROLE, "generic".into())],
    };
    Ok(pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "tinyvae".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(gp),
        metadata_props,
        ..Default::default()
    })
}
