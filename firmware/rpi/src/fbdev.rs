//! The Linux framebuffer (`/dev/fb0` on a Pi with a display attached): its geometry comes from
//! sysfs (`/sys/class/graphics/fbN`), so no ioctl and no `unsafe` are needed, and the picture
//! is written row by row at the top-left corner, clipped to the screen.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use tinyvae_display::embedded_graphics::pixelcolor::RgbColor;

use crate::sheet::Canvas;

/// An open framebuffer device and its pixel layout.
pub struct LinuxFramebuffer {
    device: PathBuf,
    file: File,
    width: u32,
    height: u32,
    /// Bytes per screen line (may exceed `width * bytes per pixel`).
    stride: u64,
    bits_per_pixel: u32,
}

impl LinuxFramebuffer {
    /// Opens `device` (such as `/dev/fb0`) for writing and reads its geometry.
    pub fn open(device: &Path) -> Result<Self, String> {
        let name = device
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a device name", device.display()))?;
        let sysfs = Path::new("/sys/class/graphics").join(name);
        let read = |attr: &str| {
            let path = sysfs.join(attr);
            fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(|e| {
                format!("{}: not a framebuffer device (cannot read {}: {e})", device.display(), path.display())
            })
        };
        let bad = |attr: &str, text: &str| format!("{}: unexpected {attr} `{text}`", sysfs.display());
        let size = read("virtual_size")?;
        let (w, h) = size.split_once(',').ok_or_else(|| bad("virtual_size", &size))?;
        let width = w.parse().map_err(|_| bad("virtual_size", &size))?;
        let height = h.parse().map_err(|_| bad("virtual_size", &size))?;
        let bpp_text = read("bits_per_pixel")?;
        let bits_per_pixel = bpp_text.parse().map_err(|_| bad("bits_per_pixel", &bpp_text))?;
        if bits_per_pixel != 16 && bits_per_pixel != 32 {
            return Err(format!(
                "{}: {bits_per_pixel} bits per pixel is not supported (16 or 32 are)",
                device.display()
            ));
        }
        let stride_text = read("stride")?;
        let stride = stride_text.parse().map_err(|_| bad("stride", &stride_text))?;
        Self::with_geometry(device, width, height, stride, bits_per_pixel)
    }

    /// Opens `device` with a known geometry (what sysfs said, or a test's file).
    fn with_geometry(device: &Path, width: u32, height: u32, stride: u64, bits_per_pixel: u32) -> Result<Self, String> {
        let file = OpenOptions::new()
            .write(true)
            .open(device)
            .map_err(|e| format!("cannot open {}: {e}", device.display()))?;
        Ok(LinuxFramebuffer { device: device.to_path_buf(), file, width, height, stride, bits_per_pixel })
    }

    pub fn describe(&self) -> String {
        format!("{} ({}x{}, {} bpp)", self.device.display(), self.width, self.height, self.bits_per_pixel)
    }

    /// Writes `canvas` at the top-left corner: XRGB8888 at 32 bpp (the Pi's default), RGB565
    /// at 16 bpp, both little-endian.
    pub fn show(&mut self, canvas: &Canvas) -> Result<(), String> {
        let w = canvas.width().min(self.width);
        let h = canvas.height().min(self.height);
        let mut line = Vec::with_capacity(4 * w as usize);
        for y in 0..h {
            line.clear();
            for x in 0..w {
                let c = canvas.at(x, y);
                let (r, g, b) = (c.r() as u32, c.g() as u32, c.b() as u32);
                if self.bits_per_pixel == 32 {
                    line.extend_from_slice(&(b | g << 8 | r << 16).to_le_bytes());
                } else {
                    let rgb565 = ((r >> 3) << 11 | (g >> 2) << 5 | b >> 3) as u16;
                    line.extend_from_slice(&rgb565.to_le_bytes());
                }
            }
            self.file
                .write_all_at(&line, y as u64 * self.stride)
                .map_err(|e| format!("cannot write to {}: {e}", self.device.display()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sheet;

    #[test]
    fn rows_land_at_the_stride_in_the_screen_format() {
        let digit = [255u8; 784];
        let canvas = sheet::compose(&[&digit], &[tinyvae_display::Caption::new(0, 1)], 28, 28, "t");
        for (bpp, bytes) in [(32u32, 4u64), (16, 2)] {
            let path = std::env::temp_dir().join(format!("tinyvae-rpi-fb-test-{}-{bpp}", std::process::id()));
            std::fs::write(&path, []).unwrap();
            // A screen narrower and shorter than the picture, with padding after each line.
            let (w, h, stride) = (50u32, 20u32, 50 * bytes + 24);
            LinuxFramebuffer::with_geometry(&path, w, h, stride, bpp).unwrap().show(&canvas).unwrap();
            let screen = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert_eq!(screen.len() as u64, (h as u64 - 1) * stride + w as u64 * bytes);
            for (x, y) in [(0u32, 0u32), (49, 0), (3, 19), (49, 19)] {
                let c = canvas.at(x, y);
                let at = (y as u64 * stride + x as u64 * bytes) as usize;
                let (r, g, b) = (c.r() as u32, c.g() as u32, c.b() as u32);
                if bpp == 32 {
                    assert_eq!(&screen[at..at + 4], &[b as u8, g as u8, r as u8, 0]);
                } else {
                    let v = u16::from_le_bytes([screen[at], screen[at + 1]]) as u32;
                    assert_eq!((v >> 11, (v >> 5) & 63, v & 31), (r >> 3, g >> 2, b >> 3));
                }
            }
        }
    }
}
