//! An explanation as pictures: panels, overlays, GIFs, a label across
//! images, the methods side by side.
use super::{explain, explain_split, ExplainOptions, Explanation, LabelChoice};
use crate::cam::Method;
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::model::Model;
use crate::viz::heatmap::{compose, overlay_tile, xray_tile, Gif, OverlayOptions, Picture, Tile};
use crate::{Error, Result};

/// Writes a warning across a tile whose map is flat.
fn mark_flat(img: &mut image::RgbImage) {
    use crate::viz::font::{draw_text, text_width};
    let msg = "FLAT MAP: NO LOCATION";
    let x = (img.width().saturating_sub(text_width(msg, 1))) / 2;
    let y = img.height() / 2;
    for yy in y.saturating_sub(4)..(y + 11).min(img.height()) {
        for xx in 0..img.width() {
            img.put_pixel(xx, yy, image::Rgb([20, 20, 24]));
        }
    }
    draw_text(img, x as i64, y as i64, msg, 1, image::Rgb([255, 170, 60]));
}

impl Explanation {
    fn overlay(&self, k: usize) -> Result<image::RgbImage> {
        let mut img = overlay_tile(&self.pixels, &self.maps[k], self.size, &self.opts())?;
        if self.flat[k] {
            mark_flat(&mut img);
        }
        Ok(img)
    }

    fn opts(&self) -> OverlayOptions {
        self.options.unwrap_or_default()
    }

    fn title(&self, label: usize) -> Vec<String> {
        let gt = match &self.truth {
            Some(t) if t[label] == 1 => "  GT: YES",
            Some(_) => "  GT: NO",
            None => "",
        };
        let trust = self
            .shown
            .iter()
            .position(|&l| l == label)
            .and_then(|k| self.trust.get(k))
            .map(|t| {
                format!(
                    "  DEL {:.2} VS RND {:.2}",
                    t.deletion_auc, t.random_cam_deletion_auc
                )
            })
            .unwrap_or_default();
        vec![
            LABELS[label].to_string(),
            format!("P={:.2}{gt}{trust}", self.probs[label]),
        ]
    }

    /// The X-ray, then one overlay per shown label, titled.
    pub fn panel(&self) -> Result<Picture> {
        let o = self.opts();
        let mut tiles = vec![Tile {
            image: xray_tile(&self.pixels, self.size, &o),
            title: vec!["X-RAY".into(), format!("{0}X{0} PX", self.size)],
        }];
        for (k, &l) in self.shown.iter().enumerate() {
            tiles.push(Tile {
                image: self.overlay(k)?,
                title: self.title(l),
            });
        }
        Ok(Picture {
            image: compose(&tiles, 5, &format!("{} - {}", self.name, self.method)),
        })
    }

    /// The raw X-ray fading into the overlay of the `k`-th shown label.
    pub fn fade_gif(&self, k: usize, frames: usize, delay_ms: u32) -> Result<Gif> {
        let map = self.maps.get(k).ok_or_else(|| {
            Error::invalid("GIF", format!("label {k} of {} shown", self.maps.len()))
        })?;
        Gif::fade(&self.pixels, map, self.size, &self.opts(), frames, delay_ms)
    }

    /// One titled frame per shown label, cycling.
    pub fn label_gif(&self, delay_ms: u32) -> Result<Gif> {
        let frames = self
            .shown
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                Ok(compose(
                    &[Tile {
                        image: self.overlay(k)?,
                        title: self.title(l),
                    }],
                    1,
                    "",
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Gif::encode(&frames, delay_ms)
    }
}

/// One image, one label, each method side by side.
pub fn method_comparison(
    model: &Model,
    pixels: &[u8],
    s: usize,
    label: usize,
    methods: &[Method],
    o: &ExplainOptions,
) -> Result<Picture> {
    let mut tiles = vec![Tile {
        image: xray_tile(pixels, s, &o.overlay),
        title: vec![
            "X-RAY".into(),
            LABELS.get(label).copied().unwrap_or("?").to_string(),
        ],
    }];
    for &m in methods {
        let opts = ExplainOptions {
            method: m,
            labels: LabelChoice::Names(vec![label]),
            trust_steps: 0,
            ..o.clone()
        };
        let e = explain(model, pixels, s, &["x".to_string()], None, &opts)?;
        tiles.push(Tile {
            image: overlay_tile(pixels, &e[0].maps[0], s, &o.overlay)?,
            title: vec![m.name().to_string(), format!("P={:.2}", e[0].probs[label])],
        });
    }
    Ok(Picture {
        image: compose(
            &tiles,
            5,
            &format!(
                "methods compared on {}",
                LABELS.get(label).copied().unwrap_or("?")
            ),
        ),
    })
}

/// Many images for one label: the `n` images of `split` most likely to show
/// it (positives first), each with its heatmap for that label.
pub fn label_grid(
    model: &Model,
    split: &crate::data::Split,
    label: usize,
    n: usize,
    o: &ExplainOptions,
) -> Result<Picture> {
    if label >= NUM_LABELS {
        return Err(Error::invalid(
            "label index",
            format!("{label} (there are {NUM_LABELS} labels)"),
        ));
    }
    let mut idx: Vec<usize> = (0..split.len()).collect();
    idx.sort_by_key(|&i| (split.label_row(i)[label] == 0, i));
    idx.truncate(n.max(1));
    let opts = ExplainOptions {
        labels: LabelChoice::Names(vec![label]),
        ..o.clone()
    };
    let ex = explain_split(model, split, &idx, &opts)?;
    let tiles = ex
        .iter()
        .map(|e| {
            let mut t = e.title(label);
            t[0] = e.name.to_ascii_uppercase();
            Ok(Tile {
                image: e.overlay(0)?,
                title: t,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Picture {
        image: compose(
            &tiles,
            6,
            &format!("{} - {}", LABELS[label], o.method.name()),
        ),
    })
}
