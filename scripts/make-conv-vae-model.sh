#!/usr/bin/env bash
# Rebuilds the shipped convolutional VAE in models/mnist-conv-vae from scratch: trains the
# tutorial-shaped conv VAE (Conv2d 32, 64 encoder; Dense + ConvTranspose 64 -> 32 -> 1 decoder,
# z = 20) on ../shared/data/mnist (the 10,000 MNIST training images on these machines) with one
# thread, exports ONNX, quantizes, validates against tract, and draws the samples. About 30 to
# 45 minutes of training on a shared 2-core machine. Every step is deterministic.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/mnist}
RUNS=${RUNS:-target/runs}
cargo build --release -p tinyvae-cli
T=target/release/tinyvae
out=models/mnist-conv-vae
mkdir -p "$out/reports" "$RUNS"
RAYON_NUM_THREADS=1 $T train --model vae --arch conv --channels 32,64 --latent 20 --data "$DATA" \
    --out "$RUNS/mnist-conv-vae" --epochs 120 --batch-size 128 --lr 1e-3 --cosine-to 0.02 --ema 0.999 \
    --translate 1 --translate-prob 0.5 --seed 0 --test-every 20 --quiet
cp "$RUNS/mnist-conv-vae/encoder.onnx" "$RUNS/mnist-conv-vae/decoder.onnx" "$RUNS/mnist-conv-vae/train_log.jsonl" "$out/"
$T fit-prior --encoder "$out/encoder.onnx" --data "$DATA" --components 50 --report "$out/reports/prior.json"
$T quantize "$out/decoder.onnx" --precision int8 -o "$out/decoder.int8.tvae" --prior "$out/reports/prior.json" --json > "$out/reports/decoder.int8.json"
$T quantize "$out/decoder.onnx" --precision f16 -o "$out/decoder.f16.tvae" --prior "$out/reports/prior.json" --json > "$out/reports/decoder.f16.json"
$T quantize "$out/encoder.onnx" --precision int8 -o "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/encoder.int8.json"
$T validate "$out/decoder.onnx" "$out/decoder.int8.tvae" --min-psnr 44 --json > "$out/reports/validate.decoder.int8.json"
$T validate "$out/decoder.onnx" "$out/decoder.f16.tvae" --json > "$out/reports/validate.decoder.f16.json"
$T validate "$out/encoder.onnx" "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/validate.encoder.int8.json"
$T sample "$out/decoder.int8.tvae" --count 64 --seed 1 -o "$out/samples.png"
$T figure priors "$out/decoder.int8.tvae" -o "$out/priors.png"
$T figure reconstructions --pair "$out/encoder.int8.tvae,$out/decoder.int8.tvae" --data "$DATA" -o "$out/reconstructions.png"
