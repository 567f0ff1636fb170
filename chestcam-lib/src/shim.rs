//! Safe wrappers over the C++ shim (csrc/shim.cpp): ATen functions tch
//! does not expose. Each C function returns NULL or an error message.
use crate::{Error, Result};
use std::os::raw::{c_char, c_int};
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn chestcam_fused_adam(
        params: *const *mut C_tensor,
        grads: *const *mut C_tensor,
        exp_avgs: *const *mut C_tensor,
        exp_avg_sqs: *const *mut C_tensor,
        steps: *const *mut C_tensor,
        n: i64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    ) -> *mut c_char;
    fn chestcam_channels_last(
        t: *mut C_tensor,
        in_place: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn chestcam_is_channels_last(t: *mut C_tensor) -> c_int;
    fn chestcam_autocast_enter(cuda: c_int, half: c_int, prev: *mut c_int) -> *mut c_char;
    fn chestcam_autocast_exit(cuda: c_int, prev: c_int) -> *mut c_char;
    fn chestcam_free_message(m: *mut c_char);
}

/// Turns the shim's answer into a `Result`, freeing its message.
fn check(msg: *mut c_char, what: &str) -> Result<()> {
    if msg.is_null() {
        return Ok(());
    }
    // SAFETY: a NUL-terminated copy made by the shim, freed once here.
    let text = unsafe {
        let t = std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned();
        chestcam_free_message(msg);
        t
    };
    let first = text.lines().next().unwrap_or_default().to_string();
    Err(Error::invalid(what, first))
}

/// `aten::_fused_adam_` (no weight decay, no amsgrad) over parallel lists
/// of parameters, gradients, moments and float step tensors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_adam(
    params: &mut [&mut Tensor],
    grads: &mut [Tensor],
    exp_avgs: &mut [&mut Tensor],
    exp_avg_sqs: &mut [&mut Tensor],
    steps: &mut [Tensor],
    lr: f64,
    betas: (f64, f64),
    eps: f64,
) -> Result<()> {
    let n = params.len();
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), steps.len()] != [n; 4] {
        return Err(Error::invalid("fused Adam", "lists of different lengths"));
    }
    let ps: Vec<*mut C_tensor> = params.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let gs: Vec<*mut C_tensor> = grads.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let ms: Vec<*mut C_tensor> = exp_avgs.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let vs: Vec<*mut C_tensor> = exp_avg_sqs.iter_mut().map(|t| t.as_mut_ptr()).collect();
    let ss: Vec<*mut C_tensor> = steps.iter_mut().map(|t| t.as_mut_ptr()).collect();
    // SAFETY: every pointer is a live tensor borrowed for the whole call;
    // the shim only reads the arrays.
    let msg = unsafe {
        chestcam_fused_adam(
            ps.as_ptr(),
            gs.as_ptr(),
            ms.as_ptr(),
            vs.as_ptr(),
            ss.as_ptr(),
            n as i64,
            lr,
            betas.0,
            betas.1,
            eps,
        )
    };
    check(msg, "fused Adam step")
}

/// A channels-last (NHWC) copy of a 4-d tensor (others come back as they are).
pub fn channels_last(t: &Tensor) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    // SAFETY: `t` is live; on success the shim stores a new tensor in `out`.
    let msg = unsafe { chestcam_channels_last(t.as_ptr() as *mut C_tensor, 0, &mut out) };
    check(msg, "channels-last copy")?;
    if out.is_null() {
        return Err(Error::invalid(
            "channels-last copy",
            "the shim returned no tensor",
        ));
    }
    // SAFETY: `out` is a heap tensor the shim allocated for us to own.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Re-lays a 4-d parameter out channels-last in place (as
/// `nn.Module.to(memory_format=torch.channels_last)`).
pub fn set_channels_last(t: &mut Tensor) -> Result<()> {
    // SAFETY: `t` is live and borrowed mutably for the call.
    let msg = unsafe { chestcam_channels_last(t.as_mut_ptr(), 1, std::ptr::null_mut()) };
    check(msg, "channels-last parameter")
}

/// Whether `t` is a 4-d tensor laid out channels-last.
pub fn is_channels_last(t: &Tensor) -> bool {
    // SAFETY: read-only query on a live tensor.
    unsafe { chestcam_is_channels_last(t.as_ptr() as *mut C_tensor) == 1 }
}

/// Runs `f` under autocast on `device`'s type (bfloat16, or float16 when
/// `half`), as `with torch.autocast(...)`: matmuls and convolutions in the
/// low precision, losses and reductions in float32. Restored afterwards,
/// also when `f` fails.
pub fn autocast<T>(device: tch::Device, half: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let cuda = c_int::from(device.is_cuda());
    let mut prev: c_int = 0;
    // SAFETY: plain values; the shim writes `prev`.
    check(
        unsafe { chestcam_autocast_enter(cuda, c_int::from(half), &mut prev) },
        "autocast",
    )?;
    let out = f();
    // SAFETY: restores what enter saved.
    let exit = check(unsafe { chestcam_autocast_exit(cuda, prev) }, "autocast");
    let out = out?;
    exit?;
    Ok(out)
}
