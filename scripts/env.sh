# Sourced by the Makefile and scripts: where the project's tools live.
# Everything sits in a per-user cache keyed by versions, so a second clone
# on the same machine reuses the venv (torch) and evcxr_jupyter.
CHESTCAM_PY_VERSION="3.11"
CHESTCAM_TORCH_VERSION="2.11.0"
CHESTCAM_EVCXR_VERSION="0.22.0"
CHESTCAM_TOOLS="${CHESTCAM_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/chestcam-tools}"
CHESTCAM_VENV="$CHESTCAM_TOOLS/venv-py${CHESTCAM_PY_VERSION}-torch${CHESTCAM_TORCH_VERSION}"
CHESTCAM_EVCXR_ROOT="$CHESTCAM_TOOLS/evcxr-${CHESTCAM_EVCXR_VERSION}"
# Jupyter as on Colab's runtime (scripts/colab_stack.txt), for the Colab tests.
CHESTCAM_COLAB_VENV="$CHESTCAM_TOOLS/venv-colab-stack"
export EVCXR_TMPDIR="${EVCXR_TMPDIR:-$CHESTCAM_TOOLS/evcxr-build-torch${CHESTCAM_TORCH_VERSION}}"
export LIBTORCH_USE_PYTORCH=1
export VIRTUAL_ENV="$CHESTCAM_VENV"
export PATH="$CHESTCAM_VENV/bin:$CHESTCAM_EVCXR_ROOT/bin:$PATH"
export JUPYTER_PATH="$CHESTCAM_VENV/share/jupyter"
export JUPYTER_DATA_DIR="$CHESTCAM_VENV/share/jupyter"
export JUPYTER_CONFIG_DIR="$CHESTCAM_VENV/etc/jupyter"
export CHESTCAM_VENV CHESTCAM_EVCXR_ROOT CHESTCAM_TOOLS CHESTCAM_COLAB_VENV
