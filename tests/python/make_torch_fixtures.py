#!/usr/bin/env python3
"""Writes tests/data/torch-export/: small VAE decoders exported by PyTorch's real exporters, so
the tests check what users' models look like without installing torch in CI.

For each model, both exporters:
- `legacy/NAME.onnx`: `torch.onnx.export(..., dynamo=False)`, the TorchScript exporter
  (opset 20 with torch 2.15), weights inside the file;
- `dynamo/NAME.onnx` + `dynamo/NAME.onnx.data`: `torch.onnx.export(..., dynamo=True)` with
  `external_data=True`, what torch 2.9 and later write by default (opset 18+), weights in a
  sidecar.

Models (weights from a fixed seed; untrained is enough for import and fidelity checks, and
keeps the files small):
- `mlp_decoder`: Linear(8, 64) -> ReLU -> Linear(64, 784) -> Sigmoid, the MLP VAE decoder of
  most tutorials (z = 8).
- `conv_decoder`: Linear(8, 16*7*7) -> ReLU -> view(16, 7, 7) -> ConvTranspose2d(16, 8, 4, 2, 1)
  -> ReLU -> ConvTranspose2d(8, 1, 4, 2, 1) -> Sigmoid, the conv VAE decoder of most tutorials
  (narrowed).
- `convt_k3_decoder`: the same with ConvTranspose2d(kernel 3, stride 2, padding 1,
  output_padding 1).
- `upsample_decoder`: Linear -> view(16, 7, 7) -> [Upsample(x2) -> Conv2d(3, pad 1) ->
  BatchNorm2d -> LeakyReLU(0.1)] -> [Upsample(x2) -> Conv2d -> BatchNorm2d -> SiLU] ->
  Conv2d(8, 1, 3, pad 1) -> Sigmoid, with non-trivial BatchNorm statistics.
- `residual_decoder`: Linear -> view(16, 7, 7) -> a residual block (x + Conv(ReLU(Conv(x))))
  -> ConvTranspose2d(16, 8, 4, 2, 1) -> ReLU -> ConvTranspose2d(8, 1, 4, 2, 1) -> Sigmoid.
- `conv_encoder`: Conv2d(1, 8, 4, 2, 1) -> ReLU -> Conv2d(8, 16, 4, 2, 1) -> ReLU -> Flatten ->
  Linear(16*7*7, 8) twice (mu, logvar): two outputs, input `x` of shape [batch, 1, 28, 28].
The tests import each one and compare it with torch's outputs, export it back to ONNX and run
that in tract, and quantize it to int8 and f16 (crates/tinyvae-compiler/tests/torch_conv_import.rs,
tests/torch_shaped_models.rs).

`expected.json` holds three latent inputs `z`, three images `x`, and each model's outputs from
torch itself, as a list of output arrays (the exporters' outputs match it within 1e-5; the
script checks that with onnxruntime).

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


class ConvTDecoderK3(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 16 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(8, 1, 3, 2, 1, output_padding=1)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(-1, 16, 7, 7)
        return torch.sigmoid(self.up2(torch.relu(self.up1(h))))


def batchnorm(channels):
    bn = nn.BatchNorm2d(channels)
    with torch.no_grad():  # statistics as after training, so folding them is visible
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    return bn


class UpsampleDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 16 * 7 * 7)
        self.block1 = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), batchnorm(8), nn.LeakyReLU(0.1)
        )
        self.block2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), batchnorm(8), nn.SiLU())
        self.out = nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, z):
        h = self.fc(z).view(-1, 16, 7, 7)
        return torch.sigmoid(self.out(self.block2(self.block1(h))))


class ResidualDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 16 * 7 * 7)
        self.res = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.up1 = nn.ConvTranspose2d(16, 8, 4, 2, 1)
        self.up2 = nn.ConvTranspose2d(8, 1, 4, 2, 1)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(-1, 16, 7, 7)
        h = h + self.res(h)
        return torch.sigmoid(self.up2(torch.relu(self.up1(h))))


class ConvEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 4, 2, 1), nn.ReLU(), nn.Flatten())
        self.mu = nn.Linear(16 * 7 * 7, LATENT)
        self.logvar = nn.Linear(16 * 7 * 7, LATENT)

    def forward(self, x):
        h = self.conv(x)
        return self.mu(h), self.logvar(h)


def export(model, name, z):
    legacy = os.path.join(OUT, "legacy", f"{name}.onnx")
    dynamo = os.path.join(OUT, "dynamo", f"{name}.onnx")
    for path in (legacy, dynamo):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    inputs, outputs = (["x"], ["mu", "logvar"]) if isinstance(model, ConvEncoder) else (["z"], ["x"])
    axes = {n: {0: "batch"} for n in inputs + outputs}
    torch.onnx.export(model, (z,), legacy, dynamo=False, input_names=inputs, output_names=outputs, dynamic_axes=axes)
    program = torch.onnx.export(
        model,
        (z,),
        dynamo=True,
        input_names=inputs,
        output_names=outputs,
        dynamic_shapes={"z" if inputs == ["z"] else "x": {0: torch.export.Dim("batch")}},
    )
    program.save(dynamo, external_data=True)
    return legacy, dynamo


def main():
    torch.manual_seed(20251204)
    z = torch.randn(3, LATENT)
    x = torch.rand(3, 1, 28, 28)
    expected = {"producer": f"torch {torch.__version__}", "z": z.tolist(), "x": x.reshape(3, -1).tolist()}
    models = [
        ("mlp_decoder", MlpDecoder()),
        ("conv_decoder", ConvDecoder()),
        ("convt_k3_decoder", ConvTDecoderK3()),
        ("upsample_decoder", UpsampleDecoder()),
        ("residual_decoder", ResidualDecoder()),
        ("conv_encoder", ConvEncoder()),
    ]
    for name, model in models:
        model.eval()
        inp = x if isinstance(model, ConvEncoder) else z
        feed = {"x" if isinstance(model, ConvEncoder) else "z": inp.numpy()}
        with torch.no_grad():
            out = model(inp)
        want = [t.reshape(3, -1).numpy() for t in (out if isinstance(out, tuple) else (out,))]
        for path in export(model, name, inp):
            got = ort.InferenceSession(path).run(None, feed)
            err = max(float(np.abs(g.reshape(3, -1) - w).max()) for g, w in zip(got, want))
            if err > 1e-5:
                sys.exit(f"{path}: onnxruntime differs from torch by {err}")
            print(f"wrote {os.path.relpath(path)} (onnxruntime matches torch within {err:.1e})")
        # Seven decimals: far below the tests' 1e-5 tolerance, and half the file size.
        expected[name] = [np.round(w.astype(np.float64), 7).tolist() for w in want]
    with open(os.path.join(OUT, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
