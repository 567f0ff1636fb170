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
evcxr relays stderr from a thread of its own, so a panic's message can come
after the cell has ended: each cell is followed by a fence, a hidden
one-line cell that writes a token to the same stderr, and the magic returns
once the token is back, with every line the cell wrote. A fence that ran
but whose token never came (a cell redirected the kernel's stderr) is said
once; later cells then wait 5 s for their token, not 120 s, until one
comes back.
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
import uuid

import jupyter_client
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import publish_display_data

KERNEL = os.environ.get("CHESTCAM_RUST_KERNEL", "chestcam-rust")
NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent
# How long the fence after each cell (see RustKernel.run) may take.
FENCE_TIMEOUT_S = 120.0
# Once a fence ran but its token never came back (a cell redirected the
# kernel's stderr, say), later fences wait this long after they ran, not
# FENCE_TIMEOUT_S, until a token comes back again.
FENCE_LOST_WAIT_S = 5.0


def fence_timeout():
    """FENCE_TIMEOUT_S, or CHESTCAM_RUST_FENCE_TIMEOUT_S where set (tests)."""
    return float(os.environ.get("CHESTCAM_RUST_FENCE_TIMEOUT_S", FENCE_TIMEOUT_S))


def fence_token(prefix):
    """A token no cell prints: the fence writes it, the relay removes it."""
    return f"{prefix}-{uuid.uuid4().hex}"


def fence_code(token):
    """The hidden cell that follows each cell: writes `token` to evcxr's stderr.

    The macro is named by its path, so a cell that defines its own
    `eprintln` macro does not silence the fence; and the line does not start
    with `:`, which evcxr reads as a command (`::std::eprintln!` never ran).
    """
    return f'std::eprintln!("{token}");'


def without_token(text, token):
    """`text` less its lines that hold `token`, and whether any did."""
    if token not in text:
        return text, False
    return "".join(line for line in text.splitlines(True) if token not in line), True


def fence_failed(reply):
    """The kernel's words when the fence's execute reply is not "ok", else None."""
    c = reply["content"]
    if c.get("status") == "ok":
        return None
    return f"{c.get('ename', 'Error')}: {c.get('evalue', '')}".strip()


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
        # Fences whose token came back: one per cell when all is well.
        self.fences_seen = 0
        # A fence ran and its token never came back: the kernel's stderr
        # does not reach us (see FENCE_LOST_WAIT_S).
        self.stderr_lost = False
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
        # Messages of these requests are the cell's: its own, and the fence's.
        ours = {msg_id}
        fence = {"token": None, "seen": False}

        def relay(msg):
            """Shows one output of this cell; the msg_id whose "idle" it is, if any."""
            parent = msg["parent_header"].get("msg_id")
            if parent not in ours:
                return None
            kind, c = msg["msg_type"], msg["content"]
            if kind == "stream":
                text = c["text"]
                if fence["token"]:
                    text, seen = without_token(text, fence["token"])
                    fence["seen"] |= seen
                if text:
                    shown.append(True)
                    (sys.stderr if c["name"] == "stderr" else sys.stdout).write(text)
                if c["name"] == "stderr" and "panicked at" in text:
                    problems.append(text.strip())
            elif kind in ("display_data", "execute_result"):
                shown.append(True)
                publish_display_data(c.get("data", {}), c.get("metadata", {}))
            elif kind == "error" and parent == msg_id:
                problems.append(f"{c.get('ename', 'Error')}: {c.get('evalue', '')}".strip())
            if kind == "status" and c.get("execution_state") == "idle":
                return parent
            return None

        def next_msg():
            """The next iopub message, None after a second without one."""
            try:
                return self.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                if not self.km.is_alive():
                    raise RustCellError("the Rust kernel died") from None
                return None

        while True:
            msg = next_msg()
            if msg is None:
                now = time.monotonic()
                if beat > 0 and not shown and now >= next_beat:
                    print(f"still running after {now - started:.0f} s{hint}", flush=True)
                    next_beat += beat
                continue
            if relay(msg) == msg_id:
                break
        reply = self._reply(msg_id)
        # evcxr relays the program's stderr from a thread of its own, so a
        # panic's message (written before the cell ended) can arrive after
        # "idle", or never before the next cell, under load (a fixed wait of
        # 1 s lost it in make test). The fence: a cell that writes a token to
        # the same stderr. The pipe and its relay keep order, so once the
        # token is back, everything the cell wrote there has been shown.
        fence["token"] = fence_token("chestcam-rust-magic-fence")
        fence_id = self.kc.execute(fence_code(fence["token"]), allow_stdin=False, store_history=False)
        ours.add(fence_id)
        timeout = fence_timeout()
        deadline = time.monotonic() + timeout
        fence_idle = False
        while not (fence["seen"] and fence_idle):
            if time.monotonic() > deadline:
                if self.stderr_lost:
                    break  # said once, when it was lost
                print(
                    f"(the Rust kernel's stderr did not catch up within {timeout:.0f} s: "
                    "the end of this cell's messages may be missing",
                    file=sys.stderr,
                    end="",
                )
                if fence_idle:
                    # The fence ran, yet its line never came: the kernel's
                    # stderr goes elsewhere now. Waiting the full time after
                    # every later cell would only make each of them slow.
                    self.stderr_lost = True
                    print(
                        f"; if a cell redirected the kernel's stderr, later cells wait {FENCE_LOST_WAIT_S:.0f} s "
                        "for it until it comes back",
                        file=sys.stderr,
                        end="",
                    )
                print(")", file=sys.stderr)
                break
            msg = next_msg()
            if msg is not None and relay(msg) == fence_id:
                fence_idle = True
                # A fence that did not run never writes its token: say so
                # (the tests fail on it) instead of waiting out the timeout.
                failed = fence_failed(self._reply(fence_id))
                if failed:
                    print(f"(the fence after this cell did not run: {failed})", file=sys.stderr)
                    break
                if self.stderr_lost:
                    deadline = min(deadline, time.monotonic() + FENCE_LOST_WAIT_S)
        if fence["seen"]:
            self.fences_seen += 1
            self.stderr_lost = False
        c = reply["content"]
        if c.get("status") == "error" and not problems:
            problems.append(f"{c.get('ename', 'Error')}: {c.get('evalue', '')}".strip() or "error")
        if problems:
            raise RustCellError("\n".join(problems))

    def _reply(self, msg_id):
        """The execute reply to `msg_id` (a compile error replies "error")."""
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=30)
            except queue.Empty:
                raise RustCellError("the Rust kernel did not answer") from None
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

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
