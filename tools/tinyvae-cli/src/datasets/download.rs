//! Downloading one data set file so that an interrupted run costs nothing and a bad file is
//! never used: bytes go to `NAME.part` beside the target; a later run resumes from the part's
//! size with an HTTP `Range` request (a server that ignores it sends the whole file, and the
//! part starts over); the part gets its final name only after its SHA-256 matched, and is
//! deleted when it did not. Every network wait has a timeout, so a server that does not
//! answer is an error, never a hang.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use ureq::http::Response;
use ureq::Body;

use super::manifest::Sha256Digest;

/// No file of a 28x28 data set comes near this; it stops a misbehaving server (or a wrong
/// mirror URL serving something else) from filling the disk before the checksum fails.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Why a file could not be fetched. The caller names the URL (or file) once, as context.
#[derive(Debug, Error)]
pub enum FetchError {
    /// The request did not get an answer (no connection, DNS, TLS, timeout, bad URL).
    #[error("no answer")]
    Request(#[source] ureq::Error),
    /// The server answered with a status other than 200 or 206.
    #[error("the server answered HTTP {0}")]
    Status(u16),
    /// The transfer stopped part way; what arrived is kept in the `.part` file.
    #[error("the transfer broke after {received} bytes (run the command again to resume)")]
    Interrupted {
        /// Bytes of the file on disk so far.
        received: u64,
        /// The read error.
        #[source]
        source: io::Error,
    },
    /// The server sent more than [`MAX_FILE_BYTES`].
    #[error(
        "the server sent more than {MAX_FILE_BYTES} bytes, more than any data set file (the download was deleted)"
    )]
    TooLarge,
    /// The server answered a resume with another part of the file, twice.
    #[error("the server answered a resume with bytes from the wrong offset")]
    BadRange,
    /// Reading or writing a local file failed.
    #[error("{}", path.display())]
    Io {
        /// The local file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The downloaded bytes are not the expected ones.
    #[error("SHA-256 mismatch: expected {expected}, got {actual} (the download was deleted)")]
    Checksum {
        /// The digest from the manifest.
        expected: Sha256Digest,
        /// The digest of what arrived.
        actual: Sha256Digest,
    },
}

/// What [`Fetcher::fetch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target already existed with the expected digest; nothing was downloaded.
    Present,
    /// The file was downloaded (`resumed_from` bytes of it were already in the `.part` file).
    Downloaded {
        /// Size of the file.
        bytes: u64,
        /// Bytes reused from an earlier, interrupted run.
        resumed_from: u64,
    },
}

/// An HTTP client set up for data set downloads.
pub struct Fetcher {
    agent: ureq::Agent,
    progress: bool,
}

impl Fetcher {
    /// A client whose every wait (name lookup, connection, each answer, each read) gives up
    /// after `timeout`; `progress` shows a bar per file on stderr.
    pub fn new(timeout: Duration, progress: bool) -> Fetcher {
        let config = ureq::Agent::config_builder()
            .timeout_resolve(Some(timeout))
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_recv_response(Some(timeout))
            // Per read, not for the whole body: a slow but moving download must not fail.
            .timeout_per_read(Some(timeout))
            // 206 and 416 are answers this code handles, not errors.
            .http_status_as_error(false)
            .user_agent(concat!("tinyvae/", env!("CARGO_PKG_VERSION")))
            .build();
        Fetcher { agent: config.into(), progress }
    }

