//! Convolution ops: Conv and ConvTranspose (2-D), BatchNormalization folded into the layer
//! before it, and nearest-neighbour Resize/Upsample by integer factors.
//!
//! ONNX spells padding four ways (explicit `pads`, `auto_pad` SAME_UPPER/SAME_LOWER/VALID,
//! and for ConvTranspose an `output_shape`); all become the IR's explicit pads here, with the
//! formulas of the ONNX operator specification, so nothing downstream knows about `auto_pad`.

use ndarray::{Array1, Array4};

use super::{attr, attr_f, attr_i, attr_ints, attr_s, norm_axis, OpDef};
use crate::ir::{Chw, ConvGeometry, Op};
use crate::onnx::import::{Importer, NodeResult, Val};
use crate::onnx::proto as pb;

pub(super) const OPS: &[OpDef] = &[
    OpDef::new("Conv", Importer::conv).scope("2-D"),
    OpDef::new("ConvTranspose", Importer::conv_transpose).scope("2-D, groups 1"),
    OpDef::new("BatchNormalization", Importer::batch_norm).scope("after Conv, ConvTranspose or Gemm"),
    OpDef::new("Resize", Importer::resize).scope(NEAREST),
    OpDef::new("Upsample", Importer::upsample).scope(NEAREST),
];

const NEAREST: &str = "nearest, integer factors";

/// Two non-negative spatial values (`[h, w]`) from an attribute, or `default`.
fn pair(n: &pb::NodeProto, name: &str, default: usize) -> Result<[usize; 2], String> {
    match attr_ints(n, name) {
        None => Ok([default; 2]),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(format!("{name} {v:?} is not two non-negative values (tinyvae imports 2-D convolutions)")),
    }
}

/// The explicit pads `[top, left, bottom, right]` of a Conv over `[h, w]` with kernel extent
/// `span` (`dilation * (k - 1) + 1`), from `pads` or `auto_pad`.
fn conv_pads(n: &pb::NodeProto, hw: [usize; 2], span: [usize; 2], stride: [usize; 2]) -> Result<[usize; 4], String> {
    let auto = attr_s(n, "auto_pad", "NOTSET");
    match auto.as_str() {
        "NOTSET" => match attr_ints(n, "pads") {
            None => Ok([0; 4]),
            Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => Ok([p[0], p[1], p[2], p[3]].map(|x| x as usize)),
            Some(p) => Err(format!("pads {p:?} are not four non-negative values")),
        },
        "VALID" => Ok([0; 4]),
        "SAME_UPPER" | "SAME_LOWER" => {
            let mut pads = [0; 4];
            for a in 0..2 {
                let out = hw[a].div_ceil(stride[a]);
                let total = ((out - 1) * stride[a] + span[a]).saturating_sub(hw[a]);
                let (small, large) = (total / 2, total - total / 2);
                (pads[a], pads[a + 2]) = if auto == "SAME_UPPER" { (small, large) } else { (large, small) };
            }
            Ok(pads)
        }
        other => Err(format!("auto_pad `{other}` is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")),
    }
}

impl Importer {
    /// Input `k` as an image: `[C, H, W]` per sample.
    fn image_act(&self, n: &pb::NodeProto, k: usize) -> Result<(String, Chw), String> {
        let (ir, dims) = self.act(n, k)?;
        match dims[..] {
            [c, h, w] => Ok((ir, [c, h, w])),
            _ => Err(format!(
                "input `{}` has per-sample shape {dims:?}; tinyvae imports 2-D convolutions over [batch, C, H, W]",
                n.input[k]
            )),
        }
    }

    /// A 4-D weight initializer.
    fn weight4(&self, n: &pb::NodeProto, k: usize) -> Result<Array4<f32>, String> {
        let w = self.need_konst(n, k, "weight W")?;
        let [a, b, c, d] = w.dims[..] else {
            return Err(format!("weight W has shape {:?}; a 2-D convolution needs 4 dimensions", w.dims));
        };
        let values = w.floats().map_err(|e| format!("weight W {e}"))?;
        Array4::from_shape_vec((a, b, c, d), values.to_vec()).map_err(|e| format!("weight W: {e}"))
    }

