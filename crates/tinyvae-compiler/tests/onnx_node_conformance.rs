//! ONNX's own backend node tests as conformance cases (tests/data/onnx-node, made by
//! tests/python/make_onnx_node_cases.py from the `onnx` package's test generator): every case
//! of Conv, ConvTranspose, BatchNormalization, Resize, Upsample, Add, Mul, the activations,
//! Gemm, Flatten and Reshape, with weights turned into initializers.
//!
//! `cases.json` says for each case what tinyvae must do, decided by what the ONNX case means:
//! - `match`: it imports, and the IR evaluator computes ONNX's expected outputs (max abs
//!   difference at most 1e-4 of max(1, |expected|)).
//! - `refuse`: the import fails with an error (not a panic) that names the node or input at
//!   fault and says what is unsupported (`error_mentions`, matched without case).
//!
//! Every case runs; the failures are reported together, each with its case name.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::Value;
use tinyvae_compiler::ir::Graph;
use tinyvae_compiler::onnx::{import_file, ImportError};

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/onnx-node")
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// The error and its sources, `a: b: c`, as the CLI prints it.
fn chain(e: &ImportError) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// One tensor of io.json: name, shape, values (row-major).
struct Tensor {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

fn tensors(io: &Value, key: &str) -> Result<Vec<Tensor>, String> {
    let list = io[key].as_array().ok_or_else(|| format!("io.json has no `{key}` list"))?;
    list.iter()
        .map(|t| {
            let name = t["name"].as_str().ok_or("a tensor without a name")?.to_string();
            if t["dtype"] != "float32" {
                return Err(format!("`{name}` is {}, not float32", t["dtype"]));
            }
            let shape: Vec<usize> =
                serde_json::from_value(t["shape"].clone()).map_err(|e| format!("`{name}` shape: {e}"))?;
            let values: Vec<f32> =
                serde_json::from_value(t["values"].clone()).map_err(|e| format!("`{name}` values: {e}"))?;
            if shape.iter().product::<usize>() != values.len() {
                return Err(format!("`{name}`: shape {shape:?} does not hold {} values", values.len()));
            }
            Ok(Tensor { name, shape, values })
        })
        .collect()
}

/// `batch x features`: axis 0 is the batch, the rest flattened.
fn as_batch(t: &Tensor) -> Result<Array2<f32>, String> {
    let (&batch, rest) = t.shape.split_first().ok_or_else(|| format!("`{}` has no batch axis", t.name))?;
    Array2::from_shape_vec((batch, rest.iter().product()), t.values.clone()).map_err(|e| format!("`{}`: {e}", t.name))
}

fn check_match(dir: &Path, g: &Graph) -> Result<(), String> {
    let io = read_json(&dir.join("io.json"))?;
    let inputs = tensors(&io, "inputs")?;
    let expected = tensors(&io, "outputs")?;
    // Feed the inputs in the IR's order, by name.
    let mut feeds = Vec::new();
    for spec in &g.inputs {
        let t = inputs
            .iter()
            .find(|t| t.name == spec.name)
            .ok_or_else(|| format!("the IR takes input `{}`, which io.json does not have", spec.name))?;
        feeds.push(as_batch(t)?);
    }
    if feeds.len() != inputs.len() {
        return Err(format!("the IR takes {} inputs, the case gives {}", feeds.len(), inputs.len()));
    }
    let views: Vec<_> = feeds.iter().map(|a| a.view()).collect();
    let got = match catch_unwind(AssertUnwindSafe(|| g.eval(&views))) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(format!("evaluation failed: {e}")),
        Err(p) => return Err(format!("evaluation panicked: {}", panic_text(&*p))),
    };
    if got.len() != expected.len() {
        return Err(format!("{} outputs, expected {}", got.len(), expected.len()));
    }
    let mut problems = Vec::new();
    for (k, (y, want)) in got.iter().zip(&expected).enumerate() {
        let want = as_batch(want)?;
        if y.dim() != want.dim() {
            problems.push(format!(
                "output {k} (`{}`) is {:?} (batch x features), expected {:?}",
                g.outputs[k],
                y.dim(),
                want.dim()
            ));
            continue;
        }
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let (worst, at) = y
            .iter()
            .zip(want.iter())
            .map(|(a, b)| if a.is_nan() || b.is_nan() { f32::INFINITY } else { (a - b).abs() })
            .enumerate()
            .fold((0.0f32, 0), |(m, i), (j, d)| if d > m { (d, j) } else { (m, i) });
        if worst > TOLERANCE * scale {
            let (b, f) = (at / want.ncols(), at % want.ncols());
            problems.push(format!(
                "output {k} (`{}`) differs by {worst} at sample {b}, value {f}: got {}, expected {} (tolerance {})",
                g.outputs[k],
                y[[b, f]],
                want[[b, f]],
                TOLERANCE * scale
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn check_refusal(result: Result<Graph, ImportError>, case: &Value) -> Result<(), String> {
    let reason = case["reason"].as_str().unwrap_or("(no reason given)");
    let e = match result {
        Ok(g) => {
            let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.name()).collect();
            return Err(format!("imported as {ops:?}, but tinyvae should refuse it: {reason}"));
        }
        Err(e) => e,
    };
    let msg = chain(&e);
    let mentions = case["error_mentions"].as_array().ok_or("cases.json gives no error_mentions")?;
    if mentions.is_empty() {
        return Err("cases.json gives no error_mentions".into());
    }
    let lower = msg.to_lowercase();
    let missing: Vec<&str> =
        mentions.iter().filter_map(Value::as_str).filter(|m| !lower.contains(&m.to_lowercase())).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("refused ({reason}), but the error does not mention {missing:?}: {msg}"))
    }
}

#[test]
fn onnx_backend_node_tests() {
    let root = fixtures();
    let index = read_json(&root.join("cases.json"))
        .unwrap_or_else(|e| panic!("{e} (run tests/python/make_onnx_node_cases.py)"));
    let cases = index["cases"].as_array().expect("cases.json lists `cases`");
    assert!(cases.len() >= 100, "only {} cases in cases.json", cases.len());

    let mut failures = Vec::new();
    let (mut matched, mut refused) = (0, 0);
    for case in cases {
        let name = case["name"].as_str().expect("every case has a name");
        let dir = root.join(name);
        let imported = catch_unwind(AssertUnwindSafe(|| import_file(&dir.join("model.onnx"))));
        let outcome = match (case["expect"].as_str(), imported) {
            (_, Err(p)) => Err(format!("the import panicked: {}", panic_text(&*p))),
            (Some("match"), Ok(Ok(g))) => check_match(&dir, &g).map(|()| matched += 1),
            (Some("match"), Ok(Err(e))) => Err(format!("should import, but: {}", chain(&e))),
            (Some("refuse"), Ok(r)) => check_refusal(r, case).map(|()| refused += 1),
            (other, _) => Err(format!("unknown expectation {other:?}")),
        };
        if let Err(why) = outcome {
            failures.push(format!("{name}: {why}"));
        }
    }

    // Every case folder is listed, so none is silently left out.
    let listed: std::collections::HashSet<&str> = cases.iter().filter_map(|c| c["name"].as_str()).collect();
    for entry in std::fs::read_dir(&root).expect("the fixtures folder") {
        let entry = entry.expect("a folder entry");
        let n = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() && !listed.contains(n.as_str()) {
            failures.push(format!("{n}: a case folder that cases.json does not list"));
        }
    }

    println!("{} cases: {matched} match, {refused} refused as expected, {} failed", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} ONNX node cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
