//! EigenGradCAM (pytorch-grad-cam's `EigenGradCAM`): the first principal
//! component of gradients x activations, per label. The sign follows
//! EigenCAM's stated convention (see `eigen_cam.rs`): positive where the
//! channel mean of gradients x activations is high, so the map agrees with
//! HiResCAM's sign rather than with a LAPACK build.
use super::eigen_cam::first_component;
use super::{CamContext, CamMethod};
use crate::Result;
use tch::Tensor;

pub struct EigenGradCam;

impl CamMethod for EigenGradCam {
    fn name(&self) -> &'static str {
        "EigenGradCAM"
    }
    fn cam(&self, ctx: &CamContext) -> Result<Tensor> {
        let g = ctx.grads()?.f_mul(&ctx.acts5()?)?; // [b, L, c, h, w]
        let s = g.size();
        let (bl, c, h, w) = (s[0] * s[1], s[2], s[3], s[4]);
        let m = g.f_reshape([bl, c, h * w])?.f_transpose(1, 2)?;
        Ok(first_component(&m)?.f_view([s[0], s[1], h, w])?)
    }
}
