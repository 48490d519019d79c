#!/usr/bin/env python3
"""Write the external-data fixtures of `tests/data/external-data/` with the `onnx` package.

Since torch 2.9, `torch.onnx.export` writes the weights to a sidecar (`decoder.onnx.data`)
next to the model instead of into it. The Rust test `onnx_external_data` imports models laid
out that way, so the fixtures come from ONNX's own writer rather than from tinyvae's reading of
the convention, and the expected outputs from onnxruntime, a consumer independent of tinyvae.

The model is a small MLP decoder in torch's spelling: z (4) -> Gemm 16 -> Relu -> Gemm 12 ->
Sigmoid, weights from a seeded numpy RNG. It is saved three times:

    embedded.onnx                    weights inside the model (the reference import)
    one-file/decoder.onnx            all weights in one sidecar, one-file/decoder.onnx.data
    per-tensor/decoder.onnx          one sidecar per tensor, named by onnx after the tensor

`expected.json` holds the inputs and the outputs onnxruntime computes for them. onnxruntime
runs all three models and must agree with itself exactly, which also checks that the sidecars
are what ONNX means by external data.

Usage:
    make_external_data_fixtures.py [OUT_DIR]    (default: tests/data/external-data)

Re-running it rewrites the same files (the expected outputs may differ in the last bit with
another onnxruntime version).
"""

import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

LATENT, HIDDEN, OUT = 4, 16, 12
SEED = 20250906
SIDECAR = "decoder.onnx.data"


def linear(rng, outs, ins):
    """nn.Linear's parameters and initialization: uniform in +-1/sqrt(in), weight out x in."""
    s = 1.0 / np.sqrt(ins)
    w = rng.uniform(-s, s, size=(outs, ins)).astype(np.float32)
    b = rng.uniform(-s, s, size=(outs,)).astype(np.float32)
    return w, b


def decoder():
    rng = np.random.default_rng(SEED)
    w1, b1 = linear(rng, HIDDEN, LATENT)
    w2, b2 = linear(rng, OUT, HIDDEN)
    gemm = dict(alpha=1.0, beta=1.0, transB=1)
    nodes = [
        helper.make_node("Gemm", ["z", "fc1.weight", "fc1.bias"], ["/fc1/Gemm_output_0"], "/fc1/Gemm", **gemm),
        helper.make_node("Relu", ["/fc1/Gemm_output_0"], ["/relu/Relu_output_0"], "/relu/Relu"),
        helper.make_node(
            "Gemm", ["/relu/Relu_output_0", "fc2.weight", "fc2.bias"], ["/fc2/Gemm_output_0"], "/fc2/Gemm", **gemm
        ),
        helper.make_node("Sigmoid", ["/fc2/Gemm_output_0"], ["x"], "/sigmoid/Sigmoid"),
    ]
    inits = [
        numpy_helper.from_array(w1, "fc1.weight"),
        numpy_helper.from_array(b1, "fc1.bias"),
        numpy_helper.from_array(w2, "fc2.weight"),
        numpy_helper.from_array(b2, "fc2.bias"),
    ]
    graph = helper.make_graph(
        nodes,
        "main_graph",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", LATENT])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", OUT])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tinyvae-fixtures")
    # torch's IR version: old enough for every onnxruntime the tests may meet.
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def run(path, z):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"z": z})[0]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out = argv[1] if len(argv) > 1 else os.path.join(here, "..", "data", "external-data")
    os.makedirs(out, exist_ok=True)
    for sub in ("one-file", "per-tensor"):
        # onnx appends to existing sidecars; start from empty folders.
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
        os.makedirs(os.path.join(out, sub))

    embedded = os.path.join(out, "embedded.onnx")
    onnx.save_model(decoder(), embedded)
    # size_threshold=0: even the biases go to the sidecar, so every tensor is read from it.
    onnx.save_model(
        decoder(),
        os.path.join(out, "one-file", "decoder.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=SIDECAR,
        size_threshold=0,
    )
    onnx.save_model(
        decoder(),
        os.path.join(out, "per-tensor", "decoder.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=False,
        size_threshold=0,
    )

    # Prior samples, one exactly zero (only the biases reach the output), one batch of all.
    rng = np.random.default_rng(SEED + 1)
    z = rng.standard_normal((5, LATENT)).astype(np.float32)
    z[1] = 0.0
    want = run(embedded, z)
    for sub in ("one-file", "per-tensor"):
        path = os.path.join(out, sub, "decoder.onnx")
        got = run(path, z)
        if not np.array_equal(got, want):
            sys.exit(f"{path}: onnxruntime gives other outputs than for the embedded weights")
        for t in onnx.load(path, load_external_data=False).graph.initializer:
            if t.data_location != TensorProto.EXTERNAL:
                sys.exit(f"{path}: initializer {t.name} was left in the model")

    expected = {
        "producer": f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy seed {SEED}",
        "input": "z",
        "output": "x",
        # float() of a float32 is exact, and JSON keeps every digit of it.
        "z": [[float(v) for v in row] for row in z],
        "x": [[float(v) for v in row] for row in want],
    }
    with open(os.path.join(out, "expected.json"), "w") as f:
        # One line per key and per matrix row, so that a regenerated file diffs row by row.
        entries = []
        for key, value in expected.items():
            if isinstance(value, list):
                rows = ",\n  ".join(json.dumps(row) for row in value)
                entries.append(f' {json.dumps(key)}: [\n  {rows}\n ]')
            else:
                entries.append(f" {json.dumps(key)}: {json.dumps(value)}")
        f.write("{\n" + ",\n".join(entries) + "\n}\n")
    for root, _, files in sorted(os.walk(out)):
        for name in sorted(files):
            p = os.path.join(root, name)
            print(f"{os.path.relpath(p, out)}: {os.path.getsize(p)} bytes")


if __name__ == "__main__":
    main(sys.argv)
