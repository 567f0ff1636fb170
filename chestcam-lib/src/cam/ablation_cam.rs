//! Ablation-CAM: a channel's weight is the relative drop of the label's
//! logit when that channel of the activation is ablated (set to 0 when the
//! activation's minimum is 0, else to min - 1e7), as pytorch-grad-cam's
//! `AblationLayer` does. Ablated copies go through the rest of the network
//! `chunk` at a time.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::{Kind, Tensor};

pub struct AblationCam;

impl CamMethod for AblationCam {
    fn name(&self) -> &'static str {
        "AblationCAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<Tensor>> {
        let a = &ctx.activations;
        let (b, c) = (a.size()[0], a.size()[1]);
        let labels = crate::util::label_indices(ctx.labels, a.device())?;
        let original = ctx.logits.f_index_select(1, &labels)?; // [b, L]
        let mut weights = Vec::with_capacity(b as usize);
        for i in 0..b {
            let ai = a.f_get(i)?; // [c, h, w]
            let mut scores = Vec::new();
            let mut start = 0;
            while start < c {
                let len = (ctx.chunk as i64).min(c - start);
                let batch = ai.f_unsqueeze(0)?.f_repeat([len, 1, 1, 1])?;
                let value = if batch.f_min()?.f_double_value(&[])? == 0.0 {
                    0.0
                } else {
                    batch.f_min()?.f_double_value(&[])? - 1e7
                };
                for j in 0..len {
                    let _ = batch.f_get(j)?.f_get(start + j)?.f_fill_(value)?;
                }
                let out = ctx.model.net.forward_from(ctx.stage, &batch); // [len, 14]
                scores.push(out.f_index_select(1, &labels)?);
                start += len;
            }
            let new = Tensor::f_cat(&scores, 0)?.f_transpose(0, 1)?; // [L, c]
            let orig = original.f_get(i)?.f_unsqueeze(1)?; // [L, 1]
            weights.push(orig.f_sub(&new)?.f_div(&orig)?);
        }
        Ok(Some(ctx.weighted_terms(
            &Tensor::f_stack(&weights, 0)?.f_to_kind(Kind::Float)?,
        )?))
    }
}
