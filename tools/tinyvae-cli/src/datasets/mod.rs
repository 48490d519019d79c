//! The data sets `tinyvae` knows by name: where each is downloaded from, the SHA-256 of its four
//! IDX files, the folder it is cached in on this machine, and the resolver that lets every
//! `--data` flag take a set's name (`--data mnist`) as well as a folder.
//!
//! The download itself (resume, checksum, atomic rename) is [`download`]; checksum files are
//! [`manifest`]; the `tinyvae data` command is `cmd::data`.

pub mod download;
pub mod manifest;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// One of the four files of an MNIST-style data set.
#[derive(Debug)]
pub struct KnownFile {
    /// File name, the same on every mirror.
    pub name: &'static str,
    /// SHA-256 of the published file, as 64 hex digits.
    pub sha256: &'static str,
    /// Size of the published file in bytes (for progress when a server sends no length).
    pub size: u64,
}

/// A data set that `tinyvae data fetch` can download.
#[derive(Debug)]
pub struct DataSet {
    /// The name on the command line and of the cache folder.
    pub name: &'static str,
    /// One line for `tinyvae data list`.
    pub title: &'static str,
    /// Where the files are downloaded from unless `--mirror` says otherwise.
    pub base_url: &'static str,
    /// Training images and labels, test images and labels.
    pub files: [KnownFile; 4],
}

impl DataSet {
    /// Bytes of the four published files.
    pub fn download_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The official digests, as a manifest.
    pub fn manifest(&self) -> manifest::Manifest {
        // The table below is checked by a unit test, so a digest that fails to parse is a bug
        // caught there; filtering keeps this path free of panics all the same.
        manifest::Manifest::new(
            self.files.iter().filter_map(|f| Some((f.name.to_string(), f.sha256.parse().ok()?))).collect(),
        )
    }
}

/// The known data sets.
///
/// The SHA-256 values are those of the published `.gz` files as TensorFlow Datasets pins them
/// (`tensorflow_datasets/url_checksums/mnist.txt` and `fashion_mnist.txt`, which also give
/// these sizes); many other loaders pin the same values. For MNIST, the two test files were
/// also hashed here from copies whose MD5 matches the published one (9fb629c4... and
/// ec29112d..., as torchvision lists them). torchvision's `ossci-datasets` bucket serves the
/// original LeCun files; Zalando's bucket is Fashion-MNIST's own download location (HTTP only:
/// the digests are what makes that safe).
pub const KNOWN: &[DataSet] = &[
    DataSet {
        name: "mnist",
        title: "MNIST handwritten digits (LeCun, Cortes, Burges; CC BY-SA 3.0)",
        base_url: "https://ossci-datasets.s3.amazonaws.com/mnist/",
        files: [
            KnownFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                size: 9_912_422,
            },
            KnownFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                size: 28_881,
            },
            KnownFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                size: 1_648_877,
            },
            KnownFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                size: 4_542,
            },
        ],
    },
    DataSet {
        name: "fashion-mnist",
        title: "Fashion-MNIST clothing images (Zalando Research; MIT)",
        base_url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files: [
            KnownFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                size: 26_421_880,
            },
            KnownFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                size: 29_515,
            },
            KnownFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                size: 4_422_102,
            },
            KnownFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                size: 5_148,
            },
        ],
    },
];

/// The known set called `name`.
pub fn find(name: &str) -> Option<&'static DataSet> {
    KNOWN.iter().find(|s| s.name == name)
}

/// The known names, comma separated (for messages).
pub fn names() -> String {
    KNOWN.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
}

/// Why a `--data` value or a set name does not lead to a folder of data.
#[derive(Debug, Error)]
pub enum ResolveError {
    /// The set is known but its files are not in the cache.
    #[error("data set `{name}` is not fetched yet (no complete copy in {}): run `tinyvae data fetch {name}` first", dir.display())]
    NotFetched {
        /// The set's name.
        name: &'static str,
        /// Where it would be.
        dir: PathBuf,
    },
    /// Neither an existing folder nor a known set.
    #[error("`{value}` is neither a folder nor a known data set ({known})")]
    Unknown {
        /// The value as given.
        value: String,
        /// The known names.
        known: String,
    },
    /// No environment variable says where the cache is.
    #[error("cannot tell where the data set cache is: set TINYVAE_DATA (or HOME)")]
    NoCacheDir,
}

/// The folder that holds one folder per cached set: `$TINYVAE_DATA`, else
/// `$XDG_CACHE_HOME/tinyvae/datasets`, else `~/.cache/tinyvae/datasets`.
pub fn cache_root() -> Result<PathBuf, ResolveError> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("TINYVAE_DATA") {
        return Ok(dir);
    }
    // The XDG base directory spec says a relative path in these variables is to be ignored.
    if let Some(cache) = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Ok(cache.join("tinyvae").join("datasets"));
    }
    let home = std::env::home_dir().filter(|h| !h.as_os_str().is_empty()).ok_or(ResolveError::NoCacheDir)?;
    Ok(home.join(".cache").join("tinyvae").join("datasets"))
}

/// The cache folder of `set` (whether or not it is fetched).
pub fn cache_dir(set: &DataSet) -> Result<PathBuf, ResolveError> {
    Ok(cache_root()?.join(set.name))
}

/// Whether `dir` holds all four files of `set`. A file only gets its final name once its
/// checksum passed (see [`download`]), so presence means a verified download.
pub fn is_complete(dir: &Path, set: &DataSet) -> bool {
    set.files.iter().all(|f| dir.join(f.name).is_file())
}

/// The cache folder of a fetched set, or [`ResolveError::NotFetched`].
pub fn fetched_dir(set: &'static DataSet) -> Result<PathBuf, ResolveError> {
    let dir = cache_dir(set)?;
    if is_complete(&dir, set) {
        Ok(dir)
    } else {
        Err(ResolveError::NotFetched { name: set.name, dir })
    }
}

/// The value parser of every `--data` flag: an existing folder is used as it is (so a local
/// folder that happens to be called `mnist` still wins); a known set's name is its cache
/// folder, once fetched.
pub fn data_arg(value: &str) -> Result<PathBuf, ResolveError> {
    let path = Path::new(value);
    // A folder of IDX files, or a file of feature vectors (.npy, raw f32).
    if path.is_dir() || path.is_file() {
        return Ok(path.to_path_buf());
    }
    match find(value) {
        Some(set) => fetched_dir(set),
        // A path that does not exist is the command's to report (one line naming it); only a
        // bare word is taken for a data set's name.
        None if value.contains(std::path::MAIN_SEPARATOR) || value.contains('.') => Ok(path.to_path_buf()),
        None => Err(ResolveError::Unknown { value: value.to_string(), known: names() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_official_digest_parses_and_every_set_has_its_four_files() {
        for set in KNOWN {
            let m = set.manifest();
            for f in &set.files {
                let d = m.get(f.name).unwrap_or_else(|| panic!("{} {}", set.name, f.name));
                assert_eq!(d.to_string(), f.sha256);
            }
            for prefix in ["train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"] {
                assert!(set.files.iter().any(|f| f.name == format!("{prefix}-ubyte.gz")), "{}", set.name);
            }
            assert!(set.base_url.ends_with('/'));
        }
    }

    #[test]
    fn an_existing_folder_is_used_as_it_is() {
        let dir = std::env::temp_dir();
        assert_eq!(data_arg(dir.to_str().unwrap()).unwrap(), dir);
        assert!(matches!(data_arg("no-such-folder-or-set"), Err(ResolveError::Unknown { .. })));
    }
}
