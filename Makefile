# The README's two commands are `make app` and `make test`; both create .venv when missing.
# `make test-fast` is the edit-test loop: the suite without trainings, browser and notebooks.
#
# torch is installed first, pinned, so that the project's own `torch>=2.4` adds nothing (an
# unpinned torch on Linux pulls several GB of CUDA packages). Pick the wheel index for your
# machine with TORCH_INDEX, e.g.
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu     # CPU-only machine
#   make app  TORCH_INDEX=https://download.pytorch.org/whl/cu128   # NVIDIA GPU, CUDA 12.8
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# One stamp per install: the core (`-e .`) or an extra (`-e ".[app]"`), so that `make app` and
# then `make test` installs the test extra too. Each is redone when pyproject.toml changes.
TORCH_STAMP := $(VENV)/.installed-torch
STAMP = $(VENV)/.installed-$(1)
TEST_WORKERS ?= 2
HOST ?= 127.0.0.1
PORT ?= 7860
MODEL ?=
# Big models on a CPU (docs/training.md): WEIGHTS=bf16, FRAMES=8, IMG_SIZE=160 open MODEL so.
WEIGHTS ?=
FRAMES ?=
IMG_SIZE ?=
# One torch thread per test process: the workers, notebook kernels and subprocesses already
# fill the cores, and oversubscribed threads make small models many times slower.
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: app test test-fast lint format starter notebooks bench clean-venv

$(TORCH_STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	touch $@

$(call STAMP,core): pyproject.toml $(TORCH_STAMP)
	$(PIP) install --quiet -e .
	touch $@

# app, notebooks, test: the extras of pyproject.toml (test pulls app and notebooks).
$(VENV)/.installed-%: pyproject.toml $(TORCH_STAMP)
	$(PIP) install --quiet -e ".[$*]"
	touch $@

# make app MODEL=runs/NAME opens that model first (a run directory, a checkpoint or a bundle).
app: $(call STAMP,app)
	$(PY) -m workbench --host $(HOST) --port $(PORT)$(if $(MODEL), --model $(MODEL))$(if \
	$(WEIGHTS), --weights $(WEIGHTS))$(if $(FRAMES), --frames $(FRAMES))$(if \
	$(IMG_SIZE), --img-size $(IMG_SIZE))

# A notebook cell may run NOTEBOOK_CELL_TIMEOUT seconds: the slowest under nbmake's sizes took
# 19 s (03's training; UMAP's first compile in 04 takes up to a minute), so a cell that waits
# longer fails and is named instead of holding the run for nbmake's default 300 s. It also
# caps a known stall of the notebook runner (nbclient issue 312, open): now and then the
# kernel's reply to a cell that shows widgets (04's neighbour cards) reaches the runner but does
# not wake it; it finds the reply only when the cell's timeout comes, and passes (04 then took
# 5.5 minutes instead of 45 s, with the kernel and the CPU idle).
NOTEBOOK_CELL_TIMEOUT ?= 180

test: lint
	$(PYTEST) --nbmake --nbmake-timeout=$(NOTEBOOK_CELL_TIMEOUT) tests notebooks

# The markers are registered in pyproject.toml; running the notebooks is slow by nature.
test-fast: lint
	$(PYTEST) -m "not slow and not browser" tests

lint: $(call STAMP,test)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(call STAMP,test)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

starter: $(call STAMP,core)
	$(PY) -m decoder.starter

notebooks: $(call STAMP,notebooks)
	$(PY) -m jupyter lab notebooks

bench: $(call STAMP,core)
	$(PY) benchmarks/train_throughput.py

clean-venv:
	rm -rf $(VENV)
