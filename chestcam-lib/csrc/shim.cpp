// A small C shim over ATen functions that tch does not expose, compiled
// against the headers of the libtorch that torch-sys links (see build.rs).
// Every function catches C++ exceptions and returns the message (to be
// freed with chestcam_free_message), or NULL on success.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_fused_adam.h>
#include <c10/core/GradMode.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

extern "C" {

static char *copy_message(const char *m) {
    size_t n = std::strlen(m);
    char *out = static_cast<char *>(std::malloc(n + 1));
    if (out) std::memcpy(out, m, n + 1);
    return out;
}

void chestcam_free_message(char *m) { std::free(m); }

// torch.optim.Adam(fused=True) for `n` parameters: one fused kernel over
// all of them (aten::_fused_adam_). `steps` are float scalar tensors on the
// parameters' device, already incremented for this step, as PyTorch does.
// With a gradient scaler (GradScaler), `grad_scale` is its scale (the kernel
// divides the gradients by it) and `found_inf` its flag (the kernel skips
// the update when it is nonzero); both NULL otherwise.
char *chestcam_fused_adam(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                          at::Tensor **exp_avg_sqs, at::Tensor **steps, int64_t n, double lr,
                          double beta1, double beta2, double eps, at::Tensor *grad_scale,
                          at::Tensor *found_inf) {
    try {
        c10::NoGradGuard no_grad;
        std::vector<at::Tensor> p, g, m, v, s;
        for (int64_t i = 0; i < n; i++) {
            p.push_back(*params[i]);
            g.push_back(*grads[i]);
            m.push_back(*exp_avgs[i]);
            v.push_back(*exp_avg_sqs[i]);
            s.push_back(*steps[i]);
        }
        std::optional<at::Tensor> scale, inf;
        if (grad_scale) scale = *grad_scale;
        if (found_inf) inf = *found_inf;
        at::_fused_adam_(p, g, m, v, {}, s, lr, beta1, beta2, /*weight_decay=*/0.0, eps,
                         /*amsgrad=*/false, /*maximize=*/false, scale, inf);
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    } catch (...) {
        return copy_message("unknown C++ exception in chestcam_fused_adam");
    }
}

// Channels-last (NHWC) memory for a 4-d tensor. `in_place`: the tensor's
// data is replaced (parameters, as nn.Module.to(memory_format=...) does);
// otherwise a new tensor is returned in *out (inputs).
char *chestcam_channels_last(at::Tensor *t, int in_place, at::Tensor **out) {
    try {
        c10::NoGradGuard no_grad;
        if (t->dim() != 4) {
            if (out) *out = new at::Tensor(*t);
            return nullptr;
        }
        at::Tensor cl = t->contiguous(at::MemoryFormat::ChannelsLast);
        if (in_place) {
            t->set_data(cl);
        } else if (out) {
            *out = new at::Tensor(cl);
        }
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    } catch (...) {
        return copy_message("unknown C++ exception in chestcam_channels_last");
    }
}

// GradScaler's check: sets `found_inf` (a one-element float tensor) to 1
// when any of the `n` gradients holds an inf or NaN, and multiplies them
// by `inv_scale` (aten::_amp_foreach_non_finite_check_and_unscale_).
char *chestcam_amp_check_and_unscale(at::Tensor **grads, int64_t n, at::Tensor *found_inf,
                                     at::Tensor *inv_scale) {
    try {
        c10::NoGradGuard no_grad;
        std::vector<at::Tensor> g;
        for (int64_t i = 0; i < n; i++) g.push_back(*grads[i]);
        at::_amp_foreach_non_finite_check_and_unscale_(g, *found_inf, *inv_scale);
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}

// Drops the gradients of `n` tensors (PyTorch's zero_grad(set_to_none=True)):
// the next backward writes fresh ones instead of adding into zeroed ones,
// which saves a kernel per parameter and step.
char *chestcam_grads_to_none(at::Tensor **ts, int64_t n) {
    try {
        for (int64_t i = 0; i < n; i++) ts[i]->mutable_grad().reset();
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}

// Whether a tensor is laid out channels-last.
int chestcam_is_channels_last(at::Tensor *t) {
    return t->dim() == 4 && t->is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0;
}

// Autocast (mixed precision) on the CPU (cuda = 0) or CUDA (cuda = 1), as
// `with torch.autocast(device_type, dtype)`: enter sets it on with `half`
// (1: float16, else bfloat16) and returns what was set before in *prev
// (bit 0: enabled, bit 1: the dtype was float16); exit restores that and,
// leaving the outermost region, clears the cache of cast weights.
char *chestcam_autocast_enter(int cuda, int half, int *prev) {
    try {
        auto dt = cuda ? at::DeviceType::CUDA : at::DeviceType::CPU;
        *prev = (at::autocast::is_autocast_enabled(dt) ? 1 : 0) |
                (at::autocast::get_autocast_dtype(dt) == at::kHalf ? 2 : 0);
        at::autocast::set_autocast_enabled(dt, true);
        at::autocast::set_autocast_dtype(dt, half ? at::kHalf : at::kBFloat16);
        at::autocast::increment_nesting();
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}

char *chestcam_autocast_exit(int cuda, int prev) {
    try {
        auto dt = cuda ? at::DeviceType::CUDA : at::DeviceType::CPU;
        if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
        at::autocast::set_autocast_enabled(dt, (prev & 1) != 0);
        at::autocast::set_autocast_dtype(dt, (prev & 2) ? at::kHalf : at::kBFloat16);
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}
}
