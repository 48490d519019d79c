#!/usr/bin/env bash
# Regenerates crates/tinyvae-c/include/tinyvae.h from crates/tinyvae-c/src/lib.rs with cbindgen
# (installed with `cargo install cbindgen --locked --version 0.29.4` when missing).
#   scripts/gen-c-header.sh           rewrite the header
#   scripts/gen-c-header.sh --check   fail when the committed header differs from a fresh one
set -euo pipefail
cd "$(dirname "$0")/../crates/tinyvae-c"
if ! command -v cbindgen >/dev/null; then
    echo "== installing cbindgen 0.29.4 (cargo install)"
    cargo install --quiet --locked cbindgen --version 0.29.4
fi
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
cbindgen --quiet --config cbindgen.toml --crate tinyvae-c --output "$fresh"
if [[ ${1:-} == --check ]]; then
    if ! diff -u include/tinyvae.h "$fresh"; then
        echo "FAIL: include/tinyvae.h is not what cbindgen makes of src/lib.rs: run scripts/gen-c-header.sh" >&2
        exit 1
    fi
    echo "ok: include/tinyvae.h is cbindgen's output for src/lib.rs"
else
    cp "$fresh" include/tinyvae.h
    echo "wrote crates/tinyvae-c/include/tinyvae.h"
fi
