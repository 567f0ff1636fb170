"""PyTorch side of `make bench`: the identical ResNet-18 (scripts/resnet_torch.py)
from the same initial weights (safetensors written by `chestcam bench`), on
the same 28 px images, same batch size and thread count.

Rows:
- eager: in-memory normalised tensors, torch.optim.Adam, BCE with logits.
- dataloader: how MedMNIST notebooks usually feed it: a Dataset over the
  uint8 array, PIL + torchvision ToTensor + Normalize(0.5, 0.5), DataLoader.
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


def timed(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
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
    ap.add_argument("--rust-logits", default=None, help="safetensors with chestcam's eval logits (key 'logits')")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = np.load(a.data)
    imgs_u8 = d["train_images"][: a.batch]
    labels = torch.from_numpy(d["train_labels"][: a.batch].astype(np.float32))
    x = (torch.from_numpy(imgs_u8.astype(np.float32)) / 255.0 - 0.5) / 0.5
    x = x.unsqueeze(1)

    def fresh_model():
        m = ResNet18("small")
        state = read_safetensors(a.weights)
        missing, unexpected = m.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        assert not missing and not unexpected, (missing, unexpected)
        return m

    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "batch": a.batch}

    # Parity: eval-mode logits on the same weights and batch.
    m = fresh_model().eval()
    with torch.no_grad():
        logits = m(x)
    if a.rust_logits:
        rust = read_safetensors(a.rust_logits)["logits"]
        res["max_abs_logit_diff"] = float((rust - logits).abs().max())

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

    # Training step fed by a DataLoader with PIL + ToTensor + Normalize.
    try:
        import torchvision.transforms as T
        from PIL import Image

        tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])

        class Ds(torch.utils.data.Dataset):
            def __len__(self):
                return len(imgs_u8)

            def __getitem__(self, i):
                return tf(Image.fromarray(imgs_u8[i])), labels[i]

        dl = torch.utils.data.DataLoader(Ds(), batch_size=a.batch, shuffle=True)

        def dl_step():
            for xb, yb in dl:
                step(xb, yb)

        res["train_dataloader_s"] = timed(dl_step, a.warmup, a.reps)
    except ImportError as e:
        res["train_dataloader_s"] = None
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
    except ImportError as e:
        res["gradcam14_s"] = None
        res["gradcam_skipped"] = str(e)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


if __name__ == "__main__":
    main()
