#!/usr/bin/env python3
"""Run an ONNX model in onnxruntime on raw f32 inputs and write its outputs as raw f32.

onnxruntime is an ONNX consumer independent of tinyvae and tract; the Rust tests use this
script to check that tinyvae's exports (and the models it imports) mean the same thing there.

Usage:
    check_onnxruntime.py MODEL.onnx OUT_DIR IN0.f32:ROWSxCOLS [IN1.f32:ROWSxCOLS ...]

Each input file holds ROWS x COLS little-endian float32 values, row-major, one per graph input
in order (initializers excluded). Inputs are reshaped to the model's declared per-sample shape
(so 784 columns feed an [N, 1, 28, 28] input). Each output k is written to OUT_DIR/out{k}.f32
flattened to ROWS x features, and a line "out{k} NAME ROWS FEATURES" is printed per output.

Exit status: 0 on success, 3 if onnxruntime is not installed, 1 on any other error.
"""

import os
import sys


def fail(msg, code=1):
    print(f"check_onnxruntime: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_input(spec):
    path, sep, shape = spec.rpartition(":")
    rows, x, cols = shape.partition("x")
    if not sep or not x or not rows.isdigit() or not cols.isdigit():
        fail(f"input `{spec}` is not PATH:ROWSxCOLS")
    return path, int(rows), int(cols)


def main(argv):
    if len(argv) < 4:
        fail("usage: check_onnxruntime.py MODEL.onnx OUT_DIR IN0.f32:ROWSxCOLS [IN1.f32:ROWSxCOLS ...]")
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError as e:
        fail(f"onnxruntime not installed ({e}); pip install onnxruntime", code=3)

    model, out_dir, specs = argv[1], argv[2], [parse_input(s) for s in argv[3:]]
    opts = ort.SessionOptions()
    # Full-precision reference semantics: no fused/approximate kernels.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    graph_inputs = sess.get_inputs()
    if len(graph_inputs) != len(specs):
        fail(f"{model} takes {len(graph_inputs)} inputs, {len(specs)} given")

    feeds = {}
    for gi, (path, rows, cols) in zip(graph_inputs, specs):
        data = np.fromfile(path, dtype="<f4")
        if data.size != rows * cols:
            fail(f"{path} holds {data.size} floats, expected {rows}x{cols}")
        per_sample = list(gi.shape[1:])
        if not all(isinstance(d, int) for d in per_sample):
            fail(f"input {gi.name} has symbolic per-sample dims {gi.shape}")
        if int(np.prod(per_sample)) != cols:
            fail(f"input {gi.name} has shape {gi.shape}, which is not {cols} features per sample")
        feeds[gi.name] = data.astype(np.float32).reshape([rows] + per_sample)

    outputs = sess.run(None, feeds)
    os.makedirs(out_dir, exist_ok=True)
    for k, (meta, y) in enumerate(zip(sess.get_outputs(), outputs)):
        y = np.asarray(y, dtype="<f4")
        flat = y.reshape(y.shape[0], -1)
        flat.tofile(os.path.join(out_dir, f"out{k}.f32"))
        print(f"out{k} {meta.name} {flat.shape[0]} {flat.shape[1]}")


if __name__ == "__main__":
    main(sys.argv)
