#!/usr/bin/env bash
# Idempotent set-up: a venv with torch 2.11.0 (libtorch for tch) and the
# Jupyter execution pieces, evcxr_jupyter 0.22.0 in its own cargo root, and
# a kernelspec inside the venv. Never touches the user's own Python/Jupyter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=env.sh
source "$here/env.sh"
mkdir -p "$CHESTCAM_TOOLS"
stamp_py="$CHESTCAM_VENV/.chestcam-ready"
want="$(sha256sum "$here/../requirements.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp_py" ] || [ "$(cat "$stamp_py")" != "$want" ]; then
  if [ ! -x "$CHESTCAM_VENV/bin/python" ]; then
    echo "[setup] creating venv at $CHESTCAM_VENV (torch $CHESTCAM_TORCH_VERSION, ~5 GB, a few minutes)"
    py="$(command -v "python$CHESTCAM_PY_VERSION" || command -v python3)"
    "$py" -m venv "$CHESTCAM_VENV"
    "$CHESTCAM_VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  echo "[setup] installing requirements.txt into $CHESTCAM_VENV"
  "$CHESTCAM_VENV/bin/python" -m pip install --quiet -r "$here/../requirements.txt"
  echo "$want" > "$stamp_py"
else
  echo "[setup] venv ready: $CHESTCAM_VENV"
fi
if [ ! -x "$CHESTCAM_EVCXR_ROOT/bin/evcxr_jupyter" ]; then
  echo "[setup] building evcxr_jupyter $CHESTCAM_EVCXR_VERSION into $CHESTCAM_EVCXR_ROOT (~9 minutes, once)"
  cargo install evcxr_jupyter --version "$CHESTCAM_EVCXR_VERSION" --locked --root "$CHESTCAM_EVCXR_ROOT.tmp"
  rm -rf "$CHESTCAM_EVCXR_ROOT" && mv "$CHESTCAM_EVCXR_ROOT.tmp" "$CHESTCAM_EVCXR_ROOT"
else
  echo "[setup] evcxr_jupyter ready: $CHESTCAM_EVCXR_ROOT"
fi
# The kernelspec is always rewritten: evcxr rewrites kernel.json when its
# version changes and drops our env block.
"$CHESTCAM_VENV/bin/python" "$here/write_kernelspec.py"
mkdir -p "$EVCXR_TMPDIR"
# A second, small venv with the Jupyter versions of Colab's Python runtime
# (scripts/colab_stack.txt) on Python 3.12 as on Colab, where this machine
# has it (else the project's Python): make test runs the %%rust magic and the
# Colab notebooks on a Python kernel from it.
colab_py=""
for c in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 "python$CHESTCAM_PY_VERSION" python3; do
  if "$c" -c 'import venv, ensurepip' >/dev/null 2>&1; then colab_py="$c"; break; fi
done
stamp_colab="$CHESTCAM_COLAB_VENV/.chestcam-ready"
want_colab="$("$colab_py" --version 2>&1) $(sha256sum "$here/colab_stack.txt" | cut -d' ' -f1)"
if [ ! -f "$stamp_colab" ] || [ "$(cat "$stamp_colab")" != "$want_colab" ]; then
  echo "[setup] installing Colab's Jupyter versions (scripts/colab_stack.txt) on $("$colab_py" --version 2>&1) into $CHESTCAM_COLAB_VENV"
  rm -rf "$CHESTCAM_COLAB_VENV"
  "$colab_py" -m venv "$CHESTCAM_COLAB_VENV"
  "$CHESTCAM_COLAB_VENV/bin/python" -m pip install --quiet -r "$here/colab_stack.txt"
  echo "$want_colab" > "$stamp_colab"
else
  echo "[setup] Colab-stack venv ready: $CHESTCAM_COLAB_VENV"
fi
