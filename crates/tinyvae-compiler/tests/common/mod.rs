//! Shared test fixtures: a deterministic RNG, random IR graphs of the shapes tinyvae ships,
//! and builders for ONNX protobufs laid out the way `torch.onnx.export` writes them.
#![allow(dead_code)]

use ndarray::{Array1, Array2};
use tinyvae_compiler::ir::{Graph, Input, Node, Op, Role};
use tinyvae_compiler::onnx::proto as pb;
use tinyvae_compiler::onnx::proto::attribute_proto::AttributeType;
use tinyvae_compiler::onnx::proto::tensor_proto::DataType;
use tinyvae_compiler::onnx::proto::tensor_shape_proto::{dimension::Value as D, Dimension};

/// splitmix64: tests need reproducible numbers, not a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    pub fn matrix(&mut self, rows: usize, cols: usize, scale: f32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |_| scale * self.uniform())
    }

    pub fn vector(&mut self, n: usize, scale: f32) -> Array1<f32> {
        Array1::from_shape_fn(n, |_| scale * self.uniform())
    }

    /// A layer initialized like PyTorch's `nn.Linear` (uniform in +-1/sqrt(in)).
    pub fn dense(&mut self, outs: usize, ins: usize) -> Op {
        let s = 1.0 / (ins as f32).sqrt();
        Op::Dense { weight: self.matrix(outs, ins, s), bias: self.vector(outs, s) }
    }

    /// Rows of one-hot labels.
    pub fn one_hot(&mut self, batch: usize, classes: usize) -> Array2<f32> {
        let mut y = Array2::zeros((batch, classes));
        for r in 0..batch {
            y[[r, (self.next_u64() % classes as u64) as usize]] = 1.0;
        }
        y
    }
}

pub fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), output: output.into() }
}

/// z (20) -> 64 -> 784, Relu then Sigmoid.
pub fn mlp_decoder(rng: &mut Rng) -> Graph {
    Graph {
        inputs: vec![Input { name: "z".into(), len: 20 }],
        nodes: vec![
            node("fc1", rng.dense(64, 20), &["z"], "h1"),
            node("relu1", Op::Relu, &["h1"], "a1"),
            node("fc2", rng.dense(784, 64), &["a1"], "logits"),
            node("sigmoid", Op::Sigmoid, &["logits"], "x_mean"),
        ],
        outputs: vec!["x_mean".into()],
        role: Role::Decoder { latent: 20, classes: 0, bernoulli: true },
    }
}

/// x (784) -> 64 -> (mu 20, logvar 20).
pub fn mlp_encoder(rng: &mut Rng) -> Graph {
    Graph {
        inputs: vec![Input { name: "x".into(), len: 784 }],
        nodes: vec![
            node("fc1", rng.dense(64, 784), &["x"], "h1"),
            node("relu1", Op::Relu, &["h1"], "a1"),
            node("fc_mu", rng.dense(20, 64), &["a1"], "mu"),
            node("fc_logvar", rng.dense(20, 64), &["a1"], "logvar"),
        ],
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: 20, classes: 0 },
    }
}

/// concat(z 20, y 10) -> 64 (LeakyRelu) -> 64 (Tanh) -> 784 Sigmoid: a conditional decoder
/// that also covers the remaining activations.
pub fn conditional_decoder(rng: &mut Rng) -> Graph {
    Graph {
        inputs: vec![Input { name: "z".into(), len: 20 }, Input { name: "y".into(), len: 10 }],
        nodes: vec![
            node("concat", Op::Concat, &["z", "y"], "zy"),
            node("fc1", rng.dense(64, 30), &["zy"], "h1"),
            node("lrelu", Op::LeakyRelu { alpha: 0.2 }, &["h1"], "a1"),
            node("fc2", rng.dense(64, 64), &["a1"], "h2"),
            node("tanh", Op::Tanh, &["h2"], "a2"),
            node("fc3", rng.dense(784, 64), &["a2"], "logits"),
            node("sigmoid", Op::Sigmoid, &["logits"], "x_mean"),
        ],
        outputs: vec!["x_mean".into()],
        role: Role::Decoder { latent: 20, classes: 10, bernoulli: true },
    }
}

