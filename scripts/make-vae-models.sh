#!/usr/bin/env bash
# Rebuilds the shipped MLP VAEs in models/mnist-vae-z20 and models/mnist-vae-z2 from scratch:
# trains on ../shared/data/mnist (the first 10,000 MNIST training images), exports ONNX,
# quantizes, validates against tract, and draws the figures. About 6 minutes of training per
# model on 2 cores. Every step is deterministic: the same files come out each time.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/mnist}
RUNS=${RUNS:-target/runs}
cargo build --release -p tinyvae-cli
T=target/release/tinyvae
for z in 20 2; do
    out=models/mnist-vae-z$z
    mkdir -p "$out/reports" "$RUNS"
    $T train --data "$DATA" --out "$RUNS/mnist-vae-z$z" --latent $z --hidden 400 --epochs 300 --batch-size 128 \
        --lr 2e-3 --cosine-to 0.02 --ema 0.999 --translate 1 --translate-prob 0.5 --seed 0 --test-every 50 --quiet
    cp "$RUNS/mnist-vae-z$z/encoder.onnx" "$RUNS/mnist-vae-z$z/decoder.onnx" "$RUNS/mnist-vae-z$z/train_log.jsonl" "$out/"
    # The learned prior (docs/FAMILY.md): 50 components at z = 20, 30 at z = 2.
    $T fit-prior --encoder "$out/encoder.onnx" --data "$DATA" --components $((z == 20 ? 50 : 30)) --report "$out/reports/prior.json"
    $T quantize "$out/decoder.onnx" --precision int8 -o "$out/decoder.int8.tvae" --prior "$out/reports/prior.json" --json > "$out/reports/decoder.int8.json"
    $T quantize "$out/decoder.onnx" --precision f16 -o "$out/decoder.f16.tvae" --prior "$out/reports/prior.json" --json > "$out/reports/decoder.f16.json"
    $T quantize "$out/encoder.onnx" --precision int8 -o "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/encoder.int8.json"
    $T validate "$out/decoder.onnx" "$out/decoder.int8.tvae" --min-psnr 40 --json > "$out/reports/validate.decoder.int8.json"
    $T validate "$out/decoder.onnx" "$out/decoder.f16.tvae" --json > "$out/reports/validate.decoder.f16.json"
    $T validate "$out/encoder.onnx" "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/validate.encoder.int8.json"
    $T sample "$out/decoder.int8.tvae" --count 64 --seed 1 -o "$out/samples.png"
    $T figure priors "$out/decoder.int8.tvae" -o "$out/priors.png"
done
$T figure manifold models/mnist-vae-z2/decoder.int8.tvae -o models/mnist-vae-z2/manifold.png --steps 20
