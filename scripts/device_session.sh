#!/usr/bin/env bash
# Everything a session lent a GPU should measure, in one run that stays
# within BUDGET_S seconds (the device tool allows 600 s per command and
# 15 minutes per session, the machine's start included). Stages run in
# order of what matters most; each has a timeout and is skipped when too
# little time is left, and each writes its own log under $OUT at once, so
# a stage that fails or hangs costs only itself. At most 8 files come back
# from $OUT: session.txt (everything printed) and the two phantom tables
# (trust.md, trust.json, and a tarball with their pictures).
#
# Prepare here (that machine has no cargo and no network):
#   cargo build --release -p chestcam && cargo build --release -p chestcam --example notebook_cells
#   mkdir -p out/device && cp ../shared/data/nih1000/nih1000_64.npz out/device/
#   echo /.whl/ >> .git/info/exclude    # once
#   pip wheel --no-deps grad-cam==1.5.7 ttach==0.0.3 -w .whl
#   strip target/release/chestcam target/release/examples/notebook_cells   # the carry is 64 MiB in all
#   du -ch target/release/chestcam target/release/examples/notebook_cells out/device .whl | tail -1
# then
#   run(command="bash scripts/device_session.sh",
#       carry=["target/release/chestcam", "target/release/examples/notebook_cells",
#              "out/device", ".whl"], timeout_s=590)
# STAGES="bench28 table64 ..." runs only those, in that order.
# Dry run on a CPU (tiny sizes, to check the script itself; SLOW multiplies
# every stage's timeout, since the CPU is far slower than the card):
#   DEV=cpu QUICK=1 SLOW=8 BUDGET_S=4000 PY=python OUT=/tmp/dry bash scripts/device_session.sh
set -uo pipefail
START=$(date +%s)
BUDGET_S=${BUDGET_S:-560}
DEV=${DEV:-cuda}
QUICK=${QUICK:-0}
SLOW=${SLOW:-1}
PY=${PY:-/opt/torch/.venv/bin/python}
OUT=${OUT:-/tmp/device-out}
B=${B:-./target/release/chestcam}
NB=${NB:-./target/release/examples/notebook_cells}
SRC=${SRC:-out/device/nih1000_64.npz}
TORCH_LIB="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
# The binary also needs torch's libcudart.so.13 (an nvidia wheel beside torch).
CUDART=$(find "$TORCH_LIB/../.." -maxdepth 4 -name 'libcudart.so.13*' 2>/dev/null | head -1)
export LD_LIBRARY_PATH="$TORCH_LIB${CUDART:+:$(dirname "$CUDART")}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
W=$(mktemp -d)
mkdir -p "$OUT"
export DEV PY OUT B NB SRC W
exec > >(tee "$OUT/session.txt") 2>&1
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
# stage NAME MIN_S MAX_S COMMAND...: runs COMMAND with a timeout of
# min(MAX_S, time left - 10 s), its output also in session.txt.
stage() {
  local name=$1 min=$2 max=$(($3 * SLOW))
  shift 3
  local l
  l=$(left)
  if [ "$l" -lt "$min" ]; then
    echo "== $name: skipped ($l s left, needs $min)"
    return
  fi
  local t=$((l - 10 < max ? l - 10 : max))
  echo "== $name (timeout ${t} s, $(($(date +%s) - START)) s in)"
  local s0
  s0=$(date +%s)
  # `timeout` runs programs, not functions: a bash that is given the
  # script's functions and arrays runs the stage.
  timeout "$t" bash -c "set -o pipefail; $(declare -p BENCH_ARGS BIG MEM); $(declare -f bench table epoch28 eval_parity auto64 mem224 memfull fp16 trust_parity notebooks moved); \"\$@\"" \
    _ "$@" 2>&1 | tee "$W/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]} after $(($(date +%s) - s0)) s"
}

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$B" info
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
    export PYTHONPATH=/tmp/site
fi
"$PY" -c 'import pytorch_grad_cam; print("pytorch-grad-cam", pytorch_grad_cam.__file__)' || true

if [ "$QUICK" = 1 ]; then
  BENCH_ARGS=(--batch 16 --threads 2 --warmup 1 --reps 2 --score-batch 1 --road-images 0)
  EPOCHS=1
  TRUST_IMAGES=2
  BIG=(512 64)
  MEM=(256 32)
  PHANTOMS=":200,60,60"
