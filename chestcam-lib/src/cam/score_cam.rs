//! Score-CAM: each channel's upsampled, min-max scaled activation masks the
//! input; the masked inputs' logits, soft-maxed over channels, are the
//! weights. Masked inputs go through the network `chunk` at a time, so
//! memory does not grow with channels x batch.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::{Kind, Tensor};

pub struct ScoreCam;

impl CamMethod for ScoreCam {
    fn name(&self) -> &'static str {
        "ScoreCAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<Tensor>> {
        let dims = ctx.input.size();
        let (hh, ww) = (dims[2], dims[3]);
        let a = &ctx.activations;
        let (b, c) = (a.size()[0], a.size()[1]);
        let labels = crate::util::label_indices(ctx.labels, a.device())?;
        let mut weights = Vec::with_capacity(b as usize);
        for i in 0..b {
            // torch.nn.UpsamplingBilinear2d: align_corners=True.
            let up = a
                .f_get(i)?
                .f_unsqueeze(0)?
                .f_upsample_bilinear2d([hh, ww], true, None, None)?
                .f_squeeze_dim(0)?; // [c, H, W]
            let flat = up.f_view([c, -1])?;
            let mins = flat.f_amin([1i64].as_slice(), true)?;
            let maxs = flat.f_amax([1i64].as_slice(), true)?;
            let masks = flat
                .f_sub(&mins)?
                .f_div(&maxs.f_sub(&mins)?.f_add_scalar(1e-8)?)?
                .f_view([c, 1, hh, ww])?;
            let img = ctx.input.f_get(i)?; // [1, H, W]
            let mut scores = Vec::new();
            let mut start = 0;
            while start < c {
                let len = (ctx.chunk as i64).min(c - start);
                let batch = masks.f_narrow(0, start, len)?.f_mul(&img)?;
                let out = ctx
                    .model
                    .net
                    .forward_stage(&batch, crate::model::Stage::Layer4, false)
                    .0; // [len, 14]
                scores.push(out.f_index_select(1, &labels)?); // [len, L]
                start += len;
            }
            let s = Tensor::f_cat(&scores, 0)?.f_transpose(0, 1)?; // [L, c]
            weights.push(s.f_softmax(-1, Kind::Float)?);
        }
        Ok(Some(ctx.weighted_terms(&Tensor::f_stack(&weights, 0)?)?))
    }
}
