#!/usr/bin/env bash
# Runs the runtime's tests for aarch64 under qemu-user, the generic kernel suite among them,
# twice: as a Raspberry Pi 5 class core (`-cpu max`: NEON + dotprod, expects the sdot table
# first) and as a Raspberry Pi 4 (`-cpu cortex-a72`: NEON only, expects the NEON table).
# Installs what it needs (qemu-user, the cross linker and libc, the rustup target) when missing.
# Fails if any test fails, or if feature detection found other tables than expected (e.g. fell
# back to scalar), or if the suite and property tests did not run on each expected table.
#
# `scripts/test-aarch64.sh --count` measures instead of testing: guest instructions per sample
# of the int8 decoder for each table (see count_instructions below).
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

# --count: instead of testing, count the guest instructions of one int8 pass of the 20-400-784
# decoder per sample (QEMU timings mean nothing; instruction counts are deterministic). A tiny
# TCG plugin adds up the instructions of every executed translation block and snapshots the sum
# at each `getpid` system call, which the probe test `decoder_pass_for_instruction_counting`
# makes between the parts it measures.
count_instructions() {
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
    local bin
    bin=$(cargo test --release -p tinyvae --target "$TARGET" --test aarch64_kernels --no-run --message-format=json |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
    [[ -x "$bin" ]] || { echo "!! no aarch64_kernels test binary" >&2; exit 1; }
    echo "== guest instructions per sample, int8 20-400-784 decoder (qemu-aarch64 -cpu max, TCG plugin)"
    printf '%-14s %6s %12s %12s %10s %12s %14s\n' table batch dense_20_400 dense_400_784 lut_784 decoder floor_321600B
    local table batch
    for table in scalar aarch64-neon aarch64-sdot; do
        for batch in 1 64; do
            local segments
            segments=$(TINYVAE_COUNT_KERNELS=$table TINYVAE_COUNT_BATCH=$batch \
                qemu-aarch64 -L "$SYSROOT" -cpu max -plugin "$work/libcount.so" -d plugin \
                "$bin" --ignored --exact decoder_pass_for_instruction_counting --test-threads=1 2>&1 |
                awk '/^insns segment/ { print $3 }' | tail -n 5 | tr '\n' ' ')
            # Segments: the marker alone, dense 20->400, dense 400->784, table, streaming floor.
            read -r marker hidden output lut floor <<<"$segments"
            [[ -n "${floor:-}" ]] || { echo "!! $table batch $batch: the probe reported no counts" >&2; exit 1; }
            awk -v t="$table" -v b="$batch" -v m="$marker" -v h="$hidden" -v o="$output" -v l="$lut" -v f="$floor" \
                'BEGIN { h = (h - m) / b; o = (o - m) / b; l = (l - m) / b;
                         printf "%-14s %6d %12.0f %12.0f %10.0f %12.0f %14d\n", t, b, h, o, l, h + o + l, f - m }'
        done
    done
    rm -rf "$work"
}

if [[ "${1:-}" == "--count" ]]; then
    count_instructions
    exit 0
fi

run_on max "scalar,aarch64-sdot,aarch64-neon"
run_on cortex-a72 "scalar,aarch64-neon"
echo "== aarch64: all tests passed on both CPUs"
