//! ONNX import/export and the tract reference: round trips, agreement of tract with the IR
//! evaluator on tinyvae's own exports and on PyTorch-shaped models, and the error messages
//! users see for models tinyvae cannot take.

mod common;

use common::*;
use ndarray::{Array2, ArrayView2};
use prost::Message;
use tinyvae_compiler::onnx::proto as pb;
use tinyvae_compiler::onnx::proto::tensor_proto::DataType;
use tinyvae_compiler::onnx::to_model_proto;
use tinyvae_compiler::{export, export_file, import_bytes, import_file, Graph, ImportError, Op, Role};
#[cfg(feature = "tract")]
use tinyvae_compiler::{TractModel, TractRefError};

fn views(a: &[Array2<f32>]) -> Vec<ArrayView2<'_, f32>> {
    a.iter().map(|x| x.view()).collect()
}

/// tract on `bytes` vs `Graph::eval` of `g`, for a few batch sizes (1 and 64 are the benchmark
/// sizes; 7 catches batch-dependent shape bugs).
#[cfg(feature = "tract")]
fn check_tract_vs_eval(what: &str, bytes: &[u8], g: &Graph, rng: &mut Rng) {
    let tract = TractModel::from_bytes(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(tract.input_lens(), g.inputs.iter().map(|i| i.len).collect::<Vec<_>>(), "{what}: input lens");
    for batch in [1, 7, 64] {
        let x = inputs_for(g, batch, rng);
        let want = g.eval(&views(&x)).unwrap();
        let got = tract.run(&views(&x)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_close(&format!("{what} batch {batch}"), &got, &want, 1e-5);
    }
}

/// Without the reference the import checks still run; only the cross-check with tract is lost.
#[cfg(not(feature = "tract"))]
fn check_tract_vs_eval(_: &str, _: &[u8], _: &Graph, _: &mut Rng) {}

fn encode(m: &pb::ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}

fn import_err(m: &pb::ModelProto) -> String {
    match import_bytes(&encode(m)) {
        Ok(g) => panic!("import should fail, got {g:?}"),
        Err(e) => e.to_string(),
    }
}

// ---- tinyvae's own exports ---------------------------------------------------------------

#[test]
fn export_import_round_trip_is_exact() {
    let mut rng = Rng(1);
    for g in [mlp_decoder(&mut rng), mlp_encoder(&mut rng), conditional_decoder(&mut rng)] {
        let bytes = export(&g).unwrap();
        let back = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, g, "round trip changed the graph");
    }
}

#[test]
fn round_trip_keeps_generic_and_gaussian_roles() {
    let mut rng = Rng(2);
    let mut g = mlp_decoder(&mut rng);
    g.role = Role::Decoder { latent: 20, classes: 0, bernoulli: false };
    assert_eq!(import_bytes(&export(&g).unwrap()).unwrap().role, g.role);
    g.role = Role::Generic;
    assert_eq!(import_bytes(&export(&g).unwrap()).unwrap().role, Role::Generic);
}

#[test]
fn export_writes_the_promised_header() {
    let mut rng = Rng(3);
    let m = to_model_proto(&mlp_decoder(&mut rng)).unwrap();
    assert_eq!(m.ir_version, 8);
    assert_eq!(m.producer_name, "tinyvae");
    assert_eq!(m.opset_import.len(), 1);
    assert_eq!((m.opset_import[0].domain.as_str(), m.opset_import[0].version), ("", 13));
    let g = m.graph.unwrap();
    let ops: Vec<&str> = g.node.iter().map(|n| n.op_type.as_str()).collect();
    assert_eq!(ops, ["Gemm", "Relu", "Gemm", "Sigmoid"]);
    let names: Vec<&str> = g.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["fc1", "relu1", "fc2", "sigmoid"]);
    let trans_b = g.node[0].attribute.iter().find(|a| a.name == "transB").map(|a| a.i);
    assert_eq!(trans_b, Some(1));
    let w = g.initializer.iter().find(|t| t.name == g.node[0].input[1]).unwrap();
    assert_eq!(w.dims, [64, 20]);
    let meta: Vec<(&str, &str)> = m.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
    assert_eq!(
        meta,
        [
            ("tinyvae.role", "decoder"),
            ("tinyvae.latent", "20"),
            ("tinyvae.classes", "0"),
            ("tinyvae.output", "bernoulli")
        ]
    );
}

