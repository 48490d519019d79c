//! One sampled digit on one panel: the image upscaled by a whole factor, with a caption naming
//! the sample and the seed that reproduces it.

use core::fmt::Write as _;
use core::marker::PhantomData;

use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};

use crate::shade::{Monochrome, Shade};

/// Small enough for a 128x64 panel beside a 56-pixel digit, and legible on a 240x240 one.
const FONT: &MonoFont<'static> = &FONT_6X10;
/// Pixels between the caption's lines.
const LINE_GAP: u32 = 2;
/// Pixels kept clear between the digit, the caption and the panel's edges.
const MARGIN: u32 = 4;
/// Caption lines: the sample's index and the seed, and the class a classifier read when there
/// is one.
const LINES: u32 = 2;
/// Longest caption line: "seed " and the 20 digits of `u64::MAX`.
const LINE_BYTES: usize = 25;

/// What the caption says: sample `index` of the stream that [`seed`](Self::seed) starts, which
/// is what reproduces the digit on the host (`tinyvae sample --seed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caption {
    /// Position of the sample in the stream, from 0.
    pub index: u32,
    /// Seed of the runtime's PRNG.
    pub seed: u64,
    /// The class a classifier gave the digit (a third line, "is a 7"), if one was asked.
    pub class: Option<u32>,
}

impl Caption {
    /// Sample `index` of seed `seed`.
    pub const fn new(index: u32, seed: u64) -> Self {
        Caption { index, seed, class: None }
    }

    /// The same, with the class a classifier gave the digit.
    pub const fn with_class(self, class: u32) -> Self {
        Caption { class: Some(class), ..self }
    }

    /// Lines of text: 2, or 3 with a class.
    const fn lines(&self) -> u32 {
        LINES + self.class.is_some() as u32
    }
}

/// Where [`DigitPanel`] puts things on a target of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The upscaled digit.
    pub digit: Rectangle,
    /// Panel pixels per image pixel.
    pub scale: u32,
    /// Anchor of the caption's first line (its top; left edge when the caption is beside the
    /// digit, centre when it is below).
    pub caption: Point,
    /// True when the caption is beside the digit (landscape panels), false when below.
    pub caption_beside: bool,
}

/// A decoded image drawn upscaled with its caption, filling the whole target.
///
/// On a landscape target (wider than tall, such as a 128x64 SSD1306) the digit takes the full
/// height and the caption goes to its right. Otherwise the caption goes below. The scale is the
/// largest whole factor that fits unless [`scale`](Self::scale) fixes it. Pixels missing from a
/// short `pixels` slice draw black: drawing never panics.
///
/// ```
/// use embedded_graphics::{pixelcolor::{BinaryColor, Rgb565}, prelude::*};
/// use tinyvae_display::{Caption, DigitPanel, Framebuffer, Monochrome, MonoFramebuffer};
///
/// let mut digit = [0u8; 784];
/// digit[14 * 28 + 14] = 255;
///
/// // A 160x128 RGB565 panel (ST7735): 4x digit, caption beside it.
/// let mut tft = Framebuffer::<Rgb565, 160, 128>::filled(Rgb565::BLACK);
/// let panel = DigitPanel::new(&digit, 28, 28, Caption::new(0, 1));
/// panel.draw(&mut tft)?;
/// assert_eq!(panel.layout(tft.size()).scale, 4);
///
/// // A 128x64 SSD1306, thresholded instead of dithered: 2x.
/// let mut oled = MonoFramebuffer::<128, 8>::new();
/// DigitPanel::new(&digit, 28, 28, Caption::new(0, 1))
///     .monochrome(Monochrome::Threshold(128))
///     .draw(&mut oled)?;
/// let layout = DigitPanel::<BinaryColor>::new(&digit, 28, 28, Caption::new(0, 1)).layout(oled.size());
/// let lit = layout.digit.top_left + Point::new(28, 28); // image pixel (14, 14) at 2x
/// assert_eq!(oled.pixel(lit), Some(BinaryColor::On));
/// # Ok::<(), core::convert::Infallible>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DigitPanel<'a, C> {
    pixels: &'a [u8],
    width: u32,
    height: u32,
    caption: Caption,
    mono: Monochrome,
    scale: Option<u32>,
    color: PhantomData<C>,
}

impl<'a, C: Shade> DigitPanel<'a, C> {
    /// A `width` x `height` image of 0..=255 pixels, row-major (a decoder's output).
    pub fn new(pixels: &'a [u8], width: u32, height: u32, caption: Caption) -> Self {
        DigitPanel { pixels, width, height, caption, mono: Monochrome::default(), scale: None, color: PhantomData }
    }

    /// How a monochrome target shows grey levels (ignored by other colours).
    pub fn monochrome(mut self, mono: Monochrome) -> Self {
        self.mono = mono;
        self
    }

