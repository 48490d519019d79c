//! The blob writer: the other half of the format, used by the host-side quantizer. Lives beside
//! the parser so that one crate owns every offset; the round-trip tests keep them in step.

use alloc::vec;
use alloc::vec::Vec;

use super::{
    align_up, crc32, hdr, mrec, nrec, trec, ActKind, ConvGeometry, DType, EncoderHead, ModelKind, OpCode, OutputKind,
    Precision, WeightLayout, ALIGN, HEADER_LEN, MAGIC, META_RECORD_LEN, NODE_RECORD_LEN, NO_TENSOR, TENSOR_RECORD_LEN,
    VERSION, VERSION_1, VERSION_2, VERSION_3, VERSION_5,
};

/// A tensor to write.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// `F32` or `I8`.
    pub dtype: DType,
    /// Elements per sample.
    pub len: u32,
    /// Planned byte offset in the arena (multiple of `ALIGN`).
    pub arena_offset: u32,
    /// int8 scale (ignored for f32).
    pub scale: f32,
    /// int8 zero point (ignored for f32).
    pub zero_point: i32,
    /// Rows per channel of a `[C, H, W]` tensor (NCHW); 0 with `width` 0 for a flat vector.
    /// Non-zero makes the blob version 2.
    pub height: u16,
    /// Values per row; 0 with `height` 0 for a flat vector.
    pub width: u16,
}

impl TensorSpec {
    /// A flat vector of `len` elements.
    pub fn flat(dtype: DType, len: u32, arena_offset: u32, scale: f32, zero_point: i32) -> Self {
        TensorSpec { dtype, len, arena_offset, scale, zero_point, height: 0, width: 0 }
    }

    /// A `(channels, height, width)` tensor (format version 2). The length is their product
    /// (wrapping past `u32`, which the parser then rejects).
    pub fn shaped(
        dtype: DType,
        (channels, height, width): (u32, u16, u16),
        arena_offset: u32,
        scale: f32,
        zero_point: i32,
    ) -> Self {
        let len = channels.wrapping_mul(height as u32).wrapping_mul(width as u32);
        TensorSpec { dtype, len, arena_offset, scale, zero_point, height, width }
    }
}

