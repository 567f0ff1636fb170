//! From a model and X-rays to what a person looks at: the labels to show,
//! their heatmaps and trust lines (this file), the panels and GIFs
//! (`pictures.rs`), and the files `chestcam explain` writes (`files.rs`).
//! Reading a user's X-ray lives in `data::xray`.
mod files;
mod pictures;

pub use crate::data::xray::{load_xray, MAX_PIXELS};
pub use files::{maps_path, output_paths, output_stem, refuse_existing, MapsOut};
pub use pictures::{label_grid, method_comparison};

use super::{compute_stages_with, Method, Smooth};
use crate::data::registry::NUM_LABELS;
use crate::model::{Model, Stage};
use crate::viz::heatmap::OverlayOptions;
use crate::{Error, Result};
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

impl ExplainOptions {
    /// `stage`, then `more_stages`: the stages whose maps are averaged.
    pub fn stages(&self) -> Vec<Stage> {
        std::iter::once(self.stage)
            .chain(self.more_stages.iter().copied())
            .collect()
    }
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
            crate::trust::Forwards::fp32(o.chunk),
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
    let stages = o.stages();
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

impl Explanation {
    /// The same explanation showing only the labels `choice` picks (chosen
    /// from its probabilities, as [`explain`] chooses them), so that one
    /// explanation of all 14 labels serves both the viewer and the pictures
    /// without a second pass. Every picked label must be among those shown.
    pub fn restricted(&self, choice: &LabelChoice) -> Result<Explanation> {
        let shown = choice.pick(&self.probs);
        let mut at = Vec::with_capacity(shown.len());
        for &l in &shown {
            let i = self.shown.iter().position(|&s| s == l).ok_or_else(|| {
                Error::invalid(
                    "explanation",
                    format!(
                        "label {} is not among the {} labels explained for {}",
                        crate::data::registry::LABELS.get(l).copied().unwrap_or("?"),
                        self.shown.len(),
                        self.name
                    ),
                )
            })?;
            at.push(i);
        }
        let pick = |v: &[Vec<f32>]| at.iter().map(|&i| v[i].clone()).collect::<Vec<_>>();
        Ok(Explanation {
            shown,
            maps: pick(&self.maps),
            raw: pick(&self.raw),
            flat: at.iter().map(|&i| self.flat[i]).collect(),
            trust: if self.trust.is_empty() {
                Vec::new()
            } else {
                at.iter().map(|&i| self.trust[i]).collect()
            },
            ..self.clone()
        })
    }
}

/// A map whose values span less than 1e-6: it locates nothing.
pub fn is_flat(map: &[f32]) -> bool {
    let (lo, hi) = map
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    hi - lo < 1e-6
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
