"""PyTorch side of `make bench`: the identical ResNet-18 (scripts/resnet_torch.py)
from the same initial weights (safetensors written by `chestcam bench`), on
the same 28 px images, same batch size and thread count.

Rows:
- eager: in-memory normalised tensors, torch.optim.Adam, BCE with logits.
- fused, fused + channels-last, bf16 autocast + fused + channels-last (and
  cudnn.benchmark on CUDA): PyTorch's faster options on the same step.
- graph (CUDA only): the whole step captured as one CUDA graph, replayed:
  fp32 NCHW, and bf16 and fp16 (GradScaler) autocast with channels-last.
- fp16 (CUDA only): fp16 autocast + GradScaler + fused Adam + channels-last
  + cudnn.benchmark, eager (chestcam's CUDA default precision).
- dataloader: how MedMNIST notebooks usually feed it: a Dataset over the
  uint8 array, PIL + torchvision ToTensor + Normalize(0.5, 0.5), DataLoader
  with 0 workers (the notebooks) and with 8 (pinned memory, persistent).
With --device cuda everything runs there, timed with synchronisation.
Prints one JSON object on stdout.
"""
import argparse
import json
import resource
import statistics
import struct
import sys
import time
import pathlib

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from resnet_torch import ResNet18  # noqa: E402


