"""Write the evcxr kernelspec into the venv's share/jupyter, with the env
block the kernel needs (libtorch from the venv, persistent EVCXR_TMPDIR)."""
import json
import os
import pathlib
import shlex
import subprocess
import sys

venv = pathlib.Path(os.environ["CHESTCAM_VENV"])
root = pathlib.Path(os.environ["CHESTCAM_EVCXR_ROOT"])
import importlib.util

spec = importlib.util.find_spec("torch")
if spec is None or not spec.origin:
    sys.exit("torch is not installed for this python: run scripts/setup.sh first")
torch_lib = pathlib.Path(spec.origin).parent / "lib"
# evcxr loads each cell as a dylib linked against the toolchain's libstd.so.
sysroot = pathlib.Path(subprocess.check_output(["rustc", "--print", "sysroot"], text=True).strip())
host = next(l.split(": ")[1] for l in subprocess.check_output(["rustc", "-vV"], text=True).splitlines() if l.startswith("host: "))
sysroot_lib = sysroot / "lib" / "rustlib" / host / "lib"
kdir = venv / "share" / "jupyter" / "kernels" / "chestcam-rust"
kdir.mkdir(parents=True, exist_ok=True)
# tch's build script finds libtorch by running `python` (`python3` without
# VIRTUAL_ENV) from PATH. On a hosted machine that name may be another
# interpreter than the one that has torch (Colab: /usr/bin/python3 runs the
# notebook), so the kernel's PATH starts with a folder whose `python` and
# `python3` run this very interpreter. A wrapper, not a symlink: a venv's
# Python finds its venv from the path it was started by.
shim = kdir / "bin"
shim.mkdir(exist_ok=True)
for name in ("python", "python3"):
    tmp = shim / f"{name}.part"
    tmp.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    tmp.chmod(0o755)
    tmp.replace(shim / name)
spec = {
    "argv": [str(root / "bin" / "evcxr_jupyter"), "--control_file", "{connection_file}"],
    "display_name": "Rust (chestcam)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {
        "LIBTORCH_USE_PYTORCH": "1",
        "VIRTUAL_ENV": str(venv),
        "PATH": f"{shim}:{venv / 'bin'}:{root / 'bin'}:{os.environ.get('PATH', '')}",
        "LD_LIBRARY_PATH": f"{torch_lib}:{sysroot_lib}:{os.environ.get('LD_LIBRARY_PATH', '')}".rstrip(":"),
        "EVCXR_TMPDIR": os.environ["EVCXR_TMPDIR"],
    },
}
tmp = kdir / "kernel.json.part"
tmp.write_text(json.dumps(spec, indent=2))
tmp.replace(kdir / "kernel.json")
print(f"[setup] kernelspec chestcam-rust written to {kdir}", file=sys.stderr)
