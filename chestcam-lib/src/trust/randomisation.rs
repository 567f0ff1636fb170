//! Cascading model-parameter randomisation (Adebayo et al., "Sanity
//! Checks for Saliency Maps", NeurIPS 2018), with the random-pair baseline
//! of Arun et al. ("Assessing the Trustworthiness of Saliency Maps for
//! Localizing Abnormalities in Medical Imaging", Radiology: AI 2021).
//!
//! The network is re-initialised from the head down to the stem, one group
//! at a time (head, layer4, layer3, layer2, layer1, stem; each keeps the
//! earlier ones random), with a fresh ResNet-18's initial weights (batch
//! norms back to identity statistics). After each step the maps are
//! computed again and compared with the trained model's maps of the same
//! image and label: Spearman on the signed map, Spearman on its absolute
//! value, and SSIM on the shown map. The baseline is the same similarity
//! between the trained model's maps of two different images (random pairs,
//! same label). A method passes when its similarity (Spearman of the
//! absolute maps) has fallen to that baseline or below once the stage it
//! reads is randomised: its maps then depend on what the model learned,
//! not only on the image.
use super::baselines::{maps, MapSet, MapSource};
use super::similarity::{spearman, ssim};
use crate::model::{Model, Stage};
use crate::util::Rng;
use crate::{Error, Result};
use tch::{Device, Tensor};

/// The randomisation order: parameter groups from the head down.
pub const CASCADE: [&str; 6] = ["head", "layer4", "layer3", "layer2", "layer1", "stem"];

/// Mean similarities (over the image-label pairs where defined).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Similarity {
    pub spearman: Option<f64>,
    pub spearman_abs: Option<f64>,
    pub ssim: Option<f64>,
}

/// The cascade of one map source.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cascade {
    pub method: String,
    /// Similarity to the trained model's maps after randomising
    /// `CASCADE[..=i]`, one entry per step.
    pub steps: Vec<Similarity>,
    /// Similarity between maps of different images (random pairs).
    pub baseline: Similarity,
    /// The step after which the stage the maps read is random.
    pub stage_step: usize,
    /// Spearman of |map| at `stage_step` is at or below the baseline.
    pub passes: bool,
    /// One image's map (the `strip` pair) trained, then after each step:
    /// `CASCADE.len() + 1` maps of `size x size`.
    #[serde(skip)]
    pub strip: Vec<Vec<f32>>,
}

/// The group of a parameter name.
fn group(name: &str) -> &'static str {
    if name.starts_with("head") {
        "head"
    } else if let Some(rest) = name.strip_prefix("layer") {
        match rest.as_bytes().first() {
            Some(b'1') => "layer1",
            Some(b'2') => "layer2",
            Some(b'3') => "layer3",
            _ => "layer4",
        }
    } else {
        "stem"
    }
}

fn stage_step(stage: Stage) -> usize {
    match stage {
        Stage::Layer4 => 1,
        Stage::Layer3 => 2,
        Stage::Layer2 => 3,
        Stage::Layer1 => 4,
    }
}

pub(super) fn sims(a: &MapSet, b: &MapSet) -> Result<(Tensor, Tensor, Tensor)> {
    Ok((
        spearman(&a.signed, &b.signed)?,
        spearman(&a.signed.f_abs()?, &b.signed.f_abs()?)?,
        ssim(&a.maps, &b.maps, 1.0)?,
    ))
}

pub(super) fn summary(t: (Tensor, Tensor, Tensor)) -> Result<Similarity> {
    Ok(Similarity {
        spearman: super::tensor_mean(&t.0)?,
        spearman_abs: super::tensor_mean(&t.1)?,
        ssim: super::tensor_mean(&t.2)?,
    })
}

/// The similarity between the maps of random pairs of different images
/// (the same label): a seeded cycle through the batch (Arun et al.'s
/// baseline). `maps` holds at least 2 images.
pub(super) fn random_pairs(maps: &MapSet, seed: u64) -> Result<Similarity> {
    let b = maps.maps.size()[0];
    let perm = Rng::new(seed ^ 0xA11CE).permutation(b as usize);
    let first = Tensor::f_from_slice(&perm.iter().map(|&i| i as i64).collect::<Vec<_>>())?;
    let second = first.f_roll([1], [0])?;
    let pick = |idx: &Tensor| -> Result<MapSet> {
        let idx = idx.f_to_device(maps.maps.device())?;
        Ok(MapSet {
            maps: maps.maps.f_index_select(0, &idx)?,
            signed: maps.signed.f_index_select(0, &idx)?,
            probs: maps.probs.f_index_select(0, &idx)?,
        })
    };
    summary(sims(&pick(&first)?, &pick(&second)?)?)
}