/// A node to write, with the data arrays it owns.
// On 32-bit targets the table outweighs a Dense node's three `Vec`s; a few nodes per model,
// built on the host, are not worth a `Box` in the quantizer's code.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum NodeSpec {
    /// Fully connected layer.
    Dense {
        /// Input tensor.
        input: u16,
        /// Output tensor.
        output: u16,
        /// Output channels.
        rows: u32,
        /// Input features.
        cols: u32,
        /// Weight element type.
        weight_dtype: DType,
        /// Weight layout.
        layout: WeightLayout,
        /// Weight bytes (little-endian).
        weights: Vec<u8>,
        /// Bias bytes: int32 (int8 graphs) or f32, little-endian.
        bias: Vec<u8>,
        /// int8 only: `rows` int32 multipliers, then `rows` int32 shifts, then `rows` int32 sums
        /// of each weight row, little-endian.
        requant: Vec<u8>,
        /// Float graphs: `None` or `Relu`.
        act: ActKind,
        /// int8 clamp.
        act_min: i8,
        /// int8 clamp.
        act_max: i8,
    },
    /// int8 lookup table.
    Lut {
        /// Input tensor.
        input: u16,
        /// Output tensor.
        output: u16,
        /// The 256 output codes, indexed by `input + 128`.
        table: [u8; 256],
    },
    /// f32 activation.
    Activation {
        /// Input tensor.
        input: u16,
        /// Output tensor.
        output: u16,
        /// The function.
        act: ActKind,
        /// Leaky-ReLU slope.
        alpha: f32,
    },
    /// `[a | b]`.
    Concat {
        /// First input.
        a: u16,
        /// Second input.
        b: u16,
        /// Output tensor.
        output: u16,
    },
    /// A 2-D convolution (op 5) or transposed convolution (op 6), format version 2. Arrays as
    /// for [`NodeSpec::Dense`]: `rows x cols` weights, `rows` biases, and for int8 the planar
    /// multipliers, shifts and weight sums (the transposed convolution's bias does not fold the
    /// input zero point; see the format specification).
    Conv {
        /// Input tensor, shaped `[C_in, H, W]`.
        input: u16,
        /// Output tensor, shaped `[C_out, OH, OW]`.
        output: u16,
        /// `false`: Conv; `true`: ConvTranspose.
        transposed: bool,
        /// Kernel, strides, dilations, top/left padding and groups.
        geometry: ConvGeometry,
        /// Output channels.
        rows: u32,
        /// Conv: `C_in / groups * kh * kw`; ConvTranspose: `C_in * kh * kw`.
        cols: u32,
        /// Weight element type: the precision's (i8, f16 or f32).
        weight_dtype: DType,
        /// How the arrays below are laid out: [`WeightLayout::RowMajor`] (format version 2) or
        /// [`WeightLayout::TapMajor`] (version 3, what optimized kernels run on;
        /// [`crate::kernels::conv_layout::tap_major_arrays`] makes them from row-major ones).
        layout: WeightLayout,
        /// Weight bytes, little-endian; row-major: `[C_out][C_in / groups][kh][kw]`
        /// (ConvTranspose: `[C_out][C_in][kh][kw]`, ONNX's `[C_in][C_out][kh][kw]` transposed).
        weights: Vec<u8>,
        /// Bias bytes: int32 (int8 graphs) or f32, little-endian. Row-major: an int8
        /// convolution's folds the input zero point (`-zp_in * row sum`), a transposed
        /// convolution's does not; tap-major: see the format specification.
        bias: Vec<u8>,
        /// int8 only: `rows` int32 multipliers, then `rows` int32 shifts, then the int32 sums of
        /// each weight row (per phase for a tap-major transposed convolution), little-endian.
        requant: Vec<u8>,
        /// `None` or `Relu` (on int8 graphs only a record of the clamp).
        act: ActKind,
        /// int8 clamp.
        act_min: i8,
        /// int8 clamp.
        act_max: i8,
    },
    /// Nearest-neighbour upsampling (op 7), format version 2.
    Upsample {
        /// Input tensor, shaped `[C, H, W]`.
        input: u16,
        /// Output tensor, shaped `[C, H * factor_h, W * factor_w]`.
        output: u16,
        /// Vertical factor (stored as `stride_h`).
        factor_h: u8,
        /// Horizontal factor (stored as `stride_w`).
        factor_w: u8,
    },
    /// `a + b` (op 8), format version 2: residual connections.
    Add {
        /// First input.
        a: u16,
        /// Second input.
        b: u16,
        /// Output tensor (the same length as both inputs).
        output: u16,
        /// int8: six int32, little-endian: `mult_a, shift_a, mult_b, shift_b, mult_out,
        /// shift_out` (see [`crate::quant::add_i8`]); float: empty.
        requant: Vec<u8>,
        /// `None` or `Relu` (on int8 graphs only a record of the clamp).
        act: ActKind,
        /// int8 clamp.
        act_min: i8,
        /// int8 clamp.
        act_max: i8,
    },
}

impl NodeSpec {
    /// True when the node needs format version 3: tap-major convolution weights.
    pub fn needs_version_3(&self) -> bool {
        matches!(self, NodeSpec::Conv { layout: WeightLayout::TapMajor, .. })
    }

    /// True when the node needs format version 2: a convolution, upsampling or addition, or
    /// an activation code past tanh.
    pub fn needs_version_2(&self) -> bool {
        let act = match self {
            NodeSpec::Conv { .. } | NodeSpec::Upsample { .. } | NodeSpec::Add { .. } => return true,
            NodeSpec::Dense { act, .. } | NodeSpec::Activation { act, .. } => *act,
            NodeSpec::Lut { .. } | NodeSpec::Concat { .. } => ActKind::None,
        };
        act.code() > ActKind::Tanh.code()
    }
}

