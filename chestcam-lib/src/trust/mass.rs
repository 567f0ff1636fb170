//! Relevance mass accuracy (Arras et al., "CLEVR-XAI", Information Fusion
//! 2022), also called the energy-based pointing game (Wang et al.,
//! Score-CAM, 2020): the share of the map's total that falls inside the
//! mask. A map with no mass at all (flat zero) scores 0.
use crate::Result;
use tch::{Kind, Tensor};

/// `sum(map * mask) / sum(map)` per map: `[b, L]`.
pub fn mass_in_mask(maps: &Tensor, masks: &Tensor) -> Result<Tensor> {
    let dims = [-2i64, -1];
    let m = masks.f_to_device(maps.device())?.f_to_kind(Kind::Float)?;
    let inside = maps
        .f_mul(&m)?
        .f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
    let total = maps.f_sum_dim_intlist(dims.as_slice(), false, Kind::Double)?;
    Ok(inside
        .f_div(&total.f_clamp_min(1e-12)?)?
        .f_to_kind(Kind::Float)?)
}
