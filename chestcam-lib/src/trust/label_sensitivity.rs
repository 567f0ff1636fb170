//! Label sensitivity: each label's map against the map of every other label
//! of the same image. A method that draws the same map whatever the label
//! (EigenCAM does, by construction) scores 1 and tells nothing about which
//! finding it explains; the lower, the more the map depends on the label.
//! Spearman on the signed maps, SSIM on the shown maps.
use super::baselines::MapSet;
use super::randomisation::Similarity;
use super::similarity::{spearman, ssim};
use crate::Result;
use tch::Tensor;

/// Mean similarity over every image and pair of distinct labels (None with
/// fewer than 2 labels).
pub fn label_sensitivity(set: &MapSet) -> Result<Similarity> {
    let l = set.maps.size()[1];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..l {
        for j in i + 1..l {
            a.push(i);
            b.push(j);
        }
    }
    if a.is_empty() {
        return Ok(Similarity {
            spearman: None,
            spearman_abs: None,
            ssim: None,
        });
    }
    let dev = set.maps.device();
    let ia = Tensor::f_from_slice(&a)?.f_to_device(dev)?;
    let ib = Tensor::f_from_slice(&b)?.f_to_device(dev)?;
    let sel = |t: &Tensor, i: &Tensor| t.f_index_select(1, i);
    let mean = |t: Tensor| super::tensor_mean(&t);
    let (sa, sb) = (sel(&set.signed, &ia)?, sel(&set.signed, &ib)?);
    Ok(Similarity {
        spearman: mean(spearman(&sa, &sb)?)?,
        spearman_abs: mean(spearman(&sa.f_abs()?, &sb.f_abs()?)?)?,
        ssim: mean(ssim(&sel(&set.maps, &ia)?, &sel(&set.maps, &ib)?, 1.0)?)?,
    })
}
