//! An explanation viewer a person clicks through: one self-contained HTML
//! file (no server, no network, no external script or font), and the same
//! viewer inline in a notebook.
//!
//! Every X-ray and every map is stored once, as a small grey PNG at the
//! input's resolution; the browser colours and blends them with the same
//! colormap table and the same arithmetic (single precision, step by step)
//! as [`overlay_tile`], so what the page draws equals [`Viewer::render`]
//! pixel for pixel. Maps are stored as bytes (`round(255 v)`), so a picture
//! differs from the PNG panels by at most that rounding.
use super::display::png_bytes_grey;
use super::heatmap::{overlay_tile, Colormap, OverlayOptions, Upscale};
use crate::cam::explain::{
    explain, explain_split, ExplainOptions, Explanation, LabelChoice, MapTrust,
};
use crate::cam::Method;
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::model::{Model, Stage};
use crate::{Error, Result};
use base64::Engine;
use std::path::Path;

const SCRIPT: &str = include_str!("viewer.js");
const STYLE: &str = include_str!("viewer.css");

/// One choice of the viewer's method and stage menus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The method's name (`GradCAM`).
    pub method: String,
    /// The stage, or stages averaged (`layer4`, `layer3+layer4`).
    pub stage: String,
}

/// One label's map of one image under one view.
#[derive(Debug, Clone)]
pub struct ViewerMap {
    /// `size x size` bytes, `round(255 * v)` of the map in [0, 1].
    pub map: Vec<u8>,
    pub flat: bool,
    pub trust: Option<MapTrust>,
}

/// One X-ray with its probabilities and, per view, a map per label (`None`
/// for a label that view did not compute).
#[derive(Debug, Clone)]
pub struct ViewerImage {
    pub name: String,
    pub size: usize,
    pub pixels: Vec<u8>,
    pub probs: Vec<f32>,
    pub truth: Option<Vec<u8>>,
    /// `maps[view][label]`.
    pub maps: Vec<Vec<Option<ViewerMap>>>,
}

/// Several X-rays explained under several views, for the browser.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub title: String,
    pub views: Vec<View>,
    pub images: Vec<ViewerImage>,
    pub colormap: Colormap,
    /// Side of the drawn picture in pixels.
    pub tile: usize,
    /// The opacity slider's start, in percent (the heatmap's weight; the
    /// X-ray's is 100 minus it).
    pub opacity: u32,
}

/// `round(255 * v)` of a map in [0, 1].
pub fn quantize(map: &[f32]) -> Vec<u8> {
    map.iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect()
}

/// The side the viewer draws an `s` px X-ray at: readable, at least 448.
pub fn tile_for(s: usize) -> usize {
    s.max(448)
}

impl Viewer {
    /// An empty viewer; [`Viewer::add`] fills it.
    pub fn new(title: impl Into<String>, colormap: Colormap) -> Viewer {
        Viewer {
            title: title.into(),
            views: Vec::new(),
            images: Vec::new(),
            colormap,
            tile: 448,
            opacity: 50,
        }
    }

    /// Adds one view: the explanations of the viewer's images (the same
    /// names in the same order for every view) under `method` at `stage`.
    pub fn add(&mut self, method: &str, stage: &str, ex: &[Explanation]) -> Result<()> {
        let view = View {
            method: method.to_string(),
            stage: stage.to_string(),
        };
        if self.views.contains(&view) {
            return Err(Error::invalid(
                "viewer",
                format!("{method} at {stage} was added twice"),
            ));
        }
        if ex.is_empty() {
            return Err(Error::invalid("viewer", "no explained images to show"));
        }
        if self.views.is_empty() {
            self.images = ex
                .iter()
                .map(|e| ViewerImage {
                    name: e.name.clone(),
                    size: e.size,
                    pixels: e.pixels.clone(),
                    probs: e.probs.clone(),
                    truth: e.truth.clone(),
                    maps: Vec::new(),
                })
                .collect();
            self.tile = self
                .images
                .iter()
                .map(|i| tile_for(i.size))
                .max()
                .unwrap_or(448);
        } else {
            let names: Vec<&str> = self.images.iter().map(|i| i.name.as_str()).collect();
            let got: Vec<&str> = ex.iter().map(|e| e.name.as_str()).collect();
            if names != got {
                return Err(Error::invalid(
                    "viewer",
                    format!("{method} at {stage} explains {got:?}, but the viewer shows {names:?}"),
                ));
            }
        }
        for (img, e) in self.images.iter_mut().zip(ex) {
            if e.pixels != img.pixels {
                return Err(Error::invalid(
                    "viewer",
                    format!("image {} differs between views", e.name),
                ));
            }
            let mut maps: Vec<Option<ViewerMap>> = vec![None; NUM_LABELS];
            for (k, &l) in e.shown.iter().enumerate() {
                maps[l] = Some(ViewerMap {
                    map: quantize(&e.maps[k]),
                    flat: e.flat[k],
                    trust: e.trust.get(k).copied(),
                });
            }
            img.maps.push(maps);
        }
        self.views.push(view);
        Ok(())
    }

