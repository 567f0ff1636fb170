//! GradCAMElementWise (pytorch-grad-cam's `GradCAMElementWise`): the ReLU
//! of gradients x activations, element by element, summed over channels
//! (HiResCAM with negative contributions dropped before the sum).
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct GradCamElementWise;

impl CamMethod for GradCamElementWise {
    fn name(&self) -> &'static str {
        "GradCAMElementWise"
    }
    fn cam(&self, ctx: &CamContext) -> Result<tch::Tensor> {
        Ok(ctx
            .grads()?
            .f_mul(&ctx.acts5()?)?
            .f_relu()?
            .f_sum_dim_intlist(2i64, false, Kind::Float)?)
    }
}
