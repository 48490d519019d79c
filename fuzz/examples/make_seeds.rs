//! Writes the generated seeds of `fuzz/seeds/`: small blobs of every kind, precision and op the
//! runtime reads (`seeds/blob/gen-*`), and the same graphs as ONNX files (`seeds/onnx/gen-*`),
//! so that the fuzzers start from inputs a few KB long that reach every check.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The other seeds are copies of repository files, made by `fuzz/README.md`'s commands.

use std::path::Path;

use ndarray::{Array1, Array2, Array4};
use tinyvae::{attach_prior, PriorSpec};
use tinyvae_compiler::ir::{ConvGeometry, Graph, Input, Node, Op, Role};
use tinyvae_compiler::{calibrate, onnx, prepare, quantize, Method};

/// splitmix64: fixed numbers without a dependency.
struct Numbers(u64);

impl Numbers {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn dense(&mut self, outs: usize, ins: usize) -> Op {
        let s = 1.0 / (ins as f32).sqrt();
        Op::Dense {
            weight: Array2::from_shape_fn((outs, ins), |_| s * self.uniform()),
            bias: Array1::from_shape_fn(outs, |_| 0.1 * self.uniform()),
        }
    }

    fn array4(&mut self, shape: [usize; 4]) -> Array4<f32> {
        let s = 1.0 / ((shape[1] * shape[2] * shape[3]) as f32).sqrt();
        Array4::from_shape_fn(shape, |_| s * self.uniform())
    }

    fn vector(&mut self, n: usize) -> Array1<f32> {
        Array1::from_shape_fn(n, |_| 0.1 * self.uniform())
    }
}

fn node(name: &str, op: Op, inputs: &[&str], output: &str) -> Node {
    Node { name: name.into(), op, inputs: inputs.iter().map(|s| s.to_string()).collect(), output: output.into() }
}

fn input(name: &str, len: usize) -> Input {
    Input { name: name.into(), len }
}

/// z 2 -> 8 ReLU -> 16 sigmoid.
fn mlp_decoder(r: &mut Numbers) -> Graph {
    Graph {
        inputs: vec![input("z", 2)],
        nodes: vec![
            node("fc1", r.dense(8, 2), &["z"], "h1"),
            node("relu", Op::Relu, &["h1"], "a1"),
            node("fc2", r.dense(16, 8), &["a1"], "logits"),
            node("sigmoid", Op::Sigmoid, &["logits"], "x"),
        ],
        outputs: vec!["x".into()],
        role: Role::Decoder { latent: 2, classes: 0, bernoulli: true },
    }
}

/// concat(z 2, y 3) -> 8 LeakyReLU -> 8 Tanh -> 16 Gaussian means.
fn conditional_decoder(r: &mut Numbers) -> Graph {
    Graph {
        inputs: vec![input("z", 2), input("y", 3)],
        nodes: vec![
            node("concat", Op::Concat, &["z", "y"], "zy"),
            node("fc1", r.dense(8, 5), &["zy"], "h1"),
            node("lrelu", Op::LeakyRelu { alpha: 0.2 }, &["h1"], "a1"),
            node("fc2", r.dense(8, 8), &["a1"], "h2"),
            node("tanh", Op::Tanh, &["h2"], "a2"),
            node("fc3", r.dense(16, 8), &["a2"], "x"),
        ],
        outputs: vec!["x".into()],
        role: Role::Decoder { latent: 2, classes: 3, bernoulli: false },
    }
}

/// x 16 -> 8 ReLU -> (mu 2, logvar 2), or one output of 2 (`heads == 1`: an autoencoder's).
fn mlp_encoder(r: &mut Numbers, classes: usize, heads: usize) -> Graph {
    let mut inputs = vec![input("x", 16)];
    let mut nodes = Vec::new();
    let mut first = "x";
    if classes > 0 {
        inputs.push(input("y", classes));
        nodes.push(node("concat", Op::Concat, &["x", "y"], "xy"));
        first = "xy";
    }
    nodes.push(node("fc1", r.dense(8, 16 + classes), &[first], "h1"));
    nodes.push(node("relu", Op::Relu, &["h1"], "a1"));
    nodes.push(node("fc_mu", r.dense(2, 8), &["a1"], "mu"));
    let mut outputs = vec!["mu".to_string()];
    if heads == 2 {
        nodes.push(node("fc_logvar", r.dense(2, 8), &["a1"], "logvar"));
        outputs.push("logvar".into());
    }
    Graph { inputs, nodes, outputs, role: Role::Encoder { latent: 2, classes } }
}

