"""Writes a kernelspec named `python3` that runs the Colab-stack venv's
Python (scripts/colab_stack.txt: Colab's IPython, ipykernel and
jupyter_client), so that notebooks asking for `python3` run there when its
folder comes first in JUPYTER_PATH.

Usage: python scripts/colab_kernel.py OUT_DIR
       (then JUPYTER_PATH=OUT_DIR:$JUPYTER_PATH; the Makefile does this)
"""
import json
import os
import pathlib
import sys

if len(sys.argv) != 2:
    sys.exit(__doc__)
python = pathlib.Path(os.environ["CHESTCAM_COLAB_VENV"]) / "bin" / "python"
if not python.exists():
    sys.exit(f"{python} is missing: run scripts/setup.sh (it builds the Colab-stack venv)")
kdir = pathlib.Path(sys.argv[1]) / "kernels" / "python3"
kdir.mkdir(parents=True, exist_ok=True)
spec = {
    "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
    "display_name": "Python 3 (Colab's Jupyter versions)",
    "language": "python",
}
(kdir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
print(f"[colab] kernel python3 -> {python}", file=sys.stderr)
