#!/usr/bin/env python3
"""Writes tests/data/torch-export/: small VAE decoders exported by PyTorch's real exporters, so
the tests check what users' models look like without installing torch in CI.

For each model, both exporters:
- `legacy/NAME.onnx`: `torch.onnx.export(..., dynamo=False)`, the TorchScript exporter
  (opset 17), weights inside the file;
- `dynamo/NAME.onnx` + `dynamo/NAME.onnx.data`: `torch.onnx.export(..., dynamo=True)` with
  `external_data=True`, what torch 2.9 and later write by default (opset 18+), weights in a
  sidecar.

Models (weights from a fixed seed; untrained is enough for import and fidelity checks, and
keeps the files small):
- `mlp_decoder`: Linear(8, 64) -> ReLU -> Linear(64, 784) -> Sigmoid, the MLP VAE decoder of
  most tutorials (z = 8).
- `conv_decoder`: Linear(8, 16*7*7) -> ReLU -> view(16, 7, 7) -> ConvTranspose2d(16, 8, 4, 2, 1)
  -> ReLU -> ConvTranspose2d(8, 1, 4, 2, 1) -> Sigmoid, the conv VAE decoder of most tutorials
  (narrowed). tinyvae does not import convolutions yet: the tests check that the refusal names
  the op and the node.

`expected.json` holds a few latent inputs and each model's outputs from torch itself (the
exporters' outputs match it within 1e-5; the script checks that with onnxruntime).

    python3 tests/python/make_torch_fixtures.py     # needs torch, onnxscript, onnxruntime
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "torch-export")
LATENT = 8


class MlpDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, 64), nn.ReLU(), nn.Linear(64, 784), nn.Sigmoid())

    def forward(self, z):
        return self.net(z)


class ConvDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 16 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.up2 = nn.ConvTranspose2d(8, 1, 4, 2, 1)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(-1, 16, 7, 7)
        return torch.sigmoid(self.up2(torch.relu(self.up1(h))))


def export(model, name, z):
    legacy = os.path.join(OUT, "legacy", f"{name}.onnx")
    dynamo = os.path.join(OUT, "dynamo", f"{name}.onnx")
    for path in (legacy, dynamo):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    axes = {"z": {0: "batch"}, "x": {0: "batch"}}
    torch.onnx.export(model, (z,), legacy, dynamo=False, input_names=["z"], output_names=["x"], dynamic_axes=axes)
    program = torch.onnx.export(
        model, (z,), dynamo=True, input_names=["z"], output_names=["x"], dynamic_shapes={"z": {0: torch.export.Dim("batch")}}
    )
    program.save(dynamo, external_data=True)
    return legacy, dynamo


def main():
    torch.manual_seed(20251204)
    z = torch.randn(5, LATENT)
    expected = {"producer": f"torch {torch.__version__}", "input": "z", "output": "x", "z": z.tolist()}
    for name, model in [("mlp_decoder", MlpDecoder()), ("conv_decoder", ConvDecoder())]:
        model.eval()
        with torch.no_grad():
            want = model(z).reshape(5, -1).numpy()
        for path in export(model, name, z):
            got = ort.InferenceSession(path).run(None, {"z": z.numpy()})[0].reshape(5, -1)
            err = float(np.abs(got - want).max())
            if err > 1e-5:
                sys.exit(f"{path}: onnxruntime differs from torch by {err}")
            print(f"wrote {os.path.relpath(path)} (onnxruntime matches torch within {err:.1e})")
        # Seven decimals: far below the tests' 1e-5 tolerance, and half the file size.
        expected[name] = np.round(want.astype(np.float64), 7).tolist()
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
