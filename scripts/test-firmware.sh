#!/usr/bin/env bash
# The firmware test: the shipped int8 decoder, deployed with `tinyvae deploy`, sampled with one
# seed on three targets, must give the same pixels byte for byte:
#   1. the Cortex-M firmware (firmware/cortex-m) on a Cortex-M4 under
#      `qemu-system-arm -machine mps2-an386 -icount shift=0`, dumping over semihosting;
#   2. the Raspberry Pi program (firmware/rpi), cross-compiled for aarch64 and run under
#      `qemu-aarch64 -cpu cortex-a72` (a Pi 4);
#   3. `tinyvae sample --raw` on this host.
# The 128x64 panel frames of 1 and 2 must match too (same drawing code on both). The SSD1306
# board build (`--features ssd1306`) must compile. Then it prints the footprint: flash with and
# without the model and the display code, RAM, stack high-water mark, instructions per decode.
#
# It installs what it uses when missing (apt: qemu-system-arm qemu-user gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross binutils; rustup targets thumbv7em-none-eabihf aarch64-unknown-linux-gnu).
#
#   scripts/test-firmware.sh                  test, print the footprint
#   scripts/test-firmware.sh --write-picture  also copy the rendered picture to firmware/display.png
# Environment: TINYVAE_FIRMWARE_BLOB overrides the blob (default: the shipped one);
# TINYVAE_FIRMWARE_CLASSIFIER names a classifier blob (e.g. models/mnist-m1m2/classifier.int8.tvae)
# that the Cortex-M firmware (deployed beside the decoder, TINYVAE_CLASSIFIER_DIR: the QEMU build
# then links against a 2 MiB flash map) and the Pi program (`--classifier`) run on the digits
# they sampled: their classes must equal `tinyvae classify --predicted` on the host's pixels, and
# their captioned frames each other's, byte for byte;
# STRICT_FOOTPRINT=1 also fails when a footprint target is missed (RAM for one decode <= 4096 B,
# runtime flash <= 24 KiB, <= 1.40 instructions per MAC; a conv decoder, which builds the
# firmware with `--features conv`, or `conv-transpose` when its only convolutions are transposed:
# 12 KiB, 32 KiB, 1.40; an autoencoder: 4 KiB, 24 KiB, 1.50).
#
# An autoencoder blob (an anomaly detector, e.g. models/mlperf-tiny-ad) is tested on feature
# vectors instead: the float32 .npy files normal.npy and anomalous.npy next to the blob
# (TINYVAE_FIRMWARE_NORMAL, TINYVAE_FIRMWARE_ANOMALOUS override them). `tinyvae deploy` picks the
# alarm threshold on the normal vectors (5 % false positives); the firmware scores the first 8
# vectors of each file, read over semihosting, and the Pi program the same vectors from a file:
# their scores must equal `tinyvae score --raw` on the host byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

write_picture=0
for arg in "$@"; do
    case $arg in
        --write-picture) write_picture=1 ;;
        *) echo "usage: $0 [--write-picture]" >&2; exit 2 ;;
    esac
done

blob=${TINYVAE_FIRMWARE_BLOB:-models/mnist-vae-z20/decoder.int8.tvae}
if [[ ! -f $blob ]]; then
    echo "error: $blob is missing (the shipped z20 decoder); set TINYVAE_FIRMWARE_BLOB to test another blob" >&2
    exit 1
fi
blob=$(realpath "$blob")

# --- prerequisites -------------------------------------------------------------------------
source scripts/prerequisites.sh
missing=()
command -v qemu-system-arm >/dev/null || missing+=(qemu-system-arm)
command -v qemu-aarch64 >/dev/null || missing+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
[[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ]] || missing+=(libc6-dev-arm64-cross)
command -v readelf >/dev/null || missing+=(binutils)
apt_install "${missing[@]}"
rust_targets thumbv7em-none-eabihf aarch64-unknown-linux-gnu

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- deploy and build ----------------------------------------------------------------------
echo "== building the host CLI (tinyvae)"
cargo build --release -p tinyvae-cli
tinyvae=$root/target/release/tinyvae

