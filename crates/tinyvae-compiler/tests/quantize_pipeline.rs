//! The quantizer on IR graphs of each shape the runtime supports: blobs at every precision
//! compute what the float graph computes, within each precision's error.

use ndarray::{Array1, Array2};
use tinyvae::{Model, Precision};
use tinyvae_compiler::{
    calibrate, measure, model_inputs, prepare, quantize, Data, Fidelity, Graph, Input, Method, Node, Op, Purpose, Role,
};

fn dense(rng: &mut tinyvae::Rng, name: &str, input: &str, output: &str, out: usize, inp: usize, gain: f32) -> Node {
    let s = gain / (inp as f32).sqrt();
    Node {
        name: name.into(),
        op: Op::Dense {
            weight: Array2::from_shape_fn((out, inp), |_| (rng.uniform() * 2.0 - 1.0) * s),
            bias: Array1::from_shape_fn(out, |_| (rng.uniform() * 2.0 - 1.0) * 0.1),
        },
        inputs: vec![input.into()],
        output: output.into(),
    }
}

fn act(name: &str, op: Op, input: &str, output: &str) -> Node {
    Node { name: name.into(), op, inputs: vec![input.into()], output: output.into() }
}

fn decoder(seed: u64, latent: usize, classes: usize) -> Graph {
    let mut rng = tinyvae::Rng::new(seed);
    let mut inputs = vec![Input { name: "z".into(), len: latent }];
    let mut nodes = Vec::new();
    let mut first = "z";
    if classes > 0 {
        inputs.push(Input { name: "label".into(), len: classes });
        nodes.push(Node {
            name: "cat".into(),
            op: Op::Concat,
            inputs: vec!["z".into(), "label".into()],
            output: "zy".into(),
        });
        first = "zy";
    }
    nodes.push(dense(&mut rng, "fc1", first, "h", 64, latent + classes, 2.0));
    nodes.push(act("relu1", Op::Relu, "h", "h_relu"));
    nodes.push(dense(&mut rng, "fc2", "h_relu", "logits", 784, 64, 6.0));
    nodes.push(act("sig", Op::Sigmoid, "logits", "x"));
    Graph { inputs, nodes, outputs: vec!["x".into()], role: Role::Decoder { latent, classes, bernoulli: true } }
}

fn encoder(seed: u64) -> Graph {
    let mut rng = tinyvae::Rng::new(seed);
    Graph {
        inputs: vec![Input { name: "x".into(), len: 784 }],
        nodes: vec![
            dense(&mut rng, "fc1", "x", "h", 64, 784, 3.0),
            act("tanh", Op::Tanh, "h", "h_t"),
            dense(&mut rng, "mu", "h_t", "mu", 8, 64, 1.0),
            dense(&mut rng, "lv", "h_t", "logvar", 8, 64, 1.0),
        ],
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: 8, classes: 0 },
    }
}

/// A conditional encoder q(z | x, y): image and one-hot label concatenated.
fn conditional_encoder(seed: u64) -> Graph {
    let mut rng = tinyvae::Rng::new(seed);
    Graph {
        inputs: vec![Input { name: "x".into(), len: 784 }, Input { name: "y".into(), len: 10 }],
        nodes: vec![
            Node { name: "cat".into(), op: Op::Concat, inputs: vec!["x".into(), "y".into()], output: "xy".into() },
            dense(&mut rng, "fc1", "xy", "h", 64, 794, 3.0),
            act("relu", Op::Relu, "h", "h_r"),
            dense(&mut rng, "mu", "h_r", "mu", 4, 64, 1.0),
            dense(&mut rng, "lv", "h_r", "logvar", 4, 64, 1.0),
        ],
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: 4, classes: 10 },
    }
}

/// Inputs shaped for `g`: prior samples for decoders, image-like rows (and labels) for encoders.
fn inputs(g: &Graph, n: usize, seed: u64) -> Vec<Array2<f32>> {
    match g.role {
        Role::Decoder { .. } => model_inputs(g, Purpose::Calibration, n, seed, Data::default()).unwrap().0,
        _ => {
            let mut v = vec![image_like(n, seed)];
            if g.inputs.len() == 2 {
                v.push(Array2::from_shape_fn((n, 10), |(i, j)| ((i * 7 + seed as usize) % 10 == j) as u8 as f32));
            }
            v
        }
    }
}

fn blob_fidelity(g: &Graph, precision: Precision, fuse: bool) -> (Vec<u8>, Fidelity) {
    let prepared = prepare(g, fuse).unwrap();
    let calib = inputs(g, 500, 1);
    let eval = inputs(g, 300, 2);
    let ranges = calibrate(&prepared.graph, &calib, Method::MinMax).unwrap();
    let blob = quantize(&prepared, Some(&ranges), precision).unwrap();
    let f = measure(g, &blob, &eval).unwrap();
    (blob, f)
}

