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

/// The batch laid out per label, after checking `maps` against `x` and
/// `labels` (`what` names the caller in errors): each image repeated once
/// per label (`[b * L, 1, H, W]` on the model's device; row `i * L + k` is
/// image i for label k, as the flattened maps) and the label of each row.
pub fn per_label_batch(
    what: &str,
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    labels: &[usize],
) -> Result<(Tensor, Tensor)> {
    check_maps(what, x, maps, labels)?;
    Ok((
        per_label_images(&x.f_to_device(model.device())?, labels.len())?,
        label_rows(x.size()[0], labels)?,
    ))
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

/// The probability of label `labels[r]` for each of `n` images `xs[r]`
/// (`[n, 1, H, W]`), `fw.chunk` images per forward on the model's device,
/// in `fw.precision`: `[n]` on the CPU.
pub fn label_probs(model: &Model, xs: &Tensor, labels: &Tensor, fw: Forwards) -> Result<Tensor> {
    let n = xs.size()[0];
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = (fw.chunk.max(1) as i64).min(n - start);
        let x = xs.f_narrow(0, start, len)?.f_to_device(model.device())?;
        let l = labels
            .f_narrow(0, start, len)?
            .f_to_device(model.device())?
            .f_unsqueeze(1)?;
        let p = fw.logits(model, &x)?.f_gather(1, &l, false)?.f_sigmoid()?;
        out.push(p.f_squeeze_dim(1)?.f_to_device(Device::Cpu)?);
        start += len;
    }
    if out.is_empty() {
        return Ok(Tensor::zeros([0], (Kind::Float, Device::Cpu)));
    }
    Ok(Tensor::f_cat(&out, 0)?)
}

/// `[b * L]` label indices: `labels` repeated for each of `b` images
/// (row `i * L + k` is image i, label k), as the flattened maps are ordered.
pub fn label_rows(b: i64, labels: &[usize]) -> Result<Tensor> {
    let l: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Ok(Tensor::f_from_slice(&l)?.f_repeat([b])?)
}

/// Each image repeated once per label: `[b, 1, H, W]` -> `[b * L, 1, H, W]`.
pub fn per_label_images(x: &Tensor, l: usize) -> Result<Tensor> {
    Ok(x.f_repeat_interleave_self_int(l as i64, Some(0), None)?)
}