listing=$("$tinyvae" inspect "$blob")
autoencoder=0
if grep -qE '^ *kind +autoencoder' <<<"$listing"; then
    autoencoder=1
    normal=${TINYVAE_FIRMWARE_NORMAL:-$(dirname "$blob")/normal.npy}
    anomalous=${TINYVAE_FIRMWARE_ANOMALOUS:-$(dirname "$blob")/anomalous.npy}
fi

# Into the firmware's target folder, so that a model a developer deployed by hand stays put.
model_dir=$root/firmware/cortex-m/target/deployed-model
threshold=()
[[ $autoencoder == 1 ]] && threshold=(--threshold-data "$normal" --fpr 0.05)
echo "== tinyvae deploy $blob -o $model_dir ${threshold[*]}"
"$tinyvae" deploy "$blob" -o "$model_dir" "${threshold[@]}"
export TINYVAE_MODEL_DIR=$model_dir

# A convolutional decoder needs the firmware's `conv` feature (the conv kernels are not linked
# otherwise), or `conv-transpose` when its only convolutions are transposed ones (the kernels of
# the other conv ops then stay out of flash); its footprint targets are the conv ones.
conv=0
conv_feature=conv-transpose
# (The listing is in a variable: `grep -q` stops reading at the first match, and under
# pipefail the writer's SIGPIPE would fail the test.)
if grep -qE '^ *n[0-9]+ +(conv|upsample|add)' <<<"$listing"; then
    conv=1
fi
if grep -qE '^ *n[0-9]+ +(conv |upsample|add)' <<<"$listing"; then
    conv_feature=conv
fi
# A classifier blob beside the decoder (the QEMU build only): deployed like the decoder, and the
# conv kernels linked if it has convolutions.
classifier=
qemu_env=()
if [[ -n ${TINYVAE_FIRMWARE_CLASSIFIER:-} && $autoencoder == 0 ]]; then
    classifier=$TINYVAE_FIRMWARE_CLASSIFIER
    classifier_dir=$root/firmware/cortex-m/target/deployed-classifier
    echo "== tinyvae deploy $classifier -o $classifier_dir"
    "$tinyvae" deploy "$classifier" -o "$classifier_dir"
    qemu_env=(env "TINYVAE_CLASSIFIER_DIR=$classifier_dir")
fi
features=()
footprint_features=footprint
if [[ $conv == 1 ]]; then
    features=(--features "$conv_feature")
    footprint_features=footprint,$conv_feature
    # Separate target folders, so that the MLP and conv builds do not rebuild each other.
    suffix=-conv
    qemu_dir=target/qemu-conv
else
    suffix=
    qemu_dir=target
fi
# The QEMU build with a classifier: a target folder of its own, and the conv kernels (`conv`
# includes the transposed ones) when the classifier has convolutions.
qemu_features=("${features[@]}")
if [[ -n $classifier ]]; then
    qemu_dir=target/qemu$suffix-classifier
    classifier_listing=$("$tinyvae" inspect "$classifier")
    if grep -qE '^ *n[0-9]+ +(conv|upsample|add)' <<<"$classifier_listing"; then
        qemu_features=(--features conv)
    fi
