# chestcam: two commands do everything on a fresh machine.
#   make demo   set-up, then the main job (data summaries and montages into out/)
#   make test   set-up, then every test (unit, end-to-end, CLI, fuzz, lint)
SHELL := /bin/bash
ENV := source scripts/env.sh &&
NIH1000 ?= ../shared/data/nih1000/nih1000.npz
SOURCES ?= synthetic $(wildcard $(NIH1000))
OUT ?= out

NOTEBOOKS := notebooks/train_model.ipynb notebooks/gradcam_visualizer.ipynb
# The same cells for Colab: Python kernel, each Rust cell under %%rust.
COLAB_NOTEBOOKS := notebooks/colab/train_model.ipynb notebooks/colab/gradcam_visualizer.ipynb

.PHONY: setup build demo test notebooks-test viewer-test bench

# Both sides of the benchmark get the same allocator settings (a fresh
# process otherwise pays for millions of page faults).
BENCH_ENV := MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824
BENCH_DATA ?= $(NIH1000)

# BENCH_SIZE=64 (or 224): the same batch resized to that size.
BENCH_SIZE ?=
bench: build
	$(ENV) $(BENCH_ENV) ./target/release/chestcam bench --data $(BENCH_DATA) $(if $(BENCH_SIZE),--size $(BENCH_SIZE)) --all-methods --out $(OUT)/bench

setup:
	@bash scripts/setup.sh

build: setup
	$(ENV) cargo build --release -p chestcam

demo: build
	@mkdir -p $(OUT)
	$(ENV) CHESTCAM_RUNS=$(CURDIR)/$(OUT)/runs-notebook python scripts/run_notebooks.py $(OUT)/notebooks $(NOTEBOOKS)
	@for src in $(SOURCES); do \
	  name=$$(basename $$src .npz | tr ':' '_'); \
	  echo "== chestcam data --source $$src --summary --montage $(OUT)/montage_$$name.png"; \
	  $(ENV) ./target/release/chestcam data --source $$src --summary --montage $(OUT)/montage_$$name.png || exit 1; \
	done

test: setup
	$(ENV) cargo test --workspace --no-fail-fast
	$(MAKE) notebooks-test
	$(MAKE) viewer-test
	$(ENV) cargo fmt --all -- --check
	$(ENV) cargo clippy --workspace --all-targets -- -D warnings
	$(ENV) RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# The committed notebooks (and the program of their cells) must be what
# scripts/make_notebooks.py writes. Then the notebooks headless in quick
# mode, offline (no test contacts another host):
# any cell error, panic, stderr line that is not progress or missing inline
# output fails. Then the %%rust magic on its own, the Colab set-up path in
# dry-run mode on faked machines (which torch build each GPU driver gets),
# and the magic again and the Colab notebooks on a Python kernel with
# Colab's IPython, ipykernel and jupyter_client (scripts/colab_stack.txt;
# their set-up cell finds everything installed).
# `python3` is the Colab-stack kernel (scripts/colab_kernel.py) under this.
COLAB_KERNEL = JUPYTER_PATH=$(CURDIR)/$(OUT)/colab-kernel:$$JUPYTER_PATH
notebooks-test: setup
	$(ENV) python scripts/make_notebooks.py --check
	rm -rf $(OUT)/runs-test
	$(ENV) CHESTCAM_QUICK=1 CHESTCAM_OFFLINE=1 CHESTCAM_RUNS=$(CURDIR)/$(OUT)/runs-test python scripts/run_notebooks.py $(OUT)/notebooks-test $(NOTEBOOKS)
	$(ENV) python scripts/test_rust_magic.py
	$(ENV) python scripts/test_run_notebooks.py
	$(ENV) python scripts/test_hosted_setup.py
	$(ENV) python scripts/colab_kernel.py $(OUT)/colab-kernel
	$(ENV) $(COLAB_KERNEL) CHESTCAM_EXPECT_STACK=scripts/colab_stack.txt python scripts/test_rust_magic.py
	rm -rf $(OUT)/runs-test-colab
	$(ENV) $(COLAB_KERNEL) CHESTCAM_QUICK=1 CHESTCAM_OFFLINE=1 CHESTCAM_RUNS=$(CURDIR)/$(OUT)/runs-test-colab python scripts/run_notebooks.py $(OUT)/notebooks-test $(COLAB_NOTEBOOKS)

# The explanation viewer in headless Chromium: tests/viewer.rs writes a page
# and the Rust renderings of its states, then Playwright drives it (and the
# viewer inline in the executed visualizer notebook, when notebooks-test has
# run). Skipped, loudly, only when Chromium or playwright-core cannot be
# installed.
VIEWER_NOTEBOOK := $(OUT)/notebooks-test/gradcam_visualizer.ipynb
viewer-test: setup
	rm -rf $(OUT)/viewer-test && mkdir -p $(OUT)/viewer-test
	$(ENV) CHESTCAM_VIEWER_OUT=$(CURDIR)/$(OUT)/viewer-test cargo test -p chestcam --test viewer
	@said=$$(bash scripts/browser_setup.sh); rc=$$?; \
	if [ $$rc -eq 3 ]; then echo "*** viewer browser test SKIPPED: $$said"; exit 0; fi; \
	if [ $$rc -ne 0 ]; then echo "$$said"; exit $$rc; fi; \
	nb=""; if [ -f $(VIEWER_NOTEBOOK) ]; then nb=$(VIEWER_NOTEBOOK); else echo "(no $(VIEWER_NOTEBOOK): its inline viewer is not checked)"; fi; \
	CHESTCAM_NODE_MODULES="$$(echo "$$said" | tail -1)" node tests/browser/viewer_test.mjs $(OUT)/viewer-test $$nb
