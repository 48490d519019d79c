//! Format version 2 end to end: blobs with convolutions, transposed convolutions, upsampling,
//! additions and the new activations, written by the writer, parse back with the same fields
//! and run through the public `Decoder` to the values a plain interpreter of the same spec
//! computes here (int8 bytes exactly, floats within rounding). Hostile versions of them are
//! errors, never panics; version-1 blobs cannot use any of it.

use tinyvae::format::write::{self, BlobSpec, MetaSpec, NodeSpec, TensorSpec};
use tinyvae::format::{self, ActKind, ConvGeometry, DType, EncoderHead, OutputKind, WeightLayout};
use tinyvae::kernels::{conv_layout, ConvDims, Shape};
use tinyvae::quant::{add_i8, quantize_i8, quantize_multiplier, requantize};
use tinyvae::{Decoder, Error, Model, ModelKind, Op, Precision, Rng};

/// A blob under construction: tensors get disjoint arena ranges (no reuse, so no node can
/// overlap another's tensors by accident).
struct Graph {
    precision: Precision,
    /// How convolutions store their weights.
    layout: WeightLayout,
    tensors: Vec<TensorSpec>,
    nodes: Vec<NodeSpec>,
    arena: u32,
    rng: Rng,
}

impl Graph {
    fn new(precision: Precision, layout: WeightLayout, seed: u64) -> Self {
        Graph { precision, layout, tensors: Vec::new(), nodes: Vec::new(), arena: 0, rng: Rng::new(seed) }
    }

    fn dtype(&self) -> DType {
        if self.precision == Precision::Int8 {
            DType::I8
        } else {
            DType::F32
        }
    }

    /// A tensor of `[c, h, w]` (flat when `h == 0`), with int8 parameters.
    fn tensor(&mut self, [c, h, w]: [u16; 3], scale: f32, zero_point: i32) -> u16 {
        let len = c as u32 * h.max(1) as u32 * w.max(1) as u32;
        let dtype = self.dtype();
        let t = TensorSpec {
            dtype,
            len,
            arena_offset: self.arena,
            scale,
            zero_point,
            height: h,
            width: if h == 0 { 0 } else { w },
        };
        self.arena += (len * dtype.size() as u32).div_ceil(16) * 16;
        self.tensors.push(t);
        (self.tensors.len() - 1) as u16
    }

    fn weight_dtype(&self) -> DType {
        match self.precision {
            Precision::Int8 => DType::I8,
            Precision::F16 => DType::F16,
            Precision::F32 => DType::F32,
        }
    }

    /// Weights, bias and requantization for `rows x cols`: int8 codes in -127..=127 with
    /// multipliers that keep outputs mostly in range and the input zero point folded into the
    /// bias when `fold_zp` says so; floats `code / 256`.
    fn arrays(&mut self, rows: u32, cols: u32, fold_zp: Option<i32>) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let codes: Vec<i8> = (0..rows * cols).map(|_| (self.rng.below(255) as i32 - 127) as i8).collect();
        match self.weight_dtype() {
            DType::I8 => {
                let (m, s) = quantize_multiplier(40.0 / (8000.0 * (cols as f64).sqrt())).unwrap();
                let (mut bias, mut mults, mut shifts, mut sums) = (vec![], vec![], vec![], vec![]);
                for row in codes.chunks(cols as usize) {
                    let sum: i32 = row.iter().map(|&w| w as i32).sum();
                    let b = self.rng.below(4001) as i32 - 2000 - fold_zp.unwrap_or(0) * sum;
                    bias.extend(b.to_le_bytes());
                    mults.extend(m.to_le_bytes());
                    shifts.extend(s.to_le_bytes());
                    sums.extend(sum.to_le_bytes());
                }
                (codes.iter().map(|&w| w as u8).collect(), bias, [mults, shifts, sums].concat())
            }
            dtype => {
                let w: Vec<u8> = codes
                    .iter()
                    .flat_map(|&c| {
                        let v = c as f32 / 256.0;
                        if dtype == DType::F16 {
                            half::f16::from_f32(v).to_le_bytes().to_vec()
                        } else {
                            v.to_le_bytes().to_vec()
                        }
                    })
                    .collect();
                let bias = (0..rows).flat_map(|o| (o as f32 * 0.05 - 0.1).to_le_bytes()).collect();
                (w, bias, vec![])
            }
        }
    }

    fn t(&self, id: u16) -> &TensorSpec {
        &self.tensors[id as usize]
    }

    fn dense(&mut self, input: u16, output: u16, relu: bool) {
        let (rows, cols) = (self.t(output).len, self.t(input).len);
        let zp_in = self.t(input).zero_point;
        let zp_out = self.t(output).zero_point;
        let (weights, bias, requant) = self.arrays(rows, cols, Some(zp_in));
        let weight_dtype = self.weight_dtype();
        let act = if relu { ActKind::Relu } else { ActKind::None };
        let act_min = if relu && weight_dtype == DType::I8 { zp_out as i8 } else { -128 };
        let layout = WeightLayout::RowMajor;
        self.nodes.push(NodeSpec::Dense {
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
            act_max: 127,
        });
    }

    fn conv(&mut self, input: u16, output: u16, transposed: bool, geometry: ConvGeometry, relu: bool) {
        let (x, y) = (self.t(input).clone(), self.t(output).clone());
        let cin = x.len / (x.height as u32 * x.width as u32);
        let rows = y.len / (y.height as u32 * y.width as u32);
        let cols = cin / geometry.groups as u32 * geometry.kh as u32 * geometry.kw as u32;
        let fold = (!transposed).then_some(x.zero_point);
        let (weights, bias, requant) = self.arrays(rows, cols, fold);
        let weight_dtype = self.weight_dtype();
        let act_min = if relu && weight_dtype == DType::I8 { y.zero_point as i8 } else { -128 };
        self.nodes.push(NodeSpec::Conv {
            input,
            output,
            transposed,
            geometry,
            rows,
            cols,
            weight_dtype,
            layout: self.layout,
            weights,
            bias,
            requant,
            act: if relu { ActKind::Relu } else { ActKind::None },
            act_min,
            act_max: 127,
        });
    }

    /// `a + b`: int8 parameters as TFLite's quantizer makes them.
    fn add(&mut self, a: u16, b: u16, output: u16, relu: bool) {
        let requant = if self.precision == Precision::Int8 {
            let (s_a, s_b, s_out) = (self.t(a).scale as f64, self.t(b).scale as f64, self.t(output).scale as f64);
            let shared = 2.0 * s_a.max(s_b);
            [s_a / shared, s_b / shared, shared / ((1u64 << 20) as f64 * s_out)]
                .iter()
                .flat_map(|&r| {
                    let (m, s) = quantize_multiplier(r).unwrap();
                    [m.to_le_bytes(), s.to_le_bytes()].concat()
                })
                .collect()
        } else {
            vec![]
        };
        let zp = self.t(output).zero_point;
        let int8 = self.precision == Precision::Int8;
        let act_min = if relu && int8 { zp as i8 } else { -128 };
        let act = if relu { ActKind::Relu } else { ActKind::None };
        self.nodes.push(NodeSpec::Add { a, b, output, requant, act, act_min, act_max: 127 });
    }

    fn finish(self, latent: u16, output: u16, width: u16, height: u16) -> BlobSpec {
        BlobSpec {
            kind: ModelKind::Decoder,
            precision: self.precision,
            arena_bytes: self.arena,
            tensors: self.tensors,
            nodes: self.nodes,
            inputs: vec![0],
            outputs: vec![output],
            meta: MetaSpec {
                latent,
                classes: 0,
                width,
                height,
                output_kind: OutputKind::Bernoulli,
                head: EncoderHead::None,
            },
        }
    }
}

