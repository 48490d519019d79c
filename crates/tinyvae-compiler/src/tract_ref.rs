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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{Array2, ArrayView2};
use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::{
    tvec, Datum, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, TVec, Tensor, ToDim,
    TractError, TypedRunnableModel, TypedSimpleState,
};

/// A failure of the tract reference. The model is the caller's to name (the CLI adds the file).
#[derive(Debug, thiserror::Error)]
pub enum TractRefError {
    /// The file could not be read.
    #[error("cannot read the file")]
    Io(#[source] std::io::Error),
    /// The bytes are not an ONNX protobuf.
    #[error("not an ONNX model (protobuf decoding failed)")]
    Decode(#[source] prost::DecodeError),
    /// tract takes the folder of external-data sidecars as UTF-8 text.
    #[error("the model's folder is not valid UTF-8, which tract needs to find external data")]
    NonUtf8Folder,
    /// Graph inputs that tract could not connect to anything.
    #[error("tract could not resolve the graph inputs {0:?}")]
    UnresolvedInputs(Vec<String>),
    /// tract rejected the model or failed to run it.
    #[error("tract failed while {stage}")]
    Tract {
        /// What was being done.
        stage: &'static str,
        /// tract's error chain.
        #[source]
        source: TractError,
    },
    /// The model holds no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// A graph input that is not a tensor of fixed per-sample shape.
    #[error("graph input `{input}` {problem}")]
    Input {
        /// Input name.
        input: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A graph input without a batch axis and features.
    #[error("graph input `{input}` has rank {rank}; need [batch, features...]")]
    InputRank {
        /// Input name.
        input: String,
        /// Its rank.
        rank: usize,
    },
    /// A call with the wrong number of inputs.
    #[error("the model takes {expected} inputs, {given} given")]
    InputCount {
        /// Model inputs.
        expected: usize,
        /// Arrays given.
        given: usize,
    },
    /// An input array of the wrong width.
    #[error("input `{input}` needs {expected} features, got {got}")]
    InputWidth {
        /// Input name.
        input: String,
        /// Its features per sample.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// Input arrays with different row counts.
    #[error("input `{input}` has {rows} rows where the first input has {batch}")]
    InputRows {
        /// Input name.
        input: String,
        /// Its rows.
        rows: usize,
        /// Rows of the first input.
        batch: usize,
    },
    /// A batch of zero samples.
    #[error("empty batch")]
    EmptyBatch,
    /// Inputs for a [`PreparedRun`] of another batch size.
    #[error("this plan was prepared for batch {prepared}, got {rows} rows")]
    PreparedBatch {
        /// The plan's batch size.
        prepared: usize,
        /// Rows given.
        rows: usize,
    },
    /// [`PreparedRun::outputs`] before any [`PreparedRun::run`].
    #[error("no run yet")]
    NoRun,
    /// An output that does not start with the batch axis.
    #[error("output shape {shape:?} does not start with the batch size {batch}")]
    OutputShape {
        /// tract's output shape.
        shape: Vec<usize>,
        /// The batch size run.
        batch: usize,
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
    proto: pb::ModelProto,
    /// The model file's folder, where tract reads external-data sidecars (torch's default
    /// exporter puts the weights in `model.onnx.data`); `None` for a model given as bytes.
    dir: Option<PathBuf>,
    inputs: Vec<InputSpec>,
    plan: Arc<TypedRunnableModel>,
}

/// A plan optimized for one batch size, with its inputs stored, so that a benchmark loop
/// measures tract's inference and nothing else.
#[derive(Debug)]
pub struct PreparedRun {
    batch: usize,
    inputs_spec: Vec<InputSpec>,
    state: TypedSimpleState,
    inputs: TVec<TValue>,
    outputs: TVec<TValue>,
}

impl TractModel {
    /// Loads an ONNX file, with any external-data sidecars beside it (tract reads them itself,
    /// so the reference does not depend on tinyvae's importer).
    pub fn load(path: &Path) -> Result<Self, TractRefError> {
        let bytes = std::fs::read(path).map_err(TractRefError::Io)?;
        let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d });
        Self::from_parts(&bytes, dir.map(Path::to_path_buf))
    }

    /// Loads a serialized ONNX model whose weights are all inside it.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TractRefError> {
        Self::from_parts(bytes, None)
    }

    fn from_parts(bytes: &[u8], dir: Option<PathBuf>) -> Result<Self, TractRefError> {
        let proto = pb::ModelProto::decode(bytes).map_err(TractRefError::Decode)?;
        let inputs = input_specs(&proto)?;
        let plan = build(&proto, dir.as_deref(), &inputs, None)?;
        Ok(TractModel { proto, dir, inputs, plan })
    }

    /// Features per sample of each input, in order.
    pub fn input_lens(&self) -> Vec<usize> {
        self.inputs.iter().map(InputSpec::len).collect()
    }

    /// Input names, in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    /// Runs the model on `inputs[k]` (`batch x input_lens()[k]`) and returns every output as
    /// `batch x features`.
    pub fn run(&self, inputs: &[ArrayView2<'_, f32>]) -> Result<Vec<Array2<f32>>, TractRefError> {
        let batch = check_inputs(&self.inputs, inputs)?;
        let tv = to_tvalues(&self.inputs, inputs)?;
        let outs = self.plan.run(tv).map_err(tract_err("running"));
        clear_upper_vector_state();
        let outs = outs?;
        outs.iter().map(|t| to_array2(t, batch)).collect()
    }

    /// Builds a plan optimized for exactly `batch` samples, with zero inputs until
    /// [`PreparedRun::set_inputs`].
    pub fn prepare(&self, batch: usize) -> Result<PreparedRun, TractRefError> {
        if batch == 0 {
            return Err(TractRefError::EmptyBatch);
        }
        let plan = build(&self.proto, self.dir.as_deref(), &self.inputs, Some(batch))?;
        let state = plan.spawn().map_err(tract_err("creating the run state"))?;
        let zeros: Vec<Array2<f32>> = self.inputs.iter().map(|s| Array2::zeros((batch, s.len()))).collect();
        let views: Vec<ArrayView2<f32>> = zeros.iter().map(|a| a.view()).collect();
        let inputs = to_tvalues(&self.inputs, &views)?;
        Ok(PreparedRun { batch, inputs_spec: self.inputs.clone(), state, inputs, outputs: tvec!() })
    }
}

impl PreparedRun {
    /// The batch size this plan was built for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Stores the inputs for the next [`PreparedRun::run`] calls; each needs `batch()` rows.
    pub fn set_inputs(&mut self, inputs: &[ArrayView2<'_, f32>]) -> Result<(), TractRefError> {
        let rows = check_inputs(&self.inputs_spec, inputs)?;
        if rows != self.batch {
            return Err(TractRefError::PreparedBatch { prepared: self.batch, rows });
        }
        self.inputs = to_tvalues(&self.inputs_spec, inputs)?;
        Ok(())
    }

    /// Runs once on the stored inputs. The inputs are shared, not copied, so the cost is
    /// tract's.
    pub fn run(&mut self) -> Result<(), TractRefError> {
        let outputs = self.state.run(self.inputs.clone());
        clear_upper_vector_state();
        self.outputs = outputs.map_err(tract_err("running"))?;
        Ok(())
    }

    /// The outputs of the last [`PreparedRun::run`], each `batch x features`.
    pub fn outputs(&self) -> Result<Vec<Array2<f32>>, TractRefError> {
        if self.outputs.is_empty() {
            return Err(TractRefError::NoRun);
        }
        self.outputs.iter().map(|t| to_array2(t, self.batch)).collect()
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

fn tract_err(stage: &'static str) -> impl Fn(TractError) -> TractRefError {
    move |source| TractRefError::Tract { stage, source }
}

/// Parses the ONNX and optimizes it for `batch` samples (a symbol when `None`). Parsing again
/// for each batch size is cheap next to optimizing, and leaves no shared state between plans.
fn build(
    proto: &pb::ModelProto,
    dir: Option<&Path>,
    inputs: &[InputSpec],
    batch: Option<usize>,
) -> Result<Arc<TypedRunnableModel>, TractRefError> {
    // The shapes an exporter states for intermediate values and outputs name its own batch
    // symbol (torch's dynamo exporter writes `batch`), which tract cannot unify with the batch
    // set here: the inputs' shapes are enough for tract to infer the rest.
    let mut proto = proto.clone();
    if let Some(g) = proto.graph.as_mut() {
        g.value_info.clear();
        for out in &mut g.output {
            if let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &mut out.r#type {
                t.shape = None;
            }
        }
    }
    let proto = &proto;
    let mut model = match dir {
        None => tract_onnx::onnx().model_for_proto_model(proto).map_err(tract_err("parsing the model"))?,
        Some(dir) => {
            let dir = dir.to_str().ok_or(TractRefError::NonUtf8Folder)?;
            let parsed = tract_onnx::onnx().parse(proto, Some(dir)).map_err(tract_err("parsing the model"))?;
            if !parsed.unresolved_inputs.is_empty() {
                return Err(TractRefError::UnresolvedInputs(parsed.unresolved_inputs));
            }
            parsed.model
        }
    };
    let b: TDim = match batch {
        Some(n) => n.to_dim(),
        None => model.symbols.sym("batch").to_dim(),
    };
    for (k, spec) in inputs.iter().enumerate() {
        let shape: Vec<TDim> = std::iter::once(b.clone()).chain(spec.dims.iter().map(|d| d.to_dim())).collect();
        model
            .set_input_fact(k, InferenceFact::dt_shape(f32::datum_type(), shape))
            .map_err(tract_err("setting the input shapes"))?;
    }
    let typed = model.into_optimized().map_err(tract_err("analysing and optimizing the model"))?;
    typed.into_runnable().map_err(tract_err("building the execution plan"))
}

/// Graph inputs that are not initializers, with their per-sample shapes.
fn input_specs(proto: &pb::ModelProto) -> Result<Vec<InputSpec>, TractRefError> {
    use pb::tensor_shape_proto::dimension::Value as D;
    let g = proto.graph.as_ref().ok_or(TractRefError::NoGraph)?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut specs = Vec::new();
    for vi in g.input.iter().filter(|vi| !inits.contains(vi.name.as_str())) {
        let input_err = |problem| TractRefError::Input { input: vi.name.clone(), problem };
        let Some(pb::TypeProto { value: Some(pb::type_proto::Value::TensorType(t)), .. }) = &vi.r#type else {
            return Err(input_err("is not a tensor"));
        };
        let shape = t.shape.as_ref().ok_or_else(|| input_err("has no shape"))?;
        if shape.dim.len() < 2 {
            return Err(TractRefError::InputRank { input: vi.name.clone(), rank: shape.dim.len() });
        }
        let dims = shape.dim[1..]
            .iter()
            .map(|d| match &d.value {
                Some(D::DimValue(v)) if *v > 0 => Ok(*v as usize),
                _ => Err(input_err("has a non-fixed dimension after the batch axis")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        specs.push(InputSpec { name: vi.name.clone(), dims });
    }
    Ok(specs)
}

fn check_inputs(specs: &[InputSpec], inputs: &[ArrayView2<'_, f32>]) -> Result<usize, TractRefError> {
    if inputs.len() != specs.len() {
        return Err(TractRefError::InputCount { expected: specs.len(), given: inputs.len() });
    }
    let batch = inputs.first().map_or(0, |x| x.nrows());
    for (spec, x) in specs.iter().zip(inputs) {
        if x.ncols() != spec.len() {
            return Err(TractRefError::InputWidth { input: spec.name.clone(), expected: spec.len(), got: x.ncols() });
        }
        if x.nrows() != batch {
            return Err(TractRefError::InputRows { input: spec.name.clone(), rows: x.nrows(), batch });
        }
    }
    if batch == 0 {
        return Err(TractRefError::EmptyBatch);
    }
    Ok(batch)
}

fn to_tvalues(specs: &[InputSpec], inputs: &[ArrayView2<'_, f32>]) -> Result<TVec<TValue>, TractRefError> {
    specs
        .iter()
        .zip(inputs)
        .map(|(spec, x)| {
            let shape: Vec<usize> = std::iter::once(x.nrows()).chain(spec.dims.iter().copied()).collect();
            // A standard-layout array is contiguous, so this always gives the data.
            let x = x.as_standard_layout();
            let data = x.as_slice().unwrap_or_default();
            Tensor::from_shape(&shape, data).map(TValue::from).map_err(tract_err("building an input tensor"))
        })
        .collect()
}

fn to_array2(t: &TValue, batch: usize) -> Result<Array2<f32>, TractRefError> {
    let shape = t.shape();
    if shape.first() != Some(&batch) {
        return Err(TractRefError::OutputShape { shape: shape.to_vec(), batch });
    }
    let reading = tract_err("reading an output");
    let data = t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(<[f32]>::to_vec)).map_err(&reading)?;
    let features = shape[1..].iter().product();
    Array2::from_shape_vec((batch, features), data).map_err(|e| reading(e.into()))
}
