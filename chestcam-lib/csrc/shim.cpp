// A small C shim over ATen functions that tch does not expose, compiled
// against the headers of the libtorch that torch-sys links (see build.rs).
// Every function catches C++ exceptions and returns the message (to be
// freed with chestcam_free_message), or NULL on success.
#include <ATen/ATen.h>
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
char *chestcam_fused_adam(at::Tensor **params, at::Tensor **grads, at::Tensor **exp_avgs,
                          at::Tensor **exp_avg_sqs, at::Tensor **steps, int64_t n, double lr,
                          double beta1, double beta2, double eps) {
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
        at::_fused_adam_(p, g, m, v, {}, s, lr, beta1, beta2, /*weight_decay=*/0.0, eps,
                         /*amsgrad=*/false, /*maximize=*/false);
        return nullptr;
    } catch (const std::exception &e) {
        return copy_message(e.what());
    } catch (...) {
        return copy_message("unknown C++ exception in chestcam_fused_adam");
    }
}
}
