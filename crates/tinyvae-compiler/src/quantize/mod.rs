//! Lowering a float IR graph into a runtime blob at f32, f16 or int8.
//!
//! Passes, in order: fuse the encoder's mu and log-variance heads into one Dense (both read the
//! same hidden vector); fuse Dense + ReLU; choose int8 quantization parameters (TFLite scheme:
//! weights symmetric per output channel, activations asymmetric per tensor, int32 bias with the
//! input zero point folded in, fixed-point requantization, 256-entry tables for sigmoid/tanh);
//! plan the arena; write the blob and parse it back as a self-check.

use std::collections::{HashMap, HashSet};

mod error;
mod int8;
mod spatial;

pub use self::error::QuantizeError;

use half::f16;
use ndarray::{concatenate, Array1, Array2, Axis};
use tinyvae::format::write::{self, BlobSpec, MetaSpec, NodeSpec, TensorSpec};
use tinyvae::format::{ActKind, DType, EncoderHead, ModelKind, OutputKind, WeightLayout};
use tinyvae::Precision;

use self::int8::{apply_act, choose_params, quantize_dense, QParams};
pub(crate) use self::int8::{clip_to_saturation, round_weights};
use self::spatial::{conv_geometry, conv_rows, tap_major, tensor_shapes};
use crate::calibrate::Calibration;
use crate::ir::{Graph, Node, Op, Role};
use crate::plan::{plan_arena, Lifetime};

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
    graph.value_lens()?;
    let Role::Encoder { .. } = graph.role else {
        return Ok(Prepared { graph: graph.clone(), head: EncoderHead::None });
    };
    if graph.outputs.len() == 1 {
        // One output: z itself (autoencoders), or mu and logvar already side by side.
        let Role::Encoder { latent, .. } = graph.role else { unreachable!("matched above") };
        let head = if graph.output_len(0)? == latent { EncoderHead::Deterministic } else { EncoderHead::Fused };
        return Ok(Prepared { graph: graph.clone(), head });
    }
    if graph.outputs.len() != 2 {
        return Err(QuantizeError::EncoderOutputs { outputs: graph.outputs.len() });
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
    let fuse_err = |source| QuantizeError::FuseHeads {
        mu: graph.nodes[a].name.clone(),
        logvar: graph.nodes[b].name.clone(),
        source,
    };
    let fused = Node {
        name: format!("{}+{}", graph.nodes[a].name, graph.nodes[b].name),
        op: Op::Dense {
            weight: concatenate(Axis(0), &[wa.view(), wb.view()]).map_err(fuse_err)?,
            bias: concatenate(Axis(0), &[ba.view(), bb.view()]).map_err(fuse_err)?,
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
    Dense {
        name: &'g str,
        input: &'g str,
        output: &'g str,
        weight: &'g Array2<f32>,
        bias: &'g Array1<f32>,
        relu: bool,
    },
    /// A Conv or ConvTranspose (`op`), with a ReLU fused as for Dense.
    Conv {
        name: &'g str,
        input: &'g str,
        output: &'g str,
        op: &'g Op,
        relu: bool,
    },
    Upsample {
        input: &'g str,
        output: &'g str,
        factor: [usize; 2],
    },
    Add {
        a: &'g str,
        b: &'g str,
        output: &'g str,
    },
    Act {
        name: &'g str,
        op: &'g Op,
        input: &'g str,
        output: &'g str,
    },
    Concat {
        name: &'g str,
        a: &'g str,
        b: &'g str,
        output: &'g str,
    },
}

impl<'g> Lowered<'g> {
    fn output(&self) -> &'g str {
        match self {
            Lowered::Dense { output, .. }
            | Lowered::Conv { output, .. }
            | Lowered::Upsample { output, .. }
            | Lowered::Add { output, .. }
            | Lowered::Act { output, .. }
            | Lowered::Concat { output, .. } => output,
        }
    }
    fn inputs(&self) -> Vec<&'g str> {
        match self {
            Lowered::Dense { input, .. }
            | Lowered::Conv { input, .. }
            | Lowered::Upsample { input, .. }
            | Lowered::Act { input, .. } => vec![input],
            Lowered::Concat { a, b, .. } | Lowered::Add { a, b, .. } => vec![a, b],
        }
    }
}