    fn conv_bias(&self, n: &pb::NodeProto, outputs: usize) -> Result<Array1<f32>, String> {
        Ok(match self.konst(n, 2, "bias B")? {
            Some(c) => Array1::from(c.bias_vector(outputs)?),
            None => Array1::zeros(outputs),
        })
    }

    fn check_kernel_shape(n: &pb::NodeProto, kh: usize, kw: usize) -> NodeResult {
        match attr_ints(n, "kernel_shape") {
            Some(k) if k != [kh as i64, kw as i64] => {
                Err(format!("kernel_shape {k:?} disagrees with the weight's {kh} x {kw}"))
            }
            _ => Ok(()),
        }
    }

    fn conv(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (x, input) = self.image_act(n, 0)?;
        let weight = self.weight4(n, 1)?;
        let (out, _, kh, kw) = weight.dim();
        Self::check_kernel_shape(n, kh, kw)?;
        let groups = attr_i(n, "group", 1);
        if groups < 1 {
            return Err(format!("group {groups} is not a positive number"));
        }
        let stride = pair(n, "strides", 1)?;
        let dilation = pair(n, "dilations", 1)?;
        if stride.contains(&0) || dilation.contains(&0) {
            return Err("strides and dilations must be at least 1".into());
        }
        let span = [dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1];
        let pads = conv_pads(n, [input[1], input[2]], span, stride)?;
        let geometry = ConvGeometry { stride, dilation, pads, groups: groups as usize };
        let bias = self.conv_bias(n, out)?;
        let op = Op::Conv { weight, bias, input, geometry };
        let chw = op.spatial_output().unwrap_or(Err(String::new()))?;
        let o = Self::out(n, 0)?.to_string();
        self.emit(name, op, vec![x], &o, chw.to_vec());
        Ok(())
    }

    fn conv_transpose(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (x, input) = self.image_act(n, 0)?;
        let weight = self.weight4(n, 1)?;
        let (_, out, kh, kw) = weight.dim();
        Self::check_kernel_shape(n, kh, kw)?;
        if attr_i(n, "group", 1) != 1 {
            return Err(format!("group {} is not supported (tinyvae imports groups = 1)", attr_i(n, "group", 1)));
        }
        if pair(n, "dilations", 1)? != [1, 1] {
            return Err("dilations other than 1 are not supported".into());
        }
        let stride = pair(n, "strides", 1)?;
        if stride.contains(&0) {
            return Err("strides must be at least 1".into());
        }
        let mut output_padding = pair(n, "output_padding", 0)?;
        let full = |a: usize, op: usize| (input[a + 1] - 1) * stride[a] + [kh, kw][a] + op;
        let auto = attr_s(n, "auto_pad", "NOTSET");
        let target: Option<[usize; 2]> = match attr_ints(n, "output_shape") {
            Some(s) if s.len() >= 2 && s.iter().all(|&v| v > 0) => {
                Some([s[s.len() - 2] as usize, s[s.len() - 1] as usize])
            }
            Some(s) => return Err(format!("output_shape {s:?} is not a positive [H, W]")),
            None if auto == "SAME_UPPER" || auto == "SAME_LOWER" => Some([input[1] * stride[0], input[2] * stride[1]]),
            None => None,
        };
        let pads = match (target, auto.as_str()) {
            (Some(t), _) => {
                // ONNX: total = stride * (in - 1) + output_padding + kernel - output_shape,
                // split with the larger half at the end for SAME_UPPER, at the start otherwise.
                let mut pads = [0; 4];
                for a in 0..2 {
                    let f = full(a, output_padding[a]);
                    if f < t[a] {
                        // A larger output than the kernel reaches: the extra rows are bias only,
                        // which is what output_padding means.
                        output_padding[a] += t[a] - f;
                        continue;
                    }
                    let total = f - t[a];
                    let (small, large) = (total / 2, total - total / 2);
                    (pads[a], pads[a + 2]) = if auto == "SAME_UPPER" { (small, large) } else { (large, small) };
                }
                pads
            }
            (None, "NOTSET") => match attr_ints(n, "pads") {
                None => [0; 4],
                Some(p) if p.len() == 4 && p.iter().all(|&x| x >= 0) => [p[0], p[1], p[2], p[3]].map(|x| x as usize),
                Some(p) => return Err(format!("pads {p:?} are not four non-negative values")),
            },
            (None, "VALID") => [0; 4],
            (None, other) => return Err(format!("auto_pad `{other}` is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")),
        };
        let bias = self.conv_bias(n, out)?;
        let op = Op::ConvTranspose { weight, bias, input, stride, pads, output_padding };
        let chw = op.spatial_output().unwrap_or(Err(String::new()))?;
        let o = Self::out(n, 0)?.to_string();
        self.emit(name, op, vec![x], &o, chw.to_vec());
        Ok(())
    }

