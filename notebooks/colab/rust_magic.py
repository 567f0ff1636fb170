"""`%%rust`: runs a cell on the evcxr Rust kernel from a Python notebook.

Colab (and other hosted Jupyter) cannot select a custom kernel, so its
notebooks run on Python and hand each Rust cell to an evcxr kernel:

    import sys; sys.path.insert(0, "<repo>/notebooks/colab")
    %load_ext rust_magic

    %%rust
    let x = 40 + 2;
    x

The first `%%rust` cell starts the kernel `chestcam-rust` (written by
`scripts/hosted_setup.sh` or `scripts/setup.sh`) through `jupyter_client`,
with its working folder at the repository's `notebooks/`, so the cells are
those of the evcxr notebooks unchanged (`:dep chestcam = { path =
"../chestcam-lib" }` included). The kernel lives until Python exits, so
variables carry from cell to cell as on the Rust kernel.

Every output comes back as the Rust kernel sent it: stdout and stderr as
text, display data (PNG, GIF, SVG, HTML, plain text) with its MIME type.
A compile error, a panic (which evcxr survives, printing `panicked at` on
stderr) or a kernel death fails the cell with the kernel's own message. An
`Err` returned by a cell (`...?`) is printed on stderr, as the Rust kernel
prints it; like the Rust kernel, the magic does not fail the cell for it.
A cell that has shown nothing for 30 s (`CHESTCAM_RUST_HEARTBEAT_S`; 0: never)
prints "still running after N s" every 30 s until its first output: the
first `:dep` cell compiles for minutes without a word from evcxr.
"""
import atexit
import os
import pathlib
import queue
import subprocess
import sys
import time

import jupyter_client
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import publish_display_data

KERNEL = os.environ.get("CHESTCAM_RUST_KERNEL", "chestcam-rust")
NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent


class RustCellError(Exception):
    """A Rust cell failed; shown as the kernel's message, without a Python traceback."""

    def _render_traceback_(self):
        return [f"Rust cell failed: {self}"]


class RustKernel:
    def __init__(self, name=KERNEL, cwd=NOTEBOOKS, startup_timeout=180):
        self.km = jupyter_client.KernelManager(kernel_name=name)
        # The kernel's own stdout holds only evcxr's start-up chatter ("No
        # configuration file found, ..."), which ipykernel would show in the
        # first cell; every output of a cell comes through iopub instead.
        # Its stderr stays, for a kernel that dies.
        self.km.start_kernel(cwd=str(cwd), stdout=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=startup_timeout)
        except RuntimeError as e:
            self.shutdown()
            raise RustCellError(f"the Rust kernel {name!r} did not start: {e}") from None

    def run(self, code):
        """Runs `code`, relays its outputs, raises RustCellError on failure."""
        msg_id = self.kc.execute(code, allow_stdin=False)
        problems = []
        # A cell silent for a while (the first `:dep` compiles for minutes)
        # says it is still running, until its first output.
        beat = float(os.environ.get("CHESTCAM_RUST_HEARTBEAT_S", "30"))
        started = time.monotonic()
        next_beat = started + beat
        shown = []
        hint = ""
        if ":dep" in code:
            hint = " (a :dep cell compiles the crate and its dependencies: minutes the first time)"

        def relay(msg):
            """Shows one output of this cell; True once the kernel is idle."""
            if msg["parent_header"].get("msg_id") != msg_id:
                return False
            kind, c = msg["msg_type"], msg["content"]
            if kind == "stream":
                shown.append(True)
                (sys.stderr if c["name"] == "stderr" else sys.stdout).write(c["text"])
                if c["name"] == "stderr" and "panicked at" in c["text"]:
                    problems.append(c["text"].strip())
            elif kind in ("display_data", "execute_result"):
                shown.append(True)
                publish_display_data(c.get("data", {}), c.get("metadata", {}))
            elif kind == "error":
                problems.append(f"{c.get('ename', 'Error')}: {c.get('evalue', '')}".strip())
            return kind == "status" and c.get("execution_state") == "idle"

        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                if not self.km.is_alive():
                    raise RustCellError("the Rust kernel died") from None
                now = time.monotonic()
                if beat > 0 and not shown and now >= next_beat:
                    print(f"still running after {now - started:.0f} s{hint}", flush=True)
                    next_beat += beat
                continue
            if relay(msg):
                break
        # evcxr relays the program's stderr from a thread of its own, so a
        # line (a returned Err, a panic) can arrive just after "idle": take
        # what still comes for this cell until the channel has been quiet a
        # second. (0.3 s missed a panic's whole message once, on a loaded
        # 2-core machine in make test, and the cell then passed.)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            try:
                relay(self.kc.get_iopub_msg(timeout=1.0))
            except queue.Empty:
                break
        # The execute reply (a compile error replies "error").
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=30)
            except queue.Empty:
                raise RustCellError("the Rust kernel did not answer") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        c = reply["content"]
        if c.get("status") == "error" and not problems:
            problems.append(f"{c.get('ename', 'Error')}: {c.get('evalue', '')}".strip() or "error")
        if problems:
            raise RustCellError("\n".join(problems))

    def shutdown(self):
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_kernel(now=True)


@magics_class
class RustMagics(Magics):
    kernel = None

    @cell_magic
    def rust(self, line, cell):
        if RustMagics.kernel is None:
            RustMagics.kernel = RustKernel()
            atexit.register(RustMagics.kernel.shutdown)
        RustMagics.kernel.run(cell)


def load_ipython_extension(ipython):
    ipython.register_magics(RustMagics)
