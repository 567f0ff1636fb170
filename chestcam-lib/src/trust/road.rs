//! ROAD: RemOve And Debias (Rong et al., "A Consistent and Efficient
//! Evaluation Strategy for Attribution Methods", ICML 2022), as
//! pytorch-grad-cam's `metrics/road.py` computes it, batched on the device.
//!
//! For a percentile p, MoRF (most relevant first) removes the pixels whose
//! map value is at least the map's p-th percentile (numpy's linear
//! interpolation), LeRF does the same on `1 - map`; removed pixels are
//! filled by noisy linear imputation: each equals the weighted mean of its 8
//! neighbours (1/6 for edges, 1/12 for corners), removed neighbours
//! included, plus Gaussian noise. pytorch-grad-cam solves that sparse
//! system per image on the CPU; here it is solved for the whole batch at
//! once by conjugate gradients (the system is symmetric positive
//! definite) in double precision. The noise is one field per image,
//! percentile and direction (MoRF or LeRF), the same for every label and
//! method, so a label's score does not depend on which other labels or
//! how many images per forward were asked for, and differences between
//! methods are not differences of noise. Labels that share a map of an
//! image share its imputation and forward ([`super::Rows`]). The score is
//! the change in the label's probability; ROADCombined is
//! `(mean LeRF - mean MoRF) / 2` over the percentiles (higher is more
//! faithful).
//!
//! Ties ([`Ties`]): as in pytorch-grad-cam (the default,
//! [`Ties::Threshold`]), pixels tied at the threshold are all removed, so a
//! map that is 0 on 40% of the image loses all of it at p = 10..40 and
//! MoRF and LeRF alike see an emptied image. [`Ties::Rank`] removes exactly
//! as many pixels as the threshold rule removes from a map without ties
//! (`N - ceil((N - 1) p / 100)`), the highest first, tied values in a
//! seeded random order (not by position, which would remove the top rows
//! of a flat region first). On a map without ties both rules agree pixel
//! for pixel. When every pixel is removed there is nothing to impute from:
//! both fill with 0 (the grey mid-point).
use super::{all_probs, Forwards};
use crate::model::Model;
use crate::util::Rng;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Which pixels a percentile removes when map values tie at its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ties {
    /// pytorch-grad-cam's rule: every pixel at or above the percentile.
    #[default]
    Threshold,
    /// A fixed share of the pixels, tied values in a seeded random order.
    Rank,
}

crate::choices!(Ties, "ROAD ties" { Threshold => "threshold", Rank => "rank" });

/// pytorch-grad-cam's default percentiles.
pub const PERCENTILES: [f64; 9] = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0];

/// ROAD's imputation noise (standard deviation, absolute).
pub const NOISE: f64 = 0.01;

/// The neighbour weights as a 3x3 kernel `[1, 1, 3, 3]` (double).
fn stencil(device: tch::Device) -> Result<Tensor> {
    let (e, c) = (1.0 / 6.0, 1.0 / 12.0);
    Ok(Tensor::f_from_slice(&[c, e, c, e, 0.0, e, c, e, c])?
        .f_view([1, 1, 3, 3])?
        .f_to_device(device)?)
}

fn conv(v: &Tensor, k: &Tensor) -> Result<Tensor> {
    Ok(v.f_conv2d(k, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1)?)
}

/// Per-image sum over `[n, 1, H, W]` -> `[n, 1, 1, 1]`.
fn dot(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    Ok(a.f_mul(b)?
        .f_sum_dim_intlist([1i64, 2, 3].as_slice(), true, Kind::Double)?)
}

/// `a / b`, 0 where `b` is 0.
fn safe_div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let zero = b.f_eq(0.0)?;
    Ok(a.f_div(&b.f_masked_fill(&zero, 1.0)?)?
        .f_masked_fill(&zero, 0.0)?)
}

/// Linear imputation of the `removed` pixels (`[n, 1, H, W]` bool) of
/// `img` (`[n, 1, H, W]`), plus `noise` x N(0, 1) from `seed` on them.
pub fn linear_impute(img: &Tensor, removed: &Tensor, noise: f64, seed: u64) -> Result<Tensor> {
    let field = noise_field(&img.size(), noise, seed)?;
    impute(img, removed, field.as_ref())
}

/// `noise` x N(0, 1) of `shape` from `seed` (double, CPU); None for no noise.
fn noise_field(shape: &[i64], noise: f64, seed: u64) -> Result<Option<Tensor>> {
    if noise <= 0.0 {
        return Ok(None);
    }
    let mut rng = Rng::new(seed);
    let z: Vec<f64> = (0..shape.iter().product::<i64>())
        .map(|_| rng.normal() * noise)
        .collect();
    Ok(Some(Tensor::f_from_slice(&z)?.f_view(shape)?))
}

