//! A montage of sample images per label: one row per finding, its
//! prevalence in the row header, positives of that label in the row.
use super::font::{draw_text, text_height};
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::data::{Dataset, SplitName};
use crate::Result;
use image::{Rgb, RgbImage};
use std::path::Path;

/// A rendered montage; shows itself inline in evcxr and saves as PNG.
pub struct Montage {
    pub image: RgbImage,
}

/// Layout of a montage.
#[derive(Debug, Clone, Copy)]
pub struct MontageOptions {
    /// Images per label row.
    pub per_label: usize,
    /// Side of each tile in pixels.
    pub tile: u32,
    pub split: SplitName,
}

impl Default for MontageOptions {
    fn default() -> Self {
        MontageOptions {
            per_label: 8,
            tile: 64,
            split: SplitName::Train,
        }
    }
}

const HEADER_W: u32 = 250;
const TITLE_H: u32 = 40;
const GAP: u32 = 4;

impl Montage {
    /// Builds the montage of `data`'s split. The title names the source
    /// (and says SYNTHETIC for phantoms).
    pub fn new(data: &Dataset, opt: MontageOptions) -> Montage {
        let split = data.split(opt.split);
        let rows = NUM_LABELS as u32;
        let cols = opt.per_label.max(1) as u32;
        let w = HEADER_W + cols * (opt.tile + GAP) + GAP;
        let h = TITLE_H + rows * (opt.tile + GAP) + GAP;
        let mut img = RgbImage::from_pixel(w, h, Rgb([20, 20, 24]));
        let white = Rgb([235, 235, 235]);
        let title = format!(
            "{} - {} split, {} images",
            data.provenance,
            opt.split,
            split.len()
        );
        let scale = if super::font::text_width(&title, 2) + 16 <= w {
            2
        } else {
            1
        };
        draw_text(
            &mut img,
            8,
            8,
            &title,
            scale,
            if data.provenance.synthetic {
                Rgb([255, 170, 60])
            } else {
                white
            },
        );
        let pos = split.positives();
        for (k, name) in LABELS.iter().enumerate() {
            let y0 = TITLE_H + k as u32 * (opt.tile + GAP) + GAP;
            let pct = 100.0 * pos[k] as f64 / split.len().max(1) as f64;
            draw_text(&mut img, 8, y0 as i64 + 4, name, 2, white);
            let line2 = format!("{} POS ({pct:.1}%)", pos[k]);
            draw_text(
                &mut img,
                8,
                (y0 + 8 + text_height(2)) as i64,
                &line2,
                1,
                Rgb([170, 170, 170]),
            );
            let idx: Vec<usize> = (0..split.len())
                .filter(|&i| split.label_row(i)[k] == 1)
                .take(opt.per_label)
                .collect();
            if idx.is_empty() {
                draw_text(
                    &mut img,
                    (HEADER_W + GAP) as i64,
                    (y0 + opt.tile / 2 - 4) as i64,
                    "no positive image in this split",
                    1,
                    Rgb([200, 120, 120]),
                );
            }
            for (c, &i) in idx.iter().enumerate() {
                let tile = super::grey_to_rgb_nearest(split.image(i), split.size, opt.tile);
                let x0 = HEADER_W + c as u32 * (opt.tile + GAP) + GAP;
                image::imageops::replace(&mut img, &tile, x0 as i64, y0 as i64);
            }
        }
        Montage { image: img }
    }

    /// Saves the montage as PNG (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        super::save_png(&self.image, path)
    }

    /// evcxr's rich display hook: shows the PNG inline.
    pub fn evcxr_display(&self) {
        match super::png_bytes(&self.image) {
            Ok(b) => super::emit("image/png", &b),
            Err(e) => println!("cannot display montage: {e}"),
        }
    }
}
