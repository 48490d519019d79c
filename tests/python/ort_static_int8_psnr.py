#!/usr/bin/env python3
"""onnxruntime's own static int8 quantization of a decoder, as the baseline tinyvae's int8 is
compared with: QDQ format, per-channel weights, MinMax calibration on 2000 prior samples
z ~ N(0, I), PSNR (peak 1) against the f32 model on 1000 other prior samples.

    python3 tests/python/ort_static_int8_psnr.py decoder.onnx [--latent 20]
"""

import argparse
import os
import tempfile

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class Prior(CalibrationDataReader):
    def __init__(self, name, latent, n, seed):
        z = np.random.default_rng(seed).standard_normal((n, latent)).astype(np.float32)
        self.batches = iter([{name: row[None]} for row in z])

    def get_next(self):
        return next(self.batches, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--latent", type=int, default=20)
    args = ap.parse_args()
    f32 = ort.InferenceSession(args.model)
    name = f32.get_inputs()[0].name
    with tempfile.TemporaryDirectory() as tmp:
        q = os.path.join(tmp, "int8.onnx")
        quantize_static(
            args.model, q, Prior(name, args.latent, 2000, 0), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        )
        i8 = ort.InferenceSession(q)
        z = np.random.default_rng(1).standard_normal((1000, args.latent)).astype(np.float32)
        want = f32.run(None, {name: z})[0].reshape(1000, -1)
        got = i8.run(None, {name: z})[0].reshape(1000, -1)
    mse = float(np.mean((want - got) ** 2))
    print(f"{args.model}: onnxruntime static int8 (QDQ, per channel, MinMax): PSNR {10 * np.log10(1 / mse):.2f} dB, "
          f"max abs {np.abs(want - got).max():.4f}")


if __name__ == "__main__":
    main()