/// x 16 -> 4 ReLU -> 16 sigmoid: a whole autoencoder (an anomaly detector's reconstruction).
fn autoencoder(r: &mut Numbers) -> Graph {
    Graph {
        inputs: vec![input("x", 16)],
        nodes: vec![
            node("enc", r.dense(4, 16), &["x"], "h"),
            node("relu", Op::Relu, &["h"], "a"),
            node("dec", r.dense(16, 4), &["a"], "logits"),
            node("sigmoid", Op::Sigmoid, &["logits"], "x_hat"),
        ],
        outputs: vec!["x_hat".into()],
        role: Role::Autoencoder,
    }
}

/// z 2 -> 8 = [2, 2, 2] -> ConvTranspose stride 2 [2, 4, 4] ReLU -> Upsample 2 [2, 8, 8]
/// -> Conv 3x3 pad 1 [2, 8, 8] SiLU -> Add (the upsampled) -> Conv 1x1 [1, 8, 8] -> sigmoid.
fn conv_decoder(r: &mut Numbers) -> Graph {
    let pad1 = ConvGeometry { pads: [1; 4], ..ConvGeometry::PLAIN };
    Graph {
        inputs: vec![input("z", 2)],
        nodes: vec![
            node("fc", r.dense(8, 2), &["z"], "h"),
            node(
                "deconv",
                Op::ConvTranspose {
                    weight: r.array4([2, 2, 2, 2]),
                    bias: r.vector(2),
                    input: [2, 2, 2],
                    stride: [2, 2],
                    pads: [0; 4],
                    output_padding: [0; 2],
                },
                &["h"],
                "d",
            ),
            node("relu", Op::Relu, &["d"], "da"),
            node("up", Op::Upsample { input: [2, 4, 4], factor: [2, 2] }, &["da"], "u"),
            node(
                "conv",
                Op::Conv { weight: r.array4([2, 2, 3, 3]), bias: r.vector(2), input: [2, 8, 8], geometry: pad1 },
                &["u"],
                "c",
            ),
            node("silu", Op::Silu, &["c"], "ca"),
            node("add", Op::Add, &["ca", "u"], "s"),
            node(
                "head",
                Op::Conv {
                    weight: r.array4([1, 2, 1, 1]),
                    bias: r.vector(1),
                    input: [2, 8, 8],
                    geometry: ConvGeometry::PLAIN,
                },
                &["s"],
                "logits",
            ),
            node("sigmoid", Op::Sigmoid, &["logits"], "x"),
        ],
        outputs: vec!["x".into()],
        role: Role::Decoder { latent: 2, classes: 0, bernoulli: true },
    }
}

/// x [1, 8, 8] -> Conv 3x3 stride 2 pad 1 [4, 4, 4] HardSwish -> depthwise 3x3 dilation 2 pad 2
/// [4, 4, 4] ReLU -> (mu 2, logvar 2).
fn conv_encoder(r: &mut Numbers) -> Graph {
    let down = ConvGeometry { stride: [2, 2], pads: [1; 4], ..ConvGeometry::PLAIN };
    let depthwise = ConvGeometry { dilation: [2, 2], pads: [2; 4], groups: 4, ..ConvGeometry::PLAIN };
    Graph {
        inputs: vec![input("x", 64)],
        nodes: vec![
            node(
                "conv1",
                Op::Conv { weight: r.array4([4, 1, 3, 3]), bias: r.vector(4), input: [1, 8, 8], geometry: down },
                &["x"],
                "c1",
            ),
            node("hswish", Op::HardSwish, &["c1"], "a1"),
            node(
                "dw",
                Op::Conv { weight: r.array4([4, 1, 3, 3]), bias: r.vector(4), input: [4, 4, 4], geometry: depthwise },
                &["a1"],
                "c2",
            ),
            node("relu", Op::Relu, &["c2"], "a2"),
            node("fc_mu", r.dense(2, 64), &["a2"], "mu"),
            node("fc_logvar", r.dense(2, 64), &["a2"], "logvar"),
        ],
        outputs: vec!["mu".into(), "logvar".into()],
        role: Role::Encoder { latent: 2, classes: 0 },
    }
}