    /// What the page draws for `image`, `view`, `label` at `opacity` percent:
    /// [`overlay_tile`] of the stored (byte) map, the reference the browser
    /// test compares the canvas with.
    pub fn render(
        &self,
        image: usize,
        view: usize,
        label: usize,
        opacity: u32,
    ) -> Result<image::RgbImage> {
        let img = self.images.get(image).ok_or_else(|| {
            Error::invalid("viewer image", format!("{image} of {}", self.images.len()))
        })?;
        let m = img
            .maps
            .get(view)
            .and_then(|v| v.get(label))
            .and_then(|m| m.as_ref())
            .ok_or_else(|| {
                Error::invalid(
                    "viewer map",
                    format!("view {view}, label {label}: not computed"),
                )
            })?;
        let map: Vec<f32> = m.map.iter().map(|&q| q as f32 / 255.0).collect();
        let o = OverlayOptions {
            tile: self.tile,
            colormap: self.colormap,
            image_weight: (100 - opacity.min(100)) as f32 / 100.0,
            upscale: Upscale::Nearest,
        };
        overlay_tile(&img.pixels, &map, img.size, &o)
    }

    /// The viewer's data as the page reads it (JSON; PNGs as data URLs).
    fn data_json(&self) -> Result<String> {
        let png = |px: &[u8], s: usize| -> Result<String> {
            let b = png_bytes_grey(px, s)?;
            Ok(format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            ))
        };
        let mut images = Vec::with_capacity(self.images.len());
        for img in &self.images {
            let mut views = Vec::with_capacity(img.maps.len());
            for v in &img.maps {
                let mut labels = Vec::with_capacity(NUM_LABELS);
                for m in v {
                    labels.push(match m {
                        None => serde_json::Value::Null,
                        Some(m) => serde_json::json!({
                            "png": png(&m.map, img.size)?,
                            "flat": m.flat,
                            "trust": m.trust.map(|t| serde_json::json!({
                                "deletion_auc": t.deletion_auc,
                                "random_cam_deletion_auc": t.random_cam_deletion_auc,
                            })),
                        }),
                    });
                }
                views.push(labels);
            }
            images.push(serde_json::json!({
                "name": img.name,
                "size": img.size,
                "xray": png(&img.pixels, img.size)?,
                "probs": img.probs,
                "truth": img.truth,
                "maps": views,
            }));
        }
        let table: Vec<u8> = self.colormap.table().iter().flatten().copied().collect();
        let v = serde_json::json!({
            "title": self.title,
            "labels": LABELS,
            "views": self.views.iter().map(|v| serde_json::json!({"method": v.method, "stage": v.stage})).collect::<Vec<_>>(),
            "colormap": table,
            "tile": self.tile,
            "opacity": self.opacity.min(100),
            "images": images,
        });
        let text =
            serde_json::to_string(&v).map_err(|e| Error::invalid("viewer", e.to_string()))?;
        // Inside <script>: no "</" may close it early.
        Ok(text.replace("</", "<\\/"))
    }

    /// The viewer as an HTML fragment (a `<div>` with its style and script),
    /// for a notebook output; several can live on one page.
    pub fn fragment(&self) -> Result<String> {
        if self.views.is_empty() {
            return Err(Error::invalid("viewer", "no views added"));
        }
        let id = fragment_id();
        Ok(format!(
            "<div class=\"ccv\" id=\"{id}\" tabindex=\"0\" role=\"application\" aria-label=\"{title}: chestcam explanation viewer\">\
<style>{STYLE}</style>\
<noscript>This viewer needs JavaScript.</noscript>\
<script type=\"application/json\" class=\"ccv-data\">{data}</script>\
<script>{SCRIPT}\nchestcamViewer(document.getElementById(\"{id}\"));</script></div>",
            title = super::display::html_escape(&self.title).replace('"', "&quot;"),
            data = self.data_json()?,
        ))
    }

    /// The viewer as one standalone HTML page.
    pub fn html(&self) -> Result<String> {
        Ok(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title></head><body style=\"margin:0;background:#141418\">{}</body></html>\n",
            super::display::html_escape(&self.title),
            self.fragment()?
        ))
    }

    /// Writes the standalone page to `path` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::util::write_atomic(path, self.html()?.as_bytes())
    }

    pub fn evcxr_display(&self) {
        match self.fragment() {
            Ok(h) => super::emit_text("text/html", &h),
            Err(e) => println!("cannot display the viewer: {e}"),
        }
    }
}

