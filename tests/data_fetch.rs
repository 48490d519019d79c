//! `tinyvae data fetch|list|path` and `--data NAME`, through the built binary, against a local
//! HTTP/1.1 server (the build machines have no internet access) that serves the vendored MNIST
//! slice. The slice is not the published MNIST, so most tests pass its digests with
//! `--manifest`; one shows that without it the official digests reject it. Every run points
//! TINYVAE_DATA (or HOME and XDG_CACHE_HOME) at a temporary folder: the user's real cache is
//! never touched.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];
/// The official SHA-256 of MNIST's training images (the first file fetched).
const OFFICIAL_TRAIN_IMAGES: &str = "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609";

fn slice_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/mnist-slice")
}

fn slice(name: &str) -> Vec<u8> {
    std::fs::read(slice_dir().join(name)).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What the test server does besides serving files faithfully.
#[derive(Clone, Copy, Default)]
struct Mode {
    /// Answer every request with the whole file (200), as servers without Range support do.
    ignore_range: bool,
    /// Flip one byte of the training images.
    corrupt: bool,
    /// Send the headers of the whole file but close after this many body bytes.
    cut_after: Option<usize>,
    /// Accept connections and never answer.
    silent: bool,
}

/// One request as the server saw it: the path and the Range header, if any.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    range: Option<String>,
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 serving the slice's files (GET, `Range:
/// bytes=N-`). It handles one connection at a time and stops when dropped, or by itself after
/// two minutes, so a failing test cannot leave it running.
struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            // Connections of the silent mode are held open (never answered) until the end.
            let mut held = Vec::new();
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(s) = handle(stream, mode, &seen2) {
                            held.push(s);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        });
        Server { url, seen, stop, thread: Some(thread) }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one request; returns the stream instead when it is to be held unanswered.
fn handle(stream: TcpStream, mode: Mode, seen: &Mutex<Vec<Seen>>) -> Option<TcpStream> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut range = None;
    // Headers end with an empty line; at most 100 of them.
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    seen.lock().unwrap().push(Seen { path: path.clone(), range: range.clone() });
    if mode.silent {
        return Some(stream);
    }
    let mut stream = stream;
    let name = path.trim_start_matches('/');
    let Some(name) = FILES.iter().find(|f| **f == name) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return None;
    };
    let mut body = slice(name);
    if mode.corrupt && *name == FILES[0] {
        body[100] ^= 0xff;
    }
    let len = body.len();
    let start = range
        .filter(|_| !mode.ignore_range)
        .and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok());
    let (head, part) = match start {
        Some(s) if s >= len => (
            format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"),
            &[][..],
        ),
        Some(s) => (
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{len}\r\nContent-Length: {}\r\n",
                len - 1,
                len - s
            ),
            &body[s..],
        ),
        None => (format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), &body[..]),
    };
    let sent = &part[..mode.cut_after.unwrap_or(part.len()).min(part.len())];
    let _ = stream
        .write_all(format!("{head}Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n").as_bytes());
    let _ = stream.write_all(sent);
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    None
}

/// A temporary cache folder (TINYVAE_DATA) and a manifest of the slice's digests.
struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let sums: String = FILES.iter().map(|f| format!("{}  {f}\n", sha256_hex(&slice(f)))).collect();
        std::fs::write(tmp.path().join("SHA256SUMS"), sums).unwrap();
        std::fs::create_dir(tmp.path().join("cache")).unwrap();
        Setup { tmp }
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn mnist(&self) -> PathBuf {
        self.cache().join("mnist")
    }

    fn manifest(&self) -> String {
        self.tmp.path().join("SHA256SUMS").to_str().unwrap().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        run(args, &[&[("TINYVAE_DATA", self.cache().to_str().unwrap())], env].concat())
    }
}

/// Runs the binary with a clean environment for this feature: no mirror or proxy from the
/// caller's shell, and nothing pointing at the real cache unless `env` sets it.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tinyvae"));
    cmd.args(args);
    for k in ["TINYVAE_DATA", "TINYVAE_DATA_MIRROR", "XDG_CACHE_HOME", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        cmd.env_remove(k).env_remove(k.to_lowercase());
    }
    cmd.env("HOME", "/nonexistent-home-for-tinyvae-tests");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tinyvae")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(out: Output) -> String {
    let t = text(&out);
    assert!(out.status.success(), "tinyvae failed:\n{t}");
    t
}