/// Random inputs for `g`: Gaussian-ish latents, one-hot labels for a second input.
pub fn inputs_for(g: &Graph, batch: usize, rng: &mut Rng) -> Vec<Array2<f32>> {
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, i)| if k == 1 && i.len <= 16 { rng.one_hot(batch, i.len) } else { rng.matrix(batch, i.len, 2.0) })
        .collect()
}

pub fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim(), "shapes differ");
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn assert_close(what: &str, got: &[Array2<f32>], want: &[Array2<f32>], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (k, (g, w)) in got.iter().zip(want).enumerate() {
        let d = max_abs_diff(g, w);
        assert!(d <= tol, "{what}: output {k} differs by {d} (> {tol})");
    }
}

// ---- protobuf builders, spelled the way torch.onnx.export spells them ----------------------

pub fn dim_param(p: &str) -> Dimension {
    Dimension { denotation: String::new(), value: Some(D::DimParam(p.into())) }
}

pub fn dim_value(v: i64) -> Dimension {
    Dimension { denotation: String::new(), value: Some(D::DimValue(v)) }
}

pub fn value_info(name: &str, dims: Vec<Dimension>) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
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

/// FLOAT initializer in raw_data, as torch writes it.
pub fn init_f32(name: &str, dims: &[usize], data: &[f32]) -> pb::TensorProto {
    assert_eq!(dims.iter().product::<usize>(), data.len());
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn init_i64(name: &str, data: &[i64]) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: vec![data.len() as i64],
        data_type: DataType::Int64 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn a_f(name: &str, f: f32) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Float as i32, f, ..Default::default() }
}

pub fn a_i(name: &str, i: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Int as i32, i, ..Default::default() }
}

pub fn a_ints(name: &str, ints: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

pub fn a_t(name: &str, t: pb::TensorProto) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), r#type: AttributeType::Tensor as i32, t: Some(t), ..Default::default() }
}

pub fn pnode(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        attribute: attrs,
        ..Default::default()
    }
}

/// A `Constant` node holding an INT64 vector, as torch emits for `view` shapes.
pub fn const_i64(name: &str, out: &str, data: &[i64]) -> pb::NodeProto {
    pnode("Constant", name, &[], &[out], vec![a_t("value", init_i64("", data))])
}

/// A `Constant` node holding an INT64 scalar (rank 0), as torch emits for `x.size(0)`.
pub fn const_i64_scalar(name: &str, out: &str, v: i64) -> pb::NodeProto {
    let mut t = init_i64("", &[v]);
    t.dims.clear();
    pnode("Constant", name, &[], &[out], vec![a_t("value", t)])
}

/// The attributes torch puts on the Gemm of an `nn.Linear`.
pub fn torch_gemm_attrs() -> Vec<pb::AttributeProto> {
    vec![a_f("alpha", 1.0), a_f("beta", 1.0), a_i("transB", 1)]
}

