//! A parsed blob: validation up front (`Model::parse`), then allocation-free execution in a
//! caller's arena.
//!
//! The model keeps only the blob slice and a few header numbers; tensor and node records are
//! decoded from the blob when needed, which costs a handful of loads per node and no RAM.
//!
//! `mod.rs` holds the types, the header checks of `parse` and the record decoding; `validate`
//! checks every tensor, node and the graph before `parse` returns; `exec` stages inputs, runs
//! the nodes through a kernel table and reads outputs.

mod exec;
mod validate;

use core::ops::Range;

use crate::error::Error;
use crate::format::{
    self, crc32, hdr, mrec, nrec, read_f32, read_i32, read_u16, read_u32, trec, ActKind, ConvGeometry, DType,
    EncoderHead, ModelKind, OpCode, OutputKind, Precision, WeightLayout, ALIGN, HEADER_LEN, MAX_IO, MAX_NODES,
    MAX_TENSORS, META_RECORD_LEN, NODE_RECORD_LEN, NO_TENSOR, TENSOR_RECORD_LEN,
};
use crate::kernels::{ConvDims, Shape};
use crate::prior::Prior;

/// One tensor: an activation of `len` elements per sample, at `arena_offset` in the arena; a
/// flat vector, or (format version 2) `[channels, height, width]` in NCHW order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorInfo {
    /// Element type (`F32` or `I8`).
    pub dtype: DType,
    /// Elements per sample.
    pub len: usize,
    /// Byte offset in the arena for batch 1 (scaled by the batch size for batches).
    pub arena_offset: usize,
    /// Quantization scale (int8 tensors).
    pub scale: f32,
    /// Quantization zero point (int8 tensors).
    pub zero_point: i32,
    /// Rows per channel; 0 for a flat vector.
    pub height: usize,
    /// Values per row; 0 for a flat vector.
    pub width: usize,
}

impl TensorInfo {
    /// Bytes per sample.
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size()
    }

    /// Channels: `len / (height * width)` for a shaped tensor, `len` for a flat vector (which
    /// is `len` channels of 1 x 1).
    pub fn channels(&self) -> usize {
        match self.height * self.width {
            0 => self.len,
            plane => self.len / plane,
        }
    }

    /// `[channels, height, width]` of a shaped tensor; `None` for a flat vector.
    pub fn shape(&self) -> Option<Shape> {
        (self.height > 0 && self.width > 0).then(|| Shape::new(self.channels(), self.height, self.width))
    }

    /// True when int8 codes are display pixels: `pixel = q + 128` (scale 1/255, zero point -128).
    pub fn is_pixel_quantized(&self) -> bool {
        self.dtype == DType::I8 && self.zero_point == -128 && self.scale == PIXEL_SCALE
    }
}

/// The int8 quantization of [0, 1] pixels: code `q` is pixel `q + 128`.
pub const PIXEL_SCALE: f32 = 1.0 / 255.0;

/// What the blob says about the model as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Latent size (z).
    pub latent: usize,
    /// Number of label classes for conditional models, 0 otherwise.
    pub classes: usize,
    /// Image width, 0 when not an image.
    pub width: usize,
    /// Image height, 0 when not an image.
    pub height: usize,
    /// What a decoder's output means.
    pub output_kind: OutputKind,
    /// How an encoder gives mu and log-variance.
    pub head: EncoderHead,
}

/// Operation of a node, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Fully connected layer.
    Dense,
    /// int8 table lookup.
    Lut,
    /// f32 activation.
    Activation,
    /// Concatenation.
    Concat,
    /// 2-D convolution (also grouped and depthwise).
    Conv,
    /// 2-D transposed convolution.
    ConvTranspose,
    /// Nearest-neighbour upsampling by integer factors.
    Upsample,
    /// Elementwise sum of two tensors (residual connections).
    Add,
}

