#!/usr/bin/env bash
# The Cortex-M kernel test. It builds the test program in tests/cortex-m and runs it on a
# Cortex-M4 under QEMU (MPS2 AN386). The program checks the DSP kernels byte for byte against
# the scalar reference and counts instructions per MAC with `-icount shift=0`. The script installs
# what it uses (qemu-system-arm, the thumbv7em-none-eabihf target) if missing. It fails unless
# the program exits with status 0 and printed its final PASS line.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! command -v qemu-system-arm >/dev/null 2>&1; then
    echo "== installing qemu-system-arm (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 qemu-system-arm >/dev/null; }
    # A fresh machine may have no package lists yet.
    apt_install || { $SUDO apt-get update -qq -o DPkg::Lock::Timeout=600 && apt_install; }
fi
if ! rustup target list --installed | grep -qx thumbv7em-none-eabihf; then
    echo "== adding rustup target thumbv7em-none-eabihf"
    rustup target add thumbv7em-none-eabihf
fi

echo "== building tests/cortex-m (thumbv7em-none-eabihf)"
(cd tests/cortex-m && cargo build --release --locked)

elf=tests/cortex-m/target/thumbv7em-none-eabihf/release/tinyvae-cortex-m-test
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== running it on qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -icount shift=0"
status=0
timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf" \
    </dev/null | tee "$log" || status=$?

echo "== instructions per MAC (int8 weights in flash; target for the DSP kernel: at most 1.4)"
grep '^dense_i8 ' "$log" || true
if [ "$status" -ne 0 ] || ! grep -qx 'PASS' "$log"; then
    echo "== Cortex-M test FAILED (exit status $status)" >&2
    exit 1
fi
echo "== Cortex-M test passed"
