//! From a model and X-rays to what a person looks at: the labels to show,
//! their heatmaps, panels, GIFs and a JSON of probabilities.
use super::{compute_stages_with, Method, Smooth};
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::model::{Model, Stage};
use crate::viz::heatmap::{compose, overlay_tile, xray_tile, Gif, OverlayOptions, Picture, Tile};
use crate::{Error, Result};
use std::path::Path;
use tch::{Device, Tensor};

/// Which labels get a heatmap.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelChoice {
    All,
    /// The k most probable.
    Top(usize),
    /// Every label with probability above the threshold (at least the top one).
    Positive(f32),
    /// These labels.
    Names(Vec<usize>),
}

impl std::str::FromStr for LabelChoice {
    type Err = Error;
    /// `all`, `topK` (`top3`), `positive` (p > 0.5), or comma-separated names.
    fn from_str(s: &str) -> Result<LabelChoice> {
        let t = s.trim().to_ascii_lowercase();
        if t == "all" {
            return Ok(LabelChoice::All);
        }
        if t == "positive" {
            return Ok(LabelChoice::Positive(0.5));
        }
        if let Some(k) = t.strip_prefix("top") {
            let k: usize = k.parse().map_err(|_| {
                Error::invalid("labels", format!("{s:?} (topK needs a number, e.g. top3)"))
            })?;
            if k == 0 || k > NUM_LABELS {
                return Err(Error::invalid(
                    "labels",
                    format!("{s:?} (k must be 1 to {NUM_LABELS})"),
                ));
            }
            return Ok(LabelChoice::Top(k));
        }
        let mut names: Vec<usize> = Vec::new();
        for n in t.split(',') {
            let l = crate::data::registry::label_index(n)?;
            // A label asked for twice is shown once.
            if !names.contains(&l) {
                names.push(l);
            }
        }
        Ok(LabelChoice::Names(names))
    }
}

impl LabelChoice {
    fn pick(&self, probs: &[f32]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..NUM_LABELS).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        match self {
            LabelChoice::All => (0..NUM_LABELS).collect(),
            LabelChoice::Top(k) => order[..*k].to_vec(),
            LabelChoice::Positive(t) => {
                let p: Vec<usize> = order.iter().copied().filter(|&l| probs[l] > *t).collect();
                if p.is_empty() {
                    order[..1].to_vec()
                } else {
                    p
                }
            }
            LabelChoice::Names(n) => n.clone(),
        }
    }
}

/// Options of an explanation.
#[derive(Debug, Clone)]
pub struct ExplainOptions {
    pub method: Method,
    pub stage: Stage,
    /// Further stages whose maps are averaged with `stage`'s, as
    /// pytorch-grad-cam does with several target layers (empty: `stage` alone).
    pub more_stages: Vec<Stage>,
    /// pytorch-grad-cam's `eigen_smooth` and `aug_smooth`.
    pub smooth: Smooth,
    pub labels: LabelChoice,
    pub overlay: OverlayOptions,
    pub gif_frames: usize,
    pub gif_delay_ms: u32,
    /// Inputs per forward for ScoreCAM / AblationCAM.
    pub chunk: usize,
    /// Deletion steps of each map's trust line (0: no trust line).
    pub trust_steps: usize,
}

impl Default for ExplainOptions {
    fn default() -> Self {
        ExplainOptions {
            method: Method::GradCam,
            stage: Stage::Layer4,
            more_stages: Vec::new(),
            smooth: Smooth::default(),
            labels: LabelChoice::Top(3),
            overlay: OverlayOptions::default(),
            gif_frames: 12,
            gif_delay_ms: 120,
            chunk: 64,
            trust_steps: 10,
        }
    }
}

