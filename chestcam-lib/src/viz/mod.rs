//! Pictures: a built-in font, montages of samples, heatmap overlays,
//! panels and GIFs, inline display.
pub mod charts;
mod colormap_tables;
pub mod display;
pub mod font;
pub mod heatmap;
pub mod montage;
pub mod viewer;

pub use display::{emit, emit_text, png_bytes, save_png};

/// Upscales a grey `size x size` image to `out x out` RGB with nearest
/// neighbour (sharp pixels, honest about the 28 px resolution).
pub fn grey_to_rgb_nearest(pixels: &[u8], size: usize, out: u32) -> image::RgbImage {
    image::RgbImage::from_fn(out, out, |x, y| {
        let sx = (x as usize * size / out as usize).min(size - 1);
        let sy = (y as usize * size / out as usize).min(size - 1);
        let v = pixels[sy * size + sx];
        image::Rgb([v, v, v])
    })
}
