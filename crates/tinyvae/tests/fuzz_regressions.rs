//! The `blob` fuzz target's inputs in the normal test suite: its committed seeds
//! (`fuzz/seeds/blob`), the crashes it found (`fuzz/regressions/blob`, each fixed) and every
//! shipped blob under `models/`, each run through the target's own code (`fuzz/src/blob.rs`):
//! parse, then every entry point the model's kind accepts, with every kernel table.

use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/blob.rs"]
mod blob;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The files under `dir` (recursively) whose name ends with `suffix`, sorted; dot files are
/// not inputs.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix)
                && !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs every file through the target; fails naming each file that panics.
fn run_all(paths: &[PathBuf]) {
    let failed: Vec<String> = paths
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            panic::catch_unwind(|| blob::run(&bytes)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "the blob fuzz target panics on {failed:#?}");
}

#[test]
fn blob_seeds_run_clean() {
    let seeds = files(&repo().join("fuzz/seeds/blob"), ".tvae");
    assert!(seeds.len() >= 40, "only {} seeds", seeds.len());
    run_all(&seeds);
}

#[test]
fn blob_regressions_run_clean() {
    run_all(&files(&repo().join("fuzz/regressions/blob"), ""));
}

#[test]
fn shipped_blobs_run_clean() {
    let shipped = files(&repo().join("models"), ".tvae");
    assert!(shipped.len() >= 30, "only {} shipped blobs", shipped.len());
    run_all(&shipped);
    // Each one parses as it is (`run_valid` panics otherwise).
    for path in &shipped {
        blob::run_valid(&std::fs::read(path).expect("read"));
    }
}

/// A blob whose length or CRC-32 no longer matches is tried with both fixed, as the fuzzer
/// mutates it; so the target reaches past the checksum.
#[test]
fn the_target_fixes_the_checksum_of_a_mutated_blob() {
    let mut bytes = tinyvae::doc_example_blob();
    bytes[tinyvae::format::CHECKSUM_START] ^= 1; // the kind byte: a generic model now
    assert!(matches!(tinyvae::Model::parse(&bytes), Err(tinyvae::Error::ChecksumMismatch { .. })));
    let fixed = blob::with_fixed_header(&bytes);
    let model = tinyvae::Model::parse(&fixed);
    assert!(!matches!(model, Err(tinyvae::Error::ChecksumMismatch { .. } | tinyvae::Error::LengthMismatch { .. })));
}
