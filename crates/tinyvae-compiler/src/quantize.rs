//! Lowering a float IR graph into a runtime blob at f32, f16 or int8.
//!
//! Passes, in order: fuse the encoder's mu and log-variance heads into one Dense (both read the
//! same hidden vector); fuse Dense + ReLU; choose int8 quantization parameters (TFLite scheme:
//! weights symmetric per output channel, activations asymmetric per tensor, int32 bias with the
//! input zero point folded in, fixed-point requantization, 256-entry tables for sigmoid/tanh);
//! plan the arena; write the blob and parse it back as a self-check.

use std::collections::{HashMap, HashSet};
use std::fmt;

use half::f16;
use ndarray::{concatenate, Array1, Array2, Axis};
use tinyvae::format::write::{self, BlobSpec, MetaSpec, NodeSpec, TensorSpec};
use tinyvae::format::{ActKind, DType, EncoderHead, ModelKind, OutputKind, WeightLayout};
use tinyvae::quant::quantize_multiplier;
use tinyvae::Precision;

use crate::calibrate::Calibration;
use crate::ir::{Graph, Node, Op, Role};
use crate::plan::{plan_arena, Lifetime};
use crate::rounding;

/// Why a graph could not be quantized; names the node or value.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeError(pub String);

impl fmt::Display for QuantizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for QuantizeError {}

fn err<T>(msg: impl Into<String>) -> Result<T, QuantizeError> {
    Err(QuantizeError(msg.into()))
}

/// The graph's shape as the runtime will see it: heads fused or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    /// The float graph the blob implements (the reference for fidelity).
    pub graph: Graph,
    /// How an encoder's outputs are arranged.
    pub head: EncoderHead,
}

/// Fuses an encoder's two heads (mu, logvar: Dense nodes reading the same value, each a graph
/// output read by nothing else) into one Dense with output `[mu | logvar]`: one kernel call
/// and one weight stream instead of two.
pub fn prepare(graph: &Graph, fuse_heads: bool) -> Result<Prepared, QuantizeError> {
    graph.value_lens().map_err(|e| QuantizeError(e.to_string()))?;
    let Role::Encoder { .. } = graph.role else {
        return Ok(Prepared { graph: graph.clone(), head: EncoderHead::None });
    };
    if graph.outputs.len() == 1 {
        // One output: z itself (autoencoders), or mu and logvar already side by side.
        let Role::Encoder { latent, .. } = graph.role else { unreachable!("matched above") };
        let head = if graph.output_len(0).map_err(|e| QuantizeError(e.to_string()))? == latent {
            EncoderHead::Deterministic
        } else {
            EncoderHead::Fused
        };
        return Ok(Prepared { graph: graph.clone(), head });
    }
    if graph.outputs.len() != 2 {
        return err(format!("an encoder has outputs mu and logvar; this graph has {}", graph.outputs.len()));
    }
    let producer = |v: &str| graph.nodes.iter().position(|n| n.output == v);
    let read_elsewhere = |v: &str| graph.nodes.iter().any(|n| n.inputs.iter().any(|i| i == v));
    let (mu, lv) = (&graph.outputs[0], &graph.outputs[1]);
    let fusable = match (producer(mu), producer(lv)) {
        (Some(a), Some(b)) => {
            let (na, nb) = (&graph.nodes[a], &graph.nodes[b]);
            matches!((&na.op, &nb.op), (Op::Dense { .. }, Op::Dense { .. }))
                && na.inputs == nb.inputs
                && !read_elsewhere(mu)
                && !read_elsewhere(lv)
        }
        _ => false,
    };
    if !fuse_heads || !fusable {
        return Ok(Prepared { graph: graph.clone(), head: EncoderHead::Separate });
    }
    let (a, b) = (producer(mu).unwrap(), producer(lv).unwrap());
    let (Op::Dense { weight: wa, bias: ba }, Op::Dense { weight: wb, bias: bb }) =
        (&graph.nodes[a].op, &graph.nodes[b].op)
    else {
        unreachable!("checked above")
    };
    let fused = Node {
        name: format!("{}+{}", graph.nodes[a].name, graph.nodes[b].name),
        op: Op::Dense {
            weight: concatenate(Axis(0), &[wa.view(), wb.view()]).map_err(|e| QuantizeError(e.to_string()))?,
            bias: concatenate(Axis(0), &[ba.view(), bb.view()]).map_err(|e| QuantizeError(e.to_string()))?,
        },
        inputs: graph.nodes[a].inputs.clone(),
        output: format!("{mu}|{lv}"),
    };
    let mut nodes: Vec<Node> =
        graph.nodes.iter().enumerate().filter(|(i, _)| *i != a && *i != b).map(|(_, n)| n.clone()).collect();
    nodes.push(fused.clone());
    Ok(Prepared {
        graph: Graph { inputs: graph.inputs.clone(), nodes, outputs: vec![fused.output], role: graph.role },
        head: EncoderHead::Fused,
    })
}

