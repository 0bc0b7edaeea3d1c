# arraybench: `make bench` and `make test` set everything up from nothing, then run.
PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Frameworks that must be present: a test that would skip for want of one fails instead.
REQUIRED_BACKENDS ?= numpy,torch,jax,numba

.PHONY: setup bench bench-full bench-pytest overhead test test-cluster lint format clean gpu-check check-floor

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[frameworks,dev]'
	touch $(INSTALLED)

setup: $(INSTALLED)

# The run goes to results/<time>-<host>/; whenever it wrote a folder (exit 0, or 1 for configurations not
# ok) it gets its plots, report.md and report.html (which embeds the plots; its path is printed last).
# A finished sweep whose status line counts configurations that are not ok (exit status 1 of `bench run`,
# such as Numba's deliberate float32-accumulation mismatch, listed in the summary) does not fail
# `make bench`; usage errors (2) and interruptions (130) do. BENCH_OPTIONS adds options to `bench run`.
BENCH_OPTIONS ?=
bench: $(INSTALLED)
	folder=results/$$(date -u +%Y%m%dT%H%M%SZ)-$$(uname -n | cut -d. -f1); \
	$(PY) -m bench run --preset quick --out $$folder $(BENCH_OPTIONS); status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	$(PY) -m bench report $$folder --format md --out $$folder/report.md && \
	$(PY) -m bench report $$folder --format html

bench-full: $(INSTALLED)
	$(PY) -m bench run --preset full

# The floor check (bench/check_floor.py): the tuned formulations at the full preset's sizes, float32 and
# float64; fails if any configuration runs under 0.95x the machine's floor. A few minutes; run it on a quiet
# machine. CHECK_FLOOR_OPTIONS passes options on (see python -m bench.check_floor --help).
CHECK_FLOOR_OPTIONS ?=
check-floor: $(INSTALLED)
	$(PY) -m bench.check_floor $(CHECK_FLOOR_OPTIONS)

# Harness overhead: the runner's median against a bare in-process timing of the same fits.
overhead: $(INSTALLED)
	$(PY) -m bench.overhead

# The pytest-benchmark fits run once each, untimed, as a correctness check, at one size: every size runs the
# same code, and each torch.compile configuration costs seconds of compilation.
test: lint
	ARRAYBENCH_REQUIRED_BACKENDS=$(REQUIRED_BACKENDS) $(PY) -m pytest --benchmark-disable --fit-sizes=1000

# The cluster engines for real: submitit and Ray into the venv, a single-node SLURM with accounting (Debian
# packages, daemons started by hand: tests/cluster/slurm_node.sh, needs root), then a tiny 2-shard sweep
# through each engine (tests/cluster). CI runs it after make test.
CLUSTER_INSTALLED := $(VENV)/.cluster-installed
$(CLUSTER_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[frameworks,dev,slurm,ray]'
	touch $(CLUSTER_INSTALLED)

test-cluster: $(CLUSTER_INSTALLED)
	bash tests/cluster/slurm_node.sh start
	$(PY) -m pytest -m cluster tests/cluster -v

# Every framework's fit through pytest-benchmark: one table per device, dtype and size, saved under .benchmarks/.
BENCH_PYTEST_OPTIONS ?=
bench-pytest: $(INSTALLED)
	$(PY) -m pytest tests/benchmarks --benchmark-only --benchmark-autosave --benchmark-name=short \
		--benchmark-columns=min,median,iqr,mean,stddev,rounds $(BENCH_PYTEST_OPTIONS)

# On a machine with a CUDA GPU and the frameworks already installed (a lent GPU machine): no venv, no install.
GPU_PYTHON ?= python3
gpu-check:
	PYTHONPATH=. $(GPU_PYTHON) -m bench.gpu_check

lint: $(INSTALLED)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(INSTALLED)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .benchmarks
