//! Safe wrappers over the C++ shim (csrc/shim.cpp): ATen functions tch
//! does not expose. Each C function returns NULL or an error message.
use crate::{Error, Result};
use std::os::raw::{c_char, c_int, c_void};
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
        grad_scale: *mut C_tensor,
        found_inf: *mut C_tensor,
    ) -> *mut c_char;
    fn chestcam_amp_check_and_unscale(
        grads: *const *mut C_tensor,
        n: i64,
        found_inf: *mut C_tensor,
        inv_scale: *mut C_tensor,
    ) -> *mut c_char;
    fn chestcam_channels_last(
        t: *mut C_tensor,
        in_place: c_int,
        out: *mut *mut C_tensor,
    ) -> *mut c_char;
    fn chestcam_is_channels_last(t: *mut C_tensor) -> c_int;
    fn chestcam_pin_memory(t: *mut C_tensor, out: *mut *mut C_tensor) -> *mut c_char;
    fn chestcam_cuda_free_memory(device: i64, free: *mut i64, total: *mut i64) -> *mut c_char;
    fn chestcam_autocast_enter(cuda: c_int, half: c_int, prev: *mut c_int) -> *mut c_char;
    fn chestcam_autocast_exit(cuda: c_int, prev: c_int) -> *mut c_char;
    fn chestcam_free_message(m: *mut c_char);
    fn chestcam_op_count_start() -> *mut c_char;
    fn chestcam_op_count_stop(out: *mut *mut c_char) -> *mut c_char;
    fn chestcam_grads_to_none(ts: *const *mut C_tensor, n: i64) -> *mut c_char;
    fn chestcam_graph_new(device: i64, out: *mut *mut c_void) -> *mut c_char;
    fn chestcam_graph_side_stream(g: *mut c_void, on: c_int) -> *mut c_char;
    fn chestcam_graph_capture(g: *mut c_void, begin: c_int) -> *mut c_char;
    fn chestcam_graph_replay(g: *mut c_void) -> *mut c_char;
    fn chestcam_graph_free(g: *mut c_void);
    fn chestcam_cuda_memory(
        device: i64,
        allocated: *mut i64,
        reserved: *mut i64,
        reset: c_int,
    ) -> *mut c_char;
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
    scaler: Option<(&Tensor, &Tensor)>,
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
            scaler.map_or(std::ptr::null_mut(), |(s, _)| s.as_ptr() as *mut C_tensor),
            scaler.map_or(std::ptr::null_mut(), |(_, f)| f.as_ptr() as *mut C_tensor),
        )
    };
    check(msg, "fused Adam step")
}

/// GradScaler's check of `grads` for inf/NaN: sets `found_inf` (one-element
/// float) to 1 if any is, and multiplies them by `inv_scale`.
pub(crate) fn amp_check_and_unscale(
    grads: &mut [Tensor],
    found_inf: &Tensor,
    inv_scale: &Tensor,
) -> Result<()> {
    let gs: Vec<*mut C_tensor> = grads.iter_mut().map(|t| t.as_mut_ptr()).collect();
    // SAFETY: live tensors for the whole call; the shim reads the array.
    let msg = unsafe {
        chestcam_amp_check_and_unscale(
            gs.as_ptr(),
            gs.len() as i64,
            found_inf.as_ptr() as *mut C_tensor,
            inv_scale.as_ptr() as *mut C_tensor,
        )
    };
    check(msg, "gradient scaler check")
}

/// A channels-last (NHWC) copy of a 4-d tensor (others come back as they are).
pub fn channels_last(t: &Tensor) -> Result<Tensor> {
    // SAFETY: `t` is live; on success the shim stores a new tensor in `out`.
    new_tensor("channels-last copy", |out| unsafe {
        chestcam_channels_last(t.as_ptr() as *mut C_tensor, 0, out)
    })
}