/// A node as the runtime will run it.
#[derive(Debug, Clone)]
enum Lowered<'g> {
    Dense { name: &'g str, input: &'g str, output: &'g str, weight: &'g Array2<f32>, bias: &'g Array1<f32>, relu: bool },
    Act { name: &'g str, op: &'g Op, input: &'g str, output: &'g str },
    Concat { name: &'g str, a: &'g str, b: &'g str, output: &'g str },
}

impl<'g> Lowered<'g> {
    fn output(&self) -> &'g str {
        match self {
            Lowered::Dense { output, .. } | Lowered::Act { output, .. } | Lowered::Concat { output, .. } => output,
        }
    }
    fn inputs(&self) -> Vec<&'g str> {
        match self {
            Lowered::Dense { input, .. } | Lowered::Act { input, .. } => vec![input],
            Lowered::Concat { a, b, .. } => vec![a, b],
        }
    }
}

fn lower(g: &Graph) -> Result<Vec<Lowered<'_>>, QuantizeError> {
    let consumers = |v: &str| g.nodes.iter().filter(|n| n.inputs.iter().any(|i| i == v)).count();
    let is_output = |v: &str| g.outputs.iter().any(|o| o == v);
    let mut out = Vec::new();
    let mut skip: HashSet<usize> = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        match &n.op {
            Op::Dense { weight, bias } => {
                // Dense + ReLU: ReLU becomes the clamp (int8) or the kernel's epilogue (float).
                let relu = g.nodes.iter().enumerate().find(|(_, m)| m.op == Op::Relu && m.inputs[0] == n.output);
                let fuse = relu.filter(|_| consumers(&n.output) == 1 && !is_output(&n.output));
                let output = match fuse {
                    Some((j, m)) => {
                        skip.insert(j);
                        m.output.as_str()
                    }
                    None => n.output.as_str(),
                };
                out.push(Lowered::Dense {
                    name: &n.name,
                    input: &n.inputs[0],
                    output,
                    weight,
                    bias,
                    relu: fuse.is_some(),
                });
            }
            Op::Concat => {
                if n.inputs.len() != 2 {
                    return err(format!(
                        "node `{}` (Concat) has {} inputs; the runtime concatenates exactly two (z and a condition)",
                        n.name,
                        n.inputs.len()
                    ));
                }
                out.push(Lowered::Concat { name: &n.name, a: &n.inputs[0], b: &n.inputs[1], output: &n.output });
            }
            op => out.push(Lowered::Act { name: &n.name, op, input: &n.inputs[0], output: &n.output }),
        }
    }
    Ok(out)
}

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

    fn quantize(&self, x: f64) -> i8 {
        ((x / self.scale as f64).round() + self.zero_point as f64).clamp(-128.0, 127.0) as i8
    }

    fn dequantize(&self, q: i32) -> f64 {
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

fn apply_act(op: &Op, x: f64) -> f64 {
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
        _ => x,
    }
}

/// Chooses every Dense node's int8 weight codes by error-compensating rounding
/// ([`rounding::gptq`]) on the calibration inputs' second moments, and stores them in
/// `calibration.codes`, where [`quantize`] takes them from. Done once, ahead of any range
/// search, because the codes do not depend on activation ranges.
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

