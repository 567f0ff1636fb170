//! EigenCAM: the activations projected on their first principal component
//! (gradient-free, the same map for every label).
//!
//! pytorch-grad-cam takes the first right singular vector of numpy's SVD,
//! whose sign is arbitrary: numpy and libtorch return opposite signs for
//! some matrices, so the same model can give a map or its inverse depending
//! on the LAPACK build. chestcam fixes the sign: the projection is the one
//! that correlates positively with the mean over channels of the
//! (uncentred) matrix at each position, so the map is high where the
//! activation is strong. Only an exactly zero correlation (a constant
//! matrix, whose map is flat anyway) leaves the solver's sign. The first
//! component comes from the smaller of the two Gram matrices (positions x
//! positions, or channels x channels) by a batched symmetric
//! eigendecomposition in double precision: no full SVD.
use super::{CamContext, CamMethod};
use crate::Result;
use tch::{Kind, Tensor};

pub struct EigenCam;

/// Each `[n, c]` matrix of `m` (`[b, n, c]`, one row per position) centred
/// over positions and projected on its first principal component, with
/// the sign convention above: `[b, n]` (float).
/// `linalg_eigh` of a batch of small symmetric matrices, on the CPU: on
/// CUDA, cuSOLVER's batched eigh of many matrices of a few dozen rows cost
/// about 0.7 ms each on an H100 (EigenGradCAM: 160 forwards' worth for 14
/// labels of 128 images), while LAPACK on the host takes microseconds;
/// the same routine on every device also gives the same eigenvectors.
fn eigh_on_cpu(g: &Tensor) -> Result<(Tensor, Tensor)> {
    let device = g.device();
    let (vals, vecs) = g.f_to_device(tch::Device::Cpu)?.f_linalg_eigh("L")?;
    Ok((vals.f_to_device(device)?, vecs.f_to_device(device)?))
}

pub(super) fn first_component(m: &Tensor) -> Result<Tensor> {
    let m = m.f_nan_to_num(0.0, None, None)?.f_to_kind(Kind::Double)?;
    let s = m.size();
    let (n, c) = (s[1], s[2]);
    let centred = m.f_sub(&m.f_mean_dim(1i64, true, Kind::Double)?)?;
    let ct = centred.f_transpose(1, 2)?;
    let proj = if n <= c {
        // Top eigenvector u of M M^T: the projection M v = sigma u.
        let (val, vec) = top_eigenpair(&centred.f_matmul(&ct)?)?;
        vec.f_mul(&val.f_clamp_min(0.0)?.f_sqrt()?.f_unsqueeze(1)?)?
    } else {
        let (_, vec) = top_eigenpair(&ct.f_matmul(&centred)?)?;
        centred.f_matmul(&vec.f_unsqueeze(2)?)?.f_squeeze_dim(2)?
    };
    Ok(conventional_sign(&proj, &m)?.f_to_kind(Kind::Float)?)
}

/// The largest eigenvalue (`[b]`) and its unit eigenvector (`[b, p]`, sign
/// arbitrary) of each symmetric positive semi-definite `[b, p, p]` matrix
/// (double): LAPACK on the host for a CPU tensor ([`eigh_on_cpu`]), and
/// [`top_eigenpair_by_squaring`] on the tensor's own device otherwise, so
/// that a GPU never waits on a copy to the host and back.
pub(super) fn top_eigenpair(g: &Tensor) -> Result<(Tensor, Tensor)> {
    if g.device() == tch::Device::Cpu {
        let p = g.size()[1];
        let (vals, vecs) = eigh_on_cpu(g)?;
        Ok((vals.f_select(1, p - 1)?, vecs.f_select(2, p - 1)?))
    } else {
        top_eigenpair_by_squaring(g)
    }
}

/// The algebraically largest eigenpair of symmetric matrices `[b, p, p]`
/// that may have negative eigenvalues (KPCA-CAM's sigmoid kernel is not
/// positive semi-definite, and squaring finds the eigenvalue of largest
/// magnitude, which can be a negative one): LAPACK on the CPU, as
/// [`top_eigenpair`]; elsewhere [`top_algebraic_eigenpair_by_squaring`].
pub(super) fn top_algebraic_eigenpair(g: &Tensor) -> Result<(Tensor, Tensor)> {
    if g.device() == tch::Device::Cpu {
        top_eigenpair(g)
    } else {
        top_algebraic_eigenpair_by_squaring(g)
    }
}

/// [`top_eigenpair_by_squaring`] of `g + s I`, `s` each matrix's largest
/// absolute row sum (a bound on its spectral radius): the shift makes every
/// eigenvalue non-negative and keeps the eigenvectors and their order, so
/// the largest eigenvalue is also the largest in magnitude; `s` is taken
/// off the eigenvalue again.
pub fn top_algebraic_eigenpair_by_squaring(g: &Tensor) -> Result<(Tensor, Tensor)> {
    let g = g.f_to_kind(Kind::Double)?;
    let (b, p) = (g.size()[0], g.size()[1]);
    let shift = g
        .f_abs()?
        .f_sum_dim_intlist(2i64, false, Kind::Double)?
        .f_amax([1i64].as_slice(), true)?; // [b, 1]
    let eye = Tensor::f_eye(p, (Kind::Double, g.device()))?;
    let shifted = g.f_add(&shift.f_unsqueeze(2)?.f_mul(&eye)?)?;
    let (val, vec) = top_eigenpair_by_squaring(&shifted)?;
    Ok((val.f_sub(&shift.f_view([b])?)?, vec))
}

