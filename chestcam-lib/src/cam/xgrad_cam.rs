//! XGrad-CAM: gradients weighted by the normalised activations.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct XGradCam;

impl CamMethod for XGradCam {
    fn name(&self) -> &'static str {
        "XGradCAM"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        let a = ctx.acts5()?;
        let sum_a = a.f_sum_dim_intlist([3i64, 4].as_slice(), true, Kind::Float)?;
        let w = ctx
            .grads()?
            .f_mul(&a)?
            .f_div(&sum_a.f_add_scalar(1e-7)?)?
            .f_sum_dim_intlist([3i64, 4].as_slice(), false, Kind::Float)?;
        Ok(Some(ctx.weighted_terms(&w)?))
    }
}
