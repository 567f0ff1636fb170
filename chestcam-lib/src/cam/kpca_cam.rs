//! KPCA-CAM: the activations projected on their first kernel principal
//! component (gradient-free, the same map for every label), as
//! pytorch-grad-cam's `KPCA_CAM` with its defaults (scikit-learn's
//! `KernelPCA(n_components=1, kernel="sigmoid")`: `gamma = 1 / channels`,
//! `coef0 = 1`).
//!
//! Per image: the positions x channels matrix, centred over positions; the
//! sigmoid kernel `tanh(gamma x.y + 1)` between positions, double-centred;
//! its top eigenvector times the square root of its eigenvalue. The sign of
//! an eigenvector is arbitrary (scikit-learn makes its largest entry
//! positive); chestcam applies EigenCAM's convention instead: the map
//! correlates positively with the mean activation at each position.
//! Cost: one forward, and the top eigenpair of a positions x positions
//! matrix per image (LAPACK on the CPU; on a GPU 24 batched squarings of
//! the matrix shifted to non-negative eigenvalues, as the sigmoid kernel
//! can have negative ones).
use super::eigen_cam::{conventional_sign, same_map_for_every_label, top_algebraic_eigenpair};
use super::{CamContext, CamMethod};
use crate::Result;
use tch::{Kind, Tensor};

pub struct KpcaCam;

/// `[b, n]` projections of `m` (`[b, n, c]`) on the first kernel principal
/// component, under chestcam's sign convention (float).
pub(super) fn first_kernel_component(m: &Tensor) -> Result<Tensor> {
    let m = m.f_nan_to_num(0.0, None, None)?.f_to_kind(Kind::Double)?;
    let c = m.size()[2];
    let centred = m.f_sub(&m.f_mean_dim(1i64, true, Kind::Double)?)?;
    let k = centred
        .f_matmul(&centred.f_transpose(1, 2)?)?
        .f_mul_scalar(1.0 / c as f64)?
        .f_add_scalar(1.0)?
        .f_tanh()?;
    // KernelCenterer: K - row means - column means + the grand mean.
    let rows = k.f_mean_dim(2i64, true, Kind::Double)?;
    let cols = k.f_mean_dim(1i64, true, Kind::Double)?;
    let all = k.f_mean_dim([1i64, 2].as_slice(), true, Kind::Double)?;
    let kc = k.f_sub(&rows)?.f_sub(&cols)?.f_add(&all)?;
    // Off the CPU, by squaring on the device (no host round trip).
    let (val, vec) = top_algebraic_eigenpair(&kc)?;
    let lambda = val.f_clamp_min(0.0)?.f_sqrt()?.f_unsqueeze(1)?;
    let proj = vec.f_mul(&lambda)?;
    Ok(conventional_sign(&proj, &m)?.f_to_kind(Kind::Float)?)
}

impl CamMethod for KpcaCam {
    fn name(&self) -> &'static str {
        "KPCA-CAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn cam(&self, ctx: &CamContext) -> Result<Tensor> {
        same_map_for_every_label(ctx, first_kernel_component)
    }
}
