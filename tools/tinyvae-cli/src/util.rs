//! Small helpers shared by the subcommands: reading inputs with file-naming errors, and
//! loading blobs.

use std::path::Path;

use anyhow::{Context, Result};

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Reads and validates a blob (at a cache-line aligned address, as kernels like it); the error
/// names the file and what is wrong with it.
pub fn read_blob(path: &Path) -> Result<tinyvae::AlignedBlob> {
    let bytes = tinyvae::AlignedBlob::new(&read(path)?);
    tinyvae::Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Refuses to write an output over one of the command's inputs.
pub fn check_not_input(out: &Path, inputs: &[&Path]) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if let Some(o) = canon(out) {
        for i in inputs {
            if canon(i).as_ref() == Some(&o) {
                anyhow::bail!("refusing to overwrite the input file {} with the output", out.display());
            }
        }
    }
    Ok(())
}

/// Writes bytes atomically, naming the file in the error.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    tinyvae_data::write_atomic(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Parses `int8`, `f16` or `f32`.
pub fn parse_precision(s: &str) -> Result<tinyvae::Precision, String> {
    match s {
        "int8" | "i8" => Ok(tinyvae::Precision::Int8),
        "f16" | "fp16" => Ok(tinyvae::Precision::F16),
        "f32" | "fp32" => Ok(tinyvae::Precision::F32),
        _ => Err(format!("unknown precision `{s}` (use int8, f16 or f32)")),
    }
}