fn choose_params(
    g: &Graph,
    lowered: &[Lowered<'_>],
    ranges: &Calibration,
) -> Result<HashMap<String, QParams>, QuantizeError> {
    let range = |v: &str| {
        ranges.span.get(v).copied().ok_or_else(|| QuantizeError(format!("no calibration range for value `{v}`")))
    };
    let mut params: HashMap<String, QParams> = HashMap::new();
    let is_encoder = matches!(g.role, Role::Encoder { .. });
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
            Lowered::Dense { relu: true, .. } | Lowered::Act { op: Op::Relu, .. } => {
                QParams::asymmetric(0.0, range(out)?.1)
            }
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
    // Concat copies bytes, so its inputs must share its quantization; only graph inputs (which
    // the runtime quantizes itself) can be re-parameterized freely.
    for n in lowered {
        if let Lowered::Concat { name, a, b, output } = n {
            let (la, ha) = range(a)?;
            let (lb, hb) = range(b)?;
            let p = QParams::asymmetric(la.min(lb), ha.max(hb));
            for v in [a, b] {
                if !g.inputs.iter().any(|i| &i.name == v) {
                    return err(format!(
                        "node `{name}` (Concat) joins `{v}`, a computed value; int8 Concat is supported on graph inputs only"
                    ));
                }
                params.insert(v.to_string(), p);
            }
            params.insert(output.to_string(), p);
        }
    }
    Ok(params)
}

/// Options of [`quantize`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Target precision.
    pub precision: Precision,
    /// Fuse an encoder's two heads into one Dense.
    pub fuse_heads: bool,
}

/// A blob and the float graph it implements.
#[derive(Debug, Clone)]
pub struct Quantized {
    /// The blob bytes (already parsed back once by the runtime).
    pub blob: Vec<u8>,
    /// The graph after head fusion: same function as the input graph.
    pub prepared: Prepared,
}

