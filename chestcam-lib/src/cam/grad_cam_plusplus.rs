//! Grad-CAM++ (Chattopadhay et al., eq. 19), as pytorch-grad-cam computes it.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Kind;

pub struct GradCamPlusPlus;

impl CamMethod for GradCamPlusPlus {
    fn name(&self) -> &'static str {
        "GradCAM++"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        let g = ctx.grads()?; // [b, L, c, h, w]
        let a = ctx.acts5()?; // [b, 1, c, h, w]
        let g2 = g.f_square()?;
        let g3 = g2.f_mul(g)?;
        let sum_a = a.f_sum_dim_intlist([3i64, 4].as_slice(), true, Kind::Float)?;
        let aij = g2.f_div(
            &g2.f_mul_scalar(2.0)?
                .f_add(&sum_a.f_mul(&g3)?)?
                .f_add_scalar(1e-6)?,
        )?;
        let aij = aij.f_where_self(&g.f_ne(0.0)?, &aij.f_zeros_like()?)?;
        let w =
            g.f_relu()?
                .f_mul(&aij)?
                .f_sum_dim_intlist([3i64, 4].as_slice(), false, Kind::Float)?;
        Ok(Some(ctx.weighted_terms(&w)?))
    }
}
