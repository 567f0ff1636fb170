"""Writes the notebooks from their cell lists (committed without outputs).

Run: python scripts/make_notebooks.py  (the committed .ipynb files and
chestcam-lib/examples/notebook_cells.rs are its output; --check, run by make
test, fails when they differ from the cell lists)
"""
import json
import pathlib
import sys

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
## 0. Settings

Every choice of this notebook is in the next cell: edit it and rerun the
notebook from here. (The tests and `make demo` override it through
`CHESTCAM_*` variables; the cell's output says when they did.)
"""),
    ("code", """let settings = Settings {
    source: "chestmnist".into(),  // "chestmnist:64" for larger images, "synthetic", or a path to an .npz
    epochs: 3,                    // MedMNIST's protocol: 100 (wants a GPU)
    train_subset: Some(2000),     // None: all 78,468 training images
    device: "auto".into(),        // "cpu", or "cuda" (auto takes CUDA when there is one)
    precision: "fp32".into(),     // "auto": the fastest here (fp16 on a GPU from 64 px, bf16 on CPUs with bf16 arithmetic)
    seed: 0,
    ..Settings::default()
}.with_overrides();
settings"""),
    ("markdown", """
## 1. Data

`chestmnist` is downloaded once into the cache. When it cannot be
downloaded, a banner says so and the notebook continues on synthetic
phantoms, labelled SYNTHETIC wherever results are shown.
"""),
    ("code", "let nd = settings.load_data()?;\nnd"),
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
`epochs: 100, train_subset: None` in the settings cell, or run
`chestcam train --source chestmnist --run runs/full` in a terminal.
"""),
    ("code", "let cfg = settings.train_config()?;\n(cfg.epochs, cfg.train_subset, cfg.batch_size, cfg.lr)"),
    ("markdown", """
### One epoch, written out

Training is this loop: take a batch, run the model forward, measure the
loss, let autograd compute every weight's gradient (backward), and let Adam
move each weight a little against its gradient. Here is one epoch of it on
fresh weights:
"""),
    ("code", """use chestcam::{model::{Model, Stage}, train::adam::Adam, data::Batches, tch::{Tensor, Reduction}};"""),
    ("code", """chestcam::tch::manual_seed(settings.seed as i64);                 // the same start every run
let model = Model::new(stem, nd.data.size, settings.tch_device()?)?;
let mut opt = Adam::new(&model.vs);
let n = cfg.train_subset.unwrap_or(usize::MAX).min(nd.data.train.len());
let batches = Batches::from_host(&nd.data.train, n, cfg.batch_size, Some(0), None, model.device())?;
let (last, mut epoch1) = (batches.len() - 1, HandEpoch::start());
for (b, batch) in batches.enumerate() {
    let (x, y) = batch?;                                            // images [b,1,S,S], labels [b,14]
    opt.zero_grad()?;                                               // forget the last batch's gradients
    let (logits, _) = model.net.forward_stage(&x, Stage::Layer4, true);   // forward (training mode)
    let loss = logits.f_binary_cross_entropy_with_logits(&y, None::<Tensor>, None::<Tensor>, Reduction::Mean)?;
    loss.f_backward()?;                                             // gradients of every weight
    opt.step(cfg.lr)?;                                              // Adam's update
    let l = epoch1.add(&loss, y.size()[0])?;                        // the batch's loss, kept for the epoch
    if b % 4 == 0 || b == last { println!("batch {b:>3}: loss {l:.4}"); }
};"""),
    ("markdown", """
`train_rest` below saves this epoch as epoch 1 of a run folder, then the
library trains the remaining epochs from these weights and this optimiser.
Each of its steps is exactly the step above (`chestcam::train::train_step`:
the same forward, mean loss, backward and fused Adam). Around the steps it
adds what a real run needs: the learning-rate schedule, a validation pass
after each epoch, checkpoints, and a stop with a clear message if the loss
turns NaN.
"""),
    ("code", "let out = train_rest(&cfg, &nd.data, &model, &mut opt, epoch1)?;"),
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
    ("markdown", """
## 6. Try this

**The ImageNet stem on 28 px images.** torchvision's ResNet-18 starts with a
stride-2 convolution and a max-pool, made for 224 px photos. Ask for it at
28 px; you should see a refusal that says layer4 would be 1x1 (one number
per channel, so every Grad-CAM map would be a constant):
"""),
    ("code", """match Model::new(Stem::Imagenet, 28, chestcam::tch::Device::Cpu) {
    Ok(_) => println!("built"),
    Err(e) => println!("refused: {e}"),
};"""),
    ("markdown", """
**A label that is never positive.** Count the positives of each label among
the training images used. A label with 0 gives the model only "no" answers
for it; its validation AUC is then close to chance, and its heatmaps in the
next notebook mean little. Which labels are rare in your subset?
"""),
    ("code", """let used = nd.data.train.head(cfg.train_subset.unwrap_or(usize::MAX).min(nd.data.train.len()));
let counts = used.positives();
for (name, c) in LABELS.iter().zip(counts) { if c < 10 { println!("{name}: {c} positive(s)"); } };"""),
    ("markdown", """
**Larger images.** Set `source: "chestmnist:64".into()` in the settings cell
and rerun. You should see each epoch take several times longer on a CPU, the
model summary's layer4 grow from 4x4 to 8x8, and, in the next notebook,
heatmaps with four times as many cells.

**Mixed precision.** Set `precision: "auto".into()`. On a GPU with 64 px
images it picks fp16 (with a gradient scaler); on a CPU with bfloat16
arithmetic (AVX512-BF16, as on recent Xeons and AMD Zen 4) it picks bf16.
Either way the epochs get faster (about 1.9x on such a CPU) and the AUC
should stay within about 0.01 of fp32's. Elsewhere `auto` stays fp32.
"""),
]

