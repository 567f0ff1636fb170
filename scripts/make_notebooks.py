"""Writes the notebooks from their cell lists (committed without outputs).

Run: python scripts/make_notebooks.py  (the committed .ipynb files are its output)
"""
import json
import pathlib

KERNEL = {"name": "chestcam-rust", "display_name": "Rust (chestcam)", "language": "rust"}


def nb(cells):
    out = []
    for i, (kind, src) in enumerate(cells):
        cell = {"cell_type": kind, "id": f"cell-{i:02d}", "metadata": {}, "source": src.strip("\n").splitlines(keepends=True)}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": KERNEL,
            "language_info": {"name": "rust", "file_extension": ".rs", "mimetype": "text/rust"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


TRAIN = [
    ("markdown", """
# Training a ResNet-18 to read chest X-rays (ChestMNIST)

This notebook is a lesson in cells: each cell is short and shows its result.
The logic lives in the `chestcam` library; the cells call it.
"""),
    ("code", ':dep chestcam = { path = "../chestcam-lib" }'),
    ("code", "use chestcam::prelude::*;"),
    ("markdown", """
## 1. Data

The source comes from `CHESTCAM_SOURCE`: `chestmnist` (the default, downloaded
once into the cache), `chestmnist:64` for larger images, a path to any
MedMNIST-format `.npz`, or `synthetic`. When ChestMNIST cannot be downloaded,
the notebook says so in a banner and continues on synthetic phantoms.
"""),
    ("code", "let nd = load_data()?;\nnd"),
    ("markdown", """
Each row is one of the 14 findings, with images from the training split that
carry it. ChestMNIST is **multi-label**: one X-ray can show several findings
at once (or none: about half say "No Finding"). So the model gives 14
independent yes/no answers, one sigmoid per label, trained with binary
cross-entropy, not one softmax over 14 classes.
"""),
    ("code", "Montage::new(&nd.data, MontageOptions::default())"),
    ("markdown", "How common is each finding in each split? Rare labels make AUC noisy."),
    ("code", "Summary::of(&nd.data)"),
]


def main():
    here = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
    here.mkdir(exist_ok=True)
    (here / "train_model.ipynb").write_text(json.dumps(nb(TRAIN), indent=1) + "\n")


if __name__ == "__main__":
    main()