fi
echo "== building firmware/cortex-m (thumbv7em-none-eabihf${features[*]:+, ${features[*]}}): QEMU build, runtime-only build, SSD1306 board build"
(
    cd firmware/cortex-m
    "${qemu_env[@]}" cargo build --release --locked "${qemu_features[@]}" --target-dir "$qemu_dir"
    cargo build --release --locked --no-default-features --features "$footprint_features" --target-dir "target/runtime-only$suffix"
    cargo build --release --locked --features "ssd1306${features:+,$conv_feature}" --target-dir "target/blackpill$suffix"
)
# The lint gate for this crate lives here rather than in scripts/lint.sh: it needs the deployed
# model. Same feature sets as the builds above.
echo "== clippy -D warnings in firmware/cortex-m (QEMU, runtime-only and SSD1306 feature sets)"
(
    cd firmware/cortex-m
    "${qemu_env[@]}" cargo clippy --quiet --locked --release "${qemu_features[@]}" --target-dir "$qemu_dir" -- -D warnings
    cargo clippy --quiet --locked --release --no-default-features --features "$footprint_features" --target-dir "target/runtime-only$suffix" -- -D warnings
    cargo clippy --quiet --locked --release --features "ssd1306${features:+,$conv_feature}" --target-dir "target/blackpill$suffix" -- -D warnings
)
elf=firmware/cortex-m/$qemu_dir/thumbv7em-none-eabihf/release/tinyvae-firmware-cortex-m
elf_runtime=firmware/cortex-m/target/runtime-only$suffix/thumbv7em-none-eabihf/release/tinyvae-firmware-cortex-m
# The runtime alone: parse the model, decode one digit, exit (src/bin/footprint.rs).
elf_footprint=firmware/cortex-m/target/runtime-only$suffix/thumbv7em-none-eabihf/release/footprint
elf_board=firmware/cortex-m/target/blackpill$suffix/thumbv7em-none-eabihf/release/tinyvae-firmware-cortex-m

echo "== building firmware/rpi (aarch64-unknown-linux-gnu, linker aarch64-linux-gnu-gcc)"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
(
    cd firmware/rpi
    cargo build --release --locked --target aarch64-unknown-linux-gnu
    # Its unit tests (command line, picture layout, framebuffer pixel formats) on aarch64 too:
    # .cargo/config.toml runs them under qemu-aarch64 -cpu cortex-a72.
    cargo test --release --locked --target aarch64-unknown-linux-gnu
)
pi=$root/firmware/rpi/target/aarch64-unknown-linux-gnu/release/tinyvae-rpi

# --- run -----------------------------------------------------------------------------------
echo "== Cortex-M firmware on qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -icount shift=0"
mkdir "$work/cortex-m"
if [[ $autoencoder == 1 ]]; then
    # The first 8 vectors of each file as raw little-endian f32, the firmware's input stream:
    # the data after a version-1 .npy header (10 bytes and the length its bytes 8-9 give).
    features=$(sed -nE 's/^pub const INPUT_LEN: usize = ([0-9]+);/\1/p' "$model_dir/model.rs")
    for f in "$normal" "$anomalous"; do
        # (No `head | grep -q` pipes: under pipefail the early reader's SIGPIPE fails them.)
        if [[ $(head -c 128 "$f" | tr -d '\000') != *"'descr': '<f4'"* ]]; then
            echo "error: $f is not a float32 (<f4) .npy file" >&2
            exit 1
        fi
        header=$((10 + $(od -An -tu2 -j8 -N2 "$f" | tr -d ' ')))
        dd if="$f" iflag=skip_bytes,count_bytes skip="$header" count=$((8 * features * 4)) status=none
    done >"$work/cortex-m/vectors.f32"
fi
status=0
(cd "$work/cortex-m" && timeout 600 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -icount shift=0 -kernel "$root/$elf" </dev/null) \
    | tee "$work/cortex-m.log" || status=$?
if [[ $status -ne 0 ]] || ! grep -qx 'PASS' "$work/cortex-m.log"; then
    echo "FAIL: the Cortex-M firmware did not finish (exit status $status)" >&2
    exit 1
fi
config=$(grep '^config: ' "$work/cortex-m.log")
if [[ $autoencoder == 0 ]]; then
    seed=$(sed -nE 's/.* seed=([0-9]+).*/\1/p' <<<"$config")
    count=$(sed -nE 's/.* samples=([0-9]+).*/\1/p' <<<"$config")
    pixels=$(sed -nE 's/.* pixels=([0-9]+).*/\1/p' <<<"$config")
    if [[ -z $seed || -z $count || -z $pixels || $count -lt 8 ]]; then
        echo "FAIL: the firmware's config line is not as expected (at least 8 samples): $config" >&2
        exit 1
    fi
