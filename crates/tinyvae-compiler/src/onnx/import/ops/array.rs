//! Layout, shape arithmetic and constants: ops that move or rename values without computing
//! anything. On activations they become aliases (or, for Concat and feature slices, the IR's
//! Concat and Dense rows); on constants they are folded at import time.

use ndarray::{ArrayD, IxDyn};

use super::{attr, attr_i, attr_ints, norm_axis, OpDef};
use crate::ir::Op;
use crate::onnx::import::tensor::{const_from_proto, product, type_name, Const, Data, IntDim};
use crate::onnx::import::{Importer, NodeResult, Val};
use crate::onnx::proto as pb;
use crate::onnx::proto::tensor_proto::DataType;

pub(super) const OPS: &[OpDef] = &[
    OpDef::new("Concat", Importer::concat).scope("features axis"),
    OpDef::new("Split", Importer::split).scope(FEATURE_SLICES),
    OpDef::new("Slice", Importer::slice).scope(FEATURE_SLICES),
    OpDef::new("Flatten", Importer::flatten),
    OpDef::new("Reshape", Importer::reshape).scope(KEEPING_BATCH),
    OpDef::new("Squeeze", Importer::squeeze).scope(KEEPING_BATCH),
    OpDef::new("Unsqueeze", Importer::unsqueeze).scope(KEEPING_BATCH),
    OpDef::new("Identity", Importer::identity),
    OpDef::new("Dropout", Importer::dropout).scope("inference"),
    OpDef::new("Cast", Importer::cast),
    OpDef::new("Transpose", Importer::transpose).scope("of constants"),
    OpDef::new("Constant", Importer::constant),
    OpDef::new("Shape", Importer::shape).scope(BATCH_ARITHMETIC),
    OpDef::new("Gather", Importer::gather).scope(BATCH_ARITHMETIC),
];

const FEATURE_SLICES: &str = "features of a Gemm/MatMul output";
const KEEPING_BATCH: &str = "keeping the batch axis";
const BATCH_ARITHMETIC: &str = "batch-size arithmetic";

