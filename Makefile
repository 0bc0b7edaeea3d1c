# arraybench: `make bench` and `make test` set everything up from nothing, then run.
PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Frameworks that must be present: a test that would skip for want of one fails instead.
REQUIRED_BACKENDS ?= numpy,torch,jax,numba

.PHONY: setup bench bench-full test lint format clean

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[frameworks,dev]'
	touch $(INSTALLED)

setup: $(INSTALLED)

bench: $(INSTALLED)
	$(PY) -m bench run --preset quick

bench-full: $(INSTALLED)
	$(PY) -m bench run --preset full

test: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	ARRAYBENCH_REQUIRED_BACKENDS=$(REQUIRED_BACKENDS) $(PY) -m pytest

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(INSTALLED)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks
