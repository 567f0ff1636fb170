#!/usr/bin/env bash
# The trust checks on the GPU machine, for a session that is lent one.
# Prepared without a GPU (never run yet): build here, then run it there with
#   cargo build --release -p chestcam
#   run(command="bash scripts/device_trust_check.sh", carry=["target/release/chestcam"])
# It trains a small phantom model on CUDA, runs `chestcam trust` on CUDA and on
# the CPU with the same model and images, prints both times and the largest
# difference between their numbers (they should agree to about 1e-4: the
# imputation and forwards run in other kernels), and copies the reports to $OUT.
set -euo pipefail
PY=${PY:-/opt/torch/.venv/bin/python}
export LD_LIBRARY_PATH="$("$PY" -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib"
B=${B:-./target/release/chestcam}
OUT=${OUT:-/tmp/device-out}
W=$(mktemp -d)
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
mkdir -p "$OUT" && cp -r "$W"/trust-* "$OUT"/
