#!/usr/bin/env bash
# Rebuilds the shipped family models (models/mnist-{ae,dae,cae,vae-gaussian,vae-z5,cvae,aae,m2,m1m2}),
# their reports and the family figures (docs/FAMILY.md) from ../shared/data/mnist (the first
# 10,000 MNIST training images and the 10,000 test images): trains, exports ONNX, quantizes to
# int8 and f16, validates every blob against its ONNX in tract, checks the CVAE's conditional
# samples with a separately trained classifier, and runs the semi-supervised M2 table.
#
# One training at a time, on one thread (RAYON_NUM_THREADS=1: same numbers as with more). About
# 4 to 5 minutes per family member, 9 for the AAE, 2 for the classifier, 19 for the M2 table and 14
# for the longer 100-label M2 runs (measured on one thread of this machine); M1+M2 (m1m2) 10 to
# 20 minutes per seed and label count (two to three runs at once on this machine's 2 cores), and
# it reads models/mnist-conv-vae/encoder.onnx (scripts/make-conv-vae-model.sh).
#
#   DATA=../shared/data/mnist   the IDX directory
#   RUNS=target/runs            where trainings write (checkpoints and all; not shipped)
#   SKIP_TRAIN=1                reuse a training already in $RUNS/<name> (its decoder.onnx)
#   ONLY="ae cvae figures"      do only these steps (default: all, in the order below)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/mnist}
RUNS=${RUNS:-target/runs}
SKIP_TRAIN=${SKIP_TRAIN:-0}
ONLY=${ONLY:-"ae dae cae vae-gaussian vae-z5 cvae aae m2 m1m2 figures"}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
if [[ -z ${T:-} ]]; then
    cargo build --release -p tinyvae-cli
    T=target/release/tinyvae
fi
mkdir -p "$RUNS"

# The recipe of every family member but the AAE (which trains 200 epochs).
R="--epochs 300 --batch-size 128 --lr 2e-3 --cosine-to 0.02 --translate 1 --translate-prob 0.5 --ema 0.999 --test-every 10 --quiet"

want() { [[ " $ONLY " == *" $1 "* ]]; }
# copy_table RUN NAME: an eval-ssl run's table.md and table.json into $out as NAME.md and NAME.json.
copy_table() { cp "$RUNS/$1/table.md" "$out/$2.md" && cp "$RUNS/$1/table.json" "$out/$2.json"; }

# train NAME ARGS...: trains into $RUNS/NAME (unless SKIP_TRAIN=1 and it is there already).
train() {
    local name=$1
    shift
    if [[ $SKIP_TRAIN == 1 && -f $RUNS/$name/decoder.onnx ]]; then
        echo "reusing $RUNS/$name"
        return
    fi
    rm -rf "${RUNS:?}/$name"
    # shellcheck disable=SC2086
    $T train "$@" --data "$DATA" $R --out "$RUNS/$name"
}

# ship NAME FOLDER: the ONNX files and training log into models/FOLDER.
ship() {
    local out=models/$2
    mkdir -p "$out/reports"
    cp "$RUNS/$1/encoder.onnx" "$RUNS/$1/decoder.onnx" "$RUNS/$1/train_log.jsonl" "$out/"
}

# quantize FOLDER [FLAGS...]: int8 and f16 decoder blobs, validated against the ONNX in tract
# (the int8 one must reach 40 dB), and the int8 encoder. FLAGS (e.g. --encoder ENC.onnx --data
# DIR) say which inputs the decoder is calibrated and checked on: prior samples by default.
quantize() {
    local out=models/$1
    shift
    # A VAE's decoder blobs carry the learned prior fit_prior wrote (docs/FAMILY.md).
    local prior=()
    [[ -f $out/reports/prior.json ]] && prior=(--prior "$out/reports/prior.json")
    $T quantize "$out/decoder.onnx" --precision int8 -o "$out/decoder.int8.tvae" "$@" "${prior[@]}" --json > "$out/reports/decoder.int8.json"
    $T quantize "$out/decoder.onnx" --precision f16 -o "$out/decoder.f16.tvae" "$@" "${prior[@]}" --json > "$out/reports/decoder.f16.json"
    $T quantize "$out/encoder.onnx" --precision int8 -o "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/encoder.int8.json"
    $T validate "$out/decoder.onnx" "$out/decoder.int8.tvae" "$@" --min-psnr 40 --json > "$out/reports/validate.decoder.int8.json"
    $T validate "$out/decoder.onnx" "$out/decoder.f16.tvae" "$@" --json > "$out/reports/validate.decoder.f16.json"
    $T validate "$out/encoder.onnx" "$out/encoder.int8.tvae" --data "$DATA" --json > "$out/reports/validate.encoder.int8.json"
}