#[test]
fn export_file_and_import_file() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx_import_export");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("enc.onnx");
    let mut rng = Rng(4);
    let g = mlp_encoder(&mut rng);
    export_file(&g, &path).unwrap();
    assert_eq!(import_file(&path).unwrap(), g);
    #[cfg(feature = "tract")]
    {
        let t = TractModel::load(&path).unwrap();
        let x = inputs_for(&g, 3, &mut rng);
        assert_close("file", &t.run(&views(&x)).unwrap(), &g.eval(&views(&x)).unwrap(), 1e-5);
    }
}

#[test]
fn tract_matches_eval_on_exports() {
    let mut rng = Rng(5);
    for (what, g) in [
        ("decoder 20-64-784", mlp_decoder(&mut rng)),
        ("encoder 784-64-(20,20)", mlp_encoder(&mut rng)),
        ("conditional decoder", conditional_decoder(&mut rng)),
    ] {
        check_tract_vs_eval(what, &export(&g).unwrap(), &g, &mut rng);
    }
}

#[cfg(feature = "tract")]
#[test]
fn tract_prepared_plan_matches_run() {
    let mut rng = Rng(6);
    let g = conditional_decoder(&mut rng);
    let tract = TractModel::from_bytes(&export(&g).unwrap()).unwrap();
    for batch in [1, 64] {
        let mut p = tract.prepare(batch).unwrap();
        assert_eq!(p.batch(), batch);
        assert!(p.outputs().is_err(), "no outputs before the first run");
        let x = inputs_for(&g, batch, &mut rng);
        p.set_inputs(&views(&x)).unwrap();
        p.run().unwrap();
        p.run().unwrap();
        assert_close("prepared", &p.outputs().unwrap(), &g.eval(&views(&x)).unwrap(), 1e-5);
        let wrong = inputs_for(&g, batch + 1, &mut rng);
        assert!(p.set_inputs(&views(&wrong)).is_err(), "batch mismatch must be refused");
    }
}

#[cfg(feature = "tract")]
#[test]
fn tract_errors_say_what_failed_and_keep_the_cause() {
    // The file is the caller's to name; the cause stays reachable as the source.
    let e = TractModel::load(std::path::Path::new("/nonexistent/dir/vae.onnx")).unwrap_err();
    assert!(matches!(&e, TractRefError::Io(io) if io.kind() == std::io::ErrorKind::NotFound), "{e:?}");
    assert!(!chain(&e).contains("vae.onnx"), "{}", chain(&e));
    let e = TractModel::from_bytes(b"\xff\xff\xff not onnx").unwrap_err();
    assert!(matches!(e, TractRefError::Decode(_)) && e.to_string().contains("protobuf"), "{e}");
    let mut rng = Rng(7);
    let g = mlp_decoder(&mut rng);
    let t = TractModel::from_bytes(&export(&g).unwrap()).unwrap();
    let e = t.run(&[Array2::<f32>::zeros((2, 19)).view()]).unwrap_err().to_string();
    assert!(e.contains("`z`") && e.contains("20") && e.contains("19"), "{e}");
}

// ---- what torch.onnx.export writes ----------------------------------------------------------