/// One X-ray explained.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    pub name: String,
    pub method: String,
    pub size: usize,
    #[serde(skip)]
    pub pixels: Vec<u8>,
    /// Probability per label, in label order.
    pub probs: Vec<f32>,
    /// Ground truth per label when known.
    pub truth: Option<Vec<u8>>,
    /// The labels shown, in order.
    pub shown: Vec<usize>,
    /// One `size x size` map in [0, 1] per shown label.
    #[serde(skip)]
    pub maps: Vec<Vec<f32>>,
    /// Per shown label: the map as the method made it, before the ReLU and
    /// the scaling (`raw_side x raw_side`, the activation's resolution; the
    /// first stage's when several are averaged; the input's for FullGrad).
    #[serde(skip)]
    pub raw: Vec<Vec<f32>>,
    #[serde(skip)]
    pub raw_side: usize,
    /// Per shown label: the map is constant (after the ReLU nothing in the
    /// image raised the score), so it shows no location at all. Panels say
    /// so instead of showing a uniform colour as if it meant something.
    pub flat: Vec<bool>,
    /// Per shown label (empty when switched off): how faithful the map is.
    pub trust: Vec<MapTrust>,
    #[serde(skip)]
    pub options: Option<OverlayOptions>,
}

/// A map's trust line: its deletion AUC (the label's probability as its
/// hottest pixels are deleted; lower is more faithful) beside RandomCAM's
/// on the same image and label.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MapTrust {
    pub deletion_auc: f64,
    pub random_cam_deletion_auc: f64,
}

impl MapTrust {
    /// Whether the map beats the random baseline.
    pub fn beats_random(&self) -> bool {
        self.deletion_auc < self.random_cam_deletion_auc
    }
}

/// Deletion AUCs of `maps` (`[1, 14, S, S]`) and of `random` for the
/// `shown` labels of image `x` (`[1, 1, S, S]`).
fn trust_line(
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    random: &Tensor,
    shown: &[usize],
    o: &ExplainOptions,
) -> Result<Vec<MapTrust>> {
    use crate::trust::deletion::{auc, curves};
    let sel = Tensor::f_from_slice(&shown.iter().map(|&l| l as i64).collect::<Vec<_>>())?
        .f_to_device(maps.device())?;
    let area = |m: &Tensor| -> Result<Vec<f64>> {
        let c = curves(
            model,
            x,
            &m.f_index_select(1, &sel)?,
            shown,
            o.trust_steps,
            o.chunk,
            false,
        )?;
        Ok(Vec::try_from(
            auc(&c)?.f_to_kind(tch::Kind::Double)?.f_flatten(0, -1)?,
        )?)
    };
    let (a, r) = (area(maps)?, area(random)?);
    Ok(a.into_iter()
        .zip(r)
        .map(|(deletion_auc, random_cam_deletion_auc)| MapTrust {
            deletion_auc,
            random_cam_deletion_auc,
        })
        .collect())
}

/// The largest picture `load_xray` decodes (a 20000 x 20000 PNG of 430 KB
/// would take 2.9 GB): 50 megapixels, more than any radiograph.
pub const MAX_PIXELS: u64 = 50_000_000;