/// Model-level metadata to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaSpec {
    /// Latent size.
    pub latent: u16,
    /// Label classes (0 when unconditional).
    pub classes: u16,
    /// Image width (0 if not an image).
    pub width: u16,
    /// Image height.
    pub height: u16,
    /// Meaning of a decoder's output.
    pub output_kind: OutputKind,
    /// Encoder head arrangement.
    pub head: EncoderHead,
}

/// Everything a blob holds.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobSpec {
    /// Model kind.
    pub kind: ModelKind,
    /// Precision.
    pub precision: Precision,
    /// Planned arena bytes per sample (multiple of `ALIGN`).
    pub arena_bytes: u32,
    /// Tensor table.
    pub tensors: Vec<TensorSpec>,
    /// Nodes in execution order.
    pub nodes: Vec<NodeSpec>,
    /// Graph input tensor ids.
    pub inputs: Vec<u16>,
    /// Graph output tensor ids.
    pub outputs: Vec<u16>,
    /// Metadata.
    pub meta: MetaSpec,
}

fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Where the writer puts weight arrays and the data section: on cache-line boundaries. Rows
/// then start at the same offset within a line on every load of a blob placed at a 64-byte
/// aligned address; f16 rows of a 400-wide layer (800 bytes) measured 10% faster on x86 when
/// their 32-byte loads never split a line. Readers require only [`ALIGN`].
pub const WEIGHT_ALIGN: usize = 64;

/// Appends `bytes` to the data section at an offset that is a multiple of `align` (a multiple
/// of [`ALIGN`]); returns `(offset, len)`.
fn push_data(data: &mut Vec<u8>, bytes: &[u8], align: usize) -> (u32, u32) {
    if bytes.is_empty() {
        return (0, 0);
    }
    data.resize(data.len().div_ceil(align) * align, 0);
    let off = data.len();
    data.extend_from_slice(bytes);
    (off as u32, bytes.len() as u32)
}

/// The format version [`write()`] gives `spec`: the oldest that holds it, so that firmware
/// built before a version reads what it can. [`VERSION_1`] when it uses nothing of version 2
/// (every tensor flat, ops Dense, Lut, Activation and Concat, activations up to tanh);
/// [`VERSION_3`] with tap-major convolution weights; [`VERSION_2`] otherwise; [`VERSION_5`]
/// for an autoencoder and [`VERSION`] (6) for a classifier. A stored latent prior (version 4) is added to a written blob by
/// [`crate::attach_prior`].
pub fn version_for(spec: &BlobSpec) -> u16 {
    let shaped = spec.tensors.iter().any(|t| t.height != 0 || t.width != 0);
    if spec.kind == ModelKind::Classifier {
        VERSION
    } else if spec.kind == ModelKind::Autoencoder {
        VERSION_5
    } else if spec.nodes.iter().any(NodeSpec::needs_version_3) {
        VERSION_3
    } else if shaped || spec.nodes.iter().any(NodeSpec::needs_version_2) {
        VERSION_2
    } else {
        VERSION_1
    }
}

