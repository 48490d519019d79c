//! Drawing of sampled digits on small panels, shared by every tinyvae firmware example.
//!
//! A decoder gives a 28x28 image of 0..=255 pixels. [`DigitPanel`] draws it upscaled, with a
//! caption naming the sample and the seed, on any embedded-graphics [`DrawTarget`] whose
//! colour implements [`Shade`]: a 128x64 monochrome SSD1306 (thresholded or ordered-dithered,
//! see [`Monochrome`]), a greyscale panel, or an RGB one such as an ST7735. The layout follows
//! the target's size, so the same call fills a 128x64 OLED and a 240x240 TFT.
//!
//! Two in-RAM framebuffers with their size in const generics stand in for a panel, or buffer
//! one: [`Framebuffer`] (any colour, one element per pixel) and [`MonoFramebuffer`] (one bit
//! per pixel in the SSD1306's page layout, so its bytes are what the panel's RAM would hold).
//!
//! ```
//! use embedded_graphics::prelude::*;
//! use tinyvae_display::{Caption, DigitPanel, MonoFramebuffer};
//!
//! let pixels = [0u8; 28 * 28]; // one decoded sample
//! let mut oled = MonoFramebuffer::<128, 8>::new(); // 128x64, 1 KiB
//! DigitPanel::new(&pixels, 28, 28, Caption::new(3, 42)).draw(&mut oled)?;
//! assert_eq!(oled.as_bytes().len(), 1024);
//! # Ok::<(), core::convert::Infallible>(())
//! ```
//!
//! Nothing here allocates, and drawing the same digit gives the same frame on every target.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod framebuffer;
mod panel;
mod shade;

pub use framebuffer::{Framebuffer, MonoFramebuffer};
pub use panel::{Caption, DigitPanel, Layout};
pub use shade::{Monochrome, Shade};

/// The embedded-graphics version this crate draws with, re-exported so that firmware names the
/// same types without a version to keep in step.
pub use embedded_graphics;

#[doc(no_inline)]
pub use embedded_graphics::draw_target::DrawTarget;
