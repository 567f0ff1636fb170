//! EigenCAM: the activations projected on their first principal component
//! (gradient-free, the same map for every label).
use super::{CamContext, CamMethod};
use crate::Result;
use tch::{Kind, Tensor};

pub struct EigenCam;

impl CamMethod for EigenCam {
    fn name(&self) -> &'static str {
        "EigenCAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn cam(&self, ctx: &CamContext) -> Result<Tensor> {
        let a = ctx.activations.f_nan_to_num(0.0, None, None)?; // [b, c, h, w]
        let s = a.size();
        let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
        // [b, hw, c], centred over positions, as pytorch-grad-cam does before its SVD.
        let m = a.f_view([b, c, h * w])?.f_transpose(1, 2)?;
        let m = m.f_sub(&m.f_mean_dim(1i64, true, Kind::Float)?)?;
        let (_, _, v) = m.f_svd(true, true)?; // v [b, c, k]: right singular vectors as columns
        let v0 = v.f_narrow(2, 0, 1)?; // [b, c, 1]
        let proj = m.f_matmul(&v0)?.f_view([b, 1, h, w])?;
        Ok(proj
            .f_expand([b, ctx.labels.len() as i64, h, w], false)?
            .f_contiguous()?)
    }
}
