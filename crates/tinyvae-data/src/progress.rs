//! The progress bars of long jobs (training epochs, data downloads): one look for every
//! command, and hidden when the caller asked for quiet output.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` steps (`done` of them already behind, for resumed runs), or a hidden bar
/// when `show` is false, so callers update it unconditionally.
pub fn steps(show: bool, total: u64, done: u64) -> ProgressBar {
    styled(show, total, done, "{elapsed_precise} [{bar:30}] {pos}/{len} {msg} ({eta} left)")
}

/// A bar over `total` bytes (`done` already on disk, for resumed downloads).
pub fn bytes(show: bool, total: u64, done: u64) -> ProgressBar {
    styled(show, total, done, "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta} left)")
}

fn styled(show: bool, total: u64, done: u64, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done);
    bar
}
