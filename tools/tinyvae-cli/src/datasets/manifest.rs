//! SHA-256 digests and the checksum lists that carry them.
//!
//! A [`Manifest`] maps file names to the SHA-256 a download must have. The official one of
//! each known set is built from the table in [`super`]; `tinyvae data fetch --manifest FILE`
//! reads one in the format `sha256sum` writes (a `SHA256SUMS` file), so a private mirror, or a
//! test server, can serve other bytes and still have every file checked.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A SHA-256 digest, shown and parsed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of everything `reader` yields (streamed: data set files can be tens of MB).
    pub fn of_reader(mut reader: impl Read) -> io::Result<Sha256Digest> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(&hasher.finalize());
        Ok(Sha256Digest(out))
    }

    /// The digest of a file's contents.
    pub fn of_file(path: &Path) -> io::Result<Sha256Digest> {
        Sha256Digest::of_reader(std::fs::File::open(path)?)
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// Why a string is not a SHA-256 digest.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("`{0}` is not a SHA-256 digest (64 hex digits)")]
pub struct BadDigest(pub String);

impl FromStr for Sha256Digest {
    type Err = BadDigest;

    fn from_str(s: &str) -> Result<Self, BadDigest> {
        let bad = || BadDigest(s.to_string());
        // Checked up front so the slicing below stays on ASCII character boundaries.
        if s.len() != 64 || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Sha256Digest(out))
    }
}

/// Why a checksum file cannot be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ManifestError {
    /// A line is not `DIGEST  NAME`.
    #[error("line {line}: expected `SHA256  FILE` (the format of sha256sum), found `{text}`")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line as it is.
        text: String,
    },
    /// A line's digest is not 64 hex digits.
    #[error("line {line}: {source}")]
    Digest {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: BadDigest,
    },
    /// Two lines give different digests for one file.
    #[error("line {line}: a second, different digest for {name}")]
    Conflict {
        /// 1-based line number of the second one.
        line: usize,
        /// The file named twice.
        name: String,
    },
}

/// The SHA-256 each file must have, by file name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    entries: Vec<(String, Sha256Digest)>,
}

impl Manifest {
    /// A manifest of the given entries.
    pub fn new(entries: Vec<(String, Sha256Digest)>) -> Manifest {
        Manifest { entries }
    }

    /// Parses `sha256sum` output: one `DIGEST  NAME` per line (`DIGEST *NAME` for binary mode),
    /// blank lines and `#` comments ignored. Only a name's last path component counts, so a file
    /// made with `sha256sum mnist/*.gz` works as well as one made inside the folder.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let mut entries: Vec<(String, Sha256Digest)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let syntax = || ManifestError::Syntax { line, text: trimmed.to_string() };
            let (hex, rest) = trimmed.split_once(char::is_whitespace).ok_or_else(syntax)?;
            let name = rest.trim_start().trim_start_matches('*');
            let name = name.rsplit('/').next().unwrap_or(name);
            if name.is_empty() {
                return Err(syntax());
            }
            let digest: Sha256Digest = hex.parse().map_err(|source| ManifestError::Digest { line, source })?;
            match entries.iter().find(|(n, _)| n == name) {
                Some((_, d)) if *d != digest => {
                    return Err(ManifestError::Conflict { line, name: name.to_string() });
                }
                Some(_) => {}
                None => entries.push((name.to_string(), digest)),
            }
        }
        Ok(Manifest { entries })
    }

    /// The digest listed for `name`.
    pub fn get(&self, name: &str) -> Option<Sha256Digest> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, d)| *d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_of_nothing_is_the_known_one_and_round_trips() {
        let d = Sha256Digest::of_reader(&b""[..]).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(EMPTY.parse::<Sha256Digest>().unwrap(), d);
        assert_eq!(EMPTY.to_uppercase().parse::<Sha256Digest>().unwrap(), d);
    }

    #[test]
    fn bad_digests_are_errors_not_panics() {
        for s in ["", "abc", &EMPTY[1..], &format!("{EMPTY}0"), &EMPTY.replace('e', "g"), &"é".repeat(32)] {
            assert!(s.parse::<Sha256Digest>().is_err(), "{s}");
        }
    }

    #[test]
    fn parses_sha256sum_output() {
        let text = format!("# made by sha256sum\n{EMPTY}  a.gz\n\n{EMPTY} *dir/b.gz\n");
        let m = Manifest::parse(&text).unwrap();
        assert_eq!(m.get("a.gz").unwrap().to_string(), EMPTY);
        assert_eq!(m.get("b.gz").unwrap().to_string(), EMPTY);
        assert!(m.get("c.gz").is_none());
    }

    #[test]
    fn names_the_bad_line() {
        assert!(matches!(Manifest::parse("x\n").unwrap_err(), ManifestError::Syntax { line: 1, .. }));
        let e = Manifest::parse(&format!("{EMPTY}  a\nzz  b\n")).unwrap_err();
        assert!(matches!(e, ManifestError::Digest { line: 2, .. }), "{e}");
        let other = EMPTY.replace('e', "f");
        let e = Manifest::parse(&format!("{EMPTY}  a\n{other}  a\n")).unwrap_err();
        assert_eq!(e, ManifestError::Conflict { line: 2, name: "a".into() });
    }
}
