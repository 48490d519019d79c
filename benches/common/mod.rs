//! Shared by the latency benches (the z20 VAE and the conv VAE): finding the shipped models (or,
//! for the z20 ones, building a same-shape stand-in on request), quantizing them, timing each
//! engine under criterion, and printing per-sample medians with their ratios to tract f32 once
//! criterion is done.
//!
//! Engines, at batch 1 and 64: the runtime at int8 with every kernel table usable on this CPU
//! (the scalar reference first), at f16 and f32 with the fastest table, and tract f32 on the
//! same ONNX.
//! Plus the weight-streaming floor: every int8 weight byte of the model read once with SIMD
//! loads, the memory-bound limit of a batch-1 int8 pass.

#![allow(dead_code)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use ndarray::{Array1, Array2};
use tinyvae::{Decoder, Encoder, Kernels, Model, ModelKind, Precision};
use tinyvae_compiler::ir::{Graph, Input, Node, Op, Role};
use tinyvae_compiler::{Purpose, Settings, TractModel};

/// Batch sizes every engine is timed at.
pub const BATCHES: [usize; 2] = [1, 64];
/// Set to 1 to time a random-weight stand-in when the shipped model is missing.
pub const STANDIN_VAR: &str = "TINYVAE_BENCH_STANDIN";

/// The repository root (benches live in `<root>/benches`, built from `tools/tinyvae-cli`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where criterion writes its estimates, found the way criterion finds it.
fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("criterion")
}

/// Which network of which shipped VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The z20 VAE's decoder: 20 -> 400 (ReLU) -> 784 (sigmoid).
    Decoder,
    /// The z20 VAE's encoder: 784 -> 400 (ReLU) -> (mu 20, logvar 20).
    Encoder,
    /// The conv VAE's decoder: 20 -> Dense 64x7x7 -> ConvTranspose 32 (k4 s2) -> ConvTranspose 1.
    ConvDecoder,
    /// The conv VAE's encoder: Conv 32 (k4 s2) -> Conv 64 -> Dense (mu 20, logvar 20).
    ConvEncoder,
}

impl Net {
    fn file(self) -> &'static str {
        if self.is_decoder() {
            "decoder.onnx"
        } else {
            "encoder.onnx"
        }
    }

    fn model_dir(self) -> &'static str {
        match self {
            Net::Decoder | Net::Encoder => "models/mnist-vae-z20",
            Net::ConvDecoder | Net::ConvEncoder => "models/mnist-conv-vae",
        }
    }

    fn is_decoder(self) -> bool {
        matches!(self, Net::Decoder | Net::ConvDecoder)
    }

    /// The criterion group name.
    pub fn group(self) -> &'static str {
        match self {
            Net::Decoder => "z20_decoder",
            Net::Encoder => "z20_encoder",
            Net::ConvDecoder => "conv_decoder",
            Net::ConvEncoder => "conv_encoder",
        }
    }
}

/// The ONNX file to time: the shipped one, or (when asked for) a stand-in of the same shape.
/// `None`, after saying why, when there is nothing to time.
pub fn model_onnx(net: Net) -> Option<(PathBuf, &'static str)> {
    let shipped = repo_root().join(net.model_dir()).join(net.file());
    if shipped.is_file() {
        return Some((shipped, "shipped model"));
    }
    if matches!(net, Net::ConvDecoder | Net::ConvEncoder) {
        eprintln!("skipping {}: {} not found (the shipped conv VAE)", net.group(), shipped.display());
        return None;
    }
    if std::env::var(STANDIN_VAR).as_deref() != Ok("1") {
        eprintln!(
            "skipping {}: {} not found (the shipped z20 model). Set {STANDIN_VAR}=1 to time a \
             same-shape stand-in with random weights instead.",
            net.group(),
            shipped.display()
        );
        return None;
    }
    let dir = criterion_dir().join("..").join("tinyvae-bench-standin");
    let path = dir.join(net.file());
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|_| tinyvae_compiler::onnx::export_file(&standin_graph(net), &path).map_err(|e| e.to_string()));
    match written {
        Ok(()) => {
            eprintln!(
                "NOTE {}: {} is missing; timing a same-shape STAND-IN with random weights ({}). \
                 Latency depends on the shape, not on the values, but the shipped model is what \
                 the figures should come from.",
                net.group(),
                shipped.display(),
                path.display()
            );
            Some((path, "stand-in (random weights)"))
        }
        Err(e) => {
            eprintln!("skipping {}: cannot write the stand-in {}: {e}", net.group(), path.display());
            None
        }
    }
}