    /// Makes `dest` a copy of `url` whose SHA-256 is `expected`. `size_hint` sizes the progress
    /// bar when the server sends no length.
    pub fn fetch(
        &self,
        url: &str,
        dest: &Path,
        expected: Sha256Digest,
        size_hint: Option<u64>,
    ) -> Result<Outcome, FetchError> {
        // A file that no longer matches (another manifest, a damaged disk) is downloaded again;
        // it is only replaced once the new copy has passed the check.
        if dest.is_file() && digest(dest)? == expected {
            return Ok(Outcome::Present);
        }
        let part = part_path(dest);
        let mut from = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        // At most two requests: a resume the server cannot serve starts over once.
        let mut restarted = false;
        let resumed_from = loop {
            let response = self.get(url, from)?;
            match response.status().as_u16() {
                200 => {
                    // The whole file: a first request, or a server that ignores Range.
                    self.receive(response, &part, 0, size_hint, dest)?;
                    break 0;
                }
                206 => match content_range(&response) {
                    Some((start, total)) if start == from => {
                        self.receive(response, &part, from, total.or(size_hint), dest)?;
                        break from;
                    }
                    _ if restarted => return Err(FetchError::BadRange),
                    _ => {}
                },
                // The part is as long as the file: a run stopped between its last byte and the
                // rename. If it checks out it is used as it is.
                416 if from > 0 && digest(&part)? == expected => break from,
                416 if from > 0 && !restarted => {}
                status => return Err(FetchError::Status(status)),
            }
            remove(&part)?;
            from = 0;
            restarted = true;
        };
        let bytes = finish(&part, dest, expected)?;
        Ok(Outcome::Downloaded { bytes, resumed_from })
    }

    fn get(&self, url: &str, from: u64) -> Result<Response<Body>, FetchError> {
        let mut request = self.agent.get(url);
        if from > 0 {
            request = request.header("Range", format!("bytes={from}-"));
        }
        request.call().map_err(FetchError::Request)
    }

    /// Writes the body to `part`, appending after `from` bytes (or from the start when `from`
    /// is 0), with a progress bar.
    fn receive(
        &self,
        mut response: Response<Body>,
        part: &Path,
        from: u64,
        total: Option<u64>,
        dest: &Path,
    ) -> Result<(), FetchError> {
        let total = total.or_else(|| response.body().content_length().map(|n| n + from)).unwrap_or(0);
        let io_err = |source| FetchError::Io { path: part.to_path_buf(), source };
        let mut file =
            if from > 0 { OpenOptions::new().append(true).open(part) } else { File::create(part) }.map_err(io_err)?;
        let bar = tinyvae_data::progress::bytes(self.progress, total, from);
        bar.set_message(dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let mut reader = response.body_mut().as_reader();
        let mut buf = vec![0u8; 1 << 16];
        let mut done = from;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    // Keep what arrived, durably, for the next run to resume from.
                    let _ = file.sync_all();
                    bar.abandon();
                    return Err(FetchError::Interrupted { received: done, source });
                }
            };
            done += n as u64;
            if done > MAX_FILE_BYTES {
                drop(file);
                bar.abandon();
                remove(part)?;
                return Err(FetchError::TooLarge);
            }
            file.write_all(&buf[..n]).map_err(io_err)?;
            bar.set_position(done);
        }
        file.sync_all().map_err(io_err)?;
        bar.finish_and_clear();
        Ok(())
    }
}

/// `dest` with `.part` appended to its file name.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Checks the part file and gives it its final name; a mismatch deletes it. Returns its size.
fn finish(part: &Path, dest: &Path, expected: Sha256Digest) -> Result<u64, FetchError> {
    let actual = digest(part)?;
    if actual != expected {
        remove(part)?;
        return Err(FetchError::Checksum { expected, actual });
    }
    let bytes = fs::metadata(part).map_err(|source| FetchError::Io { path: part.to_path_buf(), source })?.len();
    fs::rename(part, dest).map_err(|source| FetchError::Io { path: dest.to_path_buf(), source })?;
    // Make the rename itself durable. Best effort: some file systems refuse to sync a
    // directory, and the file's bytes are already on disk either way.
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(bytes)
}

fn digest(path: &Path) -> Result<Sha256Digest, FetchError> {
    Sha256Digest::of_file(path).map_err(|source| FetchError::Io { path: path.to_path_buf(), source })
}

fn remove(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(FetchError::Io { path: path.to_path_buf(), source: e }),
        _ => Ok(()),
    }
}

/// `Content-Range: bytes START-END/TOTAL` as (START, TOTAL); TOTAL may be `*` (unknown).
fn content_range(response: &Response<Body>) -> Option<(u64, Option<u64>)> {
    parse_content_range(response.headers().get("content-range")?.to_str().ok()?)
}

fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_values() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 0-9/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 0-9/10"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn part_files_sit_beside_their_target() {
        assert_eq!(part_path(Path::new("d/a.gz")), PathBuf::from("d/a.gz.part"));
    }
}
