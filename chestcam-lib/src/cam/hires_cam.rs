//! HiResCAM: the element-wise product of gradients and activations, summed
//! over channels (no spatial averaging).
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct HiResCam;

impl CamMethod for HiResCam {
    fn name(&self) -> &'static str {
        "HiResCAM"
    }
    fn cam(&self, ctx: &CamContext) -> Result<tch::Tensor> {
        Ok(ctx
            .grads()?
            .f_mul(&ctx.acts5()?)?
            .f_sum_dim_intlist(2i64, false, Kind::Float)?)
    }
}
