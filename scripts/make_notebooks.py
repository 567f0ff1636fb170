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

A lesson in short cells: each one calls the `chestcam` library and shows its
result. Run them top to bottom. On a GPU the same cells use CUDA.
"""),
    ("code", ':dep chestcam = { path = "../chestcam-lib" }'),
    ("code", "use chestcam::prelude::*;"),
    ("markdown", """
## 1. Data

The source comes from `CHESTCAM_SOURCE`: `chestmnist` (the default,
downloaded once into the cache), `chestmnist:64` for larger images, a path to
any MedMNIST-format `.npz`, or `synthetic`. When ChestMNIST cannot be
downloaded, a banner says so and the notebook continues on synthetic
phantoms, labelled SYNTHETIC wherever results are shown.
"""),
    ("code", "let nd = load_data()?;\nnd"),
    ("markdown", """
Each row is one of the 14 findings, with training images that carry it.
ChestMNIST is **multi-label**: one X-ray can show several findings at once,
or none (about half say "No Finding"). So the model gives 14 independent
yes/no answers, one sigmoid per label, trained with binary cross-entropy
averaged over the images of a batch and the 14 labels, not one softmax
choosing a single class.
"""),
    ("code", "Montage::new(&nd.data, MontageOptions::default())"),
    ("markdown", "How common is each finding? Rare labels have few positives, so their AUC is noisy."),
    ("code", "prevalence_chart(&nd.data)?"),
    ("code", "Summary::of(&nd.data)"),
    ("markdown", """
## 2. Model

ResNet-18 with one grey input channel and 14 outputs. The *stem* (its first
layers) decides how large the last feature maps are, and Grad-CAM's heatmaps
have exactly that resolution.
"""),
    ("code", "let stem = Stem::default_for(nd.data.size);\nmodel_summary(stem, nd.data.size)?"),
    ("markdown", """
## 3. Training

The defaults below finish in a few minutes on a laptop CPU: a few epochs on
a subset. The full MedMNIST protocol (Adam, lr 0.001, batch 128, 100 epochs,
lr x0.1 at epochs 50 and 75, all 78,468 images) wants a GPU: set
`epochs: 100, train_subset: None` in the config cell, or run
`chestcam train --source chestmnist --run runs/full` in a terminal.
"""),
    ("code", "let cfg = notebook_config();\n(cfg.epochs, cfg.train_subset, cfg.batch_size, cfg.lr)"),
    ("markdown", """
### One epoch, written out

Training is this loop: take a batch, run the model forward, measure the
loss, let autograd compute every weight's gradient (backward), and let Adam
move each weight a little against its gradient. Here is one epoch of it on
fresh weights:
"""),
    ("code", """use chestcam::{model::{Model, Stage}, train::adam::Adam, data::Batches, tch::{Tensor, Reduction}};"""),
    ("code", """let model = Model::new(stem, nd.data.size, tch_device())?;
let mut opt = Adam::new(&model.vs);
let n = cfg.train_subset.unwrap_or(usize::MAX).min(nd.data.train.len());
let batches = Batches::from_host(&nd.data.train, n, cfg.batch_size, Some(0), None, model.device())?;
let last = batches.len() - 1;
for (b, batch) in batches.enumerate() {
    let (x, y) = batch?;                                            // images [b,1,S,S], labels [b,14]
    opt.zero_grad();
    let (logits, _) = model.net.forward_stage(&x, Stage::Layer4, true);   // forward (training mode)
    let loss = logits.f_binary_cross_entropy_with_logits(&y, None::<Tensor>, None::<Tensor>, Reduction::Mean)?;
    loss.f_backward()?;                                             // gradients of every weight
    opt.step(cfg.lr)?;                                              // Adam's update
    if b % 4 == 0 || b == last { println!("batch {b:>3}: loss {:.4}", loss.f_double_value(&[])?); }
};"""),
    ("markdown", """
