//! The full-precision reference: an ONNX model run in f32 by tract.
//!
//! It is independent of the IR and of tinyvae's runtime, which is the point: quantized blobs
//! are validated against what a third-party engine computes from the same ONNX file, and
//! latency benchmarks compare against it.
//!
//! Every input is fed as `batch x features`, reshaped to the model's declared per-sample
//! shape (so `[N, 1, 28, 28]` inputs take 784 features), and every output comes back flattened
//! to `batch x features` the same way. [`TractModel::run`] takes any batch size through a
//! symbolic batch axis; [`TractModel::prepare`] builds a plan optimized for one batch size and
//! reruns it on stored inputs, for benchmarks.

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    tvec, Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, TVec, Tensor, ToDim,
    TractError, TypedRunnableModel, TypedSimpleState,
};

/// A failure of the tract reference, naming the model.
#[derive(Debug, thiserror::Error)]
pub enum TractRefError {
    /// The file could not be read.
    #[error("cannot read ONNX model `{path}`: {err}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        err: std::io::Error,
    },
    /// tract rejected the model or failed to run it.
    #[error("tract failed on `{model}` while {stage}: {detail}")]
    Tract {
        /// File path or source name.
        model: String,
        /// What was being done.
        stage: &'static str,
        /// tract's error chain.
        detail: String,
    },
    /// The model or the call does not fit the `batch x features` contract.
    #[error("`{model}`: {msg}")]
    Usage {
        /// File path or source name.
        model: String,
        /// What is wrong.
        msg: String,
    },
}

/// Per-sample shape of a graph input (batch axis excluded).
#[derive(Debug, Clone)]
struct InputSpec {
    name: String,
    dims: Vec<usize>,
}

