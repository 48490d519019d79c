//! PNG figures: grids of greyscale images (samples, reconstructions, manifolds), written
//! atomically.

use std::path::Path;

/// A grid of `rows x cols` cells, each an `h x w` greyscale image, with `pad` pixels of
/// separation, upscaled by `scale`. Cells beyond the images given stay black.
pub struct Grid<'a> {
    /// Images, `h * w` bytes each, row-major, filled into the grid row by row.
    pub images: &'a [u8],
    /// Image width.
    pub w: usize,
    /// Image height.
    pub h: usize,
    /// Grid columns.
    pub cols: usize,
    /// Separation in (unscaled) pixels.
    pub pad: usize,
    /// Integer upscaling factor.
    pub scale: usize,
}

/// The largest picture a [`Grid`] renders: 8192 x 8192 pixels (64 MiB of greyscale).
pub const MAX_GRID_PIXELS: usize = 1 << 26;

impl Grid<'_> {
    /// `(width, height)` of the rendered picture, or an error (kind `InvalidInput`) when it
    /// would be over [`MAX_GRID_PIXELS`], so that an absurd `--scale` or count is refused
    /// before anything is allocated.
    pub fn size(&self) -> std::io::Result<(usize, usize)> {
        let n = self.images.len() / (self.w * self.h).max(1);
        let rows = n.div_ceil(self.cols.max(1)).max(1);
        let side = |cells: usize, cell: usize| {
            cells.checked_mul(cell + self.pad)?.checked_add(self.pad)?.checked_mul(self.scale)
        };
        let (width, height) = (side(self.cols, self.w), side(rows, self.h));
        match (width, height) {
            (Some(w), Some(h)) if w.checked_mul(h).is_some_and(|p| p <= MAX_GRID_PIXELS) => Ok((w, h)),
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "a grid of {n} images of {}x{} at scale {} is larger than the {MAX_GRID_PIXELS}-pixel limit \
                     (8192 x 8192): lower the scale or the number of images",
                    self.w, self.h, self.scale
                ),
            )),
        }
    }

    /// Renders to a greyscale raster: `(width, height, pixels)`.
    pub fn render(&self) -> std::io::Result<(usize, usize, Vec<u8>)> {
        let (width, height) = self.size()?;
        let n = self.images.len() / (self.w * self.h).max(1);
        let cell_w = self.w + self.pad;
        let cell_h = self.h + self.pad;
        let mut px = vec![40u8; width * height];
        for k in 0..n {
            let (gx, gy) = (k % self.cols, k / self.cols);
            let img = &self.images[k * self.w * self.h..(k + 1) * self.w * self.h];
            for y in 0..self.h * self.scale {
                let oy = (gy * cell_h + self.pad) * self.scale + y;
                for x in 0..self.w * self.scale {
                    let ox = (gx * cell_w + self.pad) * self.scale + x;
                    px[oy * width + ox] = img[(y / self.scale) * self.w + x / self.scale];
                }
            }
        }
        Ok((width, height, px))
    }

    /// Writes the grid as an 8-bit greyscale PNG.
    pub fn write_png(&self, path: &Path) -> std::io::Result<()> {
        let (w, h, px) = self.render()?;
        write_grey_png(path, w, h, &px)
    }
}

/// Encodes an 8-bit greyscale raster as PNG bytes.
pub fn encode_grey_png(width: usize, height: usize, pixels: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width as u32, height as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        writer.write_image_data(pixels).map_err(std::io::Error::other)?;
    }
    Ok(out)
}

/// Writes an 8-bit greyscale raster as a PNG file, atomically.
pub fn write_grey_png(path: &Path, width: usize, height: usize, pixels: &[u8]) -> std::io::Result<()> {
    crate::write_atomic(path, &encode_grey_png(width, height, pixels)?)
}

#[cfg(test)]
mod tests {
    use super::Grid;

    #[test]
    fn grid_places_images_row_by_row() {
        let images: Vec<u8> = (0..3).flat_map(|k| vec![100 + k as u8; 4]).collect();
        let g = Grid { images: &images, w: 2, h: 2, cols: 2, pad: 1, scale: 1 };
        let (w, h, px) = g.render().unwrap();
        assert_eq!((w, h), (7, 7));
        assert_eq!(px[w + 1], 100);
        assert_eq!(px[w + 4], 101);
        assert_eq!(px[4 * w + 1], 102);
        assert_eq!(px[4 * w + 4], 40); // empty cell
        assert_eq!(px[0], 40); // padding
    }

    #[test]
    fn absurd_grids_are_refused_before_anything_is_allocated() {
        let images = vec![0u8; 4 * 784];
        let g = Grid { images: &images, w: 28, h: 28, cols: 2, pad: 1, scale: 100_000 };
        let e = g.size().unwrap_err().to_string();
        assert!(e.contains("scale 100000") && e.contains("limit"), "{e}");
        let g = Grid { images: &images, w: 28, h: 28, cols: 2, pad: 1, scale: usize::MAX / 2 };
        assert!(g.render().is_err());
        let ok = Grid { images: &images, w: 28, h: 28, cols: 2, pad: 1, scale: 100 };
        assert_eq!(ok.size().unwrap(), ((2 * 29 + 1) * 100, (2 * 29 + 1) * 100));
    }
}