fi

echo "== the runtime-only footprint program on qemu-system-arm (parses the model, decodes one digit)"
timeout 120 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -kernel "$root/$elf_footprint" </dev/null \
    || { echo "FAIL: the footprint program did not decode (exit status $?)" >&2; exit 1; }

if [[ $autoencoder == 0 ]]; then
    echo "== Raspberry Pi program on qemu-aarch64 -cpu cortex-a72"
    mkdir "$work/rpi"
    qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 "$pi" "$blob" --count "$count" --seed "$seed" \
        --raw "$work/rpi/samples.raw" --frames "$work/rpi/frames.raw" --png "$work/rpi/display.png"

    echo "== host: tinyvae sample --count $count --seed $seed --raw"
    "$tinyvae" sample "$blob" --count "$count" --seed "$seed" --raw "$work/host.raw"

    if [[ -n $classifier ]]; then
        echo "== Raspberry Pi program with --classifier $classifier: the sampled digits classified on the device"
        qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 "$pi" "$blob" --count "$count" --seed "$seed" \
            --classifier "$classifier" --classes "$work/rpi/classes.raw" --frames "$work/rpi/classified-frames.raw" \
            --png "$work/rpi/classified.png"
        echo "== host: tinyvae classify --model $classifier --raw (the host's pixels) --predicted"
        "$tinyvae" classify --model "$classifier" --raw "$work/host.raw" --predicted "$work/host-classes.raw"
    fi
else
    echo "== Raspberry Pi program on qemu-aarch64 -cpu cortex-a72: the same vectors"
    mkdir "$work/rpi"
    alarm_above=$(sed -nE 's/^pub const THRESHOLD_RAW: u64 = ([0-9]+);/\1/p' "$model_dir/model.rs")
    qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu cortex-a72 "$pi" "$blob" --vectors "$work/cortex-m/vectors.f32" \
        --threshold "$alarm_above" --scores "$work/rpi/scores.raw"

    echo "== host: tinyvae score --data vectors.f32 --shape $features --raw"
    "$tinyvae" score "$blob" --data "$work/cortex-m/vectors.f32" --shape "$features" --raw "$work/host-scores.raw"
fi

# --- compare -------------------------------------------------------------------------------
passed=0
failed=0
check() { # check WHAT COMMAND...: counts and reports one check
    local what=$1
    shift
    if "$@"; then
        echo "ok: $what"
        passed=$((passed + 1))
    else
        echo "FAIL: $what" >&2
        failed=$((failed + 1))
    fi
}
if [[ $autoencoder == 0 ]]; then
    expected_bytes=$((count * pixels))
    check "host dump has $count x $pixels bytes" test "$(stat -c %s "$work/host.raw")" -eq "$expected_bytes"
    check "Cortex-M pixels (QEMU, semihosting) == host pixels, byte for byte" cmp "$work/cortex-m/samples.raw" "$work/host.raw"
    check "aarch64 pixels (qemu-aarch64 cortex-a72) == host pixels, byte for byte" cmp "$work/rpi/samples.raw" "$work/host.raw"
    if [[ -n $classifier ]]; then
        # The Cortex-M frames carry the classes in their captions, as the Pi's classified run.
        check "Cortex-M 128x64 frames == aarch64 frames with the classes, byte for byte ($count frames)" \
            cmp "$work/cortex-m/frames.raw" "$work/rpi/classified-frames.raw"
        check "Cortex-M classes of the sampled digits == host classes, byte for byte" cmp "$work/cortex-m/classes.raw" "$work/host-classes.raw"
        check "aarch64 classes of the sampled digits == host classes, byte for byte" cmp "$work/rpi/classes.raw" "$work/host-classes.raw"
        check "the firmware reports its classifications" grep -q '^summary: classified [0-9]* digits' "$work/cortex-m.log"
    else
        check "Cortex-M 128x64 frames == aarch64 frames, byte for byte ($count frames)" cmp "$work/cortex-m/frames.raw" "$work/rpi/frames.raw"
    fi