/// Explains `n` grey images (`n * s * s` bytes) with optional truth rows.
pub fn explain(
    model: &Model,
    pixels: &[u8],
    s: usize,
    names: &[String],
    truth: Option<&[u8]>,
    o: &ExplainOptions,
) -> Result<Vec<Explanation>> {
    let n = names.len();
    if pixels.len() != n * s * s {
        return Err(Error::invalid(
            "explain input",
            format!("{} bytes for {n} images of {s}x{s}", pixels.len()),
        ));
    }
    if s != model.size {
        return Err(Error::invalid(
            "explain input",
            format!(
                "images are {s} px but the model was trained on {} px",
                model.size
            ),
        ));
    }
    let x = Tensor::f_from_slice(pixels)?
        .f_view([n as i64, 1, s as i64, s as i64])?
        .f_to_kind(tch::Kind::Float)?
        .f_div_scalar(127.5)?
        .f_sub_scalar(1.0)?;
    let stages: Vec<Stage> = std::iter::once(o.stage)
        .chain(o.more_stages.iter().copied())
        .collect();
    let r = compute_stages_with(model, &x, o.method, &stages, &[], o.chunk, o.smooth)?;
    let random = if o.trust_steps > 0 {
        let m = Method::RandomCam;
        Some(compute_stages_with(model, &x, m, &stages, &[], o.chunk, o.smooth)?.maps)
    } else {
        None
    };
    let probs: Vec<f32> =
        Vec::<f32>::try_from(r.probs.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
    let maps: Vec<f32> = Vec::<f32>::try_from(r.maps.f_to_device(Device::Cpu)?.f_flatten(0, -1)?)?;
    let raw_side = r.raw.size().last().copied().unwrap_or(0) as usize;
    let raw: Vec<f32> = Vec::<f32>::try_from(
        r.raw
            .f_to_device(Device::Cpu)?
            .f_to_kind(tch::Kind::Float)?
            .f_flatten(0, -1)?,
    )?;
    let rr = raw_side * raw_side;
    let mut out = Vec::with_capacity(n);
    for (i, name) in names.iter().enumerate() {
        let p = probs[i * NUM_LABELS..(i + 1) * NUM_LABELS].to_vec();
        let shown = o.labels.pick(&p);
        let ms: Vec<Vec<f32>> = shown
            .iter()
            .map(|&l| maps[(i * NUM_LABELS + l) * s * s..(i * NUM_LABELS + l + 1) * s * s].to_vec())
            .collect();
        let flat = ms.iter().map(|m| is_flat(m)).collect();
        let raws: Vec<Vec<f32>> = shown
            .iter()
            .map(|&l| raw[(i * NUM_LABELS + l) * rr..(i * NUM_LABELS + l + 1) * rr].to_vec())
            .collect();
        let trust = match &random {
            Some(rm) => {
                let i = i as i64;
                trust_line(
                    model,
                    &x.f_narrow(0, i, 1)?,
                    &r.maps.f_narrow(0, i, 1)?,
                    &rm.f_narrow(0, i, 1)?,
                    &shown,
                    o,
                )?
            }
            None => Vec::new(),
        };
        out.push(Explanation {
            name: name.clone(),
            method: o.method.name().to_string(),
            size: s,
            pixels: pixels[i * s * s..(i + 1) * s * s].to_vec(),
            probs: p,
            truth: truth.map(|t| t[i * NUM_LABELS..(i + 1) * NUM_LABELS].to_vec()),
            shown,
            maps: ms,
            raw: raws,
            raw_side,
            flat,
            trust,
            options: Some(o.overlay),
        });
    }
    Ok(out)
}

/// A map whose values span less than 1e-6: it locates nothing.
pub fn is_flat(map: &[f32]) -> bool {
    let (lo, hi) = map
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    hi - lo < 1e-6
}

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

    /// Writes `<name>_panel.png`, `<name>_fade.gif`, `<name>_labels.gif`
    /// and `<name>.json` (probabilities per label) into `dir`; refuses to
    /// replace an existing file unless `overwrite`.
    pub fn write(
        &self,
        dir: &Path,
        frames: usize,
        delay_ms: u32,
        overwrite: bool,
    ) -> Result<Vec<std::path::PathBuf>> {
        let paths = output_paths(dir, &self.name);
        if !overwrite {
            refuse_existing(&paths)?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let [panel, fade, labels, json] = &paths;
        self.panel()?.save(panel)?;
        self.fade_gif(0, frames, delay_ms)?.save(fade)?;
        self.label_gif(delay_ms.max(400) * 2)?.save(labels)?;
        let probs: serde_json::Map<String, serde_json::Value> = LABELS
            .iter()
            .zip(&self.probs)
            .map(|(l, p)| (l.to_string(), serde_json::json!(p)))
            .collect();
        let v = serde_json::json!({
            "name": self.name, "method": self.method, "size": self.size,
            "probabilities": probs,
            "truth": self.truth.as_ref().map(|t| LABELS.iter().zip(t).filter(|(_, v)| **v == 1).map(|(l, _)| l.to_string()).collect::<Vec<_>>()),
            "shown": self.shown.iter().map(|&l| LABELS[l]).collect::<Vec<_>>(),
            "flat_maps": self.shown.iter().zip(&self.flat).filter(|(_, f)| **f).map(|(&l, _)| LABELS[l]).collect::<Vec<_>>(),
            "trust": self.shown.iter().zip(&self.trust).map(|(&l, t)| (LABELS[l].to_string(), serde_json::json!({
                "deletion_auc": t.deletion_auc,
                "random_cam_deletion_auc": t.random_cam_deletion_auc,
                "beats_random": t.beats_random(),
            }))).collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        let text =
            serde_json::to_string_pretty(&v).map_err(|e| Error::invalid("json", e.to_string()))?;
        crate::util::write_atomic(json, text.as_bytes())?;
        Ok(paths.to_vec())
    }
}

/// Which maps `--maps` writes beside the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapsOut {
    /// As the method made them, before ReLU and scaling, at the
    /// activation's resolution.
    Raw,
    /// As shown: ReLU'd, scaled to [0, 1], at the input's resolution.
    Scaled,
    Both,
}

impl std::str::FromStr for MapsOut {
    type Err = Error;
    fn from_str(s: &str) -> Result<MapsOut> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" => Ok(MapsOut::Raw),
            "scaled" => Ok(MapsOut::Scaled),
            "both" => Ok(MapsOut::Both),
            _ => Err(Error::invalid(
                "--maps",
                format!("{s:?} (expected raw, scaled or both)"),
            )),
        }
    }
}

