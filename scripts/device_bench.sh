#!/usr/bin/env bash
# `chestcam bench` on the GPU machine at 28, 64 and 224 px, both sides on
# CUDA, then one ChestMNIST-sized epoch at 28 px with validation (time and
# peak host RSS). For a session that is lent a GPU; prepared without one
# (never run yet). That machine has no cargo and no network: build here,
# carry the binary and a data file, run there:
#   cargo build --release -p chestcam
#   mkdir -p out/device && cp ../shared/data/nih1000/nih1000_64.npz out/device/
#   run(command="bash scripts/device_bench.sh", carry=["target/release/chestcam", "out/device"],
#       timeout_s=420)
# Everything it prints is also written under $OUT (fetched back).
set -uo pipefail
PY=${PY:-/opt/torch/.venv/bin/python}
export LD_LIBRARY_PATH="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824
B=${B:-./target/release/chestcam}
SRC=${SRC:-out/device/nih1000_64.npz}
OUT=${OUT:-/tmp/device-out}
W=$(mktemp -d)
mkdir -p "$OUT"
exec > >(tee "$OUT/device_bench.txt") 2>&1
date -u
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
"$B" info
for size in 28 64 224; do
  "$PY" scripts/make_big_npz.py "$SRC" --size "$size" --train 512 --val 64 --test 64 --out "$W/d$size.npz"
  echo "== bench, $size px, CUDA"
  timeout 120 "$B" bench --device cuda --data "$W/d$size.npz" --batch 128 --threads 8 \
    --warmup 5 --reps 20 --score-batch 4 --road-images 0 --python "$PY" \
    --script scripts/bench_pytorch.py --out "$W/bench$size" || echo "bench at $size px failed: $?"
done
echo "== one ChestMNIST-sized epoch at 28 px (78,468 train / 11,219 val), CUDA"
"$PY" scripts/make_big_npz.py "$SRC" --size 28 --train 78468 --val 11219 --test 256 --out "$W/cm28.npz"
/usr/bin/time -f "wall %e s, peak RSS %M KB" timeout 150 "$B" train --source "$W/cm28.npz" \
  --device cuda --epochs 1 --run "$W/run28" || echo "training failed: $?"