/// A decoder that uses every version-2 op: z (4) -> Dense to [2, 4, 4] (ReLU) ->
/// ConvTranspose k4 s2 p1 to [3, 8, 8] (ReLU) -> depthwise Conv 3x3 -> Add (residual) ->
/// SiLU (float) -> Upsample 2 x 1 to [3, 16, 8] -> Conv k3 s2 p1 dilation 1 to [1, 8, 4] ->
/// sigmoid: 8 x 4 pixels. int8 graphs take the activations as tables. Convolutions store
/// their weights in `layout` (tap-major: format version 3).
fn every_op_decoder(precision: Precision, layout: WeightLayout) -> BlobSpec {
    let mut g = Graph::new(precision, layout, 7 + precision.code() as u64);
    let z = g.tensor([4, 0, 0], 0.02, 3);
    let h = g.tensor([2, 4, 4], 0.05, -128);
    g.dense(z, h, true);
    let up = g.tensor([3, 8, 8], 0.04, -128);
    g.conv(h, up, true, ConvGeometry::square(4, 2, 1), true);
    let dw = g.tensor([3, 8, 8], 0.06, 5);
    g.conv(up, dw, false, ConvGeometry { groups: 3, ..ConvGeometry::square(3, 1, 1) }, false);
    let sum = g.tensor([3, 8, 8], 0.08, -20);
    g.add(up, dw, sum, false);
    let act = if precision == Precision::Int8 {
        let a = g.tensor([3, 8, 8], 0.05, -100);
        let table = std::array::from_fn(|i| {
            let x = (i as f32 - 128.0 + 20.0) * 0.08;
            let y = x / (1.0 + (-x).exp());
            quantize_i8(y, 0.05, -100) as u8
        });
        g.nodes.push(NodeSpec::Lut { input: sum, output: a, table });
        a
    } else {
        let a = g.tensor([3, 8, 8], 0.0, 0);
        g.nodes.push(NodeSpec::Activation { input: sum, output: a, act: ActKind::Silu, alpha: 0.0 });
        a
    };
    let tall = g.tensor([3, 16, 8], 0.05, -100);
    g.nodes.push(NodeSpec::Upsample { input: act, output: tall, factor_h: 2, factor_w: 1 });
    let logits = g.tensor([1, 8, 4], 0.05, 0);
    g.conv(tall, logits, false, ConvGeometry::square(3, 2, 1), false);
    let px = if precision == Precision::Int8 {
        let px = g.tensor([1, 8, 4], 1.0 / 255.0, -128);
        let table = std::array::from_fn(|i| {
            let p = 1.0 / (1.0 + (-(i as f32 - 128.0) * 0.05).exp());
            quantize_i8(p, 1.0 / 255.0, -128) as u8
        });
        g.nodes.push(NodeSpec::Lut { input: logits, output: px, table });
        px
    } else {
        let px = g.tensor([1, 8, 4], 0.0, 0);
        g.nodes.push(NodeSpec::Activation { input: logits, output: px, act: ActKind::Sigmoid, alpha: 0.0 });
        px
    };
    g.finish(4, px, 4, 8)
}

