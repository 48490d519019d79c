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
    let header_len = rank.checked_mul(4).and_then(|n| n.checked_add(4)).unwrap_or(usize::MAX);
    let decompressed;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        decompressed = inflate(raw, header_len, path)?;
        &decompressed[..]
    } else {
        raw
    };
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

/// Largest IDX data this reads (EMNIST's largest split is about 550 MB).
const MAX_IDX_BYTES: usize = 4 << 30;

/// Inflates a gzipped IDX file: its header, then no more than the data the header promises
/// and one byte (so that extra data is still noticed). A small file that inflates without end
/// stops there instead of filling memory.
fn inflate(raw: &[u8], header_len: usize, path: &Path) -> Result<Vec<u8>, IdxError> {
    let gzip = |e: io::Error| IdxError::new(path, format!("gzip: {e}"));
    let mut d = GzDecoder::new(raw);
    let mut out = Vec::new();
    (&mut d).take(header_len.min(4 + 4 * 255) as u64).read_to_end(&mut out).map_err(gzip)?;
    let magic_ok = out.len() >= 4 && out[..3] == [0, 0, 0x08] && out[3] as usize == header_len / 4 - 1;
    let promised = out
        .get(4..header_len)
        .filter(|_| magic_ok)
        .map(|h| h.chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize))
        .and_then(|mut dims| dims.try_fold(1usize, |n, d| n.checked_mul(d)));
    match promised {
        Some(n) if n <= MAX_IDX_BYTES => {
            (&mut d).take(n as u64 + 1).read_to_end(&mut out).map_err(gzip)?;
        }
        Some(n) => {
            return Err(IdxError::new(
                path,
                format!("header promises {n} bytes, more than the {MAX_IDX_BYTES} this reads"),
            ));
        }
        // A short, wrong or overflowing header: the checks of `parse_idx` name the problem.
        None => {}
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, dims.len() as u8];
        dims.iter().for_each(|d| out.extend_from_slice(&d.to_be_bytes()));
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn gzipped_files_read_like_plain_ones_and_extra_data_is_noticed() {
        let plain = idx(&[3, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let p = Path::new("x.idx");
        let want = parse_idx(&plain, 3, p).unwrap();
        assert_eq!(parse_idx(&gzip(&plain), 3, p).unwrap(), want);
        let mut longer = plain.clone();
        longer.push(0);
        let e = parse_idx(&gzip(&longer), 3, p).unwrap_err().to_string();
        assert!(e.contains("promises 12 bytes") && e.contains("has 13"), "{e}");
        let e = parse_idx(&gzip(&plain[..10]), 3, p).unwrap_err().to_string();
        assert!(e.contains("shorter than its IDX header"), "{e}");
    }

    /// A gzip bomb: 64 MiB of zeros behind a header that promises 16 bytes inflate only to the
    /// promised bytes and one more, and one whose header promises more than the reader takes
    /// is refused before inflating its data.
    #[test]
    fn gzip_bombs_inflate_no_further_than_the_header_promises() {
        let p = Path::new("bomb.idx.gz");
        let mut bomb = idx(&[4, 2, 2], &[]);
        bomb.resize(bomb.len() + (64 << 20), 0);
        let small = gzip(&bomb);
        assert!(small.len() < 1 << 20, "{}", small.len());
        assert_eq!(inflate(&small, 16, p).unwrap().len(), 16 + 16 + 1);
        let e = parse_idx(&small, 3, p).unwrap_err().to_string();
        assert!(e.contains("promises 16 bytes"), "{e}");
        let huge = gzip(&idx(&[u32::MAX, 1 << 16, 1], &[0; 1024]));
        let e = parse_idx(&huge, 3, p).unwrap_err().to_string();
        assert!(e.contains("more than the") && e.contains("bomb.idx.gz"), "{e}");
    }
}
