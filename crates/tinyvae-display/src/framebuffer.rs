//! In-RAM framebuffers whose size is fixed at compile time, so firmware can put one in a
//! `static` and count its bytes before flashing.

use core::convert::Infallible;

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;

/// A `W` x `H` image of colour `C`, row-major, one `C` per pixel.
///
/// Drawing outside the image is clipped, as on a panel.
///
/// ```
/// use embedded_graphics::{pixelcolor::Gray8, prelude::*, primitives::{PrimitiveStyle, Rectangle}};
/// use tinyvae_display::Framebuffer;
///
/// let mut fb = Framebuffer::<Gray8, 16, 8>::filled(Gray8::BLACK);
/// Rectangle::new(Point::new(14, 6), Size::new(10, 10))
///     .into_styled(PrimitiveStyle::with_fill(Gray8::WHITE))
///     .draw(&mut fb)?;
/// assert_eq!(fb.pixel(Point::new(15, 7)), Some(Gray8::WHITE));
/// assert_eq!(fb.pixel(Point::new(13, 7)), Some(Gray8::BLACK));
/// assert_eq!(fb.pixel(Point::new(16, 7)), None); // outside
/// # Ok::<(), core::convert::Infallible>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer<C, const W: usize, const H: usize> {
    rows: [[C; W]; H],
}

impl<C: PixelColor, const W: usize, const H: usize> Framebuffer<C, W, H> {
    /// An image of one colour; `const` so that it can initialise a `static`.
    pub const fn filled(color: C) -> Self {
        Framebuffer { rows: [[color; W]; H] }
    }

    /// The colour at `p`, or `None` outside the image.
    pub fn pixel(&self, p: Point) -> Option<C> {
        let (x, y) = index(p, W, H)?;
        Some(self.rows[y][x])
    }

    /// The pixels, row by row.
    pub fn rows(&self) -> &[[C; W]; H] {
        &self.rows
    }
}

impl<C: PixelColor + Default, const W: usize, const H: usize> Default for Framebuffer<C, W, H> {
    fn default() -> Self {
        Self::filled(C::default())
    }
}

impl<C: PixelColor, const W: usize, const H: usize> OriginDimensions for Framebuffer<C, W, H> {
    fn size(&self) -> Size {
        Size::new(W as u32, H as u32)
    }
}

impl<C: PixelColor, const W: usize, const H: usize> DrawTarget for Framebuffer<C, W, H> {
    type Color = C;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<C>>,
    {
        for Pixel(p, c) in pixels {
            if let Some((x, y)) = index(p, W, H) {
                self.rows[y][x] = c;
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: C) -> Result<(), Self::Error> {
        if let Some((xs, ys)) = clip(area, W, H) {
            for row in &mut self.rows[ys] {
                row[xs.clone()].fill(color);
            }
        }
        Ok(())
    }
}

/// A `W` x `8 * PAGES` monochrome image, one bit per pixel, in the SSD1306's page layout:
/// byte `PAGE * W + x` holds column `x` of rows `8 * PAGE` to `8 * PAGE + 7`, top row in the
/// least significant bit. So [`as_bytes`](Self::as_bytes) is exactly what the panel's display
/// RAM holds, and a 128x64 frame is 1 KiB.
///
/// ```
/// use embedded_graphics::{pixelcolor::BinaryColor, prelude::*};
/// use tinyvae_display::MonoFramebuffer;
///
/// let mut fb = MonoFramebuffer::<128, 8>::new();
/// Pixel(Point::new(5, 9), BinaryColor::On).draw(&mut fb)?;
/// assert_eq!(fb.as_bytes()[128 + 5], 0b10); // page 1, column 5, second row of the page
/// assert_eq!(fb.pixel(Point::new(5, 9)), Some(BinaryColor::On));
/// assert_eq!(fb.size(), Size::new(128, 64));
/// # Ok::<(), core::convert::Infallible>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonoFramebuffer<const W: usize, const PAGES: usize> {
    pages: [[u8; W]; PAGES],
}

impl<const W: usize, const PAGES: usize> MonoFramebuffer<W, PAGES> {
    /// A blank (all off) image; `const` so that it can initialise a `static`.
    pub const fn new() -> Self {
        MonoFramebuffer { pages: [[0; W]; PAGES] }
    }

    /// The pixel at `p`, or `None` outside the image.
    pub fn pixel(&self, p: Point) -> Option<BinaryColor> {
        let (x, y) = index(p, W, 8 * PAGES)?;
        Some(BinaryColor::from(self.pages[y / 8][x] & (1 << (y % 8)) != 0))
    }

    /// The image in display-RAM order: `PAGES` pages of `W` column bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.pages.as_flattened()
    }

    fn set(&mut self, x: usize, y: usize, color: BinaryColor) {
        let byte = &mut self.pages[y / 8][x];
        let bit = 1 << (y % 8);
        if color.is_on() {
            *byte |= bit;
        } else {
            *byte &= !bit;
        }
    }
}

impl<const W: usize, const PAGES: usize> Default for MonoFramebuffer<W, PAGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const W: usize, const PAGES: usize> OriginDimensions for MonoFramebuffer<W, PAGES> {
    fn size(&self) -> Size {
        Size::new(W as u32, 8 * PAGES as u32)
    }
}

