//! The trainer's files on disk: named tensors in safetensors, JSON sidecars and reports, and
//! JSON-lines logs. Every file goes through [`tinyvae_data::write_atomic`], so a crash leaves
//! either the previous complete file or the new one, and every error names the file.
//!
//! What the files hold (checkpoints, model files, the M2 and classifier files) is decided by
//! the modules that write them; this is only how tensors and JSON reach the disk.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::TrainError;

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), TrainError> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))
}

/// Creates the directory `path` will be written into, if `path` names one.
pub(crate) fn create_parent(path: &Path) -> Result<(), TrainError> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => create_dir(dir),
        None => Ok(()),
    }
}

/// Writes `bytes` to `path` atomically: the trainer's one way of putting a file on disk.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    tinyvae_data::write_atomic(path, bytes).map_err(|e| TrainError::io(path, e))
}

/// Named tensors from a safetensors file.
pub(crate) fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|source| TrainError::Safetensors { path: path.to_path_buf(), source })
}

/// Writes named tensors as a safetensors file (the bytes candle's own writer produces: tensors
/// sorted by name, no metadata).
pub(crate) fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<(), TrainError> {
    let bytes = safetensors::tensor::serialize(tensors, None)
        .map_err(|e| TrainError::Safetensors { path: path.to_path_buf(), source: candle_core::Error::from(e) })?;
    write_bytes(path, &bytes)
}

/// Writes `value` as pretty-printed JSON with a final newline.
pub(crate) fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), TrainError> {
    let json = |source| TrainError::Json { path: path.to_path_buf(), source };
    let mut text = serde_json::to_string_pretty(value).map_err(json)?;
    text.push('\n');
    write_bytes(path, text.as_bytes())
}

/// Writes `records` as JSON lines, one record a line, creating the directory if needed. The
/// whole file is rewritten each time, so a log is always a valid prefix of its run.
pub(crate) fn write_json_lines<T: Serialize>(path: &Path, records: &[T]) -> Result<(), TrainError> {
    let mut text = String::new();
    for r in records {
        text += &serde_json::to_string(r).map_err(|source| TrainError::Json { path: path.to_path_buf(), source })?;
        text.push('\n');
    }
    create_parent(path)?;
    write_bytes(path, text.as_bytes())
}

/// Reads a JSON file as `T`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, TrainError> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| TrainError::Json { path: path.to_path_buf(), source })
}

/// Writes `tensors` to `dir/weights_file`, then `sidecar` as JSON to `dir/sidecar_file` (last,
/// so a sidecar never names tensors that are not on disk); returns the sidecar's path.
pub(crate) fn save_with_sidecar<T: Serialize>(
    dir: &Path,
    weights_file: &str,
    tensors: &HashMap<String, Tensor>,
    sidecar_file: &str,
    sidecar: &T,
) -> Result<PathBuf, TrainError> {
    save_tensors(&dir.join(weights_file), tensors)?;
    let path = dir.join(sidecar_file);
    write_json(&path, sidecar)?;
    Ok(path)
}

/// The file `name` beside the sidecar `sidecar`.
pub(crate) fn beside(sidecar: &Path, name: &str) -> PathBuf {
    sidecar.parent().unwrap_or(Path::new(".")).join(name)
}

/// Tensors whose names start with `prefix`, with the prefix removed.
pub(crate) fn strip_prefix(all: &HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    all.iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|n| (n.to_string(), v.clone()))).collect()
}

/// The sidecar a user path means: a `.json` file as is, a directory's `checkpoint.json`
/// (or `model.json`), or the `.json` beside a `.safetensors` file named like it.
pub(crate) fn sidecar_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        let c = path.join("checkpoint.json");
        if c.is_file() {
            return c;
        }
        return path.join("model.json");
    }
    if path.extension().is_some_and(|e| e == "safetensors") {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let base = stem.split('-').next().unwrap_or(&stem).to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        for cand in [format!("{stem}.json"), format!("{base}.json")] {
            let p = dir.join(cand);
            if p.is_file() {
                return p;
            }
        }
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single writer must produce exactly the bytes of candle's `save`, so files written
    /// before and after it moved to the atomic writer are the same.
    #[test]
    fn save_tensors_writes_candles_bytes_and_loads_back() {
        let dir = std::env::temp_dir().join(format!("tinyvae-train-io-{}", std::process::id()));
        create_dir(&dir).unwrap();
        let tensors = HashMap::from([
            ("b.weight".to_string(), Tensor::new(&[[1f32, -2.5], [3.0, 0.125]], &Device::Cpu).unwrap()),
            ("a.bias".to_string(), Tensor::new(&[7f32, 8.0], &Device::Cpu).unwrap()),
            ("adam_step".to_string(), Tensor::new(&[42i64], &Device::Cpu).unwrap()),
        ]);
        let (ours, candles) = (dir.join("ours.safetensors"), dir.join("candle.safetensors"));
        save_tensors(&ours, &tensors).unwrap();
        candle_core::safetensors::save(&tensors, &candles).unwrap();
        assert_eq!(std::fs::read(&ours).unwrap(), std::fs::read(&candles).unwrap());
        let back = load_tensors(&ours).unwrap();
        let missing = load_tensors(&dir.join("missing.safetensors")).unwrap_err();
        let chain = missing.chain();
        assert!(chain.starts_with(&format!("{}: ", dir.join("missing.safetensors").display())), "{chain}");
        assert_eq!(back["b.weight"].to_vec2::<f32>().unwrap(), [[1.0, -2.5], [3.0, 0.125]]);
        assert_eq!(back["adam_step"].to_vec1::<i64>().unwrap(), [42]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
