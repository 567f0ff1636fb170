//! IoU of the map thresholded by Otsu's method with the mask, as
//! CheXlocalize (Saporta et al., Nature Machine Intelligence 2022) turns a
//! heatmap into a segmentation. The threshold equals scikit-image's
//! `threshold_otsu` (256 bins over the map's range) on the map in double
//! precision; the segmentation is `map > threshold`.
use crate::Result;
use tch::{Device, Kind, Tensor};

/// scikit-image's `threshold_otsu(map, nbins=256)`.
pub fn threshold_otsu(map: &[f64]) -> f64 {
    let Some(&first) = map.first() else {
        return 0.0;
    };
    if map.iter().all(|&v| v == first) {
        return first;
    }
    let (lo, hi) = map
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    const NB: usize = 256;
    // numpy.histogram: edges linspace(lo, hi, 257), half-open bins, the last closed.
    let step = (hi - lo) / NB as f64;
    let edge = |i: usize| if i == NB { hi } else { lo + i as f64 * step };
    let norm = NB as f64 / (hi - lo);
    let mut counts = [0f64; NB];
    for &v in map {
        let mut i = (((v - lo) * norm) as usize).min(NB - 1);
        if v < edge(i) {
            i -= 1;
        } else if i + 1 < NB && v >= edge(i + 1) {
            i += 1;
        }
        counts[i] += 1.0;
    }
    let centres: Vec<f64> = (0..NB).map(|i| (edge(i) + edge(i + 1)) / 2.0).collect();
    let mut w1 = [0f64; NB];
    let mut m1 = [0f64; NB];
    let (mut c, mut cm) = (0.0, 0.0);
    for i in 0..NB {
        c += counts[i];
        cm += counts[i] * centres[i];
        w1[i] = c;
        m1[i] = cm / c;
    }
    let mut w2 = [0f64; NB];
    let mut m2 = [0f64; NB];
    let (mut c, mut cm) = (0.0, 0.0);
    for i in (0..NB).rev() {
        c += counts[i];
        cm += counts[i] * centres[i];
        w2[i] = c;
        m2[i] = cm / c;
    }
    let mut best = (0usize, f64::MIN);
    for i in 0..NB - 1 {
        let v = w1[i] * w2[i + 1] * (m1[i] - m2[i + 1]).powi(2);
        if v > best.1 {
            best = (i, v);
        }
    }
    centres[best.0]
}

/// IoU of `map > threshold_otsu(map)` with `mask > 0.5` per map: `[b, L]`
/// (0 when both are empty).
pub fn otsu_iou(maps: &Tensor, masks: &Tensor) -> Result<Tensor> {
    let s = maps.size();
    let hw = (s[2] * s[3]) as usize;
    let m: Vec<f64> = Vec::try_from(
        maps.f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_flatten(0, -1)?,
    )?;
    let g: Vec<f64> = Vec::try_from(
        masks
            .f_to_device(Device::Cpu)?
            .f_to_kind(Kind::Double)?
            .f_flatten(0, -1)?,
    )?;
    if g.len() != m.len() {
        return Err(crate::Error::invalid(
            "Otsu IoU",
            format!("masks {:?} for maps {s:?}", masks.size()),
        ));
    }
    let iou: Vec<f32> = m
        .chunks(hw.max(1))
        .zip(g.chunks(hw.max(1)))
        .map(|(map, mask)| {
            let t = threshold_otsu(map);
            let (mut inter, mut union) = (0usize, 0usize);
            for (&v, &k) in map.iter().zip(mask) {
                let (a, b) = (v > t, k > 0.5);
                inter += (a && b) as usize;
                union += (a || b) as usize;
            }
            if union == 0 {
                0.0
            } else {
                inter as f32 / union as f32
            }
        })
        .collect();
    Ok(Tensor::f_from_slice(&iou)?.f_view([s[0], s[1]])?)
}
