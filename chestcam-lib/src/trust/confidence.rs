//! Confidence change when the image is multiplied by its map
//! (Chattopadhyay et al., "Grad-CAM++", WACV 2018: average drop and
//! increase in confidence), equal to pytorch-grad-cam's
//! `CamMultImageConfidenceChange`: the normalised image times the map, the
//! label's probability after minus before.
use super::{all_probs, Forwards};
use crate::model::Model;
use crate::Result;
use tch::Tensor;

/// The confidence change of each map and its derived scores.
#[derive(Debug)]
pub struct ConfidenceChange {
    /// `[b, L]`: p(x * map) - p(x) (pytorch-grad-cam's
    /// `CamMultImageConfidenceChange`).
    pub change: Tensor,
    /// `[b, L]`: max(0, p(x) - p(x * map)) (`DropInConfidence`).
    pub drop: Tensor,
    /// `[b, L]`: 1 where the probability rose (`IncreaseInConfidence`).
    pub increase: Tensor,
    /// `[b, L]`: Chattopadhyay's average drop term, `drop / p(x)` (in
    /// [0, 1]; the paper's "average drop %" is 100 x its mean).
    pub relative_drop: Tensor,
}

/// The confidence change of `maps` (`[b, L, H, W]`) for `labels` of `x`.
pub fn confidence_change(
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    labels: &[usize],
    fw: Forwards,
) -> Result<ConfidenceChange> {
    let rows = super::Rows::new("confidence change", model, x, maps, labels)?;
    let masked = rows.images.f_mul(&rows.maps.f_unsqueeze(1)?)?;
    let before = rows.pick_images(&all_probs(model, x, fw)?)?;
    let after = rows.pick(&all_probs(model, &masked, fw)?)?;
    let change = after.f_sub(&before)?;
    let drop = change.f_neg()?.f_clamp_min(0.0)?;
    Ok(ConfidenceChange {
        increase: change.f_gt(0.0)?.f_to_kind(tch::Kind::Float)?,
        relative_drop: drop.f_div(&before.f_clamp_min(1e-12)?)?,
        drop,
        change,
    })
}