// ---------------------------------------------------------------------------------------------
// A plain interpreter of a spec, written from FORMAT.md: every op by its definition.

/// `spec` as the blob stores it: a tap-major convolution's arrays, which the builder makes
/// row-major (what `interpret` reads), reordered as the quantizer does.
fn stored(spec: &BlobSpec) -> BlobSpec {
    let mut out = spec.clone();
    for node in &mut out.nodes {
        if let NodeSpec::Conv {
            input,
            output,
            transposed,
            geometry,
            weight_dtype,
            layout: WeightLayout::TapMajor,
            weights,
            bias,
            requant,
            ..
        } = node
        {
            let shape = |t: &TensorSpec| {
                let plane = t.height as usize * t.width as usize;
                Shape::new(t.len as usize / plane, t.height as usize, t.width as usize)
            };
            let (x, y) = (&spec.tensors[*input as usize], &spec.tensors[*output as usize]);
            let d = ConvDims::new(geometry, shape(x), shape(y), *transposed).unwrap();
            let zp = (*weight_dtype == DType::I8).then_some(x.zero_point);
            let arrays = (&weights[..], &bias[..], &requant[..]);
            (*weights, *bias, *requant) =
                conv_layout::tap_major_arrays(&d, *transposed, weight_dtype.size(), zp, arrays).unwrap();
        }
    }
    out
}

fn le_i32(b: &[u8], i: usize) -> i32 {
    i32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
}

fn weight_f64(dtype: DType, w: &[u8], i: usize) -> f64 {
    match dtype {
        DType::F16 => half::f16::from_le_bytes([w[2 * i], w[2 * i + 1]]).to_f64(),
        DType::F32 => f32::from_le_bytes(w[4 * i..4 * i + 4].try_into().unwrap()) as f64,
        DType::I8 => w[i] as i8 as f64,
    }
}

/// `[c, h, w]` of a tensor (flat: `[len, 1, 1]`).
fn dims(t: &TensorSpec) -> (usize, usize, usize) {
    let (h, w) = (t.height.max(1) as usize, t.width.max(1) as usize);
    (t.len as usize / (h * w), h, w)
}

/// Input channel, kernel row and column, and the input position (`None`: padding).
type Tap = (usize, usize, usize, Option<(usize, usize)>);

/// For output `(o, oy, ox)` of a convolution node: every `(c_global, ky, kx, Some((iy, ix)))`
/// term, `None` for a padded position; for a transposed one only the terms some input scatters
/// into it.
fn conv_terms(
    transposed: bool,
    g: &ConvGeometry,
    x: (usize, usize, usize),
    y: (usize, usize, usize),
    (o, oy, ox): (usize, usize, usize),
) -> Vec<Tap> {
    let (kh, kw) = (g.kh as usize, g.kw as usize);
    let mut terms = Vec::new();
    if transposed {
        for c in 0..x.0 {
            for iy in 0..x.1 {
                for ix in 0..x.2 {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let ty = (iy * g.stride_h as usize + ky) as isize - g.pad_top as isize;
                            let tx = (ix * g.stride_w as usize + kx) as isize - g.pad_left as isize;
                            if ty == oy as isize && tx == ox as isize {
                                terms.push((c, ky, kx, Some((iy, ix))));
                            }
                        }
                    }
                }
            }
        }
    } else {
        let groups = g.groups as usize;
        let (cin_g, cout_g) = (x.0 / groups, y.0 / groups);
        let group = o / cout_g;
        for c in 0..cin_g {
            for ky in 0..kh {
                for kx in 0..kw {
                    let iy = (oy * g.stride_h as usize + ky * g.dilation_h as usize) as isize - g.pad_top as isize;
                    let ix = (ox * g.stride_w as usize + kx * g.dilation_w as usize) as isize - g.pad_left as isize;
                    let inside = iy >= 0 && ix >= 0 && (iy as usize) < x.1 && (ix as usize) < x.2;
                    terms.push((group * cin_g + c, ky, kx, inside.then_some((iy as usize, ix as usize))));
                }
            }
        }
    }
    terms
}