impl<const W: usize, const PAGES: usize> DrawTarget for MonoFramebuffer<W, PAGES> {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<BinaryColor>>,
    {
        for Pixel(p, c) in pixels {
            if let Some((x, y)) = index(p, W, 8 * PAGES) {
                self.set(x, y, c);
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: BinaryColor) -> Result<(), Self::Error> {
        // A page byte at a time: clearing a 128x64 panel this way is 1 KiB of byte writes
        // instead of 8192 single-bit ones.
        if let Some((xs, ys)) = clip(area, W, 8 * PAGES) {
            for page in ys.start / 8..ys.end.div_ceil(8) {
                let first = ys.start.max(8 * page) - 8 * page;
                let end = ys.end.min(8 * page + 8) - 8 * page;
                let mask = ((1u16 << end) - (1u16 << first)) as u8;
                for byte in &mut self.pages[page][xs.clone()] {
                    if color.is_on() {
                        *byte |= mask;
                    } else {
                        *byte &= !mask;
                    }
                }
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: BinaryColor) -> Result<(), Self::Error> {
        let fill = if color.is_on() { 0xFF } else { 0x00 };
        for page in &mut self.pages {
            page.fill(fill);
        }
        Ok(())
    }
}

/// `(x, y)` of `p` as indices, or `None` outside a `w` x `h` image.
fn index(p: Point, w: usize, h: usize) -> Option<(usize, usize)> {
    let x = usize::try_from(p.x).ok().filter(|&x| x < w)?;
    let y = usize::try_from(p.y).ok().filter(|&y| y < h)?;
    Some((x, y))
}

/// The column and row ranges of `area` inside a `w` x `h` image, or `None` when it misses it.
fn clip(area: &Rectangle, w: usize, h: usize) -> Option<(core::ops::Range<usize>, core::ops::Range<usize>)> {
    let inside = area.intersection(&Rectangle::new(Point::zero(), Size::new(w as u32, h as u32)));
    let br = inside.bottom_right()?;
    let (x0, y0) = (inside.top_left.x as usize, inside.top_left.y as usize);
    Some((x0..br.x as usize + 1, y0..br.y as usize + 1))
}

#[cfg(test)]
mod tests {
    use embedded_graphics::pixelcolor::Gray8;
    use embedded_graphics::primitives::PrimitiveStyle;

    use super::*;

    #[test]
    fn fill_solid_is_clipped_like_draw_iter() {
        let mut fast = Framebuffer::<Gray8, 7, 5>::filled(Gray8::BLACK);
        let mut slow = fast.clone();
        for (x, y, w, h) in [(-3, -2, 5, 4), (5, 3, 9, 9), (2, 1, 3, 2), (7, 0, 2, 2), (-9, -9, 3, 3)] {
            let r = Rectangle::new(Point::new(x, y), Size::new(w, h));
            fast.fill_solid(&r, Gray8::WHITE).unwrap();
            slow.draw_iter(r.points().map(|p| Pixel(p, Gray8::WHITE))).unwrap();
        }
        assert_eq!(fast, slow);
        assert_eq!(fast.pixel(Point::new(0, 0)), Some(Gray8::WHITE));
        assert_eq!(fast.pixel(Point::new(6, 0)), Some(Gray8::BLACK));
    }

    #[test]
    fn mono_fill_solid_matches_pixel_by_pixel() {
        let mut fast = MonoFramebuffer::<9, 3>::new();
        let mut slow = fast.clone();
        for (i, (x, y, w, h)) in
            [(-3, -2, 5, 4), (5, 3, 9, 30), (2, 1, 3, 2), (0, 7, 9, 2), (1, 8, 3, 8), (-9, -9, 3, 3)]
                .into_iter()
                .enumerate()
        {
            let color = BinaryColor::from(i % 3 != 2);
            let r = Rectangle::new(Point::new(x, y), Size::new(w, h));
            fast.fill_solid(&r, color).unwrap();
            slow.draw_iter(r.points().map(|p| Pixel(p, color))).unwrap();
            assert_eq!(fast, slow, "after rectangle {i}");
        }
    }

    #[test]
    fn mono_bits_follow_the_page_layout() {
        let mut fb = MonoFramebuffer::<4, 2>::new();
        Rectangle::new(Point::new(1, 6), Size::new(2, 4))
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
            .draw(&mut fb)
            .unwrap();
        // Rows 6..10 of columns 1 and 2: bits 6, 7 of page 0 and bits 0, 1 of page 1.
        assert_eq!(fb.as_bytes(), &[0, 0xC0, 0xC0, 0, 0, 0x03, 0x03, 0]);
        Pixel(Point::new(1, 7), BinaryColor::Off).draw(&mut fb).unwrap();
        assert_eq!(fb.as_bytes()[1], 0x40);
        fb.clear(BinaryColor::On).unwrap();
        assert!(fb.as_bytes().iter().all(|&b| b == 0xFF));
        assert_eq!(fb.pixel(Point::new(4, 0)), None);
    }
}
