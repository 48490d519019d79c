//! Instruction-count probe for tract: runs one f32 inference of an ONNX model, optimized for a
//! fixed batch, between `getpid` system calls that the TCG plugin of
//! `scripts/test-aarch64.sh --count` snapshots its instruction counter at.
//!
//! `tract-count MODEL.onnx BATCH` prints the batch and nothing else that matters; the counts come
//! from the plugin. The measured run is the second one (the first warms caches, lazy
//! initialisation and tract's scratch buffers), and the marker is also measured around nothing
//! so the script can subtract its own cost. It lives in its own crate so that the runtime never
//! links tract, and the compiler's host dependencies (data sets, TLS) need not cross-compile.
//!
//! Inputs are the graph's non-initializer inputs, shaped `[BATCH, per-sample dims...]` from the
//! ONNX declaration, filled with a fixed pattern in `[-1.5, 1.5]` (tract's kernels take the same
//! path whatever the values, so the pattern only has to be finite).

use std::process::ExitCode;

use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as Type;
use tract_onnx::prelude::*;

/// Marks a boundary between measured regions with a `getpid` system call.
#[inline(never)]
fn count_marker() {
    std::hint::black_box(std::process::id());
}

/// Per-sample shapes of the graph inputs that are not initializers.
fn input_shapes(proto: &tract_onnx::pb::ModelProto) -> TractResult<Vec<Vec<usize>>> {
    let graph = proto.graph.as_ref().ok_or_else(|| TractError::msg("the model has no graph"))?;
    let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let mut shapes = Vec::new();
    for input in graph.input.iter().filter(|i| !inits.contains(i.name.as_str())) {
        let Some(Type::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
            return Err(TractError::msg(format!("input {} is not a tensor", input.name)));
        };
        let dims = t.shape.as_ref().map(|s| &s.dim[..]).unwrap_or_default();
        let per_sample = dims
            .iter()
            .skip(1)
            .map(|d| match d.value {
                Some(Dim::DimValue(v)) if v > 0 => Ok(v as usize),
                _ => {
                    Err(TractError::msg(format!("input {} has a non-fixed dimension after the batch axis", input.name)))
                }
            })
            .collect::<TractResult<Vec<_>>>()?;
        shapes.push(per_sample);
    }
    Ok(shapes)
}

fn run(path: &str, batch: usize) -> TractResult<()> {
    let onnx = onnx();
    let proto = onnx.proto_model_for_path(path)?;
    let shapes = input_shapes(&proto)?;
    let mut model = onnx.model_for_path(path)?;
    let mut inputs = TVec::new();
    for (k, per_sample) in shapes.iter().enumerate() {
        let shape: Vec<usize> = std::iter::once(batch).chain(per_sample.iter().copied()).collect();
        model.set_input_fact(k, InferenceFact::dt_shape(f32::datum_type(), &shape))?;
        let len: usize = shape.iter().product();
        let data: Vec<f32> = (0..len).map(|i| (i * 37 % 61) as f32 / 20.0 - 1.5).collect();
        inputs.push(TValue::from(Tensor::from_shape(&shape, &data)?));
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let mut state = plan.spawn()?;
    let mut checksum = 0.0f32;
    for measured in [false, true] {
        let mark = || {
            if measured {
                count_marker()
            }
        };
        mark();
        mark();
        let outputs = state.run(inputs.clone())?;
        mark();
        checksum = outputs[0].try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(|v| v.iter().sum()))?;
    }
    println!("tract batch {batch}: output sum {checksum}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(Ok(batch))) = (args.get(1), args.get(2).map(|b| b.parse::<usize>())) else {
        eprintln!("usage: tract-count MODEL.onnx BATCH");
        return ExitCode::FAILURE;
    };
    match run(path, batch.max(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tract-count: {e:?}");
            ExitCode::FAILURE
        }
    }
}