/// Runs `spec` on one sample: float graphs on f64 values, int8 graphs on codes (kept as f64).
fn interpret(spec: &BlobSpec, z: &[f32]) -> Vec<f64> {
    let int8 = spec.precision == Precision::Int8;
    let mut values: Vec<Vec<f64>> = vec![vec![]; spec.tensors.len()];
    let t0 = &spec.tensors[spec.inputs[0] as usize];
    values[spec.inputs[0] as usize] =
        z.iter().map(|&v| if int8 { quantize_i8(v, t0.scale, t0.zero_point) as f64 } else { v as f64 }).collect();
    let requant = |acc: i32, q: &[u8], rows: usize, o: usize, y: &TensorSpec, min: i8, max: i8| {
        requantize(acc, le_i32(q, o), le_i32(q, rows + o), y.zero_point, min, max) as f64
    };
    for node in &spec.nodes {
        match node {
            NodeSpec::Dense {
                input,
                output,
                rows,
                cols,
                weight_dtype,
                weights,
                bias,
                requant: q,
                act,
                act_min,
                act_max,
                ..
            } => {
                let x = values[*input as usize].clone();
                let y = &spec.tensors[*output as usize];
                let (rows, cols) = (*rows as usize, *cols as usize);
                values[*output as usize] = (0..rows)
                    .map(|o| {
                        if int8 {
                            let acc = (0..cols).fold(le_i32(bias, o), |s, k| {
                                s.wrapping_add(weights[o * cols + k] as i8 as i32 * x[k] as i32)
                            });
                            requant(acc, q, rows, o, y, *act_min, *act_max)
                        } else {
                            let b = f32::from_le_bytes(bias[4 * o..4 * o + 4].try_into().unwrap()) as f64;
                            let v = b
                                + (0..cols)
                                    .map(|k| weight_f64(*weight_dtype, weights, o * cols + k) * x[k])
                                    .sum::<f64>();
                            if *act == ActKind::Relu {
                                v.max(0.0)
                            } else {
                                v
                            }
                        }
                    })
                    .collect();
            }
            NodeSpec::Conv {
                input,
                output,
                transposed,
                geometry,
                rows,
                cols,
                weight_dtype,
                weights,
                bias,
                requant: q,
                act,
                act_min,
                act_max,
                ..
            } => {
                let xt = &spec.tensors[*input as usize];
                let y = &spec.tensors[*output as usize];
                let (xd, yd) = (dims(xt), dims(y));
                let x = values[*input as usize].clone();
                let (rows, cols) = (*rows as usize, *cols as usize);
                let (kh, kw) = (geometry.kh as usize, geometry.kw as usize);
                let cin_g = cols / (kh * kw);
                let mut out = Vec::new();
                for o in 0..yd.0 {
                    for oy in 0..yd.1 {
                        for ox in 0..yd.2 {
                            let terms = conv_terms(*transposed, geometry, xd, yd, (o, oy, ox));
                            let widx = |c: usize, ky: usize, kx: usize| o * cols + ((c % cin_g) * kh + ky) * kw + kx;
                            let xval = |c: usize, p: Option<(usize, usize)>| match p {
                                Some((iy, ix)) => x[(c * xd.1 + iy) * xd.2 + ix],
                                None if int8 => xt.zero_point as f64,
                                None => 0.0,
                            };
                            if int8 {
                                let zp_sub = if *transposed { xt.zero_point } else { 0 };
                                let acc = terms.iter().fold(le_i32(bias, o), |s, &(c, ky, kx, p)| {
                                    let w = weights[widx(c, ky, kx)] as i8 as i32;
                                    s.wrapping_add(w * (xval(c, p) as i32 - zp_sub))
                                });
                                out.push(requant(acc, q, rows, o, y, *act_min, *act_max));
                            } else {
                                let b = f32::from_le_bytes(bias[4 * o..4 * o + 4].try_into().unwrap()) as f64;
                                let v = terms.iter().fold(b, |s, &(c, ky, kx, p)| {
                                    s + weight_f64(*weight_dtype, weights, widx(c, ky, kx)) * xval(c, p)
                                });
                                out.push(if *act == ActKind::Relu { v.max(0.0) } else { v });
                            }
                        }
                    }
                }
                values[*output as usize] = out;
            }
            NodeSpec::Upsample { input, output, factor_h, factor_w } => {
                let xd = dims(&spec.tensors[*input as usize]);
                let yd = dims(&spec.tensors[*output as usize]);
                let x = &values[*input as usize];
                let mut out = Vec::new();
                for c in 0..yd.0 {
                    for oy in 0..yd.1 {
                        for ox in 0..yd.2 {
                            out.push(x[(c * xd.1 + oy / *factor_h as usize) * xd.2 + ox / *factor_w as usize]);
                        }
                    }
                }
                values[*output as usize] = out;
            }
            NodeSpec::Add { a, b, output, requant: q, act, act_min, act_max } => {
                let (ta, tb, ty) =
                    (&spec.tensors[*a as usize], &spec.tensors[*b as usize], &spec.tensors[*output as usize]);
                let (va, vb) = (values[*a as usize].clone(), values[*b as usize].clone());
                values[*output as usize] = va
                    .iter()
                    .zip(&vb)
                    .map(|(&x, &y)| {
                        if int8 {
                            let zps = [ta.zero_point, tb.zero_point, ty.zero_point];
                            let m = [le_i32(q, 0), le_i32(q, 2), le_i32(q, 4)];
                            let s = [le_i32(q, 1), le_i32(q, 3), le_i32(q, 5)];
                            add_i8(x as i8, y as i8, zps, m, s, *act_min, *act_max) as f64
                        } else if *act == ActKind::Relu {
                            (x + y).max(0.0)
                        } else {
                            x + y
                        }
                    })
                    .collect();
            }
            NodeSpec::Lut { input, output, table } => {
                values[*output as usize] =
                    values[*input as usize].iter().map(|&q| table[(q as i32 + 128) as usize] as i8 as f64).collect();
            }
            NodeSpec::Activation { input, output, act, .. } => {
                let f = |x: f64| match act {
                    ActKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
                    ActKind::Silu => x / (1.0 + (-x).exp()),
                    ActKind::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
                    ActKind::Tanh => x.tanh(),
                    ActKind::Relu => x.max(0.0),
                    other => panic!("interpreter lacks {other}"),
                };
                values[*output as usize] = values[*input as usize].iter().map(|&x| f(x)).collect();
            }
            NodeSpec::Concat { .. } => panic!("not used here"),
        }
    }
    values[spec.outputs[0] as usize].clone()
}

