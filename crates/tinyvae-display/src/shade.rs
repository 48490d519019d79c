//! From a decoded grey level to a target's colour: greyscale and RGB panels take the level as
//! it is, monochrome panels threshold or dither it.

use embedded_graphics::pixelcolor::{
    Bgr555, Bgr565, Bgr666, Bgr888, BinaryColor, Gray2, Gray4, Gray8, Rgb555, Rgb565, Rgb666, Rgb888,
};
use embedded_graphics::prelude::*;

/// How a monochrome target shows the 256 grey levels of a digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Monochrome {
    /// A pixel is on when its level is at least this value: crisp strokes, no soft edges.
    Threshold(u8),
    /// 4x4 ordered (Bayer) dithering at panel resolution. An upscaled pixel becomes a pattern
    /// whose density follows its level, so stroke edges keep their grey ramp. The pattern is
    /// tied to panel coordinates, so it does not crawl when a digit moves.
    #[default]
    Dither,
}

/// A colour that a grey level maps to. Implemented for [`BinaryColor`] and for every
/// greyscale and RGB colour of embedded-graphics.
pub trait Shade: PixelColor {
    /// The colour of grey level `luma` (0 black, 255 white) at panel position `at`. Only
    /// monochrome colours look at `at` and `mono`.
    fn shade(luma: u8, at: Point, mono: Monochrome) -> Self;
}

/// The 4x4 Bayer matrix: each entry is the rank of that position among the 16.
const BAYER4: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

impl Shade for BinaryColor {
    fn shade(luma: u8, at: Point, mono: Monochrome) -> Self {
        match mono {
            Monochrome::Threshold(t) => BinaryColor::from(luma >= t),
            Monochrome::Dither => {
                let rank = BAYER4[(at.y & 3) as usize][(at.x & 3) as usize] as u32;
                // On when luma / 255 exceeds (rank + 1/2) / 16: level 0 is all off, 255 all on.
                BinaryColor::from(32 * luma as u32 > (2 * rank + 1) * 255)
            }
        }
    }
}

macro_rules! shade_through_gray8 {
    ($($color:ty),+) => {
        $(impl Shade for $color {
            fn shade(luma: u8, _: Point, _: Monochrome) -> Self {
                Gray8::new(luma).into()
            }
        })+
    };
}

shade_through_gray8!(Gray2, Gray4, Rgb555, Bgr555, Rgb565, Bgr565, Rgb666, Bgr666, Rgb888, Bgr888);

impl Shade for Gray8 {
    fn shade(luma: u8, _: Point, _: Monochrome) -> Self {
        Gray8::new(luma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dither_density_follows_the_level() {
        let on = |luma| {
            (0..4)
                .flat_map(|y| (0..4).map(move |x| Point::new(x, y)))
                .filter(|&p| BinaryColor::shade(luma, p, Monochrome::Dither).is_on())
                .count()
        };
        assert_eq!(on(0), 0);
        assert_eq!(on(255), 16);
        assert_eq!(on(128), 8);
        let mut last = 0;
        for luma in 0..=255 {
            assert!(on(luma) >= last, "density must not fall as the level rises");
            last = on(luma);
        }
    }

    #[test]
    fn threshold_and_grey() {
        let p = Point::zero();
        assert!(BinaryColor::shade(128, p, Monochrome::Threshold(128)).is_on());
        assert!(BinaryColor::shade(127, p, Monochrome::Threshold(128)).is_off());
        assert_eq!(Rgb888::shade(200, p, Monochrome::Dither), Rgb888::new(200, 200, 200));
        assert_eq!(Rgb565::shade(255, p, Monochrome::Dither), Rgb565::WHITE);
        assert_eq!(Gray8::shade(7, p, Monochrome::Dither), Gray8::new(7));
    }
}