#[test]
fn torch_gemm_decoder_imports_and_matches_tract() {
    let mut rng = Rng(10);
    let m = torch_gemm_decoder(&mut rng);
    let bytes = encode(&m);
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.role, Role::Decoder { latent: 20, classes: 0, bernoulli: true });
    assert_eq!(g.inputs[0].name, "z");
    assert_eq!(g.outputs, ["output"]);
    let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["/fc1/Gemm", "/relu/Relu", "/fc2/Gemm", "/sigmoid/Sigmoid"]);
    // Weights stay in PyTorch's `out x in` layout.
    let Op::Dense { weight, .. } = &g.nodes[0].op else { panic!() };
    let t = &m.graph.as_ref().unwrap().initializer[0];
    assert_eq!(weight.dim(), (400, 20));
    assert_eq!(weight[[1, 0]].to_le_bytes(), t.raw_data[80..84]);
    check_tract_vs_eval("torch gemm decoder", &bytes, &g, &mut rng);
}

#[test]
fn torch_matmul_add_decoder_fuses_and_matches_tract() {
    let mut rng = Rng(11);
    let m = torch_matmul_decoder(&mut rng);
    let bytes = encode(&m);
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Dense", "Relu", "Dense", "Sigmoid"], "MatMul+Add pairs must fuse");
    assert_eq!(g.inputs.len(), 1, "initializers listed as inputs are not graph inputs");
    assert_eq!(g.inputs[0].name, "input.1");
    assert_eq!(g.outputs, ["19"]);
    assert_eq!(g.role, Role::Decoder { latent: 20, classes: 0, bernoulli: true });
    check_tract_vs_eval("torch matmul decoder", &bytes, &g, &mut rng);
    // Same numbers as the Gemm spelling of the same weights.
    let mut rng2 = Rng(11);
    let gemm = import_bytes(&encode(&torch_gemm_decoder(&mut rng2))).unwrap();
    let x = inputs_for(&g, 5, &mut rng);
    assert_close("matmul vs gemm", &g.eval(&views(&x)).unwrap(), &gemm.eval(&views(&x)).unwrap(), 1e-5);
}

#[test]
fn torch_flatten_encoder_imports_and_matches_tract() {
    let mut rng = Rng(12);
    let bytes = encode(&torch_flatten_encoder(&mut rng));
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.inputs[0].len, 784);
    assert_eq!(g.outputs, ["mu", "logvar"]);
    assert_eq!(g.role, Role::Encoder { latent: 20, classes: 0 });
    check_tract_vs_eval("torch flatten encoder", &bytes, &g, &mut rng);
}

#[test]
fn torch_idioms_encoder_imports_and_matches_tract() {
    let mut rng = Rng(13);
    let bytes = encode(&torch_idioms_encoder(&mut rng));
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.inputs.iter().map(|i| i.len).collect::<Vec<_>>(), [784, 10]);
    assert_eq!(g.outputs, ["mu", "logvar"]);
    assert_eq!(g.role, Role::Encoder { latent: 20, classes: 10 });
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Concat", "Dense", "LeakyRelu", "Dense", "Dense"], "the split Dense is replaced by its halves");
    check_tract_vs_eval("torch idioms encoder", &bytes, &g, &mut rng);
}

#[test]
fn torch_image_decoder_imports_and_matches_tract() {
    let mut rng = Rng(14);
    let bytes = encode(&torch_image_decoder(&mut rng));
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.outputs, ["recon"], "the output keeps its ONNX name through the Reshape");
    assert_eq!(g.role, Role::Decoder { latent: 20, classes: 10, bernoulli: true });
    let Op::Dense { bias, .. } = &g.nodes[1].op else { panic!("{:?}", g.nodes[1]) };
    assert!(bias.iter().all(|&b| b == 0.0), "a lone MatMul has no bias");
    check_tract_vs_eval("torch image decoder", &bytes, &g, &mut rng);
}

