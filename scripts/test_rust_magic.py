"""Checks notebooks/colab/rust_magic.py on a real Python kernel and a real
evcxr kernel: outputs come back with their MIME types, variables carry over
between cells, a compile error or a panic fails the cell with the kernel's
message while the Rust kernel lives on, and a returned Err is shown on
stderr as the Rust kernel shows it.

Usage: python scripts/test_rust_magic.py   (exit status 0 when all hold)
"""
import os
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

colab = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "colab"
SETUP = f"import sys\nsys.path.insert(0, {str(colab)!r})\n%load_ext rust_magic"
# The Python side's versions, printed by the kernel itself (make test runs
# this file on the Colab-stack kernel and on the project's own).
VERSIONS = (
    "import sys, IPython, ipykernel, jupyter_client\n"
    "print('python', sys.version.split()[0], 'IPython', IPython.__version__,"
    " 'ipykernel', ipykernel.__version__, 'jupyter_client', jupyter_client.__version__)"
)
REDIRECT = """%%rust
unsafe extern "C" { fn dup(fd: i32) -> i32; fn dup2(from: i32, to: i32) -> i32; }
let devnull = std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap();
let saved_stderr: i32 = unsafe { dup(2) };
unsafe { dup2(std::os::unix::io::AsRawFd::as_raw_fd(&devnull), 2) };"""
CELLS = [
    # (source, expect an error, text the outputs must contain)
    (VERSIONS, False, "IPython"),
    (SETUP, False, None),
    ("%%rust\nlet x: i64 = 40 + 2;\nprintln!(\"to stdout\");\nx", False, "42"),
    ("%%rust\nx + 1", False, "43"),
    ("%%rust\nlet y: u8 = \"text\";", True, "mismatched types"),
    ("%%rust\nlet v: Vec<i32> = vec![];\nv[3]", True, "panicked at"),
    # A panic after a flood of stderr: evcxr relays it from its own thread,
    # seconds after the cell ended on a loaded machine; the magic's fence
    # waits for all of it.
    ("%%rust\nfor i in 0..3000 { eprintln!(\"line {i}\"); }\nlet v: Vec<i32> = vec![];\nlet _ = v[3000];", True, "the index is 3000"),
    # evcxr prints a returned Err on stderr and calls the cell a success; so does the
    # magic (scripts/run_notebooks.py fails a notebook on such a stderr line).
    ("%%rust\nlet r: Result<i32, String> = Err(\"bad input\".into());\nr?", False, "bad input"),
    ("%%rust\nx * 2", False, "84"),
    # A silent cell says it is still running (here every second), once per
    # interval until its first output.
    ("import os\nos.environ['CHESTCAM_RUST_HEARTBEAT_S'] = '1'", False, None),
    ("%%rust\nstd::thread::sleep(std::time::Duration::from_millis(3500));", False, "still running after"),
    ("del os.environ['CHESTCAM_RUST_HEARTBEAT_S']", False, None),
    # A cell's own `eprintln` macro does not silence the fence (it names
    # std::eprintln by path): the cells after it still end at once, each
    # with its fence (counted below). With a plain `eprintln!` fence each
    # of them waited out FENCE_TIMEOUT_S.
    ("%%rust\nmacro_rules! eprintln { ($($t:tt)*) => {} }\n1 + 1", False, "2"),
    ("%%rust\nx * 3", False, "126"),
    ("%%rust\nx * 4", False, "168"),
    # A cell that redirects the kernel's stderr (to /dev/null): its fence's
    # token never comes, so the magic says so once, after the fence timeout
    # (20 s here); the cells after it wait FENCE_LOST_WAIT_S, not the
    # timeout, until a cell restores stderr and its fence comes back.
    ("import os\nos.environ['CHESTCAM_RUST_FENCE_TIMEOUT_S'] = '20'", False, None),
    (REDIRECT, False, "later cells wait 5 s"),
    ("%%rust\nx * 5", False, "210"),
    ("%%rust\nx * 6", False, "252"),
    ("%%rust\nunsafe { dup2(saved_stderr, 2) };\nstd::eprintln!(\"stderr is back\");", False, "stderr is back"),
    ("del os.environ['CHESTCAM_RUST_FENCE_TIMEOUT_S']", False, None),
    ("%%rust\nprintln!(\"EVCXR_BEGIN_CONTENT text/html\\n<b>bold</b>\\nEVCXR_END_CONTENT\");", False, "<b>bold</b>"),
    # Every %%rust cell above ended with a fence whose token came back.
    ("import rust_magic\nprint('fences seen:', rust_magic.RustMagics.kernel.fences_seen)", False, "fences seen:"),
]
RUST_CELLS = sum(src.startswith("%%rust") for src, _, _ in CELLS)
# The cells whose fence's token cannot come back: the redirecting one and
# the two after it.
LOST = [i for i, (src, _, _) in enumerate(CELLS) if src == REDIRECT]
LOST = LOST + [LOST[0] + 1, LOST[0] + 2]


