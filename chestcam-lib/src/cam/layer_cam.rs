//! LayerCAM: positive gradients times activations, summed over channels.
use super::{CamContext, CamMethod};
use crate::Result;

pub struct LayerCam;

impl CamMethod for LayerCam {
    fn name(&self) -> &'static str {
        "LayerCAM"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        Ok(Some(ctx.grads()?.f_relu()?.f_mul(&ctx.acts5()?)?))
    }
}
