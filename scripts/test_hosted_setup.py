"""Tests of the Colab set-up path that need no network (make test runs this):

1. scripts/torch_choice.py: which torch 2.11.0 build each kind of machine
   gets (every row of its table), and that it reads the installed torch's
   version and CUDA exactly as torch itself reports them.
2. scripts/hosted_setup.sh in dry-run mode on faked machines (an
   `nvidia-smi` on PATH that prints a driver version, no cargo, an empty
   evcxr folder): the steps it would take, in order, and that it created
   nothing.
3. The Colab notebooks' set-up cell, run as Colab runs it but with the
   kernel name it looks for made absent: it must call hosted_setup.sh with
   its own Python and print the script's progress in the cell.
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import torch_choice  # noqa: E402

INDEX = "https://download.pytorch.org/whl"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def build(label):
    return [f"torch==2.11.0+{label}", "--index-url", f"{INDEX}/{label}"]


# 1. The decision table.
rows = [
    # (installed, driver, expected pip arguments or None when torch stays)
    (None, None, build("cpu")),
    (None, 550, build("cu126")),  # Colab's T4 driver in 2025 (CUDA 12.4)
    (None, 525, build("cu126")),
    (None, 579, build("cu126")),
    (None, 580, build("cu130")),
    (None, 595, build("cu130")),
    (None, 470, build("cpu")),  # too old for any CUDA build of 2.11
    (("2.11.0+cu130", "13.0"), 550, build("cu126")),  # PyPI's wheel, old driver
    (("2.11.0", "13.0"), 580, None),
    (("2.11.0+cu126", "12.6"), 550, None),
    (("2.11.0+cu128", "12.8"), 590, None),
    (("2.11.0+cpu", None), 550, build("cu126")),  # a GPU is there: use it
    (("2.11.0+cpu", None), None, None),
    (("2.11.0+cu130", "13.0"), None, None),  # no GPU: runs on the CPU as it is
    (("2.9.0+cu126", "12.6"), 550, build("cu126")),  # Colab's own, older torch
    (("2.12.0+cu130", "13.0"), 590, build("cu130")),
]
for installed, driver, want in rows:
    got, why = torch_choice.choose(installed, driver)
    check(got == want, f"choose({installed}, driver {driver}) -> {got} ({why})")
_, why = torch_choice.choose(None, 470)
check(why.startswith("warning:") and "470" in why, "an old driver is named in a warning")
for text, want in [("550.54.15\n", 550), ("580.65.06", 580), ("", None), ("No devices were found", None)]:
    check(torch_choice.driver_major(text) == want, f"driver_major({text!r}) == {want}")

# The installed torch, read without importing it, against torch's own answer.
import torch  # noqa: E402

check(
    torch_choice.installed_torch() == (torch.__version__, torch.version.cuda),
    f"installed_torch() {torch_choice.installed_torch()} == ({torch.__version__!r}, {torch.version.cuda!r})",
)


# The kernel's PATH must find, as `python`, the interpreter that has torch:
# tch's build script runs `python` to find libtorch.
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402

spec = KernelSpecManager().get_kernel_spec("chestcam-rust")
probe = subprocess.run(["python", "-c", "import sys, torch; print(sys.prefix, torch.__version__)"],
                       env=dict(os.environ, **spec.env), capture_output=True, text=True)
first = shutil.which("python", path=spec.env["PATH"])
check(first == str(pathlib.Path(spec.resource_dir) / "bin" / "python"),
      f"the kernel's PATH starts with its own `python` wrapper ({first}), not whatever `python` the machine has")
check(probe.returncode == 0 and probe.stdout.split() == [sys.prefix, torch.__version__],
      f"`python` on the kernel's PATH is this interpreter, with torch ({probe.stdout.strip()}{probe.stderr.strip()[-200:]})")

# 2. hosted_setup.sh, dry run, on faked machines.
def fake_machine(tmp, driver):
    """A PATH with this Python, bash's tools and, when `driver` is given, an
    nvidia-smi that reports it (else one that fails, as without a GPU)."""
    fake = tmp / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho {driver}\n" if driver else "#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    smi.chmod(0o755)
    return f"{fake}:{pathlib.Path(sys.executable).parent}:/usr/bin:/bin"


def dry_run(driver):
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        path = fake_machine(tmp, driver)
        env = {
            "PATH": path,
            "HOME": str(tmp / "home"),
            "CHESTCAM_PYTHON": sys.executable,
            "CHESTCAM_SETUP_DRY_RUN": "1",
            "CHESTCAM_EVCXR_ROOT": str(tmp / "evcxr"),
            "EVCXR_TMPDIR": str(tmp / "evcxr-tmp"),
        }
        out = subprocess.run(["bash", str(REPO / "scripts" / "hosted_setup.sh")], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        made = sorted(p.name for p in tmp.iterdir())
        return out, shutil.which("cargo", path=path) is not None, made


# What the script should install is choose()'s answer for this machine's
# torch (section 1 checks choose() itself); here the script must act on it.
installed = torch_choice.installed_torch()
for driver in ["550.54.15", "590.44.01", None]:
    want, _ = torch_choice.choose(installed, torch_choice.driver_major(driver))
    out, has_cargo, made = dry_run(driver)
    log = out.stderr
    check(out.returncode == 0, f"dry run, driver {driver}: exit 0 ({log.strip().splitlines()[-1:]})")
    if want:
        check(f"pip install --quiet {' '.join(want)}" in log, f"dry run, driver {driver}: installs {want[0]}")
    else:
        check("kept" in log and "install --quiet torch" not in log,
              f"dry run, driver {driver}: keeps the installed torch")
    check(("rustup" in log) == (not has_cargo), f"dry run, driver {driver}: rustup only without cargo")
    check("cargo install evcxr_jupyter --version 0.22.0" in log, f"dry run, driver {driver}: builds evcxr into the empty root")
    check("write_kernelspec.py" in log, f"dry run, driver {driver}: writes the kernelspec last")
    check(made == ["bin"], f"dry run, driver {driver}: created nothing ({made})")
    check("kernel 'Rust (chestcam)' installed" not in out.stdout, f"dry run, driver {driver}: claims nothing")

# 3. The Colab set-up cell, with the kernel it looks for absent.
cell = json.loads((REPO / "notebooks" / "colab" / "train_model.ipynb").read_text())["cells"][2]
code = "".join(cell["source"])
check("hosted_setup.sh" in code, "the third cell of the Colab notebook is the set-up cell")
code = "\n".join(line for line in code.splitlines() if not line.startswith("%"))  # %load_ext: IPython only
with tempfile.TemporaryDirectory() as d:
    tmp = pathlib.Path(d)
    env = dict(os.environ, PATH=fake_machine(tmp, "550.54.15"),
               CHESTCAM_RUST_KERNEL="chestcam-rust-absent", CHESTCAM_SETUP_DRY_RUN="1",
               CHESTCAM_EVCXR_ROOT=str(tmp / "evcxr"), EVCXR_TMPDIR=str(tmp / "evcxr-tmp"))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO / "notebooks" / "colab",
                         capture_output=True, text=True, timeout=120)
    check(out.returncode == 0, f"set-up cell exits cleanly ({out.stderr.strip()[-300:]})")
    check(f"[setup] {sys.executable} -m pip install" in out.stdout,
          "set-up cell runs hosted_setup.sh with the notebook's own Python and prints its steps")
    check("chestcam at" in out.stdout and out.stderr == "", "set-up cell: progress on stdout, nothing on stderr")
    check(sorted(p.name for p in tmp.iterdir()) == ["bin"], "set-up cell (dry run) created nothing")

if failures:
    sys.exit(f"{len(failures)} hosted set-up check(s) failed")
print("hosted set-up: all checks passed")
