//! ShapleyCAM (pytorch-grad-cam's `ShapleyCAM`): channel weights are the
//! spatial mean of `g - H a / 2`, the gradient `g` of the label's score at
//! the activation `a` minus half the Hessian-vector product `H a` (a
//! second-order estimate of each channel's Shapley value).
//!
//! On this ResNet-18 the Hessian at any stage is zero wherever it exists:
//! everything above a stage is convolutions, eval-mode batch norms, ReLUs,
//! a mean and a linear layer, all linear or piecewise linear. So here
//! ShapleyCAM's maps are Grad-CAM's (the parity test checks both against
//! pytorch-grad-cam's ShapleyCAM); the Hessian term is computed anyway, by
//! double backward, so a model with smooth activations gets the real thing.
//!
//! Cost: one forward, and two backwards per label (the gradient with its
//! graph, then the Hessian-vector product).
use super::{CamContext, CamMethod};
use crate::{Error, Result};
use tch::Kind;

pub struct ShapleyCam;

impl CamMethod for ShapleyCam {
    fn name(&self) -> &'static str {
        "ShapleyCAM"
    }
    fn uses_hvp(&self) -> bool {
        true
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<tch::Tensor>> {
        let hvp = ctx
            .hvp
            .as_ref()
            .ok_or_else(|| Error::invalid("ShapleyCAM", "no Hessian-vector product computed"))?;
        let w = ctx.grads()?.f_sub(&hvp.f_mul_scalar(0.5)?)?.f_mean_dim(
            [3i64, 4].as_slice(),
            false,
            Kind::Float,
        )?; // [b, L, c]
        Ok(Some(ctx.weighted_terms(&w)?))
    }
}
