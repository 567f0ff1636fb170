//! FinerCAM: Grad-CAM of a comparison target instead of the label's own
//! logit, as pytorch-grad-cam's `FinerCAM` with its defaults (GradCAM
//! base, `alpha = 1`, comparison categories 1, 2, 3 and `target_idx` the
//! label): for label `l` of an image with logits `z`, the comparison labels
//! `S` are the three whose logits are nearest `z_l`, and the target is
//! `sum_{c in S} p_c (z_l - alpha z_c) / (sum_{c in S} p_c + 1e-9)` with
//! `p = softmax(z)` over the 14 logits (its `FinerWeightedTarget`). The map
//! shows what raises this label above the labels the model confuses it
//! with, rather than what raises it at all.
//!
//! (The softmax weights come from single-label classification; for these
//! 14 independent findings they only weigh the three comparisons.)
//!
//! Cost: Grad-CAM's, one backward per label. The target is a function of
//! the 14 logits only, so its gradient at the activation is the logits'
//! gradients weighted by the target's derivative at `z`, which a tiny
//! autograd pass over the logits gives ([`CamMethod::targets`]).
use super::grad_cam::GradCam;
use super::{CamContext, CamMethod};
use crate::{Error, Result};
use tch::{Kind, Tensor};

pub struct FinerCam {
    /// Comparison strength (pytorch-grad-cam's default 1).
    pub alpha: f64,
}

/// pytorch-grad-cam's `comparison_categories`: ranks 1, 2, 3 by nearness.
const COMPARISONS: i64 = 3;

impl CamMethod for FinerCam {
    fn name(&self) -> &'static str {
        "FinerCAM"
    }
    fn terms(&self, ctx: &CamContext) -> Result<Option<Tensor>> {
        GradCam.terms(ctx)
    }
    fn targets(&self, logits: &Tensor, labels: &[usize]) -> Result<Option<Tensor>> {
        let z = logits.f_detach()?.f_to_kind(Kind::Float)?;
        let n = z.size()[1];
        if n <= COMPARISONS {
            return Err(Error::invalid(
                "FinerCAM",
                format!("{n} labels: it needs more than {COMPARISONS} to compare"),
            ));
        }
        let mut out = Vec::with_capacity(labels.len());
        for &l in labels {
            let zl = z.f_narrow(1, l as i64, 1)?;
            // The label itself first (distance -1), then by nearness.
            let mut d = z.f_sub(&zl)?.f_abs()?;
            let _ = d.f_index_fill_(
                1,
                &Tensor::from_slice(&[l as i64]).f_to_device(z.device())?,
                -1.0,
            )?;
            let (_, order) = d.f_sort_stable(true, 1, false)?;
            let comp = order.f_narrow(1, 1, COMPARISONS)?;
            let zz = z.f_detach()?.f_set_requires_grad(true)?;
            let p = zz.f_softmax(1, Kind::Float)?.f_gather(1, &comp, false)?;
            let zc = zz.f_gather(1, &comp, false)?;
            let main = zz.f_narrow(1, l as i64, 1)?;
            let num = p
                .f_mul(&main.f_sub(&zc.f_mul_scalar(self.alpha)?)?)?
                .f_sum_dim_intlist(1i64, false, Kind::Float)?;
            let den = p
                .f_sum_dim_intlist(1i64, false, Kind::Float)?
                .f_add_scalar(1e-9)?;
            let t = num.f_div(&den)?.f_sum(Kind::Float)?;
            let g = Tensor::f_run_backward(&[t], &[&zz], false, false)?;
            out.push(
                g.into_iter()
                    .next()
                    .ok_or_else(|| Error::invalid("FinerCAM", "no gradient returned"))?,
            );
        }
        Ok(Some(Tensor::f_stack(&out, 1)?))
    }
}