fn calibration_inputs(g: &Graph) -> Vec<Array2<f32>> {
    let mut r = Numbers(5);
    g.inputs
        .iter()
        .enumerate()
        .map(|(k, i)| {
            if k == 1 {
                Array2::from_shape_fn((8, i.len), |(s, j)| f32::from(u8::from(s % i.len == j)))
            } else if matches!(g.role, Role::Decoder { .. }) {
                Array2::from_shape_fn((8, i.len), |_| 2.0 * r.uniform())
            } else if matches!(g.role, Role::Autoencoder) {
                Array2::from_shape_fn((8, i.len), |(s, j)| ((s * 7 + j * 3) % 16) as f32 / 15.0)
            } else {
                Array2::from_shape_fn((8, i.len), |_| 0.5 + 0.5 * r.uniform())
            }
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    println!("{:>6} {name}", bytes.len());
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let (blobs, onnxs) = (root.join("blob"), root.join("onnx"));
    let mut r = Numbers(1);
    let graphs = [
        ("mlp-decoder", mlp_decoder(&mut r)),
        ("cond-decoder", conditional_decoder(&mut r)),
        ("mlp-encoder", mlp_encoder(&mut r, 0, 2)),
        ("cond-encoder", mlp_encoder(&mut r, 3, 2)),
        ("ae-encoder", mlp_encoder(&mut r, 0, 1)),
        ("conv-decoder", conv_decoder(&mut r)),
        ("conv-encoder", conv_encoder(&mut r)),
        ("autoencoder", autoencoder(&mut r)),
    ];
    for (name, g) in &graphs {
        g.value_lens().unwrap_or_else(|e| panic!("{name}: {e}"));
        write(&onnxs, &format!("gen-{name}.onnx"), &onnx::export(g).expect("export"));
        let fusions: &[bool] = if g.outputs.len() == 2 { &[true, false] } else { &[true] };
        for &fuse in fusions {
            let prepared = prepare(g, fuse).expect("prepare");
            let ranges =
                calibrate(&prepared.graph, &calibration_inputs(&prepared.graph), Method::MinMax).expect("ranges");
            for precision in [tinyvae::Precision::F32, tinyvae::Precision::F16, tinyvae::Precision::Int8] {
                let blob = quantize(&prepared, Some(&ranges), precision).expect("quantize");
                let suffix = if fuse || g.outputs.len() == 1 { "" } else { "-separate" };
                write(&blobs, &format!("gen-{name}{suffix}.{precision}.tvae"), &blob);
                if *name == "mlp-decoder" && precision == tinyvae::Precision::Int8 {
                    // A learned prior of two components (format version 4).
                    let prior = PriorSpec::from_weights(
                        &[1.0, 3.0],
                        vec![0.5, -0.5, -1.0, 1.0],
                        vec![1.0, 0.2, 0.8, 0.5, 0.0, 1.5],
                    )
                    .expect("prior");
                    write(&blobs, "gen-mlp-decoder-prior.int8.tvae", &attach_prior(&blob, &prior).expect("attach"));
                }
                if *name == "cond-decoder" && precision == tinyvae::Precision::Int8 {
                    // One mixture per label.
                    let one =
                        |m: f32| PriorSpec::from_weights(&[1.0], vec![m, -m], vec![1.0, 0.1, 0.9]).expect("prior");
                    let prior = PriorSpec::per_label(&[one(0.5), one(-1.0), one(2.0)]).expect("per label");
                    write(&blobs, "gen-cond-decoder-prior.int8.tvae", &attach_prior(&blob, &prior).expect("attach"));
                }
            }
        }
    }
    write(&blobs, "example-decoder.tvae", &tinyvae::doc_example_blob());
    write(&blobs, "example-conv-decoder.tvae", &tinyvae::format::write::example_conv_decoder());
    write(&blobs, "example-decoder-prior.tvae", &tinyvae::attach::example_decoder_with_prior());
    write(&blobs, "example-autoencoder.tvae", &tinyvae::doc_example_autoencoder());
    write(&blobs, "example-classifier.tvae", &tinyvae::format::write::example_classifier());
    // Truncated blobs: the parser's length checks.
    let whole = tinyvae::format::write::example_conv_decoder();
    for cut in [16, 56, 200, whole.len() / 2, whole.len() - 1] {
        write(&blobs, &format!("truncated-conv-decoder-{cut}.tvae"), &whole[..cut]);
    }
}