/// A model with torch's header fields.
pub fn torch_model(graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "pytorch".into(),
        producer_version: "2.3.1".into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// A Linear layer's parameters in PyTorch layout (`out x in` weight, `out` bias), flattened.
pub fn linear_params(rng: &mut Rng, outs: usize, ins: usize) -> (Vec<f32>, Vec<f32>) {
    let s = 1.0 / (ins as f32).sqrt();
    let w = (0..outs * ins).map(|_| s * rng.uniform()).collect();
    let b = (0..outs).map(|_| s * rng.uniform()).collect();
    (w, b)
}

/// `w` (`out x in`, row-major) transposed to `in x out`, as torch stores `onnx::MatMul_*`.
pub fn transposed(w: &[f32], outs: usize, ins: usize) -> Vec<f32> {
    let mut t = vec![0.0; w.len()];
    for o in 0..outs {
        for i in 0..ins {
            t[i * outs + o] = w[o * ins + i];
        }
    }
    t
}

/// A Linear layer in PyTorch layout: `out x in` weight and `out` bias, flattened, with its
/// (out, in) shape.
pub type Linear = (Vec<f32>, Vec<f32>, usize, usize);

/// Two random layers 20-400-784, initialized like `nn.Linear`.
pub fn random_decoder_layers(rng: &mut Rng) -> [Linear; 2] {
    let (w1, b1) = linear_params(rng, 400, 20);
    let (w2, b2) = linear_params(rng, 784, 400);
    [(w1, b1, 400, 20), (w2, b2, 784, 400)]
}

/// `torch.onnx.export(nn.Sequential(nn.Linear(20,400), nn.ReLU(), nn.Linear(400,784),
/// nn.Sigmoid()), z, input_names=["z"], dynamic_axes={"z": {0: "batch"}})`, module attribute
/// names fc1/fc2 as in the PyTorch VAE example.
pub fn torch_gemm_decoder(rng: &mut Rng) -> pb::ModelProto {
    torch_gemm_decoder_with(&random_decoder_layers(rng))
}

/// [`torch_gemm_decoder`] carrying the given weights.
pub fn torch_gemm_decoder_with(layers: &[Linear; 2]) -> pb::ModelProto {
    let [(w1, b1, o1, i1), (w2, b2, o2, i2)] = layers;
    let graph = pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("Gemm", "/fc1/Gemm", &["z", "fc1.weight", "fc1.bias"], &["/fc1/Gemm_output_0"], torch_gemm_attrs()),
            pnode("Relu", "/relu/Relu", &["/fc1/Gemm_output_0"], &["/relu/Relu_output_0"], vec![]),
            pnode(
                "Gemm",
                "/fc2/Gemm",
                &["/relu/Relu_output_0", "onnx::Gemm_12", "fc2.bias"],
                &["/fc2/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode("Sigmoid", "/sigmoid/Sigmoid", &["/fc2/Gemm_output_0"], &["output"], vec![]),
        ],
        initializer: vec![
            init_f32("fc1.weight", &[*o1, *i1], w1),
            init_f32("fc1.bias", &[*o1], b1),
            init_f32("onnx::Gemm_12", &[*o2, *i2], w2),
            init_f32("fc2.bias", &[*o2], b2),
        ],
        input: vec![value_info("z", vec![dim_param("batch"), dim_value(*i1 as i64)])],
        output: vec![value_info("output", vec![dim_param("batch"), dim_value(*o2 as i64)])],
        ..Default::default()
    };
    torch_model(graph)
}

/// The same decoder as torch writes it when `nn.Linear` sees a non-2-D input or for older
/// exporters: `MatMul` by a transposed `onnx::MatMul_*` initializer, then `Add` of the bias
/// (bias first, as torch's `linear` symbolic emits it, and in the other order for the second
/// layer), input named `input.1`, initializers also listed as graph inputs
/// (`keep_initializers_as_inputs=True`).
pub fn torch_matmul_decoder(rng: &mut Rng) -> pb::ModelProto {
    torch_matmul_decoder_with(&random_decoder_layers(rng))
}

/// [`torch_matmul_decoder`] carrying the given weights.
pub fn torch_matmul_decoder_with(layers: &[Linear; 2]) -> pb::ModelProto {
    let [(w1, b1, o1, i1), (w2, b2, o2, i2)] = layers;
    let inits = vec![
        init_f32("onnx::MatMul_15", &[*i1, *o1], &transposed(w1, *o1, *i1)),
        init_f32("0.bias", &[*o1], b1),
        init_f32("onnx::MatMul_16", &[*i2, *o2], &transposed(w2, *o2, *i2)),
        init_f32("2.bias", &[*o2], b2),
    ];
    let mut input = vec![value_info("input.1", vec![dim_param("batch"), dim_value(*i1 as i64)])];
    for t in &inits {
        input.push(value_info(&t.name, t.dims.iter().map(|&d| dim_value(d)).collect()));
    }
    let graph = pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("MatMul", "/0/MatMul", &["input.1", "onnx::MatMul_15"], &["/0/MatMul_output_0"], vec![]),
            pnode("Add", "/0/Add", &["0.bias", "/0/MatMul_output_0"], &["/0/Add_output_0"], vec![]),
            pnode("Relu", "/1/Relu", &["/0/Add_output_0"], &["/1/Relu_output_0"], vec![]),
            pnode("MatMul", "/2/MatMul", &["/1/Relu_output_0", "onnx::MatMul_16"], &["/2/MatMul_output_0"], vec![]),
            pnode("Add", "/2/Add", &["/2/MatMul_output_0", "2.bias"], &["/2/Add_output_0"], vec![]),
            pnode("Sigmoid", "/3/Sigmoid", &["/2/Add_output_0"], &["19"], vec![]),
        ],
        initializer: inits,
        input,
        output: vec![value_info("19", vec![dim_param("batch"), dim_value(*o2 as i64)])],
        ..Default::default()
    };
    torch_model(graph)
}

