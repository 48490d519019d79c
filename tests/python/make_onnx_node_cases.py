#!/usr/bin/env python3
"""Writes tests/data/onnx-node/: ONNX's own backend node tests for the ops tinyvae imports, as
conformance cases for the importer and the IR evaluator
(crates/tinyvae-compiler/tests/onnx_node_conformance.rs).

The cases come from the installed `onnx` package (`onnx.backend.test.case.node
.collect_testcases`, the generator behind onnx/backend/test/data/node, which pip wheels do not
ship): every single-node case of the op types in `OPS`, plus the function-expanded variants
(`*_expanded*`) of those cases. Inputs drawn with `np.random` come from a fixed seed, so the
output is the same on every run (for a given onnx and numpy version).

tinyvae takes weights as constants and graph inputs as FLOAT `[batch, features...]`, so each
case is rewritten:
- graph input 0 stays the graph input;
- for Add and Mul, input 1 also stays a graph input when it has input 0's shape (a second
  computed value, as in a residual connection); a broadcast operand becomes a constant;
- every other input becomes an initializer holding the test's values;
- unnamed nodes get names (the case name, plus `.k.OpType` in multi-node graphs), so that a
  refusal can be checked to name its node.

Each case folder holds `model.onnx` and `io.json`:
    {"inputs": [{"name", "dtype", "shape", "values"}], "outputs": [same]}
with values flattened row-major (NCHW for images). `cases.json` lists every case with the op,
`"expect": "match"` (tinyvae imports it and computes the expected outputs) or `"refuse"` (the
import must fail), and for refusals a `reason` and `error_mentions`: substrings the import
error must contain (the node or input at fault, and what is unsupported).

The expectation follows what the ONNX case means, not what the importer happens to do. In scope
("match"): 2-D Conv with any pads/auto_pad/strides/dilations/groups; 2-D ConvTranspose with
strides, pads, output_padding, output_shape, auto_pad, group 1 and dilation 1; nearest
Resize/Upsample by integer factors whose coordinate mapping repeats each pixel; Add of two
computed values of one shape; Gemm with a constant B and a bias that does not vary along the
batch axis; Flatten/Reshape that keep the batch axis; the activations. Refused: non-FLOAT or
batch-less graph inputs, ConvTranspose with dilations or groups, 1-D/3-D convolutions,
linear/cubic Resize, downsampling or non-integer factors, BatchNormalization in training mode or
not after a Conv/ConvTranspose/Gemm it can fold into (the node tests put it on the graph input),
Add/Mul with a broadcast constant, Mul of two independent values, HardSigmoid outside hard
swish, Gemm with transA or a per-sample bias, Flatten/Reshape across the batch axis, and
expanded function bodies using ops tinyvae does not import (CastLike, Where, Max, ...).

A case whose files would exceed MAX_CASE_BYTES is skipped (and listed in the output). The script
rewrites only files whose bytes change and removes case folders it no longer writes.

    python3 tests/python/make_onnx_node_cases.py      # needs onnx (1.23) and numpy
"""

import json
import os
import shutil
import sys
import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "onnx-node"))

OPS = [
    "Conv", "ConvTranspose", "BatchNormalization", "Resize", "Upsample", "Add", "Mul", "Sigmoid",
    "HardSwish", "HardSigmoid", "Relu", "LeakyRelu", "Tanh", "Gemm", "Flatten", "Reshape", "Swish",
]

# The op types tinyvae's importer registers (its unsupported-op menu). An expanded function body
# using anything else is out of scope.
TINYVAE_OP_TYPES = {
    "Gemm", "MatMul", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "Swish", "HardSigmoid",
    "Conv", "ConvTranspose", "BatchNormalization", "Resize", "Upsample", "Add", "Mul", "Concat",
    "Split", "Slice", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Cast",
    "Transpose", "Constant", "Shape", "Gather",
}

MAX_CASE_BYTES = 256 * 1024
SEED = 0


# ---- collecting ------------------------------------------------------------------------------


