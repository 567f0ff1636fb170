//! FullGrad (pytorch-grad-cam's `FullGrad`, after Srinivas and Fleuret
//! 2019): the input's gradient times the input, plus, for every layer with
//! a bias (here the 20 batch norms; the convolutions have none), the bias
//! times the gradient at that layer's output, each absolute, scaled per
//! image and channel to [0, 1], upsampled to the input and summed over
//! channels; the total is scaled per image. It reads the whole network, so
//! the stage is ignored (as pytorch-grad-cam ignores its target layers).
//!
//! Cost: one forward keeping every batch norm's output, and one backward
//! per label through the whole network (to the input). `eigen_smooth`
//! does not apply to it (pytorch-grad-cam's FullGrad has a variant of its
//! own, not reproduced). Each layer's
//! channel maps are summed before the upsampling, which is linear, so one
//! upsampling per layer and label.
use super::{scale_maps, CamMethod};
use crate::model::Model;
use crate::{Error, Result};
use tch::{Kind, Tensor};

pub struct FullGrad;

impl CamMethod for FullGrad {
    fn name(&self) -> &'static str {
        "FullGrad"
    }
    fn whole_network(
        &self,
        model: &Model,
        x: &Tensor,
        labels: &[usize],
    ) -> Result<Option<(Tensor, Tensor)>> {
        let (h, w) = (x.size()[2], x.size()[3]);
        let x = x.f_detach()?.f_set_requires_grad(true)?;
        let (logits, kept) = model.net.forward_keeping_batch_norms(&x);
        let mut inputs: Vec<&Tensor> = vec![&x];
        inputs.extend(kept.iter().map(|(t, _)| t));
        let mut maps = Vec::with_capacity(labels.len());
        for (i, &l) in labels.iter().enumerate() {
            let score = logits.f_select(1, l as i64)?.f_sum(Kind::Float)?;
            let grads = Tensor::f_run_backward(&[score], &inputs, i + 1 < labels.len(), false)?;
            let mut total = tch::no_grad(|| -> Result<Tensor> {
                let g = grads
                    .first()
                    .ok_or_else(|| Error::invalid("FullGrad", "no input gradient"))?;
                scale_maps(&g.f_mul(&x.f_detach()?)?.f_abs()?)?
                    .f_sum_dim_intlist(1i64, false, Kind::Float)
                    .map_err(Error::from)
            })?;
            for (g, (_, bias)) in grads[1..].iter().zip(&kept) {
                let part = tch::no_grad(|| -> Result<Tensor> {
                    let c = bias.size()[0];
                    let t = g.f_mul(&bias.f_view([1, c, 1, 1])?)?.f_abs()?;
                    let summed = scale_maps(&t)?.f_sum_dim_intlist(1i64, true, Kind::Float)?;
                    let up = if summed.size()[2..] == [h, w] {
                        summed
                    } else {
                        summed.f_upsample_bilinear2d([h, w], false, None, None)?
                    };
                    Ok(up.f_squeeze_dim(1)?)
                })?;
                total = total.f_add(&part)?;
            }
            maps.push(total);
        }
        Ok(Some((Tensor::f_stack(&maps, 1)?, logits.f_detach()?)))
    }
}
