#!/usr/bin/env bash
# Set-up for Colab or any fresh Linux box with Jupyter: Rust, evcxr_jupyter
# 0.22.0, torch 2.11.0 (libtorch for tch 0.24) and the "Rust (chestcam)"
# kernel. Run from the repository root:  bash scripts/hosted_setup.sh
# Then pick the kernel "Rust (chestcam)" and open notebooks/*.ipynb.
# NOT TRIED on Colab itself (no network where it was written); run once by
# hand in a fresh venv on the machine it was written on (README, "Colab and
# other hosted Jupyter"). The same steps, in a venv, are what
# scripts/setup.sh runs and CI tests.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v cargo >/dev/null; then
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  # shellcheck disable=SC1091
  source "$HOME/.cargo/env"
fi
python3 -m pip install --quiet "torch==2.11.0" nbclient nbconvert nbformat jupyter_client
export CHESTCAM_VENV="$(python3 -c 'import sys; print(sys.prefix)')"
export CHESTCAM_EVCXR_ROOT="${CHESTCAM_EVCXR_ROOT:-$HOME/.cache/chestcam-tools/evcxr-0.22.0}"
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$HOME/.cache/chestcam-tools/evcxr-build-torch2.11.0}"
if [ ! -x "$CHESTCAM_EVCXR_ROOT/bin/evcxr_jupyter" ]; then
  cargo install evcxr_jupyter --version 0.22.0 --locked --root "$CHESTCAM_EVCXR_ROOT"
fi
mkdir -p "$EVCXR_TMPDIR"
python3 "$here/write_kernelspec.py"
echo "kernel 'Rust (chestcam)' installed under $CHESTCAM_VENV/share/jupyter/kernels"