    /// Fixes the upscaling factor instead of the largest that fits (at least 1).
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = Some(scale.max(1));
        self
    }

    /// The layout on a target of size `area`.
    pub fn layout(&self, area: Size) -> Layout {
        let (iw, ih) = (self.width.max(1), self.height.max(1));
        let line = FONT.character_size.height + LINE_GAP;
        let text_h = self.caption.lines() * line - LINE_GAP;
        let beside = area.width > area.height;
        let fit = if beside {
            (area.height.saturating_sub(2 * MARGIN) / ih).min(area.width.saturating_sub(2 * MARGIN) / iw)
        } else {
            (area.width.saturating_sub(2 * MARGIN) / iw).min(area.height.saturating_sub(3 * MARGIN + text_h) / ih)
        };
        let scale = self.scale.unwrap_or(fit.max(1));
        let digit = Size::new(iw * scale, ih * scale);
        if beside {
            let top = area.height.saturating_sub(digit.height) / 2;
            let left = top.min(MARGIN);
            let caption_y = area.height.saturating_sub(text_h) / 2;
            Layout {
                digit: Rectangle::new(Point::new(left as i32, top as i32), digit),
                scale,
                caption: Point::new((left + digit.width + MARGIN) as i32, caption_y as i32),
                caption_beside: true,
            }
        } else {
            let block = digit.height + MARGIN + text_h;
            let top = area.height.saturating_sub(block) / 2;
            let left = area.width.saturating_sub(digit.width) / 2;
            Layout {
                digit: Rectangle::new(Point::new(left as i32, top as i32), digit),
                scale,
                caption: Point::new((area.width / 2) as i32, (top + digit.height + MARGIN) as i32),
                caption_beside: false,
            }
        }
    }

    fn level(&self, x: u32, y: u32) -> u8 {
        let i = y as usize * self.width as usize + x as usize;
        self.pixels.get(i).copied().unwrap_or(0)
    }
}

impl<C: Shade> Drawable for DigitPanel<'_, C> {
    type Color = C;
    type Output = ();

    fn draw<D>(&self, target: &mut D) -> Result<(), D::Error>
    where
        D: DrawTarget<Color = C>,
    {
        let area = target.bounding_box();
        let layout = self.layout(area.size);
        let origin = area.top_left;
        target.fill_solid(&area, C::shade(0, origin, self.mono))?;

        let digit = layout.digit.translate(origin);
        let (scale, mono) = (layout.scale, self.mono);
        let (dw, dh) = (digit.size.width, digit.size.height);
        // Row-major over the digit's rectangle, as `fill_contiguous` wants: a panel driver
        // streams it in one window write.
        let colors = (0..dh).flat_map(move |y| {
            (0..dw).map(move |x| {
                let at = digit.top_left + Point::new(x as i32, y as i32);
                C::shade(self.level(x / scale, y / scale), at, mono)
            })
        });
        target.fill_contiguous(&digit, colors)?;

        let ink = MonoTextStyle::new(FONT, C::shade(255, origin, self.mono));
        let align = if layout.caption_beside { Alignment::Left } else { Alignment::Center };
        let style = TextStyleBuilder::new().alignment(align).baseline(Baseline::Top).build();
        let line_h = (FONT.character_size.height + LINE_GAP) as i32;
        let mut at = origin + layout.caption;
        let class = self.caption.class.map(|c| Line::format(format_args!("is a {c}")));
        for line in [
            Some(Line::format(format_args!("#{}", self.caption.index))),
            Some(Line::format(format_args!("seed {}", self.caption.seed))),
            class,
        ]
        .into_iter()
        .flatten()
        {
            Text::with_text_style(line.as_str(), at, ink, style).draw(target)?;
            at.y += line_h;
        }
        Ok(())
    }
}

/// One caption line, formatted without allocating; longer text is cut.
struct Line {
    bytes: [u8; LINE_BYTES],
    len: usize,
}

