//! Per-sample latency of the runtime against tract f32 on the same ONNX model, for
//! `tinyvae bench`. Timing is wall-clock medians over repeated batches, one thread.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use ndarray::Array2;
use serde::Serialize;
use tinyvae::{Autoencoder, Classifier, Decoder, Encoder, Kernels, Model, ModelKind, Precision, Score};

use crate::ir::Graph;
use crate::pipeline::{self, Data, PipelineError, Purpose, Settings};
use crate::tract_ref::TractModel;

/// One measured engine at one batch size.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Engine name, e.g. "runtime int8 (scalar)".
    pub engine: String,
    /// Samples per call.
    pub batch: usize,
    /// Median microseconds per sample.
    pub us_per_sample: f64,
    /// 10th and 90th percentile microseconds per sample.
    pub p10_p90: (f64, f64),
    /// Timed calls.
    pub calls: usize,
    /// tract f32 per-sample time at the same batch divided by this one (> 1: faster).
    pub speedup_vs_tract: f64,
}

/// Times `f` (which processes `batch` samples per call): short warm-up, then as many calls as
/// fit in `budget`, split into up to 31 groups whose per-call means give the median and spread.
pub fn time_it(batch: usize, budget: Duration, mut f: impl FnMut()) -> (f64, (f64, f64), usize) {
    let warm = Instant::now();
    let mut warm_calls = 0usize;
    while warm.elapsed() < budget / 10 || warm_calls < 3 {
        f();
        warm_calls += 1;
    }
    let per_call = warm.elapsed().as_secs_f64() / warm_calls as f64;
    let groups = 31usize;
    let calls_per_group = ((budget.as_secs_f64() / groups as f64 / per_call).ceil() as usize).max(1);
    let mut means = Vec::with_capacity(groups);
    for _ in 0..groups {
        let t = Instant::now();
        for _ in 0..calls_per_group {
            f();
        }
        means.push(t.elapsed().as_secs_f64() / calls_per_group as f64 / batch as f64 * 1e6);
    }
    means.sort_by(f64::total_cmp);
    (means[groups / 2], (means[groups / 10], means[groups * 9 / 10]), groups * calls_per_group)
}

/// A blob ready to time: bytes plus a name.
pub struct Candidate {
    /// Engine name.
    pub name: String,
    /// Blob bytes.
    pub blob: tinyvae::AlignedBlob,
    /// Kernel table.
    pub kernels: &'static Kernels,
}

/// The blobs `tinyvae bench` times: int8 with every available kernel table, f16 and f32.
pub fn candidates(graph: &Graph, data: Data<'_>) -> Result<Vec<Candidate>, PipelineError> {
    let mut out = Vec::new();
    for precision in [Precision::Int8, Precision::F16, Precision::F32] {
        let settings = Settings { precision, eval_samples: 1, ..Settings::default() };
        let prepared = crate::quantize::prepare(graph, true)?;
        let ranges = if precision == Precision::Int8 {
            let (calib, _) = pipeline::model_inputs(graph, Purpose::Calibration, settings.calib_samples, 0, data)?;
            Some(crate::calibrate::calibrate(&prepared.graph, &calib, settings.method)?)
        } else {
            None
        };
        let blob = tinyvae::AlignedBlob::new(&crate::quantize::quantize(&prepared, ranges.as_ref(), precision)?);
        for k in tinyvae::kernels::available() {
            let best = std::ptr::eq(k, tinyvae::kernels::best());
            // Every kernel table for int8 (that is where tables differ most); the best for floats.
            if precision == Precision::Int8 || best {
                out.push(Candidate {
                    name: format!("runtime {precision} ({})", k.name),
                    blob: blob.clone(),
                    kernels: k,
                });
            }
        }
    }
    Ok(out)
}

/// Times a blob at `batch` on `inputs` (the first `batch` rows are used).
pub fn time_blob(
    c: &Candidate,
    inputs: &[Array2<f32>],
    batch: usize,
    budget: Duration,
) -> Result<(f64, (f64, f64), usize), PipelineError> {
    let model = Model::parse(&c.blob)?;
    let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap_or(0)];
    let x: Vec<f32> = inputs[0].rows().into_iter().take(batch).flat_map(|r| r.to_vec()).collect();
    match model.kind() {
        ModelKind::Decoder => {
            let d = Decoder::new(&model)?.with_kernels(c.kernels);
            let labels: Option<Vec<u32>> =
                (d.classes() > 0).then(|| (0..batch as u32).map(|i| i % d.classes() as u32).collect());
            let mut px = vec![0u8; batch * d.output_len()];
            d.decode_batch(&x, labels.as_deref(), batch, &mut arena, &mut px)?;
            Ok(time_it(batch, budget, || {
                d.decode_batch(black_box(&x), labels.as_deref(), batch, &mut arena, &mut px).ok();
                black_box(&px);
            }))
        }
        ModelKind::Classifier => {
            let cl = Classifier::new(&model)?.with_kernels(c.kernels);
            let mut classes = vec![0u32; batch];
            cl.classify_batch(&x, batch, &mut arena, &mut classes)?;
            Ok(time_it(batch, budget, || {
                cl.classify_batch(black_box(&x), batch, &mut arena, &mut classes).ok();
                black_box(&classes);
            }))
        }
        ModelKind::Autoencoder => {
            // The whole on-device job: reconstruction and score.
            let ae = Autoencoder::new(&model)?.with_kernels(c.kernels);
            let mut scores = vec![Score { raw: 0, unit: 0.0 }; batch];
            ae.score_batch(&x, batch, &mut arena, &mut scores)?;
            Ok(time_it(batch, budget, || {
                ae.score_batch(black_box(&x), batch, &mut arena, &mut scores).ok();
                black_box(&scores);
            }))
        }
        _ => {
            let e = Encoder::new(&model)?.with_kernels(c.kernels);
            let l = e.latent_dim();
            let (mut mu, mut lv) = (vec![0f32; batch * l], vec![0f32; batch * l]);
            e.encode_batch(&x, None, batch, &mut arena, &mut mu, &mut lv)?;
            Ok(time_it(batch, budget, || {
                e.encode_batch(black_box(&x), None, batch, &mut arena, &mut mu, &mut lv).ok();
                black_box(&mu);
            }))
        }
    }
}