/// The decoder's f32 outputs for a batch of z's, and its pixels.
fn run_decoder(blob: &[u8], z: &[f32], batch: usize) -> (Vec<f32>, Vec<u8>) {
    let m = Model::parse(blob).expect("parse");
    let d = Decoder::new(&m).unwrap();
    let mut arena = vec![0u8; m.arena_size_for_batch(batch).unwrap()];
    let mut out = vec![0f32; batch * d.output_len()];
    d.decode_batch_f32(z, None, batch, &mut arena, &mut out).unwrap();
    let mut px = vec![0u8; batch * d.output_len()];
    d.decode_batch(z, None, batch, &mut arena, &mut px).unwrap();
    (out, px)
}

#[test]
fn every_new_op_runs_as_its_definition_in_each_precision_and_layout() {
    let layouts = [(WeightLayout::RowMajor, 2), (WeightLayout::TapMajor, 3)];
    for ((layout, version), precision) in
        layouts.into_iter().flat_map(|l| [Precision::Int8, Precision::F16, Precision::F32].map(|p| (l, p)))
    {
        let spec = every_op_decoder(precision, layout);
        let blob = write::write(&stored(&spec));
        assert_eq!(u16::from_le_bytes([blob[4], blob[5]]), version, "{precision} {layout}: version");
        let batch = 3;
        let mut z = vec![0f32; 4 * batch];
        Rng::new(9).fill_gaussian(&mut z);
        let (out, px) = run_decoder(&blob, &z, batch);
        let m = Model::parse(&blob).unwrap();
        let y = m.output(0).unwrap();
        for s in 0..batch {
            let want = interpret(&spec, &z[4 * s..4 * s + 4]);
            let got = &out[32 * s..32 * (s + 1)];
            if precision == Precision::Int8 {
                let codes: Vec<f64> = got.iter().map(|&v| (v / y.scale).round() as f64 + y.zero_point as f64).collect();
                assert_eq!(codes, want, "int8 sample {s}");
                let pixels: Vec<u8> = want.iter().map(|&q| (q as i32 + 128) as u8).collect();
                assert_eq!(&px[32 * s..32 * (s + 1)], &pixels[..]);
            } else {
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!((g as f64 - w).abs() < 2e-5, "{precision} sample {s} out[{i}]: {g} vs {w}");
                }
            }
        }
        // Outputs vary (the graph is not degenerate).
        assert!(px.iter().any(|&p| p != px[0]), "{precision}: constant output");
    }
}

#[test]
fn written_fields_parse_back() {
    for precision in [Precision::Int8, Precision::F16, Precision::F32] {
        let spec = every_op_decoder(precision, WeightLayout::RowMajor);
        let blob = write::write(&spec);
        let m = Model::parse(&blob).unwrap();
        assert_eq!(m.version(), 2);
        assert_eq!(m.tensor_count(), spec.tensors.len());
        for (i, t) in spec.tensors.iter().enumerate() {
            let info = m.tensor(i as u16).unwrap();
            assert_eq!((info.len, info.height, info.width), (t.len as usize, t.height as usize, t.width as usize));
            if t.height > 0 {
                assert_eq!(info.channels() * info.height * info.width, info.len);
                assert_eq!(info.shape().unwrap().channels, info.channels());
            } else {
                assert!(info.shape().is_none());
            }
        }
        let ops: Vec<Op> = (0..m.node_count()).map(|i| m.node(i).unwrap().op).collect();
        let act = if precision == Precision::Int8 { Op::Lut } else { Op::Activation };
        assert_eq!(ops, [Op::Dense, Op::ConvTranspose, Op::Conv, Op::Add, act, Op::Upsample, Op::Conv, act]);
        let ct = m.node(1).unwrap();
        assert_eq!(ct.geometry, ConvGeometry::square(4, 2, 1));
        assert_eq!((ct.rows, ct.cols, ct.act), (3, 2 * 16, ActKind::Relu));
        let dw = m.node(2).unwrap();
        assert_eq!((dw.geometry.groups, dw.rows, dw.cols), (3, 3, 9));
        let add = m.node(3).unwrap();
        assert_eq!((add.input, add.input2, add.output), (2, Some(3), 4));
        assert_eq!(add.aux.len(), if precision == Precision::Int8 { 24 } else { 0 });
        let up = m.node(5).unwrap();
        assert_eq!((up.geometry.stride_h, up.geometry.stride_w, up.geometry.kh), (2, 1, 0));
        if precision != Precision::Int8 {
            assert_eq!(m.node(4).unwrap().act, ActKind::Silu);
        }
        // True MACs: Dense 4 x 32; ConvTranspose k4 s2 p1 4 -> 8: 2 taps per output but one at
        // each edge, 14 per axis; depthwise 3x3 p1 on 8 x 8: 3 taps inside but 2 at each edge,
        // 22 per axis; the last conv k3 s2 p1 16 x 8 -> 8 x 4: 23 rows of taps, 11 columns.
        let want = [4 * 32, 3 * 2 * 14 * 14, 3 * 22 * 22, 0, 0, 0, 3 * 23 * 11, 0];
        let got: Vec<u64> = (0..m.node_count()).map(|i| m.node_macs(i).unwrap()).collect();
        assert_eq!(got, want);
        assert_eq!(m.macs() as u64, want.iter().sum::<u64>());
        assert_eq!(m.node_macs(m.node_count()), None);
        assert_eq!(format::arena_size_of(&blob), Some(m.arena_size()));
        // The same spec written twice: the same bytes.
        assert_eq!(blob, write::write(&spec));
    }
}