/// A z20 network with uniform random weights scaled by 1/sqrt(fan-in), built in the IR and
/// exported the way the trainer exports (so tract and the quantizer see the same graph form).
fn standin_graph(net: Net) -> Graph {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut dense = |out: usize, inp: usize| {
        let scale = 1.0 / (inp as f32).sqrt();
        let weight = Array2::from_shape_fn((out, inp), |_| uniform() * scale);
        let bias = Array1::from_shape_fn(out, |_| uniform() * 0.1);
        Op::Dense { weight, bias }
    };
    let node = |name: &str, op: Op, input: &str, output: &str| Node {
        name: name.into(),
        op,
        inputs: vec![input.into()],
        output: output.into(),
    };
    match net {
        Net::Decoder | Net::ConvDecoder => Graph {
            inputs: vec![Input { name: "z".into(), len: 20 }],
            nodes: vec![
                node("decoder_fc0", dense(400, 20), "z", "decoder_h0"),
                node("decoder_relu0", Op::Relu, "decoder_h0", "decoder_a0"),
                node("decoder_out", dense(784, 400), "decoder_a0", "logits"),
                node("decoder_sigmoid", Op::Sigmoid, "logits", "x_mean"),
            ],
            outputs: vec!["x_mean".into()],
            role: Role::Decoder { latent: 20, classes: 0, bernoulli: true },
        },
        Net::Encoder | Net::ConvEncoder => Graph {
            inputs: vec![Input { name: "x".into(), len: 784 }],
            nodes: vec![
                node("encoder_fc0", dense(400, 784), "x", "encoder_h0"),
                node("encoder_relu0", Op::Relu, "encoder_h0", "encoder_a0"),
                node("encoder_mu", dense(20, 400), "encoder_a0", "mu"),
                node("encoder_logvar", dense(20, 400), "encoder_a0", "logvar"),
            ],
            outputs: vec!["mu".into(), "logvar".into()],
            role: Role::Encoder { latent: 20, classes: 0 },
        },
    }
}

/// The vendored MNIST slice, which encoders calibrate and run on.
pub fn data_dir() -> PathBuf {
    repo_root().join("tests/data/mnist-slice")
}

/// Everything one network's benchmarks need, prepared outside the timed loops.
pub struct Prepared {
    /// The network.
    pub net: Net,
    /// ONNX file (for tract).
    pub onnx: PathBuf,
    /// Blobs by precision.
    pub int8: tinyvae::AlignedBlob,
    /// f16 blob.
    pub f16: tinyvae::AlignedBlob,
    /// f32 blob.
    pub f32: tinyvae::AlignedBlob,
    /// `BATCHES.max()` inputs, one matrix per graph input.
    pub inputs: Vec<Array2<f32>>,
}

/// Imports, quantizes (int8 calibrated as `tinyvae quantize` does), and draws the inputs.
pub fn prepare(net: Net, onnx: PathBuf) -> Result<Prepared, String> {
    let mut graph = tinyvae_compiler::onnx::import_file(&onnx).map_err(|e| e.to_string())?;
    if graph.role == Role::Generic {
        graph.role = if net.is_decoder() {
            Role::Decoder { latent: graph.inputs[0].len, classes: 0, bernoulli: true }
        } else {
            Role::Encoder { latent: graph.output_len(0).map_err(|e| e.to_string())?, classes: 0 }
        };
    }
    let data = (!net.is_decoder()).then(data_dir);
    let blob = |precision| {
        let settings = Settings { precision, data: data.clone(), eval_samples: 100, ..Settings::default() };
        tinyvae_compiler::quantize_and_measure(&graph, &settings)
            .map(|(blob, _)| tinyvae::AlignedBlob::new(&blob))
            .map_err(|e| e.to_string())
    };
    let max_batch = BATCHES.iter().copied().max().unwrap_or(1);
    let (inputs, _) = tinyvae_compiler::model_inputs(
        &graph,
        Purpose::Evaluation,
        max_batch,
        1,
        tinyvae_compiler::Data::path(data.as_deref()),
    )
    .map_err(|e| e.to_string())?;
    Ok(Prepared {
        net,
        onnx,
        int8: blob(Precision::Int8)?,
        f16: blob(Precision::F16)?,
        f32: blob(Precision::F32)?,
        inputs,
    })
}

/// A bench's whole run for `net`: find and prepare the model, time every engine under
/// criterion, print the per-sample summary. Exits non-zero when the model cannot be prepared.
pub fn run(net: Net) {
    let Some((onnx, source)) = model_onnx(net) else { return };
    let prepared = match prepare(net, onnx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}: cannot prepare the model: {e}", net.group());
            std::process::exit(1);
        }
    };
    let mut c = criterion();
    bench(&mut c, &prepared);
    c.final_summary();
    summary(&prepared, source);
}

/// Criterion settings: a few seconds per case keeps both benches near two minutes.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(1000))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

/// The engines, in the order the summary prints them: int8 on every usable table (the scalar
/// reference first), then f16 and f32 on the fastest.
fn engines() -> Vec<(String, Precision, &'static Kernels)> {
    let best = tinyvae::kernels::best();
    let mut engines: Vec<_> =
        tinyvae::kernels::available().map(|k| (format!("int8_{}", k.name), Precision::Int8, k)).collect();
    engines.push((format!("f16_{}", best.name), Precision::F16, best));
    engines.push((format!("f32_{}", best.name), Precision::F32, best));
    engines
}

