#!/usr/bin/env bash
# The test command of the README: installs what the tests need (idempotent), then runs every
# test of the workspace, and checks that the runtime builds for a Cortex-M4F with no_std.
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

export TINYVAE_REQUIRE_ORT=1
echo "== cargo test --release --workspace"
cargo test --release --workspace
echo "== no_std runtime for thumbv7em-none-eabihf"
cargo build --release -p tinyvae --target thumbv7em-none-eabihf
echo "== all tests passed"