`train_here` below runs exactly this step (`chestcam::train::train_step`,
the same forward, mean loss, backward and fused Adam) for every epoch, from
fresh weights with the config's seed, and adds what a real run needs: the
learning-rate schedule, a validation pass after each epoch, checkpoints,
and a stop with a clear message if the loss turns NaN.
"""),
    ("code", "let out = train_here(&cfg, &nd.data)?;"),
    ("markdown", "## 4. Results\n\nLoss and validation AUC per epoch:"),
    ("code", "let (loss_chart, auc_chart) = training_curves(&out)?;\nloss_chart"),
    ("code", "auc_chart"),
    ("markdown", "The best checkpoint (by validation AUC) on the test split, label by label:"),
    ("code", "let (eval, roc, reference) = test_report(&out.run, &nd.data)?;\neval"),
    ("code", "roc"),
    ("code", "reference"),
    ("markdown", """
## 5. Save

Everything is in the run folder: `config.json`, `metrics.jsonl`, the `best`
and `last` checkpoints. `gradcam_visualizer.ipynb` loads it from here.
"""),
    ("code", "println!(\"run folder: {}\", out.run.display());\nout.run.join(\"best.safetensors\").exists()"),
]

GRADCAM = [
    ("markdown", """
# Where does the model look? Grad-CAM on chest X-rays

This notebook loads the model trained in `train_model.ipynb` and shows, for
each prediction, which part of the X-ray raised that label's score.
"""),
    ("code", ':dep chestcam = { path = "../chestcam-lib" }'),
    ("code", "use chestcam::prelude::*;\nuse chestcam::cam::explain::{label_grid, method_comparison};"),
    ("markdown", "## 1. The model"),
    ("code", "let lr = load_run_or_train()?;\nlr"),
    ("markdown", "## 2. Test images\n\nImages with at least one finding first. Predictions against the ground truth:"),
    ("code", "let idx = lr.pick_test_images(if quick() { 3 } else { 6 });\nlr.predictions(&idx)?"),
    ("markdown", """
## 3. Grad-CAM panels

For each image: the X-ray, then a heatmap for each of its three most
probable labels, titled with the probability and the ground truth. A map
marked FLAT shows no location at all: nothing in the image raised that score.
"""),
    ("code", "let ex = lr.explain(&idx, &ExplainOptions::default())?;\nex[0].panel()?"),
    ("code", "ex[1].panel()?"),
    ("code", "ex[2].panel()?"),
    ("markdown", "One label across many test images:"),
    ("code", "let label = ex[0].shown[0];\nlabel_grid(&lr.model, &lr.data.test, label, 6, &ExplainOptions::default())?"),
    ("markdown", "The same image and label under each method of the Grad-CAM family:"),
    ("code", "method_comparison(&lr.model, lr.data.test.image(idx[0]), lr.data.size, label, &Method::ALL, &ExplainOptions::default())?"),
    ("markdown", """
### Grad-CAM by hand

What the library computes for one image and label: run the model keeping
layer4's feature maps `A` (512 maps of h x w), take the gradient of the
label's score (its logit) with respect to `A`, average each map's gradient
into one weight per channel, sum the maps with those weights, keep the
positive part (ReLU), upsample to the image and scale to [0, 1]:
"""),
    ("code", """use chestcam::{model::Stage, tch::{Kind, Tensor}};
let x = lr.data.test.images_tensor(lr.model.device())?.narrow(0, idx[0] as i64, 1);
let (logits, a) = lr.model.net.forward_stage(&x, Stage::Layer4, false);          // a: [1, 512, h, w]
let score = logits.get(0).get(label as i64);                                      // the label's logit
let g = Tensor::f_run_backward(&[score], &[&a], false, false)?.remove(0);         // d score / d a
let w = g.f_mean_dim(&[2i64, 3][..], true, Kind::Float)?;                         // one weight per channel
let cam = (w * a.detach()).f_sum_dim_intlist(&[1i64][..], true, Kind::Float)?.f_relu()?;  // weighted sum, ReLU
let s = lr.data.size as i64;
let up = cam.f_upsample_bilinear2d([s, s], false, None, None)?;
let by_hand = (&up - up.min()) / (up.max() - up.min() + 1e-7);
let lib = chestcam::cam::compute(&lr.model, &x, Method::GradCam, Stage::Layer4, &[label], 64)?.maps;
println!("largest difference from the library's map: {:.2e}", (by_hand.view([-1]) - lib.view([-1]).to_device(by_hand.device())).abs().max().double_value(&[]));"""),
    ("markdown", "## 4. Animated\n\nThe X-ray fading into its heatmap, then a cycle through the labels:"),
    ("code", "ex[0].fade_gif(0, 12, 120)?"),
    ("code", "ex[0].label_gif(900)?"),
    ("markdown", """