# fit_prior FOLDER [ARGS]: the learned latent prior of a VAE, from its encoder's codes of the
# training images, into models/FOLDER/reports/prior.json (quantize then stores it).
fit_prior() {
    local out=models/$1
    shift
    $T fit-prior --encoder "$out/encoder.onnx" --data "$DATA" "$@" --report "$out/reports/prior.json"
}

# Deterministic autoencoders: no prior, so their decoders are calibrated and validated on the
# encoder's codes of real images.
codes() { echo --encoder "models/$1/encoder.onnx" --data "$DATA"; }

if want ae; then
    train ae --model ae --latent 32 --hidden 400 --loss bce --eval-corruption masking --eval-noise 0.25
    ship ae mnist-ae
    # shellcheck disable=SC2046
    quantize mnist-ae $(codes mnist-ae)
fi
if want dae; then
    train dae --model dae --latent 32 --hidden 400 --loss bce --corruption masking --noise 0.25
    ship dae mnist-dae
    # shellcheck disable=SC2046
    quantize mnist-dae $(codes mnist-dae)
    $T figure denoising --encoder models/mnist-dae/encoder.int8.tvae --decoder models/mnist-dae/decoder.int8.tvae \
        --data "$DATA" --corruption masking --noise 0.25 --seed 0 --count 12 -o models/mnist-dae/denoising.png
fi
if want cae; then
    train cae --model cae --latent 32 --hidden 400 --contractive 1
    ship cae mnist-cae
    # shellcheck disable=SC2046
    quantize mnist-cae $(codes mnist-cae)
fi
if want vae-gaussian; then
    train vae-gaussian --model vae --latent 20 --hidden 400 --likelihood gaussian
    ship vae-gaussian mnist-vae-gaussian
    fit_prior mnist-vae-gaussian --components 50
    quantize mnist-vae-gaussian
    $T sample models/mnist-vae-gaussian/decoder.int8.tvae --count 64 --seed 1 -o models/mnist-vae-gaussian/samples.png
    $T figure priors models/mnist-vae-gaussian/decoder.int8.tvae -o models/mnist-vae-gaussian/priors.png
fi
if want vae-z5; then
    train vae-z5 --model vae --latent 5 --hidden 400
    ship vae-z5 mnist-vae-z5
    fit_prior mnist-vae-z5 --components 50
    quantize mnist-vae-z5
    $T sample models/mnist-vae-z5/decoder.int8.tvae --count 64 --seed 1 -o models/mnist-vae-z5/samples.png
    $T figure priors models/mnist-vae-z5/decoder.int8.tvae -o models/mnist-vae-z5/priors.png