/// Times every engine at every batch size, and the weight-streaming floor.
pub fn bench(c: &mut Criterion, p: &Prepared) {
    let group_name = p.net.group();
    let mut group = c.benchmark_group(group_name);
    for &batch in &BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let rows: Vec<Array2<f32>> = p.inputs.iter().map(|a| a.slice(ndarray::s![..batch, ..]).to_owned()).collect();

        match TractModel::load(&p.onnx).and_then(|t| t.prepare(batch)) {
            Ok(mut run) => {
                let views: Vec<_> = rows.iter().map(|a| a.view()).collect();
                if let Err(e) = run.set_inputs(&views).and_then(|_| run.run()) {
                    eprintln!("{group_name}: tract cannot run batch {batch}: {e}");
                } else {
                    group.bench_function(BenchmarkId::new("tract_f32", batch), |b| b.iter(|| run.run().ok()));
                }
            }
            Err(e) => eprintln!("{group_name}: tract cannot load the model: {e}"),
        }

        for (name, precision, kernels) in engines() {
            let blob = match precision {
                Precision::Int8 => &p.int8,
                Precision::F16 => &p.f16,
                _ => &p.f32,
            };
            let model = Model::parse(blob).expect("the quantizer's blob parses");
            let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap_or(0)];
            let x: Vec<f32> = rows[0].iter().copied().collect();
            match model.kind() {
                ModelKind::Decoder => {
                    let d = Decoder::new(&model).expect("a decoder").with_kernels(kernels);
                    let mut px = vec![0u8; batch * d.output_len()];
                    d.decode_batch(&x, None, batch, &mut arena, &mut px).expect("the decoder runs");
                    group.bench_function(BenchmarkId::new(name.as_str(), batch), |b| {
                        b.iter(|| d.decode_batch(black_box(&x), None, batch, &mut arena, &mut px).ok())
                    });
                }
                _ => {
                    let e = Encoder::new(&model).expect("an encoder").with_kernels(kernels);
                    let l = e.latent_dim();
                    let (mut mu, mut lv) = (vec![0f32; batch * l], vec![0f32; batch * l]);
                    e.encode_batch(&x, None, batch, &mut arena, &mut mu, &mut lv).expect("the encoder runs");
                    group.bench_function(BenchmarkId::new(name.as_str(), batch), |b| {
                        b.iter(|| e.encode_batch(black_box(&x), None, batch, &mut arena, &mut mu, &mut lv).ok())
                    });
                }
            }
        }
    }

    // The floor: each weighted node's int8 weights, read once, as a batch-1 pass would.
    let model = Model::parse(&p.int8).expect("the quantizer's blob parses");
    let weights = tinyvae_compiler::bench::layer_weights(&model);
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("weight_stream_floor", 1), |b| {
        b.iter(|| tinyvae_compiler::bench::stream_weights(black_box(&weights)))
    });
    group.finish();
}

/// Criterion's median for one case, in nanoseconds per iteration.
fn median_ns(group: &str, function: &str, batch: usize) -> Option<f64> {
    let path = criterion_dir().join(group).join(function).join(batch.to_string()).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Prints criterion's medians per sample, with the ratios the benchmarks exist to show.
pub fn summary(p: &Prepared, source: &str) {
    let group = p.net.group();
    println!();
    println!("{group}: criterion medians per sample ({source}: {})", p.onnx.display());
    println!("{:<28} {:>6} {:>12} {:>14}", "engine", "batch", "us/sample", "tract / this");
    let floor = median_ns(group, "weight_stream_floor", 1);
    for &batch in &BATCHES {
        let tract = median_ns(group, "tract_f32", batch).map(|ns| ns / batch as f64);
        let names = std::iter::once("tract_f32".to_string()).chain(engines().into_iter().map(|(n, _, _)| n));
        for name in names {
            let Some(us) = median_ns(group, &name, batch).map(|ns| ns / batch as f64 / 1e3) else { continue };
            let ratio = tract.map(|t| format!("{:.2}x", t / 1e3 / us)).unwrap_or_else(|| "-".into());
            let vs_floor = match floor {
                Some(f) if batch == 1 && name.starts_with("int8_") && name != "int8_scalar" => {
                    format!("   ({:.2}x the weight-streaming floor)", us * 1e3 / f)
                }
                _ => String::new(),
            };
            println!("{name:<28} {batch:>6} {us:>12.3} {ratio:>14}{vs_floor}");
        }
    }
    if let Some(f) = floor {
        println!("{:<28} {:>6} {:>12.3} {:>14}", "weight_stream_floor", 1, f / 1e3, "-");
    }
}
