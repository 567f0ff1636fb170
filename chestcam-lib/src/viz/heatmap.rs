//! Heatmaps on X-rays: colormaps as lookup tables, pytorch-grad-cam's
//! `show_cam_on_image` blend, panels with titles, grids and animated GIFs.
use super::font::{draw_text, text_width};
use crate::{Error, Result};
use image::{Rgb, RgbImage};

/// A colormap (256-entry lookup table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// OpenCV's JET, as pytorch-grad-cam uses (continuity with the usual pictures).
    #[default]
    Jet,
    /// Perceptually uniform maps (matplotlib's).
    Inferno,
    Viridis,
    Turbo,
}

impl Colormap {
    pub(crate) fn table(self) -> &'static [[u8; 3]; 256] {
        match self {
            Colormap::Jet => &super::colormap_tables::JET,
            Colormap::Inferno => &super::colormap_tables::INFERNO,
            Colormap::Viridis => &super::colormap_tables::VIRIDIS,
            Colormap::Turbo => &super::colormap_tables::TURBO,
        }
    }

    /// The colour of `v` in [0, 1] (as `np.uint8(255 * v)`: truncation).
    pub fn rgb(self, v: f32) -> [u8; 3] {
        self.table()[(255.0 * v.clamp(0.0, 1.0)) as u8 as usize]
    }
}

crate::choices!(Colormap, "colormap" {
    Jet => "jet",
    Inferno => "inferno",
    Viridis => "viridis",
    Turbo => "turbo",
});

/// pytorch-grad-cam's `show_cam_on_image(img, mask, use_rgb=True,
/// colormap, image_weight)`: `img` is `h*w*3` RGB in [0, 1], `mask` is
/// `h*w` in [0, 1]; returns `h*w*3` bytes.
///
/// `cam = (1 - image_weight) * colormap(mask) + image_weight * img`, divided
/// by its maximum, times 255, truncated.
pub fn show_cam_on_image(
    img: &[f32],
    mask: &[f32],
    cmap: Colormap,
    image_weight: f32,
) -> Result<Vec<u8>> {
    if img.len() != mask.len() * 3 {
        return Err(Error::invalid(
            "overlay",
            format!(
                "image has {} values, expected 3 x {} (one RGB pixel per mask value)",
                img.len(),
                mask.len()
            ),
        ));
    }
    if let Some(v) = img.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::invalid(
            "overlay image",
            format!("value {v}: the image must be float RGB in [0, 1]"),
        ));
    }
    if let Some(v) = mask.iter().find(|v| !(0.0..=1.0).contains(*v)) {
        return Err(Error::invalid(
            "overlay mask",
            format!("value {v}: the heatmap must be in [0, 1]"),
        ));
    }
    if !(0.0..=1.0).contains(&image_weight) {
        return Err(Error::invalid(
            "image weight",
            format!("{image_weight} (must be in [0, 1])"),
        ));
    }
    let mut cam: Vec<f32> = Vec::with_capacity(img.len());
    for (i, &m) in mask.iter().enumerate() {
        let c = cmap.rgb(m);
        for k in 0..3 {
            cam.push((1.0 - image_weight) * (c[k] as f32 / 255.0) + image_weight * img[3 * i + k]);
        }
    }
    let max = cam.iter().cloned().fold(f32::MIN, f32::max).max(1e-12);
    Ok(cam.iter().map(|v| (255.0 * (v / max)) as u8).collect())
}

/// Bilinear resize (half-pixel centres, as `upsample_bilinear2d` with
/// `align_corners=False` and OpenCV's INTER_LINEAR) of an `s x s` map.
pub fn resize_bilinear(map: &[f32], s: usize, out: usize) -> Vec<f32> {
    let scale = s as f32 / out as f32;
    let mut v = vec![0.0; out * out];
    let coord = |o: usize| {
        let f = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (f.floor() as usize).min(s - 1);
        let i1 = (i0 + 1).min(s - 1);
        (i0, i1, f - i0 as f32)
    };
    for y in 0..out {
        let (y0, y1, fy) = coord(y);
        for x in 0..out {
            let (x0, x1, fx) = coord(x);
            let top = map[y0 * s + x0] * (1.0 - fx) + map[y0 * s + x1] * fx;
            let bot = map[y1 * s + x0] * (1.0 - fx) + map[y1 * s + x1] * fx;
            v[y * out + x] = top * (1.0 - fy) + bot * fy;
        }
    }
    v
}

/// How the small X-ray is enlarged for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upscale {
    /// Sharp pixels: honest about 28 px.
    #[default]
    Nearest,
    /// Smooth.
    Bilinear,
}

