//! Reader for the IDX files of MNIST-style datasets (big-endian headers, optionally gzipped).
//! The image count comes from the header, never from an assumption about the dataset.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Which split of a dataset directory to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte[.gz]` and `train-labels-idx1-ubyte[.gz]`.
    Train,
    /// `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]`.
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Images as 0..=255 bytes, `count x (rows * cols)`, row-major, with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Number of images (from the header).
    pub count: usize,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// `count * rows * cols` pixels.
    pub pixels: Vec<u8>,
    /// `count` labels.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Pixels per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.image_len()..(i + 1) * self.image_len()]
    }

    /// Image `i` as [0, 1] floats.
    pub fn image_f32(&self, i: usize) -> Vec<f32> {
        self.image(i).iter().map(|&p| p as f32 / 255.0).collect()
    }

    /// Reads one split of a directory holding the standard four files (gzipped or not).
    pub fn load(dir: &Path, split: Split) -> Result<Dataset, IdxError> {
        let images = find(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        let (idims, pixels) = read_idx(&images, 3)?;
        let (ldims, labels_v) = read_idx(&labels, 1)?;
        if idims[0] != ldims[0] {
            return Err(IdxError::new(&labels, format!("{} labels for {} images", ldims[0], idims[0])));
        }
        if let Some(&bad) = labels_v.iter().find(|&&l| l > 9) {
            return Err(IdxError::new(&labels, format!("label {bad} is outside 0..=9")));
        }
        Ok(Dataset { count: idims[0], rows: idims[1], cols: idims[2], pixels, labels: labels_v })
    }

    /// The first `n` images (or all, if fewer).
    pub fn take(&self, n: usize) -> Dataset {
        let n = n.min(self.count);
        Dataset {
            count: n,
            rows: self.rows,
            cols: self.cols,
            pixels: self.pixels[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// A dataset file that is missing or malformed; names the file.
#[derive(Debug)]
pub struct IdxError {
    /// File at fault.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl IdxError {
    fn new(path: &Path, reason: impl Into<String>) -> Self {
        IdxError { path: path.to_path_buf(), reason: reason.into() }
    }
}

impl std::fmt::Display for IdxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for IdxError {}

fn find(dir: &Path, stem: &str) -> Result<PathBuf, IdxError> {
    for name in [format!("{stem}.gz"), stem.to_string()] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(IdxError::new(&dir.join(format!("{stem}[.gz]")), "not found (expected an MNIST-style IDX directory)"))
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions; returns the dimensions and data.
pub fn read_idx(path: &Path, rank: usize) -> Result<(Vec<usize>, Vec<u8>), IdxError> {
    let io_err = |e: io::Error| IdxError::new(path, e.to_string());
    let mut raw = Vec::new();
    File::open(path).and_then(|mut f| f.read_to_end(&mut raw)).map_err(io_err)?;
    parse_idx(&raw, rank, path)
}

/// Parses the bytes of an IDX file of unsigned bytes (gzipped or not) with `rank` dimensions;
/// returns the dimensions and data. `path` only names the source in errors. Any input is an
/// `Ok` or an [`IdxError`], never a panic.
pub fn parse_idx(raw: &[u8], rank: usize, path: &Path) -> Result<(Vec<usize>, Vec<u8>), IdxError> {
    let decompressed;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(raw).read_to_end(&mut out).map_err(|e| IdxError::new(path, format!("gzip: {e}")))?;
        decompressed = out;
        &decompressed[..]
    } else {
        raw
    };
    let header_len = rank.checked_mul(4).and_then(|n| n.checked_add(4)).unwrap_or(usize::MAX);
    if bytes.len() < header_len {
        return Err(IdxError::new(path, "shorter than its IDX header"));
    }
    if bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] as usize != rank {
        return Err(IdxError::new(
            path,
            format!("IDX magic {:02x?} is not unsigned bytes of rank {rank}", &bytes[..4]),
        ));
    }
    let dims: Vec<usize> =
        bytes[4..header_len].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    // Checked: three u32 dimensions can multiply past usize::MAX.
    let n = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let body = &bytes[header_len..];
    if n != Some(body.len()) {
        let promised = n.map_or_else(|| format!("{dims:?} (more than usize::MAX)"), |n| n.to_string());
        return Err(IdxError::new(path, format!("header promises {promised} bytes of data, file has {}", body.len())));
    }
    Ok((dims, body.to_vec()))
}

/// Writes an uncompressed IDX file of unsigned bytes (used to vendor test slices).
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> io::Result<()> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    crate::write_atomic(path, &out)
}