/// [`linear_impute`] with the noise given (`[n, 1, H, W]`, any device).
fn impute(img: &Tensor, removed: &Tensor, noise: Option<&Tensor>) -> Result<Tensor> {
    let s = img.size();
    if s.len() != 4 || s[1] != 1 || removed.size() != s {
        return Err(Error::invalid(
            "ROAD imputation",
            format!(
                "image {s:?} and mask {:?}; expected [n, 1, H, W] both",
                removed.size()
            ),
        ));
    }
    let dev = img.device();
    let k = stencil(dev)?;
    let x0 = img.f_to_kind(Kind::Double)?;
    let u = removed.f_to_kind(Kind::Double)?;
    let known = u.f_neg()?.f_add_scalar(1.0)?;
    // Weight of each pixel's in-image neighbours (less than 1 at the border).
    let wsum = conv(
        &Tensor::f_ones([1, 1, s[2], s[3]], (Kind::Double, dev))?,
        &k,
    )?;
    let apply = |v: &Tensor| -> Result<Tensor> {
        Ok(u.f_mul(&wsum.f_mul(v)?.f_sub(&conv(&u.f_mul(v)?, &k)?)?)?)
    };
    let b = u.f_mul(&conv(&known.f_mul(&x0)?, &k)?)?;
    let bb = dot(&b, &b)?;
    let mut x = b.f_zeros_like()?;
    let mut r = b.shallow_clone();
    let mut p = r.shallow_clone();
    let mut rs = bb.shallow_clone();
    let max_iter = 20 * (s[2] + s[3]) as usize + 100;
    for it in 0..max_iter {
        let ap = apply(&p)?;
        let alpha = safe_div(&rs, &dot(&p, &ap)?)?;
        x = x.f_add(&alpha.f_mul(&p)?)?;
        r = r.f_sub(&alpha.f_mul(&ap)?)?;
        let rs_new = dot(&r, &r)?;
        if it % 8 == 7 {
            let rel = safe_div(&rs_new, &bb)?.f_max()?.f_double_value(&[])?;
            if rel < 1e-20 {
                break;
            }
        }
        p = r.f_add(&safe_div(&rs_new, &rs)?.f_mul(&p)?)?;
        rs = rs_new;
    }
    let fill = match noise {
        Some(z) => x.f_add(&z.f_to_device(dev)?.f_to_kind(Kind::Double)?)?,
        None => x,
    };
    Ok(x0
        .f_mul(&known)?
        .f_add(&fill.f_mul(&u)?)?
        .f_to_kind(img.kind())?)
}

/// Pixels at or above each map's `p`-th percentile: `[n, H, W]` float32
/// maps -> `[n, 1, H, W]` bool. The threshold is numpy's `np.percentile`
/// (linear) to the bit, as pytorch-grad-cam computes it on float32 maps:
/// sorted neighbours `a <= b` at index `(N - 1) p / 100`, fraction `t`
/// (double, then float32), and `a + (b - a) t` below `t = 0.5`, else
/// `b - (b - a)(1 - t)`, all in float32. A threshold computed in double
/// differs in the last bit now and then, which moves a pixel equal to it
/// across the line (measured: 1 map in 2,000).
pub fn at_or_above_percentile(maps: &Tensor, p: f64) -> Result<Tensor> {
    let s = maps.size();
    let flat = maps
        .f_reshape([s[0], s[1] * s[2]])?
        .f_to_kind(Kind::Float)?;
    let thr = percentile(&flat, p)?;
    Ok(flat.f_ge_tensor(&thr)?.f_view([s[0], 1, s[1], s[2]])?)
}

/// The `N - ceil((N - 1) p / 100)` highest pixels of each of the `[n, H, W]`
/// maps -> `[n, 1, H, W]` bool: as many as [`at_or_above_percentile`]
/// takes from a map without ties, tied values taken in the order of a
/// random permutation of the pixels drawn from `seed` (the same for every
/// map).
pub fn top_share(maps: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let s = maps.size();
    let n = s[1] * s[2];
    let count = (n - ((n - 1) as f64 * p / 100.0).ceil() as i64).clamp(0, n);
    let perm: Vec<i64> = Rng::new(seed)
        .permutation(n as usize)
        .into_iter()
        .map(|i| i as i64)
        .collect();
    let perm = Tensor::f_from_slice(&perm)?.f_to_device(maps.device())?;
    let flat = maps
        .f_reshape([s[0], n])?
        .f_to_kind(Kind::Float)?
        .f_index_select(1, &perm)?;
    let (_, order) = flat.f_sort_stable(true, 1, true)?;
    let top = perm
        .f_index_select(0, &order.f_narrow(1, 0, count)?.f_flatten(0, -1)?)?
        .f_view([s[0], count])?;
    Ok(Tensor::f_zeros([s[0], n], (Kind::Bool, maps.device()))?
        .f_scatter_value(1, &top, 1)?
        .f_view([s[0], 1, s[1], s[2]])?)
}

