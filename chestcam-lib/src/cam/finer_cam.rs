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
        // Every label at once: row (i, l) of `[b, L, n]` is image i's
        // logits compared from label l's point of view, and its own leaf,
        // so one backward gives each label's target coefficients (the rows
        // are independent) instead of a backward per label.
        let (b, l, dev) = (z.size()[0], labels.len() as i64, z.device());
        let idx = crate::util::label_indices(labels, dev)?;
        let own = crate::util::one_hot_rows(labels, n, dev)?
            .f_to_kind(Kind::Bool)?
            .f_unsqueeze(0)?;
        let zl = z.f_index_select(1, &idx)?.f_unsqueeze(2)?;
        // The label itself first (distance -1), then by nearness.
        let d = z
            .f_unsqueeze(1)?
            .f_sub(&zl)?
            .f_abs()?
            .f_masked_fill(&own, -1.0)?;
        let (_, order) = d.f_sort_stable(true, 2, false)?;
        let comp = order.f_narrow(2, 1, COMPARISONS)?;
        let zz = z
            .f_unsqueeze(1)?
            .f_expand([b, l, n], false)?
            .f_contiguous()?
            .f_set_requires_grad(true)?;
        let p = zz.f_softmax(2, Kind::Float)?.f_gather(2, &comp, false)?;
        let zc = zz.f_gather(2, &comp, false)?;
        let main = zz.f_gather(
            2,
            &idx.f_view([1, l, 1])?.f_expand([b, l, 1], false)?,
            false,
        )?;
        let num = p
            .f_mul(&main.f_sub(&zc.f_mul_scalar(self.alpha)?)?)?
            .f_sum_dim_intlist(2i64, false, Kind::Float)?;
        let den = p
            .f_sum_dim_intlist(2i64, false, Kind::Float)?
            .f_add_scalar(1e-9)?;
        let t = num.f_div(&den)?.f_sum(Kind::Float)?;
        Tensor::f_run_backward(&[t], &[&zz], false, false)?
            .into_iter()
            .next()
            .map(Some)
            .ok_or_else(|| Error::invalid("FinerCAM", "no gradient returned"))
    }
}
