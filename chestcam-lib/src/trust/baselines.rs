//! Where maps come from: a CAM method, or the centre prior (a Gaussian at
//! the image centre, the "doctor looks at the middle" baseline that every
//! localisation score must beat). RandomCAM is a method
//! ([`crate::cam::Method::RandomCam`]).
use crate::cam::{compute, Method};
use crate::model::{Model, Stage};
use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// A source of maps that the trust checks score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MapSource {
    Cam(Method),
    /// A Gaussian at the centre with sigma = side / 4, the same for every
    /// image and label.
    CentrePrior,
}

impl MapSource {
    pub fn name(self) -> &'static str {
        match self {
            MapSource::Cam(m) => m.name(),
            MapSource::CentrePrior => "CentrePrior",
        }
    }

    /// A baseline, not a method under test.
    pub fn is_baseline(self) -> bool {
        matches!(
            self,
            MapSource::Cam(Method::RandomCam) | MapSource::CentrePrior
        )
    }
}

impl std::str::FromStr for MapSource {
    type Err = Error;
    /// A method name (see [`Method`]) or `centre` / `center` / `centreprior`.
    fn from_str(s: &str) -> Result<MapSource> {
        match s.to_ascii_lowercase().replace(['-', '_', ' '], "").as_str() {
            "centre" | "center" | "centreprior" | "centerprior" => Ok(MapSource::CentrePrior),
            _ => Ok(MapSource::Cam(s.parse()?)),
        }
    }
}

/// The centre prior `[b, L, H, W]`: `exp(-d^2 / (2 sigma^2))` with
/// `sigma = H / 4`, d the distance to the centre, peak 1.
pub fn centre_prior(b: i64, l: i64, h: i64, w: i64, device: Device) -> Result<Tensor> {
    let opts = (Kind::Float, device);
    let ys = Tensor::f_arange(h, opts)?.f_sub_scalar((h - 1) as f64 / 2.0)?;
    let xs = Tensor::f_arange(w, opts)?.f_sub_scalar((w - 1) as f64 / 2.0)?;
    let sigma = h.min(w) as f64 / 4.0;
    let d2 = ys
        .f_square()?
        .f_unsqueeze(1)?
        .f_add(&xs.f_square()?.f_unsqueeze(0)?)?;
    let g = d2.f_div_scalar(-2.0 * sigma * sigma)?.f_exp()?;
    Ok(g.f_expand([b, l, h, w], false)?.f_contiguous()?)
}

/// Maps of one source for a batch.
pub struct MapSet {
    /// `[b, L, H, W]` in [0, 1] on the model's device.
    pub maps: Tensor,
    /// `[b, L, H, W]`: the signed map before the ReLU, upsampled bilinearly
    /// (the centre prior's is its map).
    pub signed: Tensor,
    /// Probabilities `[b, 14]`.
    pub probs: Tensor,
}

/// The maps of `source` for `labels` of the batch `x` (`[b, 1, H, W]`).
pub fn maps(
    model: &Model,
    x: &Tensor,
    source: MapSource,
    stage: Stage,
    labels: &[usize],
    chunk: usize,
) -> Result<MapSet> {
    let s = x.size();
    match source {
        MapSource::Cam(m) => {
            let r = compute(model, x, m, stage, labels, chunk)?;
            let signed = crate::cam::upsample_maps(&r.raw, [s[2], s[3]])?;
            Ok(MapSet {
                maps: r.maps,
                signed,
                probs: r.probs,
            })
        }
        MapSource::CentrePrior => {
            let maps = centre_prior(s[0], labels.len() as i64, s[2], s[3], model.device())?;
            let probs = model.logits(&x.f_to_device(model.device())?).f_sigmoid()?;
            Ok(MapSet {
                signed: maps.shallow_clone(),
                maps,
                probs,
            })
        }
    }
}
