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
    encode_png(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    )
}

/// Encodes grey `size x size` bytes as an 8-bit grey PNG.
pub fn png_bytes_grey(pixels: &[u8], size: usize) -> Result<Vec<u8>> {
    if pixels.len() != size * size {
        return Err(Error::invalid(
            "grey picture",
            format!("{} bytes for {size}x{size} pixels", pixels.len()),
        ));
    }
    encode_png(
        pixels,
        size as u32,
        size as u32,
        image::ExtendedColorType::L8,
    )
}

fn encode_png(raw: &[u8], w: u32, h: u32, color: image::ExtendedColorType) -> Result<Vec<u8>> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(raw, w, h, color)
        .map_err(|e| Error::Image {
            path: "<png in memory>".into(),
            source: e,
        })?;
    Ok(out)
}

/// Saves an RGB picture as PNG, atomically.
pub fn save_png(img: &image::RgbImage, path: impl AsRef<Path>) -> Result<()> {
    let bytes = png_bytes(img)?;
    crate::util::write_atomic(path, &bytes)
}