#[test]
fn matmul_read_twice_keeps_the_bias_free_product() {
    // A MatMul whose output feeds an Add and is also a graph output: the Add gets its own
    // biased Dense and the bias-free one stays.
    let mut rng = Rng(15);
    let mut m = torch_matmul_decoder(&mut rng);
    let g = m.graph.as_mut().unwrap();
    g.output.push(value_info("/0/MatMul_output_0", vec![dim_param("batch"), dim_value(400)]));
    let bytes = encode(&m);
    let ir = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ir.outputs, ["19", "/0/MatMul_output_0"]);
    assert_eq!(ir.role, Role::Generic);
    let Op::Dense { bias, .. } = &ir.nodes[0].op else { panic!() };
    assert!(bias.iter().all(|&b| b == 0.0));
    check_tract_vs_eval("matmul read twice", &bytes, &ir, &mut rng);
}

#[test]
fn initializer_encodings_decode_to_the_same_graph() {
    let mut rng = Rng(16);
    let reference = import_bytes(&encode(&torch_gemm_decoder(&mut rng))).unwrap();
    let recode = |f: &dyn Fn(&mut pb::TensorProto)| {
        let mut m = torch_gemm_decoder(&mut Rng(16));
        for t in &mut m.graph.as_mut().unwrap().initializer {
            f(t);
        }
        import_bytes(&encode(&m)).unwrap_or_else(|e| panic!("{e}"))
    };
    let floats = |t: &pb::TensorProto| -> Vec<f32> {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    };
    // float_data instead of raw_data.
    let g = recode(&|t| {
        t.float_data = floats(t);
        t.raw_data.clear();
    });
    assert_eq!(g, reference);
    // DOUBLE, both ways: exact after the round trip through f64.
    let g = recode(&|t| {
        t.double_data = floats(t).iter().map(|&v| v as f64).collect();
        t.raw_data.clear();
        t.data_type = DataType::Double as i32;
    });
    assert_eq!(g, reference);
    let g = recode(&|t| {
        t.raw_data = floats(t).iter().flat_map(|&v| (v as f64).to_le_bytes()).collect();
        t.data_type = DataType::Double as i32;
    });
    assert_eq!(g, reference);
    // FLOAT16, both ways: equal to the f16 rounding of the weights.
    let to_f16 = |v: f32| half::f16::from_f32(v);
    let g16a = recode(&|t| {
        t.raw_data = floats(t).iter().flat_map(|&v| to_f16(v).to_le_bytes()).collect();
        t.data_type = DataType::Float16 as i32;
    });
    let g16b = recode(&|t| {
        t.int32_data = floats(t).iter().map(|&v| to_f16(v).to_bits() as i32).collect();
        t.raw_data.clear();
        t.data_type = DataType::Float16 as i32;
    });
    assert_eq!(g16a, g16b);
    let (Op::Dense { weight: w16, .. }, Op::Dense { weight: w32, .. }) = (&g16a.nodes[0].op, &reference.nodes[0].op)
    else {
        panic!()
    };
    for (a, b) in w16.iter().zip(w32.iter()) {
        assert_eq!(*a, to_f16(*b).to_f32());
    }
}

#[test]
fn gemm_variants_transb0_alpha_beta_and_2d_bias() {
    // transB=0 with an `in x out` weight, alpha/beta scaling and a [1, N] bias from Constant
    // nodes: same function as the plain Gemm.
    let mut rng = Rng(17);
    let (w, b) = linear_params(&mut rng, 8, 5);
    let wt = init_f32("", &[5, 8], &transposed(&w, 8, 5));
    let bias: Vec<f32> = b.iter().map(|v| v * 2.0).collect();
    let graph = pb::GraphProto {
        node: vec![
            pnode("Constant", "/c_w", &[], &["W"], vec![a_t("value", wt)]),
            pnode("Constant", "/c_b", &[], &["B"], vec![a_t("value", init_f32("", &[1, 8], &bias))]),
            pnode("Gemm", "/fc/Gemm", &["x", "W", "B"], &["y"], vec![a_f("alpha", 1.0), a_f("beta", 0.5)]),
            pnode("Tanh", "/Tanh", &["y"], &["out"], vec![]),
        ],
        input: vec![value_info("x", vec![dim_value(1), dim_value(5)])],
        output: vec![value_info("out", vec![dim_value(1), dim_value(8)])],
        ..Default::default()
    };
    let bytes = encode(&torch_model(graph));
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.role, Role::Generic);
    let Op::Dense { weight, bias: got_b } = &g.nodes[0].op else { panic!() };
    assert_eq!(weight.as_slice().unwrap(), &w[..]);
    for (x, y) in got_b.iter().zip(&b) {
        assert!((x - y).abs() < 1e-7);
    }
    check_tract_vs_eval("gemm variants", &bytes, &g, &mut rng);
}

