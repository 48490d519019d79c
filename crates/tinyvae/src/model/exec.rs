//! Execution: staging graph inputs into the arena, running every node through a kernel table,
//! and reading graph outputs. Everything here was checked by `validate` at parse time; the
//! `lost` errors are a second line of defence that no valid blob reaches.

use core::ops::Range;

use super::{arena_range, Model, Op};
use crate::error::Error;
#[cfg(feature = "conv")]
use crate::format::read_i32;
use crate::format::{ActKind, DType};
#[cfg(feature = "conv")]
use crate::kernels::{AddI8, Upsample};
#[cfg(feature = "conv-transpose")]
use crate::kernels::{ConvFloat, ConvI8};
use crate::kernels::{DenseFloat, DenseI8, Kernels};
use crate::quant::{dequantize_i8, to_pixel};

impl Model<'_> {
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
        let end = skip.checked_add(self.arena_bytes * batch).ok_or(Error::BadBatch { batch })?;
        let given = arena.len();
        arena.get_mut(skip..end).ok_or(Error::ArenaTooSmall { needed, given })
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

    /// Writes int8 codes as graph input `k` unchanged (an int8 input; the caller quantized).
    pub(crate) fn stage_codes(&self, arena: &mut [u8], k: usize, batch: usize, codes: &[i8]) -> Result<(), Error> {
        let t = self.input(k).ok_or(Error::BadGraph { reason: "missing input" })?;
        if t.dtype != DType::I8 {
            return Err(Error::BadGraph { reason: "int8 codes given for a float input" });
        }
        let bytes = arena.get_mut(arena_range(&t, batch)).ok_or(Error::BadGraph { reason: "input outside arena" })?;
        for (b, &q) in bytes.iter_mut().zip(codes) {
            *b = q as u8;
        }
        Ok(())
    }

    /// The bytes of graph output `k` for `batch` samples in the working arena.
    pub(crate) fn output_bytes<'b>(&self, arena: &'b [u8], k: usize, batch: usize) -> Result<&'b [u8], Error> {
        let t = self.output(k).ok_or(Error::BadGraph { reason: "missing output" })?;
        arena.get(arena_range(&t, batch)).ok_or(Error::BadGraph { reason: "output outside arena" })
    }

    /// The bytes of graph input `k` for `batch` samples in the working arena (after a run,
    /// still the staged input only where the blob promises it, as an autoencoder's does).
    pub(crate) fn input_bytes<'b>(&self, arena: &'b [u8], k: usize, batch: usize) -> Result<&'b [u8], Error> {
        let t = self.input(k).ok_or(Error::BadGraph { reason: "missing input" })?;
        arena.get(arena_range(&t, batch)).ok_or(Error::BadGraph { reason: "input outside arena" })
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
                    let weights = self.blob.get(n.weights.clone()).ok_or(lost)?;
                    let bias = self.blob.get(n.bias.clone()).ok_or(lost)?;
                    if n.weight_dtype == DType::I8 {
                        let aux = self.blob.get(n.aux.clone()).filter(|a| a.len() == 12 * n.rows).ok_or(lost)?;
                        let (multipliers, rest) = aux.split_at_checked(4 * n.rows).ok_or(lost)?;
                        let (shifts, weight_sums) = rest.split_at_checked(4 * n.rows).ok_or(lost)?;
                        let p = DenseI8 {
                            rows: n.rows,
                            cols: n.cols,
                            layout: n.layout,
                            weights,
                            bias,
                            multipliers,
                            shifts,
                            weight_sums,
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
                    let table = self.blob.get(n.aux.clone()).ok_or(lost)?;
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
                        copy(x, y).ok_or(lost)?;
                        let src = t2.arena_offset * batch + s * b;
                        let (x, y) = split(arena, src..src + b, out_s + a..out_s + a + b).ok_or(lost)?;
                        copy(x, y).ok_or(lost)?;
                    }
                }
                // Parse refuses these ops when they are not built.
                #[cfg(not(feature = "conv-transpose"))]
                Op::Conv | Op::ConvTranspose => return Err(lost),
                #[cfg(not(feature = "conv"))]
                Op::Upsample | Op::Add => return Err(lost),
                // (Without `conv`, parse refuses Conv: only ConvTranspose comes here.)
                #[cfg(feature = "conv-transpose")]
                Op::Conv | Op::ConvTranspose => {
                    let transposed = n.op == Op::ConvTranspose;
                    let (mut in_shape, mut out_shape) = (t_in.shape().ok_or(lost)?, t_out.shape().ok_or(lost)?);
                    in_shape.channels_last = self.channels_last(n.input);
                    out_shape.channels_last = self.channels_last(n.output);
                    let (x, y) = split(arena, arena_range(&t_in, batch), out_r).ok_or(lost)?;
                    let weights = self.blob.get(n.weights.clone()).ok_or(lost)?;
                    let bias = self.blob.get(n.bias.clone()).ok_or(lost)?;
                    if n.weight_dtype == DType::I8 {
                        let aux = self.blob.get(n.aux.clone()).filter(|a| a.len() >= 12 * n.rows).ok_or(lost)?;
                        let (multipliers, rest) = aux.split_at_checked(4 * n.rows).ok_or(lost)?;
                        let (shifts, weight_sums) = rest.split_at_checked(4 * n.rows).ok_or(lost)?;
                        let p = ConvI8 {
                            geometry: n.geometry,
                            layout: n.layout,
                            in_shape,
                            out_shape,
                            weights,
                            bias,
                            multipliers,
                            shifts,
                            weight_sums,
                            in_zero_point: t_in.zero_point,
                            out_zero_point: t_out.zero_point,
                            act_min: n.act_min,
                            act_max: n.act_max,
                        };
                        let f = if transposed { kernels.conv_transpose_i8 } else { kernels.conv_i8 };
                        f(&p, crate::cast::i8s(x), batch, crate::cast::i8s_mut(y));
                    } else {
                        let relu = n.act == ActKind::Relu;
                        let p = ConvFloat {
                            geometry: n.geometry,
                            layout: n.layout,
                            in_shape,
                            out_shape,
                            weights,
                            bias,
                            relu,
                        };
                        let f = match (n.weight_dtype == DType::F16, transposed) {
                            (true, false) => kernels.conv_f16,
                            (true, true) => kernels.conv_transpose_f16,
                            (false, false) => kernels.conv_f32,
                            (false, true) => kernels.conv_transpose_f32,
                        };
                        f(&p, crate::cast::f32s(x), batch, crate::cast::f32s_mut(y));
                    }
                }
                #[cfg(feature = "conv")]
                Op::Upsample => {
                    let in_shape = t_in.shape().ok_or(lost)?;
                    let (factor_h, factor_w) = (n.geometry.stride_h as usize, n.geometry.stride_w as usize);
                    let p = Upsample { in_shape, factor_h, factor_w };
                    let (x, y) = split(arena, arena_range(&t_in, batch), out_r).ok_or(lost)?;
                    if t_in.dtype == DType::I8 {
                        (kernels.upsample_i8)(&p, crate::cast::i8s(x), batch, crate::cast::i8s_mut(y));
                    } else {
                        (kernels.upsample_f32)(&p, crate::cast::f32s(x), batch, crate::cast::f32s_mut(y));
                    }
                }
                #[cfg(feature = "conv")]
                Op::Add => {
                    let t2 = n.input2.and_then(|t| self.tensor(t)).ok_or(lost)?;
                    let (a, b, y) =
                        split2(arena, arena_range(&t_in, batch), arena_range(&t2, batch), out_r).ok_or(lost)?;
                    if t_out.dtype == DType::I8 {
                        let q = self.blob.get(n.aux.clone()).ok_or(lost)?;
                        let at = |k: usize| read_i32(q, 4 * k).unwrap_or(0);
                        let p = AddI8 {
                            zero_points: [t_in.zero_point, t2.zero_point, t_out.zero_point],
                            multipliers: [at(0), at(2), at(4)],
                            shifts: [at(1), at(3), at(5)],
                            act_min: n.act_min,
                            act_max: n.act_max,
                        };
                        (kernels.add_i8)(&p, crate::cast::i8s(a), crate::cast::i8s(b), crate::cast::i8s_mut(y));
                    } else {
                        let relu = n.act == ActKind::Relu;
                        (kernels.add_f32)(relu, crate::cast::f32s(a), crate::cast::f32s(b), crate::cast::f32s_mut(y));
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
/// `y.copy_from_slice(x)` without its panic on a length mismatch (`None` instead).
fn copy(x: &[u8], y: &mut [u8]) -> Option<()> {
    (x.len() == y.len()).then(|| y.copy_from_slice(x))
}

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

#[cfg(feature = "conv")]
/// Borrows two inputs shared and `output` mutably from one arena; `None` when the output
/// overlaps either input or any lies outside the arena. The inputs may be the same bytes.
fn split2(
    arena: &mut [u8],
    a: Range<usize>,
    b: Range<usize>,
    output: Range<usize>,
) -> Option<(&[u8], &[u8], &mut [u8])> {
    let (lo, rest) = arena.split_at_mut(output.start.min(arena.len()));
    let (out, hi) = rest.split_at_mut(output.len().min(rest.len()));
    if out.len() != output.len() {
        return None;
    }
    let (lo, hi): (&[u8], &[u8]) = (lo, hi);
    let take = |r: Range<usize>| -> Option<&[u8]> {
        if r.end <= output.start {
            lo.get(r)
        } else if r.start >= output.end {
            hi.get(r.start - output.end..r.end - output.end)
        } else {
            None
        }
    };
    Some((take(a)?, take(b)?, out))
}