fi
if want cvae; then
    train cvae --model cvae --latent 8 --hidden 400
    ship cvae mnist-cvae
    fit_prior mnist-cvae
    quantize mnist-cvae
    out=models/mnist-cvae
    # The judge: an 800-800 MLP trained on the 10,000 training images (not shipped: 5 MB).
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/classifier/classifier.safetensors) ]]; then
        mkdir -p "$RUNS/classifier"
        $T train-classifier --data "$DATA" --output "$RUNS/classifier/classifier.safetensors" --quiet
    fi
    cp "$RUNS/classifier/classifier.json" "$out/reports/classifier.json"
    # 100 conditional samples per label from the int8 blob (label l: seed l + 1), classified.
    mkdir -p "$RUNS/cvae-samples"
    raws=()
    for l in 0 1 2 3 4 5 6 7 8 9; do
        $T sample "$out/decoder.int8.tvae" --label $l --count 100 --seed $((l + 1)) --raw "$RUNS/cvae-samples/label$l.raw"
        raws+=(--raw "$RUNS/cvae-samples/label$l.raw")
    done
    $T classify --model "$RUNS/classifier/classifier.safetensors" "${raws[@]}" --expect-label 0,1,2,3,4,5,6,7,8,9 \
        --min-fraction 0.95 --json "$out/reports/classify.int8-samples.json"
    $T sample "$out/decoder.int8.tvae" --count 100 --cols 10 --seed 1 -o "$out/samples.png"
    $T figure priors "$out/decoder.int8.tvae" -o "$out/priors.png" --side 10
    $T figure analogies --encoder "$out/encoder.int8.tvae" --decoder "$out/decoder.int8.tvae" --data "$DATA" \
        --count 10 -o "$out/analogies.png"
fi
if want aae; then
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/aae/decoder.onnx) ]]; then
        rm -rf "${RUNS:?}/aae"
        # shellcheck disable=SC2086
        $T train --model aae --data "$DATA" --latent 2 --encoder-hidden 512,512 --decoder-hidden 400 \
            --disc-hidden 256,256 --disc-lr-scale 0.03 --gen-lr-scale 1 ${R/--epochs 300/--epochs 200} --out "$RUNS/aae"
    fi
    ship aae mnist-aae
    # shellcheck disable=SC2046
    quantize mnist-aae $(codes mnist-aae)
    out=models/mnist-aae
    $T figure latent --encoder "$out/encoder.int8.tvae" --data "$DATA" --extent 6 -o "$out/latent.png"
    $T figure manifold "$out/decoder.int8.tvae" --extent 5 --steps 20 -o "$out/manifold.png"
    $T sample "$out/decoder.int8.tvae" --mixture 10,4,0.5 --count 100 --cols 10 --seed 1 -o "$out/samples.png"
    # 100 samples from each mixture component k (class k's component), classified as digit k
    # (uses the classifier of the cvae step).
    mkdir -p "$RUNS/aae-samples"
    raws=()
    for l in 0 1 2 3 4 5 6 7 8 9; do
        $T sample "$out/decoder.int8.tvae" --mixture 10,4,0.5 --label $l --count 100 --seed $((l + 1)) \
            --raw "$RUNS/aae-samples/c$l.raw"
        raws+=(--raw "$RUNS/aae-samples/c$l.raw")
    done
    $T classify --model "$RUNS/classifier/classifier.safetensors" "${raws[@]}" --expect-label 0,1,2,3,4,5,6,7,8,9 \
        --json "$out/reports/classify.int8-mixture-samples.json"
