#!/usr/bin/env python3
"""Build, train and export the MLPerf Tiny anomaly-detection autoencoder (ToyCar "ad01").

Topology (mlcommons/tiny benchmark/training/anomaly_detection/keras_model.py, the DCASE 2020
task 2 baseline): input 640 -> 4 x [Dense(128) + BatchNorm + ReLU] -> [Dense(8) + BatchNorm + ReLU]
-> 4 x [Dense(128) + BatchNorm + ReLU] -> Dense(640), no output activation.  Keras defaults are
mirrored: glorot-uniform kernels, zero biases, BatchNorm epsilon 1e-3 and momentum 0.99 (= PyTorch
momentum 0.01).

The real ToyADMOS log-mel features are not available here, so the data is "MNIST-640": each 28x28
MNIST image / 255 as float32, flattened to 784 values, keeping elements 72..711 (the middle 640).
Normal = digits 0-8, anomalous = digit 9.

Outputs, written next to this script: ad.onnx (single file, BatchNormalization kept as separate
nodes after Gemm), calib.npy, normal.npy, anomalous.npy ([N, 640] float32) and make.json.

Usage:  cd models/mlperf-tiny-ad && python3 make.py [--mnist ../../../shared/data/mnist]
"""

import argparse
import gzip
import hashlib
import inspect
import json
import os
import random
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MNIST = "../../../shared/data/mnist"  # relative to this script's folder

SEED = 0
INPUT_DIM = 640
FEAT_LO, FEAT_HI = 72, 72 + INPUT_DIM  # middle 640 of the 784 pixels
ENC = [128, 128, 128, 128]
BOTTLENECK = 8
DEC = [128, 128, 128, 128]
BN_EPS = 1e-3  # keras BatchNormalization default
BN_MOMENTUM = 0.01  # keras momentum 0.99
LR = 1e-3
BATCH = 512
N_CALIB, N_NORMAL, N_ANOM = 256, 512, 512
ANOMALY_DIGIT = 9
ORT_TOL = 1e-5


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------
def resolve_mnist_dir(arg):
    """Absolute paths as given; relative ones against the CWD first, then this script's folder."""
    if os.path.isabs(arg):
        cands = [arg]
    else:
        cands = [os.path.abspath(arg), os.path.normpath(os.path.join(HERE, arg))]
    for c in cands:
        if os.path.isdir(c):
            return c
    sys.exit(f"MNIST directory not found; tried: {cands}")


