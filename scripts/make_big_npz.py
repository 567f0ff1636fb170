"""A large MedMNIST-layout npz from a small one, for memory and speed
measurements: images resized (nearest neighbour) to --size and tiled to
--train / --val / --test images; labels tiled alike.

    python scripts/make_big_npz.py ../shared/data/nih1000/nih1000_64.npz \
        --size 224 --train 20000 --val 2000 --test 2000 --out out/big224.npz
"""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--train", type=int, default=20000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    src = np.load(a.src)
    out = {}
    for split, n in (("train", a.train), ("val", a.val), ("test", a.test)):
        x, y = src[f"{split}_images"], src[f"{split}_labels"]
        s = x.shape[1]
        idx = (np.arange(a.size) * s) // a.size
        x = x[:, idx][:, :, idx]
        reps = -(-n // len(x))
        out[f"{split}_images"] = np.concatenate([x] * reps)[:n]
        out[f"{split}_labels"] = np.concatenate([y] * reps)[:n]
    np.savez_compressed(a.out, **out)


if __name__ == "__main__":
    main()