/// Display options for overlays and panels.
#[derive(Debug, Clone, Copy)]
pub struct OverlayOptions {
    /// Side of each tile in pixels (at least 224 is sensible for 28 px data).
    pub tile: usize,
    pub colormap: Colormap,
    pub image_weight: f32,
    pub upscale: Upscale,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions {
            tile: 224,
            colormap: Colormap::Jet,
            image_weight: 0.5,
            upscale: Upscale::Nearest,
        }
    }
}

/// The X-ray (`s x s` grey bytes) enlarged to `tile` as float RGB in [0, 1].
fn xray_rgb(pixels: &[u8], s: usize, o: &OverlayOptions) -> Vec<f32> {
    let grey: Vec<f32> = match o.upscale {
        Upscale::Nearest => (0..o.tile * o.tile)
            .map(|i| {
                let (y, x) = (i / o.tile, i % o.tile);
                pixels[(y * s / o.tile).min(s - 1) * s + (x * s / o.tile).min(s - 1)] as f32 / 255.0
            })
            .collect(),
        Upscale::Bilinear => resize_bilinear(
            &pixels.iter().map(|&p| p as f32 / 255.0).collect::<Vec<_>>(),
            s,
            o.tile,
        ),
    };
    grey.iter().flat_map(|&g| [g, g, g]).collect()
}

fn to_image(rgb: &[u8], side: usize) -> RgbImage {
    RgbImage::from_fn(side as u32, side as u32, |x, y| {
        let i = 3 * (y as usize * side + x as usize);
        Rgb([rgb[i], rgb[i + 1], rgb[i + 2]])
    })
}

/// The enlarged X-ray as a picture.
pub fn xray_tile(pixels: &[u8], s: usize, o: &OverlayOptions) -> RgbImage {
    let rgb: Vec<u8> = xray_rgb(pixels, s, o)
        .iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    to_image(&rgb, o.tile)
}

/// The heatmap (`s x s` in [0, 1]) enlarged smoothly and blended on the X-ray.
pub fn overlay_tile(pixels: &[u8], map: &[f32], s: usize, o: &OverlayOptions) -> Result<RgbImage> {
    if pixels.len() != s * s || map.len() != s * s {
        return Err(Error::invalid(
            "overlay",
            format!(
                "image {} and map {} values, expected {s} x {s}",
                pixels.len(),
                map.len()
            ),
        ));
    }
    let big = resize_bilinear(map, s, o.tile);
    let big: Vec<f32> = big.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let rgb = show_cam_on_image(&xray_rgb(pixels, s, o), &big, o.colormap, o.image_weight)?;
    Ok(to_image(&rgb, o.tile))
}

/// One titled tile of a panel.
pub struct Tile {
    pub image: RgbImage,
    pub title: Vec<String>,
}

/// Tiles side by side (in rows of `per_row`) with up to two lines of title
/// above each; drawn with the built-in font (no system fonts).
pub fn compose(tiles: &[Tile], per_row: usize, heading: &str) -> RgbImage {
    let side = tiles.first().map(|t| t.image.width()).unwrap_or(224);
    let per_row = per_row.max(1).min(tiles.len().max(1));
    let rows = tiles.len().div_ceil(per_row).max(1);
    let (gap, title_h, head_h) = (8u32, 36u32, if heading.is_empty() { 0 } else { 28 });
    let w = per_row as u32 * (side + gap) + gap;
    let h = head_h + rows as u32 * (side + title_h + gap) + gap;
    let mut img = RgbImage::from_pixel(w, h, Rgb([20, 20, 24]));
    let white = Rgb([235, 235, 235]);
    if !heading.is_empty() {
        let scale = if text_width(heading, 2) + 16 <= w {
            2
        } else {
            1
        };
        draw_text(&mut img, 8, 8, heading, scale, white);
    }
    for (i, t) in tiles.iter().enumerate() {
        let (r, c) = ((i / per_row) as u32, (i % per_row) as u32);
        let x0 = gap + c * (side + gap);
        let y0 = head_h + gap + r * (side + title_h + gap);
        for (k, line) in t.title.iter().take(2).enumerate() {
            let scale = if text_width(line, 2) <= side { 2 } else { 1 };
            draw_text(
                &mut img,
                x0 as i64,
                (y0 + k as u32 * 17) as i64,
                line,
                scale,
                if k == 0 { white } else { Rgb([190, 190, 190]) },
            );
        }
        image::imageops::replace(&mut img, &t.image, x0 as i64, (y0 + title_h) as i64);
    }
    img
}

/// A PNG picture that shows itself inline in evcxr and saves to a file.
pub struct Picture {
    pub image: RgbImage,
}

impl Picture {
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        super::save_png(&self.image, path)
    }
    pub fn evcxr_display(&self) {
        match super::png_bytes(&self.image) {
            Ok(b) => super::emit("image/png", &b),
            Err(e) => println!("cannot display picture: {e}"),
        }
    }
}

