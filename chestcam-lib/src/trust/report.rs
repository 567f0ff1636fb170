//! The trust report: every check, for every map source (the methods under
//! test and the baselines RandomCAM and the centre prior), on a batch of
//! one split; as JSON (every number), a markdown table (method x metric,
//! macro and per label, baselines beside) and pictures (deletion and
//! insertion curves, the randomisation cascade, one map dissolving).
use super::baselines::{maps, MapSource};
use super::data_randomisation::{data_randomisation, DataRandomisation};
use super::randomisation::{cascade, Cascade, Compared, Similarity, CASCADE};
use super::{confidence, deletion, label_sensitivity, mass, otsu, pointing, road, Scores};
use crate::cam::Method;
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::data::Split;
use crate::model::{Model, Stage};
use crate::progress::Progress;
use crate::train::Precision;
use crate::viz::charts::{xy_curves, Chart};
use crate::viz::heatmap::{compose, overlay_tile, xray_tile, OverlayOptions, Picture, Tile};
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// A family of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Pointing game, mass in mask, Otsu IoU (needs ground truth).
    Localisation,
    /// Deletion and insertion curves.
    Deletion,
    /// ROAD MoRF, LeRF and combined.
    Road,
    /// Confidence change when the image is multiplied by the map.
    Confidence,
    /// Cascading model-parameter randomisation.
    Randomisation,
    /// Each label's map against the other labels' maps.
    LabelSensitivity,
}

impl Check {
    pub const ALL: [Check; 6] = [
        Check::Localisation,
        Check::Deletion,
        Check::Road,
        Check::Confidence,
        Check::Randomisation,
        Check::LabelSensitivity,
    ];
}

crate::choices!(Check, "trust metric" {
    Localisation => "localisation" | "localization",
    Deletion => "deletion" | "insertion",
    Road => "road",
    Confidence => "confidence",
    Randomisation => "randomisation" | "randomization" | "cascade",
    LabelSensitivity => "labels" | "label-sensitivity",
});

/// What to check and how.
#[derive(Debug, Clone)]
pub struct TrustOptions {
    /// The methods under test; RandomCAM and the centre prior are added as
    /// baselines.
    pub methods: Vec<Method>,
    pub stage: Stage,
    /// Label indices (all 14 when empty).
    pub labels: Vec<usize>,
    pub checks: Vec<Check>,
    /// Deletion/insertion steps.
    pub steps: usize,
    /// ROAD's percentiles, imputation noise (0.01 as the paper; 0 for
    /// none) and tie rule (pytorch-grad-cam's threshold rule by default).
    pub road: road::RoadSettings,
    /// Pointing-game tolerance in pixels (default: 15 px at 224, scaled).
    pub tolerance: Option<f64>,
    /// Images per forward.
    pub chunk: usize,
    /// The arithmetic of the faithfulness checks' forwards of perturbed
    /// images ([`super::Forwards`]; `Auto` is resolved for the model's
    /// device and size). fp32 by default: the reference implementations'
    /// numbers.
    pub precision: Precision,
    pub seed: u64,
}

impl Default for TrustOptions {
    fn default() -> Self {
        TrustOptions {
            methods: vec![
                Method::GradCam,
                Method::GradCamPlusPlus,
                Method::XGradCam,
                Method::HiResCam,
                Method::LayerCam,
                Method::EigenCam,
            ],
            stage: Stage::Layer4,
            labels: Vec::new(),
            checks: Check::ALL.to_vec(),
            steps: 10,
            road: road::RoadSettings::default(),
            tolerance: None,
            chunk: 64,
            precision: Precision::Fp32,
            seed: 0,
        }
    }
}

/// The methods under test, then the baselines RandomCAM and the centre prior.
fn sources(o: &TrustOptions) -> Vec<MapSource> {
    let mut sources: Vec<MapSource> = o.methods.iter().map(|&m| MapSource::Cam(m)).collect();
    sources.dedup();
    for base in [MapSource::Cam(Method::RandomCam), MapSource::CentrePrior] {
        if !sources.contains(&base) {
            sources.push(base);
        }
    }
    sources
}

