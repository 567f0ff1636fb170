//! Deletion and insertion (Petsiuk et al., "RISE: Randomized Input Sampling
//! for Explanation of Black-box Models", BMVC 2018).
//!
//! Pixels are taken in the map's order (highest first; ties by pixel index,
//! a stable sort), `ceil(H*W / steps)` per step. Deletion replaces them with
//! 0 (the grey mid-point of the normalised image); insertion starts from
//! the image blurred by RISE's Gaussian (11 px, sigma 5, zero padding) and
//! puts them back. The label's probability is recorded after each of the
//! `steps + 1` stages; the score is the area under that curve over [0, 1]
//! (trapezoids). A faithful map has a low deletion and a high insertion
//! area. Reference: `tests/fixtures/make_trust_fixture.py`.
use super::{all_probs, Forwards};
use crate::model::Model;
use crate::Result;
use tch::{Kind, Tensor};

/// Curves and their areas for `[b, L]` maps.
#[derive(Debug)]
pub struct DeletionInsertion {
    /// `[b, L, steps + 1]` probabilities (CPU).
    pub deletion: Tensor,
    pub insertion: Tensor,
    /// `[b, L]` areas under the curves.
    pub deletion_auc: Tensor,
    pub insertion_auc: Tensor,
}

/// RISE's blur: an 11x11 Gaussian with sigma 5, zero padding.
pub fn rise_blur(x: &Tensor) -> Result<Tensor> {
    let (k, sig) = (11i64, 5.0f64);
    let ax = Tensor::f_arange(k, (Kind::Float, x.device()))?.f_sub_scalar((k / 2) as f64)?;
    let g = ax.f_square()?.f_div_scalar(-2.0 * sig * sig)?.f_exp()?;
    let kern = g.f_unsqueeze(1)?.f_mul(&g.f_unsqueeze(0)?)?;
    let kern = kern
        .f_div(&kern.f_sum(Kind::Float)?)?
        .f_view([1, 1, k, k])?;
    Ok(x.f_conv2d(&kern, None::<Tensor>, [1, 1], [k / 2, k / 2], [1, 1], 1)?)
}

/// Area under a curve sampled at `n` equal steps over [0, 1]: `[.., n]` -> `[..]`.
pub fn auc(curve: &Tensor) -> Result<Tensor> {
    let n = curve.size().last().copied().unwrap_or(0);
    if n < 2 {
        return Ok(curve.f_sum_dim_intlist(-1i64, false, Kind::Float)?);
    }
    let s = curve.f_sum_dim_intlist(-1i64, false, Kind::Float)?;
    let ends = curve.f_select(-1, 0)?.f_add(&curve.f_select(-1, n - 1)?)?;
    Ok(s.f_sub(&ends.f_div_scalar(2.0)?)?
        .f_div_scalar((n - 1) as f64)?)
}

/// For each map, the rank of each pixel in its order (0 = most relevant):
/// `[b, L, H, W]` -> `[b * L, 1, H, W]` (int64).
pub fn pixel_ranks(maps: &Tensor) -> Result<Tensor> {
    let s = maps.size();
    let flat = maps.f_reshape([s[0] * s[1], s[2] * s[3]])?;
    let (_, order) = flat.f_sort_stable(true, -1, true)?;
    let pos = Tensor::f_arange(s[2] * s[3], (Kind::Int64, maps.device()))?
        .f_expand_as(&order)?
        .f_contiguous()?;
    let ranks = order.f_zeros_like()?.f_scatter(1, &order, &pos)?;
    Ok(ranks.f_view([s[0] * s[1], 1, s[2], s[3]])?)
}

/// The deletion (or, with `insertion`, insertion) curves of `maps`
/// (`[b, L, H, W]`) for `labels` of the batch `x` (`[b, 1, H, W]`):
/// `[b, L, steps + 1]` probabilities on the CPU, forwards as `fw` says.
pub fn curves(
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    labels: &[usize],
    steps: usize,
    fw: Forwards,
    insertion: bool,
) -> Result<Tensor> {
    let rows = super::Rows::new("deletion/insertion", model, x, maps, labels)?;
    let xs = &rows.images;
    let hw = maps.size()[2] * maps.size()[3];
    let steps = steps.max(1) as i64;
    let per = (hw + steps - 1) / steps;
    let start = if insertion {
        rise_blur(xs)?
    } else {
        xs.f_zeros_like()?
    };
    let ranks = pixel_ranks(&rows.maps.f_unsqueeze(1)?)?;
    let mut probs = Vec::new();
    for k in 0..=steps {
        // The pixels taken so far. Deletion: the image with them set to 0;
        // insertion: the blurred image with them put back.
        let taken = ranks.f_lt((k * per).min(hw))?; // [u, 1, H, W]
        let img = if insertion {
            xs.f_where_self(&taken, &start)?
        } else {
            start.f_where_self(&taken, xs)?
        };
        probs.push(rows.pick(&all_probs(model, &img, fw)?)?);
    }
    Ok(Tensor::f_stack(&probs, 2)?)
}

/// Deletion and insertion curves and their areas.
pub fn deletion_insertion(
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    labels: &[usize],
    steps: usize,
    fw: Forwards,
) -> Result<DeletionInsertion> {
    let deletion = curves(model, x, maps, labels, steps, fw, false)?;
    let insertion = curves(model, x, maps, labels, steps, fw, true)?;
    Ok(DeletionInsertion {
        deletion_auc: auc(&deletion)?,
        insertion_auc: auc(&insertion)?,
        deletion,
        insertion,
    })
}
