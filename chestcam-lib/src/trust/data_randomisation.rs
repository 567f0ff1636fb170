//! The data randomisation test (Adebayo et al., "Sanity Checks for Saliency
//! Maps", NeurIPS 2018): a second model is trained on the same images with
//! the labels permuted across them (`chestcam train --shuffle-labels`), so
//! it can only memorise; each method's maps of that model are compared
//! with its maps of the real model, on the same images and labels:
//! Spearman on the signed and absolute maps and SSIM, beside the
//! random-pair baseline of Arun et al. (the real model's maps of two
//! different images). A method passes when its similarity (Spearman of the
//! absolute maps) is at or below that baseline: its maps then depend on
//! what the labels taught the model, not only on the image. A map source
//! that ignores the model (the centre prior) fails by construction, which
//! shows what failing looks like.
use super::baselines::maps;
use super::randomisation::{passes, random_pairs, sims, summary, Compared, Similarity};
use crate::model::Model;
use crate::{Error, Result};

/// One map source's data-randomisation result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DataRandomisation {
    pub method: String,
    /// The real model's maps against the permuted-label model's.
    pub similarity: Similarity,
    /// Between the real model's maps of two different images.
    pub baseline: Similarity,
    /// Spearman of |map| at or below the baseline (never for maps that are
    /// the same for every image).
    pub passes: bool,
}

/// The test for each source of `c`: `model` is the real model, `shuffled`
/// the one trained on permuted labels (same architecture and image size).
pub fn data_randomisation(
    model: &Model,
    shuffled: &Model,
    c: &Compared,
) -> Result<Vec<DataRandomisation>> {
    c.images("data randomisation check")?;
    if (shuffled.stem, shuffled.size) != (model.stem, model.size) {
        return Err(Error::invalid(
            "data randomisation check",
            format!(
                "the permuted-label model is a {} stem at {} px, the model a {} stem at {} px",
                shuffled.stem, shuffled.size, model.stem, model.size
            ),
        ));
    }
    let xs = c.x.f_to_device(shuffled.device())?;
    let mut out = Vec::new();
    for &src in c.sources {
        let real = maps(model, c.x, src, c.stage, c.labels, c.chunk)?;
        let other = maps(shuffled, &xs, src, c.stage, c.labels, c.chunk)?;
        let other = super::baselines::MapSet {
            maps: other.maps.f_to_device(real.maps.device())?,
            signed: other.signed.f_to_device(real.signed.device())?,
            probs: other.probs.f_to_device(real.probs.device())?,
        };
        let similarity = summary(sims(&real, &other)?)?;
        let baseline = random_pairs(&real, c.seed)?;
        let passes = passes(similarity.spearman_abs, baseline.spearman_abs);
        out.push(DataRandomisation {
            method: src.name().to_string(),
            similarity,
            baseline,
            passes,
        });
    }
    Ok(out)
}
