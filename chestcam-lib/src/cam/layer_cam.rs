//! LayerCAM: positive gradients times activations, summed over channels.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct LayerCam;

impl CamMethod for LayerCam {
    fn name(&self) -> &'static str {
        "LayerCAM"
    }
    fn cam(&self, ctx: &CamContext) -> Result<tch::Tensor> {
        Ok(ctx
            .grads()?
            .f_relu()?
            .f_mul(&ctx.acts5()?)?
            .f_sum_dim_intlist(2i64, false, Kind::Float)?)
    }
}