/// Times tract f32 on the ONNX file at `batch`.
pub fn time_tract(
    onnx: &Path,
    inputs: &[Array2<f32>],
    batch: usize,
    budget: Duration,
) -> Result<(f64, (f64, f64), usize), PipelineError> {
    let tract = TractModel::load(onnx)?;
    let mut run = tract.prepare(batch)?;
    let rows: Vec<Array2<f32>> = inputs.iter().map(|a| a.slice(ndarray::s![..batch, ..]).to_owned()).collect();
    let views: Vec<_> = rows.iter().map(|a| a.view()).collect();
    run.set_inputs(&views)?;
    run.run()?;
    Ok(time_it(batch, budget, || {
        run.run().ok();
    }))
}

/// The memory-bound floor of a batch-1 int8 pass: every int8 weight byte of the blob read once
/// with the fastest kernel table's SIMD loads (what no batch-1 int8 pass can beat).
pub fn time_weight_stream(blob: &[u8], budget: Duration) -> Result<(f64, (f64, f64), usize), PipelineError> {
    let model = Model::parse(blob)?;
    let weights = layer_weights(&model);
    Ok(time_it(1, budget, || {
        black_box(stream_weights(black_box(&weights)));
    }))
}

/// The weight arrays of a blob's Dense, Conv and ConvTranspose nodes, as a batch-1 pass reads
/// them (once each: a convolution's weights stay in cache across its pixels).
pub fn layer_weights<'a>(model: &Model<'a>) -> Vec<&'a [u8]> {
    let blob = model.blob();
    (0..model.node_count())
        .filter_map(|i| model.node(i))
        .filter(|n| matches!(n.op, tinyvae::Op::Dense | tinyvae::Op::Conv | tinyvae::Op::ConvTranspose))
        .filter_map(|n| blob.get(n.weights.clone()))
        .collect()
}

/// One pass of the floor: every array read once by the fastest table's weight-stream kernel.
pub fn stream_weights(weights: &[&[u8]]) -> i32 {
    let stream = tinyvae::kernels::best().weight_stream;
    weights.iter().fold(0i32, |acc, w| acc.wrapping_add(stream(w)))
}

/// Name of the floor's row in [`compare`]'s table.
pub const FLOOR_ENGINE: &str = "int8 weight-stream floor";

/// The whole comparison: tract f32 first, then each runtime engine, at each batch size; at
/// batch 1, also the weight-streaming floor.
pub fn compare(
    onnx: &Path,
    graph: &Graph,
    data: Data<'_>,
    batches: &[usize],
    budget: Duration,
) -> Result<Vec<Timing>, PipelineError> {
    let max_batch = batches.iter().copied().max().unwrap_or(1);
    let (inputs, _) = pipeline::model_inputs(graph, Purpose::Evaluation, max_batch, 1, data)?;
    let candidates = candidates(graph, data)?;
    let mut out = Vec::new();
    for &batch in batches {
        let (t_us, t_spread, t_calls) = time_tract(onnx, &inputs, batch, budget)?;
        out.push(Timing {
            engine: "tract f32".into(),
            batch,
            us_per_sample: t_us,
            p10_p90: t_spread,
            calls: t_calls,
            speedup_vs_tract: 1.0,
        });
        if batch == 1 {
            if let Some(int8) = candidates.first() {
                let (us, spread, calls) = time_weight_stream(&int8.blob, budget)?;
                out.push(Timing {
                    engine: FLOOR_ENGINE.into(),
                    batch,
                    us_per_sample: us,
                    p10_p90: spread,
                    calls,
                    speedup_vs_tract: t_us / us,
                });
            }
        }
        for c in &candidates {
            let (us, spread, calls) = time_blob(c, &inputs, batch, budget)?;
            out.push(Timing {
                engine: c.name.clone(),
                batch,
                us_per_sample: us,
                p10_p90: spread,
                calls,
                speedup_vs_tract: t_us / us,
            });
        }
    }
    Ok(out)
}
