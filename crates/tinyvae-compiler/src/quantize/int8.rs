//! int8 parameters, TFLite's scheme: weights symmetric per output channel (codes rounded to
//! nearest or by GPTQ), activations asymmetric per tensor with ranges from calibration, int32
//! biases with the input zero point folded in, fixed-point requantization multipliers, and
//! 256-entry tables for the activations that are not folded into a clamp.

use std::collections::HashMap;

use ndarray::{Array1, Array2};
use tinyvae::quant::quantize_multiplier;

use super::{lower, Lowered, Prepared, QuantizeError};
use crate::calibrate::Calibration;
use crate::ir::{Graph, Op, Role};
use crate::rounding;

/// int8 quantization of one tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Real value of one step.
    pub scale: f32,
    /// Code of real 0.
    pub zero_point: i32,
}

impl QParams {
    /// Asymmetric parameters covering `[lo, hi]` widened to include 0 (so that zero padding and
    /// ReLU are exact), TFLite's convention.
    pub fn asymmetric(lo: f32, hi: f32) -> QParams {
        let lo = lo.min(0.0) as f64;
        let hi = (hi.max(0.0) as f64).max(lo + 1e-6);
        let scale = (hi - lo) / 255.0;
        let zero_point = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
        QParams { scale: scale as f32, zero_point }
    }

    /// Pixels in [0, 1]: code `q` is pixel `q + 128`, so sigmoid outputs are display-ready.
    pub const PIXELS: QParams = QParams { scale: 1.0 / 255.0, zero_point: -128 };
    /// TFLite's tanh output: [-1, 127/128].
    pub const TANH: QParams = QParams { scale: 1.0 / 128.0, zero_point: 0 };

    pub(super) fn quantize(&self, x: f64) -> i8 {
        ((x / self.scale as f64).round() + self.zero_point as f64).clamp(-128.0, 127.0) as i8
    }

    pub(super) fn dequantize(&self, q: i32) -> f64 {
        (q - self.zero_point) as f64 * self.scale as f64
    }
}

/// Inputs beyond which an activation's int8 output no longer changes: spending input codes
/// there only coarsens the useful part. Sigmoid at 1/255 saturates at |x| = ln(509) = 6.23;
/// tanh at 1/128 at atanh(127.5/128) = 3.17.
fn saturation_bound(op: &Op) -> Option<f32> {
    match op {
        Op::Sigmoid => Some(6.25),
        Op::Tanh => Some(3.2),
        _ => None,
    }
}

pub(super) fn apply_act(op: &Op, x: f64) -> f64 {
    match op {
        Op::Relu => x.max(0.0),
        Op::LeakyRelu { alpha } => {
            if x >= 0.0 {
                x
            } else {
                *alpha as f64 * x
            }
        }
        Op::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Op::Tanh => x.tanh(),
        Op::Silu => x / (1.0 + (-x).exp()),
        Op::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        _ => x,
    }
}

/// Chooses every Dense node's int8 weight codes by error-compensating rounding
/// ([`rounding::gptq`]) on the calibration inputs' second moments, and stores them in
/// `calibration.codes`, where [`quantize`](super::quantize) takes them from. Done once, ahead
/// of any range search, because the codes do not depend on activation ranges.
pub fn round_weights(prepared: &Prepared, calibration: &mut Calibration) {
    for n in &prepared.graph.nodes {
        if let (Op::Dense { weight, .. }, Some(gram)) = (&n.op, calibration.gram.get(&n.inputs[0])) {
            let codes = rounding::gptq(weight, &rounding::row_scales(weight), gram);
            calibration.codes.insert(n.name.clone(), codes);
        }
    }
}