#[test]
fn metadata_overrides_inference_and_is_checked() {
    let mut rng = Rng(18);
    let mut m = torch_gemm_decoder(&mut rng);
    let meta = |k: &str, v: &str| pb::StringStringEntryProto { key: k.into(), value: v.into() };
    m.metadata_props = vec![meta("tinyvae.role", "decoder"), meta("tinyvae.output", "gaussian")];
    let g = import_bytes(&encode(&m)).unwrap();
    assert_eq!(g.role, Role::Decoder { latent: 20, classes: 0, bernoulli: false });
    m.metadata_props = vec![meta("tinyvae.role", "generic")];
    assert_eq!(import_bytes(&encode(&m)).unwrap().role, Role::Generic);
    m.metadata_props = vec![meta("tinyvae.role", "decoder"), meta("tinyvae.latent", "2")];
    let e = import_bytes(&encode(&m)).unwrap_err().to_string();
    assert!(e.contains("latent 2") && e.contains("`z`"), "{e}");
    m.metadata_props = vec![meta("tinyvae.role", "autoencoder")];
    let e = import_bytes(&encode(&m)).unwrap_err().to_string();
    assert!(e.contains("autoencoder"), "{e}");
    // Any one-input, one-output graph can be called a classifier: one class per output value.
    m.metadata_props = vec![meta("tinyvae.role", "classifier")];
    let g = import_bytes(&encode(&m)).unwrap();
    assert_eq!(g.role, Role::Classifier { classes: 784 });
    // It survives export and import.
    assert_eq!(import_bytes(&export(&g).unwrap()).unwrap().role, g.role);
    m.metadata_props = vec![meta("tinyvae.role", "classifier"), meta("tinyvae.classes", "10")];
    let e = import_bytes(&encode(&m)).unwrap_err().to_string();
    assert!(e.contains("tinyvae.classes") && e.contains("10"), "{e}");
}

// ---- errors ---------------------------------------------------------------------------------

#[test]
fn unsupported_op_names_op_and_node() {
    let mut m = torch_flatten_encoder(&mut Rng(20));
    let g = m.graph.as_mut().unwrap();
    g.node.insert(
        0,
        pnode("MaxPool", "/encoder/pool1/MaxPool", &["input.1"], &["/encoder/pool1/MaxPool_output_0"], vec![]),
    );
    g.node[1].input[0] = "/encoder/pool1/MaxPool_output_0".into();
    let e = import_err(&m);
    assert!(e.contains("`MaxPool`") && e.contains("`/encoder/pool1/MaxPool`"), "{e}");
    for op in tinyvae_compiler::onnx::SupportedOps.op_types() {
        assert!(e.contains(op), "the message lists what is supported, {op} too: {e}");
    }
    let ImportError::UnsupportedOp { op, node, .. } = import_bytes(&encode(&m)).unwrap_err() else { panic!() };
    assert_eq!((op.as_str(), node.as_str()), ("MaxPool", "/encoder/pool1/MaxPool"));

    // A custom domain is reported with its domain.
    let mut m = torch_gemm_decoder(&mut Rng(20));
    let n = &mut m.graph.as_mut().unwrap().node[1];
    n.domain = "com.microsoft".into();
    n.op_type = "FastGelu".into();
    let e = import_err(&m);
    assert!(e.contains("com.microsoft.FastGelu") && e.contains("/relu/Relu"), "{e}");
}

