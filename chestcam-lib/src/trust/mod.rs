//! Can this heatmap be trusted? Localisation, faithfulness and sanity
//! checks for every CAM method and label of a batch, each beside its
//! baselines (RandomCAM and a centre prior).
//!
//! One file per metric, each citing its paper (as Quantus does), all with
//! the same shape of call: a batch `[b, 1, H, W]`, its maps `[b, L, H, W]`
//! for L labels, and the model; forwards run batched on the model's device.
//! - Localisation (ground truth needed): [`pointing`] (Zhang et al. 2016),
//!   [`mass`] (relevance mass, Arras et al. 2022), [`otsu`] (Otsu-thresholded
//!   IoU, as CheXlocalize); ground truth from phantom masks or [`boxes`].
//! - Faithfulness: [`deletion`] (deletion/insertion, Petsiuk et al. 2018),
//!   [`road`] (Rong et al. 2022), [`confidence`] (Chattopadhyay et al. 2018).
//! - Sanity: [`randomisation`] (Adebayo et al. 2018; Arun et al. 2021),
//!   [`data_randomisation`] (Adebayo et al. 2018: a model trained on
//!   permuted labels), [`label_sensitivity`]; map similarity in
//!   [`similarity`].
//! - [`report`]: all of it for a split, as JSON, a markdown table and pictures;
//!   [`truth`] finds the ground truth of a data set.
//!
//! The score of a label is its probability (the sigmoid of its logit): the
//! model is multi-label, so a softmax over labels would mix findings.
pub mod baselines;
pub mod boxes;
pub mod confidence;
pub mod data_randomisation;
pub mod deletion;
pub mod label_sensitivity;
pub mod mass;
pub mod otsu;
pub mod pointing;
pub mod randomisation;
pub mod report;
pub mod road;
pub mod similarity;
pub mod truth;

use crate::model::Model;
use crate::train::Precision;
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// One metric's values per image and label (`values[i][k]` for image i and
/// the k-th label of `labels`); NaN where the pair is not scored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub labels: Vec<usize>,
    pub values: Vec<Vec<f64>>,
}

impl Scores {
    /// From a `[n, L]` tensor.
    pub fn from_tensor(t: &Tensor, labels: &[usize]) -> Result<Scores> {
        let s = t.size();
        if s.len() != 2 || s[1] != labels.len() as i64 {
            return Err(Error::invalid(
                "scores",
                format!("shape {s:?} for {} labels", labels.len()),
            ));
        }
        let flat: Vec<f64> = Vec::try_from(
            t.f_to_device(Device::Cpu)?
                .f_to_kind(Kind::Double)?
                .f_flatten(0, -1)?,
        )?;
        Ok(Scores {
            labels: labels.to_vec(),
            values: flat
                .chunks(labels.len().max(1))
                .map(|c| c.to_vec())
                .collect(),
        })
    }

    /// NaN where `keep[i][k]` is false.
    pub fn only(mut self, keep: &[Vec<bool>]) -> Scores {
        for (row, k) in self.values.iter_mut().zip(keep) {
            for (v, &k) in row.iter_mut().zip(k) {
                if !k {
                    *v = f64::NAN;
                }
            }
        }
        self
    }

    /// Mean per label over the scored images (None when none is scored).
    pub fn per_label(&self) -> Vec<Option<f64>> {
        (0..self.labels.len())
            .map(|k| mean(self.values.iter().map(|r| r[k])))
            .collect()
    }

    /// The macro mean: the mean of the per-label means.
    pub fn macro_mean(&self) -> Option<f64> {
        mean(self.per_label().into_iter().flatten())
    }

    /// How many image-label pairs are scored.
    pub fn count(&self) -> usize {
        self.values
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .count()
    }
}

/// The `k` labels most often present among images `idx` of `split` (ties
/// in label order): where localisation has something to score.
pub fn frequent_labels(split: &crate::data::Split, idx: &[usize], k: usize) -> Vec<usize> {
    let mut counts = [0usize; crate::data::registry::NUM_LABELS];
    for &i in idx {
        for (c, &v) in counts.iter_mut().zip(split.label_row(i)) {
            *c += v as usize;
        }
    }
    let mut labels: Vec<usize> = (0..counts.len()).collect();
    labels.sort_by_key(|&l| std::cmp::Reverse(counts[l]));
    labels.truncate(k);
    labels
}

