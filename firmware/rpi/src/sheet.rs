//! The picture the program shows: every sampled digit on two simulated panels, a 128x64
//! SSD1306 (monochrome, shown at 2x so its pixels can be seen) and a 160x128 ST7735 (RGB565),
//! both drawn by `tinyvae-display` exactly as the firmware draws them.

use std::convert::Infallible;

use tinyvae_display::embedded_graphics::mono_font::{ascii::FONT_6X10, MonoTextStyle};
use tinyvae_display::embedded_graphics::pixelcolor::{BinaryColor, Rgb565, Rgb888};
use tinyvae_display::embedded_graphics::prelude::*;
use tinyvae_display::embedded_graphics::text::{Baseline, Text};
use tinyvae_display::{Caption, DigitPanel, Framebuffer, MonoFramebuffer};

/// The SSD1306 frame: 128x64, 8 pages, the same type the Cortex-M firmware dumps.
pub type OledFrame = MonoFramebuffer<128, 8>;
/// The ST7735 frame.
type TftFrame = Framebuffer<Rgb565, 160, 128>;

const OLED_ZOOM: u32 = 2;
const BEZEL: u32 = 5;
const GAP: u32 = 12;
const MARGIN: u32 = 16;
const TITLE_H: u32 = 22;
const COLUMNS: u32 = 2;
const BACKGROUND: Rgb888 = Rgb888::new(0x1c, 0x1c, 0x1c);
const BEZEL_COLOR: Rgb888 = Rgb888::new(0x3a, 0x3a, 0x3a);
const TEXT_COLOR: Rgb888 = Rgb888::new(0xd0, 0xd0, 0xd0);

/// An RGB image in memory whose size is known only at run time (it grows with the count).
pub struct Canvas {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32, fill: Rgb888) -> Self {
        let rgb = [fill.r(), fill.g(), fill.b()].repeat((width * height) as usize);
        Canvas { width, height, rgb }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Row-major RGB bytes.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// The colour at `(x, y)`, which must be inside.
    pub fn at(&self, x: u32, y: u32) -> Rgb888 {
        let i = 3 * (y * self.width + x) as usize;
        Rgb888::new(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2])
    }

    fn put(&mut self, x: i32, y: i32, c: Rgb888) {
        if x >= 0 && y >= 0 && (x as u32) < self.width && (y as u32) < self.height {
            let i = 3 * (y as u32 * self.width + x as u32) as usize;
            self.rgb[i..i + 3].copy_from_slice(&[c.r(), c.g(), c.b()]);
        }
    }

    fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, c: Rgb888) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx as i32, yy as i32, c);
            }
        }
    }
}

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            self.put(p.x, p.y, c);
        }
        Ok(())
    }
}

/// The SSD1306 frame of one digit, as the firmware draws it.
pub fn oled_frame(pixels: &[u8], width: u32, height: u32, caption: Caption) -> OledFrame {
    let mut frame = OledFrame::new();
    let Ok(()) = DigitPanel::new(pixels, width, height, caption).draw(&mut frame);
    frame
}

/// Every digit (`width` x `height` pixels each) on its two panels with its caption, and a
/// title line.
pub fn compose(digits: &[&[u8]], captions: &[Caption], width: u32, height: u32, title: &str) -> Canvas {
    let oled = Size::new(128 * OLED_ZOOM, 64 * OLED_ZOOM);
    let tft = Size::new(160, 128);
    let cell_w = oled.width + tft.width + 4 * BEZEL + GAP;
    let cell_h = oled.height.max(tft.height) + 2 * BEZEL;
    let columns = COLUMNS.min(digits.len() as u32).max(1);
    let rows = (digits.len() as u32).div_ceil(columns);
    let canvas_w = 2 * MARGIN + columns * cell_w + (columns - 1) * 2 * GAP;
    let canvas_h = MARGIN + TITLE_H + rows * (cell_h + GAP) - GAP + MARGIN;
    let mut canvas = Canvas::new(canvas_w, canvas_h, BACKGROUND);
    let Ok(_) = Text::with_baseline(
        title,
        Point::new(MARGIN as i32, MARGIN as i32),
        MonoTextStyle::new(&FONT_6X10, TEXT_COLOR),
        Baseline::Top,
    )
    .draw(&mut canvas);

    for (i, (digit, &caption)) in digits.iter().zip(captions).enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let x0 = MARGIN + col * (cell_w + 2 * GAP);
        let y0 = MARGIN + TITLE_H + row * (cell_h + GAP);

        canvas.fill(x0, y0, oled.width + 2 * BEZEL, oled.height + 2 * BEZEL, BEZEL_COLOR);
        let frame = oled_frame(digit, width, height, caption);
        for y in 0..oled.height {
            for x in 0..oled.width {
                let lit =
                    frame.pixel(Point::new((x / OLED_ZOOM) as i32, (y / OLED_ZOOM) as i32)) == Some(BinaryColor::On);
                canvas.put(
                    (x0 + BEZEL + x) as i32,
                    (y0 + BEZEL + y) as i32,
                    if lit { Rgb888::WHITE } else { Rgb888::BLACK },
                );
            }
        }

        let tx = x0 + oled.width + 2 * BEZEL + GAP;
        canvas.fill(tx, y0, tft.width + 2 * BEZEL, tft.height + 2 * BEZEL, BEZEL_COLOR);
        let mut panel = TftFrame::filled(Rgb565::BLACK);
        let Ok(()) = DigitPanel::new(digit, width, height, caption).draw(&mut panel);
        for (y, row) in panel.rows().iter().enumerate() {
            for (x, &c) in row.iter().enumerate() {
                canvas.put((tx + BEZEL) as i32 + x as i32, (y0 + BEZEL) as i32 + y as i32, c.into());
            }
        }
    }
    canvas
}

/// An SSD1306 frame as text: two pixel rows per line, with half-block characters.
pub fn frame_as_text(frame: &OledFrame) -> String {
    let size = frame.size();
    let lit = |x: u32, y: u32| frame.pixel(Point::new(x as i32, y as i32)) == Some(BinaryColor::On);
    let mut text = String::new();
    for y in (0..size.height).step_by(2) {
        for x in 0..size.width {
            text.push(match (lit(x, y), lit(x, y + 1)) {
                (false, false) => ' ',
                (true, false) => '▀',
                (false, true) => '▄',
                (true, true) => '█',
            });
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_land_where_the_layout_says() {
        let digit = [255u8; 784];
        let captions = [0, 1, 2].map(|i| Caption::new(i, 5));
        let canvas = compose(&[&digit, &digit, &digit], &captions, 28, 28, "t");
        assert_eq!(canvas.width(), 2 * MARGIN + 2 * (256 + 160 + 4 * BEZEL + GAP) + 2 * GAP);
        // A white digit: the OLED's digit area is lit (dithering keeps level 255 fully on).
        let frame = oled_frame(&digit, 28, 28, Caption::new(0, 5));
        let layout = DigitPanel::<BinaryColor>::new(&digit, 28, 28, Caption::new(0, 5)).layout(frame.size());
        let p = layout.digit.top_left;
        let (x, y) = (MARGIN + BEZEL + OLED_ZOOM * p.x as u32, MARGIN + TITLE_H + BEZEL + OLED_ZOOM * p.y as u32);
        assert_eq!(canvas.at(x, y), Rgb888::WHITE);
        assert_eq!(canvas.at(0, 0), BACKGROUND);
        assert_eq!(frame_as_text(&frame).lines().count(), 32);
    }
}