else
    check "host scores 16 vectors" test "$(stat -c %s "$work/host-scores.raw")" -eq 128
    check "Cortex-M anomaly scores (QEMU, semihosting) == host scores, byte for byte" cmp "$work/cortex-m/scores.raw" "$work/host-scores.raw"
    check "aarch64 anomaly scores (qemu-aarch64 cortex-a72) == host scores, byte for byte" cmp "$work/rpi/scores.raw" "$work/host-scores.raw"
    check "the firmware reports its alarms" grep -q '^summary: [0-9]* of 16 vectors alarm' "$work/cortex-m.log"
fi
check "Cortex-M firmware decoded with the DSP kernel (kernels=dsp)" grep -q ' kernels=dsp$' <<<"$config"
check "SSD1306 board build (--features ssd1306) linked" test -s "$elf_board"

# --- footprint -----------------------------------------------------------------------------
section() { # section ELF NAME: size in bytes (0 when absent)
    local size
    size=$(readelf -S -W "$1" | sed -nE "s/^\s*\[\s*[0-9]+\]\s+\\$2\s+\S+\s+\S+\s+\S+\s+(\S+).*/\1/p")
    echo $((16#${size:-0}))
}
flash() { echo $(($(section "$1" .vector_table) + $(section "$1" .text) + $(section "$1" .rodata) + $(section "$1" .data))); }
ram() { echo $(($(section "$1" .data) + $(section "$1" .bss) + $(section "$1" .uninit))); }
blob_bytes=$(stat -c %s "$blob")
flash_all=$(flash "$elf")
flash_runtime=$(($(flash "$elf_runtime") - blob_bytes))
# An embedded classifier's blob is in the QEMU build only.
classifier_bytes=0
[[ -n $classifier ]] && classifier_bytes=$(stat -c %s "$classifier")
display_code=$((flash_all - blob_bytes - classifier_bytes - flash_runtime))
flash_footprint=$(($(flash "$elf_footprint") - blob_bytes))
ram_footprint=$(ram "$elf_footprint")
summary_decode=$(grep '^summary: .* per MAC' "$work/cortex-m.log")
summary_ram=$(grep -E '^summary: RAM for one (decode|inference)' "$work/cortex-m.log")
decode_max=$(sed -nE 's/.*(decode|inference) [0-9]+\.\.([0-9]+) instructions.*/\2/p' <<<"$summary_decode")
per_mac=$(sed -nE 's/.*instructions, ([0-9.]+) per MAC.*/\1/p' <<<"$summary_decode")
arena=$(sed -nE 's/.*arena ([0-9]+) B \+.*/\1/p' <<<"$summary_ram")
decode_stack=$(sed -nE 's/.*(decode|inference) stack ([0-9]+) B.*/\2/p' <<<"$summary_ram")
stack_peak=$(sed -nE 's/.*firmware stack peak ([0-9]+) B.*/\1/p' <<<"$summary_ram")
decode_ram=$((arena + decode_stack))
runtime_symbols=""
if command -v llvm-nm >/dev/null; then
    # Symbols of the runtime crate and its libm in the runtime-only build (the model excluded).
    # With LTO some runtime code is inlined into the firmware's own functions, so this is a
    # lower bound; the section figure above is the upper one.
    runtime_symbols=0
    while read -r _ size type name; do
        case $type in [tTrR]) ;; *) continue ;; esac
        case $name in *::model::ALIGNED*) continue ;; tinyvae::* | libm::* | "<tinyvae::"* | "<libm::"*) ;; *) continue ;; esac
        runtime_symbols=$((runtime_symbols + 16#$size))
    done < <(llvm-nm -S -C --defined-only "$elf_runtime")
fi

target_mark() { if [[ $1 == 1 ]]; then echo "target met"; else echo "TARGET MISSED"; fi; }
# The MLP targets; a conv decoder's (issue 12): RAM for one decode <= 12 KiB, runtime flash
# with the conv kernels <= 32 KiB.
ram_limit=4096
flash_limit=24576
if [[ $conv == 1 ]]; then
    ram_limit=12288
    flash_limit=32768
fi
# An autoencoder's instructions per MAC (issue 16, the MLPerf Tiny model): 1.50, input
# quantization and score included.
mac_limit=1.40
[[ $autoencoder == 1 ]] && mac_limit=1.50
ram_ok=$((decode_ram <= ram_limit))
flash_ok=$((flash_footprint <= flash_limit))
mac_ok=$(awk -v x="$per_mac" -v limit="$mac_limit" 'BEGIN { print (x <= limit) ? 1 : 0 }')

echo
echo "== footprint (Cortex-M4F, thumbv7em-none-eabihf, release; $(basename "$blob"), $blob_bytes B)"
printf '  flash, everything (.vector_table+.text+.rodata+.data)   %7d B\n' "$flash_all"
printf '  flash without the model(s)                              %7d B\n' $((flash_all - blob_bytes - classifier_bytes))
printf '  runtime code: the footprint program without the model    %7d B  (<= %d: %s)\n' "$flash_footprint" "$flash_limit" "$(target_mark "$flash_ok")"
printf '    (parse + decode one digit + Cortex-M startup; RAM .data+.bss %d B: arena + digit)\n' "$ram_footprint"
printf '  QEMU demo without the model and the display code         %7d B  (adds its report harness: semihosting, core::fmt)\n' "$flash_runtime"
[[ -n $runtime_symbols ]] && printf '    of which the runtime crate and libm (symbols)         %7d B\n' "$runtime_symbols"
if [[ -n $classifier ]]; then
    printf '  classifier blob %-39s %7d B\n' "($(basename "$(dirname "$classifier")")/$(basename "$classifier"))" "$classifier_bytes"
    printf '  display code and the classifier'"'"'s own (its kernels)    %7d B\n' "$display_code"
    printf '  %s\n' "$(grep '^summary: classified' "$work/cortex-m.log" | sed 's/^summary: //')"
else
    printf '  display code (tinyvae-display, embedded-graphics, font) %7d B\n' "$display_code"
fi
printf '  RAM .data+.bss (arena, pixels, 1 KiB frame, statics)    %7d B\n' "$(ram "$elf")"
printf '  stack high-water mark, whole firmware                   %7d B\n' "$stack_peak"
printf '  RAM for one decode (arena %4d B + decode stack %4d B) %7d B  (<= %d: %s)\n' "$arena" "$decode_stack" "$decode_ram" "$ram_limit" "$(target_mark "$ram_ok")"
printf '  instructions per decode (-icount, z draw excluded)      %7d    (%s per MAC; <= %s: %s)\n' "$decode_max" "$per_mac" "$mac_limit" "$(target_mark "$mac_ok")"
printf '  SSD1306 board build: flash %d B, RAM .data+.bss %d B\n' "$(flash "$elf_board")" "$(ram "$elf_board")"

if [[ $write_picture == 1 ]]; then
    cp "$work/rpi/display.png" firmware/display.png
    echo "== wrote firmware/display.png (drawn by tinyvae-display under qemu-aarch64)"
fi

if [[ ${STRICT_FOOTPRINT:-0} == 1 ]]; then
    check "RAM for one decode <= $ram_limit B" test "$ram_ok" -eq 1
    check "runtime flash <= $flash_limit B" test "$flash_ok" -eq 1
    check "instructions per MAC <= $mac_limit" test "$mac_ok" -eq 1
fi
echo "firmware: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