/// The mean of the finite values, None when there are none.
pub fn mean(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (s, n) = values
        .into_iter()
        .filter(|v| v.is_finite())
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The mean of a tensor's finite values (None when there are none).
pub fn tensor_mean(t: &Tensor) -> Result<Option<f64>> {
    let v: Vec<f64> = Vec::try_from(
        t.f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_flatten(0, -1)?,
    )?;
    Ok(mean(v))
}

/// Checks that `maps` is `[b, L, H, W]` for the batch `x` (`[b, 1, H, W]`)
/// and `labels`; `what` names the caller in the error.
pub fn check_maps(what: &str, x: &Tensor, maps: &Tensor, labels: &[usize]) -> Result<()> {
    let (xs, ms) = (x.size(), maps.size());
    let ok = xs.len() == 4
        && xs[1] == 1
        && ms.len() == 4
        && ms[0] == xs[0]
        && ms[1] == labels.len() as i64
        && ms[2..] == xs[2..];
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            what,
            format!(
                "maps of shape {ms:?} for images {xs:?} and {} labels (expected [b, L, H, W] for images [b, 1, H, W])",
                labels.len()
            ),
        ))
    }
}

/// The rows a faithfulness check perturbs: one per image and label
/// (`b * L`, row `i * L + k` is image i with label k's map), of which
/// only the distinct (image, map) pairs are computed. A label whose map
/// of an image equals another label's map of that image perturbs the
/// image the same way: EigenCAM, KPCA-CAM and the centre prior draw one
/// map for every label, so for them a check runs `b` rows instead of
/// `b * L`. Each label still reads its own probability from the shared
/// forward.
#[derive(Debug)]
pub struct Rows {
    /// `[u, 1, H, W]`: each distinct row's image (the model's device).
    pub images: Tensor,
    /// `[u, H, W]`: each distinct row's map (the model's device).
    pub maps: Tensor,
    /// `[u]`: each distinct row's image index (CPU).
    pub image: Tensor,
    /// `[b * L]`: the distinct row of each image and label (CPU).
    inverse: Tensor,
    /// `[b * L]`: each row's label (CPU).
    labels: Tensor,
    b: i64,
    l: i64,
}

impl Rows {
    /// The rows of `maps` (`[b, L, H, W]`) for `labels` of the batch `x`
    /// (`[b, 1, H, W]`), after checking their shapes (`what` names the
    /// caller in errors).
    pub fn new(
        what: &str,
        model: &Model,
        x: &Tensor,
        maps: &Tensor,
        labels: &[usize],
    ) -> Result<Rows> {
        check_maps(what, x, maps, labels)?;
        let s = maps.size();
        let (b, l) = (s[0], s[1]);
        let dev = model.device();
        // Each map row led by its image's index: rows repeat only within an image.
        let image_of_row = Tensor::f_arange(b, (Kind::Float, dev))?
            .f_repeat_interleave_self_int(l, Some(0), None)?
            .f_unsqueeze(1)?;
        let keyed = Tensor::f_cat(
            &[
                image_of_row,
                maps.f_to_device(dev)?
                    .f_to_kind(Kind::Float)?
                    .f_reshape([b * l, s[2] * s[3]])?,
            ],
            1,
        )?;
        let (distinct, inverse) = distinct_rows(&keyed)?;
        let u = distinct.size()[0];
        let image = distinct.f_select(1, 0)?.f_to_kind(Kind::Int64)?;
        Ok(Rows {
            images: x.f_to_device(dev)?.f_index_select(0, &image)?,
            maps: distinct
                .f_narrow(1, 1, s[2] * s[3])?
                .f_reshape([u, s[2], s[3]])?,
            image: image.f_to_device(Device::Cpu)?,
            inverse: inverse.f_to_device(Device::Cpu)?,
            labels: label_rows(b, labels)?,
            b,
            l,
        })
    }

    /// How many distinct rows are computed (of `b * L`).
    pub fn distinct(&self) -> i64 {
        self.image.size()[0]
    }

    /// `[b, L]`: each image's probability of each label, from every
    /// label's probability of the distinct rows (`[u, 14]`, from
    /// [`all_probs`]).
    pub fn pick(&self, probs: &Tensor) -> Result<Tensor> {
        self.take(
            &probs
                .f_to_device(Device::Cpu)?
                .f_index_select(0, &self.inverse)?,
        )
    }

    /// `[b, L]`: the same from the images' own probabilities (`[b, 14]`).
    pub fn pick_images(&self, probs: &Tensor) -> Result<Tensor> {
        let image = Tensor::f_arange(self.b, (Kind::Int64, Device::Cpu))?
            .f_repeat_interleave_self_int(self.l, Some(0), None)?;
        self.take(&probs.f_to_device(Device::Cpu)?.f_index_select(0, &image)?)
    }

    /// `[b * L, 14]` -> each row's own label, `[b, L]`.
    fn take(&self, per_row: &Tensor) -> Result<Tensor> {
        Ok(per_row
            .f_gather(1, &self.labels.f_unsqueeze(1)?, false)?
            .f_view([self.b, self.l])?)
    }
}

