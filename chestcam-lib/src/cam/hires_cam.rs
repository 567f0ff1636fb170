//! HiResCAM: the element-wise product of gradients and activations, summed
//! over channels (no spatial averaging).
use super::{CamContext, CamMethod};
use crate::Result;

pub struct HiResCam;

impl CamMethod for HiResCam {
    fn name(&self) -> &'static str {
        "HiResCAM"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        Ok(Some(ctx.grads()?.f_mul(&ctx.acts5()?)?))
    }
}