def read_idx(dirname, stem):
    """Read an IDX file, gzipped or not (detected by magic bytes, with or without .gz suffix)."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(dirname, name)
        if os.path.exists(path):
            break
    else:
        sys.exit(f"missing {stem}[.gz] in {dirname}")
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = int.from_bytes(raw[0:4], "big")
    ndim = magic & 0xFF
    if (magic >> 8) != 0x08:  # unsigned byte data
        sys.exit(f"{path}: unexpected IDX magic {magic:#x}")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    assert data.size == int(np.prod(dims)), (path, dims, data.size)
    return data.reshape(dims), path


def mnist640(images):
    x = images.reshape(len(images), 28 * 28).astype(np.float32) / np.float32(255.0)
    return np.ascontiguousarray(x[:, FEAT_LO:FEAT_HI])


# ----------------------------------------------------------------------------------------------
# model
# ----------------------------------------------------------------------------------------------
def build_model():
    layers = []
    widths = [INPUT_DIM] + ENC + [BOTTLENECK] + DEC
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        layers += [
            nn.Linear(fan_in, fan_out),
            nn.BatchNorm1d(fan_out, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(),
        ]
    layers.append(nn.Linear(widths[-1], INPUT_DIM))
    model = nn.Sequential(*layers)
    for m in model.modules():  # keras Dense defaults
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def count_macs(model):
    return sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))


# ----------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------
def auroc(neg_scores, pos_scores):
    """Mann-Whitney U / (n0 n1), average ranks for ties; P(score_pos > score_neg)."""
    s = np.concatenate([neg_scores, pos_scores]).astype(np.float64)
    srt = np.sort(s)
    lo = np.searchsorted(srt, s, side="left")
    hi = np.searchsorted(srt, s, side="right")
    ranks = (lo + 1 + hi) / 2.0  # 1-based average rank
    n0, n1 = len(neg_scores), len(pos_scores)
    r_pos = ranks[n0:].sum()
    return float((r_pos - n1 * (n1 + 1) / 2.0) / (n0 * n1))


@torch.no_grad()
def recon_mse(model, x):
    model.eval()
    xt = torch.from_numpy(x)
    return ((model(xt) - xt) ** 2).mean(dim=1).numpy()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def onnx_ops(path):
    import onnx

    m = onnx.load(path, load_external_data=False)
    ops = [n.op_type for n in m.graph.node]
    opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
    return m, ops, opset


# ----------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", default=DEFAULT_MNIST,
                    help="directory with the MNIST IDX files (relative: CWD, then script folder)")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--max-train-seconds", type=float, default=180.0,
                    help="safety cap; if hit, training stops early (and the run is no longer "
                         "reproducible byte-for-byte)")
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)

    print(f"python {sys.version.split()[0]}  torch {torch.__version__}  numpy {np.__version__}  "
          f"threads {torch.get_num_threads()}")

    # ---------------- data
    mdir = resolve_mnist_dir(args.mnist)
    tr_img, p1 = read_idx(mdir, "train-images-idx3-ubyte")
    tr_lab, _ = read_idx(mdir, "train-labels-idx1-ubyte")
    te_img, p2 = read_idx(mdir, "t10k-images-idx3-ubyte")
    te_lab, _ = read_idx(mdir, "t10k-labels-idx1-ubyte")
    print(f"MNIST from {mdir}: train {tr_img.shape} test {te_img.shape} "
          f"(gzip: {p1.endswith('.gz')}/{p2.endswith('.gz')})")
    assert len(tr_img) == len(tr_lab) and len(te_img) == len(te_lab)

    xtr_all, xte_all = mnist640(tr_img), mnist640(te_img)
    dropped = np.concatenate([tr_img.reshape(-1, 784)[:, :FEAT_LO],
                              tr_img.reshape(-1, 784)[:, FEAT_HI:]], axis=1)
    print(f"MNIST-640: kept pixels [{FEAT_LO}, {FEAT_HI}); dropped pixels are nonzero in "
          f"{(dropped > 0).any(axis=1).mean() * 100:.2f}% of training images, "
          f"mean dropped intensity {dropped.mean() / 255:.5f}")

    tr_norm_idx = np.flatnonzero(tr_lab != ANOMALY_DIGIT)
    te_norm_idx = np.flatnonzero(te_lab != ANOMALY_DIGIT)
    te_anom_idx = np.flatnonzero(te_lab == ANOMALY_DIGIT)
    x_train = xtr_all[tr_norm_idx]
    print(f"train (digits 0-8): {len(x_train)} vectors; test normal pool {len(te_norm_idx)}, "
          f"test anomalous pool (digit {ANOMALY_DIGIT}) {len(te_anom_idx)}")

    rng = np.random.default_rng(SEED)
    calib_idx = np.sort(rng.choice(tr_norm_idx, N_CALIB, replace=False))
    normal_idx = np.sort(rng.choice(te_norm_idx, N_NORMAL, replace=False))
    anom_idx = np.sort(rng.choice(te_anom_idx, N_ANOM, replace=False))
    calib, normal, anomalous = xtr_all[calib_idx], xte_all[normal_idx], xte_all[anom_idx]
    print("normal.npy digit histogram:", np.bincount(te_lab[normal_idx], minlength=10).tolist())

    # ---------------- model
    model = build_model()
    macs = count_macs(model)
    n_params = sum(p.numel() for p in model.parameters())
    n_buffers = sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked"))
    print(model)
    print(f"MACs per vector (Linear layers): {macs:,}   parameters: {n_params:,} "
          f"(+{n_buffers:,} BN running stats)")

    # ---------------- train
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.MSELoss()
    gen = torch.Generator().manual_seed(SEED)
    xt = torch.from_numpy(x_train)
    n = len(xt)
    history = []
    t0 = time.time()
    stopped_early = False
    for ep in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        tot = 0.0
        for i in range(0, n, BATCH):
            xb = xt[perm[i:i + BATCH]]
            if len(xb) < 2:  # BatchNorm needs >1 sample in training mode
                continue
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), xb)
            loss.backward()
            opt.step()
            tot += loss.item() * len(xb)
        ep_loss = tot / n
        history.append(ep_loss)
        el = time.time() - t0
        print(f"epoch {ep:4d}  train loss {ep_loss:.6f}  ({el:6.1f}s)", flush=True)
        if el > args.max_train_seconds and ep < args.epochs:
            print(f"WARNING: training time cap {args.max_train_seconds}s hit after {ep} epochs")
            stopped_early = True
            break
    train_seconds = time.time() - t0
    epochs_run = len(history)
    model.eval()

    train_eval_mse = float(recon_mse(model, x_train).mean())
    mse_n = recon_mse(model, normal)
    mse_a = recon_mse(model, anomalous)
    auc = auroc(mse_n, mse_a)
    print(f"final train loss (train-mode BN, last epoch mean): {history[-1]:.6f}")
    print(f"eval-mode MSE on all training vectors:            {train_eval_mse:.6f}")
    print(f"mean reconstruction MSE  normal.npy:    {mse_n.mean():.6f}")
    print(f"mean reconstruction MSE  anomalous.npy: {mse_a.mean():.6f}")
    print(f"AUROC (per-vector MSE, anomalous vs normal): {auc:.4f}")

    # ---------------- numpy files
    for name, arr in (("calib", calib), ("normal", normal), ("anomalous", anomalous)):
        assert arr.dtype == np.float32 and arr.shape[1] == INPUT_DIM
        np.save(os.path.join(args.out, f"{name}.npy"), arr)

    # ---------------- export
    import onnx
    import onnxruntime as ort
    from torch.export import Dim

    sig = inspect.signature(torch.onnx.export).parameters
    dflt = {k: sig[k].default for k in ("dynamo", "external_data", "optimize", "opset_version")
            if k in sig}
    print(f"torch.onnx.export defaults: {dflt}")

    dummy = torch.zeros(1, INPUT_DIM)
    common = dict(input_names=["x"], output_names=["x_hat"],
                  dynamic_shapes=({0: Dim("batch")},))

    # (a) probe: everything default, to document what the default exporter does to this model
    with tempfile.TemporaryDirectory() as td:
        p = os.path.join(td, "ad.onnx")
        prog = torch.onnx.export(model, (dummy,), p, **common)
        files = sorted(os.listdir(td))
        _, probe_ops, _ = onnx_ops(p)
        probe = {
            "exporter": "dynamo (torch.export)" if isinstance(prog, torch.onnx.ONNXProgram)
            else "torchscript",
            "files": {f: os.path.getsize(os.path.join(td, f)) for f in files},
            "BatchNormalization_nodes": probe_ops.count("BatchNormalization"),
            "op_types": sorted(set(probe_ops)),
        }
    print(f"probe export with all defaults: {probe}")
    if len(probe["files"]) > 1:
        print("NOTE: the default exporter writes the weights to external data (ad.onnx.data) "
              "even for this ~1 MB model (external_data=True is the default)")
    if probe["BatchNormalization_nodes"] == 0:
        print("NOTE: the default exporter's optimizer (optimize=True, onnxscript rewriter) folds "
              "every BatchNormalization into the preceding Gemm")

    # (b) the real export: default exporter, but single file and no graph optimization so that
    #     BatchNormalization stays a separate node after each Gemm.
    onnx_path = os.path.join(args.out, "ad.onnx")
    for stale in (onnx_path, onnx_path + ".data"):
        if os.path.exists(stale):
            os.remove(stale)
    prog = torch.onnx.export(model, (dummy,), onnx_path, external_data=False, optimize=False,
                             **common)
    exporter = ("dynamo (torch.export-based, torch.onnx.ONNXProgram)"
                if isinstance(prog, torch.onnx.ONNXProgram) else "torchscript (legacy)")
    m, ops, opset = onnx_ops(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    extra = sorted(f for f in os.listdir(args.out) if f.startswith("ad.onnx") and f != "ad.onnx")
    ext_init = [t.name for t in m.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    print(f"exporter: {exporter}; flags: external_data=False, optimize=False")
    print(f"ONNX opset: {opset}; ir_version {m.ir_version}; producer {m.producer_name} "
          f"{m.producer_version}")
    print(f"self-contained: {not extra and not ext_init} (extra files {extra}, external "
          f"initializers {len(ext_init)})")
    print(f"graph input  {m.graph.input[0].name}: "
          f"{[d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]}")
    print(f"graph output {m.graph.output[0].name}: "
          f"{[d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]}")
    print(f"{len(ops)} nodes, op sequence: {ops}")
    counts = {o: ops.count(o) for o in sorted(set(ops))}
    print(f"op counts: {counts}")
    bn_nodes = [nd for nd in m.graph.node if nd.op_type == "BatchNormalization"]
    assert len(bn_nodes) == 9, "expected 9 BatchNormalization nodes"
    bn_attrs = {a.name: onnx.helper.get_attribute_value(a) for a in bn_nodes[0].attribute}
    print(f"BatchNormalization present: {len(bn_nodes)} nodes; attrs {bn_attrs}; "
          f"outputs per node {sorted({len(nd.output) for nd in bn_nodes})}")

    # ---------------- verify with onnxruntime
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    xv = np.concatenate([normal[:32], anomalous[:32]])
    with torch.no_grad():
        ref = model(torch.from_numpy(xv)).numpy()
    got = sess.run(["x_hat"], {"x": xv})[0]
    diff64 = float(np.abs(got - ref).max())
    got1 = np.concatenate([sess.run(["x_hat"], {"x": xv[i:i + 1]})[0] for i in range(4)])
    diff1 = float(np.abs(got1 - ref[:4]).max())
    ok = diff64 <= ORT_TOL and diff1 <= ORT_TOL
    print(f"onnxruntime {ort.__version__} vs torch: max |diff| {diff64:.3e} on 64 vectors "
          f"(batch 64), {diff1:.3e} at batch 1 -> {'OK' if ok else 'FAIL'} (tol {ORT_TOL:g})")

    # ---------------- summary
    outs = ["ad.onnx", "calib.npy", "normal.npy", "anomalous.npy"]
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in outs}
    hashes = {f: sha256(os.path.join(args.out, f)) for f in outs}
    summary = {
        "model": "MLPerf Tiny anomaly detection (ToyCar) dense autoencoder, "
                 "640-128x4-8-128x4-640, Linear+BatchNorm1d+ReLU",
        "data": f"MNIST-640: pixels/255, flattened, elements [{FEAT_LO},{FEAT_HI}); "
                f"normal = digits 0-8, anomalous = digit {ANOMALY_DIGIT}",
        "seed": SEED,
        "macs": macs,
        "parameters": n_params,
        "bn": {"eps": BN_EPS, "torch_momentum": BN_MOMENTUM},
        "optimizer": {"name": "Adam", "lr": LR, "batch": BATCH, "loss": "MSE"},
        "train_vectors": int(len(x_train)),
        "epochs": epochs_run,
        "stopped_early_by_time_cap": stopped_early,
        "final_train_loss": history[-1],
        "train_loss_per_epoch": history,
        "train_eval_mse": train_eval_mse,
        "mse_normal": float(mse_n.mean()),
        "mse_anomalous": float(mse_a.mean()),
        "auroc": auc,
        "n": {"calib": N_CALIB, "normal": N_NORMAL, "anomalous": N_ANOM},
        "exporter": exporter,
        "export_flags": {"external_data": False, "optimize": False,
                         "dynamic_shapes": "x[0] = batch"},
        "default_export_probe": probe,
        "opset": opset,
        "onnx_op_counts": counts,
        "onnxruntime_max_abs_diff": {"batch64": diff64, "batch1": diff1, "tol": ORT_TOL,
                                     "ok": ok},
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxruntime": ort.__version__, "numpy": np.__version__},
        "file_bytes": sizes,
        "sha256": hashes,
    }
    with open(os.path.join(args.out, "make.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    for fn in outs:
        print(f"{fn:14s} {sizes[fn]:>9,d} B  sha256 {hashes[fn]}")
    print(f"total {sum(sizes.values()):,} B; training {train_seconds:.1f}s; "
          f"wall {time.time() - t_start:.1f}s")
    if not ok:
        sys.exit("onnxruntime mismatch")


if __name__ == "__main__":
    main()