## 5. Can we trust these maps?

A heatmap always looks like an answer. These tests measure how far it is
one, on synthetic phantoms where the true lesion of every label is known.
Each method sits beside two baselines that know nothing: **RandomCAM**
(random channel weights) and a **centre prior** (a blob in the middle). A
method that does not beat them has shown nothing.

- **Pointing game, mass, Otsu IoU** (localisation): is the hottest pixel in
  the lesion, how much of the heat lies in it, how well the hot area overlaps
  it. Scored on images that have the finding.
- **Deletion / insertion** (faithfulness): delete the hottest pixels first;
  if the map is right, the label's probability falls fast (low area).
- **Randomisation** (sanity): scramble the trained weights from the head
  down; maps that do not change were never about what the model learned.
- **Label sensitivity**: how alike two labels' maps of one image are (1 =
  the same map whatever the finding).
"""),
    ("code", "let trust = lr.trust_on_phantoms(if quick() { 8 } else { 48 })?;\ntrust"),
    ("markdown", "Deletion: the mean probability of the label as the hottest pixels (by each method's map) are deleted. Lower and faster is more faithful."),
    ("code", "trust.curves_chart(false)?"),
    ("markdown", "The randomisation cascade: how alike the maps stay as the network is randomised from the head down. A trustworthy method falls to the \"random pairs\" line (two unrelated images) once layer4 (the layer it reads) is random."),
    ("code", "trust.cascade_chart()?"),
    ("code", "trust.cascade_strip()?"),
    ("markdown", """
**What these tests can show.** That a method's map follows the model (it
changes when the weights do), follows the label (it differs between
findings), and points where the lesion is on images where we know that.

**What they cannot show.** That the maps are right on real X-rays: there the
lesions are not known (NIH's boxes cover a few hundred images; `chestcam
trust --boxes` scores them). Deletion measures what the model uses, which
can be a shortcut rather than the disease. And every number here is from
SYNTHETIC phantoms, made to be easy.
"""),
    ("markdown", """
## 6. What Grad-CAM computes, and what it cannot tell

**What it computes.** For one label, take the gradient of that label's score
with respect to the last feature maps (layer4: 512 maps). Average each
gradient map into one weight per channel, form the weighted sum of the 512
feature maps, keep the positive part, and scale it to [0, 1]. Bright areas
are where features that raise this label's score are active.

**What it cannot tell.**
- It is coarse: at 28 px, layer4 is 4x4, so every heatmap is 16 cells blown
  up to the image. Smooth edges are interpolation, not detail.
- It shows correlation, not cause: the model may "look" at a tube, a marker
  or the patient's position because they went with the label in training.
- It explains the model, not the patient. This is a teaching tool, not a
  clinical one.

**Check before trusting.** Compare methods (above): where they disagree, be
careful. Look at images without the finding too. On the synthetic phantoms
the true lesion masks are known, so whether a heatmap points at the lesion
can be measured rather than judged by eye.
"""),
]


def main():
    here = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
    here.mkdir(exist_ok=True)
    (here / "train_model.ipynb").write_text(json.dumps(nb(TRAIN), indent=1) + "\n")
    (here / "gradcam_visualizer.ipynb").write_text(json.dumps(nb(GRADCAM), indent=1) + "\n")


if __name__ == "__main__":
    main()
