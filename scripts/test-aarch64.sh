#!/usr/bin/env bash
# Runs the runtime's tests for aarch64 under qemu-user, the generic kernel suite among them,
# twice: as a Raspberry Pi 5 class core (`-cpu max`: NEON + dotprod, expects the sdot table
# first) and as a Raspberry Pi 4 (`-cpu cortex-a72`: NEON only, expects the NEON table).
# Installs what it needs (qemu-user, the cross linker and libc, the rustup target) when missing.
# Fails if any test fails, or if feature detection found other tables than expected (e.g. fell
# back to scalar), or if the suite and property tests did not run on each expected table.
#
# `scripts/test-aarch64.sh --count [BLOB [ONNX]]` measures instead of testing: guest instructions
# per sample of one whole decode of BLOB (default models/mnist-vae-z20/decoder.int8.tvae; also
# TINYVAE_COUNT_BLOB) for each kernel table, and of tract f32 on ONNX (default: the blob's folder's
# decoder.onnx; also TINYVAE_COUNT_ONNX), at batch 1 and 64, on both CPUs (see count_instructions).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
missing=()
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[[ -e "$SYSROOT/lib/libc.so.6" ]] || missing+=(libc6-dev-arm64-cross)
if ((${#missing[@]})); then
    echo "== installing ${missing[*]} (apt-get)"
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "== adding rustup target $TARGET"
    rustup target add "$TARGET"
fi

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc

# run_on CPU EXPECTED_TABLES: every test of the runtime crate under `qemu-aarch64 -cpu CPU`,
# then the checks that EXPECTED_TABLES (comma-separated, as `kernels::available()` lists them)
# were detected and each optimized one was exercised.
run_on() {
    local cpu=$1 expected=$2
    local best=${expected#scalar,}
    best=${best%%,*}
    local log
    log=$(mktemp)
    echo "== cargo test --release -p tinyvae --target $TARGET under qemu-aarch64 -cpu $cpu (expecting $expected)"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT -cpu $cpu"
    # The detection test asserts the exact list itself; the greps below also catch it not running.
    TINYVAE_EXPECT_KERNELS=$expected cargo test --release -p tinyvae --target "$TARGET" -- --nocapture 2>&1 | tee "$log"
    local problems=0
    require() {
        if ! grep -qxF "$1" "$log"; then
            echo "!! -cpu $cpu: expected the line: $1" >&2
            problems=1
        fi
    }
    require "tinyvae aarch64 best kernels: $best"
    require "tinyvae aarch64 available kernels: $expected"
    local table
    for table in $(tr , ' ' <<<"${expected#scalar,}"); do
        require "$table: kernel suite passed"
        require "$table: dense_i8 byte-exact on 3000 random shapes"
        require "$table: dense_i8 byte-exact on decoder shapes, batch 1..=9"
        require "$table: dense_i8 byte-exact on extreme values"
    done
    rm -f "$log"
    if ((problems)); then
        echo "!! -cpu $cpu: kernel detection or coverage is not what was expected" >&2
        exit 1
    fi
    echo "== -cpu $cpu: all tests passed; best table $best; tables checked: ${expected#scalar,}"
}

# --count: instead of testing, count the guest instructions of one whole decode per sample (QEMU
# timings mean nothing; instruction counts are deterministic), ours through each kernel table and
# tract's f32 on the same model's ONNX. A tiny TCG plugin adds up the instructions of every
# executed translation block and snapshots the sum at each `getpid` system call, which the probes
# (the test `decoder_pass_for_instruction_counting`, the `tract-count` tool) make around the
# decode and once around nothing (the marker's own cost, subtracted).
count_instructions() {
    local blob=${1:-${TINYVAE_COUNT_BLOB:-models/mnist-vae-z20/decoder.int8.tvae}}
    local onnx=${2:-${TINYVAE_COUNT_ONNX:-$(dirname "$blob")/decoder.onnx}}
    [[ -f "$blob" ]] || { echo "!! no blob $blob" >&2; exit 1; }
    [[ -f "$onnx" ]] || { echo "!! no ONNX model $onnx (give it as the second argument)" >&2; exit 1; }
    blob=$(realpath "$blob")
    onnx=$(realpath "$onnx")
    command -v gcc >/dev/null || {
        "${sudo[@]}" apt-get update -q
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q gcc
    }
    local work
    work=$(mktemp -d)
    # The few declarations of QEMU's plugin API (version 1, as in Debian 12's QEMU 7.2) this needs.
    cat >"$work/count.c" <<'C'
#include <stdint.h>
#include <stdio.h>
#include <stddef.h>
typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, struct qemu_plugin_tb *));
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *, int op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_syscall_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, unsigned int, int64_t,
    uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t));
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, void (*)(qemu_plugin_id_t, void *), void *);
void qemu_plugin_outs(const char *);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;
enum { INLINE_ADD_U64 = 0, AARCH64_GETPID = 172, MAX_MARKS = 64 };
static uint64_t insns, marks[MAX_MARKS];
static int n_marks;
static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    qemu_plugin_register_vcpu_tb_exec_inline(tb, INLINE_ADD_U64, &insns, qemu_plugin_tb_n_insns(tb));
}
static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8) {
    if (num == AARCH64_GETPID && n_marks < MAX_MARKS) marks[n_marks++] = insns;
}
static void on_exit_(qemu_plugin_id_t id, void *unused) {
    char line[64];
    for (int i = 1; i < n_marks; i++) {
        snprintf(line, sizeof line, "insns segment %llu\n", (unsigned long long)(marks[i] - marks[i - 1]));
        qemu_plugin_outs(line);
    }
}
__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc,
                                                               char **argv) {
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
C
    gcc -O2 -shared -fPIC -o "$work/libcount.so" "$work/count.c"
    local ours theirs
    ours=$(cargo test --release -p tinyvae --target "$TARGET" --test aarch64_kernels --no-run --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [[ -x "$ours" ]] || { echo "!! no aarch64_kernels test binary" >&2; exit 1; }
    # The tract probe is its own workspace crate, so the runtime never links tract.
    theirs=$(cargo build --release -p tract-count --target "$TARGET" --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [[ -x "$theirs" ]] || { echo "!! no tract-count binary" >&2; exit 1; }

    # per_sample CPU BATCH COMMAND...: the probe's decode under the plugin, in instructions per
    # sample. The last two segments are the marker alone and the decode (plus one marker).
    per_sample() {
        local cpu=$1 batch=$2
        shift 2
        local segments marker decode
        segments=$(qemu-aarch64 -L "$SYSROOT" -cpu "$cpu" -plugin "$work/libcount.so" -d plugin "$@" 2>&1 |
            awk '/^insns segment/ { print $3 }' | tail -n 2 | tr '\n' ' ')
        read -r marker decode <<<"$segments"
        [[ -n "${decode:-}" ]] || { echo "!! -cpu $cpu batch $batch: the probe reported no counts: $*" >&2; exit 1; }
        echo $(((decode - marker) / batch))
    }
    # row CPU LABEL KIND [TABLE]: one line of the table, each batch's count and its ratio to
    # tract's NEON count on the same CPU (measured first, into tract1 and tract64).
    row() {
        local cpu=$1 label=$2 kind=$3 table=${4:-}
        local line n batch
        line=$(printf '%-11s %-34s' "$cpu" "$label")
        for batch in 1 64; do
            case $kind in
                ours) n=$(TINYVAE_COUNT_BLOB=$blob TINYVAE_COUNT_KERNELS=$table TINYVAE_COUNT_BATCH=$batch \
                    per_sample "$cpu" "$batch" "$ours" --ignored --exact decoder_pass_for_instruction_counting \
                    --test-threads=1) ;;
                tract-neon) n=$(TRACT_SVE_DISABLE=1 per_sample "$cpu" "$batch" "$theirs" "$onnx" "$batch") ;;
                tract) n=$(per_sample "$cpu" "$batch" "$theirs" "$onnx" "$batch") ;;
            esac
            if [[ $kind == tract-neon ]]; then
                printf -v "tract$batch" %s "$n"
            fi
            local base=tract$batch
            line+=$(awk -v n="$n" -v t="${!base}" 'BEGIN { printf " %12d %7.3fx", n, n / t }')
        done
        echo "$line"
    }
    echo "== guest instructions per sample, whole decode (qemu-aarch64 TCG plugin)"
    echo "   ours:  $blob"
    echo "   tract: $onnx (tract f32)"
    printf '%-11s %-34s %12s %8s %12s %8s\n' cpu engine batch_1 vs_tract batch_64 vs_tract
    local tract1 tract64
    row max "tract f32 NEON (TRACT_SVE_DISABLE=1)" tract-neon
    row max "tract f32 SVE2 (default)" tract
    local table
    for table in scalar aarch64-neon aarch64-sdot; do
        row max "tinyvae $table" ours "$table"
    done
    row cortex-a72 "tract f32 NEON" tract-neon
    for table in scalar aarch64-neon; do
        row cortex-a72 "tinyvae $table" ours "$table"
    done
    echo "   vs_tract: against tract's NEON count on the same CPU and batch"
    rm -rf "$work"
}

if [[ "${1:-}" == "--count" ]]; then
    count_instructions "${@:2}"
    exit 0
fi

run_on max "scalar,aarch64-sdot,aarch64-neon"
run_on cortex-a72 "scalar,aarch64-neon"
echo "== aarch64: all tests passed on both CPUs"
