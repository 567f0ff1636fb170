//! GradCAMElementWise (pytorch-grad-cam's `GradCAMElementWise`): the ReLU
//! of gradients x activations, element by element, summed over channels
//! (HiResCAM with negative contributions dropped before the sum).
use super::{CamContext, CamMethod};
use crate::Result;

pub struct GradCamElementWise;

impl CamMethod for GradCamElementWise {
    fn name(&self) -> &'static str {
        "GradCAMElementWise"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        Ok(Some(ctx.grads()?.f_mul(&ctx.acts5()?)?.f_relu()?))
    }
}
