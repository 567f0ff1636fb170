//! Grad-CAM: channel weights are the spatial mean of the gradients.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct GradCam;

impl CamMethod for GradCam {
    fn name(&self) -> &'static str {
        "GradCAM"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        let w = ctx
            .grads()?
            .f_mean_dim([3i64, 4].as_slice(), false, Kind::Float)?; // [b, L, c]
        Ok(Some(ctx.weighted_terms(&w)?))
    }
}
