//! A user's X-ray from a PNG or JPEG, converted as the training data was.
use crate::{Error, Result};
use std::path::Path;

/// The largest picture `load_xray` decodes (a 20000 x 20000 PNG of 430 KB
/// would take 2.9 GB): 50 megapixels, more than any radiograph.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Reads a user's X-ray (PNG or JPEG, any size, grey or RGB) and converts it
/// as the training data was: grey as PIL's `convert("L")`, centre-cropped to
/// a square, resized (Lanczos, antialiased) to `size`.
pub fn load_xray(path: &Path, size: usize) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.is_empty() {
        return Err(Error::bad_file(path, "empty file (0 bytes), not an image"));
    }
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let format = reader.format();
    let (w, h) = reader.into_dimensions().map_err(|e| Error::Image {
        path: path.to_path_buf(),
        source: e,
    })?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(Error::bad_file(
            path,
            format!(
                "{w}x{h} px is {:.0} megapixels; at most {} (downscale it first)",
                w as f64 * h as f64 / 1e6,
                MAX_PIXELS / 1_000_000
            ),
        ));
    }
    // A JPEG cut short decodes "successfully" with grey fill where the data
    // ended (and the heatmap is hottest there): refuse it, as PIL does.
    if format == Some(image::ImageFormat::Jpeg) {
        let end = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
        if end < 1 || bytes[end - 1..=end] != [0xFF, 0xD9] {
            return Err(Error::bad_file(
                path,
                "image file is truncated (the JPEG has no end-of-image marker)",
            ));
        }
    }
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::Image {
            path: path.to_path_buf(),
            source: e,
        })?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Error::bad_file(path, "empty image (0 pixels)"));
    }
    let rgb = img.to_rgb8();
    let grey = crate::data::rgb_to_grey(rgb.as_raw());
    let side = w.min(h);
    let g = image::GrayImage::from_raw(w, h, grey)
        .ok_or_else(|| Error::bad_file(path, "cannot convert to grey"))?;
    let crop = image::imageops::crop_imm(&g, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let small = image::imageops::resize(
        &crop,
        size as u32,
        size as u32,
        image::imageops::FilterType::Lanczos3,
    );
    Ok(small.into_raw())
}