#[test]
fn bad_attributes_and_weights_name_the_node() {
    let base = || torch_gemm_decoder(&mut Rng(21));

    let mut m = base();
    m.graph.as_mut().unwrap().node[0].attribute.push(a_i("transA", 1));
    let e = import_err(&m);
    assert!(e.contains("/fc1/Gemm") && e.contains("transA"), "{e}");

    // Weights that are a graph input, not a constant.
    let mut m = base();
    let g = m.graph.as_mut().unwrap();
    g.initializer.retain(|t| t.name != "fc1.weight");
    g.input.push(value_info("fc1.weight", vec![dim_value(400), dim_value(20)]));
    let e = import_err(&m);
    assert!(e.contains("/fc1/Gemm") && e.contains("fc1.weight") && e.contains("initializer"), "{e}");

    // Shape mismatch between the weight and its input.
    let mut m = base();
    let g = m.graph.as_mut().unwrap();
    g.input[0] = value_info("z", vec![dim_param("batch"), dim_value(21)]);
    let e = import_err(&m);
    assert!(e.contains("/fc1/Gemm") && e.contains("21"), "{e}");

    // A bias of the wrong length.
    let mut m = base();
    let g = m.graph.as_mut().unwrap();
    g.initializer[1] = init_f32("fc1.bias", &[399], &[0.0; 399]);
    let e = import_err(&m);
    assert!(e.contains("/fc1/Gemm") && e.contains("bias"), "{e}");

    // Concat along the batch.
    let mut m = torch_image_decoder(&mut Rng(21));
    m.graph.as_mut().unwrap().node[0].attribute = vec![a_i("axis", 0)];
    let e = import_err(&m);
    assert!(e.contains("/Concat") && e.contains("axis 0"), "{e}");

    // A Reshape that folds the batch away.
    let mut m = torch_image_decoder(&mut Rng(21));
    m.graph.as_mut().unwrap().initializer[3] = init_i64("/Constant_output_0", &[-1]);
    let e = import_err(&m);
    assert!(e.contains("/Reshape") && e.contains("batch"), "{e}");

    // A HardSigmoid is imported only as hard swish's gate: as a graph output it says so.
    let mut m = torch_gemm_decoder(&mut Rng(21));
    let sig = &mut m.graph.as_mut().unwrap().node[3];
    sig.op_type = "HardSigmoid".into();
    sig.attribute = vec![a_f("alpha", 1.0 / 6.0), a_f("beta", 0.5)];
    let e = import_err(&m);
    assert!(e.contains("`output`") && e.contains("HardSigmoid") && e.contains("gate"), "{e}");

    // Adding two activations of different shapes: the IR adds without broadcasting.
    let mut m = torch_matmul_decoder(&mut Rng(21));
    m.graph.as_mut().unwrap().node[1].input[0] = "input.1".into();
    let e = import_err(&m);
    assert!(e.contains("/0/Add") && e.contains("no broadcasting"), "{e}");
}