/// numpy's `np.percentile(row, p)` of each row of `[n, N]` float32: `[n, 1]`.
pub fn percentile(flat: &Tensor, p: f64) -> Result<Tensor> {
    let n = flat.size()[1];
    let (sorted, _) = flat.f_sort(1, false)?;
    let pos = (n - 1) as f64 * (p / 100.0);
    let lo = (pos.floor() as i64).clamp(0, n - 1);
    let t = pos - lo as f64;
    let a = sorted.f_narrow(1, lo, 1)?;
    let b = sorted.f_narrow(1, (lo + 1).min(n - 1), 1)?;
    let diff = b.f_sub(&a)?;
    // Scalars round to float32 as numpy's weak promotion does.
    Ok(if t < 0.5 {
        a.f_add(&diff.f_mul_scalar(t as f32 as f64)?)?
    } else {
        b.f_sub(&diff.f_mul_scalar((1.0 - t) as f32 as f64)?)?
    })
}

/// ROAD scores of `[b, L]` maps.
#[derive(Debug)]
pub struct Road {
    pub percentiles: Vec<f64>,
    /// `[b, L, P]` change in probability after removing the most (MoRF) or
    /// least (LeRF) relevant pixels (CPU).
    pub morf: Tensor,
    pub lerf: Tensor,
    /// `[b, L]`: `(mean LeRF - mean MoRF) / 2`.
    pub combined: Tensor,
}

/// How ROAD perturbs: its percentiles, imputation noise and tie rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RoadSettings {
    pub percentiles: Vec<f64>,
    /// Standard deviation of the imputation noise (0 for none).
    pub noise: f64,
    #[serde(rename = "road_ties")]
    pub ties: Ties,
}

impl Default for RoadSettings {
    /// pytorch-grad-cam's: percentiles 10..90, noise 0.01, the threshold rule.
    fn default() -> Self {
        RoadSettings {
            percentiles: PERCENTILES.to_vec(),
            noise: NOISE,
            ties: Ties::Threshold,
        }
    }
}

/// ROAD for `maps` (`[b, L, H, W]`) of `labels` of the batch `x`.
pub fn road(
    model: &Model,
    x: &Tensor,
    maps: &Tensor,
    labels: &[usize],
    settings: &RoadSettings,
    fw: Forwards,
) -> Result<Road> {
    let RoadSettings {
        percentiles,
        noise,
        ties,
    } = settings;
    let (noise, ties) = (*noise, *ties);
    if percentiles.is_empty() {
        return Err(Error::invalid("ROAD percentiles", "none given"));
    }
    if let Some(p) = percentiles.iter().find(|p| !(0.0..=100.0).contains(*p)) {
        return Err(Error::invalid(
            "ROAD percentile",
            format!("{p} (must be 0 to 100)"),
        ));
    }
    let rows = super::Rows::new("ROAD", model, x, maps, labels)?;
    let s = x.size();
    let base = rows.pick_images(&all_probs(model, x, fw)?)?;
    let m = &rows.maps;
    let inv = m.f_neg()?.f_add_scalar(1.0)?;
    let n = rows.distinct();
    let step = fw.chunk.max(1) as i64;
    let (mut morf, mut lerf) = (Vec::new(), Vec::new());
    for (pi, &p) in percentiles.iter().enumerate() {
        for (oi, (src, out)) in [(m, &mut morf), (&inv, &mut lerf)].into_iter().enumerate() {
            let removed = match ties {
                Ties::Threshold => at_or_above_percentile(src, p)?,
                Ties::Rank => top_share(src, p, ((pi as u64) << 8) ^ oi as u64)?,
            };
            // One noise field per image, percentile and direction, the
            // same for every label and method: differences between maps
            // are not differences of noise.
            let field = noise_field(
                &[s[0], 1, s[2], s[3]],
                noise,
                ((pi as u64) << 40) ^ ((oi as u64) << 32),
            )?
            .map(|f| f.f_index_select(0, &rows.image))
            .transpose()?;
            let mut probs = Vec::new();
            let mut start = 0;
            while start < n {
                let len = step.min(n - start);
                let imputed = impute(
                    &rows.images.f_narrow(0, start, len)?,
                    &removed.f_narrow(0, start, len)?,
                    field
                        .as_ref()
                        .map(|f| f.f_narrow(0, start, len))
                        .transpose()?
                        .as_ref(),
                )?;
                probs.push(all_probs(model, &imputed, fw)?);
                start += len;
            }
            out.push(rows.pick(&Tensor::f_cat(&probs, 0)?)?.f_sub(&base)?);
        }
    }
    let stack = |v: &[Tensor]| -> Result<Tensor> { Ok(Tensor::f_stack(v, 2)?) };
    let (morf, lerf) = (stack(&morf)?, stack(&lerf)?);
    let mean = |t: &Tensor| t.f_mean_dim(-1i64, false, Kind::Float);
    let combined = mean(&lerf)?.f_sub(&mean(&morf)?)?.f_div_scalar(2.0)?;
    Ok(Road {
        percentiles: percentiles.to_vec(),
        morf,
        lerf,
        combined,
    })
}