/// An animated GIF (loops forever) that shows itself inline and saves.
pub struct Gif {
    pub bytes: Vec<u8>,
}

impl Gif {
    /// Encodes `frames` with `delay_ms` between them, looping forever.
    pub fn encode(frames: &[RgbImage], delay_ms: u32) -> Result<Gif> {
        use image::codecs::gif::{GifEncoder, Repeat};
        if frames.is_empty() {
            return Err(Error::invalid("GIF", "no frames"));
        }
        let mut bytes = Vec::new();
        {
            let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
            let err = |e: image::ImageError| Error::Image {
                path: "<gif in memory>".into(),
                source: e,
            };
            enc.set_repeat(Repeat::Infinite).map_err(err)?;
            for f in frames {
                let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
                let frame = image::Frame::from_parts(
                    rgba,
                    0,
                    0,
                    image::Delay::from_numer_denom_ms(delay_ms, 1),
                );
                enc.encode_frame(frame).map_err(err)?;
            }
        }
        Ok(Gif { bytes })
    }

    /// Raw X-ray and overlay fading into each other over `frames` frames.
    pub fn fade(
        pixels: &[u8],
        map: &[f32],
        s: usize,
        o: &OverlayOptions,
        frames: usize,
        delay_ms: u32,
    ) -> Result<Gif> {
        let raw = xray_tile(pixels, s, o);
        let over = overlay_tile(pixels, map, s, o)?;
        let n = frames.max(2);
        let seq: Vec<RgbImage> = (0..n)
            .map(|i| {
                let t = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos();
                RgbImage::from_fn(raw.width(), raw.height(), |x, y| {
                    let (a, b) = (raw.get_pixel(x, y).0, over.get_pixel(x, y).0);
                    Rgb(std::array::from_fn(|k| {
                        ((1.0 - t) * a[k] as f32 + t * b[k] as f32).round() as u8
                    }))
                })
            })
            .collect();
        Gif::encode(&seq, delay_ms)
    }

    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::util::write_atomic(path, &self.bytes)
    }

    pub fn evcxr_display(&self) {
        super::emit("image/gif", &self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_cam_on_image_equals_pytorch_grad_cam() {
        // img = np.full((2,2,3), 0.4, np.float32); img[0,0] = [0.1,0.2,0.3]
        // m = np.array([[0.0,0.25],[0.5,1.0]], np.float32)
        // show_cam_on_image(img, m, use_rgb=True)  (pytorch-grad-cam 1.5.7, OpenCV 5.0.0)
        let mut img = vec![0.4f32; 12];
        img[..3].copy_from_slice(&[0.1, 0.2, 0.3]);
        let m = [0.0, 0.25, 0.5, 1.0];
        let got = show_cam_on_image(&img, &m, Colormap::Jet, 0.5).unwrap();
        assert_eq!(
            got,
            vec![18, 36, 146, 72, 161, 255, 162, 255, 165, 164, 72, 72]
        );
        // ... image_weight=0.3
        let got = show_cam_on_image(&img, &m, Colormap::Jet, 0.3).unwrap();
        assert_eq!(
            got,
            vec![9, 18, 137, 37, 143, 255, 144, 255, 148, 146, 37, 37]
        );
        assert!(show_cam_on_image(&[2.0; 12], &m, Colormap::Jet, 0.5)
            .unwrap_err()
            .to_string()
            .contains("[0, 1]"));
        assert!(show_cam_on_image(&img, &m, Colormap::Jet, 1.5)
            .unwrap_err()
            .to_string()
            .contains("1.5"));
        assert!(show_cam_on_image(&img[..9], &m, Colormap::Jet, 0.5).is_err());
    }

    #[test]
    fn bilinear_resize_matches_half_pixel_centres() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0.,1.],[2.,3.]]]]), size=4, mode="bilinear", align_corners=False)[0,0,0]
        //   -> [0.0, 0.25, 0.75, 1.0]
        let r = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 4);
        assert_eq!(&r[..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(r[15], 3.0);
    }

    #[test]
    fn gif_loops_and_has_frames() {
        let px = vec![128u8; 28 * 28];
        let map: Vec<f32> = (0..28 * 28).map(|i| (i % 28) as f32 / 27.0).collect();
        let o = OverlayOptions {
            tile: 56,
            ..Default::default()
        };
        let g = Gif::fade(&px, &map, 28, &o, 6, 80).unwrap();
        assert_eq!(&g.bytes[..6], b"GIF89a");
        // NETSCAPE2.0 application extension = loop forever.
        assert!(g.bytes.windows(11).any(|w| w == b"NETSCAPE2.0"));
        let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&g.bytes)).unwrap();
        use image::AnimationDecoder;
        assert_eq!(frames.into_frames().count(), 6);
    }
}
