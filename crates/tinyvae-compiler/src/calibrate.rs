//! Calibration: the range of every value of a float graph over representative inputs, from
//! which the quantizer picks int8 scales and zero points.
//!
//! Decoders calibrate from prior samples z ~ N(0, I) (no data needed); encoders from images.

use std::collections::HashMap;

use ndarray::{Array2, Axis};

use crate::ir::{Graph, GraphError, Op, Role};

/// How a value's range is read off its calibration samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Smallest and largest value seen.
    MinMax,
    /// The given lower and upper percentiles (e.g. 99.99 keeps all but the 0.01 % most extreme
    /// values on each side), trading clipping of outliers for resolution.
    Percentile(f64),
}

impl std::str::FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "minmax" {
            return Ok(Method::MinMax);
        }
        if let Some(p) = s.strip_prefix("percentile") {
            let p = p.trim_start_matches([':', '=']);
            let p: f64 = if p.is_empty() { 99.99 } else { p.parse().map_err(|_| format!("bad percentile `{p}`"))? };
            if !(50.0..=100.0).contains(&p) {
                return Err(format!("percentile {p} must be in 50..=100"));
            }
            return Ok(Method::Percentile(p));
        }
        Err(format!("unknown calibration method `{s}` (use minmax or percentile[:P])"))
    }
}

/// What calibration learns about each named value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Calibration {
    /// (min, max): the quantizer's range before clipping.
    pub span: HashMap<String, (f32, f32)>,
    /// Mean of each feature over the calibration inputs: lets the quantizer correct the bias
    /// that rounding the weights adds to a layer's output on average.
    pub mean: HashMap<String, Vec<f32>>,
    /// `E[x x^T]` of every value a Dense node reads: what error-compensating weight rounding
    /// ([`crate::rounding::gptq`]) weighs rounding errors by.
    pub gram: HashMap<String, Array2<f64>>,
    /// int8 weight codes per Dense node (by node name), when chosen ahead of quantization
    /// ([`crate::quantize::round_weights`]); otherwise the quantizer rounds to nearest.
    pub codes: HashMap<String, Array2<i8>>,
}

/// Runs `graph` on the calibration inputs and returns the range and mean of every value.
pub fn calibrate(graph: &Graph, inputs: &[Array2<f32>], method: Method) -> Result<Calibration, GraphError> {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let values = graph.eval_all(&views)?;
    let mut out = Calibration::default();
    for (name, a) in values {
        let range = match method {
            Method::MinMax => a.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v))),
            Method::Percentile(p) => {
                percentile_range(a.as_slice().map(|s| s.to_vec()).unwrap_or_else(|| a.iter().copied().collect()), p)
            }
        };
        let mean = a.mean_axis(Axis(0)).map(|m| m.to_vec()).unwrap_or_default();
        let read_by_dense = graph.nodes.iter().any(|n| matches!(n.op, Op::Dense { .. }) && n.inputs[0] == name);
        if read_by_dense && a.nrows() > 0 {
            let gram = a.t().dot(&a).mapv(|v| v as f64 / a.nrows() as f64);
            out.gram.insert(name.clone(), gram);
        }
        out.span.insert(name.clone(), range);
        out.mean.insert(name, mean);
    }
    Ok(out)
}

fn percentile_range(mut v: Vec<f32>, p: f64) -> (f32, f32) {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let last = (v.len() - 1) as f64;
    let at = |q: f64| v[(q * last).round() as usize];
    (at(1.0 - p / 100.0), at(p / 100.0))
}

/// `n` prior samples for a decoder: z ~ N(0, I) from the runtime's sampler (and, for
/// conditional decoders, one-hot labels cycling through the classes).
pub fn prior_inputs(graph: &Graph, n: usize, seed: u64) -> Result<Vec<Array2<f32>>, GraphError> {
    let Role::Decoder { latent, classes, .. } = graph.role else {
        return Err(GraphError("prior samples need a decoder".into()));
    };
    let mut rng = tinyvae::Rng::new(seed);
    let mut z = vec![0f32; n * latent];
    rng.fill_gaussian(&mut z);
    let mut inputs = vec![Array2::from_shape_vec((n, latent), z).expect("shape")];
    if classes > 0 {
        let mut y = Array2::zeros((n, classes));
        for (i, mut row) in y.axis_iter_mut(Axis(0)).enumerate() {
            row[i % classes] = 1.0;
        }
        inputs.push(y);
    }
    Ok(inputs)
}

/// Images (and one-hot labels for conditional encoders) as encoder inputs: the first `n`.
pub fn image_inputs(graph: &Graph, data: &tinyvae_data::idx::Dataset, n: usize) -> Result<Vec<Array2<f32>>, GraphError> {
    let n = n.min(data.count);
    let len = data.image_len();
    if graph.inputs.first().map(|i| i.len) != Some(len) {
        return Err(GraphError(format!(
            "the model's input `{}` takes {} values but the dataset's images have {len} pixels",
            graph.inputs.first().map(|i| i.name.as_str()).unwrap_or("?"),
            graph.inputs.first().map(|i| i.len).unwrap_or(0)
        )));
    }
    let x: Vec<f32> = data.pixels[..n * len].iter().map(|&p| p as f32 / 255.0).collect();
    let mut inputs = vec![Array2::from_shape_vec((n, len), x).expect("shape")];
    if let Role::Encoder { classes, .. } = graph.role {
        if classes > 0 {
            let mut y = Array2::zeros((n, classes));
            for i in 0..n {
                y[[i, data.labels[i] as usize % classes]] = 1.0;
            }
            inputs.push(y);
        }
    }
    Ok(inputs)
}