else
  BENCH_ARGS=(--batch 128 --threads 8 --warmup 5 --reps 20 --score-batch 4 --road-images 0)
  EPOCHS=${TABLE_EPOCHS:-20}
  TRUST_IMAGES=${TABLE_IMAGES:-16}
  BIG=(78468 11219)
  MEM=(20000 2000)
  PHANTOMS=""
fi
export EPOCHS TRUST_IMAGES PHANTOMS

# Both sides of the bench get the same glibc settings, which keep freed
# memory mapped (a fresh process otherwise pays page faults on every step);
# the memory stages below run without them, so their RSS is what users see.
bench() {
  local size=$1
  MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \
    "$B" bench --device "$DEV" --data "$SRC" --size "$size" "${BENCH_ARGS[@]}" --python "$PY" \
    --script scripts/bench_pytorch.py --out "$W/bench$size"
}

# The phantom table at SIZE px (issue 8): a model trained to convergence,
# then every method on the first TRUST_IMAGES test images, five findings.
table() {
  local size=$1 src=synthetic:$1$PHANTOMS
  /usr/bin/time -f "train $size px: %e s" \
    "$B" train --source "$src" --epochs "$EPOCHS" --device "$DEV" --run "$W/phantoms$size" | tail -4 &&
    /usr/bin/time -f "trust $size px: %e s" \
      "$B" trust --run "$W/phantoms$size" --device "$DEV" --methods all --images "$TRUST_IMAGES" \
        --labels atelectasis,effusion,infiltration,mass,nodule --out "$W/table$size" >/dev/null &&
    cp "$W/table$size/trust.md" "$OUT/table$size.md" &&
    cp "$W/table$size/trust.json" "$OUT/table$size.json" &&
    tar czf "$OUT/table$size.tgz" -C "$W" "table$size" &&
    sed -n '1,30p' "$W/table$size/trust.md"
}

# One epoch of ChestMNIST's size at 28 px, with validation (issue 10's
# "under 5 s" goal), and peak host and device memory: with the defaults
# (on CUDA: fp16 in a CUDA graph, the defaults since 2026-11-27 evening,
# never yet run in `train` on a card), with the eager step, and with the
# training split in host memory (batches through pinned memory, never yet
# run on a card); then two epochs with --cudnn-benchmark, graph and eager,
# to see whether its cost is the first epoch's search or every step's.
epoch28() {
  "$PY" scripts/make_big_npz.py "$SRC" --size 28 --train "${BIG[0]}" --val "${BIG[1]}" --test 256 --out "$W/cm28.npz" &&
    /usr/bin/time -f "wall %e s, peak RSS %M KB (defaults)" "$B" train --source "$W/cm28.npz" \
      --device "$DEV" --epochs 1 --run "$W/run28" &&
    { eval_parity "$W/run28" || echo "eval_parity failed (the runs below go on)"; } &&
    { [ "$DEV" = cpu ] || /usr/bin/time -f "wall %e s, peak RSS %M KB (--cuda-graph false)" "$B" train \
      --source "$W/cm28.npz" --device "$DEV" --epochs 1 --cuda-graph false --run "$W/run28e"; } &&
    { [ "$DEV" = cpu ] || /usr/bin/time -f "wall %e s, peak RSS %M KB (--data-on-device false: batches from pinned host memory)" "$B" train \
      --source "$W/cm28.npz" --device "$DEV" --epochs 1 --data-on-device false --run "$W/run28s"; } &&
    { [ "$DEV" = cpu ] || /usr/bin/time -f "wall %e s, peak RSS %M KB (--cudnn-benchmark, 2 epochs)" "$B" train \
      --source "$W/cm28.npz" --device "$DEV" --epochs 2 --cudnn-benchmark --run "$W/run28gb"; } &&
    { [ "$DEV" = cpu ] || /usr/bin/time -f "wall %e s, peak RSS %M KB (--cudnn-benchmark --cuda-graph false, 2 epochs)" "$B" train \
      --source "$W/cm28.npz" --device "$DEV" --epochs 2 --cudnn-benchmark --cuda-graph false --run "$W/run28eb"; }
}

