#!/usr/bin/env bash
# The test command of the README: installs what the tests need (idempotent), runs the lint gates
# (scripts/lint.sh: fmt, clippy, docs, minimum Rust version), then every test of the workspace on
# this machine, the runtime's tests on aarch64 and the Cortex-M4 kernel test program under QEMU,
# the firmware examples against the host, the no_std build, short fuzzing runs, a Miri subset,
# and every command the documentation shows (scripts/doc-commands.py).
set -euo pipefail
cd "$(dirname "$0")/.."

# Python's onnxruntime is the independent ONNX consumer the export tests check against.
if ! python3 -c "import onnxruntime" 2>/dev/null; then
    echo "== installing onnxruntime (pip)"
    python3 -m pip install --quiet --disable-pip-version-check onnxruntime
fi
# The no_std runtime must build for microcontrollers.
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
    echo "== adding rustup target thumbv7em-none-eabihf"
    rustup target add thumbv7em-none-eabihf
fi

./scripts/lint.sh

export TINYVAE_REQUIRE_ORT=1
echo "== cargo test --release --workspace"
cargo test --release --workspace
echo "== no_std runtime for thumbv7em-none-eabihf"
cargo build --release -p tinyvae --target thumbv7em-none-eabihf
# The runtime's tests (kernel suite and bit-exactness properties) on aarch64 under qemu-user,
# as a Raspberry Pi 5 (dotprod) and a Raspberry Pi 4 (Cortex-A72).
./scripts/test-aarch64.sh
# The Cortex-M4 DSP kernel against the reference, and its instructions per MAC, under
# qemu-system-arm (mps2-an386, -icount shift=0).
./scripts/test-cortex-m.sh
# The firmware examples: the shipped int8 decoder on a Cortex-M4 (QEMU mps2-an386) and on
# aarch64 (qemu-aarch64) must draw the same pixels as the host, byte for byte.
./scripts/test-firmware.sh
# Again with a conditional decoder (the CVAE): the firmware and the Pi program draw requested
# digits 0, 1, 2, .. in turn, as `tinyvae sample` does without --label; both also read them with
# the M1+M2 int8 classifier (models/mnist-m1m2, a conv network: the Cortex-M build links the conv
# kernels for it), with the classes `tinyvae classify` gives.
TINYVAE_FIRMWARE_BLOB=models/mnist-cvae/decoder.int8.tvae TINYVAE_FIRMWARE_CLASSIFIER=models/mnist-m1m2/classifier.int8.tvae \
    ./scripts/test-firmware.sh
# And the convolutional decoder (models/mnist-conv-vae): the firmware built with its `conv`
# feature, the transposed convolutions on the DSP Dense kernel over gathered patches.
TINYVAE_FIRMWARE_BLOB=models/mnist-conv-vae/decoder.int8.tvae ./scripts/test-firmware.sh
# And an anomaly detector (models/mlperf-tiny-ad, MLPerf Tiny's autoencoder): the firmware and
# the Pi program score feature vectors, with the same integer scores as `tinyvae score`.
TINYVAE_FIRMWARE_BLOB=models/mlperf-tiny-ad/ad.int8.tvae ./scripts/test-firmware.sh
# The C API (crates/tinyvae-c): header check, and the C examples on x86_64, aarch64 (QEMU)
# and a Cortex-M4 (QEMU), byte-identical with the host.
./scripts/test-c.sh
# The parsers under cargo-fuzz (fuzz/README.md): a minute each for the blob parser and runtime,
# the IDX reader and the ONNX importer and quantizer, from the committed seeds; any crash fails.
./scripts/fuzz.sh 60
# Miri over the blob parser, whole decodes, the reference kernels and the arena planner.
./scripts/miri.sh
# Every command the READMEs, docs/ and the model cards show, as written (long training runs:
# arguments parsed only); the shipped blobs and figures must come out byte for byte.
echo "== the documentation's commands"
python3 scripts/doc-commands.py
echo "== all tests passed"