    /// Folds inference-mode batch normalization into the Conv, ConvTranspose or Dense that
    /// computes its input: `y = (x - mean) * gamma / sqrt(var + eps) + beta` per channel is a
    /// per-output-channel scale of the weights and a new bias.
    fn batch_norm(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        if attr_i(n, "training_mode", 0) != 0 {
            return Err("training_mode=1 is not supported (export the model in eval mode)".into());
        }
        let (ir, dims) = self.act(n, 0)?;
        let channels = *dims.first().ok_or("the input has no channel axis")?;
        let eps = attr_f(n, "epsilon", 1e-5);
        let param = |imp: &Self, k: usize, what: &str| -> Result<Vec<f32>, String> {
            imp.need_konst(n, k, what)?.bias_vector(channels).map_err(|e| format!("{what} {e}"))
        };
        let (gamma, beta, mean, var) =
            (param(self, 1, "scale")?, param(self, 2, "bias B")?, param(self, 3, "mean")?, param(self, 4, "var")?);
        let onnx_in = n.input[0].clone();
        let idx = match self.producer.get(&ir) {
            Some(&idx) if onnx_in == ir && self.uses(&onnx_in) == 1 => idx,
            _ => {
                return Err(format!(
                    "tinyvae folds BatchNormalization into the Conv, ConvTranspose or Gemm that computes its input, \
                     and `{onnx_in}` is not computed by one (or is also read elsewhere)"
                ))
            }
        };
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
        let shift: Vec<f32> = (0..channels).map(|c| beta[c] - mean[c] * scale[c]).collect();
        let node = &mut self.nodes[idx];
        let fold_bias = |bias: &mut Array1<f32>| {
            for c in 0..channels {
                bias[c] = bias[c] * scale[c] + shift[c];
            }
        };
        match &mut node.op {
            Op::Conv { weight, bias, .. } if weight.dim().0 == channels => {
                for (c, mut w) in weight.outer_iter_mut().enumerate() {
                    w.mapv_inplace(|v| v * scale[c]);
                }
                fold_bias(bias);
            }
            Op::ConvTranspose { weight, bias, .. } if weight.dim().1 == channels => {
                for mut per_input in weight.outer_iter_mut() {
                    for (c, mut w) in per_input.outer_iter_mut().enumerate() {
                        w.mapv_inplace(|v| v * scale[c]);
                    }
                }
                fold_bias(bias);
            }
            Op::Dense { weight, bias } if weight.nrows() == channels => {
                for (c, mut w) in weight.rows_mut().into_iter().enumerate() {
                    w.mapv_inplace(|v| v * scale[c]);
                }
                fold_bias(bias);
            }
            other => {
                return Err(format!(
                    "tinyvae folds BatchNormalization into the Conv, ConvTranspose or Gemm before it, and `{onnx_in}` \
                     is computed by {} with another channel count",
                    other.name()
                ))
            }
        }
        let out = Self::out(n, 0)?.to_string();
        node.output = out.clone();
        self.producer.remove(&ir);
        self.producer.insert(out.clone(), idx);
        self.vals.insert(out.clone(), Val::Act { ir: out, dims });
        Ok(())
    }