/// Serializes `spec`, as format version [`version_for`]`(spec)`. The result parses with
/// [`crate::Model::parse`] when the spec is consistent; the writer does not validate, the
/// parser does.
pub fn write(spec: &BlobSpec) -> Vec<u8> {
    let meta_off = HEADER_LEN;
    let io_off = align_up(meta_off + META_RECORD_LEN);
    let tensors_off = align_up(io_off + 2 * (spec.inputs.len() + spec.outputs.len()));
    let nodes_off = align_up(tensors_off + TENSOR_RECORD_LEN * spec.tensors.len());
    let data_off = (nodes_off + NODE_RECORD_LEN * spec.nodes.len()).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;

    let mut data = Vec::new();
    let mut node_bytes = vec![0u8; NODE_RECORD_LEN * spec.nodes.len()];
    for (i, node) in spec.nodes.iter().enumerate() {
        let r = &mut node_bytes[i * NODE_RECORD_LEN..(i + 1) * NODE_RECORD_LEN];
        put_u16(r, nrec::IN1, NO_TENSOR);
        match node {
            NodeSpec::Dense {
                input,
                output,
                rows,
                cols,
                weight_dtype,
                layout,
                weights,
                bias,
                requant,
                act,
                act_min,
                act_max,
            } => {
                r[nrec::OP] = OpCode::Dense.code();
                r[nrec::ACT] = act.code();
                r[nrec::WDTYPE] = weight_dtype.code();
                r[nrec::LAYOUT] = layout.code();
                put_u16(r, nrec::IN0, *input);
                put_u16(r, nrec::OUT, *output);
                put_u32(r, nrec::ROWS, *rows);
                put_u32(r, nrec::COLS, *cols);
                let arrays =
                    [(nrec::W_OFF, weights, WEIGHT_ALIGN), (nrec::B_OFF, bias, ALIGN), (nrec::Q_OFF, requant, ALIGN)];
                for (field, bytes, align) in arrays {
                    let (off, len) = push_data(&mut data, bytes, align);
                    put_u32(r, field, off);
                    put_u32(r, field + 4, len);
                }
                put_u32(r, nrec::ACT_MIN, *act_min as i32 as u32);
                put_u32(r, nrec::ACT_MAX, *act_max as i32 as u32);
            }
            NodeSpec::Lut { input, output, table } => {
                r[nrec::OP] = OpCode::Lut.code();
                put_u16(r, nrec::IN0, *input);
                put_u16(r, nrec::OUT, *output);
                let (off, len) = push_data(&mut data, table, ALIGN);
                put_u32(r, nrec::Q_OFF, off);
                put_u32(r, nrec::Q_LEN, len);
            }
            NodeSpec::Activation { input, output, act, alpha } => {
                r[nrec::OP] = OpCode::Activation.code();
                r[nrec::ACT] = act.code();
                put_u16(r, nrec::IN0, *input);
                put_u16(r, nrec::OUT, *output);
                put_u32(r, nrec::ALPHA, alpha.to_bits());
            }
            NodeSpec::Concat { a, b, output } => {
                r[nrec::OP] = OpCode::Concat.code();
                put_u16(r, nrec::IN0, *a);
                put_u16(r, nrec::IN1, *b);
                put_u16(r, nrec::OUT, *output);
            }
            NodeSpec::Conv {
                input,
                output,
                transposed,
                geometry,
                rows,
                cols,
                weight_dtype,
                layout,
                weights,
                bias,
                requant,
                act,
                act_min,
                act_max,
            } => {
                r[nrec::OP] = if *transposed { OpCode::ConvTranspose } else { OpCode::Conv }.code();
                r[nrec::ACT] = act.code();
                r[nrec::WDTYPE] = weight_dtype.code();
                r[nrec::LAYOUT] = layout.code();
                put_u16(r, nrec::IN0, *input);
                put_u16(r, nrec::OUT, *output);
                put_u16(r, nrec::GROUPS, geometry.groups);
                put_u32(r, nrec::ROWS, *rows);
                put_u32(r, nrec::COLS, *cols);
                let arrays =
                    [(nrec::W_OFF, weights, WEIGHT_ALIGN), (nrec::B_OFF, bias, ALIGN), (nrec::Q_OFF, requant, ALIGN)];
                for (field, bytes, align) in arrays {
                    let (off, len) = push_data(&mut data, bytes, align);
                    put_u32(r, field, off);
                    put_u32(r, field + 4, len);
                }
                put_u32(r, nrec::ACT_MIN, *act_min as i32 as u32);
                put_u32(r, nrec::ACT_MAX, *act_max as i32 as u32);
                r[nrec::GEOMETRY..nrec::GEOMETRY + 8].copy_from_slice(&geometry.to_bytes());
            }
            NodeSpec::Upsample { input, output, factor_h, factor_w } => {
                r[nrec::OP] = OpCode::Upsample.code();
                put_u16(r, nrec::IN0, *input);
                put_u16(r, nrec::OUT, *output);
                let geometry = ConvGeometry { stride_h: *factor_h, stride_w: *factor_w, ..ConvGeometry::default() };
                r[nrec::GEOMETRY..nrec::GEOMETRY + 8].copy_from_slice(&geometry.to_bytes());
            }
            NodeSpec::Add { a, b, output, requant, act, act_min, act_max } => {
                r[nrec::OP] = OpCode::Add.code();
                r[nrec::ACT] = act.code();
                put_u16(r, nrec::IN0, *a);
                put_u16(r, nrec::IN1, *b);
                put_u16(r, nrec::OUT, *output);
                let (off, len) = push_data(&mut data, requant, ALIGN);
                put_u32(r, nrec::Q_OFF, off);
                put_u32(r, nrec::Q_LEN, len);
                put_u32(r, nrec::ACT_MIN, *act_min as i32 as u32);
                put_u32(r, nrec::ACT_MAX, *act_max as i32 as u32);
            }
        }
    }
    data.resize(align_up(data.len()), 0);

    let total = data_off + data.len();
    let mut out = vec![0u8; total];
    out[..4].copy_from_slice(&MAGIC);
    put_u16(&mut out, hdr::VERSION, version_for(spec));
    put_u16(&mut out, hdr::HEADER_LEN, HEADER_LEN as u16);
    put_u32(&mut out, hdr::FILE_LEN, total as u32);
    out[hdr::KIND] = spec.kind.code();
    out[hdr::PRECISION] = spec.precision.code();
    put_u32(&mut out, hdr::ARENA_BYTES, spec.arena_bytes);
    put_u16(&mut out, hdr::N_TENSORS, spec.tensors.len() as u16);
    put_u16(&mut out, hdr::N_NODES, spec.nodes.len() as u16);
    put_u16(&mut out, hdr::N_INPUTS, spec.inputs.len() as u16);
    put_u16(&mut out, hdr::N_OUTPUTS, spec.outputs.len() as u16);
    put_u32(&mut out, hdr::TENSORS_OFF, tensors_off as u32);
    put_u32(&mut out, hdr::NODES_OFF, nodes_off as u32);
    put_u32(&mut out, hdr::IO_OFF, io_off as u32);
    put_u32(&mut out, hdr::DATA_OFF, data_off as u32);
    put_u32(&mut out, hdr::DATA_LEN, data.len() as u32);
    put_u32(&mut out, hdr::META_OFF, meta_off as u32);

    let m = &mut out[meta_off..meta_off + META_RECORD_LEN];
    put_u16(m, mrec::LATENT, spec.meta.latent);
    put_u16(m, mrec::CLASSES, spec.meta.classes);
    put_u16(m, mrec::WIDTH, spec.meta.width);
    put_u16(m, mrec::HEIGHT, spec.meta.height);
    m[mrec::OUTPUT_KIND] = spec.meta.output_kind.code();
    m[mrec::HEAD] = spec.meta.head.code();

    for (k, &t) in spec.inputs.iter().chain(&spec.outputs).enumerate() {
        put_u16(&mut out, io_off + 2 * k, t);
    }
    for (i, t) in spec.tensors.iter().enumerate() {
        let r = &mut out[tensors_off + i * TENSOR_RECORD_LEN..][..TENSOR_RECORD_LEN];
        r[trec::DTYPE] = t.dtype.code();
        put_u32(r, trec::LEN, t.len);
        put_u32(r, trec::ARENA_OFF, t.arena_offset);
        put_u32(r, trec::SCALE, t.scale.to_bits());
        put_u32(r, trec::ZERO_POINT, t.zero_point as u32);
        put_u16(r, trec::HEIGHT, t.height);
        put_u16(r, trec::WIDTH, t.width);
    }
    out[nodes_off..nodes_off + node_bytes.len()].copy_from_slice(&node_bytes);
    out[data_off..].copy_from_slice(&data);
    let crc = crc32(&out[super::CHECKSUM_START..]);
    put_u32(&mut out, hdr::CRC, crc);
    out
}