#[test]
fn conv_transpose_macs_count_only_valid_taps() {
    // Kernel 4, stride 2, padding 1, 7 x 7 -> 14 x 14: per axis 2 taps per output, 1 at the
    // first and last: 26; so Cout * Cin * 26 * 26 MACs (not Cout * Cin * 16 * 14 * 14).
    let mut g = Graph::new(Precision::F32, WeightLayout::RowMajor, 3);
    let z = g.tensor([5 * 7 * 7, 0, 0], 0.0, 0);
    let x = g.tensor([5, 7, 7], 0.0, 0);
    g.dense(z, x, false);
    let y = g.tensor([2, 14, 14], 0.0, 0);
    g.conv(x, y, true, ConvGeometry::square(4, 2, 1), false);
    let blob = write::write(&g.finish(245, y, 14, 28));
    let m = Model::parse(&blob).unwrap();
    assert_eq!(m.node_macs(1), Some(2 * 5 * 26 * 26));
}

#[test]
fn the_example_conv_decoder_decodes_through_the_public_api() {
    let blob = write::example_conv_decoder();
    let m = Model::parse(&blob).unwrap();
    assert_eq!((m.version(), m.precision(), m.kind()), (2, Precision::Int8, ModelKind::Decoder));
    assert_eq!(m.node(1).unwrap().op, Op::ConvTranspose);
    let d = Decoder::new(&m).unwrap();
    assert_eq!((d.latent_dim(), d.output_len()), (4, 36));
    let mut arena = vec![0u8; m.arena_size()];
    let (mut a, mut b) = ([0u8; 36], [0u8; 36]);
    d.sample(&mut Rng::new(3), &mut arena, &mut a).unwrap();
    d.sample(&mut Rng::new(3), &mut arena, &mut b).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().any(|&p| p != a[0]));
    // Every kernel table gives the same bytes.
    for k in tinyvae::kernels::available() {
        let mut c = [0u8; 36];
        d.with_kernels(k).sample(&mut Rng::new(3), &mut arena, &mut c).unwrap();
        assert_eq!(a, c, "{}", k.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Rejections.

/// Writes `spec` after `edit` and returns the parser's error.
fn parse_error(mut spec: BlobSpec, edit: impl FnOnce(&mut BlobSpec)) -> Error {
    edit(&mut spec);
    match Model::parse(&write::write(&stored(&spec))) {
        Ok(_) => panic!("the edited blob was accepted"),
        Err(e) => e,
    }
}

fn node_field(e: Error) -> &'static str {
    match e {
        Error::BadNode { field, .. } | Error::BadTensor { field, .. } => field,
        other => panic!("unexpected error {other:?}"),
    }
}

fn conv_at(spec: &mut BlobSpec, i: usize) -> &mut NodeSpec {
    &mut spec.nodes[i]
}

#[test]
fn bad_geometry_and_shapes_are_errors_naming_the_field() {
    let spec = every_op_decoder(Precision::Int8, WeightLayout::RowMajor);
    let geometry = |f: fn(&mut ConvGeometry)| {
        let mut s = spec.clone();
        if let NodeSpec::Conv { geometry, .. } = conv_at(&mut s, 2) {
            f(geometry);
        }
        node_field(Model::parse(&write::write(&s)).unwrap_err())
    };
    assert!(geometry(|g| g.kh = 0).contains("kernel"));
    assert!(geometry(|g| g.stride_w = 0).contains("stride"));
    assert!(geometry(|g| g.dilation_h = 0).contains("dilation"));
    assert!(geometry(|g| g.groups = 2).contains("groups"), "3 channels in 2 groups");
    assert!(geometry(|g| g.groups = 0).contains("groups"));
    assert!(geometry(|g| g.kh = 5).contains("cols"));
    // ConvTranspose takes one group and no dilation.
    let transpose = |f: fn(&mut ConvGeometry)| {
        let mut s = spec.clone();
        if let NodeSpec::Conv { geometry, .. } = conv_at(&mut s, 1) {
            f(geometry);
        }
        node_field(Model::parse(&write::write(&s)).unwrap_err())
    };
    assert!(transpose(|g| g.groups = 2).contains("ConvTranspose takes 1"));
    assert!(transpose(|g| g.dilation_w = 2).contains("ConvTranspose takes 1"));
    // A length that height x width does not divide; one of the two zero.
    let e = parse_error(spec.clone(), |s| s.tensors[1].len = 33);
    assert!(matches!(e, Error::BadTensor { index: 1, field } if field.contains("height/width")), "{e:?}");
    let e = parse_error(spec.clone(), |s| s.tensors[1].width = 0);
    assert!(matches!(e, Error::BadTensor { index: 1, .. }), "{e:?}");
    // A convolution on a flat tensor; an output of the wrong channel count (rows).
    let e = parse_error(spec.clone(), |s| (s.tensors[1].height, s.tensors[1].width) = (0, 0));
    assert!(node_field(e).contains("input shape"));
    let e = parse_error(spec.clone(), |s| (s.tensors[2].height, s.tensors[2].width) = (8, 4));
    assert!(node_field(e).contains("rows"), "{e:?}");
    // Weights of the wrong length, a -128 weight, a wrong weight sum.
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Conv { weights, .. } = conv_at(s, 2) {
            weights.pop();
        }
    });
    assert_eq!(node_field(e), "weights");
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Conv { weights, .. } = conv_at(s, 2) {
            weights[0] = 0x80;
        }
    });
    assert!(node_field(e).contains("weight"));
    // Output overlapping the input in the arena.
    let e = parse_error(spec.clone(), |s| s.tensors[3].arena_offset = s.tensors[2].arena_offset);
    assert_eq!(node_field(e), "arena overlap");
}

