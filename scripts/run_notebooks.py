"""Executes notebooks headless on the chestcam kernel and checks them.

A Rust panic does not fail nbconvert (it exits 0), so this scans every
output: an error output, a stream with `panicked at` or `error`, a stderr
line that is not progress (evcxr prints a returned `Err` there and calls the
cell a success), or a missing expected rich output fails the run.

evcxr relays the program's stderr from a thread of its own, so a panic's
message can arrive after its cell has ended, when nbclient has stopped
listening for that cell. On the Rust kernel each cell is therefore followed
by a fence: a one-line cell that writes a token to the same stderr; what
arrives for the cell before the token is added to its outputs (the %%rust
magic of the Colab notebooks fences its cells itself).

Usage: python scripts/run_notebooks.py OUT_DIR NOTEBOOK [NOTEBOOK ...]
Writes executed copies to OUT_DIR and prints the time each took.
"""
import pathlib
import queue
import re
import sys
import time

import nbformat
from nbclient import NotebookClient

# The fence's pieces are those of the %%rust magic (one definition).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "colab"))
from rust_magic import FENCE_TIMEOUT_S, fence_code, fence_failed, fence_token, without_token  # noqa: E402

BAD = re.compile(r"panicked at|^error(\[E\d+\])?:|Error:|dlopen failed", re.M)
# What may go to stderr: progress lines ("trust checks: 40% (2 of 6 steps)").
# evcxr prints an `Err` returned by a cell on stderr and calls the cell a
# success, so any other stderr line fails the notebook.
PROGRESS = re.compile(r"^[\w ./-]+: (starting\b.*|\d+% .*|done\b.*)$")

# What each notebook must show inline (mime type: minimum count).
EXPECT = {
    "train_model.ipynb": {"image/png": 1, "image/svg+xml": 4, "text/html": 4},
    "gradcam_visualizer.ipynb": {"image/png": 6, "image/gif": 2, "image/svg+xml": 2, "text/html": 4},
}

# Text that must appear in a notebook's outputs.
MUST_SAY = {
    "gradcam_visualizer.ipynb": "Loaded the run of train_model.ipynb",
}


def fence_after_each_cell(client):
    """An on_cell_executed hook: the cell's late stderr, up to a fence.

    A fence that did not run or timed out leaves a stderr line in the cell,
    which fails the notebook in `check`. `hook.seen` counts the fences whose
    token came back.
    """

    async def hook(cell, cell_index, execute_reply):
        cell_id = execute_reply["parent_header"].get("msg_id")
        token = fence_token("run-notebooks-fence")
        fence_id = client.kc.execute(fence_code(token), allow_stdin=False, store_history=False)
        seen = idle = False
        deadline = time.monotonic() + FENCE_TIMEOUT_S

        def say(text):
            cell.outputs.append(nbformat.v4.new_output("stream", name="stderr", text=text + "\n"))

        while not (seen and idle):
            if time.monotonic() > deadline:
                say(f"the fence after this cell timed out after {FENCE_TIMEOUT_S:.0f} s")
                return
            try:
                msg = await client.kc.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            parent = msg["parent_header"].get("msg_id")
            if parent not in (cell_id, fence_id):
                continue
            kind, c = msg["msg_type"], msg["content"]
            if kind == "stream":
                text, got = without_token(c["text"], token)
                seen |= got
                last = cell.outputs[-1] if cell.outputs else None
                if text and last is not None and last.output_type == "stream" and last.name == c["name"]:
                    last.text += text
                elif text:
                    cell.outputs.append(nbformat.v4.new_output("stream", name=c["name"], text=text))
            elif kind == "status" and c.get("execution_state") == "idle" and parent == fence_id:
                idle = True
                reply = await client.kc.get_shell_msg(timeout=30)
                while reply["parent_header"].get("msg_id") != fence_id:
                    reply = await client.kc.get_shell_msg(timeout=30)
                failed = fence_failed(reply)
                if failed:
                    # It will never write its token.
                    say(f"the fence after this cell did not run: {failed}")
                    return
        hook.seen += 1

    hook.seen = 0
    return hook


def check(nb, name):
    problems = []
    seen = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream":
                other = out.name == "stderr" and any(
                    line.strip() and not PROGRESS.match(line.strip()) for line in out.text.splitlines())
                if BAD.search(out.text) or other:
                    problems.append(f"cell {i}: {out.name}: {out.text.strip()[:400]}")
            else:
                for mime in out.get("data", {}):
                    seen[mime] = seen.get(mime, 0) + 1
                text = out.get("data", {}).get("text/plain", "")
                if BAD.search(text):
                    problems.append(f"cell {i}: {text.strip()[:400]}")
    said = MUST_SAY.get(name)
    if said and not any(said in str(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])):
        problems.append(f"expected the outputs to say {said!r}")
    for mime, n in EXPECT.get(name, {}).items():
        if seen.get(mime, 0) < n:
            problems.append(f"expected at least {n} {mime} outputs, saw {seen.get(mime, 0)}")
    return problems


def main():
    out_dir = pathlib.Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    for path in map(pathlib.Path, sys.argv[2:]):
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(
            nb,
            # The evcxr notebooks name chestcam-rust; the Colab ones python3.
            kernel_name=nb.metadata.get("kernelspec", {}).get("name", "chestcam-rust"),
            timeout=1200,
            resources={"metadata": {"path": str(path.parent.resolve())}},
        )
        fence = None
        if client.kernel_name == "chestcam-rust":
            fence = client.on_cell_executed = fence_after_each_cell(client)
        t0 = time.time()
        try:
            client.execute()
        except Exception as e:  # a cell error or kernel death
            print(f"{path}: execution failed: {str(e)[:2000]}", file=sys.stderr)
            failed = True
        dt = time.time() - t0
        # The fences took execution counts: number the cells 1, 2, 3, ...
        count = 0
        for cell in nb.cells:
            if cell.cell_type == "code" and cell.get("execution_count") is not None:
                count += 1
                cell.execution_count = count
        dest = out_dir / (f"colab_{path.name}" if path.parent.name == "colab" else path.name)
        tmp = dest.with_suffix(".ipynb.part")
        nbformat.write(nb, tmp)
        tmp.replace(dest)
        problems = check(nb, path.name)
        executed = sum(1 for c in nb.cells if c.cell_type == "code" and c.get("execution_count") is not None)
        if fence is not None and fence.seen != executed:
            problems.append(f"{fence.seen} fences came back for {executed} executed cells")
        for p in problems:
            print(f"{path}: {p}", file=sys.stderr)
        failed |= bool(problems)
        print(f"{path}: {'FAILED' if problems else 'ok'} in {dt:.1f} s -> {dest}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