def text_of(cell):
    parts = []
    for o in cell.get("outputs", []):
        parts.append(o.get("text", ""))
        parts.append(o.get("evalue", ""))
        parts.extend("".join(v) if isinstance(v, list) else str(v) for v in o.get("data", {}).values())
    return "\n".join(parts)


def main():
    failures = []
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src, _, _ in CELLS]
    client = NotebookClient(nb, kernel_name="python3", timeout=600)
    took = []
    with client.setup_kernel():
        for i, (cell, (src, want_error, want_text)) in enumerate(zip(nb.cells, CELLS)):
            t0 = time.monotonic()
            try:
                client.execute_cell(cell, i)
                failed = False
            except CellExecutionError:
                failed = True
            took.append(time.monotonic() - t0)
            text = text_of(cell)
            if failed != want_error:
                failures.append(f"cell {i} {src!r}: {'failed' if failed else 'passed'}, expected the opposite: {text[:300]}")
            if want_text and want_text not in text:
                failures.append(f"cell {i} {src!r}: outputs lack {want_text!r}: {text[:300]}")
    stack = text_of(nb.cells[0]).strip()
    print(f"rust_magic on: {stack}")
    # CHESTCAM_EXPECT_STACK: a pin file (scripts/colab_stack.txt) whose
    # versions the kernel must report, every one of them.
    pins = os.environ.get("CHESTCAM_EXPECT_STACK")
    if pins:
        label = {"ipython": "IPython", "ipykernel": "ipykernel", "jupyter_client": "jupyter_client"}
        for line in pathlib.Path(pins).read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==")
                if f"{label[name]} {version} " not in stack + " ":
                    failures.append(f"the Python kernel runs {stack!r}, not {label[name]} {version} ({pins})")
    # The fence that ends each cell (rust_magic.RustKernel.run) never shows.
    for i, cell in enumerate(nb.cells):
        text = text_of(cell)
        if "chestcam-rust-magic-fence" in text:
            failures.append(f"cell {i}: the magic's fence token reached the outputs")
        said = "did not catch up" in text or "fence after this cell did not run" in text
        if said != (i == LOST[0]):
            failures.append(f"cell {i}: its fence {'failed' if said else 'did not say it was lost'}: {text[-300:]}")
    # After the lost fence, a cell waits FENCE_LOST_WAIT_S (5 s), not the 20 s timeout.
    for i in LOST[1:]:
        if took[i] >= 15:
            failures.append(f"cell {i} took {took[i]:.1f} s after stderr was lost (the timeout is 20 s)")
    seen = RUST_CELLS - len(LOST)
    if f"fences seen: {seen}\n" not in text_of(nb.cells[-1]):
        failures.append(f"expected {seen} fences seen: {text_of(nb.cells[-1])[:200]}")
    # Every line of the flood came back, in order, before the panic.
    flood = text_of(nb.cells[6])
    if "line 2999" not in flood or flood.find("line 2999") > flood.find("the index is 3000"):
        failures.append(f"cell 6: the flood's last line is missing or after the panic: {flood[-300:]}")
    html = [o for o in nb.cells[-2].outputs if "text/html" in o.get("data", {})]
    if not html:
        failures.append("the HTML display did not come back as text/html")
    for f in failures:
        print(f, file=sys.stderr)
    print(f"rust_magic: {len(CELLS) - len(failures)} of {len(CELLS)} checks passed" if not failures else "rust_magic: FAILED")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