/// The verdict of a sanity check: the similarity (Spearman of |map|) has
/// fallen to the random-pair baseline or below. Maps that are the same for
/// every image (a baseline of 1, as the centre prior's) cannot pass: no
/// randomisation can show that they depend on what the model learned.
pub(super) fn passes(similarity: Option<f64>, baseline: Option<f64>) -> bool {
    matches!((similarity, baseline), (Some(a), Some(base)) if a <= base && base < 1.0 - 1e-6)
}

/// A copy of `model` whose parameters and buffers equal the original's.
pub fn copy_model(model: &Model) -> Result<Model> {
    let mut m = Model::new(model.stem, model.size, model.device())?;
    m.vs.copy(&model.vs)?;
    Ok(m)
}

/// What a sanity check compares: the maps of `sources` for `labels` of the
/// batch `x` (at least 2 images) at `stage`, `chunk` inputs per forward,
/// and the seed of its random pairs.
pub struct Compared<'a> {
    pub x: &'a Tensor,
    pub sources: &'a [MapSource],
    pub stage: Stage,
    pub labels: &'a [usize],
    pub chunk: usize,
    pub seed: u64,
}

impl Compared<'_> {
    /// The batch size, refused below 2 (the random-pair baseline needs two).
    pub(super) fn images(&self, check: &str) -> Result<i64> {
        let b = self.x.size()[0];
        if b < 2 {
            return Err(Error::invalid(
                check,
                format!("{b} image(s): the random-pair baseline needs at least 2"),
            ));
        }
        Ok(b)
    }
}

/// The cascade for each source (CAM methods only) of `c`; `strip` picks
/// (image, label position) for the dissolving strip. The fresh weights
/// come from `tch::manual_seed(c.seed)`.
pub fn cascade(
    model: &Model,
    c: &Compared,
    strip: (usize, usize),
    progress: &mut dyn crate::progress::Progress,
) -> Result<Vec<Cascade>> {
    c.images("randomisation check")?;
    let Compared {
        x,
        sources,
        stage,
        labels,
        chunk,
        seed,
    } = *c;
    let sources: Vec<MapSource> = sources
        .iter()
        .copied()
        .filter(|s| matches!(s, MapSource::Cam(_)))
        .collect();
    let originals = sources
        .iter()
        .map(|&s| maps(model, x, s, stage, labels, chunk))
        .collect::<Result<Vec<_>>>()?;
    let strip_of = |m: &MapSet| -> Result<Vec<f32>> {
        Ok(Vec::try_from(
            m.maps
                .f_get(strip.0 as i64)?
                .f_get(strip.1 as i64)?
                .f_to_device(Device::Cpu)?
                .f_flatten(0, -1)?,
        )?)
    };
    let mut out = Vec::new();
    for (s, o) in sources.iter().zip(&originals) {
        out.push(Cascade {
            method: s.name().to_string(),
            steps: Vec::new(),
            baseline: random_pairs(o, seed)?,
            stage_step: stage_step(stage),
            passes: false,
            strip: vec![strip_of(o)?],
        });
    }
    let random = copy_model(model)?;
    tch::manual_seed(seed as i64);
    let fresh = Model::new(model.stem, model.size, model.device())?;
    let fresh_vars = fresh.vs.variables();
    let mut vars = random.vs.variables();
    progress.start("randomisation cascade", Some(CASCADE.len() as u64));
    for (step, g) in CASCADE.iter().enumerate() {
        tch::no_grad(|| -> Result<()> {
            for (name, t) in vars.iter_mut().filter(|(n, _)| group(n) == *g) {
                let src = fresh_vars.get(name).ok_or_else(|| {
                    Error::invalid(
                        "randomisation",
                        format!("no parameter {name} in a fresh model"),
                    )
                })?;
                t.f_copy_(src)?;
            }
            Ok(())
        })?;
        for ((s, o), c) in sources.iter().zip(&originals).zip(out.iter_mut()) {
            let now = maps(&random, x, *s, stage, labels, chunk)?;
            c.steps.push(summary(sims(o, &now)?)?);
            c.strip.push(strip_of(&now)?);
        }
        progress.update(step as u64 + 1);
    }
    progress.finish();
    for c in &mut out {
        let at = c.steps.get(c.stage_step).and_then(|s| s.spearman_abs);
        c.passes = passes(at, c.baseline.spearman_abs);
    }
    Ok(out)
}
