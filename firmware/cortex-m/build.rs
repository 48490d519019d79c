//! Finds the deployed model (the folder `tinyvae deploy` wrote), and a deployed classifier if
//! `TINYVAE_CLASSIFIER_DIR` names one, and picks the board's memory map for the linker.

use std::{env, fs, path::PathBuf};

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-env-changed=TINYVAE_MODEL_DIR");
    let model_dir = env::var_os("TINYVAE_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("model"));
    let model_dir = if model_dir.is_absolute() { model_dir } else { manifest.join(model_dir) };
    let module = model_dir.join("model.rs");
    if !module.is_file() {
        eprintln!(
            "error: {} is missing. Deploy the model first, from the repository root:\n  \
             cargo run --release -p tinyvae-cli -- deploy models/mnist-vae-z20/decoder.int8.tvae -o firmware/cortex-m/model\n\
             (or point TINYVAE_MODEL_DIR at another `tinyvae deploy` output folder)",
            module.display()
        );
        std::process::exit(1);
    }
    println!("cargo:rustc-env=TINYVAE_MODEL_DIR={}", model_dir.display());
    // model.rs and the blob it embeds: a new deploy rebuilds the firmware.
    println!("cargo:rerun-if-changed={}", model_dir.display());
    if let Ok(entries) = fs::read_dir(&model_dir) {
        for entry in entries.flatten() {
            println!("cargo:rerun-if-changed={}", entry.path().display());
        }
    }

    // A classifier blob beside the decoder (the QEMU build): the firmware classifies each
    // digit it draws (src/qemu/classify.rs).
    println!("cargo::rustc-check-cfg=cfg(classifier)");
    println!("cargo:rerun-if-env-changed=TINYVAE_CLASSIFIER_DIR");
    let board = env::var_os("CARGO_FEATURE_SSD1306").is_some();
    let classifier = env::var_os("TINYVAE_CLASSIFIER_DIR").map(PathBuf::from);
    if let Some(dir) = &classifier {
        let dir = if dir.is_absolute() { dir.clone() } else { manifest.join(dir) };
        if board {
            eprintln!(
                "error: TINYVAE_CLASSIFIER_DIR is set, but the BlackPill build does not take a classifier: \
                 a decoder and a classifier blob do not fit its 512 KiB of flash (unset it for this build)"
            );
            std::process::exit(1);
        }
        if !dir.join("model.rs").is_file() {
            eprintln!(
                "error: {} is missing: TINYVAE_CLASSIFIER_DIR must be a `tinyvae deploy` folder of a classifier blob, e.g.\n  \
                 cargo run --release -p tinyvae-cli -- deploy models/mnist-m1m2/classifier.int8.tvae -o firmware/cortex-m/target/classifier",
                dir.join("model.rs").display()
            );
            std::process::exit(1);
        }
        println!("cargo:rustc-env=TINYVAE_CLASSIFIER_DIR={}", dir.display());
        println!("cargo:rustc-cfg=classifier");
        println!("cargo:rerun-if-changed={}", dir.display());
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                println!("cargo:rerun-if-changed={}", entry.path().display());
            }
        }
    }

    let memory = match (board, classifier.is_some()) {
        (true, _) => "memory-blackpill.x",
        (false, true) => "memory-mps2-an386-2m.x",
        (false, false) => "memory-mps2-an386.x",
    };
    fs::copy(manifest.join(memory), out.join("memory.x")).expect("copy the memory map to OUT_DIR");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");
    println!("cargo:rerun-if-changed=memory-blackpill.x");
    println!("cargo:rerun-if-changed=memory-mps2-an386-2m.x");
    println!("cargo:rerun-if-changed=build.rs");
}
