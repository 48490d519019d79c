//! Feature vectors from files: NumPy `.npy` arrays and raw little-endian f32, the formats
//! people keep non-image data in (log-mel frames, sensor windows), for calibrating and
//! validating models whose inputs are not MNIST images.
//!
//! The `.npy` reader is written here rather than taken from a crate: the crates that read
//! `.npy` parse the header with a general Python-literal parser (pest, stacker and psm, which
//! needs a C build), while the header is one dict that NumPy writes in one form
//! (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>). This reader
//! takes that form and refuses anything else with an error naming the file and the field.

use std::path::{Path, PathBuf};

/// Samples of `len` features each, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Samples.
    pub rows: usize,
    /// Features per sample (the product of every dimension after the first).
    pub len: usize,
    /// `rows * len` values.
    pub values: Vec<f32>,
}

/// Why a feature file could not be read; names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct FeaturesError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl FeaturesError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        FeaturesError { path: path.to_path_buf(), reason: reason.into() }
    }
}

/// Largest file read, so an absurd shape is an error rather than an allocation failure.
const MAX_BYTES: u64 = 1 << 32;

impl Features {
    /// Reads `path`: a `.npy` file (float32 or float64, C order, shape `[N, ...]`), or raw
    /// little-endian f32 with `shape` giving the dimensions of one sample (required for raw
    /// files; checked against an `.npy` file's own shape when given).
    pub fn load(path: &Path, shape: Option<&[usize]>) -> Result<Features, FeaturesError> {
        let size = std::fs::metadata(path).map_err(|e| FeaturesError::new(path, e.to_string()))?.len();
        if size > MAX_BYTES {
            return Err(FeaturesError::new(path, format!("{size} bytes is more than the 4 GiB this reads")));
        }
        let bytes = std::fs::read(path).map_err(|e| FeaturesError::new(path, e.to_string()))?;
        let features = if bytes.starts_with(NPY_MAGIC) {
            let f = parse_npy(&bytes).map_err(|reason| FeaturesError::new(path, reason))?;
            if let Some(shape) = shape {
                let wanted = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
                if wanted != Some(f.len) {
                    let wanted = wanted.map_or_else(|| "more than can be counted".to_string(), |n| n.to_string());
                    return Err(FeaturesError::new(
                        path,
                        format!("holds samples of {} values, but --shape {shape:?} has {wanted}", f.len),
                    ));
                }
            }
            f
        } else {
            let shape = shape.ok_or_else(|| {
                FeaturesError::new(
                    path,
                    "is not a .npy file; for raw little-endian f32, give the shape of one sample (--shape)",
                )
            })?;
            parse_raw(&bytes, shape).map_err(|reason| FeaturesError::new(path, reason))?
        };
        if let Some(i) = features.values.iter().position(|v| !v.is_finite()) {
            return Err(FeaturesError::new(
                path,
                format!("value {i} (sample {}, feature {}) is not finite", i / features.len, i % features.len),
            ));
        }
        Ok(features)
    }

    /// Sample `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.len..(i + 1) * self.len]
    }

    /// Samples `start..end` as a new set.
    pub fn slice(&self, start: usize, end: usize) -> Features {
        let end = end.min(self.rows);
        let start = start.min(end);
        Features { rows: end - start, len: self.len, values: self.values[start * self.len..end * self.len].to_vec() }
    }
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Writes `features` as a float32 `.npy` file's bytes, shape `[rows, len]`.
pub fn npy_bytes(features: &Features) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", features.rows, features.len);
    // The header (magic, version, length, dict, padding, newline) is a multiple of 64 bytes.
    let unpadded = NPY_MAGIC.len() + 4 + dict.len() + 1;
    let padding = unpadded.div_ceil(64) * 64 - unpadded;
    let header = format!("{dict}{}\n", " ".repeat(padding));
    let mut out = Vec::with_capacity(unpadded + padding + 4 * features.values.len());
    out.extend_from_slice(NPY_MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in &features.values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn parse_npy(bytes: &[u8]) -> Result<Features, String> {
    let short = || "shorter than its .npy header".to_string();
    let major = *bytes.get(6).ok_or_else(short)?;
    let (header_len, start) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or_else(short)?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10usize)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(short)?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(format!(".npy format version {v} is not one of 1, 2, 3")),
    };
    let header = bytes.get(start..start.saturating_add(header_len)).ok_or_else(short)?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text".to_string())?;
    let descr = dict_value(header, "descr")?;
    let fortran = dict_value(header, "fortran_order")?;
    let shape = dict_value(header, "shape")?;
    if fortran.trim() != "False" {
        return Err("is stored in Fortran order; save it in C order (np.ascontiguousarray)".into());
    }
    let dims: Vec<usize> = shape
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("shape {shape} is not a tuple of sizes")))
        .collect::<Result<_, _>>()?;
    if dims.len() < 2 {
        return Err(format!("has shape {shape}; expected [samples, features] or [samples, C, H, W]"));
    }
    let rows = dims[0];
    let len = dims[1..].iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("shape overflows")?;
    let count = rows.checked_mul(len).ok_or("shape overflows")?;
    let data = &bytes[start + header_len..];
    let quote = |s: &str| s.trim().trim_matches('\'').trim_matches('"').to_string();
    let values: Vec<f32> = match quote(descr).as_str() {
        "<f4" => {
            check_size(data.len(), count, 4)?;
            data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        "<f8" => {
            check_size(data.len(), count, 8)?;
            data.chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32)
                .collect()
        }
        other => return Err(format!("holds dtype {other}; tinyvae reads float32 (<f4) or float64 (<f8)")),
    };
    if len == 0 {
        return Err(format!("has shape {shape}: samples of no features"));
    }
    Ok(Features { rows, len, values })
}

