//! A parsed blob: validation up front (`Model::parse`), then allocation-free execution in a
//! caller's arena.
//!
//! The model keeps only the blob slice and a few header numbers; tensor and node records are
//! decoded from the blob when needed, which costs a handful of loads per node and no RAM.

use core::ops::Range;

use crate::error::Error;
use crate::format::{
    self, crc32, hdr, mrec, nrec, read_f32, read_i32, read_u16, read_u32, trec, ActKind, DType, EncoderHead, ModelKind,
    OpCode, OutputKind, Precision, WeightLayout, ALIGN, HEADER_LEN, MAX_IO, MAX_NODES, MAX_TENSORS, MAX_TENSOR_LEN,
    META_RECORD_LEN, NODE_RECORD_LEN, NO_TENSOR, TENSOR_RECORD_LEN,
};
use crate::kernels::{DenseFloat, DenseI8, Kernels};
use crate::quant::{dequantize_i8, to_pixel};

/// One tensor: an activation vector of `len` elements per sample, at `arena_offset` in the arena.
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
}

impl TensorInfo {
    /// Bytes per sample.
    pub fn bytes(&self) -> usize {
        self.len * self.dtype.size()
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
}

/// One node record, decoded. Data ranges are byte ranges in the blob.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Operation.
    pub op: Op,
    /// Activation (float Dense: None or ReLU; Activation nodes: the function).
    pub act: ActKind,
    /// Weight element type (Dense).
    pub weight_dtype: DType,
    /// Weight layout (Dense).
    pub layout: WeightLayout,
    /// First input tensor.
    pub input: u16,
    /// Second input tensor (Concat), or `None`.
    pub input2: Option<u16>,
    /// Output tensor.
    pub output: u16,
    /// Output channels (Dense).
    pub rows: usize,
    /// Input features (Dense).
    pub cols: usize,
    /// Weights.
    pub weights: Range<usize>,
    /// Bias.
    pub bias: Range<usize>,
    /// Requantization parameters (int8 Dense) or the table (Lut).
    pub aux: Range<usize>,
    /// Leaky-ReLU slope.
    pub alpha: f32,
    /// int8 clamp.
    pub act_min: i8,
    /// int8 clamp.
    pub act_max: i8,
}