fi
if want m2; then
    out=models/mnist-m2
    mkdir -p "$out"
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-table/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-table"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-table" --shared-trunk --alpha 25 --translate 2 --epochs 12 \
            --ema 0.999 --test-every 0 --export --quiet
    fi
    # 100 labels, three times the epochs.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-100-long/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-100-long"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-100-long" --labels 100 --seeds 0,1,2 --shared-trunk --alpha 25 \
            --translate 2 --epochs 36 --ema 0.999 --test-every 0 --no-baseline --quiet
    fi
    # 100 labels, six times the epochs (the ELBO's KL weight, beta = 1).
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-100-72/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-100-72"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-100-72" --labels 100 --seeds 0,1,2 --shared-trunk --alpha 25 \
            --translate 2 --epochs 72 --ema 0.999 --test-every 0 --no-baseline --export --quiet
    fi
    # The same with KL weight 4: the shipped networks are its seed-0 run.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-100-72-beta4/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-100-72-beta4"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-100-72-beta4" --labels 100 --seeds 0,1,2 --shared-trunk --alpha 25 \
            --translate 2 --epochs 72 --ema 0.999 --test-every 0 --no-baseline --export --quiet --kl-weight 4
    fi
    # 600 labels, three times the epochs.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-600-36/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-600-36"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-600-36" --labels 600 --seeds 0,1,2 --shared-trunk --alpha 25 \
            --translate 2 --epochs 36 --ema 0.999 --test-every 0 --no-baseline --quiet
    fi
    # 600, 1000 and 3000 labels with the shipped recipe (72 epochs, KL weight 4).
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/ssl-more-72-beta4/table.json) ]]; then
        rm -rf "${RUNS:?}/ssl-more-72-beta4"
        $T eval-ssl --data "$DATA" -o "$RUNS/ssl-more-72-beta4" --labels 600,1000,3000 --seeds 0,1,2 --shared-trunk \
            --alpha 25 --translate 2 --epochs 72 --ema 0.999 --test-every 0 --no-baseline --quiet --kl-weight 4
    fi
    mkdir -p "$out/reports"
    cp "$RUNS/ssl-table/table.md" "$RUNS/ssl-table/table.json" "$out/"
    copy_table ssl-more-72-beta4 table-600-1000-3000-labels-72-epochs-beta4
    copy_table ssl-600-36 table-600-labels-36-epochs
    copy_table ssl-100-long table-100-labels-36-epochs
    copy_table ssl-100-72 table-100-labels-72-epochs
    copy_table ssl-100-72-beta4 table-100-labels-72-epochs-beta4
    # The shipped M2: the 100-label, 72-epoch, beta-4 run of seed 0 (q(y|x), q(z|x,y), p(x|y,z)).
    cp "$RUNS/ssl-100-72-beta4/n100-seed0/classifier.onnx" "$RUNS/ssl-100-72-beta4/n100-seed0/encoder.onnx" \
        "$RUNS/ssl-100-72-beta4/n100-seed0/decoder.onnx" "$RUNS/ssl-100-72-beta4/n100-seed0/train_log.jsonl" "$out/"
    # q(y|x) as an int8 classifier blob, checked against tract on the 10,000 test images.
    $T quantize "$out/classifier.onnx" --precision int8 -o "$out/classifier.int8.tvae" --data "$DATA" \
        --eval-samples 10000 --json > "$out/reports/classifier.int8.json"
    $T validate "$out/classifier.onnx" "$out/classifier.int8.tvae" --data "$DATA" --samples 10000 \
        --min-agreement 0.995 --json > "$out/reports/validate.classifier.int8.json"
    # p(z | y) per label, fitted to the codes of the training images labelled by that classifier
    # (M2 was given 100 labels: the data set's other labels stay unread).
    fit_prior mnist-m2 --labels-from "$out/classifier.int8.tvae"
    quantize mnist-m2
    $T sample "$out/decoder.int8.tvae" --count 100 --cols 10 --seed 1 -o "$out/samples.png"
    # Its conditional samples, classified as for the CVAE (the classifier of the cvae step), from
    # the learned prior and from N(0, I).
    mkdir -p "$RUNS/m2-samples"
    for prior in stored standard; do
        raws=()
        for l in 0 1 2 3 4 5 6 7 8 9; do
            $T sample "$out/decoder.int8.tvae" --label $l --count 100 --seed $((l + 1)) --prior $prior \
                --raw "$RUNS/m2-samples/$prior-label$l.raw"
            raws+=(--raw "$RUNS/m2-samples/$prior-label$l.raw")
        done
        report=$out/reports/classify.int8-samples.json
        [[ $prior == standard ]] && report=$out/reports/classify.int8-standard-prior-samples.json
        $T classify --model "$RUNS/classifier/classifier.safetensors" "${raws[@]}" --expect-label 0,1,2,3,4,5,6,7,8,9 \
            --json "$report"
    done