/// A VAE encoder taking MNIST images `[N, 1, 28, 28]`: `nn.Flatten()`, fc1 784->64, ReLU,
/// fc21/fc22 64->20 giving `mu` and `logvar` (PyTorch VAE example layout).
pub fn torch_flatten_encoder(rng: &mut Rng) -> pb::ModelProto {
    let (w1, b1) = linear_params(rng, 64, 784);
    let (w21, b21) = linear_params(rng, 20, 64);
    let (w22, b22) = linear_params(rng, 20, 64);
    let graph = pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("Flatten", "/flatten/Flatten", &["input.1"], &["/flatten/Flatten_output_0"], vec![a_i("axis", 1)]),
            pnode(
                "Gemm",
                "/fc1/Gemm",
                &["/flatten/Flatten_output_0", "fc1.weight", "fc1.bias"],
                &["/fc1/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode("Relu", "/Relu", &["/fc1/Gemm_output_0"], &["/Relu_output_0"], vec![]),
            pnode("Gemm", "/fc21/Gemm", &["/Relu_output_0", "fc21.weight", "fc21.bias"], &["mu"], torch_gemm_attrs()),
            pnode(
                "Gemm",
                "/fc22/Gemm",
                &["/Relu_output_0", "fc22.weight", "fc22.bias"],
                &["logvar"],
                torch_gemm_attrs(),
            ),
        ],
        initializer: vec![
            init_f32("fc1.weight", &[64, 784], &w1),
            init_f32("fc1.bias", &[64], &b1),
            init_f32("fc21.weight", &[20, 64], &w21),
            init_f32("fc21.bias", &[20], &b21),
            init_f32("fc22.weight", &[20, 64], &w22),
            init_f32("fc22.bias", &[20], &b22),
        ],
        input: vec![value_info("input.1", vec![dim_param("N"), dim_value(1), dim_value(28), dim_value(28)])],
        output: vec![
            value_info("mu", vec![dim_param("N"), dim_value(20)]),
            value_info("logvar", vec![dim_param("N"), dim_value(20)]),
        ],
        ..Default::default()
    };
    torch_model(graph)
}