fn check_size(bytes: usize, count: usize, size: usize) -> Result<(), String> {
    if count.checked_mul(size) == Some(bytes) {
        Ok(())
    } else {
        Err(format!("the header promises {count} values of {size} bytes, the file holds {bytes} bytes of data"))
    }
}

/// The text of `key`'s value in a `.npy` header dict: up to the next `,` outside parentheses.
fn dict_value<'h>(header: &'h str, key: &str) -> Result<&'h str, String> {
    let missing = || format!("the .npy header has no '{key}'");
    let at = header.find(&format!("'{key}'")).ok_or_else(missing)?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':').ok_or_else(missing)?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(&rest[..i]),
            _ => {}
        }
    }
    Err(missing())
}

fn parse_raw(bytes: &[u8], shape: &[usize]) -> Result<Features, String> {
    let len = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&l| l > 0);
    let len = len.ok_or_else(|| format!("--shape {shape:?} is not a positive size"))?;
    let sample = len.checked_mul(4).ok_or_else(|| format!("--shape {shape:?} is too large"))?;
    if bytes.is_empty() || !bytes.len().is_multiple_of(sample) {
        return Err(format!(
            "{} bytes is not a whole number of samples of {len} f32 values ({sample} bytes)",
            bytes.len()
        ));
    }
    let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok(Features { rows: bytes.len() / sample, len, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn npy_round_trips_and_raw_needs_a_shape() {
        let dir = tempfile::tempdir().unwrap();
        let f = Features { rows: 3, len: 4, values: (0..12).map(|v| v as f32 * 0.5).collect() };
        let p = write(dir.path(), "x.npy", &npy_bytes(&f));
        assert_eq!(Features::load(&p, None).unwrap(), f);
        assert_eq!(Features::load(&p, Some(&[2, 2])).unwrap(), f);
        assert!(Features::load(&p, Some(&[5])).unwrap_err().to_string().contains("--shape"));
        let raw: Vec<u8> = f.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let r = write(dir.path(), "x.f32", &raw);
        assert_eq!(Features::load(&r, Some(&[4])).unwrap(), f);
        let e = Features::load(&r, None).unwrap_err().to_string();
        assert!(e.contains("x.f32") && e.contains("--shape"), "{e}");
        assert!(Features::load(&r, Some(&[5])).unwrap_err().to_string().contains("whole number"));
    }

    #[test]
    fn what_numpy_writes_is_read() {
        // np.save of np.arange(6, dtype='<f8').reshape(2, 1, 3), as NumPy 1.x writes it.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1, 3), }";
        let header = format!("{dict}{}\n", " ".repeat(128 - 10 - dict.len() - 1));
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in 0..6 {
            bytes.extend_from_slice(&(v as f64).to_le_bytes());
        }
        let f = parse_npy(&bytes).unwrap();
        assert_eq!((f.rows, f.len), (2, 3));
        assert_eq!(f.values, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn bad_files_are_errors_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let f = Features { rows: 2, len: 2, values: vec![1.0, 2.0, 3.0, f32::NAN] };
        let p = write(dir.path(), "nan.npy", &npy_bytes(&f));
        assert!(Features::load(&p, None).unwrap_err().to_string().contains("sample 1, feature 1"));
        let good = npy_bytes(&Features { rows: 2, len: 2, values: vec![0.0; 4] });
        for cut in [3, 9, 20, good.len() - 1] {
            let p = write(dir.path(), "cut.npy", &good[..cut]);
            assert!(Features::load(&p, None).is_err(), "cut at {cut}");
        }
        // Same-length edits of the header text.
        let edit = |from: &str, to: &str| {
            let at = good.windows(from.len()).position(|w| w == from.as_bytes()).unwrap();
            let mut b = good.clone();
            b[at..at + from.len()].copy_from_slice(to.as_bytes());
            b
        };
        let text = edit("<f4", "<i4");
        let p = write(dir.path(), "int.npy", &text);
        assert!(Features::load(&p, None).unwrap_err().to_string().contains("<i4"));
        let fortran = edit("False", "True ");
        let p = write(dir.path(), "f.npy", &fortran);
        assert!(Features::load(&p, None).unwrap_err().to_string().contains("Fortran"));
        let huge = edit("(2, 2)", "(9,99)");
        let p = write(dir.path(), "huge.npy", &huge);
        assert!(Features::load(&p, None).is_err());
        assert!(Features::load(&dir.path().join("missing.npy"), None).unwrap_err().to_string().contains("missing.npy"));
        // Shapes whose products overflow are errors, not panics or wrapped sizes.
        let p = write(dir.path(), "good.npy", &good);
        let e = Features::load(&p, Some(&[usize::MAX, 2])).unwrap_err().to_string();
        assert!(e.contains("more than can be counted"), "{e}");
        let raw = write(dir.path(), "x.f32", &[0u8; 16]);
        let e = Features::load(&raw, Some(&[usize::MAX / 2])).unwrap_err().to_string();
        assert!(e.contains("too large") && e.contains("x.f32"), "{e}");
    }
}
