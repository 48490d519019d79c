//! `tinyvae data fetch|list|path`: download the data sets tinyvae knows (MNIST, Fashion-MNIST)
//! into a cache folder, each file checked against its SHA-256, and find them again, so that
//! every command's `--data` can say `mnist` instead of a folder (see `crate::datasets`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::datasets::download::{Fetcher, Outcome};
use crate::datasets::manifest::Manifest;
use crate::datasets::{self, DataSet, ResolveError};

#[derive(clap::Subcommand, Debug)]
pub enum Data {
    /// Download a data set's four IDX files into its cache folder (resuming an interrupted
    /// download, checking each file's SHA-256) and print where it is.
    Fetch(FetchArgs),
    /// The known data sets, and whether and where each one is cached.
    List,
    /// Print the folder of a fetched data set (for scripts); an error if it is not fetched.
    Path(PathArgs),
}

/// A known data set's name on the command line, listed in `--help`.
fn set_name() -> impl TypedValueParser<Value = &'static DataSet> {
    PossibleValuesParser::new(datasets::KNOWN.iter().map(|s| s.name))
        .try_map(|name| datasets::find(&name).ok_or_else(|| format!("unknown data set `{name}`")))
}

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The data set.
    #[arg(value_parser = set_name())]
    pub set: &'static DataSet,
    /// Folder to put the files in, instead of the cache folder ($TINYVAE_DATA/NAME, else
    /// $XDG_CACHE_HOME/tinyvae/datasets/NAME, else ~/.cache/tinyvae/datasets/NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Base URL to download the files from instead of the set's home (a mirror serving the
    /// same file names).
    #[arg(long, env = "TINYVAE_DATA_MIRROR")]
    pub mirror: Option<String>,
    /// Check the files against this list of SHA-256 digests (the output of `sha256sum`)
    /// instead of the official ones: for a mirror that serves other files.
    #[arg(long, value_name = "SHA256SUMS")]
    pub manifest: Option<PathBuf>,
    /// Seconds to wait for a connection, an answer or the next bytes before giving up.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// No progress bars or per-file lines (the folder is still printed).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug)]
pub struct PathArgs {
    /// The data set.
    #[arg(value_parser = set_name())]
    pub set: &'static DataSet,
}

pub fn run(d: Data) -> Result<ExitCode> {
    match d {
        Data::Fetch(a) => fetch(a),
        Data::List => list(),
        Data::Path(a) => {
            println!("{}", datasets::fetched_dir(a.set)?.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn fetch(a: FetchArgs) -> Result<ExitCode> {
    let set = a.set;
    let default_dir = datasets::cache_dir(set);
    let dir = match &a.dir {
        Some(dir) => dir.clone(),
        None => default_dir.as_ref().map_err(|e| anyhow!("{e}"))?.clone(),
    };
    let (manifest, source) = match &a.manifest {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            (Manifest::parse(&text).with_context(|| path.display().to_string())?, path.display().to_string())
        }
        None => (set.manifest(), "the official digests".to_string()),
    };
    // Every digest is looked up before the first byte is downloaded.
    let files = set
        .files
        .iter()
        .map(|f| manifest.get(f.name).map(|d| (f, d)).ok_or_else(|| anyhow!("{source} has no SHA-256 for {}", f.name)))
        .collect::<Result<Vec<_>>>()?;
    let base = a.mirror.as_deref().filter(|m| !m.is_empty()).unwrap_or(set.base_url);
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        bail!("the mirror `{base}` is not an http:// or https:// URL");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let fetcher = Fetcher::new(Duration::from_secs(a.timeout), !a.quiet);
    for (file, digest) in files {
        let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
        // The published sizes only describe the published files, not a mirror's own.
        let size_hint = a.manifest.is_none().then_some(file.size);
        let outcome = fetcher
            .fetch(&url, &dir.join(file.name), digest, size_hint)
            .with_context(|| format!("downloading {url}"))?;
        if !a.quiet {
            match outcome {
                Outcome::Present => eprintln!("  {:<28} already there, SHA-256 ok", file.name),
                Outcome::Downloaded { bytes, resumed_from: 0 } => {
                    eprintln!("  {:<28} {bytes:>10} bytes, SHA-256 ok", file.name)
                }
                Outcome::Downloaded { bytes, resumed_from } => {
                    eprintln!("  {:<28} {bytes:>10} bytes, SHA-256 ok (resumed at byte {resumed_from})", file.name)
                }
            }
        }
    }
    println!("{} is in {}", set.name, dir.display());
    if default_dir.is_ok_and(|d| d == dir) {
        println!("use it with --data {}", set.name);
    } else {
        println!("use it with --data {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn list() -> Result<ExitCode> {
    for set in datasets::KNOWN {
        let status = match datasets::fetched_dir(set) {
            Ok(dir) => format!("fetched, in {}", dir.display()),
            Err(ResolveError::NotFetched { dir, .. }) => format!(
                "not fetched: `tinyvae data fetch {}` downloads {:.1} MB into {}",
                set.name,
                set.download_size() as f64 / 1e6,
                dir.display()
            ),
            Err(e) => e.to_string(),
        };
        println!("{:<14} {}", set.name, set.title);
        println!("{:<14} {status}", "");
    }
    Ok(ExitCode::SUCCESS)
}