fn failed(out: Output) -> String {
    let t = text(&out);
    assert!(!out.status.success(), "tinyvae should have failed:\n{t}");
    t
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn assert_fetched(dir: &Path) {
    let mut want: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(entries(dir), want, "exactly the four files, no .part left");
    for f in FILES {
        assert!(std::fs::read(dir.join(f)).unwrap() == slice(f), "{f} differs from the served file");
    }
}

#[test]
fn fetch_list_path_and_data_name_in_a_command() {
    let s = Setup::new();
    let server = Server::start(Mode::default());
    let out = ok(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--manifest", &s.manifest()]));
    assert_fetched(&s.mnist());
    assert!(out.contains(&format!("mnist is in {}", s.mnist().display())), "{out}");
    assert!(out.contains("use it with --data mnist"), "{out}");
    assert_eq!(server.seen().len(), 4);
    assert!(server.seen().iter().all(|r| r.range.is_none()), "{:?}", server.seen());

    // A second fetch checks what is there and downloads nothing.
    let out = ok(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--manifest", &s.manifest()]));
    assert_eq!(out.matches("already there").count(), 4, "{out}");
    assert_eq!(server.seen().len(), 4);

    let out = ok(s.run(&["data", "path", "mnist"]));
    assert_eq!(out.trim(), s.mnist().to_str().unwrap());
    let out = ok(s.run(&["data", "list"]));
    assert!(out.contains(&format!("fetched, in {}", s.mnist().display())), "{out}");
    assert!(out.contains("not fetched: `tinyvae data fetch fashion-mnist`"), "{out}");

    // `--data mnist` in a real command reads the cached copy: the slice's 500 test images.
    let encoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z2/encoder.int8.tvae");
    let png = s.tmp.path().join("latent.png");
    let args = ["figure", "latent", "--encoder", encoder.to_str().unwrap(), "--data", "mnist", "--size", "64"];
    let out = ok(s.run(&[&args[..], &["-o", png.to_str().unwrap()]].concat()));
    assert!(out.contains("codes of 500 test images"), "{out}");
}

#[test]
fn a_partial_download_resumes_with_a_range_request() {
    let s = Setup::new();
    let server = Server::start(Mode::default());
    let whole = slice(FILES[0]);
    let half = whole.len() / 2;
    std::fs::create_dir_all(s.mnist()).unwrap();
    std::fs::write(s.mnist().join(format!("{}.part", FILES[0])), &whole[..half]).unwrap();
    // The mirror from the environment this time.
    let out = ok(
        s.run_with(&["data", "fetch", "mnist", "--manifest", &s.manifest()], &[("TINYVAE_DATA_MIRROR", &server.url)])
    );
    assert_fetched(&s.mnist());
    assert!(out.contains(&format!("resumed at byte {half}")), "{out}");
    let first = server.seen().into_iter().find(|r| r.path == format!("/{}", FILES[0])).unwrap();
    assert_eq!(first.range.as_deref(), Some(format!("bytes={half}-").as_str()));
}

#[test]
fn a_broken_transfer_keeps_its_part_and_the_next_run_resumes() {
    let s = Setup::new();
    let cut = 100_000;
    let broken = Server::start(Mode { cut_after: Some(cut), ..Mode::default() });
    let out = failed(s.run(&["data", "fetch", "mnist", "--mirror", &broken.url, "--manifest", &s.manifest()]));
    assert!(out.contains("broke after") && out.contains(FILES[0]), "{out}");
    let part = s.mnist().join(format!("{}.part", FILES[0]));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64, "what arrived is kept");
    assert!(!s.mnist().join(FILES[0]).exists());

    let server = Server::start(Mode::default());
    let out = ok(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--manifest", &s.manifest()]));
    assert!(out.contains(&format!("resumed at byte {cut}")), "{out}");
    assert_fetched(&s.mnist());
}

#[test]
fn a_server_that_ignores_range_restarts_the_file() {
    let s = Setup::new();
    let server = Server::start(Mode { ignore_range: true, ..Mode::default() });
    std::fs::create_dir_all(s.mnist()).unwrap();
    // Garbage in the part file: only a clean restart (not an append) gives the right bytes.
    std::fs::write(s.mnist().join(format!("{}.part", FILES[0])), vec![0x55u8; 1000]).unwrap();
    ok(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--manifest", &s.manifest(), "--quiet"]));
    assert_fetched(&s.mnist());
    assert_eq!(server.seen()[0].range.as_deref(), Some("bytes=1000-"));
}

#[test]
fn a_corrupted_file_is_a_checksum_error_and_leaves_nothing() {
    let s = Setup::new();
    let server = Server::start(Mode { corrupt: true, ..Mode::default() });
    let out = failed(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--manifest", &s.manifest()]));
    let mut bad = slice(FILES[0]);
    bad[100] ^= 0xff;
    let (expected, actual) = (sha256_hex(&slice(FILES[0])), sha256_hex(&bad));
    assert!(out.contains(FILES[0]) && out.contains("SHA-256 mismatch"), "{out}");
    assert!(out.contains(&format!("expected {expected}, got {actual}")), "{out}");
    assert_eq!(entries(&s.mnist()), Vec::<String>::new(), "no file and no .part left");
}

#[test]
fn the_official_checksums_reject_the_slice() {
    let s = Setup::new();
    let server = Server::start(Mode::default());
    let out = failed(s.run(&["data", "fetch", "mnist", "--mirror", &server.url]));
    let actual = sha256_hex(&slice(FILES[0]));
    assert!(out.contains(&format!("expected {OFFICIAL_TRAIN_IMAGES}, got {actual}")), "{out}");
    assert_eq!(entries(&s.mnist()), Vec::<String>::new());
    // And nothing half-fetched counts as fetched.
    let out = failed(s.run(&["data", "path", "mnist"]));
    assert!(out.contains("run `tinyvae data fetch mnist` first"), "{out}");
}

#[test]
fn a_set_that_is_not_fetched_is_a_clear_error() {
    let s = Setup::new();
    let out = failed(s.run(&["data", "path", "fashion-mnist"]));
    assert!(out.contains("data set `fashion-mnist` is not fetched yet"), "{out}");
    assert!(out.contains("run `tinyvae data fetch fashion-mnist` first"), "{out}");
    let png = s.tmp.path().join("never.png");
    let encoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/mnist-vae-z2/encoder.int8.tvae");
    let args = ["figure", "latent", "--encoder", encoder.to_str().unwrap(), "-o", png.to_str().unwrap()];
    let out = failed(s.run(&[&args[..], &["--data", "mnist"]].concat()));
    assert!(out.contains("run `tinyvae data fetch mnist` first"), "{out}");
    let out = failed(s.run(&[&args[..], &["--data", "no-such-folder"]].concat()));
    assert!(out.contains("neither a folder nor a known data set (mnist, fashion-mnist)"), "{out}");
    assert!(!png.exists());
    let out = failed(s.run(&["data", "fetch", "emnist"]));
    assert!(out.contains("possible values: mnist, fashion-mnist"), "{out}");
}

#[test]
fn the_cache_folder_follows_xdg_and_home() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().to_str().unwrap();
    let out = ok(run(&["data", "list"], &[("XDG_CACHE_HOME", t)]));
    assert!(out.contains(&format!("{t}/tinyvae/datasets/mnist")), "{out}");
    let out = ok(run(&["data", "list"], &[("HOME", t)]));
    assert!(out.contains(&format!("{t}/.cache/tinyvae/datasets/fashion-mnist")), "{out}");
    let out = ok(run(&["data", "list"], &[("HOME", t), ("TINYVAE_DATA", &format!("{t}/sets"))]));
    assert!(out.contains(&format!("{t}/sets/mnist")), "{out}");
}

#[test]
fn a_server_that_does_not_answer_is_an_error_not_a_hang() {
    let s = Setup::new();
    let server = Server::start(Mode { silent: true, ..Mode::default() });
    let started = Instant::now();
    let out = failed(s.run(&["data", "fetch", "mnist", "--mirror", &server.url, "--timeout", "1"]));
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(out.contains(&format!("downloading {}{}", server.url, FILES[0])) && out.contains("timeout"), "{out}");

    // Nothing listening at all.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = failed(s.run(&["data", "fetch", "mnist", "--mirror", &format!("http://127.0.0.1:{port}/")]));
    assert!(out.contains("no answer"), "{out}");
    assert_eq!(entries(&s.mnist()), Vec::<String>::new());
}