/// One node record, decoded. Data ranges are byte ranges in the blob.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Operation.
    pub op: Op,
    /// Activation (float Dense, Conv, Add: None or ReLU; Activation nodes: the function).
    pub act: ActKind,
    /// Weight element type (Dense).
    pub weight_dtype: DType,
    /// Weight layout.
    pub layout: WeightLayout,
    /// First input tensor.
    pub input: u16,
    /// Second input tensor (Concat, Add), or `None`.
    pub input2: Option<u16>,
    /// Output tensor.
    pub output: u16,
    /// Output channels (Dense, Conv, ConvTranspose).
    pub rows: usize,
    /// Input features (Dense); weights per output channel (Conv, ConvTranspose).
    pub cols: usize,
    /// Weights.
    pub weights: Range<usize>,
    /// Bias.
    pub bias: Range<usize>,
    /// Requantization parameters (int8 Dense, Conv, ConvTranspose, Add) or the table (Lut).
    pub aux: Range<usize>,
    /// Leaky-ReLU slope.
    pub alpha: f32,
    /// int8 clamp.
    pub act_min: i8,
    /// int8 clamp.
    pub act_max: i8,
    /// Kernel, strides, dilations, padding and groups (Conv, ConvTranspose); the factors in
    /// `stride_h` and `stride_w` (Upsample); all zero for the other ops.
    pub geometry: ConvGeometry,
}

/// A validated blob. Cheap to copy; borrows the bytes (zero-copy).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    blob: &'a [u8],
    version: u16,
    kind: ModelKind,
    precision: Precision,
    arena_bytes: usize,
    n_tensors: usize,
    n_nodes: usize,
    n_inputs: usize,
    n_outputs: usize,
    tensors_off: usize,
    nodes_off: usize,
    io_off: usize,
    data_start: usize,
    data_len: usize,
    meta: Meta,
    /// Where the meta record starts (read by the prior writer, behind `alloc`).
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    meta_off: usize,
    /// End of the last section but the prior.
    #[cfg_attr(not(feature = "alloc"), allow(dead_code))]
    body_end: usize,
    /// The prior section (format version 4): offset, length, components (0: none).
    prior: (usize, usize, usize),
}

fn u16_at(b: &[u8], off: usize, field: &'static str) -> Result<u16, Error> {
    read_u16(b, off).ok_or(Error::BadHeader { field })
}

fn u32_at(b: &[u8], off: usize, field: &'static str) -> Result<usize, Error> {
    read_u32(b, off).map(|v| v as usize).ok_or(Error::BadHeader { field })
}

/// `off..off+len` if it lies inside `0..limit`, is aligned, and doesn't overflow.
fn section(off: usize, len: usize, limit: usize, name: &'static str) -> Result<Range<usize>, Error> {
    let end = off.checked_add(len).ok_or(Error::BadSection { section: name })?;
    if !off.is_multiple_of(ALIGN) || end > limit || off < HEADER_LEN {
        return Err(Error::BadSection { section: name });
    }
    Ok(off..end)
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end && !a.is_empty() && !b.is_empty()
}

