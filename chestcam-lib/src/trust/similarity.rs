//! How alike two maps are, batched: Spearman's rank correlation (ties get
//! their average rank, as `scipy.stats.spearmanr`) and SSIM (equal to
//! scikit-image's `structural_similarity` with its defaults: a 7x7 uniform
//! window, K1 0.01, K2 0.03, sample covariance, the mean over the window
//! positions inside the image; `data_range` 1 for maps in [0, 1]).
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Average ranks (1-based) along the last axis of `[n, P]`.
pub fn average_ranks(x: &Tensor) -> Result<Tensor> {
    let (sorted, _) = x.f_sort(-1, false)?;
    let sorted = sorted.f_contiguous()?;
    let xc = x.f_contiguous()?;
    // Elements below x_i, and at or below x_i: ties share the mean of their positions.
    let below = xc.f_searchsorted(&sorted, false, false, "left", None::<Tensor>)?;
    let upto = xc.f_searchsorted(&sorted, false, false, "right", None::<Tensor>)?;
    Ok(below
        .f_add(&upto)?
        .f_to_kind(Kind::Double)?
        .f_add_scalar(1.0)?
        .f_div_scalar(2.0)?)
}

fn pearson(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let a = a.f_sub(&a.f_mean_dim(-1i64, true, Kind::Double)?)?;
    let b = b.f_sub(&b.f_mean_dim(-1i64, true, Kind::Double)?)?;
    let num = a.f_mul(&b)?.f_sum_dim_intlist(-1i64, false, Kind::Double)?;
    let den = a
        .f_square()?
        .f_sum_dim_intlist(-1i64, false, Kind::Double)?
        .f_mul(
            &b.f_square()?
                .f_sum_dim_intlist(-1i64, false, Kind::Double)?,
        )?
        .f_sqrt()?;
    // A constant map has no ranking: NaN, as scipy returns.
    Ok(num.f_div(&den)?)
}

fn check_pair(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.size() != b.size() || a.dim() < 2 {
        return Err(Error::invalid(
            what,
            format!(
                "maps of shapes {:?} and {:?}; expected the same [.., H, W]",
                a.size(),
                b.size()
            ),
        ));
    }
    Ok(())
}

/// Spearman's rho between corresponding maps of `a` and `b` (`[.., H, W]`
/// each): `[..]` (double), NaN where a map is constant.
pub fn spearman(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    check_pair("Spearman", a, b)?;
    let s = a.size();
    let lead = &s[..s.len() - 2];
    let p = s[s.len() - 2] * s[s.len() - 1];
    let ra = average_ranks(&a.f_to_kind(Kind::Double)?.f_reshape([-1, p])?)?;
    let rb = average_ranks(&b.f_to_kind(Kind::Double)?.f_reshape([-1, p])?)?;
    Ok(pearson(&ra, &rb)?.f_reshape(lead)?)
}

/// SSIM between corresponding maps (`[.., H, W]`, H and W at least 7):
/// `[..]` (double).
pub fn ssim(a: &Tensor, b: &Tensor, data_range: f64) -> Result<Tensor> {
    check_pair("SSIM", a, b)?;
    let s = a.size();
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    if h < 7 || w < 7 {
        return Err(Error::invalid(
            "SSIM",
            format!("maps of {h}x{w}: need at least 7x7"),
        ));
    }
    let lead = &s[..s.len() - 2];
    let x = a.f_to_kind(Kind::Double)?.f_reshape([-1, 1, h, w])?;
    let y = b.f_to_kind(Kind::Double)?.f_reshape([-1, 1, h, w])?;
    let win = Tensor::f_full([1, 1, 7, 7], 1.0 / 49.0, (Kind::Double, x.device()))?;
    let f = |t: &Tensor| t.f_conv2d(&win, None::<Tensor>, [1, 1], [0, 0], [1, 1], 1);
    let (ux, uy) = (f(&x)?, f(&y)?);
    let (uxx, uyy, uxy) = (f(&x.f_mul(&x)?)?, f(&y.f_mul(&y)?)?, f(&x.f_mul(&y)?)?);
    let cov = 49.0 / 48.0;
    let vx = uxx.f_sub(&ux.f_mul(&ux)?)?.f_mul_scalar(cov)?;
    let vy = uyy.f_sub(&uy.f_mul(&uy)?)?.f_mul_scalar(cov)?;
    let vxy = uxy.f_sub(&ux.f_mul(&uy)?)?.f_mul_scalar(cov)?;
    let (c1, c2) = ((0.01 * data_range).powi(2), (0.03 * data_range).powi(2));
    let num = ux
        .f_mul(&uy)?
        .f_mul_scalar(2.0)?
        .f_add_scalar(c1)?
        .f_mul(&vxy.f_mul_scalar(2.0)?.f_add_scalar(c2)?)?;
    let den = ux
        .f_square()?
        .f_add(&uy.f_square()?)?
        .f_add_scalar(c1)?
        .f_mul(&vx.f_add(&vy)?.f_add_scalar(c2)?)?;
    Ok(num
        .f_div(&den)?
        .f_mean_dim([1i64, 2, 3].as_slice(), false, Kind::Double)?
        .f_reshape(lead)?)
}