fi
if want m1m2; then
    # M1+M2: M2 on the codes of the shipped conv VAE's encoder (M1), as one image classifier.
    out=models/mnist-m1m2
    # With the ELBO's KL weight (1), for the card's comparison.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/m1m2-conv/table.json) ]]; then
        rm -rf "${RUNS:?}/m1m2-conv"
        $T eval-ssl --data "$DATA" -o "$RUNS/m1m2-conv" --labels 100 --seeds 0,1,2 \
            --m1 models/mnist-conv-vae/encoder.onnx --shared-trunk --alpha 25 --epochs 200 --ema 0.999 \
            --test-every 20 --export --quiet
    fi
    # KL weight 0.5: the shipped networks are its seed-0 run.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/m1m2-conv-kl05/table.json) ]]; then
        rm -rf "${RUNS:?}/m1m2-conv-kl05"
        $T eval-ssl --data "$DATA" -o "$RUNS/m1m2-conv-kl05" --labels 100 --seeds 0,1,2 \
            --m1 models/mnist-conv-vae/encoder.onnx --shared-trunk --alpha 25 --epochs 200 --ema 0.999 \
            --test-every 20 --export --quiet --kl-weight 0.5
    fi
    # 600, 1000 and 3000 labels, KL weight 0.5.
    if [[ ! ($SKIP_TRAIN == 1 && -f $RUNS/m1m2-conv-kl05-more/table.json) ]]; then
        rm -rf "${RUNS:?}/m1m2-conv-kl05-more"
        $T eval-ssl --data "$DATA" -o "$RUNS/m1m2-conv-kl05-more" --labels 600,1000,3000 --seeds 0,1,2 \
            --m1 models/mnist-conv-vae/encoder.onnx --shared-trunk --alpha 25 --epochs 200 --ema 0.999 \
            --test-every 20 --quiet --kl-weight 0.5
    fi
    mkdir -p "$out/reports"
    copy_table m1m2-conv-kl05-more table-600-1000-3000-labels
    copy_table m1m2-conv table-kl-weight-1
    cp "$RUNS/m1m2-conv-kl05/table.md" "$RUNS/m1m2-conv-kl05/table.json" "$out/"
    cp "$RUNS/m1m2-conv-kl05/n100-seed0/classifier.onnx" "$RUNS/m1m2-conv-kl05/n100-seed0/train_log.jsonl" "$out/"
    $T quantize "$out/classifier.onnx" --precision int8 -o "$out/classifier.int8.tvae" --data "$DATA" \
        --eval-samples 10000 --json > "$out/reports/classifier.int8.json"
    $T validate "$out/classifier.onnx" "$out/classifier.int8.tvae" --data "$DATA" --samples 10000 \
        --min-agreement 0.995 --json > "$out/reports/validate.classifier.int8.json"
fi
if want figures; then
    mkdir -p docs/figures
    z() { echo "models/mnist-vae-z$1/encoder.int8.tvae,models/mnist-vae-z$1/decoder.int8.tvae"; }
    $T figure reconstructions --pair "$(z 2)" --pair "$(z 5)" --pair "$(z 20)" --data "$DATA" --count 12 \
        -o docs/figures/reconstructions-z2-z5-z20.png
    a() { echo "models/mnist-$1/encoder.int8.tvae,models/mnist-$1/decoder.int8.tvae"; }
    $T figure reconstructions --pair "$(a ae)" --pair "$(a dae)" --pair "$(a cae)" --pair "$(a vae-gaussian)" \
        --pair "$(a aae)" --data "$DATA" --count 12 -o docs/figures/reconstructions-family.png
    # The plain AE on the same corrupted inputs as the DAE's figure.
    $T figure denoising --encoder models/mnist-ae/encoder.int8.tvae --decoder models/mnist-ae/decoder.int8.tvae \
        --data "$DATA" --corruption masking --noise 0.25 --seed 0 --count 12 -o docs/figures/denoising-plain-ae.png
    $T figure latent --encoder models/mnist-vae-z2/encoder.int8.tvae --data "$DATA" -o docs/figures/latent-vae-z2.png
fi