/// The tensor a shim function `f` makes in its out-parameter, owned here.
fn new_tensor(what: &str, f: impl FnOnce(*mut *mut C_tensor) -> *mut c_char) -> Result<Tensor> {
    let mut out: *mut C_tensor = std::ptr::null_mut();
    check(f(&mut out), what)?;
    if out.is_null() {
        return Err(Error::invalid(what, "the shim returned no tensor"));
    }
    // SAFETY: `out` is a heap tensor the shim allocated for us to own.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// A copy of CPU tensor `t` in page-locked (pinned) host memory, from which
/// `to_device_(.., non_blocking = true, ..)` copies to a GPU in stream
/// order, without the host waiting (`torch.Tensor.pin_memory()`). Fails on
/// a machine without a GPU.
pub fn pin_memory(t: &Tensor) -> Result<Tensor> {
    // SAFETY: `t` is live; on success the shim stores a new tensor in `out`.
    new_tensor("pinned memory", |out| unsafe {
        chestcam_pin_memory(t.as_ptr() as *mut C_tensor, out)
    })
}

/// Bytes a new tensor could still get on CUDA device `index` (the driver's
/// free memory plus what the caching allocator holds unused), and the
/// device's total.
pub fn cuda_free_memory(index: usize) -> Result<(u64, u64)> {
    let (mut free, mut total) = (0i64, 0i64);
    // SAFETY: plain values; the shim writes `free` and `total`.
    check(
        unsafe { chestcam_cuda_free_memory(index as i64, &mut free, &mut total) },
        "CUDA free memory",
    )?;
    Ok((free.max(0) as u64, total.max(0) as u64))
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

/// `begin`, then `body`, then `end` with what `begin` returned, also when
/// `body` failed (a state the shim sets and must restore); the body's error
/// wins over the end's.
fn paired<S, T>(
    begin: impl FnOnce() -> Result<S>,
    body: impl FnOnce() -> Result<T>,
    end: impl FnOnce(S) -> Result<()>,
) -> Result<T> {
    let state = begin()?;
    let out = body();
    let ended = end(state);
    let out = out?;
    ended?;
    Ok(out)
}

/// Runs `f` under autocast on `device`'s type (bfloat16, or float16 when
/// `half`), as `with torch.autocast(...)`: matmuls and convolutions in the
/// low precision, losses and reductions in float32. Restored afterwards,
/// also when `f` fails.
pub fn autocast<T>(device: tch::Device, half: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let cuda = c_int::from(device.is_cuda());
    paired(
        || {
            let mut prev: c_int = 0;
            // SAFETY: plain values; the shim writes `prev`.
            let msg = unsafe { chestcam_autocast_enter(cuda, c_int::from(half), &mut prev) };
            check(msg, "autocast").map(|_| prev)
        },
        f,
        // SAFETY: restores what enter saved.
        |prev| check(unsafe { chestcam_autocast_exit(cuda, prev) }, "autocast"),
    )
}

/// Drops the gradients of `params` (PyTorch's `zero_grad(set_to_none=True)`).
pub fn grads_to_none<'a>(params: impl Iterator<Item = &'a mut Tensor>) -> Result<()> {
    let ps: Vec<*mut C_tensor> = params.map(|t| t.as_mut_ptr()).collect();
    // SAFETY: live tensors borrowed mutably for the call; the shim only
    // reads the array.
    check(
        unsafe { chestcam_grads_to_none(ps.as_ptr(), ps.len() as i64) },
        "dropping gradients",
    )
}

/// Peak bytes of the CUDA caching allocator on device `index` since the
/// start or the last reset: (held by tensors, reserved from the driver).
/// `reset` starts a new peak after reading.
pub fn cuda_peak_memory(index: usize, reset: bool) -> Result<(u64, u64)> {
    let (mut a, mut r) = (0i64, 0i64);
    // SAFETY: plain values; the shim writes `a` and `r`.
    check(
        unsafe { chestcam_cuda_memory(index as i64, &mut a, &mut r, c_int::from(reset)) },
        "CUDA memory statistics",
    )?;
    Ok((a.max(0) as u64, r.max(0) as u64))
}

/// A CUDA graph (`torch.cuda.CUDAGraph`): work captured once on a side
/// stream, then replayed as one launch. Tensors that the captured work
/// reads and writes must keep their memory between replays.
pub struct CudaGraph {
    ptr: *mut c_void,
    side: bool,
}

impl CudaGraph {
    /// A new, empty graph for CUDA device `index`.
    pub fn new(index: usize) -> Result<CudaGraph> {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: the shim stores a new graph object in `ptr` on success.
        check(
            unsafe { chestcam_graph_new(index as i64, &mut ptr) },
            "CUDA graph",
        )?;
        Ok(CudaGraph { ptr, side: false })
    }

    /// Runs `f` with the graph's side stream current (warm-up before a
    /// capture, as PyTorch's `torch.cuda.graph` does); the device is
    /// synchronised before and after.
    pub fn on_side_stream<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let ptr = self.ptr;
        // SAFETY: `ptr` is the live graph this value owns; 1 switches to
        // its side stream, 0 restores the previous one.
        let switch = |on| {
            check(
                unsafe { chestcam_graph_side_stream(ptr, on) },
                "CUDA side stream",
            )
        };
        paired(
            || switch(1),
            || {
                self.side = true;
                let out = f(self);
                self.side = false;
                out
            },
            |_| switch(0),
        )
    }

    /// Captures the device work of `f` (inside [`CudaGraph::on_side_stream`]):
    /// nothing runs now; [`CudaGraph::replay`] runs it.
    pub fn capture<T>(&mut self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if !self.side {
            return Err(Error::invalid(
                "CUDA graph",
                "a capture must run on the side stream (inside on_side_stream)",
            ));
        }
        let ptr = self.ptr;
        // SAFETY: `ptr` is live; 1 begins the capture, 0 ends it (also when
        // `f` failed).
        let capture = |begin| {
            check(
                unsafe { chestcam_graph_capture(ptr, begin) },
                "CUDA graph capture",
            )
        };
        paired(|| capture(1), f, |_| capture(0))
    }

    /// Replays the captured work on the current stream.
    pub fn replay(&mut self) -> Result<()> {
        // SAFETY: `ptr` is the live graph this value owns.
        check(
            unsafe { chestcam_graph_replay(self.ptr) },
            "CUDA graph replay",
        )
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `ptr` was made by chestcam_graph_new and is freed once.
        unsafe { chestcam_graph_free(self.ptr) }
    }
}

