//! The `idx` fuzz target: arbitrary bytes through the IDX reader of `tinyvae-data`
//! (`idx::parse_idx`, which `read_idx` and `Dataset::load` read files with), gzipped or not.
//!
//! The bytes are parsed as the two ranks the data sets use (3 for images, 1 for labels) and
//! as the rank their header claims. A malformed file must be an `IdxError`, never a panic.
//!
//! This file is also compiled into `crates/tinyvae-data/tests/fuzz_regressions.rs`, which runs
//! the seeds and the regression inputs through it in the normal test suite.

use std::path::Path;

use tinyvae_data::idx::{parse_idx, Dataset};

/// Runs one fuzz input. Panics exactly when the reader misbehaves.
pub fn run(data: &[u8]) {
    let claimed = data.get(3).map_or(0, |&r| usize::from(r));
    for rank in [3, 1, claimed] {
        let Ok((dims, body)) = parse_idx(data, rank, Path::new("fuzz-input")) else { continue };
        assert_eq!(dims.len(), rank, "dimensions of a rank-{rank} file");
        assert_eq!(dims.iter().product::<usize>(), body.len(), "data length of {dims:?}");
        if let [count, rows, cols] = dims[..] {
            // What `Dataset::load` builds from an image file (with made-up labels).
            let set = Dataset { count, rows, cols, pixels: body, labels: vec![0; count.min(1 << 16)] };
            if count > 0 && count <= 1 << 16 {
                let _ = (set.image(0), set.image_f32(count - 1), set.take(1));
            }
        }
    }
}