/// Normalised images `idx` of `split` as `[b, 1, S, S]` on the CPU.
fn batch(split: &Split, idx: &[usize]) -> Result<Tensor> {
    let (s, b) = (split.size as i64, idx.len() as i64);
    let pixels: Vec<u8> = idx.iter().flat_map(|&i| split.image(i).to_vec()).collect();
    Ok(Tensor::f_from_slice(&pixels)?
        .f_view([b, 1, s, s])?
        .f_to_kind(Kind::Float)?
        .f_div_scalar(127.5)?
        .f_sub_scalar(1.0)?)
}

/// Ground truth for the images checked.
pub struct Truth {
    /// `[b, 14, S, S]` 0/1 (any kind, any device).
    pub masks: Tensor,
    /// Where it came from ("phantom masks", "boxes from F").
    pub what: String,
}

/// One metric of one source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Metric {
    pub name: String,
    /// The mean of the per-label means.
    pub macro_mean: Option<f64>,
    pub per_label: Vec<Option<f64>>,
    /// Image-label pairs scored.
    pub count: usize,
    /// Per image and label (NaN, written as null, where not scored).
    pub values: Scores,
}

impl Metric {
    fn new(name: &str, values: Scores) -> Metric {
        Metric {
            name: name.to_string(),
            macro_mean: values.macro_mean(),
            per_label: values.per_label(),
            count: values.count(),
            values,
        }
    }
}

/// Every number of one map source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceReport {
    pub method: String,
    pub baseline: bool,
    pub metrics: Vec<Metric>,
    /// Mean probability after each deletion / insertion step.
    pub deletion_curve: Option<Vec<f64>>,
    pub insertion_curve: Option<Vec<f64>>,
    pub label_sensitivity: Option<Similarity>,
}

