"""Checks scripts/run_notebooks.py on the Rust kernel: a cell that panics
after a flood of stderr fails the notebook, every line of it lands in that
cell's outputs before the panic, the fence's token never shows, a cell's own
`eprintln` macro does not silence the fences after it (run_notebooks fails
a notebook where a fence did not come back), and the executed copy numbers
its cells 1, 2, 3, ...

Usage: python scripts/test_run_notebooks.py   (exit status 0 when all hold)
"""
import pathlib
import subprocess
import sys
import tempfile

import nbformat

CELLS = [
    "let x: i64 = 40 + 2;\nx",
    'for i in 0..3000 { eprintln!("line {i}"); }\nlet v: Vec<i32> = vec![];\nlet _ = v[3000];',
    "x + 1",
    # A cell's own `eprintln` macro must not silence the fences after it.
    "macro_rules! eprintln { ($($t:tt)*) => {} }\nx + 2",
    "x + 3",
    "x + 4",
]


def main():
    failures = []
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "chestcam-rust", "display_name": "Rust", "language": "rust"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
        nbformat.write(nb, d / "panics.ipynb")
        runner = pathlib.Path(__file__).resolve().parent / "run_notebooks.py"
        r = subprocess.run([sys.executable, str(runner), str(d / "out"), str(d / "panics.ipynb")],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 1 or "FAILED" not in r.stdout:
            failures.append(f"a panicking cell did not fail the notebook: exit {r.returncode}, {r.stdout[-300:]}")
        if "cell 1:" not in r.stderr or "the index is 3000" not in r.stderr:
            failures.append(f"the panic is not reported for cell 1: {r.stderr[-300:]}")
        done = nbformat.read(d / "out" / "panics.ipynb", as_version=4)
        texts = ["".join(o.get("text", "") for o in c.outputs) for c in done.cells]
        flood = texts[1]
        if "line 2999" not in flood or flood.find("line 2999") > flood.find("the index is 3000"):
            failures.append(f"cell 1 lacks its last line before the panic: {flood[-300:]}")
        if any("run-notebooks-fence" in t for t in texts):
            failures.append("the fence's token reached the outputs")
        if "fence" in r.stderr:
            failures.append(f"a fence failed: {r.stderr[-600:]}")
        counts = [c.execution_count for c in done.cells]
        if counts != list(range(1, len(CELLS) + 1)):
            failures.append(f"execution counts {counts}, expected 1..{len(CELLS)}")
        for i, want in [(2, "43"), (3, "44"), (4, "45"), (5, "46")]:
            plain = [o.get("data", {}).get("text/plain") for o in done.cells[i].outputs if "data" in o]
            if plain != [want]:
                failures.append(f"cell {i} gave {plain}, expected [{want!r}]")
    for f in failures:
        print(f, file=sys.stderr)
    print("run_notebooks: FAILED" if failures else "run_notebooks: all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
