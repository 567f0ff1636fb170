#!/usr/bin/env bash
# Set-up for Colab or any fresh Linux box with Jupyter: Rust, evcxr_jupyter
# 0.22.0, torch 2.11.0 (libtorch for tch 0.24) in the build the machine's
# GPU driver can run (scripts/torch_choice.py), and the "Rust (chestcam)"
# kernel. Run from the repository root:  bash scripts/hosted_setup.sh
# Then pick the kernel "Rust (chestcam)" and open notebooks/*.ipynb.
#
# CHESTCAM_PYTHON   the Python whose environment gets torch and the kernel
#                   (default python3; the Colab set-up cell passes its own)
# CHESTCAM_SETUP_DRY_RUN=1
#                   print each step that would install or download, run
#                   none of them (scripts/test_hosted_setup.py uses this)
#
# NOT TRIED on Colab itself (no network where it was written); run once by
# hand in a fresh venv on the machine it was written on (README, "Colab and
# other hosted Jupyter"). The same steps, in a venv, are what
# scripts/setup.sh runs and CI tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${CHESTCAM_PYTHON:-python3}"
dry="${CHESTCAM_SETUP_DRY_RUN:-}"
step() {
  echo "[setup] $*" >&2
  if [ -z "$dry" ]; then "$@"; fi
}
if ! command -v cargo >/dev/null; then
  echo "[setup] Rust: not found, installing it with rustup (about 1 minute)" >&2
  if [ -z "$dry" ]; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    source "$HOME/.cargo/env"
  else
    echo "[setup] curl https://sh.rustup.rs | sh -s -- -y --profile minimal" >&2
  fi
fi
choice="$("$py" "$here/torch_choice.py")"
if [ -n "$choice" ]; then
  mapfile -t torch_args <<< "$choice"
  echo "[setup] installing ${torch_args[0]} (a few minutes)" >&2
  if ! step "$py" -m pip install --quiet "${torch_args[@]}"; then
    case "${torch_args[0]}" in
      *+cpu | *+cu130)
        # PyPI's own 2.11.0 is the CUDA 13.0 build, which also runs on the CPU.
        echo "[setup] that index failed; taking PyPI's torch==2.11.0 (CUDA 13.0 build, ~3 GB)" >&2
        step "$py" -m pip install --quiet "torch==2.11.0" ;;
      *)
        echo "[setup] could not install ${torch_args[0]}: this GPU's driver needs that build, and PyPI has only CUDA 13.0 (driver 580+)" >&2
        exit 1 ;;
    esac
  fi
fi
step "$py" -m pip install --quiet nbclient nbconvert nbformat jupyter_client
export CHESTCAM_VENV="$("$py" -c 'import sys; print(sys.prefix)')"
export CHESTCAM_EVCXR_ROOT="${CHESTCAM_EVCXR_ROOT:-$HOME/.cache/chestcam-tools/evcxr-0.22.0}"
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$HOME/.cache/chestcam-tools/evcxr-build-torch2.11.0}"
if [ ! -x "$CHESTCAM_EVCXR_ROOT/bin/evcxr_jupyter" ]; then
  echo "[setup] building evcxr_jupyter 0.22.0 (about 10 minutes, once)" >&2
  step cargo install evcxr_jupyter --version 0.22.0 --locked --root "$CHESTCAM_EVCXR_ROOT"
fi
step mkdir -p "$EVCXR_TMPDIR"
step "$py" "$here/write_kernelspec.py"
if [ -z "$dry" ]; then
  echo "kernel 'Rust (chestcam)' installed under $CHESTCAM_VENV/share/jupyter/kernels"
fi
