//! Calibration: the range of every value of a float graph over representative inputs, from
//! which the quantizer picks int8 scales and zero points.
//!
//! Decoders calibrate from prior samples z ~ N(0, I) (no data needed); encoders from images.

use std::collections::HashMap;

use ndarray::{Array2, Axis};

use crate::ir::{Graph, GraphError, Op};

/// How a value's range is read off its calibration samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Smallest and largest value seen.
    MinMax,
    /// The given lower and upper percentiles (e.g. 99.99 keeps all but the 0.01 % most extreme
    /// values on each side), trading clipping of outliers for resolution.
    Percentile(f64),
}

/// Why a calibration method did not parse (`minmax`, `percentile` or `percentile:P`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseMethodError {
    /// The P of `percentile:P` is not a number.
    #[error("bad percentile `{0}`")]
    BadPercentile(String),
    /// P outside 50..=100.
    #[error("percentile {0} must be in 50..=100")]
    PercentileRange(f64),
    /// Neither method.
    #[error("unknown calibration method `{0}` (use minmax or percentile[:P])")]
    Unknown(String),
}

impl std::str::FromStr for Method {
    type Err = ParseMethodError;
    fn from_str(s: &str) -> Result<Self, ParseMethodError> {
        if s == "minmax" {
            return Ok(Method::MinMax);
        }
        if let Some(p) = s.strip_prefix("percentile") {
            let p = p.trim_start_matches([':', '=']);
            let p: f64 =
                if p.is_empty() { 99.99 } else { p.parse().map_err(|_| ParseMethodError::BadPercentile(p.into()))? };
            if !(50.0..=100.0).contains(&p) {
                return Err(ParseMethodError::PercentileRange(p));
            }
            return Ok(Method::Percentile(p));
        }
        Err(ParseMethodError::Unknown(s.into()))
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
    /// (GPTQ) weighs rounding errors by.
    pub gram: HashMap<String, Array2<f64>>,
    /// int8 weight codes per Dense node (by node name), when chosen ahead of quantization (by
    /// GPTQ, with [`Settings::gptq`](crate::Settings::gptq)); otherwise the quantizer rounds to
    /// nearest.
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

/// Share of a classifier's calibrated top-logit span kept below its lowest top logit, as a
/// margin for inputs whose best class scores lower than any calibration input's did.
const ARGMAX_MARGIN: f32 = 0.1;

/// Narrows a classifier's output range to what its answer depends on. The class is the
/// largest logit, so logits below every input's largest never decide it: the range's lower
/// bound rises to the lowest largest logit of the calibration inputs (less a margin of
/// [`ARGMAX_MARGIN`] of the span), and the int8 codes resolve the logits that compete for the
/// top finer. Logits below the bound read as the bound (`Classifier::logits`).
pub fn narrow_for_argmax(graph: &Graph, ranges: &mut Calibration, inputs: &[Array2<f32>]) -> Result<(), GraphError> {
    let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
    let Some(logits) = graph.eval(&views)?.into_iter().next() else { return Ok(()) };
    let tops = logits.rows().into_iter().map(|r| r.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let lowest_top = tops.filter(|t| t.is_finite()).fold(f32::INFINITY, f32::min);
    if let (Some(span), true) = (graph.outputs.first().and_then(|o| ranges.span.get_mut(o)), lowest_top.is_finite()) {
        let floor = lowest_top - ARGMAX_MARGIN * (span.1 - lowest_top).max(0.0);
        span.0 = span.0.max(floor.min(span.1));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use ndarray::{array, Array1};

    use super::*;
    use crate::ir::{Input, Node, Role};

    #[test]
    fn a_classifier_output_keeps_only_the_range_its_top_logits_use() {
        // Logits are the inputs themselves: 3 classes.
        let graph = Graph {
            inputs: vec![Input { name: "x".into(), len: 3 }],
            nodes: vec![Node {
                name: "fc".into(),
                op: Op::Dense { weight: Array2::eye(3), bias: Array1::zeros(3) },
                inputs: vec!["x".into()],
                output: "logits".into(),
            }],
            outputs: vec!["logits".into()],
            role: Role::Classifier { classes: 3 },
        };
        let x = array![[-40.0f32, 2.0, 1.0], [5.0, -30.0, 12.0], [0.0, 3.0, -10.0]];
        let mut ranges = calibrate(&graph, std::slice::from_ref(&x), Method::MinMax).unwrap();
        assert_eq!(ranges.span["logits"], (-40.0, 12.0));
        narrow_for_argmax(&graph, &mut ranges, &[x]).unwrap();
        // The lowest top logit is 2; the margin is a tenth of 12 - 2.
        assert_eq!(ranges.span["logits"], (1.0, 12.0));
        // The hidden ranges are untouched.
        assert_eq!(ranges.span["x"], (-40.0, 12.0));
    }
}