def collect():
    """The selected test cases, in onnx's order: (case, op type of the original node)."""
    from onnx.backend.test.case.node import collect_testcases

    np.random.seed(SEED)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()
    single = {}
    for c in cases:
        nodes = c.model.graph.node
        if "_expanded" not in c.name and len(nodes) == 1 and nodes[0].op_type in OPS and not nodes[0].domain:
            single[c.name] = nodes[0].op_type
    picked = []
    for c in cases:
        base = c.name.split("_expanded")[0]
        if c.name in single:
            picked.append((c, single[c.name]))
        elif "_expanded" in c.name and base in single:
            picked.append((c, single[base]))
    return picked


# ---- the expectation -------------------------------------------------------------------------


class Refuse(Exception):
    def __init__(self, reason, *mentions):
        super().__init__(reason)
        self.reason = reason
        self.mentions = list(mentions)


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def text(v, default):
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else v


def kept_inputs(case, op):
    """How many leading graph inputs stay graph inputs."""
    ins = case.data_sets[0][0]
    single = len(case.model.graph.node) == 1
    if single and op in ("Add", "Mul") and len(ins) >= 2 and np.shape(ins[1]) == np.shape(ins[0]):
        return 2
    return 1


def nearest_source(o, n, f, ctm, nearest):
    """ONNX Resize (nearest): the input index read for output index o, upsampling n by f."""
    out = n * f
    if ctm == "half_pixel":
        x = (o + 0.5) / f - 0.5
    elif ctm == "pytorch_half_pixel":
        x = (o + 0.5) / f - 0.5 if out > 1 else 0.0
    elif ctm == "asymmetric":
        x = o / f
    elif ctm == "tf_half_pixel_for_nn":
        x = (o + 0.5) / f
    elif ctm == "align_corners":
        x = o * (n - 1) / (out - 1) if out > 1 else 0.0
    elif ctm == "half_pixel_symmetric":
        adj = out / (n * f)
        center = n / 2
        offset = center * (1 - adj)
        x = offset + (o + 0.5) / f - 0.5
    else:
        return None
    if nearest == "round_prefer_floor":
        r = np.floor(x) if x - np.floor(x) == 0.5 else np.round(x)
    elif nearest == "round_prefer_ceil":
        r = np.ceil(x) if x - np.floor(x) == 0.5 else np.round(x)
    elif nearest == "floor":
        r = np.floor(x)
    elif nearest == "ceil":
        r = np.ceil(x)
    else:
        return None
    return int(min(max(r, 0), n - 1))