/// Squarings in [`top_eigenpair_by_squaring`]: the other eigenvalues fall
/// by `(lambda_i / lambda_1)^(2^24)`, below double precision's 1e-16 for
/// any gap over 2.2e-6 of the largest eigenvalue (6e-8 at a gap of 1e-6).
const SQUARINGS: usize = 24;

/// [`top_eigenpair_by_squaring`] rescales its matrix after this many
/// squarings (a divisor of [`SQUARINGS`], so the last product is rescaled).
const RESCALE_EVERY: usize = 4;

/// `top_eigenpair` by repeated squaring, batched on the matrices' device:
/// `A <- A A` 24 times (`SQUARINGS`), rescaled to `max|A| = 1` after
/// every fourth (`RESCALE_EVERY`), leaves `A` proportional to
/// `u u^T` (the power method run to the `2^24`-th power in 24 matrix
/// products), whose column with the largest diagonal entry is `u` up to
/// scale; two power steps with the original matrix then polish it, and the
/// Rayleigh quotient gives the eigenvalue. Where the two largest
/// eigenvalues tie, `u` is some vector of their eigenspace, as an
/// eigensolver's would be. A zero matrix gives a zero vector and value.
pub fn top_eigenpair_by_squaring(g: &Tensor) -> Result<(Tensor, Tensor)> {
    let s = g.size();
    let (b, p) = (s[0], s[1]);
    let g = g.f_to_kind(Kind::Double)?;
    // Per-matrix scale of a tensor `[b, p, p]` -> `[b, 1, 1]`, 1 where it is 0.
    let scale = |a: &Tensor| -> Result<Tensor> {
        let m = a.f_abs()?.f_amax([1i64, 2].as_slice(), true)?;
        Ok(m.f_masked_fill(&m.f_eq(0.0)?, 1.0)?)
    };
    // Rescaled every RESCALE_EVERY squarings, not after each: four
    // squarings of a matrix with max |entry| 1 leave entries below
    // p^15 (1e41 at p = 512, far inside double range), and at a 28 px
    // layer4 (128 matrices of 16 x 16) the GPU waits for launches, not
    // for the products.
    let mut a = g.f_div(&scale(&g)?)?;
    for i in 0..SQUARINGS {
        a = a.f_matmul(&a)?;
        if (i + 1) % RESCALE_EVERY == 0 {
            a = a.f_div(&scale(&a)?)?;
        }
    }
    let j = a
        .f_diagonal(0, 1, 2)?
        .f_argmax(1, true)? // [b, 1]
        .f_unsqueeze(1)?
        .f_expand([b, p, 1], false)?;
    let unit = |v: &Tensor| -> Result<Tensor> {
        let norm = v
            .f_square()?
            .f_sum_dim_intlist(1i64, true, Kind::Double)?
            .f_sqrt()?;
        Ok(v.f_div(&norm.f_masked_fill(&norm.f_eq(0.0)?, 1.0)?)?)
    };
    let mut u = unit(&a.f_gather(2, &j, false)?)?; // [b, p, 1]
    for _ in 0..2 {
        u = unit(&g.f_matmul(&u)?)?;
    }
    let val = u
        .f_transpose(1, 2)?
        .f_matmul(&g.f_matmul(&u)?)?
        .f_view([b])?;
    Ok((val, u.f_view([b, p])?))
}

/// chestcam's sign convention for a projection `proj` (`[b, n]`) of the
/// matrices `m` (`[b, n, c]`, one row per position, double precision and
/// NaN-free, as both projections prepare them): negated where it
/// correlates negatively with the mean over channels of the (uncentred)
/// matrix at each position.
pub(super) fn conventional_sign(proj: &Tensor, m: &Tensor) -> Result<Tensor> {
    let agree = proj
        .f_mul(&m.f_mean_dim(2i64, false, Kind::Double)?)?
        .f_sum_dim_intlist(1i64, true, Kind::Double)?;
    let sign = agree
        .f_lt(0.0)?
        .f_to_kind(Kind::Double)?
        .f_mul_scalar(-2.0)?
        .f_add_scalar(1.0)?;
    Ok(proj.f_mul(&sign)?)
}

impl CamMethod for EigenCam {
    fn name(&self) -> &'static str {
        "EigenCAM"
    }
    fn uses_gradients(&self) -> bool {
        false
    }
    fn cam(&self, ctx: &CamContext) -> Result<Tensor> {
        same_map_for_every_label(ctx, first_component)
    }
}

/// A gradient-free map: the activations as one row per position
/// (`[b, hw, c]`, as pytorch-grad-cam's projections see them) projected by
/// `project` to `[b, hw]`, the same map for every requested label
/// (EigenCAM, KPCA-CAM).
pub(super) fn same_map_for_every_label(
    ctx: &CamContext,
    project: fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let s = ctx.activations.size();
    let (b, c, h, w) = (s[0], s[1], s[2], s[3]);
    let m = ctx.activations.f_view([b, c, h * w])?.f_transpose(1, 2)?;
    let proj = project(&m)?.f_view([b, 1, h, w])?;
    Ok(proj
        .f_expand([b, ctx.labels.len() as i64, h, w], false)?
        .f_contiguous()?)
}
