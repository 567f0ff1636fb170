//! The pointing game (Zhang et al., "Top-down Neural Attention by
//! Excitation Backprop", ECCV 2016): a hit when the map's maximum lies in
//! the lesion mask, with a tolerance (15 px at 224 px in the paper).
//!
//! Ties: when several pixels share the maximum, the score is the fraction
//! of them that hit, the expected score of picking one of them at random.
//! A flat map therefore scores its chance level (the share of the image
//! near the lesion), never a free hit.
use crate::Result;
use tch::{Kind, Tensor};

/// The paper's 15 px at 224 px, scaled to `size` (rounded; at least 0).
pub fn default_tolerance(size: usize) -> f64 {
    (15.0 * size as f64 / 224.0).round()
}

/// `mask` (`[b, L, H, W]` of 0/1) grown by a disc of radius `tol` pixels.
pub fn dilate(mask: &Tensor, tol: f64) -> Result<Tensor> {
    let r = tol.max(0.0).floor() as i64;
    if r == 0 {
        return Ok(mask.f_gt(0.5)?);
    }
    let s = mask.size();
    let k = 2 * r + 1;
    let ax = Tensor::f_arange(k, (Kind::Float, mask.device()))?.f_sub_scalar(r as f64)?;
    let d2 = ax
        .f_square()?
        .f_unsqueeze(1)?
        .f_add(&ax.f_square()?.f_unsqueeze(0)?)?;
    let disc = d2
        .f_le(tol * tol)?
        .f_to_kind(Kind::Float)?
        .f_view([1, 1, k, k])?;
    let m = mask
        .f_to_kind(Kind::Float)?
        .f_view([s[0] * s[1], 1, s[2], s[3]])?;
    Ok(
        m.f_conv2d(&disc, None::<Tensor>, [1, 1], [r, r], [1, 1], 1)?
            .f_view([s[0], s[1], s[2], s[3]])?
            .f_gt(0.5)?,
    )
}

/// Hit rate per map `[b, L]` in [0, 1]: the share of the map's maximal
/// pixels that lie within `tol` pixels of the mask.
pub fn pointing_game(maps: &Tensor, masks: &Tensor, tol: f64) -> Result<Tensor> {
    let near = dilate(&masks.f_to_device(maps.device())?, tol)?.f_to_kind(Kind::Float)?;
    let max = maps.f_amax([-2i64, -1].as_slice(), true)?;
    let top = maps.f_ge_tensor(&max)?.f_to_kind(Kind::Float)?;
    let dims = [-2i64, -1];
    Ok(top
        .f_mul(&near)?
        .f_sum_dim_intlist(dims.as_slice(), false, Kind::Float)?
        .f_div(&top.f_sum_dim_intlist(dims.as_slice(), false, Kind::Float)?)?)
}
