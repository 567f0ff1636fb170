"""Converts torchvision's ResNet-18 ImageNet weights (a pickled OrderedDict
that tch cannot read) to safetensors with the same names, for
`chestcam train --imagenet <file>`.

    python scripts/convert_torchvision_resnet18.py resnet18-f37072fd.pth resnet18_imagenet.safetensors
    python scripts/convert_torchvision_resnet18.py --download resnet18_imagenet.safetensors   # needs internet

Writes safetensors with the standard library only (no extra package):
8-byte header length, JSON header, raw little-endian data. The output is
written to a temp file and renamed.
"""
import argparse
import json
import os
import pathlib
import struct
import sys

import torch

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64", torch.float16: "F16"}


def write_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        if t.dtype not in DTYPES:
            raise SystemExit(f"{name}: unsupported dtype {t.dtype}")
        b = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = pathlib.Path(f"{path}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    tmp.replace(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", nargs="?", help="torchvision .pth state dict")
    ap.add_argument("dest")
    ap.add_argument("--download", action="store_true", help="fetch torchvision's IMAGENET1K_V1 weights")
    a = ap.parse_args()
    if a.download:
        from torchvision.models import ResNet18_Weights, resnet18

        state = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1).state_dict()
    elif a.src:
        state = torch.load(a.src, map_location="cpu", weights_only=True)
    else:
        sys.exit("give a .pth file or --download")
    if "conv1.weight" not in state or "layer4.1.bn2.weight" not in state:
        sys.exit(f"{a.src}: not a torchvision ResNet state dict (no conv1.weight / layer4.1.bn2.weight)")
    write_safetensors(dict(state), a.dest)
    print(f"{a.dest}: {len(state)} tensors")


if __name__ == "__main__":
    main()