/// How the faithfulness checks (deletion, insertion, ROAD, confidence)
/// run their many forwards of perturbed images: `chunk` images per
/// forward, in `precision`. fp32 gives the reference implementations'
/// numbers; bf16 autocast ran these forwards 2.2-2.7x faster on this
/// project's 2-core AVX512-BF16 CPU (ResNet-18 at 28 and 64 px, batch 64
/// to 112, PyTorch 2.11.0), with probabilities on the curves within 7.5e-3
/// of fp32 and areas within 3e-3 (`tests/tests/trust.rs`, two models).
/// `Auto` is resolved
/// as `train` resolves it ([`Precision::resolve`]) before use; unresolved
/// it runs as fp32. The CAM maps themselves are always fp32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwards {
    pub chunk: usize,
    pub precision: Precision,
}

impl Forwards {
    /// `chunk` images per forward in float32.
    pub fn fp32(chunk: usize) -> Forwards {
        Forwards {
            chunk,
            precision: Precision::Fp32,
        }
    }

    /// The logits of `x` (on the model's device) in this precision, as float32.
    pub fn logits(&self, model: &Model, x: &Tensor) -> Result<Tensor> {
        let logits = self.precision.run(model.device(), || Ok(model.logits(x)))?;
        Ok(logits.f_to_kind(Kind::Float)?)
    }
}

/// Every label's probability for each of the `n` images `xs`
/// (`[n, 1, H, W]`): `[n, 14]` on the CPU, `fw.chunk` images per forward
/// on the model's device, in `fw.precision`. An image that occurs more than
/// once (the unperturbed image, deletion's emptied one, insertion's blurred
/// one, repeated for each label) is forwarded once.
pub fn all_probs(model: &Model, xs: &Tensor, fw: Forwards) -> Result<Tensor> {
    let n = xs.size()[0];
    if n == 0 {
        return Ok(Tensor::f_zeros(
            [0, crate::data::registry::NUM_LABELS as i64],
            (Kind::Float, Device::Cpu),
        )?);
    }
    let xs = xs.f_to_device(model.device())?;
    let (distinct, inverse) = distinct_rows(&xs.f_reshape([n, -1])?)?;
    let u = distinct.size()[0];
    let todo = if u < n {
        distinct.f_view([[u].as_slice(), &xs.size()[1..]].concat().as_slice())?
    } else {
        xs.shallow_clone()
    };
    let mut out = Vec::new();
    let mut start = 0;
    while start < u {
        let len = (fw.chunk.max(1) as i64).min(u - start);
        // A last, shorter forward is padded (with its last image) to a
        // multiple of 8 images: a CPU's convolution library keeps a plan per
        // batch size, and a new size per call (the distinct images vary)
        // grew the process by hundreds of MB.
        let padded = (len + 7) / 8 * 8;
        let mut batch = todo.f_narrow(0, start, len)?;
        if padded > len && padded <= fw.chunk as i64 {
            let last = batch.f_narrow(0, len - 1, 1)?;
            let shape = [[padded - len].as_slice(), &last.size()[1..]].concat();
            batch = Tensor::f_cat(&[&batch, &last.f_expand(shape.as_slice(), false)?], 0)?;
        }
        let p = fw.logits(model, &batch)?.f_sigmoid()?.f_narrow(0, 0, len)?;
        out.push(p.f_to_device(Device::Cpu)?);
        start += len;
    }
    let p = Tensor::f_cat(&out, 0)?;
    Ok(if u < n {
        p.f_index_select(0, &inverse.f_to_device(Device::Cpu)?)?
    } else {
        p
    })
}

/// The distinct rows of `[n, D]` (sorted) and the distinct row of each
/// row (`[n]`). Rows with a NaN are kept apart (NaN equals nothing, and a
/// sort by rows that hold one is not defined): then every row is its own.
fn distinct_rows(t: &Tensor) -> Result<(Tensor, Tensor)> {
    if t.f_isnan()?.f_any()?.f_int64_value(&[])? != 0 {
        let n = t.size()[0];
        return Ok((
            t.shallow_clone(),
            Tensor::f_arange(n, (Kind::Int64, t.device()))?,
        ));
    }
    let (distinct, inverse, _) = t.f_unique_dim(0, true, true, false)?;
    Ok((distinct, inverse))
}

/// `[b * L]` label indices: `labels` repeated for each of `b` images
/// (row `i * L + k` is image i, label k), as the flattened maps are ordered.
pub fn label_rows(b: i64, labels: &[usize]) -> Result<Tensor> {
    let l: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Ok(Tensor::f_from_slice(&l)?.f_repeat([b])?)
}