fn lower(g: &Graph) -> Result<Vec<Lowered<'_>>, QuantizeError> {
    let consumers = |v: &str| g.nodes.iter().filter(|n| n.inputs.iter().any(|i| i == v)).count();
    let is_output = |v: &str| g.outputs.iter().any(|o| o == v);
    let mut out = Vec::new();
    let mut skip: HashSet<usize> = HashSet::new();
    // Dense/Conv + ReLU: ReLU becomes the clamp (int8) or the kernel's epilogue (float).
    let fused_relu = |n: &'_ Node, skip: &mut HashSet<usize>| -> Option<usize> {
        let (j, _) = g.nodes.iter().enumerate().find(|(_, m)| m.op == Op::Relu && m.inputs[0] == n.output)?;
        (consumers(&n.output) == 1 && !is_output(&n.output) && skip.insert(j)).then_some(j)
    };
    for (i, n) in g.nodes.iter().enumerate() {
        if skip.contains(&i) {
            continue;
        }
        match &n.op {
            Op::Dense { weight, bias } => {
                let fused = fused_relu(n, &mut skip);
                let output = fused.map_or(n.output.as_str(), |j| g.nodes[j].output.as_str());
                out.push(Lowered::Dense {
                    name: &n.name,
                    input: &n.inputs[0],
                    output,
                    weight,
                    bias,
                    relu: fused.is_some(),
                });
            }
            Op::Conv { .. } | Op::ConvTranspose { .. } => {
                let fused = fused_relu(n, &mut skip);
                let output = fused.map_or(n.output.as_str(), |j| g.nodes[j].output.as_str());
                out.push(Lowered::Conv {
                    name: &n.name,
                    input: &n.inputs[0],
                    output,
                    op: &n.op,
                    relu: fused.is_some(),
                });
            }
            Op::Upsample { factor, .. } => {
                out.push(Lowered::Upsample { input: &n.inputs[0], output: &n.output, factor: *factor })
            }
            Op::Add => out.push(Lowered::Add { a: &n.inputs[0], b: &n.inputs[1], output: &n.output }),
            Op::Concat => {
                if n.inputs.len() != 2 {
                    return Err(QuantizeError::ConcatArity { node: n.name.clone(), inputs: n.inputs.len() });
                }
                out.push(Lowered::Concat { name: &n.name, a: &n.inputs[0], b: &n.inputs[1], output: &n.output });
            }
            op => out.push(Lowered::Act { name: &n.name, op, input: &n.inputs[0], output: &n.output }),
        }
    }
    Ok(out)
}

