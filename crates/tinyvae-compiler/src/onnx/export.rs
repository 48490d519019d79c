//! Float IR -> ONNX.
//!
//! The output is the most conservative spelling: opset 13, IR version 8, one `Gemm` (transB=1,
//! weights `out x in` as PyTorch stores them) per Dense, `Conv`/`ConvTranspose` with PyTorch's
//! weight layouts, `Resize` (nearest, asymmetric, floor) for upsampling, SiLU and hard swish
//! spelled as `Sigmoid`/`HardSigmoid` + `Mul` (opset 13 has no single op for them), plain
//! activations, and a symbolic batch axis, so that tract, onnxruntime and Netron all read it,
//! and so that [`super::import_bytes`] gives back the same graph. Where a value changes layout
//! (a Dense output read as `[C, H, W]`, a Conv output read by a Dense), a `Reshape` or `Flatten`
//! is written, as PyTorch's exporters do for `view` and `flatten`.

use std::collections::HashSet;
use std::path::Path;

use super::proto as pb;
use super::proto::attribute_proto::AttributeType;
use super::proto::tensor_proto::DataType;
use prost::Message;

use super::{META_CLASSES, META_LATENT, META_OUTPUT, META_ROLE};
use crate::ir::{Graph, GraphError, Op, Role, Shape};

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

fn tensor_value_info(name: &str, shape: Shape) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as D, Dimension};
    let dim = |v: D| Dimension { denotation: String::new(), value: Some(v) };
    let mut dims = vec![dim(D::DimParam("batch".into()))];
    match shape {
        Shape::Flat(len) => dims.push(dim(D::DimValue(len as i64))),
        Shape::Image(chw) => dims.extend(chw.iter().map(|&d| dim(D::DimValue(d as i64)))),
    }
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(pb::TensorShapeProto { dim: dims }),
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

fn attr_ints(name: &str, ints: &[usize]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.iter().map(|&i| i as i64).collect(),
        ..Default::default()
    }
}

