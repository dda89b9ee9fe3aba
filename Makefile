# pixbox developer commands. Every target sets up .venv itself when needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-gpu bench demo clean

venv: $(STAMP)

# torch is installed first, pinned to the local CPU build, so that no later
# dependency resolution can pull a CUDA build of torch from the registry.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -n 2 tests

# Only the tests marked `cuda` (skipped without a GPU). Where python already has torch and pixbox's
# dependencies (a GPU machine's), `make test-gpu PY=python3` runs them without setting up .venv.
test-gpu: $(if $(filter $(VENV)/bin/python,$(PY)),$(STAMP))
	$(PY) -m pytest -q -m cuda tests

bench: $(STAMP)
	$(PY) benchmarks/ops.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/train_ssd.py
	$(PY) benchmarks/train_fcn.py
	$(PY) benchmarks/finetune.py
	$(PY) benchmarks/roi.py --quick
	$(PY) benchmarks/style.py
	$(PY) benchmarks/serve.py
	$(PY) benchmarks/export.py

demo: $(STAMP)
	$(VENV)/bin/pixbox demo anchors --out runs/demo/anchors
	$(VENV)/bin/pixbox demo detect --out runs/demo/detect

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
