#!/usr/bin/env bash
# Fuzzes the parsers with cargo-fuzz (fuzz/README.md): the blob parser and runtime (`blob`),
# the IDX reader (`idx`), the ONNX importer and quantizer (`onnx`) and the importer's
# resolution of external data (`external`), each for SECONDS
# (default 60) from its committed seeds, and fails if any target finds a crash.
#
#   scripts/fuzz.sh [SECONDS]
#
# Installs what it needs when missing: the nightly toolchain (minimal profile; without one it
# falls back to the default toolchain with RUSTC_BOOTSTRAP=1), cargo-fuzz, and a C++ compiler
# for libFuzzer (Debian's g++, when run as root). Each target's corpus grows in
# a scratch folder outside the repository, removed at the end (FUZZ_CORPUS=DIR keeps it in
# DIR/<target> instead, to resume from it later); crashes are written to
# fuzz/artifacts/<target>/ (git-ignored). FUZZ_TARGETS="blob idx" runs a subset.
set -euo pipefail

seconds=${1:-60}
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
    echo "usage: $0 [SECONDS]  (a positive whole number; default 60)" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
targets=${FUZZ_TARGETS:-blob idx onnx external}

step() { printf '\n== %s\n' "$*"; }

if ! command -v rustup >/dev/null; then
    echo "fuzz.sh: rustup is required (https://rustup.rs)" >&2
    exit 1
fi
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address). Where no nightly can be had,
# stable accepts them with RUSTC_BOOTSTRAP=1 (it ships the sanitizer runtime too).
cargo=(cargo +nightly)
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    step "installing the nightly toolchain"
    if ! rustup toolchain install nightly --profile minimal; then
        echo "fuzz.sh: no nightly toolchain; using the default one with RUSTC_BOOTSTRAP=1" >&2
        cargo=(cargo)
        export RUSTC_BOOTSTRAP=1
    fi
fi
if ! "${cargo[@]}" fuzz --version >/dev/null 2>&1; then
    step "installing cargo-fuzz"
    "${cargo[@]}" install cargo-fuzz --locked
fi
if ! command -v c++ >/dev/null && ! command -v clang++ >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        step "installing g++ (libFuzzer is C++)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        echo "fuzz.sh: a C++ compiler (g++ or clang++) is required to build libFuzzer" >&2
        exit 1
    fi
fi

# -O -a: optimized, with debug assertions and overflow checks (an overflow is a finding);
# AddressSanitizer is cargo-fuzz's default, so an out-of-bounds access in unsafe code is too.
build=(-O -a)
step "building the fuzz targets"
"${cargo[@]}" fuzz build "${build[@]}"

if [[ -n ${FUZZ_CORPUS:-} ]]; then
    corpus_root=$FUZZ_CORPUS
else
    corpus_root=$(mktemp -d "${TMPDIR:-/tmp}/tinyvae-fuzz.XXXXXX")
    trap 'rm -rf "$corpus_root"' EXIT
fi
logs=$(mktemp -d "${TMPDIR:-/tmp}/tinyvae-fuzz-logs.XXXXXX")

# Per target: the longest input (blobs and ONNX seeds are larger than IDX slices) and extras.
options() {
    case $1 in
        blob) echo "-max_len=65536" ;;
        idx) echo "-max_len=4096" ;;
        onnx) echo "-max_len=262144 -dict=fuzz/onnx.dict" ;;
        external) echo "-max_len=1024" ;;
        *) echo "fuzz.sh: unknown target $1" >&2; return 1 ;;
    esac
}

failed=()
summary=()
for target in $targets; do
    opts=$(options "$target")
    mkdir -p "$corpus_root/$target"
    step "fuzzing $target for ${seconds}s"
    # The first folder is the corpus libFuzzer writes to; the seeds are read from the second.
    set +e +o pipefail
    # shellcheck disable=SC2086 # $opts is a list of options
    "${cargo[@]}" fuzz run "${build[@]}" "$target" "$corpus_root/$target" "fuzz/seeds/$target" -- \
        -max_total_time="$seconds" -timeout=120 -print_final_stats=1 $opts 2>&1 | tee "$logs/$target.log" |
        grep -E --line-buffered '^(INFO: seed corpus|#[0-9]+ +(INITED|DONE|pulse))|panicked|ERROR|SUMMARY|Test unit'
    status=${PIPESTATUS[0]}
    set -e -o pipefail
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$target.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$target.log")
    summary+=("$(printf '%-5s %10s runs %7s exec/s  %s' "$target" "${runs:-?}" "${rate:-?}" \
        "$([[ $status == 0 ]] && echo ok || echo "CRASH (fuzz/artifacts/$target/)")")")
    if [[ $status != 0 ]]; then
        failed+=("$target")
    fi
done

step "summary (${seconds}s per target; logs in $logs)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "fuzz.sh: crashes in: ${failed[*]}; reproduce with" >&2
    echo "  ${cargo[*]} fuzz run ${build[*]} <target> fuzz/artifacts/<target>/<crash file>" >&2
    echo "then minimize it (${cargo[*]} fuzz tmin), fix it, and add it to fuzz/regressions/<target>/ (fuzz/README.md)" >&2
    exit 1
fi
echo "fuzz.sh: no crash"