impl InputSpec {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An ONNX model loaded in tract, runnable on f32 batches of any size.
#[derive(Debug, Clone)]
pub struct TractModel {
    source: String,
    proto: pb::ModelProto,
    inputs: Vec<InputSpec>,
    plan: Arc<TypedRunnableModel>,
}

/// A plan optimized for one batch size, with its inputs stored, so that a benchmark loop
/// measures tract's inference and nothing else.
#[derive(Debug)]
pub struct PreparedRun {
    source: String,
    batch: usize,
    inputs_spec: Vec<InputSpec>,
    state: TypedSimpleState,
    inputs: TVec<TValue>,
    outputs: TVec<TValue>,
}

impl TractModel {
    /// Loads an ONNX file.
    pub fn load(path: &Path) -> Result<Self, TractRefError> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|err| TractRefError::Io { path: name.clone(), err })?;
        Self::from_bytes(&bytes, &name)
    }

    /// Loads a serialized ONNX model; `source` names it in errors.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self, TractRefError> {
        let proto = pb::ModelProto::decode(bytes).map_err(|e| TractRefError::Tract {
            model: source.to_string(),
            stage: "decoding the protobuf",
            detail: e.to_string(),
        })?;
        let inputs = input_specs(&proto).map_err(|msg| TractRefError::Usage { model: source.to_string(), msg })?;
        let plan = build(source, &proto, &inputs, None)?;
        Ok(TractModel { source: source.to_string(), proto, inputs, plan })
    }

    /// The model's name in messages (its path, for [`TractModel::load`]).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Features per sample of each input, in order.
    pub fn input_lens(&self) -> Vec<usize> {
        self.inputs.iter().map(InputSpec::len).collect()
    }

    /// Input names, in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    fn err(&self, stage: &'static str) -> impl Fn(TractError) -> TractRefError + '_ {
        tract_err(&self.source, stage)
    }

    fn check_inputs(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<usize, TractRefError> {
        check_inputs(&self.source, &self.inputs, inputs)
    }

    /// Runs the model on `inputs[k]` (`batch x input_lens()[k]`) and returns every output as
    /// `batch x features`.
    pub fn run(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<Vec<Array2<f32>>, TractRefError> {
        let batch = self.check_inputs(inputs)?;
        let tv = to_tvalues(&self.source, &self.inputs, inputs)?;
        let outs = self.plan.run(tv).map_err(self.err("running"));
        clear_upper_vector_state();
        let outs = outs?;
        outs.iter().map(|t| to_array2(&self.source, t, batch)).collect()
    }

    /// Builds a plan optimized for exactly `batch` samples, with zero inputs until
    /// [`PreparedRun::set_inputs`].
    pub fn prepare(&self, batch: usize) -> Result<PreparedRun, TractRefError> {
        if batch == 0 {
            return Err(TractRefError::Usage { model: self.source.clone(), msg: "batch size 0".into() });
        }
        let plan = build(&self.source, &self.proto, &self.inputs, Some(batch))?;
        let state = plan.spawn().map_err(self.err("creating the run state"))?;
        let zeros: Vec<Array2<f32>> = self.inputs.iter().map(|s| Array2::zeros((batch, s.len()))).collect();
        let views: Vec<ArrayView2<f32>> = zeros.iter().map(|a| a.view()).collect();
        let inputs = to_tvalues(&self.source, &self.inputs, &views)?;
        Ok(PreparedRun {
            source: self.source.clone(),
            batch,
            inputs_spec: self.inputs.clone(),
            state,
            inputs,
            outputs: tvec!(),
        })
    }
}

impl PreparedRun {
    /// The batch size this plan was built for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Stores the inputs for the next [`PreparedRun::run`] calls; each needs `batch()` rows.
    pub fn set_inputs(&mut self, inputs: &[ArrayView2<'_, f32>]) -> Result<(), TractRefError> {
        let batch = check_inputs(&self.source, &self.inputs_spec, inputs)?;
        if batch != self.batch {
            return Err(TractRefError::Usage {
                model: self.source.clone(),
                msg: format!("this plan was prepared for batch {}, got {batch} rows", self.batch),
            });
        }
        self.inputs = to_tvalues(&self.source, &self.inputs_spec, inputs)?;
        Ok(())
    }

    /// Runs once on the stored inputs. The inputs are shared, not copied, so the cost is
    /// tract's.
    pub fn run(&mut self) -> Result<(), TractRefError> {
        let outputs = self.state.run(self.inputs.clone());
        clear_upper_vector_state();
        self.outputs = outputs.map_err(|e| TractRefError::Tract {
            model: self.source.clone(),
            stage: "running",
            detail: format!("{e:#}"),
        })?;
        Ok(())
    }

    /// The outputs of the last [`PreparedRun::run`], each `batch x features`.
    pub fn outputs(&self) -> Result<Vec<Array2<f32>>, TractRefError> {
        if self.outputs.is_empty() {
            return Err(TractRefError::Usage { model: self.source.clone(), msg: "no run yet".into() });
        }
        self.outputs.iter().map(|t| to_array2(&self.source, t, self.batch)).collect()
    }
}

/// tract's AVX-512 matrix kernels return with the upper halves of the vector registers dirty
/// (no `vzeroupper`), and legacy-SSE code that runs next pays for it on every instruction:
/// after a batch-64 tract run, the runtime's scalar reference (compiled for baseline x86-64)
/// measured 3.7x slower, 175 against 47 us per sample, until a `vzeroupper`. Clearing them
/// after each run keeps tract's slowdown off whatever runs or is timed after it.
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU has AVX (checked above).
        unsafe { zero_upper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    std::arch::x86_64::_mm256_zeroupper()
}

fn tract_err<'s>(source: &'s str, stage: &'static str) -> impl Fn(TractError) -> TractRefError + 's {
    move |e| TractRefError::Tract { model: source.to_string(), stage, detail: format!("{e:#}") }
}

/// Parses the ONNX and optimizes it for `batch` samples (a symbol when `None`). Parsing again
/// for each batch size is cheap next to optimizing, and leaves no shared state between plans.
fn build(
    source: &str,
    proto: &pb::ModelProto,
    inputs: &[InputSpec],
    batch: Option<usize>,
) -> Result<Arc<TypedRunnableModel>, TractRefError> {
    let mut model = tract_onnx::onnx().model_for_proto_model(proto).map_err(tract_err(source, "parsing the model"))?;
    let b: TDim = match batch {
        Some(n) => n.to_dim(),
        None => model.symbols.sym("batch").to_dim(),
    };
    for (k, spec) in inputs.iter().enumerate() {
        let shape: Vec<TDim> = std::iter::once(b.clone()).chain(spec.dims.iter().map(|d| d.to_dim())).collect();
        model
            .set_input_fact(k, InferenceFact::dt_shape(f32::datum_type(), shape))
            .map_err(tract_err(source, "setting the input shapes"))?;
    }
    let typed = model.into_optimized().map_err(tract_err(source, "analysing and optimizing the model"))?;
    typed.into_runnable().map_err(tract_err(source, "building the execution plan"))
}

/// Graph inputs that are not initializers, with their per-sample shapes.
fn input_specs(proto: &pb::ModelProto) -> Result<Vec<InputSpec>, String> {
    use pb::tensor_shape_proto::dimension::Value as D;
    let g = proto.graph.as_ref().ok_or("the model has no graph")?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut specs = Vec::new();
    for vi in g.input.iter().filter(|vi| !inits.contains(vi.name.as_str())) {
        let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &vi.r#type else {
            return Err(format!("graph input `{}` is not a tensor", vi.name));
        };
        let shape = t.shape.as_ref().ok_or_else(|| format!("graph input `{}` has no shape", vi.name))?;
        if shape.dim.len() < 2 {
            return Err(format!("graph input `{}` has rank {}; need [batch, features...]", vi.name, shape.dim.len()));
        }
        let dims = shape.dim[1..]
            .iter()
            .map(|d| match &d.value {
                Some(D::DimValue(v)) if *v > 0 => Ok(*v as usize),
                _ => Err(format!("graph input `{}` has a non-fixed dimension after the batch axis", vi.name)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        specs.push(InputSpec { name: vi.name.clone(), dims });
    }
    Ok(specs)
}

fn check_inputs(source: &str, specs: &[InputSpec], inputs: &[ArrayView2<'_, f32>]) -> Result<usize, TractRefError> {
    let usage = |msg: String| TractRefError::Usage { model: source.to_string(), msg };
    if inputs.len() != specs.len() {
        return Err(usage(format!("the model takes {} inputs, {} given", specs.len(), inputs.len())));
    }
    let batch = inputs.first().map_or(0, |x| x.nrows());
    for (spec, x) in specs.iter().zip(inputs) {
        if x.ncols() != spec.len() {
            return Err(usage(format!("input `{}` needs {} features, got {}", spec.name, spec.len(), x.ncols())));
        }
        if x.nrows() != batch {
            return Err(usage(format!(
                "input `{}` has {} rows where the first input has {batch}",
                spec.name,
                x.nrows()
            )));
        }
    }
    if batch == 0 {
        return Err(usage("empty batch".into()));
    }
    Ok(batch)
}

fn to_tvalues(
    source: &str,
    specs: &[InputSpec],
    inputs: &[ArrayView2<'_, f32>],
) -> Result<TVec<TValue>, TractRefError> {
    specs
        .iter()
        .zip(inputs)
        .map(|(spec, x)| {
            let shape: Vec<usize> = std::iter::once(x.nrows()).chain(spec.dims.iter().copied()).collect();
            let x = x.as_standard_layout();
            let data = x.as_slice().ok_or_else(|| TractRefError::Usage {
                model: source.to_string(),
                msg: format!("input `{}` could not be laid out contiguously", spec.name),
            })?;
            Tensor::from_shape(&shape, data).map(TValue::from).map_err(|e| TractRefError::Tract {
                model: source.to_string(),
                stage: "building an input tensor",
                detail: format!("{e:#}"),
            })
        })
        .collect()
}

fn to_array2(source: &str, t: &TValue, batch: usize) -> Result<Array2<f32>, TractRefError> {
    let bad = |detail: String| TractRefError::Tract { model: source.to_string(), stage: "reading an output", detail };
    let shape = t.shape();
    if shape.first() != Some(&batch) {
        return Err(bad(format!("output shape {shape:?} does not start with the batch size {batch}")));
    }
    let data = t
        .try_as_plain_ram()
        .and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec))
        .map_err(|e| bad(format!("{e:#}")))?;
    let features = shape[1..].iter().product();
    Array2::from_shape_vec((batch, features), data).map_err(|e| bad(e.to_string()))
}