/// A validated blob. Cheap to copy; borrows the bytes (zero-copy).
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    blob: &'a [u8],
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
        if version != format::VERSION {
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

        let kind = ModelKind::from_code(blob[hdr::KIND]).ok_or(Error::BadHeader { field: "kind" })?;
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
        if arena_bytes % ALIGN != 0 || arena_bytes > (1 << 30) {
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
        let all = [&meta_s, &io_s, &tensors_s, &nodes_s, &data_s];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                if overlaps(a, b) {
                    return Err(Error::BadSection { section: "overlap" });
                }
            }
        }

        let m = &blob[meta_s.clone()];
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
        };
        model.validate_tensors()?;
        model.validate_nodes()?;
        model.validate_graph()?;
        model.validate_kind()?;
        Ok(model)
    }

    fn validate_tensors(&self) -> Result<(), Error> {
        for i in 0..self.n_tensors {
            let index = i as u16;
            let r = self.tensor_record(i);
            let bad = |field| Error::BadTensor { index, field };
            let dtype = DType::from_code(r[trec::DTYPE]).ok_or(bad("dtype"))?;
            if dtype == DType::F16 {
                return Err(bad("dtype"));
            }
            let len = read_u32(r, trec::LEN).unwrap_or(0) as usize;
            if len == 0 || len > MAX_TENSOR_LEN {
                return Err(bad("len"));
            }
            let off = read_u32(r, trec::ARENA_OFF).unwrap_or(u32::MAX) as usize;
            if !off.is_multiple_of(ALIGN) || off.saturating_add(len * dtype.size()) > self.arena_bytes {
                return Err(bad("arena_offset"));
            }
            if dtype == DType::I8 {
                let scale = read_f32(r, trec::SCALE).unwrap_or(f32::NAN);
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(bad("scale"));
                }
                let zp = read_i32(r, trec::ZERO_POINT).unwrap_or(i32::MAX);
                if !(-128..=127).contains(&zp) {
                    return Err(bad("zero_point"));
                }
            }
        }
        Ok(())
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

    fn validate_nodes(&self) -> Result<(), Error> {
        for i in 0..self.n_nodes {
            let index = i as u16;
            let n = self.decode_node(i)?;
            let bad = |field| Error::BadNode { index, field };
            let t_in = self.tensor(n.input).ok_or(bad("input"))?;
            let t_out = self.tensor(n.output).ok_or(bad("output"))?;
            let t_in2 = match n.input2 {
                Some(t) => Some(self.tensor(t).ok_or(bad("input2"))?),
                None => None,
            };
            let none_len = |r: &Range<usize>| r.is_empty();
            match n.op {
                Op::Dense => {
                    if n.rows == 0 || n.cols == 0 || n.rows > MAX_TENSOR_LEN || n.cols > MAX_TENSOR_LEN {
                        return Err(bad("rows/cols"));
                    }
                    if t_in.len != n.cols {
                        return Err(bad("cols"));
                    }
                    if t_out.len != n.rows {
                        return Err(bad("rows"));
                    }
                    if n.input2.is_some() {
                        return Err(bad("input2"));
                    }
                    let wanted = match self.precision {
                        Precision::Int8 => DType::I8,
                        Precision::F16 => DType::F16,
                        Precision::F32 => DType::F32,
                    };
                    if n.weight_dtype != wanted {
                        return Err(bad("weight_dtype"));
                    }
                    let wbytes = (n.rows as u64) * (n.cols as u64) * n.weight_dtype.size() as u64;
                    if n.weights.len() as u64 != wbytes {
                        return Err(bad("weights"));
                    }
                    if n.bias.len() != 4 * n.rows {
                        return Err(bad("bias"));
                    }
                    if n.weight_dtype == DType::I8 {
                        if t_in.dtype != DType::I8 || t_out.dtype != DType::I8 {
                            return Err(bad("tensor dtype"));
                        }
                        if n.aux.len() != 12 * n.rows {
                            return Err(bad("requant"));
                        }
                        let q = &self.blob[n.aux.clone()];
                        let w = &self.blob[n.weights.clone()];
                        for o in 0..n.rows {
                            let mult = read_i32(q, 4 * o).unwrap_or(-1);
                            let shift = read_i32(q, 4 * (n.rows + o)).unwrap_or(i32::MAX);
                            if mult < 0 || !(-31..=30).contains(&shift) {
                                return Err(bad("requant"));
                            }
                            // Optimized kernels trust the pre-summed rows; a wrong sum would make
                            // targets disagree, so it is checked like everything else.
                            let sum: i32 = w[o * n.cols..(o + 1) * n.cols].iter().map(|&v| v as i8 as i32).sum();
                            if read_i32(q, 4 * (2 * n.rows + o)) != Some(sum) {
                                return Err(bad("weight_sums"));
                            }
                            if w[o * n.cols..(o + 1) * n.cols].contains(&0x80) {
                                return Err(bad("weights (-128 is not a symmetric int8 weight)"));
                            }
                        }
                        if n.act_min > n.act_max {
                            return Err(bad("act_min/act_max"));
                        }
                        // ReLU is the clamp (act_min = zero point); `act` only records it.
                        if !matches!(n.act, ActKind::None | ActKind::Relu) {
                            return Err(bad("act"));
                        }
                    } else {
                        if t_in.dtype != DType::F32 || t_out.dtype != DType::F32 {
                            return Err(bad("tensor dtype"));
                        }
                        if !none_len(&n.aux) {
                            return Err(bad("aux"));
                        }
                        if !matches!(n.act, ActKind::None | ActKind::Relu) {
                            return Err(bad("act"));
                        }
                    }
                }
                Op::Lut => {
                    if t_in.dtype != DType::I8 || t_out.dtype != DType::I8 || t_in.len != t_out.len {
                        return Err(bad("tensor dtype/len"));
                    }
                    if n.aux.len() != 256 {
                        return Err(bad("table"));
                    }
                    if n.input2.is_some() || !none_len(&n.weights) || !none_len(&n.bias) {
                        return Err(bad("unused fields"));
                    }
                }
                Op::Activation => {
                    if t_in.dtype != DType::F32 || t_out.dtype != DType::F32 || t_in.len != t_out.len {
                        return Err(bad("tensor dtype/len"));
                    }
                    if n.act == ActKind::None || !n.alpha.is_finite() {
                        return Err(bad("act"));
                    }
                    if n.input2.is_some() || !none_len(&n.weights) || !none_len(&n.bias) || !none_len(&n.aux) {
                        return Err(bad("unused fields"));
                    }
                }
                Op::Concat => {
                    let t2 = t_in2.ok_or(bad("input2"))?;
                    if t_in.dtype != t_out.dtype || t2.dtype != t_out.dtype {
                        return Err(bad("tensor dtype"));
                    }
                    if t_in.len + t2.len != t_out.len {
                        return Err(bad("len"));
                    }
                    if t_out.dtype == DType::I8 {
                        let same = |a: &TensorInfo| a.scale == t_out.scale && a.zero_point == t_out.zero_point;
                        if !same(&t_in) || !same(&t2) {
                            return Err(bad("quantization"));
                        }
                    }
                    if !none_len(&n.weights) || !none_len(&n.bias) || !none_len(&n.aux) {
                        return Err(bad("unused fields"));
                    }
                }
            }
            // A node never reads bytes it writes, except an elementwise node working in place
            // (exactly the same bytes): that is what lets execution borrow input and output
            // from one arena.
            let out_r = arena_range(&t_out, 1);
            let elementwise = matches!(n.op, Op::Lut | Op::Activation);
            for t in [Some(t_in), t_in2].into_iter().flatten() {
                let in_r = arena_range(&t, 1);
                if overlaps(&in_r, &out_r) && !(elementwise && in_r == out_r) {
                    return Err(bad("arena overlap"));
                }
            }
        }
        Ok(())
    }

    fn validate_graph(&self) -> Result<(), Error> {
        let produced_before = |t: u16, limit: usize| -> bool {
            (0..limit).any(|j| self.decode_node(j).map(|n| n.output == t).unwrap_or(false))
        };
        let is_input = |t: u16| (0..self.n_inputs).any(|k| self.io(k) == t);
        for k in 0..self.n_inputs {
            let t = self.io(k);
            if self.tensor(t).is_none() {
                return Err(Error::BadGraph { reason: "graph input is not a tensor" });
            }
            if (0..k).any(|j| self.io(j) == t) {
                return Err(Error::BadGraph { reason: "graph input listed twice" });
            }
        }
        for i in 0..self.n_nodes {
            let n = self.decode_node(i)?;
            for t in [Some(n.input), n.input2].into_iter().flatten() {
                if !is_input(t) && !produced_before(t, i) {
                    return Err(Error::BadGraph { reason: "a node reads a tensor before it is written" });
                }
            }
            if is_input(n.output) || produced_before(n.output, i) {
                return Err(Error::BadGraph { reason: "a tensor is written twice" });
            }
        }
        for k in 0..self.n_outputs {
            let t = self.io(self.n_inputs + k);
            if self.tensor(t).is_none() || !produced_before(t, self.n_nodes) {
                return Err(Error::BadGraph { reason: "graph output is not produced by any node" });
            }
        }
        Ok(())
    }

    fn validate_kind(&self) -> Result<(), Error> {
        let bad = |reason| Err(Error::BadGraph { reason });
        let m = &self.meta;
        let len_of = |k: usize| self.tensor(self.io(k)).map(|t| t.len).unwrap_or(0);
        match self.kind {
            ModelKind::Generic => Ok(()),
            ModelKind::Decoder => {
                if self.n_outputs != 1 || m.latent == 0 || len_of(0) != m.latent {
                    return bad("decoder must map z (meta.latent values) to one output");
                }
                let conditional = self.n_inputs == 2;
                if self.n_inputs > 2 || (conditional && (m.classes == 0 || len_of(1) != m.classes)) {
                    return bad("decoder label input must have meta.classes values");
                }
                if !conditional && m.classes != 0 {
                    return bad("meta.classes set on an unconditional decoder");
                }
                if m.width * m.height != 0 && m.width * m.height != len_of(self.n_inputs) {
                    return bad("decoder output length is not width x height");
                }
                Ok(())
            }
            ModelKind::Encoder => {
                if m.latent == 0 {
                    return bad("encoder meta.latent is 0");
                }
                if self.n_inputs > 2 || (self.n_inputs == 2 && len_of(1) != m.classes) {
                    return bad("encoder label input must have meta.classes values");
                }
                let outs = self.n_inputs;
                match m.head {
                    EncoderHead::Fused if self.n_outputs == 1 && len_of(outs) == 2 * m.latent => Ok(()),
                    EncoderHead::Deterministic if self.n_outputs == 1 && len_of(outs) == m.latent => Ok(()),
                    EncoderHead::Separate
                        if self.n_outputs == 2 && len_of(outs) == m.latent && len_of(outs + 1) == m.latent =>
                    {
                        Ok(())
                    }
                    _ => bad("encoder outputs do not match meta.head and meta.latent"),
                }
            }
        }
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
        };
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

    /// Multiply-accumulates per sample (Dense nodes).
    pub fn macs(&self) -> usize {
        (0..self.n_nodes).filter_map(|i| self.node(i)).filter(|n| n.op == Op::Dense).map(|n| n.rows * n.cols).sum()
    }

    /// The aligned, batch-sized working part of a caller's arena.
    pub(crate) fn working_arena<'b>(&self, arena: &'b mut [u8], batch: usize) -> Result<&'b mut [u8], Error> {
        if batch == 0 {
            return Err(Error::BadBatch { batch });
        }
        let needed = self.arena_size_for_batch(batch).ok_or(Error::BadBatch { batch })?;
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall { needed, given: arena.len() });
        }
        let skip = crate::cast::align_offset(arena);
        Ok(&mut arena[skip..skip + self.arena_bytes * batch])
    }

    /// Writes graph input `k` for `batch` samples from `values` (which the callers have checked
    /// to be long enough), quantizing to the tensor's int8 parameters when needed. `arena` is
    /// the working arena. An iterator rather than an index closure, so that a slice's loop
    /// vectorizes (divisions included).
    pub(crate) fn stage_input(
        &self,
        kernels: &Kernels,
        arena: &mut [u8],
        k: usize,
        batch: usize,
        mut values: impl Iterator<Item = f32>,
    ) -> Result<(), Error> {
        let t = self.input(k).ok_or(Error::BadGraph { reason: "missing input" })?;
        let r = arena_range(&t, batch);
        let bytes = arena.get_mut(r).ok_or(Error::BadGraph { reason: "input outside arena" })?;
        match t.dtype {
            DType::I8 => {
                // Through a small buffer, so that the quantizing kernel sees a slice (a batch of
                // 64 z's is 1,280 divisions).
                const CHUNK: usize = if cfg!(target_pointer_width = "32") { 32 } else { 256 };
                let mut chunk = [0f32; CHUNK];
                for out in bytes.chunks_mut(CHUNK) {
                    let chunk = &mut chunk[..out.len()];
                    for (c, v) in chunk.iter_mut().zip(&mut values) {
                        *c = v;
                    }
                    (kernels.quantize_i8)(chunk, t.scale, t.zero_point, crate::cast::i8s_mut(out));
                }
            }
            _ => {
                for (y, v) in crate::cast::f32s_mut(bytes).iter_mut().zip(values) {
                    *y = v;
                }
            }
        }
        Ok(())
    }

    /// [`Self::stage_input`] from a slice: int8 inputs quantize straight from it, with no copy
    /// through a buffer (for a batch of 64 images, the copy measured 4% of the encoder).
    pub(crate) fn stage_input_slice(
        &self,
        kernels: &Kernels,
        arena: &mut [u8],
        k: usize,
        batch: usize,
        values: &[f32],
    ) -> Result<(), Error> {
        let t = self.input(k).ok_or(Error::BadGraph { reason: "missing input" })?;
        if t.dtype == DType::I8 {
            let bytes =
                arena.get_mut(arena_range(&t, batch)).ok_or(Error::BadGraph { reason: "input outside arena" })?;
            if let Some(values) = values.get(..bytes.len()) {
                (kernels.quantize_i8)(values, t.scale, t.zero_point, crate::cast::i8s_mut(bytes));
                return Ok(());
            }
        }
        self.stage_input(kernels, arena, k, batch, values.iter().copied())
    }

    /// Writes graph input `k` from [0, 255] pixels; pixel-quantized int8 inputs take the bytes
    /// as they are (`q = p - 128`), with no float arithmetic.
    pub(crate) fn stage_pixels(
        &self,
        kernels: &Kernels,
        arena: &mut [u8],
        k: usize,
        batch: usize,
        px: &[u8],
    ) -> Result<(), Error> {
        let t = self.input(k).ok_or(Error::BadGraph { reason: "missing input" })?;
        if t.is_pixel_quantized() {
            let r = arena_range(&t, batch);
            let bytes = arena.get_mut(r).ok_or(Error::BadGraph { reason: "input outside arena" })?;
            for (b, &p) in bytes.iter_mut().zip(px) {
                *b = p ^ 0x80;
            }
            Ok(())
        } else {
            let values = px.iter().map(|&p| p as f32 / 255.0).chain(core::iter::repeat(0.0));
            self.stage_input(kernels, arena, k, batch, values)
        }
    }

    /// Runs every node over the staged inputs in the working arena.
    pub(crate) fn execute(&self, kernels: &Kernels, arena: &mut [u8], batch: usize) -> Result<(), Error> {
        for i in 0..self.n_nodes {
            let n = self.decode_node(i)?;
            let lost = Error::BadNode { index: i as u16, field: "tensor" };
            let t_in = self.tensor(n.input).ok_or(lost)?;
            let t_out = self.tensor(n.output).ok_or(lost)?;
            let out_r = arena_range(&t_out, batch);
            match n.op {
                Op::Dense => {
                    let (x, y) = split(arena, arena_range(&t_in, batch), out_r).ok_or(lost)?;
                    let weights = &self.blob[n.weights.clone()];
                    let bias = &self.blob[n.bias.clone()];
                    if n.weight_dtype == DType::I8 {
                        let aux = self.blob.get(n.aux.clone()).filter(|a| a.len() == 12 * n.rows).ok_or(lost)?;
                        let p = DenseI8 {
                            rows: n.rows,
                            cols: n.cols,
                            layout: n.layout,
                            weights,
                            bias,
                            multipliers: &aux[..4 * n.rows],
                            shifts: &aux[4 * n.rows..8 * n.rows],
                            weight_sums: &aux[8 * n.rows..],
                            out_zero_point: t_out.zero_point,
                            act_min: n.act_min,
                            act_max: n.act_max,
                        };
                        (kernels.dense_i8)(&p, crate::cast::i8s(x), batch, crate::cast::i8s_mut(y));
                    } else {
                        let p = DenseFloat { rows: n.rows, cols: n.cols, weights, bias, relu: n.act == ActKind::Relu };
                        let f = if n.weight_dtype == DType::F16 { kernels.dense_f16 } else { kernels.dense_f32 };
                        f(&p, crate::cast::f32s(x), batch, crate::cast::f32s_mut(y));
                    }
                }
                Op::Lut => {
                    let table = &self.blob[n.aux.clone()];
                    let run =
                        |x: &[u8], y: &mut [u8]| (kernels.lut_i8)(table, crate::cast::i8s(x), crate::cast::i8s_mut(y));
                    elementwise(arena, arena_range(&t_in, batch), out_r, run).ok_or(lost)?;
                }
                Op::Activation => {
                    let run = |x: &[u8], y: &mut [u8]| {
                        (kernels.activation_f32)(n.act, n.alpha, crate::cast::f32s(x), crate::cast::f32s_mut(y))
                    };
                    elementwise(arena, arena_range(&t_in, batch), out_r, run).ok_or(lost)?;
                }
                Op::Concat => {
                    let t2 = n.input2.and_then(|t| self.tensor(t)).ok_or(lost)?;
                    let (a, b) = (t_in.bytes(), t2.bytes());
                    // Per sample: [first input | second input].
                    for s in 0..batch {
                        let out_s = out_r.start + s * (a + b);
                        let src = t_in.arena_offset * batch + s * a;
                        let (x, y) = split(arena, src..src + a, out_s..out_s + a).ok_or(lost)?;
                        y.copy_from_slice(x);
                        let src = t2.arena_offset * batch + s * b;
                        let (x, y) = split(arena, src..src + b, out_s + a..out_s + a + b).ok_or(lost)?;
                        y.copy_from_slice(x);
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads graph output `k` (all `batch` samples) as real values.
    pub(crate) fn read_output(&self, arena: &[u8], k: usize, batch: usize, out: &mut [f32]) -> Result<(), Error> {
        self.read_output_part(arena, k, batch, 0, out)
    }

    /// Reads elements `first..first + out.len()` of graph output `k`, flattened over the batch,
    /// as real values.
    pub(crate) fn read_output_part(
        &self,
        arena: &[u8],
        k: usize,
        batch: usize,
        first: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let t = self.output(k).ok_or(Error::BadGraph { reason: "missing output" })?;
        let r = arena_range(&t, batch);
        let size = t.dtype.size();
        let start = r.start + first * size;
        let bytes = arena
            .get(start..start + out.len() * size)
            .filter(|_| start + out.len() * size <= r.end)
            .ok_or(Error::BadGraph { reason: "output outside arena" })?;
        match t.dtype {
            DType::I8 => {
                for (o, &q) in out.iter_mut().zip(bytes) {
                    *o = dequantize_i8(q as i8, t.scale, t.zero_point);
                }
            }
            _ => {
                for (o, &v) in out.iter_mut().zip(crate::cast::f32s(bytes)) {
                    *o = v;
                }
            }
        }
        Ok(())
    }

    /// Reads graph output `k` as [0, 255] pixels: exact bytes for pixel-quantized int8 outputs,
    /// `round(255 * clamp(v, 0, 1))` otherwise.
    pub(crate) fn read_pixels(
        &self,
        kernels: &Kernels,
        arena: &[u8],
        k: usize,
        batch: usize,
        out: &mut [u8],
    ) -> Result<(), Error> {
        let t = self.output(k).ok_or(Error::BadGraph { reason: "missing output" })?;
        let bytes = arena.get(arena_range(&t, batch)).ok_or(Error::BadGraph { reason: "output outside arena" })?;
        match t.dtype {
            DType::I8 if t.is_pixel_quantized() => {
                for (o, &q) in out.iter_mut().zip(bytes) {
                    *o = q ^ 0x80;
                }
            }
            DType::I8 => {
                for (o, &q) in out.iter_mut().zip(bytes) {
                    *o = to_pixel(dequantize_i8(q as i8, t.scale, t.zero_point));
                }
            }
            _ => (kernels.pixels_f32)(crate::cast::f32s(bytes), out),
        }
        Ok(())
    }
}

/// Bytes of tensor `t` in the working arena for `batch` samples.
fn arena_range(t: &TensorInfo, batch: usize) -> Range<usize> {
    let start = t.arena_offset * batch;
    start..start + t.bytes() * batch
}

/// Runs an elementwise function from `input` to `output`, which are either disjoint or the same
/// bytes. In place, the values pass through a small stack buffer, so the kernels keep one
/// signature (separate input and output) and the arena needs no second copy of the tensor.
fn elementwise(
    arena: &mut [u8],
    input: Range<usize>,
    output: Range<usize>,
    mut f: impl FnMut(&[u8], &mut [u8]),
) -> Option<()> {
    if input != output {
        let (x, y) = split(arena, input, output)?;
        f(x, y);
        return Some(());
    }
    // 16-byte aligned so f32 views of it work; a multiple of 4 and of 16 bytes per chunk. Small
    // on 32-bit targets (microcontrollers count stack bytes); on 64-bit hosts large enough that
    // a 784-pixel output is one kernel call, not 13 (each reloading its table).
    const CHUNK: usize = if cfg!(target_pointer_width = "32") { 64 } else { 1024 };
    #[repr(align(16))]
    struct Chunk([u8; CHUNK]);
    let mut chunk = Chunk([0; CHUNK]);
    for y in arena.get_mut(output)?.chunks_mut(CHUNK) {
        let x = &mut chunk.0[..y.len()];
        x.copy_from_slice(y);
        f(x, y);
    }
    Some(())
}

/// Borrows `input` shared and `output` mutably from one arena; `None` when they overlap or lie
/// outside it (the parser has ruled both out, so this is a second line of defence).
fn split(arena: &mut [u8], input: Range<usize>, output: Range<usize>) -> Option<(&[u8], &mut [u8])> {
    if input.end <= output.start {
        let (lo, hi) = arena.split_at_mut(output.start.min(arena.len()));
        Some((lo.get(input)?, hi.get_mut(..output.len())?))
    } else if output.end <= input.start {
        let (lo, hi) = arena.split_at_mut(input.start.min(arena.len()));
        Some((hi.get(..input.len())?, lo.get_mut(output)?))
    } else {
        None
    }
}
