//! RandomCAM (pytorch-grad-cam's `RandomCAM`): channel weights drawn
//! uniformly from [-1, 1], independent of the model's gradients. A baseline
//! every trust table carries: a method that cannot beat it tells nothing.
//! Seeded, so a rerun gives the same baseline.
use super::{CamContext, CamMethod};
use crate::util::Rng;
use crate::Result;
use tch::Tensor;

pub struct RandomCam {
    pub seed: u64,
}

impl CamMethod for RandomCam {
    fn name(&self) -> &'static str {
        "RandomCAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<Tensor>> {
        let s = ctx.activations.size();
        let (b, l, c) = (s[0], ctx.labels.len() as i64, s[1]);
        let mut rng = Rng::new(self.seed);
        let w: Vec<f32> = (0..b * l * c)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        let w = crate::util::upload(
            &Tensor::f_from_slice(&w)?.f_view([b, l, c])?,
            ctx.activations.device(),
        )?;
        Ok(Some(ctx.weighted_terms(&w)?))
    }
}
