# arraybench: `make bench` and `make test` set everything up from nothing, then run.
PYTHON_SYSTEM ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# Frameworks that must be present: a test that would skip for want of one fails instead.
REQUIRED_BACKENDS ?= numpy,torch,jax,numba

.PHONY: setup bench bench-full bench-pytest overhead test test-cluster lint typecheck format clean gpu-check check-floor

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[frameworks,dev]'
	touch $(INSTALLED)

setup: $(INSTALLED)

# `make bench`: the quick sweep into BENCH_OUT (default results/<UTC time>-<host>), then, whatever its outcome,
# the plots, report.md and report.html (which embeds the plots; its path is printed last) of what finished, and
# the run's exit status (bench/exitcodes.py): 0 when every configuration is ok, skipped or an expected mismatch;
# 1 on any crash, timeout, out-of-memory, divergence or unexpected mismatch; 2 bad input; 130 interrupted (make
# names it, "Error 1", and itself exits 2 on any failure). BENCH_OPTIONS go to `bench run` (e.g. a tiny sweep).
BENCH_OPTIONS ?=
BENCH_OUT ?=
bench: $(INSTALLED)
	@out="$(BENCH_OUT)"; out="$${out:-results/$$(date -u +%Y%m%dT%H%M%SZ)-$$(uname -n | cut -d. -f1)}"; \
	$(PY) -m bench run --preset quick --out "$$out" $(BENCH_OPTIONS); status=$$?; \
	if [ -s "$$out/summary.csv" ]; then \
		$(PY) -m bench plot "$$out"; drawn=$$?; \
		$(PY) -m bench report "$$out" --format md --out "$$out/report.md"; reported=$$?; \
		echo "report: $$out/report.md"; \
		$(PY) -m bench report "$$out" --format html; html=$$?; \
		if [ $$status -eq 0 ]; then status=$$drawn; fi; \
		if [ $$status -eq 0 ]; then status=$$reported; fi; \
		if [ $$status -eq 0 ]; then status=$$html; fi; \
	fi; \
	exit $$status

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
test: lint typecheck
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

# mypy over backends/contract.py and bench/ (the files and settings: [tool.mypy] in pyproject.toml).
typecheck: $(INSTALLED)
	$(PY) -m mypy

format: $(INSTALLED)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .benchmarks