    fn resize(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let mode = attr_s(n, "mode", "nearest");
        if mode != "nearest" {
            return Err(format!("mode `{mode}` is not supported (tinyvae imports nearest-neighbour upsampling)"));
        }
        let (x, input) = self.image_act(n, 0)?;
        // Opset 10 has (X, scales); opset 11 and later (X, roi, scales, sizes).
        let (scales_at, sizes_at) = if n.input.len() == 2 { (1, usize::MAX) } else { (2, 3) };
        // `scales` and `sizes` list every axis of [N, C, H, W] or, with the `axes` attribute, the
        // axes it names, in its order; the others keep their size.
        let axes = match attr_ints(n, "axes") {
            None => vec![0, 1, 2, 3],
            Some(a) => {
                let a = a.iter().map(|&x| norm_axis(x, 4)).collect::<Result<Vec<_>, _>>()?;
                if (0..a.len()).any(|i| a[..i].contains(&a[i])) {
                    return Err(format!("axes {a:?} repeat an axis"));
                }
                a
            }
        };
        let per_axis = |v: &[f64], what: &str| -> Result<[f64; 4], String> {
            if v.len() != axes.len() {
                return Err(format!("{what} {v:?} do not give one value per resized axis {axes:?}"));
            }
            let mut full = [1.0; 4];
            for (&a, &x) in axes.iter().zip(v) {
                full[a] = x;
            }
            Ok(full)
        };
        let factors = match self.konst(n, scales_at, "scales")? {
            Some(c) if c.len() > 0 => {
                Some(per_axis(&c.floats()?.iter().map(|&v| v as f64).collect::<Vec<_>>(), "scales")?)
            }
            _ => None,
        };
        let factors = match (factors, self.konst(n, sizes_at, "sizes")?) {
            (Some(f), _) => f,
            (None, Some(c)) => {
                let sizes: Vec<f64> = c.plain_ints()?.into_iter().map(|v| v as f64).collect();
                let mut f = per_axis(&sizes, "sizes")?;
                // The batch size is the caller's: a size given for axis 0 is taken to keep it.
                f[0] = 1.0;
                for &a in axes.iter().filter(|&&a| a > 0) {
                    f[a] /= input[a - 1] as f64;
                }
                // The aspect-ratio policy replaces the factors of the resized axes by their
                // smallest or largest (ONNX opset 18).
                let policy = attr_s(n, "keep_aspect_ratio_policy", "stretch");
                let pick = match policy.as_str() {
                    "stretch" => None,
                    "not_larger" => Some(f64::min as fn(f64, f64) -> f64),
                    "not_smaller" => Some(f64::max as fn(f64, f64) -> f64),
                    other => return Err(format!("keep_aspect_ratio_policy `{other}` is not supported")),
                };
                if let Some(pick) = pick {
                    let s = axes.iter().map(|&a| f[a]).reduce(pick).unwrap_or(1.0);
                    for &a in &axes {
                        f[a] = s;
                    }
                }
                f
            }
            (None, None) => return Err("neither scales nor sizes is given".into()),
        };
        if factors[0] != 1.0 || factors[1] != 1.0 {
            return Err(format!(
                "resizes the batch or channel axis (factors {factors:?}); tinyvae resizes only H and W of [batch, C, H, W]"
            ));
        }
        let scales = [factors[2], factors[3]];
        let ctm = attr_s(n, "coordinate_transformation_mode", "half_pixel");
        let nearest = attr_s(n, "nearest_mode", "round_prefer_floor");
        let factor = integer_factors(scales)?;
        for a in 0..2 {
            let (len, f) = (input[a + 1], factor[a]);
            for o in 0..len * f {
                let src = nearest_source(o, len, f, &ctm, &nearest)?;
                if src != o / f {
                    return Err(format!(
                        "coordinate_transformation_mode `{ctm}` with nearest_mode `{nearest}` does not repeat each \
                         pixel {f} times (output {o} reads input {src}); tinyvae imports the upsampling torch's \
                         nn.Upsample(scale_factor=k) exports"
                    ));
                }
            }
        }
        self.emit_upsample(n, name, x, input, factor)
    }

