"""pytorch-grad-cam's ROAD on chestcam's maps, for `chestcam bench --road-images N`.

Reads --weights (the benchmark's initial weights, scripts/resnet_torch.py
names) and --maps (safetensors: "input" [n, 1, S, S] normalised images,
"maps" [n, 14, S, S] Grad-CAM maps made by chestcam), then runs
pytorch_grad_cam.metrics.road.ROADCombined (percentiles 10..90) once per
label, as pytorch-grad-cam needs, with the label's sigmoid probability as
the target and the imputation noise off (so the values can be compared).
Prints one JSON object: seconds, and the combined scores [n, 14].
"""
import argparse
import json
import pathlib
import sys
import time

import torch

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here))
from bench_pytorch import read_safetensors  # noqa: E402
from resnet_torch import ResNet18  # noqa: E402
import pytorch_grad_cam.metrics.road as road  # noqa: E402

road.NoisyLinearImputer.__init__.__defaults__ = (0.0, road.neighbors_weights)


class SigmoidTarget:
    """The label's probability: chestcam's score for a multi-label model
    (also used by tests/fixtures/make_trust_fixture.py)."""

    def __init__(self, label):
        self.label = label

    def __call__(self, output):
        return torch.sigmoid(output[..., self.label])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True)
    ap.add_argument("--maps", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = ResNet18("small")
    model.load_state_dict(read_safetensors(a.weights), strict=False)
    model.eval()
    t = read_safetensors(a.maps)
    x, maps = t["input"], t["maps"].numpy()
    metric = road.ROADCombined(percentiles=[10, 20, 30, 40, 50, 60, 70, 80, 90])
    t0 = time.perf_counter()
    scores = [metric(x, maps[:, k], [SigmoidTarget(k)] * len(x), model) for k in range(maps.shape[1])]
    secs = time.perf_counter() - t0
    comb = torch.tensor([list(map(float, s)) for s in scores]).t().tolist()
    print(json.dumps({"road_s": secs, "combined": comb, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