fn attr_string(name: &str, s: &str) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::String as i32,
        s: s.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn int_tensor(name: &str, values: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims: vec![values.len() as i64],
        data_type: DataType::Int64 as i32,
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn node(
    name: String,
    op_type: &str,
    input: Vec<String>,
    output: String,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto { input, output: vec![output], name, op_type: op_type.into(), attribute, ..Default::default() }
}

/// The ONNX nodes and initializers being written, with fresh-name bookkeeping.
struct Writer {
    taken: HashSet<String>,
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
}

impl Writer {
    fn unique(&mut self, base: String) -> String {
        let mut name = base.clone();
        let mut k = 1;
        while !self.taken.insert(name.clone()) {
            name = format!("{base}_{k}");
            k += 1;
        }
        name
    }

    fn floats(&mut self, base: String, dims: &[usize], values: impl Iterator<Item = f32>) -> String {
        let name = self.unique(base);
        self.initializers.push(float_tensor(&name, dims, values));
        name
    }

    /// `value` (of per-sample shape `has`) as ONNX needs it: `[N, features]` for `want = None`,
    /// `[N, C, H, W]` for `Some(chw)`; a Flatten or Reshape is written when the layouts differ.
    fn layout(&mut self, node: &str, value: &str, has: Shape, want: Option<[usize; 3]>) -> String {
        match (has, want) {
            (Shape::Flat(_), None) => value.to_string(),
            (Shape::Image(chw), Some(w)) if chw == w => value.to_string(),
            (Shape::Image(_), None) => {
                let out = self.unique(format!("{value}.flat"));
                self.nodes.push(node_of(
                    format!("{node}.flatten"),
                    "Flatten",
                    vec![value.into()],
                    &out,
                    vec![attr_int("axis", 1)],
                ));
                out
            }
            (_, Some([c, h, w])) => {
                let shape = self.unique(format!("{node}.shape"));
                self.initializers.push(int_tensor(&shape, &[-1, c as i64, h as i64, w as i64]));
                let out = self.unique(format!("{value}.chw"));
                self.nodes.push(node_of(format!("{node}.reshape"), "Reshape", vec![value.into(), shape], &out, vec![]));
                out
            }
        }
    }
}

fn node_of(
    name: String,
    op_type: &str,
    input: Vec<String>,
    output: &str,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    node(name, op_type, input, output.to_string(), attribute)
}

/// Builds the ONNX model for `graph` (what [`export`] serializes).
pub fn to_model_proto(graph: &Graph) -> Result<pb::ModelProto, ExportError> {
    let shapes = graph.value_shapes().map_err(ExportError::Graph)?;
    // Initializer names must not collide with value names or each other.
    let mut wr = Writer { taken: shapes.keys().cloned().collect(), nodes: Vec::new(), initializers: Vec::new() };
    for (k, n) in graph.nodes.iter().enumerate() {
        let name = if n.name.is_empty() { format!("{}_{k}", n.op.name()) } else { n.name.clone() };
        let has = |v: &String| shapes[v];
        let out_shape = shapes[&n.output];
        let mut attribute = Vec::new();
        let (op_type, inputs) = match &n.op {
            Op::Dense { weight, bias } => {
                let x = wr.layout(&name, &n.inputs[0], has(&n.inputs[0]), None);
                // `iter()` walks in logical (row-major) order whatever the memory layout.
                let w = wr.floats(format!("{name}.weight"), &[weight.nrows(), weight.ncols()], weight.iter().copied());
                let b = wr.floats(format!("{name}.bias"), &[bias.len()], bias.iter().copied());
                attribute.extend([attr_float("alpha", 1.0), attr_float("beta", 1.0), attr_int("transB", 1)]);
                ("Gemm", vec![x, w, b])
            }
            Op::Relu => ("Relu", n.inputs.clone()),
            Op::LeakyRelu { alpha } => {
                attribute.push(attr_float("alpha", *alpha));
                ("LeakyRelu", n.inputs.clone())
            }
            Op::Sigmoid => ("Sigmoid", n.inputs.clone()),
            Op::Tanh => ("Tanh", n.inputs.clone()),
            Op::Silu | Op::HardSwish => {
                let gate = wr.unique(format!("{}.gate", n.output));
                let (op, attrs) = match n.op {
                    Op::Silu => ("Sigmoid", vec![]),
                    _ => ("HardSigmoid", vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)]),
                };
                wr.nodes.push(node_of(format!("{name}.gate"), op, n.inputs.clone(), &gate, attrs));
                ("Mul", vec![n.inputs[0].clone(), gate])
            }
            Op::Concat => {
                attribute.push(attr_int("axis", 1));
                let parts = n.inputs.iter().map(|v| wr.layout(&name, v, has(v), None)).collect();
                ("Concat", parts)
            }
            Op::Add => {
                let want = match out_shape {
                    Shape::Image(chw) => Some(chw),
                    Shape::Flat(_) => None,
                };
                let parts = n.inputs.iter().map(|v| wr.layout(&name, v, has(v), want)).collect();
                ("Add", parts)
            }
            Op::Conv { weight, bias, input, geometry: g } => {
                let x = wr.layout(&name, &n.inputs[0], has(&n.inputs[0]), Some(*input));
                let (o, i, kh, kw) = weight.dim();
                let w = wr.floats(format!("{name}.weight"), &[o, i, kh, kw], weight.iter().copied());
                let b = wr.floats(format!("{name}.bias"), &[bias.len()], bias.iter().copied());
                attribute.extend([
                    attr_ints("kernel_shape", &[kh, kw]),
                    attr_ints("strides", &g.stride),
                    attr_ints("dilations", &g.dilation),
                    attr_ints("pads", &[g.pads[0], g.pads[1], g.pads[2], g.pads[3]]),
                    attr_int("group", g.groups as i64),
                ]);
                ("Conv", vec![x, w, b])
            }
            Op::ConvTranspose { weight, bias, input, stride, pads, output_padding } => {
                let x = wr.layout(&name, &n.inputs[0], has(&n.inputs[0]), Some(*input));
                let (i, o, kh, kw) = weight.dim();
                let w = wr.floats(format!("{name}.weight"), &[i, o, kh, kw], weight.iter().copied());
                let b = wr.floats(format!("{name}.bias"), &[bias.len()], bias.iter().copied());
                attribute.extend([
                    attr_ints("kernel_shape", &[kh, kw]),
                    attr_ints("strides", stride),
                    attr_ints("pads", pads),
                    attr_ints("output_padding", output_padding),
                ]);
                ("ConvTranspose", vec![x, w, b])
            }
            Op::Upsample { input, factor } => {
                let x = wr.layout(&name, &n.inputs[0], has(&n.inputs[0]), Some(*input));
                let scales = wr.floats(
                    format!("{name}.scales"),
                    &[4],
                    [1.0, 1.0, factor[0] as f32, factor[1] as f32].into_iter(),
                );
                attribute.extend([
                    attr_string("mode", "nearest"),
                    attr_string("coordinate_transformation_mode", "asymmetric"),
                    attr_string("nearest_mode", "floor"),
                ]);
                ("Resize", vec![x, String::new(), scales])
            }
        };
        wr.nodes.push(node(name, op_type, inputs, n.output.clone(), attribute));
    }
    let Writer { nodes, initializers, .. } = wr;
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
        input: graph.inputs.iter().map(|i| tensor_value_info(&i.name, Shape::Flat(i.len))).collect(),
        output: graph.outputs.iter().map(|o| tensor_value_info(o, shapes[o])).collect(),
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
        Role::Autoencoder => vec![meta(META_ROLE, "autoencoder".into())],
        Role::Classifier { classes } => {
            vec![meta(META_ROLE, "classifier".into()), meta(META_CLASSES, classes.to_string())]
        }
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
