#!/usr/bin/env bash
# The trust checks on the GPU machine, for a session that is lent one.
# Prepared without a GPU (never run yet): build here, then run it there with
#   cargo build --release -p chestcam
#   run(command="bash scripts/device_trust_check.sh", carry=["target/release/chestcam"], timeout_s=600)
# 1. CUDA against CPU: a small phantom model trained on CUDA, `chestcam trust`
#    on CUDA and on the CPU with the same model and images; both times and the
#    largest difference between their numbers (expected about 1e-4: the
#    imputation and forwards run in other kernels).
# 2. The README's phantom tables, which this 2-core CPU cannot make at 64 px
#    (a 64 px small-stem epoch of 2,000 phantoms takes about 10 minutes here):
#    a phantom model trained to convergence at 28 and at 64 px (TABLE_EPOCHS,
#    default 10, all 2,000 training phantoms), then every method on the first
#    TABLE_IMAGES (16) test images and the five most common findings, as the
#    README's 28 px table. Skipped when less than STAGE2_MIN_S seconds remain.
# The reports (trust.md, trust.json, pictures) are copied to $OUT.
set -euo pipefail
START=$(date +%s)
PY=${PY:-/opt/torch/.venv/bin/python}
export LD_LIBRARY_PATH="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
B=${B:-./target/release/chestcam}
OUT=${OUT:-/tmp/device-out}
BUDGET_S=${BUDGET_S:-560}
W=$(mktemp -d)
mkdir -p "$OUT"
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
"$B" info
"$B" train --source synthetic --epochs 3 --device cuda --run "$W/run" | tail -3
for dev in cuda cpu; do
  /usr/bin/time -f "$dev trust: %e s, max RSS %M KB" \
    "$B" trust --run "$W/run" --device "$dev" --images 64 --methods gradcam,gradcam++,hirescam,eigencam \
      --noise 0 --out "$W/trust-$dev" > /dev/null
done
"$PY" - "$W" <<'PY'
import json, math, sys
w = sys.argv[1]
a, b = (json.load(open(f"{w}/trust-{d}/trust.json")) for d in ("cuda", "cpu"))
worst = 0.0
for sa, sb in zip(a["sources"], b["sources"]):
    for ma, mb in zip(sa["metrics"], sb["metrics"]):
        for ra, rb in zip(ma["values"]["values"], mb["values"]["values"]):
            for x, y in zip(ra, rb):
                if x is not None and y is not None and not (math.isnan(x) or math.isnan(y)):
                    worst = max(worst, abs(x - y))
print(f"max |cuda - cpu| over every trust number: {worst:.2e}")
PY
cp -r "$W"/trust-* "$OUT"/
EPOCHS=${TABLE_EPOCHS:-10}
IMAGES=${TABLE_IMAGES:-16}
for size in 64 28; do
  if [ "$(left)" -lt "${STAGE2_MIN_S:-150}" ]; then
    echo "skipping the $size px table: $(left) s left"
    continue
  fi
  src=synthetic; [ "$size" = 64 ] && src=synthetic:64
  /usr/bin/time -f "train $size px: %e s" \
    "$B" train --source "$src" --epochs "$EPOCHS" --device cuda --run "$W/phantoms$size" | tail -4
  /usr/bin/time -f "trust $size px: %e s" \
    "$B" trust --run "$W/phantoms$size" --device cuda --methods all --images "$IMAGES" \
      --labels atelectasis,effusion,infiltration,mass,nodule --out "$W/table$size" > /dev/null
  cp -r "$W/table$size" "$OUT/"
  sed -n '1,40p' "$W/table$size/trust.md"
done