/// Other idioms torch writes for VAE encoders: `x.view(x.size(0), -1)` (Shape/Gather/
/// Unsqueeze/Concat/Reshape over Constant nodes), a label concatenated after flattening (a
/// conditional encoder), LeakyRelu, a Dropout left in the graph, and one Linear giving
/// `2 * latent` features split into mu and logvar by `chunk(2, dim=1)`.
pub fn torch_idioms_encoder(rng: &mut Rng) -> pb::ModelProto {
    let (w1, b1) = linear_params(rng, 64, 794);
    let (w2, b2) = linear_params(rng, 40, 64);
    let graph = pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("Shape", "/Shape", &["x"], &["/Shape_output_0"], vec![]),
            const_i64_scalar("/Constant", "/Constant_output_0", 0),
            pnode(
                "Gather",
                "/Gather",
                &["/Shape_output_0", "/Constant_output_0"],
                &["/Gather_output_0"],
                vec![a_i("axis", 0)],
            ),
            const_i64("/Constant_1", "/Constant_1_output_0", &[0]),
            pnode(
                "Unsqueeze",
                "/Unsqueeze",
                &["/Gather_output_0", "/Constant_1_output_0"],
                &["/Unsqueeze_output_0"],
                vec![],
            ),
            const_i64("/Constant_2", "/Constant_2_output_0", &[-1]),
            pnode(
                "Concat",
                "/Concat",
                &["/Unsqueeze_output_0", "/Constant_2_output_0"],
                &["/Concat_output_0"],
                vec![a_i("axis", 0)],
            ),
            pnode("Reshape", "/Reshape", &["x", "/Concat_output_0"], &["/Reshape_output_0"], vec![]),
            pnode("Concat", "/Concat_1", &["/Reshape_output_0", "y"], &["/Concat_1_output_0"], vec![a_i("axis", 1)]),
            pnode(
                "Gemm",
                "/fc1/Gemm",
                &["/Concat_1_output_0", "fc1.weight", "fc1.bias"],
                &["/fc1/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode(
                "LeakyRelu",
                "/act/LeakyRelu",
                &["/fc1/Gemm_output_0"],
                &["/act/LeakyRelu_output_0"],
                vec![a_f("alpha", 0.1)],
            ),
            pnode("Dropout", "/drop/Dropout", &["/act/LeakyRelu_output_0"], &["/drop/Dropout_output_0"], vec![]),
            pnode(
                "Gemm",
                "/fc2/Gemm",
                &["/drop/Dropout_output_0", "fc2.weight", "fc2.bias"],
                &["/fc2/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode(
                "Split",
                "/Split",
                &["/fc2/Gemm_output_0", "onnx::Split_30"],
                &["mu", "logvar"],
                vec![a_i("axis", 1)],
            ),
        ],
        initializer: vec![
            init_f32("fc1.weight", &[64, 794], &w1),
            init_f32("fc1.bias", &[64], &b1),
            init_f32("fc2.weight", &[40, 64], &w2),
            init_f32("fc2.bias", &[40], &b2),
            init_i64("onnx::Split_30", &[20, 20]),
        ],
        input: vec![
            value_info("x", vec![dim_param("batch_size"), dim_value(1), dim_value(28), dim_value(28)]),
            value_info("y", vec![dim_param("batch_size"), dim_value(10)]),
        ],
        output: vec![
            value_info("mu", vec![dim_param("batch_size"), dim_value(20)]),
            value_info("logvar", vec![dim_param("batch_size"), dim_value(20)]),
        ],
        ..Default::default()
    };
    torch_model(graph)
}