/// The saturation bound of the activation that alone reads `v` (sigmoid, tanh), when `v` is
/// not also a graph output: `v`'s range beyond it buys nothing.
fn read_by_saturating(g: &Graph, lowered: &[Lowered<'_>], v: &str) -> Option<f32> {
    let readers: Vec<_> = lowered.iter().filter(|m| m.inputs().contains(&v)).collect();
    match readers.as_slice() {
        [Lowered::Act { op, .. }] if !g.outputs.iter().any(|o| o == v) => saturation_bound(op),
        _ => None,
    }
}

/// `ranges` with every value read only by a saturating activation clipped to the bound the
/// quantizer would clip it to anyway; range searches then explore the range that matters.
pub fn clip_to_saturation(prepared: &Prepared, ranges: &mut Calibration) -> Result<(), QuantizeError> {
    let lowered = lower(&prepared.graph)?;
    for (name, span) in ranges.span.iter_mut() {
        if let Some(b) = read_by_saturating(&prepared.graph, &lowered, name) {
            *span = (span.0.max(-b), span.1.min(b));
        }
    }
    Ok(())
}

pub(super) fn choose_params(
    g: &Graph,
    lowered: &[Lowered<'_>],
    ranges: &Calibration,
) -> Result<HashMap<String, QParams>, QuantizeError> {
    // A value that overflowed f32 would get an infinite scale, which no blob may hold. (An
    // empty range, (inf, -inf) from no samples, still gets the minimal one.)
    let range = |v: &str| match ranges.span.get(v).copied() {
        Some((lo, hi)) if lo.is_nan() || hi.is_nan() || lo == f32::NEG_INFINITY || hi == f32::INFINITY => {
            Err(QuantizeError::NonFiniteRange { value: v.to_string(), lo, hi })
        }
        Some(span) => Ok(span),
        None => Err(QuantizeError::NoRange { value: v.to_string() }),
    };
    let mut params: HashMap<String, QParams> = HashMap::new();
    // Classifiers read images as encoders do.
    let is_encoder = matches!(g.role, Role::Encoder { .. } | Role::Classifier { .. });
    for inp in &g.inputs {
        let (lo, hi) = range(&inp.name)?;
        // Images in [0, 1] get the pixel quantization: staging pixels is then a byte copy.
        let p = if is_encoder && lo >= 0.0 && hi <= 1.0 { QParams::PIXELS } else { QParams::asymmetric(lo, hi) };
        params.insert(inp.name.clone(), p);
    }
    for n in lowered {
        let out = n.output();
        let p = match n {
            Lowered::Act { op: Op::Sigmoid, .. } => QParams::PIXELS,
            Lowered::Act { op: Op::Tanh, .. } => QParams::TANH,
            // Nearest-neighbour upsampling copies codes: its output shares its input's parameters.
            Lowered::Upsample { input, .. } => {
                params.get(*input).copied().ok_or_else(|| QuantizeError::NoRange { value: input.to_string() })?
            }
            Lowered::Dense { relu: true, .. }
            | Lowered::Conv { relu: true, .. }
            | Lowered::Act { op: Op::Relu, .. } => QParams::asymmetric(0.0, range(out)?.1),
            _ => {
                let (mut lo, mut hi) = range(out)?;
                if let Some(b) = read_by_saturating(g, lowered, out) {
                    lo = lo.max(-b);
                    hi = hi.min(b);
                }
                QParams::asymmetric(lo, hi)
            }
        };
        params.insert(out.to_string(), p);
    }
    // Concat copies bytes, so its inputs must share its quantization. Graph inputs (which the
    // runtime quantizes itself) and the outputs of layers that requantize (Dense, Conv, Add:
    // any output scale is one multiplier away) take the joint parameters; a value whose
    // parameters are fixed by its op (a table's pixels, an upsampling's copy) cannot.
    let free = |v: &str| {
        g.inputs.iter().any(|i| i.name == v)
            || lowered.iter().any(|m| {
                m.output() == v
                    && matches!(m, Lowered::Dense { .. } | Lowered::Conv { .. } | Lowered::Add { .. })
                    && lowered.iter().filter(|r| r.inputs().contains(&v)).count() == 1
                    && !g.outputs.iter().any(|o| o == v)
            })
    };
    for n in lowered {
        if let Lowered::Concat { name, a, b, output } = n {
            let (la, ha) = range(a)?;
            let (lb, hb) = range(b)?;
            let p = QParams::asymmetric(la.min(lb), ha.max(hb));
            for v in [a, b] {
                if !free(v) {
                    return Err(QuantizeError::ConcatOfComputed { node: name.to_string(), value: v.to_string() });
                }
                params.insert(v.to_string(), p);
            }
            params.insert(output.to_string(), p);
        }
    }
    Ok(params)
}

/// The three data arrays of an int8 Dense node, as the blob stores them.
pub(super) struct Int8Dense {
    pub(super) weights: Vec<u8>,
    pub(super) bias: Vec<u8>,
    pub(super) aux: Vec<u8>,
}

/// int8 weights (symmetric per output channel), int32 bias with the input zero point folded
/// in, and the planar aux array: per-channel fixed-point multipliers, shifts, weight sums.
///
/// With the layer's mean input (from calibration), the bias also absorbs the output shift that
/// rounding the weights causes on average, `sum_k (w~[o][k] - w[o][k]) * mean[k]` (bias
/// correction, Nagel et al. 2019): rounding errors then cost variance but no systematic offset.
pub(super) fn quantize_dense(
    name: &str,
    weight: &Array2<f32>,
    bias: &Array1<f32>,
    codes: Option<&Array2<i8>>,
    input_mean: Option<&[f32]>,
    pin: QParams,
    pout: QParams,
) -> Result<Int8Dense, QuantizeError> {
    let scales = rounding::row_scales(weight);
    let nearest;
    let codes = match codes {
        Some(c) if c.dim() == weight.dim() => c,
        _ => {
            nearest = rounding::nearest(weight, &scales);
            &nearest
        }
    };
    let mut w = Vec::with_capacity(weight.len());
    let mut b = Vec::new();
    let (mut mults, mut shifts, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    for (o, (row, row_codes)) in weight.outer_iter().zip(codes.outer_iter()).enumerate() {
        let s_w = scales[o];
        if !s_w.is_finite() || !bias[o].is_finite() || row.iter().any(|v| !v.is_finite()) {
            return Err(QuantizeError::NonFinite { node: name.to_string(), channel: o });
        }
        let codes: Vec<i32> = row_codes.iter().map(|&c| c as i32).collect();
        let acc_scale = pin.scale as f64 * s_w;
        let shift: f64 = input_mean
            .filter(|m| m.len() == codes.len())
            .map(|m| row.iter().zip(&codes).zip(m).map(|((&w, &c), &x)| (c as f64 * s_w - w as f64) * x as f64).sum())
            .unwrap_or(0.0);
        // The cast saturates a huge bias at i64::MAX; the subtraction is checked from there.
        let folded = (((bias[o] as f64 - shift) / acc_scale).round() as i64)
            .checked_sub(pin.zero_point as i64 * codes.iter().map(|&c| c as i64).sum::<i64>())
            .and_then(|f| i32::try_from(f).ok())
            .ok_or_else(|| QuantizeError::BiasOverflow { node: name.to_string(), channel: o })?;
        let (m, s) = quantize_multiplier(acc_scale / pout.scale as f64)
            .ok_or_else(|| QuantizeError::RequantScale { node: name.to_string(), channel: o })?;
        w.extend(codes.iter().map(|&c| c as i8 as u8));
        b.extend_from_slice(&folded.to_le_bytes());
        mults.extend_from_slice(&m.to_le_bytes());
        shifts.extend_from_slice(&s.to_le_bytes());
        sums.extend_from_slice(&codes.iter().sum::<i32>().to_le_bytes());
    }
    Ok(Int8Dense { weights: w, bias: b, aux: [mults, shifts, sums].concat() })
}

/// The six int32 of an int8 Add (TFLite's quantized add): both inputs rescaled to a common
/// scale of twice the larger input scale, with 20 bits of headroom, summed, then rescaled to
/// the output: `[mult_a, shift_a, mult_b, shift_b, mult_out, shift_out]`, little-endian.
pub(super) fn add_requant(node: &str, a: QParams, b: QParams, out: QParams) -> Result<Vec<u8>, QuantizeError> {
    let twice_max = 2.0 * (a.scale as f64).max(b.scale as f64);
    let bad = || QuantizeError::RequantScale { node: node.to_string(), channel: 0 };
    let mut aux = Vec::with_capacity(24);
    for real in
        [a.scale as f64 / twice_max, b.scale as f64 / twice_max, twice_max / ((1 << 20) as f64 * out.scale as f64)]
    {
        let (m, s) = quantize_multiplier(real).ok_or_else(bad)?;
        aux.extend_from_slice(&m.to_le_bytes());
        aux.extend_from_slice(&s.to_le_bytes());
    }
    Ok(aux)
}
