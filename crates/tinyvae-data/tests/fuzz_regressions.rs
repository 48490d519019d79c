//! The `idx` fuzz target's inputs in the normal test suite: its committed seeds
//! (`fuzz/seeds/idx`) and the crashes it found (`fuzz/regressions/idx`, each fixed), each run
//! through the target's own code (`fuzz/src/idx.rs`).

use std::panic;
use std::path::{Path, PathBuf};

#[path = "../../../fuzz/src/idx.rs"]
mod idx;

/// The inputs in `dir` (a folder of the repository), sorted; dot files are not inputs.
fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    out.sort();
    out
}

fn run_all(paths: &[PathBuf]) {
    let failed: Vec<String> = paths
        .iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            panic::catch_unwind(|| idx::run(&bytes)).is_err()
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(failed.is_empty(), "the idx fuzz target panics on {failed:#?}");
}

#[test]
fn idx_seeds_run_clean() {
    let seeds = files("fuzz/seeds/idx");
    assert!(seeds.len() >= 4, "only {} seeds", seeds.len());
    run_all(&seeds);
}

#[test]
fn idx_regressions_run_clean() {
    let regressions = files("fuzz/regressions/idx");
    assert!(!regressions.is_empty(), "no regression inputs");
    run_all(&regressions);
}

/// The first crash the fuzzer found: three u32 dimensions whose product overflows `usize`
/// (a panic with overflow checks, a wrong length without them).
#[test]
fn dimensions_past_usize_are_an_error() {
    let bytes = [0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let e = tinyvae_data::idx::parse_idx(&bytes, 3, Path::new("x")).expect_err("accepted");
    assert!(e.reason.contains("more than usize::MAX"), "{e}");
}