/// Sizes from the model file that would overflow, or that no blob can hold, are refused by name
/// before any size computation uses them.
#[test]
fn huge_and_overflowing_sizes_are_refused_by_name() {
    let mut m = torch_gemm_decoder(&mut Rng(22));
    m.graph.as_mut().unwrap().input[0] = value_info("z", vec![dim_param("batch"), dim_value(1 << 40)]);
    let e = import_err(&m);
    assert!(e.contains("`z`") && e.contains("1099511627776 values per sample"), "{e}");
    m.graph.as_mut().unwrap().input[0] =
        value_info("z", vec![dim_param("batch"), dim_value(1 << 40), dim_value(1 << 40)]);
    let e = import_err(&m);
    assert!(e.contains("`z`") && e.contains("values per sample"), "{e}");

    let upsample = |input, factor| Graph {
        inputs: vec![tinyvae_compiler::ir::Input { name: "x".into(), len: 4 }],
        nodes: vec![tinyvae_compiler::ir::Node {
            name: "up".into(),
            op: Op::Upsample { input, factor },
            inputs: vec!["x".into()],
            output: "y".into(),
        }],
        outputs: vec!["y".into()],
        role: Role::Generic,
    };
    // Within usize, but larger than a blob's tensors may be.
    let e = upsample([1, 2, 2], [1 << 12, 1 << 12]).value_shapes().unwrap_err().to_string();
    assert!(e.contains("`y`") && e.contains("67108864 values per sample"), "{e}");
    // Past usize: an error naming the node, not an overflow.
    let e = upsample([1, 4, 1], [usize::MAX / 2, 1]).value_shapes().unwrap_err().to_string();
    assert!(e.contains("`up`") && e.contains("overflows"), "{e}");
    // An input that claims more values than its product of dimensions can count.
    let e = upsample([usize::MAX, 2, 2], [1, 1]).value_shapes().unwrap_err().to_string();
    assert!(e.contains("`up`"), "{e}");
}

#[test]
fn decode_and_external_data_errors_are_clear() {
    let e = import_bytes(b"\x08\x96\x01\xff\xff\xff garbage").unwrap_err();
    assert!(matches!(e, ImportError::Decode(_)) && e.to_string().contains("protobuf"), "{e}");
    // The file is the caller's to name (the CLI adds it once); the OS error stays the source.
    let e = import_file(std::path::Path::new("/no/such/model.onnx")).unwrap_err();
    assert!(matches!(&e, ImportError::Io(io) if io.kind() == std::io::ErrorKind::NotFound), "{e:?}");
    assert!(!chain(&e).contains("model.onnx"), "{}", chain(&e));

    let mut m = torch_gemm_decoder(&mut Rng(22));
    let t = &mut m.graph.as_mut().unwrap().initializer[2];
    t.raw_data.clear();
    t.data_location = pb::tensor_proto::DataLocation::External as i32;
    t.external_data = vec![pb::StringStringEntryProto { key: "location".into(), value: "decoder.onnx.data".into() }];
    let e = import_err(&m);
    assert!(e.contains("onnx::Gemm_12") && e.contains("external") && e.contains("decoder.onnx.data"), "{e}");

    // Truncated raw data.
    let mut m = torch_gemm_decoder(&mut Rng(22));
    m.graph.as_mut().unwrap().initializer[0].raw_data.truncate(12);
    let e = import_err(&m);
    assert!(e.contains("fc1.weight") && e.contains("bytes"), "{e}");

    // A non-float input.
    let mut m = torch_gemm_decoder(&mut Rng(22));
    let g = m.graph.as_mut().unwrap();
    if let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &mut g.input[0].r#type {
        t.elem_type = DataType::Int64 as i32;
    }
    let e = import_err(&m);
    assert!(e.contains("`z`") && e.contains("INT64"), "{e}");
}

#[test]
fn dynamo_style_layout_ops_and_slices_match_tract() {
    let mut rng = Rng(23);
    let m = dynamo_style_encoder(&mut rng);
    let w1 = m.graph.as_ref().unwrap().initializer[0].raw_data.clone();
    let bytes = encode(&m);
    let g = import_bytes(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
    assert_eq!(ops, ["Dense", "Relu", "Dense", "Dense"]);
    assert_eq!(g.role, Role::Encoder { latent: 20, classes: 0 });
    let Op::Dense { weight, .. } = &g.nodes[0].op else { panic!() };
    let w: Vec<u8> = weight.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(w, w1, "Transpose then MatMul is the PyTorch layout again");
    check_tract_vs_eval("layout ops", &bytes, &g, &mut rng);
}

#[cfg(feature = "tract")]
#[test]
fn tract_model_can_be_shared_across_threads() {
    // Validation over 1,000 samples may fan out over threads; the reference must allow it.
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TractModel>();
    send::<tinyvae_compiler::PreparedRun>();
    send_sync::<ImportError>();
}