/// The ATen operators that ran during [`count_ops`]: by name, each call
/// of an operator with a CPU or CUDA kernel of its own (one that only
/// decomposes into others is counted through its parts), and the number
/// of all operator calls. On a GPU each kernel is a launch, so at small
/// sizes, where the card waits on launches, [`OpCounts::kernels`] is the
/// cost; it is counted the same way on the CPU, so a change that removes
/// operators shows without a card (CPU and CUDA kernels of one operator
/// can differ in what they call).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub by_name: std::collections::BTreeMap<String, u64>,
    /// Every operator call, composite ones included.
    pub calls: u64,
}

/// Operators that only make views, metadata or empty allocations: no
/// kernel runs (`aten::empty` allocates, and a caching allocator does
/// not launch).
const NO_KERNEL: [&str; 24] = [
    "aten::empty",
    "aten::empty_strided",
    "aten::view",
    "aten::_reshape_alias",
    "aten::as_strided",
    "aten::expand",
    "aten::permute",
    "aten::transpose",
    "aten::t",
    "aten::unsqueeze",
    "aten::squeeze",
    "aten::select",
    "aten::slice",
    "aten::detach",
    "aten::alias",
    "aten::resize_",
    "aten::_unsafe_view",
    "aten::lift_fresh",
    "aten::set_",
    "aten::unfold",
    "aten::diagonal",
    "aten::result_type",
    "aten::is_nonzero",
    "aten::squeeze_",
];

impl OpCounts {
    /// The operators that run a kernel (all of `by_name` but
    /// [`NO_KERNEL`]), with their counts.
    fn kernel_ops(&self) -> impl Iterator<Item = (&str, u64)> {
        self.by_name
            .iter()
            .filter(|(n, _)| !NO_KERNEL.contains(&n.as_str()))
            .map(|(n, c)| (n.as_str(), *c))
    }

    /// Operator calls that run a kernel.
    pub fn kernels(&self) -> u64 {
        self.kernel_ops().map(|(_, c)| c).sum()
    }

    /// Kernel operators by count, most first (ties by name).
    pub fn top(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.kernel_ops().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// Runs `f` while counting the ATen operators it calls, on every thread
/// (the autograd engine's included); one count at a time per process.
pub fn count_ops<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, OpCounts)> {
    let mut counts = OpCounts::default();
    let out = paired(
        // SAFETY: no arguments; an error message when a count is running.
        || check(unsafe { chestcam_op_count_start() }, "ATen operator count"),
        f,
        |_| {
            let mut text: *mut c_char = std::ptr::null_mut();
            // SAFETY: the shim writes a NUL-terminated copy into `text`,
            // freed once here.
            check(
                unsafe { chestcam_op_count_stop(&mut text) },
                "ATen operator count",
            )?;
            let table = unsafe {
                let t = std::ffi::CStr::from_ptr(text)
                    .to_string_lossy()
                    .into_owned();
                chestcam_free_message(text);
                t
            };
            for line in table.lines() {
                if let Some((name, n)) = line.split_once('\t') {
                    let n = n.parse().unwrap_or_default();
                    match name {
                        "(calls)" => counts.calls = n,
                        _ => {
                            counts.by_name.insert(name.to_string(), n);
                        }
                    }
                }
            }
            Ok(())
        },
    )?;
    Ok((out, counts))
}
