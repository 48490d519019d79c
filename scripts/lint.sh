#!/usr/bin/env bash
# The lint gates of the test command (scripts/test.sh runs this first; it also runs alone):
#   1. formatting: `cargo fmt --check` on the workspace and on the three cross-compiled projects
#      (firmware/cortex-m, firmware/rpi, tests/cortex-m); no import cycle between the modules of
#      any crate (scripts/check-module-cycles.py); no host source file over 700 lines;
#   2. clippy with `-D warnings` on every target of the workspace (the policy is the
#      `[workspace.lints]` table of Cargo.toml), the compiler without its tract feature, the
#      runtime for Cortex-M4F, firmware/rpi and tests/cortex-m for their own targets
#      (firmware/cortex-m needs a deployed model: scripts/test-firmware.sh lints it);
#   3. the docs: `cargo doc --workspace --no-deps` with `-D warnings` (broken intra-doc links);
#   4. the declared minimum Rust version (`rust-version` in Cargo.toml): the no_std runtime must
#      build for thumbv7em-none-eabihf with exactly that toolchain.
# It installs what it uses when missing (rustup components clippy and rustfmt, the targets, the
# minimum-version toolchain). Exits non-zero at the first failing gate, naming it.
set -euo pipefail
cd "$(dirname "$0")/.."

gate() { echo "== lint: $*"; }
fail() { echo "== lint FAILED: $*" >&2; exit 1; }

for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
        echo "== adding rustup component $component"
        rustup component add "$component"
    fi
done
for target in thumbv7em-none-eabihf aarch64-unknown-linux-gnu; do
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "== adding rustup target $target"
        rustup target add "$target"
    fi
done

cross_projects=(firmware/cortex-m firmware/rpi tests/cortex-m)

gate "cargo fmt --check (workspace and ${cross_projects[*]})"
cargo fmt --all --check || fail "formatting (run cargo fmt --all)"
for p in "${cross_projects[@]}"; do
    (cd "$p" && cargo fmt --check) || fail "formatting in $p (run cargo fmt there)"
done

gate "no import cycle between the top-level modules of any crate"
python3 scripts/check-module-cycles.py crates/*/src tools/tinyvae-cli/src firmware/*/src tests/cortex-m/src \
    || fail "an import cycle (scripts/check-module-cycles.py --graph DIR shows the edges)"

gate "no host source file over 700 lines (the runtime's kernels and generated code aside)"
long=$(find crates/tinyvae-* tools tests benches -name '*.rs' -not -path '*/target/*' -not -path 'tests/cortex-m/*' \
    -not -name proto.rs -exec awk 'END { if (NR > 700) print FILENAME ": " NR " lines" }' {} \;)
[[ -z $long ]] || fail "files over 700 lines: split them by concept
$long"

gate "cargo clippy --workspace --all-targets -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings || fail "clippy (workspace)"
gate "clippy: tinyvae-compiler without tract, the runtime for thumbv7em-none-eabihf"
cargo clippy --quiet -p tinyvae-compiler --no-default-features -- -D warnings || fail "clippy (compiler without tract)"
cargo clippy --quiet -p tinyvae --target thumbv7em-none-eabihf -- -D warnings || fail "clippy (runtime, thumbv7em)"
cargo clippy --quiet -p tinyvae --target thumbv7em-none-eabihf --no-default-features -- -D warnings \
    || fail "clippy (runtime, thumbv7em, int8 only)"
# Each cross project builds for the target in its .cargo/config.toml.
# firmware/cortex-m needs a deployed model to build: scripts/test-firmware.sh runs its clippy.
(cd firmware/rpi && cargo clippy --quiet --locked --release --target aarch64-unknown-linux-gnu -- -D warnings) || fail "clippy in firmware/rpi"
(cd tests/cortex-m && cargo clippy --quiet --locked --release -- -D warnings) || fail "clippy in tests/cortex-m"

gate "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --workspace --no-deps || fail "docs"

msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[[ -n $msrv ]] || fail "no rust-version in Cargo.toml"
toolchain=$msrv
[[ $toolchain == *.*.* ]] || toolchain=$msrv.0
gate "minimum Rust version $msrv: the runtime for thumbv7em-none-eabihf with toolchain $toolchain"
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1 \
    || ! rustup run "$toolchain" rustc --print target-libdir --target thumbv7em-none-eabihf 2>/dev/null | xargs test -d; then
    echo "== installing toolchain $toolchain (minimal) with thumbv7em-none-eabihf"
    rustup toolchain install "$toolchain" --profile minimal --target thumbv7em-none-eabihf
fi
# Its own target dir: an older compiler cannot reuse the default toolchain's artifacts.
CARGO_TARGET_DIR=target/msrv cargo "+$toolchain" check --quiet --locked -p tinyvae --target thumbv7em-none-eabihf \
    || fail "the runtime needs a newer Rust than rust-version = $msrv"
CARGO_TARGET_DIR=target/msrv cargo "+$toolchain" check --quiet --locked -p tinyvae --target thumbv7em-none-eabihf --no-default-features \
    || fail "the runtime (int8 only) needs a newer Rust than rust-version = $msrv"
echo "== lint: all gates passed"
