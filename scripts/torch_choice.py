"""Which build of torch 2.11.0 `scripts/hosted_setup.sh` installs, if any.

tch 0.24 links the libtorch inside Python's torch, so the build decides
whether the notebooks can use the GPU. PyPI's own torch 2.11.0 wheel for
Linux x86_64 is built with CUDA 13.0, which needs NVIDIA driver 580 or
newer. A machine with an older driver (Colab's T4 runtime ran driver 550,
CUDA 12.4, in September 2025: googlecolab/colabtools issue 5578) would get
a torch whose `cuda_if_available()` silently answers "CPU". So:

| driver           | build installed                                          |
| ---------------- | -------------------------------------------------------- |
| none (no GPU)    | `torch==2.11.0+cpu` (PyTorch's CPU index: ~200 MB, not ~3 GB) |
| 580 or newer     | `torch==2.11.0+cu130` (CUDA 13.0, the build PyPI serves) |
| 525 to 579       | `torch==2.11.0+cu126` (CUDA 12.6 runs on these drivers through CUDA's minor-version compatibility; its wheels cover the T4's sm_75) |
| older than 525   | the CPU build, with a warning: torch 2.11 has no build for such drivers |

torch 2.11's CUDA builds are 12.6, 12.8 and 13.0 (pytorch/pytorch PR
175253, "Update release 2.11 to latest supported matrix"); 12.6 is the one
that needs the oldest driver.

A torch 2.11.0 already installed is kept when it can run here: a CPU build
where there is no GPU, a CUDA build whose CUDA the driver supports. That is
the case in this repository's own tests and on a runtime set up before.

Usage (what hosted_setup.sh does):
    python3 scripts/torch_choice.py     prints the pip arguments, one per
                                        line, or nothing when torch stays;
                                        a note on stderr says why
Every build comes from PyTorch's own package index with its label spelt out
(`torch==2.11.0+cu126 --index-url ...`): a bare `torch==2.11.0` would count
any 2.11.0 already there, CPU build included, as good enough.
The decision itself is `choose()`, a pure function that
scripts/test_hosted_setup.py checks for every row of the table.
"""
import importlib.util
import pathlib
import re
import subprocess
import sys

VERSION = "2.11.0"
INDEX = "https://download.pytorch.org/whl"
# Oldest driver for each CUDA major version the builds use (NVIDIA's CUDA
# compatibility tables: 13.x needs r580, 12.x with minor-version
# compatibility r525).
MIN_DRIVER = {13: 580, 12: 525}


def driver_major(text):
    """The major number of `nvidia-smi --query-gpu=driver_version` output
    ("550.54.15" -> 550), or None when there is no readable driver."""
    m = re.match(r"\s*(\d+)\.", text or "")
    return int(m.group(1)) if m else None


def installed_torch():
    """(version, cuda) of the torch this Python has, without importing it
    (importing a build the driver cannot run is exactly what we avoid):
    ("2.11.0", "13.0"), ("2.11.0", None) for a CPU build, or None."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return None
    text = (pathlib.Path(spec.origin).parent / "version.py").read_text(errors="replace")
    version = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", text)
    cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*['\"]([\d.]+)['\"]", text, re.M)
    return (version.group(1) if version else "?", cuda.group(1) if cuda else None)


def choose(installed, driver):
    """(pip arguments or None when the installed torch stays, a note).

    installed: None or (version, cuda) as from installed_torch();
    driver: the driver's major version, or None without an NVIDIA GPU."""
    if driver is None:
        want, why = "cpu", "no NVIDIA driver found: the CPU build"
    elif driver >= MIN_DRIVER[13]:
        want, why = "cu130", f"driver {driver}: the CUDA 13.0 build"
    elif driver >= MIN_DRIVER[12]:
        want, why = "cu126", f"driver {driver} is older than 580 (CUDA 13): the CUDA 12.6 build"
    else:
        want, why = "cpu", (
            f"warning: driver {driver} is older than 525, too old for every CUDA build of "
            f"torch {VERSION}; installing the CPU build, so the notebooks will not use the GPU"
        )
    if installed is not None and installed[0].split("+")[0] == VERSION:
        version, cuda = installed
        if cuda is None:
            # A CPU build stays only where there is no GPU to use.
            runs, build = driver is None, "CPU build"
        else:
            # A CUDA build runs on the CPU without a GPU, else needs its driver.
            need = MIN_DRIVER.get(int(cuda.split(".")[0]), float("inf"))
            runs, build = driver is None or driver >= need, f"CUDA {cuda}"
        if runs:
            where = "there is no GPU" if driver is None else f"driver {driver} runs it"
            return None, f"torch {version} ({build}) is installed and {where}: kept"
    return [f"torch=={VERSION}+{want}", "--index-url", f"{INDEX}/{want}"], why


def read_driver():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return driver_major(out.stdout) if out.returncode == 0 else None


def main():
    args, why = choose(installed_torch(), read_driver())
    print(f"[setup] torch: {why}", file=sys.stderr)
    if args:
        print("\n".join(args))


if __name__ == "__main__":
    main()
