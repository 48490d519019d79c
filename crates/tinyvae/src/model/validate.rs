//! The checks `Model::parse` runs before it returns: every tensor record, every node against
//! its tensors and its op's rules, the graph order and the model kind. After them, execution
//! cannot read out of bounds or meet a shape it cannot run.

use core::ops::Range;

use super::{arena_range, overlaps, Model, NodeView, Op, TensorInfo};
use crate::error::Error;
use crate::format::{
    self, read_f32, read_i32, read_u16, read_u32, trec, ActKind, DType, EncoderHead, ModelKind, Precision,
    WeightLayout, ALIGN, MAX_TENSOR_LEN,
};
#[cfg(feature = "conv-transpose")]
use crate::kernels::ConvDims;
use crate::prior::Prior;

/// The last activation code of format version 1 (tanh).
const LAST_V1_ACT: u8 = ActKind::Tanh.code();

impl Model<'_> {
    pub(super) fn validate_tensors(&self) -> Result<(), Error> {
        for i in 0..self.n_tensors {
            let index = i as u16;
            let r = self.tensor_record(i);
            let bad = |field| Error::BadTensor { index, field };
            let dtype = r.get(trec::DTYPE).and_then(|&c| DType::from_code(c)).ok_or(bad("dtype"))?;
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
            let height = read_u16(r, trec::HEIGHT).unwrap_or(u16::MAX) as usize;
            let width = read_u16(r, trec::WIDTH).unwrap_or(u16::MAX) as usize;
            if (height, width) != (0, 0) {
                if self.version == format::VERSION_1 {
                    return Err(bad("height/width (a version 2 feature in a version 1 blob)"));
                }
                // Both below 2^16: the product fits in 32 bits.
                if height == 0 || width == 0 || !len.is_multiple_of(height * width) {
                    return Err(bad("height/width (C = len / (height * width) must be a whole number)"));
                }
            }
        }
        Ok(())
    }

    pub(super) fn validate_nodes(&self) -> Result<(), Error> {
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
            let version2_op = matches!(n.op, Op::Conv | Op::ConvTranspose | Op::Upsample | Op::Add);
            if self.version == format::VERSION_1 {
                if version2_op {
                    return Err(bad("op (a version 2 op in a version 1 blob)"));
                }
                if n.act.code() > LAST_V1_ACT {
                    return Err(bad("act (a version 2 activation in a version 1 blob)"));
                }
            } else if !matches!(n.op, Op::Conv | Op::ConvTranspose | Op::Upsample) && !n.geometry.is_zero() {
                // Version 1 never checked these reserved bytes; version 2 gives them a meaning.
                return Err(bad("geometry/groups (unused by this op, must be 0)"));
            }
            match n.op {
                Op::Dense => self.validate_dense(&n, &t_in, &t_out, index)?,
                #[cfg(feature = "conv")]
                Op::Conv => self.validate_conv(&n, &t_in, &t_out, index)?,
                #[cfg(feature = "conv-transpose")]
                Op::ConvTranspose => self.validate_conv(&n, &t_in, &t_out, index)?,
                #[cfg(feature = "conv")]
                Op::Upsample => validate_upsample(&n, &t_in, &t_out, self.dtypes().0, index)?,
                #[cfg(feature = "conv")]
                Op::Add => self.validate_add(&n, &t_in, t_in2.as_ref(), &t_out, index)?,
                #[cfg(not(feature = "conv-transpose"))]
                Op::ConvTranspose => return Err(Error::OpNotBuilt { index, op: "ConvTranspose" }),
                #[cfg(not(feature = "conv"))]
                Op::Conv | Op::Upsample | Op::Add => {
                    let op = match n.op {
                        Op::Conv => "Conv",
                        Op::Upsample => "Upsample",
                        _ => "Add",
                    };
                    return Err(Error::OpNotBuilt { index, op });
                }
                Op::Lut => {
                    if t_in.dtype != DType::I8 || t_out.dtype != DType::I8 || t_in.len != t_out.len {
                        return Err(bad("tensor dtype/len"));
                    }
                    if n.aux.len() != 256 {
                        return Err(bad("table"));
                    }
                    if n.input2.is_some() || !n.weights.is_empty() || !n.bias.is_empty() {
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
                    if n.input2.is_some() || !n.weights.is_empty() || !n.bias.is_empty() || !n.aux.is_empty() {
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
                    // Inputs may be images (a conditional encoder joins its conv features and the
                    // label): their bytes are the flat vectors they also are. The result is flat.
                    if t_out.shape().is_some() {
                        return Err(bad("shape (Concat writes a flat vector)"));
                    }
                    if t_out.dtype == DType::I8 {
                        let same = |a: &TensorInfo| a.scale == t_out.scale && a.zero_point == t_out.zero_point;
                        if !same(&t_in) || !same(&t2) {
                            return Err(bad("quantization"));
                        }
                    }
                    if !n.weights.is_empty() || !n.bias.is_empty() || !n.aux.is_empty() {
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

    /// The element type of activations and weights this blob's precision calls for.
    fn dtypes(&self) -> (DType, DType) {
        match self.precision {
            Precision::Int8 => (DType::I8, DType::I8),
            Precision::F16 => (DType::F32, DType::F16),
            Precision::F32 => (DType::F32, DType::F32),
        }
    }

    fn validate_dense(&self, n: &NodeView, t_in: &TensorInfo, t_out: &TensorInfo, index: u16) -> Result<(), Error> {
        let bad = |field| Error::BadNode { index, field };
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
        if n.layout != WeightLayout::RowMajor {
            return Err(bad("layout (tap-major is for convolutions)"));
        }
        self.validate_weighted(n, t_in, t_out, index, 1, &|o| o * n.cols..(o + 1) * n.cols)
    }

    #[cfg(feature = "conv-transpose")]
    /// Conv and ConvTranspose: the geometry against the tensors' shapes, then the weights and
    /// requantization as for Dense.
    fn validate_conv(&self, n: &NodeView, t_in: &TensorInfo, t_out: &TensorInfo, index: u16) -> Result<(), Error> {
        let bad = |field| Error::BadNode { index, field };
        let transposed = n.op == Op::ConvTranspose;
        if n.input2.is_some() {
            return Err(bad("input2"));
        }
        let x = t_in.shape().ok_or(bad("input shape (a convolution reads a [C, H, W] tensor)"))?;
        let y = t_out.shape().ok_or(bad("output shape (a convolution writes a [C, H, W] tensor)"))?;
        let g = &n.geometry;
        if g.kh == 0 || g.kw == 0 {
            return Err(bad("kernel size (kh, kw must be at least 1)"));
        }
        if g.stride_h == 0 || g.stride_w == 0 {
            return Err(bad("stride (must be at least 1)"));
        }
        if g.dilation_h == 0 || g.dilation_w == 0 {
            return Err(bad("dilation (must be at least 1)"));
        }
        let groups = g.groups as usize;
        if transposed && groups != 1 {
            return Err(bad("groups (ConvTranspose takes 1)"));
        }
        if groups == 0 || !x.channels.is_multiple_of(groups) || !y.channels.is_multiple_of(groups) {
            return Err(bad("groups (must be at least 1 and divide both channel counts)"));
        }
        if transposed && (g.dilation_h != 1 || g.dilation_w != 1) {
            return Err(bad("dilation (ConvTranspose takes 1)"));
        }
        let d: ConvDims = ConvDims::new(g, x, y, transposed).ok_or(bad("geometry"))?;
        if n.rows != d.rows {
            return Err(bad("rows (must be the output channels)"));
        }
        if n.cols != d.cols {
            return Err(bad("cols (must be C_in / groups * kh * kw)"));
        }
        if n.layout == WeightLayout::TapMajor && self.version < format::VERSION_3 {
            return Err(bad("layout (tap-major weights are a version 3 feature)"));
        }
        // A tap-major transposed convolution's int8 rows are per phase.
        let phases = d.phases(transposed, n.layout);
        let rows = |o: usize| {
            let phase = d.phase(transposed, (o / d.rows) / d.w.stride(), (o / d.rows) % d.w.stride());
            phase.offset + (o % d.rows) * phase.cols..phase.offset + (o % d.rows + 1) * phase.cols
        };
        if transposed && n.layout == WeightLayout::TapMajor {
            self.validate_weighted(n, t_in, t_out, index, phases, &rows)
        } else {
            self.validate_weighted(n, t_in, t_out, index, 1, &|o| o * n.cols..(o + 1) * n.cols)
        }
    }

    /// What Dense, Conv and ConvTranspose share: `rows x cols` weights of the blob's precision,
    /// `rows` biases (`rows * phases` on int8 graphs), and for int8 the requantization arrays
    /// (every value checked: `rows` multipliers and shifts, the sums of the `rows * phases`
    /// weight rows, weight row `r` at `row(r)`) and clamp.
    fn validate_weighted(
        &self,
        n: &NodeView,
        t_in: &TensorInfo,
        t_out: &TensorInfo,
        index: u16,
        phases: usize,
        row: &dyn Fn(usize) -> Range<usize>,
    ) -> Result<(), Error> {
        let bad = |field| Error::BadNode { index, field };
        if n.rows == 0 || n.cols == 0 {
            return Err(bad("rows/cols"));
        }
        let (activations, wanted) = self.dtypes();
        if n.weight_dtype != wanted {
            return Err(bad("weight_dtype"));
        }
        let wbytes = (n.rows as u64) * (n.cols as u64) * n.weight_dtype.size() as u64;
        if n.weights.len() as u64 != wbytes {
            return Err(bad("weights"));
        }
        let int8_phases = if n.weight_dtype == DType::I8 { phases as u64 } else { 1 };
        if n.bias.len() as u64 != 4 * n.rows as u64 * int8_phases {
            return Err(bad("bias"));
        }
        if t_in.dtype != activations || t_out.dtype != activations {
            return Err(bad("tensor dtype"));
        }
        // ReLU is the clamp (act_min = zero point) on int8 graphs; `act` only records it.
        if !matches!(n.act, ActKind::None | ActKind::Relu) {
            return Err(bad("act"));
        }
        if n.weight_dtype != DType::I8 {
            return if n.aux.is_empty() { Ok(()) } else { Err(bad("aux")) };
        }
        if n.aux.len() as u64 != 4 * n.rows as u64 * (2 + int8_phases) {
            return Err(bad("requant"));
        }
        let q = self.blob.get(n.aux.clone()).ok_or(bad("aux"))?;
        let w = self.blob.get(n.weights.clone()).ok_or(bad("weights"))?;
        for o in 0..n.rows {
            let mult = read_i32(q, 4 * o).unwrap_or(-1);
            let shift = read_i32(q, 4 * (n.rows + o)).unwrap_or(i32::MAX);
            if mult < 0 || !(-31..=30).contains(&shift) {
                return Err(bad("requant"));
            }
        }
        for r in 0..n.rows * phases {
            let row = w.get(row(r)).ok_or(bad("weights"))?;
            // Optimized kernels trust the pre-summed rows; a wrong sum would make targets
            // disagree, so it is checked like everything else.
            let sum: i32 = row.iter().map(|&v| v as i8 as i32).sum();
            if read_i32(q, 4 * (2 * n.rows + r)) != Some(sum) {
                return Err(bad("weight_sums"));
            }
            if row.contains(&0x80) {
                return Err(bad("weights (-128 is not a symmetric int8 weight)"));
            }
        }
        if n.act_min > n.act_max {
            return Err(bad("act_min/act_max"));
        }
        Ok(())
    }

    #[cfg(feature = "conv")]
    fn validate_add(
        &self,
        n: &NodeView,
        a: &TensorInfo,
        b: Option<&TensorInfo>,
        y: &TensorInfo,
        index: u16,
    ) -> Result<(), Error> {
        let bad = |field| Error::BadNode { index, field };
        let b = b.ok_or(bad("input2"))?;
        let (activations, _) = self.dtypes();
        if [a, b, y].iter().any(|t| t.dtype != activations) {
            return Err(bad("tensor dtype"));
        }
        if a.len != y.len || b.len != y.len {
            return Err(bad("len (Add takes three tensors of one length)"));
        }
        if !n.weights.is_empty() || !n.bias.is_empty() {
            return Err(bad("unused fields"));
        }
        if !matches!(n.act, ActKind::None | ActKind::Relu) {
            return Err(bad("act"));
        }
        if activations != DType::I8 {
            return if n.aux.is_empty() { Ok(()) } else { Err(bad("aux")) };
        }
        let q = self.blob.get(n.aux.clone()).filter(|q| q.len() == 24).ok_or(bad("requant (six int32)"))?;
        for k in 0..3 {
            let mult = read_i32(q, 8 * k).unwrap_or(-1);
            let shift = read_i32(q, 8 * k + 4).unwrap_or(i32::MAX);
            if mult < 0 || !(-31..=30).contains(&shift) {
                return Err(bad("requant"));
            }
        }
        if n.act_min > n.act_max {
            return Err(bad("act_min/act_max"));
        }
        Ok(())
    }

    pub(super) fn validate_graph(&self) -> Result<(), Error> {
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

    /// A stored prior belongs to a decoder and holds together ([`Prior::parse`]).
    pub(super) fn validate_prior(&self) -> Result<(), Error> {
        let (off, len, components) = self.prior;
        if components == 0 {
            return Ok(());
        }
        if self.kind != ModelKind::Decoder {
            return Err(Error::BadPrior { field: "kind (only decoders take a prior)" });
        }
        let bytes = self.blob.get(off..off + len).ok_or(Error::BadSection { section: "prior" })?;
        let groups = Prior::parse(bytes, components, self.meta.latent)?.groups();
        if groups != 1 && groups != self.meta.classes {
            return Err(Error::BadPrior { field: "groups (neither one mixture nor one per label)" });
        }
        Ok(())
    }

    pub(super) fn validate_kind(&self) -> Result<(), Error> {
        let bad = |reason| Err(Error::BadGraph { reason });
        let m = &self.meta;
        let len_of = |k: usize| self.tensor(self.io(k)).map(|t| t.len).unwrap_or(0);
        match self.kind {
            ModelKind::Generic => Ok(()),
            ModelKind::Autoencoder => {
                if self.n_inputs != 1 || self.n_outputs != 1 || len_of(0) != len_of(1) || len_of(0) == 0 {
                    return bad("autoencoder must map one input to one output of the same length");
                }
                if m.classes != 0 {
                    return bad("meta.classes set on an autoencoder");
                }
                // The score reads the input's codes after the run: no node may write over them.
                let input = self.tensor(self.io(0)).ok_or(Error::BadGraph { reason: "missing input" })?;
                let kept = input.arena_offset..input.arena_offset + input.bytes();
                for i in 0..self.n_nodes {
                    let out =
                        self.tensor(self.decode_node(i)?.output).ok_or(Error::BadGraph { reason: "missing tensor" })?;
                    if out.arena_offset < kept.end && kept.start < out.arena_offset + out.bytes() {
                        return bad("a node writes over an autoencoder's input, which must stay intact");
                    }
                }
                // The integer score compares the input's codes with the output's: one
                // precision, and on int8 a scale ratio s_i / s_o it can rescale by.
                let output = self.tensor(self.io(1)).ok_or(Error::BadGraph { reason: "missing output" })?;
                if (input.dtype == DType::I8) != (output.dtype == DType::I8) {
                    return bad("autoencoder input and output differ in precision");
                }
                // s_i / s_o < 128 as s_i < 128 s_o: both scales are positive and finite (checked
                // above), the product by a power of two is exact, and f32 keeps every firmware
                // free of soft-float f64 division (1.4 KB of the C library on a Cortex-M3).
                let limit = format::AUTOENCODER_MAX_SCALE_RATIO as f32 * output.scale;
                if input.dtype == DType::I8 && input.scale >= limit {
                    return bad("autoencoder input and output scales are not comparable (s_i / s_o must be below 128)");
                }
                Ok(())
            }
            ModelKind::Classifier => {
                if self.n_inputs != 1 || self.n_outputs != 1 {
                    return bad("classifier must map one input to one output");
                }
                if m.classes < 2 || len_of(1) != m.classes {
                    return bad("classifier output must have meta.classes values, at least 2");
                }
                if m.latent != 0 {
                    return bad("meta.latent set on a classifier");
                }
                if m.width * m.height != 0 && m.width * m.height != len_of(0) {
                    return bad("classifier input length is not width x height");
                }
                Ok(())
            }
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
}

#[cfg(feature = "conv")]
/// Upsample: `[C, H, W]` to `[C, H * factor_h, W * factor_w]`, one quantization, no arrays.
fn validate_upsample(
    n: &NodeView,
    t_in: &TensorInfo,
    t_out: &TensorInfo,
    activations: DType,
    index: u16,
) -> Result<(), Error> {
    let bad = |field| Error::BadNode { index, field };
    let g = &n.geometry;
    let (fh, fw) = (g.stride_h as usize, g.stride_w as usize);
    if fh == 0 || fw == 0 {
        return Err(bad("factors (stride_h, stride_w must be at least 1)"));
    }
    if (g.kh, g.kw, g.dilation_h, g.dilation_w, g.pad_top, g.pad_left, g.groups) != (0, 0, 0, 0, 0, 0, 0) {
        return Err(bad("geometry (Upsample uses only stride_h and stride_w)"));
    }
    let x = t_in.shape().ok_or(bad("input shape (Upsample reads a [C, H, W] tensor)"))?;
    let y = t_out.shape().ok_or(bad("output shape (Upsample writes a [C, H, W] tensor)"))?;
    if y.channels != x.channels || y.height != x.height * fh || y.width != x.width * fw {
        return Err(bad("output shape (must be [C, H * factor_h, W * factor_w])"));
    }
    if t_in.dtype != activations || t_out.dtype != activations {
        return Err(bad("tensor dtype"));
    }
    if t_in.dtype == DType::I8 && (t_in.scale != t_out.scale || t_in.zero_point != t_out.zero_point) {
        return Err(bad("quantization (Upsample copies codes: input and output must share it)"));
    }
    if n.input2.is_some() || !n.weights.is_empty() || !n.bias.is_empty() || !n.aux.is_empty() {
        return Err(bad("unused fields"));
    }
    if n.act != ActKind::None {
        return Err(bad("act"));
    }
    Ok(())
}