#[test]
fn upsample_add_and_concat_rules_are_checked() {
    let spec = every_op_decoder(Precision::Int8, WeightLayout::RowMajor);
    // Upsample copies codes: input and output must share scale and zero point.
    let e = parse_error(spec.clone(), |s| s.tensors[6].zero_point += 1);
    assert!(node_field(e).contains("quantization"), "{e:?}");
    let e = parse_error(spec.clone(), |s| s.tensors[6].scale *= 2.0);
    assert!(node_field(e).contains("quantization"));
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Upsample { factor_h, .. } = &mut s.nodes[5] {
            *factor_h = 3;
        }
    });
    assert!(node_field(e).contains("output shape"));
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Upsample { factor_w, .. } = &mut s.nodes[5] {
            *factor_w = 0;
        }
    });
    assert!(node_field(e).contains("factors"));
    // Add: a shift out of range, a negative multiplier, short parameters, lengths that differ.
    for (at, v) in [(4usize, 31i32), (12, -32), (0, -1)] {
        let e = parse_error(spec.clone(), |s| {
            if let NodeSpec::Add { requant, .. } = &mut s.nodes[3] {
                requant[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
        });
        assert_eq!(node_field(e), "requant", "{at} = {v}");
    }
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Add { requant, .. } = &mut s.nodes[3] {
            requant.truncate(20);
        }
    });
    assert!(node_field(e).contains("requant"));
    let e = parse_error(spec.clone(), |s| {
        if let NodeSpec::Add { b, .. } = &mut s.nodes[3] {
            *b = 1;
        }
    });
    assert!(node_field(e).contains("len"));
    // Float Add takes no parameters; SiLU is not a fused activation.
    let fspec = every_op_decoder(Precision::F32, WeightLayout::RowMajor);
    let e = parse_error(fspec.clone(), |s| {
        if let NodeSpec::Add { requant, .. } = &mut s.nodes[3] {
            *requant = vec![0; 24];
        }
    });
    assert_eq!(node_field(e), "aux");
    let e = parse_error(fspec, |s| {
        if let NodeSpec::Conv { act, .. } = &mut s.nodes[2] {
            *act = ActKind::Silu;
        }
    });
    assert_eq!(node_field(e), "act");
}

#[test]
fn version_1_blobs_cannot_use_version_2_features() {
    // A float decoder with a flat Add and a SiLU: version 2 only through its ops.
    let mut g = Graph::new(Precision::F32, WeightLayout::RowMajor, 5);
    let z = g.tensor([4, 0, 0], 0.0, 0);
    let a = g.tensor([8, 0, 0], 0.0, 0);
    g.dense(z, a, false);
    let b = g.tensor([8, 0, 0], 0.0, 0);
    g.dense(z, b, true);
    let s = g.tensor([8, 0, 0], 0.0, 0);
    g.add(a, b, s, false);
    let y = g.tensor([8, 0, 0], 0.0, 0);
    g.nodes.push(NodeSpec::Activation { input: s, output: y, act: ActKind::Silu, alpha: 0.0 });
    let spec = g.finish(4, y, 0, 0);
    assert_eq!(write::version_for(&spec), 2);
    let as_version_1 = |spec: &BlobSpec| {
        let mut blob = write::write(spec);
        blob[4..6].copy_from_slice(&1u16.to_le_bytes());
        let crc = format::crc32(&blob[format::CHECKSUM_START..]);
        blob[12..16].copy_from_slice(&crc.to_le_bytes());
        Model::parse(&blob).map(|m| m.version())
    };
    assert_eq!(
        as_version_1(&spec).unwrap_err(),
        Error::BadNode { index: 2, field: "op (a version 2 op in a version 1 blob)" }
    );
    let mut silu_only = spec.clone();
    silu_only.nodes.remove(2);
    if let NodeSpec::Activation { input, .. } = &mut silu_only.nodes[2] {
        *input = a;
    }
    assert_eq!(Model::parse(&write::write(&silu_only)).unwrap().version(), 2);
    let e = as_version_1(&silu_only).unwrap_err();
    assert_eq!(e, Error::BadNode { index: 2, field: "act (a version 2 activation in a version 1 blob)" });
    // Shaped tensors.
    let e = as_version_1(&every_op_decoder(Precision::F32, WeightLayout::RowMajor)).unwrap_err();
    assert!(matches!(e, Error::BadTensor { index: 1, field } if field.contains("version 2")), "{e:?}");
    // Without any of it the writer writes version 1, and it parses as such.
    let mut dense_only = silu_only.clone();
    if let NodeSpec::Activation { act, .. } = &mut dense_only.nodes[2] {
        *act = ActKind::Tanh;
    }
    assert_eq!(write::version_for(&dense_only), 1);
    assert_eq!(Model::parse(&write::write(&dense_only)).unwrap().version(), 1);
    // Version 2 gives the reserved node bytes a meaning: a Dense with geometry is refused.
    let mut blob = write::write(&spec);
    let nodes_off = u32::from_le_bytes(blob[36..40].try_into().unwrap()) as usize;
    blob[nodes_off + 56] = 3; // node 0 (Dense), kh
    let crc = format::crc32(&blob[format::CHECKSUM_START..]);
    blob[12..16].copy_from_slice(&crc.to_le_bytes());
    assert!(node_field(Model::parse(&blob).unwrap_err()).contains("geometry"));
}

