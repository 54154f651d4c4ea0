# Quick start: `make demo` (train + test the tiny FIANet on the built-in synthetic
# data) and `make test` (the whole test suite). Both create or reuse `.venv`.
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

.PHONY: demo test lint venv clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77.0.3,<82" wheel

# torch first, so that the CPU build is chosen and never replaced by a resolver.
$(VENV)/.stamp-torch: | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	touch $@

$(VENV)/.stamp-demo: pyproject.toml requirements/demo.txt $(VENV)/.stamp-torch
	$(PIP) install -q --no-deps --require-hashes -r requirements/demo.txt
	$(PIP) install -q -e .
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-demo
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.stamp-dev

lint: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .

test: $(VENV)/.stamp-dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

demo: $(VENV)/.stamp-demo
	$(PY) tools/run_demo.py

clean-venv:
	rm -rf $(VENV)