/// A page-unique element id for one fragment.
fn fragment_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "ccv-{:x}-{}",
        t ^ (std::process::id() as u64) << 32,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The images a viewer explains: grey `size x size` pixels with names and,
/// when known, truth rows; or test-split indices.
pub enum ViewerInput<'a> {
    Pixels {
        pixels: &'a [u8],
        size: usize,
        names: &'a [String],
        truth: Option<&'a [u8]>,
    },
    Split {
        split: &'a crate::data::Split,
        idx: &'a [usize],
    },
}

impl ViewerInput<'_> {
    /// Its images explained under `o`.
    pub fn explain(&self, model: &Model, o: &ExplainOptions) -> Result<Vec<Explanation>> {
        match self {
            ViewerInput::Pixels {
                pixels,
                size,
                names,
                truth,
            } => explain(model, pixels, *size, names, *truth, o),
            ViewerInput::Split { split, idx } => explain_split(model, split, idx, o),
        }
    }
}

/// One view of a viewer: a method at one stage (or several averaged) and
/// its explanations of every image, all 14 labels.
pub struct Explained {
    pub method: Method,
    pub stages: Vec<Stage>,
    pub explanations: Vec<Explanation>,
}

/// Explains `input` under every method of `methods` at every entry of
/// `stages` (each entry one stage, or several averaged), all 14 labels,
/// with `o`'s other options (trust lines included); the viewer's title is
/// `title`. Each view's explanations come back too (in the order of
/// `methods`, then `stages`), so that a caller who needs one of them as
/// well (`chestcam explain --html`'s pictures) need not explain it again.
pub fn build(
    model: &Model,
    input: &ViewerInput,
    methods: &[Method],
    stages: &[Vec<Stage>],
    o: &ExplainOptions,
    title: &str,
) -> Result<(Viewer, Vec<Explained>)> {
    if methods.is_empty() || stages.iter().any(|s| s.is_empty()) || stages.is_empty() {
        return Err(Error::invalid(
            "viewer",
            "give at least one method and one stage",
        ));
    }
    let mut v = Viewer::new(title, o.overlay.colormap);
    let mut views = Vec::new();
    for &m in methods {
        for st in stages {
            let opts = ExplainOptions {
                method: m,
                stage: st[0],
                more_stages: st[1..].to_vec(),
                labels: LabelChoice::All,
                ..o.clone()
            };
            let ex = input.explain(model, &opts)?;
            let stage = st
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("+");
            v.add(m.name(), &stage, &ex)?;
            views.push(Explained {
                method: m,
                stages: st.clone(),
                explanations: ex,
            });
        }
    }
    Ok((v, views))
}
