// A small C shim over ATen functions that tch does not expose, compiled
// against the headers of the libtorch that torch-sys links (see build.rs).
// Every function catches C++ exceptions and returns the message (to be
// freed with chestcam_free_message), or NULL on success.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <vector>

// The ATen operator counter (chestcam_op_count_*): the dispatcher reports
// every operator call to a RecordFunction callback. A call is counted when
// its operator has a kernel of its own for the CPU or CUDA (an operator
// that only decomposes into others, as conv2d into convolution into
// mkldnn_convolution, runs no kernel itself; its parts are counted), by
// name; every call is counted in `op_calls`. Approximate: a backend kernel
// that itself calls another operator (relu's calls clamp_min) counts twice.
namespace {
std::mutex op_mutex;
std::map<std::string, int64_t> op_counts;
std::map<std::string, bool> op_has_kernel;
int64_t op_calls = 0;
bool op_counting = false;
at::CallbackHandle op_handle = 0;

bool has_backend_kernel(const at::RecordFunction &fn, const std::string &key) {
    auto known = op_has_kernel.find(key);
    if (known != op_has_kernel.end()) return known->second;
    bool has = false;
    if (auto op_name = fn.operator_name()) {
        if (auto op = c10::Dispatcher::singleton().findOp(*op_name)) {
            has = op->hasKernelForDispatchKey(c10::DispatchKey::CPU) ||
                  op->hasKernelForDispatchKey(c10::DispatchKey::CUDA);
        }
    }
    op_has_kernel.emplace(key, has);
    return has;
}

std::unique_ptr<at::ObserverContext> op_start(const at::RecordFunction &fn) {
    std::lock_guard<std::mutex> g(op_mutex);
    if (!op_counting) return nullptr;
    op_calls++;
    std::string name = fn.name();
    std::string overload = fn.overload_name();
    std::string key = overload.empty() ? name : name + "." + overload;
    if (fn.scope() == at::RecordScope::FUNCTION && has_backend_kernel(fn, key)) {
        op_counts[name]++;
    }
    return nullptr;
}
}  // namespace

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

// A copy of a CPU tensor in page-locked (pinned) host memory, from which a
// non-blocking copy to the GPU runs in stream order without the host
// waiting for it (torch.Tensor.pin_memory(); tch's binding passes the
// deprecated `device` argument, which warns). Fails without a GPU.
char *chestcam_pin_memory(at::Tensor *t, at::Tensor **out) {
    try {
        *out = new at::Tensor(t->pin_memory());
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    } catch (...) {
        return copy_message("unknown C++ exception in chestcam_pin_memory");
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

// Starts counting the ATen operator calls of every thread (see the counter
// above for which are counted by name).
char *chestcam_op_count_start() {
    try {
        std::lock_guard<std::mutex> g(op_mutex);
        if (op_counting) return copy_message("ATen operators are being counted already");
        op_counts.clear();
        op_calls = 0;
        op_handle = at::addGlobalCallback(
            at::RecordFunctionCallback(op_start)
                .needsInputs(false)
                .scopes({at::RecordScope::FUNCTION}));
        op_counting = true;
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}

// Stops counting; *out is "name<TAB>count<NEWLINE>..." (free it with
// chestcam_free_message).
char *chestcam_op_count_stop(char **out) {
    try {
        std::lock_guard<std::mutex> g(op_mutex);
        if (!op_counting) return copy_message("ATen operators are not being counted");
        at::removeCallback(op_handle);
        op_counting = false;
        std::string text = "(calls)\t" + std::to_string(op_calls) + "\n";
        for (const auto &kv : op_counts) {
            text += kv.first + "\t" + std::to_string(kv.second) + "\n";
        }
        *out = copy_message(text.c_str());
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    }
}
}
