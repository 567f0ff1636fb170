//! Inline display in evcxr notebooks, and saving pictures to files.
use crate::{Error, Result};
use base64::Engine;
use std::path::Path;

/// Prints `bytes` as rich content of type `mime` for evcxr
/// (`EVCXR_BEGIN_CONTENT <mime>` ... `EVCXR_END_CONTENT`).
pub fn emit(mime: &str, bytes: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    println!("EVCXR_BEGIN_CONTENT {mime}\n{b64}\nEVCXR_END_CONTENT");
}

/// Prints text content (HTML, SVG) of type `mime` for evcxr.
pub fn emit_text(mime: &str, text: &str) {
    println!("EVCXR_BEGIN_CONTENT {mime}\n{text}\nEVCXR_END_CONTENT");
}

/// Escapes `&`, `<` and `>` for HTML output.
pub fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Encodes an RGB picture as PNG bytes.
pub fn png_bytes(img: &image::RgbImage) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Image {
            path: "<png in memory>".into(),
            source: e,
        })?;
    Ok(out.into_inner())
}

/// Encodes grey `size x size` bytes as an 8-bit grey PNG.
pub fn png_bytes_grey(pixels: &[u8], size: usize) -> Result<Vec<u8>> {
    let img =
        image::GrayImage::from_raw(size as u32, size as u32, pixels.to_vec()).ok_or_else(|| {
            Error::invalid(
                "grey picture",
                format!("{} bytes for {size}x{size} pixels", pixels.len()),
            )
        })?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| Error::Image {
            path: "<png in memory>".into(),
            source: e,
        })?;
    Ok(out.into_inner())
}

/// Saves an RGB picture as PNG, atomically.
pub fn save_png(img: &image::RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let bytes = png_bytes(img)?;
    crate::util::write_atomic(path, &bytes)
}
