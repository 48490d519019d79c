#!/usr/bin/env python3
"""Trains the two conv VAE shapes users bring from PyTorch on MNIST and exports them with both
of torch's exporters, for the "a trained PyTorch conv VAE quantizes without surgery" checks.

- `tutorial`: the conv VAE of most tutorials. Decoder Linear(z, 64*7*7) -> ReLU ->
  view(64, 7, 7) -> ConvTranspose2d(64, 32, 4, 2, 1) -> ReLU -> ConvTranspose2d(32, 1, 4, 2, 1)
  -> Sigmoid; the encoder mirrors it with Conv2d(1, 32, 4, 2, 1) -> ReLU -> Conv2d(32, 64, 4, 2,
  1) -> ReLU -> Flatten -> Linear heads for mu and logvar.
- `upsample`: a decoder of Upsample(x2) -> Conv2d(3, pad 1) -> BatchNorm2d -> LeakyReLU / SiLU
  blocks (BatchNorm trained, then folded by the exporters or by tinyvae), same encoder.

Each model is written as OUT/{legacy,dynamo}/{NAME}_{decoder,encoder}.onnx (dynamo with an
external-data sidecar, as torch writes by default), and OUT/NAME.json records the test negative
ELBO measured in torch.

    python3 tests/python/train_torch_conv_vaes.py OUT [--epochs N] [--threads T]

Needs torch, onnxscript, numpy; reads MNIST from $TINYVAE_MNIST (default ../shared/data/mnist).
"""

import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LATENT = 20


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten()
        )
        self.mu = nn.Linear(64 * 7 * 7, LATENT)
        self.logvar = nn.Linear(64 * 7 * 7, LATENT)

    def forward(self, x):
        h = self.conv(x)
        return self.mu(h), self.logvar(h)


class TutorialDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 64 * 7 * 7)
        self.up1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.up2 = nn.ConvTranspose2d(32, 1, 4, 2, 1)

    def forward(self, z):
        h = torch.relu(self.fc(z)).view(-1, 64, 7, 7)
        return torch.sigmoid(self.up2(torch.relu(self.up1(h))))


class UpsampleDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(LATENT, 32 * 7 * 7)
        self.block1 = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.LeakyReLU(0.1)
        )
        self.block2 = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.BatchNorm2d(16), nn.SiLU()
        )
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, z):
        h = self.fc(z).view(-1, 32, 7, 7)
        return torch.sigmoid(self.out(self.block2(self.block1(h))))


def neg_elbo(enc, dec, x):
    mu, logvar = enc(x)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    logits_free = dec(z).clamp(1e-6, 1 - 1e-6)
    rec = F.binary_cross_entropy(logits_free, x, reduction="none").flatten(1).sum(1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    return (rec + kl).mean()


def export(model, path_legacy, path_dynamo, example, inputs, outputs):
    model.eval()
    for p in (path_legacy, path_dynamo):
        os.makedirs(os.path.dirname(p), exist_ok=True)
    axes = {n: {0: "batch"} for n in inputs + outputs}
    torch.onnx.export(
        model, (example,), path_legacy, dynamo=False, input_names=inputs, output_names=outputs, dynamic_axes=axes
    )
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        input_names=inputs,
        output_names=outputs,
        dynamic_shapes={inputs[0]: {0: torch.export.Dim("batch")}},
    )
    program.save(path_dynamo, external_data=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", choices=["tutorial", "upsample"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = os.environ.get("TINYVAE_MNIST", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "mnist"))
    train = torch.tensor(idx(os.path.join(root, "train-images-idx3-ubyte.gz")), dtype=torch.float32).div(255).unsqueeze(1)
    test = torch.tensor(idx(os.path.join(root, "t10k-images-idx3-ubyte.gz")), dtype=torch.float32).div(255).unsqueeze(1)
    for name, make in (("tutorial", TutorialDecoder), ("upsample", UpsampleDecoder)):
        if args.only and args.only != name:
            continue
        torch.manual_seed(20261204)
        enc, dec = Encoder(), make()
        params = list(enc.parameters()) + list(dec.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        steps = args.epochs * math.ceil(len(train) / 128)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        t0 = time.time()
        for epoch in range(args.epochs):
            enc.train()
            dec.train()
            perm = torch.randperm(len(train))
            total = 0.0
            for i in range(0, len(train), 128):
                x = torch.bernoulli(train[perm[i : i + 128]])
                loss = neg_elbo(enc, dec, x)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += loss.item() * len(x)
            print(f"{name} epoch {epoch + 1}/{args.epochs}: train -ELBO {total / len(train):.2f} ({time.time() - t0:.0f} s)", flush=True)
        enc.eval()
        dec.eval()
        torch.manual_seed(0)
        with torch.no_grad():
            test_nelbo = sum(neg_elbo(enc, dec, test[i : i + 1000]).item() * 1000 for i in range(0, 10000, 1000)) / 10000
        print(f"{name}: test -ELBO {test_nelbo:.2f} nats (one z sample, pixel values as Bernoulli targets)")
        for part, model, example, inputs, outputs in (
            ("decoder", dec, torch.randn(2, LATENT), ["z"], ["x"]),
            ("encoder", enc, test[:2], ["x"], ["mu", "logvar"]),
        ):
            export(
                model,
                os.path.join(args.out, "legacy", f"{name}_{part}.onnx"),
                os.path.join(args.out, "dynamo", f"{name}_{part}.onnx"),
                example,
                inputs,
                outputs,
            )
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"epochs": args.epochs, "test_neg_elbo": test_nelbo, "torch": torch.__version__}, f, indent=1)


if __name__ == "__main__":
    main()