impl Importer {
    fn concat(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let axis = attr(n, "axis").map(|a| a.i).ok_or("the axis attribute is missing")?;
        let ins: Vec<&Val> = (0..n.input.len()).map(|k| self.need(n, k)).collect::<Result<_, _>>()?;
        if ins.iter().all(|v| matches!(v, Val::Const(_))) {
            // Shape arithmetic: 1-D integer (or float) constants joined end to end.
            let mut ints = Vec::new();
            let mut floats = Vec::new();
            for v in &ins {
                let Val::Const(c) = v else { continue };
                if c.dims.len() != 1 || norm_axis(axis, 1)? != 0 {
                    return Err("joining constants is only supported for 1-D constants".into());
                }
                match &c.data {
                    Data::Int(v) => ints.extend_from_slice(v),
                    Data::F32(v) => floats.extend_from_slice(v),
                }
            }
            let c = match (ints.is_empty(), floats.is_empty()) {
                (_, true) => Const::ints1(ints),
                (true, false) => Const { dims: vec![floats.len()], data: Data::F32(floats) },
                (false, false) => return Err("joins integer and float constants".into()),
            };
            return self.set(n, Val::Const(c));
        }
        let mut parts = Vec::new();
        let mut total = 0;
        for (k, v) in ins.iter().enumerate() {
            let (ir, len) = self.vec_act(n, k).map_err(|e| {
                if matches!(v, Val::Const(_)) {
                    format!("joining a constant to computed values is not supported (input `{}`)", n.input[k])
                } else {
                    e
                }
            })?;
            parts.push(ir);
            total += len;
        }
        if norm_axis(axis, 2)? != 1 {
            return Err(format!(
                "axis {axis} would join along the batch; tinyvae concatenates features (axis 1 or -1)"
            ));
        }
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Concat, parts, &out, vec![total]);
        Ok(())
    }

    /// Picks features `range` of a Dense output as a new Dense over the same input. The IR has
    /// no slicing op, but slicing a linear layer's output is the same as slicing its rows,
    /// which is how `mu, logvar = h.chunk(2, dim=1)` encoders are imported.
    fn dense_rows(
        &mut self,
        n: &pb::NodeProto,
        name: &str,
        ir: &str,
        range: std::ops::Range<usize>,
        out: &str,
    ) -> NodeResult {
        let Some((idx, weight, bias)) = self.dense_of(ir) else {
            return Err(format!(
                "tinyvae can only split the output of a Gemm/MatMul (+ bias), and `{}` is not one",
                n.input[0]
            ));
        };
        let rows = ndarray::s![range.clone(), ..];
        let op = Op::Dense {
            weight: weight.slice(rows).to_owned(),
            bias: bias.slice(ndarray::s![range.clone()]).to_owned(),
        };
        let input = self.nodes[idx].inputs.clone();
        self.emit(name, op, input, out, vec![range.len()]);
        Ok(())
    }

    fn split(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (ir, features) = self.vec_act(n, 0)?;
        if norm_axis(attr_i(n, "axis", 0), 2)? != 1 {
            return Err("only splitting along features (axis 1 or -1) is supported".into());
        }
        let outs = n.output.len();
        let sizes: Vec<i64> = if let Some(c) = self.konst(n, 1, "split sizes")? {
            c.plain_ints().map_err(|e| format!("split sizes {e}"))?
        } else if let Some(s) = attr_ints(n, "split") {
            s
        } else {
            // Equal parts, the last one smaller if needed (opset 18 `num_outputs`).
            let parts = attr(n, "num_outputs").map_or(outs as i64, |a| a.i).max(1) as usize;
            let each = features.div_ceil(parts);
            (0..parts).map(|k| each.min(features.saturating_sub(k * each)) as i64).collect()
        };
        if sizes.len() != outs || sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != features as i64 {
            return Err(format!("split sizes {sizes:?} do not divide {features} features into {outs} outputs"));
        }
        let mut start = 0;
        for (k, &s) in sizes.iter().enumerate() {
            let end = start + s as usize;
            if let Some(o) = n.output.get(k).filter(|o| !o.is_empty()) {
                self.dense_rows(n, &format!("{name}:{k}"), &ir, start..end, &o.clone())?;
            }
            start = end;
        }
        Ok(())
    }

    fn slice(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let ints = |imp: &Self, k: usize, attr_name: &str| -> Result<Option<Vec<i64>>, String> {
            match imp.konst(n, k, attr_name)? {
                Some(c) => c.plain_ints().map(Some).map_err(|e| format!("{attr_name} {e}")),
                None => Ok(attr_ints(n, attr_name)),
            }
        };
        if let Some(Val::Const(_)) = self.get(n, 0)? {
            return Err("slicing constants is not supported".into());
        }
        let (ir, features) = self.vec_act(n, 0)?;
        let starts = ints(self, 1, "starts")?.ok_or("starts are missing")?;
        let ends = ints(self, 2, "ends")?.ok_or("ends are missing")?;
        let axes = ints(self, 3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = ints(self, 4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
        if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err("starts, ends, axes and steps differ in length".into());
        }
        let mut range = 0..features;
        for k in 0..starts.len() {
            let axis = norm_axis(axes[k], 2)?;
            let clamp = |v: i64| -> usize {
                let f = features as i64;
                (if v < 0 { v + f } else { v }).clamp(0, f) as usize
            };
            if axis == 0 {
                if starts[k] == 0 && ends[k] >= i32::MAX as i64 && steps[k] == 1 {
                    continue; // The whole batch, as `h[:, a:b]` spells it.
                }
                return Err("slicing the batch axis is not supported".into());
            }
            if steps[k] != 1 {
                return Err(format!("step {} is not supported (only contiguous feature ranges)", steps[k]));
            }
            range = clamp(starts[k])..clamp(ends[k]).max(clamp(starts[k]));
        }
        if range.is_empty() {
            return Err("the slice is empty".into());
        }
        let out = Self::out(n, 0)?.to_string();
        self.dense_rows(n, name, &ir, range, &out)
    }

    // ---- layout (aliases) --------------------------------------------------------------

    fn alias(&mut self, n: &pb::NodeProto, from: &Val, dims: Vec<usize>) -> NodeResult {
        let v = match from {
            Val::Act { ir, .. } => Val::Act { ir: ir.clone(), dims },
            Val::Const(c) => Val::Const(Const { dims, data: c.data.clone() }),
        };
        self.set(n, v)
    }

    fn flatten(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axis = attr_i(n, "axis", 1);
        // Flatten's axis may also equal the rank, unlike most ops.
        let norm = |rank: usize| -> Result<usize, String> {
            let a = if axis < 0 { axis + rank as i64 } else { axis };
            usize::try_from(a)
                .ok()
                .filter(|&a| a <= rank)
                .ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
        };
        match &v {
            Val::Const(c) => {
                let a = norm(c.dims.len())?;
                let dims = vec![product(&c.dims[..a]), product(&c.dims[a..])];
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let a = norm(dims.len() + 1)?;
                if a == 0 || product(&dims[..a - 1]) != 1 {
                    return Err(format!(
                        "axis {axis} on per-sample shape {dims:?} would fold the batch into the features; use axis 1"
                    ));
                }
                let dims = vec![product(&dims[a - 1..])];
                self.alias(n, &v, dims)
            }
        }
    }

    fn reshape(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let target: Vec<IntDim> = match self.konst(n, 1, "target shape")? {
            Some(c) => c.ints().map_err(|e| format!("target shape {e}"))?.to_vec(),
            None => attr_ints(n, "shape").ok_or("the target shape is missing")?.into_iter().map(IntDim::Val).collect(),
        };
        let allow_zero = attr_i(n, "allowzero", 0) != 0;
        match &v {
            Val::Const(c) => {
                let mut dims = Vec::new();
                let mut infer = None;
                for (k, d) in target.iter().enumerate() {
                    match *d {
                        IntDim::Val(-1) => infer = Some(k),
                        IntDim::Val(0) if !allow_zero => dims.push(*c.dims.get(k).ok_or("copies a missing axis")?),
                        IntDim::Val(v) if v >= 0 => dims.push(v as usize),
                        _ => return Err(format!("target shape {target:?} is not supported for a constant")),
                    }
                    if infer == Some(k) {
                        dims.push(1);
                    }
                }
                if let Some(k) = infer {
                    let rest = product(&dims).max(1);
                    dims[k] = c.len() / rest;
                }
                if product(&dims) != c.len() {
                    return Err(format!("cannot reshape a constant of shape {:?} to {target:?}", c.dims));
                }
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let features = product(dims);
                let first = *target.first().ok_or("the target shape is empty")?;
                let keeps_batch = match first {
                    IntDim::Batch => true,
                    IntDim::Val(0) => !allow_zero,
                    IntDim::Val(b) => Some(b) == self.declared_batch && b > 0,
                };
                let mut rest = Vec::new();
                let mut infer = None;
                for (k, d) in target.iter().enumerate().skip(1) {
                    match *d {
                        IntDim::Val(-1) if infer.is_none() => {
                            infer = Some(rest.len());
                            rest.push(1);
                        }
                        IntDim::Val(0) if !allow_zero => rest.push(*dims.get(k - 1).ok_or("copies a missing axis")?),
                        IntDim::Val(v) if v > 0 => rest.push(v as usize),
                        _ => {
                            return Err(format!(
                            "target shape {} is not supported: tinyvae needs [batch, features...] with fixed features",
                            show_shape(&target)
                        ))
                        }
                    }
                }
                let ok = match (first, infer) {
                    (IntDim::Val(-1), None) => product(&rest) == features,
                    (_, None) => keeps_batch && product(&rest) == features,
                    (_, Some(k)) => {
                        let known = product(&rest);
                        // (`is_multiple_of` needs a newer Rust than the workspace's 1.85.)
                        #[allow(clippy::manual_is_multiple_of)]
                        let divides = known > 0 && features % known == 0;
                        if keeps_batch && divides {
                            rest[k] = features / known;
                            true
                        } else {
                            false
                        }
                    }
                };
                if !ok {
                    return Err(format!(
                        "reshaping per-sample shape {dims:?} to {} does not keep the batch axis; tinyvae needs [batch, features...]",
                        show_shape(&target)
                    ));
                }
                self.alias(n, &v, rest)
            }
        }
    }

    /// Axes from the `axes` input (opset 13+) or attribute (older opsets).
    fn axes(&self, n: &pb::NodeProto) -> Result<Option<Vec<i64>>, String> {
        match self.konst(n, 1, "axes")? {
            Some(c) => c.plain_ints().map(Some).map_err(|e| format!("axes {e}")),
            None => Ok(attr_ints(n, "axes")),
        }
    }

    fn unsqueeze(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axes = self.axes(n)?.ok_or("the axes are missing")?;
        // Full shape, batch axis included for activations (kept as a 0 placeholder).
        let (mut full, batch) = match &v {
            Val::Const(c) => (c.dims.clone(), false),
            Val::Act { dims, .. } => (std::iter::once(0).chain(dims.iter().copied()).collect::<Vec<_>>(), true),
        };
        let rank = full.len() + axes.len();
        let mut norm = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
        norm.sort_unstable();
        for &a in &norm {
            if batch && a == 0 {
                return Err("inserting an axis before the batch axis is not supported".into());
            }
            full.insert(a.min(full.len()), 1);
        }
        let dims = if batch { full[1..].to_vec() } else { full };
        self.alias(n, &v, dims)
    }

    fn squeeze(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let axes = self.axes(n)?;
        match &v {
            Val::Const(c) => {
                let dims = match axes {
                    None => c.dims.iter().copied().filter(|&d| d != 1).collect(),
                    Some(axes) => {
                        let norm = axes.iter().map(|&a| norm_axis(a, c.dims.len())).collect::<Result<Vec<_>, _>>()?;
                        c.dims.iter().enumerate().filter(|(k, _)| !norm.contains(k)).map(|(_, &d)| d).collect()
                    }
                };
                self.alias(n, &v, dims)
            }
            Val::Act { dims, .. } => {
                let axes = axes.ok_or("squeezing without explicit axes could drop the batch axis; give axes")?;
                let mut drop = Vec::new();
                for a in axes {
                    let a = norm_axis(a, dims.len() + 1)?;
                    if a == 0 || dims[a - 1] != 1 {
                        return Err(format!("axis {a} of per-sample shape {dims:?} cannot be squeezed"));
                    }
                    drop.push(a - 1);
                }
                let dims = dims.iter().enumerate().filter(|(k, _)| !drop.contains(k)).map(|(_, &d)| d).collect();
                self.alias(n, &v, dims)
            }
        }
    }

    fn identity(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        self.set(n, v)
    }

    /// Dropout is the identity at inference, which is what an exported model is for.
    fn dropout(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        if let Some(mask) = n.output.get(1).filter(|m| !m.is_empty()) {
            if self.uses(mask) > 0 {
                return Err(format!("its mask output `{mask}` is used; tinyvae runs Dropout as the identity"));
            }
        }
        if let Some(c) = self.konst(n, 2, "training_mode")? {
            if c.plain_ints().map_or(true, |v| v.iter().any(|&x| x != 0)) {
                return Err("training_mode is set; export the model in eval mode".into());
            }
        }
        self.identity(n, name)
    }

    fn cast(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let to = attr(n, "to").map(|a| a.i as i32).ok_or("the `to` attribute is missing")?;
        let v = self.need(n, 0)?.clone();
        let float = [DataType::Float, DataType::Double, DataType::Float16, DataType::Bfloat16].map(|t| t as i32);
        let int = [DataType::Int64, DataType::Int32].map(|t| t as i32);
        let out = match v {
            Val::Act { .. } if to == DataType::Float as i32 => v,
            Val::Act { .. } => {
                return Err(format!("casts a computed value to {}; tinyvae computes in FLOAT", type_name(to)))
            }
            Val::Const(c) if float.contains(&to) => {
                let data = match &c.data {
                    Data::F32(v) => Data::F32(v.clone()),
                    Data::Int(_) => Data::F32(c.plain_ints()?.iter().map(|&x| x as f32).collect()),
                };
                Val::Const(Const { dims: c.dims.clone(), data })
            }
            Val::Const(c) if int.contains(&to) => {
                let data = match &c.data {
                    Data::F32(v) => Data::Int(v.iter().map(|&x| IntDim::Val(x as i64)).collect()),
                    Data::Int(v) => Data::Int(v.clone()),
                };
                Val::Const(Const { dims: c.dims.clone(), data })
            }
            Val::Const(_) => return Err(format!("casting constants to {} is not supported", type_name(to))),
        };
        self.set(n, out)
    }

    fn transpose(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let v = self.need(n, 0)?.clone();
        let rank = match &v {
            Val::Const(c) => c.dims.len(),
            Val::Act { dims, .. } => dims.len() + 1,
        };
        let perm: Vec<usize> = match attr_ints(n, "perm") {
            Some(p) => p.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_, _>>()?,
            None => (0..rank).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..rank).collect::<Vec<_>>() {
            return Err(format!("perm {perm:?} is not a permutation of {rank} axes"));
        }
        match &v {
            Val::Const(c) => {
                let t = transpose_const(c, &perm)?;
                self.set(n, Val::Const(t))
            }
            Val::Act { dims, .. } => {
                if perm.iter().enumerate().any(|(k, &p)| k != p) {
                    return Err(format!(
                        "transposing a computed value of per-sample shape {dims:?} with perm {perm:?} is not supported"
                    ));
                }
                self.set(n, v.clone())
            }
        }
    }

    fn constant(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let a = n.attribute.first().ok_or("it has no value attribute")?;
        let c = match a.name.as_str() {
            "value" => const_from_proto(a.t.as_ref().ok_or("the value attribute holds no tensor")?)?,
            "value_float" => Const { dims: vec![], data: Data::F32(vec![a.f]) },
            "value_floats" => Const { dims: vec![a.floats.len()], data: Data::F32(a.floats.clone()) },
            "value_int" => Const { dims: vec![], data: Data::Int(vec![IntDim::Val(a.i)]) },
            "value_ints" => Const::ints1(a.ints.iter().map(|&v| IntDim::Val(v)).collect()),
            other => return Err(format!("constant attribute `{other}` is not supported")),
        };
        self.set(n, Val::Const(c))
    }

    fn shape(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let full: Vec<IntDim> = match self.need(n, 0)? {
            Val::Act { dims, .. } => {
                std::iter::once(IntDim::Batch).chain(dims.iter().map(|&d| IntDim::Val(d as i64))).collect()
            }
            Val::Const(c) => c.dims.iter().map(|&d| IntDim::Val(d as i64)).collect(),
        };
        let r = full.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
        let start = clamp(attr_i(n, "start", 0));
        let end = clamp(attr_i(n, "end", r)).max(start);
        self.set(n, Val::Const(Const::ints1(full[start..end].to_vec())))
    }

    fn gather(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let data = self.need_konst(n, 0, "data")?;
        let idx = self.need_konst(n, 1, "indices")?;
        if data.dims.len() != 1 || norm_axis(attr_i(n, "axis", 0), 1)? != 0 {
            return Err("only gathering from 1-D constants (shape vectors) is supported".into());
        }
        let len = data.len() as i64;
        let pick = idx
            .plain_ints()
            .map_err(|e| format!("indices {e}"))?
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + len } else { i };
                if (0..len).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(format!("index {i} is out of range for {len} values"))
                }
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let out = match &data.data {
            Data::Int(v) => Data::Int(pick.iter().map(|&j| v[j]).collect()),
            Data::F32(v) => Data::F32(pick.iter().map(|&j| v[j]).collect()),
        };
        let c = Const { dims: idx.dims.clone(), data: out };
        self.set(n, Val::Const(c))
    }
}

/// Permutes a constant's axes.
fn transpose_const(c: &Const, perm: &[usize]) -> Result<Const, String> {
    fn permute<T: Clone>(dims: &[usize], v: &[T], perm: &[usize]) -> Result<Vec<T>, String> {
        let a = ArrayD::from_shape_vec(IxDyn(dims), v.to_vec()).map_err(|e| e.to_string())?;
        Ok(a.permuted_axes(IxDyn(perm)).iter().cloned().collect())
    }
    let dims: Vec<usize> = perm.iter().map(|&p| c.dims[p]).collect();
    let data = match &c.data {
        Data::F32(v) => Data::F32(permute(&c.dims, v, perm)?),
        Data::Int(v) => Data::Int(permute(&c.dims, v, perm)?),
    };
    Ok(Const { dims, data })
}

fn show_shape(t: &[IntDim]) -> String {
    let parts: Vec<String> = t
        .iter()
        .map(|d| match d {
            IntDim::Batch => "batch".to_string(),
            IntDim::Val(v) => v.to_string(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}