/// Sparse bright strokes on black, like digits.
fn image_like(n: usize, seed: u64) -> Array2<f32> {
    let mut rng = tinyvae::Rng::new(seed);
    Array2::from_shape_fn((n, 784), |_| if rng.below(5) == 0 { rng.uniform() } else { 0.0 })
}

#[test]
fn decoder_blobs_match_the_float_graph_at_every_precision() {
    let g = decoder(3, 20, 0);
    let (b32, f32_) = blob_fidelity(&g, Precision::F32, true);
    assert!(f32_.max_abs < 1e-5, "f32 {f32_:?}");
    let (b16, f16_) = blob_fidelity(&g, Precision::F16, true);
    assert!(f16_.max_abs < 2e-3, "f16 {f16_:?}");
    let (b8, i8_) = blob_fidelity(&g, Precision::Int8, true);
    assert!(i8_.psnr_db > 35.0, "int8 {i8_:?}");
    // int8 weights are a quarter of f32 and half of f16.
    let w = |b: &[u8]| Model::parse(b).unwrap().weight_bytes();
    assert!(w(&b8) * 3 < w(&b32) && w(&b8) < w(&b16));
    let m = Model::parse(&b8).unwrap();
    assert_eq!(m.node_count(), 3, "dense+relu fused, dense, sigmoid table");
    assert!(m.output(0).unwrap().is_pixel_quantized());
    assert_eq!(m.macs(), 20 * 64 + 64 * 784);
}

#[test]
fn encoder_heads_fuse_and_match() {
    let g = encoder(4);
    for fuse in [true, false] {
        let (b, f) = blob_fidelity(&g, Precision::Int8, fuse);
        let m = Model::parse(&b).unwrap();
        assert_eq!(m.output_count(), if fuse { 1 } else { 2 });
        assert!(m.input(0).unwrap().is_pixel_quantized(), "images quantize as pixels");
        assert!(f.psnr_db > 30.0, "fuse {fuse}: {f:?}");
        let (_, f32_) = blob_fidelity(&g, Precision::F32, fuse);
        assert!(f32_.max_abs < 1e-5);
    }
}

#[test]
fn deterministic_encoders_give_z_with_zero_variance() {
    // An autoencoder's encoder: one output, z itself.
    let mut g = encoder(9);
    g.nodes.pop();
    g.outputs.pop();
    let (b, f) = blob_fidelity(&g, Precision::Int8, true);
    let m = Model::parse(&b).unwrap();
    assert_eq!(m.meta().head, tinyvae::format::EncoderHead::Deterministic);
    assert!(f.psnr_db > 30.0, "{f:?}");
    let e = tinyvae::Encoder::new(&m).unwrap();
    let mut arena = vec![0u8; m.arena_size()];
    let (mut mu, mut lv, mut z) = ([0f32; 8], [0f32; 8], [0f32; 8]);
    e.encode_pixels(&[40u8; 784], &mut arena, &mut mu, &mut lv).unwrap();
    assert!(lv.iter().all(|&v| v == f32::NEG_INFINITY));
    tinyvae::Encoder::reparametrize(&mu, &lv, &mut tinyvae::Rng::new(1), &mut z).unwrap();
    assert_eq!(z, mu);
}

#[test]
fn conditional_encoder_runs_with_labels() {
    let g = conditional_encoder(8);
    let (b, f) = blob_fidelity(&g, Precision::Int8, true);
    let m = Model::parse(&b).unwrap();
    assert_eq!((m.input_count(), m.meta().classes), (2, 10));
    assert!(f.psnr_db > 30.0, "{f:?}");
    let (_, f) = blob_fidelity(&g, Precision::F32, true);
    assert!(f.max_abs < 1e-5, "{f:?}");
}

#[test]
fn conditional_decoder_runs_with_labels() {
    let g = decoder(5, 4, 10);
    let (_, f) = blob_fidelity(&g, Precision::Int8, true);
    assert!(f.psnr_db > 35.0, "{f:?}");
    let (_, f) = blob_fidelity(&g, Precision::F32, true);
    assert!(f.max_abs < 1e-5);
}

#[test]
fn errors_name_the_node() {
    let mut g = decoder(6, 20, 0);
    if let Op::Dense { bias, .. } = &mut g.nodes[2].op {
        bias[3] = f32::NAN;
    }
    let prepared = prepare(&g, true).unwrap();
    let calib = inputs(&g, 10, 0);
    let ranges = calibrate(&prepared.graph, &calib, Method::MinMax).unwrap();
    let e = quantize(&prepared, Some(&ranges), Precision::Int8).unwrap_err();
    assert!(e.to_string().contains("fc2"), "{e}");
    let mut g = decoder(6, 20, 0);
    g.nodes[2].inputs[0] = "nowhere".into();
    let e = prepare(&g, true).unwrap_err();
    assert!(e.to_string().contains("fc2") && e.to_string().contains("nowhere"), "{e}");
}