/// Lowers `prepared` to a blob. `ranges` (from [`crate::calibrate::calibrate`] on
/// `prepared.graph`) is required for int8 and ignored otherwise.
pub fn quantize(
    prepared: &Prepared,
    ranges: Option<&Calibration>,
    precision: Precision,
) -> Result<Vec<u8>, QuantizeError> {
    let g = &prepared.graph;
    let lens = g.value_lens().map_err(|e| QuantizeError(e.to_string()))?;
    let lowered = lower(g)?;
    let int8 = precision == Precision::Int8;
    let params = match (int8, ranges) {
        (true, Some(r)) => choose_params(g, &lowered, r)?,
        (true, None) => return err("int8 quantization needs calibration ranges"),
        (false, _) => HashMap::new(),
    };

    // Tensor ids: graph inputs first, then node outputs in execution order.
    let mut names: Vec<&str> = g.inputs.iter().map(|i| i.name.as_str()).collect();
    names.extend(lowered.iter().map(|n| n.output()));
    let id = |v: &str| -> Result<u16, QuantizeError> {
        names
            .iter()
            .position(|&n| n == v)
            .map(|p| p as u16)
            .ok_or_else(|| QuantizeError(format!("value `{v}` is never computed")))
    };
    if names.len() > tinyvae::format::MAX_TENSORS {
        return err(format!("{} tensors exceed the runtime's limit of {}", names.len(), tinyvae::format::MAX_TENSORS));
    }

    let dtype = if int8 { DType::I8 } else { DType::F32 };
    let steps = lowered.len() as i64;
    let lifetimes: Vec<Lifetime> = names
        .iter()
        .enumerate()
        .map(|(t, &v)| {
            let first = if t < g.inputs.len() { -1 } else { (t - g.inputs.len()) as i64 };
            let mut last = lowered
                .iter()
                .enumerate()
                .filter(|(_, n)| n.inputs().contains(&v))
                .map(|(i, _)| i as i64)
                .max()
                .unwrap_or(first);
            if g.outputs.iter().any(|o| o == v) {
                last = steps;
            }
            Lifetime { bytes: lens[v] * dtype.size(), first, last }
        })
        .collect();
    // An activation whose input dies with it runs in place: its output takes the input's
    // bytes (the runtime allows exactly that overlap for elementwise nodes), which saves the
    // largest tensor of a decoder (the 784 logits before the sigmoid).
    let mut slot: Vec<usize> = (0..names.len()).collect();
    for (step, n) in lowered.iter().enumerate() {
        if let Lowered::Act { input, output, .. } = n {
            let (a, b) = (id(input)? as usize, id(output)? as usize);
            if lifetimes[a].last == step as i64 && lifetimes[a].bytes == lifetimes[b].bytes {
                slot[b] = slot[a];
            }
        }
    }
    let mut slots: Vec<Lifetime> = lifetimes.clone();
    for (t, &s) in slot.iter().enumerate() {
        if s != t {
            slots[s].last = slots[s].last.max(lifetimes[t].last);
            slots[t].bytes = 0;
        }
    }
    let (slot_offsets, arena_bytes) = plan_arena(&slots);
    let offsets: Vec<usize> = slot.iter().map(|&s| slot_offsets[s]).collect();

    let tensors: Vec<TensorSpec> = names
        .iter()
        .zip(&offsets)
        .map(|(&v, &off)| {
            let p = params.get(v).copied().unwrap_or(QParams { scale: 0.0, zero_point: 0 });
            TensorSpec {
                dtype,
                len: lens[v] as u32,
                arena_offset: off as u32,
                scale: p.scale,
                zero_point: p.zero_point,
            }
        })
        .collect();

    let mut nodes = Vec::new();
    for n in &lowered {
        nodes.push(match n {
            Lowered::Dense { name, input, output, weight, bias, relu } => {
                let (rows, cols) = weight.dim();
                let base = |weight_dtype, weights, bias, requant, act, act_min, act_max| NodeSpec::Dense {
                    input: id(input).unwrap_or(0),
                    output: id(output).unwrap_or(0),
                    rows: rows as u32,
                    cols: cols as u32,
                    weight_dtype,
                    layout: WeightLayout::RowMajor,
                    weights,
                    bias,
                    requant,
                    act,
                    act_min,
                    act_max,
                };
                let f32_bias: Vec<u8> = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
                let act = if *relu { ActKind::Relu } else { ActKind::None };
                match precision {
                    Precision::F32 => base(
                        DType::F32,
                        weight.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        f32_bias,
                        vec![],
                        act,
                        0,
                        0,
                    ),
                    Precision::F16 => base(
                        DType::F16,
                        weight.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
                        f32_bias,
                        vec![],
                        act,
                        0,
                        0,
                    ),
                    Precision::Int8 => {
                        let input_mean = ranges.and_then(|r| r.mean.get(*input)).map(|m| m.as_slice());
                        let codes = ranges.and_then(|r| r.codes.get(*name));
                        let q = quantize_dense(name, weight, bias, codes, input_mean, params[*input], params[*output])?;
                        let zp = params[*output].zero_point as i8;
                        base(DType::I8, q.weights, q.bias, q.aux, act, if *relu { zp } else { -128 }, 127)
                    }
                }
            }
            Lowered::Act { name, op, input, output } => {
                if int8 {
                    let (pi, po) = (params[*input], params[*output]);
                    NodeSpec::Lut {
                        input: id(input)?,
                        output: id(output)?,
                        table: std::array::from_fn(|i| po.quantize(apply_act(op, pi.dequantize(i as i32 - 128))) as u8),
                    }
                } else {
                    let (act, alpha) = match op {
                        Op::Relu => (ActKind::Relu, 0.0),
                        Op::LeakyRelu { alpha } => (ActKind::LeakyRelu, *alpha),
                        Op::Sigmoid => (ActKind::Sigmoid, 0.0),
                        Op::Tanh => (ActKind::Tanh, 0.0),
                        other => return err(format!("node `{name}`: {} is not an activation", other.name())),
                    };
                    NodeSpec::Activation { input: id(input)?, output: id(output)?, act, alpha }
                }
            }
            Lowered::Concat { a, b, output, .. } => NodeSpec::Concat { a: id(a)?, b: id(b)?, output: id(output)? },
        });
    }
    for n in &lowered {
        for v in n.inputs() {
            id(v)?;
        }
        id(n.output())?;
    }

    let (kind, meta) = meta_for(g, prepared.head, &lens)?;
    let spec = BlobSpec {
        kind,
        precision,
        arena_bytes: arena_bytes as u32,
        tensors,
        nodes,
        inputs: g.inputs.iter().map(|i| id(&i.name)).collect::<Result<_, _>>()?,
        outputs: g.outputs.iter().map(|o| id(o)).collect::<Result<_, _>>()?,
        meta,
    };
    let blob = write::write(&spec);
    // The runtime's parser is the judge of what is a valid blob.
    tinyvae::Model::parse(&blob)
        .map_err(|e| QuantizeError(format!("internal error: the blob written does not parse: {e}")))?;
    Ok(blob)
}

