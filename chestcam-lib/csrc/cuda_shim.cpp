// CUDA-only parts of the shim: CUDA-graph capture of a whole training step
// and the caching allocator's memory statistics. Compiled against libtorch's
// headers and the CUDA runtime headers of the nvidia wheels that PyPI's
// torch pulls in (see build.rs); without those headers CHESTCAM_NO_CUDA is
// defined and every function answers with an error message.
// Every function catches C++ exceptions and returns the message (freed with
// chestcam_free_message), or NULL on success.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>

extern "C" void chestcam_free_message(char *m);

static char *cuda_message(const char *m) {
    size_t n = std::strlen(m);
    char *out = static_cast<char *>(std::malloc(n + 1));
    if (out) std::memcpy(out, m, n + 1);
    return out;
}

#ifdef CHESTCAM_NO_CUDA

extern "C" {
struct ChestcamGraph;
static char *no_cuda() {
    return cuda_message("this build of chestcam has no CUDA support (libtorch's CUDA headers were not found when it was built)");
}
char *chestcam_graph_new(int64_t, ChestcamGraph **) { return no_cuda(); }
char *chestcam_graph_side_stream(ChestcamGraph *, int) { return no_cuda(); }
char *chestcam_graph_capture(ChestcamGraph *, int) { return no_cuda(); }
char *chestcam_graph_replay(ChestcamGraph *) { return no_cuda(); }
void chestcam_graph_free(ChestcamGraph *) {}
char *chestcam_cuda_memory(int64_t, int64_t *, int64_t *, int) { return no_cuda(); }
char *chestcam_cuda_free_memory(int64_t, int64_t *, int64_t *) { return no_cuda(); }
}

#else

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <optional>

extern "C" {

// One captured graph, and the side stream it is captured on (CUDA graphs
// cannot capture the legacy default stream).
struct ChestcamGraph {
    at::cuda::CUDAGraph graph;
    c10::DeviceIndex device;
    c10::cuda::CUDAStream side;
    std::optional<c10::cuda::CUDAStreamGuard> guard;
    ChestcamGraph(c10::DeviceIndex d)
        : graph(), device(d), side(c10::cuda::getStreamFromPool(false, d)) {}
};

char *chestcam_graph_new(int64_t device, ChestcamGraph **out) {
    try {
        *out = new ChestcamGraph(static_cast<c10::DeviceIndex>(device));
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}

// on = 1: the device is synchronised and the side stream becomes the
// current one (warm-up steps and the capture run there, as PyTorch's
// torch.cuda.graph does); on = 0: synchronised again and the previous
// stream restored.
char *chestcam_graph_side_stream(ChestcamGraph *g, int on) {
    try {
        c10::cuda::CUDAGuard device_guard(g->device);
        c10::cuda::device_synchronize();
        if (on) {
            g->guard.emplace(g->side);
        } else {
            g->guard.reset();
        }
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}

// begin = 1: starts capturing on the current (side) stream into the
// graph's private memory pool; begin = 0: ends the capture and
// instantiates the graph.
char *chestcam_graph_capture(ChestcamGraph *g, int begin) {
    try {
        if (begin) {
            c10::cuda::CUDACachingAllocator::emptyCache();
            g->graph.capture_begin();
        } else {
            g->graph.capture_end();
        }
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}

// Replays the captured work on the current stream.
char *chestcam_graph_replay(ChestcamGraph *g) {
    try {
        c10::cuda::CUDAGuard device_guard(g->device);
        g->graph.replay();
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}

void chestcam_graph_free(ChestcamGraph *g) {
    try {
        delete g;
    } catch (...) {
    }
}

// The caching allocator's bytes on `device`: *allocated = peak bytes held
// by tensors, *reserved = peak bytes reserved from the driver, both since
// the process started or the last reset; reset = 1 resets the peaks after
// reading them.
char *chestcam_cuda_memory(int64_t device, int64_t *allocated, int64_t *reserved, int reset) {
    try {
        auto d = static_cast<c10::DeviceIndex>(device);
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d);
        auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
        *allocated = stats.allocated_bytes[agg].peak;
        *reserved = stats.reserved_bytes[agg].peak;
        if (reset) c10::cuda::CUDACachingAllocator::resetPeakStats(d);
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}

// The bytes a new tensor could still get on `device`: what the driver has
// free (cudaMemGetInfo) plus what the caching allocator holds reserved but
// unused; and the device's total.
char *chestcam_cuda_free_memory(int64_t device, int64_t *free, int64_t *total) {
    try {
        auto d = static_cast<c10::DeviceIndex>(device);
        c10::cuda::CUDAGuard guard(d);
        size_t f = 0, t = 0;
        C10_CUDA_CHECK(cudaMemGetInfo(&f, &t));
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(d);
        auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
        int64_t cached = stats.reserved_bytes[agg].current - stats.allocated_bytes[agg].current;
        *free = static_cast<int64_t>(f) + (cached > 0 ? cached : 0);
        *total = static_cast<int64_t>(t);
        return nullptr;
    } catch (const std::exception &e) {
        return cuda_message(e.what());
    }
}
}

#endif