#[test]
fn concat_reads_images_as_vectors_and_writes_a_flat_one() {
    let mut g = Graph::new(Precision::F32, WeightLayout::RowMajor, 6);
    let z = g.tensor([4, 0, 0], 0.0, 0);
    let a = g.tensor([1, 2, 2], 0.0, 0);
    g.dense(z, a, false);
    let y = g.tensor([8, 0, 0], 0.0, 0);
    g.nodes.push(NodeSpec::Concat { a: z, b: a, output: y });
    assert!(Model::parse(&write::write(&g.finish(4, y, 0, 0))).is_ok());

    let mut g = Graph::new(Precision::F32, WeightLayout::RowMajor, 6);
    let z = g.tensor([4, 0, 0], 0.0, 0);
    let a = g.tensor([1, 2, 2], 0.0, 0);
    g.dense(z, a, false);
    let y = g.tensor([2, 2, 2], 0.0, 0);
    g.nodes.push(NodeSpec::Concat { a: z, b: a, output: y });
    let e = Model::parse(&write::write(&g.finish(4, y, 0, 0))).unwrap_err();
    assert!(node_field(e).contains("Concat"));
}

// ---------------------------------------------------------------------------------------------
// Hostile edits.

fn decode_everything(blob: &[u8]) -> Result<Vec<u8>, Error> {
    let model = Model::parse(blob)?;
    let mut arena = vec![0u8; model.arena_size_for_batch(3).unwrap()];
    let decoder = Decoder::new(&model)?;
    let mut px = vec![0u8; decoder.output_len() * 3];
    let z: Vec<f32> = (0..decoder.latent_dim() * 3).map(|i| i as f32 * 0.37 - 1.0).collect();
    decoder.decode_batch(&z, None, 3, &mut arena, &mut px)?;
    Ok(px)
}

fn reseal(blob: &mut [u8]) {
    let crc = format::crc32(&blob[format::CHECKSUM_START..]);
    blob[12..16].copy_from_slice(&crc.to_le_bytes());
}

/// Every byte of the header and tables set to adversarial values (checksum fixed up), then
/// random multi-byte edits: errors or runs, never a panic.
fn hostile_edits_never_panic(blob: &[u8]) {
    let clean = decode_everything(blob).unwrap();
    let tables_end = blob.len() - Model::parse(blob).unwrap().weight_bytes();
    for i in 0..tables_end {
        for v in [0x00u8, 0x01, 0x02, 0x7F, 0x80, 0xFF, blob[i] ^ 0x10] {
            let mut bad = blob.to_vec();
            bad[i] = v;
            reseal(&mut bad);
            let _ = decode_everything(&bad);
        }
    }
    let mut rng = Rng::new(1234);
    for _ in 0..10_000 {
        let mut bad = blob.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(tables_end as u32) as usize;
            bad[at] = rng.next_u64() as u8;
        }
        reseal(&mut bad);
        let _ = decode_everything(&bad);
    }
    for len in 0..blob.len() {
        assert!(Model::parse(&blob[..len]).is_err());
    }
    assert_eq!(decode_everything(blob).unwrap(), clean);
}

#[test]
fn hostile_conv_blobs_never_panic() {
    hostile_edits_never_panic(&write::example_conv_decoder());
    for precision in [Precision::Int8, Precision::F32] {
        for layout in [WeightLayout::RowMajor, WeightLayout::TapMajor] {
            hostile_edits_never_panic(&write::write(&stored(&every_op_decoder(precision, layout))));
        }
    }
}

#[test]
fn every_flipped_byte_of_a_conv_blob_is_rejected() {
    let blob = write::example_conv_decoder();
    assert_eq!(blob[4], 2);
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        if i == 4 {
            // Version 2 flipped to 3: the same contents read by the newer rules, which are a
            // superset (version 3 adds tap-major weights, and this blob has none): the same model.
            let (a, b) = (Model::parse(&blob).unwrap(), Model::parse(&bad).unwrap());
            assert_eq!(decode_everything(&blob).unwrap(), decode_everything(&bad).unwrap());
            assert_eq!((a.version(), b.version()), (2, 3));
            continue;
        }
        assert!(Model::parse(&bad).is_err(), "flip at byte {i} was accepted");
    }
}

#[test]
fn tap_major_weights_need_version_3_and_a_convolution() {
    let spec = every_op_decoder(Precision::Int8, WeightLayout::TapMajor);
    let blob = write::write(&stored(&spec));
    assert_eq!(Model::parse(&blob).unwrap().version(), 3);
    // The same blob labelled version 2, whose readers know no tap-major weights.
    let mut v2 = blob.clone();
    v2[4] = 2;
    reseal(&mut v2);
    let e = Model::parse(&v2).unwrap_err();
    assert_eq!(e, Error::BadNode { index: 1, field: "layout (tap-major weights are a version 3 feature)" });
    // Dense weights are row-major in every version.
    let e = parse_error(spec, |s| {
        if let NodeSpec::Dense { layout, .. } = &mut s.nodes[0] {
            *layout = WeightLayout::TapMajor;
        }
    });
    assert_eq!(node_field(e), "layout (tap-major is for convolutions)");
}
