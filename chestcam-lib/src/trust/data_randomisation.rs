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
use crate::train::Checkpoint;
use crate::{Error, Result};
use std::path::Path;

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

/// Refuses a permuted-label model (`what`) of another stem or image size
/// than `model`: their maps could not be compared.
fn same_architecture(model: &Model, shuffled: &Model, what: &str) -> Result<()> {
    if (shuffled.stem, shuffled.size) != (model.stem, model.size) {
        return Err(Error::invalid(
            "data randomisation check",
            format!(
                "{what} is a {} stem at {} px, the model a {} stem at {} px",
                shuffled.stem, shuffled.size, model.stem, model.size
            ),
        ));
    }
    Ok(())
}

/// The last checkpoint of `run` (trained with `--shuffle-labels`, which its
/// config.json must say) on `model`'s device, checked against `model`
/// before any map is made. `trained_on` is the fingerprint the real model's
/// checkpoint recorded (when it did): a permuted-label run trained on other
/// images is refused, as its maps would differ for that reason alone.
pub fn load_shuffled_run(
    run: &Path,
    model: &Model,
    trained_on: Option<&crate::data::DataFingerprint>,
) -> Result<Model> {
    if !crate::train::load_config(run)?.shuffle_labels {
        return Err(Error::invalid(
            "data randomisation check",
            format!(
                "{} was not trained with --shuffle-labels: its maps are no data randomisation",
                run.display()
            ),
        ));
    }
    let (m, meta) = crate::train::load_model(run, Checkpoint::Last, model.device())?;
    same_architecture(model, &m, &run.display().to_string())?;
    let train = [crate::data::SplitName::Train];
    if let Some((_, was, is)) = trained_on
        .zip(meta.fingerprint.as_ref())
        .and_then(|(real, shuffled)| real.first_difference(shuffled, &train))
    {
        return Err(Error::invalid(
            "data randomisation check",
            format!(
                "{} was trained on other images than the model it is compared with (its train split: {is}; the model's: {was}): train it on the same data with --shuffle-labels",
                run.display()
            ),
        ));
    }
    Ok(m)
}

/// The test for each source of `c`: `model` is the real model, `shuffled`
/// the one trained on permuted labels (same architecture and image size).
pub fn data_randomisation(
    model: &Model,
    shuffled: &Model,
    c: &Compared,
) -> Result<Vec<DataRandomisation>> {
    c.images("data randomisation check")?;
    same_architecture(model, shuffled, "the permuted-label model")?;
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