def read_safetensors(path):
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    dtypes = {"F32": np.float32, "I64": np.int64, "F64": np.float64}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        arr = np.frombuffer(raw[base + a : base + b], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--cam-reps", type=int, default=3)
    ap.add_argument("--methods", default="",
                    help="also time these CAM methods' 14 calls (once each): \"Name=Class,...\", "
                         "each chestcam name with its pytorch_grad_cam class (chestcam passes its "
                         "method table's list)")
    ap.add_argument("--rust-logits", default=None, help="safetensors with chestcam's eval logits (key 'logits')")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--stem", default="small")
    a = ap.parse_args()
    global DEVICE
    dev = a.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    DEVICE = torch.device(dev)
    torch.set_num_threads(a.threads)
    d = np.load(a.data)
    imgs_u8 = d["train_images"][: a.batch]
    labels = torch.from_numpy(d["train_labels"][: a.batch].astype(np.float32))
    x = (torch.from_numpy(imgs_u8.astype(np.float32)) / 255.0 - 0.5) / 0.5
    x = x.unsqueeze(1).to(DEVICE)
    labels_cpu = labels
    labels = labels.to(DEVICE)

    def fresh_model():
        m = ResNet18(a.stem)
        state = read_safetensors(a.weights)
        missing, unexpected = m.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        assert not missing and not unexpected, (missing, unexpected)
        return m.to(DEVICE)

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch, "device": str(DEVICE)}

    # Parity: eval-mode logits on the same weights and batch.
    m = fresh_model().eval()
    with torch.no_grad():
        logits = m(x)
    if a.rust_logits:
        rust = read_safetensors(a.rust_logits)["logits"]
        res["max_abs_logit_diff"] = float((rust - logits.cpu()).abs().max())

    # Inference, eager.
    with torch.no_grad():
        res["infer_eager_s"] = timed(lambda: m(x), a.warmup + 1, 3 * a.reps)

    # Training step, eager.
    m = fresh_model().train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    lossf = torch.nn.BCEWithLogitsLoss()

    def step(xb=x, yb=labels):
        opt.zero_grad()
        loss = lossf(m(xb), yb)
        loss.backward()
        opt.step()

    res["train_eager_s"] = timed(step, a.warmup, a.reps)

    # PyTorch's faster options on the same step: Adam(fused=True), then
    # also channels-last memory format; the better is PyTorch's best here.
    def fast_step(channels_last):
        fm = fresh_model().train()
        xb = x
        if channels_last:
            fm = fm.to(memory_format=torch.channels_last)
            xb = x.contiguous(memory_format=torch.channels_last)
        fopt = torch.optim.Adam(fm.parameters(), lr=1e-3, fused=True)

        def s():
            fopt.zero_grad()
            lossf(fm(xb), labels).backward()
            fopt.step()

        return timed(s, a.warmup, a.reps)

    res["train_fused_s"] = fast_step(False)
    res["train_fused_cl_s"] = fast_step(True)

    # Mixed precision: bf16 autocast + fused Adam + channels-last (+ cudnn
    # benchmark mode on CUDA), PyTorch's usual best eager recipe.
    torch.backends.cudnn.benchmark = DEVICE.type == "cuda"
    am = fresh_model().train().to(memory_format=torch.channels_last)
    aopt = torch.optim.Adam(am.parameters(), lr=1e-3, fused=True)
    ax = x.contiguous(memory_format=torch.channels_last)

    def amp_step():
        aopt.zero_grad()
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            loss = lossf(am(ax), labels)
        loss.backward()
        aopt.step()

    res["train_amp_s"] = timed(amp_step, a.warmup + 2, a.reps)

    # The whole step as one CUDA graph (static input, capturable Adam):
    # three eager steps on a side stream, then the capture, as PyTorch's
    # "whole-network capture" recipe has it. `body` runs one step on static
    # tensors; each replay overwrites its gradients (set to None before the
    # capture, so the backward allocates them in the graph's pool).
    def graphed(opt, body):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                opt.zero_grad(set_to_none=True)
                body()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            body()
        return timed(graph.replay, a.warmup, a.reps)

    # Mixed precision as chestcam's CUDA default runs it: fp16 autocast with
    # a GradScaler (the fused Adam unscales and skips an overflowed step on
    # the device), channels-last, cudnn.benchmark; eager, and in a graph.
    # bf16 in a graph too (no scaler). Autocast's weight cache is off in a
    # graph, as PyTorch's CUDA-graph notes ask.
    def amp_graph(dtype):
        gm = fresh_model().train().to(memory_format=torch.channels_last)
        gopt = torch.optim.Adam(gm.parameters(), lr=1e-3, fused=True, capturable=True)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        sx = x.contiguous(memory_format=torch.channels_last).clone(memory_format=torch.channels_last)
        sy = labels.clone()

        def body():
            with torch.autocast("cuda", dtype=dtype, cache_enabled=False):
                loss = lossf(gm(sx), sy)
            if scaler is None:
                loss.backward()
                gopt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(gopt)
                scaler.update()

        return graphed(gopt, body)

    def fp16_eager():
        fm = fresh_model().train().to(memory_format=torch.channels_last)
        fopt = torch.optim.Adam(fm.parameters(), lr=1e-3, fused=True)
        scaler = torch.amp.GradScaler("cuda")
        fx = x.contiguous(memory_format=torch.channels_last)

        def s():
            fopt.zero_grad()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = lossf(fm(fx), labels)
            scaler.scale(loss).backward()
            scaler.step(fopt)
            scaler.update()

        return timed(s, a.warmup + 2, a.reps)

    if DEVICE.type == "cuda":
        gm = fresh_model().train()
        gopt = torch.optim.Adam(gm.parameters(), lr=1e-3, fused=True, capturable=True)
        sx, sy = x.clone(), labels.clone()

        def fp32_body():
            lossf(gm(sx), sy).backward()
            gopt.step()

        # A row that fails says why in its place (key "<row>_error"); the
        # rows after it still run.
        for key, row in (
            ("train_graph_s", lambda: graphed(gopt, fp32_body)),
            ("train_fp16_s", fp16_eager),
            ("train_graph_bf16_cl_s", lambda: amp_graph(torch.bfloat16)),
            ("train_graph_fp16_cl_s", lambda: amp_graph(torch.float16)),
        ):
            try:
                res[key] = row()
            except Exception as e:  # noqa: BLE001 - reported in the row
                res[key] = None
                res[key[: -len("_s")] + "_error"] = f"{type(e).__name__}: {e}"[:300]
    torch.backends.cudnn.benchmark = False

    # Training step fed by a DataLoader with PIL + ToTensor + Normalize.
    try:
        import torchvision.transforms as T
        from PIL import Image

        tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])

        # Long enough for every timed step: each call of the step takes the
        # next batch, so with workers the loading overlaps the steps, as in
        # a real epoch (one batch per call, like the other rows).
        n_items = a.batch * (a.warmup + a.reps + 2)

        class Ds(torch.utils.data.Dataset):
            def __len__(self):
                return n_items

            def __getitem__(self, i):
                i %= len(imgs_u8)
                return tf(Image.fromarray(imgs_u8[i])), labels_cpu[i]

        for workers, key in ((0, "train_dataloader_s"), (8, "train_dataloader8_s")):
            dl = torch.utils.data.DataLoader(
                Ds(), batch_size=a.batch, shuffle=True, num_workers=workers,
                pin_memory=DEVICE.type == "cuda", persistent_workers=workers > 0)
            it = iter(dl)

            def dl_step(it=it):
                xb, yb = next(it)
                step(xb.to(DEVICE, non_blocking=True), yb.to(DEVICE, non_blocking=True))

            res[key] = timed(dl_step, a.warmup, a.reps)
            del it, dl
    except ImportError as e:
        res["train_dataloader_s"] = None
        res["train_dataloader8_s"] = None
        res["dataloader_skipped"] = str(e)
    # pytorch-grad-cam: all 14 labels for the batch = 14 calls, each with a
    # ClassifierOutputTarget per image (it has no multi-label target).
    try:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        m = fresh_model().eval()
        cam = GradCAM(model=m, target_layers=[m.layer4])
        cam(input_tensor=x, targets=[ClassifierOutputTarget(0)] * len(x))  # warm-up

        def all14():
            for label in range(14):
                cam(input_tensor=x, targets=[ClassifierOutputTarget(label)] * len(x))

        res["gradcam14_s"] = timed(all14, 0, a.cam_reps)
        # The methods chestcam names in --methods (every other one it has
        # but ScoreCAM and AblationCAM, a forward per channel), once each
        # (after a one-label warm-up): 14 calls, one per label, as
        # pytorch-grad-cam needs; one call for EigenCAM and KPCA-CAM, whose
        # map is the same for every label.
        if a.methods:
            import pytorch_grad_cam as pgc
            classes = {}
            for part in a.methods.split(","):
                name, _, cls = part.partition("=")
                if not hasattr(pgc, cls):
                    sys.exit(f"pytorch_grad_cam has no class {cls!r} (for method {name!r})")
                classes[name] = getattr(pgc, cls)
            res["cam14_s"] = {}
            for name, cls in classes.items():
                c = cls(model=m, target_layers=[m.layer4])

                def one(label, c=c, name=name):
                    if name == "FinerCAM":
                        return c(input_tensor=x, target_idx=label)
                    return c(input_tensor=x, targets=[ClassifierOutputTarget(label)] * len(x))
                one(0)
                calls = 1 if name in ("EigenCAM", "KPCA-CAM") else 14
                res["cam14_s"][name] = timed(lambda: [one(l) for l in range(calls)], 0, 1)
    except ImportError as e:
        res["gradcam14_s"] = None
        res["gradcam_skipped"] = str(e)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if DEVICE.type == "cuda":
        res["peak_device_mb"] = torch.cuda.max_memory_allocated(DEVICE) / 2**20
    print(json.dumps(res))


if __name__ == "__main__":
    main()
