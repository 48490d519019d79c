//! Host side of tinyvae: the float IR that ONNX models are imported into and exported from,
//! calibration, int8/f16 quantization into runtime blobs, fidelity metrics, and the tract
//! reference used to validate every blob against full precision.

pub mod bench;
pub mod calibrate;
pub mod corrupt;
pub mod figures;
pub mod idx;
pub mod image;
pub mod ir;
pub mod metrics;
pub mod onnx;
pub mod pipeline;
pub mod plan;
pub mod quantize;
pub mod rounding;
pub mod runner;
pub mod tract_ref;
pub mod validate;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed, then
/// renamed over the target. A crash never leaves a half-written output, and an existing file
/// is only replaced once the new one is complete.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