/// A decoder ending in `.view(-1, 1, 28, 28)` (Reshape by a constant initializer), with the
/// label concatenated to z, and a bias-free `nn.Linear` (MatMul alone).
pub fn torch_image_decoder(rng: &mut Rng) -> pb::ModelProto {
    let (w1, _) = linear_params(rng, 64, 30);
    let (w2, b2) = linear_params(rng, 784, 64);
    let graph = pb::GraphProto {
        name: "main_graph".into(),
        node: vec![
            pnode("Concat", "/Concat", &["z", "label"], &["/Concat_output_0"], vec![a_i("axis", -1)]),
            pnode("MatMul", "/fc1/MatMul", &["/Concat_output_0", "onnx::MatMul_21"], &["/fc1/MatMul_output_0"], vec![]),
            pnode("Tanh", "/Tanh", &["/fc1/MatMul_output_0"], &["/Tanh_output_0"], vec![]),
            pnode(
                "Gemm",
                "/fc2/Gemm",
                &["/Tanh_output_0", "fc2.weight", "fc2.bias"],
                &["/fc2/Gemm_output_0"],
                torch_gemm_attrs(),
            ),
            pnode("Sigmoid", "/Sigmoid", &["/fc2/Gemm_output_0"], &["/Sigmoid_output_0"], vec![]),
            pnode("Reshape", "/Reshape", &["/Sigmoid_output_0", "/Constant_output_0"], &["recon"], vec![]),
        ],
        initializer: vec![
            init_f32("onnx::MatMul_21", &[30, 64], &transposed(&w1, 64, 30)),
            init_f32("fc2.weight", &[784, 64], &w2),
            init_f32("fc2.bias", &[784], &b2),
            init_i64("/Constant_output_0", &[-1, 1, 28, 28]),
        ],
        input: vec![
            value_info("z", vec![dim_param("batch"), dim_value(20)]),
            value_info("label", vec![dim_param("batch"), dim_value(10)]),
        ],
        output: vec![value_info("recon", vec![dim_param("batch"), dim_value(1), dim_value(28), dim_value(28)])],
        ..Default::default()
    };
    torch_model(graph)
}

/// What the dynamo exporter and hand-written forwards also produce (IR 10, opset 18): MatMul
/// by a Transpose of the weight, Unsqueeze/Squeeze/Identity/Cast around the activations, and
/// `mu, logvar = h[:, :20], h[:, 20:]` as two Slice nodes on one Gemm output.
pub fn dynamo_style_encoder(rng: &mut Rng) -> pb::ModelProto {
    let (w1, b1) = linear_params(rng, 64, 784);
    let (w2, b2) = linear_params(rng, 40, 64);
    let graph = pb::GraphProto {
        node: vec![
            pnode("Unsqueeze", "/Unsqueeze", &["x", "axes1"], &["u"], vec![]),
            pnode("Identity", "/Identity", &["u"], &["u2"], vec![]),
            pnode("Squeeze", "/Squeeze", &["u2", "axes1"], &["s"], vec![]),
            pnode("Cast", "/Cast", &["s"], &["c"], vec![a_i("to", DataType::Float as i64)]),
            pnode("Transpose", "/t", &["fc1.weight"], &["w1t"], vec![a_ints("perm", &[1, 0])]),
            pnode("MatMul", "node_MatMul_1", &["c", "w1t"], &["mm"], vec![]),
            pnode("Add", "node_Add_2", &["mm", "fc1.bias"], &["h"], vec![]),
            pnode("Relu", "node_Relu_3", &["h"], &["r"], vec![]),
            pnode("Gemm", "node_Gemm_4", &["r", "fc2.weight", "fc2.bias"], &["h2"], torch_gemm_attrs()),
            pnode("Slice", "/Slice", &["h2", "zero", "twenty", "one", "one"], &["mu"], vec![]),
            pnode("Slice", "/Slice_1", &["h2", "twenty", "int_max", "one"], &["logvar"], vec![]),
        ],
        initializer: vec![
            init_f32("fc1.weight", &[64, 784], &w1),
            init_f32("fc1.bias", &[64], &b1),
            init_f32("fc2.weight", &[40, 64], &w2),
            init_f32("fc2.bias", &[40], &b2),
            init_i64("axes1", &[1]),
            init_i64("zero", &[0]),
            init_i64("one", &[1]),
            init_i64("twenty", &[20]),
            init_i64("int_max", &[i64::MAX]),
        ],
        input: vec![value_info("x", vec![dim_param("s0"), dim_value(784)])],
        output: vec![
            value_info("mu", vec![dim_param("s0"), dim_value(20)]),
            value_info("logvar", vec![dim_param("s0"), dim_value(20)]),
        ],
        ..Default::default()
    };
    let mut m = torch_model(graph);
    m.ir_version = 10;
    m.opset_import[0].version = 18;
    m
}

/// The error and its causes, outermost first, the way the CLI prints them.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}