# The validation split of RUN evaluated on the device and on the CPU (the
# device's batches go through pinned memory and its logits come back in
# one copy, 2026-12-07, never yet run on a card): both times, and the
# largest difference of loss, AUC, ACC and AP, overall and per label.
eval_parity() {
  for d in "$DEV" cpu; do
    /usr/bin/time -f "eval --split val on $d: wall %e s" "$B" eval --run "$1" --split val --device "$d" \
      --json >"$W/eval-$d.json" || return
  done
  "$PY" - "$W/eval-$DEV.json" "$W/eval-cpu.json" <<'PY'
import json, math, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
pairs = [(k, a[k], b[k]) for k in ("loss", "auc", "acc", "map")]
pairs += [(f"{x['label']} {k}", x[k], y[k]) for x, y in zip(a["per_label"], b["per_label"]) for k in ("auc", "acc", "ap")]
d = [(abs(u - v), k) for k, u, v in pairs if isinstance(u, float) and isinstance(v, float) and not (math.isnan(u) or math.isnan(v))]
worst = max(d) if d else (float("nan"), "-")
print(f"eval val, device against cpu: AUC {a['auc']:.6f} / {b['auc']:.6f}; max difference over {len(d)} numbers {worst[0]:.2e} ({worst[1]})")
PY
}

# The default step at 64 px (auto: fp16 in a CUDA graph on CUDA) against
# fp32 (also in the graph) on phantoms: test AUC and time, 10 epochs each.
auto64() {
  for p in auto fp32; do
    "$B" train --source "synthetic:64$PHANTOMS" --epochs 10 --precision "$p" --device "$DEV" \
      --run "$W/auto64-$p" 2>&1 | grep -E "^step|^mean|^epoch +(1|10) |best epoch|could not be captured" || return
  done
}

# Memory at 224 px (imagenet stem): a 20,000-image set, one epoch.
mem224() {
  "$PY" scripts/make_big_npz.py "$SRC" --size 224 --train "${MEM[0]}" --val "${MEM[1]}" --test 256 --out "$W/m224.npz" &&
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" train --source "$W/m224.npz" \
      --device "$DEV" --epochs 1 --run "$W/run224"
}

# fp16 with its gradient scaler against fp32 on phantoms (issue 10: test
# AUC within 0.01), on the card, 10 epochs each, both in the default CUDA
# graph.
fp16() {
  for p in fp32 fp16; do
    "$B" train --source "synthetic:28$PHANTOMS" --epochs 10 --precision "$p" --device "$DEV" \
      --run "$W/prec-$p" 2>&1 | grep -E "^mean|^epoch +10 |best epoch|could not be captured" || return
  done
}

# Memory at ChestMNIST-224's full size (78,468 / 11,219 images, 224 px,
# imagenet stem): issue 10's goal is 15 GB of device memory, 12 GB of RAM.
memfull() {
  "$PY" scripts/make_big_npz.py "$SRC" --size 224 --train "${BIG[0]}" --val "${BIG[1]}" --test 256 --out "$W/full224.npz" &&
    rm -f "$W/m224.npz" &&
    /usr/bin/time -f "wall %e s, peak RSS %M KB" "$B" train --source "$W/full224.npz" \
      --device "$DEV" --epochs 1 --run "$W/runfull224"
}

# trust on the device and on the CPU, same model and images: the largest
# difference between their numbers.
trust_parity() {
  # Its own 3-epoch model: table28 trains phantoms28 to convergence.
  [ -d "$W/parity28" ] || "$B" train --source "synthetic:28$PHANTOMS" --epochs 3 --device "$DEV" --run "$W/parity28" | tail -2 || return
  for dev in "$DEV" cpu; do
    /usr/bin/time -f "$dev trust: %e s, max RSS %M KB" \
      "$B" trust --run "$W/parity28" --device "$dev" --images 8 --methods gradcam,gradcam++,hirescam,eigencam \
        --labels atelectasis,effusion,infiltration,mass,nodule --noise 0 --out "$W/parity-$dev" >/dev/null || return
  done
  "$PY" - "$W" "$DEV" <<'PY'
import json, math, sys
# Every number of the two reports, by where it sits. RandomCAM's weights
# and the cascade's re-initialised layers come from each device's own
# random generator, so they differ by design and are listed apart.
w, dev = sys.argv[1], sys.argv[2]
a, b = (json.load(open(f"{w}/parity-{d}/trust.json")) for d in (dev, "cpu"))
diffs = {}
def walk(x, y, key):
    if isinstance(x, dict):
        for k in x:
            if k in y:
                walk(x[k], y[k], key)
    elif isinstance(x, list):
        for u, v in zip(x, y):
            walk(u, v, key)
    elif isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) or math.isnan(y)):
        diffs.setdefault(key, []).append(abs(x - y))