def resize_factors(node, a, x, extra):
    """Per-axis scale of a Resize (opset 11+) per the spec: scales or sizes, axes,
    keep_aspect_ratio_policy."""
    r = x.ndim
    axes = [d % r for d in a.get("axes", list(range(r)))]
    present = [i for i in node.input if i]
    named = dict(zip(present, [x] + extra))
    scales = named.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    sizes = named.get(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and np.size(scales) > 0:
        full = [1.0] * r
        for i, d in enumerate(axes):
            full[d] = float(scales[i])
        return full, [int(np.floor(full[i] * x.shape[i])) for i in range(r)]
    full_sizes = list(x.shape)
    for i, d in enumerate(axes):
        full_sizes[d] = int(sizes[i])
    factors = [full_sizes[i] / x.shape[i] for i in range(r)]
    policy = text(a.get("keep_aspect_ratio_policy"), "stretch")
    if policy != "stretch":
        pick = min if policy == "not_larger" else max
        s = pick(factors[d] for d in axes)
        factors = [s if i in axes else 1.0 for i in range(r)]
        full_sizes = [int(s * x.shape[i] + 0.5) if i in axes else x.shape[i] for i in range(r)]
    return factors, full_sizes


def decide_upsampling(name, node, a, x, extra, y):
    mode = text(a.get("mode"), "nearest")
    if mode != "nearest":
        raise Refuse(f"mode {mode} (tinyvae imports nearest-neighbour upsampling)", name, mode)
    if x.ndim != 4:
        raise Refuse("not a 2-D image resize", name)
    if node.op_type == "Upsample":
        factors = [float(v) for v in extra[0]]
        ctm, nearest = "asymmetric", "floor"
    else:
        factors, _ = resize_factors(node, a, x, extra)
        ctm = text(a.get("coordinate_transformation_mode"), "half_pixel")
        nearest = text(a.get("nearest_mode"), "round_prefer_floor")
    if factors[0] != 1.0 or factors[1] != 1.0:
        raise Refuse(f"resizes the batch or channel axis (factors {factors})", name)
    hw = factors[2:]
    if any(f < 1.0 for f in hw):
        raise Refuse(f"downsampling (factors {hw})", name, "factors")
    if any(f != round(f) for f in hw):
        raise Refuse(f"non-integer upsampling factors {hw}", name, "factors")
    for axis, f in zip((2, 3), hw):
        n, f = x.shape[axis], int(f)
        src = [nearest_source(o, n, f, ctm, nearest) for o in range(n * f)]
        if src != [o // f for o in range(n * f)]:
            raise Refuse(
                f"coordinate_transformation_mode {ctm} with nearest_mode {nearest} does not repeat each pixel "
                f"(reads {src})",
                name,
                "coordinate_transformation_mode",
            )
    fh, fw = int(hw[0]), int(hw[1])
    want = np.repeat(np.repeat(x, fh, axis=2), fw, axis=3)
    assert want.shape == y.shape and np.array_equal(want, y), f"{name}: in scope but not a pixel repeat"


def decide(case, op, model):
    """("match", None, []) or ("refuse", reason, error_mentions), for the rewritten model."""
    g = model.graph
    ins, outs = case.data_sets[0]
    keep = kept_inputs(case, op)
    for vi, arr in list(zip(g.input, ins))[:keep]:
        et = vi.type.tensor_type.elem_type
        if et != TensorProto.FLOAT:
            tname = TensorProto.DataType.Name(et)
            raise Refuse(f"graph input {vi.name} is {tname}; tinyvae takes FLOAT inputs", f"`{vi.name}`", tname)
        if np.ndim(arr) < 2:
            raise Refuse(
                f"graph input {vi.name} has shape {list(np.shape(arr))}: no batch axis", f"`{vi.name}`", "rank"
            )
    for node in g.node:
        if node.domain or node.op_type not in TINYVAE_OP_TYPES:
            raise Refuse(
                f"the expanded function body uses {node.op_type}, which tinyvae does not import",
                node.name,
                f"`{node.op_type}`",
            )
    if len(g.node) > 1:
        return decide_composite(case, g)
    node = g.node[0]
    name, a = node.name, attrs(node)
    x, extra, y = ins[0], list(ins[1:]), outs[0]
    t = node.op_type
    if t == "Conv":
        if np.ndim(extra[0]) != 4:
            raise Refuse("not a 2-D convolution", name, "2-D")
    elif t == "ConvTranspose":
        if np.ndim(extra[0]) != 4:
            raise Refuse(f"a {np.ndim(extra[0]) - 2}-D transposed convolution", name, "2-D")
        if a.get("group", 1) != 1:
            raise Refuse(f"group {a['group']}", name, "group")
        if any(d != 1 for d in a.get("dilations", [1])):
            raise Refuse(f"dilations {a['dilations']}", name, "dilations")
    elif t == "BatchNormalization":
        if a.get("training_mode", 0):
            raise Refuse("training_mode=1", name, "training_mode")
        raise Refuse(
            "BatchNormalization reads the graph input, not a Conv/ConvTranspose/Gemm it could fold into", name, "fold"
        )
    elif t in ("Resize", "Upsample"):
        decide_upsampling(name, node, a, x, extra, y)
    elif t == "Add":
        if keep != 2:
            raise Refuse(
                "Add of a computed value and a broadcast constant (tinyvae adds constants only as a Gemm/MatMul bias)",
                name,
                "bias",
            )
    elif t == "Mul":
        raise Refuse(
            "Mul of two independent values (tinyvae imports Mul only as x * Sigmoid(x) or x * HardSigmoid(x))",
            name,
            "Sigmoid(x)",
        )
    elif t == "Gemm":
        if a.get("transA", 0):
            raise Refuse("transA=1: the batch axis of A is its second axis", name, "transA")
        if len(extra) > 1 and np.ndim(extra[1]) == 2 and np.shape(extra[1])[0] != 1:
            raise Refuse(f"bias C of shape {list(np.shape(extra[1]))} varies along the batch axis", name, "bias")
    elif t == "Flatten":
        axis = a.get("axis", 1)
        if axis % x.ndim != 1 or axis == x.ndim:
            raise Refuse(f"axis {axis} does not keep the batch axis alone", name, "axis")
    elif t == "Reshape":
        if y.ndim == 0 or y.shape[0] != x.shape[0] or x.shape[0] == 0:
            raise Refuse(f"reshapes {list(x.shape)} to {list(y.shape)}: the batch axis is not kept", name, "batch")
    elif t == "HardSigmoid":
        raise Refuse("HardSigmoid on its own (tinyvae imports it only as the gate of hard swish)", name, "swish")
    elif t == "Swish":
        if a.get("alpha", 1.0) != 1.0:
            raise Refuse(f"alpha {a['alpha']}", name, "alpha")
    elif t in ("Sigmoid", "HardSwish", "Relu", "LeakyRelu", "Tanh"):
        pass
    else:
        raise SystemExit(f"{case.name}: no expectation rule for {t}; decide one")
    return "match", None, []


def decide_composite(case, g):
    ops = [n.op_type for n in g.node]
    if ops == ["HardSigmoid", "Mul"]:
        hs, mul = g.node
        a = attrs(hs)
        x = g.input[0].name
        if abs(a.get("alpha", 0.2) - 1 / 6) < 1e-6 and a.get("beta", 0.5) == 0.5 and sorted(mul.input) == sorted(
            [x, hs.output[0]]
        ):
            return "match", None, []
    raise SystemExit(f"{case.name}: no expectation rule for the graph {ops}; decide one")


# ---- rewriting -------------------------------------------------------------------------------


def rewrite(case, op):
    """The model with weights as initializers and named nodes."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    g = model.graph
    ins = case.data_sets[0][0]
    keep = kept_inputs(case, op)
    short = case.name[len("test_"):] if case.name.startswith("test_") else case.name
    for k, node in enumerate(g.node):
        if not node.name:
            node.name = short if len(g.node) == 1 else f"{short}.{k}.{node.op_type}"
    inputs = list(g.input)
    assert len(inputs) == len(ins), f"{case.name}: {len(inputs)} graph inputs, {len(ins)} values"
    del g.input[:]
    g.input.extend(inputs[:keep])
    for vi, arr in zip(inputs[keep:], ins[keep:]):
        if isinstance(arr, TensorProto):
            t = TensorProto()
            t.CopyFrom(arr)
            t.name = vi.name
        else:
            t = numpy_helper.from_array(np.asarray(arr), vi.name)
        g.initializer.append(t)
    onnx.checker.check_model(model)
    return model


# ---- writing ---------------------------------------------------------------------------------


def number(v, dtype):
    if dtype.kind == "f":
        if not np.isfinite(v):
            raise ValueError("non-finite value")
        # The shortest decimal that reads back as this float32.
        return float(str(np.float32(v)))
    if dtype.kind == "b":
        return bool(v)
    return int(v)


def tensor_json(name, arr):
    arr = np.asarray(arr)
    values = [number(v, arr.dtype) for v in arr.reshape(-1)]
    return json.dumps(
        {"name": name, "dtype": str(arr.dtype), "shape": list(arr.shape), "values": values}, separators=(",", ":")
    )


def io_json(model, case, keep):
    ins, outs = case.data_sets[0]
    g = model.graph
    lines = ["{", ' "inputs": [']
    lines.append(",\n".join("  " + tensor_json(vi.name, a) for vi, a in zip(g.input, ins[:keep])))
    lines.append(" ],")
    lines.append(' "outputs": [')
    lines.append(",\n".join("  " + tensor_json(vo.name, a) for vo, a in zip(g.output, outs)))
    lines.append(" ]")
    lines.append("}")
    return ("\n".join(lines) + "\n").encode()


def reference_check(model, case, keep):
    """The rewritten model, run by onnx's reference evaluator, gives the expected outputs."""
    from onnx.reference import ReferenceEvaluator

    ins, outs = case.data_sets[0]
    feeds = {vi.name: a for vi, a in zip(model.graph.input, ins[:keep])}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:  # noqa: BLE001 - a report, not a failure
        return f"reference evaluator failed: {type(e).__name__}: {e}"
    for g_, w in zip(got, outs):
        if np.shape(g_) != np.shape(w) or not np.allclose(g_, w, rtol=1e-3, atol=1e-5):
            return "reference evaluator disagrees with the expected outputs"
    return None


def write_if_changed(path, data):
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)
    return True


def main():
    picked = collect()
    entries, files, skipped, notes = [], {}, [], []
    for case, op in picked:
        model = rewrite(case, op)
        keep = kept_inputs(case, op)
        try:
            expect, reason, mentions = decide(case, op, model)
        except Refuse as r:
            expect, reason, mentions = "refuse", r.reason, r.mentions
        if expect == "match":
            ins, outs = case.data_sets[0]
            assert all(np.shape(o)[0] == np.shape(ins[0])[0] for o in outs), f"{case.name}: batch changes"
            problem = reference_check(model, case, keep)
            if problem:
                raise SystemExit(f"{case.name}: {problem}")
        model_bytes = model.SerializeToString(deterministic=True)
        io_bytes = io_json(model, case, keep)
        size = len(model_bytes) + len(io_bytes)
        if size > MAX_CASE_BYTES:
            skipped.append(f"{case.name} ({size} bytes)")
            continue
        files[case.name] = {"model.onnx": model_bytes, "io.json": io_bytes}
        entry = {"name": case.name, "op": op, "expect": expect}
        if expect == "refuse":
            entry["reason"] = reason
            entry["error_mentions"] = mentions
        entries.append(entry)

    os.makedirs(OUT, exist_ok=True)
    changed = 0
    for name, fs in files.items():
        for fname, data in fs.items():
            changed += write_if_changed(os.path.join(OUT, name, fname), data)
    for d in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, d)
        if os.path.isdir(path) and d not in files and os.path.exists(os.path.join(path, "model.onnx")):
            shutil.rmtree(path)
            notes.append(f"removed stale {d}")
    index = {
        "generator": "tests/python/make_onnx_node_cases.py",
        "onnx": onnx.__version__,
        "numpy_seed": SEED,
        "cases": entries,
    }
    changed += write_if_changed(os.path.join(OUT, "cases.json"), (json.dumps(index, indent=1) + "\n").encode())

    per_op = {}
    for e in entries:
        m, r = per_op.get(e["op"], (0, 0))
        per_op[e["op"]] = (m + (e["expect"] == "match"), r + (e["expect"] == "refuse"))
    print(f"{len(entries)} cases from onnx {onnx.__version__} in {os.path.relpath(OUT)}:")
    for op_ in OPS:
        m, r = per_op.get(op_, (0, 0))
        print(f"  {op_:20} {m + r:3} cases: {m:3} match, {r:3} refuse")
    total_m = sum(1 for e in entries if e["expect"] == "match")
    print(f"  {'total':20} {len(entries):3} cases: {total_m:3} match, {len(entries) - total_m:3} refuse")
    total = sum(len(b) for fs in files.values() for b in fs.values())
    print(f"{total} bytes of case files; {changed} files written or updated")
    print("skipped (too large): " + (", ".join(skipped) if skipped else "none"))
    for n in notes:
        print(n)


if __name__ == "__main__":
    sys.exit(main())
