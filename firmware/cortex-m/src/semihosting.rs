//! The host's console and files through Arm semihosting: what the QEMU build reports on and
//! writes its dumps with. Under `-semihosting-config target=native` QEMU opens the files in
//! its own working directory.

use core::ffi::CStr;
use core::fmt;

use cortex_m_semihosting::{hio, nr};

/// A file on the host, opened for writing (created or truncated) or reading. Closed when
/// dropped.
pub struct HostFile {
    handle: usize,
    name: &'static CStr,
}

/// A failed semihosting call, naming the file.
#[derive(Debug, Clone, Copy)]
pub struct HostError {
    pub action: &'static str,
    pub name: &'static CStr,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {} on the host (is semihosting enabled?)", self.action, self.name.to_str().unwrap_or("?"))
    }
}

impl HostFile {
    /// Creates (or truncates) `name` in binary mode.
    pub fn create(name: &'static CStr) -> Result<Self, HostError> {
        Self::open_as(name, nr::open::W_TRUNC_BINARY, "create")
    }

    /// Opens `name` for reading in binary mode.
    #[allow(dead_code)] // only the anomaly-detection run reads
    pub fn open(name: &'static CStr) -> Result<Self, HostError> {
        Self::open_as(name, nr::open::R_BINARY, "open")
    }

    fn open_as(name: &'static CStr, mode: usize, action: &'static str) -> Result<Self, HostError> {
        let len = name.to_bytes().len();
        // SAFETY: SYS_OPEN reads `len` bytes of the NUL-terminated name and nothing else.
        let handle = unsafe { cortex_m_semihosting::syscall(nr::OPEN, &[name.as_ptr() as usize, mode, len]) };
        if handle as isize == -1 {
            return Err(HostError { action, name });
        }
        Ok(HostFile { handle, name })
    }

    /// Fills `bytes` from the file: `Ok(true)` when it did, `Ok(false)` at the end of the file
    /// (nothing left), an error on a partial record or a failed read.
    #[allow(dead_code)] // only the anomaly-detection run reads
    pub fn read_exact(&mut self, bytes: &mut [u8]) -> Result<bool, HostError> {
        // SAFETY: SYS_READ writes at most `bytes.len()` bytes into `bytes`; it returns how many
        // it did not read.
        let left = unsafe {
            cortex_m_semihosting::syscall(nr::READ, &[self.handle, bytes.as_mut_ptr() as usize, bytes.len()])
        };
        match left {
            0 => Ok(true),
            n if n == bytes.len() => Ok(false),
            _ => Err(HostError { action: "read a whole record of", name: self.name }),
        }
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), HostError> {
        while !bytes.is_empty() {
            // SAFETY: SYS_WRITE reads `bytes.len()` bytes of `bytes`; it returns how many it did
            // not write.
            let left = unsafe {
                cortex_m_semihosting::syscall(nr::WRITE, &[self.handle, bytes.as_ptr() as usize, bytes.len()])
            };
            if left >= bytes.len() {
                return Err(HostError { action: "write", name: self.name });
            }
            bytes = &bytes[bytes.len() - left..];
        }
        Ok(())
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        // SAFETY: closes the handle this value owns; nothing uses it afterwards.
        unsafe { cortex_m_semihosting::syscall(nr::CLOSE, &[self.handle]) };
    }
}

/// The host's standard output. Printing is best effort: a report that cannot be printed has
/// nowhere better to go, and the exit status still tells the outcome.
pub struct Console {
    stdout: Option<hio::HostStream>,
}

impl Console {
    pub fn open() -> Self {
        Console { stdout: hio::hstdout().ok() }
    }
}

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(out) = &mut self.stdout {
            let _ = out.write_all(s.as_bytes());
        }
        Ok(())
    }
}