impl Explanation {
    /// Writes `<name>_maps.npz` into `dir` (atomically), readable with
    /// `numpy.load`: `labels` (int64, the shown labels' indices, as in the
    /// JSON), and `raw` (`[L, h, w]` float32) and/or `scaled` (`[L, H, W]`
    /// float32).
    pub fn write_maps(&self, dir: &Path, which: MapsOut) -> Result<std::path::PathBuf> {
        use crate::data::npz::{Compression, NpzWriter};
        let path = maps_path(dir, &self.name);
        let mut w = NpzWriter::create(&path, Compression::Deflated)?;
        let labels: Vec<i64> = self.shown.iter().map(|&l| l as i64).collect();
        w.add_i64("labels", &[labels.len()], &labels)?;
        let l = self.shown.len();
        if which != MapsOut::Scaled {
            let flat: Vec<f32> = self.raw.concat();
            w.add_f32("raw", &[l, self.raw_side, self.raw_side], &flat)?;
        }
        if which != MapsOut::Raw {
            let flat: Vec<f32> = self.maps.concat();
            w.add_f32("scaled", &[l, self.size, self.size], &flat)?;
        }
        w.finish()
    }
}

/// The file [`Explanation::write_maps`] writes for `name` in `dir`.
pub fn maps_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{}_maps.npz", output_stem(name)))
}

/// A file-name stem for an explained image's outputs: its name with every
/// letter and digit kept (any script: `胸部.png` stays `胸部.png`) and
/// anything else (separators, spaces, control characters) as `_`.
pub fn output_stem(name: &str) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    if stem.is_empty() {
        stem = "image".into();
    }
    stem
}

/// The four files [`Explanation::write`] writes for `name` in `dir`.
pub fn output_paths(dir: &Path, name: &str) -> [std::path::PathBuf; 4] {
    let stem = output_stem(name);
    ["_panel.png", "_fade.gif", "_labels.gif", ".json"].map(|s| dir.join(format!("{stem}{s}")))
}

/// Refuses when any of `paths` exists (an earlier explain wrote it).
pub fn refuse_existing(paths: &[std::path::PathBuf]) -> Result<()> {
    let existing: Vec<&std::path::PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    match existing.first() {
        None => Ok(()),
        Some(p) => Err(Error::invalid(
            "output",
            format!(
                "{} already exists{}: pass --overwrite to replace, or choose another --out",
                p.display(),
                match existing.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                }
            ),
        )),
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

/// Explains images `idx` of `split` (named `<split>_<index>`, with their
/// ground truth); an index past the split's end is an error naming both.
pub fn explain_split(
    model: &Model,
    split: &crate::data::Split,
    idx: &[usize],
    o: &ExplainOptions,
) -> Result<Vec<Explanation>> {
    if let Some(bad) = idx.iter().find(|&&i| i >= split.len()) {
        return Err(Error::invalid(
            "image index",
            format!(
                "{bad}, but the {} split has {} images",
                split.name,
                split.len()
            ),
        ));
    }
    let pixels: Vec<u8> = idx.iter().flat_map(|&i| split.image(i).to_vec()).collect();
    let truth: Vec<u8> = idx
        .iter()
        .flat_map(|&i| split.label_row(i).to_vec())
        .collect();
    let names: Vec<String> = idx
        .iter()
        .map(|&i| split_image_name(split.name, i))
        .collect();
    explain(model, &pixels, split.size, &names, Some(&truth), o)
}

/// The name [`explain_split`] gives image `i` of a split (`test_3`): its
/// outputs are named after it.
pub fn split_image_name(split: crate::data::SplitName, i: usize) -> String {
    format!("{split}_{i}")
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