GRADCAM = [
    ("markdown", """
# Where does the model look? Grad-CAM on chest X-rays

This notebook loads the model trained in `train_model.ipynb` and shows, for
each prediction, which part of the X-ray raised that label's score.
"""),
    ("code", ':dep chestcam = { path = "../chestcam-lib" }'),
    ("code", "use chestcam::prelude::*;\nuse chestcam::cam::explain::{label_grid, method_comparison};\nuse chestcam::model::Stage;"),
    ("markdown", """
## 0. Settings

Edit and rerun from here. The device computes the maps; `opts` chooses the
method (`Method::GradCam`, `Method::HiResCam`, `Method::EigenCam`, ...), the
layer it reads and the labels shown.
"""),
    ("code", """let settings = Settings { device: "auto".into(), ..Settings::default() }.with_overrides();
let opts = ExplainOptions {
    method: Method::GradCam,
    stage: Stage::Layer4,            // Stage::Layer3: a finer grid, less about the labels
    labels: LabelChoice::Top(3),     // the three most probable labels of each image
    ..ExplainOptions::default()
};
let n_images: usize = if quick() { 3 } else { 6 };
settings"""),
    ("markdown", "## 1. The model"),
    ("code", "let lr = load_run_or_train(&settings)?;\nlr"),
    ("markdown", "## 2. Test images\n\nImages with at least one finding first. Predictions against the ground truth:"),
    ("code", "let idx = lr.pick_test_images(n_images);\nlr.predictions(&idx)?"),
    ("markdown", """
## 3. Grad-CAM panels

For each image: the X-ray, then a heatmap for each of its three most
probable labels, titled with the probability and the ground truth. A map
marked FLAT shows no location at all: nothing in the image raised that score.
"""),
    ("code", "let ex = lr.explain(&idx, &opts)?;\nex[0].panel()?"),
    ("code", "ex[1].panel()?"),
    ("code", "ex[2].panel()?"),
    ("markdown", "One label across many test images:"),
    ("code", "let label = ex[0].shown[0];\nlabel_grid(&lr.model, &lr.data.test, label, 6, &opts)?"),
    ("markdown", "The same image and label under each method of the Grad-CAM family:"),
    ("code", "method_comparison(&lr.model, lr.data.test.image(idx[0]), lr.data.size, label, &Method::ALL, &opts)?"),
    ("markdown", """
### Grad-CAM by hand

What the library computes for one image and label: run the model keeping
layer4's feature maps `A` (512 maps of h x w), take the gradient of the
label's score (its logit) with respect to `A`, average each map's gradient
into one weight per channel, sum the maps with those weights, keep the
positive part (ReLU), upsample to the image and scale to [0, 1]:
"""),
    ("code", """use chestcam::tch::{Kind, Tensor};
let x = lr.data.test.image_tensor(idx[0], lr.model.device())?;                   // [1, 1, S, S]
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
    ("markdown", """
### Click through

Every label of these images, not just the top three: click a finding to see
its heatmap, choose the method and the layer, fade the heatmap with the
slider. Arrow keys move between findings (up/down) and X-rays (left/right).
Below the controls: the map's trust line (its deletion score against
RandomCAM's), and a warning when a map is flat. The same page is saved as
one file that opens in any browser, offline.
"""),
    ("code", """let viewer = lr.viewer(&idx, &[Method::GradCam, Method::HiResCam], &[Stage::Layer4, Stage::Layer3], &opts)?;
viewer.save(lr.run.join("viewer.html"))?;
viewer"""),
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
## 6. Try this

**layer3 against layer4.** Grad-CAM can read an earlier stage. Run the first
image's panel from layer3: you should see a grid twice as fine (7x7 instead
of 4x4 at 28 px) and maps that differ less between labels, since layer3's
features are less about any one finding.
"""),
    ("code", """let l3 = lr.explain(&idx[..1], &ExplainOptions { stage: Stage::Layer3, ..opts.clone() })?;
l3[0].panel()?"""),
    ("markdown", """
**Another method.** Set `method: Method::HiResCam` or `Method::EigenCam` in
the settings cell and rerun. `Method::FinerCam` shows what raises a finding
above the three findings whose scores are nearest (the ones the model could
confuse it with); `Method::FullGrad` reads the whole network instead of one
layer, so its maps are as fine as the X-ray. EigenCAM draws the same map for every label
(it never looks at the label): the label sensitivity of section 5 scores it
1.0. **A label the model never predicts** (probability near 0 on every
image) often gives a map marked FLAT: nothing raised its score.

**More images for the trust checks.** Raise the `8`/`48` of the trust cell:
the pointing game's numbers move less from run to run, and the gap between
Grad-CAM and RandomCAM is what should stay.
"""),
    ("markdown", """
## 7. What Grad-CAM computes, and what it cannot tell

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


PYTHON = {"name": "python3", "display_name": "Python 3", "language": "python"}

# The repository Colab clones (set CHESTCAM_GIT to use a fork).
GIT_URL = "https://github.com/chestcam/chestcam.git"

COLAB_SETUP = f"""
# Set-up: finds or clones chestcam, then installs what is missing (Rust,
# torch 2.11.0, evcxr_jupyter and the "Rust (chestcam)" kernel, through
# scripts/hosted_setup.sh: about 15 minutes on a fresh machine, its progress
# printed here). When all of it is there, as in the repository's own tests,
# this cell does nothing more.
import os, pathlib, subprocess, sys
from jupyter_client.kernelspec import KernelSpecManager
here = pathlib.Path.cwd()
repo = next((p for p in (here, *here.parents) if (p / "chestcam-lib").is_dir()), pathlib.Path("/content/chestcam"))
if not (repo / "chestcam-lib").is_dir():
    subprocess.run(["git", "clone", "--depth", "1", os.environ.get("CHESTCAM_GIT", "{GIT_URL}"), str(repo)], check=True)
if os.environ.get("CHESTCAM_RUST_KERNEL", "chestcam-rust") not in KernelSpecManager().find_kernel_specs():
    env = dict(os.environ, CHESTCAM_PYTHON=sys.executable)
    setup = subprocess.Popen(["bash", "scripts/hosted_setup.sh"], cwd=repo, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in setup.stdout:  # progress shows in the cell as it happens
        print(line, end="", flush=True)
    if setup.wait() != 0:
        raise RuntimeError(f"scripts/hosted_setup.sh failed (exit {{setup.returncode}}): see its last lines above")
sys.path.insert(0, str(repo / "notebooks" / "colab"))
%load_ext rust_magic
print("chestcam at", repo)
"""


def colab(cells, name):
    """The same cells for Colab's Python kernel: a set-up cell, then every
    Rust cell under the `%%rust` magic."""
    intro = ("markdown", f"""
*Colab version of `notebooks/{name}`, generated from the same cells. Run the
set-up cell first; every later cell is a Rust cell under `%%rust`, run by an
evcxr kernel that the set-up installs. On a GPU runtime the cells use CUDA.*

*Waits on a fresh runtime: the set-up installs Rust, torch and the kernel
(about 15 minutes, its progress printed), and the first `%%rust` cell
(`:dep chestcam`) compiles chestcam and its libtorch bindings (about 5
minutes; it prints "still running" every 30 s). Later cells take seconds.
The kernel and its build folder live as long as the runtime.*
""")
    out = [cells[0], intro, ("code", COLAB_SETUP)]
    for kind, src in cells[1:]:
        out.append((kind, "%%rust\n" + src.strip("\n") if kind == "code" else src))
    book = nb(out)
    book["metadata"] = {
        "kernelspec": PYTHON,
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"provenance": []},
    }
    return book


def program(books):
    """Every Rust cell of the notebooks as one program
    (chestcam-lib/examples/notebook_cells.rs), for machines without evcxr: the
    GPU machine runs it (scripts/device_session.sh, stage `notebooks`). Each
    notebook becomes a function whose body is its cells in order; a cell's
    last line, when it is a value the notebook would display, is computed and
    passed to `shown`, which prints the cell's number (the rendering to
    PNG/HTML that evcxr adds is left out)."""
    out = [
        "//! Generated by scripts/make_notebooks.py from the notebooks' cells: do not edit.",
        "//! Every Rust cell of notebooks/train_model.ipynb, then of",
        "//! notebooks/gradcam_visualizer.ipynb, in order, as one program, so that a",
        "//! machine without evcxr (the GPU machine) runs exactly the notebooks' code:",
        "//!   cargo build --release -p chestcam --example notebook_cells",
        "//!   CHESTCAM_SOURCE=... CHESTCAM_OFFLINE=1 target/release/examples/notebook_cells",
        "//! A displayed value is computed as in the notebook, not rendered.",
        "#![allow(unused, clippy::all)]",
        "",
        "type CellResult = Result<(), Box<dyn std::error::Error>>;",
        "",
        "fn shown<T: ?Sized>(notebook: &str, cell: usize, value: &T) {",
        "    std::hint::black_box(value);",
        '    println!("[{notebook} cell {cell}] done");',
        "}",
    ]
    for fname, cells in books:
        # rustfmt would reflow the cells; kept as the notebook shows them.
        out += ["", "#[rustfmt::skip]", f"fn {fname}() -> CellResult {{"]
        for i, (kind, src) in enumerate(cells):
            if kind != "code":
                continue
            lines = [l for l in src.strip("\n").splitlines() if not l.startswith(":dep ")]
            if not lines:
                continue
            out.append(f"    // cell {i}")
            last = lines[-1].rstrip()
            if last and not last.endswith((";", "}")) and not last.lstrip().startswith("//"):
                lines[-1] = f'shown("{fname}", {i}, &({last}));'
            else:
                lines.append(f'println!("[{fname} cell {i}] done");')
            out += ["    " + l if l else "" for l in lines]
        out += ["    Ok(())", "}"]
    out += [
        "",
        "#[rustfmt::skip]",
        "fn main() {",
        "    for (name, notebook) in [" + ", ".join(f'("{f}", {f} as fn() -> CellResult)' for f, _ in books) + "] {",
        "        if let Err(e) = notebook() {",
        '            eprintln!("{name}: {e}");',
        "            std::process::exit(1);",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(out) + "\n"


def outputs():
    """Every file this script writes, and its text."""
    root = pathlib.Path(__file__).resolve().parent.parent
    here = root / "notebooks"
    files = {}
    for name, cells in (("train_model.ipynb", TRAIN), ("gradcam_visualizer.ipynb", GRADCAM)):
        files[here / name] = json.dumps(nb(cells), indent=1) + "\n"
        files[here / "colab" / name] = json.dumps(colab(cells, name), indent=1) + "\n"
    files[root / "chestcam-lib" / "examples" / "notebook_cells.rs"] = program(
        [("train_model", TRAIN), ("gradcam_visualizer", GRADCAM)]
    )
    return files


def main():
    """Writes the files; with --check, writes nothing and fails when a
    committed file differs from what the cell lists give (make test)."""
    if sys.argv[1:] not in ([], ["--check"]):
        sys.exit("usage: python scripts/make_notebooks.py [--check]")
    check = sys.argv[1:] == ["--check"]
    stale = []
    for path, text in outputs().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    if stale:
        sys.exit("out of date with scripts/make_notebooks.py (run it): " + ", ".join(stale))


if __name__ == "__main__":
    main()