/// Lowers `prepared` to a blob. `ranges` (from [`calibrate`](fn@crate::calibrate) on
/// `prepared.graph`) is required for int8 and ignored otherwise.
pub fn quantize(
    prepared: &Prepared,
    ranges: Option<&Calibration>,
    precision: Precision,
) -> Result<Vec<u8>, QuantizeError> {
    let g = &prepared.graph;
    let lens = g.value_lens()?;
    let lowered = lower(g)?;
    if lowered.is_empty() {
        return Err(QuantizeError::NoNodes);
    }
    let int8 = precision == Precision::Int8;
    let params = match (int8, ranges) {
        (true, Some(r)) => choose_params(g, &lowered, r)?,
        (true, None) => return Err(QuantizeError::NeedsCalibration),
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
            .ok_or_else(|| QuantizeError::Uncomputed { value: v.to_string() })
    };
    use tinyvae::format::{MAX_ARENA_BYTES, MAX_IO, MAX_NODES, MAX_TENSORS};
    let exceeds =
        |what, value: usize, limit| (value > limit).then_some(QuantizeError::ExceedsLimit { what, value, limit });
    if let Some(e) = exceeds("tensors", names.len(), MAX_TENSORS)
        .or_else(|| exceeds("nodes", lowered.len(), MAX_NODES))
        .or_else(|| exceeds("graph inputs", g.inputs.len(), MAX_IO))
        .or_else(|| exceeds("graph outputs", g.outputs.len(), MAX_IO))
    {
        return Err(e);
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
            // Graph outputs are read after the last node; so is an autoencoder's input, whose
            // codes the runtime's anomaly score compares with the output's (the format
            // promises that no node writes over it).
            if g.outputs.iter().any(|o| o == v) || (g.role == Role::Autoencoder && t < g.inputs.len()) {
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
    if let Some(e) = exceeds("arena bytes per sample", arena_bytes, MAX_ARENA_BYTES) {
        return Err(e);
    }
    let offsets: Vec<usize> = slot.iter().map(|&s| slot_offsets[s]).collect();

    let images = tensor_shapes(g, &lowered)?;
    let tensors: Vec<TensorSpec> = names
        .iter()
        .zip(&offsets)
        .map(|(&v, &off)| {
            let p = params.get(v).copied().unwrap_or(QParams { scale: 0.0, zero_point: 0 });
            let [_, h, w] = images.get(v).copied().unwrap_or([0; 3]);
            let side =
                |d: usize| u16::try_from(d).map_err(|_| QuantizeError::TooLarge { what: "image side", value: d });
            Ok(TensorSpec {
                dtype,
                len: lens[v] as u32,
                arena_offset: off as u32,
                scale: p.scale,
                zero_point: p.zero_point,
                height: side(h)?,
                width: side(w)?,
            })
        })
        .collect::<Result<_, QuantizeError>>()?;

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
            Lowered::Conv { name, input, output, op, relu } => {
                let rows = conv_rows(op);
                let (Op::Conv { bias, .. } | Op::ConvTranspose { bias, .. }) = op else {
                    return Err(QuantizeError::NotAnActivation { node: name.to_string(), op: op.name() });
                };
                let transposed = matches!(op, Op::ConvTranspose { .. });
                let geometry = conv_geometry(name, op)?;
                let act = if *relu { ActKind::Relu } else { ActKind::None };
                let in_zero_point = int8.then(|| params[*input].zero_point);
                let base =
                    |weight_dtype: DType, weights: Vec<u8>, bias: Vec<u8>, requant: Vec<u8>, act_min, act_max| {
                        let conv = (*name, images.get(*input).zip(images.get(*output)), geometry, transposed);
                        let (weights, bias, requant) =
                            tap_major(conv, weight_dtype, in_zero_point, (&weights, &bias, &requant))?;
                        Ok::<_, QuantizeError>(NodeSpec::Conv {
                            input: id(input).unwrap_or(0),
                            output: id(output).unwrap_or(0),
                            transposed,
                            geometry,
                            rows: rows.nrows() as u32,
                            cols: rows.ncols() as u32,
                            weight_dtype,
                            layout: WeightLayout::TapMajor,
                            weights,
                            bias,
                            requant,
                            act,
                            act_min,
                            act_max,
                        })
                    };
                let f32_bias: Vec<u8> = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
                match precision {
                    Precision::F32 => {
                        base(DType::F32, rows.iter().flat_map(|v| v.to_le_bytes()).collect(), f32_bias, vec![], 0, 0)?
                    }
                    Precision::F16 => base(
                        DType::F16,
                        rows.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect(),
                        f32_bias,
                        vec![],
                        0,
                        0,
                    )?,
                    Precision::Int8 => {
                        // A transposed convolution's bias cannot hold the input zero point (each
                        // output pixel sums a different subset of taps): its kernel subtracts it.
                        let pin = if transposed { QParams { zero_point: 0, ..params[*input] } } else { params[*input] };
                        let q = quantize_dense(name, &rows, bias, None, None, pin, params[*output])?;
                        let zp = params[*output].zero_point as i8;
                        base(DType::I8, q.weights, q.bias, q.aux, if *relu { zp } else { -128 }, 127)?
                    }
                }
            }
            Lowered::Upsample { input, output, factor } => {
                let byte = |v: usize| {
                    u8::try_from(v).map_err(|_| QuantizeError::Geometry {
                        node: output.to_string(),
                        what: "upsampling factor",
                        value: v,
                    })
                };
                NodeSpec::Upsample {
                    input: id(input)?,
                    output: id(output)?,
                    factor_h: byte(factor[0])?,
                    factor_w: byte(factor[1])?,
                }
            }
            Lowered::Add { a, b, output } => {
                let requant =
                    if int8 { int8::add_requant(output, params[*a], params[*b], params[*output])? } else { vec![] };
                NodeSpec::Add {
                    a: id(a)?,
                    b: id(b)?,
                    output: id(output)?,
                    requant,
                    act: ActKind::None,
                    act_min: -128,
                    act_max: 127,
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
                        Op::Silu => (ActKind::Silu, 0.0),
                        Op::HardSwish => (ActKind::HardSwish, 0.0),
                        other => {
                            return Err(QuantizeError::NotAnActivation { node: name.to_string(), op: other.name() })
                        }
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
        arena_bytes: arena_bytes as u32, // at most MAX_ARENA_BYTES, checked above
        tensors,
        nodes,
        inputs: g.inputs.iter().map(|i| id(&i.name)).collect::<Result<_, _>>()?,
        outputs: g.outputs.iter().map(|o| id(o)).collect::<Result<_, _>>()?,
        meta,
    };
    let blob = write::write(&spec);
    // The runtime's parser is the judge of what is a valid blob.
    tinyvae::Model::parse(&blob).map_err(QuantizeError::BlobRejected)?;
    Ok(blob)
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
    let small =
        |value: usize, what: &'static str| u16::try_from(value).map_err(|_| QuantizeError::TooLarge { what, value });
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
        Role::Classifier { classes } => {
            let (width, height) = image(g.inputs[0].len);
            (
                ModelKind::Classifier,
                MetaSpec {
                    latent: 0,
                    classes: small(classes, "class count")?,
                    width,
                    height,
                    output_kind: OutputKind::Raw,
                    head: EncoderHead::None,
                },
            )
        }
        Role::Autoencoder | Role::Generic => (
            if g.role == Role::Autoencoder { ModelKind::Autoencoder } else { ModelKind::Generic },
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