impl Line {
    fn format(args: core::fmt::Arguments<'_>) -> Self {
        let mut line = Line { bytes: [0; LINE_BYTES], len: 0 };
        // Writing into a fixed buffer cannot fail; a cut line is still worth showing.
        let _ = line.write_fmt(args);
        line
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in (see `write_str`), so this never fails.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = LINE_BYTES - self.len;
        // Cut on a character boundary so the buffer stays valid UTF-8.
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use embedded_graphics::pixelcolor::{BinaryColor, Gray8, Rgb565};

    use super::*;
    use crate::{Framebuffer, MonoFramebuffer};

    fn digit() -> [u8; 784] {
        let mut d = [0u8; 784];
        for (i, v) in d.iter_mut().enumerate() {
            *v = ((i * 37) % 256) as u8;
        }
        d
    }

    #[test]
    fn layouts_fit_common_panels() {
        let d = digit();
        let p = DigitPanel::<BinaryColor>::new(&d, 28, 28, Caption::new(7, 1));
        for (size, scale, beside) in [
            ((128, 64), 2, true),
            ((160, 128), 4, true),
            ((240, 240), 7, false),
            ((128, 160), 4, false),
            ((128, 128), 3, false),
        ] {
            let area = Rectangle::new(Point::zero(), Size::new(size.0, size.1));
            let l = p.layout(area.size);
            assert_eq!((l.scale, l.caption_beside), (scale, beside), "{size:?}");
            assert!(area.contains(l.digit.top_left) && area.contains(l.digit.bottom_right().unwrap()), "{size:?}");
            assert!(area.contains(l.caption), "{size:?}");
        }
    }

    #[test]
    fn digit_pixels_are_upscaled_exactly() {
        let d = digit();
        let mut fb = Framebuffer::<Gray8, 160, 128>::filled(Gray8::WHITE);
        let p = DigitPanel::new(&d, 28, 28, Caption::new(0, 0));
        p.draw(&mut fb).unwrap();
        let l = p.layout(fb.size());
        for y in 0..28 * l.scale {
            for x in 0..28 * l.scale {
                let at = l.digit.top_left + Point::new(x as i32, y as i32);
                assert_eq!(fb.pixel(at), Some(Gray8::new(d[(y / l.scale * 28 + x / l.scale) as usize])));
            }
        }
        // Background cleared, caption drawn in white beside the digit.
        assert_eq!(fb.pixel(Point::new(0, 0)), Some(Gray8::BLACK));
        let caption = Rectangle::new(l.caption, Size::new(40, 22));
        assert!(caption.points().any(|q| fb.pixel(q) == Some(Gray8::WHITE)));
    }

    #[test]
    fn same_digit_same_frame_and_short_input_is_safe() {
        let d = digit();
        let draw = |px: &[u8]| {
            let mut fb = MonoFramebuffer::<128, 8>::new();
            DigitPanel::new(px, 28, 28, Caption::new(3, u64::MAX)).draw(&mut fb).unwrap();
            fb
        };
        assert_eq!(draw(&d), draw(&d));
        let short = draw(&d[..100]);
        assert_ne!(short, draw(&d));
        // A panel drawn into part of a bigger target stays inside that part.
        let mut rgb = Framebuffer::<Rgb565, 200, 100>::filled(Rgb565::RED);
        let part = Rectangle::new(Point::new(50, 20), Size::new(128, 64));
        DigitPanel::new(&d, 28, 28, Caption::new(1, 2)).draw(&mut rgb.cropped(&part)).unwrap();
        assert_eq!(rgb.pixel(Point::new(49, 20)), Some(Rgb565::RED));
        assert_eq!(rgb.pixel(Point::new(50, 20)), Some(Rgb565::BLACK));
        assert_eq!(rgb.pixel(Point::new(178, 84)), Some(Rgb565::RED));
    }

    #[test]
    fn a_class_adds_a_third_line_and_fits_the_small_panel() {
        let d = digit();
        let plain = Caption::new(3, 9);
        let draw = |caption: Caption| {
            let mut fb = MonoFramebuffer::<128, 8>::new();
            let p = DigitPanel::new(&d, 28, 28, caption);
            p.draw(&mut fb).unwrap();
            (fb, p.layout(Size::new(128, 64)))
        };
        let ((without, l2), (with, l3)) = (draw(plain), draw(plain.with_class(7)));
        assert_ne!(without, with);
        // Same digit and scale; the three lines are centred a line-height higher.
        assert_eq!((l2.digit, l2.scale), (l3.digit, l3.scale));
        assert_eq!(l2.caption.y - l3.caption.y, ((FONT.character_size.height + LINE_GAP) / 2) as i32);
        let line = (FONT.character_size.height + LINE_GAP) as i32;
        assert!(l3.caption.y >= 0 && l3.caption.y + 3 * line - LINE_GAP as i32 <= 64);
        // The third line has ink, below the second.
        let third = Rectangle::new(l3.caption + Point::new(0, 2 * line), Size::new(40, FONT.character_size.height));
        assert!(third.points().any(|q| with.pixel(q) == Some(BinaryColor::On)));
        assert_eq!(plain.with_class(7).class, Some(7));
    }

    #[test]
    fn long_lines_are_cut_not_panicking() {
        let l = Line::format(format_args!("seed {} and more text past the end", u64::MAX));
        assert_eq!(l.as_str(), "seed 18446744073709551615");
        let l = Line::format(format_args!("{}", "ééééééééééééééééééééé"));
        assert!(l.as_str().len() <= LINE_BYTES && l.as_str().chars().all(|c| c == 'é'));
    }
}