impl<'a> Model<'a> {
    /// Validates `blob` completely: magic, version, length, checksum, every section, tensor and
    /// node, the graph order and the arena plan. Returns an error, never panics, on any input.
    pub fn parse(blob: &'a [u8]) -> Result<Self, Error> {
        if blob.len() < HEADER_LEN {
            return Err(Error::TooShort { len: blob.len() });
        }
        if blob[..4] != format::MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16_at(blob, hdr::VERSION, "version")?;
        if !matches!(
            version,
            format::VERSION_1
                | format::VERSION_2
                | format::VERSION_3
                | format::VERSION_4
                | format::VERSION_5
                | format::VERSION
        ) {
            return Err(Error::UnsupportedVersion { found: version });
        }
        if u16_at(blob, hdr::HEADER_LEN, "header_len")? as usize != HEADER_LEN {
            return Err(Error::BadHeader { field: "header_len" });
        }
        let file_len = u32_at(blob, hdr::FILE_LEN, "file_len")?;
        if file_len != blob.len() {
            return Err(Error::LengthMismatch { header: file_len as u32, actual: blob.len() });
        }
        let stored = u32_at(blob, hdr::CRC, "crc")? as u32;
        let computed = crc32(&blob[format::CHECKSUM_START..]);
        if stored != computed {
            return Err(Error::ChecksumMismatch { stored, computed });
        }

        let kind = ModelKind::from_code(blob[hdr::KIND])
            .filter(|&k| match k {
                ModelKind::Autoencoder => version >= format::VERSION_5,
                ModelKind::Classifier => version >= format::VERSION,
                _ => true,
            })
            .ok_or(Error::BadHeader { field: "kind" })?;
        let precision = Precision::from_code(blob[hdr::PRECISION]).ok_or(Error::BadHeader { field: "precision" })?;
        let built = match precision {
            Precision::Int8 => true,
            Precision::F16 => cfg!(feature = "f16"),
            Precision::F32 => cfg!(feature = "f32"),
        };
        if !built {
            return Err(Error::PrecisionNotBuilt { precision });
        }
        if u16_at(blob, hdr::FLAGS, "flags")? != 0 {
            return Err(Error::BadHeader { field: "flags" });
        }
        let arena_bytes = u32_at(blob, hdr::ARENA_BYTES, "arena_bytes")?;
        if arena_bytes % ALIGN != 0 || arena_bytes > format::MAX_ARENA_BYTES {
            return Err(Error::BadHeader { field: "arena_bytes" });
        }
        let n_tensors = u16_at(blob, hdr::N_TENSORS, "n_tensors")? as usize;
        let n_nodes = u16_at(blob, hdr::N_NODES, "n_nodes")? as usize;
        let n_inputs = u16_at(blob, hdr::N_INPUTS, "n_inputs")? as usize;
        let n_outputs = u16_at(blob, hdr::N_OUTPUTS, "n_outputs")? as usize;
        if n_tensors == 0 || n_tensors > MAX_TENSORS {
            return Err(Error::BadHeader { field: "n_tensors" });
        }
        if n_nodes == 0 || n_nodes > MAX_NODES {
            return Err(Error::BadHeader { field: "n_nodes" });
        }
        if n_inputs == 0 || n_inputs > MAX_IO {
            return Err(Error::BadHeader { field: "n_inputs" });
        }
        if n_outputs == 0 || n_outputs > MAX_IO {
            return Err(Error::BadHeader { field: "n_outputs" });
        }
        let len = blob.len();
        let meta_s = section(u32_at(blob, hdr::META_OFF, "meta_off")?, META_RECORD_LEN, len, "meta")?;
        let io_s = section(u32_at(blob, hdr::IO_OFF, "io_off")?, 2 * (n_inputs + n_outputs), len, "io")?;
        let tensors_s =
            section(u32_at(blob, hdr::TENSORS_OFF, "tensors_off")?, n_tensors * TENSOR_RECORD_LEN, len, "tensors")?;
        let nodes_s = section(u32_at(blob, hdr::NODES_OFF, "nodes_off")?, n_nodes * NODE_RECORD_LEN, len, "nodes")?;
        let data_s =
            section(u32_at(blob, hdr::DATA_OFF, "data_off")?, u32_at(blob, hdr::DATA_LEN, "data_len")?, len, "data")?;
        let m = &blob[meta_s.clone()];
        let prior_components =
            if version >= format::VERSION_4 { read_u16(m, mrec::PRIOR_COMPONENTS).unwrap_or(0) as usize } else { 0 };
        let prior_s = if prior_components > 0 {
            let off = read_u32(m, mrec::PRIOR_OFF).unwrap_or(0) as usize;
            section(off, read_u32(m, mrec::PRIOR_LEN).unwrap_or(0) as usize, len, "prior")?
        } else {
            0..0
        };
        let all = [&meta_s, &io_s, &tensors_s, &nodes_s, &data_s, &prior_s];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if overlaps(a, b) {
                    return Err(Error::BadSection { section: "overlap" });
                }
            }
        }

        let meta = Meta {
            latent: read_u16(m, mrec::LATENT).unwrap_or(0) as usize,
            classes: read_u16(m, mrec::CLASSES).unwrap_or(0) as usize,
            width: read_u16(m, mrec::WIDTH).unwrap_or(0) as usize,
            height: read_u16(m, mrec::HEIGHT).unwrap_or(0) as usize,
            output_kind: OutputKind::from_code(m[mrec::OUTPUT_KIND])
                .ok_or(Error::BadHeader { field: "meta.output_kind" })?,
            head: EncoderHead::from_code(m[mrec::HEAD]).ok_or(Error::BadHeader { field: "meta.head" })?,
        };

        let model = Model {
            blob,
            version,
            kind,
            precision,
            arena_bytes,
            n_tensors,
            n_nodes,
            n_inputs,
            n_outputs,
            tensors_off: tensors_s.start,
            nodes_off: nodes_s.start,
            io_off: io_s.start,
            data_start: data_s.start,
            data_len: data_s.len(),
            meta,
            meta_off: meta_s.start,
            body_end: all[..5].iter().map(|s| s.end).max().unwrap_or(HEADER_LEN),
            prior: (prior_s.start, prior_s.len(), prior_components),
        };
        model.validate_tensors()?;
        model.validate_nodes()?;
        model.validate_graph()?;
        model.validate_kind()?;
        model.validate_prior()?;
        Ok(model)
    }

    fn data_range(&self, off: u32, len: u32, index: u16, field: &'static str) -> Result<Range<usize>, Error> {
        let (off, len) = (off as usize, len as usize);
        let bad = Error::BadNode { index, field };
        if len == 0 {
            return Ok(self.data_start..self.data_start);
        }
        let end = off.checked_add(len).ok_or(bad)?;
        if off % ALIGN != 0 || end > self.data_len {
            return Err(bad);
        }
        Ok(self.data_start + off..self.data_start + end)
    }

    fn tensor_record(&self, i: usize) -> &'a [u8] {
        let start = self.tensors_off + i * TENSOR_RECORD_LEN;
        self.blob.get(start..start + TENSOR_RECORD_LEN).unwrap_or(&[])
    }

    fn node_record(&self, i: usize) -> &'a [u8] {
        let start = self.nodes_off + i * NODE_RECORD_LEN;
        self.blob.get(start..start + NODE_RECORD_LEN).unwrap_or(&[])
    }

    /// Tensor id of graph input `k` (k < n_inputs) or output `k - n_inputs`.
    fn io(&self, k: usize) -> u16 {
        read_u16(self.blob, self.io_off + 2 * k).unwrap_or(NO_TENSOR)
    }

    /// Tensor `t`, or `None` when out of range or malformed.
    pub fn tensor(&self, t: u16) -> Option<TensorInfo> {
        if t as usize >= self.n_tensors {
            return None;
        }
        let r = self.tensor_record(t as usize);
        Some(TensorInfo {
            dtype: DType::from_code(*r.get(trec::DTYPE)?)?,
            len: read_u32(r, trec::LEN)? as usize,
            arena_offset: read_u32(r, trec::ARENA_OFF)? as usize,
            scale: read_f32(r, trec::SCALE)?,
            zero_point: read_i32(r, trec::ZERO_POINT)?,
            height: read_u16(r, trec::HEIGHT)? as usize,
            width: read_u16(r, trec::WIDTH)? as usize,
        })
    }

    fn decode_node(&self, i: usize) -> Result<NodeView, Error> {
        let index = i as u16;
        let bad = |field| Error::BadNode { index, field };
        let r = self.node_record(i);
        if r.len() != NODE_RECORD_LEN {
            return Err(bad("record"));
        }
        let op = match OpCode::from_code(r[nrec::OP]).ok_or(bad("op"))? {
            OpCode::Dense => Op::Dense,
            OpCode::Lut => Op::Lut,
            OpCode::Activation => Op::Activation,
            OpCode::Concat => Op::Concat,
            OpCode::Conv => Op::Conv,
            OpCode::ConvTranspose => Op::ConvTranspose,
            OpCode::Upsample => Op::Upsample,
            OpCode::Add => Op::Add,
        };
        let mut geometry = [0u8; 8];
        geometry.copy_from_slice(&r[nrec::GEOMETRY..nrec::GEOMETRY + 8]);
        let u32f = |off| read_u32(r, off).unwrap_or(0);
        let in2 = read_u16(r, nrec::IN1).unwrap_or(NO_TENSOR);
        let act_min = read_i32(r, nrec::ACT_MIN).unwrap_or(0);
        let act_max = read_i32(r, nrec::ACT_MAX).unwrap_or(0);
        if !(-128..=127).contains(&act_min) || !(-128..=127).contains(&act_max) {
            return Err(bad("act_min/act_max"));
        }
        Ok(NodeView {
            op,
            act: ActKind::from_code(r[nrec::ACT]).ok_or(bad("act"))?,
            weight_dtype: DType::from_code(r[nrec::WDTYPE]).ok_or(bad("weight_dtype"))?,
            layout: WeightLayout::from_code(r[nrec::LAYOUT]).ok_or(bad("layout"))?,
            input: read_u16(r, nrec::IN0).unwrap_or(NO_TENSOR),
            input2: if in2 == NO_TENSOR { None } else { Some(in2) },
            output: read_u16(r, nrec::OUT).unwrap_or(NO_TENSOR),
            rows: u32f(nrec::ROWS) as usize,
            cols: u32f(nrec::COLS) as usize,
            weights: self.data_range(u32f(nrec::W_OFF), u32f(nrec::W_LEN), index, "weights")?,
            bias: self.data_range(u32f(nrec::B_OFF), u32f(nrec::B_LEN), index, "bias")?,
            aux: self.data_range(u32f(nrec::Q_OFF), u32f(nrec::Q_LEN), index, "aux")?,
            alpha: read_f32(r, nrec::ALPHA).unwrap_or(f32::NAN),
            act_min: act_min as i8,
            act_max: act_max as i8,
            // Version 1 reserved these bytes without checking them: they mean nothing there.
            geometry: if self.version == format::VERSION_1 {
                ConvGeometry::default()
            } else {
                ConvGeometry::from_bytes(geometry, read_u16(r, nrec::GROUPS).unwrap_or(0))
            },
        })
    }

    /// Node `i` (in execution order), decoded.
    pub fn node(&self, i: usize) -> Option<NodeView> {
        if i >= self.n_nodes {
            return None;
        }
        self.decode_node(i).ok()
    }

    /// Bytes of the blob (for checks such as `inspect`).
    pub fn blob(&self) -> &'a [u8] {
        self.blob
    }

    /// Model kind.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Precision of weights and activations.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Model-level metadata.
    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.n_nodes
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.n_tensors
    }

    /// Number of graph inputs.
    pub fn input_count(&self) -> usize {
        self.n_inputs
    }

    /// Number of graph outputs.
    pub fn output_count(&self) -> usize {
        self.n_outputs
    }

    /// Graph input `k`.
    pub fn input(&self, k: usize) -> Option<TensorInfo> {
        if k >= self.n_inputs {
            return None;
        }
        self.tensor(self.io(k))
    }

    /// Graph output `k`.
    pub fn output(&self, k: usize) -> Option<TensorInfo> {
        if k >= self.n_outputs {
            return None;
        }
        self.tensor(self.io(self.n_inputs + k))
    }

    /// True when tensor `t` is stored channels-last (NHWC, see [`crate::kernels::Shape`]) in the
    /// arena: a shaped tensor of more than one channel that a Conv or ConvTranspose writes and
    /// only Conv and ConvTranspose nodes read, and no graph output. Then no other op sees its
    /// layout, and the runtime picks the one its convolutions run fastest on, whatever the blob;
    /// graph inputs and outputs, and every other tensor, stay NCHW as the format says.
    pub fn channels_last(&self, t: u16) -> bool {
        let conv = |op| matches!(op, Op::Conv | Op::ConvTranspose);
        let shaped = self.tensor(t).is_some_and(|i| i.shape().is_some_and(|s| s.channels > 1));
        if !shaped || (0..self.n_outputs).any(|k| self.io(self.n_inputs + k) == t) {
            return false;
        }
        let (mut written, mut read) = (false, false);
        for n in (0..self.n_nodes).filter_map(|i| self.decode_node(i).ok()) {
            if n.output == t {
                written = conv(n.op);
            }
            if n.input == t || n.input2 == Some(t) {
                if !conv(n.op) {
                    return false;
                }
                read = true;
            }
        }
        written && read
    }

    /// Bytes of weights, biases and tables (the part of the blob that scales with the model).
    pub fn weight_bytes(&self) -> usize {
        self.data_len
    }

    /// Arena bytes for one sample, including alignment slack: size a buffer with this.
    pub fn arena_size(&self) -> usize {
        self.arena_bytes + ALIGN
    }

    /// Arena bytes for `batch` samples run together.
    pub fn arena_size_for_batch(&self, batch: usize) -> Option<usize> {
        self.arena_bytes.checked_mul(batch)?.checked_add(ALIGN)
    }

    /// The blob's format version: 1 (dense models), 2 (shaped models), 3 (tap-major
    /// convolution weights) or 4 (a stored latent prior).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// The decoder's stored latent prior (format version 4), if the blob has one: what
    /// [`crate::Decoder::sample`] draws z from.
    pub fn prior(&self) -> Option<Prior<'a>> {
        let (off, len, components) = self.prior;
        if components == 0 {
            return None;
        }
        // `validate_prior` checked the section at parse time: sampling does not check it again.
        Some(Prior::validated(self.blob.get(off..off + len)?, components, self.meta.latent))
    }

    /// End of the last section other than the prior (the writer's data section).
    #[cfg(feature = "alloc")]
    pub(crate) fn body_end(&self) -> usize {
        self.body_end
    }

    /// Where the meta record starts.
    #[cfg(feature = "alloc")]
    pub(crate) fn meta_offset(&self) -> usize {
        self.meta_off
    }

    /// Multiply-accumulates per sample, summed over the nodes as [`Self::node_macs`] counts
    /// them (saturating at `usize::MAX`).
    pub fn macs(&self) -> usize {
        let total = (0..self.n_nodes).filter_map(|i| self.node_macs(i)).fold(0u64, u64::saturating_add);
        usize::try_from(total).unwrap_or(usize::MAX)
    }

    /// Multiply-accumulates per sample of node `i` (`None` past the last node): `rows * cols`
    /// for Dense; for Conv and ConvTranspose only the taps that reach the input
    /// ([`crate::kernels::ConvDims::macs`]: padding and a transposed convolution's inserted
    /// zeros are not operations, and the kernels do not perform them); 0 for the other ops.
    ///
    /// ```
    /// # let blob = tinyvae::format::write::example_conv_decoder();
    /// let model = tinyvae::Model::parse(&blob)?;
    /// // Dense 4 -> 36, then a transposed convolution (kernel 3, stride 2, padding 1) from
    /// // 4 x 3 x 3 to 1 x 6 x 6 reaches the input with 1, 2, 1, 2, 1, 1 taps per output row
    /// // (the last row is ONNX's output_padding), 8 in all, and as many per column.
    /// assert_eq!(model.node_macs(0), Some(4 * 36));
    /// assert_eq!(model.node_macs(1), Some(4 * 8 * 8));
    /// assert_eq!(model.macs(), 4 * 36 + 4 * 8 * 8);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn node_macs(&self, i: usize) -> Option<u64> {
        let n = self.node(i)?;
        Some(match n.op {
            Op::Dense => n.rows as u64 * n.cols as u64,
            Op::Conv | Op::ConvTranspose => self.conv_dims(&n).map_or(0, |d| d.macs(n.op == Op::ConvTranspose)),
            Op::Lut | Op::Activation | Op::Concat | Op::Upsample | Op::Add => 0,
        })
    }

    /// The checked sizes of a Conv or ConvTranspose node, from its geometry and its tensors'
    /// shapes; `None` for other nodes or when they do not hold together.
    pub(crate) fn conv_dims(&self, n: &NodeView) -> Option<ConvDims> {
        let transposed = match n.op {
            Op::Conv => false,
            Op::ConvTranspose => true,
            _ => return None,
        };
        let (x, y) = (self.tensor(n.input)?.shape()?, self.tensor(n.output)?.shape()?);
        ConvDims::new(&n.geometry, x, y, transposed)
    }
}

/// Bytes of tensor `t` in the working arena for `batch` samples.
fn arena_range(t: &TensorInfo, batch: usize) -> Range<usize> {
    let start = t.arena_offset * batch;
    start..start + t.bytes() * batch
}