for sa, sb in zip(a["sources"], b["sources"]):
    for ma, mb in zip(sa["metrics"], sb["metrics"]):
        walk(ma, mb, (sa["method"], ma["name"]))
    walk(sa.get("deletion_curve"), sb.get("deletion_curve"), (sa["method"], "deletion_curve"))
    walk(sa.get("label_sensitivity"), sb.get("label_sensitivity"), (sa["method"], "label_sensitivity"))
for ca, cb in zip(a.get("cascade", []), b.get("cascade", [])):
    walk(ca, cb, (ca["method"], "cascade"))
def random(k):
    return k[0].startswith("RandomCAM") or k[1] == "cascade"
for title, keep in (("deterministic", lambda k: not random(k)), ("random by design", random)):
    ks = [k for k in diffs if keep(k)]
    if not ks:
        continue
    worst = max(max(diffs[k]) for k in ks)
    n = sum(len(diffs[k]) for k in ks)
    print(f"{title}: max |{dev} - cpu| over {n} numbers = {worst:.2e}")
    for k in sorted(ks, key=lambda k: -max(diffs[k]))[:8]:
        d = diffs[k]
        print(f"  {k[0]:<22} {k[1]:<20} max {max(d):.2e}, {sum(x > 1e-4 for x in d)} of {len(d)} above 1e-4")
PY
}

# The two notebooks' cells, run as one program on the card
# (chestcam-lib/examples/notebook_cells.rs, generated from the same cell
# lists): the notebooks have never run on a GPU. Their defaults at 28 px
# (3 epochs, 2,000 images, fp32): the first epoch by hand, the rest by the
# library in its CUDA default (a CUDA graph), then every explanation cell,
# the viewer and the phantom trust check. The time also tells what a
# student waits for on a fast card.
notebooks() {
  "$PY" scripts/make_big_npz.py "$SRC" --size 28 --train 4000 --val 500 --test 500 --out "$W/nb28.npz" &&
    CHESTCAM_SOURCE="$W/nb28.npz" CHESTCAM_OFFLINE=1 CHESTCAM_RUNS="$W/nbruns" CHESTCAM_DEVICE="$DEV" \
      /usr/bin/time -f "notebook cells: wall %e s, peak RSS %M KB" "$NB"
}

# A run moved between devices (train --resume --device, 2026-12-04, tested
# on the CPU only with a hand-made CUDA config.json): one epoch on the card
# in its default (fp16, CUDA graph, the scaler in the checkpoint), the
# second resumed on the CPU (precision auto for the CPU, no graph), the
# third back on the card. Each metrics.jsonl line says where it ran. (The
# epoch count is raised by hand between them, which moves the schedule's
# milestones: read the step column, not the lr column.)
moved() {
  local r="$W/moved"
  "$B" train --source "synthetic:28:512,128,128" --epochs 1 --device "$DEV" --run "$r" | tail -1 &&
    for step in "2 cpu" "3 $DEV"; do
      set -- $step
      "$PY" -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['epochs']=int(sys.argv[2]); json.dump(c, open(p, 'w'))" "$r/config.json" "$1" &&
        "$B" train --run "$r" --resume --device "$2" | tail -1 || return
    done &&
    cat "$r/metrics.jsonl" && cat "$r/config.json" && echo
}

# STAGES picks and orders the stages (default: all, most important first).
# The bench stages first: they print each CAM method's cost and GradCAM's
# time by phase, the open question of issue 13 (run C of 2026-11-27 found
# the upsampling at 0.8-1 ms; the changes made after it are unmeasured),
# and each CAM call replayed as a CUDA graph (never yet run on a card; 28
# px first, where the card waits on launches and the graph should count).
for st in ${STAGES:-notebooks bench28 bench64 bench224 epoch28 moved auto64 trust_parity fp16 table64 memfull table28}; do
  case $st in
    notebooks) stage notebooks 40 150 notebooks ;;
    bench28 | bench64 | bench224) stage "$st" 40 150 bench "${st#bench}" ;;
    table28 | table64) stage "$st" 60 240 table "${st#table}" ;;
    epoch28) stage epoch28 30 150 epoch28 ;;
    moved) stage moved 30 90 moved ;;
    mem224) stage mem224 40 120 mem224 ;;
    memfull) stage memfull 60 200 memfull ;;
    fp16) stage fp16 30 90 fp16 ;;
    auto64) stage auto64 30 90 auto64 ;;
    trust_parity) stage trust_parity 40 120 trust_parity ;;
    *) echo "== unknown stage $st" ;;
  esac
done
echo "== done after $(($(date +%s) - START)) s"