    /// Opset 7-9 Upsample: nearest, `floor(o / scale)`.
    fn upsample(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let mode = attr_s(n, "mode", "nearest");
        if mode != "nearest" {
            return Err(format!("mode `{mode}` is not supported (tinyvae imports nearest-neighbour upsampling)"));
        }
        let (x, input) = self.image_act(n, 0)?;
        let scales: Vec<f64> = match self.konst(n, 1, "scales")? {
            Some(c) => c.floats()?.iter().map(|&v| v as f64).collect(),
            None => {
                attr(n, "scales").map(|a| a.floats.iter().map(|&v| v as f64).collect()).ok_or("scales are missing")?
            }
        };
        let [1.0, 1.0, sh, sw] = scales[..] else {
            return Err(format!("scales {scales:?}: tinyvae upsamples only H and W of [batch, C, H, W]"));
        };
        let factor = integer_factors([sh, sw])?;
        self.emit_upsample(n, name, x, input, factor)
    }

    fn emit_upsample(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        x: String,
        input: Chw,
        factor: [usize; 2],
    ) -> NodeResult {
        let o = Self::out(n, 0)?.to_string();
        if factor == [1, 1] {
            let dims = input.to_vec();
            return self.set(n, Val::Act { ir: x, dims });
        }
        let op = Op::Upsample { input, factor };
        let chw = op.spatial_output().unwrap_or(Err(String::new()))?;
        self.emit(name, op, vec![x], &o, chw.to_vec());
        Ok(())
    }
}

fn integer_factors(scales: [f64; 2]) -> Result<[usize; 2], String> {
    let f = scales.map(|s| s.round());
    if scales.iter().zip(&f).any(|(s, r)| (s - r).abs() > 1e-6 || *r < 1.0 || *r > 64.0) {
        return Err(format!("scales {scales:?} are not whole upsampling factors from 1 to 64"));
    }
    Ok(f.map(|v| v as usize))
}

/// The input index ONNX's Resize reads for output index `o` (nearest mode), per the operator
/// specification's coordinate transformations and rounding modes.
fn nearest_source(o: usize, len: usize, f: usize, ctm: &str, nearest: &str) -> Result<usize, String> {
    let (o, n, scale) = (o as f64, len as f64, f as f64);
    let out = n * scale;
    let x = match ctm {
        "half_pixel" => (o + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => {
            if out > 1.0 {
                (o + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        // For whole factors the symmetric offset is 0: the same as half_pixel.
        "half_pixel_symmetric" => {
            let adj = out / (n * scale);
            let offset = n / 2.0 * (1.0 - adj);
            offset + (o + 0.5) / scale - 0.5
        }
        "asymmetric" => o / scale,
        "tf_half_pixel_for_nn" => (o + 0.5) / scale,
        "align_corners" => {
            if out > 1.0 {
                o * (n - 1.0) / (out - 1.0)
            } else {
                0.0
            }
        }
        other => return Err(format!("coordinate_transformation_mode `{other}` is not supported")),
    };
    let r = match nearest {
        "round_prefer_floor" => {
            if x.fract() == 0.5 {
                x.floor()
            } else {
                x.round()
            }
        }
        "round_prefer_ceil" => x.round(),
        "floor" => x.floor(),
        "ceil" => x.ceil(),
        other => return Err(format!("nearest_mode `{other}` is not supported")),
    };
    Ok(r.clamp(0.0, n - 1.0) as usize)
}