/// The three data arrays of an int8 Dense node, as the blob stores them.
struct Int8Dense {
    weights: Vec<u8>,
    bias: Vec<u8>,
    aux: Vec<u8>,
}

/// int8 weights (symmetric per output channel), int32 bias with the input zero point folded
/// in, and the planar aux array: per-channel fixed-point multipliers, shifts, weight sums.
///
/// With the layer's mean input (from calibration), the bias also absorbs the output shift that
/// rounding the weights causes on average, `sum_k (w~[o][k] - w[o][k]) * mean[k]` (bias
/// correction, Nagel et al. 2019): rounding errors then cost variance but no systematic offset.
fn quantize_dense(
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
            return err(format!("node `{name}`: output channel {o} has a non-finite weight or bias"));
        }
        let codes: Vec<i32> = row_codes.iter().map(|&c| c as i32).collect();
        let acc_scale = pin.scale as f64 * s_w;
        let shift: f64 = input_mean
            .filter(|m| m.len() == codes.len())
            .map(|m| row.iter().zip(&codes).zip(m).map(|((&w, &c), &x)| (c as f64 * s_w - w as f64) * x as f64).sum())
            .unwrap_or(0.0);
        let folded = ((bias[o] as f64 - shift) / acc_scale).round() as i64
            - pin.zero_point as i64 * codes.iter().map(|&c| c as i64).sum::<i64>();
        let folded = i32::try_from(folded).map_err(|_| {
            QuantizeError(format!("node `{name}`: bias of output channel {o} overflows int32 at this input scale"))
        })?;
        let (m, s) = quantize_multiplier(acc_scale / pout.scale as f64).ok_or_else(|| {
            QuantizeError(format!("node `{name}`: requantization scale of channel {o} is out of range"))
        })?;
        w.extend(codes.iter().map(|&c| c as i8 as u8));
        b.extend_from_slice(&folded.to_le_bytes());
        mults.extend_from_slice(&m.to_le_bytes());
        shifts.extend_from_slice(&s.to_le_bytes());
        sums.extend_from_slice(&codes.iter().sum::<i32>().to_le_bytes());
    }
    Ok(Int8Dense { weights: w, bias: b, aux: [mults, shifts, sums].concat() })
}

fn meta_for(
    g: &Graph,
    head: EncoderHead,
    lens: &HashMap<String, usize>,
) -> Result<(ModelKind, MetaSpec), QuantizeError> {
    let image = |len: usize| {
        let side = (len as f64).sqrt().round() as usize;
        if side * side == len && side <= u16::MAX as usize {
            (side as u16, side as u16)
        } else {
            (0, 0)
        }
    };
    let small = |v: usize, what: &str| u16::try_from(v).map_err(|_| QuantizeError(format!("{what} {v} is too large")));
    Ok(match g.role {
        Role::Decoder { latent, classes, bernoulli } => {
            let (width, height) = image(lens[&g.outputs[0]]);
            (
                ModelKind::Decoder,
                MetaSpec {
                    latent: small(latent, "latent size")?,
                    classes: small(classes, "class count")?,
                    width,
                    height,
                    output_kind: if bernoulli { OutputKind::Bernoulli } else { OutputKind::Gaussian },
                    head: EncoderHead::None,
                },
            )
        }
        Role::Encoder { latent, classes } => {
            let (width, height) = image(g.inputs[0].len);
            (
                ModelKind::Encoder,
                MetaSpec {
                    latent: small(latent, "latent size")?,
                    classes: small(classes, "class count")?,
                    width,
                    height,
                    output_kind: OutputKind::Raw,
                    head,
                },
            )
        }
        Role::Generic => (
            ModelKind::Generic,
            MetaSpec {
                latent: 0,
                classes: 0,
                width: 0,
                height: 0,
                output_kind: OutputKind::Raw,
                head: EncoderHead::None,
            },
        ),
    })
}
