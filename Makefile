# The two commands of the README. Both are idempotent and work from a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch: the CPU build. A CPU wheel already on disk (as on the project's machines) is
# used as it is; elsewhere pip takes it from PyTorch's CPU index. For a CUDA build:
#   make run TORCH_INDEX=https://download.pytorch.org/whl/cu128
TORCH_WHEELS ?= /opt/wheels
TORCH_INDEX  ?= https://download.pytorch.org/whl/cpu
ifneq ($(wildcard $(TORCH_WHEELS)/torch-*.whl),)
PIP_TORCH := --find-links $(TORCH_WHEELS)
else
PIP_TORCH := --extra-index-url $(TORCH_INDEX)
endif

.PHONY: run test install install-test install-ray lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps make the installs idempotent: they rerun only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q $(PIP_TORCH) -e .
	touch $@

# The tests install the Ray extra too: the Ray sweep tests run for real in `make test`.
$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q $(PIP_TORCH) -e ".[test,ray]"
	touch $@

# Sweeps on a Ray cluster (sweep --engine ray): the optional extra alone.
$(VENV)/.installed-ray: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q $(PIP_TORCH) -e ".[ray]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-ray: $(VENV)/.installed-ray

run: install
	$(BIN)/python main.py

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