/// Fixed pseudo-random int8 weights (never -128), biases and requantization (multiplier 2^30,
/// `shift`) for a `rows x cols` layer, as the example blobs use them.
fn example_int8_arrays(rng: &mut crate::rng::Rng, rows: u32, cols: u32, shift: i32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let weights: Vec<u8> = (0..rows * cols).map(|_| (rng.below(255) as i32 - 127) as i8 as u8).collect();
    let mut bias = Vec::new();
    let (mut mults, mut shifts, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    for row in weights.chunks_exact(cols as usize) {
        bias.extend_from_slice(&(rng.below(2001) as i32 - 1000).to_le_bytes());
        mults.extend_from_slice(&(1i32 << 30).to_le_bytes());
        shifts.extend_from_slice(&shift.to_le_bytes());
        sums.extend_from_slice(&row.iter().map(|&w| w as i8 as i32).sum::<i32>().to_le_bytes());
    }
    (weights, bias, [mults, shifts, sums].concat())
}

/// An example int8 Dense node `input -> output` of `rows x cols` with fixed pseudo-random
/// arrays ([`example_int8_arrays`]), clamped at the output zero point when `relu`.
#[allow(clippy::too_many_arguments)]
fn example_dense(
    rng: &mut crate::rng::Rng,
    input: u16,
    output: u16,
    rows: u32,
    cols: u32,
    relu: bool,
    out_zp: i32,
    shift: i32,
) -> NodeSpec {
    let (weights, bias, requant) = example_int8_arrays(rng, rows, cols, shift);
    NodeSpec::Dense {
        input,
        output,
        rows,
        cols,
        weight_dtype: DType::I8,
        layout: WeightLayout::RowMajor,
        weights,
        bias,
        requant,
        act: ActKind::None,
        act_min: if relu { out_zp as i8 } else { -128 },
        act_max: 127,
    }
}

/// The 256 codes of a sigmoid table from codes of scale `scale` (zero point 0) to pixels.
fn example_sigmoid_table(scale: f32) -> [u8; 256] {
    core::array::from_fn(|i| {
        let x = (i as f32 - 128.0) * scale;
        let p = 1.0 / (1.0 + libm::expf(-x));
        (libm::roundf(p * 255.0) as i32 - 128) as i8 as u8
    })
}

/// A small int8 decoder (z = 2 -> 8 ReLU -> 16 sigmoid pixels) with fixed pseudo-random
/// weights, for documentation examples and format tests.
pub fn example_decoder() -> Vec<u8> {
    let mut rng = crate::rng::Rng::new(1);
    let mut dense = |input, output, rows, cols, relu: bool, out_zp: i32| {
        example_dense(&mut rng, input, output, rows, cols, relu, out_zp, -6)
    };
    let t = |len: u32, arena_offset: u32, scale: f32, zero_point: i32| {
        TensorSpec::flat(DType::I8, len, arena_offset, scale, zero_point)
    };
    let nodes = vec![
        dense(0, 1, 8, 2, true, -128),
        dense(1, 2, 16, 8, false, 0),
        NodeSpec::Lut { input: 2, output: 3, table: example_sigmoid_table(0.05) },
    ];
    write(&BlobSpec {
        kind: ModelKind::Decoder,
        precision: Precision::Int8,
        arena_bytes: 48,
        tensors: vec![t(2, 0, 0.03, 0), t(8, 16, 0.05, -128), t(16, 32, 0.05, 0), t(16, 0, 1.0 / 255.0, -128)],
        nodes,
        inputs: vec![0],
        outputs: vec![3],
        meta: MetaSpec {
            latent: 2,
            classes: 0,
            width: 4,
            height: 4,
            output_kind: OutputKind::Bernoulli,
            head: EncoderHead::None,
        },
    })
}

/// A small int8 two-layer MLP of `kind` with fixed pseudo-random weights from `seed`:
/// `widths[0]` inputs in [0, 1] (pixel quantization) -> `widths[1]` (ReLU) -> `widths[2]`
/// outputs of scale `out_scale`, each tensor in its own 16-byte slot of a 48-byte arena (so an
/// autoencoder's input stays intact: its score reads it after the run).
fn example_mlp(kind: ModelKind, seed: u64, widths: [u32; 3], out_scale: f32, meta: MetaSpec) -> Vec<u8> {
    let mut rng = crate::rng::Rng::new(seed);
    let [input, hidden, output] = widths;
    let nodes = vec![
        example_dense(&mut rng, 0, 1, hidden, input, true, -128, -8),
        example_dense(&mut rng, 1, 2, output, hidden, false, 0, -6),
    ];
    write(&BlobSpec {
        kind,
        precision: Precision::Int8,
        arena_bytes: 48,
        tensors: vec![
            TensorSpec::flat(DType::I8, input, 0, 1.0 / 255.0, -128),
            TensorSpec::flat(DType::I8, hidden, 16, 0.05, -128),
            TensorSpec::flat(DType::I8, output, 32, out_scale, 0),
        ],
        nodes,
        inputs: vec![0],
        outputs: vec![2],
        meta,
    })
}

/// A small int8 autoencoder (format version 5) with fixed pseudo-random weights: 8 features
/// in [0, 1] -> 3 (ReLU) -> 8 features. For documentation examples and format tests.
pub fn example_autoencoder() -> Vec<u8> {
    let meta =
        MetaSpec { latent: 3, classes: 0, width: 0, height: 0, output_kind: OutputKind::Raw, head: EncoderHead::None };
    example_mlp(ModelKind::Autoencoder, 3, [8, 3, 8], 0.02, meta)
}

/// A small int8 classifier (format version 6) with fixed pseudo-random weights: a 4 x 4 image
/// in [0, 1] -> 8 (ReLU) -> 3 class logits. For documentation examples and format tests.
pub fn example_classifier() -> Vec<u8> {
    let meta =
        MetaSpec { latent: 0, classes: 3, width: 4, height: 4, output_kind: OutputKind::Raw, head: EncoderHead::None };
    example_mlp(ModelKind::Classifier, 9, [16, 8, 3], 0.1, meta)
}

/// A small int8 convolutional decoder (format version 2) with fixed pseudo-random weights:
/// z = 4 -> Dense to `[4, 3, 3]` (ReLU) -> ConvTranspose (kernel 3, stride 2, padding 1, an
/// output padding of 1) to `[1, 6, 6]` -> sigmoid table: 6 x 6 pixels. For documentation
/// examples and format tests.
pub fn example_conv_decoder() -> Vec<u8> {
    let mut rng = crate::rng::Rng::new(2);
    let (weights, bias, requant) = example_int8_arrays(&mut rng, 36, 4, -6);
    let dense = NodeSpec::Dense {
        input: 0,
        output: 1,
        rows: 36,
        cols: 4,
        weight_dtype: DType::I8,
        layout: WeightLayout::RowMajor,
        weights,
        bias,
        requant,
        act: ActKind::Relu,
        act_min: -128,
        act_max: 127,
    };
    let (weights, bias, requant) = example_int8_arrays(&mut rng, 1, 4 * 3 * 3, -8);
    let conv_transpose = NodeSpec::Conv {
        input: 1,
        output: 2,
        transposed: true,
        geometry: ConvGeometry::square(3, 2, 1),
        rows: 1,
        cols: 4 * 3 * 3,
        weight_dtype: DType::I8,
        layout: WeightLayout::RowMajor,
        weights,
        bias,
        requant,
        act: ActKind::None,
        act_min: -128,
        act_max: 127,
    };
    let lut = NodeSpec::Lut { input: 2, output: 3, table: example_sigmoid_table(0.04) };
    write(&BlobSpec {
        kind: ModelKind::Decoder,
        precision: Precision::Int8,
        arena_bytes: 112,
        tensors: vec![
            TensorSpec::flat(DType::I8, 4, 0, 0.03, 0),
            TensorSpec::shaped(DType::I8, (4, 3, 3), 16, 0.05, -128),
            TensorSpec::shaped(DType::I8, (1, 6, 6), 64, 0.04, 0),
            TensorSpec::shaped(DType::I8, (1, 6, 6), 64, 1.0 / 255.0, -128),
        ],
        nodes: vec![dense, conv_transpose, lut],
        inputs: vec![0],
        outputs: vec![3],
        meta: MetaSpec {
            latent: 4,
            classes: 0,
            width: 6,
            height: 6,
            output_kind: OutputKind::Bernoulli,
            head: EncoderHead::None,
        },
    })
}