impl SourceReport {
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrustReport {
    pub data: String,
    pub synthetic: bool,
    pub split: String,
    /// The whole split's identity (what a run's checkpoints record of it).
    pub split_fingerprint: crate::data::SplitFingerprint,
    pub images: Vec<usize>,
    pub labels: Vec<String>,
    pub stage: Stage,
    pub truth: Option<String>,
    pub tolerance_px: f64,
    pub steps: usize,
    /// The arithmetic of the faithfulness checks' forwards (resolved).
    pub precision: Precision,
    /// As `percentiles`, `noise` and `road_ties` in the JSON.
    #[serde(flatten)]
    pub road: road::RoadSettings,
    pub sources: Vec<SourceReport>,
    pub cascade: Vec<Cascade>,
    /// The data randomisation test (empty unless asked for, with a model
    /// trained on permuted labels: [`TrustReport::add_data_randomisation`]).
    pub data_randomisation: Vec<DataRandomisation>,
    /// The (image, label) of the dissolving strip.
    pub strip: (usize, String),
    #[serde(skip)]
    strip_pixels: Vec<u8>,
    #[serde(skip)]
    size: usize,
}

/// Metric names, their direction (true: higher is better) and meaning.
pub const METRICS: [(&str, bool, &str); 13] = [
    (
        "pointing_game",
        true,
        "map maximum inside the lesion (true positives)",
    ),
    ("pointing_game_p50", true, "the same, only where p > 0.5"),
    ("mass", true, "share of the map inside the lesion"),
    ("mass_p50", true, "the same, only where p > 0.5"),
    (
        "otsu_iou",
        true,
        "IoU of the Otsu-thresholded map with the lesion",
    ),
    ("otsu_iou_p50", true, "the same, only where p > 0.5"),
    (
        "deletion_auc",
        false,
        "probability as the hottest pixels are deleted",
    ),
    (
        "insertion_auc",
        true,
        "probability as the hottest pixels are put back",
    ),
    (
        "road_morf",
        false,
        "ROAD: change after removing the most relevant",
    ),
    (
        "road_lerf",
        true,
        "ROAD: change after removing the least relevant",
    ),
    ("road_combined", true, "ROAD: (LeRF - MoRF) / 2"),
    (
        "average_drop",
        false,
        "drop in probability on image x map, relative",
    ),
    (
        "increase",
        true,
        "share of maps whose image x map raises the probability",
    ),
];

fn keep_where(t: &Tensor) -> Result<Vec<Vec<bool>>> {
    let s = t.size();
    let v: Vec<f64> = Vec::try_from(
        t.f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_flatten(0, -1)?,
    )?;
    Ok(v.chunks(s[1].max(1) as usize)
        .map(|r| r.iter().map(|&x| x > 0.5).collect())
        .collect())
}

fn curve_mean(c: &Tensor) -> Result<Vec<f64>> {
    let n = c.size().last().copied().unwrap_or(0);
    Ok(Vec::try_from(
        c.f_reshape([-1, n])?
            .f_to_kind(Kind::Double)?
            .f_mean_dim(0i64, false, Kind::Double)?,
    )?)
}

/// Runs the checks on the images `idx` of `split` (`data` names the data
/// set; `truth` holds their masks when known).
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Model,
    split: &Split,
    idx: &[usize],
    data: &crate::data::Provenance,
    truth: Option<Truth>,
    o: &TrustOptions,
    progress: &mut dyn Progress,
) -> Result<TrustReport> {
    if idx.is_empty() {
        return Err(Error::invalid("trust", "no images to check (--images 0?)"));
    }
    if let Some(&bad) = idx.iter().find(|&&i| i >= split.len()) {
        return Err(Error::invalid(
            "trust",
            format!(
                "image {bad} but the {} split has {} images",
                split.name,
                split.len()
            ),
        ));
    }
    if split.size != model.size {
        return Err(Error::invalid(
            "trust",
            format!(
                "images are {} px but the model was trained on {} px",
                split.size, model.size
            ),
        ));
    }
    let all: Vec<usize> = (0..NUM_LABELS).collect();
    let labels = if o.labels.is_empty() {
        all
    } else {
        o.labels.clone()
    };
    if let Some(bad) = labels.iter().find(|&&l| l >= NUM_LABELS) {
        return Err(Error::invalid(
            "label index",
            format!("{bad} (there are {NUM_LABELS} labels)"),
        ));
    }
    let (s, b) = (split.size as i64, idx.len() as i64);
    let fw = super::Forwards {
        chunk: o.chunk,
        precision: o.precision.resolve(model.device(), split.size),
    };
    let pixels: Vec<u8> = idx.iter().flat_map(|&i| split.image(i).to_vec()).collect();
    let x = batch(split, idx)?;
    let label_rows: Vec<u8> = idx
        .iter()
        .flat_map(|&i| split.label_row(i).to_vec())
        .collect();
    let lsel = Tensor::f_from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>())?;
    let present = Tensor::f_from_slice(&label_rows)?
        .f_view([b, NUM_LABELS as i64])?
        .f_index_select(1, &lsel)?; // [b, L]
    let masks = match &truth {
        Some(t) => {
            let m = t.masks.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
            if m.size() != [b, NUM_LABELS as i64, s, s] {
                return Err(Error::invalid(
                    "ground truth",
                    format!("masks of shape {:?} for {b} images of {s} px (expected [{b}, 14, {s}, {s}])", m.size()),
                ));
            }
            Some(m.f_index_select(1, &lsel)?)
        }
        None => None,
    };
    let tol = o
        .tolerance
        .unwrap_or_else(|| pointing::default_tolerance(split.size));
    let sources = sources(o);
    let has = |c: Check| o.checks.contains(&c);
    let mut reports = Vec::new();
    let mut strip = (0usize, 0usize);
    progress.start("trust checks", Some(sources.len() as u64));
    for (si, &src) in sources.iter().enumerate() {
        let set = maps(model, &x, src, o.stage, &labels, o.chunk)?;
        let probs = set
            .probs
            .f_to_device(Device::Cpu)?
            .f_index_select(1, &lsel)?;
        if si == 0 {
            // The strip shows the most probable true finding (else the most probable).
            let score = probs.f_add(&present.f_to_kind(Kind::Float)?)?;
            let best = score
                .f_flatten(0, -1)?
                .f_argmax(0, false)?
                .f_int64_value(&[])? as usize;
            strip = (best / labels.len(), best % labels.len());
        }
        let mut metrics = Vec::new();
        let (mut dcurve, mut icurve, mut sens) = (None, None, None);
        if let (true, Some(m)) = (has(Check::Localisation), &masks) {
            let nonempty = m.f_amax([-2i64, -1].as_slice(), false)?;
            let tp = present.f_to_kind(Kind::Float)?.f_mul(&nonempty)?;
            let tp50 = tp.f_mul(&probs.f_gt(0.5)?.f_to_kind(Kind::Float)?)?;
            let (keep, keep50) = (keep_where(&tp)?, keep_where(&tp50)?);
            let maps_cpu = set.maps.f_to_device(Device::Cpu)?;
            for (name, t) in [
                ("pointing_game", pointing::pointing_game(&maps_cpu, m, tol)?),
                ("mass", mass::mass_in_mask(&maps_cpu, m)?),
                ("otsu_iou", otsu::otsu_iou(&maps_cpu, m)?),
            ] {
                let sc = Scores::from_tensor(&t, &labels)?;
                metrics.push(Metric::new(name, sc.clone().only(&keep)));
                metrics.push(Metric::new(&format!("{name}_p50"), sc.only(&keep50)));
            }
        }
        if has(Check::Deletion) {
            let d = deletion::deletion_insertion(model, &x, &set.maps, &labels, o.steps, fw)?;
            metrics.push(Metric::new(
                "deletion_auc",
                Scores::from_tensor(&d.deletion_auc, &labels)?,
            ));
            metrics.push(Metric::new(
                "insertion_auc",
                Scores::from_tensor(&d.insertion_auc, &labels)?,
            ));
            dcurve = Some(curve_mean(&d.deletion)?);
            icurve = Some(curve_mean(&d.insertion)?);
        }
        if has(Check::Road) {
            let r = road::road(model, &x, &set.maps, &labels, &o.road, fw)?;
            let mean = |t: &Tensor| t.f_mean_dim(-1i64, false, Kind::Float);
            metrics.push(Metric::new(
                "road_morf",
                Scores::from_tensor(&mean(&r.morf)?, &labels)?,
            ));
            metrics.push(Metric::new(
                "road_lerf",
                Scores::from_tensor(&mean(&r.lerf)?, &labels)?,
            ));
            metrics.push(Metric::new(
                "road_combined",
                Scores::from_tensor(&r.combined, &labels)?,
            ));
        }
        if has(Check::Confidence) {
            let c = confidence::confidence_change(model, &x, &set.maps, &labels, fw)?;
            metrics.push(Metric::new(
                "average_drop",
                Scores::from_tensor(&c.relative_drop, &labels)?,
            ));
            metrics.push(Metric::new(
                "increase",
                Scores::from_tensor(&c.increase, &labels)?,
            ));
        }
        if has(Check::LabelSensitivity) && matches!(src, MapSource::Cam(_)) {
            sens = Some(label_sensitivity::label_sensitivity(&set)?);
        }
        reports.push(SourceReport {
            method: src.name().to_string(),
            baseline: src.is_baseline(),
            metrics,
            deletion_curve: dcurve,
            insertion_curve: icurve,
            label_sensitivity: sens,
        });
        progress.update(si as u64 + 1);
    }
    progress.finish();
    let cascade = if has(Check::Randomisation) {
        cascade(
            model,
            &Compared {
                x: &x,
                sources: &sources,
                stage: o.stage,
                labels: &labels,
                chunk: o.chunk,
                seed: o.seed,
            },
            strip,
            progress,
        )?
    } else {
        Vec::new()
    };
    let su = s as usize;
    Ok(TrustReport {
        data: data.to_string(),
        synthetic: data.synthetic,
        split: split.name.to_string(),
        split_fingerprint: crate::data::SplitFingerprint::of(split),
        images: idx.to_vec(),
        labels: labels.iter().map(|&l| LABELS[l].to_string()).collect(),
        stage: o.stage,
        truth: truth.map(|t| t.what),
        tolerance_px: tol,
        steps: o.steps,
        precision: fw.precision,
        road: o.road.clone(),
        sources: reports,
        cascade,
        data_randomisation: Vec::new(),
        strip: (idx[strip.0], LABELS[labels[strip.1]].to_string()),
        strip_pixels: pixels[strip.0 * su * su..(strip.0 + 1) * su * su].to_vec(),
        size: su,
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

impl TrustReport {
    /// Adds the data randomisation test: `model` (the one this report
    /// checked) against `shuffled`, trained on permuted labels, on the
    /// report's images of `split`, labels and stage, for every map source
    /// of `o` (the baselines included).
    pub fn add_data_randomisation(
        &mut self,
        model: &Model,
        shuffled: &Model,
        split: &Split,
        o: &TrustOptions,
    ) -> Result<()> {
        let labels: Vec<usize> = self
            .labels
            .iter()
            .map(|n| crate::data::registry::label_index(n))
            .collect::<Result<_>>()?;
        let x = batch(split, &self.images)?.f_to_device(model.device())?;
        self.data_randomisation = data_randomisation(
            model,
            shuffled,
            &Compared {
                x: &x,
                sources: &sources(o),
                stage: self.stage,
                labels: &labels,
                chunk: o.chunk,
                seed: o.seed,
            },
        )?;
        Ok(())
    }

    pub fn source(&self, method: &str) -> Option<&SourceReport> {
        self.sources.iter().find(|s| s.method == method)
    }

    /// The metrics present, in table order.
    fn metric_names(&self) -> Vec<(&'static str, bool, &'static str)> {
        METRICS
            .iter()
            .copied()
            .filter(|(n, _, _)| self.sources.iter().any(|s| s.metric(n).is_some()))
            .collect()
    }

    /// The markdown report: the macro table, then per label.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut md = String::new();
        let names = self.metric_names();
        let _ = writeln!(md, "# Can these maps be trusted?\n");
        let _ = writeln!(
            md,
            "Data: {}, {} split (CRC-32 {:08x}), {} images, stage {}. Ground truth: {}. Baselines: RandomCAM (random channel weights) and CentrePrior (a Gaussian at the centre); a method that does not beat them tells nothing.\n",
            self.data,
            self.split,
            self.split_fingerprint.crc32,
            self.images.len(),
            self.stage,
            self.truth.as_deref().unwrap_or("none (localisation not scored)")
        );
        let _ = writeln!(
            md,
            "## Macro means (mean over labels of the per-label mean)\n"
        );
        let head: Vec<String> = names
            .iter()
            .map(|(n, up, _)| format!("{n} {}", if *up { "↑" } else { "↓" }))
            .collect();
        let _ = writeln!(md, "| method | {} |", head.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(names.len()));
        for s in &self.sources {
            let cells: Vec<String> = names
                .iter()
                .map(|(n, _, _)| fmt(s.metric(n).and_then(|m| m.macro_mean)))
                .collect();
            let name = if s.baseline {
                format!("{} (baseline)", s.method)
            } else {
                s.method.clone()
            };
            let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
        }
        let _ = writeln!(md);
        for (n, up, what) in &names {
            let _ = writeln!(
                md,
                "- `{n}` ({}): {what}.",
                if *up {
                    "higher is better"
                } else {
                    "lower is better"
                }
            );
        }
        let ran = |n: &str| names.iter().any(|(m, _, _)| m.starts_with(n));
        let mut how = Vec::new();
        if ran("pointing") {
            how.push(format!("pointing-game tolerance {} px", self.tolerance_px));
        }
        if ran("deletion") {
            how.push(format!("deletion/insertion in {} steps", self.steps));
        }
        if ran("deletion") || ran("road") || ran("average_drop") {
            how.push(format!(
                "the perturbed images' forwards in {}{}",
                self.precision,
                if self.precision == Precision::Fp32 {
                    ""
                } else {
                    " autocast (faster than the reference implementations' float32; probabilities within about 0.01 of theirs, so the tables may differ from fp32 in the second or third decimal)"
                }
            ));
        }
        if ran("road") {
            how.push(format!(
                "ROAD at percentiles {:?}, imputation noise {}, ties {}",
                self.road.percentiles,
                self.road.noise,
                match self.road.ties {
                    road::Ties::Threshold =>
                        "by threshold (every pixel at the percentile removed, as pytorch-grad-cam)",
                    road::Ties::Rank => "by rank (a fixed share removed, ties in random order)",
                }
            ));
        }
        if !how.is_empty() {
            let _ = writeln!(md, "\nSettings: {}.\n", how.join("; "));
        }
        if !self.cascade.is_empty() {
            let _ = writeln!(
                md,
                "## Cascading randomisation (Spearman of |map| with the trained model's maps)\n"
            );
            let _ = writeln!(
                md,
                "| method | {} | random pairs | passes |",
                CASCADE.map(|c| format!("+{c}")).join(" | ")
            );
            let _ = writeln!(md, "|---|{}---|---|", "---|".repeat(CASCADE.len()));
            for c in &self.cascade {
                let cells: Vec<String> = c.steps.iter().map(|s| fmt(s.spearman_abs)).collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    c.method,
                    cells.join(" | "),
                    fmt(c.baseline.spearman_abs),
                    if c.passes { "yes" } else { "NO" }
                );
            }
            let _ = writeln!(md, "\nA method passes when, once the stage it reads ({}) is random, its maps are no more like the trained ones than maps of two different images are. SSIM and signed Spearman are in trust.json.\n", self.stage);
        }
        if !self.data_randomisation.is_empty() {
            let _ = writeln!(
                md,
                "## Data randomisation (Spearman of |map| with the maps of a model trained on permuted labels)\n"
            );
            let _ = writeln!(md, "| method | Spearman of abs | SSIM | random pairs | passes |\n|---|---|---|---|---|");
            for d in &self.data_randomisation {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    d.method,
                    fmt(d.similarity.spearman_abs),
                    fmt(d.similarity.ssim),
                    fmt(d.baseline.spearman_abs),
                    if d.passes { "yes" } else { "NO" }
                );
            }
            let _ = writeln!(md, "\nA method passes when its maps of a model that learned nothing but memorised labels are no more like the real model's than maps of two different images are (Adebayo et al. 2018). A map that ignores the model, such as the centre prior, cannot pass.\n");
        }
        let sens: Vec<&SourceReport> = self
            .sources
            .iter()
            .filter(|s| s.label_sensitivity.is_some())
            .collect();
        if !sens.is_empty() {
            let _ = writeln!(md, "## Label sensitivity (similarity between the maps of two labels of one image; 1 = the same map for every label)\n");
            let _ = writeln!(md, "| method | Spearman | SSIM |\n|---|---|---|");
            for s in sens {
                let l = s.label_sensitivity.as_ref();
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    s.method,
                    fmt(l.and_then(|l| l.spearman)),
                    fmt(l.and_then(|l| l.ssim))
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Per label\n");
        for (n, _, _) in &names {
            let _ = writeln!(md, "### {n}\n");
            let _ = writeln!(md, "| method | {} |", self.labels.join(" | "));
            let _ = writeln!(md, "|---|{}", "---|".repeat(self.labels.len()));
            for s in &self.sources {
                if let Some(m) = s.metric(n) {
                    let cells: Vec<String> = m.per_label.iter().map(|v| fmt(*v)).collect();
                    let _ = writeln!(md, "| {} | {} |", s.method, cells.join(" | "));
                }
            }
            let _ = writeln!(md);
        }
        md
    }

    /// The macro table as HTML (methods x metrics, baselines marked), with
    /// the cascade verdicts: what a notebook shows.
    pub fn html_table(&self) -> String {
        use crate::viz::display::html_escape as esc;
        let names = self.metric_names();
        let mut h = format!(
            "<p>{} &mdash; {} split, {} images; ground truth: {}</p><table><tr><th>method</th>",
            esc(&self.data),
            esc(&self.split),
            self.images.len(),
            esc(self.truth.as_deref().unwrap_or("none"))
        );
        for (n, up, what) in &names {
            h += &format!(
                "<th title=\"{}\">{} {}</th>",
                esc(what),
                esc(n),
                if *up { "&uarr;" } else { "&darr;" }
            );
        }
        if !self.cascade.is_empty() {
            h += "<th>randomisation check</th>";
        }
        h += "</tr>";
        for s in &self.sources {
            let style = if s.baseline {
                " style=\"color:#777\""
            } else {
                ""
            };
            h += &format!(
                "<tr{style}><td>{}{}</td>",
                esc(&s.method),
                if s.baseline { " (baseline)" } else { "" }
            );
            for (n, _, _) in &names {
                h += &format!("<td>{}</td>", fmt(s.metric(n).and_then(|m| m.macro_mean)));
            }
            if !self.cascade.is_empty() {
                let v = self.cascade.iter().find(|c| c.method == s.method);
                h += &format!(
                    "<td>{}</td>",
                    v.map(|c| if c.passes { "passes" } else { "FAILS" })
                        .unwrap_or("-")
                );
            }
            h += "</tr>";
        }
        h + "</table>"
    }

    pub fn evcxr_display(&self) {
        crate::viz::emit_text("text/html", &self.html_table());
    }

    /// Mean deletion (or insertion) curves of every source.
    pub fn curves_chart(&self, insertion: bool) -> Result<Chart> {
        let series: Vec<(&str, Vec<(f64, f64)>)> = self
            .sources
            .iter()
            .filter_map(|s| {
                let c = if insertion {
                    &s.insertion_curve
                } else {
                    &s.deletion_curve
                };
                c.as_ref().map(|c| {
                    let n = (c.len().max(2) - 1) as f64;
                    (
                        s.method.as_str(),
                        c.iter()
                            .enumerate()
                            .map(|(i, v)| (i as f64 / n, *v))
                            .collect(),
                    )
                })
            })
            .collect();
        let what = if insertion { "insertion" } else { "deletion" };
        xy_curves(
            &format!("{what}: mean probability of the label"),
            (
                0.0..1.0,
                if insertion {
                    "fraction of pixels put back"
                } else {
                    "fraction of pixels deleted"
                },
            ),
            (0.0..1.0, "probability"),
            &series,
        )
    }

    /// Spearman of |map| with the trained maps as layers are randomised.
    pub fn cascade_chart(&self) -> Result<Chart> {
        let mut series: Vec<(String, Vec<(f64, f64)>)> = self
            .cascade
            .iter()
            .map(|c| {
                let mut pts = vec![(0.0, 1.0)];
                pts.extend(
                    c.steps
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| s.spearman_abs.map(|v| ((i + 1) as f64, v))),
                );
                (c.method.clone(), pts)
            })
            .collect();
        if let Some(base) = super::mean(self.cascade.iter().filter_map(|c| c.baseline.spearman_abs))
        {
            series.push((
                "random pairs".into(),
                vec![(0.0, base), (CASCADE.len() as f64, base)],
            ));
        }
        let refs: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(n, p)| (n.as_str(), p.clone()))
            .collect();
        xy_curves(
            "randomisation cascade: 0 trained, 1 head, 2 layer4, 3 layer3, 4 layer2, 5 layer1, 6 stem",
            (0.0..CASCADE.len() as f64, "groups randomised (head first)"),
            (-0.2..1.05, "Spearman of |map| with trained maps"),
            &refs,
        )
    }

    /// One image's map (first method) as the layers are randomised.
    pub fn cascade_strip(&self) -> Result<Picture> {
        let c = self.cascade.first().ok_or_else(|| {
            Error::invalid("cascade strip", "the randomisation check was not run")
        })?;
        let o = OverlayOptions {
            tile: 160,
            ..Default::default()
        };
        let mut tiles = vec![Tile {
            image: xray_tile(&self.strip_pixels, self.size, &o),
            title: vec!["X-RAY".into(), self.strip.1.to_uppercase()],
        }];
        for (k, m) in c.strip.iter().enumerate() {
            let title = if k == 0 {
                "TRAINED".to_string()
            } else {
                format!("+{}", CASCADE[k - 1].to_uppercase())
            };
            tiles.push(Tile {
                image: overlay_tile(&self.strip_pixels, m, self.size, &o)?,
                title: vec![title, String::new()],
            });
        }
        Ok(Picture {
            image: compose(
                &tiles,
                tiles.len(),
                &format!(
                    "{} as the model is randomised (image {})",
                    c.method, self.strip.0
                ),
            ),
        })
    }

    /// Writes `trust.json`, `trust.md` and the pictures into `dir`, each
    /// file atomically; returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("json", e.to_string()))?;
        // Everything is rendered before the first file is written.
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("trust.json", json.into_bytes()),
            ("trust.md", self.markdown().into_bytes()),
        ];
        if self.sources.iter().any(|s| s.deletion_curve.is_some()) {
            files.push(("deletion.svg", self.curves_chart(false)?.svg.into_bytes()));
            files.push(("insertion.svg", self.curves_chart(true)?.svg.into_bytes()));
        }
        if !self.cascade.is_empty() {
            files.push(("cascade.svg", self.cascade_chart()?.svg.into_bytes()));
            files.push((
                "cascade_strip.png",
                crate::viz::png_bytes(&self.cascade_strip()?.image)?,
            ));
        }
        let mut out = Vec::new();
        for (name, bytes) in files {
            let p = dir.join(name);
            crate::util::write_atomic(&p, &bytes)?;
            out.push(p);
        }
        Ok(out)
    }
}
