#!/usr/bin/env bash
# Runs a subset of the tests under Miri (undefined-behaviour checks of unsafe code, out-of-bounds
# reads, uninitialized memory, integer overflow in debug arithmetic) that finishes in minutes:
# the blob parser on good, flipped and truncated blobs; whole decodes through the public API
# (the arena borrows of `model/exec.rs` and `cast.rs`); the reference kernels, dense and
# convolutional; the quantization arithmetic and the score of the anomaly detector; and the
# compiler's arena planner.
#
#   scripts/miri.sh
#
# Installs the nightly toolchain (minimal profile) and its `miri` component when missing. Under
# Miri, `is_x86_feature_detected!` reports no SIMD, so the runtime dispatches to the scalar
# reference kernels: those are the kernels checked here (the SIMD ones are fuzzed under
# AddressSanitizer by scripts/fuzz.sh and checked against the reference by the kernel suite).
# Tests that loop over many cases take fewer under Miri (`cfg!(miri)` in the test), and libm's
# square root is its soft one there (crates/tinyvae/Cargo.toml: the x86_64 one is inline
# assembly, which Miri cannot run; both are correctly rounded, and `rng::tests::golden_stream`
# checks the bits). Left out because Miri interprets them too slowly (each over 15 minutes):
# `hostile_blobs_with_valid_checksums_never_panic` (thousands of whole decodes) and
# `taps_are_exactly_the_pairs_of_the_definitions`; `every_new_op_runs_as_its_definition...` and
# `written_fields_parse_back` of tests/conv_blobs.rs, which with the rest of that file took 17
# minutes (the conv decode is checked by `the_example_conv_decoder...`); and the statistical
# tests of the Gaussian draws (hundreds of thousands of draws). The whole script took 15.5
# minutes with those two conv tests in, on this project's 2-core build machine.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    step "installing the nightly toolchain"
    rustup toolchain install nightly --profile minimal
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^miri'; then
    step "adding the miri component"
    rustup component add --toolchain nightly miri rust-src
fi
cargo +nightly miri setup

# Separate target folder: Miri's build artefacts do not mix with the normal ones anyway, and
# this keeps `cargo clean -p` of either from discarding the other.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/miri}

step "runtime unit tests: reference kernels, quantization, scores, classes, priors, checksums"
cargo +nightly miri test -p tinyvae --lib -- \
    anomaly:: attach:: classifier:: format::crc32 kernels::conv_layout kernels::reference quant:: \
    kernels::taps::tests::bounds_are_checked rng::tests::golden_stream rng::tests::stream_is_fixed_by_seed \
    rng::tests::uniform_never_zero

step "blob parser and decodes: tests/blob_format.rs"
cargo +nightly miri test -p tinyvae --test blob_format -- \
    --skip hostile_blobs_with_valid_checksums_never_panic

step "convolutional blobs: tests/conv_blobs.rs"
cargo +nightly miri test -p tinyvae --test conv_blobs -- \
    bad_geometry concat_reads conv_transpose_macs tap_major_weights the_example_conv_decoder \
    upsample_add version_1_blobs

step "arena planner: tinyvae-compiler plan::"
cargo +nightly miri test -p tinyvae-compiler --no-default-features --lib -- plan::

echo "miri.sh: no undefined behaviour found"
